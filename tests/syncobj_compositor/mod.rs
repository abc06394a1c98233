//! A small headless Wayland compositor for the explicit-sync tests, built
//! on Smithay (a dev-dependency): linux-dmabuf v5 (default feedback naming
//! the render node; LINEAR formats, imported
//! by Smithay's pixman renderer, which maps the dma-buf) and one explicit
//! sync protocol ([`Offer`]): `wp_linux_drm_syncobj_manager_v1` on a DRM
//! node with timeline syncobjs (Smithay's), or
//! `zwp_linux_explicit_synchronization_v1` (written here: Smithay has none).
//! Weston 14 has no linux-drm-syncobj-v1 and, in the VM, imports no
//! dma-buf; sway/wlroots offer syncobj only with a GPU renderer.
//!
//! A commit with an acquire point or acquire fence is not applied until it
//! signals (a transaction blocker, as Smithay's anvil does); a buffer's
//! release point is signalled, or its release object answered
//! `immediate_release`, when the next applied commit replaces it. Tests
//! read back what is on screen with [`TestCompositor::capture`] (the
//! surface tree rendered by pixman into an ARGB8888 image).

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use smithay::backend::allocator::Buffer as _;
use smithay::backend::allocator::Fourcc;
use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::backend::drm::DrmDeviceFd;
use smithay::backend::input::{Axis, AxisSource, ButtonState, KeyState};
use smithay::backend::renderer::element::Kind;
use smithay::backend::renderer::element::surface::{WaylandSurfaceRenderElement, render_elements_from_surface_tree};
use smithay::backend::renderer::pixman::PixmanRenderer;
use smithay::backend::renderer::sync::Fence as _;
use smithay::backend::renderer::utils::{RendererSurfaceStateUserData, draw_render_elements, on_commit_buffer_handler};
use smithay::backend::renderer::{Bind, Color32F, ExportMem, Frame, ImportDma, Offscreen, Renderer};
use smithay::desktop::{WindowSurfaceType, utils::under_from_surface_tree};
use smithay::input::keyboard::{FilterResult, Keycode, XkbConfig};
use smithay::input::pointer::{AxisFrame, ButtonEvent, MotionEvent};
use smithay::input::{Seat, SeatHandler, SeatState};
use smithay::reexports::wayland_protocols::wp::color_management::v1::server::{
    wp_color_management_surface_v1::{self, WpColorManagementSurfaceV1},
    wp_color_manager_v1::{self, WpColorManagerV1},
    wp_image_description_creator_params_v1::{self, WpImageDescriptionCreatorParamsV1},
    wp_image_description_v1::{self, WpImageDescriptionV1},
};
use smithay::reexports::wayland_protocols::wp::color_representation::v1::server::{
    wp_color_representation_manager_v1::{self, WpColorRepresentationManagerV1},
    wp_color_representation_surface_v1::{self, WpColorRepresentationSurfaceV1},
};
use smithay::reexports::wayland_protocols::wp::linux_explicit_synchronization::zv1::server::{
    zwp_linux_buffer_release_v1::{self, ZwpLinuxBufferReleaseV1},
    zwp_linux_explicit_synchronization_v1::{self, ZwpLinuxExplicitSynchronizationV1},
    zwp_linux_surface_synchronization_v1::{self, ZwpLinuxSurfaceSynchronizationV1},
};
use smithay::reexports::wayland_server::backend::{ClientData, ClientId, DisconnectReason, ObjectId};
use smithay::reexports::wayland_server::protocol::{wl_buffer, wl_surface::WlSurface};
use smithay::reexports::wayland_server::{Client, Display, ListeningSocket};
use smithay::reexports::wayland_server::{DataInit, Dispatch, DisplayHandle, GlobalDispatch, New, Resource};
use smithay::utils::{DeviceFd, Logical, Point, Rectangle, SERIAL_COUNTER, Serial, Size, Transform};
use smithay::wayland::buffer::BufferHandler;
use smithay::wayland::compositor::{
    self, BlockerState, CompositorClientState, CompositorHandler, CompositorState, SurfaceAttributes, TraversalAction,
    with_states, with_surface_tree_downward,
};
use smithay::wayland::dmabuf::{
    DmabufFeedbackBuilder, DmabufGlobal, DmabufHandler, DmabufState, ImportNotifier, get_dmabuf,
};
use smithay::wayland::drm_syncobj::{DrmSyncPoint, DrmSyncobjCachedState, DrmSyncobjHandler, DrmSyncobjState};
use smithay::wayland::shell::xdg::{PopupSurface, PositionerState, ToplevelSurface, XdgShellHandler, XdgShellState};
use smithay::wayland::shm::{ShmHandler, ShmState};
use smithay::{
    delegate_compositor, delegate_dmabuf, delegate_drm_syncobj, delegate_seat, delegate_shm, delegate_viewporter,
    delegate_xdg_shell,
};

/// What the screen shows: ARGB8888 (B, G, R, A bytes), `width * 4` per row.
pub struct Capture {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl Capture {
    /// (R, G, B) at (x, y).
    pub fn rgb(&self, x: u32, y: u32) -> [u8; 3] {
        let at = ((y * self.width + x) * 4) as usize;
        [self.pixels[at + 2], self.pixels[at + 1], self.pixels[at]]
    }
}

/// The explicit-sync protocol the compositor offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// `wp_linux_drm_syncobj_manager_v1`.
    DrmSyncobj,
    /// `zwp_linux_explicit_synchronization_v1` (v2).
    ExplicitSyncV1,
    /// Neither (implicit sync).
    None,
}

enum Request {
    Capture(mpsc::Sender<Result<Capture, String>>),
    Input(Vec<Action>, mpsc::Sender<Result<(), String>>),
    SignalReleaseFences(mpsc::Sender<usize>),
    Stop,
}

/// What the seat does (see [`TestCompositor::start_input`]); positions
/// are in the output's coordinates (toplevels sit at (0, 0)).
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// The pointer moves to (x, y): it enters the surface there, topmost
    /// first (subsurfaces above their parent, by input region).
    PointerTo(f64, f64),
    /// A pointer button (evdev code: BTN_LEFT 0x110), down or up.
    Button(u32, bool),
    /// The wheel, in steps (down positive).
    Scroll(i32),
    /// A key (evdev code: KEY_Q 16), down or up, to the first toplevel.
    Key(u32, bool),
}

/// linux-explicit-synchronization-v1 releases with fences that stay
/// pending until the test says (a compositor whose GPU still reads): each
/// is a write fence on a vgem buffer of its own.
struct ReleaseFencer {
    card: PathBuf,
    pending: Vec<(crate::common::vgem::VgemBuffer, u32)>,
}

