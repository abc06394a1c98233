//! Command submission: [`Submission`] (work on the queue and what it
//! owns until its fence signals) and the implicit-sync bridge every
//! operation of the adapter goes through.

use std::any::Any;
use std::os::fd::{AsFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::Arc;

use ash::vk;

use super::context::VulkanContext;
use super::error::{VulkanError, call};
use super::recycle::Frame;
use super::unwind::{Cleanup, Unwind};
use crate::sync::{self, SyncAccess};

/// The kernel dma-bufs a submission touches, for implicit synchronisation:
/// each fd with the access the submission makes.
pub(crate) type ImplicitSync<'a> = &'a [(std::os::fd::BorrowedFd<'a>, SyncAccess)];

/// The longest any wait for the GPU lasts: a fence that has not signalled
/// by then (a hung device, a dma-buf producer that never signals) is a
/// [`VulkanError::Timeout`], and what the work uses is freed once it does
/// signal (or leaked at the context's end if it never does), never
/// destroyed under the GPU.
pub const GPU_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Records commands with `record` and submits them on the context's queue
/// without waiting: the [`Submission`] owns what the GPU still uses.
///
/// Bridges to the implicit fences of the kernel dma-bufs in `implicit`
/// when the device has SYNC_FD semaphores: the submission first waits for
/// the fences already on each dma-buf (`DMA_BUF_IOCTL_EXPORT_SYNC_FILE`
/// imported as a temporary semaphore payload), and its own completion (a
/// sync_file exported from a signal semaphore) is attached to each dma-buf
/// (`DMA_BUF_IOCTL_IMPORT_SYNC_FILE`), so implicitly synchronised consumers
/// (compositors, other drivers) wait for it, and kept in the submission
/// ([`Submission::sync_file`]) for explicitly synchronised ones. Without
/// SYNC_FD semaphores, or for memfds, only the fence orders anything.
///
/// `after`: sync_files (e.g. a compositor's release fences) the work must
/// wait for: on the GPU, as temporary semaphore payloads, where the device
/// imports SYNC_FD; else on the CPU before submitting. `keep`: objects the
/// recorded commands use, owned by the submission from the submit on.
pub(crate) fn submit_synced(
    ctx: &Arc<VulkanContext>,
    implicit: ImplicitSync<'_>,
    after: &[std::os::fd::BorrowedFd<'_>],
    keep: Vec<Box<dyn Any + Send>>,
    record: impl FnOnce(vk::CommandBuffer) -> Result<(), VulkanError>,
) -> Result<Submission, VulkanError> {
    let loader = ctx.semaphore_fd();
    let mut semaphores = Unwind::new(Semaphores { ctx, list: Vec::new() });
    let mut waits = Vec::new();
    if loader.is_none() {
        for fd in after {
            if !crate::sync::sync_file_wait(*fd, GPU_TIMEOUT).map_err(VulkanError::Fence)? {
                return Err(VulkanError::Timeout {
                    what: "a sync_file the work must wait for",
                    timeout: GPU_TIMEOUT,
                });
            }
        }
    }
    // The kernel dma-bufs' implicit fences (a writer waits for readers and
    // writers, a reader for writers): as semaphore payloads where the
    // device imports SYNC_FD and the kernel exports sync_files (6.0+),
    // else on the CPU (poll) before submitting, so no path skips them.
    let mut gpu_waits = Vec::new();
    for &(fd, access) in implicit {
        let exported = match loader {
            Some(_) => match sync::export_sync_file(fd, access) {
                Ok(fence) => Some(fence),
                Err(sync::SyncError::Unsupported { .. }) => None,
                Err(e) => return Err(VulkanError::Sync(e)),
            },
            None => None,
        };
        match exported {
            Some(fence) => gpu_waits.push(fence),
            None if sync::is_kernel_dmabuf(fd) && !sync::wait_implicit(fd, access, GPU_TIMEOUT)? => {
                return Err(VulkanError::Timeout {
                    what: "a dma-buf's implicit fences",
                    timeout: GPU_TIMEOUT,
                });
            }
            // Waited for on the CPU, or a memfd stand-in (no fences).
            None => {}
        }
    }
    if let Some(loader) = loader {
        let implicit_fences = gpu_waits.into_iter().map(Ok);
        let explicit_fences = after
            .iter()
            .map(|fd| crate::sync::dup(*fd, "dup of a sync_file").map_err(VulkanError::Fence));
        for fence in implicit_fences.chain(explicit_fences) {
            let fence = fence?;
            let semaphore = semaphores.create(false)?;
            let raw = fence.into_raw_fd();
            let info = vk::ImportSemaphoreFdInfoKHR::default()
                .semaphore(semaphore)
                .flags(vk::SemaphoreImportFlags::TEMPORARY)
                .handle_type(vk::ExternalSemaphoreHandleTypeFlags::SYNC_FD)
                .fd(raw);
            // SAFETY: valid semaphore; on success Vulkan owns `raw`.
            if let Err(e) = unsafe { loader.import_semaphore_fd(&info) } {
                // SAFETY: the import failed, so `raw` is still ours.
                drop(unsafe { OwnedFd::from_raw_fd(raw) });
                return Err(call("vkImportSemaphoreFdKHR")(e));
            }
            waits.push(semaphore);
        }
    }
    let signal = match loader {
        Some(_) => Some(semaphores.create(true)?),
        None => None,
    };
    let wait_stages = vec![vk::PipelineStageFlags::ALL_COMMANDS; waits.len()];
    let signals: Vec<vk::Semaphore> = signal.into_iter().collect();
    let mut submission = submit_inner(ctx, &waits, &wait_stages, &signals, record)?;
    // From here on the submission owns the semaphores and what the work
    // uses (`keep`: e.g. a framebuffer), so an error below still frees
    // them only after the GPU.
    submission.keep.extend(keep);
    submission.semaphores = semaphores.handover().list;
    let kernel_dmabufs = implicit.iter().filter(|(fd, _)| sync::is_kernel_dmabuf(*fd)).count();
    let (Some(loader), Some(signal)) = (loader, signal) else {
        submission.attached = kernel_dmabufs == 0;
        return Ok(submission);
    };
    let info = vk::SemaphoreGetFdInfoKHR::default()
        .semaphore(signal)
        .handle_type(vk::ExternalSemaphoreHandleTypeFlags::SYNC_FD);
    // The export's copy transference leaves the semaphore unsignalled;
    // nothing waits on it.
    // SAFETY: created exportable as SYNC_FD, its signal operation submitted
    // (VUID-VkSemaphoreGetFdInfoKHR-handleType-03254).
    let raw = unsafe { loader.get_semaphore_fd(&info) }.map_err(call("vkGetSemaphoreFdKHR"))?;
    // -1 means already signalled: nothing to attach or hand on (the work
    // is done, which orders every later reader).
    if raw < 0 {
        submission.attached = true;
        submission.signal_reusable = true;
        return Ok(submission);
    }
    // The export unsignalled the semaphore: it may be reused.
    submission.signal_reusable = true;
    // SAFETY: vkGetSemaphoreFdKHR transferred ownership of `raw` to us.
    let sync_file = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut attached = 0;
    for &(fd, access) in implicit {
        match sync::import_sync_file(fd, sync_file.as_fd(), access) {
            Ok(()) => attached += 1,
            // A memfd (nothing to attach) or a kernel before 6.0 (the
            // dma-buf does not carry our completion: `attached` says so).
            Err(sync::SyncError::Unsupported { .. }) => {}
            Err(e) => return Err(VulkanError::Sync(e)),
        }
    }
    submission.attached = attached == kernel_dmabufs;
    submission.sync_file = Some(sync_file);
    Ok(submission)
}

/// Semaphores of a submission being built, each with whether it is
/// exportable (destroyed if it fails before the submission takes them).
struct Semaphores<'a> {
    ctx: &'a VulkanContext,
    list: Vec<(vk::Semaphore, bool)>,
}

impl Semaphores<'_> {
    /// A kept semaphore of the kind (`recycle`), else a new one.
    fn create(&mut self, exportable: bool) -> Result<vk::Semaphore, VulkanError> {
        if let Some(semaphore) = self.ctx.recycler().take_semaphore(exportable) {
            self.list.push((semaphore, exportable));
            return Ok(semaphore);
        }
        let mut export =
            vk::ExportSemaphoreCreateInfo::default().handle_types(vk::ExternalSemaphoreHandleTypeFlags::SYNC_FD);
        let mut info = vk::SemaphoreCreateInfo::default();
        if exportable {
            info = info.push_next(&mut export);
        }
        // SAFETY: valid device; destroyed in Drop or by the submission.
        let semaphore =
            unsafe { self.ctx.device().create_semaphore(&info, None) }.map_err(call("vkCreateSemaphore"))?;
        self.list.push((semaphore, exportable));
        Ok(semaphore)
    }
}

impl Cleanup for Semaphores<'_> {
    fn clean_up(&mut self) {
        for (s, _) in self.list.drain(..) {
            // SAFETY: ours, and no submission uses it: either the submission
            // failed or was never made (a successful one takes the list).
            unsafe { self.ctx.device().destroy_semaphore(s, None) };
        }
    }
}

/// Work submitted to the queue and not yet known to be finished: its
/// command pool, fence, semaphores and whatever the caller attached
/// ([`keep`](Self::keep): images it reads or writes, their sources) live
/// until its fence has signalled. Dropping it waits for that, at most
/// [`GPU_TIMEOUT`] (so nothing the GPU uses is freed early,
/// VUID-vkDestroyImage-image-01000,
/// VUID-vkDestroyCommandPool-commandPool-00041); past the bound (or after
/// [`wait_timeout`](Self::wait_timeout) gave up) everything it owns is
/// handed to the context's deferred destruction, which frees it once the
/// fence signals. [`is_done`](Self::is_done) asks without waiting.
pub struct Submission {
    ctx: Arc<VulkanContext>,
    pool: vk::CommandPool,
    cb: vk::CommandBuffer,
    fence: vk::Fence,
    /// Each with whether it is exportable (the completion's).
    semaphores: Vec<(vk::Semaphore, bool)>,
    /// The completion semaphore was exported (which unsignals it): it may
    /// be reused.
    signal_reusable: bool,
    descriptor_pools: Vec<vk::DescriptorPool>,
    keep: Vec<Box<dyn Any + Send>>,
    sync_file: Option<OwnedFd>,
    /// A wait already gave up: dropping does not wait again.
    timed_out: bool,
    /// Its completion is attached to every kernel dma-buf it touched.
    attached: bool,
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submission")
            .field("fence", &self.fence)
            .field("sync_file", &self.sync_file)
            .finish_non_exhaustive()
    }
}

