//! GStreamer helpers shared by the pipeline tests: one init, one
//! play-to-EOS run with the sink's stats and a capture, the reference frame
//! videotestsrc makes.

use std::path::Path;
use std::time::{Duration, Instant};

use dmabuf_interop::wayland::headless::{Image, Weston};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

/// GStreamer and the crate's elements, registered once per process.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::init().expect("GStreamer (run scripts/setup)");
        dmabuf_interop::elements::register(None).expect("register elements");
    });
}

/// The pipeline `description` makes (a test's own description: a parse
/// error is a test failure).
pub fn launch(description: &str) -> gst::Pipeline {
    gst::parse::launch(description)
        .unwrap_or_else(|e| panic!("{description}: {e}"))
        .downcast::<gst::Pipeline>()
        .expect("a pipeline")
}

/// [`launch`] of a pipeline whose sink, named `sink`, shows on the
/// compositor at `socket`: the pipeline and that sink.
pub fn sink_pipeline(description: &str, socket: impl AsRef<Path>) -> (gst::Pipeline, gst::Element) {
    let pipeline = launch(description);
    let sink = pipeline.by_name("sink").expect("an element named sink");
    sink.set_property("display", socket.as_ref().to_str().unwrap());
    (pipeline, sink)
}

/// [`launch`] of `upstream ! appsink name=sink sync=false`: the pipeline
/// and its appsink.
pub fn appsink_pipeline(upstream: &str) -> (gst::Pipeline, gst_app::AppSink) {
    let pipeline = launch(&format!("{upstream} ! appsink name=sink sync=false"));
    let sink = child::<gst_app::AppSink>(&pipeline, "sink");
    (pipeline, sink)
}

/// The element `name` of `pipeline`, as the type it is.
pub fn child<T: IsA<gst::Element>>(pipeline: &gst::Pipeline, name: &str) -> T {
    pipeline
        .by_name(name)
        .unwrap_or_else(|| panic!("no element named {name}"))
        .downcast::<T>()
        .unwrap_or_else(|_| panic!("{name} is not a {}", T::static_type().name()))
}

/// The caps the crate gives a LINEAR XRGB8888 (BGRx) `width`x`height`
/// 30 fps stream: under `memory:DMABuf` or plain, for mappable or
/// non-mappable buffers (`gst::caps_for`).
pub fn linear_xrgb_caps(width: u32, height: u32, dmabuf_feature: bool, mappable: bool) -> gst::Caps {
    let stream = dmabuf_interop::gst::StreamFormat {
        fourcc: dmabuf_interop::DrmFourcc::Xrgb8888,
        modifier: dmabuf_interop::DrmModifier::Linear,
        width,
        height,
        framerate: (30, 1),
        dmabuf_feature,
    };
    dmabuf_interop::gst::caps_for(&stream, mappable).expect("caps for LINEAR XRGB8888")
}

/// The EOS or error message of `element`'s bus, waited for at most
/// `seconds` (a pipeline that neither ends nor fails is a test failure).
pub fn eos_or_error(element: &impl IsA<gst::Element>, seconds: u64) -> gst::Message {
    element
        .bus()
        .expect("a pipeline has a bus")
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(seconds),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .unwrap_or_else(|| panic!("neither EOS nor an error within {seconds} s"))
}

/// What a pipeline run ended with.
pub struct Run {
    /// wldmabufsink's stats message at EOS.
    pub stats: Option<gst::Structure>,
    /// The screen at EOS, before the sink went away.
    pub capture: Option<Image>,
    /// The first error message.
    pub error: Option<String>,
    /// Every warning message.
    pub warnings: Vec<String>,
}

impl Run {
    /// A wldmabufsink counter.
    pub fn stat(&self, name: &str) -> u64 {
        self.stats
            .as_ref()
            .expect("no stats message at EOS")
            .get::<u64>(name)
            .unwrap_or_else(|_| panic!("no {name} in stats"))
    }
}

/// Runs `description` (its sink named `sink`, shown on the compositor at
/// `socket`) to EOS or error within 60 s; `capture` reads the screen at EOS.
pub fn run(socket: &Path, capture: impl Fn() -> Option<Image>, description: &str) -> Run {
    run_pipeline(socket, gst::parse::launch(description).expect("pipeline"), capture)
}

