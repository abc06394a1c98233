//! The Vulkan adapter used from the caller's own command buffers on
//! lavapipe, under the validation layer: `YcbcrSampler` sampled in a
//! shader, and images a pending submission uses destroyed only after it.
#![cfg(feature = "vulkan")]

mod common;

use std::sync::Arc;

use common::*;
use dmabuf_interop::DrmFourcc;
use dmabuf_interop::alloc::{Allocator, MemfdAllocator};
use dmabuf_interop::colour::Colorimetry;
use dmabuf_interop::vulkan::ash::vk;
use dmabuf_interop::vulkan::{self};
use dmabuf_interop::vulkan::{ImportCache, VulkanError};

const IMPORT_USAGE: vk::ImageUsageFlags =
    vk::ImageUsageFlags::from_raw(vk::ImageUsageFlags::TRANSFER_SRC.as_raw() | vk::ImageUsageFlags::SAMPLED.as_raw());

/// A host-visible, coherent buffer of `size` bytes with `usage`.
fn host_buffer(ctx: &vulkan::VulkanContext, size: u64, usage: vk::BufferUsageFlags) -> (vk::Buffer, vk::DeviceMemory) {
    let device = ctx.device();
    // SAFETY: (test) plain object creation on a valid device.
    unsafe {
        let buffer = device
            .create_buffer(&vk::BufferCreateInfo::default().size(size).usage(usage), None)
            .unwrap();
        let req = device.get_buffer_memory_requirements(buffer);
        let props = ctx
            .instance()
            .get_physical_device_memory_properties(ctx.physical_device());
        let wanted = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
        let index = (0..props.memory_type_count)
            .find(|&i| {
                req.memory_type_bits & (1 << i) != 0 && props.memory_types[i as usize].property_flags.contains(wanted)
            })
            .expect("host-visible memory");
        let memory = device
            .allocate_memory(
                &vk::MemoryAllocateInfo::default()
                    .allocation_size(req.size)
                    .memory_type_index(index),
                None,
            )
            .unwrap();
        device.bind_buffer_memory(buffer, memory, 0).unwrap();
        (buffer, memory)
    }
}

/// `GLSL: layout(binding=0) uniform sampler2D tex; layout(binding=1) buffer
/// B { vec4 d[]; }; d[i] = textureLod(tex, d[i].xy, 0.0);` for
/// `gl_GlobalInvocationID.x = i`, as SPIR-V 1.3 words. naga cannot express
/// a combined image sampler (gfx-rs/wgpu#4342), which a YCbCr conversion
/// requires (VUID-VkDescriptorSetLayoutBinding-descriptorType-00282 via
/// immutable samplers), so the 181 words are assembled by hand; the
/// validation layer checks the module (spirv-val) when it is created.
const YCBCR_PROBE: &[u32] = &[
    0x07230203, 0x00010300, 0x00000000, 0x0000001e, 0x00000000, 0x00020011, 0x00000001, 0x0003000e, 0x00000000,
    0x00000001, 0x0006000f, 0x00000005, 0x00000015, 0x6e69616d, 0x00000000, 0x00000012, 0x00060010, 0x00000015,
    0x00000011, 0x00000001, 0x00000001, 0x00000001, 0x00040047, 0x00000012, 0x0000000b, 0x0000001c, 0x00040047,
    0x0000000b, 0x00000022, 0x00000000, 0x00040047, 0x0000000b, 0x00000021, 0x00000000, 0x00040047, 0x0000000c,
    0x00000006, 0x00000010, 0x00050048, 0x0000000d, 0x00000000, 0x00000023, 0x00000000, 0x00030047, 0x0000000d,
    0x00000002, 0x00040047, 0x0000000f, 0x00000022, 0x00000000, 0x00040047, 0x0000000f, 0x00000021, 0x00000001,
    0x00020013, 0x00000001, 0x00030021, 0x00000002, 0x00000001, 0x00030016, 0x00000003, 0x00000020, 0x00040015,
    0x00000004, 0x00000020, 0x00000000, 0x00040017, 0x00000005, 0x00000003, 0x00000002, 0x00040017, 0x00000006,
    0x00000003, 0x00000004, 0x00040017, 0x00000007, 0x00000004, 0x00000003, 0x00090019, 0x00000008, 0x00000003,
    0x00000001, 0x00000000, 0x00000000, 0x00000000, 0x00000001, 0x00000000, 0x0003001b, 0x00000009, 0x00000008,
    0x00040020, 0x0000000a, 0x00000000, 0x00000009, 0x0004003b, 0x0000000a, 0x0000000b, 0x00000000, 0x0003001d,
    0x0000000c, 0x00000006, 0x0003001e, 0x0000000d, 0x0000000c, 0x00040020, 0x0000000e, 0x0000000c, 0x0000000d,
    0x0004003b, 0x0000000e, 0x0000000f, 0x0000000c, 0x00040020, 0x00000010, 0x0000000c, 0x00000006, 0x00040020,
    0x00000011, 0x00000001, 0x00000007, 0x0004003b, 0x00000011, 0x00000012, 0x00000001, 0x0004002b, 0x00000004,
    0x00000013, 0x00000000, 0x0004002b, 0x00000003, 0x00000014, 0x00000000, 0x00050036, 0x00000001, 0x00000015,
    0x00000000, 0x00000002, 0x000200f8, 0x00000016, 0x0004003d, 0x00000007, 0x00000017, 0x00000012, 0x00050051,
    0x00000004, 0x00000018, 0x00000017, 0x00000000, 0x00060041, 0x00000010, 0x00000019, 0x0000000f, 0x00000013,
    0x00000018, 0x0004003d, 0x00000006, 0x0000001a, 0x00000019, 0x0007004f, 0x00000005, 0x0000001b, 0x0000001a,
    0x0000001a, 0x00000000, 0x00000001, 0x0004003d, 0x00000009, 0x0000001c, 0x0000000b, 0x00070058, 0x00000006,
    0x0000001d, 0x0000001c, 0x0000001b, 0x00000002, 0x00000014, 0x0003003e, 0x00000019, 0x0000001d, 0x000100fd,
    0x00010038,
];

