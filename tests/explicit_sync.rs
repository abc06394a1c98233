//! Explicit sync end to end (the VM stage: vgem's pending fences, a
//! virtio-gpu node with timeline syncobjs): the Presenter against a
//! compositor offering `wp_linux_drm_syncobj_v1` (tests/syncobj_compositor,
//! on Smithay), pixels read back from it.
#![cfg(feature = "wayland")]

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
        assert!(Instant::now() < deadline, "frame {n} never shown ({} wrong)", wrong(&c, n));
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
    ).expect("connect");
    assert_eq!(presenter.stats().sync, SyncMode::DrmSyncobj, "{:?}", presenter.sync_fallback());

    // Frame 1, finished: shown.
    let first = VgemBuffer::new(&card, W, H);
    common::write_planes(&first.buf, &pattern::frame_planes(DrmFourcc::Xrgb8888, W, H, 1).unwrap());
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
        assert_eq!(wrong(&c, 1), 0, "frame 1 must stay on screen while frame 2's fence is pending");
        assert!(presenter.is_busy(&first.buf), "frame 1's buffer is still on screen");
        captures += 1;
    }
    println!("while pending: {captures} captures showed frame 1, its buffer held");

    // The producer finishes frame 2, then signals: frame 2 is shown, and
    // frame 1's release point hands its buffer back.
    write_rows_unsynced(&second.buf, &pattern::frame_planes(DrmFourcc::Xrgb8888, W, H, 2).unwrap()[0]);
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
