//! The kernels' graphics path: the composite and the RGB pattern written
//! as a colour attachment in a render pass, where the compute kernels
//! write storage images.
//!
//! Why: GPUs keep COLOR_ATTACHMENT on their compressed modifiers and drop
//! STORAGE from most of them (Mesa's anv from every CCS modifier, radv from
//! most DCC ones), so only this path lets exports be compressed. It is also
//! cheaper on a CPU device: the video goes in by `vkCmdCopyImage` where the
//! formats match (a memcpy on lavapipe, [`VideoPass`]), the overlay as two
//! small quads, the pattern's bars and box as clears; only the pixels that
//! need a shader run one.
//!
//! A render pass (core Vulkan 1.0), not dynamic rendering: it works on
//! every device and on wrapped contexts whatever features their creator
//! enabled. Pipelines are made against a render pass with `loadOp` LOAD and
//! used with one with DONT_CARE too: render pass compatibility ignores load
//! and store operations.

use std::os::fd::BorrowedFd;
use std::sync::Arc;

use ash::vk;
use drm_fourcc::DrmFourcc;

use super::commands::{Submission, submit_synced};
use super::context::VulkanContext;
use super::error::{VulkanError, call};
use super::image::VulkanImage;
use super::kernels::{Kernels, YUV_CONSTANTS, descriptor_pool, spirv_words, yuv_constants};
use crate::overlay::Overlay;
use crate::sync::SyncAccess;

const DRAW_VIDEO_RGB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/draw_video_rgb.spv"));
const DRAW_VIDEO_NV12: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/draw_video_nv12.spv"));
const DRAW_OVERLAY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/draw_overlay.spv"));
const DRAW_PATTERN_RAMP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/draw_pattern_ramp.spv"));

/// Push constants of every graphics pipeline (vertex and fragment stage):
/// width, height, frame, progress, then `nv12_read.wgsl`'s `Yuv`.
const PUSH_BYTES: u32 = 16 + YUV_CONSTANTS;

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
    /// `vkCmdCopyImage` where the video has the output's `VkFormat`,
    /// TRANSFER_SRC usage and the output TRANSFER_DST; else a draw.
    Copy,
}

/// What a graphics pipeline draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Draw {
    /// A 32-bit RGB frame, one sampled view, a fullscreen triangle.
    VideoRgb,
    /// An NV12 frame, two sampled plane views, a fullscreen triangle.
    VideoNv12,
    /// The overlay's box and bar: 6 vertices, 2 instances.
    Overlay,
    /// The pattern's ramp: 6 vertices.
    Ramp,
}

impl Draw {
    fn spirv(self) -> &'static [u8] {
        match self {
            Draw::VideoRgb => DRAW_VIDEO_RGB,
            Draw::VideoNv12 => DRAW_VIDEO_NV12,
            Draw::Overlay => DRAW_OVERLAY,
            Draw::Ramp => DRAW_PATTERN_RAMP,
        }
    }

    /// Sampled-image bindings of its set.
    fn sampled(self) -> u32 {
        match self {
            Draw::VideoRgb => 1,
            Draw::VideoNv12 => 2,
            Draw::Overlay | Draw::Ramp => 0,
        }
    }
}

/// One graphics pipeline and its layouts (a set layout only with bindings).
#[derive(Default)]
struct Pipeline {
    set_layout: vk::DescriptorSetLayout,
    layout: vk::PipelineLayout,
    pipeline: vk::Pipeline,
}

/// The render passes and pipelines for one attachment format.
#[derive(Default)]
struct Target {
    format: vk::Format,
    /// `loadOp` LOAD: drawn over what is there (a copy).
    load: vk::RenderPass,
    /// `loadOp` DONT_CARE: every pixel is drawn or cleared.
    discard: vk::RenderPass,
    pipelines: Vec<(Draw, Pipeline)>,
}

/// Every graphics pipeline of a [`Kernels`]: B8G8R8A8 (XRGB8888/ARGB8888:
/// composite and pattern) and R8G8B8A8 (XBGR8888/ABGR8888: pattern).
#[derive(Default)]
pub(super) struct Graphics {
    targets: Vec<Target>,
}

