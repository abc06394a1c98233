//! The GStreamer adapter's memory conversions against real GStreamer 1.22:
//! `DmaBuf` -> dma-buf memory buffers -> `DmaBuf`, through real pipelines.
#![cfg(feature = "gstreamer")]

mod common;

use common::gst::{child, init, launch, linear_xrgb_caps};
use common::*;
use dmabuf_interop::alloc::{Allocator, MemfdAllocator};
use dmabuf_interop::gst::{self as dgst, MemoryError};
use dmabuf_interop::reference::pattern;
use dmabuf_interop::{DmaBuf, DrmFourcc, DrmModifier};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

fn pattern_buf(fourcc: DrmFourcc, w: u32, h: u32, frame: u32) -> DmaBuf {
    let buf = MemfdAllocator::new().allocate(fourcc, w, h, 64).unwrap();
    let planes = pattern::frame_planes(fourcc, w, h, frame).unwrap_or_else(|_| ramp_planes(&buf, frame as u8));
    write_planes(&buf, &planes);
    buf
}

/// An empty memfd of `size` bytes.
fn memfd(size: u64) -> std::os::fd::OwnedFd {
    let fd = rustix::fs::memfd_create("plane", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&fd, size).unwrap();
    fd
}

fn video_info(fourcc: DrmFourcc, w: u32, h: u32) -> gst_video::VideoInfo {
    gst_video::VideoInfo::builder(dgst::caps::video_format(fourcc).unwrap(), w, h)
        .build()
        .unwrap()
}

#[test]
fn round_trip_keeps_identity_layout_and_pixels() {
    init();
    for (fourcc, w, h) in [
        (DrmFourcc::Nv12, 250, 76),
        (DrmFourcc::Xrgb8888, 33, 17),
        (DrmFourcc::Yuv420, 64, 48),
    ] {
        let src = pattern_buf(fourcc, w, h, 4);
        let buffer = dgst::buffer_from_dmabuf(&src).unwrap();
        assert!(dgst::is_dmabuf_buffer(&buffer));
        assert_eq!(buffer.n_memory(), 1, "planes sharing a file share one memory");
        let meta = buffer.meta::<gst_video::VideoMeta>().expect("VideoMeta");
        let want_offsets: Vec<usize> = src.planes().iter().map(|p| p.offset() as usize).collect();
        let want_strides: Vec<i32> = src.planes().iter().map(|p| p.stride() as i32).collect();
        assert_eq!(meta.offset(), &want_offsets[..]);
        assert_eq!(meta.stride(), &want_strides[..]);
        let back = dgst::dmabuf_from_buffer(&buffer, &video_info(fourcc, w, h), DrmModifier::Linear).unwrap();
        assert_eq!(back.id(), src.id(), "same files, offsets and strides");
        assert_eq!(read_planes(&back), read_planes(&src));
        if let Ok(want) = pattern::frame_planes(fourcc, w, h, 4) {
            assert_eq!(read_planes(&back), want);
        }
    }
}

#[test]
fn planes_in_separate_files_become_separate_memories() {
    init();
    let (w, h) = (64u32, 32u32);
    let src = DmaBuf::builder(DrmFourcc::Yuv420, DrmModifier::Linear, w, h)
        .plane(memfd(4096), 0, 64)
        .plane(memfd(4096), 128, 32)
        .plane(memfd(4096), 256, 32)
        .build()
        .unwrap();
    write_planes(&src, &ramp_planes(&src, 3));
    let buffer = dgst::buffer_from_dmabuf(&src).unwrap();
    assert_eq!(buffer.n_memory(), 3);
    // VideoMeta offsets count across memories (4096 bytes each).
    let meta = buffer.meta::<gst_video::VideoMeta>().unwrap();
    assert_eq!(meta.offset(), &[0, 4096 + 128, 8192 + 256]);
    let back = dgst::dmabuf_from_buffer(&buffer, &video_info(DrmFourcc::Yuv420, w, h), DrmModifier::Linear).unwrap();
    assert_eq!(back.id(), src.id());
    assert_eq!(read_planes(&back), read_planes(&src));
}

