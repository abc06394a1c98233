//! Where frames go: our own `xdg_toplevel` window (with a seat for input,
//! see [`input`](super::input)),
//! or a subsurface of an application's `wl_surface` (embedding). Every
//! object made here is destroyed in [`Window::destroy`], on the
//! application's connection too.
//!
//! Our toplevel is two surfaces, as waylandsink's: the *area* (the
//! `xdg_toplevel`, one black pixel scaled over the whole window: the
//! borders) and the *video* surface, a desynchronized subsurface of it
//! placed and scaled by the [`Layout`]. Frames only ever touch the video
//! surface; the area is committed when the layout changes (a configure,
//! fullscreen, a new frame size, a turn).

use std::os::fd::AsFd;

use wayland_client::protocol::{
    wl_buffer::{self, WlBuffer},
    wl_compositor::WlCompositor,
    wl_output::{self, WlOutput},
    wl_region::WlRegion,
    wl_seat::WlSeat,
    wl_shm::{self, WlShm},
    wl_subcompositor::WlSubcompositor,
    wl_subsurface::WlSubsurface,
    wl_surface::WlSurface,
};
use wayland_client::{Connection, Dispatch, Proxy, QueueHandle, delegate_noop};
use wayland_protocols::wp::single_pixel_buffer::v1::client::wp_single_pixel_buffer_manager_v1::WpSinglePixelBufferManagerV1;
use wayland_protocols::wp::viewporter::client::{wp_viewport::WpViewport, wp_viewporter::WpViewporter};
use wayland_protocols::xdg::shell::client::{
    xdg_surface::{self, XdgSurface},
    xdg_toplevel::{self, XdgToplevel},
    xdg_wm_base::{self, XdgWmBase},
};

use super::error::WaylandError;
use super::queue::State;
use super::view::{Layout, Orientation};

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
    /// (GstVideoOverlay-style embedding). The application keeps the role,
    /// the window and the input; we show frames in a subsurface of it
    /// (never touching its buffer or its viewport).
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

// One per presenter: boxing the larger variant would save nothing.
#[allow(clippy::large_enum_variant)]
enum Role {
    Toplevel {
        wm: XdgWmBase,
        xdg: XdgSurface,
        toplevel: XdgToplevel,
        seat: Option<WlSeat>,
        /// The window: borders, and the video's parent.
        area: WlSurface,
        area_viewport: Option<WpViewport>,
        /// The video surface's place in the area.
        subsurface: WlSubsurface,
        /// One black pixel (the borders), attached once.
        border: WlBuffer,
        /// Every output, for `fullscreen` by name.
        outputs: Vec<WlOutput>,
    },
    /// A desynchronized subsurface of the application's surface, which
    /// stays the application's.
    Embedded {
        subsurface: WlSubsurface,
        parent: WlSurface,
        /// The render rectangle's corner in the parent.
        origin: (i32, i32),
    },
}

/// User data of a `wl_buffer` that is not a frame's (the borders' black
/// pixel, an overlay image): its releases are ignored.
pub(super) struct NotAFrame;

/// Our surfaces, their roles and the video's viewport.
pub(super) struct Window {
    /// The video surface, the one frames are attached to: always ours.
    pub(super) surface: WlSurface,
    pub(super) viewport: Option<WpViewport>,
    /// Kept for the overlays' subsurfaces (children of the video surface).
    pub(super) subcompositor: WlSubcompositor,
    role: Role,
    /// The layout and turn last applied (None: nothing yet).
    applied: Option<(Layout, Orientation)>,
}

