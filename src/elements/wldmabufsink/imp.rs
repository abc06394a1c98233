//! Implementation of [`super::WlDmaBufSink`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use gstreamer_base::subclass::prelude::*;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use gstreamer_video::subclass::prelude::*;

use crate::Report;
use crate::colour::Colorimetry;
use crate::gst::caps::{self as dcaps, StreamFormat};
use crate::gst::colorimetry::colorimetry_from_caps;
use crate::gst::importer::checked_planes;
use crate::gst::memory::{DmaBufCache, is_dmabuf_buffer};
use crate::gst::{DmaBufPoolAllocator, importer::propose_allocation};
use crate::wayland::{Orientation, Presenter, Target, WaylandError};

mod caps;
mod composition;
mod direction;
#[cfg(feature = "vulkan")]
mod gpu;
mod navigation;
mod overlay;
mod properties;
mod pump;
mod stats;
mod timing;
mod view;

use crate::elements::lock;
use caps::{caps_for_formats, template_caps};
use properties::Settings;

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "wldmabufsink",
        gst::DebugColorFlags::empty(),
        Some("Wayland linux-dmabuf video sink"),
    )
});

/// Context types under which applications share their `wl_display*`.
const DISPLAY_CONTEXT_TYPES: [&str; 2] = ["GstWlDisplayHandleContextType", "GstWaylandDisplayHandleContextType"];

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    frames: u64,
    dropped: u64,
    /// Frames converted on the GPU for their colours (`gpu`).
    gpu_converted: u64,
    /// Of those, frames copied into the device on the GPU first (a
    /// layout it does not import as an image).
    gpu_copied_in: u64,
}

/// What the application handed over through GstVideoOverlay and the
/// display context (pointers as integers: they are only handed to
/// libwayland), applied to each new presenter.
#[derive(Debug, Default, Clone, Copy)]
struct Foreign {
    display: usize,
    surface: usize,
    /// GstVideoOverlay's render rectangle.
    render_rectangle: Option<(i32, i32, i32, i32)>,
}

/// What the sink holds while it runs, under one lock: the presenter
/// (READY to NULL), the stream and the counts.
#[derive(Default)]
struct State {
    presenter: Option<Presenter>,
    stream: Option<Stream>,
    counters: Counters,
    allocator: Option<DmaBufPoolAllocator>,
    /// The buffer shown last: basesink hands the preroll buffer to
    /// show_frame twice (preroll, then render); it is shown once.
    last: Option<gst::Buffer>,
    /// The latest frame that found the compositor not ready for it (the
    /// previous frame not shown yet), counted as dropped until it is
    /// shown: committed by the pump once the compositor is ready (under
    /// `sync=true`, see `pump`), else at EOS if no later frame replaced
    /// it, so the stream's last picture is what stays on screen.
    held: Option<Frame>,
    /// The stream's `image-orientation` tag (for `rotate-method=auto`).
    tag_orientation: Orientation,
    /// Presented minus target, from `wp_presentation` feedback.
    timing_errors: timing::Errors,
    #[cfg(feature = "vulkan")]
    gpu: gpu::Gpu,
}

/// A frame to show: the buffer and its target presentation time on
/// `CLOCK_MONOTONIC` (see `timing::target_monotonic_ns`), read when it
/// arrives, in the streaming thread: reading basesink's segment takes the
/// pad's stream lock, which the pump must never wait for under ours.
#[derive(Clone)]
struct Frame {
    buffer: gst::Buffer,
    target_ns: Option<u64>,
}

struct Stream {
    format: StreamFormat,
    info: gst_video::VideoInfo,
    /// Read strictly from the caps (chroma site and HDR metadata
    /// included); GStreamer's reading where the caps' fields are wrong.
    colorimetry: Colorimetry,
}

/// The sink: its properties (`settings`), what the application handed
/// over (`foreign`) and its running state (`state`), each under its own
/// lock; none is held while an error or warning is posted (see `show`).
#[derive(Default)]
pub struct WlDmaBufSink {
    settings: Mutex<Settings>,
    foreign: Mutex<Foreign>,
    state: Mutex<State>,
    flushing: AtomicBool,
    /// One `DmaBuf` per upstream storage, so the Presenter's wl_buffer
    /// cache hits; cleared on stop.
    cache: DmaBufCache,
    /// We set basesink's render delay (commit timing): undone at NULL.
    render_ahead_set: AtomicBool,
    /// Signalled when a frame is held (`State::held`): wakes the pump.
    held_ready: Condvar,
    /// The thread that commits held frames (READY to NULL).
    pump: Mutex<Option<pump::Pump>>,
    /// What the pump's last commit failed with, returned by the next
    /// `render` (its error, if any, is posted already).
    pump_failure: Mutex<Option<gst::FlowError>>,
}

