//! [`Presenter`]: shows `DmaBuf`s on one Wayland surface: linux-dmabuf
//! `wl_buffer`s where the compositor takes them ([`linux_dmabuf`](super::linux_dmabuf)),
//! cached per source ([`buffers`](super::buffers)), `wl_shm` where not
//! ([`shm`](super::shm): the frame's own memfd as the pool, else a counted
//! copy, else a counted conversion into XRGB8888), in our window or a
//! subsurface of an application's ([`window`](super::window)).

use std::any::Any;
use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use drm_fourcc::{DrmFourcc, DrmModifier};
use wayland_client::backend::ObjectId;
use wayland_client::protocol::{
    wl_buffer::WlBuffer, wl_compositor::WlCompositor, wl_shm::WlShm, wl_surface::WlSurface,
};
use wayland_client::{Connection, EventQueue, Proxy, QueueHandle};
use wayland_protocols::wp::color_management::v1::client::wp_color_manager_v1::WpColorManagerV1;
use wayland_protocols::wp::color_representation::v1::client::wp_color_representation_manager_v1::WpColorRepresentationManagerV1;
use wayland_protocols::wp::linux_dmabuf::zv1::client::{
    zwp_linux_dmabuf_feedback_v1::ZwpLinuxDmabufFeedbackV1, zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1,
};
use wayland_protocols::wp::viewporter::client::wp_viewporter::WpViewporter;

use super::buffers::CacheEntry;
use super::colour::{ColourRep, Plan};
use super::colour_management::ColourManagement;
use super::error::WaylandError;
use super::formats::FormatSet;
use super::globals::{self, CONNECT_TIMEOUT, Globals, ROUNDTRIP_TIMEOUT};
use super::linux_dmabuf::{ImportKind, MAX_DMABUF_VERSION, request_feedback};
use super::queue::{self, State, lost};
use super::shm::ShmBuffer;
use super::sync::{DrmSyncobj, Explicit, ExplicitV1, SyncMode};
use super::window::{Target, Window, fit};
use crate::colour::Colorimetry;
use crate::convert;
use crate::dmabuf::{BufferId, DmaBuf, ModifierName};
use crate::fence::Fence;
use wayland_protocols::wp::linux_drm_syncobj::v1::client::wp_linux_drm_syncobj_manager_v1::WpLinuxDrmSyncobjManagerV1;
use wayland_protocols::wp::linux_explicit_synchronization::zv1::client::zwp_linux_explicit_synchronization_v1::ZwpLinuxExplicitSynchronizationV1;

/// `DMABUF_INTEROP_SYNC=implicit` keeps a presenter off explicit sync even
/// where the compositor offers it (comparisons, debugging);
/// `DMABUF_INTEROP_SYNC=explicit-sync-v1` prefers
/// `zwp_linux_explicit_synchronization_v1` over linux-drm-syncobj-v1.
pub const SYNC_ENV: &str = "DMABUF_INTEROP_SYNC";

/// How long the first commit of a kind of linux-dmabuf buffer may wait for
/// its frame callback before the kind counts as never shown (generous: a
/// compositor on an emulated CPU takes a while for its first frame, and a
/// wrong demotion only costs the `wl_shm` way).
pub const NEVER_SHOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits on the CPU for a frame's acquire fence where no explicit-sync
/// commit carries it (implicit sync, or a `wl_shm` copy); a fence that has
/// not signalled after 10 s is an error, not a hang.
fn wait_ready(acquire: &Fence) -> Result<(), WaylandError> {
    const LIMIT: Duration = Duration::from_secs(10);
    if acquire.wait(LIMIT)? {
        Ok(())
    } else {
        Err(WaylandError::Timeout("the frame's acquire fence", LIMIT))
    }
}

