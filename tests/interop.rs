//! Our elements with GStreamer's own, in the caps style of the running
//! GStreamer (1.22 on the host, 1.26 in the chroot stage): the caps each
//! pipeline negotiated are asserted per version and printed (as `-v` shows
//! them), and every picture is checked on a capture or a download.
#![cfg(all(feature = "headless", feature = "gstreamer", feature = "vulkan"))]

mod common;

use std::time::{Duration, Instant};

use common::gst::{init, launch};
use common::{grid_error, gst_stage_test, weston};
use dmabuf_interop::gst::caps::runtime_has_dma_drm;
use dmabuf_interop::reference::pattern;
use dmabuf_interop::wayland::headless::{Image, Renderer, Weston};
use gstreamer as gst;
use gstreamer::prelude::*;

const W: u32 = 320;
const H: u32 = 240;
const FRAMES: u32 = 20;

/// The caps a non-mappable XRGB8888 (BGRx) stream must negotiate with this
/// GStreamer: `memory:DMABuf` with `format=BGRx` on 1.22, `format=DMA_DRM,
/// drm-format=XR24` (LINEAR, no modifier suffix) on 1.24+.
fn assert_dmabuf_caps_style(caps: &gst::Caps, what: &str) {
    let s = caps.structure(0).unwrap();
    let features = caps.features(0).unwrap();
    assert!(features.contains("memory:DMABuf"), "{what}: {caps}");
    if runtime_has_dma_drm() {
        assert_eq!(s.get::<&str>("format").unwrap(), "DMA_DRM", "{what}: {caps}");
        assert_eq!(s.get::<&str>("drm-format").unwrap(), "XR24", "{what}: {caps}");
    } else {
        assert_eq!(s.get::<&str>("format").unwrap(), "BGRx", "{what}: {caps}");
    }
}

/// Plays `description` (its sink named `sink`) to EOS, capturing `weston`'s
/// output there; returns the capture and the caps on the sink's pad.
fn play_and_capture(weston: &Weston, description: &str) -> (Image, gst::Caps) {
    let pipeline = launch(description);
    let sink = pipeline.by_name("sink").expect("an element named sink");
    let pad = sink.static_pad("sink").unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut caps = None;
    let image = loop {
        assert!(Instant::now() < deadline, "{description}: no EOS");
        caps = caps.or_else(|| pad.current_caps());
        match bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(50),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            Some(m) => match m.view() {
                gst::MessageView::Eos(_) => break weston.capture().expect("capture"),
                gst::MessageView::Error(e) => {
                    pipeline.set_state(gst::State::Null).unwrap();
                    panic!("{description}: {} {:?}\n{}", e.error(), e.debug(), weston.log_tail())
                }
                _ => {}
            },
            None => continue,
        }
    };
    pipeline.set_state(gst::State::Null).unwrap();
    let caps = caps.expect("negotiated caps");
    println!("{description}\n  negotiated: {caps}");
    (image, caps)
}

#[test]
fn non_mappable_dmabufs_into_gstreamers_waylandsink() {
    init();
    if !gst_stage_test("waylandsink", gst::ElementFactory::find("waylandsink").is_some()) {
        return;
    }
    let weston = weston(W, H, Renderer::Gl);
    let socket = weston.socket_path();
    let (image, caps) = play_and_capture(
        &weston,
        &format!(
            "vkdmabufsrc non-mappable=true num-buffers={FRAMES} ! video/x-raw(memory:DMABuf),width={W},height={H} \
             ! waylandsink name=sink display={}",
            socket.display()
        ),
    );
    assert_dmabuf_caps_style(&caps, "vkdmabufsrc ! waylandsink");
    let (worst, points) = grid_error(&image, |x, y| pattern::rgb(W, H, FRAMES - 1, x, y), W, H);
    println!("waylandsink shows our last frame: worst error {worst} over {points} points");
    assert_eq!(worst, 0, "the last frame on waylandsink's surface");
}

#[test]
fn non_mappable_dmabufs_into_wldmabufsink() {
    init();
    let weston = weston(W, H, Renderer::Gl);
    let (image, caps) = play_and_capture(
        &weston,
        &format!(
            "vkdmabufsrc non-mappable=true num-buffers={FRAMES} ! video/x-raw(memory:DMABuf),width={W},height={H} \
             ! wldmabufsink name=sink max-lateness=-1 display={}",
            weston.socket_path().display()
        ),
    );
    assert_dmabuf_caps_style(&caps, "vkdmabufsrc ! wldmabufsink");
    let (worst, _) = grid_error(&image, |x, y| pattern::rgb(W, H, FRAMES - 1, x, y), W, H);
    assert_eq!(worst, 0, "the last frame");
}

