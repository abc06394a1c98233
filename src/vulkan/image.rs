//! [`VulkanImage`]: a `VkImage` bound to dma-buf memory; its handles, accessors,
//! per-plane views and the foreign-queue ownership transfers (acquire/release).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ash::vk;
use drm_fourcc::DrmFourcc;

use super::context::VulkanContext;
use super::error::{VulkanError, call};
use super::format::{VkFormatInfo, plane_aspect, storage_view_format};
use crate::colour::Colorimetry;
use crate::sync::SyncAccess;

/// A `VkImage` bound to dma-buf memory, imported or exported.
///
/// Owns the image, its memory and its per-plane views; holds the context
/// alive. The fds belong to the [`DmaBuf`](crate::DmaBuf) (Vulkan owns its own dups of
/// them inside the memory objects).
pub struct VulkanImage {
    pub(super) ctx: Arc<VulkanContext>,
    pub(super) image: vk::Image,
    pub(super) memory: Vec<vk::DeviceMemory>,
    /// Sampled views, one per plane (with SAMPLED usage).
    views: Vec<vk::ImageView>,
    /// Storage views, one per plane (with STORAGE usage).
    storage_views: Vec<vk::ImageView>,
    /// The colour-attachment view (COLOR_ATTACHMENT usage, one-plane
    /// formats).
    attachment_view: Option<vk::ImageView>,
    pub(super) format: &'static VkFormatInfo,
    /// DRM_FORMAT_MODIFIER_EXT tiling (else LINEAR): decides the aspects
    /// that name memory planes.
    pub(super) modifier_tiling: bool,
    pub(super) usage: vk::ImageUsageFlags,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) disjoint: bool,
    acquired_before: AtomicBool,
    /// Descriptor sets binding the sampled views, made once per graphics
    /// pipeline that reads the image (key: `raster`'s pipeline identity),
    /// each in a pool of its own; destroyed with the image.
    sampled_sets: Mutex<Vec<(u64, vk::DescriptorPool, vk::DescriptorSet)>>,
    /// Recorded into a submission (a caller's, through the public `cmd_*`,
    /// or the kernels'), or bound in a cached descriptor set: the
    /// destruction then waits for the queue (see the `retire` module).
    handed_out: AtomicBool,
    /// Dups of the distinct files of a kernel dma-buf, for implicit sync
    /// (empty for memfds, which have no fences).
    pub(super) implicit_fds: Vec<OwnedFd>,
    /// What YUV samples mean: the imported `DmaBuf`'s, else GStreamer's
    /// default for the size.
    pub(super) colorimetry: Colorimetry,
}

impl std::fmt::Debug for VulkanImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VulkanImage")
            .field("image", &self.image)
            .field("format", &self.format.format)
            .field("usage", &self.usage)
            .field("size", &(self.width, self.height))
            .field("disjoint", &self.disjoint)
            .finish()
    }
}

impl Drop for VulkanImage {
    fn drop(&mut self) {
        let views: Vec<vk::ImageView> = self
            .views
            .drain(..)
            .chain(self.storage_views.drain(..))
            .chain(self.attachment_view.take())
            .collect();
        let image = self.image;
        let memory = std::mem::take(&mut self.memory);
        let set_pools: Vec<vk::DescriptorPool> =
            std::mem::take(&mut *self.sampled_sets.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .map(|(_, pool, _)| pool)
                .collect();
        let destroy = move |device: &ash::Device| {
            // No submission uses them any more: an image recorded into
            // any submission (a caller's `cmd_acquire`/`cmd_release`, the
            // kernels', a cached descriptor set) is handed out, and its
            // destruction waits for the queue (`retire`).
            // SAFETY: our handles (or null, which destroy/free accept), idle.
            unsafe {
                for pool in set_pools {
                    device.destroy_descriptor_pool(pool, None);
                }
                for view in views {
                    device.destroy_image_view(view, None);
                }
                device.destroy_image(image, None);
                for memory in memory {
                    device.free_memory(memory, None);
                }
            }
        };
        if self.handed_out.load(Ordering::Acquire) {
            self.ctx.retire(Box::new(destroy));
        } else {
            destroy(self.ctx.device());
        }
    }
}

impl VulkanImage {
    pub(super) fn empty(
        ctx: &Arc<VulkanContext>,
        format: &'static VkFormatInfo,
        usage: vk::ImageUsageFlags,
        width: u32,
        height: u32,
    ) -> Self {
        Self {
            ctx: Arc::clone(ctx),
            image: vk::Image::null(),
            memory: Vec::new(),
            views: Vec::new(),
            storage_views: Vec::new(),
            attachment_view: None,
            format,
            modifier_tiling: false,
            usage,
            width,
            height,
            disjoint: false,
            acquired_before: AtomicBool::new(false),
            handed_out: AtomicBool::new(false),
            sampled_sets: Mutex::new(Vec::new()),
            implicit_fds: Vec::new(),
            colorimetry: Colorimetry::default_for_size(width, height),
        }
    }

