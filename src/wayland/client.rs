//! [`Presenter`]: shows `DmaBuf`s on a Wayland surface through linux-dmabuf
//! `wl_buffer`s (cached per source identity, handed back only after
//! `wl_buffer.release`), with a counted `wl_shm` copy as the fallback.

use std::any::Any;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use drm_fourcc::{DrmFourcc, DrmModifier};
use wayland_client::backend::ObjectId;
use wayland_client::globals::{GlobalListContents, registry_queue_init};
use wayland_client::protocol::{
    wl_buffer::{self, WlBuffer},
    wl_callback::{self, WlCallback},
    wl_compositor::WlCompositor,
    wl_keyboard::{self, WlKeyboard},
    wl_registry::WlRegistry,
    wl_seat::{self, WlSeat},
    wl_shm::{self, WlShm},
    wl_shm_pool::WlShmPool,
    wl_surface::WlSurface,
};
use wayland_client::{Connection, Dispatch, EventQueue, Proxy, QueueHandle, WEnum, delegate_noop, event_created_child};
use wayland_protocols::wp::linux_dmabuf::zv1::client::{
    zwp_linux_buffer_params_v1::{self, ZwpLinuxBufferParamsV1},
    zwp_linux_dmabuf_feedback_v1::{self, ZwpLinuxDmabufFeedbackV1},
    zwp_linux_dmabuf_v1::{self, ZwpLinuxDmabufV1},
};
use wayland_protocols::wp::viewporter::client::{wp_viewport::WpViewport, wp_viewporter::WpViewporter};
use wayland_protocols::xdg::shell::client::{
    xdg_surface::{self, XdgSurface},
    xdg_toplevel::{self, XdgToplevel},
    xdg_wm_base::{self, XdgWmBase},
};

use super::formats::{FormatSet, FormatTableError, Tranche, fourcc_to_shm, parse_format_table, shm_to_fourcc};
use crate::dmabuf::{BufferId, DmaBuf, ModifierName, WeakDmaBuf};
use crate::mapping::MapAccess;

/// Highest `zwp_linux_dmabuf_v1` version we bind.
pub const MAX_DMABUF_VERSION: u32 = 5;

/// Most key presses kept until [`Presenter::take_keys`] (the oldest go).
const MAX_PENDING_KEYS: usize = 64;

/// Most `wl_shm` buffers the fallback keeps (each a frame in flight).
const MAX_SHM_BUFFERS: usize = 4;

/// How long the first import of a new kind of buffer waits for the
/// compositor's `created`/`failed` (one roundtrip; a GPU import on a busy
/// compositor can take a while).
const IMPORT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What decides whether a compositor can import a dma-buf: format,
/// modifier, size, each plane's offset and stride, and whether each plane
/// is a kernel dma-buf (a compositor that imports through a GPU takes
/// udmabuf or GBM buffers but not a memfd, which a CPU-only compositor
/// maps fine).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ImportKind {
    fourcc: DrmFourcc,
    modifier: u64,
    size: (u32, u32),
    planes: Vec<(u32, u32, bool)>,
}

impl ImportKind {
    fn of(buf: &DmaBuf) -> Self {
        Self {
            fourcc: buf.fourcc(),
            modifier: buf.modifier().into(),
            size: (buf.width(), buf.height()),
            planes: buf
                .planes()
                .iter()
                .map(|p| (p.offset(), p.stride(), p.is_kernel_dmabuf()))
                .collect(),
        }
    }
}

/// Why something could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum WaylandError {
    /// No connection to the compositor.
    #[error("cannot connect to the Wayland compositor: {0}")]
    Connect(String),
    /// A global the operation needs is not offered.
    #[error("the compositor does not offer {0}")]
    MissingGlobal(&'static str),
    /// The compositor did not advertise (fourcc, modifier) for linux-dmabuf;
    /// nothing was sent.
    #[error(
        "{fourcc:?} with modifier {modifier} is not advertised by the compositor's linux-dmabuf (v{version}); it offers: {offered}"
    )]
    NotAdvertised {
        /// The buffer's format.
        fourcc: DrmFourcc,
        /// The buffer's modifier.
        modifier: ModifierName,
        /// Bound linux-dmabuf version (0: not offered).
        version: u32,
        /// What it offers for that fourcc.
        offered: String,
    },
    /// Neither linux-dmabuf nor `wl_shm` can show this format.
    #[error("neither linux-dmabuf nor wl_shm of this compositor takes {0:?} (modifier {1})")]
    Unsupported(DrmFourcc, ModifierName),
    /// A plane's file is (now) smaller than the plane needs; nothing sent.
    #[error("plane {plane} needs {needed} bytes but its fd now has {fd_size} (truncated after the DmaBuf was built?)")]
    FdTooSmall {
        /// Plane index.
        plane: usize,
        /// End of the plane.
        needed: u64,
        /// Current size of the file.
        fd_size: u64,
    },
    /// The compositor refused the buffer (`zwp_linux_buffer_params_v1.failed`).
    #[error("the compositor could not import the {fourcc:?} {width}x{height} dma-buf (linux-dmabuf `failed`)")]
    ImportFailed {
        /// Format.
        fourcc: DrmFourcc,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// The feedback's format table was malformed.
    #[error(transparent)]
    FormatTable(#[from] FormatTableError),
    /// The connection broke (compositor gone, protocol error).
    #[error("Wayland connection lost: {0}")]
    Connection(String),
    /// Copying into `wl_shm` failed.
    #[error("wl_shm copy: {0}")]
    Shm(String),
    /// Waited too long.
    #[error("timed out after {1:?} waiting for {0}")]
    Timeout(&'static str, Duration),
    /// The user closed the window.
    #[error("the window was closed")]
    Closed,
}

/// Counters a player shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresentStats {
    /// Frames committed.
    pub presented: u64,
    /// Of those, sent as linux-dmabuf `wl_buffer`s.
    pub zero_copy: u64,
    /// Of those, copied into `wl_shm`.
    pub copies: u64,
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
}

/// How a frame went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented {
    /// linux-dmabuf, no copy.
    pub zero_copy: bool,
    /// The `wl_buffer` came from the cache.
    pub cache_hit: bool,
}

