//! The kernels' graphics path: the composite and the RGB pattern written
//! as a colour attachment, where the compute kernels write storage images
//! (pipelines and render passes: the `raster` module).
//!
//! Why: GPUs keep COLOR_ATTACHMENT on their compressed modifiers and drop
//! STORAGE from most of them (Mesa's anv from every CCS modifier, radv from
//! most DCC ones), so only this path lets exports be compressed. It is also
//! cheaper on a CPU device: the video goes in by `vkCmdCopyImage` where the
//! formats match (a memcpy on lavapipe, [`VideoPass`]), the overlay as two
//! small quads, the pattern's bars and box as clears; only the pixels that
//! need a shader run one.

use std::os::fd::BorrowedFd;

use ash::vk;
use drm_fourcc::DrmFourcc;

use super::commands::{Submission, submit_synced};
use super::context::VulkanContext;
use super::error::VulkanError;
use super::image::{VulkanImage, record_barriers};
use super::kernels::{Kernels, YuvPlanes, yuv_constants};
use super::raster::{Draw, Framebuffer, Pass, push_constants};
use crate::reference::overlay::Overlay;
use crate::sync::SyncAccess;

/// How the graphics composite puts the video into the output image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VideoPass {
    /// A copy where [`Copy`](Self::Copy) can, on CPU devices (lavapipe: a
    /// copy is a memcpy, a draw shades every pixel); a draw on GPUs, whose
    /// draws into compressed images cost no more than a copy.
    #[default]
    Auto,
    /// Always a draw (a fullscreen triangle sampling the video).
    Draw,
    /// `vkCmdCopyImage` where the output is XRGB8888 (its padding byte
    /// ignored) and the video has its `VkFormat` (XRGB8888, ARGB8888) with
    /// TRANSFER_SRC usage, the output TRANSFER_DST, both LINEAR-tiled;
    /// else a draw.
    Copy,
}

/// The pattern's colour bars (`pattern_common.wgsl`'s `bar_colour`).
const BARS: [[f32; 3]; 8] = [
    [1.0, 1.0, 1.0],
    [1.0, 1.0, 0.0],
    [0.0, 1.0, 1.0],
    [0.0, 1.0, 0.0],
    [1.0, 0.0, 1.0],
    [1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0],
    [0.0, 0.0, 0.0],
];

impl Kernels {
    /// Whether the graphics path takes `image` as its output: a 32-bit RGB
    /// image with COLOR_ATTACHMENT usage (and so a colour-attachment view).
    pub(super) fn draws_into(&self, image: &VulkanImage) -> bool {
        image.attachment_view().is_some() && self.graphics.target(image.vk_format()).is_some()
    }

    /// Whether the composite copies `video` into `out` (see [`VideoPass`]).
    /// Only into XRGB8888: a copy keeps the video's fourth byte, which an
    /// XRGB8888 output ignores, where a draw writes it opaque (an ARGB8888
    /// output would take an XRGB8888 video's padding as alpha).
    ///
    /// And only between LINEAR-tiled images: under DRM format modifier
    /// tiling the transfer features come from the modifier's list, and in
    /// the VM stage's guest the validation layer finds none there for the
    /// images lavapipe imported and exported with TRANSFER usage
    /// (VUID-vkCmdCopyImage-srcImage-01995 / -dstImage-01996, "format
    /// features 0x0"); such images are drawn.
    fn copies(&self, video: &VulkanImage, out: &VulkanImage) -> bool {
        let possible = out.fourcc() == DrmFourcc::Xrgb8888
            && !video.modifier_tiling
            && !out.modifier_tiling
            && video.vk_format() == out.vk_format()
            && video.usage().contains(vk::ImageUsageFlags::TRANSFER_SRC)
            && out.usage().contains(vk::ImageUsageFlags::TRANSFER_DST);
        possible && self.may_copy()
    }

    /// Whether the video pass lets the composite copy at all: always for
    /// [`VideoPass::Copy`], on CPU devices for [`VideoPass::Auto`].
    pub(super) fn may_copy(&self) -> bool {
        match self.video_pass {
            VideoPass::Draw => false,
            VideoPass::Copy => true,
            VideoPass::Auto => self.ctx.info().device_type == vk::PhysicalDeviceType::CPU,
        }
    }