impl Window {
    /// Our own toplevel window (the area surface with the video
    /// subsurface); a seat is bound for input, every output for
    /// fullscreen.
    pub(super) fn toplevel(
        globals: &super::globals::Globals,
        qh: &QueueHandle<State>,
        compositor: &WlCompositor,
        viewporter: Option<&WpViewporter>,
        shm: Option<&WlShm>,
        title: String,
        app_id: String,
    ) -> Result<Self, WaylandError> {
        let wm: XdgWmBase = globals
            .bind(qh, 1..=5, ())
            .ok_or(WaylandError::MissingGlobal("xdg_wm_base"))?;
        let border = black_pixel(globals, qh, shm)?;
        let subcompositor: WlSubcompositor = globals
            .bind(qh, 1..=1, ())
            .ok_or(WaylandError::MissingGlobal("wl_subcompositor"))?;
        let area = compositor.create_surface(qh, ());
        let area_viewport = viewporter.map(|v| v.get_viewport(&area, qh, ()));
        let surface = compositor.create_surface(qh, ());
        let viewport = viewporter.map(|v| v.get_viewport(&surface, qh, ()));
        let subsurface = subcompositor.get_subsurface(&surface, &area, qh, ());
        subsurface.set_desync();
        let xdg = wm.get_xdg_surface(&area, qh, ());
        let toplevel = xdg.get_toplevel(qh, ());
        toplevel.set_title(title);
        toplevel.set_app_id(app_id);
        area.commit();
        let seat = globals.bind(qh, 1..=5, ());
        let outputs = globals.bind_all(qh, 1..=4);
        Ok(Self {
            surface,
            viewport,
            subcompositor,
            role: Role::Toplevel {
                wm,
                xdg,
                toplevel,
                seat,
                area,
                area_viewport,
                subsurface,
                border,
                outputs,
            },
            applied: None,
        })
    }

    /// A subsurface of the application's `parent`, placed at its origin,
    /// desynchronized (our commits show at once), taking no input (an
    /// empty input region: pointer and keys stay the application's). The
    /// parent is committed once, as waylandsink does, so that the
    /// compositor applies the new subsurface.
    pub(super) fn embedded(
        globals: &super::globals::Globals,
        qh: &QueueHandle<State>,
        compositor: &WlCompositor,
        viewporter: Option<&WpViewporter>,
        parent: &WlSurface,
    ) -> Result<Self, WaylandError> {
        let subcompositor: WlSubcompositor = globals
            .bind(qh, 1..=1, ())
            .ok_or(WaylandError::MissingGlobal("wl_subcompositor"))?;
        let surface = compositor.create_surface(qh, ());
        let subsurface = subcompositor.get_subsurface(&surface, parent, qh, ());
        subsurface.set_position(0, 0);
        subsurface.set_desync();
        let region = compositor.create_region(qh, ());
        surface.set_input_region(Some(&region));
        region.destroy();
        let viewport = viewporter.map(|v| v.get_viewport(&surface, qh, ()));
        surface.commit();
        parent.commit();
        Ok(Self {
            surface,
            viewport,
            subcompositor,
            role: Role::Embedded {
                subsurface,
                parent: parent.clone(),
                origin: (0, 0),
            },
            applied: None,
        })
    }

    /// Whether this is a subsurface of an application's surface.
    pub(super) fn is_embedded(&self) -> bool {
        matches!(self.role, Role::Embedded { .. })
    }

    /// Where an embedded window's area starts in the application's
    /// surface (the render rectangle's corner); applied with the next
    /// layout. Nothing for our own toplevel.
    pub(super) fn set_origin(&mut self, x: i32, y: i32) {
        if let Role::Embedded { origin, .. } = &mut self.role
            && *origin != (x, y)
        {
            *origin = (x, y);
            self.applied = None;
        }
    }

    /// The layout and turn applied last (None before the first frame).
    pub(super) fn applied(&self) -> Option<(Layout, Orientation)> {
        self.applied
    }

    /// Whether `layout` and `orientation` differ from what was applied.
    pub(super) fn changes(&self, layout: &Layout, orientation: Orientation) -> bool {
        self.applied != Some((*layout, orientation))
    }

    /// Whether applying `layout` moves or sizes the window (then
    /// [`apply`](Self::apply) commits our area, or the application's
    /// surface).
    pub(super) fn moves(&self, layout: &Layout) -> bool {
        self.applied.is_none_or(|(l, _)| l != *layout)
    }

    /// Commits our toplevel's xdg surface (the area) as it is: an acked
    /// configure takes effect with that surface's next commit
    /// (`xdg_surface.ack_configure`), and a window manager may hold the
    /// window's painting and frame callbacks until then (sway's
    /// transactions, for up to 200 ms). Nothing for an embedded surface,
    /// whose configures are the application's.
    pub(super) fn commit_xdg_surface(&self) {
        if let Role::Toplevel { area, .. } = &self.role {
            area.commit();
        }
    }