/// Counters a player shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresentStats {
    /// Frames committed.
    pub presented: u64,
    /// Of those, shown without a copy: linux-dmabuf `wl_buffer`s, and
    /// `wl_shm` buffers over the frame's own memory (`shm_zero_copy`).
    pub zero_copy: u64,
    /// Of the zero-copy frames, those sent as `wl_shm` buffers over the
    /// frame's own memory (a memfd or udmabuf the compositor maps), where
    /// linux-dmabuf is missing or refused the kind.
    pub shm_zero_copy: u64,
    /// Of those, copied into `wl_shm`.
    pub copies: u64,
    /// Of the copies, those converted on the CPU into XRGB8888 (the
    /// compositor takes the format neither as a dma-buf nor by `wl_shm`).
    pub converted: u64,
    /// Kinds of buffer the compositor accepted (`created`) but never
    /// showed (no frame callback within [`NEVER_SHOWN_TIMEOUT`]): demoted
    /// like refusals (and counted in `import_refusals` too).
    pub never_shown: u64,
    /// Answers to import checks that came after their wait had given up
    /// (the late `wl_buffer` destroyed, the answer kept for its kind).
    pub late_import_answers: u64,
    /// `wl_buffer`s created for dma-bufs (cache misses).
    pub wl_buffers_created: u64,
    /// Frames that reused a cached `wl_buffer`.
    pub cache_hits: u64,
    /// Frames whose buffer the compositor had not released yet when it
    /// came back: a producer wrote into a buffer still on screen. Must stay 0.
    pub reused_before_release: u64,
    /// `wl_buffer.release` events received.
    pub releases: u64,
    /// Kinds of buffer (format, modifier, layout, fd kind) the compositor
    /// refused with `failed`; frames of those kinds go the `wl_shm` way.
    pub import_refusals: u64,
    /// How frames are synchronised with the compositor.
    pub sync: SyncMode,
    /// Commits that carried explicit sync (acquire and release points, or
    /// an acquire fence and a release object).
    pub explicit_sync_commits: u64,
    /// Buffers handed back by explicit sync: their release point
    /// signalled, or their release event came and its fence signalled, or
    /// they were taken back with that fence (`Presenter::take_release`).
    pub release_points_signalled: u64,
    /// YUV frames committed with their matrix and range told to the
    /// compositor (`wp_color_representation_v1`).
    pub colour_told: u64,
    /// YUV frames converted to RGB because the compositor could not be
    /// told their matrix and range and would misread them (also counted
    /// in `converted`; see [`ColourCorrection`](super::ColourCorrection)).
    pub colour_converted: u64,
    /// YUV frames sent neither told nor converted whose matrix and range
    /// differ from what the compositor is assumed to read (no conversion
    /// path, or `ColourCorrection::Never`): shown with wrong colours.
    pub colour_uncorrected: u64,
    /// Frames committed with a `wp_color_management_v1` image description
    /// (the stream's transfer function and primaries, HDR10 metadata).
    pub colour_described: u64,
    /// Image descriptions the compositor answered `failed` for.
    pub colour_description_failures: u64,
}

/// How a frame went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented {
    /// The `wl_buffer` came from the cache.
    pub cache_hit: bool,
    /// The path the frame took.
    pub via: Via,
}

/// The paths a frame can take to the compositor, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A linux-dmabuf `wl_buffer` (zero copy).
    LinuxDmabuf,
    /// A `wl_shm` buffer over the frame's own memory (zero copy).
    ShmZeroCopy,
    /// Copied into a `wl_shm` buffer of the same format.
    ShmCopy,
    /// Converted on the CPU into an XRGB8888 `wl_shm` buffer.
    Converted,
}

impl Presented {
    fn new(via: Via, cache_hit: bool) -> Self {
        Self { cache_hit, via }
    }

    /// No copy: [`Via::LinuxDmabuf`] or [`Via::ShmZeroCopy`].
    pub fn zero_copy(&self) -> bool {
        matches!(self.via, Via::LinuxDmabuf | Via::ShmZeroCopy)
    }
}

/// Shows `DmaBuf`s on one Wayland surface. See the module docs.
pub struct Presenter {
    conn: Connection,
    queue: EventQueue<State>,
    pub(super) qh: QueueHandle<State>,
    pub(super) state: State,
    // wl_compositor has no destructor request; its proxy goes with us.
    _compositor: WlCompositor,
    pub(super) shm: Option<WlShm>,
    pub(super) dmabuf: Option<ZwpLinuxDmabufV1>,
    feedbacks: Vec<ZwpLinuxDmabufFeedbackV1>,
    viewporter: Option<WpViewporter>,
    pub(super) window: Window,
    pub(super) cache: HashMap<BufferId, CacheEntry>,
    /// Kinds of buffer tried with `create`: accepted (`created`) or
    /// refused (`failed`). Only accepted kinds use `create_immed`, whose
    /// failure is fatal to the connection (the protocol's
    /// `invalid_wl_buffer`).
    pub(super) import_kinds: HashMap<ImportKind, bool>,
    pub(super) shm_buffers: Vec<ShmBuffer>,
    /// The first commit of a linux-dmabuf kind not yet seen shown, and
    /// when (see `check_shown`).
    unconfirmed: Option<(ImportKind, Instant)>,
    /// Kinds whose commit was shown (a frame callback came).
    confirmed_kinds: std::collections::HashSet<ImportKind>,
    /// Files the compositor could not map as `wl_shm` pools (see
    /// `shm_wl_buffer_for`).
    pub(super) shm_unmappable: std::collections::HashSet<(u64, u64)>,
    pub(super) stats: PresentStats,
    /// The application's render rectangle size (embedding only).
    render_size: Option<(u32, u32)>,
    /// Explicit sync, where offered and usable.
    explicit: Option<Explicit>,
    /// Why explicit sync is not used although the compositor offers it.
    sync_fallback: Option<String>,
    /// `wp_color_representation_v1` and the colour-correction rule.
    pub(super) colour: ColourRep,
    /// `wp_color_management_v1` image descriptions.
    pub(super) colour_management: ColourManagement,
}