impl Graphics {
    /// Builds the render passes and pipelines; on an error what was made is
    /// destroyed (nothing was submitted).
    pub(super) fn new(ctx: &VulkanContext) -> Result<Self, VulkanError> {
        let mut graphics = Graphics::default();
        let specs: [(vk::Format, &[Draw]); 2] = [
            (
                vk::Format::B8G8R8A8_UNORM,
                &[Draw::VideoRgb, Draw::VideoNv12, Draw::Overlay, Draw::Ramp],
            ),
            (vk::Format::R8G8B8A8_UNORM, &[Draw::Ramp]),
        ];
        let result = (|| {
            for (format, draws) in specs {
                graphics.targets.push(Target {
                    format,
                    ..Default::default()
                });
                let target = graphics.targets.last_mut().expect("just pushed");
                target.load = render_pass(ctx, format, vk::AttachmentLoadOp::LOAD)?;
                target.discard = render_pass(ctx, format, vk::AttachmentLoadOp::DONT_CARE)?;
                for &draw in draws {
                    target.pipelines.push((draw, Pipeline::default()));
                    let slot = &mut target.pipelines.last_mut().expect("just pushed").1;
                    build_pipeline(ctx, target.load, draw, slot)?;
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(graphics),
            Err(e) => {
                graphics.destroy(ctx.device());
                Err(e)
            }
        }
    }

    /// Destroys every handle (null ones are skipped by Vulkan): only once
    /// no submission uses them.
    pub(super) fn destroy(self, device: &ash::Device) {
        for target in self.targets {
            // SAFETY: our handles (or null); the caller's contract above.
            unsafe {
                for (_, p) in target.pipelines {
                    device.destroy_pipeline(p.pipeline, None);
                    device.destroy_pipeline_layout(p.layout, None);
                    device.destroy_descriptor_set_layout(p.set_layout, None);
                }
                device.destroy_render_pass(target.load, None);
                device.destroy_render_pass(target.discard, None);
            }
        }
    }

    fn target(&self, format: vk::Format) -> Option<&Target> {
        self.targets.iter().find(|t| t.format == format)
    }
}

impl Target {
    fn pipeline(&self, draw: Draw) -> Result<&Pipeline, VulkanError> {
        self.pipelines
            .iter()
            .find(|(d, _)| *d == draw)
            .map(|(_, p)| p)
            .ok_or(VulkanError::Usage(
                "no graphics pipeline of this kind for the output's format",
            ))
    }
}

/// A render pass with one colour attachment of `format`, kept in
/// COLOR_ATTACHMENT_OPTIMAL throughout (the caller's barriers move the image
/// in and out: the ownership transfers from and to the foreign queue).
fn render_pass(
    ctx: &VulkanContext,
    format: vk::Format,
    load: vk::AttachmentLoadOp,
) -> Result<vk::RenderPass, VulkanError> {
    let attachments = [vk::AttachmentDescription::default()
        .format(format)
        .samples(vk::SampleCountFlags::TYPE_1)
        .load_op(load)
        .store_op(vk::AttachmentStoreOp::STORE)
        .stencil_load_op(vk::AttachmentLoadOp::DONT_CARE)
        .stencil_store_op(vk::AttachmentStoreOp::DONT_CARE)
        .initial_layout(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)
        .final_layout(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)];
    let colour = [vk::AttachmentReference::default()
        .attachment(0)
        .layout(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)];
    let subpasses = [vk::SubpassDescription::default()
        .pipeline_bind_point(vk::PipelineBindPoint::GRAPHICS)
        .color_attachments(&colour)];
    let info = vk::RenderPassCreateInfo::default()
        .attachments(&attachments)
        .subpasses(&subpasses);
    // SAFETY: valid device and create info; destroyed by `Graphics::destroy`.
    unsafe { ctx.device().create_render_pass(&info, None) }.map_err(call("vkCreateRenderPass"))
}

/// Builds `draw`'s pipeline against `render_pass` into `slot` (whose
/// handles `Graphics::destroy` frees on any path).
fn build_pipeline(
    ctx: &VulkanContext,
    render_pass: vk::RenderPass,
    draw: Draw,
    slot: &mut Pipeline,
) -> Result<(), VulkanError> {
    let device = ctx.device();
    let stages = vk::ShaderStageFlags::VERTEX | vk::ShaderStageFlags::FRAGMENT;
    let bindings: Vec<vk::DescriptorSetLayoutBinding> = (0..draw.sampled())
        .map(|i| {
            vk::DescriptorSetLayoutBinding::default()
                .binding(i)
                .descriptor_type(vk::DescriptorType::SAMPLED_IMAGE)
                .descriptor_count(1)
                .stage_flags(vk::ShaderStageFlags::FRAGMENT)
        })
        .collect();
    // SAFETY: valid device and create infos; the handles go into `slot`.
    unsafe {
        if !bindings.is_empty() {
            slot.set_layout = device
                .create_descriptor_set_layout(&vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings), None)
                .map_err(call("vkCreateDescriptorSetLayout"))?;
        }
        let set_layouts: Vec<vk::DescriptorSetLayout> = [slot.set_layout]
            .into_iter()
            .filter(|l| *l != vk::DescriptorSetLayout::null())
            .collect();
        let ranges = [vk::PushConstantRange::default().stage_flags(stages).size(PUSH_BYTES)];
        slot.layout = device
            .create_pipeline_layout(
                &vk::PipelineLayoutCreateInfo::default()
                    .set_layouts(&set_layouts)
                    .push_constant_ranges(&ranges),
                None,
            )
            .map_err(call("vkCreatePipelineLayout"))?;
        let code = spirv_words(draw.spirv());
        let module = device
            .create_shader_module(&vk::ShaderModuleCreateInfo::default().code(&code), None)
            .map_err(call("vkCreateShaderModule"))?;
        let shader_stages = [
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::VERTEX)
                .module(module)
                .name(c"vs_main"),
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::FRAGMENT)
                .module(module)
                .name(c"fs_main"),
        ];
        let vertex_input = vk::PipelineVertexInputStateCreateInfo::default();
        let assembly =
            vk::PipelineInputAssemblyStateCreateInfo::default().topology(vk::PrimitiveTopology::TRIANGLE_LIST);
        // Viewport and scissor are dynamic: one pipeline for every size.
        let viewport = vk::PipelineViewportStateCreateInfo::default()
            .viewport_count(1)
            .scissor_count(1);
        let raster = vk::PipelineRasterizationStateCreateInfo::default()
            .polygon_mode(vk::PolygonMode::FILL)
            .cull_mode(vk::CullModeFlags::NONE)
            .line_width(1.0);
        let multisample =
            vk::PipelineMultisampleStateCreateInfo::default().rasterization_samples(vk::SampleCountFlags::TYPE_1);
        let blend_attachments = [vk::PipelineColorBlendAttachmentState::default().color_write_mask(
            vk::ColorComponentFlags::R
                | vk::ColorComponentFlags::G
                | vk::ColorComponentFlags::B
                | vk::ColorComponentFlags::A,
        )];
        let blend = vk::PipelineColorBlendStateCreateInfo::default().attachments(&blend_attachments);
        let dynamic_states = [vk::DynamicState::VIEWPORT, vk::DynamicState::SCISSOR];
        let dynamic = vk::PipelineDynamicStateCreateInfo::default().dynamic_states(&dynamic_states);
        let info = [vk::GraphicsPipelineCreateInfo::default()
            .stages(&shader_stages)
            .vertex_input_state(&vertex_input)
            .input_assembly_state(&assembly)
            .viewport_state(&viewport)
            .rasterization_state(&raster)
            .multisample_state(&multisample)
            .color_blend_state(&blend)
            .dynamic_state(&dynamic)
            .layout(slot.layout)
            .render_pass(render_pass)
            .subpass(0)];
        let pipelines = device.create_graphics_pipelines(vk::PipelineCache::null(), &info, None);
        device.destroy_shader_module(module, None);
        slot.pipeline = pipelines.map_err(|(_, e)| call("vkCreateGraphicsPipelines")(e))?[0];
    }
    Ok(())
}

