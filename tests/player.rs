//! What a player asks of `wldmabufsink`, on a real headless Weston 14
//! (GL renderer on llvmpipe), with GStreamer's waylandsink measured beside
//! it in the same test: rotation and flips (`rotate-method`, the
//! `image-orientation` tag), pixel aspect ratio and `force-aspect-ratio`,
//! fullscreen, overlay composition and subtitle files, presentation
//! timing on any pipeline clock, the plugin's install, and a real player
//! (gst-play-1.0, playbin: seek, pause, subtitles, A/V offset) end to
//! end. Pixels are checked on a capture of the output.
#![cfg(all(feature = "headless", feature = "gstreamer"))]

mod common;

use common::gst::{Run, eos_or_error, init, smpte_rgb};
use common::keep_capture;

use dmabuf_interop::wayland::headless::{Image, Renderer, Weston, WestonOptions};
use gstreamer as gst;
use gstreamer::prelude::*;

/// Output size of every test's Weston (kiosk shell: the window is
/// fullscreen, so the area is the output).
const OUT: (u32, u32) = (320, 240);

fn weston() -> Weston {
    common::weston(OUT.0, OUT.1, Renderer::Gl)
}

fn run(weston: &Weston, description: &str) -> Run {
    common::gst::run(
        &weston.socket_path(),
        || Some(weston.capture().expect("capture")),
        description,
    )
}

/// Where a buffer pixel comes from for a screen point of the turned
/// picture, by the method's own definition (GstVideoOrientationMethod;
/// rotations clockwise): (X, Y) in the turned `tw`x`th` picture of a
/// `w`x`h` buffer.
fn source_of(method: &str, tx: u32, ty: u32, w: u32, h: u32) -> (u32, u32) {
    match method {
        "identity" => (tx, ty),
        // Clockwise: the buffer's left column becomes the top row.
        "90r" => (ty, h - 1 - tx),
        "90l" => (w - 1 - ty, tx),
        "180" => (w - 1 - tx, h - 1 - ty),
        "horiz" => (w - 1 - tx, ty),
        "vert" => (tx, h - 1 - ty),
        "ul-lr" => (ty, tx),
        "ur-ll" => (w - 1 - ty, h - 1 - tx),
        other => panic!("no reference for {other}"),
    }
}

fn swaps(method: &str) -> bool {
    matches!(method, "90r" | "90l" | "ul-lr" | "ur-ll")
}

/// Worst channel error of the capture against `reference` (a `w`x`h`
/// buffer turned by `method`, shown at `rect` = (x, y, width, height)) over
/// a 16x12 grid inside the rectangle, skipping points whose buffer
/// neighbourhood (3 pixels) is not one flat colour (scaling blends edges);
/// and the worst distance from black of points on the borders. Returns
/// (picture error, points, border error).
fn turned_error(
    image: &Image,
    reference: &impl Fn(u32, u32) -> [u8; 3],
    (w, h): (u32, u32),
    method: &str,
    rect: (u32, u32, u32, u32),
) -> (u32, usize, u32) {
    let (rx, ry, rw, rh) = rect;
    let (tw, th) = if swaps(method) { (h, w) } else { (w, h) };
    let (mut worst, mut points) = (0, 0);
    for gy in 0..12 {
        for gx in 0..16 {
            let (sx, sy) = (rx + rw * (2 * gx + 1) / 32, ry + rh * (2 * gy + 1) / 24);
            let (tx, ty) = ((sx - rx) * tw / rw, (sy - ry) * th / rh);
            let (bx, by) = source_of(method, tx, ty, w, h);
            let want = reference(bx, by);
            let flat = (-3i32..=3).all(|d| {
                [(d, 0), (0, d)].iter().all(|&(dx, dy)| {
                    let (nx, ny) = (bx as i32 + dx, by as i32 + dy);
                    nx < 0 || ny < 0 || nx as u32 >= w || ny as u32 >= h || reference(nx as u32, ny as u32) == want
                })
            });
            if !flat {
                continue;
            }
            let got = image.pixel(sx, sy).expect("inside the capture");
            for c in 0..3 {
                worst = worst.max((i32::from(got[c]) - i32::from(want[c])).unsigned_abs());
            }
            points += 1;
        }
    }
    // Borders: the middle of each band outside the rectangle.
    let mut border = 0;
    let mut bands = Vec::new();
    if ry > 2 {
        bands.push((OUT.0 / 2, ry / 2));
        bands.push((OUT.0 / 2, ry + rh + (OUT.1 - ry - rh) / 2));
    }
    if rx > 2 {
        bands.push((rx / 2, OUT.1 / 2));
        bands.push((rx + rw + (OUT.0 - rx - rw) / 2, OUT.1 / 2));
    }
    for (x, y) in bands {
        let p = image.pixel(x, y).expect("inside the capture");
        border = border.max(u32::from(p[0].max(p[1]).max(p[2])));
    }
    (worst, points, border)
}