impl std::fmt::Debug for Presenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presenter")
            .field("stats", &self.stats)
            .field("formats", &self.state.formats)
            .finish_non_exhaustive()
    }
}

impl Presenter {
    /// Connects through `WAYLAND_DISPLAY` / `WAYLAND_SOCKET` and opens a
    /// window.
    pub fn connect(target: Target) -> Result<Self, WaylandError> {
        match target {
            Target::Foreign { display, surface } => {
                // SAFETY: the caller of `Target::Foreign` promises a live
                // wl_display and a wl_surface of it that outlive us.
                unsafe { Self::with_foreign(display, surface) }
            }
            toplevel => {
                let conn = Connection::connect_to_env().map_err(|e| WaylandError::Connect(e.to_string()))?;
                Self::with_connection(conn, toplevel)
            }
        }
    }

    /// Connects to the compositor listening on `socket` (a path) and opens
    /// a window.
    pub fn connect_to(socket: &Path, target: Target) -> Result<Self, WaylandError> {
        let stream =
            UnixStream::connect(socket).map_err(|e| WaylandError::Connect(format!("{}: {e}", socket.display())))?;
        let conn = Connection::from_socket(stream).map_err(|e| WaylandError::Connect(e.to_string()))?;
        Self::with_connection(conn, target)
    }

    /// Presents into an application's surface on the application's own
    /// connection (we use a private event queue on it): frames go to a
    /// subsurface of ours, so the application's surface, its buffer and its
    /// viewport stay untouched; everything we create on the connection is
    /// destroyed when the presenter is dropped.
    ///
    /// # Safety
    /// `display` must be a live `wl_display*` and `surface` a live
    /// `wl_surface*` created on it; both must outlive the presenter.
    pub unsafe fn with_foreign(
        display: *mut std::ffi::c_void,
        surface: *mut std::ffi::c_void,
    ) -> Result<Self, WaylandError> {
        if display.is_null() || surface.is_null() {
            return Err(WaylandError::Connect("null wl_display or wl_surface handle".into()));
        }
        // SAFETY: the caller guarantees a live wl_display.
        let backend = unsafe { wayland_backend::client::Backend::from_foreign_display(display.cast()) };
        let conn = Connection::from_backend(backend);
        // SAFETY: the caller guarantees a live wl_surface on that display.
        let id = unsafe { ObjectId::from_ptr(WlSurface::interface(), surface.cast()) }
            .map_err(|_| WaylandError::Connect("the surface handle is not a wl_surface".into()))?;
        let surface = WlSurface::from_id(&conn, id).map_err(|_| WaylandError::Connect("invalid wl_surface".into()))?;
        Self::build(conn, Err(surface))
    }

    /// Uses an existing connection and opens a window on it.
    pub fn with_connection(conn: Connection, target: Target) -> Result<Self, WaylandError> {
        match target {
            Target::Toplevel { title, app_id } => Self::build(conn, Ok((title, app_id))),
            Target::Foreign { .. } => Err(WaylandError::Connect(
                "a foreign surface comes with its own connection (Presenter::with_foreign)".into(),
            )),
        }
    }