/// Samples `sampler` at the normalized `points` in a compute shader
/// (through the combined image sampler) and returns the RGBA it read.
fn sample_through(ctx: &vulkan::VulkanContext, sampler: &vulkan::YcbcrSampler, points: &[[f32; 2]]) -> Vec<[f32; 4]> {
    let device = ctx.device();
    let size = (points.len() * 16) as u64;
    let (buffer, memory) = host_buffer(ctx, size, vk::BufferUsageFlags::STORAGE_BUFFER);
    // SAFETY: (test) every object below is created, used by one waited-for
    // submission, and destroyed here; the buffer memory is host-coherent.
    unsafe {
        let ptr = device
            .map_memory(memory, 0, size, vk::MemoryMapFlags::empty())
            .unwrap()
            .cast::<f32>();
        for (i, p) in points.iter().enumerate() {
            std::ptr::copy_nonoverlapping([p[0], p[1], 0.0, 0.0].as_ptr(), ptr.add(i * 4), 4);
        }
        let immutable = [sampler.sampler()];
        let bindings = [
            vk::DescriptorSetLayoutBinding::default()
                .binding(0)
                .descriptor_type(vk::DescriptorType::COMBINED_IMAGE_SAMPLER)
                .descriptor_count(1)
                .stage_flags(vk::ShaderStageFlags::COMPUTE)
                .immutable_samplers(&immutable),
            vk::DescriptorSetLayoutBinding::default()
                .binding(1)
                .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                .descriptor_count(1)
                .stage_flags(vk::ShaderStageFlags::COMPUTE),
        ];
        let set_layout = device
            .create_descriptor_set_layout(&vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings), None)
            .unwrap();
        let layouts = [set_layout];
        let pipeline_layout = device
            .create_pipeline_layout(&vk::PipelineLayoutCreateInfo::default().set_layouts(&layouts), None)
            .unwrap();
        let module = device
            .create_shader_module(&vk::ShaderModuleCreateInfo::default().code(YCBCR_PROBE), None)
            .unwrap();
        let stage = vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::COMPUTE)
            .module(module)
            .name(c"main");
        let pipeline = device
            .create_compute_pipelines(
                vk::PipelineCache::null(),
                &[vk::ComputePipelineCreateInfo::default()
                    .stage(stage)
                    .layout(pipeline_layout)],
                None,
            )
            .map_err(|(_, e)| e)
            .unwrap()[0];
        // A YCbCr sampler may take several descriptors
        // (combinedImageSamplerDescriptorCount): room for three.
        let sizes = [
            vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::COMBINED_IMAGE_SAMPLER)
                .descriptor_count(3),
            vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::STORAGE_BUFFER)
                .descriptor_count(1),
        ];
        let pool = device
            .create_descriptor_pool(
                &vk::DescriptorPoolCreateInfo::default().max_sets(1).pool_sizes(&sizes),
                None,
            )
            .unwrap();
        let set = device
            .allocate_descriptor_sets(
                &vk::DescriptorSetAllocateInfo::default()
                    .descriptor_pool(pool)
                    .set_layouts(&layouts),
            )
            .unwrap()[0];
        let image_info = [vk::DescriptorImageInfo::default()
            .image_view(sampler.view())
            .image_layout(vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)];
        let buffer_info = [vk::DescriptorBufferInfo::default().buffer(buffer).range(size)];
        device.update_descriptor_sets(
            &[
                vk::WriteDescriptorSet::default()
                    .dst_set(set)
                    .dst_binding(0)
                    .descriptor_type(vk::DescriptorType::COMBINED_IMAGE_SAMPLER)
                    .image_info(&image_info),
                vk::WriteDescriptorSet::default()
                    .dst_set(set)
                    .dst_binding(1)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .buffer_info(&buffer_info),
            ],
            &[],
        );
        let (cmd_pool, cb) = command_buffer(ctx);
        let image = sampler.image();
        image.cmd_acquire(
            cb,
            vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
            vk::PipelineStageFlags::COMPUTE_SHADER,
            vk::AccessFlags::SHADER_READ,
        );
        device.cmd_bind_pipeline(cb, vk::PipelineBindPoint::COMPUTE, pipeline);
        device.cmd_bind_descriptor_sets(cb, vk::PipelineBindPoint::COMPUTE, pipeline_layout, 0, &[set], &[]);
        device.cmd_dispatch(cb, points.len() as u32, 1, 1);
        image.cmd_release(
            cb,
            vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
            vk::PipelineStageFlags::COMPUTE_SHADER,
            vk::AccessFlags::empty(),
        );
        let to_host = vk::BufferMemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::SHADER_WRITE)
            .dst_access_mask(vk::AccessFlags::HOST_READ)
            .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
            .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
            .buffer(buffer)
            .size(vk::WHOLE_SIZE);
        device.cmd_pipeline_barrier(
            cb,
            vk::PipelineStageFlags::COMPUTE_SHADER,
            vk::PipelineStageFlags::HOST,
            vk::DependencyFlags::empty(),
            &[],
            &[to_host],
            &[],
        );
        submit_and_wait(ctx, cb);
        let mut out = vec![[0f32; 4]; points.len()];
        std::ptr::copy_nonoverlapping(ptr, out.as_mut_ptr().cast::<f32>(), points.len() * 4);
        device.unmap_memory(memory);
        device.destroy_command_pool(cmd_pool, None);
        device.destroy_descriptor_pool(pool, None);
        device.destroy_pipeline(pipeline, None);
        device.destroy_shader_module(module, None);
        device.destroy_pipeline_layout(pipeline_layout, None);
        device.destroy_descriptor_set_layout(set_layout, None);
        device.destroy_buffer(buffer, None);
        device.free_memory(memory, None);
        out
    }
}