/// The rectangle a `w`x`h` picture (already turned) fills in the output
/// when fitted and centred.
fn fitted((w, h): (u32, u32)) -> (u32, u32, u32, u32) {
    let (fw, fh) = if w * OUT.1 >= h * OUT.0 {
        (OUT.0, (OUT.0 * h + w / 2) / w)
    } else {
        ((OUT.1 * w + h / 2) / h, OUT.1)
    };
    ((OUT.0 - fw) / 2, (OUT.1 - fh) / 2, fw, fh)
}

/// Tolerance for a scaled picture (bilinear filtering inside flat areas
/// leaves at most a few code values).
const TOLERANCE: u32 = 6;

/// SMPTE bars, 320x180 (16:9, so a turn changes the fit), through each
/// `rotate-method`: ours turns them by `wl_surface.set_buffer_transform`
/// (every frame still zero-copy) and places them fitted, centred and with
/// black borders; waylandsink 1.22 (which has `rotate-method` too) beside.
#[test]
fn rotate_method_turns_the_picture_zero_copy() {
    init();
    let size = (320, 180);
    let reference = smpte_rgb(size.0, size.1);
    for method in ["identity", "90r", "180", "90l", "horiz", "vert", "ul-lr", "ur-ll"] {
        let turned = if swaps(method) { (size.1, size.0) } else { size };
        let rect = fitted(turned);
        let mut results = Vec::new();
        for sink in ["wldmabufsink", "waylandsink"] {
            let weston = weston();
            let run = run(
                &weston,
                &format!(
                    "videotestsrc pattern=smpte num-buffers=10 ! video/x-raw,format=BGRx,width={},height={} ! \
                     {sink} name=sink rotate-method={method}",
                    size.0, size.1
                ),
            );
            let image = run.capture.as_ref();
            let measured = image.map(|i| turned_error(i, &reference, size, method, rect));
            if let Some(i) = image {
                keep_capture(i, &format!("rotate-{method}-{sink}"));
            }
            println!(
                "{method} {sink}: error {:?} (picture, points, border) at {rect:?}; {:?}",
                measured, run.error
            );
            results.push((run, measured));
        }
        assert_turned_like_the_anchor(method, &results);
    }
}

/// `turned_error`'s (picture error, points, border error).
type Measured = (u32, usize, u32);

/// What every turned-picture test asserts of a (ours, waylandsink) pair of
/// runs with their `turned_error`s: ours played, exact within
/// [`TOLERANCE`] over enough points, black borders, every frame
/// zero-copy; and where waylandsink shows the picture right, so do we.
fn assert_turned_like_the_anchor(method: &str, results: &[(Run, Option<Measured>)]) {
    let (ours, measured) = &results[0];
    assert_eq!(ours.error, None, "{method}");
    let (worst, points, border) = measured.expect("a capture");
    assert!(points >= 60, "{method}: {points} points");
    assert!(worst <= TOLERANCE, "{method}: picture off by {worst}");
    assert!(border <= 2, "{method}: borders not black ({border})");
    assert_eq!(ours.stat("zero-copy"), ours.stat("shown"), "{method}");
    if let (None, Some((ws_worst, _, _))) = (&results[1].0.error, results[1].1) {
        assert!(
            worst <= ws_worst.max(TOLERANCE),
            "{method}: ours {worst}, waylandsink {ws_worst}"
        );
    }
}

/// The stream's `image-orientation` tag turns the picture when
/// `rotate-method=auto` (as videoflip's `auto`), and not otherwise.
#[test]
fn an_image_orientation_tag_turns_the_picture_under_auto() {
    init();
    let size = (320, 180);
    let reference = smpte_rgb(size.0, size.1);
    for (method, expect) in [("auto", "90r"), ("identity", "identity")] {
        let weston = weston();
        let run = run(
            &weston,
            &format!(
                "videotestsrc pattern=smpte num-buffers=10 ! video/x-raw,format=BGRx,width={},height={} ! \
                 taginject tags=\"image-orientation=rotate-90\" ! wldmabufsink name=sink rotate-method={method}",
                size.0, size.1
            ),
        );
        assert_eq!(run.error, None, "{method}");
        let turned = if swaps(expect) { (size.1, size.0) } else { size };
        let image = run.capture.expect("capture");
        let (worst, points, border) = turned_error(&image, &reference, size, expect, fitted(turned));
        println!("{method}: {worst} over {points}, border {border}");
        assert!(
            points >= 60 && worst <= TOLERANCE && border <= 2,
            "{method}: {worst} over {points}, border {border}"
        );
    }
}

