//! [`Kernels`]: the shaders of `shaders/` (compiled to SPIR-V at build time
//! by naga) as the operations callers use: the moving test pattern, NV12 ->
//! RGBA conversion, the viewer's composite (video + overlay) and the
//! sink's conversion (video only) of every format in [`VIDEO_FORMATS`]. Each picks
//! its path by the output image: a colour attachment goes the graphics way
//! (the `render` module), a storage image the compute way (`compute`).

use crate::colour::Colorimetry;
use std::sync::Arc;

use ash::vk;
use drm_fourcc::DrmFourcc;

use super::commands::{Submission, submit_synced};
use super::compute::{Kernel, descriptor_pool};
use super::context::VulkanContext;
use super::error::VulkanError;
use super::image::{VulkanImage, record_barriers};
use super::raster::Graphics;
use super::render::VideoPass;
use crate::reference::overlay::Overlay;
use crate::sync::Fence;
use crate::sync::SyncAccess;
use std::os::fd::AsFd;

const PATTERN_RGBA8: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pattern_rgba8.spv"));
const PATTERN_BGRA8: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pattern_bgra8.spv"));
const PATTERN_NV12: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pattern_nv12.spv"));
const NV12_TO_RGBA: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/nv12_to_rgba.spv"));
const COMPOSITE_RGB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/composite_rgb.spv"));
const COMPOSITE_SEMIPLANAR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/composite_semiplanar.spv"));
const COMPOSITE_PLANAR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/composite_planar.spv"));

/// Images this kernel set can draw the pattern into.
pub const PATTERN_FORMATS: [DrmFourcc; 5] = [
    DrmFourcc::Xrgb8888,
    DrmFourcc::Argb8888,
    DrmFourcc::Xbgr8888,
    DrmFourcc::Abgr8888,
    DrmFourcc::Nv12,
];

/// The video formats [`Kernels::composite`] and [`Kernels::convert_submit`]
/// read: the four 32-bit RGB orders, and YUV 4:2:0 as NV12, I420 (three
/// planes) and P010 (10 bits), the YUV ones with the frame's matrix and
/// range.
pub const VIDEO_FORMATS: [DrmFourcc; 7] = [
    DrmFourcc::Xrgb8888,
    DrmFourcc::Argb8888,
    DrmFourcc::Xbgr8888,
    DrmFourcc::Abgr8888,
    DrmFourcc::Nv12,
    DrmFourcc::Yuv420,
    DrmFourcc::P010,
];

/// How a YUV video format's planes are read: which shader reader
/// (`semiplanar_read.wgsl`, `planar_read.wgsl`) and how a normalised
/// sample becomes an 8-bit code value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum YuvPlanes {
    /// Luma and interleaved chroma (NV12; P010 with `ten_bit`).
    SemiPlanar {
        /// 10-bit samples (P010's R10X6 views).
        ten_bit: bool,
    },
    /// Luma, Cb and Cr planes (I420).
    Planar,
}

impl YuvPlanes {
    /// The reader for `fourcc`; `None` for RGB and formats the kernels do
    /// not read.
    pub(super) fn of(fourcc: DrmFourcc) -> Option<Self> {
        match fourcc {
            DrmFourcc::Nv12 => Some(Self::SemiPlanar { ten_bit: false }),
            DrmFourcc::P010 => Some(Self::SemiPlanar { ten_bit: true }),
            DrmFourcc::Yuv420 => Some(Self::Planar),
            _ => None,
        }
    }

    /// Normalised sample -> 8-bit code value: a UNORM view reads an
    /// n-bit code c as c / (2^n - 1), and a 10-bit code counts a quarter.
    fn sample_scale(self) -> f64 {
        match self {
            Self::SemiPlanar { ten_bit: true } => 1023.0 / 4.0,
            _ => 255.0,
        }
    }
}

/// Which kernel: its index in [`Kernels::kernels`] (the order of the specs
/// in [`Kernels::new`]).
#[derive(Clone, Copy)]
enum Which {
    PatternRgba8,
    PatternBgra8,
    PatternNv12,
    Nv12ToRgba,
    CompositeRgb,
    CompositeSemiPlanar,
    CompositePlanar,
}

