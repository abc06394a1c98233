//! Commit timing: where the compositor offers `wp_fifo_v1` and
//! `wp_commit_timing_v1`, every frame wldmabufsink commits carries a FIFO
//! barrier (set and wait) and its target presentation time, the frame's
//! running time + base time + latency on the pipeline clock, committed a
//! render delay ahead; with `commit-timing=false`, or without the
//! protocols, frames are paced by frame callbacks and carry neither. The
//! compositor is tests/syncobj_compositor (Smithay) logging what each
//! commit carried. Runs on the bare host. (What the timing does to
//! |presented - target| on Weston 16, mutter 50 and KWin 6.7 is measured
//! in the compositor stage, tests/compositors.rs.)
#![cfg(all(feature = "headless", feature = "gstreamer"))]

mod common;
mod syncobj_compositor;

use common::gst::{eos_or_error, init, launch};
use std::time::{Duration, Instant};

use dmabuf_interop::DrmFourcc;
use dmabuf_interop::alloc;
use dmabuf_interop::wayland::{NEVER_SHOWN_TIMEOUT, Presenter, Target, Via};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_base::prelude::*;
use syncobj_compositor::TestCompositor;

const FRAMES: u64 = 20;

/// Plays FRAMES frames at 30 fps into `comp`; the sink's stats, render
/// delay and what the compositor logged.
fn play(
    comp: &TestCompositor,
    sink_props: &str,
) -> (gst::Structure, gst::ClockTime, Vec<syncobj_compositor::PacedCommit>) {
    let pipeline = launch(&format!(
        "videotestsrc num-buffers={FRAMES} ! video/x-raw,format=BGRx,width=64,height=48,framerate=30/1 ! \
         wldmabufsink name=sink {sink_props} display={}",
        comp.socket_path().display()
    ));
    let sink = pipeline.by_name("sink").unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = eos_or_error(&pipeline, 30);
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    let stats = sink.property::<gst::Structure>("stats");
    let delay = sink.downcast_ref::<gstreamer_base::BaseSink>().unwrap().render_delay();
    pipeline.set_state(gst::State::Null).unwrap();
    // The video surface's commits: the surface with the most (our window's
    // area commits its black pixel once).
    let log = comp.paced_log();
    let video = (log.iter().map(|c| c.surface)).max_by_key(|s| log.iter().filter(|c| c.surface == *s).count());
    let log = log.into_iter().filter(|c| Some(c.surface) == video).collect();
    (stats, delay, log)
}

#[test]
fn frames_carry_fifo_barriers_and_their_target_time() {
    init();
    let comp = TestCompositor::start_paced(64, 48);
    let (stats, delay, log) = play(&comp, "");
    let get = |name: &str| stats.get::<u64>(name).unwrap();
    assert_eq!(stats.get::<&str>("pacing").unwrap(), "commit-timing", "{stats}");
    assert_eq!(delay, gst::ClockTime::from_mseconds(33), "rendered ahead");
    assert_eq!(
        log.len() as u64,
        get("shown"),
        "one logged commit per frame shown: {stats}"
    );
    assert!(get("shown") >= FRAMES - 2, "{stats}");
    assert!(log.iter().all(|c| c.set_barrier && c.wait_barrier), "{log:?}");
    // Every frame timed once the clock runs (the preroll frame, shown
    // before PLAYING, has no base time yet).
    let timed: Vec<u64> = log.iter().filter_map(|c| c.timestamp_ns).collect();
    assert_eq!(timed.len() as u64, get("timed-commits"), "{stats}");
    assert!(timed.len() as u64 >= get("shown") - 1, "{log:?}");
    // The targets are the frames' times: 1/30 s apart exactly (running
    // time steps of videotestsrc's timestamps, frame n at n * 10^9 / 30
    // ns rounded down), so they follow the stream, not the commits.
    let first = log.iter().position(|c| c.timestamp_ns.is_some()).unwrap() as u64;
    for (i, t) in timed.iter().enumerate() {
        let n = first + i as u64;
        let pts = |n: u64| n * 1_000_000_000 / 30;
        assert_eq!(t - timed[0], pts(n) - pts(first), "frame {n}: {timed:?}");
    }
}