/// [`run`] of a pipeline made already (a sink that is not a child yet,
/// as playbin's `video-sink`, is given the display by the caller).
pub fn run_pipeline(socket: &Path, pipeline: gst::Element, capture: impl Fn() -> Option<Image>) -> Run {
    let pipeline = pipeline.downcast::<gst::Pipeline>().expect("a pipeline");
    if let Some(sink) = pipeline.by_name("sink") {
        sink.set_property("display", socket.to_str().unwrap());
    }
    let bus = pipeline.bus().unwrap();
    let mut out = Run {
        stats: None,
        capture: None,
        error: None,
        warnings: Vec::new(),
    };
    if pipeline.set_state(gst::State::Playing).is_err() {
        out.error = bus
            .pop_filtered(&[gst::MessageType::Error])
            .map(|m| format!("{:?}", m))
            .or(Some("state change failed".into()));
        pipeline.set_state(gst::State::Null).unwrap();
        return out;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Element(e) if e.structure().is_some_and(|s| s.name() == "wldmabufsink-stats") => {
                out.stats = e.structure().map(|s| s.to_owned());
            }
            gst::MessageView::Eos(_) => {
                out.capture = capture();
                break;
            }
            gst::MessageView::Error(e) => {
                out.error = Some(format!("{} ({:?})", e.error(), e.debug()));
                break;
            }
            gst::MessageView::Warning(w) => out.warnings.push(format!("{} ({:?})", w.error(), w.debug())),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

/// The frame `videotestsrc` makes for `caps` (system memory), as planes
/// and strides.
pub fn reference_frame(caps: &str) -> (gst_video::VideoInfo, Vec<Vec<u8>>, Vec<usize>) {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 pattern=smpte ! {caps} ! appsink name=s"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline.by_name("s").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let sample = sink.pull_sample().expect("reference sample");
    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(sample.buffer().unwrap(), &info).unwrap();
    let planes = (0..frame.n_planes())
        .map(|i| frame.plane_data(i).unwrap().to_vec())
        .collect();
    let strides = frame.plane_stride().iter().map(|&s| s as usize).collect();
    pipeline.set_state(gst::State::Null).unwrap();
    (info, planes, strides)
}

/// The RGB reference of SMPTE bars at `width`x`height`: videotestsrc's own
/// BGRx frame, as a pixel function for `grid_error`.
pub fn smpte_rgb(width: u32, height: u32) -> impl Fn(u32, u32) -> [u8; 3] {
    let (_, planes, strides) = reference_frame(&format!("video/x-raw,format=BGRx,width={width},height={height}"));
    move |x, y| {
        let p = &planes[0][y as usize * strides[0] + x as usize * 4..];
        [p[2], p[1], p[0]]
    }
}

/// SMPTE bars in `caps` (`format`, `width`, `height`, any `colorimetry`)
/// into `sink` on `weston` to EOS, captured at EOS. videotestsrc paints its
/// YUV bars right for BT.601 and BT.709 limited range only (full range as
/// limited, BT.2020 with BT.709's matrix), so other caps go through
/// videoconvert from BGRx (`via_videoconvert`), which encodes with both.
pub fn play_bars_via(weston: &Weston, caps: &str, sink: &str, frames: u32, via_videoconvert: bool) -> Run {
    let source = if via_videoconvert {
        let size = caps
            .split(',')
            .filter(|f| f.starts_with("width") || f.starts_with("height"));
        let bgrx = std::iter::once("video/x-raw,format=BGRx")
            .chain(size)
            .collect::<Vec<_>>()
            .join(",");
        format!("{bgrx} ! videoconvert dither=none ! ")
    } else {
        String::new()
    };
    run(
        &weston.socket_path(),
        || weston.capture().ok(),
        &format!("videotestsrc pattern=smpte num-buffers={frames} ! {source}{caps} ! {sink} name=sink"),
    )
}

/// [`play_bars_via`] straight from videotestsrc.
pub fn play_bars(weston: &Weston, caps: &str, sink: &str, frames: u32) -> Run {
    play_bars_via(weston, caps, sink, frames, false)
}

/// Worst channel error of the capture against the RGB SMPTE bars (flat
/// points of the colour bars and the strip below them: the bottom quarter's
/// -I/+Q patches and noise differ between videotestsrc's RGB and YUV output).
pub fn bars_error(run: &Run, width: u32, height: u32, name: &str) -> Option<(u32, usize)> {
    let image = run.capture.as_ref()?;
    super::keep_capture(image, name);
    Some(super::grid_error_above(
        image,
        smpte_rgb(width, height),
        width,
        height,
        height * 3 / 4,
    ))
}