impl WlDmaBufSink {
    /// A presenter with the sink's settings applied.
    fn connect(&self) -> Result<Presenter, WaylandError> {
        let mut presenter = self.open_presenter()?;
        let policy = lock(&self.settings).colour_correction;
        presenter.set_colour_correction(policy.into());
        presenter.set_view(self.view())?;
        let rect = lock(&self.foreign).render_rectangle;
        if let Some(rect) = rect {
            presenter.set_render_rectangle(Some(rect))?;
        }
        let (fullscreen, output) = {
            let s = lock(&self.settings);
            (s.fullscreen, s.fullscreen_output.clone())
        };
        if fullscreen {
            match presenter.set_fullscreen(true, output.as_deref()) {
                Err(e @ WaylandError::UnknownOutput { .. }) => {
                    gst::element_imp_warning!(self, gst::ResourceError::Settings, ["{}; shown windowed", Report(&e)]);
                }
                other => other?,
            }
        }
        Ok(presenter)
    }

    fn open_presenter(&self) -> Result<Presenter, WaylandError> {
        let foreign = *lock(&self.foreign);
        if foreign.surface != 0 {
            if foreign.display == 0 {
                return Err(WaylandError::Connect(
                    "a window handle (wl_surface) was set but no GstWlDisplayHandleContextType context gave its \
                     wl_display"
                        .into(),
                ));
            }
            // SAFETY: the application handed us these through
            // GstVideoOverlay and the display context, promising that they
            // outlive the sink (the GstVideoOverlay contract).
            return unsafe { Presenter::with_foreign(foreign.display as *mut _, foreign.surface as *mut _) };
        }
        let target = Target::Toplevel {
            title: "wldmabufsink".into(),
            app_id: "dmabuf-interop.wldmabufsink".into(),
        };
        let display = lock(&self.settings).display.clone();
        match display {
            Some(d) => {
                let path = if d.starts_with('/') {
                    PathBuf::from(d)
                } else {
                    let dir = std::env::var_os("XDG_RUNTIME_DIR")
                        .ok_or_else(|| WaylandError::Connect("XDG_RUNTIME_DIR is not set".into()))?;
                    PathBuf::from(dir).join(d)
                };
                Presenter::connect_to(&path, target)
            }
            None => Presenter::connect(target),
        }
    }