/// The compositor, running on its own thread until dropped.
pub struct TestCompositor {
    socket: PathBuf,
    dir: PathBuf,
    requests: mpsc::Sender<Request>,
    thread: Option<JoinHandle<()>>,
    colour_log: Arc<Mutex<ColourLog>>,
    paced_log: Arc<Mutex<Vec<PacedCommit>>>,
    windows_hidden: Arc<AtomicBool>,
}

/// What a commit of a buffer carried (see [`TestCompositor::start_paced`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacedCommit {
    /// The surface's protocol id.
    pub surface: u32,
    /// `wp_commit_timer_v1.set_timestamp`, in nanoseconds.
    pub timestamp_ns: Option<u64>,
    /// `wp_fifo_v1.set_barrier`.
    pub set_barrier: bool,
    /// `wp_fifo_v1.wait_barrier`.
    pub wait_barrier: bool,
}

/// What a `wp_color_representation_v1` client did, as the compositor saw
/// it (see [`TestCompositor::start_colour`]).
#[derive(Debug, Clone, Default)]
pub struct ColourLog {
    /// Per applied commit of a buffer: the buffer's DRM fourcc code (wl_shm
    /// buffers as their DRM code too), then the coefficients and range and
    /// the chroma location in effect (protocol values).
    pub commits: Vec<ColourCommit>,
    /// Protocol errors raised (the client is disconnected at the first).
    pub errors: Vec<String>,
    /// `wp_color_management_v1`: the parameters of every image
    /// description created, in order.
    pub descriptions: Vec<DescriptionParams>,
    /// Per applied commit: the index (in `descriptions`) of the image
    /// description in effect.
    pub described: Vec<Option<usize>>,
}

/// What a client set on a `wp_image_description_creator_params_v1`
/// (protocol values and units).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescriptionParams {
    pub tf: Option<u32>,
    pub primaries: Option<u32>,
    /// Mastering display (r, g, b, white) x, y in millionths.
    pub mastering_primaries: Option<[i32; 8]>,
    /// (min L in 0.0001 cd/m², max L in cd/m²).
    pub mastering_luminance: Option<(u32, u32)>,
    pub max_cll: Option<u32>,
    pub max_fall: Option<u32>,
}

/// `wp_color_representation_surface_v1` alpha mode `premultiplied_electrical`.
pub const ALPHA_PREMULTIPLIED_ELECTRICAL: u32 = 0;
/// `wp_color_representation_surface_v1` alpha mode `straight`.
pub const ALPHA_STRAIGHT: u32 = 2;

/// (buffer fourcc code, (coefficients, range), chroma location, alpha
/// mode) of a commit (protocol values; `None`: not set).
pub type ColourCommit = (u32, Option<(u32, u32)>, Option<u32>, Option<u32>);

/// One surface's colour-representation and colour-management state.
#[derive(Default)]
struct ColourSurface {
    object: Option<WpColorRepresentationSurfaceV1>,
    pending: (Option<(u32, u32)>, Option<u32>),
    current: (Option<(u32, u32)>, Option<u32>),
    managed: bool,
    pending_description: Option<usize>,
    pending_alpha: Option<u32>,
    current_alpha: Option<u32>,
    current_description: Option<usize>,
}

/// The colour-representation side: the pairs listed, and each surface.
struct Colour {
    pairs: Vec<(u32, u32)>,
    /// Alpha modes listed (protocol values).
    alpha_modes: Vec<u32>,
    surfaces: HashMap<ObjectId, ColourSurface>,
    log: Arc<Mutex<ColourLog>>,
}

/// What a test compositor is started with; each `start_*` fills in what
/// it is about and leaves the rest as [`Setup::new`] has it.
struct Setup<'a> {
    render_node: Option<&'a Path>,
    width: u32,
    height: u32,
    offer: Offer,
    fence_card: Option<PathBuf>,
    hidden: Option<Fourcc>,
    colour_pairs: Option<Vec<(u32, u32)>>,
    alpha_modes: Vec<u32>,
    input: Option<(i32, i32)>,
    paced: bool,
    transactions: bool,
    repaint: Duration,
}

impl Setup<'_> {
    /// A `width`x`height` output and nothing else: no render node, no
    /// explicit sync, every buffer shown, no colour protocols, no seat, no
    /// pacing protocols.
    fn new(width: u32, height: u32) -> Self {
        Self {
            render_node: None,
            width,
            height,
            offer: Offer::None,
            fence_card: None,
            hidden: None,
            colour_pairs: None,
            alpha_modes: vec![ALPHA_PREMULTIPLIED_ELECTRICAL],
            input: None,
            paced: false,
            transactions: false,
            repaint: Duration::from_millis(16),
        }
    }
}

impl TestCompositor {
    /// Starts a `width`x`height` output, importing syncobj timelines on the
    /// DRM node `render_node`.
    pub fn start(render_node: &Path, width: u32, height: u32, offer: Offer) -> Self {
        Self::start_with(Setup {
            render_node: Some(render_node),
            offer,
            ..Setup::new(width, height)
        })
    }

    /// A compositor without a render node (it runs on the bare host:
    /// dma-bufs of memfds), offering `wp_color_representation_manager_v1`
    /// with only `pairs` (coefficients, range: protocol values) and alpha
    /// mode `premultiplied_electrical`, and LINEAR NV12 dma-bufs (accepted,
    /// not rendered). It enforces the protocol's errors (an unlisted pair,
    /// a second object per surface, YCbCr coefficients or a chroma location
    /// on an RGB buffer) and logs every commit ([`colour_log`](Self::colour_log)).
    ///
    /// It also offers `wp_color_manager_v1` (parametric descriptions with
    /// mastering metadata; named transfer functions st2084_pq and gamma22,
    /// primaries srgb and bt2020; perceptual intent), readies every
    /// description and logs what each was made of and which one each commit
    /// carries.
    pub fn start_colour(width: u32, height: u32, pairs: &[(u32, u32)]) -> Self {
        Self::start_with(Setup {
            colour_pairs: Some(pairs.to_vec()),
            ..Setup::new(width, height)
        })
    }

    /// [`start_colour`](Self::start_colour) listing the alpha modes
    /// `alpha_modes` (protocol values: [`ALPHA_PREMULTIPLIED_ELECTRICAL`],
    /// [`ALPHA_STRAIGHT`]) instead of `premultiplied_electrical` alone.
    pub fn start_colour_alpha(width: u32, height: u32, pairs: &[(u32, u32)], alpha_modes: &[u32]) -> Self {
        Self::start_with(Setup {
            colour_pairs: Some(pairs.to_vec()),
            alpha_modes: alpha_modes.to_vec(),
            ..Setup::new(width, height)
        })
    }

    /// A compositor without a render node (the bare host: dma-bufs of
    /// memfds) whose seat has a pointer and a keyboard (libxkbcommon's
    /// default keymap: us), which the test drives with
    /// [`input`](Self::input); toplevels are configured to `toplevel`.
    pub fn start_input(width: u32, height: u32, toplevel: (i32, i32)) -> Self {
        Self::start_with(Setup {
            input: Some(toplevel),
            ..Setup::new(width, height)
        })
    }