    /// What the image's YUV samples mean (from the imported `DmaBuf`; the
    /// kernels and [`YcbcrSampler`](super::YcbcrSampler) convert with it).
    pub fn colorimetry(&self) -> Colorimetry {
        self.colorimetry
    }

    /// The image handle.
    pub fn image(&self) -> vk::Image {
        self.image
    }

    /// The image's format.
    pub fn vk_format(&self) -> vk::Format {
        self.format.format
    }

    /// Usage the image was created with.
    pub fn usage(&self) -> vk::ImageUsageFlags {
        self.usage
    }

    /// Per-plane views for sampling, identity swizzle (R8/R8G8 for NV12's
    /// planes, the format itself for RGB). Empty without SAMPLED usage, and
    /// for packed 4:2:2 formats (their views need a YCbCr conversion).
    pub fn plane_views(&self) -> &[vk::ImageView] {
        &self.views
    }

    /// Per-plane views for storage writes (with STORAGE usage; else empty).
    /// Their formats are declared in the kernels' shaders: R8/R8G8 for
    /// NV12's planes, R8G8B8A8 for both 32-bit RGB orders (a B8G8R8A8 image
    /// is written through an R8G8B8A8 view, the shader swizzles; see
    /// `format::storage_view_format`).
    pub fn storage_views(&self) -> &[vk::ImageView] {
        &self.storage_views
    }

    /// The view to render into (with COLOR_ATTACHMENT usage, for one-plane
    /// formats: the image's own format; else `None`).
    pub fn attachment_view(&self) -> Option<vk::ImageView> {
        self.attachment_view
    }

    /// Width in pixels of the frame (the `VkImage` itself may be one
    /// column/row larger for odd-sized YUV; see the module docs).
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels of the frame.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The frame's fourcc.
    pub fn fourcc(&self) -> DrmFourcc {
        self.format.fourcc
    }

    /// Whether planes are bound to separate memory objects.
    pub fn is_disjoint(&self) -> bool {
        self.disjoint
    }

    /// The context the image belongs to.
    pub fn context(&self) -> &Arc<VulkanContext> {
        &self.ctx
    }

    /// The kernel dma-buf fds to synchronise implicitly with, for `access`.
    pub(crate) fn implicit_sync(&self, access: SyncAccess) -> Vec<(BorrowedFd<'_>, SyncAccess)> {
        self.implicit_fds.iter().map(|fd| (fd.as_fd(), access)).collect()
    }

    fn whole_color_range() -> vk::ImageSubresourceRange {
        vk::ImageSubresourceRange::default()
            .aspect_mask(vk::ImageAspectFlags::COLOR)
            .level_count(1)
            .layer_count(1)
    }

