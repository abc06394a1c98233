//! One-shot command submission and host-visible buffers: the small pieces
//! every operation of the adapter needs.

use std::os::fd::{AsFd, FromRawFd, IntoRawFd, OwnedFd};

use ash::vk;

use super::context::VulkanContext;
use super::error::{VulkanError, call};
use crate::sync::{self, SyncAccess};

/// The kernel dma-bufs a submission touches, for implicit synchronisation:
/// each fd with the access the submission makes.
pub(crate) type ImplicitSync<'a> = &'a [(std::os::fd::BorrowedFd<'a>, SyncAccess)];

/// Records commands with `record`, submits them on the context's queue and
/// waits for the fence; everything is destroyed before returning, on every
/// path. Also bridges to the implicit fences of the kernel
/// dma-bufs in `implicit` when the device has SYNC_FD semaphores: the
/// submission first waits for the fences already on each dma-buf
/// (`DMA_BUF_IOCTL_EXPORT_SYNC_FILE` imported as a temporary semaphore
/// payload), and its own completion is attached to each dma-buf
/// (`DMA_BUF_IOCTL_IMPORT_SYNC_FILE` of the signalled semaphore's sync_file),
/// so implicitly synchronised consumers (compositors, other drivers) wait for
/// it. Without SYNC_FD semaphores, or for memfds, the fence wait alone
/// orders everything.
pub(crate) fn submit_and_wait_synced(
    ctx: &VulkanContext,
    implicit: ImplicitSync<'_>,
    record: impl FnOnce(vk::CommandBuffer) -> Result<(), VulkanError>,
) -> Result<(), VulkanError> {
    let bridge = match ctx.semaphore_fd() {
        Some(loader) if !implicit.is_empty() => Some(loader),
        _ => None,
    };
    let mut semaphores = SemaphoreGuard { ctx, list: Vec::new() };
    let mut waits = Vec::new();
    let mut signal = vk::Semaphore::null();
    if let Some(loader) = bridge {
        for &(fd, access) in implicit {
            // A writer waits for readers and writers, a reader for writers.
            let fence = match sync::export_sync_file(fd, access) {
                Ok(fence) => fence,
                Err(sync::SyncError::Unsupported { .. }) => continue,
                Err(e) => return Err(VulkanError::Sync(e)),
            };
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
        signal = semaphores.create(true)?;
    }
    let wait_stages = vec![vk::PipelineStageFlags::ALL_COMMANDS; waits.len()];
    let signals: Vec<vk::Semaphore> = if bridge.is_some() { vec![signal] } else { Vec::new() };
    submit_inner(ctx, &waits, &wait_stages, &signals, record, || {
        let Some(loader) = bridge else { return Ok(()) };
        let info = vk::SemaphoreGetFdInfoKHR::default()
            .semaphore(signal)
            .handle_type(vk::ExternalSemaphoreHandleTypeFlags::SYNC_FD);
        // SAFETY: the semaphore was created exportable as SYNC_FD and its
        // signal operation has been submitted, as SYNC_FD export requires.
        let raw = unsafe { loader.get_semaphore_fd(&info) }.map_err(call("vkGetSemaphoreFdKHR"))?;
        // -1 means already signalled: nothing to attach.
        if raw < 0 {
            return Ok(());
        }
        // SAFETY: vkGetSemaphoreFdKHR transferred ownership of `raw` to us.
        let sync_file = unsafe { OwnedFd::from_raw_fd(raw) };
        for &(fd, access) in implicit {
            match sync::import_sync_file(fd, sync_file.as_fd(), access) {
                Ok(()) | Err(sync::SyncError::Unsupported { .. }) => {}
                Err(e) => return Err(VulkanError::Sync(e)),
            }
        }
        Ok(())
    })
}

/// Semaphores of one submission, destroyed after it completes.
struct SemaphoreGuard<'a> {
    ctx: &'a VulkanContext,
    list: Vec<vk::Semaphore>,
}

impl SemaphoreGuard<'_> {
    fn create(&mut self, exportable: bool) -> Result<vk::Semaphore, VulkanError> {
        let mut export =
            vk::ExportSemaphoreCreateInfo::default().handle_types(vk::ExternalSemaphoreHandleTypeFlags::SYNC_FD);
        let mut info = vk::SemaphoreCreateInfo::default();
        if exportable {
            info = info.push_next(&mut export);
        }
        // SAFETY: valid device; destroyed in Drop.
        let semaphore =
            unsafe { self.ctx.device().create_semaphore(&info, None) }.map_err(call("vkCreateSemaphore"))?;
        self.list.push(semaphore);
        Ok(semaphore)
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        for s in self.list.drain(..) {
            // SAFETY: ours; the submission that used it was waited for (or
            // never made).
            unsafe { self.ctx.device().destroy_semaphore(s, None) };
        }
    }
}

fn submit_inner(
    ctx: &VulkanContext,
    waits: &[vk::Semaphore],
    wait_stages: &[vk::PipelineStageFlags],
    signals: &[vk::Semaphore],
    record: impl FnOnce(vk::CommandBuffer) -> Result<(), VulkanError>,
    after_submit: impl FnOnce() -> Result<(), VulkanError>,
) -> Result<(), VulkanError> {
    let device = ctx.device();
    let pool_info = vk::CommandPoolCreateInfo::default()
        .queue_family_index(ctx.queue_family())
        .flags(vk::CommandPoolCreateFlags::TRANSIENT);
    // SAFETY: valid device; the pool is destroyed by the guard below.
    let pool = unsafe { device.create_command_pool(&pool_info, None) }.map_err(call("vkCreateCommandPool"))?;
    let guard = PoolGuard {
        ctx,
        pool,
        fence: vk::Fence::null(),
    };
    let alloc = vk::CommandBufferAllocateInfo::default()
        .command_pool(pool)
        .level(vk::CommandBufferLevel::PRIMARY)
        .command_buffer_count(1);
    // SAFETY: the pool is valid; the buffer is freed with the pool.
    let cb = unsafe { device.allocate_command_buffers(&alloc) }.map_err(call("vkAllocateCommandBuffers"))?[0];
    let begin = vk::CommandBufferBeginInfo::default().flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
    // SAFETY: a fresh command buffer from our pool.
    unsafe { device.begin_command_buffer(cb, &begin) }.map_err(call("vkBeginCommandBuffer"))?;
    record(cb)?;
    // SAFETY: recording began above.
    unsafe { device.end_command_buffer(cb) }.map_err(call("vkEndCommandBuffer"))?;
    let mut guard = guard;
    // SAFETY: valid device; destroyed by the guard.
    guard.fence =
        unsafe { device.create_fence(&vk::FenceCreateInfo::default(), None) }.map_err(call("vkCreateFence"))?;
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
    let attached = after_submit();
    // SAFETY: the fence was submitted above.
    unsafe { device.wait_for_fences(&[guard.fence], true, u64::MAX) }.map_err(call("vkWaitForFences"))?;
    // The queue has moved on: destructions waiting for it may be ready.
    ctx.collect_retired();
    attached
}

struct PoolGuard<'a> {
    ctx: &'a VulkanContext,
    pool: vk::CommandPool,
    fence: vk::Fence,
}