    /// `window`: a toplevel's (title, app id), or the application's
    /// surface to embed into.
    fn build(conn: Connection, window: Result<(String, String), WlSurface>) -> Result<Self, WaylandError> {
        let mut queue = conn.new_event_queue();
        let qh = queue.handle();
        let mut state = State::default();
        let globals = Globals::new(&conn, &mut queue, &mut state, CONNECT_TIMEOUT)?;
        let compositor: WlCompositor = globals
            .bind(&qh, 1..=5, ())
            .ok_or(WaylandError::MissingGlobal("wl_compositor"))?;
        let shm: Option<WlShm> = globals.bind(&qh, 1..=1, ());
        let dmabuf: Option<ZwpLinuxDmabufV1> = globals.bind(&qh, 3..=MAX_DMABUF_VERSION, ());
        let viewporter: Option<WpViewporter> = globals.bind(&qh, 1..=1, ());
        let colour_manager: Option<WpColorRepresentationManagerV1> = globals.bind(&qh, 1..=1, ());
        state.colour.representation = colour_manager.is_some();
        let colour_management: Option<WpColorManagerV1> = globals.bind(&qh, 1..=2, ());
        state.colour_management.offered = colour_management.is_some();
        let wanted = std::env::var(SYNC_ENV).unwrap_or_default();
        let explicit_ok = dmabuf.is_some() && wanted != "implicit";
        let syncobj_manager: Option<WpLinuxDrmSyncobjManagerV1> = (explicit_ok && wanted != "explicit-sync-v1")
            .then(|| globals.bind(&qh, 1..=1, ()))
            .flatten();
        let explicit_v1: Option<ZwpLinuxExplicitSynchronizationV1> = (explicit_ok && syncobj_manager.is_none())
            .then(|| globals.bind(&qh, 1..=2, ()))
            .flatten();
        state.formats.dmabuf_version = dmabuf.as_ref().map_or(0, |d| d.version());
        let window = match window {
            Ok((title, app_id)) => Window::toplevel(&globals, &qh, &compositor, viewporter.as_ref(), title, app_id)?,
            Err(parent) => {
                // No xdg configure to wait for: the application owns the role.
                state.configured = true;
                Window::embedded(&globals, &qh, &compositor, viewporter.as_ref(), &parent)?
            }
        };
        let feedbacks = match &dmabuf {
            Some(d) => request_feedback(d, &window.surface, &qh, &mut state),
            None => Vec::new(),
        };
        let mut this = Self {
            conn,
            queue,
            qh,
            state,
            _compositor: compositor,
            shm,
            dmabuf,
            feedbacks,
            viewporter,
            window,
            cache: HashMap::new(),
            import_kinds: HashMap::new(),
            shm_buffers: Vec::new(),
            shm_unmappable: std::collections::HashSet::new(),
            unconfirmed: None,
            confirmed_kinds: std::collections::HashSet::new(),
            stats: PresentStats::default(),
            render_size: None,
            explicit: None,
            sync_fallback: None,
            colour: ColourRep::new(colour_manager),
            colour_management: ColourManagement::new(colour_management),
        };
        // Globals' initial events (formats, feedback), then the first
        // configure, each within CONNECT_TIMEOUT.
        this.roundtrip_within(CONNECT_TIMEOUT, "the globals' initial events")?;
        this.roundtrip_within(CONNECT_TIMEOUT, "the linux-dmabuf feedback")?;
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        while !this.state.configured {
            if Instant::now() > deadline {
                return Err(WaylandError::Timeout(
                    "the first xdg_surface.configure",
                    CONNECT_TIMEOUT,
                ));
            }
            this.dispatch_timeout(Duration::from_millis(50))?;
        }
        if let Some(e) = this.state.feedback_error.take() {
            return Err(e.into());
        }
        this.state.formats_changed = false;
        if let Some(manager) = syncobj_manager {
            // The timeline lives on the compositor's main device where the
            // feedback named one (known after the roundtrips above).
            match DrmSyncobj::new(manager, this.state.formats.main_device, &this.qh) {
                Ok(s) => this.explicit = Some(Explicit::Syncobj(s)),
                Err((manager, e)) => {
                    manager.destroy();
                    this.sync_fallback = Some(e.to_string());
                }
            }
        }
        if let Some(global) = explicit_v1 {
            // Only where the compositor names a render device: Weston's
            // headless backend offers the protocol "to enable testing"
            // whatever its renderer can do, and without native fence sync
            // answers the first get_release with a fatal error ("Failed to
            // create release fence"). A compositor that makes release
            // fences has a device, and says so in its linux-dmabuf feedback.
            if this.state.formats.main_device.is_some() {
                this.explicit = Some(Explicit::V1(ExplicitV1::new(global)));
            } else {
                global.destroy();
                this.sync_fallback = Some(
                    "zwp_linux_explicit_synchronization_v1 is offered, but the compositor names no render \
                     device (linux-dmabuf feedback), so it may not make release fences"
                        .into(),
                );
            }
        }
        Ok(this)
    }

