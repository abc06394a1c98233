//! The Wayland adapter against a real headless Weston 14 (GL renderer on
//! llvmpipe): pixels in captures, the buffer cache, release discipline,
//! refusals, the shm fallback.
#![cfg(feature = "headless")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use dmabuf_interop::alloc::{Allocator, MemfdAllocator};
use dmabuf_interop::colour::Colorimetry;
use dmabuf_interop::wayland::headless::{Image, Renderer, Weston};
use dmabuf_interop::wayland::{OverlayImage, Presented, Presenter, Rect, ShmError, Target, Via, WaylandError};
use dmabuf_interop::{DmaBuf, DrmFourcc, DrmModifier};

use dmabuf_interop::reference::pattern;

fn presenter(weston: &Weston) -> Presenter {
    Presenter::connect_to(
        &weston.socket_path(),
        Target::Toplevel {
            title: "dmabuf-interop test".into(),
            app_id: "dmabuf-interop.test".into(),
        },
    )
    .expect("connect to the headless weston")
}

/// A pattern frame from the machine's best allocator: a memfd on the bare
/// host, a udmabuf in the VM stage (a Weston with a render node imports
/// through the GPU path, which takes kernel dma-bufs only).
fn pattern_buffer(fourcc: DrmFourcc, width: u32, height: u32, frame: u32) -> DmaBuf {
    let buf = dmabuf_interop::alloc::best_available()
        .unwrap()
        .allocate(fourcc, width, height, 64)
        .unwrap();
    write_planes(&buf, &pattern::frame_planes(fourcc, width, height, frame).unwrap());
    buf
}

/// linux-dmabuf v3 (Weston without a render node: the bare host) or v4/v5
/// with feedback (Weston with a render node: the VM stage), whose main
/// device must be one of this machine's DRM nodes and whose tranches must
/// offer what the format events would.
fn check_feedback(formats: &dmabuf_interop::wayland::FormatSet) {
    let version = formats.dmabuf_version;
    assert!((3..=5).contains(&version), "{formats:?}");
    if version >= 4 {
        let main = formats.main_device.expect("v4+ feedback names a main device");
        let nodes: Vec<u64> = std::fs::read_dir("/dev/dri")
            .expect("/dev/dri: a compositor with feedback has a render node")
            .flatten()
            .filter_map(|e| rustix::fs::stat(e.path()).ok())
            .map(|st| st.st_rdev)
            .collect();
        assert!(nodes.contains(&main), "main device {main:#x} is not one of {nodes:x?}");
        assert!(!formats.tranches.is_empty(), "{formats:?}");
        assert!(
            formats.supports_dmabuf(DrmFourcc::Xrgb8888, dmabuf_interop::DrmModifier::Linear),
            "{formats:?}"
        );
    }
    println!(
        "linux-dmabuf v{version}, main device {:?}, {} tranche(s)",
        formats.main_device,
        formats.tranches.len()
    );
}

/// Shows `buf`, waits until it is on screen, and captures the output.
fn show_and_capture(weston: &Weston, p: &mut Presenter, buf: &DmaBuf) -> Image {
    p.present(buf, Box::new(())).expect("present");
    assert!(p.wait_frame(Duration::from_secs(5)).unwrap(), "no frame callback");
    weston.capture().expect("capture")
}

/// What a compositor shows for an RGB colour that went through our BT.709
/// YUV encoding: Weston 14 decodes YUV dma-bufs with BT.601 limited-range
/// coefficients (no colour-representation protocol says otherwise).
fn through_yuv(c: [u8; 3]) -> [u8; 3] {
    let [y, u, v] = pattern::rgb_to_yuv(c);
    let (y, u, v) = (
        1.164 * (f64::from(y) - 16.0),
        f64::from(u) - 128.0,
        f64::from(v) - 128.0,
    );
    let ch = |x: f64| x.round().clamp(0.0, 255.0) as u8;
    [ch(y + 1.596 * v), ch(y - 0.392 * u - 0.813 * v), ch(y + 2.017 * u)]
}

