//! wldmabufsink's GPU conversion (`gpu-conversion`, on by default). A
//! headless Weston 14 with the GL renderer has no colour protocol and
//! reads YUV as BT.601 limited, so it misreads HD NV12, I420 and P010
//! (GStreamer's default there is BT.709). Such frames are converted on the GPU
//! (lavapipe) into exported XRGB8888 dma-bufs: no CPU copy, right colours.
//! The CPU conversion (`gpu-conversion=false`) runs beside it as the
//! reference path, and waylandsink as the anchor (its numbers reported,
//! not asserted: it sends the frames untold).
#![cfg(all(feature = "headless", feature = "gstreamer", feature = "vulkan"))]

mod common;

use common::gst::{Run, bars_error, init, play_bars};
use common::weston;
use dmabuf_interop::wayland::headless::Renderer;

const FRAMES: u32 = 10;

/// SMPTE bars in `caps` at `width`x`height` into `sink` on a fresh Weston
/// with the GL renderer, and the capture's worst channel error against the
/// RGB bars.
fn play(caps: &str, sink: &str, size: (u32, u32), name: &str) -> (Run, Option<(u32, usize)>) {
    play_on(Renderer::Gl, caps, sink, size, name)
}

/// [`play`] on a Weston with `renderer`.
fn play_on(
    renderer: Renderer,
    caps: &str,
    sink: &str,
    (width, height): (u32, u32),
    name: &str,
) -> (Run, Option<(u32, usize)>) {
    let weston = weston(width, height, renderer);
    let run = play_bars(&weston, caps, sink, FRAMES);
    let bars = bars_error(&run, width, height, name);
    println!("{sink}: error {:?}, bars {bars:?}, stats {:?}", run.error, run.stats);
    (run, bars)
}

#[test]
fn hd_nv12_the_compositor_would_misread_is_converted_on_the_gpu_without_a_copy() {
    init();
    let size = (1280, 720);
    let caps = "video/x-raw,format=NV12,width=1280,height=720";
    let (gpu, bars) = play(caps, "wldmabufsink max-lateness=-1", size, "gpu-conversion-nv12-720p");
    assert_eq!(gpu.error, None);
    let shown = gpu.stat("shown");
    assert!(shown > 0, "{:?}", gpu.stats);
    // Every frame converted on the GPU and shown as a dma-buf: no copy,
    // no CPU conversion.
    assert_eq!(
        (
            gpu.stat("gpu-converted"),
            gpu.stat("converted"),
            gpu.stat("copies"),
            gpu.stat("zero-copy")
        ),
        (shown, 0, 0, shown),
        "{:?}",
        gpu.stats
    );
    let (worst, points) = bars.expect("capture");
    assert!(
        points > 100 && worst <= 3,
        "GPU conversion: worst {worst} over {points} points"
    );

    let (cpu, bars) = play(
        caps,
        "wldmabufsink max-lateness=-1 gpu-conversion=false",
        size,
        "cpu-conversion-nv12-720p",
    );
    assert_eq!(cpu.error, None);
    assert_eq!(
        (cpu.stat("gpu-converted"), cpu.stat("converted")),
        (0, cpu.stat("shown")),
        "{:?}",
        cpu.stats
    );
    let (worst, points) = bars.expect("capture");
    assert!(
        points > 100 && worst <= 3,
        "CPU conversion: worst {worst} over {points} points"
    );

    // The anchor, reported (printed by `play`), not asserted.
    play(caps, "waylandsink", size, "gpu-conversion-nv12-720p-waylandsink");
}

/// I420 (three planes) and P010 (10 bits) at HD, which Weston 14 would
/// misread as NV12 is: converted on the GPU as well, every frame, no copy,
/// the bars within 3 of the RGB reference; waylandsink reported beside.
#[test]
fn hd_i420_and_p010_are_converted_on_the_gpu_too() {
    init();
    let size = (1280, 720);
    for format in ["I420", "P010_10LE"] {
        let caps = format!("video/x-raw,format={format},width=1280,height=720");
        let name = format!("gpu-conversion-{format}-720p");
        let (run, bars) = play(&caps, "wldmabufsink max-lateness=-1", size, &name);
        assert_eq!(run.error, None, "{format}");
        let shown = run.stat("shown");
        assert!(shown > 0, "{format}: {:?}", run.stats);
        assert_eq!(
            (
                run.stat("gpu-converted"),
                run.stat("converted"),
                run.stat("copies"),
                run.stat("zero-copy")
            ),
            (shown, 0, 0, shown),
            "{format}: {:?}",
            run.stats
        );
        let (worst, points) = bars.expect("capture");
        assert!(
            points > 100 && worst <= 3,
            "{format}: worst {worst} over {points} points"
        );
        if takes(&caps, "waylandsink") {
            play(&caps, "waylandsink", size, &format!("{name}-waylandsink"));
        } else {
            println!(
                "waylandsink {}: {format} is not in its caps",
                gstreamer::version_string()
            );
        }
    }
}

