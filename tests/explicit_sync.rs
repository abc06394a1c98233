//! Explicit sync end to end (the VM stage: vgem's pending fences, a
//! virtio-gpu node with timeline syncobjs): the Presenter against a
//! compositor offering `wp_linux_drm_syncobj_v1` (tests/syncobj_compositor,
//! on Smithay), pixels read back from it.
#![cfg(feature = "headless")]

mod common;
mod syncobj_compositor;

use std::time::{Duration, Instant};

use common::device_test;
use common::vgem::{VgemBuffer, vgem_card, write_rows_unsynced};
use dmabuf_interop::DrmFourcc;
use dmabuf_interop::reference::pattern;
use dmabuf_interop::sync::{DrmDevice, Fence};
use dmabuf_interop::wayland::{NEVER_SHOWN_TIMEOUT, Presenter, SyncMode, Target, Via};
use syncobj_compositor::{Capture, Offer, TestCompositor};

const W: u32 = 64;
const H: u32 = 48;

fn toplevel() -> Target {
    Target::Toplevel {
        title: "explicit sync".into(),
        app_id: "dmabuf-interop-test".into(),
    }
}

fn setup() -> Option<(std::path::PathBuf, std::sync::Arc<DrmDevice>)> {
    let card = vgem_card();
    if !device_test("vgem (modprobe vgem)", card.is_some()) {
        return None;
    }
    let node = DrmDevice::find(None);
    device_test(
        "a DRM node with timeline syncobjs (virtio-gpu: scripts/vm-test --gpu)",
        node.is_ok(),
    )
    .then(|| (card.unwrap(), node.unwrap()))
}

/// The pattern's frame `n` at (x, y).
fn want(n: u32, x: u32, y: u32) -> [u8; 3] {
    pattern::rgb(W, H, n, x, y)
}

/// Pixels of `capture` that differ from frame `n` (sampled on a grid).
fn wrong(capture: &Capture, n: u32) -> usize {
    assert_eq!((capture.width, capture.height), (W, H));
    let mut bad = 0;
    for y in (0..H).step_by(4) {
        for x in (0..W).step_by(4) {
            if capture.rgb(x, y) != want(n, x, y) {
                bad += 1;
            }
        }
    }
    bad
}

/// Pixels of a Weston capture that differ from frame `n` (sampled on a grid).
fn weston_wrong(image: &dmabuf_interop::wayland::headless::Image, n: u32) -> usize {
    let mut bad = 0;
    for y in (0..H).step_by(4) {
        for x in (0..W).step_by(4) {
            let p = image.pixel(x, y).expect("inside the capture");
            if [p[0], p[1], p[2]] != want(n, x, y) {
                bad += 1;
            }
        }
    }
    bad
}

/// Waits until the screen shows frame `n` (dispatching the presenter).
fn wait_shown(compositor: &TestCompositor, presenter: &mut Presenter, n: u32) -> Capture {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        presenter.dispatch_timeout(Duration::from_millis(20)).unwrap();
        let c = compositor.capture();
        if wrong(&c, n) == 0 {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "frame {n} never shown ({} wrong)",
            wrong(&c, n)
        );
    }
}

/// What the presenter must choose for `offer`.
fn mode(offer: Offer) -> SyncMode {
    match offer {
        Offer::DrmSyncobj => SyncMode::DrmSyncobj,
        Offer::ExplicitSyncV1 => SyncMode::ExplicitSyncV1,
        Offer::None => SyncMode::Implicit,
    }
}

#[test]
fn an_unsignalled_acquire_point_keeps_the_old_frame_on_screen() {
    for offer in [Offer::DrmSyncobj, Offer::ExplicitSyncV1] {
        pending_frame_is_not_shown(offer);
    }
}

#[test]
fn a_producer_gets_a_buffer_back_only_after_its_release_point() {
    for offer in [Offer::DrmSyncobj, Offer::ExplicitSyncV1] {
        ring_of_two(offer);
    }
}

