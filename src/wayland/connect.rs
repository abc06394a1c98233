//! Making a [`Presenter`]: connecting (the environment, a socket path,
//! an application's own connection and surface), binding the globals and
//! waiting, each wait bounded, for the initial events and the first
//! configure; explicit sync chosen where it is usable.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use wayland_client::backend::ObjectId;
use wayland_client::protocol::{wl_compositor::WlCompositor, wl_shm::WlShm, wl_surface::WlSurface};
use wayland_client::{Connection, Proxy};
use wayland_protocols::wp::color_management::v1::client::wp_color_manager_v1::WpColorManagerV1;
use wayland_protocols::wp::color_representation::v1::client::wp_color_representation_manager_v1::WpColorRepresentationManagerV1;
use wayland_protocols::wp::linux_dmabuf::zv1::client::zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1;
use wayland_protocols::wp::linux_drm_syncobj::v1::client::wp_linux_drm_syncobj_manager_v1::WpLinuxDrmSyncobjManagerV1;
use wayland_protocols::wp::linux_explicit_synchronization::zv1::client::zwp_linux_explicit_synchronization_v1::ZwpLinuxExplicitSynchronizationV1;
use wayland_protocols::wp::presentation_time::client::wp_presentation::WpPresentation;
use wayland_protocols::wp::viewporter::client::wp_viewporter::WpViewporter;

use super::colour::ColourRep;
use super::colour_management::ColourManagement;
use super::error::WaylandError;
use super::globals::{CONNECT_TIMEOUT, Globals};
use super::linux_dmabuf::{MAX_DMABUF_VERSION, request_feedback};
use super::presenter::{Presenter, SYNC_ENV};
use super::queue::State;
use super::stats::PresentStats;
use super::sync::{DrmSyncobj, Explicit, ExplicitV1};
use super::view::View;
use super::window::{Target, Window};

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
        let presentation: Option<WpPresentation> = globals.bind(&qh, 1..=2, ());
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
            Ok((title, app_id)) => Window::toplevel(
                &globals,
                &qh,
                &compositor,
                viewporter.as_ref(),
                shm.as_ref(),
                title,
                app_id,
            )?,
            Err(parent) => {
                // No xdg configure to wait for: the application owns the role.
                state.configured = true;
                Window::embedded(&globals, &qh, &compositor, viewporter.as_ref(), &parent)?
            }
        };
        let paced = super::pacing::Paced::new(&globals, &qh, &window.surface);
        let feedbacks = match &dmabuf {
            Some(d) => request_feedback(d, &window.surface, &qh, &mut state),
            None => Vec::new(),
        };
        let mut this = Self {
            conn,
            queue,
            qh,
            state,
            compositor,
            shm,
            dmabuf,
            feedbacks,
            viewporter,
            window,
            cache: HashMap::new(),
            import_kinds: HashMap::new(),
            shm_buffers: Vec::new(),
            shm_unmappable: std::collections::HashSet::new(),
            shown: Default::default(),
            overlays: Default::default(),
            stats: PresentStats::default(),
            render_size: None,
            view: View::default(),
            presentation,
            next_target: None,
            paced,
            last_frame: None,
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
                    this.sync_fallback = Some(crate::Report(&e).to_string());
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
}