/// The compiled kernels of one context: compute pipelines (storage
/// outputs, NV12 outputs) and graphics pipelines (colour-attachment
/// outputs, the `render` module).
pub struct Kernels {
    pub(super) ctx: Arc<VulkanContext>,
    /// One per [`Which`], in its order.
    kernels: Vec<Kernel>,
    /// Render passes and pipelines of the graphics path.
    pub(super) graphics: Graphics,
    /// How the graphics composite puts the video in.
    pub(super) video_pass: VideoPass,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernels").finish_non_exhaustive()
    }
}

/// Bytes of `yuv_common.wgsl`'s `Yuv` push constants.
pub(super) const YUV_CONSTANTS: u32 = 32;

/// `yuv_common.wgsl`'s `Yuv` for `c` read through `planes`: the inverse of
/// the encoding equations with Kr, Kb of the matrix and the range's
/// offsets (in 8-bit code values), as [`crate::convert`] does on the CPU.
pub(super) fn yuv_constants(c: Colorimetry, planes: YuvPlanes) -> [u8; YUV_CONSTANTS as usize] {
    let (kr, kb) = c.matrix.coefficients();
    let kg = 1.0 - kr - kb;
    let (y_offset, y_scale, c_scale) = c.range.offsets();
    let values = [
        y_offset,
        255.0 / y_scale,
        255.0 / c_scale,
        2.0 * (1.0 - kr),
        -2.0 * kb * (1.0 - kb) / kg,
        -2.0 * kr * (1.0 - kr) / kg,
        2.0 * (1.0 - kb),
        planes.sample_scale(),
    ];
    let mut out = [0u8; YUV_CONSTANTS as usize];
    for (chunk, v) in out.chunks_exact_mut(4).zip(values) {
        chunk.copy_from_slice(&(v as f32).to_le_bytes());
    }
    out
}

impl Kernels {
    /// Builds the compute pipelines on `ctx`.
    pub fn new(ctx: &Arc<VulkanContext>) -> Result<Self, VulkanError> {
        use vk::DescriptorType as D;
        let specs: [(Which, &[u8], &[D], u32); 7] = [
            (Which::PatternRgba8, PATTERN_RGBA8, &[D::STORAGE_IMAGE], 16),
            (Which::PatternBgra8, PATTERN_BGRA8, &[D::STORAGE_IMAGE], 16),
            (
                Which::PatternNv12,
                PATTERN_NV12,
                &[D::STORAGE_IMAGE, D::STORAGE_IMAGE],
                16,
            ),
            (
                Which::Nv12ToRgba,
                NV12_TO_RGBA,
                &[D::SAMPLED_IMAGE, D::SAMPLED_IMAGE, D::STORAGE_IMAGE],
                8 + YUV_CONSTANTS,
            ),
            (
                Which::CompositeRgb,
                COMPOSITE_RGB,
                &[D::SAMPLED_IMAGE, D::STORAGE_IMAGE],
                16,
            ),
            (
                Which::CompositeSemiPlanar,
                COMPOSITE_SEMIPLANAR,
                &[D::SAMPLED_IMAGE, D::SAMPLED_IMAGE, D::STORAGE_IMAGE],
                16 + YUV_CONSTANTS,
            ),
            (
                Which::CompositePlanar,
                COMPOSITE_PLANAR,
                &[D::SAMPLED_IMAGE, D::SAMPLED_IMAGE, D::SAMPLED_IMAGE, D::STORAGE_IMAGE],
                16 + YUV_CONSTANTS,
            ),
        ];
        let mut kernels: Vec<Kernel> = Vec::with_capacity(specs.len());
        for (which, spirv, bindings, push) in specs {
            debug_assert_eq!(which as usize, kernels.len(), "specs in the order of Which");
            match Kernel::new(ctx, spirv, bindings, push) {
                Ok(k) => kernels.push(k),
                Err(e) => {
                    kernels.iter().for_each(|k| k.destroy(ctx));
                    return Err(e);
                }
            }
        }
        let graphics = match Graphics::new(ctx) {
            Ok(g) => g,
            Err(e) => {
                kernels.iter().for_each(|k| k.destroy(ctx));
                return Err(e);
            }
        };
        Ok(Self {
            ctx: Arc::clone(ctx),
            kernels,
            graphics,
            video_pass: VideoPass::Auto,
        })
    }