/// A command pool and one primary command buffer, recording.
fn command_buffer(ctx: &vulkan::VulkanContext) -> (vk::CommandPool, vk::CommandBuffer) {
    let device = ctx.device();
    // SAFETY: (test) plain creation; the caller destroys the pool.
    unsafe {
        let pool = device
            .create_command_pool(
                &vk::CommandPoolCreateInfo::default().queue_family_index(ctx.queue_family()),
                None,
            )
            .unwrap();
        let cb = device
            .allocate_command_buffers(
                &vk::CommandBufferAllocateInfo::default()
                    .command_pool(pool)
                    .level(vk::CommandBufferLevel::PRIMARY)
                    .command_buffer_count(1),
            )
            .unwrap()[0];
        device
            .begin_command_buffer(cb, &vk::CommandBufferBeginInfo::default())
            .unwrap();
        (pool, cb)
    }
}

/// Ends `cb`, submits it to the context's queue and waits.
fn submit_and_wait(ctx: &vulkan::VulkanContext, cb: vk::CommandBuffer) {
    let fence = submit(ctx, cb, None);
    // SAFETY: (test) our fence, submitted.
    unsafe {
        ctx.device().wait_for_fences(&[fence], true, u64::MAX).unwrap();
        ctx.device().destroy_fence(fence, None);
    }
}