#[test]
fn commit_timing_off_paces_by_frame_callbacks() {
    init();
    let comp = TestCompositor::start_paced(64, 48);
    let (stats, delay, log) = play(&comp, "commit-timing=false");
    assert_eq!(stats.get::<&str>("pacing").unwrap(), "frame-callbacks", "{stats}");
    assert_eq!(stats.get::<u64>("timed-commits").unwrap(), 0, "{stats}");
    assert_eq!(delay, gst::ClockTime::ZERO);
    assert!(!log.is_empty());
    assert!(
        log.iter()
            .all(|c| !c.set_barrier && !c.wait_barrier && c.timestamp_ns.is_none()),
        "{log:?}"
    );
}

#[test]
fn without_the_protocols_frame_callbacks_pace() {
    init();
    let comp = TestCompositor::start_input(64, 48, (64, 48));
    let (stats, delay, _) = play(&comp, "");
    assert_eq!(stats.get::<&str>("pacing").unwrap(), "frame-callbacks", "{stats}");
    assert_eq!(delay, gst::ClockTime::ZERO);
    assert!(stats.get::<u64>("shown").unwrap() >= FRAMES - 2, "{stats}");
}

/// A hidden window (minimised, under a fullscreen one: no frame callbacks
/// at all) is no reason to demote a kind of dma-buf as never shown. A new
/// kind committed while hidden waits NEVER_SHOWN_TIMEOUT and is demoted
/// tentatively; the wl_shm commit after it is not shown either, so the
/// window is hidden and the kind goes back (`hidden_restores`); once the
/// window is shown, that kind is zero-copy. Before this rule the kind
/// stayed refused for good (never_shown 1, every frame the wl_shm way).
#[test]
fn a_hidden_window_keeps_its_dmabufs() {
    // The colour compositor offers linux-dmabuf (memfd "dma-bufs" taken
    // on the bare host) and tells nothing but frame callbacks here.
    let comp = TestCompositor::start_colour(64, 48, &[]);
    let mut p = Presenter::connect_to(
        comp.socket_path(),
        Target::Toplevel {
            title: "hidden".into(),
            app_id: "hidden".into(),
        },
    )
    .expect("connect");
    let allocator = alloc::best_available().unwrap();
    let buffer = |w, h| allocator.allocate(DrmFourcc::Xrgb8888, w, h, 64).unwrap();
    let shown = buffer(64, 48);
    assert_eq!(p.present(&shown, Box::new(())).unwrap().via(), Via::LinuxDmabuf);
    assert!(p.wait_frame(Duration::from_secs(5)).unwrap(), "shown while visible");

    comp.set_windows_hidden(true);
    // A new kind (another size) while hidden: demoted after the timeout.
    let new_kind = buffer(32, 24);
    assert_eq!(p.present(&new_kind, Box::new(())).unwrap().via(), Via::LinuxDmabuf);
    let start = Instant::now();
    assert!(
        !p.wait_frame(NEVER_SHOWN_TIMEOUT * 2).unwrap(),
        "not shown while hidden"
    );
    assert!(start.elapsed() >= NEVER_SHOWN_TIMEOUT, "{:?}", start.elapsed());
    // The next frame goes the wl_shm way and is not shown either: the
    // demotion is taken back.
    let via = p.present(&buffer(32, 24), Box::new(())).unwrap().via();
    assert!(matches!(via, Via::ShmZeroCopy | Via::ShmCopy), "{via:?}");
    assert!(
        !p.wait_frame(NEVER_SHOWN_TIMEOUT * 2).unwrap(),
        "not shown while hidden"
    );
    let stats = p.stats();
    assert_eq!(
        (stats.hidden_restores, stats.never_shown, stats.import_refusals),
        (1, 0, 0),
        "{stats:?}"
    );

    comp.set_windows_hidden(false);
    assert_eq!(p.present(&new_kind, Box::new(())).unwrap().via(), Via::LinuxDmabuf);
    assert!(p.wait_frame(Duration::from_secs(5)).unwrap(), "shown once visible");
    let stats = p.stats();
    assert_eq!((stats.never_shown, stats.import_refusals), (0, 0), "{stats:?}");
}