impl Submission {
    /// Whether the GPU has finished it (`vkGetFenceStatus`).
    pub fn is_done(&self) -> Result<bool, VulkanError> {
        // SAFETY: our fence, submitted.
        match unsafe { self.ctx.device().get_fence_status(self.fence) } {
            Ok(done) => Ok(done),
            Err(e) => Err(call("vkGetFenceStatus")(e)),
        }
    }

    /// Waits until the GPU has finished it (at most [`GPU_TIMEOUT`]), then
    /// frees what it held.
    pub fn wait(self) -> Result<(), VulkanError> {
        self.wait_timeout(GPU_TIMEOUT)
    }

    /// Waits at most `timeout` for the GPU to finish it; past that, a
    /// [`VulkanError::Timeout`], and what it holds is freed once the GPU
    /// is done with it (not before).
    pub fn wait_timeout(mut self, timeout: std::time::Duration) -> Result<(), VulkanError> {
        let ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        // SAFETY: our fence, submitted.
        match unsafe { self.ctx.device().wait_for_fences(&[self.fence], true, ns) } {
            Ok(()) => Ok(()),
            Err(vk::Result::TIMEOUT) => {
                self.timed_out = true;
                Err(VulkanError::Timeout {
                    what: "a submission's fence",
                    timeout,
                })
            }
            Err(e) => Err(call("vkWaitForFences")(e)),
        }
    }

