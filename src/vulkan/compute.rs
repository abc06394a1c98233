//! The compute pipelines behind [`Kernels`](super::Kernels)' storage-image
//! path (one kernel: its set layout, pipeline layout and pipeline, recorded
//! as one dispatch over the output in 8x8 groups), and the pieces the
//! compute and graphics paths share: SPIR-V words and a submission's
//! transient descriptor pool.

use ash::vk;

use super::context::VulkanContext;
use super::error::{VulkanError, call};
use super::unwind::{Cleanup, Unwind};

/// One compute pipeline with its layouts.
pub(super) struct Kernel {
    pub(super) set_layout: vk::DescriptorSetLayout,
    pub(super) layout: vk::PipelineLayout,
    pub(super) pipeline: vk::Pipeline,
    bindings: Vec<vk::DescriptorType>,
}

pub(super) fn spirv_words(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl Kernel {
    pub(super) fn new(
        ctx: &VulkanContext,
        spirv: &[u8],
        bindings: &[vk::DescriptorType],
        push_size: u32,
    ) -> Result<Self, VulkanError> {
        let device = ctx.device();
        let mut kernel = Kernel {
            set_layout: vk::DescriptorSetLayout::null(),
            layout: vk::PipelineLayout::null(),
            pipeline: vk::Pipeline::null(),
            bindings: bindings.to_vec(),
        };
        let result = (|| {
            let layout_bindings: Vec<vk::DescriptorSetLayoutBinding> = bindings
                .iter()
                .enumerate()
                .map(|(i, &ty)| {
                    vk::DescriptorSetLayoutBinding::default()
                        .binding(i as u32)
                        .descriptor_type(ty)
                        .descriptor_count(1)
                        .stage_flags(vk::ShaderStageFlags::COMPUTE)
                })
                .collect();
            // SAFETY: valid device and create infos; handles stored in `kernel`
            // and destroyed by `destroy` on any path.
            unsafe {
                kernel.set_layout = device
                    .create_descriptor_set_layout(
                        &vk::DescriptorSetLayoutCreateInfo::default().bindings(&layout_bindings),
                        None,
                    )
                    .map_err(call("vkCreateDescriptorSetLayout"))?;
                let ranges = [vk::PushConstantRange::default()
                    .stage_flags(vk::ShaderStageFlags::COMPUTE)
                    .size(push_size)];
                let set_layouts = [kernel.set_layout];
                kernel.layout = device
                    .create_pipeline_layout(
                        &vk::PipelineLayoutCreateInfo::default()
                            .set_layouts(&set_layouts)
                            .push_constant_ranges(&ranges),
                        None,
                    )
                    .map_err(call("vkCreatePipelineLayout"))?;
                let code = spirv_words(spirv);
                let module = device
                    .create_shader_module(&vk::ShaderModuleCreateInfo::default().code(&code), None)
                    .map_err(call("vkCreateShaderModule"))?;
                let stage = vk::PipelineShaderStageCreateInfo::default()
                    .stage(vk::ShaderStageFlags::COMPUTE)
                    .module(module)
                    .name(c"main");
                let info = [vk::ComputePipelineCreateInfo::default()
                    .stage(stage)
                    .layout(kernel.layout)];
                let pipelines = device.create_compute_pipelines(vk::PipelineCache::null(), &info, None);
                device.destroy_shader_module(module, None);
                kernel.pipeline = pipelines.map_err(|(_, e)| call("vkCreateComputePipelines")(e))?[0];
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(kernel),
            Err(e) => {
                kernel.destroy(ctx);
                Err(e)
            }
        }
    }

    /// Destroys the handles at once: only where nothing was submitted with
    /// them (a failed `Kernels::new`; a dropped `Kernels` retires them).
    pub(super) fn destroy(&self, ctx: &VulkanContext) {
        // SAFETY: our handles (or null); never submitted (the contract above).
        unsafe {
            ctx.device().destroy_pipeline(self.pipeline, None);
            ctx.device().destroy_pipeline_layout(self.layout, None);
            ctx.device().destroy_descriptor_set_layout(self.set_layout, None);
        }
    }

    /// Binds `views` (in binding order, in GENERAL layout), pushes
    /// `push`, dispatches over `width`x`height` in 8x8 groups.
    pub(super) fn record(
        &self,
        ctx: &VulkanContext,
        cb: vk::CommandBuffer,
        pool: vk::DescriptorPool,
        views: &[vk::ImageView],
        push: &[u8],
        (width, height): (u32, u32),
    ) -> Result<(), VulkanError> {
        let device = ctx.device();
        let set_layouts = [self.set_layout];
        // SAFETY: the pool has room for one set of this layout.
        let set = unsafe {
            device.allocate_descriptor_sets(
                &vk::DescriptorSetAllocateInfo::default()
                    .descriptor_pool(pool)
                    .set_layouts(&set_layouts),
            )
        }
        .map_err(call("vkAllocateDescriptorSets"))?[0];
        let images: Vec<(vk::ImageView, vk::DescriptorType)> =
            views.iter().copied().zip(self.bindings.iter().copied()).collect();
        // SAFETY: a fresh set of this pool, used by no command buffer yet.
        unsafe { write_images(device, set, &images, vk::ImageLayout::GENERAL) };
        // SAFETY: recording state; the set, views and pipeline are valid and
        // live until the submission's fence has signalled.
        unsafe {
            device.cmd_bind_pipeline(cb, vk::PipelineBindPoint::COMPUTE, self.pipeline);
            device.cmd_bind_descriptor_sets(cb, vk::PipelineBindPoint::COMPUTE, self.layout, 0, &[set], &[]);
            device.cmd_push_constants(cb, self.layout, vk::ShaderStageFlags::COMPUTE, 0, push);
            device.cmd_dispatch(cb, width.div_ceil(8), height.div_ceil(8), 1);
        }
        Ok(())
    }
}

/// A transient descriptor pool for one submission, in an [`Unwind`]
/// (destroyed if the submission fails before it adopts the pool).
pub(super) struct DescriptorPool<'a>(&'a VulkanContext, pub(super) vk::DescriptorPool);

impl Cleanup for DescriptorPool<'_> {
    fn clean_up(&mut self) {
        // SAFETY: our pool; no submission uses it (a submitted one adopted
        // it, handed over).
        unsafe { self.0.device().destroy_descriptor_pool(self.1, None) };
    }
}

/// A descriptor pool for one submission: one set of up to four storage and
/// four sampled images; a kept one (`recycle`, reset) where there is one.
pub(super) fn descriptor_pool(ctx: &VulkanContext) -> Result<Unwind<DescriptorPool<'_>>, VulkanError> {
    if let Some(pool) = ctx.recycler().take_descriptor_pool() {
        return Ok(Unwind::new(DescriptorPool(ctx, pool)));
    }
    let sizes = [
        vk::DescriptorPoolSize::default()
            .ty(vk::DescriptorType::STORAGE_IMAGE)
            .descriptor_count(4),
        vk::DescriptorPoolSize::default()
            .ty(vk::DescriptorType::SAMPLED_IMAGE)
            .descriptor_count(4),
    ];
    let info = vk::DescriptorPoolCreateInfo::default().max_sets(1).pool_sizes(&sizes);
    // SAFETY: valid device; destroyed by the guard.
    let pool = unsafe { ctx.device().create_descriptor_pool(&info, None) }.map_err(call("vkCreateDescriptorPool"))?;
    Ok(Unwind::new(DescriptorPool(ctx, pool)))
}