/// xdg-shell: an acked configure takes effect with the surface's next
/// commit. sway lays a new window out once it has its first buffer (a
/// configure to the output's size) and paints it only once that configure
/// is committed, giving up after 200 ms. Where the new size is the size
/// the window already has, the sink changed nothing and committed nothing
/// after the ack: in the guest's sway the first frame callback then came
/// only with that timeout (the sink dropped the frames of those 200 ms).
/// The test compositor never gives up: without the commit after the ack
/// at most the first frame is shown, and the kind is demoted as never
/// shown.
#[test]
fn a_configure_is_committed_when_acked_even_if_nothing_changes() {
    init();
    let comp = TestCompositor::start_transactional(64, 48);
    let (stats, _, _) = play(&comp, "");
    let get = |name: &str| stats.get::<u64>(name).unwrap();
    assert!(get("shown") >= FRAMES - 2, "{stats}");
    assert_eq!((get("never-shown"), get("import-refusals")), (0, 0), "{stats}");
}

/// A compositor that repaints every 100 ms (10 Hz) under a 30 fps stream
/// with `sync=true`: `render` does not wait for it. A frame that finds the
/// last one's callback outstanding is held, the newest replacing the one
/// before, and committed at the next repaint, so every frame reaches the
/// sink on its time (basesink drops none as late), each repaint gets a
/// frame, and every frame is shown or counted dropped. When `render`
/// waited for the callback instead, the frames after each wait were late
/// and basesink dropped them before the sink saw them (10 of 20 reached
/// it, 8 shown).
#[test]
fn a_compositor_slower_than_the_stream_gets_the_newest_frame_at_each_repaint() {
    init();
    let comp = TestCompositor::start_slow(64, 48, Duration::from_millis(100));
    let (stats, _, _) = play(&comp, "");
    println!("{stats}");
    let get = |name: &str| stats.get::<u64>(name).unwrap();
    assert!(get("frames") >= FRAMES - 1, "every frame reaches the sink: {stats}");
    assert_eq!(get("shown") + get("dropped"), get("frames"), "{stats}");
    // 20 frames at 30 fps: about 7 repaints.
    assert!(get("shown") >= 5, "{stats}");
}

/// The held frame is committed when the compositor is ready, not when the
/// next frame comes: two frames, the second arriving while the first's
/// callback is outstanding (a 300 ms repaint), and no third. Both are
/// shown before EOS. When `render` waited instead, the second was dropped
/// after `frame-timeout` (100 ms) and shown only at EOS.
#[test]
fn a_held_frame_is_committed_without_waiting_for_the_next() {
    init();
    let comp = TestCompositor::start_slow(64, 48, Duration::from_millis(300));
    let pipeline = launch(&format!(
        "appsrc name=src format=time caps=video/x-raw,format=BGRx,width=64,height=48,framerate=30/1 ! \
         wldmabufsink name=sink display={}",
        comp.socket_path().display()
    ));
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gstreamer_app::AppSrc>()
        .unwrap();
    let sink = pipeline.by_name("sink").unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let stat = |name: &str| sink.property::<gst::Structure>("stats").get::<u64>(name).unwrap();
    for i in 0..2u64 {
        let mut buffer = gst::Buffer::from_mut_slice(vec![40 * (i as u8 + 1); 64 * 48 * 4]);
        buffer.get_mut().unwrap().set_pts(gst::ClockTime::from_mseconds(i * 33));
        src.push_buffer(buffer).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while stat("shown") < 2 {
        assert!(
            Instant::now() < deadline,
            "the held frame was not committed: {}",
            sink.property::<gst::Structure>("stats")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    src.end_of_stream().unwrap();
    let msg = eos_or_error(&pipeline, 20);
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    assert_eq!((stat("shown"), stat("dropped")), (2, 0));
    pipeline.set_state(gst::State::Null).unwrap();
}
