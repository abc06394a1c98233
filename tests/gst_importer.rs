//! The importer with real upstream elements: our pool and allocator are
//! proposed in the ALLOCATION query, videotestsrc writes straight into
//! dma-bufs, system memory takes the counted copy path, and nothing is mapped
//! under memory:DMABuf caps.
#![cfg(feature = "gstreamer")]

mod common;

use common::gst::{appsink_pipeline, child, init, launch, linear_xrgb_caps};
use common::*;
use dmabuf_interop::DrmFourcc;
use dmabuf_interop::alloc::{Allocator, MemfdAllocator};
use dmabuf_interop::gst::{self as dgst, ImportError, Importer};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

const TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(10);

/// Runs `upstream ! appsink` and returns each frame's tightly packed planes
/// (the reference: GStreamer's own system-memory path).
fn reference_frames(upstream: &str, fourcc: DrmFourcc) -> Vec<Vec<Vec<u8>>> {
    let (pipeline, sink) = appsink_pipeline(upstream);
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut frames = Vec::new();
    while let Some(sample) = sink.try_pull_sample(TIMEOUT) {
        let info = gstreamer_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        let buffer = sample.buffer().unwrap();
        let frame = gstreamer_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).unwrap();
        let format = dmabuf_interop::format::info(fourcc).unwrap();
        let planes = format
            .planes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let row = p.min_row_bytes(info.width()).unwrap() as usize;
                let stride = frame.plane_stride()[i] as usize;
                let data = frame.plane_data(i as u32).unwrap();
                (0..p.rows(info.height()) as usize)
                    .flat_map(|y| data[y * stride..y * stride + row].iter().copied())
                    .collect()
            })
            .collect();
        frames.push(planes);
        if sink.is_eos() {
            break;
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    frames
}

