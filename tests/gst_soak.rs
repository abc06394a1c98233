//! 3000 buffers through each import path with the process's open-fd count
//! watched: it must not grow while frames flow, and must come back to the
//! baseline when the pipelines are gone. One test in this binary so that
//! nothing else opens fds while it counts.
#![cfg(all(feature = "gstreamer", feature = "vulkan"))]

mod common;

use common::*;
use dmabuf_interop::DrmFourcc;
use dmabuf_interop::gst::Importer;
use dmabuf_interop::reference::pattern;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// Runs `upstream ! <importer>` (or feeds `appsrc` system memory when
/// `upstream` is None) and returns the stats and the fd counts seen at frame
/// 100 and at the last frame.
fn soak(upstream: Option<&str>, mut check: impl FnMut(usize, &dmabuf_interop::DmaBuf)) -> (u64, u64, usize, usize) {
    let pipeline = gst::Pipeline::new();
    let importer = Importer::new().unwrap();
    importer.appsink().set_property("sync", false);
    pipeline.add(importer.appsink()).unwrap();
    let appsrc = match upstream {
        Some(description) => {
            let description = description.replace("COUNT", &frames().to_string());
            let bin = gst::parse::bin_from_description(&format!("{description} ! identity"), true).unwrap();
            pipeline.add(&bin).unwrap();
            bin.link(importer.appsink()).unwrap();
            None
        }
        None => {
            let caps: gst::Caps = "video/x-raw,format=NV12,width=64,height=48,framerate=30/1"
                .parse()
                .unwrap();
            let src = gst_app::AppSrc::builder()
                .format(gst::Format::Time)
                .caps(&caps)
                .max_buffers(4)
                .block(true)
                .build();
            pipeline.add(&src).unwrap();
            src.link(importer.appsink()).unwrap();
            Some(src)
        }
    };
    pipeline.set_state(gst::State::Playing).unwrap();
    let feeder = appsrc.map(|src| {
        std::thread::spawn(move || {
            for i in 0..frames() {
                let bytes = vec![(i % 251) as u8; 64 * 48 * 3 / 2];
                src.push_buffer(gst::Buffer::from_mut_slice(bytes)).unwrap();
            }
            src.end_of_stream().unwrap();
        })
    });
    let (mut at_100, mut at_end, mut seen) = (0, 0, 0);
    while let Some(frame) = importer.pull(gst::ClockTime::from_seconds(20)).expect("import") {
        check(seen, &frame.dmabuf);
        seen += 1;
        if seen == 100 {
            at_100 = open_fds();
        }
        if seen == frames() {
            at_end = open_fds();
        }
    }
    if let Some(f) = feeder {
        f.join().unwrap();
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(seen, frames(), "{upstream:?}");
    let stats = importer.stats();
    (stats.zero_copy, stats.copies, at_100, at_end)
}

#[test]
fn fd_count_is_stable_over_3000_buffers_on_every_path() {
    gst::init().expect("GStreamer 1.22 (run scripts/setup)");
    dmabuf_interop::elements::register(None).unwrap();
    // Warm-up: the Vulkan loader, lavapipe and GStreamer's registries open
    // what they keep for the life of the process.
    let warm = "vkdmabufsrc num-buffers=5 ! video/x-raw,format=NV12,width=64,height=48";
    let pipeline = gst::parse::launch(&format!("{warm} ! fakesink")).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    assert!(
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(20), &[gst::MessageType::Eos])
            .is_some()
    );
    pipeline.set_state(gst::State::Null).unwrap();
    drop(pipeline);
    let baseline = open_fds();

    // Export direction: vkdmabufsrc's ring, zero-copy into the importer.
    let (zero_copy, copies, at_100, at_end) = soak(
        Some("vkdmabufsrc num-buffers=COUNT ! video/x-raw,format=NV12,width=64,height=48"),
        |i, buf| {
            if i % 500 == 0 {
                assert_eq!(
                    read_planes(buf),
                    pattern::frame_planes(DrmFourcc::Nv12, 64, 48, i as u32).unwrap()
                );
            }
        },
    );
    println!("vkdmabufsrc: zero-copy {zero_copy}, copies {copies}, fds {at_100} -> {at_end}");
    assert_eq!((zero_copy, copies), (frames() as u64, 0));
    // On kernel dma-bufs (the VM stage) each submission holds sync_file
    // fds for a moment on the streaming thread while this thread counts:
    // a leak of one per frame would show as hundreds; allow the in-flight few.
    assert!(
        at_end <= at_100 + 2,
        "fds grew while vkdmabufsrc streamed: {at_100} -> {at_end}"
    );
    assert_eq!(open_fds(), baseline, "fds left after the vkdmabufsrc pipeline");

    // Import direction: videotestsrc writes into our pool's dma-bufs.
    let (zero_copy, copies, at_100, at_end) = soak(
        Some("videotestsrc num-buffers=COUNT ! video/x-raw,format=NV12,width=64,height=48"),
        |_, _| {},
    );
    println!("videotestsrc: zero-copy {zero_copy}, copies {copies}, fds {at_100} -> {at_end}");
    assert_eq!((zero_copy, copies), (frames() as u64, 0));
    // The pool grows lazily (a buffer whenever the importer's queue is
    // fuller than before), but the importer's bounded queue bounds it: each
    // pool buffer holds 2 fds (its memory's, and the dup in the cached
    // DmaBuf). A leak would show thousands here.
    let pool_fds = at_end - baseline;
    assert!(
        at_end >= at_100 && pool_fds <= 2 * 3 * dmabuf_interop::gst::QUEUE_DEPTH as usize,
        "fds grew while the pool streamed: {at_100} at frame 100, {at_end} at the end (baseline {baseline})"
    );
    assert_eq!(open_fds(), baseline, "fds left after the pool pipeline");

    // System memory: every buffer copied into a fresh dma-buf, freed again.
    let (zero_copy, copies, at_100, at_end) = soak(None, |i, buf| {
        if i % 500 == 0 {
            let planes = read_planes(buf);
            assert!(planes.iter().flatten().all(|&b| b == (i % 251) as u8), "copy {i}");
        }
    });
    println!("appsrc system memory: zero-copy {zero_copy}, copies {copies}, fds {at_100} -> {at_end}");
    assert_eq!((zero_copy, copies), (0, frames() as u64));
    assert_eq!(at_100, at_end, "fds grew on the copy path");
    assert_eq!(open_fds(), baseline, "fds left after the copy pipeline");
}