    /// Sends what is queued and waits until the compositor has processed
    /// it (and dispatches the events that came meanwhile), at most
    /// [`ROUNDTRIP_TIMEOUT`]: a compositor that stopped answering is a
    /// [`WaylandError::Timeout`].
    pub fn roundtrip(&mut self) -> Result<(), WaylandError> {
        self.roundtrip_within(ROUNDTRIP_TIMEOUT, "wl_display.sync (a roundtrip)")
    }

    fn roundtrip_within(&mut self, timeout: Duration, what: &'static str) -> Result<(), WaylandError> {
        globals::roundtrip_within(&self.conn, &mut self.queue, &mut self.state, timeout, what)?;
        self.state.poll_release_points()?;
        if let Some(e) = self.state.feedback_error.take() {
            return Err(e.into());
        }
        self.apply_late_answers();
        self.check_shown();
        Ok(())
    }

    /// Dispatches what has arrived, waiting up to `timeout` for something.
    pub fn dispatch_timeout(&mut self, timeout: Duration) -> Result<(), WaylandError> {
        queue::dispatch(&mut self.queue, &mut self.state, timeout)?;
        self.apply_late_answers();
        self.check_shown();
        Ok(())
    }

    /// Follows the first commit of each kind of linux-dmabuf buffer: its
    /// frame callback confirms the kind; a kind whose commit is still not
    /// shown after [`NEVER_SHOWN_TIMEOUT`] (the compositor answered
    /// `created` but cannot show it, as Weston 16 does with some NV12
    /// imports in a VM) is demoted like a refusal: counted
    /// (`never_shown`, `import_refusals`), its `wl_buffer`s retired, its
    /// frames sent the `wl_shm` way from then on, and the wait for that
    /// frame callback given up, so playback goes on.
    fn check_shown(&mut self) {
        let Some((kind, since)) = &self.unconfirmed else { return };
        if self.state.frame_callback.is_none() {
            self.confirmed_kinds.insert(kind.clone());
            self.unconfirmed = None;
        } else if since.elapsed() >= NEVER_SHOWN_TIMEOUT {
            let kind = kind.clone();
            self.unconfirmed = None;
            self.import_kinds.insert(kind.clone(), false);
            self.stats.import_refusals += 1;
            self.stats.never_shown += 1;
            let stale: Vec<BufferId> = self
                .cache
                .iter()
                .filter(|(_, e)| !e.shm && e.kind == kind)
                .map(|(id, _)| id.clone())
                .collect();
            for id in stale {
                if let Some(e) = self.cache.remove(&id) {
                    e.retire(&mut self.state);
                }
            }
            self.state.frame_callback = None;
        }
    }

    /// What the compositor accepts. Re-evaluated on every feedback `done`.
    pub fn formats(&self) -> &FormatSet {
        &self.state.formats
    }

    /// True once after the preferred format set changed (feedback `done`
    /// with different tranches): renegotiate, re-pick modifiers.
    pub fn take_formats_changed(&mut self) -> bool {
        std::mem::take(&mut self.state.formats_changed)
    }

    /// Counters so far.
    pub fn stats(&self) -> PresentStats {
        PresentStats {
            releases: self.state.releases,
            sync: self.explicit.as_ref().map_or(SyncMode::Implicit, Explicit::mode),
            release_points_signalled: self.state.release_points_signalled,
            ..self.stats
        }
    }

    /// The surface frames go to: ours (a toplevel, or a subsurface of the
    /// application's surface when embedding).
    pub fn surface(&self) -> &WlSurface {
        &self.window.surface
    }

    /// The connection (for users that add their own objects).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The size the window manager asked for (None: ours to choose).
    pub fn configured_size(&self) -> Option<(u32, u32)> {
        self.state.toplevel_size
    }