/// [`grid_error`] against pattern frame `frame` (through YUV when `yuv`).
fn pattern_error(image: &Image, width: u32, height: u32, frame: u32, yuv: bool) -> (u32, usize) {
    grid_error(
        image,
        |x, y| {
            let c = pattern::rgb(width, height, frame, x, y);
            if yuv { through_yuv(c) } else { c }
        },
        width,
        height,
    )
}

#[test]
fn dmabufs_show_the_right_pixels() {
    for (fourcc, tolerance) in [(DrmFourcc::Xrgb8888, 0), (DrmFourcc::Argb8888, 0), (DrmFourcc::Nv12, 2)] {
        let (w, h) = (320, 240);
        let weston = weston(w, h, Renderer::Gl);
        let mut p = presenter(&weston);
        check_feedback(p.formats());
        let buf = pattern_buffer(fourcc, w, h, 7);
        let image = show_and_capture(&weston, &mut p, &buf);
        let (worst, points) = pattern_error(&image, w, h, 7, fourcc == DrmFourcc::Nv12);
        println!("{fourcc:?}: worst channel error {worst} over {points} points");
        assert!(points > 100);
        assert!(worst <= tolerance, "{fourcc:?}: worst channel error {worst}");
        let stats = p.stats();
        // Zero-copy, or (a compositor that answers `failed`, the VM stage's)
        // one refusal and the wl_shm way (the udmabuf's own memory as a
        // wl_shm pool, else the counted copy): the same pixels.
        if stats.import_refusals == 0 {
            assert_eq!(
                (stats.zero_copy, stats.copies, stats.shm_zero_copy),
                (1, 0, 0),
                "{stats:?}"
            );
        } else {
            assert_eq!(
                (
                    stats.import_refusals,
                    stats.shm_zero_copy + stats.copies,
                    stats.zero_copy
                ),
                (1, 1, stats.shm_zero_copy),
                "{stats:?}"
            );
        }
    }
}

