//! Per-frame cost of getting a frame into a `VkImage` on this machine's
//! Vulkan device (lavapipe in CI): importing the dma-buf (uncached: image +
//! memory import + views each time), the import cache hit, and the copy
//! alternative (staging buffer + `vkCmdCopyBufferToImage` + fence wait).
//! Compare within one run: `scripts/bench` prints the ratios.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use dmabuf_interop::DrmFourcc;
use dmabuf_interop::alloc::{Allocator, MemfdAllocator};
use dmabuf_interop::reference::pattern;
use dmabuf_interop::vulkan::{self, ContextOptions, ImportCache, VulkanContext, ash::vk};

fn import_cost(c: &mut Criterion) {
    let ctx: Arc<VulkanContext> = VulkanContext::new(&ContextOptions::default()).expect("Vulkan (run scripts/setup)");
    let usage = vk::ImageUsageFlags::SAMPLED | vk::ImageUsageFlags::TRANSFER_DST;
    let fourcc = DrmFourcc::Xrgb8888;
    for (w, h) in [(1280u32, 720u32), (1920, 1080), (3840, 2160)] {
        let layout = vulkan::linear_layout(&ctx, fourcc, w, h, usage).expect("layout");
        let buf = MemfdAllocator::new()
            .allocate_layout(fourcc, w, h, &layout)
            .expect("allocate");
        let planes = pattern::frame_planes(fourcc, w, h, 0).expect("pattern");
        let plane_refs: Vec<&[u8]> = planes.iter().map(Vec::as_slice).collect();
        let mut group = c.benchmark_group(format!("vulkan_xrgb8888_{w}x{h}"));
        group.sample_size(20);
        group.bench_function("import_uncached", |b| {
            b.iter(|| vulkan::import(&ctx, &buf, usage).expect("import"))
        });
        let mut cache = ImportCache::new(&ctx, usage);
        cache.get_or_import(&buf).expect("first import");
        group.bench_function("import_cached", |b| {
            b.iter(|| cache.get_or_import(&buf).expect("cached"))
        });
        let target = vulkan::import(&ctx, &buf, usage).expect("import");
        group.bench_function("copy_upload", |b| {
            b.iter(|| target.upload(&plane_refs).expect("upload"))
        });
        group.finish();
    }
}

criterion_group!(benches, import_cost);
criterion_main!(benches);