    /// Waits (in short slices, so unlock() can interrupt) until the next
    /// frame may be committed (the previous one shown, or under FIFO
    /// pacing a place in the compositor's queue); false when `timeout`
    /// passed first.
    fn wait_for_frame(&self, presenter: &mut Presenter, timeout: Duration) -> Result<bool, WaylandError> {
        if !presenter.ready_for_next() {
            // What the compositor sent already (a frame callback waiting
            // in the socket), without waiting: the whole check when
            // `timeout` is zero.
            presenter.dispatch_timeout(Duration::ZERO)?;
        }
        let deadline = Instant::now() + timeout;
        while !presenter.ready_for_next() {
            if self.flushing.load(Ordering::SeqCst) {
                return Ok(false);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            presenter.wait_ready(left.min(Duration::from_millis(10)))?;
        }
        Ok(true)
    }

    /// Shows `buffer`; an error is posted only after every lock of ours
    /// is released: an application's sync bus handler runs in this thread
    /// and may read `stats` or call GstVideoOverlay, which take them.
    ///
    /// Under `sync=true` a frame that finds the compositor not ready is
    /// held for the pump at once; with `sync=false` it waits up to
    /// `frame-timeout` first (see `pump`).
    fn show(&self, buffer: &gst::Buffer) -> Result<(), gst::FlowError> {
        if let Some(failure) = lock(&self.pump_failure).take() {
            return Err(failure);
        }
        let timeout = if self.obj().is_sync() {
            Duration::ZERO
        } else {
            Duration::from_millis(u64::from(lock(&self.settings).frame_timeout_ms))
        };
        let frame = Frame {
            buffer: buffer.clone(),
            target_ns: timing::target_monotonic_ns(self.obj().upcast_ref(), buffer),
        };
        self.show_with(&frame, timeout, false)
    }

    /// [`show`](Self::show) with the wait for the previous frame;
    /// `reshow`: the held frame again (already counted, and counted as
    /// dropped until now).
    fn show_with(&self, frame: &Frame, timeout: Duration, reshow: bool) -> Result<(), gst::FlowError> {
        let shown = self.show_in(&mut lock(&self.state), frame, timeout, reshow);
        self.after_show(shown)
    }

    /// What follows a commit, with the sink's locks released: input
    /// forwarded, RECONFIGURE sent upstream where the compositor's formats
    /// changed, an error posted.
    fn after_show(&self, shown: Result<bool, Failure>) -> Result<(), gst::FlowError> {
        self.forward_input();
        match shown {
            Ok(reconfigure) => {
                if reconfigure {
                    self.obj().sink_pad().push_event(gst::event::Reconfigure::new());
                }
                Ok(())
            }
            Err(Failure::Flow(f)) => Err(f),
            Err(Failure::Error(message)) => {
                self.post_error_message(message);
                Err(gst::FlowError::Error)
            }
        }
    }

    /// The work of [`show`](Self::show), under the state's lock (`state`);
    /// true when upstream should renegotiate (the compositor's formats
    /// changed). `reshow`: the held frame, already counted.
    fn show_in(&self, state: &mut State, frame: &Frame, timeout: Duration, reshow: bool) -> Result<bool, Failure> {
        let buffer = &frame.buffer;
        let fail = |e: WaylandError| {
            let lost = matches!(e, WaylandError::Connection(_) | WaylandError::Closed);
            Failure::Error(if lost {
                gst::error_msg!(gst::ResourceError::Write, ["Wayland compositor gone: {}", Report(&e)])
            } else {
                gst::error_msg!(gst::StreamError::Failed, ["Cannot show the frame: {}", Report(&e)])
            })
        };
        let State {
            presenter,
            stream,
            counters,
            last,
            held,
            timing_errors,
            #[cfg(feature = "vulkan")]
            gpu,
            ..
        } = state;
        if !reshow && last.as_ref().is_some_and(|l| l.as_ptr() == buffer.as_ptr()) {
            return Ok(false);
        }
        *last = Some(buffer.clone());
        if !reshow {
            counters.frames += 1;
        }
        let stream = stream.as_ref().ok_or(gst::FlowError::NotNegotiated)?;
        let presenter = presenter.as_mut().ok_or(gst::FlowError::Flushing)?;
        if !self.wait_for_frame(presenter, timeout).map_err(fail)? {
            if self.flushing.load(Ordering::SeqCst) {
                return Err(gst::FlowError::Flushing.into());
            }
            if !reshow {
                // The one held before stays dropped.
                counters.dropped += 1;
            }
            *held = Some(frame.clone());
            self.held_ready.notify_one();
            gst::debug!(CAT, imp = self, "previous frame not shown yet: held");
            return Ok(false);
        }
        if reshow {
            counters.dropped -= 1;
        } else {
            // A newer frame goes: the held one is stale.
            *held = None;
        }
        // Overlays go with this frame's commit (a bad one is only logged).
        if let Err(e) = composition::apply(presenter, buffer) {
            gst::warning!(CAT, imp = self, "overlay composition not shown: {}", Report(&e));
        }
        // The rule: check every buffer for dma-buf memory, whatever the caps.
        if is_dmabuf_buffer(buffer) {
            let dmabuf = self
                .cache
                .get_as(buffer, &stream.info, stream.format.modifier, stream.colorimetry)
                .map_err(|e| Failure::Error(gst::error_msg!(gst::StreamError::Format, ["{}", Report(&e)])))?;
            presenter.set_target(frame.target_ns.and_then(|t| presenter.from_monotonic(t)));
            #[cfg(feature = "vulkan")]
            let converted = self.convert_on_gpu(gpu, presenter, &dmabuf, counters).map_err(fail)?;
            #[cfg(not(feature = "vulkan"))]
            let converted = false;
            if !converted {
                presenter.present(&dmabuf, Box::new(buffer.clone())).map_err(fail)?;
            }
        } else if stream.format.dmabuf_feature {
            return Err(Failure::Error(gst::error_msg!(
                gst::StreamError::Format,
                ["System memory under memory:DMABuf caps: such buffers are never mapped"]
            )));
        } else {
            let data = buffer.map_readable().map_err(|_| {
                Failure::Error(gst::error_msg!(
                    gst::StreamError::Format,
                    ["Cannot map a system-memory frame"]
                ))
            })?;
            // Checked against the memory, as the Importer's copy path.
            let planes = checked_planes(&data, buffer, &stream.info, stream.format.fourcc).map_err(|e| {
                Failure::Error(gst::error_msg!(
                    gst::StreamError::Format,
                    ["Malformed system-memory frame: {}", Report(&e)]
                ))
            })?;
            presenter.set_target(frame.target_ns.and_then(|t| presenter.from_monotonic(t)));
            presenter
                .present_memory(
                    stream.format.fourcc,
                    stream.info.width(),
                    stream.info.height(),
                    &planes,
                    stream.colorimetry,
                    Box::new(()),
                )
                .map_err(fail)?;
        }
        timing_errors.collect(presenter);
        let reconfigure = presenter.take_formats_changed();
        if reconfigure {
            gst::info!(
                CAT,
                imp = self,
                "compositor's preferred formats changed: {:?}",
                presenter.formats()
            );
        }
        Ok(reconfigure)
    }
}

/// Why a frame was not shown: a flow return, or an error to post once the
/// sink's locks are released.
enum Failure {
    Flow(gst::FlowError),
    Error(gst::ErrorMessage),
}

impl From<gst::FlowError> for Failure {
    fn from(f: gst::FlowError) -> Self {
        Failure::Flow(f)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for WlDmaBufSink {
    const NAME: &'static str = "DmabufInteropWlDmaBufSink";
    type Type = super::WlDmaBufSink;
    type ParentType = gst_video::VideoSink;
    type Interfaces = (
        gst_video::VideoOverlay,
        gst_video::Navigation,
        direction::VideoDirection,
    );
}

impl GstObjectImpl for WlDmaBufSink {}

impl ElementImpl for WlDmaBufSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Wayland dma-buf video sink",
                "Sink/Video",
                "Shows video through zwp_linux_dmabuf_v1 wl_buffers without copying (wl_shm copies as fallback)",
                env!("CARGO_PKG_NAME"),
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> =
            LazyLock::new(|| super::super::always_pad(gst::PadDirection::Sink, &template_caps()));
        TEMPLATES.as_ref()
    }