#[test]
fn wl_buffers_are_cached_per_source_and_written_only_after_release() {
    let weston = weston(320, 240, Renderer::Gl);
    let mut p = presenter(&weston);
    // A producer with a ring of 3 buffers, faster than the compositor: it
    // writes a buffer only when the compositor has released it.
    let ring: Vec<DmaBuf> = (0..3)
        .map(|_| {
            dmabuf_interop::alloc::best_available()
                .unwrap()
                .allocate(DrmFourcc::Xrgb8888, 320, 240, 64)
                .unwrap()
        })
        .collect();
    // The instrument, independent of `is_busy`: each present hands over a
    // token as the keep-alive, which the presenter drops only on the
    // buffer's release. A slot whose token is still alive is still held.
    // (A frame copied into wl_shm leaves its source free at once: the
    // count applies to frames sent as dma-bufs, which the compositor reads
    // in place.)
    let tokens: Vec<Arc<()>> = (0..3).map(|_| Arc::new(())).collect();
    let mut sent_in_place = [false; 3];
    let mut written_while_held = 0;
    let mut waits = 0;
    for frame in 0..60u32 {
        let slot = loop {
            if let Some(i) = ring.iter().position(|b| !p.is_busy(b)) {
                break i;
            }
            waits += 1;
            p.dispatch_timeout(Duration::from_millis(5)).unwrap();
        };
        if sent_in_place[slot] && Arc::strong_count(&tokens[slot]) > 1 {
            written_while_held += 1;
        }
        write_planes(
            &ring[slot],
            &pattern::frame_planes(DrmFourcc::Xrgb8888, 320, 240, frame).unwrap(),
        );
        sent_in_place[slot] = p
            .present(&ring[slot], Box::new(Arc::clone(&tokens[slot])))
            .unwrap()
            .zero_copy();
    }
    assert!(p.wait_frame(Duration::from_secs(5)).unwrap());
    let image = weston.capture().unwrap();
    let stats = p.stats();
    println!("{stats:?}, producer waited {waits} times");
    assert_eq!(written_while_held, 0);
    assert_eq!(stats.reused_before_release, 0);
    if stats.import_refusals == 0 {
        // One wl_buffer per source, reused: 3 created, 57 hits.
        assert_eq!(
            (stats.wl_buffers_created, stats.cache_hits, stats.zero_copy),
            (3, 57, 60)
        );
        assert_eq!(p.cached_buffers(), 3);
        assert!(stats.releases >= 57, "{stats:?}");
    } else {
        // A compositor that cannot import dma-bufs: asked once (one kind),
        // then every frame the wl_shm way: the udmabufs' own memory as
        // wl_shm pools (one wl_buffer per source, read in place), else
        // copies; none sent as a dma-buf.
        assert_eq!(
            (stats.import_refusals, stats.shm_zero_copy + stats.copies),
            (1, 60),
            "{stats:?}"
        );
        assert_eq!(stats.zero_copy, stats.shm_zero_copy, "{stats:?}");
        // One wl_buffer per source used (a compositor that releases wl_shm
        // buffers at once lets the ring reuse fewer than 3), the rest hits.
        if stats.shm_zero_copy > 0 {
            assert!((1..=3).contains(&stats.wl_buffers_created), "{stats:?}");
            assert_eq!(stats.cache_hits + stats.wl_buffers_created, 60, "{stats:?}");
        }
    }
    assert_eq!(pattern_error(&image, 320, 240, 59, false).0, 0, "last frame on screen");
    // Sources that die mid-playback take their wl_buffer with them, but a
    // buffer the compositor still holds is destroyed only on its release:
    // else no release comes and its keep-alive (the producer's buffer) is
    // held forever.
    let in_flight = p.buffers_in_flight();
    drop(ring);
    p.purge_dead();
    assert_eq!(p.cached_buffers(), 0);
    if stats.import_refusals == 0 {
        // (A wl_shm copy may be released at once: the compositor uploads it
        // on commit. A dma-buf on screen is held.)
        assert!(in_flight >= 1, "the frame on screen is held");
        assert_eq!(p.retired_buffers(), in_flight, "held buffers wait for their release");
    }
    // The next frame replaces the one on screen: every old buffer is
    // released, its token dropped, and the retired wl_buffers destroyed.
    let next = pattern_buffer(DrmFourcc::Xrgb8888, 320, 240, 7);
    p.present(&next, Box::new(())).unwrap();
    assert!(p.wait_frame(Duration::from_secs(5)).unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while tokens.iter().any(|t| Arc::strong_count(t) > 1) || p.retired_buffers() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "keep-alives held after the purge: {:?}, {} retired, {} in flight",
            tokens.iter().map(Arc::strong_count).collect::<Vec<_>>(),
            p.retired_buffers(),
            p.buffers_in_flight()
        );
        p.dispatch_timeout(Duration::from_millis(20)).unwrap();
    }
    if stats.import_refusals == 0 {
        assert_eq!(p.buffers_in_flight(), 1, "only the new frame is held");
    }
    let image = weston.capture().unwrap();
    assert_eq!(pattern_error(&image, 320, 240, 7, false).0, 0);
}

