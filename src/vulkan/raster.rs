//! The graphics pipelines behind [`Kernels`](super::Kernels)' render path
//! (the `render` module): render passes with one colour attachment, the
//! pipelines that draw into them, and one render pass instance being
//! recorded ([`Pass`]: framebuffer, draws, clears).
//!
//! A render pass (core Vulkan 1.0), not dynamic rendering: it works on
//! every device and on wrapped contexts whatever features their creator
//! enabled. Pipelines are made against a render pass with `loadOp` LOAD and
//! used with one with DONT_CARE too: render pass compatibility ignores load
//! and store operations. Viewport and scissor are dynamic, so one pipeline
//! serves every size.

use std::sync::Arc;

use ash::vk;

use super::compute::{spirv_words, write_images};
use super::context::VulkanContext;
use super::error::{VulkanError, call};
use super::image::VulkanImage;
use super::kernels::YUV_CONSTANTS;

const DRAW_VIDEO_RGB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/draw_video_rgb.spv"));
const DRAW_VIDEO_SEMIPLANAR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/draw_video_semiplanar.spv"));
const DRAW_VIDEO_PLANAR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/draw_video_planar.spv"));
const DRAW_OVERLAY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/draw_overlay.spv"));
const DRAW_PATTERN_RAMP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/draw_pattern_ramp.spv"));

/// Push constants of every graphics pipeline (vertex and fragment stage):
/// width, height, frame, progress, then `yuv_common.wgsl`'s `Yuv`.
pub(super) const PUSH_BYTES: u32 = 16 + YUV_CONSTANTS;

/// What a graphics pipeline draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Draw {
    /// A 32-bit RGB frame, one sampled view, a fullscreen triangle.
    VideoRgb,
    /// A two-plane YUV frame (NV12, P010), two sampled plane views, a
    /// fullscreen triangle.
    VideoSemiPlanar,
    /// A three-plane YUV frame (I420), three sampled plane views.
    VideoPlanar,
    /// The overlay's box and bar: 6 vertices, 2 instances.
    Overlay,
    /// The pattern's ramp: 6 vertices.
    Ramp,
}