/// A 4:3 pixel aspect ratio makes 320x240 a 427x240 picture: letterboxed
/// to 320x180 in the 320x240 output; `force-aspect-ratio=false` stretches
/// it over the whole output. waylandsink beside.
#[test]
fn pixel_aspect_ratio_and_force_aspect_ratio_place_the_picture() {
    init();
    let size = (320, 240);
    let reference = smpte_rgb(size.0, size.1);
    for (force, rect) in [(true, fitted((427, 240))), (false, (0, 0, OUT.0, OUT.1))] {
        let mut ws = None;
        for sink in ["wldmabufsink", "waylandsink"] {
            let has_property = gst::ElementFactory::make(sink)
                .build()
                .is_ok_and(|e| e.find_property("force-aspect-ratio").is_some());
            if !has_property {
                // waylandsink 1.22: always fitted.
                println!("{sink} has no force-aspect-ratio");
                if !force {
                    continue;
                }
            }
            let weston = weston();
            let force_prop = if has_property {
                format!("force-aspect-ratio={force}")
            } else {
                String::new()
            };
            let run = run(
                &weston,
                &format!(
                    "videotestsrc pattern=smpte num-buffers=10 ! \
                     video/x-raw,format=BGRx,width=320,height=240,pixel-aspect-ratio=4/3 ! {sink} name=sink {force_prop}"
                ),
            );
            let measured = run
                .capture
                .as_ref()
                .map(|i| turned_error(i, &reference, size, "identity", rect));
            println!(
                "force-aspect-ratio={force} {sink}: {measured:?} at {rect:?}; {:?}",
                run.error
            );
            if sink == "waylandsink" {
                ws = Some(measured);
                continue;
            }
            assert_eq!(run.error, None);
            let (worst, points, border) = measured.expect("capture");
            assert!(
                points >= 60 && worst <= TOLERANCE,
                "force={force}: {worst} over {points}"
            );
            assert!(border <= 2, "force={force}: border {border}");
            assert_eq!(run.stat("zero-copy"), run.stat("shown"));
        }
        println!("waylandsink: {ws:?}");
    }
}