#[test]
fn refusals_are_typed_errors_before_any_request() {
    let weston = weston(320, 240, Renderer::Gl);
    let mut p = presenter(&weston);
    // A modifier the compositor did not advertise (Intel X-tiling).
    let good = pattern_buffer(DrmFourcc::Xrgb8888, 320, 240, 1);
    let tiled = DmaBuf::builder(DrmFourcc::Xrgb8888, DrmModifier::I915_x_tiled, 320, 240)
        .plane(good.planes()[0].shared_fd().clone(), 0, good.planes()[0].stride())
        .build()
        .unwrap();
    match p.present(&tiled, Box::new(())) {
        Err(WaylandError::NotAdvertised { fourcc, version, .. }) => {
            assert_eq!((fourcc, version), (DrmFourcc::Xrgb8888, p.formats().dmabuf_version));
        }
        other => panic!("expected NotAdvertised, got {other:?}"),
    }
    assert!(matches!(
        p.wl_buffer_for(&tiled),
        Err(WaylandError::NotAdvertised { .. })
    ));
    // A plane whose file shrank after the DmaBuf was built (an unsealed memfd).
    let fd = rustix::fs::memfd_create("shrinks", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&fd, 320 * 4 * 240).unwrap();
    let shrinking = DmaBuf::builder(DrmFourcc::Xrgb8888, DrmModifier::Linear, 320, 240)
        .plane(fd, 0, 320 * 4)
        .build()
        .unwrap();
    rustix::fs::ftruncate(shrinking.planes()[0].fd(), 1000).unwrap();
    match p.present(&shrinking, Box::new(())) {
        Err(WaylandError::FdTooSmall {
            plane: 0,
            fd_size: 1000,
            ..
        }) => {}
        other => panic!("expected FdTooSmall, got {other:?}"),
    }
    // A plane past 32 bits over a sparse 5 GiB memfd: the DmaBuf is
    // consistent (its file is large enough), but Weston answers such a
    // `create` with a fatal `out_of_bounds` ("size overflow for plane 0").
    let huge = rustix::fs::memfd_create("huge", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&huge, 5 << 30).unwrap();
    let beyond_u32 = DmaBuf::builder(DrmFourcc::Xrgb8888, DrmModifier::Linear, 1024, 1_100_000)
        .plane(huge, 0, 4096)
        .build()
        .unwrap();
    match p.present(&beyond_u32, Box::new(())) {
        Err(WaylandError::TooLarge { what, value }) => {
            assert_eq!((what.as_str(), value), ("plane 0 stride * height", 4096 * 1_100_000));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // The connection survived: a good buffer still shows, through the
    // checked `create` path too.
    // A compositor that cannot import dma-bufs at all answers `failed` even
    // for a kernel dma-buf: the VM stage's headless Weston has a render
    // node but its GL renderer runs on llvmpipe without a DRI screen
    // ("Error during import, and no known conversion for format XR24").
    let accepts_dmabufs = match p.create_buffer_checked(&good, Duration::from_secs(5)) {
        Ok(checked) => {
            checked.destroy();
            true
        }
        Err(WaylandError::ImportFailed { .. }) => false,
        Err(e) => panic!("{e}: {}", weston.log_tail()),
    };
    let image = show_and_capture(&weston, &mut p, &good);
    assert_eq!(pattern_error(&image, 320, 240, 1, false).0, 0);
    // Nothing was sent for the refused buffers: the one wl_buffer is the
    // good one's (linux-dmabuf, or, refused, a wl_shm one over its udmabuf).
    let stats = p.stats();
    assert_eq!(
        stats.wl_buffers_created,
        u64::from(accepts_dmabufs || stats.shm_zero_copy > 0),
        "nothing was sent for the refused buffers: {stats:?}"
    );
    // A buffer the compositor may not import although its format is
    // advertised: a plain memfd. Weston with a render node (the VM stage)
    // imports through the GPU, which takes kernel dma-bufs only, and answers
    // `failed`; a CPU-only Weston (the bare host) maps it. Either way the
    // frame is shown (zero-copy, or the counted wl_shm copy) and the
    // connection lives on.
    let memfd = MemfdAllocator::new()
        .allocate(DrmFourcc::Xrgb8888, 320, 240, 64)
        .unwrap();
    write_planes(
        &memfd,
        &pattern::frame_planes(DrmFourcc::Xrgb8888, 320, 240, 4).unwrap(),
    );
    let before = p.stats();
    let gpu_compositor = p.formats().main_device.is_some();
    for _ in 0..2 {
        let image = show_and_capture(&weston, &mut p, &memfd);
        assert_eq!(pattern_error(&image, 320, 240, 4, false).0, 0);
    }
    let after = p.stats();
    let refused = after.import_refusals - before.import_refusals;
    let copies = after.copies - before.copies;
    let shm = after.shm_zero_copy - before.shm_zero_copy;
    println!(
        "memfd on a {} compositor: {refused} refusal(s), {shm} wl_shm zero-copy, {copies} copies",
        if gpu_compositor { "GPU" } else { "CPU" }
    );
    if refused == 1 {
        // Asked once with `create`, then remembered: both frames the wl_shm
        // way (the memfd itself as the pool).
        assert_eq!((shm, copies), (2, 0), "{after:?}");
        assert!(matches!(
            p.wl_buffer_for(&memfd),
            Err(WaylandError::ImportFailed { .. })
        ));
    } else {
        assert_eq!((refused, copies), (0, 0), "{after:?}");
    }
    // Still connected: a kernel dma-buf or the host's memfd shows again.
    let image = show_and_capture(&weston, &mut p, &good);
    assert_eq!(pattern_error(&image, 320, 240, 1, false).0, 0);
}

/// This process's fds open on `buf`'s first plane's file (other tests'
/// fds, opened meanwhile by parallel threads, are on other files).
fn fds_on(buf: &DmaBuf) -> usize {
    let file = buf.planes()[0].file_id();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::metadata(e.ok()?.path()).ok())
        .filter(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino()) == file
        })
        .count()
}

