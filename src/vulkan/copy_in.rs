//! [`CopyIn`]: a dma-buf whose layout the device will not import as an
//! image, brought in by the GPU instead: its memory imported as
//! `VkBuffer`s (a buffer has no layout to match) and copied with
//! `vkCmdCopyBufferToImage` (any row length) into an image of the device's
//! own. One GPU copy and no CPU one; [`import`](super::import) stays the
//! zero-copy way wherever the device takes the layout.
//!
//! Why: without `VK_EXT_image_drm_format_modifier` a device imports only
//! its own LINEAR layout (lavapipe pads rows to 64 bytes, so GStreamer's
//! 160-byte chroma rows of a 320-wide I420 frame are refused), and with it
//! drivers still check a LINEAR pitch against their alignment.

use std::any::Any;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use ash::vk;

use super::commands::submit_synced;
use super::context::VulkanContext;
use super::error::{VulkanError, call};
use super::export::{ExportedImage, Exporter};
use super::memory::{DMA_BUF, import_fd_memory};
use super::support::device_name;
use crate::dmabuf::DmaBuf;
use crate::format;
use crate::sync::SyncAccess;

/// An image of the device's own that frames of one format and size are
/// copied into on the GPU ([`copy`](Self::copy)); read it like an imported
/// frame (its colorimetry is the last copied frame's).
#[derive(Debug)]
pub struct CopyIn {
    image: ExportedImage,
}

impl CopyIn {
    /// A `width`x`height` `fourcc` image with `usage` (plus TRANSFER_DST)
    /// from `exporter`'s device; fails where the device cannot import
    /// dma-buf memory as a buffer.
    pub fn new(
        exporter: &Exporter,
        fourcc: drm_fourcc::DrmFourcc,
        width: u32,
        height: u32,
        usage: vk::ImageUsageFlags,
    ) -> Result<Self, VulkanError> {
        let ctx = exporter.context();
        if !buffer_importable(ctx) {
            return Err(VulkanError::Usage(
                "the device cannot import dma-buf memory as a transfer-source buffer",
            ));
        }
        let image = exporter.export(fourcc, width, height, usage | vk::ImageUsageFlags::TRANSFER_DST, &[])?;
        Ok(Self { image })
    }

    /// The image frames are copied into.
    pub fn image(&self) -> &ExportedImage {
        &self.image
    }

    /// Whether `dmabuf` can be copied into this image (same format and
    /// size).
    pub fn fits(&self, dmabuf: &DmaBuf) -> bool {
        (dmabuf.fourcc(), dmabuf.width(), dmabuf.height())
            == (self.image.fourcc(), self.image.width(), self.image.height())
    }