    /// How the graphics composite puts the video into its output (default
    /// [`VideoPass::Auto`]); benchmarks and tests compare the two.
    pub fn set_video_pass(&mut self, pass: VideoPass) {
        self.video_pass = pass;
    }

    /// The usages a composite's output image should be created with: a
    /// colour attachment (the graphics path, which compressed modifiers
    /// keep), and TRANSFER_DST where the video may be copied in.
    pub fn composite_output_usage(&self) -> vk::ImageUsageFlags {
        vk::ImageUsageFlags::COLOR_ATTACHMENT | self.copy_usage(vk::ImageUsageFlags::TRANSFER_DST)
    }

    /// The usages video frames should be imported with for a composite:
    /// SAMPLED, and TRANSFER_SRC where the video may be copied (a CPU
    /// device, or [`VideoPass::Copy`]).
    pub fn composite_video_usage(&self) -> vk::ImageUsageFlags {
        vk::ImageUsageFlags::SAMPLED | self.copy_usage(vk::ImageUsageFlags::TRANSFER_SRC)
    }

    fn copy_usage(&self, usage: vk::ImageUsageFlags) -> vk::ImageUsageFlags {
        if self.may_copy() {
            usage
        } else {
            vk::ImageUsageFlags::empty()
        }
    }

    /// The usage an image drawn by [`draw_pattern`](Self::draw_pattern)
    /// needs: COLOR_ATTACHMENT for the RGB formats (the graphics path),
    /// STORAGE for NV12 (a compute kernel writes its planes).
    pub fn pattern_usage(fourcc: DrmFourcc) -> vk::ImageUsageFlags {
        match fourcc {
            DrmFourcc::Nv12 => vk::ImageUsageFlags::STORAGE,
            _ => vk::ImageUsageFlags::COLOR_ATTACHMENT,
        }
    }

    fn kernel(&self, which: Which) -> &Kernel {
        &self.kernels[which as usize]
    }

    /// Draws frame `frame` of the moving test pattern into `image` (one of
    /// [`PATTERN_FORMATS`], created with [`pattern_usage`](Self::pattern_usage):
    /// COLOR_ATTACHMENT for RGB, STORAGE for NV12 or as the compute path's
    /// output), transferring it from and back to the foreign queue family.
    /// Returns once the GPU is done: the dma-buf then holds the frame.
    pub fn draw_pattern(&self, image: &VulkanImage, frame: u32) -> Result<(), VulkanError> {
        self.draw_pattern_submit(image, frame)?.wait()
    }

    /// [`draw_pattern`](Self::draw_pattern) without waiting: the returned
    /// [`Submission`] says when the GPU is done. With SYNC_FD semaphores
    /// and a kernel dma-buf its completion is also attached to the dma-buf
    /// as an implicit write fence, so implicitly synchronised readers wait
    /// for it. The submission owns what it uses: `image` and the kernels
    /// may be dropped before it finishes (their destruction waits for the
    /// queue).
    pub fn draw_pattern_submit(&self, image: &VulkanImage, frame: u32) -> Result<Submission, VulkanError> {
        self.update_pattern_submit(image, None, frame)
    }