/// A compression modifier's auxiliary plane (Y-tiled CCS: XRGB data plus
/// its metadata plane, as GPUs export it) travels as a second memory and a
/// second VideoMeta plane, beyond the format's one plane: reading the
/// buffer back keeps it (it was dropped, leaving a buffer the importer
/// would read uncompressed). For LINEAR, where no auxiliary plane exists,
/// the extra plane is a typed error.
#[test]
fn auxiliary_planes_of_a_vendor_modifier_travel_with_the_buffer() {
    init();
    let (w, h) = (64u32, 32u32);
    let ccs = DrmModifier::I915_y_tiled_ccs;
    let src = DmaBuf::builder(DrmFourcc::Xrgb8888, ccs, w, h)
        .plane(memfd(w as u64 * 4 * h as u64), 0, w * 4)
        .plane(memfd(4096), 0, 128)
        .build()
        .unwrap();
    let buffer = dgst::buffer_from_dmabuf(&src).unwrap();
    assert_eq!(buffer.n_memory(), 2);
    assert_eq!(buffer.meta::<gst_video::VideoMeta>().unwrap().n_planes(), 2);
    let info = video_info(DrmFourcc::Xrgb8888, w, h);
    let back = dgst::dmabuf_from_buffer(&buffer, &info, ccs).unwrap();
    assert_eq!(back.planes().len(), 2, "the auxiliary plane is kept");
    assert_eq!(back.id(), src.id());
    match dgst::dmabuf_from_buffer(&buffer, &info, DrmModifier::Linear) {
        Err(MemoryError::DmaBuf(dmabuf_interop::DmaBufError::WrongPlaneCount { given: 2, max: 1, .. })) => {}
        other => panic!("expected WrongPlaneCount, got {other:?}"),
    }
}

#[test]
fn system_memory_is_never_taken_for_dmabuf() {
    init();
    let info = video_info(DrmFourcc::Xrgb8888, 16, 16);
    let buffer = gst::Buffer::with_size(info.size()).unwrap();
    assert!(!dgst::is_dmabuf_buffer(&buffer));
    let err = dgst::dmabuf_from_buffer(&buffer, &info, DrmModifier::Linear).unwrap_err();
    assert!(
        matches!(err, MemoryError::NotDmaBuf { index: 0, count: 1, .. }),
        "{err}"
    );
    // A mixed buffer: dma-buf memory then system memory.
    let src = pattern_buf(DrmFourcc::Xrgb8888, 16, 16, 0);
    let mut mixed = dgst::buffer_from_dmabuf(&src).unwrap();
    mixed.get_mut().unwrap().append_memory(gst::Memory::with_size(64));
    let err = dgst::dmabuf_from_buffer(&mixed, &info, DrmModifier::Linear).unwrap_err();
    assert!(
        matches!(err, MemoryError::NotDmaBuf { index: 1, count: 2, .. }),
        "{err}"
    );
    assert!(!dgst::is_dmabuf_buffer(&mixed));
}