/// Ends `cb` and submits it to the context's queue with a new fence,
/// after `wait` (a timeline semaphore and the value to wait for), if any.
fn submit(ctx: &vulkan::VulkanContext, cb: vk::CommandBuffer, wait: Option<(vk::Semaphore, u64)>) -> vk::Fence {
    let device = ctx.device();
    let cbs = [cb];
    let (waits, values): (Vec<_>, Vec<_>) = wait.into_iter().unzip();
    let stages = vec![vk::PipelineStageFlags::ALL_COMMANDS; waits.len()];
    let mut timeline = vk::TimelineSemaphoreSubmitInfo::default().wait_semaphore_values(&values);
    let mut info = vk::SubmitInfo::default()
        .command_buffers(&cbs)
        .wait_semaphores(&waits)
        .wait_dst_stage_mask(&stages);
    if wait.is_some() {
        info = info.push_next(&mut timeline);
    }
    // SAFETY: (test) `cb` is recording; the queue is locked.
    unsafe {
        device.end_command_buffer(cb).unwrap();
        let fence = device.create_fence(&vk::FenceCreateInfo::default(), None).unwrap();
        let queue = ctx.lock_queue();
        device.queue_submit(*queue, &[info], fence).unwrap();
        fence
    }
}

/// BT.709 limited range, as the sampler's conversion: normalized RGB.
fn bt709_limited(y: u8, u: u8, v: u8) -> [f32; 3] {
    let (y, u, v) = (
        (f32::from(y) - 16.0) / 219.0,
        (f32::from(u) - 128.0) / 224.0,
        (f32::from(v) - 128.0) / 224.0,
    );
    [y + 1.5748 * v, y - 0.1873 * u - 0.4681 * v, y + 1.8556 * u].map(|c| c.clamp(0.0, 1.0))
}

#[test]
fn ycbcr_sampler_returns_rgb_in_a_shader() {
    let ctx = vulkan();
    assert!(
        ctx.capabilities().ycbcr_conversion,
        "lavapipe supports samplerYcbcrConversion"
    );
    // NV12 with four flat quadrants, each its own (Y, U, V).
    let (w, h) = (64u32, 32u32);
    // Colours inside the RGB gamut, so that no clamping is involved.
    let quads: [(u8, u8, u8); 4] = [(100, 100, 160), (150, 150, 110), (60, 140, 130), (180, 128, 128)];
    let quad = |x: u32, y: u32| quads[(usize::from(y >= h / 2) << 1) | usize::from(x >= w / 2)];
    let luma: Vec<u8> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| quad(x, y).0)
        .collect();
    let chroma: Vec<u8> = (0..h / 2)
        .flat_map(|y| (0..w / 2).map(move |x| (2 * x, 2 * y)))
        .flat_map(|(x, y)| [quad(x, y).1, quad(x, y).2])
        .collect();
    let layout = vulkan::linear_layout(&ctx, DrmFourcc::Nv12, w, h, IMPORT_USAGE).unwrap();
    let buf = MemfdAllocator::new()
        .allocate_layout(DrmFourcc::Nv12, w, h, &layout)
        .unwrap();
    write_planes(&buf, &[luma, chroma]);
    // The expectation below is BT.709 limited range.
    let buf = buf.with_colorimetry(Colorimetry::BT709);
    let image = Arc::new(vulkan::import(&ctx, &buf, IMPORT_USAGE).unwrap());
    let sampler = vulkan::YcbcrSampler::new(&image).unwrap();
    // Texel centres in the middle of each quadrant, where chroma siting and
    // filtering cannot matter.
    let centres = [(16, 8), (48, 8), (16, 24), (48, 24)];
    let points: Vec<[f32; 2]> = centres
        .iter()
        .map(|&(x, y)| [(x as f32 + 0.5) / w as f32, (y as f32 + 0.5) / h as f32])
        .collect();
    let got = sample_through(&ctx, &sampler, &points);
    for (&(x, y), rgba) in centres.iter().zip(&got) {
        let (yy, u, v) = quad(x, y);
        let want = bt709_limited(yy, u, v);
        println!("({x},{y}) YUV ({yy},{u},{v}) -> {rgba:?}, BT.709 says {want:?}");
        for c in 0..3 {
            assert!(
                (rgba[c] - want[c]).abs() <= 2.0 / 255.0,
                "({x},{y}) channel {c}: sampled {} want {}",
                rgba[c],
                want[c]
            );
        }
        assert!((rgba[3] - 1.0).abs() < 1e-3, "alpha {}", rgba[3]);
    }
    // The sampler keeps its image alive; both go with the sampler.
    drop(image);
    drop(sampler);
    ctx.collect_retired();
    // Other YUV formats get a conversion too; RGB images have none.
    for fourcc in [DrmFourcc::Yuv420, DrmFourcc::P010] {
        let layout = vulkan::linear_layout(&ctx, fourcc, 64, 32, IMPORT_USAGE).unwrap();
        let buf = MemfdAllocator::new().allocate_layout(fourcc, 64, 32, &layout).unwrap();
        let image = Arc::new(vulkan::import(&ctx, &buf, IMPORT_USAGE).unwrap());
        vulkan::YcbcrSampler::new(&image).unwrap_or_else(|e| panic!("{fourcc}: {e}"));
    }
    let rgb = pattern_dmabuf(&ctx, DrmFourcc::Xrgb8888, 16, 16, 0);
    let image = Arc::new(vulkan::import(&ctx, &rgb, IMPORT_USAGE).unwrap());
    assert!(matches!(vulkan::YcbcrSampler::new(&image), Err(VulkanError::Usage(_))));
    assert_no_validation_messages(&ctx);
}

