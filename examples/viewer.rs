//! Plays video into a Wayland window through dmabuf-interop, zero-copy.
//!
//! ```text
//! cargo run --release --example viewer                         # the vkdmabufsrc pattern
//! cargo run --release --example viewer -- --uri clip.webm     # a file, decoded by GStreamer
//! cargo run --release --example viewer -- --present vulkan    # through Vulkan, with an overlay
//! cargo run --release --example viewer -- --headless --frames 300 --screenshot shot.png
//! ```
//!
//! Frames come out of a GStreamer pipeline through [`Importer`] (our pool
//! proposed upstream, so the source or the decoder's converter writes
//! straight into dma-bufs). Then, by `--present`:
//!
//! - `wayland` (default): each frame goes to the compositor as a
//!   linux-dmabuf `wl_buffer` through [`Presenter`] (cached per buffer, the
//!   GStreamer buffer handed back only on `wl_buffer.release`);
//! - `vulkan`: each frame is imported into Vulkan ([`ImportCache`]: one
//!   `VkImage` per pool buffer), composited with an overlay (frame counter
//!   and progress bar, [`Kernels::composite`]) into one of three images
//!   exported as dma-bufs ([`Exporter`]), and that image is shown through
//!   linux-dmabuf: the path a player or compositor takes. An output image is
//!   drawn into again only after the compositor released it.
//!
//! `--headless` starts a private headless Weston and can save a screenshot
//! of it. In a window, `q`/Escape quits and space pauses; on a terminal,
//! the same as a line on standard input (`q`, `p` or a space, then Enter).
//!
//! Options: `--pattern` (default) | `--uri FILE|URI` | `--pipeline DESC`
//! (a gst-launch source description, e.g. `"videotestsrc is-live=true !
//! video/x-raw,format=NV12,width=1920,height=1080,framerate=60/1"`),
//! `--present wayland|vulkan`, `--headless`, `--frames N`, `--screenshot
//! PATH.png`, `--size WxH` (pattern and headless output, default 640x360),
//! `--format BGRx|NV12`.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use dmabuf_interop::gst::{ImportedFrame, Importer};
use dmabuf_interop::reference::overlay::Overlay;
use dmabuf_interop::sync::Fence;
use dmabuf_interop::vulkan::{
    ContextOptions, ExportedImage, Exporter, ImportCache, Kernels, Submission, VulkanContext,
};
use dmabuf_interop::wayland::headless::{Weston, WestonOptions};
use dmabuf_interop::wayland::{Presenter, Target, keys};
use dmabuf_interop::wayland::{Release, SyncMode};
use dmabuf_interop::{DrmFourcc, Report};
use gstreamer as gst;
use gstreamer::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Present {
    Wayland,
    Vulkan,
}

#[derive(Debug)]
enum Input {
    Pattern,
    Uri(String),
    Pipeline(String),
}

#[derive(Debug)]
struct Args {
    input: Input,
    present: Present,
    headless: bool,
    frames: Option<u64>,
    screenshot: Option<PathBuf>,
    width: u32,
    height: u32,
    format: String,
}

const USAGE: &str = "usage: viewer [--pattern | --uri FILE|URI | --pipeline DESC] [--present wayland|vulkan] \
                     [--headless] [--frames N] [--screenshot PATH.png] [--size WxH] [--format BGRx|NV12]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        input: Input::Pattern,
        present: Present::Wayland,
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
            "--pattern" => args.input = Input::Pattern,
            "--uri" => args.input = Input::Uri(value("--uri")?),
            "--pipeline" => args.input = Input::Pipeline(value("--pipeline")?),
            "--present" => {
                args.present = match value("--present")?.as_str() {
                    "wayland" => Present::Wayland,
                    "vulkan" => Present::Vulkan,
                    other => return Err(format!("--present {other}: wayland or vulkan\n{USAGE}")),
                }
            }
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
    // Both paths read YUV with the stream's colorimetry (the Vulkan
    // composite with the imported image's, the compositor told or the frame
    // converted).
    let caps = format!("video/x-raw,format={}", args.format);
    let parse = |d: &str| {
        // identity (passthrough) lets a description end in caps.
        gst::parse::bin_from_description(&format!("{d} ! identity"), true).map_err(|e| format!("{d}: {e}"))
    };
    match &args.input {
        Input::Pattern => {
            let d = format!(
                "vkdmabufsrc is-live=true{} ! {caps},width={},height={},framerate=30/1",
                args.frames.map(|n| format!(" num-buffers={n}")).unwrap_or_default(),
                args.width,
                args.height
            );
            Ok((parse(&d)?, d))
        }
        Input::Pipeline(d) => Ok((parse(d)?, d.clone())),
        Input::Uri(uri) => {
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
            bin.add_many([&decode, convert.upcast_ref()]).map_err(report)?;
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
            let ghost = gst::GhostPad::with_target(&src).map_err(report)?;
            bin.add_pad(&ghost).map_err(report)?;
            Ok((bin, format!("uridecodebin uri={uri} ! videoconvert ! {caps}")))
        }
    }
}