impl Draw {
    fn spirv(self) -> &'static [u8] {
        match self {
            Draw::VideoRgb => DRAW_VIDEO_RGB,
            Draw::VideoSemiPlanar => DRAW_VIDEO_SEMIPLANAR,
            Draw::VideoPlanar => DRAW_VIDEO_PLANAR,
            Draw::Overlay => DRAW_OVERLAY,
            Draw::Ramp => DRAW_PATTERN_RAMP,
        }
    }

    /// Sampled-image bindings of its set.
    fn sampled(self) -> u32 {
        match self {
            Draw::VideoRgb => 1,
            Draw::VideoSemiPlanar => 2,
            Draw::VideoPlanar => 3,
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
pub(super) struct Target {
    format: vk::Format,
    /// `loadOp` LOAD: drawn over what is there (a copy, or the pattern
    /// frame an image holds).
    load: vk::RenderPass,
    /// `loadOp` DONT_CARE: every pixel is drawn or cleared.
    discard: vk::RenderPass,
    pipelines: Vec<(Draw, Pipeline)>,
}

/// Every graphics pipeline of a [`Kernels`](super::Kernels): B8G8R8A8 (XRGB8888/ARGB8888:
/// composite and pattern) and R8G8B8A8 (XBGR8888/ABGR8888: pattern).
#[derive(Default)]
pub(super) struct Graphics {
    /// Unique among every `Graphics` made: the key of the descriptor sets
    /// images keep for these pipelines (`VulkanImage::sampled_set`).
    id: u64,
    targets: Vec<Target>,
}

/// The next `Graphics::id`.
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Graphics {
    /// Builds the render passes and pipelines; on an error what was made is
    /// destroyed (nothing was submitted).
    pub(super) fn new(ctx: &VulkanContext) -> Result<Self, VulkanError> {
        let mut graphics = Graphics {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ..Default::default()
        };
        let specs: [(vk::Format, &[Draw]); 2] = [
            (
                vk::Format::B8G8R8A8_UNORM,
                &[
                    Draw::VideoRgb,
                    Draw::VideoSemiPlanar,
                    Draw::VideoPlanar,
                    Draw::Overlay,
                    Draw::Ramp,
                ],
            ),
            (vk::Format::R8G8B8A8_UNORM, &[Draw::Ramp]),
        ];
        let build = |target: &mut Target, draws: &[Draw]| -> Result<(), VulkanError> {
            target.load = render_pass(ctx, target.format, vk::AttachmentLoadOp::LOAD)?;
            target.discard = render_pass(ctx, target.format, vk::AttachmentLoadOp::DONT_CARE)?;
            for &draw in draws {
                let mut pipeline = Pipeline::default();
                let built = build_pipeline(ctx, target.load, draw, &mut pipeline);
                // Kept even when half made: `destroy` frees what exists.
                target.pipelines.push((draw, pipeline));
                built?;
            }
            Ok(())
        };
        let mut result = Ok(());
        for (format, draws) in specs {
            let mut target = Target {
                format,
                ..Default::default()
            };
            result = build(&mut target, draws);
            graphics.targets.push(target);
            if result.is_err() {
                break;
            }
        }
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

    pub(super) fn target(&self, format: vk::Format) -> Option<&Target> {
        self.targets.iter().find(|t| t.format == format)
    }

    /// The set binding `image`'s sampled plane views for `draw` (made once
    /// per image and kept there: descriptor sets once per cached import,
    /// not per frame).
    pub(super) fn video_set(
        &self,
        ctx: &VulkanContext,
        target: &Target,
        draw: Draw,
        image: &VulkanImage,
    ) -> Result<vk::DescriptorSet, VulkanError> {
        let views = image.plane_views();
        if views.len() != draw.sampled() as usize {
            return Err(VulkanError::Usage("the video image lacks sampled plane views"));
        }
        let layout = target.pipeline(draw)?.set_layout;
        let key = (self.id << 8) | (draw as u64) << 4 | target_index(self, target);
        image.sampled_set(key, || {
            let device = ctx.device();
            let sizes = [vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::SAMPLED_IMAGE)
                .descriptor_count(views.len() as u32)];
            let info = vk::DescriptorPoolCreateInfo::default().max_sets(1).pool_sizes(&sizes);
            // SAFETY: valid device; the pool goes to the image, which
            // destroys it with itself.
            let pool = unsafe { device.create_descriptor_pool(&info, None) }.map_err(call("vkCreateDescriptorPool"))?;
            let set_layouts = [layout];
            // SAFETY: the pool has room for this one set.
            let set = match unsafe {
                device.allocate_descriptor_sets(
                    &vk::DescriptorSetAllocateInfo::default()
                        .descriptor_pool(pool)
                        .set_layouts(&set_layouts),
                )
            } {
                Ok(sets) => sets[0],
                Err(e) => {
                    // SAFETY: ours, unused.
                    unsafe { device.destroy_descriptor_pool(pool, None) };
                    return Err(call("vkAllocateDescriptorSets")(e));
                }
            };
            let images: Vec<(vk::ImageView, vk::DescriptorType)> =
                views.iter().map(|&v| (v, vk::DescriptorType::SAMPLED_IMAGE)).collect();
            // SAFETY: a fresh set, used by no command buffer yet; the views
            // are the image's, alive as long as the set (both go with it).
            unsafe { write_images(device, set, &images, vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL) };
            Ok((pool, set))
        })
    }
}

/// `target`'s index among `graphics`' targets (part of a set's key).
fn target_index(graphics: &Graphics, target: &Target) -> u64 {
    graphics
        .targets
        .iter()
        .position(|t| std::ptr::eq(t, target))
        .unwrap_or(0) as u64
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

/// A framebuffer of one submission, destroyed after it: made before the
/// recording and handed to `submit_synced` with the work, so the
/// [`Submission`](super::Submission) keeps it from the submit on (its kept
/// values drop once its fence has signalled, or go to deferred destruction
/// with it).
pub(super) struct Framebuffer {
    ctx: Arc<VulkanContext>,
    handle: vk::Framebuffer,
    render_pass: vk::RenderPass,
    extent: vk::Extent2D,
}

/// What recording a render pass instance needs of a [`Framebuffer`], kept
/// by value: the framebuffer itself goes to `submit_synced` with the work.
#[derive(Clone, Copy)]
pub(super) struct Bound {
    handle: vk::Framebuffer,
    render_pass: vk::RenderPass,
    extent: vk::Extent2D,
}

impl Framebuffer {
    /// A framebuffer of `view` (COLOR_ATTACHMENT usage, `target`'s format)
    /// for `target`'s LOAD or DONT_CARE render pass.
    pub(super) fn new(
        ctx: &Arc<VulkanContext>,
        target: &Target,
        load: bool,
        view: vk::ImageView,
        (width, height): (u32, u32),
    ) -> Result<Self, VulkanError> {
        let render_pass = if load { target.load } else { target.discard };
        let views = [view];
        let info = vk::FramebufferCreateInfo::default()
            .render_pass(render_pass)
            .attachments(&views)
            .width(width)
            .height(height)
            .layers(1);
        // SAFETY: valid device; the view has COLOR_ATTACHMENT usage and
        // `target.format`; destroyed by the drop below.
        let handle = unsafe { ctx.device().create_framebuffer(&info, None) }.map_err(call("vkCreateFramebuffer"))?;
        Ok(Framebuffer {
            ctx: Arc::clone(ctx),
            handle,
            render_pass,
            extent: vk::Extent2D { width, height },
        })
    }

    /// What [`Pass::begin`] records with.
    pub(super) fn bound(&self) -> Bound {
        Bound {
            handle: self.handle,
            render_pass: self.render_pass,
            extent: self.extent,
        }
    }
}

impl Drop for Framebuffer {
    fn drop(&mut self) {
        // SAFETY: ours; dropped only after the work using it (a
        // submission's kept values: after its fence, or in its deferred
        // destruction) or never submitted.
        unsafe { self.ctx.device().destroy_framebuffer(self.handle, None) };
    }
}

/// One render pass instance being recorded into `cb` over `view`.
pub(super) struct Pass<'a> {
    ctx: &'a VulkanContext,
    cb: vk::CommandBuffer,
    target: &'a Target,
    extent: vk::Extent2D,
}

impl<'a> Pass<'a> {
    /// Begins `target`'s render pass (LOAD or DONT_CARE, as `framebuffer`
    /// was made for) on `framebuffer`.
    pub(super) fn begin(ctx: &'a VulkanContext, cb: vk::CommandBuffer, target: &'a Target, framebuffer: Bound) -> Self {
        let extent = framebuffer.extent;
        let area = vk::Rect2D::default().extent(extent);
        let begin = vk::RenderPassBeginInfo::default()
            .render_pass(framebuffer.render_pass)
            .framebuffer(framebuffer.handle)
            .render_area(area);
        let viewport = vk::Viewport {
            x: 0.0,
            y: 0.0,
            width: extent.width as f32,
            height: extent.height as f32,
            min_depth: 0.0,
            max_depth: 1.0,
        };
        // SAFETY: `cb` is recording, outside a render pass; the framebuffer
        // was made for this render pass.
        unsafe {
            ctx.device()
                .cmd_begin_render_pass(cb, &begin, vk::SubpassContents::INLINE);
            ctx.device().cmd_set_viewport(cb, 0, &[viewport]);
            ctx.device().cmd_set_scissor(cb, 0, &[area]);
        }
        Pass {
            ctx,
            cb,
            target,
            extent,
        }
    }

    /// Draws `vertices` x `instances` with `draw`'s pipeline, `set` bound
    /// (the video's sampled views, `Graphics::video_set`; `None` for draws
    /// without images) and `push` as its push constants.
    pub(super) fn draw(
        &self,
        draw: Draw,
        set: Option<vk::DescriptorSet>,
        push: &[u8; PUSH_BYTES as usize],
        (vertices, instances): (u32, u32),
    ) -> Result<(), VulkanError> {
        let device = self.ctx.device();
        let pipeline = self.target.pipeline(draw)?;
        if set.is_some() != (draw.sampled() > 0) {
            return Err(VulkanError::Usage("a draw's set does not match its pipeline"));
        }
        // SAFETY: recording inside this pass; the pipeline matches it; the
        // set has the pipeline's set layout and is never updated again.
        unsafe {
            device.cmd_bind_pipeline(self.cb, vk::PipelineBindPoint::GRAPHICS, pipeline.pipeline);
            if let Some(set) = set {
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

    /// Limits the following draws to `(x, y, width, height)` (clears are
    /// limited by their own rectangles).
    pub(super) fn scissor(&self, (x, y, width, height): (u32, u32, u32, u32)) {
        let rect = vk::Rect2D {
            offset: vk::Offset2D {
                x: x as i32,
                y: y as i32,
            },
            extent: vk::Extent2D { width, height },
        };
        // SAFETY: recording inside this pass, whose pipelines take the
        // scissor as dynamic state; a rectangle inside the framebuffer.
        unsafe { self.ctx.device().cmd_set_scissor(self.cb, 0, &[rect]) };
    }

    /// Clears the rectangles `(x, y, width, height)` (clipped to the
    /// attachment; empty ones skipped) to `rgba`.
    pub(super) fn clear(&self, rgba: [f32; 4], rects: &[(u32, u32, u32, u32)]) {
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

    pub(super) fn end(self) {
        // SAFETY: the pass begun in `begin`, recording.
        unsafe { self.ctx.device().cmd_end_render_pass(self.cb) };
    }
}

/// Push constants: `head` (width, height, frame, progress) and, for YUV
/// video, the matrix and range.
pub(super) fn push_constants(head: [u8; 16], yuv: Option<[u8; YUV_CONSTANTS as usize]>) -> [u8; PUSH_BYTES as usize] {
    let mut out = [0u8; PUSH_BYTES as usize];
    out[..16].copy_from_slice(&head);
    if let Some(yuv) = yuv {
        out[16..].copy_from_slice(&yuv);
    }
    out
}