#[test]
fn images_in_a_pending_submission_are_destroyed_after_it() {
    // Before: dropping an image (or an ImportCache purge) destroyed its
    // Vulkan objects at once, while a submission the caller had recorded
    // with cmd_acquire/cmd_release could still be running on the GPU
    // (VUID-vkDestroyImage-image-01000).
    let ctx = vulkan();
    let device = ctx.device();
    let buf = pattern_dmabuf(&ctx, DrmFourcc::Xrgb8888, 64, 64, 3);
    let mut cache = ImportCache::new(&ctx, IMPORT_USAGE);
    let image = cache.get_or_import(&buf).unwrap();
    assert!(
        ctx.capabilities().timeline_semaphore,
        "lavapipe has timeline semaphores"
    );
    let (pool, cb) = command_buffer(&ctx);
    // SAFETY: (test) `cb` is recording and goes to the context's queue
    // before the image is dropped (cmd_acquire's contract).
    unsafe {
        image.cmd_acquire(
            cb,
            vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
            vk::PipelineStageFlags::TRANSFER,
            vk::AccessFlags::TRANSFER_READ,
        );
        image.cmd_release(
            cb,
            vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
            vk::PipelineStageFlags::TRANSFER,
            vk::AccessFlags::empty(),
        );
    }
    // The submission waits for value 1 of a timeline semaphore that only
    // the host signals, later.
    let mut timeline_info = vk::SemaphoreTypeCreateInfo::default().semaphore_type(vk::SemaphoreType::TIMELINE);
    // SAFETY: (test) plain creation; destroyed below after the fence.
    let gate =
        unsafe { device.create_semaphore(&vk::SemaphoreCreateInfo::default().push_next(&mut timeline_info), None) }
            .unwrap();
    let fence = submit(&ctx, cb, Some((gate, 1)));

    // The source dies and the cache purges: the last reference to the image
    // goes while the GPU still waits in the submission.
    drop(image);
    drop(buf);
    assert_eq!(cache.purge(), 1);
    std::thread::sleep(std::time::Duration::from_millis(100));
    // SAFETY: (test) our fence.
    let signalled = unsafe { device.get_fence_status(fence) }.unwrap();
    assert!(!signalled, "the submission must still be pending");
    assert_eq!(ctx.retired_pending(), 1, "destruction deferred");
    assert_eq!(ctx.collect_retired(), 1, "not before the submission ends");
    // SAFETY: (test) our semaphore and fence.
    unsafe {
        device
            .signal_semaphore(&vk::SemaphoreSignalInfo::default().semaphore(gate).value(1))
            .unwrap();
        device.wait_for_fences(&[fence], true, u64::MAX).unwrap();
    }
    // The retirement's own (empty) submission signals right after; the
    // emulated CPU of the VM stage may take a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ctx.collect_retired() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "not destroyed 10 s after the queue finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: (test) the submission finished.
    unsafe {
        device.destroy_fence(fence, None);
        device.destroy_semaphore(gate, None);
        device.destroy_command_pool(pool, None);
    }
    assert_no_validation_messages(&ctx);
}