/// A framebuffer of one submission, destroyed after it (kept in the
/// [`Submission`], whose kept values drop once its fence has signalled).
struct Framebuffer {
    ctx: Arc<VulkanContext>,
    handle: vk::Framebuffer,
}

impl Drop for Framebuffer {
    fn drop(&mut self) {
        // SAFETY: ours; dropped only after the work using it (or never
        // submitted).
        unsafe { self.ctx.device().destroy_framebuffer(self.handle, None) };
    }
}

/// One render pass instance being recorded into `cb` over `view`.
struct Pass<'a> {
    ctx: &'a VulkanContext,
    cb: vk::CommandBuffer,
    target: &'a Target,
    extent: vk::Extent2D,
}

impl<'a> Pass<'a> {
    /// Begins `target`'s render pass (LOAD or DONT_CARE) on `view`.
    fn begin(
        ctx: &'a Arc<VulkanContext>,
        cb: vk::CommandBuffer,
        target: &'a Target,
        load: bool,
        view: vk::ImageView,
        (width, height): (u32, u32),
    ) -> Result<(Self, Framebuffer), VulkanError> {
        let render_pass = if load { target.load } else { target.discard };
        let views = [view];
        let info = vk::FramebufferCreateInfo::default()
            .render_pass(render_pass)
            .attachments(&views)
            .width(width)
            .height(height)
            .layers(1);
        // SAFETY: valid device; the view has COLOR_ATTACHMENT usage and
        // `target.format`; destroyed by `Framebuffer`'s drop.
        let handle = unsafe { ctx.device().create_framebuffer(&info, None) }.map_err(call("vkCreateFramebuffer"))?;
        let framebuffer = Framebuffer {
            ctx: Arc::clone(ctx),
            handle,
        };
        let extent = vk::Extent2D { width, height };
        let area = vk::Rect2D::default().extent(extent);
        let begin = vk::RenderPassBeginInfo::default()
            .render_pass(render_pass)
            .framebuffer(handle)
            .render_area(area);
        let viewport = vk::Viewport {
            x: 0.0,
            y: 0.0,
            width: width as f32,
            height: height as f32,
            min_depth: 0.0,
            max_depth: 1.0,
        };
        // SAFETY: `cb` is recording, outside a render pass; the framebuffer
        // matches the render pass.
        unsafe {
            ctx.device()
                .cmd_begin_render_pass(cb, &begin, vk::SubpassContents::INLINE);
            ctx.device().cmd_set_viewport(cb, 0, &[viewport]);
            ctx.device().cmd_set_scissor(cb, 0, &[area]);
        }
        Ok((
            Pass {
                ctx,
                cb,
                target,
                extent,
            },
            framebuffer,
        ))
    }