    /// The graphics composite (`composite_submit` with an attachment
    /// output): the video copied or drawn, then the overlay's quads
    /// (`None`: nothing over the video, `convert_submit`).
    pub(super) fn composite_graphics(
        &self,
        video: &VulkanImage,
        out: &VulkanImage,
        overlay: Option<&Overlay>,
        after: &[BorrowedFd<'_>],
    ) -> Result<Submission, VulkanError> {
        let target = self
            .graphics
            .target(out.vk_format())
            .ok_or(VulkanError::Usage("composite writes an XRGB8888/ARGB8888 image"))?;
        let out_view = out.attachment_view().ok_or(VulkanError::Usage(
            "composite needs an output with COLOR_ATTACHMENT (or STORAGE) usage",
        ))?;
        let (w, h) = (out.width(), out.height());
        let copy = self.copies(video, out);
        let yuv = YuvPlanes::of(video.fourcc());
        let video_draw = match yuv {
            Some(YuvPlanes::SemiPlanar { .. }) => Draw::VideoSemiPlanar,
            Some(YuvPlanes::Planar) => Draw::VideoPlanar,
            None => Draw::VideoRgb,
        };
        if !copy && !video.usage().contains(vk::ImageUsageFlags::SAMPLED) {
            return Err(VulkanError::Usage(
                "the video image needs SAMPLED usage (or TRANSFER_SRC for a copy)",
            ));
        }
        let yuv = yuv.map(|planes| yuv_constants(video.colorimetry(), planes));
        let head = overlay.copied().unwrap_or(Overlay {
            frame: 0,
            progress: None,
        });
        let push = push_constants(head.push_constants(w, h), yuv);
        // The video's set is made once per image and kept with it.
        let set = if copy {
            None
        } else {
            Some(self.graphics.video_set(&self.ctx, target, video_draw, video)?)
        };
        let mut implicit = video.implicit_sync(SyncAccess::Read);
        implicit.extend(out.implicit_sync(SyncAccess::Write));
        let (video_layout, video_stage, video_access) = if copy {
            (
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                vk::PipelineStageFlags::TRANSFER,
                vk::AccessFlags::TRANSFER_READ,
            )
        } else {
            (
                vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
                vk::PipelineStageFlags::FRAGMENT_SHADER,
                vk::AccessFlags::SHADER_READ,
            )
        };
        let attachment_stage = vk::PipelineStageFlags::COLOR_ATTACHMENT_OUTPUT;
        let attachment_rw = vk::AccessFlags::COLOR_ATTACHMENT_READ | vk::AccessFlags::COLOR_ATTACHMENT_WRITE;
        let (out_layout, out_stage, out_access) = if copy {
            (
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                vk::PipelineStageFlags::TRANSFER,
                vk::AccessFlags::TRANSFER_WRITE,
            )
        } else {
            (
                vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
                attachment_stage,
                attachment_rw,
            )
        };
        // The submission owns the framebuffer from the submit on, also when
        // an error follows the submit.
        let framebuffer = Framebuffer::new(&self.ctx, target, copy, out_view, (w, h))?;
        let fb = framebuffer.bound();
        // The work may outlive the images' owners, also when an error
        // comes after the submit (VUID-vkDestroyImage-image-01000).
        video.mark_handed_out();
        out.mark_handed_out();
        let submission = submit_synced(&self.ctx, &implicit, after, vec![Box::new(framebuffer)], |cb| {
            // One barrier takes both images in, one gives them back.
            record_barriers(
                &self.ctx,
                cb,
                vk::PipelineStageFlags::TOP_OF_PIPE,
                video_stage | out_stage,
                &[
                    video.acquire_barrier(video_layout, video_access),
                    out.acquire_barrier(out_layout, out_access),
                ],
            );
            if copy {
                record_copy(&self.ctx, cb, video, out);
                // The copy's writes before the overlay's (same queue family,
                // no ownership change).
                let barrier = vk::ImageMemoryBarrier::default()
                    .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                    .dst_access_mask(attachment_rw)
                    .old_layout(vk::ImageLayout::TRANSFER_DST_OPTIMAL)
                    .new_layout(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)
                    .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                    .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                    .image(out.image())
                    .subresource_range(colour_range());
                record_barriers(
                    &self.ctx,
                    cb,
                    vk::PipelineStageFlags::TRANSFER,
                    attachment_stage,
                    &[barrier],
                );
            }
            let pass = Pass::begin(&self.ctx, cb, target, fb);
            if !copy {
                pass.draw(video_draw, set, &push, (3, 1))?;
            }
            if overlay.is_some() {
                pass.draw(Draw::Overlay, None, &push, (6, 2))?;
            }
            pass.end();
            record_barriers(
                &self.ctx,
                cb,
                video_stage | attachment_stage,
                vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                &[
                    video.release_barrier(video_layout, vk::AccessFlags::empty()),
                    out.release_barrier(
                        vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
                        vk::AccessFlags::COLOR_ATTACHMENT_WRITE,
                    ),
                ],
            );
            Ok(())
        })?;
        video.acquire_submitted();
        out.acquire_submitted();
        Ok(submission)
    }

    /// The graphics pattern (`update_pattern_submit` into an attachment):
    /// the bars as clears, the ramp as one quad, the box as a clear over
    /// them, in `pattern_common.wgsl`'s order (the box wins, then the ramp).
    /// With `from`, the image holds that frame: only the old box's place is
    /// drawn again (bars and ramp clipped to it), then the new box; the
    /// rest is loaded, not drawn. An image never acquired holds nothing yet
    /// and is drawn whole.
    pub(super) fn pattern_graphics(
        &self,
        image: &VulkanImage,
        from: Option<u32>,
        frame: u32,
    ) -> Result<Submission, VulkanError> {
        let target = self
            .graphics
            .target(image.vk_format())
            .ok_or(VulkanError::UnsupportedFormat { fourcc: image.fourcc() })?;
        let view = image.attachment_view().ok_or(VulkanError::Usage(
            "draw_pattern needs COLOR_ATTACHMENT (or STORAGE) usage",
        ))?;
        let (w, h) = (image.width(), image.height());
        let mut head = [0u8; 16];
        for (chunk, v) in head.chunks_exact_mut(4).zip([w, h, frame, 0]) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        let push = push_constants(head, None);
        let stage = vk::PipelineStageFlags::COLOR_ATTACHMENT_OUTPUT;
        // Loading what the image holds needs it acquired before (else its
        // contents are undefined) and the attachment read as well.
        let from = from.filter(|_| image.next_acquire_from() != vk::ImageLayout::UNDEFINED);
        let access = match from {
            Some(_) => vk::AccessFlags::COLOR_ATTACHMENT_READ | vk::AccessFlags::COLOR_ATTACHMENT_WRITE,
            None => vk::AccessFlags::COLOR_ATTACHMENT_WRITE,
        };
        let framebuffer = Framebuffer::new(&self.ctx, target, from.is_some(), view, (w, h))?;
        let fb = framebuffer.bound();
        image.mark_handed_out();
        let submission = submit_synced(
            &self.ctx,
            &image.implicit_sync(SyncAccess::Write),
            &[],
            vec![Box::new(framebuffer)],
            |cb| {
                image.record_acquire(cb, vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL, stage, access);
                let pass = Pass::begin(&self.ctx, cb, target, fb);
                // What to draw of the background: all of it, or the old box.
                let region = match from {
                    Some(old) => box_rect(w, h, old),
                    None => (0, 0, w, h),
                };
                pass.scissor(region);
                // Bars: x in [ceil(b w / 8), ceil((b + 1) w / 8)) has x * 8 / w == b.
                let ramp_top = if h >= 4 { h - h / 4 } else { h };
                let edge = |b: u64| (b * u64::from(w)).div_ceil(8) as u32;
                for (b, rgb) in BARS.iter().enumerate() {
                    let (x0, x1) = (edge(b as u64), edge(b as u64 + 1));
                    let bar = intersect((x0, 0, x1 - x0, ramp_top), region);
                    pass.clear([rgb[0], rgb[1], rgb[2], 1.0], &[bar]);
                }
                if ramp_top < h && intersect((0, ramp_top, w, h - ramp_top), region).2 > 0 {
                    pass.draw(Draw::Ramp, None, &push, (6, 1))?;
                }
                pass.clear([1.0, 128.0 / 255.0, 0.0, 1.0], &[box_rect(w, h, frame)]);
                pass.end();
                image.record_release(
                    cb,
                    vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
                    stage,
                    vk::AccessFlags::COLOR_ATTACHMENT_WRITE,
                );
                Ok(())
            },
        )?;
        image.acquire_submitted();
        Ok(submission)
    }
}

/// The pattern's box in frame `frame` as (x, y, width, height), with the
/// shader's u32 arithmetic (`pattern_common.wgsl`).
fn box_rect(w: u32, h: u32, frame: u32) -> (u32, u32, u32, u32) {
    let (box_w, box_h) = ((w / 8).max(1), (h / 8).max(1));
    let box_x = frame.wrapping_mul(4) % (w - box_w + 1);
    let box_y = frame.wrapping_mul(2) % (h - box_h + 1);
    (box_x, box_y, box_w, box_h)
}

/// The intersection of two (x, y, width, height) rectangles (zero-sized
/// when they do not meet).
fn intersect(a: (u32, u32, u32, u32), b: (u32, u32, u32, u32)) -> (u32, u32, u32, u32) {
    let (x0, y0) = (a.0.max(b.0), a.1.max(b.1));
    let x1 = (a.0 + a.2).min(b.0 + b.2);
    let y1 = (a.1 + a.3).min(b.1 + b.3);
    (x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0))
}

