#![cfg(feature = "vulkan")]
mod common;
use dmabuf_interop::DrmFourcc;
use dmabuf_interop::overlay::Overlay;
use dmabuf_interop::vulkan::{self, ContextOptions, Exporter, Kernels, VulkanContext, ash::vk};
#[test]
fn probe() {
    let ctx = VulkanContext::new(&ContextOptions::default()).unwrap();
    let exporter = Exporter::new(&ctx).unwrap();
    let kernels = Kernels::new(&ctx).unwrap();
    let overlay = Overlay {
        frame: 1,
        progress: None,
    };
    let (w, h) = (16, 16);
    let out = exporter
        .export(DrmFourcc::Xrgb8888, w, h, kernels.composite_output_usage(), &[])
        .unwrap();
    let st = exporter
        .export(DrmFourcc::Xrgb8888, w, h, vk::ImageUsageFlags::STORAGE, &[])
        .unwrap();
    let frame = common::pattern_dmabuf(&ctx, DrmFourcc::Xrgb8888, w, h, 5);
    let video = vulkan::import(&ctx, &frame, kernels.composite_video_usage()).unwrap();
    for (name, o) in [("attach", &out), ("storage", &st)] {
        let t = std::time::Instant::now();
        for _ in 0..2000 {
            kernels.composite(&video, o, &overlay).unwrap();
        }
        eprintln!("{name}: {:?} per composite", t.elapsed() / 2000);
        let t = std::time::Instant::now();
        for i in 0..2000 {
            kernels.draw_pattern(o, i).unwrap();
        }
        eprintln!("{name}: {:?} per pattern", t.elapsed() / 2000);
    }
}