#[test]
fn without_linux_dmabuf_frames_go_zero_copy_through_wl_shm() {
    // The pixman renderer offers no linux-dmabuf at all: the frame's own
    // memfd (udmabuf in the VM stage) becomes the wl_shm pool, once.
    let weston = weston(320, 240, Renderer::Pixman);
    let mut p = presenter(&weston);
    assert_eq!(p.formats().dmabuf_version, 0);
    let buf = pattern_buffer(DrmFourcc::Xrgb8888, 320, 240, 3);
    let before = fds_on(&buf);
    assert_eq!(before, 1, "the DmaBuf's own fd");
    for i in 0..3 {
        let presented = p.present(&buf, Box::new(())).unwrap();
        assert_eq!(presented, Presented::ShmZeroCopy { cached: i > 0 });
        assert!(p.wait_frame(Duration::from_secs(5)).unwrap());
    }
    let image = weston.capture().unwrap();
    assert_eq!(pattern_error(&image, 320, 240, 3, false).0, 0);
    let stats = p.stats();
    assert_eq!(
        (
            stats.zero_copy,
            stats.shm_zero_copy,
            stats.copies,
            stats.wl_buffers_created
        ),
        (3, 3, 0, 1),
        "{stats:?}"
    );
    // The pool was sent and destroyed: no fd of ours stays open on the file.
    assert_eq!(fds_on(&buf), before);
}

#[test]
fn a_write_sealed_memfd_is_copied_not_sent_to_wl_shm() {
    // wl_shm maps pools read-write; a write-sealed memfd (the stand-in for
    // a non-mappable dma-buf) would fail there and end our connection
    // (invalid_fd). It is copied instead, and the connection lives.
    let weston = weston(64, 48, Renderer::Pixman);
    let mut p = presenter(&weston);
    let buf = dmabuf_interop::alloc::MemfdAllocator
        .allocate(DrmFourcc::Xrgb8888, 64, 48, 64)
        .unwrap();
    write_planes(&buf, &pattern::frame_planes(DrmFourcc::Xrgb8888, 64, 48, 2).unwrap());
    rustix::fs::fcntl_add_seals(buf.planes()[0].fd(), rustix::fs::SealFlags::WRITE).expect("F_SEAL_WRITE");
    for _ in 0..2 {
        assert_eq!(p.present(&buf, Box::new(())).unwrap().via(), Via::ShmCopy);
        assert!(p.wait_frame(Duration::from_secs(5)).unwrap());
    }
    p.roundtrip().expect("the connection survived");
    let image = weston.capture().unwrap();
    assert_eq!(pattern_error(&image, 64, 48, 2, false).0, 0);
    assert_eq!((p.stats().shm_zero_copy, p.stats().copies), (0, 2));
}

#[test]
fn yuv_that_wl_shm_lacks_is_converted_with_the_frames_matrix() {
    // Pixman Weston's wl_shm is RGB only (like sway's and KWin's without a
    // GPU): NV12 is converted on the CPU into XRGB8888 with the frame's
    // colorimetry (the pattern's NV12 is BT.709 limited).
    let weston = weston(320, 240, Renderer::Pixman);
    let mut p = presenter(&weston);
    assert!(!p.formats().supports_shm(DrmFourcc::Nv12));
    let buf = pattern_buffer(DrmFourcc::Nv12, 320, 240, 4).with_colorimetry(Colorimetry::BT709);
    assert_eq!(p.present(&buf, Box::new(())).unwrap().via(), Via::Converted);
    assert!(p.wait_frame(Duration::from_secs(5)).unwrap());
    let image = weston.capture().unwrap();
    // Against the RGB the pattern encoded: within 3/255 at flat points.
    let (worst, points) = pattern_error(&image, 320, 240, 4, false);
    println!("NV12 converted: worst channel error {worst} over {points} points");
    assert!(points > 100 && worst <= 3, "worst {worst} over {points}");
    let stats = p.stats();
    assert_eq!((stats.copies, stats.converted, stats.zero_copy), (1, 1, 0), "{stats:?}");
}

