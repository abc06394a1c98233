//! What the hub costs per frame, beside what it saves.
//!
//! Per 1920x1080 and 3840x2160 NV12 frame: validating a `DmaBuf` (two
//! planes in one fd: fstat + fstatfs + checked arithmetic) and mapping it
//! for CPU access (mmap + DMA_BUF_IOCTL_SYNC bracket + munmap), next to a
//! memcpy of the same frame, the cost every zero-copy path avoids; and the
//! CPU conversion into XRGB8888 (`convert`, the sink's last resort where a
//! compositor takes NV12 by no path). Read the results as ratios within one
//! run: `scripts/bench` prints them.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use dmabuf_interop::alloc::{Allocator, MemfdAllocator};
use dmabuf_interop::colour::Colorimetry;
use dmabuf_interop::convert;
use dmabuf_interop::mapping::MapAccess;
use dmabuf_interop::{DmaBuf, DrmFourcc, DrmModifier};

fn hub(c: &mut Criterion) {
    let allocator = MemfdAllocator::new();
    for (w, h) in [(1920u32, 1080u32), (3840, 2160)] {
        let frame = allocator.allocate(DrmFourcc::Nv12, w, h, 64).expect("allocate");
        let fd = Arc::clone(frame.planes()[0].shared_fd());
        let (y, uv) = (&frame.planes()[0], &frame.planes()[1]);
        let mut group = c.benchmark_group(format!("nv12_{w}x{h}"));
        group.bench_function("validate", |b| {
            b.iter(|| {
                DmaBuf::builder(DrmFourcc::Nv12, DrmModifier::Linear, w, h)
                    .plane(Arc::clone(&fd), y.offset(), y.stride())
                    .plane(Arc::clone(&fd), uv.offset(), uv.stride())
                    .build()
                    .expect("valid")
            })
        });
        group.bench_function("map_unmap", |b| {
            b.iter(|| {
                let map = frame.map(MapAccess::Read).expect("map");
                black_box(map.plane_len(0).expect("plane"))
            })
        });
        let size = uv.offset() as usize + uv.stride() as usize * (h as usize).div_ceil(2);
        let src = vec![0x5au8; size];
        let mut dst = vec![0u8; size];
        group.bench_function("memcpy", |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(&dst);
            })
        });
        let (ys, uvs) = (y.stride() as usize, uv.stride() as usize);
        let planes = [(&src[..uv.offset() as usize], ys), (&src[uv.offset() as usize..], uvs)];
        let mut rgb = vec![0u8; w as usize * 4 * h as usize];
        group.bench_function("convert_xrgb8888", |b| {
            b.iter(|| {
                convert::to_xrgb8888(
                    DrmFourcc::Nv12,
                    w,
                    h,
                    black_box(&planes),
                    Colorimetry::BT709,
                    &mut rgb,
                    w as usize * 4,
                )
                .expect("convert");
                black_box(&rgb);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, hub);
criterion_main!(benches);