    /// Draws `vertices` x `instances` with `draw`'s pipeline, `views`
    /// bound as its sampled images (SHADER_READ_ONLY_OPTIMAL; a set from
    /// `pool`) and `push` as its push constants.
    fn draw(
        &self,
        draw: Draw,
        pool: vk::DescriptorPool,
        views: &[vk::ImageView],
        push: &[u8; PUSH_BYTES as usize],
        (vertices, instances): (u32, u32),
    ) -> Result<(), VulkanError> {
        let device = self.ctx.device();
        let pipeline = self.target.pipeline(draw)?;
        if views.len() != draw.sampled() as usize {
            return Err(VulkanError::Usage("the video image lacks sampled plane views"));
        }
        // SAFETY: recording inside this pass; the pipeline matches it; the
        // pool has room for one set of at most two sampled images.
        unsafe {
            device.cmd_bind_pipeline(self.cb, vk::PipelineBindPoint::GRAPHICS, pipeline.pipeline);
            if !views.is_empty() {
                let set_layouts = [pipeline.set_layout];
                let set = device
                    .allocate_descriptor_sets(
                        &vk::DescriptorSetAllocateInfo::default()
                            .descriptor_pool(pool)
                            .set_layouts(&set_layouts),
                    )
                    .map_err(call("vkAllocateDescriptorSets"))?[0];
                let infos: Vec<[vk::DescriptorImageInfo; 1]> = views
                    .iter()
                    .map(|&v| {
                        [vk::DescriptorImageInfo::default()
                            .image_view(v)
                            .image_layout(vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)]
                    })
                    .collect();
                let writes: Vec<vk::WriteDescriptorSet> = infos
                    .iter()
                    .enumerate()
                    .map(|(i, info)| {
                        vk::WriteDescriptorSet::default()
                            .dst_set(set)
                            .dst_binding(i as u32)
                            .descriptor_type(vk::DescriptorType::SAMPLED_IMAGE)
                            .image_info(info)
                    })
                    .collect();
                device.update_descriptor_sets(&writes, &[]);
                device.cmd_bind_descriptor_sets(
                    self.cb,
                    vk::PipelineBindPoint::GRAPHICS,
                    pipeline.layout,
                    0,
                    &[set],
                    &[],
                );
            }
            device.cmd_push_constants(
                self.cb,
                pipeline.layout,
                vk::ShaderStageFlags::VERTEX | vk::ShaderStageFlags::FRAGMENT,
                0,
                push,
            );
            device.cmd_draw(self.cb, vertices, instances, 0, 0);
        }
        Ok(())
    }