fn colour_range() -> vk::ImageSubresourceRange {
    vk::ImageSubresourceRange::default()
        .aspect_mask(vk::ImageAspectFlags::COLOR)
        .level_count(1)
        .layer_count(1)
}

/// Records a copy of the whole of `src` (TRANSFER_SRC_OPTIMAL) into `dst`
/// (TRANSFER_DST_OPTIMAL), same format and size.
fn record_copy(ctx: &VulkanContext, cb: vk::CommandBuffer, src: &VulkanImage, dst: &VulkanImage) {
    let layers = vk::ImageSubresourceLayers::default()
        .aspect_mask(vk::ImageAspectFlags::COLOR)
        .layer_count(1);
    let region = vk::ImageCopy::default()
        .src_subresource(layers)
        .dst_subresource(layers)
        .extent(vk::Extent3D {
            width: dst.width(),
            height: dst.height(),
            depth: 1,
        });
    // Both images are in the named layouts by the barriers recorded before,
    // with the usages and format features checked at import/export and the
    // same format and size (`copies`, `composite_submit`).
    // SAFETY: recording, outside a render pass; the layouts, usages, formats and sizes above.
    unsafe {
        ctx.device().cmd_copy_image(
            cb,
            src.image(),
            vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
            dst.image(),
            vk::ImageLayout::TRANSFER_DST_OPTIMAL,
            &[region],
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::{Allocator, MemfdAllocator};

    /// The video's descriptor set is made at its first draw and kept on the
    /// image: more frames of the same import make none, another `Kernels`
    /// gets its own, and a copy needs none. Validation clean.
    #[test]
    fn a_video_image_keeps_one_descriptor_set_per_pipeline() {
        let ctx = crate::vulkan::context::test_context();
        let (w, h) = (64, 32);
        let mut kernels = Kernels::new(&ctx).unwrap();
        kernels.set_video_pass(VideoPass::Draw);
        let exporter = crate::vulkan::Exporter::with_allocator(&ctx, Box::new(MemfdAllocator::new()));
        let out = exporter
            .export(
                DrmFourcc::Xrgb8888,
                w,
                h,
                kernels.composite_output_usage() | vk::ImageUsageFlags::TRANSFER_DST,
                &[],
            )
            .unwrap();
        let usage = vk::ImageUsageFlags::SAMPLED | vk::ImageUsageFlags::TRANSFER_SRC;
        let layout = crate::vulkan::linear_layout(&ctx, DrmFourcc::Xrgb8888, w, h, usage).unwrap();
        let frame = MemfdAllocator::new()
            .allocate_layout(DrmFourcc::Xrgb8888, w, h, &layout)
            .unwrap();
        let video = crate::vulkan::import(&ctx, &frame, usage).unwrap();
        let overlay = Overlay {
            frame: 1,
            progress: None,
        };
        for _ in 0..3 {
            kernels.composite(&video, &out, &overlay).unwrap();
        }
        assert_eq!(video.sampled_set_count(), 1);
        let mut other = Kernels::new(&ctx).unwrap();
        other.set_video_pass(VideoPass::Draw);
        let mut copying = Kernels::new(&ctx).unwrap();
        copying.set_video_pass(VideoPass::Copy);
        other.composite(&video, &out, &overlay).unwrap();
        copying.composite(&video, &out, &overlay).unwrap();
        assert_eq!(
            video.sampled_set_count(),
            2,
            "one more for the other kernels, none for a copy"
        );
        let messages = ctx.validation_messages();
        assert!(messages.is_empty(), "{}", messages.join("\n"));
    }
}