/// Where the frames go.
pub enum Target {
    /// A window of our own (`xdg_toplevel`).
    Toplevel {
        /// Window title.
        title: String,
        /// xdg app id.
        app_id: String,
    },
    /// A `wl_surface` the application made on its own connection
    /// (GstVideoOverlay-style embedding). The application keeps the role
    /// and the window; we attach and commit buffers.
    Foreign {
        /// The application's `wl_display*`.
        display: *mut std::ffi::c_void,
        /// The application's `wl_surface*` on that display.
        surface: *mut std::ffi::c_void,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Toplevel { title, .. } => write!(f, "Toplevel({title:?})"),
            Target::Foreign { display, surface } => write!(f, "Foreign({display:?}, {surface:?})"),
        }
    }
}

/// A feedback object being filled in until its `done`.
#[derive(Default)]
struct FeedbackBuilder {
    table: Vec<(u32, u64)>,
    main_device: Option<u64>,
    tranches: Vec<Tranche>,
    current: Tranche,
    error: Option<FormatTableError>,
}

/// Everything the event handlers update.
#[derive(Default)]
pub(crate) struct State {
    formats: FormatSet,
    formats_changed: bool,
    feedback: HashMap<ObjectId, FeedbackBuilder>,
    surface_feedback: Option<ObjectId>,
    surface_feedback_seen: bool,
    feedback_error: Option<FormatTableError>,
    configured: bool,
    toplevel_size: Option<(u32, u32)>,
    closed: bool,
    frame_pending: bool,
    /// wl_buffer -> what must stay alive until its release (present = busy).
    busy: HashMap<ObjectId, Vec<Box<dyn Any + Send>>>,
    releases: u64,
    created: HashMap<ObjectId, Result<WlBuffer, ()>>,
    keyboard: Option<WlKeyboard>,
    /// Keys pressed while our window had the focus (evdev codes).
    keys: Vec<u32>,
}

struct CacheEntry {
    source: WeakDmaBuf,
    buffer: WlBuffer,
}

struct ShmBuffer {
    key: (DrmFourcc, u32, u32),
    buffer: WlBuffer,
    pool: WlShmPool,
    memory: ShmMemory,
    stride: u32,
    offsets: Vec<usize>,
}

/// A shared-memory file mapped read-write (the `wl_shm` pool's backing).
struct ShmMemory {
    fd: OwnedFd,
    ptr: *mut std::ffi::c_void,
    len: usize,
}

// SAFETY: the mapping is owned by this value and only touched through
// `&mut self` methods of the presenter.
unsafe impl Send for ShmMemory {}