    fn set_context(&self, context: &gst::Context) {
        if DISPLAY_CONTEXT_TYPES.contains(&context.context_type())
            && let Ok(ptr) = context.structure().get::<glib::Pointer>("display")
        {
            lock(&self.foreign).display = ptr as usize;
        }
        self.parent_set_context(context)
    }

    fn change_state(&self, transition: gst::StateChange) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::NullToReady {
            // Let the application hand over its surface and display (a
            // sync bus handler answering this message, as with
            // GstVideoOverlay's prepare-window-handle).
            if lock(&self.foreign).surface == 0 {
                self.obj().prepare_window_handle();
            }
            match self.connect() {
                Ok(mut p) => {
                    gst::info!(CAT, imp = self, "connected; compositor formats {:?}", p.formats());
                    p.set_paced(lock(&self.settings).commit_timing);
                    self.render_ahead(p.pacing());
                    let gpu_conversion = lock(&self.settings).gpu_conversion;
                    let mut state = lock(&self.state);
                    state.presenter = Some(p);
                    #[cfg(feature = "vulkan")]
                    state.gpu.reset(gpu_conversion);
                    #[cfg(not(feature = "vulkan"))]
                    let _ = gpu_conversion;
                }
                Err(e) => {
                    gst::element_imp_error!(self, gst::ResourceError::OpenWrite, ["{}", Report(&e)]);
                    return Err(gst::StateChangeError);
                }
            }
            lock(&self.state).counters = Counters::default();
            *lock(&self.pump_failure) = None;
            match pump::Pump::start(&self.obj()) {
                Ok(p) => *lock(&self.pump) = Some(p),
                Err(e) => {
                    gst::element_imp_error!(self, gst::CoreError::Thread, ["Cannot start the sink's thread: {}", e]);
                    lock(&self.state).presenter = None;
                    return Err(gst::StateChangeError);
                }
            }
        }
        let result = self.parent_change_state(transition);
        if matches!(
            transition,
            gst::StateChange::PausedToReady | gst::StateChange::ReadyToNull
        ) {
            lock(&self.state).last = None;
            lock(&self.state).held = None;
            lock(&self.state).tag_orientation = Orientation::Identity;
            lock(&self.state).timing_errors.clear();
            self.cache.clear();
        }
        if transition == gst::StateChange::ReadyToNull {
            // Before the presenter goes (the pump uses it).
            let pump = lock(&self.pump).take();
            if let Some(p) = pump {
                p.stop(&self.held_ready);
            }
            *lock(&self.pump_failure) = None;
            self.render_ahead(crate::wayland::Pacing::FrameCallbacks);
            let mut state = lock(&self.state);
            state.stream = None;
            state.presenter = None;
            // The outputs go with the presenter that showed them.
            #[cfg(feature = "vulkan")]
            state.gpu.reset(false);
        }
        result
    }
}

