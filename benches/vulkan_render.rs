//! Per-frame cost of the kernels on this machine's Vulkan device (lavapipe
//! in CI), each frame submitted and waited for: the viewer's composite
//! (video + overlay into an XRGB8888 export) by the compute kernel (storage
//! output), by the graphics path drawing the video (a fullscreen triangle)
//! and by the graphics path copying it (`vkCmdCopyImage`), each with the
//! overlay; and vkdmabufsrc's pattern by the compute kernel against the
//! graphics path (clears + one quad); and wldmabufsink's conversion of an
//! NV12 frame the compositor would misread: on the GPU
//! (`Kernels::convert_submit`, no overlay), on the GPU after a copy-in (a
//! layout the device does not import: `CopyIn` copies the frame into an
//! image of its own first) and on the CPU (`convert::to_xrgb8888`, what
//! goes into wl_shm). Compare within one run: `scripts/bench` prints the
//! ratios.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use dmabuf_interop::DrmFourcc;
use dmabuf_interop::alloc::{Allocator, MemfdAllocator};
use dmabuf_interop::reference::overlay::Overlay;
use dmabuf_interop::reference::pattern;
use dmabuf_interop::vulkan::{self, ContextOptions, CopyIn, Exporter, Kernels, VideoPass, VulkanContext, ash::vk};

fn render_cost(c: &mut Criterion) {
    let ctx: Arc<VulkanContext> = VulkanContext::new(&ContextOptions::default()).expect("Vulkan (run scripts/setup)");
    let mut kernels = Kernels::new(&ctx).expect("kernels");
    let exporter = Exporter::new(&ctx).expect("exporter");
    let video_usage = vk::ImageUsageFlags::SAMPLED | vk::ImageUsageFlags::TRANSFER_SRC;
    let overlay = Overlay {
        frame: 123456,
        progress: Some(400),
    };
    for (w, h) in [(1920u32, 1080u32), (3840, 2160)] {
        let mut group = c.benchmark_group(format!("render_{w}x{h}"));
        group.sample_size(10);
        for (name, fourcc) in [("xrgb8888", DrmFourcc::Xrgb8888), ("nv12", DrmFourcc::Nv12)] {
            let layout = vulkan::linear_layout(&ctx, fourcc, w, h, video_usage).expect("layout");
            let buf = MemfdAllocator::new()
                .allocate_layout(fourcc, w, h, &layout)
                .expect("allocate");
            let video = vulkan::import(&ctx, &buf, video_usage).expect("import");
            let storage = exporter
                .export(DrmFourcc::Xrgb8888, w, h, vk::ImageUsageFlags::STORAGE, &[])
                .expect("storage export");
            let attachment = exporter
                .export(
                    DrmFourcc::Xrgb8888,
                    w,
                    h,
                    vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::TRANSFER_DST,
                    &[],
                )
                .expect("attachment export");
            group.bench_function(format!("composite_{name}_compute"), |b| {
                b.iter(|| kernels.composite(&video, &storage, &overlay).expect("composite"))
            });
            kernels.set_video_pass(VideoPass::Draw);
            group.bench_function(format!("composite_{name}_draw"), |b| {
                b.iter(|| kernels.composite(&video, &attachment, &overlay).expect("composite"))
            });
            if fourcc == DrmFourcc::Nv12 {
                let fence = dmabuf_interop::sync::Fence::Implicit;
                group.bench_function("convert_nv12_gpu", |b| {
                    b.iter(|| {
                        kernels
                            .convert_submit(&video, &attachment, &fence)
                            .and_then(|s| s.wait())
                            .expect("convert")
                    })
                });
                let mut copy_in =
                    CopyIn::new(&exporter, fourcc, w, h, vk::ImageUsageFlags::SAMPLED).expect("copy-in image");
                group.bench_function("convert_nv12_copy_in", |b| {
                    b.iter(|| {
                        let copied = copy_in.copy(&buf).expect("copy in");
                        kernels
                            .convert_submit(copied, &attachment, &fence)
                            .and_then(|s| s.wait())
                            .expect("convert")
                    })
                });
                let map = buf.map(dmabuf_interop::mapping::MapAccess::Read).expect("map");
                let planes: Vec<(Vec<u8>, usize)> = (0..2)
                    .map(|i| (map.read_plane(i).expect("plane"), buf.planes()[i].stride() as usize))
                    .collect();
                drop(map);
                let views: Vec<(&[u8], usize)> = planes.iter().map(|(p, s)| (p.as_slice(), *s)).collect();
                let mut out = vec![0u8; (w * h * 4) as usize];
                let colorimetry = dmabuf_interop::colour::Colorimetry::BT709;
                group.bench_function("convert_nv12_cpu", |b| {
                    b.iter(|| {
                        dmabuf_interop::convert::to_xrgb8888(
                            fourcc,
                            w,
                            h,
                            &views,
                            colorimetry,
                            &mut out,
                            (w * 4) as usize,
                        )
                        .expect("convert")
                    })
                });
            }
            if fourcc == DrmFourcc::Xrgb8888 {
                kernels.set_video_pass(VideoPass::Copy);
                group.bench_function(format!("composite_{name}_copy"), |b| {
                    b.iter(|| kernels.composite(&video, &attachment, &overlay).expect("composite"))
                });
            }
            kernels.set_video_pass(VideoPass::Auto);
        }
        let storage = exporter
            .export(DrmFourcc::Xrgb8888, w, h, vk::ImageUsageFlags::STORAGE, &[])
            .expect("storage export");
        let attachment = exporter
            .export(DrmFourcc::Xrgb8888, w, h, vk::ImageUsageFlags::COLOR_ATTACHMENT, &[])
            .expect("attachment export");
        let mut frame = 0;
        group.bench_function("pattern_compute", |b| {
            b.iter(|| {
                frame += 1;
                kernels.draw_pattern(&storage, frame).expect("pattern")
            })
        });
        group.bench_function("pattern_graphics", |b| {
            b.iter(|| {
                frame += 1;
                kernels.draw_pattern(&attachment, frame).expect("pattern")
            })
        });
        // The CPU's own pattern into memory, for scale.
        let mut planes = Vec::new();
        group.bench_function("pattern_cpu", |b| {
            b.iter(|| {
                frame += 1;
                planes = pattern::frame_planes(DrmFourcc::Xrgb8888, w, h, frame).expect("pattern");
            })
        });
        group.finish();
    }
}

criterion_group!(benches, render_cost);
criterion_main!(benches);