/// The Vulkan presentation path: import, composite, export, present.
struct VulkanPath {
    /// Composites the GPU may still run (each keeps its source frame and
    /// VkImage); dropped first, which waits for them.
    in_flight: VecDeque<Submission>,
    kernels: Kernels,
    imports: ImportCache,
    exporter: Exporter,
    /// Output images, drawn in turn; one is reused only once released.
    ring: Vec<ExportedImage>,
    next: usize,
    composited: u64,
    /// Frames handed to the compositor with their composite's GPU fence
    /// (explicit sync), each a CPU wait less.
    gpu_fenced: u64,
    /// Output images drawn into after the compositor's release fence on the
    /// GPU (instead of waiting for the release on the CPU).
    gpu_release_waits: u64,
}

/// Output images in flight at most: one on screen, one queued, one drawn.
const OUTPUT_RING: usize = 3;

impl VulkanPath {
    fn new() -> Result<Self, String> {
        let ctx: Arc<VulkanContext> = VulkanContext::new(&ContextOptions::default())
            .map_err(|e| format!("Vulkan: {} (run scripts/setup)", Report(&e)))?;
        let kernels = Kernels::new(&ctx).map_err(report)?;
        Ok(Self {
            // The graphics composite: frames sampled (or copied, on a CPU
            // device), outputs as colour attachments.
            imports: ImportCache::new(&ctx, kernels.composite_video_usage()),
            kernels,
            exporter: Exporter::new(&ctx).map_err(report)?,
            ring: Vec::new(),
            next: 0,
            composited: 0,
            gpu_fenced: 0,
            gpu_release_waits: 0,
            in_flight: VecDeque::new(),
        })
    }

    /// Draws `frame` + `overlay` into a free output image and shows it.
    fn show(&mut self, presenter: &mut Presenter, frame: &ImportedFrame, overlay: &Overlay) -> Result<(), String> {
        let (w, h) = (frame.dmabuf.width(), frame.dmabuf.height());
        if self
            .ring
            .first()
            .is_none_or(|o| (o.dmabuf().width(), o.dmabuf().height()) != (w, h))
        {
            // First frame or a new size: a new ring (the old images die once
            // the GPU and the compositor let go of them).
            self.in_flight.clear();
            for old in self.ring.drain(..) {
                presenter.forget(old.dmabuf());
            }
            for _ in 0..OUTPUT_RING {
                let out = self
                    .exporter
                    .export_preferring(
                        DrmFourcc::Xrgb8888,
                        w,
                        h,
                        self.kernels.composite_output_usage(),
                        &presenter.formats().preferred_modifiers(DrmFourcc::Xrgb8888),
                    )
                    .map_err(|e| format!("exporting the output image: {}", Report(&e)))?;
                self.ring.push(out);
            }
        }
        let out = &self.ring[self.next];
        self.next = (self.next + 1) % self.ring.len();
        // Never draw into a buffer the compositor may still read: under
        // explicit sync the composite waits for its release fence on the
        // GPU once the compositor sent it; otherwise wait here.
        let after = match presenter.take_release(out.dmabuf()).map_err(report)? {
            Release::Free => Fence::Implicit,
            Release::After(fence) => {
                self.gpu_release_waits += 1;
                fence
            }
            Release::Held => {
                presenter
                    .wait_released(out.dmabuf(), Duration::from_secs(2))
                    .map_err(report)?;
                Fence::Implicit
            }
        };
        // Composites the GPU finished hand their frames back.
        while let Some(done) = self.in_flight.front() {
            if !done.is_done().map_err(report)? {
                break;
            }
            self.in_flight.pop_front();
        }
        let video = self
            .imports
            .get_or_import(&frame.dmabuf)
            .map_err(|e| format!("importing the frame into Vulkan: {}", Report(&e)))?;
        let mut submission = self
            .kernels
            .composite_submit(&video, out, overlay, &after)
            .map_err(report)?;
        self.composited += 1;
        // Under explicit sync the compositor waits for the composite (its
        // GPU fence becomes the commit's acquire fence): no CPU wait here.
        // Otherwise the composite is waited for first, as implicit sync on
        // a memfd stand-in has nothing else to go by.
        let explicit = presenter.stats().sync != SyncMode::Implicit;
        let acquire = match submission.sync_file() {
            Some(fence) if explicit => {
                // The source frame and its VkImage live until the GPU is
                // done; the output image lives in the ring.
                submission.keep(video);
                submission.keep(frame.sample().clone());
                self.in_flight.push_back(submission);
                self.gpu_fenced += 1;
                Fence::SyncFile(fence)
            }
            _ => {
                submission.wait().map_err(report)?;
                Fence::Implicit
            }
        };
        presenter
            .present_with_fence(out.dmabuf(), Box::new(()), acquire)
            .map_err(report)?;
        Ok(())
    }
}