impl ShmMemory {
    fn new(len: usize) -> Result<Self, WaylandError> {
        let err = |e: rustix::io::Errno| WaylandError::Shm(e.to_string());
        let fd = rustix::fs::memfd_create("dmabuf-interop-shm", rustix::fs::MemfdFlags::CLOEXEC).map_err(err)?;
        rustix::fs::ftruncate(&fd, len as u64).map_err(err)?;
        // SAFETY: a fresh shared mapping of a file we own, of its full size.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .map_err(err)?;
        Ok(Self { fd, ptr, len })
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` maps `len` bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for ShmMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping made in `new`; nothing refers to it.
        let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
    }
}

/// Shows `DmaBuf`s on one Wayland surface. See the module docs.
pub struct Presenter {
    conn: Connection,
    queue: EventQueue<State>,
    qh: QueueHandle<State>,
    state: State,
    _compositor: WlCompositor,
    shm: Option<WlShm>,
    dmabuf: Option<ZwpLinuxDmabufV1>,
    viewporter: Option<WpViewporter>,
    surface: WlSurface,
    xdg: Option<(XdgWmBase, XdgSurface, XdgToplevel)>,
    _seat: Option<WlSeat>,
    viewport: Option<WpViewport>,
    cache: HashMap<BufferId, CacheEntry>,
    /// Kinds of buffer tried with `create`: accepted (`created`) or
    /// refused (`failed`). Only accepted kinds use `create_immed`, whose
    /// failure is fatal to the connection (the protocol's
    /// `invalid_wl_buffer`).
    import_kinds: HashMap<ImportKind, bool>,
    shm_buffers: Vec<ShmBuffer>,
    stats: PresentStats,
    foreign: bool,
}

impl std::fmt::Debug for Presenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presenter")
            .field("stats", &self.stats)
            .field("formats", &self.state.formats)
            .finish_non_exhaustive()
    }
}

fn lost(e: impl std::fmt::Display) -> WaylandError {
    WaylandError::Connection(e.to_string())
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
    /// connection (we use a private event queue on it).
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
        Self::build(conn, Some(surface), None)
    }

    /// Uses an existing connection and opens a window on it.
    pub fn with_connection(conn: Connection, target: Target) -> Result<Self, WaylandError> {
        match target {
            Target::Toplevel { title, app_id } => Self::build(conn, None, Some((title, app_id))),
            Target::Foreign { .. } => Err(WaylandError::Connect(
                "a foreign surface comes with its own connection (Presenter::with_foreign)".into(),
            )),
        }
    }

    fn build(
        conn: Connection,
        foreign_surface: Option<WlSurface>,
        toplevel: Option<(String, String)>,
    ) -> Result<Self, WaylandError> {
        let (globals, queue) = registry_queue_init::<State>(&conn).map_err(lost)?;
        let qh = queue.handle();
        let mut state = State::default();
        let compositor: WlCompositor = globals
            .bind(&qh, 1..=5, ())
            .map_err(|_| WaylandError::MissingGlobal("wl_compositor"))?;
        let shm: Option<WlShm> = globals.bind(&qh, 1..=1, ()).ok();
        let dmabuf: Option<ZwpLinuxDmabufV1> = globals.bind(&qh, 3..=MAX_DMABUF_VERSION, ()).ok();
        let viewporter: Option<WpViewporter> = globals.bind(&qh, 1..=1, ()).ok();
        state.formats.dmabuf_version = dmabuf.as_ref().map_or(0, |d| d.version());
        if let Some(d) = dmabuf.as_ref().filter(|d| d.version() >= 4) {
            let fb = d.get_default_feedback(&qh, ());
            state.feedback.insert(fb.id(), FeedbackBuilder::default());
        }
        let foreign = foreign_surface.is_some();
        let surface = match foreign_surface {
            Some(s) => s,
            None => compositor.create_surface(&qh, ()),
        };
        if let Some(d) = dmabuf.as_ref().filter(|d| d.version() >= 4) {
            let fb = d.get_surface_feedback(&surface, &qh, ());
            state.surface_feedback = Some(fb.id());
            state.feedback.insert(fb.id(), FeedbackBuilder::default());
        }
        let viewport = viewporter.as_ref().map(|v| v.get_viewport(&surface, &qh, ()));
        let xdg = match toplevel {
            Some((title, app_id)) => {
                let wm: XdgWmBase = globals
                    .bind(&qh, 1..=5, ())
                    .map_err(|_| WaylandError::MissingGlobal("xdg_wm_base"))?;
                let xs = wm.get_xdg_surface(&surface, &qh, ());
                let top = xs.get_toplevel(&qh, ());
                top.set_title(title);
                top.set_app_id(app_id);
                surface.commit();
                Some((wm, xs, top))
            }
            None => {
                state.configured = true;
                None
            }
        };
        // Our own window takes keys; an embedding application keeps its input.
        let seat: Option<WlSeat> = if xdg.is_some() {
            globals.bind(&qh, 1..=5, ()).ok()
        } else {
            None
        };
        let mut this = Self {
            conn,
            queue,
            qh,
            state,
            _compositor: compositor,
            shm,
            dmabuf,
            viewporter,
            surface,
            xdg,
            _seat: seat,
            viewport,
            cache: HashMap::new(),
            import_kinds: HashMap::new(),
            shm_buffers: Vec::new(),
            stats: PresentStats::default(),
            foreign,
        };
        // Globals' initial events (formats), then the first configure.
        this.roundtrip()?;
        this.roundtrip()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !this.state.configured {
            if Instant::now() > deadline {
                return Err(WaylandError::Timeout(
                    "the first xdg_surface.configure",
                    Duration::from_secs(5),
                ));
            }
            this.dispatch_timeout(Duration::from_millis(50))?;
        }
        if let Some(e) = this.state.feedback_error.take() {
            return Err(e.into());
        }
        this.state.formats_changed = false;
        Ok(this)
    }

    /// Sends what is queued and waits until the compositor has processed
    /// it (and dispatches the events that came meanwhile).
    pub fn roundtrip(&mut self) -> Result<(), WaylandError> {
        self.queue.roundtrip(&mut self.state).map(drop).map_err(lost)
    }

    /// Destroys the cached `wl_buffer` of `buf`, if any (the next use makes
    /// a new one). For callers that know a source will not come back.
    pub fn forget(&mut self, buf: &DmaBuf) {
        if let Some(e) = self.cache.remove(&buf.id()) {
            e.buffer.destroy();
        }
    }

    /// Dispatches what has arrived, waiting up to `timeout` for something.
    pub fn dispatch_timeout(&mut self, timeout: Duration) -> Result<(), WaylandError> {
        self.queue.flush().map_err(lost)?;
        self.queue.dispatch_pending(&mut self.state).map_err(lost)?;
        if let Some(guard) = self.queue.prepare_read() {
            let ready = {
                let fd = guard.connection_fd();
                let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
                let ts = rustix::event::Timespec {
                    tv_sec: timeout.as_secs() as i64,
                    tv_nsec: i64::from(timeout.subsec_nanos()),
                };
                match rustix::event::poll(&mut fds, Some(&ts)) {
                    Ok(n) => n > 0,
                    Err(rustix::io::Errno::INTR) => false,
                    Err(e) => return Err(lost(e)),
                }
            };
            if ready {
                guard.read().map_err(lost)?;
            }
        }
        self.queue.dispatch_pending(&mut self.state).map_err(lost)?;
        if let Some(e) = self.state.feedback_error.take() {
            return Err(e.into());
        }
        Ok(())
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
            ..self.stats
        }
    }

    /// The surface frames go to.
    pub fn surface(&self) -> &WlSurface {
        &self.surface
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

    /// Whether the compositor still holds the `wl_buffer` last made for
    /// `buf` (then nothing may write into `buf`).
    pub fn is_busy(&self, buf: &DmaBuf) -> bool {
        self.cache
            .get(&buf.id())
            .is_some_and(|e| self.state.busy.contains_key(&e.buffer.id()))
    }

    /// Dispatches until the compositor released `buf`, or `timeout`.
    pub fn wait_released(&mut self, buf: &DmaBuf, timeout: Duration) -> Result<(), WaylandError> {
        let deadline = Instant::now() + timeout;
        while self.is_busy(buf) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(WaylandError::Timeout("wl_buffer.release", timeout));
            }
            self.dispatch_timeout(left.min(Duration::from_millis(20)))?;
        }
        Ok(())
    }

    /// Whether a frame callback is outstanding (the compositor has not
    /// shown the last commit yet).
    pub fn frame_pending(&self) -> bool {
        self.state.frame_pending
    }

    /// Dispatches until the last commit's frame callback, or `timeout`;
    /// false on timeout.
    pub fn wait_frame(&mut self, timeout: Duration) -> Result<bool, WaylandError> {
        let deadline = Instant::now() + timeout;
        while self.state.frame_pending {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            self.dispatch_timeout(left.min(Duration::from_millis(20)))?;
            if self.state.closed {
                return Err(WaylandError::Closed);
            }
        }
        Ok(true)
    }

    fn check_advertised(&self, buf: &DmaBuf) -> Result<(), WaylandError> {
        if self.state.formats.supports_dmabuf(buf.fourcc(), buf.modifier()) {
            return Ok(());
        }
        let offered = self.state.formats.modifiers(buf.fourcc());
        Err(WaylandError::NotAdvertised {
            fourcc: buf.fourcc(),
            modifier: ModifierName(buf.modifier()),
            version: self.state.formats.dmabuf_version,
            offered: if offered.is_empty() {
                "nothing for this fourcc".into()
            } else {
                offered
                    .iter()
                    .map(|&m| ModifierName(m).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
    }

    /// Checks that every plane still fits in its file (a memfd may have
    /// been truncated since the `DmaBuf` was built).
    fn check_sizes(buf: &DmaBuf) -> Result<(), WaylandError> {
        let info = buf.format_info();
        for (i, plane) in buf.planes().iter().enumerate() {
            let Some(format) = info.planes.get(i) else { continue };
            let needed = u64::from(plane.offset()) + u64::from(plane.stride()) * u64::from(format.rows(buf.height()));
            let fd_size = crate::sys::fd_info(plane.fd()).map_err(lost)?.size;
            if needed > fd_size {
                return Err(WaylandError::FdTooSmall {
                    plane: i,
                    needed,
                    fd_size,
                });
            }
        }
        Ok(())
    }

    /// Checks `buf` against what the compositor advertised and the plane
    /// sizes, then fills a params object with its planes (nothing is sent
    /// for a refused buffer).
    fn params_for(&self, buf: &DmaBuf) -> Result<ZwpLinuxBufferParamsV1, WaylandError> {
        let dmabuf = self
            .dmabuf
            .as_ref()
            .ok_or(WaylandError::MissingGlobal("zwp_linux_dmabuf_v1"))?;
        self.check_advertised(buf)?;
        Self::check_sizes(buf)?;
        let params = dmabuf.create_params(&self.qh, ());
        let modifier: u64 = buf.modifier().into();
        for (i, plane) in buf.planes().iter().enumerate() {
            params.add(
                plane.fd(),
                i as u32,
                plane.offset(),
                plane.stride(),
                (modifier >> 32) as u32,
                modifier as u32,
            );
        }
        Ok(params)
    }

    /// A new `wl_buffer` for `buf` with `create` and a wait for `created`
    /// or `failed` (a typed error instead of a fatal protocol error). Not
    /// cached: the caller owns it.
    pub fn create_buffer_checked(&mut self, buf: &DmaBuf, timeout: Duration) -> Result<WlBuffer, WaylandError> {
        let params = self.params_for(buf)?;
        params.create(
            buf.width() as i32,
            buf.height() as i32,
            buf.fourcc() as u32,
            zwp_linux_buffer_params_v1::Flags::empty(),
        );
        let deadline = Instant::now() + timeout;
        let outcome = loop {
            if let Some(r) = self.state.created.remove(&params.id()) {
                break r;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                params.destroy();
                return Err(WaylandError::Timeout("zwp_linux_buffer_params_v1.created", timeout));
            }
            self.dispatch_timeout(left.min(Duration::from_millis(20)))?;
        };
        params.destroy();
        outcome.map_err(|()| Self::import_failed(buf))
    }

    fn import_failed(buf: &DmaBuf) -> WaylandError {
        WaylandError::ImportFailed {
            fourcc: buf.fourcc(),
            width: buf.width(),
            height: buf.height(),
        }
    }

    /// The cached `wl_buffer` for `buf` (one per source identity), and
    /// whether it was a hit. On a miss, a kind of buffer (format, modifier,
    /// layout, fd kind) the compositor has accepted before is made with
    /// `create_immed`; a new kind goes through `create` and waits for
    /// `created` or `failed`, so a buffer the compositor cannot import is a
    /// [`WaylandError::ImportFailed`] (remembered: that kind is not tried
    /// again) instead of a protocol error that ends the connection.
    pub fn wl_buffer_for(&mut self, buf: &DmaBuf) -> Result<(WlBuffer, bool), WaylandError> {
        self.purge_dead();
        if let Some(e) = self.cache.get(&buf.id()) {
            return Ok((e.buffer.clone(), true));
        }
        let kind = ImportKind::of(buf);
        let buffer = match self.import_kinds.get(&kind) {
            Some(true) => {
                let params = self.params_for(buf)?;
                let buffer = params.create_immed(
                    buf.width() as i32,
                    buf.height() as i32,
                    buf.fourcc() as u32,
                    zwp_linux_buffer_params_v1::Flags::empty(),
                    &self.qh,
                    (),
                );
                params.destroy();
                buffer
            }
            Some(false) => return Err(Self::import_failed(buf)),
            None => match self.create_buffer_checked(buf, IMPORT_CHECK_TIMEOUT) {
                Ok(buffer) => {
                    self.import_kinds.insert(kind, true);
                    buffer
                }
                Err(e @ WaylandError::ImportFailed { .. }) => {
                    self.import_kinds.insert(kind, false);
                    self.stats.import_refusals += 1;
                    return Err(e);
                }
                Err(e) => return Err(e),
            },
        };
        self.stats.wl_buffers_created += 1;
        self.cache.insert(
            buf.id(),
            CacheEntry {
                source: buf.downgrade(),
                buffer: buffer.clone(),
            },
        );
        Ok((buffer, false))
    }

    /// Destroys the `wl_buffer`s whose source `DmaBuf` is gone.
    pub fn purge_dead(&mut self) {
        self.cache.retain(|_, e| {
            let alive = e.source.is_alive();
            if !alive {
                e.buffer.destroy();
            }
            alive
        });
    }

    /// `wl_buffer`s in the cache.
    pub fn cached_buffers(&self) -> usize {
        self.cache.len()
    }

    /// Shows `buf`: linux-dmabuf when the compositor advertises its format
    /// and modifier, else a counted `wl_shm` copy. `keepalive` (e.g. the
    /// GStreamer buffer, which keeps a pool from reusing the memory) is
    /// dropped when the compositor releases the `wl_buffer`.
    pub fn present(&mut self, buf: &DmaBuf, keepalive: Box<dyn Any + Send>) -> Result<Presented, WaylandError> {
        self.begin_frame()?;
        let dmabuf_ok = self.dmabuf.is_some() && self.state.formats.supports_dmabuf(buf.fourcc(), buf.modifier());
        let shm_ok = buf.modifier() == DrmModifier::Linear && self.state.formats.supports_shm(buf.fourcc());
        let imported = if dmabuf_ok {
            match self.wl_buffer_for(buf) {
                Ok(found) => Some(found),
                // Refused by the compositor: the counted wl_shm copy.
                Err(WaylandError::ImportFailed { .. }) if shm_ok => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let (wl_buffer, presented) = if let Some((b, hit)) = imported {
            (
                b,
                Presented {
                    zero_copy: true,
                    cache_hit: hit,
                },
            )
        } else if shm_ok {
            let b = self.copy_dmabuf_to_shm(buf)?;
            (
                b,
                Presented {
                    zero_copy: false,
                    cache_hit: false,
                },
            )
        } else {
            if self.dmabuf.is_some() {
                // Say what linux-dmabuf offers instead.
                self.check_advertised(buf)?;
            }
            return Err(WaylandError::Unsupported(buf.fourcc(), ModifierName(buf.modifier())));
        };
        self.commit_frame(&wl_buffer, presented, buf.width(), buf.height(), keepalive)?;
        Ok(presented)
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
        if presented.zero_copy && self.state.busy.contains_key(&id) {
            self.stats.reused_before_release += 1;
        }
        self.state.busy.entry(id).or_default().push(keepalive);
        self.surface.attach(Some(wl_buffer), 0, 0);
        if self.surface.version() >= 4 {
            self.surface.damage_buffer(0, 0, i32::MAX, i32::MAX);
        } else {
            self.surface.damage(0, 0, i32::MAX, i32::MAX);
        }
        if let Some(viewport) = &self.viewport {
            match self.state.toplevel_size {
                Some((w, h)) if !self.foreign => {
                    let (dw, dh) = fit(width, height, w, h);
                    viewport.set_destination(dw as i32, dh as i32);
                }
                _ => viewport.set_destination(-1, -1),
            }
        }
        self.surface.frame(&self.qh, ());
        self.state.frame_pending = true;
        self.surface.commit();
        self.conn.flush().map_err(lost)?;
        self.stats.presented += 1;
        if presented.zero_copy {
            self.stats.zero_copy += 1;
            if presented.cache_hit {
                self.stats.cache_hits += 1;
            }
        } else {
            self.stats.copies += 1;
        }
        Ok(())
    }

    /// Shows frame bytes from ordinary memory (e.g. a GStreamer buffer of
    /// system memory) through a counted `wl_shm` copy. `planes` holds each
    /// plane's bytes and stride.
    pub fn present_memory(
        &mut self,
        fourcc: DrmFourcc,
        width: u32,
        height: u32,
        planes: &[(&[u8], usize)],
        keepalive: Box<dyn Any + Send>,
    ) -> Result<Presented, WaylandError> {
        self.begin_frame()?;
        if !self.state.formats.supports_shm(fourcc) {
            return Err(WaylandError::Unsupported(fourcc, ModifierName(DrmModifier::Linear)));
        }
        let b = self.copy_to_shm(fourcc, width, height, planes)?;
        let presented = Presented {
            zero_copy: false,
            cache_hit: false,
        };
        self.commit_frame(&b, presented, width, height, keepalive)?;
        Ok(presented)
    }

    /// The copy path: a free (released) `wl_shm` buffer of the same format
    /// and size, or a new one (at most [`MAX_SHM_BUFFERS`]; beyond that we
    /// wait for a release).
    fn copy_to_shm(
        &mut self,
        fourcc: DrmFourcc,
        width: u32,
        height: u32,
        planes: &[(&[u8], usize)],
    ) -> Result<WlBuffer, WaylandError> {
        let shm = self.shm.clone().ok_or(WaylandError::MissingGlobal("wl_shm"))?;
        let info = crate::format::info(fourcc).map_err(|e| WaylandError::Shm(e.to_string()))?;
        if planes.len() < info.planes.len() {
            return Err(WaylandError::Shm(format!(
                "{} planes given, {fourcc:?} has {}",
                planes.len(),
                info.planes.len()
            )));
        }
        let key = (fourcc, width, height);
        self.shm_buffers.retain(|b| {
            let keep = b.key == key;
            if !keep {
                b.buffer.destroy();
                b.pool.destroy();
            }
            keep
        });
        let deadline = Instant::now() + Duration::from_secs(1);
        let index = loop {
            if let Some(i) = self
                .shm_buffers
                .iter()
                .position(|b| !self.state.busy.contains_key(&b.buffer.id()))
            {
                break i;
            }
            if self.shm_buffers.len() < MAX_SHM_BUFFERS {
                let b = self.new_shm_buffer(&shm, fourcc, width, height)?;
                self.shm_buffers.push(b);
                break self.shm_buffers.len() - 1;
            }
            if Instant::now() > deadline {
                return Err(WaylandError::Timeout(
                    "a released wl_shm buffer",
                    Duration::from_secs(1),
                ));
            }
            self.dispatch_timeout(Duration::from_millis(10))?;
        };
        let target = &mut self.shm_buffers[index];
        let stride = target.stride as usize;
        let offsets = target.offsets.clone();
        let dst = target.memory.bytes_mut();
        for (i, plane) in info.planes.iter().enumerate() {
            let (src, src_stride) = planes[i];
            let row = plane.min_row_bytes(width).unwrap_or(0) as usize;
            let rows = plane.rows(height) as usize;
            if rows > 0 && src.len() < (rows - 1) * src_stride + row {
                return Err(WaylandError::Shm(format!(
                    "plane {i}: {} bytes for {rows} rows of stride {src_stride}",
                    src.len()
                )));
            }
            for y in 0..rows {
                let d = offsets[i] + y * stride;
                dst[d..d + row].copy_from_slice(&src[y * src_stride..y * src_stride + row]);
            }
        }
        Ok(target.buffer.clone())
    }

    fn copy_dmabuf_to_shm(&mut self, buf: &DmaBuf) -> Result<WlBuffer, WaylandError> {
        let map = buf.map(MapAccess::Read).map_err(|e| WaylandError::Shm(e.to_string()))?;
        let mut copies = Vec::with_capacity(buf.planes().len());
        for (i, plane) in buf.planes().iter().enumerate() {
            let bytes = map.read_plane(i).map_err(|e| WaylandError::Shm(e.to_string()))?;
            copies.push((bytes, plane.stride() as usize));
        }
        drop(map);
        let planes: Vec<(&[u8], usize)> = copies.iter().map(|(b, s)| (b.as_slice(), *s)).collect();
        self.copy_to_shm(buf.fourcc(), buf.width(), buf.height(), &planes)
    }

    fn new_shm_buffer(
        &self,
        shm: &WlShm,
        fourcc: DrmFourcc,
        width: u32,
        height: u32,
    ) -> Result<ShmBuffer, WaylandError> {
        let info = crate::format::info(fourcc).map_err(|e| WaylandError::Shm(e.to_string()))?;
        let unsupported = || WaylandError::Unsupported(fourcc, ModifierName(DrmModifier::Linear));
        // wl_shm has one stride for every plane: the layout compositors
        // assume is plane after plane, each `stride` wide (NV12: luma
        // rows then interleaved chroma rows). Single-plane formats and
        // NV12-like semi-planar formats fit it.
        let semi_planar =
            info.planes.len() == 2 && info.planes[1].bytes_per_block == 2 * info.planes[0].bytes_per_block;
        if info.planes.len() > 1 && !semi_planar {
            return Err(unsupported());
        }
        let row = info.planes[0]
            .min_row_bytes(width)
            .ok_or_else(|| WaylandError::Shm("row too wide".into()))?;
        let stride = row.next_multiple_of(4);
        let mut offsets = Vec::new();
        let mut len = 0usize;
        for plane in info.planes {
            offsets.push(len);
            len += stride as usize * plane.rows(height) as usize;
        }
        let memory = ShmMemory::new(len)?;
        let pool = shm.create_pool(memory.fd.as_fd(), len as i32, &self.qh, ());
        let format = match wl_shm::Format::try_from(fourcc_to_shm(fourcc)) {
            Ok(f) => f,
            Err(()) => return Err(unsupported()),
        };
        let buffer = pool.create_buffer(0, width as i32, height as i32, stride as i32, format, &self.qh, ());
        Ok(ShmBuffer {
            key: (fourcc, width, height),
            buffer,
            pool,
            memory,
            stride,
            offsets,
        })
    }

    /// Frames the compositor still holds.
    pub fn buffers_in_flight(&self) -> usize {
        self.state.busy.len()
    }
}

impl Drop for Presenter {
    fn drop(&mut self) {
        for (_, e) in self.cache.drain() {
            e.buffer.destroy();
        }
        for b in self.shm_buffers.drain(..) {
            b.buffer.destroy();
            b.pool.destroy();
        }
        if let Some(v) = self.viewport.take() {
            v.destroy();
        }
        if let Some((wm, xs, top)) = self.xdg.take() {
            top.destroy();
            xs.destroy();
            wm.destroy();
        }
        if !self.foreign {
            self.surface.destroy();
        } else {
            // Leave the application's surface empty, not pointing at our
            // buffers.
            self.surface.attach(None, 0, 0);
            self.surface.commit();
        }
        if let Some(v) = self.viewporter.take() {
            v.destroy();
        }
        if let Some(d) = self.dmabuf.take() {
            d.destroy();
        }
        let _ = self.conn.flush();
        // Keepalives go with the state; the compositor may still read
        // buffers it held, which stay valid through its own references.
    }
}

/// The largest `w`x`h` with the source's aspect ratio inside the box.
pub fn fit(src_w: u32, src_h: u32, box_w: u32, box_h: u32) -> (u32, u32) {
    if src_w == 0 || src_h == 0 {
        return (box_w.max(1), box_h.max(1));
    }
    let by_width = (box_w, (u64::from(box_w) * u64::from(src_h) / u64::from(src_w)) as u32);
    if by_width.1 <= box_h {
        (by_width.0.max(1), by_width.1.max(1))
    } else {
        (
            ((u64::from(box_h) * u64::from(src_w) / u64::from(src_h)) as u32).max(1),
            box_h.max(1),
        )
    }
}

// ------------------------------------------------------------ event handlers

impl Dispatch<WlRegistry, GlobalListContents> for State {
    fn event(
        _: &mut Self,
        _: &WlRegistry,
        _: <WlRegistry as Proxy>::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        // Globals appearing later (hot-plugged outputs) are not needed.
    }
}

delegate_noop!(State: ignore WlCompositor);
delegate_noop!(State: ignore WlSurface);
delegate_noop!(State: ignore WlShmPool);
delegate_noop!(State: ignore WpViewporter);
delegate_noop!(State: ignore WpViewport);

impl Dispatch<WlShm, ()> for State {
    fn event(state: &mut Self, _: &WlShm, event: wl_shm::Event, _: &(), _: &Connection, _: &QueueHandle<Self>) {
        if let wl_shm::Event::Format { format } = event {
            let raw = match format {
                WEnum::Value(f) => f as u32,
                WEnum::Unknown(u) => u,
            };
            state.formats.shm.insert(shm_to_fourcc(raw));
        }
    }
}

impl Dispatch<WlBuffer, ()> for State {
    fn event(
        state: &mut Self,
        buffer: &WlBuffer,
        event: wl_buffer::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_buffer::Event::Release = event {
            state.releases += 1;
            // Dropping the keepalives hands the frames back to their producer.
            state.busy.remove(&buffer.id());
        }
    }
}

impl Dispatch<WlCallback, ()> for State {
    fn event(
        state: &mut Self,
        _: &WlCallback,
        event: wl_callback::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_callback::Event::Done { .. } = event {
            state.frame_pending = false;
        }
    }
}

impl Dispatch<ZwpLinuxDmabufV1, ()> for State {
    fn event(
        state: &mut Self,
        _: &ZwpLinuxDmabufV1,
        event: zwp_linux_dmabuf_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        // v3: the format set arrives as these events (v4+ uses feedback).
        match event {
            zwp_linux_dmabuf_v1::Event::Format { format } => {
                state
                    .formats
                    .dmabuf
                    .entry(format)
                    .or_default()
                    .insert(u64::from(DrmModifier::Invalid));
            }
            zwp_linux_dmabuf_v1::Event::Modifier {
                format,
                modifier_hi,
                modifier_lo,
            } => {
                let m = (u64::from(modifier_hi) << 32) | u64::from(modifier_lo);
                state.formats.dmabuf.entry(format).or_default().insert(m);
            }
            _ => {}
        }
    }
}

/// Maps the feedback's format table read-only and parses it.
fn read_format_table(fd: OwnedFd, size: u32) -> Result<Vec<(u32, u64)>, FormatTableError> {
    let size = size as usize;
    if size == 0 {
        return Ok(Vec::new());
    }
    let actual = rustix::fs::fstat(&fd)
        .map_err(|e| FormatTableError::Map(e.to_string()))?
        .st_size as usize;
    if actual < size {
        return Err(FormatTableError::Truncated {
            announced: size,
            actual,
        });
    }
    if !size.is_multiple_of(16) {
        return Err(FormatTableError::BadSize(size));
    }
    // SAFETY: a private read-only mapping of `size` bytes of a file at
    // least that large (checked above), unmapped below.
    let ptr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            size,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::PRIVATE,
            &fd,
            0,
        )
    }
    .map_err(|e| FormatTableError::Map(e.to_string()))?;
    // SAFETY: `ptr` maps `size` readable bytes until the munmap below.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), size) };
    let table = parse_format_table(bytes);
    // SAFETY: unmapping exactly the mapping made above; `bytes` is dead.
    let _ = unsafe { rustix::mm::munmap(ptr, size) };
    table
}

impl Dispatch<ZwpLinuxDmabufFeedbackV1, ()> for State {
    fn event(
        state: &mut Self,
        feedback: &ZwpLinuxDmabufFeedbackV1,
        event: zwp_linux_dmabuf_feedback_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        use zwp_linux_dmabuf_feedback_v1::Event as E;
        let id = feedback.id();
        let is_surface = state.surface_feedback.as_ref() == Some(&id);
        let b = state.feedback.entry(id).or_default();
        let dev = |bytes: &[u8]| -> Option<u64> { bytes.try_into().ok().map(u64::from_ne_bytes) };
        match event {
            E::FormatTable { fd, size } => match read_format_table(fd, size) {
                Ok(t) => b.table = t,
                Err(e) => b.error = Some(e),
            },
            E::MainDevice { device } => b.main_device = dev(&device),
            E::TrancheTargetDevice { device } => b.current.target_device = dev(&device),
            E::TrancheFormats { indices } => match super::formats::tranche_formats(&b.table, &indices) {
                Ok(f) => b.current.formats.extend(f),
                Err(e) => b.error = Some(e),
            },
            E::TrancheFlags { flags } => {
                let bits = match flags {
                    WEnum::Value(f) => f.bits(),
                    WEnum::Unknown(u) => u,
                };
                b.current.scanout = bits & 1 != 0;
            }
            E::TrancheDone => {
                let t = std::mem::take(&mut b.current);
                b.tranches.push(t);
            }
            E::Done => {
                if let Some(e) = b.error.take() {
                    state.feedback_error = Some(e);
                    b.tranches.clear();
                    return;
                }
                let tranches = std::mem::take(&mut b.tranches);
                let main_device = b.main_device;
                // The surface's feedback wins over the default one.
                if is_surface || !state.surface_feedback_seen {
                    state.surface_feedback_seen |= is_surface;
                    if state.formats.tranches != tranches || state.formats.main_device != main_device {
                        state.formats.tranches = tranches;
                        state.formats.main_device = main_device;
                        state.formats.merge_tranches();
                        state.formats_changed = true;
                    }
                }
            }
            _ => {}
        }
    }
}

impl Dispatch<ZwpLinuxBufferParamsV1, ()> for State {
    fn event(
        state: &mut Self,
        params: &ZwpLinuxBufferParamsV1,
        event: zwp_linux_buffer_params_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            zwp_linux_buffer_params_v1::Event::Created { buffer } => {
                state.created.insert(params.id(), Ok(buffer));
            }
            zwp_linux_buffer_params_v1::Event::Failed => {
                state.created.insert(params.id(), Err(()));
            }
            _ => {}
        }
    }

    event_created_child!(State, ZwpLinuxBufferParamsV1, [
        zwp_linux_buffer_params_v1::EVT_CREATED_OPCODE => (WlBuffer, ()),
    ]);
}

impl Dispatch<WlSeat, ()> for State {
    fn event(state: &mut Self, seat: &WlSeat, event: wl_seat::Event, _: &(), _: &Connection, qh: &QueueHandle<Self>) {
        if let wl_seat::Event::Capabilities {
            capabilities: WEnum::Value(caps),
        } = event
        {
            let has_keyboard = caps.contains(wl_seat::Capability::Keyboard);
            match (&state.keyboard, has_keyboard) {
                (None, true) => state.keyboard = Some(seat.get_keyboard(qh, ())),
                (Some(k), false) => {
                    if k.version() >= 3 {
                        k.release();
                    }
                    state.keyboard = None;
                }
                _ => {}
            }
        }
    }
}

impl Dispatch<WlKeyboard, ()> for State {
    fn event(
        state: &mut Self,
        _: &WlKeyboard,
        event: wl_keyboard::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        // The keymap's fd is an OwnedFd in the event and closes with it.
        if let wl_keyboard::Event::Key {
            key,
            state: WEnum::Value(wl_keyboard::KeyState::Pressed),
            ..
        } = event
        {
            // Bounded: a user of the presenter that never takes keys (the
            // sink) must not grow this for as long as keys are pressed.
            if state.keys.len() >= MAX_PENDING_KEYS {
                state.keys.remove(0);
            }
            state.keys.push(key);
        }
    }
}

impl Dispatch<XdgWmBase, ()> for State {
    fn event(_: &mut Self, wm: &XdgWmBase, event: xdg_wm_base::Event, _: &(), _: &Connection, _: &QueueHandle<Self>) {
        if let xdg_wm_base::Event::Ping { serial } = event {
            wm.pong(serial);
        }
    }
}

impl Dispatch<XdgSurface, ()> for State {
    fn event(
        state: &mut Self,
        surface: &XdgSurface,
        event: xdg_surface::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_surface::Event::Configure { serial } = event {
            surface.ack_configure(serial);
            state.configured = true;
        }
    }
}

impl Dispatch<XdgToplevel, ()> for State {
    fn event(
        state: &mut Self,
        _: &XdgToplevel,
        event: xdg_toplevel::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            xdg_toplevel::Event::Configure { width, height, .. } => {
                state.toplevel_size = (width > 0 && height > 0).then_some((width as u32, height as u32));
            }
            xdg_toplevel::Event::Close => state.closed = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn fit_keeps_the_aspect_ratio() {
        assert_eq!(fit(320, 240, 640, 480), (640, 480));
        assert_eq!(fit(320, 240, 1024, 480), (640, 480));
        assert_eq!(fit(320, 240, 640, 1000), (640, 480));
        assert_eq!(fit(1920, 1080, 320, 240), (320, 180));
        assert_eq!(fit(0, 0, 10, 10), (10, 10));
    }
}