    /// [`start_input`](Self::start_input) that also offers
    /// `wp_fifo_manager_v1`, `wp_commit_timing_manager_v1` and
    /// `wp_presentation` (clock `CLOCK_MONOTONIC`; every feedback is
    /// answered `discarded`), and logs what each commit of a buffer carried
    /// ([`paced_log`](Self::paced_log)). The FIFO barriers are logged, not
    /// enforced.
    pub fn start_paced(width: u32, height: u32) -> Self {
        Self::start_with(Setup {
            input: Some((width as i32, height as i32)),
            paced: true,
            ..Setup::new(width, height)
        })
    }

    /// A compositor that, like sway, lays a new toplevel out once it has
    /// committed its first buffer (a configure to the output's size) and
    /// then paints it, frame callbacks included, only once the client has
    /// committed the latest configure it acked (sway's transactions, which
    /// give up after 200 ms; this one never does). Otherwise as
    /// [`start_colour`](Self::start_colour) with no pairs: linux-dmabuf of
    /// memfd "dma-bufs".
    pub fn start_transactional(width: u32, height: u32) -> Self {
        Self::start_with(Setup {
            transactions: true,
            ..Setup::new(width, height)
        })
    }

    /// [`start_colour`](Self::start_colour) with no pairs, repainting
    /// (and sending frame callbacks) only every `repaint` instead of every
    /// 16 ms: a compositor slower than the stream.
    pub fn start_slow(width: u32, height: u32, repaint: Duration) -> Self {
        Self::start_with(Setup {
            repaint,
            ..Setup::new(width, height)
        })
    }

    /// What the commits of buffers carried so far (see
    /// [`start_paced`](Self::start_paced)).
    pub fn paced_log(&self) -> Vec<PacedCommit> {
        self.paced_log.lock().unwrap().clone()
    }

    /// Does `actions` in order.
    pub fn input(&self, actions: &[Action]) {
        let (tx, rx) = mpsc::channel();
        self.requests
            .send(Request::Input(actions.to_vec(), tx))
            .expect("compositor thread alive");
        rx.recv_timeout(Duration::from_secs(10))
            .expect("answer")
            .expect("input done");
    }

    /// What the colour-representation client did so far.
    pub fn colour_log(&self) -> ColourLog {
        self.colour_log.lock().unwrap().clone()
    }

    /// [`start`](Self::start) with [`Offer::None`] as a compositor that
    /// accepts dma-bufs of `hidden` (`created`) but never shows them: no
    /// frame callback comes while a surface holds one (Weston 16 does this
    /// with some NV12 imports in a VM).
    pub fn start_hiding(render_node: &Path, width: u32, height: u32, hidden: Fourcc) -> Self {
        Self::start_with(Setup {
            render_node: Some(render_node),
            hidden: Some(hidden),
            ..Setup::new(width, height)
        })
    }

    /// [`start`](Self::start) with [`Offer::ExplicitSyncV1`] answering
    /// releases with `fenced_release`: fences (on vgem's `card`) pending
    /// until [`signal_release_fences`](Self::signal_release_fences).
    pub fn start_with_release_fences(render_node: &Path, width: u32, height: u32, card: &Path) -> Self {
        Self::start_with(Setup {
            render_node: Some(render_node),
            offer: Offer::ExplicitSyncV1,
            fence_card: Some(card.to_owned()),
            ..Setup::new(width, height)
        })
    }

