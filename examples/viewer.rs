//! Plays video into a Wayland window through dmabuf-interop, zero-copy.
//!
//! ```text
//! cargo run --release --example viewer                         # the vkdmabufsrc pattern
//! cargo run --release --example viewer -- --uri clip.webm     # a file, decoded by GStreamer
//! cargo run --release --example viewer -- --headless --frames 300 --screenshot shot.png
//! ```
//!
//! Frames come out of a GStreamer pipeline through [`Importer`] (our pool
//! proposed upstream, so the source or the decoder's converter writes
//! straight into dma-bufs) and go to the compositor as linux-dmabuf
//! `wl_buffer`s through [`Presenter`] (cached per buffer, each GStreamer
//! buffer handed back only on `wl_buffer.release`). `--headless` starts a
//! private headless Weston and can save a screenshot of it.
//!
//! Options: `--pattern` (default) | `--uri FILE|URI`, `--present wayland`,
//! `--headless`, `--frames N`, `--screenshot PATH.png`, `--size WxH`
//! (pattern and headless output, default 640x360), `--format BGRx|NV12`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dmabuf_interop::gst::Importer;
use dmabuf_interop::wayland::headless::{Weston, WestonOptions};
use dmabuf_interop::wayland::{Presenter, Target};
use gstreamer as gst;
use gstreamer::prelude::*;

#[derive(Debug)]
struct Args {
    uri: Option<String>,
    headless: bool,
    frames: Option<u64>,
    screenshot: Option<PathBuf>,
    width: u32,
    height: u32,
    format: String,
}

const USAGE: &str = "usage: viewer [--pattern | --uri FILE|URI] [--present wayland] [--headless] [--frames N] \
                     [--screenshot PATH.png] [--size WxH] [--format BGRx|NV12]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        uri: None,
        headless: false,
        frames: None,
        screenshot: None,
        width: 640,
        height: 360,
        format: "BGRx".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "--pattern" => args.uri = None,
            "--uri" => args.uri = Some(value("--uri")?),
            "--present" => match value("--present")?.as_str() {
                "wayland" => {}
                "vulkan" => return Err("--present vulkan is not built yet (issue 6); use --present wayland".into()),
                other => return Err(format!("--present {other}: wayland or vulkan\n{USAGE}")),
            },
            "--headless" => args.headless = true,
            "--frames" => {
                args.frames = Some(
                    value("--frames")?
                        .parse()
                        .map_err(|e| format!("--frames: {e}\n{USAGE}"))?,
                )
            }
            "--screenshot" => args.screenshot = Some(PathBuf::from(value("--screenshot")?)),
            "--size" => {
                let v = value("--size")?;
                let (w, h) = v.split_once('x').ok_or_else(|| format!("--size {v}: WxH\n{USAGE}"))?;
                args.width = w.parse().map_err(|e| format!("--size: {e}"))?;
                args.height = h.parse().map_err(|e| format!("--size: {e}"))?;
            }
            "--format" => args.format = value("--format")?,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if args.screenshot.is_some() && !args.headless {
        return Err("--screenshot needs --headless (it captures the headless Weston)".into());
    }
    Ok(args)
}