    /// Keys pressed in our window since the last call (at most the last 64),
    /// as Linux evdev codes (layout-independent: `KEY_Q` is 16 whatever the
    /// keymap; see [`keys`](super::keys)). Always empty for a foreign surface (the
    /// application owns input) and on seats without a keyboard.
    pub fn take_keys(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.state.keys)
    }

    /// Whether the user closed the window.
    pub fn is_closed(&self) -> bool {
        self.state.closed
    }

    /// Where video goes inside an application's surface (GstVideoOverlay's
    /// render rectangle): the subsurface is placed at (x, y) (the
    /// application's surface is committed once to apply it) and the next
    /// frames are scaled to fit `width`x`height`, keeping their aspect
    /// ratio. `None` (or a size of 0) goes back to the buffer's own size at
    /// (0, 0). Ignored for our own toplevel, which follows the compositor's
    /// configure.
    pub fn set_render_rectangle(&mut self, rect: Option<(i32, i32, i32, i32)>) {
        let rect = rect.filter(|&(_, _, w, h)| w > 0 && h > 0);
        let (x, y) = rect.map_or((0, 0), |(x, y, _, _)| (x, y));
        self.window.set_position(x, y);
        self.render_size = rect.map(|(_, _, w, h)| (w as u32, h as u32));
    }

    /// Commits the surface again (GstVideoOverlay's `expose`): the
    /// compositor shows the buffer it holds once more.
    pub fn expose(&mut self) -> Result<(), WaylandError> {
        self.window.surface.commit();
        self.conn.flush().map_err(lost)
    }

    /// Whether a frame callback is outstanding (the compositor has not
    /// shown the last commit yet).
    pub fn frame_pending(&self) -> bool {
        self.state.frame_callback.is_some()
    }

    /// Dispatches until the latest commit's frame callback, or `timeout`;
    /// false on timeout, and when the commit's kind of buffer turned out
    /// never to be shown (see [`PresentStats::never_shown`]: the wait ends
    /// there, the frame was not shown).
    pub fn wait_frame(&mut self, timeout: Duration) -> Result<bool, WaylandError> {
        let deadline = Instant::now() + timeout;
        let never_shown = self.stats.never_shown;
        while self.state.frame_callback.is_some() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            self.dispatch_timeout(left.min(Duration::from_millis(20)))?;
            if self.state.closed {
                return Err(WaylandError::Closed);
            }
        }
        Ok(self.stats.never_shown == never_shown)
    }

    /// Why explicit sync is not used although the compositor offers a
    /// protocol for it (no DRM node with timeline syncobjs for
    /// linux-drm-syncobj-v1; no render device named for
    /// linux-explicit-synchronization-v1); `None` when it is used or not
    /// offered.
    pub fn sync_fallback(&self) -> Option<&str> {
        self.sync_fallback.as_deref()
    }

    /// Shows `buf`: linux-dmabuf when the compositor advertises its format
    /// and modifier and accepts the kind, else `wl_shm` ([`Via`]: the
    /// buffer's own memory as the pool where it can be, else a counted copy
    /// or conversion). `keepalive` (e.g. the
    /// GStreamer buffer, which keeps a pool from reusing the memory) is
    /// dropped when the compositor releases the `wl_buffer` (under
    /// explicit sync: when its release point signals). The buffer is ready
    /// when its own implicit fences say so (see [`present_with_fence`](Self::present_with_fence)).
    pub fn present(&mut self, buf: &DmaBuf, keepalive: Box<dyn Any + Send>) -> Result<Presented, WaylandError> {
        self.present_with_fence(buf, keepalive, Fence::Implicit)
    }

    /// [`present`](Self::present) with the point at which `buf`'s contents
    /// are ready. Under explicit sync it becomes the commit's acquire point
    /// (the compositor does not show the frame before it signals);
    /// [`Fence::Implicit`] means the dma-buf's own fences, exported as a
    /// sync_file where the kernel can. Without explicit sync, or for the
    /// `wl_shm` copy, the fence is waited for on the CPU first, so no path
    /// shows a frame early.
    pub fn present_with_fence(
        &mut self,
        buf: &DmaBuf,
        keepalive: Box<dyn Any + Send>,
        acquire: Fence,
    ) -> Result<Presented, WaylandError> {
        self.begin_frame()?;
        let dmabuf_ok = self.dmabuf.is_some() && self.state.formats.supports_dmabuf(buf.fourcc(), buf.modifier());
        let linear = buf.modifier() == DrmModifier::Linear;
        let shm_ok = linear && self.state.formats.supports_shm(buf.fourcc());
        // Every LINEAR frame has a path while wl_shm exists: the CPU
        // conversion into XRGB8888, which every wl_shm offers.
        let fallback_ok = linear && self.shm.is_some() && convert::can_convert(buf.fourcc());
        let plan = self.colour_plan(buf.fourcc(), buf.colorimetry(), fallback_ok);
        self.prepare_description(&buf.colorimetry())?;
        let imported = if dmabuf_ok && plan != Plan::Convert {
            match self.wl_buffer_for(buf) {
                Ok(found) => Some(found),
                // Refused by the compositor: the wl_shm paths.
                Err(WaylandError::ImportFailed { .. }) if fallback_ok => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let (wl_buffer, presented) = if let Some((b, hit)) = imported {
            if self.explicit.is_some() {
                self.set_sync_points(buf, acquire)?;
            } else {
                wait_ready(&acquire)?;
            }
            (b, Presented::new(Via::LinuxDmabuf, hit))
        } else if !fallback_ok {
            if self.dmabuf.is_some() {
                // Say what linux-dmabuf offers instead.
                self.check_advertised(buf)?;
            }
            return Err(WaylandError::Unsupported(buf.fourcc(), ModifierName(buf.modifier())));
        } else {
            // The compositor reads wl_shm memory on the CPU, unfenced.
            wait_ready(&acquire)?;
            if plan == Plan::Convert {
                (self.convert_dmabuf_to_shm(buf)?, Presented::new(Via::Converted, false))
            } else if let Some((b, hit)) = self.shm_wl_buffer_for(buf)? {
                (b, Presented::new(Via::ShmZeroCopy, hit))
            } else if shm_ok {
                (self.copy_dmabuf_to_shm(buf)?, Presented::new(Via::ShmCopy, false))
            } else {
                (self.convert_dmabuf_to_shm(buf)?, Presented::new(Via::Converted, false))
            }
        };
        self.apply_colour(buf.fourcc(), plan, presented.via);
        self.commit_frame(&wl_buffer, presented, buf.width(), buf.height(), keepalive)?;
        if presented.via == Via::LinuxDmabuf && self.unconfirmed.is_none() {
            let kind = ImportKind::of(buf);
            if !self.confirmed_kinds.contains(&kind) {
                self.unconfirmed = Some((kind, Instant::now()));
            }
        }
        Ok(presented)
    }

    /// Acquire and release points for the commit that attaches `buf`'s
    /// (cached) `wl_buffer`; the buffer is then held until its release
    /// point signals.
    fn set_sync_points(&mut self, buf: &DmaBuf, acquire: Fence) -> Result<(), WaylandError> {
        let (Some(explicit), Some(entry)) = (self.explicit.as_mut(), self.cache.get_mut(&buf.id())) else {
            return Ok(());
        };
        let id = entry.buffer.id();
        match explicit {
            Explicit::Syncobj(sync) => {
                let release = match &mut entry.release {
                    Some(r) => r,
                    none => none.insert(sync.release_timeline(&self.qh)?),
                };
                let point = sync.set_points(&self.window.surface, &self.qh, buf, acquire, release)?;
                self.state.fenced.entry(id).or_default().point = Some((release.timeline.clone(), point));
            }
            Explicit::V1(v1) => {
                let existing = self.state.fenced.remove(&id);
                let held = existing.is_some();
                let mut hold = existing.unwrap_or_default();
                let set = v1.set_fences(&self.window.surface, &self.qh, buf, id.clone(), acquire, &mut hold);
                // A failure sends nothing: an earlier commit's hold stays as
                // it was, and no empty hold may free the buffer.
                if set.is_ok() || held {
                    self.state.fenced.insert(id, hold);
                }
                set?;
            }
        }
        self.stats.explicit_sync_commits += 1;
        Ok(())
    }

    /// Takes in what arrived (releases, frame callbacks) before a frame;
    /// refuses when the window was closed.
    fn begin_frame(&mut self) -> Result<(), WaylandError> {
        self.dispatch_timeout(Duration::ZERO)?;
        if self.state.closed {
            return Err(WaylandError::Closed);
        }
        Ok(())
    }

    /// Attaches, damages, scales, asks for a frame callback and commits.
    fn commit_frame(
        &mut self,
        wl_buffer: &WlBuffer,
        presented: Presented,
        width: u32,
        height: u32,
        keepalive: Box<dyn Any + Send>,
    ) -> Result<(), WaylandError> {
        let id = wl_buffer.id();
        if presented.zero_copy() && self.state.busy.contains_key(&id) {
            self.stats.reused_before_release += 1;
        }
        if presented.via != Via::LinuxDmabuf
            && let Some(sync) = &mut self.explicit
        {
            // A wl_shm buffer on a surface with a syncobj object is the
            // protocol's unsupported_buffer error.
            sync.suspend();
        }
        self.state.busy.entry(id).or_default().push(keepalive);
        self.window.surface.attach(Some(wl_buffer), 0, 0);
        if self.window.surface.version() >= 4 {
            self.window.surface.damage_buffer(0, 0, i32::MAX, i32::MAX);
        } else {
            self.window.surface.damage(0, 0, i32::MAX, i32::MAX);
        }
        if let Some(viewport) = &self.window.viewport {
            let area = if self.window.is_embedded() {
                self.render_size
            } else {
                self.state.toplevel_size
            };
            match area {
                Some((w, h)) => {
                    let (dw, dh) = fit(width, height, w, h);
                    viewport.set_destination(
                        i32::try_from(dw).unwrap_or(i32::MAX),
                        i32::try_from(dh).unwrap_or(i32::MAX),
                    );
                }
                None => viewport.set_destination(-1, -1),
            }
        }
        let callback = self.window.surface.frame(&self.qh, ());
        self.state.frame_callback = Some(callback.id());
        self.window.surface.commit();
        self.conn.flush().map_err(lost)?;
        self.stats.presented += 1;
        match presented.via {
            Via::LinuxDmabuf | Via::ShmZeroCopy => {
                self.stats.zero_copy += 1;
                self.stats.shm_zero_copy += u64::from(presented.via == Via::ShmZeroCopy);
                self.stats.cache_hits += u64::from(presented.cache_hit);
            }
            Via::ShmCopy | Via::Converted => {
                self.stats.copies += 1;
                self.stats.converted += u64::from(presented.via == Via::Converted);
            }
        }
        Ok(())
    }

    /// Shows frame bytes from ordinary memory (e.g. a GStreamer buffer of
    /// system memory) through a counted `wl_shm` copy, converted into
    /// XRGB8888 with `colorimetry` where `wl_shm` lacks the format.
    /// `planes` holds each plane's bytes and stride.
    pub fn present_memory(
        &mut self,
        fourcc: DrmFourcc,
        width: u32,
        height: u32,
        planes: &[(&[u8], usize)],
        colorimetry: Colorimetry,
        keepalive: Box<dyn Any + Send>,
    ) -> Result<Presented, WaylandError> {
        self.begin_frame()?;
        let convertible = self.shm.is_some() && convert::can_convert(fourcc);
        let plan = self.colour_plan(fourcc, colorimetry, convertible);
        self.prepare_description(&colorimetry)?;
        let (b, via) = if self.state.formats.supports_shm(fourcc) && plan != Plan::Convert {
            (self.copy_to_shm(fourcc, width, height, planes)?, Via::ShmCopy)
        } else if convertible {
            (
                self.convert_to_shm(fourcc, width, height, planes, colorimetry)?,
                Via::Converted,
            )
        } else {
            return Err(WaylandError::Unsupported(fourcc, ModifierName(DrmModifier::Linear)));
        };
        let presented = Presented::new(via, false);
        self.apply_colour(fourcc, plan, via);
        self.commit_frame(&b, presented, width, height, keepalive)?;
        Ok(presented)
    }
}

impl Drop for Presenter {
    fn drop(&mut self) {
        // Everything we made on the connection goes, children first (on an
        // application's connection nothing of ours may outlive us). The
        // keep-alives go with the state; the compositor may still read
        // buffers it held, which stay valid through its own references.
        if let Some(sync) = self.explicit.take() {
            sync.destroy();
        }
        for (_, e) in self.cache.drain() {
            if let Some(r) = e.release {
                r.proxy.destroy();
            }
            e.buffer.destroy();
        }
        for (_, b) in self.state.retired.drain() {
            b.destroy();
        }
        for b in self.shm_buffers.drain(..) {
            b.buffer.destroy();
            b.pool.destroy();
        }
        for f in self.feedbacks.drain(..) {
            f.destroy();
        }
        self.colour.destroy();
        self.colour_management.destroy();
        self.window.destroy(&mut self.state);
        if let Some(v) = self.viewporter.take() {
            v.destroy();
        }
        if let Some(d) = self.dmabuf.take() {
            d.destroy();
        }
        if let Some(s) = self.shm.take()
            && s.version() >= 2
        {
            s.release();
        }
        // wl_compositor and wl_registry have no destructor request.
        let _ = self.conn.flush();
    }
}