    fn start_with(setup: Setup<'_>) -> Self {
        let Setup {
            render_node,
            width,
            height,
            offer,
            fence_card,
            hidden,
            colour_pairs,
            alpha_modes,
            input,
            paced,
            transactions,
            repaint,
        } = setup;
        let dir = std::env::temp_dir().join(format!(
            "dmabuf-interop-syncobj-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("socket directory");
        let socket = dir.join("wayland-syncobj");
        let listener = ListeningSocket::bind_absolute(socket.clone()).expect("bind the test compositor's socket");
        let node = render_node.map(|node| {
            rustix::fs::open(
                node,
                rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .expect("open the render node")
        });
        let (requests, rx) = mpsc::channel();
        let colour_log = Arc::new(Mutex::new(ColourLog::default()));
        let colour = colour_pairs.map(|pairs| Colour {
            pairs,
            alpha_modes,
            surfaces: HashMap::new(),
            log: Arc::clone(&colour_log),
        });
        let paced_log = Arc::new(Mutex::new(Vec::new()));
        let windows_hidden = Arc::new(AtomicBool::new(false));
        let config = Config {
            windows_hidden: Arc::clone(&windows_hidden),
            width,
            height,
            offer,
            fence_card,
            hidden,
            colour,
            input,
            paced: paced.then(|| Arc::clone(&paced_log)),
            transactions,
            repaint,
        };
        let thread = std::thread::spawn(move || run(listener, node, config, rx));
        Self {
            socket,
            dir,
            requests,
            thread: Some(thread),
            colour_log,
            paced_log,
            windows_hidden,
        }
    }

    /// Hides every window (`true`: no frame callback for any surface, as
    /// for a minimised window or one under a fullscreen one) or shows them
    /// again.
    pub fn set_windows_hidden(&self, hidden: bool) {
        self.windows_hidden.store(hidden, Ordering::SeqCst);
    }

    /// The socket clients connect to.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Signals every release fence sent so far; returns how many.
    pub fn signal_release_fences(&self) -> usize {
        let (tx, rx) = mpsc::channel();
        self.requests
            .send(Request::SignalReleaseFences(tx))
            .expect("compositor thread alive");
        rx.recv_timeout(Duration::from_secs(10)).expect("answer")
    }

    /// What is on screen now.
    pub fn capture(&self) -> Capture {
        let (tx, rx) = mpsc::channel();
        self.requests
            .send(Request::Capture(tx))
            .expect("compositor thread alive");
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(c) => c.expect("capture"),
            Err(e) => {
                // Where every thread of ours waits in the kernel.
                for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
                    let read = |f: &str| std::fs::read_to_string(task.path().join(f)).unwrap_or_default();
                    eprintln!(
                        "task {:?} {} wchan {}\n{}",
                        task.file_name(),
                        read("comm").trim(),
                        read("wchan"),
                        read("stack")
                    );
                }
                panic!("the compositor did not answer a capture: {e}")
            }
        }
    }
}

impl Drop for TestCompositor {
    fn drop(&mut self) {
        let _ = self.requests.send(Request::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Default)]
struct ClientState {
    compositor_state: CompositorClientState,
}

impl ClientData for ClientState {
    fn initialized(&self, _: ClientId) {}
    fn disconnected(&self, _: ClientId, _: DisconnectReason) {}
}

struct App {
    compositor_state: CompositorState,
    xdg_shell_state: XdgShellState,
    shm_state: ShmState,
    seat_state: SeatState<Self>,
    dmabuf_state: DmabufState,
    syncobj_state: Option<DrmSyncobjState>,
    renderer: PixmanRenderer,
    size: (i32, i32),
    /// linux-explicit-synchronization-v1 state per wl_surface.
    explicit_v1: HashMap<ObjectId, ExplicitV1Surface>,
    /// Where releases come with pending fences.
    release_fencer: Option<ReleaseFencer>,
    /// dma-bufs of this format are accepted but never shown.
    hidden: Option<Fourcc>,
    /// No window is shown (no frame callbacks at all) while set.
    windows_hidden: Arc<AtomicBool>,
    /// wp_color_representation_v1, where offered.
    colour: Option<Colour>,
    seat: Seat<App>,
    /// The size toplevels are configured to (None: theirs to choose).
    toplevel_size: Option<(i32, i32)>,
    /// Where paced commits are logged (FIFO and commit timing offered).
    paced_log: Option<Arc<Mutex<Vec<PacedCommit>>>>,
    /// Where toplevels are laid out in transactions: per toplevel's
    /// wl_surface, the serial of the configure sent after its first buffer
    /// (see [`TestCompositor::start_transactional`]).
    transactions: Option<HashMap<ObjectId, Serial>>,
    start: Instant,
}

/// What `run` starts.
struct Config {
    windows_hidden: Arc<AtomicBool>,
    width: u32,
    height: u32,
    offer: Offer,
    fence_card: Option<PathBuf>,
    hidden: Option<Fourcc>,
    colour: Option<Colour>,
    /// A pointer and a keyboard, and the toplevels' size.
    input: Option<(i32, i32)>,
    /// FIFO, commit timing and presentation offered, commits logged here.
    paced: Option<Arc<Mutex<Vec<PacedCommit>>>>,
    /// Toplevels laid out in transactions.
    transactions: bool,
    /// The time between repaints.
    repaint: Duration,
}

/// A surface's linux-explicit-synchronization-v1 state.
#[derive(Default)]
struct ExplicitV1Surface {
    /// Double-buffered until the next commit.
    pending_fence: Option<OwnedFd>,
    pending_release: Option<ZwpLinuxBufferReleaseV1>,
    /// Each commit's release object, in commit order, until the commit is
    /// applied (commits apply in order).
    queued: VecDeque<Option<ZwpLinuxBufferReleaseV1>>,
    /// The release object of the buffer on screen.
    current: Option<ZwpLinuxBufferReleaseV1>,
}

/// Holds a commit until its acquire fence (a sync_file) has signalled.
struct SyncFileBlocker(OwnedFd);

impl compositor::Blocker for SyncFileBlocker {
    fn state(&self) -> BlockerState {
        let mut fds = [rustix::event::PollFd::new(&self.0, rustix::event::PollFlags::IN)];
        let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
        if rustix::event::poll(&mut fds, Some(&zero)).unwrap_or(0) == 1 {
            BlockerState::Released
        } else {
            BlockerState::Pending
        }
    }
}

/// Holds a commit until its acquire point has signalled.
struct AcquireBlocker(DrmSyncPoint);

impl compositor::Blocker for AcquireBlocker {
    fn state(&self) -> BlockerState {
        if self.0.is_signaled() {
            BlockerState::Released
        } else {
            BlockerState::Pending
        }
    }
}

impl CompositorHandler for App {
    fn compositor_state(&mut self) -> &mut CompositorState {
        &mut self.compositor_state
    }

    fn client_compositor_state<'a>(&self, client: &'a Client) -> &'a CompositorClientState {
        &client
            .get_data::<ClientState>()
            .expect("our client data")
            .compositor_state
    }

    fn new_surface(&mut self, surface: &WlSurface) {
        compositor::add_pre_commit_hook::<Self, _>(surface, |app: &mut App, _, surface| {
            if let Some(v1) = app.explicit_v1.get_mut(&surface.id()) {
                if let Some(fence) = v1.pending_fence.take() {
                    compositor::add_blocker(surface, SyncFileBlocker(fence));
                }
                v1.queued.push_back(v1.pending_release.take());
            }
            let acquire = with_states(surface, |states| {
                states
                    .cached_state
                    .get::<DrmSyncobjCachedState>()
                    .pending()
                    .acquire_point
                    .clone()
            });
            if let Some(point) = acquire
                && !point.is_signaled()
            {
                compositor::add_blocker(surface, AcquireBlocker(point));
            }
        });
    }

    fn commit(&mut self, surface: &WlSurface) {
        // Before the buffer handler, which takes the attached buffer.
        if let Some(log) = &self.paced_log {
            let entry = compositor::with_states(surface, |states| {
                let attached = matches!(
                    states.cached_state.get::<SurfaceAttributes>().current().buffer,
                    Some(compositor::BufferAssignment::NewBuffer(_))
                );
                let timestamp_ns = states
                    .data_map
                    .get::<smithay::wayland::commit_timing::CommitTimerStateUserData>()
                    .and_then(|t| t.borrow_mut().timestamp.take())
                    .map(|t| {
                        let t: smithay::utils::Time<smithay::utils::Monotonic> = t.into();
                        Duration::from(t).as_nanos() as u64
                    });
                let fifo = *states
                    .cached_state
                    .get::<smithay::wayland::fifo::FifoCachedState>()
                    .current();
                attached.then_some(PacedCommit {
                    surface: surface.id().protocol_id(),
                    timestamp_ns,
                    set_barrier: fifo.set_barrier,
                    wait_barrier: fifo.wait_barrier,
                })
            });
            if let Some(e) = entry {
                log.lock().unwrap().push(e);
            }
        }
        on_commit_buffer_handler::<Self>(surface);
        self.lay_out_once_mapped(surface);
        self.colour_commit(surface);
        // The buffer this commit replaced is no longer read (the renderer
        // reads the current buffer only, synchronously).
        if let Some(v1) = self.explicit_v1.get_mut(&surface.id())
            && let Some(Some(release)) = v1.queued.pop_front()
            && let Some(previous) = v1.current.replace(release)
        {
            match &mut self.release_fencer {
                None => previous.immediate_release(),
                Some(fencer) => {
                    let vgem = crate::common::vgem::VgemBuffer::new(&fencer.card, 1, 1);
                    let id = vgem.attach_write_fence();
                    let fence = dmabuf_interop::sync::export_sync_file(
                        vgem.buf.planes()[0].fd(),
                        dmabuf_interop::sync::SyncAccess::Read,
                    )
                    .expect("export the release fence");
                    previous.fenced_release(fence.as_fd());
                    fencer.pending.push((vgem, id));
                }
            }
        }
    }
}

impl BufferHandler for App {
    fn buffer_destroyed(&mut self, _: &wl_buffer::WlBuffer) {}
}