/// `fullscreen=true` on a desktop shell (where windows are not fullscreen
/// by themselves): the window fills the output, the 16:9 picture fitted
/// and centred on black; without it the window is the picture's size and
/// the shell's background shows around it. An unknown `fullscreen-output`
/// is a warning naming the outputs there are, and playback goes on.
#[test]
fn fullscreen_fills_the_output_on_a_desktop_shell() {
    init();
    let background = [0x20u8, 0xc0, 0x40];
    let start = || {
        Weston::start(WestonOptions {
            width: OUT.0,
            height: OUT.1,
            shell: "desktop-shell.so".into(),
            config: Some(format!(
                "[shell]\nbackground-color=0xff{:02x}{:02x}{:02x}\npanel-position=none\n",
                background[0], background[1], background[2]
            )),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("Weston 14 with desktop-shell (run scripts/setup): {e}"))
    };
    let size = (160, 90);
    let reference = smpte_rgb(size.0, size.1);
    let is_background = |p: [u8; 4]| (0..3).all(|c| p[c].abs_diff(background[c]) <= 8);
    for fullscreen in [false, true] {
        let weston = start();
        let run = run(
            &weston,
            &format!(
                "videotestsrc pattern=smpte num-buffers=30 ! video/x-raw,format=BGRx,width={},height={} ! \
                 wldmabufsink name=sink fullscreen={fullscreen}",
                size.0, size.1
            ),
        );
        assert_eq!(run.error, None, "fullscreen={fullscreen}");
        let image = run.capture.expect("capture");
        keep_capture(&image, &format!("fullscreen-{fullscreen}"));
        let corners = [(2, 2), (OUT.0 - 3, 2), (2, OUT.1 - 3), (OUT.0 - 3, OUT.1 - 3)];
        let background_corners = corners
            .iter()
            .filter(|&&(x, y)| is_background(image.pixel(x, y).unwrap()))
            .count();
        if fullscreen {
            assert_eq!(background_corners, 0, "fullscreen: the shell's background shows");
            let (worst, points, border) = turned_error(&image, &reference, size, "identity", fitted(size));
            println!("fullscreen: {worst} over {points}, border {border}");
            assert!(
                points >= 60 && worst <= TOLERANCE && border <= 2,
                "{worst} over {points}, border {border}"
            );
        } else {
            assert!(
                background_corners >= 3,
                "windowed: {background_corners} corners show the background"
            );
        }
    }
    // An output that does not exist: a warning, played windowed.
    let weston = start();
    let pipeline = gst::parse::launch(
        "videotestsrc num-buffers=10 ! video/x-raw,format=BGRx,width=160,height=90 ! \
         wldmabufsink name=sink fullscreen=true fullscreen-output=NOPE-1",
    )
    .unwrap();
    let run = common::gst::run_pipeline(&weston.socket_path(), pipeline, || None);
    assert_eq!(run.error, None);
    let warning = run.warnings.join("\n");
    assert!(
        warning.contains("NOPE-1") && warning.contains("headless"),
        "warnings: {warning}"
    );
}

/// Runs an encoding pipeline (GStreamer's own encoders making the test's
/// clip) to EOS; an error or a stall fails the test.
fn encode(description: &str) {
    let encode = gst::parse::launch(description).unwrap();
    encode.set_state(gst::State::Playing).unwrap();
    let msg = eos_or_error(&encode, 60);
    encode.set_state(gst::State::Null).unwrap();
    assert!(
        matches!(msg.view(), gst::MessageView::Eos(_)),
        "encoding failed: {msg:?}"
    );
}

/// Writes a SubRip file of "HELLO WORLD" from 0 s to 15 s (three cues:
/// typefind needs 129 bytes to call a file SubRip); returns its path.
fn write_subtitles(path: &std::path::Path) -> std::path::PathBuf {
    let cues: String = (0..3)
        .map(|i| {
            format!(
                "{}\n00:00:{:02},000 --> 00:00:{:02},000\nHELLO WORLD\n\n",
                i + 1,
                i * 5,
                i * 5 + 5
            )
        })
        .collect();
    std::fs::write(path, cues).unwrap();
    path.to_path_buf()
}

/// Subtitle text pixels on a blue picture (blue is (0, 0, 255); white text
/// and its anti-aliased edges raise red and green), in the bottom quarter
/// where textoverlay puts subtitles. "HELLO WORLD" in textoverlay's
/// default font at 320x240 is some tens of pixels (the font differs
/// between Debian 12 and 13); none without the text.
fn subtitle_pixels(image: &Image) -> usize {
    let mut n = 0;
    for y in OUT.1 * 3 / 4..OUT.1 {
        for x in 0..OUT.0 {
            let p = image.pixel(x, y).unwrap();
            n += usize::from(p[0] > 100 && p[1] > 100);
        }
    }
    n
}

/// An overlay rectangle: x, y, width, height in the frame's pixels, and
/// its premultiplied BGRA colour.
type OverlayRect = (u32, u32, u32, u32, [u8; 4]);

/// Two overlay rectangles as GStreamer's own `overlaycomposition` element
/// makes them (its `draw` signal: an opaque magenta band where subtitles
/// go, a half-transparent white box), premultiplied BGRA as GStreamer's
/// overlay ARGB is.
fn overlay_composition() -> (gstreamer_video::VideoOverlayComposition, [OverlayRect; 2]) {
    use gstreamer_video as gst_video;
    let rects = [
        (40, 130, 240, 40, [255, 0, 255, 255]),
        (20, 20, 64, 48, [128, 128, 128, 128]),
    ];
    let rectangles: Vec<gst_video::VideoOverlayRectangle> = rects
        .iter()
        .map(|&(x, y, w, h, bgra)| {
            // Drawn at half size: the sink scales it to the rectangle.
            let (pw, ph) = (w / 2, h / 2);
            let mut buffer = gst::Buffer::from_mut_slice(bgra.repeat((pw * ph) as usize));
            gst_video::VideoMeta::add(
                buffer.get_mut().unwrap(),
                gst_video::VideoFrameFlags::empty(),
                gst_video::VideoFormat::Bgra,
                pw,
                ph,
            )
            .unwrap();
            gst_video::VideoOverlayRectangle::new_raw(
                &buffer,
                x as i32,
                y as i32,
                w,
                h,
                gst_video::VideoOverlayFormatFlags::PREMULTIPLIED_ALPHA,
            )
        })
        .collect();
    (
        gst_video::VideoOverlayComposition::new(rectangles.iter()).unwrap(),
        rects,
    )
}

/// Subtitles and other overlays by `meta:GstVideoOverlayComposition`:
/// `overlaycomposition` negotiates the meta with the sink (caps feature
/// and ALLOCATION query, as textoverlay does for playbin's subtitles) and
/// attaches its composition to every frame instead of blending it; the
/// sink shows the rectangles above the video, scaled and turned with it,
/// uploaded once for the unchanged composition, every frame zero-copy.
/// waylandsink beside (it takes no overlay meta: overlaycomposition
/// blends into each frame on the CPU there).
#[test]
fn overlay_composition_shows_above_the_zero_copy_video() {
    init();
    let size = (320, 180);
    let bars = smpte_rgb(size.0, size.1);
    let (composition, rects) = overlay_composition();
    // What the screen should show at buffer pixel (x, y): premultiplied
    // "over" (out = overlay + video * (1 - alpha)).
    let reference = |x: u32, y: u32| {
        let video = bars(x, y);
        for &(rx, ry, rw, rh, bgra) in rects.iter().rev() {
            if x >= rx && x < rx + rw && y >= ry && y < ry + rh {
                let a = u32::from(bgra[3]);
                let over = |c: u8, v: u8| (u32::from(c) + (u32::from(v) * (255 - a) + 127) / 255).min(255) as u8;
                return [
                    over(bgra[2], video[0]),
                    over(bgra[1], video[1]),
                    over(bgra[0], video[2]),
                ];
            }
        }
        video
    };
    for method in ["identity", "90r"] {
        let turned = if swaps(method) { (size.1, size.0) } else { size };
        let rect = fitted(turned);
        let mut results = Vec::new();
        for sink in ["wldmabufsink", "waylandsink"] {
            let weston = weston();
            let pipeline = gst::parse::launch(&format!(
                "videotestsrc pattern=smpte num-buffers=10 ! video/x-raw,format=BGRx,width={},height={} ! \
                 overlaycomposition name=oc ! {sink} name=sink rotate-method={method}",
                size.0, size.1
            ))
            .unwrap();
            let oc = pipeline
                .downcast_ref::<gst::Bin>()
                .unwrap()
                .by_name("oc")
                .expect("overlaycomposition (gstreamer1.0-plugins-base)");
            let comp = composition.clone();
            oc.connect("draw", false, move |_| Some(comp.to_value()));
            let run = common::gst::run_pipeline(&weston.socket_path(), pipeline, || {
                Some(weston.capture().expect("capture"))
            });
            let measured = run
                .capture
                .as_ref()
                .map(|i| turned_error(i, &reference, size, method, rect));
            if let Some(i) = &run.capture {
                keep_capture(i, &format!("overlay-{method}-{sink}"));
            }
            println!("overlay {method} {sink}: {measured:?} at {rect:?}; {:?}", run.error);
            results.push((run, measured));
        }
        // The picture and both overlays, as the reference composites them.
        assert_turned_like_the_anchor(method, &results);
        // The meta path, not a blend: one upload for the whole stream.
        assert_eq!(results[0].0.stat("overlay-sets"), 1, "{method}");
    }
}

/// playbin with a subtitle file (an .srt beside a VP8 clip the test
/// encodes, solid blue so that only the text is white): its textoverlay
/// negotiates `meta:GstVideoOverlayComposition` with the sink and attaches
/// the rendered text instead of blending it, so every video frame stays
/// zero-copy (vp8dec decodes into the sink's pool) and the text is shown
/// above it; waylandsink beside (textoverlay blends into each frame there).
#[test]
fn playbin_shows_a_subtitle_file_above_the_zero_copy_video() {
    init();
    let dir = std::env::temp_dir().join(format!("dmabuf-interop-subtitles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("blue.webm");
    encode(&format!(
        "videotestsrc num-buffers=30 pattern=blue ! video/x-raw,width=320,height=240,framerate=30/1 ! \
         vp8enc deadline=1 ! webmmux ! filesink location={}",
        clip.display()
    ));
    let srt = write_subtitles(&dir.join("blue.srt"));
    let mut results = Vec::new();
    for sink in ["wldmabufsink", "waylandsink"] {
        let weston = weston();
        let playbin = gst::ElementFactory::make("playbin")
            .property("uri", format!("file://{}", clip.display()))
            .property("suburi", format!("file://{}", srt.display()))
            .build()
            .unwrap();
        let video_sink = gst::ElementFactory::make(sink)
            .name("sink")
            .property("display", weston.socket_path().to_str().unwrap())
            .build()
            .unwrap();
        playbin.set_property("video-sink", &video_sink);
        let run = common::gst::run_pipeline(&weston.socket_path(), playbin, || {
            Some(weston.capture().expect("capture"))
        });
        let text = run.capture.as_ref().map(subtitle_pixels);
        if let Some(i) = &run.capture {
            keep_capture(i, &format!("subtitles-{sink}"));
        }
        println!("subtitles {sink}: {text:?} text pixels; {:?}", run.error);
        results.push((run, text));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (ours, text) = &results[0];
    println!("ours: {:?}", ours.stats);
    assert_eq!(ours.error, None);
    let text = text.expect("a capture");
    assert!(text >= 10, "the subtitle is not shown ({text} text pixels)");
    assert!(ours.stat("shown") >= 20, "{:?}", ours.stats);
    assert_eq!(ours.stat("zero-copy"), ours.stat("shown"), "{:?}", ours.stats);
    assert!(ours.stat("overlay-sets") >= 1, "{:?}", ours.stats);
    if let (None, Some(ws_text)) = (&results[1].0.error, results[1].1) {
        // The same text, within anti-aliasing and scaling.
        assert!(text * 2 >= ws_text, "ours {text} text pixels, waylandsink {ws_text}");
    }
}

/// Every commit gets its `wp_presentation` feedback (presented or
/// discarded) by EOS, and each presented frame is timed against its target
/// (running time + base time + latency + render delay). The numbers are
/// printed, not asserted (timing on a shared machine): the benchmark
/// reports them.
#[test]
fn presentation_feedback_times_every_frame() {
    init();
    let weston = weston();
    let run = run(
        &weston,
        "videotestsrc pattern=smpte num-buffers=60 ! video/x-raw,format=BGRx,width=320,height=240,framerate=30/1 ! \
         wldmabufsink name=sink",
    );
    assert_eq!(run.error, None);
    println!("{}", run.stats.as_ref().unwrap());
    let shown = run.stat("shown");
    assert!(shown >= 30, "{shown} shown");
    assert_eq!(run.stat("presented-feedback") + run.stat("discarded-feedback"), shown);
    // Headless Weston presents every frame it was given, in
    // CLOCK_MONOTONIC_RAW, so every presented one is timed but the
    // preroll frame (shown in PAUSED, before there is a base time).
    assert!(run.stat("presented-feedback") >= shown - 2);
    assert_eq!(run.stat("timed"), run.stat("presented-feedback") - 1);
    let p95 = run
        .stats
        .as_ref()
        .unwrap()
        .get::<u64>("presentation-error-p95-us")
        .unwrap();
    let median = run
        .stats
        .as_ref()
        .unwrap()
        .get::<i64>("presentation-error-median-us")
        .unwrap();
    println!("presented - target: median {median} us, p95 |error| {p95} us");
    // Not a timing bound: a frame presented a second away from its target
    // would be a wrong clock, not a slow machine.
    assert!(
        p95 < 1_000_000,
        "p95 {p95} us: the target is not on the presentation clock"
    );
}

/// A pipeline clock that is not `CLOCK_MONOTONIC` (an audio sink's in a
/// real player; here a realtime system clock, decades away from the
/// monotonic one) still times every presented frame: the sink relates the
/// two clocks by sampling both, so the errors stay those of the monotonic
/// run above, not the clocks' distance.
#[test]
fn frames_are_timed_on_a_clock_other_than_the_monotonic_one() {
    init();
    let weston = weston();
    let pipeline = gst::parse::launch(
        "videotestsrc pattern=smpte num-buffers=30 ! video/x-raw,format=BGRx,width=320,height=240,framerate=30/1 ! \
         wldmabufsink name=sink",
    )
    .unwrap();
    let clock = gst::glib::Object::builder::<gst::SystemClock>()
        .property("clock-type", gst::ClockType::Realtime)
        .build();
    pipeline
        .downcast_ref::<gst::Pipeline>()
        .unwrap()
        .use_clock(Some(&clock));
    let run = common::gst::run_pipeline(&weston.socket_path(), pipeline, || None);
    assert_eq!(run.error, None);
    let stats = run.stats.as_ref().unwrap();
    println!("{stats}");
    assert!(run.stat("shown") >= 15, "{stats}");
    // All presented frames but the preroll one, as on the monotonic clock.
    assert_eq!(run.stat("timed"), run.stat("presented-feedback") - 1, "{stats}");
    let p95 = stats.get::<u64>("presentation-error-p95-us").unwrap();
    println!("realtime clock: presented - target p95 |error| {p95} us");
    assert!(
        p95 < 1_000_000,
        "p95 {p95} us: the realtime target was not moved onto the presentation clock"
    );
}

/// `scripts/install-plugin` lays the plugin out as gst-plugins-rs' cargo-c
/// install does (`<libdir>/gstreamer-1.0/libgstdmabuf_interop.so` and a
/// `.pc` naming the pluginsdir); GStreamer loads it from there as one of its
/// system plugin directories, with no GST_PLUGIN_PATH; both elements keep
/// rank none (players name them); `--uninstall` removes what was installed.
#[test]
fn the_plugin_installs_into_a_prefix_and_loads_from_there() {
    use std::process::Command;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // target/<profile>/deps/<test binary> -> target/<profile>
    let exe = std::env::current_exe().unwrap();
    let library = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("libdmabuf_interop.so");
    assert!(
        library.exists(),
        "cdylib missing: {} (cargo build --lib)",
        library.display()
    );
    let prefix = std::env::temp_dir().join(format!("dmabuf-interop-install-{}", std::process::id()));
    let script = root.join("scripts/install-plugin");
    let status = Command::new(&script)
        .args([
            "--prefix".as_ref(),
            prefix.as_os_str(),
            "--library".as_ref(),
            library.as_os_str(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let pluginsdir = prefix.join("lib/gstreamer-1.0");
    assert!(pluginsdir.join("libgstdmabuf_interop.so").exists());
    let pc = std::fs::read_to_string(prefix.join("lib/pkgconfig/gstdmabuf_interop.pc")).expect("the .pc file");
    assert!(
        pc.lines().any(|l| l == format!("pluginsdir={}", pluginsdir.display())),
        "{pc}"
    );
    // And as pkg-config reads it, where there is one (the GStreamer 1.26
    // chroot has none).
    if let Ok(out) = Command::new("pkg-config")
        .args(["--variable=pluginsdir", "gstdmabuf_interop"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
    {
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            pluginsdir.to_str().unwrap()
        );
    }
    let inspect = |element: &str| {
        Command::new("gst-inspect-1.0")
            .arg(element)
            .env_remove("GST_PLUGIN_PATH")
            .env("GST_PLUGIN_SYSTEM_PATH", &pluginsdir)
            .env("GST_REGISTRY", prefix.join("registry.bin"))
            .output()
            .expect("gst-inspect-1.0 (gstreamer1.0-tools; run scripts/setup)")
    };
    for element in ["wldmabufsink", "vkdmabufsrc"] {
        let out = inspect(element);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{element} not loaded from {}:\n{text}",
            pluginsdir.display()
        );
        assert!(text.contains("libgstdmabuf_interop.so"), "{text}");
        assert!(
            text.contains("Rank                     none"),
            "{element}: rank:\n{text}"
        );
    }
    let text = String::from_utf8_lossy(&inspect("wldmabufsink").stdout).to_string();
    for wanted in [
        "GstVideoDirection",
        "rotate-method",
        "fullscreen-output",
        "force-aspect-ratio",
    ] {
        assert!(text.contains(wanted), "gst-inspect lacks {wanted}:\n{text}");
    }
    let status = Command::new(&script)
        .args(["--uninstall".as_ref(), "--prefix".as_ref(), prefix.as_os_str()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!pluginsdir.join("libgstdmabuf_interop.so").exists());
    assert!(!prefix.join("lib/pkgconfig/gstdmabuf_interop.pc").exists());
    assert!(
        !inspect("wldmabufsink").status.success(),
        "still loadable after --uninstall"
    );
    let _ = std::fs::remove_dir_all(&prefix);
}

/// presented - target (or rendered - target) of a sink's frames, in
/// microseconds: (count, median, 95th percentile of the absolute value).
fn percentiles(errors: &[i64]) -> (usize, i64, u64) {
    if errors.is_empty() {
        return (0, 0, 0);
    }
    let mut signed = errors.to_vec();
    signed.sort_unstable();
    let mut abs: Vec<u64> = errors.iter().map(|e| e.unsigned_abs()).collect();
    abs.sort_unstable();
    (
        errors.len(),
        signed[signed.len() / 2],
        abs[(abs.len() * 95).div_ceil(100) - 1],
    )
}

/// A fakesink (`sync=true`) standing in for the audio device, recording
/// for each buffer it renders how late against its target it did so
/// (clock now - (running time + base time + latency + ts-offset), the
/// target basesink waits for), in microseconds: the audio half of the
/// A/V offset.
fn timed_audio_sink() -> (gst::Element, std::sync::Arc<std::sync::Mutex<Vec<i64>>>) {
    use gstreamer_base::prelude::*;
    let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", true)
        .property("signal-handoffs", true)
        .build()
        .unwrap();
    let record = errors.clone();
    sink.connect("handoff", false, move |args| {
        let sink = args[0].get::<gstreamer_base::BaseSink>().unwrap();
        let buffer = args[1].get::<gst::Buffer>().unwrap();
        let target = (|| {
            let segment = sink.segment().downcast::<gst::ClockTime>().ok()?;
            let running = segment.to_running_time(buffer.pts()?)?;
            let at = (running + sink.base_time()? + sink.latency()).nseconds();
            Some((
                sink.clock()?.time().nseconds(),
                at.checked_add_signed(sink.ts_offset())?,
            ))
        })();
        if let Some((now, at)) = target {
            record.lock().unwrap().push((now as i64 - at as i64) / 1000);
        }
        None
    });
    (sink, errors)
}

/// A real player end to end on a file GStreamer's own encoders make (10 s
/// of VP8 + Vorbis in WebM, a green ball moving on blue): `gst-play-1.0
/// --videosink=wldmabufsink` plays it to the end and exits cleanly, as
/// with waylandsink; `playbin video-sink=wldmabufsink` with a subtitle
/// file plays, pauses, resumes, shows the subtitle above the video (text
/// pixels on a capture taken mid-play), seeks back and reaches EOS, every
/// shown frame zero-copy (vp8dec decodes into the sink's dma-buf pool).
/// A/V sync: the video sink's presented - target (`wp_presentation`
/// feedback) against the audio sink's rendered - target for the same
/// pipeline clock; their difference is how much later a frame is seen
/// than its sound is played. Printed, bounded only where a wrong clock
/// would show (a second), not by the machine's speed.
#[test]
fn a_real_player_plays_seeks_pauses_and_resumes() {
    use std::process::Command;
    use std::time::{Duration, Instant};
    init();
    let dir = std::env::temp_dir().join(format!("dmabuf-interop-player-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("clip.webm");
    // 300 frames at 30/1 and 431 x 1024 samples at 44.1 kHz: 10 s each.
    encode(&format!(
        "webmmux name=mux ! filesink location={} \
         videotestsrc num-buffers=300 pattern=ball foreground-color=0xff00ff00 background-color=0xff0000ff ! \
         video/x-raw,width=320,height=240,framerate=30/1 ! vp8enc deadline=1 ! queue ! mux. \
         audiotestsrc num-buffers=431 samplesperbuffer=1024 ! audio/x-raw,rate=44100 ! vorbisenc ! queue ! mux.",
        file.display()
    ));
    let srt = write_subtitles(&dir.join("clip.srt"));

    let weston = weston();
    // gst-play-1.0, finding the plugin through GST_PLUGIN_PATH.
    let exe = std::env::current_exe().unwrap();
    let plugins = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let started = Instant::now();
    let out = Command::new("gst-play-1.0")
        .arg(format!(
            "--videosink=wldmabufsink display={}",
            weston.socket_path().display()
        ))
        .arg("--audiosink=fakesink sync=true")
        .arg("--no-interactive")
        .arg(&file)
        .env("GST_PLUGIN_PATH", &plugins)
        .output()
        .expect("gst-play-1.0 (gstreamer1.0-tools; run scripts/setup)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("gst-play-1.0: {:?} in {:?}\n{text}", out.status, started.elapsed());
    assert!(out.status.success(), "gst-play-1.0 failed:\n{text}");
    assert!(!text.contains("ERROR"), "gst-play-1.0 reported an error:\n{text}");

    // The anchor: GStreamer's own sink through the same player.
    let started = Instant::now();
    let anchor = Command::new("gst-play-1.0")
        .arg("--videosink=waylandsink")
        .arg("--audiosink=fakesink sync=true")
        .arg("--no-interactive")
        .arg(&file)
        .env("WAYLAND_DISPLAY", weston.socket_path())
        .output()
        .expect("gst-play-1.0");
    println!(
        "gst-play-1.0 with waylandsink: {:?} in {:?}",
        anchor.status,
        started.elapsed()
    );
    if anchor.status.success() {
        assert!(out.status.success(), "waylandsink plays the file, ours does not");
    }

    // playbin in this process: play, pause, resume, subtitles, seek, EOS,
    // on a compositor of its own: Weston 14.0.2's kiosk-shell segfaults
    // now and then (kiosk-shell.so, a NULL list entry) when a client maps
    // a window right after another client's exit, which the two players
    // above are.
    drop(weston);
    let weston = self::weston();
    let playbin = gst::ElementFactory::make("playbin")
        .property("uri", format!("file://{}", file.display()))
        .property("suburi", format!("file://{}", srt.display()))
        .build()
        .unwrap();
    let sink = gst::ElementFactory::make("wldmabufsink")
        .name("sink")
        .property("display", weston.socket_path().to_str().unwrap())
        .build()
        .unwrap();
    playbin.set_property("video-sink", &sink);
    let (audio_sink, audio_errors) = timed_audio_sink();
    playbin.set_property("audio-sink", &audio_sink);
    let bus = playbin.bus().unwrap();
    // Every step checks the bus: an error posted mid-stream must fail the
    // test with its own text, not as a later state change's failure.
    let no_error = |step: &str| {
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            panic!("{step}: {msg:?}\nWeston's log:\n{}", weston.log_tail());
        }
    };
    let wait_state = |state: gst::State| {
        let (result, now, _) = playbin.state(gst::ClockTime::from_seconds(10));
        no_error(&format!("going to {state:?}"));
        assert!(result.is_ok() && now == state, "not {state:?}: {result:?} {now:?}");
    };
    playbin.set_state(gst::State::Playing).unwrap();
    wait_state(gst::State::Playing);
    std::thread::sleep(Duration::from_millis(1500));
    no_error("playing");
    playbin.set_state(gst::State::Paused).unwrap();
    wait_state(gst::State::Paused);
    let shown_paused = sink.property::<gst::Structure>("stats").get::<u64>("shown").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let still = sink.property::<gst::Structure>("stats").get::<u64>("shown").unwrap();
    assert_eq!(still, shown_paused, "frames shown while paused");
    playbin.set_state(gst::State::Playing).unwrap();
    wait_state(gst::State::Playing);
    std::thread::sleep(Duration::from_millis(500));
    // Mid-play, about 2 s in: the first cue's text above the moving ball.
    let mid = weston.capture().expect("capture");
    keep_capture(&mid, "player-mid-play");
    let subtitle = subtitle_pixels(&mid);
    no_error("capturing");
    playbin
        .seek_simple(
            gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
            gst::ClockTime::from_mseconds(500),
        )
        .expect("seek");
    let end = eos_or_error(&playbin, 40);
    let stats = sink.property::<gst::Structure>("stats");
    playbin.set_state(gst::State::Null).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    println!("playbin: {stats}");
    assert!(matches!(end.view(), gst::MessageView::Eos(_)), "{end:?}");
    let get = |n: &str| stats.get::<u64>(n).unwrap();
    println!("subtitle mid-play: {subtitle} text pixels");
    assert!(subtitle >= 10, "the subtitle is not shown ({subtitle} text pixels)");
    assert!(get("overlay-sets") >= 1, "{stats}");
    // 300 frames, about 1.5 s of them played twice after the seek back.
    assert!(get("shown") >= 200, "{stats}");
    assert_eq!(get("zero-copy"), get("shown"), "{stats}");
    assert_eq!(get("reused-before-release"), 0);
    let video = (
        get("timed"),
        stats.get::<i64>("presentation-error-median-us").unwrap(),
        get("presentation-error-p95-us"),
    );
    let audio = percentiles(&audio_errors.lock().unwrap());
    println!(
        "video presented - target: median {} us, p95 |error| {} us over {} frames; \
         audio rendered - target: median {} us, p95 |error| {} us over {} buffers; \
         A/V offset (video later by): {} us",
        video.1,
        video.2,
        video.0,
        audio.1,
        audio.2,
        audio.0,
        video.1 - audio.1
    );
    assert!(video.0 >= 100 && audio.0 >= 200, "too few timed: {video:?} {audio:?}");
    // Not a timing bound: a second apart would be a wrong clock or a
    // target that ignores the latency, not a slow machine.
    assert!(
        (video.1 - audio.1).abs() < 1_000_000,
        "video {video:?} and audio {audio:?} a second apart"
    );
}