    /// Clears the rectangles `(x, y, width, height)` (clipped to the
    /// attachment; empty ones skipped) to `rgba`.
    fn clear(&self, rgba: [f32; 4], rects: &[(u32, u32, u32, u32)]) {
        let rects: Vec<vk::ClearRect> = rects
            .iter()
            .filter_map(|&(x, y, w, h)| {
                let w = w.min(self.extent.width.saturating_sub(x));
                let h = h.min(self.extent.height.saturating_sub(y));
                // VUID-vkCmdClearAttachments-rect-02682/02683: not empty.
                (w > 0 && h > 0).then_some(vk::ClearRect {
                    rect: vk::Rect2D {
                        offset: vk::Offset2D {
                            x: x as i32,
                            y: y as i32,
                        },
                        extent: vk::Extent2D { width: w, height: h },
                    },
                    base_array_layer: 0,
                    layer_count: 1,
                })
            })
            .collect();
        if rects.is_empty() {
            return;
        }
        let attachment = [vk::ClearAttachment {
            aspect_mask: vk::ImageAspectFlags::COLOR,
            color_attachment: 0,
            clear_value: vk::ClearValue {
                color: vk::ClearColorValue { float32: rgba },
            },
        }];
        // SAFETY: recording inside this pass; the rects lie in its render
        // area (clipped above). Clears run in rasterisation order with the
        // draws around them.
        unsafe { self.ctx.device().cmd_clear_attachments(self.cb, &attachment, &rects) };
    }

    fn end(self) {
        // SAFETY: the pass begun in `begin`, recording.
        unsafe { self.ctx.device().cmd_end_render_pass(self.cb) };
    }
}