/// The GStreamer source part of the pipeline: a bin with one src pad.
fn source(args: &Args) -> Result<(gst::Bin, String), String> {
    let caps = format!("video/x-raw,format={}", args.format);
    let parse = |d: &str| {
        // identity (passthrough) lets a description end in caps.
        gst::parse::bin_from_description(&format!("{d} ! identity"), true).map_err(|e| format!("{d}: {e}"))
    };
    match &args.uri {
        None => {
            let d = format!(
                "vkdmabufsrc is-live=true{} ! {caps},width={},height={},framerate=30/1",
                args.frames.map(|n| format!(" num-buffers={n}")).unwrap_or_default(),
                args.width,
                args.height
            );
            Ok((parse(&d)?, d))
        }
        Some(uri) => {
            let uri = if uri.contains("://") {
                uri.clone()
            } else {
                let path = std::fs::canonicalize(uri).map_err(|e| format!("{uri}: {e}"))?;
                format!("file://{}", path.display())
            };
            // The decoder's output is converted once, by videoconvert,
            // straight into our dma-buf pool.
            let convert = parse(&format!("videoconvert ! {caps}"))?;
            let decode = gst::ElementFactory::make("uridecodebin")
                .property("uri", &uri)
                .build()
                .map_err(|e| format!("uridecodebin (gstreamer1.0-plugins-base): {e}"))?;
            let bin = gst::Bin::new();
            bin.add_many([&decode, convert.upcast_ref()])
                .map_err(|e| e.to_string())?;
            let sink = convert.static_pad("sink").ok_or("no sink pad")?;
            decode.connect_pad_added(move |_, pad| {
                let is_video = pad
                    .current_caps()
                    .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
                    .unwrap_or(false);
                if is_video && !sink.is_linked() {
                    let _ = pad.link(&sink);
                }
            });
            let src = convert.static_pad("src").ok_or("no src pad")?;
            let ghost = gst::GhostPad::with_target(&src).map_err(|e| e.to_string())?;
            bin.add_pad(&ghost).map_err(|e| e.to_string())?;
            Ok((bin, format!("uridecodebin uri={uri} ! videoconvert ! {caps}")))
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    gst::init().map_err(|e| format!("GStreamer: {e} (run scripts/setup)"))?;
    dmabuf_interop::elements::register(None).map_err(|e| e.to_string())?;
    let weston = if args.headless {
        Some(
            Weston::start(WestonOptions {
                width: args.width,
                height: args.height,
                ..Default::default()
            })
            .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    let target = Target::Toplevel {
        title: "dmabuf-interop viewer".into(),
        app_id: "dmabuf-interop.viewer".into(),
    };
    let mut presenter = match &weston {
        Some(w) => Presenter::connect_to(&w.socket_path(), target),
        None => Presenter::connect(target),
    }
    .map_err(|e| e.to_string())?;

    let pipeline = gst::Pipeline::new();
    let (bin, description) = source(&args)?;
    let importer = Importer::new().map_err(|e| e.to_string())?;
    pipeline.add(&bin).map_err(|e| e.to_string())?;
    pipeline.add(importer.appsink()).map_err(|e| e.to_string())?;
    bin.link(importer.appsink()).map_err(|e| e.to_string())?;
    let bus = pipeline.bus().ok_or("no bus")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| "the pipeline does not start".to_string())?;
    eprintln!("playing {description}");

    let start = Instant::now();
    let mut last_line = Instant::now();
    let mut shown = 0u64;
    let mut outcome = Ok(());
    'play: loop {
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                outcome = Err(format!("{} ({:?})", e.error(), e.debug()));
            }
            break;
        }
        match importer.pull(gst::ClockTime::from_mseconds(100)) {
            Ok(Some(frame)) => {
                // Pace: the previous frame must be on screen first.
                if presenter
                    .wait_frame(Duration::from_secs(1))
                    .map_err(|e| e.to_string())?
                {
                    let dmabuf = frame.dmabuf.clone();
                    presenter.present(&dmabuf, Box::new(frame)).map_err(|e| e.to_string())?;
                    shown += 1;
                }
            }
            Ok(None) if importer.appsink().is_eos() => break 'play,
            Ok(None) => {}
            Err(e) => {
                outcome = Err(e.to_string());
                break;
            }
        }
        if presenter.is_closed() {
            break;
        }
        if args.frames.is_some_and(|n| shown >= n) {
            break;
        }
        if last_line.elapsed() > Duration::from_millis(500) {
            last_line = Instant::now();
            let stats = importer.stats();
            eprint!(
                "\r{shown} frames  {:.1} fps  zero-copy {:.0}%  copies {}   ",
                shown as f64 / start.elapsed().as_secs_f64(),
                100.0 * stats.zero_copy as f64 / stats.frames.max(1) as f64,
                stats.copies
            );
            let _ = std::io::stderr().flush();
        }
    }
    // The last frame on screen, then the screenshot.
    let _ = presenter.wait_frame(Duration::from_secs(1));
    if let (Some(w), Some(path)) = (&weston, &args.screenshot) {
        let image = w.capture().map_err(|e| e.to_string())?;
        image.save_png(path).map_err(|e| e.to_string())?;
        eprintln!("\nscreenshot: {}", path.display());
    }
    let _ = pipeline.set_state(gst::State::Null);
    let (import, present) = (importer.stats(), presenter.stats());
    let secs = start.elapsed().as_secs_f64();
    println!(
        "\nsummary: {shown} frames shown in {secs:.1} s ({:.1} fps); imported {} ({} zero-copy, {} copied); \
         presented {} ({} as linux-dmabuf, {} via wl_shm); {} wl_buffers for {} frames; \
         reused before release: {}",
        shown as f64 / secs.max(1e-9),
        import.frames,
        import.zero_copy,
        import.copies,
        present.presented,
        present.zero_copy,
        present.copies,
        present.wl_buffers_created,
        present.presented,
        present.reused_before_release
    );
    outcome
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nviewer: {e}");
            ExitCode::FAILURE
        }
    }
}