impl Drop for PoolGuard<'_> {
    fn drop(&mut self) {
        let device = self.ctx.device();
        // SAFETY: if the fence was submitted we waited on it (or the submit
        // failed, so nothing is pending); both handles are ours.
        unsafe {
            if self.fence != vk::Fence::null() {
                let _ = device.wait_for_fences(&[self.fence], true, u64::MAX);
                device.destroy_fence(self.fence, None);
            }
            device.destroy_command_pool(self.pool, None);
        }
    }
}

/// A host-visible, coherent buffer (staging for uploads and read-backs).
pub(crate) struct HostBuffer<'a> {
    ctx: &'a VulkanContext,
    pub buffer: vk::Buffer,
    memory: vk::DeviceMemory,
    size: u64,
}

impl<'a> HostBuffer<'a> {
    pub fn new(ctx: &'a VulkanContext, size: u64, usage: vk::BufferUsageFlags) -> Result<Self, VulkanError> {
        let device = ctx.device();
        let info = vk::BufferCreateInfo::default()
            .size(size.max(1))
            .usage(usage)
            .sharing_mode(vk::SharingMode::EXCLUSIVE);
        let mut this = Self {
            ctx,
            buffer: vk::Buffer::null(),
            memory: vk::DeviceMemory::null(),
            size,
        };
        // SAFETY: valid device; destroyed in Drop.
        this.buffer = unsafe { device.create_buffer(&info, None) }.map_err(call("vkCreateBuffer"))?;
        // SAFETY: the buffer was just created.
        let req = unsafe { device.get_buffer_memory_requirements(this.buffer) };
        // SAFETY: plain query.
        let props = unsafe {
            ctx.instance()
                .get_physical_device_memory_properties(ctx.physical_device())
        };
        let wanted = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
        let type_index = (0..props.memory_type_count)
            .find(|&i| {
                req.memory_type_bits & (1 << i) != 0 && props.memory_types[i as usize].property_flags.contains(wanted)
            })
            .ok_or(VulkanError::NoMemoryType {
                fd_types: 0,
                image_types: req.memory_type_bits,
            })?;
        let alloc = vk::MemoryAllocateInfo::default()
            .allocation_size(req.size)
            .memory_type_index(type_index);
        // SAFETY: valid allocation info; freed in Drop.
        this.memory = unsafe { device.allocate_memory(&alloc, None) }.map_err(call("vkAllocateMemory"))?;
        // SAFETY: buffer and memory are fresh and compatible.
        unsafe { device.bind_buffer_memory(this.buffer, this.memory, 0) }.map_err(call("vkBindBufferMemory"))?;
        Ok(this)
    }

    /// Runs `f` on the buffer's bytes, mapped.
    pub fn with_bytes<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, VulkanError> {
        let device = self.ctx.device();
        let len = usize::try_from(self.size).map_err(|_| VulkanError::Usage("buffer larger than the address space"))?;
        // SAFETY: host-visible memory of at least `size` bytes, not mapped
        // elsewhere; unmapped before returning.
        unsafe {
            let ptr = device
                .map_memory(self.memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty())
                .map_err(call("vkMapMemory"))?;
            let result = f(std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len));
            device.unmap_memory(self.memory);
            Ok(result)
        }
    }
}

impl Drop for HostBuffer<'_> {
    fn drop(&mut self) {
        // SAFETY: our handles; no submission using them is pending (callers
        // wait on their fences before dropping).
        unsafe {
            self.ctx.device().destroy_buffer(self.buffer, None);
            self.ctx.device().free_memory(self.memory, None);
        }
    }
}