impl ShmHandler for App {
    fn shm_state(&self) -> &ShmState {
        &self.shm_state
    }
}

impl XdgShellHandler for App {
    fn xdg_shell_state(&mut self) -> &mut XdgShellState {
        &mut self.xdg_shell_state
    }

    fn new_toplevel(&mut self, surface: ToplevelSurface) {
        if let Some(size) = self.toplevel_size {
            surface.with_pending_state(|s| s.size = Some(size.into()));
        }
        surface.send_configure();
    }

    fn new_popup(&mut self, _: PopupSurface, _: PositionerState) {}

    fn grab(&mut self, _: PopupSurface, _: smithay::reexports::wayland_server::protocol::wl_seat::WlSeat, _: Serial) {}

    fn reposition_request(&mut self, _: PopupSurface, _: PositionerState, _: u32) {}
}

impl SeatHandler for App {
    type KeyboardFocus = WlSurface;
    type PointerFocus = WlSurface;
    type TouchFocus = WlSurface;

    fn seat_state(&mut self) -> &mut SeatState<Self> {
        &mut self.seat_state
    }
}

impl DmabufHandler for App {
    fn dmabuf_state(&mut self) -> &mut DmabufState {
        &mut self.dmabuf_state
    }

    fn dmabuf_imported(&mut self, _: &DmabufGlobal, dmabuf: Dmabuf, notifier: ImportNotifier) {
        // The pixman renderer maps the dma-buf and brackets the access
        // with DMA_BUF_IOCTL_SYNC, which waits for the buffer's implicit
        // fences: importing here would block the whole compositor on a
        // producer that has not finished (the acquire point's job). So
        // only what pixman can take is accepted here, and the buffer is
        // imported when a commit showing it has been applied.
        let format = dmabuf.format();
        if self.colour.is_some() {
            // Colour tests read the protocol, not the screen.
            let _ = notifier.successful::<App>();
            return;
        }
        let pixman_takes = self.renderer.dmabuf_formats().contains(&format) && dmabuf.num_planes() == 1;
        if pixman_takes {
            let _ = notifier.successful::<App>();
        } else {
            notifier.failed();
        }
    }
}

impl DrmSyncobjHandler for App {
    fn drm_syncobj_state(&mut self) -> Option<&mut DrmSyncobjState> {
        self.syncobj_state.as_mut()
    }
}

impl GlobalDispatch<ZwpLinuxExplicitSynchronizationV1, ()> for App {
    fn bind(
        _: &mut Self,
        _: &DisplayHandle,
        _: &Client,
        resource: New<ZwpLinuxExplicitSynchronizationV1>,
        _: &(),
        data_init: &mut DataInit<'_, Self>,
    ) {
        data_init.init(resource, ());
    }
}

impl Dispatch<ZwpLinuxExplicitSynchronizationV1, ()> for App {
    fn request(
        app: &mut Self,
        _: &Client,
        _: &ZwpLinuxExplicitSynchronizationV1,
        request: zwp_linux_explicit_synchronization_v1::Request,
        _: &(),
        _: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        if let zwp_linux_explicit_synchronization_v1::Request::GetSynchronization { id, surface } = request {
            app.explicit_v1.entry(surface.id()).or_default();
            data_init.init(id, surface);
        }
    }
}

impl Dispatch<ZwpLinuxSurfaceSynchronizationV1, WlSurface> for App {
    fn request(
        app: &mut Self,
        _: &Client,
        _: &ZwpLinuxSurfaceSynchronizationV1,
        request: zwp_linux_surface_synchronization_v1::Request,
        surface: &WlSurface,
        _: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        let v1 = app.explicit_v1.entry(surface.id()).or_default();
        match request {
            zwp_linux_surface_synchronization_v1::Request::SetAcquireFence { fd } => v1.pending_fence = Some(fd),
            zwp_linux_surface_synchronization_v1::Request::GetRelease { release } => {
                v1.pending_release = Some(data_init.init(release, ()));
            }
            _ => {}
        }
    }
}

impl Dispatch<ZwpLinuxBufferReleaseV1, ()> for App {
    fn request(
        _: &mut Self,
        _: &Client,
        _: &ZwpLinuxBufferReleaseV1,
        _: zwp_linux_buffer_release_v1::Request,
        _: &(),
        _: &DisplayHandle,
        _: &mut DataInit<'_, Self>,
    ) {
    }
}

impl App {
    /// A commit's colour state becomes current; checked against its buffer.
    fn colour_commit(&mut self, surface: &WlSurface) {
        let Some(colour) = self.colour.as_mut() else { return };
        let Some(state) = colour.surfaces.get_mut(&surface.id()) else {
            return;
        };
        state.current = state.pending;
        state.current_description = state.pending_description;
        state.current_alpha = state.pending_alpha;
        let format = with_states(surface, |states| {
            let data = states.data_map.get::<RendererSurfaceStateUserData>()?;
            let data = data.lock().ok()?;
            let buffer = data.buffer()?;
            if let Ok(d) = get_dmabuf(buffer) {
                return Some(d.format().code as u32);
            }
            smithay::wayland::shm::with_buffer_contents(buffer, |_, _, attrs| match attrs.format {
                smithay::reexports::wayland_server::protocol::wl_shm::Format::Argb8888 => Fourcc::Argb8888 as u32,
                smithay::reexports::wayland_server::protocol::wl_shm::Format::Xrgb8888 => Fourcc::Xrgb8888 as u32,
                other => other as u32,
            })
            .ok()
        });
        let Some(format) = format else { return };
        let mut log = colour.log.lock().unwrap();
        log.commits
            .push((format, state.current.0, state.current.1, state.current_alpha));
        log.described.push(state.current_description);
        let yuv = [Fourcc::Nv12 as u32, Fourcc::Yuv420 as u32, Fourcc::P010 as u32].contains(&format);
        // Identity (1) is the only coefficient set an RGB buffer takes.
        let bad = !yuv && (state.current.0.is_some_and(|(c, _)| c != 1) || state.current.1.is_some());
        if bad && let Some(object) = &state.object {
            let msg = format!("{:?} on buffer format {format:#x}", state.current);
            log.errors.push(format!("pixel_format: {msg}"));
            object.post_error(wp_color_representation_surface_v1::Error::PixelFormat, msg);
        }
    }
}