#[test]
fn mappable_dmabufs_work_with_ordinary_elements_under_plain_caps() {
    init();
    let (w, h) = (320u32, 240u32);
    let caps = linear_xrgb_caps(w, h, false, true);
    assert!(
        caps.features(0)
            .is_none_or(|f| !f.contains(dgst::CAPS_FEATURE_MEMORY_DMABUF))
    );
    let pipeline = launch(&format!(
        "appsrc name=src format=time caps=\"{caps}\" ! videoconvert ! video/x-raw,format=RGBx ! appsink name=sink sync=false"
    ));
    let src = child::<gst_app::AppSrc>(&pipeline, "src");
    let sink = child::<gst_app::AppSink>(&pipeline, "sink");
    pipeline.set_state(gst::State::Playing).unwrap();
    let frames = 5;
    for frame in 0..frames {
        let buf = pattern_buf(DrmFourcc::Xrgb8888, w, h, frame);
        let mut buffer = dgst::buffer_from_dmabuf(&buf).unwrap();
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(33 * frame as u64));
        src.push_buffer(buffer).unwrap();
    }
    src.end_of_stream().unwrap();
    for frame in 0..frames {
        let sample = sink.pull_sample().expect("sample");
        let buffer = sample.buffer().unwrap();
        let map = buffer.map_readable().unwrap();
        // RGBx of the pattern: videoconvert mapped our dma-buf and reordered.
        let want = pattern::frame_planes(DrmFourcc::Xbgr8888, w, h, frame).unwrap();
        let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        let stride = info.stride()[0] as usize;
        for y in [0usize, 100, 239] {
            for x in [0usize, 150, 319] {
                let got = &map[y * stride + x * 4..y * stride + x * 4 + 3];
                let at = (y * w as usize + x) * 4;
                assert_eq!(got, &want[0][at..at + 3], "frame {frame} pixel ({x},{y})");
            }
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn dmabuf_cache_is_shared_safely_between_threads() {
    // Before: the cache lived in qdata on GStreamer's memories; two tee
    // branches with different keys replaced each other's entry while the
    // other still read it (use after free), and an empty buffer panicked.
    init();
    let buffers: Vec<gst::Buffer> = (0..6)
        .map(|i| dgst::buffer_from_dmabuf(&pattern_buf(DrmFourcc::Xrgb8888, 32, 8, i)).unwrap())
        .collect();
    let info = video_info(DrmFourcc::Xrgb8888, 32, 8);
    // One cache per consumer, as tee branches have; two consumers read the
    // same buffers with different keys (modifiers), from 4 threads each.
    let caches = [dgst::DmaBufCache::new(), dgst::DmaBufCache::with_capacity(3)];
    let modifiers = [DrmModifier::Linear, DrmModifier::Invalid];
    let ids = std::sync::Mutex::new(std::collections::HashMap::new());
    std::thread::scope(|s| {
        for t in 0..8 {
            let (cache, modifier) = (&caches[t % 2], modifiers[t % 2]);
            let (buffers, info, ids) = (&buffers, &info, &ids);
            s.spawn(move || {
                for round in 0..200 {
                    let i = (round * 7 + t) % buffers.len();
                    let buf = cache.get(&buffers[i], info, modifier).expect("cached import");
                    assert_eq!(buf.modifier(), modifier, "thread {t} got another consumer's entry");
                    assert_eq!(buf.width(), 32);
                    if t % 2 == 0 {
                        // The big cache never evicts: one identity per storage.
                        let first = ids.lock().unwrap().entry(i).or_insert(buf.id()).clone();
                        assert_eq!(buf.id(), first, "buffer {i} changed identity");
                    }
                }
            });
        }
    });
    assert_eq!(caches[0].len(), 6);
    assert_eq!(caches[1].len(), 3, "capacity bounds the cache");
    // A renegotiated stream drops the old stream's entries.
    let smaller = video_info(DrmFourcc::Xrgb8888, 16, 8);
    caches[0].get(&buffers[0], &smaller, DrmModifier::Linear).unwrap();
    assert_eq!(caches[0].len(), 1);
    // No memory: a typed error, not a panic.
    let empty = gst::Buffer::new();
    assert!(matches!(
        caches[0].get(&empty, &info, DrmModifier::Linear),
        Err(MemoryError::Empty)
    ));
    // Nothing was written on GStreamer's memories: the entries (and their
    // fd dups) live in the caches only, and go with them. (Weak references
    // rather than fd counts: other tests of this binary run in parallel.)
    let mut entries = vec![
        caches[0]
            .get(&buffers[0], &smaller, DrmModifier::Linear)
            .unwrap()
            .downgrade(),
    ];
    for buffer in &buffers[..3] {
        entries.push(caches[1].get(buffer, &info, DrmModifier::Invalid).unwrap().downgrade());
    }
    assert_eq!((caches[0].len(), caches[1].len()), (1, 3));
    assert!(entries.iter().all(|w| w.is_alive()));
    drop(caches);
    assert!(
        entries.iter().all(|w| !w.is_alive()),
        "dropping the caches drops their DmaBufs and dups"
    );
}
