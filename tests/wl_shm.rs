//! wldmabufsink where frames go through `wl_shm`: a headless Weston with the
//! pixman renderer offers no linux-dmabuf and an RGB-only `wl_shm`, as sway
//! and KWin do without a GPU. Upstream writes straight into memfds the sink
//! registers as `wl_shm` pools (zero copy), and YUV that `wl_shm` lacks is
//! converted on the CPU with the stream's colorimetry. GStreamer's
//! waylandsink runs beside ours on the same compositor as the anchor (its
//! results reported, not asserted: where it plays, ours must too).
#![cfg(all(feature = "headless", feature = "gstreamer", feature = "vulkan"))]

mod common;

use common::gst::{bars_error, init, play_bars as play, play_bars_via as play_via};
use common::weston;
use dmabuf_interop::wayland::headless::{Renderer, Weston};

#[test]
fn without_linux_dmabuf_upstream_writes_straight_into_wl_shm() {
    init();
    let caps = "video/x-raw,format=BGRx,width=320,height=240";
    let weston = pixman_weston(320, 240);
    let ours = play(&weston, caps, "wldmabufsink max-lateness=-1", 60);
    assert_eq!(ours.error, None);
    let stats = ours.stats.as_ref().unwrap();
    println!("wldmabufsink: {stats}");
    assert_eq!(ours.stat("shown") + ours.stat("dropped"), 60, "{stats}");
    assert!(ours.stat("shown") >= 55, "{stats}");
    // Every shown frame zero-copy through wl_shm over the pool's memfds.
    assert_eq!(
        (ours.stat("zero-copy"), ours.stat("shm-zero-copy"), ours.stat("copies")),
        (ours.stat("shown"), ours.stat("shown"), 0),
        "{stats}"
    );
    assert!(ours.stat("wl-buffers") <= 8, "one wl_buffer per pool buffer: {stats}");
    assert_eq!(ours.stat("reused-before-release"), 0);
    // The stats name the pool's back end: the one this process may open
    // (memfd on the bare host, udmabuf in the VM stage).
    let expected = dmabuf_interop::alloc::best_available()
        .expect("an allocator")
        .kind()
        .name();
    assert_eq!(stats.get::<&str>("pool").ok(), Some(expected), "{stats}");
    let (worst, points) = bars_error(&ours, 320, 240, "wl-shm-BGRx").expect("capture");
    println!("wldmabufsink: worst channel error {worst} over {points} points");
    assert!(points > 100 && worst == 0, "worst {worst} over {points}");

    let weston = pixman_weston(320, 240);
    let anchor = play(&weston, caps, "waylandsink", 60);
    println!(
        "waylandsink: error {:?}, bars {:?}",
        anchor.error,
        bars_error(&anchor, 320, 240, "wl-shm-BGRx-waylandsink")
    );
}

/// A fresh pixman Weston for each run (a new one keeps captures clean).
fn pixman_weston(width: u32, height: u32) -> Weston {
    weston(width, height, Renderer::Pixman)
}

#[test]
fn yuv_that_wl_shm_lacks_is_converted_with_the_streams_colorimetry() {
    init();
    // (size, colorimetry in the caps (range:matrix:transfer:primaries),
    // tolerance): from videotestsrc, GStreamer's defaults (BT.601 below 577
    // rows, BT.709 above) and explicit BT.709, within 3/255; through
    // videoconvert, full-range BT.601 and BT.2020 limited, within 5/255:
    // videoconvert's integer encoder is off by itself (blue as Y 31, Cb 239
    // instead of 32, 240: 3-4 after an exact decode), while the wrong range
    // or matrix is 12-20 off.
    let cases = [
        (320, 240, None, 3),
        (1280, 720, None, 3),
        (320, 240, Some("bt709"), 3),
        (320, 240, Some("1:4:0:0"), 5),
        (320, 240, Some("2:6:0:0"), 5),
    ];
    for format in ["NV12", "I420", "YUY2"] {
        for (width, height, colorimetry, tolerance) in cases {
            let via_videoconvert = tolerance > 3;
            let caps = format!(
                "video/x-raw,format={format},width={width},height={height}{}",
                colorimetry.map(|c| format!(",colorimetry={c}")).unwrap_or_default()
            );
            let weston = pixman_weston(width, height);
            // The CPU conversion (tests/gpu_conversion.rs has the GPU's).
            let ours = play_via(
                &weston,
                &caps,
                "wldmabufsink max-lateness=-1 gpu-conversion=false",
                10,
                via_videoconvert,
            );
            assert_eq!(ours.error, None, "{caps}");
            let stats = ours.stats.as_ref().unwrap();
            assert!(ours.stat("shown") >= 1, "{caps}: {stats}");
            assert_eq!(
                (ours.stat("converted"), ours.stat("copies"), ours.stat("zero-copy")),
                (ours.stat("shown"), ours.stat("shown"), 0),
                "{caps}: {stats}"
            );
            let name = format!("wl-shm-{format}-{width}x{height}-{}", colorimetry.unwrap_or("default"));
            let (worst, points) = bars_error(&ours, width, height, &name).expect("capture");
            let weston = pixman_weston(width, height);
            let anchor = play_via(&weston, &caps, "waylandsink", 10, via_videoconvert);
            println!(
                "{caps}: wldmabufsink worst {worst} over {points} points, converted {}; waylandsink: {}",
                ours.stat("converted"),
                match (
                    &anchor.error,
                    bars_error(&anchor, width, height, &format!("{name}-waylandsink"))
                ) {
                    (Some(e), _) => format!("error {}", e.lines().next().unwrap_or("")),
                    (None, Some((w, p))) => format!("worst {w} over {p} points"),
                    (None, None) => "no capture".into(),
                }
            );
            assert!(points > 90 && worst <= tolerance, "{caps}: worst {worst} over {points}");
        }
    }
}