impl GlobalDispatch<WpColorRepresentationManagerV1, ()> for App {
    fn bind(
        app: &mut Self,
        _: &DisplayHandle,
        _: &Client,
        resource: New<WpColorRepresentationManagerV1>,
        _: &(),
        data_init: &mut DataInit<'_, Self>,
    ) {
        let manager = data_init.init(resource, ());
        for &mode in app
            .colour
            .as_ref()
            .map(|c| c.alpha_modes.as_slice())
            .unwrap_or_default()
        {
            if let Ok(mode) = wp_color_representation_surface_v1::AlphaMode::try_from(mode) {
                manager.supported_alpha_mode(mode);
            }
        }
        for &(c, r) in app.colour.as_ref().map(|c| c.pairs.as_slice()).unwrap_or_default() {
            if let (Ok(c), Ok(r)) = (
                wp_color_representation_surface_v1::Coefficients::try_from(c),
                wp_color_representation_surface_v1::Range::try_from(r),
            ) {
                manager.supported_coefficients_and_ranges(c, r);
            }
        }
        manager.done();
    }
}

impl Dispatch<WpColorRepresentationManagerV1, ()> for App {
    fn request(
        app: &mut Self,
        _: &Client,
        manager: &WpColorRepresentationManagerV1,
        request: wp_color_representation_manager_v1::Request,
        _: &(),
        _: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        let Some(colour) = app.colour.as_mut() else { return };
        if let wp_color_representation_manager_v1::Request::GetSurface { id, surface } = request {
            let state = colour.surfaces.entry(surface.id()).or_default();
            if state.object.is_some() {
                colour.log.lock().unwrap().errors.push("surface_exists".into());
                manager.post_error(
                    wp_color_representation_manager_v1::Error::SurfaceExists,
                    "surface exists",
                );
                return;
            }
            state.object = Some(data_init.init(id, surface));
        }
    }
}

impl Dispatch<WpColorRepresentationSurfaceV1, WlSurface> for App {
    fn request(
        app: &mut Self,
        _: &Client,
        object: &WpColorRepresentationSurfaceV1,
        request: wp_color_representation_surface_v1::Request,
        surface: &WlSurface,
        _: &DisplayHandle,
        _: &mut DataInit<'_, Self>,
    ) {
        use wp_color_representation_surface_v1::{Error, Request};
        let Some(colour) = app.colour.as_mut() else { return };
        let listed = colour.pairs.clone();
        let alpha_modes = colour.alpha_modes.clone();
        let state = colour.surfaces.entry(surface.id()).or_default();
        let mut log = colour.log.lock().unwrap();
        match request {
            Request::SetCoefficientsAndRange { coefficients, range } => {
                let pair = (u32::from(coefficients), u32::from(range));
                if !listed.contains(&pair) {
                    log.errors.push(format!("coefficients: {pair:?} not listed"));
                    object.post_error(Error::Coefficients, format!("{pair:?} not listed"));
                    return;
                }
                state.pending.0 = Some(pair);
            }
            Request::SetChromaLocation { chroma_location } => state.pending.1 = Some(u32::from(chroma_location)),
            Request::SetAlphaMode { alpha_mode } => {
                let mode = u32::from(alpha_mode);
                if !alpha_modes.contains(&mode) {
                    log.errors.push(format!("alpha_mode: {mode} not listed"));
                    object.post_error(Error::AlphaMode, format!("{mode} not listed"));
                    return;
                }
                state.pending_alpha = Some(mode);
            }
            Request::Destroy => {
                // Unsets everything at the next commit.
                state.object = None;
                state.pending = (None, None);
                state.pending_alpha = None;
            }
            _ => {}
        }
    }
}

impl GlobalDispatch<WpColorManagerV1, ()> for App {
    fn bind(
        _: &mut Self,
        _: &DisplayHandle,
        _: &Client,
        resource: New<WpColorManagerV1>,
        _: &(),
        data_init: &mut DataInit<'_, Self>,
    ) {
        use wp_color_manager_v1::{Feature, Primaries, RenderIntent, TransferFunction};
        let m = data_init.init(resource, ());
        m.supported_intent(RenderIntent::Perceptual);
        m.supported_feature(Feature::Parametric);
        m.supported_feature(Feature::SetMasteringDisplayPrimaries);
        m.supported_tf_named(TransferFunction::St2084Pq);
        m.supported_tf_named(TransferFunction::Gamma22);
        m.supported_primaries_named(Primaries::Srgb);
        m.supported_primaries_named(Primaries::Bt2020);
        m.done();
    }
}

impl Dispatch<WpColorManagerV1, ()> for App {
    fn request(
        app: &mut Self,
        _: &Client,
        _: &WpColorManagerV1,
        request: wp_color_manager_v1::Request,
        _: &(),
        _: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        let Some(colour) = app.colour.as_mut() else { return };
        match request {
            wp_color_manager_v1::Request::CreateParametricCreator { obj } => {
                data_init.init(obj, Mutex::new(DescriptionParams::default()));
            }
            wp_color_manager_v1::Request::GetSurface { id, surface } => {
                colour.surfaces.entry(surface.id()).or_default().managed = true;
                data_init.init(id, surface);
            }
            _ => {}
        }
    }
}

impl Dispatch<WpImageDescriptionCreatorParamsV1, Mutex<DescriptionParams>> for App {
    fn request(
        app: &mut Self,
        _: &Client,
        _: &WpImageDescriptionCreatorParamsV1,
        request: wp_image_description_creator_params_v1::Request,
        params: &Mutex<DescriptionParams>,
        _: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        use wp_image_description_creator_params_v1::Request;
        let mut p = params.lock().unwrap();
        match request {
            Request::SetTfNamed { tf } => p.tf = Some(u32::from(tf)),
            Request::SetPrimariesNamed { primaries } => p.primaries = Some(u32::from(primaries)),
            Request::SetMasteringDisplayPrimaries {
                r_x,
                r_y,
                g_x,
                g_y,
                b_x,
                b_y,
                w_x,
                w_y,
            } => p.mastering_primaries = Some([r_x, r_y, g_x, g_y, b_x, b_y, w_x, w_y]),
            Request::SetMasteringLuminance { min_lum, max_lum } => p.mastering_luminance = Some((min_lum, max_lum)),
            Request::SetMaxCll { max_cll } => p.max_cll = Some(max_cll),
            Request::SetMaxFall { max_fall } => p.max_fall = Some(max_fall),
            Request::Create { image_description } => {
                let Some(colour) = app.colour.as_mut() else { return };
                let mut log = colour.log.lock().unwrap();
                let index = log.descriptions.len();
                log.descriptions.push(p.clone());
                let d = data_init.init(image_description, index);
                d.ready(index as u32 + 1);
            }
            _ => {}
        }
    }
}

impl Dispatch<WpImageDescriptionV1, usize> for App {
    fn request(
        _: &mut Self,
        _: &Client,
        _: &WpImageDescriptionV1,
        _: wp_image_description_v1::Request,
        _: &usize,
        _: &DisplayHandle,
        _: &mut DataInit<'_, Self>,
    ) {
    }
}