impl BaseSinkImpl for WlDmaBufSink {
    fn caps(&self, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        let caps = lock(&self.state)
            .presenter
            .as_ref()
            .map(|p| caps_for_formats(p.formats()))
            .unwrap_or_else(template_caps);
        Some(match filter {
            Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let format = dcaps::parse_caps(caps).map_err(|e| gst::loggable_error!(CAT, "{}", Report(&e)))?;
        // Any caps style (DMA_DRM included).
        let info = dcaps::video_info(caps).map_err(|e| gst::loggable_error!(CAT, "{}", Report(&e)))?;
        let colorimetry = match colorimetry_from_caps(caps, &info) {
            Ok(c) => c,
            Err(e) => {
                // Played as every GStreamer element reads it, and said.
                let c = dcaps::colorimetry_of(&info);
                gst::element_imp_warning!(self, gst::StreamError::Format, ["{}; shown as {:?}", Report(&e), c]);
                c
            }
        };
        gst::info!(CAT, imp = self, "stream {:?}, {:?}", format, colorimetry);
        lock(&self.state).stream = Some(Stream {
            format,
            info,
            colorimetry,
        });
        // The pixel aspect ratio may have changed.
        self.apply_view();
        Ok(())
    }

    fn propose_allocation(&self, query: &mut gst::query::Allocation) -> Result<(), gst::LoggableError> {
        let mut state = lock(&self.state);
        let guard = &mut state.allocator;
        if guard.is_none() {
            *guard = Some(DmaBufPoolAllocator::new().map_err(|e| gst::loggable_error!(CAT, "{}", Report(&e)))?);
        }
        // Overlays are shown above the video, never blended into it.
        query.add_allocation_meta::<gst_video::VideoOverlayCompositionMeta>(None);
        if let Some(allocator) = guard.as_ref()
            && propose_allocation(query, allocator)
        {
            return Ok(());
        }
        self.parent_propose_allocation(query)
    }

    fn event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::FlushStart(_) => {
                // Before basesink's unlock(): ends a wait for a frame
                // callback at once, so the state's lock is free.
                self.flushing.store(true, Ordering::SeqCst);
                lock(&self.state).held = None;
            }
            gst::EventView::StreamStart(_) => {
                // A new stream: the old one's orientation tag ends.
                lock(&self.state).tag_orientation = Orientation::Identity;
                self.apply_view();
            }
            gst::EventView::Tag(tag) => self.take_tags(tag.tag()),
            _ => {}
        }
        if let gst::EventView::Eos(_) = event.view() {
            self.show_held();
            self.wait_feedback();
            let stats = self.stats_structure();
            gst::info!(CAT, imp = self, "{}", stats);
            let _ = self
                .obj()
                .post_message(gst::message::Element::builder(stats).src(&*self.obj()).build());
        }
        self.parent_event(event)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.store(false, Ordering::SeqCst);
        Ok(())
    }
}

impl VideoSinkImpl for WlDmaBufSink {
    fn show_frame(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.show(buffer).map(|()| gst::FlowSuccess::Ok)
    }
}