/// Push constants: `head` (width, height, frame, progress) and, for YUV
/// video, the matrix and range.
fn push_constants(head: [u8; 16], yuv: Option<[u8; YUV_CONSTANTS as usize]>) -> [u8; PUSH_BYTES as usize] {
    let mut out = [0u8; PUSH_BYTES as usize];
    out[..16].copy_from_slice(&head);
    if let Some(yuv) = yuv {
        out[16..].copy_from_slice(&yuv);
    }
    out
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
    fn copies(&self, video: &VulkanImage, out: &VulkanImage) -> bool {
        let possible = video.vk_format() == out.vk_format()
            && video.usage().contains(vk::ImageUsageFlags::TRANSFER_SRC)
            && out.usage().contains(vk::ImageUsageFlags::TRANSFER_DST);
        possible
            && match self.video_pass {
                VideoPass::Draw => false,
                VideoPass::Copy => true,
                VideoPass::Auto => self.ctx.info().device_type == vk::PhysicalDeviceType::CPU,
            }
    }

    /// The graphics composite (`composite_submit` with an attachment
    /// output): the video copied or drawn, then the overlay's quads.
    pub(super) fn composite_graphics(
        &self,
        video: &VulkanImage,
        out: &VulkanImage,
        overlay: &Overlay,
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
        let video_draw = match video.fourcc() {
            DrmFourcc::Nv12 => Draw::VideoNv12,
            _ => Draw::VideoRgb,
        };
        if !copy && !video.usage().contains(vk::ImageUsageFlags::SAMPLED) {
            return Err(VulkanError::Usage(
                "the video image needs SAMPLED usage (or TRANSFER_SRC for a copy)",
            ));
        }
        let yuv = (video.fourcc() == DrmFourcc::Nv12).then(|| yuv_constants(video.colorimetry()));
        let push = push_constants(overlay.push_constants(w, h), yuv);
        let pool = descriptor_pool(&self.ctx)?;
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
        let mut framebuffer = None;
        let mut submission = submit_synced(&self.ctx, &implicit, after, |cb| {
            video.record_acquire(cb, video_layout, video_stage, video_access);
            if copy {
                out.record_acquire(
                    cb,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::AccessFlags::TRANSFER_WRITE,
                );
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
                // SAFETY: recording, outside a render pass; our image.
                unsafe {
                    self.ctx.device().cmd_pipeline_barrier(
                        cb,
                        vk::PipelineStageFlags::TRANSFER,
                        attachment_stage,
                        vk::DependencyFlags::empty(),
                        &[],
                        &[],
                        &[barrier],
                    )
                };
            } else {
                out.record_acquire(
                    cb,
                    vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
                    attachment_stage,
                    attachment_rw,
                );
            }
            let (pass, fb) = Pass::begin(&self.ctx, cb, target, copy, out_view, (w, h))?;
            framebuffer = Some(fb);
            if !copy {
                pass.draw(video_draw, pool.1, video.plane_views(), &push, (3, 1))?;
            }
            pass.draw(Draw::Overlay, pool.1, &[], &push, (6, 2))?;
            pass.end();
            video.record_release(cb, video_layout, video_stage, vk::AccessFlags::empty());
            out.record_release(
                cb,
                vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
                attachment_stage,
                vk::AccessFlags::COLOR_ATTACHMENT_WRITE,
            );
            Ok(())
        })?;
        for image in [video, out] {
            image.acquire_submitted();
            // The work may outlive the images' owners
            // (VUID-vkDestroyImage-image-01000).
            image.mark_handed_out();
        }
        submission.adopt_descriptor_pool(pool.release());
        if let Some(fb) = framebuffer {
            submission.keep(fb);
        }
        Ok(submission)
    }

    /// The graphics pattern (`draw_pattern_submit` into an attachment): the
    /// bars as clears, the ramp as one quad, the box as a clear over them,
    /// in `pattern_common.wgsl`'s order (the box wins, then the ramp).
    pub(super) fn pattern_graphics(&self, image: &VulkanImage, frame: u32) -> Result<Submission, VulkanError> {
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
        let write = vk::AccessFlags::COLOR_ATTACHMENT_WRITE;
        let mut framebuffer = None;
        let mut submission = submit_synced(&self.ctx, &image.implicit_sync(SyncAccess::Write), &[], |cb| {
            image.record_acquire(cb, vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL, stage, write);
            let (pass, fb) = Pass::begin(&self.ctx, cb, target, false, view, (w, h))?;
            framebuffer = Some(fb);
            // Bars: x in [ceil(b w / 8), ceil((b + 1) w / 8)) has x * 8 / w == b.
            let ramp_top = if h >= 4 { h - h / 4 } else { h };
            let edge = |b: u64| (b * u64::from(w)).div_ceil(8) as u32;
            for (b, rgb) in BARS.iter().enumerate() {
                let (x0, x1) = (edge(b as u64), edge(b as u64 + 1));
                pass.clear([rgb[0], rgb[1], rgb[2], 1.0], &[(x0, 0, x1 - x0, ramp_top)]);
            }
            if ramp_top < h {
                pass.draw(Draw::Ramp, vk::DescriptorPool::null(), &[], &push, (6, 1))?;
            }
            // The box, with the shader's u32 arithmetic.
            let (box_w, box_h) = ((w / 8).max(1), (h / 8).max(1));
            let box_x = frame.wrapping_mul(4) % (w - box_w + 1);
            let box_y = frame.wrapping_mul(2) % (h - box_h + 1);
            pass.clear([1.0, 128.0 / 255.0, 0.0, 1.0], &[(box_x, box_y, box_w, box_h)]);
            pass.end();
            image.record_release(cb, vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL, stage, write);
            Ok(())
        })?;
        image.acquire_submitted();
        image.mark_handed_out();
        if let Some(fb) = framebuffer {
            submission.keep(fb);
        }
        Ok(submission)
    }
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
    // SAFETY: recording, outside a render pass; both images are in the
    // named layouts by the barriers recorded before, with the usages and
    // format features checked at import/export (same format, same size:
    // `read_write`'s checks in `composite_submit`).
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