impl Dispatch<WpColorManagementSurfaceV1, WlSurface> for App {
    fn request(
        app: &mut Self,
        _: &Client,
        _: &WpColorManagementSurfaceV1,
        request: wp_color_management_surface_v1::Request,
        surface: &WlSurface,
        _: &DisplayHandle,
        _: &mut DataInit<'_, Self>,
    ) {
        let Some(colour) = app.colour.as_mut() else { return };
        let state = colour.surfaces.entry(surface.id()).or_default();
        match request {
            wp_color_management_surface_v1::Request::SetImageDescription { image_description, .. } => {
                state.pending_description = image_description.data::<usize>().copied();
            }
            wp_color_management_surface_v1::Request::UnsetImageDescription
            | wp_color_management_surface_v1::Request::Destroy => state.pending_description = None,
            _ => {}
        }
    }
}

delegate_compositor!(App);
delegate_shm!(App);
delegate_xdg_shell!(App);
delegate_seat!(App);
delegate_dmabuf!(App);
delegate_drm_syncobj!(App);
delegate_viewporter!(App);
smithay::delegate_fifo!(App);
smithay::delegate_commit_timing!(App);
smithay::delegate_presentation!(App);

/// `CLOCK_MONOTONIC`'s id, the presentation clock of the paced compositor.
fn libc_clock_monotonic() -> u32 {
    1
}

impl App {
    /// Renders the toplevels' surface trees at (0, 0) on a black output.
    fn render(&mut self) -> Result<Capture, String> {
        let (w, h) = self.size;
        let size = Size::from((w, h));
        let mut image = self
            .renderer
            .create_buffer(Fourcc::Argb8888, size)
            .map_err(|e| format!("create_buffer: {e}"))?;
        let toplevels: Vec<WlSurface> = self
            .xdg_shell_state
            .toplevel_surfaces()
            .iter()
            .map(|t| t.wl_surface().clone())
            .collect();
        let elements: Vec<WaylandSurfaceRenderElement<PixmanRenderer>> = toplevels
            .iter()
            .flat_map(|s| render_elements_from_surface_tree(&mut self.renderer, s, (0, 0), 1.0, 1.0, Kind::Unspecified))
            .collect();
        let mut target = self.renderer.bind(&mut image).map_err(|e| format!("bind: {e}"))?;
        let damage = Rectangle::from_size(Size::from((w, h)));
        {
            let mut frame = self
                .renderer
                .render(&mut target, Size::from((w, h)), Transform::Normal)
                .map_err(|e| format!("render: {e}"))?;
            frame
                .clear(Color32F::new(0.0, 0.0, 0.0, 1.0), &[damage])
                .map_err(|e| format!("clear: {e}"))?;
            draw_render_elements(&mut frame, 1.0, &elements, &[damage]).map_err(|e| format!("draw: {e}"))?;
            let _ = frame.finish().map_err(|e| format!("finish: {e}"))?;
        }
        let mapping = self
            .renderer
            .copy_framebuffer(&target, Rectangle::from_size(Size::from((w, h))), Fourcc::Argb8888)
            .map_err(|e| format!("copy_framebuffer: {e}"))?;
        let pixels = self
            .renderer
            .map_texture(&mapping)
            .map_err(|e| format!("map_texture: {e}"))?
            .to_vec();
        Ok(Capture {
            width: w as u32,
            height: h as u32,
            pixels,
        })
    }

    /// The seat does `actions` (see [`Action`]).
    fn input(&mut self, actions: &[Action]) -> Result<(), String> {
        let pointer = self.seat.get_pointer().ok_or("the seat has no pointer")?;
        let keyboard = self.seat.get_keyboard().ok_or("the seat has no keyboard")?;
        let toplevel = self
            .xdg_shell_state
            .toplevel_surfaces()
            .first()
            .map(|t| t.wl_surface().clone())
            .ok_or("no toplevel")?;
        for action in actions {
            let serial = SERIAL_COUNTER.next_serial();
            let time = self.start.elapsed().as_millis() as u32;
            match *action {
                Action::PointerTo(x, y) => {
                    let location = Point::<f64, Logical>::from((x, y));
                    let focus = under_from_surface_tree(&toplevel, location, (0, 0), WindowSurfaceType::ALL)
                        .map(|(surface, at)| (surface, at.to_f64()));
                    pointer.motion(self, focus, &MotionEvent { location, serial, time });
                }
                Action::Button(button, down) => {
                    let state = if down {
                        ButtonState::Pressed
                    } else {
                        ButtonState::Released
                    };
                    pointer.button(
                        self,
                        &ButtonEvent {
                            serial,
                            time,
                            button,
                            state,
                        },
                    );
                }
                Action::Scroll(steps) => {
                    let frame = AxisFrame::new(time)
                        .source(AxisSource::Wheel)
                        .value(Axis::Vertical, f64::from(steps) * 15.0)
                        .v120(Axis::Vertical, steps * 120);
                    pointer.axis(self, frame);
                }
                Action::Key(code, down) => {
                    if keyboard.current_focus().as_ref() != Some(&toplevel) {
                        keyboard.set_focus(self, Some(toplevel.clone()), serial);
                    }
                    let state = if down { KeyState::Pressed } else { KeyState::Released };
                    keyboard.input::<(), _>(self, Keycode::new(code + 8), state, serial, time, |_, _, _| {
                        FilterResult::Forward
                    });
                }
            }
            if !matches!(action, Action::Key(..)) {
                pointer.frame(self);
            }
        }
        Ok(())
    }

    /// Transactions: the first commit of a toplevel with a buffer is
    /// answered with a configure to the output's size.
    fn lay_out_once_mapped(&mut self, surface: &WlSurface) {
        let size = self.size;
        let Some(laid_out) = &mut self.transactions else {
            return;
        };
        if laid_out.contains_key(&surface.id()) {
            return;
        }
        let has_buffer = with_states(surface, |states| {
            states
                .data_map
                .get::<RendererSurfaceStateUserData>()
                .and_then(|d| d.lock().ok().map(|d| d.buffer().is_some()))
                .unwrap_or(false)
        });
        let toplevel = self
            .xdg_shell_state
            .toplevel_surfaces()
            .iter()
            .find(|t| t.wl_surface() == surface)
            .cloned();
        if let (true, Some(t)) = (has_buffer, toplevel) {
            t.with_pending_state(|s| s.size = Some(size.into()));
            laid_out.insert(surface.id(), t.send_configure());
        }
    }

    /// Transactions: whether `toplevel` committed the configure of its
    /// layout (always true without transactions, and before the layout).
    fn layout_committed(&self, toplevel: &ToplevelSurface) -> bool {
        let Some(serial) = self
            .transactions
            .as_ref()
            .and_then(|t| t.get(&toplevel.wl_surface().id()))
        else {
            return true;
        };
        with_states(toplevel.wl_surface(), |states| {
            states
                .data_map
                .get::<smithay::wayland::shell::xdg::XdgToplevelSurfaceData>()
                .and_then(|d| d.lock().ok().map(|d| d.current_serial == Some(*serial)))
                .unwrap_or(false)
        })
    }

