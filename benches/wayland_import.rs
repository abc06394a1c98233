//! Per-frame cost of getting a frame to a Wayland compositor (a private
//! headless Weston 14, GL renderer on llvmpipe): a linux-dmabuf `wl_buffer`
//! from the cache, a new one (params + `create_immed` + roundtrip: Weston
//! imports the dma-buf right there), a whole present of a cached buffer
//! (attach + commit + roundtrip), the `wl_shm` fallback's present (copy +
//! attach + commit + roundtrip), and a plain memcpy of the frame. Compare
//! within one run: `scripts/bench` prints the ratios.

use criterion::{Criterion, criterion_group, criterion_main};
use dmabuf_interop::DrmFourcc;
use dmabuf_interop::alloc::{Allocator, MemfdAllocator};
use dmabuf_interop::colour::Colorimetry;
use dmabuf_interop::mapping::MapAccess;
use dmabuf_interop::reference::pattern;
use dmabuf_interop::wayland::headless::{Weston, WestonOptions};
use dmabuf_interop::wayland::{Presenter, Target};

fn present_cost(c: &mut Criterion) {
    let weston = Weston::start(WestonOptions {
        refresh_mhz: 1_000_000,
        ..Default::default()
    })
    .expect("Weston 14 (run scripts/setup)");
    let mut p = Presenter::connect_to(
        &weston.socket_path(),
        Target::Toplevel {
            title: "bench".into(),
            app_id: "bench".into(),
        },
    )
    .expect("connect");
    let fourcc = DrmFourcc::Xrgb8888;
    for (w, h) in [(1280u32, 720u32), (1920, 1080), (3840, 2160)] {
        let buf = MemfdAllocator::new().allocate(fourcc, w, h, 64).expect("allocate");
        let planes = pattern::frame_planes(fourcc, w, h, 0).expect("pattern");
        {
            let mut map = buf.map(MapAccess::ReadWrite).expect("map");
            map.write_rows(0, &planes[0], w as usize * 4).expect("write rows");
        }
        let mut group = c.benchmark_group(format!("wayland_xrgb8888_{w}x{h}"));
        group.sample_size(20);
        group.bench_function("roundtrip", |b| b.iter(|| p.roundtrip().expect("roundtrip")));
        group.bench_function("wl_buffer_uncached", |b| {
            b.iter(|| {
                p.wl_buffer_for(&buf).expect("wl_buffer");
                p.roundtrip().expect("roundtrip");
                p.forget(&buf);
            })
        });
        p.wl_buffer_for(&buf).expect("wl_buffer");
        group.bench_function("wl_buffer_cached", |b| {
            b.iter(|| p.wl_buffer_for(&buf).expect("cached"))
        });
        group.bench_function("present_dmabuf", |b| {
            b.iter(|| {
                p.present(&buf, Box::new(())).expect("present");
                p.roundtrip().expect("roundtrip");
            })
        });
        let frame = &planes[0];
        group.bench_function("present_shm", |b| {
            b.iter(|| {
                p.present_memory(
                    fourcc,
                    w,
                    h,
                    &[(frame, w as usize * 4)],
                    Colorimetry::BT601,
                    Box::new(()),
                )
                .expect("present shm");
                p.roundtrip().expect("roundtrip");
            })
        });
        let mut copy = vec![0u8; frame.len()];
        group.bench_function("memcpy", |b| b.iter(|| copy.copy_from_slice(frame)));
        group.finish();
        p.forget(&buf);
    }
}

criterion_group!(benches, present_cost);
criterion_main!(benches);
