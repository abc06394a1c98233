//! The viewer example, headless: the default pattern and a clip encoded at
//! test time (VP8 in WebM) played with `--uri`; each screenshot's pixels
//! are checked.
#![cfg(all(feature = "headless", feature = "gstreamer", feature = "vulkan"))]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::grid_error;
use dmabuf_interop::reference::overlay::{self, Overlay};
use dmabuf_interop::reference::pattern;
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

/// Plays 30 frames of the 320x240 pattern headless with `--present
/// present`, checks the summary's zero-copy counts and returns it with the
/// screenshot.
fn play_pattern(present: &str) -> (String, Image) {
    let shot = scratch(&format!("pattern-{present}.png"));
    let summary = run_viewer(&[
        "--present",
        present,
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
    (summary, image)
}

#[test]
fn plays_the_pattern_headless_zero_copy() {
    let (_, image) = play_pattern("wayland");
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

/// Plays `frames` frames (the clip has 30) of a freshly encoded VP8 clip
/// as NV12 headless with `--present present`, checks that all were shown
/// zero-copy and returns the screenshot.
fn play_clip(present: &str, frames: u32) -> Image {
    let clip = scratch(&format!("clip-{present}.webm"));
    encode_clip(&clip);
    let shot = scratch(&format!("clip-{present}.png"));
    let frames = frames.to_string();
    let summary = run_viewer(&[
        "--uri",
        clip.to_str().unwrap(),
        "--present",
        present,
        "--headless",
        "--frames",
        &frames,
        "--size",
        "320x240",
        "--format",
        "NV12",
        "--screenshot",
        shot.to_str().unwrap(),
    ]);
    assert!(summary.contains(&format!("{frames} frames shown")), "{summary}");
    assert!(
        summary.contains(&format!("({frames} zero-copy, 0 copied)")),
        "{summary}"
    );
    Image::load_png(&shot).unwrap()
}

#[test]
fn plays_a_decoded_clip_with_uri() {
    assert_smpte_bars(&play_clip("wayland", 30));
}

/// videotestsrc's SMPTE bars (full intensity) across the top two thirds
/// of a 320x240 capture (VP8 and YUV rounding allowed).
fn assert_smpte_bars(image: &Image) {
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

/// Reads the overlay's six-digit counter off a capture: one probe cell per
/// seven-segment segment (a..g), decoded with the usual segment table.
fn read_counter(image: &Image) -> Option<u32> {
    const DIGIT_MASKS: [u8; 10] = [
        0b011_1111, 0b000_0110, 0b101_1011, 0b100_1111, 0b110_0110, 0b110_1101, 0b111_1101, 0b000_0111, 0b111_1111,
        0b110_1111,
    ];
    let probes = [(1, 0), (2, 1), (2, 3), (1, 4), (0, 3), (0, 1), (1, 2)];
    let mut value = 0;
    for i in 0..overlay::DIGITS {
        let mut mask = 0u8;
        for (bit, &(cx, cy)) in probes.iter().enumerate() {
            let cell = overlay::digit_cell(image.height, i, cx, cy);
            let px = image.pixel(cell.x + cell.width / 2, cell.y + cell.height / 2)?;
            if px[..3].iter().all(|&c| c > 200) {
                mask |= 1 << bit;
            } else if px[..3].iter().any(|&c| c > 60) {
                return None; // neither segment nor box
            }
        }
        value = value * 10 + DIGIT_MASKS.iter().position(|&m| m == mask)? as u32;
    }
    Some(value)
}

/// Share of the progress bar's track drawn in the fill colour, in
/// thousandths (sampled along its middle row).
fn bar_fill(image: &Image) -> u32 {
    let bar = overlay::bar_rect(image.width, image.height).expect("room for a bar");
    let y = bar.y + bar.height / 2;
    let filled = (bar.x..bar.x + bar.width)
        .filter(|&x| image.pixel(x, y).is_some_and(|p| p[..3] == overlay::FILL_RGB))
        .count() as u32;
    let track = (bar.x..bar.x + bar.width)
        .filter(|&x| image.pixel(x, y).is_some_and(|p| p[..3] == overlay::TRACK_RGB))
        .count() as u32;
    assert_eq!(filled + track, bar.width, "the bar has other colours in it");
    filled * 1000 / bar.width
}

#[test]
fn plays_the_pattern_through_vulkan_with_the_overlay() {
    let (summary, image) = play_pattern("vulkan");
    assert!(
        summary.contains("30 frames composited into 3 exported images"),
        "{summary}"
    );
    // The counter says 30, the bar is full (30 of --frames 30) ...
    assert_eq!(read_counter(&image), Some(30));
    assert_eq!(bar_fill(&image), 1000);
    // ... and everything, overlay and video, is what the CPU references
    // predict for frame 29 of the pattern, pixel for pixel.
    let o = Overlay {
        frame: 30,
        progress: Some(1000),
    };
    let (worst, points) = grid_error(
        &image,
        |x, y| {
            o.pixel(320, 240, x, y)
                .unwrap_or_else(|| pattern::rgb(320, 240, 29, x, y))
        },
        320,
        240,
    );
    assert!(points > 100 && worst == 0, "worst {worst} over {points}");
}

#[test]
fn plays_a_decoded_clip_through_vulkan() {
    let image = play_clip("vulkan", 15);
    assert_eq!(read_counter(&image), Some(15));
    // Frame 15 of a 1 s clip starts at 14/30 s: the bar follows the
    // stream position (466 thousandths), not --frames.
    let fill = bar_fill(&image);
    assert!((440..=500).contains(&fill), "bar {fill}/1000");
    assert_smpte_bars(&image);
}

/// The Vulkan composite converts NV12 with each stream's matrix and range
/// (BT.601 and BT.2020 full range, BT.709 limited): SMPTE bar centres
/// against the RGB bars within 5/255 (videoconvert's integer encoder is
/// itself up to 4 off; a wrong matrix or range is 12-20 off).
#[test]
fn vulkan_composite_reads_the_streams_colorimetry() {
    common::gst::init();
    for colorimetry in ["1:4:0:0", "1:6:0:0", "bt709"] {
        let shot = scratch(&format!("colour-{}.png", colorimetry.replace(':', ".")));
        let pipeline = format!(
            "videotestsrc pattern=smpte num-buffers=10 ! video/x-raw,format=BGRx,width=320,height=240,\
             framerate=30/1 ! videoconvert ! video/x-raw,format=NV12,colorimetry={colorimetry}"
        );
        let summary = run_viewer(&[
            "--pipeline",
            &pipeline,
            "--present",
            "vulkan",
            "--headless",
            "--frames",
            "5",
            "--size",
            "320x240",
            "--screenshot",
            shot.to_str().unwrap(),
        ]);
        assert!(summary.contains("5 frames shown"), "{summary}");
        let image = Image::load_png(&shot).unwrap();
        let reference = common::gst::smpte_rgb(320, 240);
        // The bars' centres on row 80 (below the counter, above the bar).
        let mut worst = 0;
        for i in 0..7u32 {
            let x = (2 * i + 1) * 320 / 14;
            let (got, want) = (image.pixel(x, 80).unwrap(), reference(x, 80));
            for c in 0..3 {
                worst = worst.max((i32::from(got[c]) - i32::from(want[c])).unsigned_abs());
            }
        }
        println!("{colorimetry}: worst {worst}");
        assert!(worst <= 5, "{colorimetry}: bars worst {worst}/255");
    }
}

#[test]
fn stdin_pauses_resumes_and_quits() {
    let mut child = Command::new(viewer())
        .args(["--headless", "--frames", "100000", "--size", "160x120"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the viewer");
    let mut stdin = child.stdin.take().unwrap();
    // Collect stderr as it comes, to act on what the viewer says.
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let log = log.clone();
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut stderr, &mut buf) {
                if n == 0 {
                    break;
                }
                log.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    // Waits up to `secs` for the log to satisfy `done`; `what` names it.
    let wait_until = |what: &str, secs: u64, done: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done(&log.lock().unwrap()) {
            assert!(Instant::now() < deadline, "no {what} in:\n{}", log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let wait_for = |what: &str| wait_until(&format!("{what:?}"), 30, &|log| log.contains(what));
    // Playing, with a frame shown: the status line comes every 500 ms
    // from the start, and under the VM stage's emulated CPU its first
    // ones can still say "0 frames" (one run paused and quit before the
    // first frame, and the summary had nothing to count).
    wait_until("frame shown", 60, &|log| {
        log.split('\r').any(|line| {
            line.contains(" fps ")
                && line
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
        })
    });
    stdin.write_all(b"p\n").unwrap();
    wait_for("paused (");
    std::thread::sleep(Duration::from_millis(1200));
    stdin.write_all(b"p\n").unwrap();
    wait_for("resumed");
    stdin.write_all(b"q\n").unwrap();
    let out = child.wait_with_output().unwrap();
    reader.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", log.lock().unwrap());
    // The number after `key` in the summary.
    let after = |key: &str| -> f64 {
        stdout
            .split(key)
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no {key:?} in {stdout}"))
    };
    let paused = after("paused ");
    assert!(paused >= 1.1, "paused {paused} s\n{stdout}");
    // q quit long before --frames 100000.
    let shown = after("summary: ");
    assert!(shown > 0.0 && shown < 100000.0, "{stdout}");
}

#[test]
fn plays_on_westons_drm_backend() {
    // The viewer as an application on a real display pipeline (Weston's DRM
    // backend on the VM stage's virtio-gpu), through WAYLAND_DISPLAY.
    let Some(weston) = common::drm_weston() else { return };
    // Fill the card's mode 1:1 (kiosk-shell makes the window fullscreen).
    let (w, h) = {
        let first = weston.capture().expect("capture");
        (first.width, first.height)
    };
    let mut child = Command::new(viewer())
        .args([
            "--present",
            "wayland",
            "--frames",
            "100000",
            "--size",
            &format!("{w}x{h}"),
        ])
        .envs(weston.client_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the viewer");
    // The pattern's box moves; its bars and ramp do not. Points that are
    // the same in the first 300 frames are compared with what is on screen
    // until the viewer's frames are there (or 60 s passed).
    let still = |x: u32, y: u32| {
        let c = pattern::rgb(w, h, 0, x, y);
        (1..300).all(|f| pattern::rgb(w, h, f, x, y) == c).then_some(c)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (worst, points) = loop {
        let image = weston.capture().expect("capture");
        let (mut worst, mut points) = (0u32, 0usize);
        for gy in 0..12 {
            for gx in 0..16 {
                let (x, y) = (w * (2 * gx + 1) / 32, h * (2 * gy + 1) / 24);
                let Some(want) = still(x, y) else { continue };
                let got = image.pixel(x, y).expect("inside the capture");
                for c in 0..3 {
                    worst = worst.max((i32::from(got[c]) - i32::from(want[c])).unsigned_abs());
                }
                points += 1;
            }
        }
        if worst == 0 || Instant::now() > deadline {
            common::keep_capture(&image, "viewer-drm-backend");
            break (worst, points);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    child.stdin.take().unwrap().write_all(b"q\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("viewer on the DRM backend {w}x{h}: worst {worst} over {points} still points\n{stdout}");
    assert!(
        points > 100 && worst == 0,
        "worst {worst} over {points}; weston: {}",
        weston.log_tail()
    );
}
