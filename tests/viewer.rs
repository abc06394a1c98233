//! The viewer example, headless: the default pattern and a clip encoded at
//! test time (VP8 in WebM) played with `--uri`; each screenshot's pixels
//! are checked.
#![cfg(all(feature = "headless", feature = "gstreamer", feature = "vulkan"))]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::grid_error;
use dmabuf_interop::pattern;
use dmabuf_interop::wayland::headless::Image;

fn viewer() -> PathBuf {
    // target/<profile>/deps/<test binary> -> target/<profile>/examples/viewer
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(|d| d.parent()).unwrap().join("examples/viewer");
    assert!(
        path.exists(),
        "{} missing: build it with `cargo build --example viewer` (scripts/test does)",
        path.display()
    );
    path
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dmabuf-interop-viewer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn run_viewer(args: &[&str]) -> String {
    let out = Command::new(viewer()).args(args).output().expect("run the viewer");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "viewer {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn plays_the_pattern_headless_zero_copy() {
    let shot = scratch("pattern.png");
    let summary = run_viewer(&[
        "--headless",
        "--frames",
        "30",
        "--size",
        "320x240",
        "--screenshot",
        shot.to_str().unwrap(),
    ]);
    assert!(
        summary.contains("30 frames shown") && summary.contains("imported 30 (30 zero-copy, 0 copied)"),
        "{summary}"
    );
    assert!(summary.contains("reused before release: 0"), "{summary}");
    let image = Image::load_png(&shot).unwrap();
    assert_eq!((image.width, image.height), (320, 240));
    // The last frame (29) of the pattern, pixel for pixel.
    let (worst, points) = grid_error(&image, |x, y| pattern::rgb(320, 240, 29, x, y), 320, 240);
    assert!(points > 100 && worst == 0, "worst {worst} over {points}");
}

fn encode_clip(path: &Path) {
    let status = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "num-buffers=30",
            "pattern=smpte",
            "!",
            "video/x-raw,width=320,height=240,framerate=30/1",
            "!",
            "vp8enc",
            "!",
            "webmmux",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", path.display()))
        .status()
        .expect("gst-launch-1.0 (gstreamer1.0-tools; run scripts/setup)");
    assert!(
        status.success(),
        "encoding the VP8 clip failed (gstreamer1.0-plugins-good)"
    );
}

#[test]
fn plays_a_decoded_clip_with_uri() {
    let clip = scratch("clip.webm");
    encode_clip(&clip);
    let shot = scratch("clip.png");
    let summary = run_viewer(&[
        "--uri",
        clip.to_str().unwrap(),
        "--headless",
        "--size",
        "320x240",
        "--format",
        "NV12",
        "--screenshot",
        shot.to_str().unwrap(),
    ]);
    assert!(summary.contains("30 frames shown"), "{summary}");
    assert!(summary.contains("(30 zero-copy, 0 copied)"), "{summary}");
    let image = Image::load_png(&shot).unwrap();
    // videotestsrc's SMPTE bars (full intensity) across the top two thirds
    // (VP8 and YUV rounding allowed).
    let bars: [[u8; 3]; 7] = [
        [255, 255, 255],
        [255, 255, 0],
        [0, 255, 255],
        [0, 255, 0],
        [255, 0, 255],
        [255, 0, 0],
        [0, 0, 255],
    ];
    for (i, want) in bars.iter().enumerate() {
        let x = (2 * i as u32 + 1) * 320 / 14;
        let got = image.pixel(x, 80).unwrap();
        for c in 0..3 {
            assert!(
                (i32::from(got[c]) - i32::from(want[c])).abs() <= 24,
                "bar {i} at ({x}, 80): got {got:?}, want {want:?}"
            );
        }
    }
}