    /// [`draw_pattern_submit`](Self::draw_pattern_submit) into an image
    /// that holds frame `from` of the pattern (drawn by these kernels, at
    /// this size, and written by nothing since): only what differs, the
    /// box's old and new places, is drawn (the graphics path; the compute
    /// path and `from: None` draw everything). A source's ring knows what
    /// each of its images holds; the rest of the frame is not touched, so
    /// this is what makes a pattern frame cost its box, not its pixels.
    pub fn update_pattern_submit(
        &self,
        image: &VulkanImage,
        from: Option<u32>,
        frame: u32,
    ) -> Result<Submission, VulkanError> {
        if !PATTERN_FORMATS.contains(&image.fourcc()) {
            return Err(VulkanError::UnsupportedFormat { fourcc: image.fourcc() });
        }
        if self.draws_into(image) {
            return self.pattern_graphics(image, from, frame);
        }
        let kernel = match image.fourcc() {
            DrmFourcc::Xbgr8888 | DrmFourcc::Abgr8888 => self.kernel(Which::PatternRgba8),
            DrmFourcc::Xrgb8888 | DrmFourcc::Argb8888 => self.kernel(Which::PatternBgra8),
            DrmFourcc::Nv12 => self.kernel(Which::PatternNv12),
            other => return Err(VulkanError::UnsupportedFormat { fourcc: other }),
        };
        if !image.usage().contains(vk::ImageUsageFlags::STORAGE) {
            return Err(VulkanError::Usage(
                "draw_pattern needs an image created with COLOR_ATTACHMENT (RGB) or STORAGE usage",
            ));
        }
        let (w, h) = (image.width(), image.height());
        let push: Vec<u8> = [w, h, frame, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let pool = descriptor_pool(&self.ctx)?;
        // The work may outlive `image`'s owner, also when an error comes
        // after the submit: its destruction waits for the queue
        // (VUID-vkDestroyImage-image-01000).
        image.mark_handed_out();
        let mut submission = submit_synced(
            &self.ctx,
            &image.implicit_sync(SyncAccess::Write),
            &[],
            Vec::new(),
            |cb| {
                image.record_acquire(
                    cb,
                    vk::ImageLayout::GENERAL,
                    vk::PipelineStageFlags::COMPUTE_SHADER,
                    vk::AccessFlags::SHADER_WRITE,
                );
                kernel.record(&self.ctx, cb, pool.1, image.storage_views(), &push, (w, h))?;
                image.record_release(
                    cb,
                    vk::ImageLayout::GENERAL,
                    vk::PipelineStageFlags::COMPUTE_SHADER,
                    vk::AccessFlags::SHADER_WRITE,
                );
                Ok(())
            },
        )?;
        image.acquire_submitted();
        submission.adopt_descriptor_pool(pool.handover().1);
        Ok(submission)
    }

    /// Converts NV12 `src` (SAMPLED usage) into RGBA8 `dst` (an
    /// XBGR8888/ABGR8888 image with STORAGE usage, same size), with `src`'s
    /// matrix and range ([`VulkanImage::colorimetry`]). Returns once the GPU
    /// is done.
    pub fn nv12_to_rgba(&self, src: &VulkanImage, dst: &VulkanImage) -> Result<(), VulkanError> {
        if src.fourcc() != DrmFourcc::Nv12 || !matches!(dst.fourcc(), DrmFourcc::Xbgr8888 | DrmFourcc::Abgr8888) {
            return Err(VulkanError::Usage(
                "nv12_to_rgba converts an NV12 image into an XBGR8888/ABGR8888 one",
            ));
        }
        let mut push: Vec<u8> = [src.width(), src.height()]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        push.extend(yuv_constants(
            src.colorimetry(),
            YuvPlanes::SemiPlanar { ten_bit: false },
        ));
        self.read_write(self.kernel(Which::Nv12ToRgba), src, dst, &push, &[])?
            .wait()
    }

    /// Composites `video` (SAMPLED usage, or TRANSFER_SRC to be copied; one
    /// of [`VIDEO_FORMATS`], YUV read with its matrix and range,
    /// [`VulkanImage::colorimetry`]) and `overlay`
    /// (see [`crate::reference::overlay`]) into `out` (an XRGB8888/ARGB8888 image of
    /// the same size, e.g. an exported one: with COLOR_ATTACHMENT usage the
    /// graphics path renders it, [`composite_output_usage`](Self::composite_output_usage);
    /// with STORAGE only, the compute kernel writes it).
    /// Returns once the GPU is done: `out`'s dma-buf then holds the picture
    /// and `video` may be handed back to its producer.
    pub fn composite(&self, video: &VulkanImage, out: &VulkanImage, overlay: &Overlay) -> Result<(), VulkanError> {
        self.composite_submit(video, out, overlay, &Fence::Implicit)?.wait()
    }

    /// [`composite`](Self::composite) without waiting: the returned
    /// [`Submission`] says when the GPU is done ([`Submission::is_done`],
    /// its [`sync_file`](Submission::sync_file) where the device exports
    /// SYNC_FD semaphores: hand that to a compositor as the frame's acquire
    /// fence instead of waiting on the CPU). The submission owns what the
    /// GPU uses: `video`, `out` and the kernels may be dropped before it
    /// finishes (their Vulkan objects are destroyed once the queue is done).
    /// What the images only borrow (a GStreamer buffer behind `video`, whose
    /// producer would reuse its memory) is the caller's to keep
    /// ([`Submission::keep`]); dropping the submission waits for the GPU.
    ///
    /// `after`: a fence the work must wait for before writing `out`, e.g.
    /// the compositor's release fence of `out` (`Presenter::take_release`):
    /// waited for on the GPU where the device imports SYNC_FD semaphores,
    /// else on the CPU. [`Fence::Implicit`]: nothing beyond the dma-bufs'
    /// own fences.
    pub fn composite_submit(
        &self,
        video: &VulkanImage,
        out: &VulkanImage,
        overlay: &Overlay,
        after: &Fence,
    ) -> Result<Submission, VulkanError> {
        self.composite_inner(video, out, Some(overlay), after)
    }

    /// Converts `video` into `out` with nothing drawn over it: the colour
    /// conversion of [`composite_submit`](Self::composite_submit) (a YUV
    /// frame read with its matrix and range) without the overlay, e.g. for
    /// a compositor that cannot be told a frame's matrix. Graphics path
    /// only: `out` needs COLOR_ATTACHMENT usage
    /// ([`composite_output_usage`](Self::composite_output_usage)), else
    /// it is a [`VulkanError::Usage`] error.
    pub fn convert_submit(
        &self,
        video: &VulkanImage,
        out: &VulkanImage,
        after: &Fence,
    ) -> Result<Submission, VulkanError> {
        self.composite_inner(video, out, None, after)
    }

    fn composite_inner(
        &self,
        video: &VulkanImage,
        out: &VulkanImage,
        overlay: Option<&Overlay>,
        after: &Fence,
    ) -> Result<Submission, VulkanError> {
        let yuv = YuvPlanes::of(video.fourcc());
        let kernel = match (video.fourcc(), yuv) {
            (_, Some(YuvPlanes::SemiPlanar { .. })) => self.kernel(Which::CompositeSemiPlanar),
            (_, Some(YuvPlanes::Planar)) => self.kernel(Which::CompositePlanar),
            (DrmFourcc::Xrgb8888 | DrmFourcc::Argb8888 | DrmFourcc::Xbgr8888 | DrmFourcc::Abgr8888, None) => {
                self.kernel(Which::CompositeRgb)
            }
            (other, None) => return Err(VulkanError::UnsupportedFormat { fourcc: other }),
        };
        if !matches!(out.fourcc(), DrmFourcc::Xrgb8888 | DrmFourcc::Argb8888) {
            return Err(VulkanError::Usage("composite writes an XRGB8888/ARGB8888 image"));
        }
        let after = after.to_sync_file().map_err(VulkanError::Fence)?;
        let after: Vec<std::os::fd::BorrowedFd<'_>> = after.iter().map(|f| f.as_fd()).collect();
        if self.draws_into(out) {
            if (out.width(), out.height()) != (video.width(), video.height()) {
                return Err(VulkanError::Usage(
                    "the source and destination images must be the same size",
                ));
            }
            return self.composite_graphics(video, out, overlay, &after);
        }
        let Some(overlay) = overlay else {
            return Err(VulkanError::Usage(
                "a conversion without an overlay needs an output with COLOR_ATTACHMENT usage",
            ));
        };
        let mut push = overlay.push_constants(video.width(), video.height()).to_vec();
        if let Some(planes) = yuv {
            push.extend(yuv_constants(video.colorimetry(), planes));
        }
        self.read_write(kernel, video, out, &push, &after)
    }

    /// Runs `kernel` over `dst`'s size with `src`'s plane views (sampled)
    /// then `dst`'s first view (storage) bound in order; the submission
    /// owns the descriptor pool.
    /// Refuses images of different sizes or without those usages.
    fn read_write(
        &self,
        kernel: &Kernel,
        src: &VulkanImage,
        dst: &VulkanImage,
        push: &[u8],
        after: &[std::os::fd::BorrowedFd<'_>],
    ) -> Result<Submission, VulkanError> {
        if (dst.width(), dst.height()) != (src.width(), src.height()) {
            return Err(VulkanError::Usage(
                "the source and destination images must be the same size",
            ));
        }
        if !src.usage().contains(vk::ImageUsageFlags::SAMPLED) || !dst.usage().contains(vk::ImageUsageFlags::STORAGE) {
            return Err(VulkanError::Usage(
                "the source image needs SAMPLED usage and the destination STORAGE",
            ));
        }
        let mut views: Vec<vk::ImageView> = src.plane_views().to_vec();
        views.push(dst.storage_views()[0]);
        let pool = descriptor_pool(&self.ctx)?;
        // The work may outlive the images' owners, also when an error
        // comes after the submit (VUID-vkDestroyImage-image-01000).
        src.mark_handed_out();
        dst.mark_handed_out();
        let mut implicit = src.implicit_sync(SyncAccess::Read);
        implicit.extend(dst.implicit_sync(SyncAccess::Write));
        let stage = vk::PipelineStageFlags::COMPUTE_SHADER;
        let mut submission = submit_synced(&self.ctx, &implicit, after, Vec::new(), |cb| {
            // One barrier takes both images in, one gives them back.
            record_barriers(
                &self.ctx,
                cb,
                vk::PipelineStageFlags::TOP_OF_PIPE,
                stage,
                &[
                    src.acquire_barrier(vk::ImageLayout::GENERAL, vk::AccessFlags::SHADER_READ),
                    dst.acquire_barrier(vk::ImageLayout::GENERAL, vk::AccessFlags::SHADER_WRITE),
                ],
            );
            kernel.record(&self.ctx, cb, pool.1, &views, push, (dst.width(), dst.height()))?;
            record_barriers(
                &self.ctx,
                cb,
                stage,
                vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                &[
                    src.release_barrier(vk::ImageLayout::GENERAL, vk::AccessFlags::empty()),
                    dst.release_barrier(vk::ImageLayout::GENERAL, vk::AccessFlags::SHADER_WRITE),
                ],
            );
            Ok(())
        })?;
        src.acquire_submitted();
        dst.acquire_submitted();
        submission.adopt_descriptor_pool(pool.handover().1);
        Ok(submission)
    }
}

impl Drop for Kernels {
    fn drop(&mut self) {
        // Submissions recorded with these pipelines may still run (safe
        // code may drop the kernels before waiting for them): destroyed once
        // the queue has finished everything submitted so far
        // (VUID-vkDestroyPipeline-pipeline-00765).
        let handles: Vec<_> = self
            .kernels
            .drain(..)
            .map(|k| (k.pipeline, k.layout, k.set_layout))
            .collect();
        let graphics = std::mem::take(&mut self.graphics);
        self.ctx.retire(Box::new(move |device: &ash::Device| {
            graphics.destroy(device);
            for (pipeline, layout, set_layout) in handles {
                // SAFETY: our handles; the queue finished every use.
                unsafe {
                    device.destroy_pipeline(pipeline, None);
                    device.destroy_pipeline_layout(layout, None);
                    device.destroy_descriptor_set_layout(set_layout, None);
                }
            }
        }));
    }
}