    /// Copies `dmabuf` (same format and size: [`fits`](Self::fits)) into
    /// the image on the GPU, waiting for its producer's implicit write
    /// fence, and returns once the copy is done: `dmabuf` may go back to
    /// its producer then. The image takes its colorimetry.
    pub fn copy(&mut self, dmabuf: &DmaBuf) -> Result<&ExportedImage, VulkanError> {
        if !self.fits(dmabuf) {
            return Err(VulkanError::Usage(
                "copy: the frame's format or size differs from the image's",
            ));
        }
        let ctx = Arc::clone(self.image.context());
        let info = format::info(dmabuf.fourcc())?;
        // A buffer over each plane's file, and the plane's region in it:
        // the row length in texels of the plane's format.
        let mut buffers = Buffers {
            ctx: Arc::clone(&ctx),
            list: Vec::new(),
        };
        let mut regions = self.image.copy_regions(&[0; 4]);
        for (i, (plane, region)) in dmabuf.planes().iter().zip(regions.iter_mut()).enumerate() {
            let samples = info.planes[i].samples(dmabuf.width()).max(1);
            let row = info.planes[i]
                .min_row_bytes(dmabuf.width())
                .ok_or(VulkanError::Usage("copy: a plane row larger than u32"))?;
            let texel = row / samples;
            if texel == 0 || plane.stride() % texel != 0 || u64::from(plane.offset()) % u64::from(texel.max(4)) != 0 {
                return Err(VulkanError::LayoutMismatch {
                    plane: i,
                    field: "stride or offset for a buffer copy",
                    given: u64::from(plane.stride()),
                    needed: u64::from(texel),
                    fourcc: dmabuf.fourcc(),
                    width: dmabuf.width(),
                    height: dmabuf.height(),
                    device: device_name(&ctx),
                });
            }
            buffers.import(i, plane.fd(), plane.fd_size())?;
            *region = region
                .buffer_offset(u64::from(plane.offset()))
                .buffer_row_length(plane.stride() / texel);
        }
        let mut implicit: Vec<(BorrowedFd<'_>, SyncAccess)> = dmabuf
            .distinct_files()
            .into_iter()
            .map(|i| (dmabuf.planes()[i].fd(), SyncAccess::Read))
            .collect();
        implicit.extend(self.image.implicit_sync(SyncAccess::Write));
        let image: &super::VulkanImage = &self.image;
        let handles: Vec<vk::Buffer> = buffers.list.iter().map(|(b, _)| *b).collect();
        // The image may outlive its owner while the copy runs
        // (VUID-vkDestroyImage-image-01000).
        image.mark_handed_out();
        let stage = vk::PipelineStageFlags::TRANSFER;
        let keep: Vec<Box<dyn Any + Send>> = vec![Box::new(buffers)];
        let submission = submit_synced(&ctx, &implicit, &[], keep, |cb| {
            image.record_acquire(
                cb,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                stage,
                vk::AccessFlags::TRANSFER_WRITE,
            );
            for (buffer, region) in handles.iter().zip(&regions) {
                // SAFETY: recording; the image is in TRANSFER_DST_OPTIMAL,
                // each buffer covers its plane's file (checked sizes).
                unsafe {
                    ctx.device().cmd_copy_buffer_to_image(
                        cb,
                        *buffer,
                        image.image(),
                        vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                        std::slice::from_ref(region),
                    )
                };
            }
            image.record_release(
                cb,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                stage,
                vk::AccessFlags::TRANSFER_WRITE,
            );
            Ok(())
        })?;
        image.acquire_submitted();
        submission.wait()?;
        self.image.set_colorimetry(dmabuf.colorimetry());
        Ok(&self.image)
    }
}

/// Whether `ctx`'s device imports dma-buf memory into TRANSFER_SRC buffers.
fn buffer_importable(ctx: &VulkanContext) -> bool {
    let info = vk::PhysicalDeviceExternalBufferInfo::default()
        .usage(vk::BufferUsageFlags::TRANSFER_SRC)
        .handle_type(DMA_BUF);
    let mut props = vk::ExternalBufferProperties::default();
    // SAFETY: plain query on our physical device.
    unsafe {
        ctx.instance()
            .get_physical_device_external_buffer_properties(ctx.physical_device(), &info, &mut props)
    };
    props
        .external_memory_properties
        .external_memory_features
        .contains(vk::ExternalMemoryFeatureFlags::IMPORTABLE)
}

/// The buffers of one copy, each over its own import of a plane's file;
/// destroyed when the copy's submission lets go of them (after its fence).
struct Buffers {
    ctx: Arc<VulkanContext>,
    list: Vec<(vk::Buffer, vk::DeviceMemory)>,
}

impl Buffers {
    /// Imports the `size`-byte dma-buf `fd` (of plane `plane`) as a
    /// TRANSFER_SRC buffer over the whole file.
    fn import(&mut self, plane: usize, fd: BorrowedFd<'_>, size: u64) -> Result<(), VulkanError> {
        let device = self.ctx.device();
        let mut external = vk::ExternalMemoryBufferCreateInfo::default().handle_types(DMA_BUF);
        let info = vk::BufferCreateInfo::default()
            .size(size.max(1))
            .usage(vk::BufferUsageFlags::TRANSFER_SRC)
            .sharing_mode(vk::SharingMode::EXCLUSIVE)
            .push_next(&mut external);
        // SAFETY: valid create info; destroyed in Drop.
        let buffer = unsafe { device.create_buffer(&info, None) }.map_err(call("vkCreateBuffer (dma-buf)"))?;
        self.list.push((buffer, vk::DeviceMemory::null()));
        // SAFETY: the buffer was just created.
        let req = unsafe { device.get_buffer_memory_requirements(buffer) };
        if req.size > size {
            return Err(VulkanError::FdTooSmall {
                plane,
                needed: req.size,
                fd_size: size,
            });
        }
        let memory = import_fd_memory(&self.ctx, plane, fd, size, req.memory_type_bits, None)?;
        if let Some(last) = self.list.last_mut() {
            last.1 = memory;
        }
        // SAFETY: fresh buffer and memory, the memory covers the buffer.
        unsafe { device.bind_buffer_memory(buffer, memory, 0) }.map_err(call("vkBindBufferMemory (dma-buf)"))
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        for (buffer, memory) in self.list.drain(..) {
            // Dropped only after the copy using them (a submission's kept
            // values: after its fence, or in its deferred destruction) or
            // never submitted; null handles are ignored.
            // SAFETY: our handles, which the GPU no longer uses (above).
            unsafe {
                self.ctx.device().destroy_buffer(buffer, None);
                self.ctx.device().free_memory(memory, None);
            }
        }
    }
}
