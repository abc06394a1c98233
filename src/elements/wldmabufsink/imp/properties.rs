//! The sink's settings and properties (`display`, `frame-timeout`,
//! `colour-correction`, the read-only `stats`, ...).

use std::sync::LazyLock;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;

use gstreamer_video as gst_video;

use super::direction::VideoDirection;
use super::{CAT, WlDmaBufSink};
use crate::elements::lock;
use crate::wayland::ColourCorrection;

/// `frame-timeout`'s default, in milliseconds.
const DEFAULT_FRAME_TIMEOUT_MS: u32 = 100;
/// `commit-timing`'s default.
const DEFAULT_COMMIT_TIMING: bool = true;
/// `colour-correction`'s default.
const DEFAULT_COLOUR_CORRECTION: ColourCorrectionMode = ColourCorrectionMode::Auto;
/// `gpu-conversion`'s default.
const DEFAULT_GPU_CONVERSION: bool = true;
/// `rotate-method`'s default.
const DEFAULT_ROTATE_METHOD: gst_video::VideoOrientationMethod = gst_video::VideoOrientationMethod::Identity;
/// `force-aspect-ratio`'s default.
const DEFAULT_FORCE_ASPECT_RATIO: bool = true;
/// `fullscreen`'s default.
const DEFAULT_FULLSCREEN: bool = false;

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) display: Option<String>,
    pub(super) frame_timeout_ms: u32,
    /// FIFO pacing and commit timestamps where the compositor offers them.
    pub(super) commit_timing: bool,
    pub(super) colour_correction: ColourCorrectionMode,
    /// Conversions for colour on the GPU where one is found (`gpu`).
    pub(super) gpu_conversion: bool,
    /// `rotate-method` / `video-direction`.
    pub(super) rotate_method: gst_video::VideoOrientationMethod,
    pub(super) force_aspect_ratio: bool,
    pub(super) fullscreen: bool,
    /// An output name (`wl_output` v4).
    pub(super) fullscreen_output: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            display: None,
            frame_timeout_ms: DEFAULT_FRAME_TIMEOUT_MS,
            commit_timing: DEFAULT_COMMIT_TIMING,
            colour_correction: DEFAULT_COLOUR_CORRECTION,
            gpu_conversion: DEFAULT_GPU_CONVERSION,
            rotate_method: DEFAULT_ROTATE_METHOD,
            force_aspect_ratio: DEFAULT_FORCE_ASPECT_RATIO,
            fullscreen: DEFAULT_FULLSCREEN,
            fullscreen_output: None,
        }
    }
}

/// The `colour-correction` property (see [`ColourCorrection`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "DmabufInteropColourCorrection")]
pub enum ColourCorrectionMode {
    /// Convert YUV frames to RGB only when the compositor cannot be told
    /// their matrix and range and would misread them.
    #[default]
    #[enum_value(name = "Auto: convert only what the compositor would show wrong", nick = "auto")]
    Auto,
    /// Never convert for colour's sake.
    #[enum_value(name = "Never: tell the compositor where possible, else send as is", nick = "never")]
    Never,
    /// Convert every YUV frame that can be converted.
    #[enum_value(name = "Always: convert every convertible YUV frame to RGB", nick = "always")]
    Always,
}

impl From<ColourCorrectionMode> for ColourCorrection {
    fn from(m: ColourCorrectionMode) -> Self {
        match m {
            ColourCorrectionMode::Auto => ColourCorrection::Auto,
            ColourCorrectionMode::Never => ColourCorrection::Never,
            ColourCorrectionMode::Always => ColourCorrection::Always,
        }
    }
}