    /// Applies a layout to the video surface's pending state (its turn
    /// and its size; the caller commits it) and to its place: our area
    /// is sized (the black pixel stretched over it) and committed with the
    /// video's position; an embedded subsurface is moved and the
    /// application's surface committed once to apply that (a subsurface
    /// position is its parent's state), as waylandsink does.
    ///
    /// Returns the frame callback asked for with the area's first commit
    /// (when the compositor first paints our window).
    pub(super) fn apply(
        &mut self,
        layout: Layout,
        orientation: Orientation,
        qh: &QueueHandle<State>,
    ) -> Option<wayland_client::backend::ObjectId> {
        let mut first_paint = None;
        let first = self.applied.is_none();
        let moved = self.moves(&layout);
        let turned = self
            .applied
            .map_or(orientation != Orientation::Identity, |(_, o)| o != orientation);
        if turned && self.surface.version() >= 2 {
            self.surface.set_buffer_transform(transform(orientation));
        }
        if let Some(v) = &self.viewport {
            v.set_destination(clamp_i32(layout.video.width), clamp_i32(layout.video.height));
        }
        if moved {
            match &self.role {
                Role::Toplevel {
                    xdg,
                    area,
                    area_viewport,
                    subsurface,
                    border,
                    ..
                } => {
                    if first {
                        area.attach(Some(border), 0, 0);
                        first_paint = Some(area.frame(qh, ()).id());
                    }
                    // The window is the area, whatever the video surface's
                    // extent: a video that is larger for a moment (its new
                    // size or place not yet committed) must not make the
                    // window larger than a fullscreen or maximized
                    // configure allows (Weston's fatal xdg_wm_base error 4,
                    // invalid_surface_state).
                    xdg.set_window_geometry(0, 0, clamp_i32(layout.area.0), clamp_i32(layout.area.1));
                    if let Some(v) = area_viewport {
                        v.set_destination(clamp_i32(layout.area.0), clamp_i32(layout.area.1));
                    }
                    area.damage(0, 0, i32::MAX, i32::MAX);
                    subsurface.set_position(layout.video.x, layout.video.y);
                    area.commit();
                }
                Role::Embedded {
                    subsurface,
                    parent,
                    origin,
                } => {
                    subsurface.set_position(origin.0 + layout.video.x, origin.1 + layout.video.y);
                    parent.commit();
                }
            }
        }
        self.applied = Some((layout, orientation));
        first_paint
    }

    /// Asks the window manager for fullscreen (on `output` where given) or
    /// to leave it. Nothing for an embedded window (the application owns
    /// its window).
    pub(super) fn set_fullscreen(&self, on: bool, output: Option<&WlOutput>) {
        if let Role::Toplevel { toplevel, .. } = &self.role {
            if on {
                toplevel.set_fullscreen(output);
            } else {
                toplevel.unset_fullscreen();
            }
        }
    }

    /// Our toplevel's title (nothing when embedded).
    pub(super) fn set_title(&self, title: &str) {
        if let Role::Toplevel { toplevel, .. } = &self.role {
            toplevel.set_title(title.into());
        }
    }

    /// Where the area starts in the surface that takes input: (0, 0) for
    /// our toplevel, the render rectangle's corner in the application's
    /// surface when embedded.
    pub(super) fn origin(&self) -> (i32, i32) {
        match &self.role {
            Role::Toplevel { .. } => (0, 0),
            Role::Embedded { origin, .. } => *origin,
        }
    }

    /// Our toplevel's area surface (None when embedded).
    pub(super) fn area(&self) -> Option<&WlSurface> {
        match &self.role {
            Role::Toplevel { area, .. } => Some(area),
            Role::Embedded { .. } => None,
        }
    }

    /// Our outputs (empty when embedded).
    pub(super) fn outputs(&self) -> &[WlOutput] {
        match &self.role {
            Role::Toplevel { outputs, .. } => outputs,
            Role::Embedded { .. } => &[],
        }
    }

    /// Destroys every object made for the window (and the pointer and
    /// keyboard the seat gave), children before parents. The presenter calls it once,
    /// from its drop: the proxies are dead after it.
    pub(super) fn destroy(&self, state: &mut State) {
        if let Some(v) = &self.viewport {
            v.destroy();
        }
        match &self.role {
            Role::Toplevel {
                wm,
                xdg,
                toplevel,
                seat,
                area,
                area_viewport,
                subsurface,
                border,
                outputs,
            } => {
                state.input.release();
                if let Some(s) = seat
                    && s.version() >= 5
                {
                    s.release();
                }
                for o in outputs {
                    if o.version() >= 3 {
                        o.release();
                    }
                }
                // The video surface first: it is the area's child.
                subsurface.destroy();
                self.surface.destroy();
                toplevel.destroy();
                xdg.destroy();
                if let Some(v) = area_viewport {
                    v.destroy();
                }
                area.destroy();
                border.destroy();
                wm.destroy();
            }
            Role::Embedded { subsurface, .. } => {
                subsurface.destroy();
                self.surface.destroy();
            }
        }
        self.subcompositor.destroy();
    }
}

