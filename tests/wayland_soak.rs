//! 3000 frames into a headless Weston with the process's open-fd count
//! watched, through the `Presenter` and through `wldmabufsink`. One test in
//! this binary so that nothing else opens fds while it counts.
#![cfg(all(feature = "headless", feature = "gstreamer", feature = "vulkan"))]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::gst::sink_pipeline;
use common::*;
use dmabuf_interop::reference::pattern;
use dmabuf_interop::wayland::headless::{Weston, WestonOptions};
use dmabuf_interop::wayland::{Presenter, Target};
use dmabuf_interop::{DmaBuf, DrmFourcc};
use gstreamer as gst;
use gstreamer::prelude::*;

fn play(weston: &Weston, description: &str, probe: Option<Arc<[AtomicUsize; 2]>>) -> gst::Structure {
    let (pipeline, sink) = sink_pipeline(description, weston.socket_path());
    if let Some(fds) = probe {
        let seen = AtomicUsize::new(0);
        sink.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
                if n == 100 {
                    fds[0].store(open_fds(), Ordering::SeqCst);
                } else if n == frames() {
                    fds[1].store(open_fds(), Ordering::SeqCst);
                }
                gst::PadProbeReturn::Ok
            });
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = common::gst::eos_or_error(&pipeline, 120);
    assert!(
        matches!(msg.view(), gst::MessageView::Eos(_)),
        "{msg:?}\nweston log:\n{}",
        weston.log_tail()
    );
    let stats = sink.property::<gst::Structure>("stats");
    pipeline.set_state(gst::State::Null).unwrap();
    stats
}

#[test]
fn fd_count_is_stable_over_3000_frames() {
    gst::init().expect("GStreamer 1.22 (run scripts/setup)");
    dmabuf_interop::elements::register(None).unwrap();
    // 1 kHz refresh: frame callbacks every millisecond. One Weston per
    // client: Weston 14.0.2's kiosk-shell segfaults (in kiosk-shell.so,
    // seen in dmesg) when a second client's toplevel maps after the first
    // client's went away.
    let start_weston = || {
        Weston::start(WestonOptions {
            width: 64,
            height: 48,
            refresh_mhz: 1_000_000,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("needs Weston 14 (run scripts/setup): {e}"))
    };
    let sink_pipeline = "videotestsrc num-buffers=COUNT pattern=ball ! video/x-raw,format=NV12,width=64,height=48,framerate=1000/1 ! wldmabufsink name=sink sync=false";
    // Warm-up: GStreamer's registry and libwayland's first connection.
    play(&start_weston(), &sink_pipeline.replace("COUNT", "10"), None);
    let baseline = open_fds();
    let weston = start_weston();

    // The Presenter with a producer ring of 3 buffers.
    {
        let mut p = Presenter::connect_to(
            &weston.socket_path(),
            Target::Toplevel {
                title: "soak".into(),
                app_id: "soak".into(),
            },
        )
        .unwrap();
        let ring: Vec<DmaBuf> = (0..3)
            .map(|_| {
                dmabuf_interop::alloc::best_available()
                    .unwrap()
                    .allocate(DrmFourcc::Xrgb8888, 64, 48, 64)
                    .unwrap()
            })
            .collect();
        let mut at_100 = 0;
        for frame in 0..frames() {
            let buf = loop {
                if let Some(b) = ring.iter().find(|b| !p.is_busy(b)) {
                    break b;
                }
                p.dispatch_timeout(Duration::from_millis(5))
                    .unwrap_or_else(|e| panic!("{e}; weston log:\n{}", weston.log_tail()));
            };
            if frame % 500 == 0 {
                write_planes(
                    buf,
                    &pattern::frame_planes(DrmFourcc::Xrgb8888, 64, 48, frame as u32).unwrap(),
                );
            }
            p.present(buf, Box::new(())).unwrap();
            if frame == 100 {
                at_100 = open_fds();
            }
        }
        let at_end = open_fds();
        let stats = p.stats();
        println!("presenter: {stats:?}; fds {at_100} -> {at_end} (baseline {baseline})");
        if stats.import_refusals == 0 {
            assert_eq!(stats.zero_copy, frames() as u64);
            assert_eq!(stats.wl_buffers_created, 3);
        } else {
            // A compositor that cannot import dma-bufs (the VM stage's):
            // asked once, then every frame the wl_shm way (the udmabuf's
            // own memory as a wl_shm pool, else the counted copy).
            assert_eq!(
                (stats.import_refusals, stats.shm_zero_copy + stats.copies),
                (1, frames() as u64),
                "{stats:?}"
            );
            assert_eq!(stats.zero_copy, stats.shm_zero_copy, "{stats:?}");
        }
        assert_eq!(stats.reused_before_release, 0);
        assert_eq!(at_100, at_end, "fds grew while presenting");
    }
    assert_eq!(open_fds(), baseline, "fds left after the presenter");

    // wldmabufsink with upstream writing into its pool.
    drop(weston);
    let weston = start_weston();
    let fds = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let stats = play(
        &weston,
        &sink_pipeline.replace("COUNT", &frames().to_string()),
        Some(fds.clone()),
    );
    let (at_100, at_end) = (fds[0].load(Ordering::SeqCst), fds[1].load(Ordering::SeqCst));
    println!("wldmabufsink: {stats}; fds {at_100} -> {at_end} (baseline {baseline})");
    assert_eq!(stats.get::<u64>("frames").unwrap(), frames() as u64);
    // Zero-copy, or (refused) the wl_shm way: wl_shm zero copy or copies.
    let get = |name| stats.get::<u64>(name).unwrap();
    let by_way = if get("import-refusals") == 0 {
        get("zero-copy")
    } else {
        get("shm-zero-copy") + get("copies")
    };
    assert_eq!(by_way, get("shown"), "{stats}");
    assert_eq!(stats.get::<u64>("reused-before-release").unwrap(), 0);
    // The sink's pool may add a buffer after frame 100 (2 fds each: the
    // memory's and the cached DmaBuf's dup); release discipline bounds it.
    assert!(
        at_end >= at_100 && at_end - at_100 <= 4,
        "fds grew while the sink played: {at_100} at frame 100, {at_end} at the end"
    );
    assert_eq!(open_fds(), baseline, "fds left after the sink pipeline");
}