impl ObjectImpl for WlDmaBufSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("display")
                    .nick("Display")
                    .blurb("Wayland socket name (in XDG_RUNTIME_DIR) or path; default: WAYLAND_DISPLAY")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("frame-timeout")
                    .nick("Frame timeout")
                    .blurb(
                        "With sync=false: milliseconds a frame waits for the previous one to be shown (frame \
                         callback) before it is held back (committed once the compositor is ready, unless a \
                         newer frame replaces it); with sync=true frames never wait",
                    )
                    .minimum(1)
                    .maximum(10_000)
                    .default_value(DEFAULT_FRAME_TIMEOUT_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("commit-timing")
                    .nick("Commit timing")
                    .blurb(
                        "Where the compositor offers wp_fifo_v1 (and wp_commit_timing_v1): frames are queued \
                         with FIFO barriers and their target presentation time, committed a render delay \
                         ahead, instead of each waiting for the previous frame's callback",
                    )
                    .default_value(DEFAULT_COMMIT_TIMING)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("gpu-conversion")
                    .nick("GPU conversion")
                    .blurb(
                        "Convert the YUV frames that colour-correction converts on the GPU (Vulkan, built \
                         in with the vulkan feature) into XRGB8888 dma-bufs the compositor shows without a \
                         copy (counted in stats as gpu-converted); where no Vulkan device is found, the \
                         device refuses the frame or its format is not NV12, I420 or P010, or with false: on the CPU \
                         into wl_shm (converted)",
                    )
                    .default_value(DEFAULT_GPU_CONVERSION)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("window-handle")
                    .nick("Window handle")
                    .blurb(
                        "The application's wl_surface* to show video in instead of a window of our own \
                         (GstVideoOverlay-style embedding; set before READY, e.g. from a sync bus handler \
                         on the prepare-window-handle element message)",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("display-handle")
                    .nick("Display handle")
                    .blurb(
                        "The application's wl_display* that window-handle belongs to (or a \
                         GstWlDisplayHandleContextType context with a 'display' pointer)",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("colour-correction", DEFAULT_COLOUR_CORRECTION)
                    .nick("Colour correction")
                    .blurb(
                        "When YUV frames are converted to RGB on the CPU instead of sent as they are: auto \
                         (when the compositor cannot be told their matrix and range by \
                         wp_color_representation_v1 and would misread them: without the protocol, \
                         compositors read YUV as BT.601 limited), never, always",
                    )
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("rotate-method", DEFAULT_ROTATE_METHOD)
                    .nick("Rotate method")
                    .blurb(
                        "Rotation or flip (wl_surface.set_buffer_transform: the compositor turns the buffer, \
                         nothing is copied); auto follows the stream's image-orientation tag",
                    )
                    .mutable_playing()
                    .build(),
                glib::ParamSpecOverride::for_interface::<VideoDirection>("video-direction"),
                glib::ParamSpecBoolean::builder("force-aspect-ratio")
                    .nick("Force aspect ratio")
                    .blurb(
                        "Keep the picture's shape (its pixel aspect ratio applied) inside a larger window, with \
                         black borders; false stretches it over the whole window",
                    )
                    .default_value(DEFAULT_FORCE_ASPECT_RATIO)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("fullscreen")
                    .nick("Fullscreen")
                    .blurb("Ask the compositor to make our window fullscreen (ignored when embedded)")
                    .default_value(DEFAULT_FULLSCREEN)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("fullscreen-output")
                    .nick("Fullscreen output")
                    .blurb(
                        "The output (wl_output name, e.g. HDMI-A-1) to be fullscreen on; default: the \
                         compositor's choice. An unknown name is a warning naming the outputs there are",
                    )
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "frames, pool (the back end of the buffer pool proposed upstream: udmabuf, \
                         dma-heap, gbm or memfd, whichever this process may open; none before a \
                         proposal), shown, zero-copy (linux-dmabuf and wl_shm over the frame's own memfd), \
                         shm-zero-copy (of those, the wl_shm ones), copies, converted (of the copies, those \
                         converted into XRGB8888 on the CPU), dropped, wl-buffers, cache-hits, releases, \
                         reused-before-release, import-refusals (kinds of buffer the compositor \
                         answered `failed` for, or accepted and never showed; their frames go the wl_shm \
                         way), never-shown (of those, the accepted-but-never-shown ones), hidden-restores \
                         (never-shown demotions taken back: the window was not painted at all), sync \
                         (implicit, linux-drm-syncobj-v1 or linux-explicit-synchronization-v1), explicit-sync-commits, \
                         release-points-signalled, colour-told (YUV frames whose matrix and range the \
                         compositor was told: wp_color_representation_v1), colour-converted (YUV frames \
                         converted to RGB on the CPU because the compositor could not be told and would \
                         misread them), gpu-converted (such frames converted on the GPU instead), \
                         gpu-copied-in (of those, frames first copied into the Vulkan device on the GPU: \
                         a layout it does not import as an image), \
                         colour-uncorrected (YUV frames shown neither told nor converted although the \
                         compositor is not assumed to read them right), alpha-told (frames with straight \
                         alpha told so: wp_color_representation_v1 alpha mode straight), alpha-untold \
                         (straight-alpha frames the compositor lists no straight for, read as premultiplied), \
                         colour-described (frames with a \
                         wp_color_management_v1 image description: transfer, primaries, HDR10 metadata), \
                         colour-description-failures (descriptions the compositor answered failed for), \
                         presented-feedback and discarded-feedback (wp_presentation feedback: commits the \
                         compositor presented or dropped), presented-zero-copy-feedback (of those presented, \
                         those it flagged zero_copy: scanned out), timed (presented frames with a target: \
                         the pipeline has a clock and the frame a timestamp; a clock other than the \
                         monotonic system clock, such as an audio sink's, is related to CLOCK_MONOTONIC by \
                         sampling both), presentation-error-median-us (presented minus target: running \
                         time + base time + latency + render delay) and presentation-error-p95-us (95th \
                         percentile of its absolute value)",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "display" => s.display = value.get().unwrap_or(None),
            "frame-timeout" => s.frame_timeout_ms = value.get().unwrap_or(DEFAULT_FRAME_TIMEOUT_MS),
            "commit-timing" => s.commit_timing = value.get().unwrap_or(DEFAULT_COMMIT_TIMING),
            "gpu-conversion" => s.gpu_conversion = value.get().unwrap_or(DEFAULT_GPU_CONVERSION),
            "colour-correction" => {
                s.colour_correction = value.get().unwrap_or(DEFAULT_COLOUR_CORRECTION);
                let policy = s.colour_correction.into();
                drop(s);
                if let Some(p) = lock(&self.state).presenter.as_mut() {
                    p.set_colour_correction(policy);
                }
            }
            "rotate-method" | "video-direction" => {
                s.rotate_method = value.get().unwrap_or(DEFAULT_ROTATE_METHOD);
                drop(s);
                self.apply_view();
            }
            "force-aspect-ratio" => {
                s.force_aspect_ratio = value.get().unwrap_or(DEFAULT_FORCE_ASPECT_RATIO);
                drop(s);
                self.apply_view();
            }
            "fullscreen" => {
                s.fullscreen = value.get().unwrap_or(DEFAULT_FULLSCREEN);
                drop(s);
                self.apply_fullscreen();
            }
            "fullscreen-output" => {
                s.fullscreen_output = value.get().unwrap_or(None);
                let on = s.fullscreen;
                drop(s);
                if on {
                    self.apply_fullscreen();
                }
            }
            "window-handle" => lock(&self.foreign).surface = value.get::<u64>().unwrap_or(0) as usize,
            "display-handle" => lock(&self.foreign).display = value.get::<u64>().unwrap_or(0) as usize,
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "display" => lock(&self.settings).display.to_value(),
            "frame-timeout" => lock(&self.settings).frame_timeout_ms.to_value(),
            "commit-timing" => lock(&self.settings).commit_timing.to_value(),
            "gpu-conversion" => lock(&self.settings).gpu_conversion.to_value(),
            "colour-correction" => lock(&self.settings).colour_correction.to_value(),
            "rotate-method" | "video-direction" => lock(&self.settings).rotate_method.to_value(),
            "force-aspect-ratio" => lock(&self.settings).force_aspect_ratio.to_value(),
            "fullscreen" => lock(&self.settings).fullscreen.to_value(),
            "fullscreen-output" => lock(&self.settings).fullscreen_output.to_value(),
            "stats" => self.stats_structure().to_value(),
            "window-handle" => (lock(&self.foreign).surface as u64).to_value(),
            "display-handle" => (lock(&self.foreign).display as u64).to_value(),
            _ => glib::Value::from_type(pspec.value_type()),
        }
    }
}