    /// A sync_file that signals when the GPU has finished it, where the
    /// device exports SYNC_FD semaphores (a dup: the submission keeps its
    /// own).
    pub fn sync_file(&self) -> Option<OwnedFd> {
        self.sync_file.as_ref().and_then(|f| f.try_clone().ok())
    }

    /// Whether every kernel dma-buf the work touched carries its
    /// completion as an implicit fence (`DMA_BUF_IOCTL_IMPORT_SYNC_FILE`
    /// succeeded on each; true when it touched none). Only then may the
    /// buffers go to implicitly synchronised consumers without a wait;
    /// false on kernels before 6.0, devices without SYNC_FD semaphores,
    /// and for memfd stand-ins (which carry no fences).
    pub fn fenced_on_dmabufs(&self) -> bool {
        self.attached
    }

    /// Keeps `value` alive until the submission has finished (e.g. the
    /// source frame of an image it reads).
    pub fn keep(&mut self, value: impl Any + Send) {
        self.keep.push(Box::new(value));
    }

    /// A descriptor pool the recorded commands use, destroyed after them.
    pub(crate) fn adopt_descriptor_pool(&mut self, pool: vk::DescriptorPool) {
        self.descriptor_pools.push(pool);
    }
}

impl Drop for Submission {
    fn drop(&mut self) {
        let device = self.ctx.device();
        let bound = if self.timed_out {
            0
        } else {
            GPU_TIMEOUT.as_nanos() as u64
        };
        // SAFETY: our fence, submitted.
        let finished = !matches!(
            unsafe { device.wait_for_fences(&[self.fence], true, bound) },
            Err(vk::Result::TIMEOUT)
        );
        let pool = self.pool;
        let semaphores = std::mem::take(&mut self.semaphores);
        let descriptor_pools = std::mem::take(&mut self.descriptor_pools);
        // What the caller kept (images, their sources) goes after the GPU.
        let keep = std::mem::take(&mut self.keep);
        if finished {
            // Signalled (or the device is lost): everything goes back for
            // the next submissions (`recycle`), reset there.
            let recycler = self.ctx.recycler();
            recycler.put_frame(
                device,
                Frame {
                    pool,
                    cb: self.cb,
                    fence: self.fence,
                },
            );
            for (s, exportable) in semaphores {
                if !exportable || self.signal_reusable {
                    recycler.put_semaphore(device, s, exportable);
                } else {
                    // SAFETY: ours; the work that used it has finished.
                    unsafe { device.destroy_semaphore(s, None) };
                }
            }
            for p in descriptor_pools {
                recycler.put_descriptor_pool(device, p);
            }
            drop(keep);
        } else {
            // Not finished within the bound: freed when it is.
            let destroy = move |device: &ash::Device| {
                // SAFETY: every handle is ours, and this runs once the fence
                // has signalled (or the device is lost): the queue no longer
                // uses the command buffer, semaphores or descriptor sets.
                unsafe {
                    device.destroy_command_pool(pool, None);
                    for (s, _) in semaphores {
                        device.destroy_semaphore(s, None);
                    }
                    for p in descriptor_pools {
                        device.destroy_descriptor_pool(p, None);
                    }
                }
                drop(keep);
            };
            self.ctx.retire_after(self.fence, Box::new(destroy));
        }
        // The queue has moved on: destructions waiting for it may be ready.
        self.ctx.collect_retired();
    }
}