    /// Records the acquire half of the ownership transfer from
    /// `VK_QUEUE_FAMILY_FOREIGN_EXT` (the other users of the dma-buf) to this
    /// context's queue family, moving the image to `new_layout`.
    ///
    /// The first acquire of an image starts from `UNDEFINED` (its only valid
    /// layout right after creation with external memory,
    /// VUID-VkImageCreateInfo-pNext-01443), later ones from `GENERAL`, the
    /// layout [`cmd_release`](Self::cmd_release) leaves it in. For an
    /// imported dma-buf that first transition does not discard what the
    /// producer wrote: the specification's "External Resource Sharing"
    /// section makes the layout of the first acquire from an external or
    /// foreign queue family the image's true initial layout, the `UNDEFINED`
    /// given at creation being a placeholder. The import tests check every
    /// pixel of the first frame read through a fresh import.
    ///
    /// # Safety
    ///
    /// `cb` is a command buffer of this image's device in the recording
    /// state, and it is submitted to the context's queue
    /// ([`VulkanContext::lock_queue`]) before this image is dropped or
    /// acquired again (the image's layout bookkeeping counts this acquire
    /// as done: a command buffer never submitted would leave the next
    /// acquire starting from the wrong layout). Dropping
    /// the image after that submission is safe: its destruction waits until
    /// the queue has finished it.
    pub unsafe fn cmd_acquire(
        &self,
        cb: vk::CommandBuffer,
        new_layout: vk::ImageLayout,
        dst_stage: vk::PipelineStageFlags,
        dst_access: vk::AccessFlags,
    ) {
        self.handed_out.store(true, Ordering::Release);
        self.record_acquire(cb, new_layout, dst_stage, dst_access);
        // The caller submits it (the contract above).
        self.acquire_submitted();
    }

    /// Makes the image's destruction wait for the queue (it is used in a
    /// caller's command buffers, or in a crate submission its owner need
    /// not outlive).
    pub(super) fn mark_handed_out(&self) {
        self.handed_out.store(true, Ordering::Release);
    }

    /// The descriptor set of `key` binding this image's sampled views,
    /// made by `make` (a pool of its own and the set in it) the first time
    /// and kept: sets are never updated after, so every submission that
    /// reads the image may use it at once.
    pub(super) fn sampled_set(
        &self,
        key: u64,
        make: impl FnOnce() -> Result<(vk::DescriptorPool, vk::DescriptorSet), VulkanError>,
    ) -> Result<vk::DescriptorSet, VulkanError> {
        let mut sets = self.sampled_sets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&(_, _, set)) = sets.iter().find(|(k, _, _)| *k == key) {
            return Ok(set);
        }
        let (pool, set) = make()?;
        sets.push((key, pool, set));
        // Used by a crate submission from now on: destroyed after the queue.
        self.mark_handed_out();
        Ok(set)
    }