    fn send_frames(&self, time: u32) {
        if self.windows_hidden.load(Ordering::SeqCst) {
            return;
        }
        for t in self.xdg_shell_state.toplevel_surfaces() {
            if !self.layout_committed(t) {
                continue;
            }
            with_surface_tree_downward(
                t.wl_surface(),
                (),
                |_, _, &()| TraversalAction::DoChildren(()),
                |_, states, &()| {
                    let current = states.data_map.get::<RendererSurfaceStateUserData>().and_then(|d| {
                        d.lock()
                            .ok()?
                            .buffer()
                            .and_then(|b| Some(get_dmabuf(b).ok()?.format().code))
                    });
                    if self.hidden.is_some() && current == self.hidden {
                        return;
                    }
                    for callback in states
                        .cached_state
                        .get::<SurfaceAttributes>()
                        .current()
                        .frame_callbacks
                        .drain(..)
                    {
                        callback.done(time);
                    }
                    // No output to present on: every feedback is discarded.
                    for feedback in states
                        .cached_state
                        .get::<smithay::wayland::presentation::PresentationFeedbackCachedState>()
                        .current()
                        .callbacks
                        .drain(..)
                    {
                        feedback.discarded();
                    }
                },
                |_, _, &()| true,
            );
        }
    }
}

fn run(listener: ListeningSocket, node: Option<std::os::fd::OwnedFd>, config: Config, rx: mpsc::Receiver<Request>) {
    let Config {
        windows_hidden,
        width,
        height,
        offer,
        fence_card,
        hidden,
        colour,
        input,
        paced,
        transactions,
        repaint,
    } = config;
    let mut display: Display<App> = Display::new().expect("wayland display");
    let dh = display.handle();
    let renderer = PixmanRenderer::new().expect("pixman renderer");
    let mut formats: Vec<smithay::backend::allocator::Format> = renderer.dmabuf_formats().into_iter().collect();
    if colour.is_some() {
        formats.push(smithay::backend::allocator::Format {
            code: Fourcc::Nv12,
            modifier: smithay::backend::allocator::Modifier::Linear,
        });
        dh.create_global::<App, WpColorRepresentationManagerV1, ()>(1, ());
        dh.create_global::<App, WpColorManagerV1, ()>(1, ());
    }
    let mut dmabuf_state = DmabufState::new();
    // linux-dmabuf v5 with default feedback naming the render node, as a
    // compositor with a device does (none: device 0, for colour tests).
    let rdev = node
        .as_ref()
        .map_or(0, |n| rustix::fs::fstat(n).expect("fstat the render node").st_rdev);
    let feedback = DmabufFeedbackBuilder::new(rdev as _, formats)
        .build()
        .expect("dma-buf feedback");
    // The input compositor shows what it is given (its pixels are
    // checked): wl_shm only, which pixman renders (it cannot map memfd
    // "dma-bufs"), and wp_viewporter, so the window's surfaces have the
    // sizes a desktop compositor gives them (input is hit-tested there).
    let _dmabuf_global = input
        .is_none()
        .then(|| dmabuf_state.create_global_with_default_feedback::<App>(&dh, &feedback));
    let _viewporter = input.map(|_| smithay::wayland::viewporter::ViewporterState::new::<App>(&dh));
    let _paced_globals = paced.is_some().then(|| {
        (
            smithay::wayland::fifo::FifoManagerState::unmanaged::<App>(&dh),
            smithay::wayland::commit_timing::CommitTimingManagerState::unmanaged::<App>(&dh),
            smithay::wayland::presentation::PresentationState::new::<App>(&dh, libc_clock_monotonic()),
        )
    });
    let device = node.map(|n| DrmDeviceFd::new(DeviceFd::from(n)));
    let syncobj_state = (offer == Offer::DrmSyncobj)
        .then_some(())
        .and(device)
        .and_then(|device| {
            smithay::wayland::drm_syncobj::supports_syncobj_eventfd(&device)
                .then(|| DrmSyncobjState::new::<App>(&dh, device))
        });
    if offer == Offer::ExplicitSyncV1 {
        dh.create_global::<App, ZwpLinuxExplicitSynchronizationV1, ()>(2, ());
    }
    let mut seat_state = SeatState::new();
    let mut seat: Seat<App> = seat_state.new_wl_seat(&dh, "test");
    if input.is_some() {
        seat.add_pointer();
        seat.add_keyboard(XkbConfig::default(), 200, 25)
            .expect("a keyboard with libxkbcommon's default keymap (xkb-data)");
    }
    let mut app = App {
        compositor_state: CompositorState::new::<App>(&dh),
        xdg_shell_state: XdgShellState::new::<App>(&dh),
        shm_state: ShmState::new::<App>(&dh, vec![]),
        seat_state,
        dmabuf_state,
        syncobj_state,
        renderer,
        size: (width as i32, height as i32),
        explicit_v1: HashMap::new(),
        release_fencer: fence_card.map(|card| ReleaseFencer {
            card,
            pending: Vec::new(),
        }),
        hidden,
        windows_hidden,
        colour,
        seat,
        toplevel_size: input,
        paced_log: paced,
        transactions: transactions.then(HashMap::new),
        start: Instant::now(),
    };
    let mut clients: Vec<Client> = Vec::new();
    let start = Instant::now();
    let mut last_frame = Instant::now();
    loop {
        if let Ok(Some(stream)) = listener.accept()
            && let Ok(c) = dh.clone().insert_client(stream, Arc::new(ClientState::default()))
        {
            clients.push(c);
        }
        let _ = display.dispatch_clients(&mut app);
        // Commits whose acquire point signalled since are applied now.
        for c in &clients {
            if let Some(data) = c.get_data::<ClientState>() {
                data.compositor_state.blocker_cleared(&mut app, &dh);
            }
        }
        loop {
            match rx.try_recv() {
                Ok(Request::Capture(reply)) => {
                    let _ = reply.send(app.render());
                }
                Ok(Request::Input(actions, reply)) => {
                    let _ = reply.send(app.input(&actions));
                }
                Ok(Request::SignalReleaseFences(reply)) => {
                    let pending = app
                        .release_fencer
                        .as_mut()
                        .map(|f| std::mem::take(&mut f.pending))
                        .unwrap_or_default();
                    for (vgem, id) in &pending {
                        vgem.signal(*id);
                    }
                    let _ = reply.send(pending.len());
                }
                Ok(Request::Stop) | Err(mpsc::TryRecvError::Disconnected) => return,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if last_frame.elapsed() >= repaint {
            // A repaint: what the surfaces show now, then their callbacks.
            let _ = app.render();
            app.send_frames(start.elapsed().as_millis() as u32);
            last_frame = Instant::now();
        }
        let _ = display.flush_clients();
        std::thread::sleep(Duration::from_millis(2));
    }
}