fn submit_inner(
    ctx: &Arc<VulkanContext>,
    waits: &[vk::Semaphore],
    wait_stages: &[vk::PipelineStageFlags],
    signals: &[vk::Semaphore],
    record: impl FnOnce(vk::CommandBuffer) -> Result<(), VulkanError>,
) -> Result<Submission, VulkanError> {
    let device = ctx.device();
    // A kept frame (pool reset, fence unsignalled), else new objects.
    let mut guard = Unwind::new(match ctx.recycler().take_frame() {
        Some(frame) => Building {
            ctx,
            pool: frame.pool,
            cb: Some(frame.cb),
            fence: frame.fence,
        },
        None => {
            let pool_info = vk::CommandPoolCreateInfo::default()
                .queue_family_index(ctx.queue_family())
                .flags(vk::CommandPoolCreateFlags::TRANSIENT);
            // SAFETY: valid device; the pool is destroyed by the guard below.
            let pool = unsafe { device.create_command_pool(&pool_info, None) }.map_err(call("vkCreateCommandPool"))?;
            Building {
                ctx,
                pool,
                cb: None,
                fence: vk::Fence::null(),
            }
        }
    });
    let cb = match guard.cb.take() {
        Some(cb) => cb,
        None => {
            let alloc = vk::CommandBufferAllocateInfo::default()
                .command_pool(guard.pool)
                .level(vk::CommandBufferLevel::PRIMARY)
                .command_buffer_count(1);
            // SAFETY: the pool is valid; the buffer is freed with the pool.
            unsafe { device.allocate_command_buffers(&alloc) }.map_err(call("vkAllocateCommandBuffers"))?[0]
        }
    };
    let begin = vk::CommandBufferBeginInfo::default().flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
    // SAFETY: a fresh (or reset, with its pool) command buffer of our pool.
    unsafe { device.begin_command_buffer(cb, &begin) }.map_err(call("vkBeginCommandBuffer"))?;
    record(cb)?;
    // SAFETY: recording began above.
    unsafe { device.end_command_buffer(cb) }.map_err(call("vkEndCommandBuffer"))?;
    if guard.fence == vk::Fence::null() {
        // SAFETY: valid device; destroyed by the guard.
        guard.fence =
            unsafe { device.create_fence(&vk::FenceCreateInfo::default(), None) }.map_err(call("vkCreateFence"))?;
    }
    let buffers = [cb];
    let submit = [vk::SubmitInfo::default()
        .command_buffers(&buffers)
        .wait_semaphores(waits)
        .wait_dst_stage_mask(wait_stages)
        .signal_semaphores(signals)];
    {
        let queue = ctx.lock_queue();
        // SAFETY: the queue is externally synchronised by the lock; the
        // command buffer is fully recorded.
        unsafe { device.queue_submit(*queue, &submit, guard.fence) }.map_err(call("vkQueueSubmit"))?;
    }
    // Submitted: the submission takes the pool and the fence over.
    let built = guard.handover();
    let submission = Submission {
        ctx: ctx.clone(),
        pool: built.pool,
        cb,
        fence: built.fence,
        semaphores: Vec::new(),
        signal_reusable: false,
        descriptor_pools: Vec::new(),
        keep: Vec::new(),
        sync_file: None,
        timed_out: false,
        attached: false,
    };
    Ok(submission)
}