/// The black pixel the area shows: `wp_single_pixel_buffer_v1` where
/// offered, else a 1x1 `wl_shm` buffer over a zero-filled memfd (black in
/// XRGB8888, which every `wl_shm` takes).
fn black_pixel(
    globals: &super::globals::Globals,
    qh: &QueueHandle<State>,
    shm: Option<&WlShm>,
) -> Result<WlBuffer, WaylandError> {
    if let Some(manager) = globals.bind::<WpSinglePixelBufferManagerV1, _, _>(qh, 1..=1, ()) {
        let buffer = manager.create_u32_rgba_buffer(0, 0, 0, u32::MAX, qh, NotAFrame);
        manager.destroy();
        return Ok(buffer);
    }
    let shm = shm.ok_or(WaylandError::MissingGlobal(
        "wl_shm or wp_single_pixel_buffer_manager_v1 (the window's borders)",
    ))?;
    let fd = rustix::fs::memfd_create("dmabuf-interop-border", rustix::fs::MemfdFlags::CLOEXEC)
        .and_then(|fd| rustix::fs::ftruncate(&fd, 4).map(|()| fd))
        .map_err(|source| super::error::ShmError::Memfd {
            op: "memfd_create",
            source,
        })?;
    let pool = shm.create_pool(fd.as_fd(), 4, qh, ());
    let buffer = pool.create_buffer(0, 1, 1, 4, wl_shm::Format::Xrgb8888, qh, NotAFrame);
    pool.destroy();
    Ok(buffer)
}

/// The `wl_output.transform` that makes the compositor show a buffer
/// turned by `o` (`set_buffer_transform` names the turn the client has
/// applied, and the compositor undoes it: a buffer said to be turned 90
/// degrees counter-clockwise is shown turned 90 degrees clockwise).
pub(super) fn transform(o: Orientation) -> wl_output::Transform {
    match o {
        Orientation::Identity => wl_output::Transform::Normal,
        Orientation::Rotate90 => wl_output::Transform::_90,
        Orientation::Rotate180 => wl_output::Transform::_180,
        Orientation::Rotate270 => wl_output::Transform::_270,
        Orientation::FlipHorizontal => wl_output::Transform::Flipped,
        Orientation::FlipVertical => wl_output::Transform::Flipped180,
        Orientation::FlipUpperLeftLowerRight => wl_output::Transform::Flipped90,
        Orientation::FlipUpperRightLowerLeft => wl_output::Transform::Flipped270,
    }
}

pub(super) fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

delegate_noop!(State: ignore WlSubcompositor);
delegate_noop!(State: ignore WlSubsurface);
delegate_noop!(State: ignore WlRegion);
delegate_noop!(State: ignore WpViewporter);
delegate_noop!(State: ignore WpViewport);
delegate_noop!(State: ignore WpSinglePixelBufferManagerV1);

impl Dispatch<WlBuffer, NotAFrame> for State {
    fn event(_: &mut Self, _: &WlBuffer, _: wl_buffer::Event, _: &NotAFrame, _: &Connection, _: &QueueHandle<Self>) {
        // The black pixel stays attached for the window's life; its
        // release means nothing.
    }
}

impl Dispatch<WlOutput, ()> for State {
    fn event(
        state: &mut Self,
        output: &WlOutput,
        event: wl_output::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_output::Event::Name { name } = event {
            state.output_names.insert(output.id(), name);
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
            // The presenter lays the window out again for the new size.
            state.configure_changed = true;
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
            xdg_toplevel::Event::Configure { width, height, states } => {
                state.toplevel_size = (width > 0 && height > 0).then_some((width as u32, height as u32));
                // An array of native-endian u32 states.
                state.fullscreen = states
                    .chunks_exact(4)
                    .any(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) == xdg_toplevel::State::Fullscreen as u32);
            }
            xdg_toplevel::Event::Close => state.closed = true,
            _ => {}
        }
    }
}