#[test]
fn wldmabufsink_templates_follow_the_running_gstreamer() {
    init();
    let factory = gst::ElementFactory::find("wldmabufsink").unwrap();
    let template = factory
        .static_pad_templates()
        .into_iter()
        .find(|t| t.direction() == gst::PadDirection::Sink)
        .unwrap()
        .caps();
    let src = gst::ElementFactory::find("vkdmabufsrc")
        .unwrap()
        .static_pad_templates()
        .into_iter()
        .find(|t| t.direction() == gst::PadDirection::Src)
        .unwrap()
        .caps();
    for (name, caps) in [("wldmabufsink", &template), ("vkdmabufsrc", &src)] {
        let dmabuf = caps
            .iter_with_features()
            .find(|(_, f)| f.contains("memory:DMABuf"))
            .map(|(s, _)| s.to_owned())
            .unwrap_or_else(|| panic!("{name}: no memory:DMABuf structure in {caps}"));
        let format = dmabuf.value("format").unwrap();
        let dma_drm = format.get::<&str>().ok() == Some("DMA_DRM");
        assert_eq!(dma_drm, runtime_has_dma_drm(), "{name} template: {caps}");
        // Plain caps for mappable buffers in both versions.
        assert!(
            caps.iter_with_features().any(|(_, f)| !f.contains("memory:DMABuf")),
            "{name}: {caps}"
        );
    }
}

#[test]
fn vkdmabufsrc_into_glupload() {
    init();
    if !gst_stage_test(
        "glupload (gstreamer1.0-gl)",
        gst::ElementFactory::find("glupload").is_some(),
    ) {
        return;
    }
    // GL needs a display: the headless Weston's, through a gst-launch of
    // our plugin (WAYLAND_DISPLAY is set for that process only).
    let weston = weston(W, H, Renderer::Gl);
    let dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let out = std::env::temp_dir().join(format!("interop-glupload-{}.raw", std::process::id()));
    // glcolorconvert (RGBA -> BGRA) samples the uploaded texture in a
    // shader, as a GL consumer does. Straight gldownload of an imported
    // dma-buf texture is not usable on Mesa 25.0's llvmpipe: it reads back
    // memory that is not the dma-buf (measured on memfds, udmabuf dma-bufs
    // and virtio-gpu GBM bos alike: ~71% of the bytes differ, heap
    // pointers in row 0, zeros further down), while sampling the same
    // texture gives our frame exactly.
    let launch = std::process::Command::new("gst-launch-1.0")
        .args([
            "-v",
            "vkdmabufsrc",
            &format!("num-buffers={FRAMES}"),
            "!",
            &format!("video/x-raw,format=RGBA,width={W},height={H}"),
            "!",
            "glupload",
            "!",
            "glcolorconvert",
            "!",
            "video/x-raw(memory:GLMemory),format=BGRA",
            "!",
            "gldownload",
            "!",
            "video/x-raw,format=BGRA",
            "!",
            "multifilesink",
            &format!("location={}", out.display()),
        ])
        .env("GST_PLUGIN_PATH", &dir)
        .env("WAYLAND_DISPLAY", weston.socket_path())
        .env("GST_GL_WINDOW", "wayland")
        // glupload names each uploader it tries (INFO on 1.26, DEBUG on
        // 1.22), keeping the last.
        .env("GST_DEBUG", "glupload:5")
        .env("GST_DEBUG_NO_COLOR", "1")
        .output()
        .expect("gst-launch-1.0");
    let stdout = String::from_utf8_lossy(&launch.stdout);
    let stderr = String::from_utf8_lossy(&launch.stderr);
    assert!(launch.status.success(), "{stdout}\n{stderr}");
    for line in stdout
        .lines()
        .filter(|l| l.contains("glupload") && l.contains("caps ="))
    {
        println!("{line}");
    }
    let uploader = stderr
        .lines()
        .filter_map(|l| l.split_once("attempting upload with uploader ").map(|(_, r)| r.trim()))
        .next_back()
        .unwrap_or_else(|| panic!("glupload logged no uploader:\n{stderr}"));
    println!("glupload uploader: {uploader}");
    // Zero-copy: an EGL import of our dma-bufs (DirectDmabuf, or Dmabuf
    // with per-plane imports), not the Raw Data copy.
    assert!(
        uploader.contains("Dmabuf") && uploader != "Dmabuf Passthrough",
        "glupload must import our dma-bufs, not copy them (uploader {uploader})"
    );
    assert!(
        stdout.contains("memory:GLMemory"),
        "glupload must take our dma-bufs into GL memory:\n{stdout}"
    );
    // multifilesink without %d overwrites: the file holds the last frame.
    let bytes = std::fs::read(&out).expect("downloaded frame");
    let _ = std::fs::remove_file(&out);
    assert_eq!(bytes.len(), (W * H * 4) as usize);
    let want = pattern::frame_planes(dmabuf_interop::DrmFourcc::Argb8888, W, H, FRAMES - 1).unwrap();
    let differing = bytes.iter().zip(&want[0]).filter(|(a, b)| a != b).count();
    assert_eq!(
        differing, 0,
        "glupload ! glcolorconvert ! gldownload must give back our last frame exactly"
    );
}