/// Runs `upstream ! <importer>` and returns the frames and the stats.
fn import_all(upstream: &str, importer: &Importer) -> (Vec<Vec<Vec<u8>>>, Vec<bool>) {
    let pipeline = gst::Pipeline::new();
    // identity (passthrough) forwards the ALLOCATION query to the importer.
    let bin = gst::parse::bin_from_description(&format!("{upstream} ! identity"), true).unwrap();
    importer.appsink().set_property("sync", false);
    pipeline.add(&bin).unwrap();
    pipeline.add(importer.appsink()).unwrap();
    bin.link(importer.appsink()).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut frames = Vec::new();
    let mut from_our_allocator = Vec::new();
    while let Some(frame) = importer.pull(TIMEOUT).expect("import") {
        frames.push(read_planes(&frame.dmabuf));
        let buffer = frame.sample().buffer().unwrap();
        from_our_allocator.push(buffer.iter_memories().all(dgst::DmaBufPoolAllocator::owns));
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (frames, from_our_allocator)
}

#[test]
fn upstream_writes_straight_into_our_pool() {
    init();
    for (format, fourcc) in [
        ("NV12", DrmFourcc::Nv12),
        ("BGRx", DrmFourcc::Xrgb8888),
        ("I420", DrmFourcc::Yuv420),
    ] {
        let upstream =
            format!("videotestsrc num-buffers=30 pattern=smpte ! video/x-raw,format={format},width=320,height=240");
        let importer = Importer::new().unwrap();
        let (frames, ours) = import_all(&upstream, &importer);
        let stats = importer.stats();
        assert_eq!(frames.len(), 30, "{format}");
        assert_eq!(
            (stats.frames, stats.zero_copy, stats.copies),
            (30, 30, 0),
            "{format}: {stats:?}"
        );
        assert!(ours.iter().all(|&o| o), "{format}: every buffer from our allocator");
        assert!(stats.pool_allocations >= 2, "{stats:?}");
        // The pixels equal GStreamer's own system-memory path.
        let reference = reference_frames(&upstream, fourcc);
        assert_eq!(frames, reference, "{format}: pixels differ from the reference path");
    }
}

#[test]
fn system_memory_takes_the_counted_copy_path() {
    init();
    // appsrc pushes plain system-memory buffers: they must be copied, never
    // taken for dma-buf.
    let upstream = "videotestsrc num-buffers=10 pattern=ball ! video/x-raw,format=NV12,width=64,height=48 ! queue";
    let reference = reference_frames(upstream, DrmFourcc::Nv12);
    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder()
        .format(gst::Format::Time)
        .caps(
            &"video/x-raw,format=NV12,width=64,height=48,framerate=30/1"
                .parse::<gst::Caps>()
                .unwrap(),
        )
        .build();
    pipeline.add(&src).unwrap();
    let importer = Importer::new().unwrap();
    importer.appsink().set_property("sync", false);
    pipeline.add(importer.appsink()).unwrap();
    src.link(importer.appsink()).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    for planes in &reference {
        let bytes: Vec<u8> = planes.concat();
        src.push_buffer(gst::Buffer::from_mut_slice(bytes)).unwrap();
    }
    src.end_of_stream().unwrap();
    let mut got = Vec::new();
    while let Some(frame) = importer.pull(TIMEOUT).unwrap() {
        assert!(!frame.zero_copy);
        got.push(read_planes(&frame.dmabuf));
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(got, reference);
    let stats = importer.stats();
    assert_eq!((stats.frames, stats.zero_copy, stats.copies), (10, 0, 10), "{stats:?}");
}

#[test]
fn under_dmabuf_caps_nothing_is_mapped() {
    init();
    let (w, h) = (64u32, 48u32);
    let caps = linear_xrgb_caps(w, h, true, false);
    let pipeline = launch(&format!("appsrc name=src format=time caps=\"{caps}\" ! queue name=q"));
    let src = child::<gst_app::AppSrc>(&pipeline, "src");
    let queue = pipeline.by_name("q").unwrap();
    let importer = Importer::new().unwrap();
    importer.appsink().set_property("sync", false);
    pipeline.add(importer.appsink()).unwrap();
    queue.link(importer.appsink()).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    // A dma-buf passes through the queue (passthrough) and is taken as is.
    let frame = MemfdAllocator::new().allocate(DrmFourcc::Xrgb8888, w, h, 64).unwrap();
    write_planes(
        &frame,
        &dmabuf_interop::reference::pattern::frame_planes(DrmFourcc::Xrgb8888, w, h, 1).unwrap(),
    );
    src.push_buffer(dgst::buffer_from_dmabuf(&frame).unwrap()).unwrap();
    // System memory under memory:DMABuf caps is refused, not mapped.
    src.push_buffer(gst::Buffer::with_size((w * h * 4) as usize).unwrap())
        .unwrap();
    src.end_of_stream().unwrap();
    let first = importer.pull(TIMEOUT).unwrap().expect("first frame");
    assert!(first.zero_copy && first.dmabuf_caps);
    assert_eq!(first.dmabuf.id(), frame.id());
    let err = importer.pull(TIMEOUT).unwrap_err();
    assert!(matches!(err, ImportError::NotDmaBufUnderDmaBufCaps(_)), "{err}");
    pipeline.set_state(gst::State::Null).unwrap();
    let stats = importer.stats();
    assert_eq!((stats.zero_copy, stats.copies), (1, 0));
}

#[test]
fn malformed_system_memory_layouts_are_typed_errors() {
    // Before: a negative stride or a VideoMeta smaller than the caps made
    // the copy path index out of bounds (a panic on the streaming thread).
    init();
    let importer = Importer::new().unwrap();
    let caps: gst::Caps = "video/x-raw,format=NV12,width=64,height=48,framerate=30/1"
        .parse()
        .unwrap();
    let sample = |offsets: &[usize], strides: &[i32], meta_h: u32, bytes: usize| {
        let mut buffer = gst::Buffer::from_mut_slice(vec![0x42u8; bytes]);
        gst_video::VideoMeta::add_full(
            buffer.get_mut().unwrap(),
            gst_video::VideoFrameFlags::empty(),
            gst_video::VideoFormat::Nv12,
            64,
            meta_h,
            offsets,
            strides,
        )
        .unwrap();
        gst::Sample::builder().buffer(&buffer).caps(&caps).build()
    };
    let full = 64 * 48 * 3 / 2;
    let cases = [
        (
            "negative stride",
            sample(&[64 * 47, full], &[-64, 64], 48, full + 64 * 24),
        ),
        ("stride below a row", sample(&[0, 64 * 48], &[32, 64], 48, full)),
        (
            "meta shorter than the caps",
            sample(&[0, 64 * 24], &[64, 64], 24, 64 * 36),
        ),
        ("plane past the memory", sample(&[0, 64 * 48 + 64], &[64, 64], 48, full)),
    ];
    for (what, sample) in cases {
        match importer.import(sample) {
            Err(ImportError::Copy(e)) => println!("{what}: {e}"),
            other => panic!("{what}: expected a typed copy error, got {other:?}"),
        }
    }
    // A well-formed frame still copies.
    let frame = importer
        .import(sample(&[0, 64 * 48], &[64, 64], 48, full))
        .expect("well-formed frame");
    assert!(read_planes(&frame.dmabuf).iter().flatten().all(|&b| b == 0x42));
    assert_eq!(importer.stats().copies, 1);
}