enum Command {
    Quit,
    TogglePause,
}

/// Lines on standard input as commands (`q` quits; `p`, a space or an
/// empty line toggles pause). EOF (e.g. stdin is /dev/null) ends nothing.
fn stdin_commands() -> Receiver<Command> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let cmd = match line.trim_end_matches(['\r', '\n']) {
                "q" | "quit" => Command::Quit,
                "p" | " " | "" => Command::TogglePause,
                _ => continue,
            };
            if tx.send(cmd).is_err() {
                break;
            }
        }
    });
    rx
}

fn run(args: Args) -> Result<(), String> {
    gst::init().map_err(|e| format!("GStreamer: {e} (run scripts/setup)"))?;
    dmabuf_interop::elements::register(None).map_err(report)?;
    let weston = if args.headless {
        Some(
            Weston::start(WestonOptions {
                width: args.width,
                height: args.height,
                ..Default::default()
            })
            .map_err(report)?,
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
    .map_err(report)?;
    let mut vulkan = match args.present {
        Present::Vulkan => Some(VulkanPath::new()?),
        Present::Wayland => None,
    };

    let pipeline = gst::Pipeline::new();
    let (bin, description) = source(&args)?;
    let importer = Importer::new().map_err(report)?;
    pipeline.add(&bin).map_err(report)?;
    pipeline.add(importer.appsink()).map_err(report)?;
    bin.link(importer.appsink()).map_err(report)?;
    let bus = pipeline.bus().ok_or("no bus")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| "the pipeline does not start".to_string())?;
    eprintln!(
        "playing {description} (--present {})",
        if vulkan.is_some() { "vulkan" } else { "wayland" }
    );
    let commands = stdin_commands();

    let start = Instant::now();
    let mut last_line = Instant::now();
    let mut shown = 0u64;
    let mut paused_since: Option<Instant> = None;
    let mut paused_total = Duration::ZERO;
    let mut outcome = Ok(());
    'play: loop {
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                outcome = Err(format!("{} ({:?})", e.error(), e.debug()));
            }
            break;
        }
        // Input: keys in the window, lines on stdin.
        let mut toggle = false;
        for key in presenter.take_keys() {
            match key {
                keys::KEY_Q | keys::KEY_ESC => break 'play,
                keys::KEY_SPACE => toggle ^= true,
                _ => {}
            }
        }
        loop {
            match commands.try_recv() {
                Ok(Command::Quit) => break 'play,
                Ok(Command::TogglePause) => toggle ^= true,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if toggle {
            if let Some(since) = paused_since.take() {
                paused_total += since.elapsed();
                let _ = pipeline.set_state(gst::State::Playing);
                eprintln!("\nresumed");
            } else {
                paused_since = Some(Instant::now());
                let _ = pipeline.set_state(gst::State::Paused);
                eprintln!("\npaused (space or p to resume)");
            }
        }
        if paused_since.is_some() {
            presenter.dispatch_timeout(Duration::from_millis(50)).map_err(report)?;
            if presenter.is_closed() {
                break;
            }
            continue;
        }
        match importer.pull(gst::ClockTime::from_mseconds(100)) {
            Ok(Some(frame)) => {
                // Pace: the previous frame must be on screen first.
                if presenter.wait_frame(Duration::from_secs(1)).map_err(report)? {
                    match vulkan.as_mut() {
                        Some(path) => {
                            let overlay = Overlay {
                                frame: (shown + 1) as u32,
                                progress: progress(&pipeline, &frame, shown + 1, args.frames),
                            };
                            path.show(&mut presenter, &frame, &overlay)?;
                        }
                        None => {
                            let dmabuf = frame.dmabuf.clone();
                            presenter.present(&dmabuf, Box::new(frame)).map_err(report)?;
                        }
                    }
                    shown += 1;
                }
            }
            Ok(None) if importer.appsink().is_eos() => break 'play,
            Ok(None) => {}
            Err(e) => {
                outcome = Err(report(e));
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
                shown as f64 / (start.elapsed() - paused_total).as_secs_f64(),
                100.0 * stats.zero_copy as f64 / stats.frames.max(1) as f64,
                stats.copies
            );
            let _ = std::io::stderr().flush();
        }
    }
    if let Some(since) = paused_since {
        paused_total += since.elapsed();
    }
    // The last frame on screen, then the screenshot.
    let _ = presenter.wait_frame(Duration::from_secs(1));
    if let (Some(w), Some(path)) = (&weston, &args.screenshot) {
        let image = w.capture().map_err(report)?;
        image.save_png(path).map_err(report)?;
        eprintln!("\nscreenshot: {}", path.display());
    }
    let _ = pipeline.set_state(gst::State::Null);
    let (import, present) = (importer.stats(), presenter.stats());
    let secs = (start.elapsed() - paused_total).as_secs_f64();
    println!(
        "\nsummary: {shown} frames shown in {secs:.1} s ({:.1} fps); imported {} ({} zero-copy, {} copied); \
         presented {} ({} as linux-dmabuf, {} via wl_shm); {} wl_buffers for {} frames; \
         reused before release: {}; paused {:.1} s",
        shown as f64 / secs.max(1e-9),
        import.frames,
        import.zero_copy,
        import.copies,
        present.presented,
        present.zero_copy,
        present.copies,
        present.wl_buffers_created,
        present.presented,
        present.reused_before_release,
        paused_total.as_secs_f64(),
    );
    if let Some(path) = &vulkan {
        let (hits, misses) = path.imports.stats();
        println!(
            "vulkan: {} frames composited into {} exported images ({}); {} VkImages imported for {} frames ({} cache hits); \
             sync {:?}: {} frames handed over with their GPU fence (no CPU wait), {} drawn after a release fence on the GPU",
            path.composited,
            path.ring.len(),
            path.ring
                .first()
                .map_or("none".into(), |o| format!("{:?}", o.export_backend())),
            misses,
            hits + misses,
            hits,
            present.sync,
            path.gpu_fenced,
            path.gpu_release_waits
        );
    }
    outcome
}

/// Progress in thousandths: the frame's position in the stream's duration
/// when that is known (files), else the share of `--frames`, else none.
fn progress(pipeline: &gst::Pipeline, frame: &ImportedFrame, shown: u64, frames: Option<u64>) -> Option<u32> {
    let duration = pipeline.query_duration::<gst::ClockTime>().filter(|d| !d.is_zero());
    if let (Some(d), Some(pts)) = (duration, frame.pts) {
        return Some((pts.nseconds().saturating_mul(1000) / d.nseconds()).min(1000) as u32);
    }
    frames.map(|n| (shown.saturating_mul(1000) / n.max(1)).min(1000) as u32)
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

/// An error and its causes, for the message the viewer prints.
fn report(e: impl std::error::Error) -> String {
    Report(&e).to_string()
}
