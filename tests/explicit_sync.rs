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
use dmabuf_interop::fence::DrmDevice;
use dmabuf_interop::wayland::{Presenter, SyncMode, Target};
use dmabuf_interop::{DrmFourcc, pattern};
use syncobj_compositor::{Capture, TestCompositor};

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

#[test]
fn an_unsignalled_acquire_point_keeps_the_old_frame_on_screen() {
    let Some((card, node)) = setup() else { return };
    let compositor = TestCompositor::start(node.path(), W, H);
    let mut presenter = Presenter::connect_to(
        compositor.socket_path(),
        Target::Toplevel {
            title: "explicit sync".into(),
            app_id: "dmabuf-interop-test".into(),
        },
    )
    .expect("connect");
    assert_eq!(
        presenter.stats().sync,
        SyncMode::DrmSyncobj,
        "{:?}",
        presenter.sync_fallback()
    );

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
    println!("while pending: {captures} captures showed frame 1, its buffer held");

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

#[test]
fn a_producer_gets_a_buffer_back_only_after_its_release_point() {
    // The tightest ring, two buffers: the one written next is always the
    // one the previous commit replaced, so a buffer handed back on
    // anything earlier than its release point would be written while it
    // is still on screen, and the capture taken right after the write
    // (before presenting it) would show it.
    let Some((card, node)) = setup() else { return };
    let compositor = TestCompositor::start(node.path(), W, H);
    let mut presenter = Presenter::connect_to(compositor.socket_path(), toplevel()).expect("connect");
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
    let stats = presenter.stats();
    println!("{FRAMES} frames through a ring of 2: written while on screen {written_while_shown}; {stats:?}");
    assert_eq!(written_while_shown, 0);
    assert_eq!(stats.reused_before_release, 0);
    assert_eq!(stats.explicit_sync_commits, u64::from(FRAMES));
    // Every frame but the one on screen was released by its point.
    assert!(stats.release_points_signalled >= u64::from(FRAMES - 1), "{stats:?}");
}

#[test]
fn without_the_protocol_frames_use_implicit_sync() {
    // Weston 14 has no wp_linux_drm_syncobj_v1: the presenter stays on
    // implicit sync and frames are shown as before (host and VM).
    let weston = common::weston(W, H, dmabuf_interop::wayland::headless::Renderer::Gl);
    let mut presenter = Presenter::connect_to(&weston.socket_path(), toplevel()).expect("connect");
    assert_eq!(presenter.stats().sync, SyncMode::Implicit);
    assert_eq!(
        presenter.sync_fallback(),
        None,
        "not offered, so nothing to fall back from"
    );
    let buf = dmabuf_interop::alloc::best_available()
        .expect("an allocator")
        .allocate(DrmFourcc::Xrgb8888, W, H, 1)
        .expect("allocate");
    common::write_planes(&buf, &pattern::frame_planes(DrmFourcc::Xrgb8888, W, H, 3).unwrap());
    presenter.present(&buf, Box::new(())).expect("present");
    assert!(presenter.wait_frame(Duration::from_secs(5)).unwrap());
    let image = weston.capture().expect("capture");
    let mut wrong = 0;
    for y in (0..H).step_by(4) {
        for x in (0..W).step_by(4) {
            let p = image.pixel(x, y).expect("inside the capture");
            if [p[0], p[1], p[2]] != want(3, x, y) {
                wrong += 1;
            }
        }
    }
    assert_eq!(wrong, 0, "frame 3 on screen");
    let stats = presenter.stats();
    assert_eq!(stats.explicit_sync_commits, 0);
}