    /// How many descriptor sets the image keeps (tests).
    #[cfg(test)]
    pub(super) fn sampled_set_count(&self) -> usize {
        self.sampled_sets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The layout the next acquire starts from: `UNDEFINED` until an
    /// acquire was submitted, then `GENERAL` (where every release leaves
    /// the image).
    pub(crate) fn next_acquire_from(&self) -> vk::ImageLayout {
        if self.acquired_before.load(Ordering::Acquire) {
            vk::ImageLayout::GENERAL
        } else {
            vk::ImageLayout::UNDEFINED
        }
    }

    /// Records that a command buffer with this image's acquire (and
    /// release) was submitted: only then has the image left its initial
    /// layout. A recording or submit that failed leaves it as it was.
    pub(crate) fn acquire_submitted(&self) {
        self.acquired_before.store(true, Ordering::Release);
    }

    /// [`cmd_acquire`](Self::cmd_acquire) for the crate's own submissions:
    /// the layout bookkeeping moves on only at
    /// [`acquire_submitted`](Self::acquire_submitted), after the submit.
    pub(crate) fn record_acquire(
        &self,
        cb: vk::CommandBuffer,
        new_layout: vk::ImageLayout,
        dst_stage: vk::PipelineStageFlags,
        dst_access: vk::AccessFlags,
    ) {
        record_barriers(
            &self.ctx,
            cb,
            vk::PipelineStageFlags::TOP_OF_PIPE,
            dst_stage,
            &[self.acquire_barrier(new_layout, dst_access)],
        );
    }

    /// The acquire half of the ownership transfer as a barrier, to record
    /// with others in one `vkCmdPipelineBarrier` ([`record_barriers`]):
    /// source stage TOP_OF_PIPE (nothing of ours to wait for).
    pub(crate) fn acquire_barrier(
        &self,
        new_layout: vk::ImageLayout,
        dst_access: vk::AccessFlags,
    ) -> vk::ImageMemoryBarrier<'static> {
        vk::ImageMemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::empty())
            .dst_access_mask(dst_access)
            .old_layout(self.next_acquire_from())
            .new_layout(new_layout)
            .src_queue_family_index(vk::QUEUE_FAMILY_FOREIGN_EXT)
            .dst_queue_family_index(self.ctx.queue_family())
            .image(self.image)
            .subresource_range(Self::whole_color_range())
    }

    /// The release half as a barrier (destination stage BOTTOM_OF_PIPE:
    /// the foreign queue's side synchronises through fences).
    pub(crate) fn release_barrier(
        &self,
        old_layout: vk::ImageLayout,
        src_access: vk::AccessFlags,
    ) -> vk::ImageMemoryBarrier<'static> {
        vk::ImageMemoryBarrier::default()
            .src_access_mask(src_access)
            .dst_access_mask(vk::AccessFlags::empty())
            .old_layout(old_layout)
            .new_layout(vk::ImageLayout::GENERAL)
            .src_queue_family_index(self.ctx.queue_family())
            .dst_queue_family_index(vk::QUEUE_FAMILY_FOREIGN_EXT)
            .image(self.image)
            .subresource_range(Self::whole_color_range())
    }

    /// Records the release half of the ownership transfer back to
    /// `VK_QUEUE_FAMILY_FOREIGN_EXT`, leaving the image in `GENERAL`, after
    /// the writes of `src_stage`/`src_access` in `old_layout`.
    ///
    /// # Safety
    ///
    /// As for [`cmd_acquire`](Self::cmd_acquire).
    pub unsafe fn cmd_release(
        &self,
        cb: vk::CommandBuffer,
        old_layout: vk::ImageLayout,
        src_stage: vk::PipelineStageFlags,
        src_access: vk::AccessFlags,
    ) {
        self.handed_out.store(true, Ordering::Release);
        self.record_release(cb, old_layout, src_stage, src_access);
    }

    /// [`cmd_release`](Self::cmd_release) for the crate's own submissions.
    pub(crate) fn record_release(
        &self,
        cb: vk::CommandBuffer,
        old_layout: vk::ImageLayout,
        src_stage: vk::PipelineStageFlags,
        src_access: vk::AccessFlags,
    ) {
        record_barriers(
            &self.ctx,
            cb,
            src_stage,
            vk::PipelineStageFlags::BOTTOM_OF_PIPE,
            &[self.release_barrier(old_layout, src_access)],
        );
    }
}