fn pending_frame_is_not_shown(offer: Offer) {
    let Some((card, node)) = setup() else { return };
    let compositor = TestCompositor::start(node.path(), W, H, offer);
    let mut presenter = Presenter::connect_to(compositor.socket_path(), toplevel()).expect("connect");
    assert_eq!(presenter.stats().sync, mode(offer), "{:?}", presenter.sync_fallback());

    // Frame 1, finished: shown.
    let first = VgemBuffer::new(&card, W, H);
    common::write_planes(
        &first.buf,
        &pattern::frame_planes(DrmFourcc::Xrgb8888, W, H, 1).unwrap(),
    );
    presenter.present(&first.buf, Box::new(())).expect("present frame 1");
    wait_shown(&compositor, &mut presenter, 1);

    // Frame 2: its producer has not finished (a pending vgem fence). The
    // presenter hands that fence over as the acquire point; the old frame
    // stays on screen and its buffer stays the compositor's.
    let second = VgemBuffer::new(&card, W, H);
    let fence = second.attach_write_fence();
    presenter.present(&second.buf, Box::new(())).expect("present frame 2");
    let pending_until = Instant::now() + Duration::from_millis(500);
    let mut captures = 0;
    while Instant::now() < pending_until {
        presenter.dispatch_timeout(Duration::from_millis(50)).unwrap();
        let c = compositor.capture();
        assert_eq!(
            wrong(&c, 1),
            0,
            "frame 1 must stay on screen while frame 2's fence is pending"
        );
        assert!(presenter.is_busy(&first.buf), "frame 1's buffer is still on screen");
        captures += 1;
    }
    println!("{offer:?}: while pending, {captures} captures showed frame 1, its buffer held");

    // The producer finishes frame 2, then signals: frame 2 is shown, and
    // frame 1's release point hands its buffer back.
    write_rows_unsynced(
        &second.buf,
        &pattern::frame_planes(DrmFourcc::Xrgb8888, W, H, 2).unwrap()[0],
    );
    second.signal(fence);
    wait_shown(&compositor, &mut presenter, 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while presenter.is_busy(&first.buf) {
        assert!(Instant::now() < deadline, "frame 1's release point never signalled");
        presenter.dispatch_timeout(Duration::from_millis(20)).unwrap();
    }
    let stats = presenter.stats();
    println!("{stats:?}");
    assert_eq!(stats.explicit_sync_commits, 2);
    assert!(stats.release_points_signalled >= 1);
    assert_eq!(stats.reused_before_release, 0);
}

fn ring_of_two(offer: Offer) {
    // The tightest ring, two buffers: the one written next is always the
    // one the previous commit replaced, so a buffer handed back on
    // anything earlier than its release point would be written while it
    // is still on screen, and the capture taken right after the write
    // (before presenting it) would show it.
    let Some((card, node)) = setup() else { return };
    let compositor = TestCompositor::start(node.path(), W, H, offer);
    let mut presenter = Presenter::connect_to(compositor.socket_path(), toplevel()).expect("connect");
    assert_eq!(presenter.stats().sync, mode(offer));
    let ring = [VgemBuffer::new(&card, W, H), VgemBuffer::new(&card, W, H)];
    const FRAMES: u32 = 12;
    let mut written_while_shown = 0;
    for n in 1..=FRAMES {
        let b = &ring[n as usize % 2].buf;
        presenter
            .wait_released(b, Duration::from_secs(10))
            .expect("the release point signals");
        common::write_planes(b, &pattern::frame_planes(DrmFourcc::Xrgb8888, W, H, n).unwrap());
        if n > 1 && wrong(&compositor.capture(), n - 1) != 0 {
            written_while_shown += 1;
        }
        presenter.present(b, Box::new(n)).expect("present");
        wait_shown(&compositor, &mut presenter, n);
    }
    // The frame before the last comes back once the last is applied.
    presenter
        .wait_released(&ring[(FRAMES as usize - 1) % 2].buf, Duration::from_secs(10))
        .expect("the second-last frame's release");
    let stats = presenter.stats();
    println!(
        "{offer:?}: {FRAMES} frames through a ring of 2: written while on screen {written_while_shown}; {stats:?}"
    );
    assert_eq!(written_while_shown, 0);
    assert_eq!(stats.reused_before_release, 0);
    assert_eq!(stats.explicit_sync_commits, u64::from(FRAMES));
    // Every frame but the one on screen was released by its point.
    assert!(stats.release_points_signalled >= u64::from(FRAMES - 1), "{stats:?}");
}

#[test]
fn without_a_protocol_frames_use_implicit_sync() {
    // The same compositor offering neither protocol: the presenter stays on
    // implicit sync, frames are shown, buffers come back on wl_buffer.release.
    let Some((card, node)) = setup() else { return };
    let compositor = TestCompositor::start(node.path(), W, H, Offer::None);
    let mut presenter = Presenter::connect_to(compositor.socket_path(), toplevel()).expect("connect");
    assert_eq!(presenter.stats().sync, SyncMode::Implicit);
    assert_eq!(
        presenter.sync_fallback(),
        None,
        "not offered, so nothing to fall back from"
    );
    let ring = [VgemBuffer::new(&card, W, H), VgemBuffer::new(&card, W, H)];
    for n in 1..=4u32 {
        let b = &ring[n as usize % 2].buf;
        presenter.wait_released(b, Duration::from_secs(10)).expect("released");
        common::write_planes(b, &pattern::frame_planes(DrmFourcc::Xrgb8888, W, H, n).unwrap());
        presenter.present(b, Box::new(())).expect("present");
        wait_shown(&compositor, &mut presenter, n);
    }
    let stats = presenter.stats();
    println!("{stats:?}");
    assert_eq!(
        (
            stats.zero_copy,
            stats.explicit_sync_commits,
            stats.release_points_signalled
        ),
        (4, 0, 0)
    );
    assert!(stats.releases >= 2, "{stats:?}");
    assert_eq!(stats.reused_before_release, 0);
}

#[test]
fn a_kind_accepted_but_never_shown_is_demoted_to_wl_shm() {
    // A compositor that answers `created` for a dma-buf it then never
    // shows (no frame callback while it is on the surface, as Weston 16
    // does with some NV12 imports in a VM): after NEVER_SHOWN_TIMEOUT the
    // kind counts as refused, the wait ends, and the next frames go the
    // wl_shm way and are shown.
    let Some((card, node)) = setup() else { return };
    let compositor = TestCompositor::start_hiding(node.path(), W, H, smithay::backend::allocator::Fourcc::Xrgb8888);
    let mut presenter = Presenter::connect_to(compositor.socket_path(), toplevel()).expect("connect");
    let first = VgemBuffer::new(&card, W, H);
    common::write_planes(
        &first.buf,
        &pattern::frame_planes(DrmFourcc::Xrgb8888, W, H, 1).unwrap(),
    );
    assert_eq!(
        presenter.present(&first.buf, Box::new(())).unwrap().via(),
        Via::LinuxDmabuf
    );
    let start = Instant::now();
    assert!(!presenter.wait_frame(Duration::from_secs(10)).unwrap(), "never shown");
    let waited = start.elapsed();
    assert!(
        waited >= NEVER_SHOWN_TIMEOUT && waited < NEVER_SHOWN_TIMEOUT + Duration::from_secs(2),
        "{waited:?}"
    );
    assert!(!presenter.frame_pending(), "the wait for that frame is given up");
    // The same kind again: the wl_shm way (a vgem buffer is copied), shown;
    // the first of these verifies the demotion (the window is painted).
    for n in 2..=3u32 {
        let b = VgemBuffer::new(&card, W, H);
        common::write_planes(&b.buf, &pattern::frame_planes(DrmFourcc::Xrgb8888, W, H, n).unwrap());
        assert_eq!(presenter.present(&b.buf, Box::new(())).unwrap().via(), Via::ShmCopy);
        assert!(presenter.wait_frame(Duration::from_secs(5)).unwrap(), "shown");
        assert_eq!(wrong(&compositor.capture(), n), 0, "frame {n} on screen");
    }
    presenter.roundtrip().expect("the connection lives");
    let stats = presenter.stats();
    assert_eq!(
        (stats.never_shown, stats.import_refusals, stats.hidden_restores),
        (1, 1, 0),
        "{stats:?}"
    );
}

#[test]
fn headless_weston_without_a_render_device_keeps_implicit_sync() {
    // Weston's headless backend offers zwp_linux_explicit_synchronization_v1
    // whatever its renderer can do; without a render device (the host) it
    // answers the first get_release with a fatal error. The presenter
    // takes the protocol only where linux-dmabuf feedback names a device,
    // so here it stays on implicit sync, says why, and frames are shown
    // zero-copy, with the connection alive.
    if std::path::Path::new("/dev/dri").exists() {
        println!(
            "render nodes exist: this Weston names a device (weston_offers_explicit_sync_v1_and_refused_imports_stay_copies)"
        );
        return;
    }
    let weston = common::weston(W, H, dmabuf_interop::wayland::headless::Renderer::Gl);
    let mut presenter = Presenter::connect_to(&weston.socket_path(), toplevel()).expect("connect");
    assert_eq!(presenter.stats().sync, SyncMode::Implicit);
    let why = presenter
        .sync_fallback()
        .expect("explicit-sync v1 is offered, so the fallback is explained");
    assert!(why.contains("zwp_linux_explicit_synchronization_v1"), "{why}");
    let alloc = dmabuf_interop::alloc::best_available().expect("an allocator");
    let ring: Vec<_> = (0..2)
        .map(|_| alloc.allocate(DrmFourcc::Xrgb8888, W, H, 1).expect("allocate"))
        .collect();
    const FRAMES: u32 = 6;
    for n in 1..=FRAMES {
        let b = &ring[n as usize % 2];
        presenter.wait_released(b, Duration::from_secs(10)).expect("released");
        common::write_planes(b, &pattern::frame_planes(DrmFourcc::Xrgb8888, W, H, n).unwrap());
        presenter.present(b, Box::new(())).expect("present");
        assert!(presenter.wait_frame(Duration::from_secs(5)).unwrap());
    }
    presenter.roundtrip().expect("the connection lives");
    let wrong = weston_wrong(&weston.capture().expect("capture"), FRAMES);
    let stats = presenter.stats();
    println!("{stats:?}");
    assert_eq!(wrong, 0, "the last frame on screen");
    assert_eq!((stats.zero_copy, stats.explicit_sync_commits), (u64::from(FRAMES), 0));
    assert_eq!(stats.reused_before_release, 0);
}

/// GStreamer with our elements, and `description` (its sink named `sink`)
/// pointed at `compositor`.
#[cfg(feature = "gstreamer")]
fn sink_pipeline(description: &str, compositor: &TestCompositor) -> gstreamer::Pipeline {
    common::gst::init();
    common::gst::sink_pipeline(description, compositor.socket_path()).0
}

#[cfg(feature = "gstreamer")]
#[test]
fn wldmabufsink_commits_acquire_and_release_points() {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    let Some((_, node)) = setup() else { return };
    let compositor = TestCompositor::start(node.path(), W, H, Offer::DrmSyncobj);
    let frames = 30;
    let pipeline = sink_pipeline(
        &format!(
            "videotestsrc pattern=smpte num-buffers={frames} ! video/x-raw,format=BGRx,width={W},height={H} \
             ! wldmabufsink name=sink max-lateness=-1"
        ),
        &compositor,
    );
    pipeline.set_state(gst::State::Playing).expect("play");
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut stats = None;
    let capture = loop {
        assert!(Instant::now() < deadline, "no EOS");
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Element(e) if e.structure().is_some_and(|s| s.name() == "wldmabufsink-stats") => {
                stats = e.structure().map(|s| s.to_owned());
            }
            gst::MessageView::Eos(_) => break compositor.capture(),
            gst::MessageView::Error(e) => panic!("{} ({:?})", e.error(), e.debug()),
            _ => {}
        }
    };
    pipeline.set_state(gst::State::Null).unwrap();
    let stats = stats.expect("the sink's stats at EOS");
    println!("{stats}");
    let get = |name: &str| stats.get::<u64>(name).unwrap_or_else(|_| panic!("{name} in {stats}"));
    assert_eq!(stats.get::<&str>("sync").unwrap(), "linux-drm-syncobj-v1");
    assert!(get("shown") >= 1);
    // Every shown frame went zero-copy with its points; the pool got each
    // buffer back only at its release point.
    assert_eq!(get("zero-copy"), get("shown"), "{stats}");
    assert_eq!(get("explicit-sync-commits"), get("shown"), "{stats}");
    // At EOS the last frame is on screen and the one before it may not
    // have been seen released yet (its point signals when the last commit
    // is applied): every other one came back through its release point.
    assert!(get("release-points-signalled") >= get("shown") - 2, "{stats}");
    assert_eq!(get("reused-before-release"), 0);
    let reference = common::gst::smpte_rgb(W, H);
    // Points inside a flat area of the bars (the pattern's lower right is
    // noise, which changes every frame).
    let flat = |x: u32, y: u32| {
        x + 1 < W && y + 1 < H && reference(x + 1, y) == reference(x, y) && reference(x, y + 1) == reference(x, y)
    };
    let (mut wrong, mut points) = (0, 0);
    for y in (0..H).step_by(2) {
        for x in (0..W).step_by(2) {
            if !flat(x, y) {
                continue;
            }
            points += 1;
            if capture.rgb(x, y) != reference(x, y) {
                if wrong < 8 {
                    println!("({x}, {y}): {:?}, want {:?}", capture.rgb(x, y), reference(x, y));
                }
                wrong += 1;
            }
        }
    }
    println!("bars: {wrong} of {points} points differ");
    assert!(points > 400, "{points} points compared");
    assert_eq!(wrong, 0, "the bars on screen, exactly");
}