/// Writes `images` (view, descriptor type) into bindings 0, 1, .. of `set`,
/// each seen in `layout`: the compute kernels' storage and sampled images,
/// the graphics video's sampled planes.
///
/// # Safety
///
/// `set` is a set of `device` whose layout has those bindings, used by no
/// pending command buffer (VUID-vkUpdateDescriptorSets-None-03047).
pub(super) unsafe fn write_images(
    device: &ash::Device,
    set: vk::DescriptorSet,
    images: &[(vk::ImageView, vk::DescriptorType)],
    layout: vk::ImageLayout,
) {
    let infos: Vec<[vk::DescriptorImageInfo; 1]> = images
        .iter()
        .map(|&(view, _)| [vk::DescriptorImageInfo::default().image_view(view).image_layout(layout)])
        .collect();
    let writes: Vec<vk::WriteDescriptorSet> = infos
        .iter()
        .zip(images)
        .enumerate()
        .map(|(i, (info, &(_, ty)))| {
            vk::WriteDescriptorSet::default()
                .dst_set(set)
                .dst_binding(i as u32)
                .descriptor_type(ty)
                .image_info(info)
        })
        .collect();
    // SAFETY: the caller's contract; the infos outlive the call.
    unsafe { device.update_descriptor_sets(&writes, &[]) };
}