/// A 320x240 I420 frame in GStreamer's layout has 160-byte chroma rows,
/// which lavapipe (no DRM format modifiers on this host) does not import
/// as an image: such frames are copied into the device on the GPU and
/// converted there (`gpu-copied-in`), not on the CPU. BT.709 full range,
/// which Weston 14 would misread, through videoconvert (itself up to 4 off,
/// so 5 here).
#[test]
fn a_layout_vulkan_does_not_import_is_copied_in_on_the_gpu() {
    init();
    let caps = "video/x-raw,format=I420,width=320,height=240,colorimetry=1:3:0:0";
    let ours = weston(320, 240, Renderer::Gl);
    let run = common::gst::play_bars_via(&ours, caps, "wldmabufsink max-lateness=-1", FRAMES, true);
    let bars = bars_error(&run, 320, 240, "gpu-conversion-i420-sd-copied-in");
    println!(
        "wldmabufsink: error {:?}, bars {bars:?}, stats {:?}",
        run.error, run.stats
    );
    assert_eq!(run.error, None);
    let shown = run.stat("shown");
    assert!(shown > 0, "{:?}", run.stats);
    assert_eq!(
        (
            run.stat("gpu-converted"),
            run.stat("gpu-copied-in"),
            run.stat("converted"),
            run.stat("copies")
        ),
        (shown, shown, 0, 0),
        "{:?}",
        run.stats
    );
    let (worst, points) = bars.expect("capture");
    assert!(points > 100 && worst <= 5, "worst {worst} over {points} points");
    let theirs = weston(320, 240, Renderer::Gl);
    let anchor = common::gst::play_bars_via(&theirs, caps, "waylandsink", FRAMES, true);
    println!(
        "waylandsink: bars {:?}",
        bars_error(&anchor, 320, 240, "gpu-conversion-i420-sd-waylandsink")
    );
}

/// Whether `element`'s sink pad template takes `caps` (waylandsink 1.22
/// has no P010 in its list).
fn takes(caps: &str, element: &str) -> bool {
    let factory = gstreamer::ElementFactory::find(element).unwrap_or_else(|| panic!("{element} (run scripts/setup)"));
    let caps: gstreamer::Caps = caps.parse().expect("caps");
    factory
        .static_pad_templates()
        .iter()
        .filter(|t| t.direction() == gstreamer::PadDirection::Sink)
        .any(|t| t.caps().can_intersect(&caps))
}

/// The same on a compositor without linux-dmabuf (Weston's pixman
/// renderer, as sway and KWin without a GPU): the converted frames are
/// LINEAR memfd-backed exports, so they go as `wl_shm` pools over their
/// own memory: no copy there either.
#[test]
fn without_linux_dmabuf_the_gpu_output_goes_as_wl_shm_without_a_copy() {
    init();
    let (run, bars) = play_on(
        Renderer::Pixman,
        "video/x-raw,format=NV12,width=1280,height=720",
        "wldmabufsink max-lateness=-1",
        (1280, 720),
        "gpu-conversion-nv12-720p-pixman",
    );
    assert_eq!(run.error, None);
    let shown = run.stat("shown");
    assert!(shown > 0, "{:?}", run.stats);
    assert_eq!(
        (
            run.stat("gpu-converted"),
            run.stat("shm-zero-copy"),
            run.stat("copies"),
            run.stat("converted")
        ),
        (shown, shown, 0, 0),
        "{:?}",
        run.stats
    );
    let (worst, points) = bars.expect("capture");
    assert!(points > 100 && worst <= 3, "worst {worst} over {points} points");
}

/// What the compositor reads right (SD NV12 is BT.601, what Weston 14
/// assumes) goes as it is: no conversion on either side.
#[test]
fn sd_nv12_the_compositor_reads_right_goes_as_it_is() {
    init();
    let (run, bars) = play(
        "video/x-raw,format=NV12,width=320,height=240",
        "wldmabufsink max-lateness=-1",
        (320, 240),
        "gpu-conversion-nv12-sd",
    );
    assert_eq!(run.error, None);
    let shown = run.stat("shown");
    assert!(shown > 0, "{:?}", run.stats);
    assert_eq!(
        (run.stat("gpu-converted"), run.stat("converted"), run.stat("zero-copy")),
        (0, 0, shown),
        "{:?}",
        run.stats
    );
    let (worst, points) = bars.expect("capture");
    assert!(points > 100 && worst <= 3, "worst {worst} over {points} points");
}

/// The GPU conversion under the Vulkan validation layer: `gst-launch-1.0`
/// with the plugin from this build and `DMABUF_INTEROP_VULKAN_VALIDATION=1`
/// (the sink's context then runs the layer and prints what it reports),
/// 15 HD frames of each YUV format the kernels read converted; the layer
/// reports nothing (a layout, a barrier or an image freed while the GPU
/// uses it would be a message).
#[test]
fn the_gpu_conversion_is_clean_under_the_validation_layer() {
    init();
    let exe = std::env::current_exe().unwrap();
    let plugins = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    for format in ["NV12", "I420", "P010_10LE"] {
        // A Weston each: Weston 14's kiosk-shell can crash as a later
        // client's window replaces an earlier one (see `headless`).
        let weston = weston(1280, 720, Renderer::Gl);
        let out = std::process::Command::new("gst-launch-1.0")
            .args(["-m", "videotestsrc", "pattern=smpte", "num-buffers=15", "!"])
            .arg(format!("video/x-raw,format={format},width=1280,height=720"))
            .args(["!", "wldmabufsink", "max-lateness=-1"])
            .arg(format!("display={}", weston.socket_path().display()))
            .env("GST_PLUGIN_PATH", &plugins)
            .env("DMABUF_INTEROP_VULKAN_VALIDATION", "1")
            .env("GST_DEBUG", "wldmabufsink:2")
            .output()
            .expect("gst-launch-1.0 (gstreamer1.0-tools; run scripts/setup)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{format}: gst-launch-1.0 failed:\n{text}");
        let converted = text
            .split("gpu-converted=(guint64)")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u64>().ok());
        assert!(
            converted.is_some_and(|n| n > 0),
            "{format}: no frame converted on the GPU:\n{text}"
        );
        assert!(
            !text.contains("vulkan validation:"),
            "{format}: validation layer:\n{text}"
        );
        assert!(!text.contains("converting on the CPU"), "{format}: {text}");
    }
}