/// A compositor that accepted the connection and then stopped answering
/// (SIGSTOP): connecting, a roundtrip and a capture are typed timeouts
/// within their bounds, not hangs; once it answers again the connection
/// made before goes on.
#[test]
fn a_compositor_that_stops_answering_is_a_timeout_not_a_hang() {
    use dmabuf_interop::wayland::{CONNECT_TIMEOUT, ROUNDTRIP_TIMEOUT};
    let weston = weston(320, 240, Renderer::Gl);
    let mut p = presenter(&weston);
    let stopped = Stopped::new(&weston);
    let start = std::time::Instant::now();
    match Presenter::connect_to(
        &weston.socket_path(),
        Target::Toplevel {
            title: "stalled".into(),
            app_id: "dmabuf-interop.test".into(),
        },
    ) {
        Err(WaylandError::Timeout(what, bound)) => {
            assert_eq!((what, bound), ("the registry's globals", CONNECT_TIMEOUT));
        }
        other => panic!("expected a Timeout, got {other:?}"),
    }
    // A bound, not a speed: generous for a loaded machine.
    assert!(start.elapsed() < CONNECT_TIMEOUT * 3, "{:?}", start.elapsed());
    match p.roundtrip() {
        Err(WaylandError::Timeout(_, bound)) => assert_eq!(bound, ROUNDTRIP_TIMEOUT),
        other => panic!("expected a Timeout, got {other:?}"),
    }
    assert!(weston.capture().is_err(), "a capture of a stopped compositor ends");
    drop(stopped);
    p.roundtrip().expect("the connection lives on");
    let good = pattern_buffer(DrmFourcc::Xrgb8888, 320, 240, 2);
    let image = show_and_capture(&weston, &mut p, &good);
    assert_eq!(pattern_error(&image, 320, 240, 2, false).0, 0);
}

/// The first import of a new kind of buffer waits for `created`/`failed`
/// at most 2 s. A compositor that answers later (stopped meanwhile) gets
/// the frame the wl_shm way, later frames of the kind go without another
/// wait, and the late answer is applied: its `wl_buffer` destroyed, the
/// kind accepted (zero-copy from then on) or refused.
#[test]
fn a_late_created_is_applied_not_leaked() {
    let weston = weston(320, 240, Renderer::Gl);
    let mut p = presenter(&weston);
    let first = pattern_buffer(DrmFourcc::Xrgb8888, 320, 240, 1);
    show_and_capture(&weston, &mut p, &first);
    // A new kind (another stride) while the compositor does not answer.
    let wide = |frame| {
        let buf = dmabuf_interop::alloc::best_available()
            .unwrap()
            .allocate(DrmFourcc::Xrgb8888, 320, 240, 512)
            .unwrap();
        write_planes(
            &buf,
            &pattern::frame_planes(DrmFourcc::Xrgb8888, 320, 240, frame).unwrap(),
        );
        assert_ne!(buf.planes()[0].stride(), first.planes()[0].stride());
        buf
    };
    let new_kind = wide(3);
    let stopped = Stopped::new(&weston);
    let shown = p
        .present(&new_kind, Box::new(()))
        .expect("the frame goes the wl_shm way");
    assert_ne!(shown.via(), Via::LinuxDmabuf, "{shown:?}");
    // The same kind again: no second wait (it is not asked again).
    let again = wide(4);
    let start = std::time::Instant::now();
    let shown = p.present(&again, Box::new(())).unwrap();
    assert_ne!(shown.via(), Via::LinuxDmabuf, "{shown:?}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "asked again: {:?}",
        start.elapsed()
    );
    drop(stopped);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while p.stats().late_import_answers == 0 {
        assert!(std::time::Instant::now() < deadline, "no late answer: {:?}", p.stats());
        p.dispatch_timeout(Duration::from_millis(50)).unwrap();
    }
    // Applied for the kind: a third buffer of it goes as the compositor
    // answered: zero-copy on the host's CPU Weston, which maps memfds; the
    // VM stage's GPU Weston refuses this kind of buffer (counted).
    let refusals = p.stats().import_refusals;
    let third = wide(5);
    let image = show_and_capture(&weston, &mut p, &third);
    assert_eq!(pattern_error(&image, 320, 240, 5, false).0, 0);
    let stats = p.stats();
    println!("late answer applied: {stats:?}");
    assert_eq!(stats.late_import_answers, 1);
    if p.formats().main_device.is_none() {
        assert_eq!(
            stats.zero_copy - stats.shm_zero_copy,
            2,
            "first and third as dma-bufs: {stats:?}"
        );
    } else {
        assert!(refusals >= 1, "a refused kind is counted: {stats:?}");
    }
    p.roundtrip()
        .expect("no protocol error: the late wl_buffer was destroyed, not used");
}