/// The command pool and fence of a submission being built; on a failure
/// before the submit they are destroyed (nothing was submitted, so nothing
/// is pending; a successful submit hands them to the [`Submission`]).
struct Building<'a> {
    ctx: &'a VulkanContext,
    pool: vk::CommandPool,
    /// A reused pool's command buffer (freed with the pool).
    cb: Option<vk::CommandBuffer>,
    fence: vk::Fence,
}

impl Cleanup for Building<'_> {
    fn clean_up(&mut self) {
        let device = self.ctx.device();
        // SAFETY: both handles are ours and were never submitted (waiting
        // on an unsubmitted fence would never return).
        unsafe {
            if self.fence != vk::Fence::null() {
                device.destroy_fence(self.fence, None);
            }
            device.destroy_command_pool(self.pool, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Work that cannot finish (it waits for an event the host has not
    /// set): waiting is a typed timeout within the bound, the submission's
    /// objects are handed to deferred destruction instead of being
    /// destroyed under the GPU, and freed once it finishes. Runs on
    /// lavapipe under the validation layer.
    #[test]
    fn a_fence_that_does_not_signal_is_a_timeout_and_nothing_is_freed_under_it() {
        let ctx = crate::vulkan::context::test_context();
        let device = ctx.device();
        // SAFETY: valid device; destroyed at the end, after the work.
        let event = unsafe { device.create_event(&vk::EventCreateInfo::default(), None) }.unwrap();
        let submission = submit_inner(&ctx, &[], &[], &[], |cb| {
            // The host sets the event after the submit, so srcStageMask is
            // HOST (VUID-vkCmdWaitEvents-srcStageMask-01158), and the wait
            // is outside any render pass (VUID-vkCmdWaitEvents-pEvents-01163).
            // SAFETY: a command buffer in the recording state; the rules above.
            unsafe {
                device.cmd_wait_events(
                    cb,
                    &[event],
                    vk::PipelineStageFlags::HOST,
                    vk::PipelineStageFlags::ALL_COMMANDS,
                    &[],
                    &[],
                    &[],
                )
            };
            Ok(())
        })
        .unwrap();
        let start = Instant::now();
        match submission.wait_timeout(Duration::from_millis(300)) {
            Err(VulkanError::Timeout { timeout, .. }) => assert_eq!(timeout, Duration::from_millis(300)),
            other => panic!("expected a timeout, got {other:?}"),
        }
        // A bound, not a speed: the wait and the drop did not block on.
        assert!(start.elapsed() < GPU_TIMEOUT, "{:?}", start.elapsed());
        assert_eq!(ctx.retired_pending(), 1, "the pool and fence wait for the GPU");
        // SAFETY: our event.
        unsafe { device.set_event(event) }.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while ctx.collect_retired() > 0 {
            assert!(Instant::now() < deadline, "the work never finished after the event");
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: the only command buffer using it has finished.
        unsafe { device.destroy_event(event, None) };
        let messages = ctx.validation_messages();
        assert!(messages.is_empty(), "{}", messages.join("\n"));
    }

    /// A stream of submissions creates its per-submission objects once:
    /// each finished one hands its command pool, buffer and fence (and its
    /// semaphores and descriptor pools) to the next, reset, with nothing
    /// for the validation layer to report; a pending one is never reused.
    #[test]
    fn finished_submissions_objects_are_reused_by_the_next() {
        let ctx = crate::vulkan::context::test_context();
        let before = ctx.reused_objects();
        for _ in 0..20 {
            submit_inner(&ctx, &[], &[], &[], |_| Ok(())).unwrap().wait().unwrap();
        }
        assert!(
            ctx.reused_objects() - before >= 19,
            "reused {} times",
            ctx.reused_objects() - before
        );
        // Two in flight at once get two frames: the second is not the
        // first's (still pending) one.
        let a = submit_inner(&ctx, &[], &[], &[], |_| Ok(())).unwrap();
        let b = submit_inner(&ctx, &[], &[], &[], |_| Ok(())).unwrap();
        assert_ne!(a.fence, b.fence);
        assert_ne!(a.pool, b.pool);
        a.wait().unwrap();
        b.wait().unwrap();
        let messages = ctx.validation_messages();
        assert!(messages.is_empty(), "{}", messages.join("\n"));
    }
}