/// Records `barriers` (of images of `ctx`) in one `vkCmdPipelineBarrier`:
/// a frame's acquires, or its releases, as one barrier each.
pub(crate) fn record_barriers(
    ctx: &VulkanContext,
    cb: vk::CommandBuffer,
    src_stage: vk::PipelineStageFlags,
    dst_stage: vk::PipelineStageFlags,
    barriers: &[vk::ImageMemoryBarrier<'_>],
) {
    // SAFETY: `cb` is in the recording state, outside a render pass (the
    // callers' contract), and the barriers name images of this device.
    unsafe {
        ctx.device().cmd_pipeline_barrier(
            cb,
            src_stage,
            dst_stage,
            vk::DependencyFlags::empty(),
            &[],
            &[],
            barriers,
        )
    };
}

pub(super) fn create_views(ctx: &VulkanContext, image: &mut VulkanImage) -> Result<(), VulkanError> {
    let needs_conversion = matches!(image.fourcc(), DrmFourcc::Yuyv | DrmFourcc::Uyvy);
    if needs_conversion {
        return Ok(());
    }
    if image.usage.contains(vk::ImageUsageFlags::COLOR_ATTACHMENT) && image.format.plane_formats.len() == 1 {
        let mut view_usage = vk::ImageViewUsageCreateInfo::default().usage(vk::ImageUsageFlags::COLOR_ATTACHMENT);
        let info = vk::ImageViewCreateInfo::default()
            .image(image.image)
            .view_type(vk::ImageViewType::TYPE_2D)
            .format(image.format.format)
            .subresource_range(
                vk::ImageSubresourceRange::default()
                    .aspect_mask(vk::ImageAspectFlags::COLOR)
                    .level_count(1)
                    .layer_count(1),
            )
            .push_next(&mut view_usage);
        // SAFETY: the image is bound and has COLOR_ATTACHMENT usage; the
        // view has the image's own format.
        let view = unsafe { ctx.device().create_image_view(&info, None) }.map_err(call("vkCreateImageView"))?;
        image.attachment_view = Some(view);
    }
    for usage in [vk::ImageUsageFlags::SAMPLED, vk::ImageUsageFlags::STORAGE] {
        if !image.usage.contains(usage) {
            continue;
        }
        let storage = usage == vk::ImageUsageFlags::STORAGE;
        let multi = image.format.plane_formats.len() > 1;
        for (i, &plane_format) in image.format.plane_formats.iter().enumerate() {
            let aspect = if multi {
                plane_aspect(i)
            } else {
                vk::ImageAspectFlags::COLOR
            };
            let view_format = if storage {
                storage_view_format(plane_format)
            } else {
                plane_format
            };
            // Each view only for its own use: the image's other formats may
            // lack this usage's feature (EXTENDED_USAGE).
            let mut view_usage = vk::ImageViewUsageCreateInfo::default().usage(usage);
            let info = vk::ImageViewCreateInfo::default()
                .image(image.image)
                .view_type(vk::ImageViewType::TYPE_2D)
                .format(view_format)
                .subresource_range(
                    vk::ImageSubresourceRange::default()
                        .aspect_mask(aspect)
                        .level_count(1)
                        .layer_count(1),
                )
                .push_next(&mut view_usage);
            // SAFETY: the image is bound; the view format is in the image's
            // format list (MUTABLE_FORMAT where it differs from the image's).
            let view = unsafe { ctx.device().create_image_view(&info, None) }.map_err(call("vkCreateImageView"))?;
            if storage {
                image.storage_views.push(view);
            } else {
                image.views.push(view);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::{Allocator, MemfdAllocator};
    use crate::vulkan::commands::submit_synced;

    /// A recording that fails after its acquire barrier (as a kernel's
    /// descriptor allocation can) submits nothing: the image is still in
    /// its initial layout, and the next acquire must start from there.
    /// Before, the bookkeeping flipped at record time and the next acquire
    /// claimed GENERAL for an image never transitioned.
    #[test]
    fn a_failed_recording_leaves_the_next_acquire_from_the_initial_layout() {
        let ctx = crate::vulkan::context::test_context();
        let buf = MemfdAllocator::new().allocate(DrmFourcc::Xrgb8888, 16, 8, 64).unwrap();
        let want: Vec<u8> = (0..16 * 8 * 4).map(|i| i as u8).collect();
        buf.map(crate::mapping::MapAccess::ReadWrite)
            .unwrap()
            .write_rows(0, &want, 64)
            .unwrap();
        let image = crate::vulkan::import(&ctx, &buf, vk::ImageUsageFlags::TRANSFER_SRC).unwrap();
        let failed = submit_synced(&ctx, &[], &[], Vec::new(), |cb| {
            image.record_acquire(
                cb,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                vk::PipelineStageFlags::TRANSFER,
                vk::AccessFlags::TRANSFER_READ,
            );
            Err(VulkanError::Usage("a recording that fails after its acquire"))
        });
        assert!(matches!(failed, Err(VulkanError::Usage(_))), "{failed:?}");
        // lavapipe ignores layouts and the validation layer does not follow
        // foreign-queue acquires across submissions, so the bookkeeping
        // itself is what is checked.
        assert_eq!(image.next_acquire_from(), vk::ImageLayout::UNDEFINED);
        assert_eq!(image.download().unwrap(), vec![want]);
        assert_eq!(image.next_acquire_from(), vk::ImageLayout::GENERAL);
        let messages = ctx.validation_messages();
        assert!(messages.is_empty(), "{}", messages.join("\n"));
    }
}