/// Overlays (subtitles) above a frame: shown on screen where the frame's
/// layout puts them, uploaded once per key; a malformed image (pixels
/// shorter than its size, a size past int32) is a typed error before any
/// request, not retried for the same key, and the connection lives on.
#[test]
fn overlays_show_above_the_frame_and_bad_ones_are_typed_errors() {
    let weston = weston(64, 48, Renderer::Gl);
    let mut p = presenter(&weston);
    let frame = pattern_buffer(DrmFourcc::Xrgb8888, 64, 48, 1);
    // A 2x2 opaque red image stretched over a 16x8 band at (8, 32).
    let red = [0u8, 0, 255, 255].repeat(4);
    let band = OverlayImage {
        pixels: &red,
        width: 2,
        height: 2,
        stride: 8,
        rect: Rect {
            x: 8,
            y: 32,
            width: 16,
            height: 8,
        },
    };
    p.set_overlays(1, &[band]).unwrap();
    p.set_overlays(1, &[band]).unwrap();
    let image = show_and_capture(&weston, &mut p, &frame);
    assert_eq!(p.overlay_count(), 1);
    assert_eq!(p.stats().overlay_sets, 1, "the same key is uploaded once");
    let inside = image.pixel(15, 35).unwrap();
    assert_eq!(&inside[..3], &[255, 0, 0], "the overlay is not shown");
    let (above, points) = pattern_error(&image, 64, 32, 1, false);
    assert!(points > 0 && above == 0, "the frame above the band: {above}");
    // A new set of as many images (the next subtitle): the surface takes
    // the new image with the next frame.
    let green = [0u8, 255, 0, 255].repeat(4);
    p.set_overlays(4, &[OverlayImage { pixels: &green, ..band }]).unwrap();
    let image = show_and_capture(&weston, &mut p, &frame);
    assert_eq!(p.overlay_count(), 1);
    assert_eq!(p.stats().overlay_sets, 2);
    assert_eq!(
        &image.pixel(15, 35).unwrap()[..3],
        &[0, 255, 0],
        "the new image is not shown"
    );

    // Too short for its size: typed, and the set before it goes.
    let short = OverlayImage {
        pixels: &red[..12],
        ..band
    };
    let e = p.set_overlays(2, &[short]).unwrap_err();
    assert!(matches!(e, WaylandError::Shm(ShmError::Short { .. })), "{e:?}");
    assert_eq!(p.overlay_count(), 0);
    // The same failed key again: not retried.
    p.set_overlays(2, &[short]).unwrap();
    let huge = OverlayImage {
        width: 1 << 15,
        height: 1 << 15,
        ..band
    };
    let e = p.set_overlays(3, &[huge]).unwrap_err();
    assert!(matches!(e, WaylandError::Shm(ShmError::TooLarge { .. })), "{e:?}");
    // The connection is fine: frames go on, the band is gone.
    let image = show_and_capture(&weston, &mut p, &pattern_buffer(DrmFourcc::Xrgb8888, 64, 48, 2));
    p.roundtrip().expect("the connection lives");
    let (error, points) = pattern_error(&image, 64, 48, 2, false);
    assert!(points > 0 && error == 0, "frame 2 without the band: {error}");
}