#[test]
fn weston_offers_explicit_sync_v1_and_refused_imports_stay_copies() {
    // Weston 14 in the guest offers zwp_linux_explicit_synchronization_v1
    // when its GL renderer has native fence sync (LIBGL_ALWAYS_SOFTWARE=1
    // gives llvmpipe that), but refuses every dma-buf there (`failed`):
    // frames go the counted wl_shm way, with no fence or release request
    // (which a wl_shm commit would make a protocol error), and the
    // connection lives on.
    let Some((card, _)) = setup() else { return };
    let weston = dmabuf_interop::wayland::headless::Weston::start(dmabuf_interop::wayland::headless::WestonOptions {
        width: W,
        height: H,
        env: vec![("LIBGL_ALWAYS_SOFTWARE".into(), "1".into())],
        ..Default::default()
    })
    .expect("these tests need Weston 14 (run scripts/setup)");
    let mut presenter = Presenter::connect_to(&weston.socket_path(), toplevel()).expect("connect");
    assert_eq!(presenter.stats().sync, SyncMode::ExplicitSyncV1);
    let buf = VgemBuffer::new(&card, W, H);
    common::write_planes(&buf.buf, &pattern::frame_planes(DrmFourcc::Xrgb8888, W, H, 4).unwrap());
    for _ in 0..3 {
        presenter.present(&buf.buf, Box::new(())).expect("present");
        assert!(presenter.wait_frame(Duration::from_secs(5)).unwrap());
    }
    presenter.roundtrip().expect("the connection lives");
    let wrong = weston_wrong(&weston.capture().expect("capture"), 4);
    assert_eq!(wrong, 0, "frame 4 on screen");
    let stats = presenter.stats();
    println!("{stats:?}");
    assert_eq!(
        (stats.copies, stats.zero_copy, stats.explicit_sync_commits),
        (3, 0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.import_refusals, 1);
}

#[cfg(all(feature = "vulkan", feature = "gstreamer"))]
#[test]
fn the_viewer_hands_its_composites_gpu_fence_to_the_compositor() {
    // The viewer's Vulkan path as an application (WAYLAND_DISPLAY): under
    // linux-drm-syncobj-v1 each composite's completion (a sync_file from
    // its signal semaphore) is the commit's acquire point, instead of a
    // CPU wait for the composite's fence before presenting.
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Some((_, node)) = setup() else { return };
    let (w, h) = (160u32, 120u32);
    let compositor = TestCompositor::start(node.path(), w, h, Offer::DrmSyncobj);
    let viewer = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples/viewer");
    assert!(
        viewer.exists(),
        "{} missing: cargo build --example viewer",
        viewer.display()
    );
    let mut child = Command::new(&viewer)
        .args([
            "--present",
            "vulkan",
            "--frames",
            "100000",
            "--size",
            &format!("{w}x{h}"),
        ])
        .env("WAYLAND_DISPLAY", compositor.socket_path())
        // The asynchronous composite under the validation layer: a
        // resource freed while the GPU uses it would be reported.
        .env("VK_INSTANCE_LAYERS", "VK_LAYER_KHRONOS_validation")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the viewer");
    // The pattern's bars and ramp stay; its box moves, the overlay (counter
    // and progress bar) changes: compare the points that stay.
    let overlay_at = |x: u32, y: u32| {
        [Some(0), Some(1000)].into_iter().any(|progress| {
            dmabuf_interop::reference::overlay::Overlay { frame: 1, progress }
                .pixel(w, h, x, y)
                .is_some()
        })
    };
    let still = |x: u32, y: u32| {
        let c = pattern::rgb(w, h, 0, x, y);
        (!overlay_at(x, y) && (1..300).all(|f| pattern::rgb(w, h, f, x, y) == c)).then_some(c)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (wrong, points) = loop {
        let c = compositor.capture();
        let (mut wrong, mut points) = (0, 0);
        for y in (0..h).step_by(5) {
            for x in (0..w).step_by(5) {
                let Some(want) = still(x, y) else { continue };
                points += 1;
                if c.rgb(x, y) != want {
                    wrong += 1;
                }
            }
        }
        if wrong == 0 || Instant::now() > deadline {
            break (wrong, points);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    // Let a few more frames through, then quit.
    std::thread::sleep(Duration::from_secs(2));
    child.stdin.take().unwrap().write_all(b"q\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    println!("{stdout}");
    assert!(!stderr.contains("VUID"), "validation layer: {stderr}");
    assert!(points > 100 && wrong == 0, "{wrong} of {points} still points wrong");
    // "vulkan: N frames composited ...; sync DrmSyncobj: M frames handed
    // over with their GPU fence (no CPU wait)"
    let line = stdout
        .lines()
        .find(|l| l.starts_with("vulkan:"))
        .expect("the viewer's vulkan line");
    let number_before = |text: &str| -> u64 {
        let head = &line[..line.find(text).unwrap_or_else(|| panic!("{text:?} in {line}"))];
        head.split_whitespace().last().unwrap().parse().unwrap()
    };
    let composited = number_before(" frames composited");
    let fenced = number_before(" frames handed over with their GPU fence");
    assert!(line.contains("sync DrmSyncobj"), "{line}");
    assert!(composited > 0);
    assert_eq!(
        fenced, composited,
        "every composite's CPU wait replaced by its GPU fence: {line}"
    );
}

#[cfg(feature = "gstreamer")]
#[test]
fn wldmabufsink_does_not_show_a_buffer_its_producer_still_writes() {
    // A producer (as a hardware decoder would) pushes dma-bufs whose
    // writes are still pending as implicit fences (vgem), with no fence
    // information of its own. The sink exports each buffer's implicit
    // fence as its acquire point: a frame stays off screen until its
    // producer signals.
    use gstreamer as gst;
    use gstreamer::prelude::*;
    let Some((card, node)) = setup() else { return };
    let compositor = TestCompositor::start(node.path(), W, H, Offer::DrmSyncobj);
    let pipeline = sink_pipeline(
        &format!(
            "appsrc name=src format=time caps=video/x-raw,format=BGRx,width={W},height={H},framerate=30/1 \
             ! wldmabufsink name=sink max-lateness=-1 sync=false"
        ),
        &compositor,
    );
    let src = common::gst::child::<gstreamer_app::AppSrc>(&pipeline, "src");
    pipeline.set_state(gst::State::Playing).expect("play");
    let push = |buf: &dmabuf_interop::DmaBuf, n: u64| {
        let mut b = dmabuf_interop::gst::memory::buffer_from_dmabuf(buf).expect("a dma-buf buffer");
        b.get_mut().unwrap().set_pts(gst::ClockTime::from_mseconds(33 * n));
        src.push_buffer(b).expect("push");
    };
    let wait_for = |n: u32| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while wrong(&compositor.capture(), n) != 0 {
            assert!(Instant::now() < deadline, "frame {n} never shown");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // Frame 1, finished.
    let first = VgemBuffer::new(&card, W, H);
    common::write_planes(
        &first.buf,
        &pattern::frame_planes(DrmFourcc::Xrgb8888, W, H, 1).unwrap(),
    );
    push(&first.buf, 0);
    wait_for(1);
    // Frame 2, still being written.
    let second = VgemBuffer::new(&card, W, H);
    let fence = second.attach_write_fence();
    push(&second.buf, 1);
    let until = Instant::now() + Duration::from_millis(700);
    let mut captures = 0;
    while Instant::now() < until {
        assert_eq!(
            wrong(&compositor.capture(), 1),
            0,
            "frame 2 shown while its producer still writes it"
        );
        captures += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    write_rows_unsynced(
        &second.buf,
        &pattern::frame_planes(DrmFourcc::Xrgb8888, W, H, 2).unwrap()[0],
    );
    second.signal(fence);
    wait_for(2);
    println!("while the producer wrote: {captures} captures showed frame 1; after its signal, frame 2");
    src.end_of_stream().unwrap();
    let bus = pipeline.bus().unwrap();
    let stats = loop {
        let msg = bus
            .timed_pop(gst::ClockTime::from_seconds(20))
            .expect("EOS within 20 s");
        match msg.view() {
            gst::MessageView::Element(e) if e.structure().is_some_and(|s| s.name() == "wldmabufsink-stats") => {
                break e.structure().unwrap().to_owned();
            }
            gst::MessageView::Error(e) => panic!("{} ({:?})", e.error(), e.debug()),
            _ => {}
        }
    };
    pipeline.set_state(gst::State::Null).unwrap();
    println!("{stats}");
    assert_eq!(stats.get::<&str>("sync").unwrap(), "linux-drm-syncobj-v1");
    assert_eq!(stats.get::<u64>("explicit-sync-commits").unwrap(), 2);
}

#[cfg(feature = "vulkan")]
#[test]
fn a_composite_waits_for_the_compositors_release_fence_on_the_gpu() {
    // A compositor still reading a buffer it has let go of sends
    // `fenced_release` with a fence that is not signalled yet. The producer
    // takes the buffer back with that fence (Presenter::take_release) and
    // has its next composite wait for it on the GPU (a SYNC_FD semaphore),
    // instead of waiting on the CPU: the submission is still pending while
    // the fence is, and the frame is right once it signalled.
    use dmabuf_interop::reference::overlay::Overlay;
    use dmabuf_interop::vulkan::{self, Exporter, Kernels, ash::vk};
    use dmabuf_interop::wayland::Release;
    let Some((card, node)) = setup() else { return };
    let ctx = common::vulkan();
    if !device_test(
        "a Vulkan device with SYNC_FD semaphores (lavapipe where /dev/udmabuf exists)",
        ctx.capabilities().semaphore_sync_fd,
    ) {
        return;
    }
    let compositor = TestCompositor::start_with_release_fences(node.path(), W, H, &card);
    let mut presenter = Presenter::connect_to(compositor.socket_path(), toplevel()).expect("connect");
    assert_eq!(presenter.stats().sync, SyncMode::ExplicitSyncV1);
    let kernels = Kernels::new(&ctx).unwrap();
    let exporter = Exporter::new(&ctx).unwrap();
    let out: Vec<_> = (0..2)
        .map(|_| {
            exporter
                .export(DrmFourcc::Xrgb8888, W, H, vk::ImageUsageFlags::STORAGE, &[])
                .expect("export")
        })
        .collect();
    // The video: frame n of the pattern in a dma-buf imported into Vulkan.
    let source = VgemBuffer::new(&card, W, H);
    let video = vulkan::import(&ctx, &source.buf, vk::ImageUsageFlags::SAMPLED).expect("import");
    let expected = |n: u32| {
        let o = Overlay {
            frame: n,
            progress: None,
        };
        move |x: u32, y: u32| o.pixel(W, H, x, y).unwrap_or_else(|| pattern::rgb(W, H, n, x, y))
    };
    let shows = |n: u32| {
        let c = compositor.capture();
        let want = expected(n);
        (0..H)
            .step_by(3)
            .all(|y| (0..W).step_by(3).all(|x| c.rgb(x, y) == want(x, y)))
    };
    let draw = |i: usize, n: u32, after: &Fence| {
        common::write_planes(
            &source.buf,
            &pattern::frame_planes(DrmFourcc::Xrgb8888, W, H, n).unwrap(),
        );
        kernels
            .composite_submit(
                &video,
                &out[i],
                &Overlay {
                    frame: n,
                    progress: None,
                },
                after,
            )
            .expect("composite")
    };
    // Frames 1 and 2 into images 0 and 1: frame 2 replaces frame 1, and the
    // compositor answers image 0's release with a pending fence.
    for (i, n) in [(0usize, 1u32), (1, 2)] {
        let s = draw(i, n, &Fence::Implicit);
        let acquire = Fence::SyncFile(s.sync_file().expect("the composite's sync_file"));
        presenter
            .present_with_fence(out[i].dmabuf(), Box::new(()), acquire)
            .expect("present");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !shows(n) {
            assert!(Instant::now() < deadline, "frame {n} never shown");
            presenter.dispatch_timeout(Duration::from_millis(20)).unwrap();
        }
        drop(s);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let release = loop {
        match presenter.take_release(out[0].dmabuf()).expect("take_release") {
            Release::After(fence) => break fence,
            Release::Held => {
                assert!(Instant::now() < deadline, "no release event for image 0");
                presenter.dispatch_timeout(Duration::from_millis(20)).unwrap();
            }
            Release::Free => panic!("image 0 released without its fence"),
        }
    };
    assert_eq!(
        release.is_signalled().unwrap(),
        Some(false),
        "the compositor still reads image 0"
    );

    // Frame 3 into image 0, after the release fence: the work waits. On a
    // GPU the wait is the queue's; lavapipe waits for an imported sync_file
    // on the CPU inside the driver (the submitting thread blocks), so the
    // submission runs on a thread of its own here and either form of
    // waiting is accepted: not finished while the fence is pending.
    let s = std::thread::scope(|scope| {
        let submitting = scope.spawn(|| draw(0, 3, &release));
        std::thread::sleep(Duration::from_millis(400));
        let waited_in = if submitting.is_finished() {
            "the queue (submission pending)"
        } else {
            "the driver (submit blocked)"
        };
        assert!(shows(2), "frame 2 stays on screen meanwhile");
        println!("while the release fence was pending the composite waited in {waited_in}");
        if submitting.is_finished() {
            let s = submitting.join().expect("submitting thread");
            assert!(
                !s.is_done().unwrap(),
                "the composite ran before the release fence signalled"
            );
            assert!(compositor.signal_release_fences() >= 1);
            s
        } else {
            assert!(compositor.signal_release_fences() >= 1);
            submitting.join().expect("submitting thread")
        }
    });
    let acquire = Fence::SyncFile(s.sync_file().expect("sync_file"));
    presenter
        .present_with_fence(out[0].dmabuf(), Box::new(()), acquire)
        .expect("present");
    s.wait().expect("the composite finishes after the signal");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !shows(3) {
        assert!(Instant::now() < deadline, "frame 3 never shown");
        presenter.dispatch_timeout(Duration::from_millis(20)).unwrap();
    }
    println!("release fence pending: the composite held back; after the signal frame 3 is shown");
    common::assert_no_validation_messages(&ctx);
}
