//! Where frames go: our own `xdg_toplevel` window (with a seat for keys),
//! or a subsurface of an application's `wl_surface` (embedding). Every
//! object made here is destroyed in [`Window::destroy`], on the
//! application's connection too.

use wayland_client::protocol::{
    wl_compositor::WlCompositor,
    wl_keyboard::{self, WlKeyboard},
    wl_region::WlRegion,
    wl_seat::{self, WlSeat},
    wl_subcompositor::WlSubcompositor,
    wl_subsurface::WlSubsurface,
    wl_surface::WlSurface,
};
use wayland_client::{Connection, Dispatch, Proxy, QueueHandle, WEnum, delegate_noop};
use wayland_protocols::wp::viewporter::client::{wp_viewport::WpViewport, wp_viewporter::WpViewporter};
use wayland_protocols::xdg::shell::client::{
    xdg_surface::{self, XdgSurface},
    xdg_toplevel::{self, XdgToplevel},
    xdg_wm_base::{self, XdgWmBase},
};

use super::error::WaylandError;
use super::queue::State;

/// Most key presses kept until [`Presenter::take_keys`](super::Presenter::take_keys)
/// (the oldest go).
const MAX_PENDING_KEYS: usize = 64;

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

enum Role {
    Toplevel {
        wm: XdgWmBase,
        xdg: XdgSurface,
        toplevel: XdgToplevel,
        seat: Option<WlSeat>,
    },
    /// A desynchronized subsurface of the application's surface, which
    /// stays the application's.
    Embedded {
        subsurface: WlSubsurface,
        parent: WlSurface,
    },
}

/// Our surface, its role and its viewport.
pub(super) struct Window {
    /// The surface we attach to: always ours.
    pub(super) surface: WlSurface,
    pub(super) viewport: Option<WpViewport>,
    role: Role,
}

impl Window {
    /// Our own toplevel window; a seat is bound for keys.
    pub(super) fn toplevel(
        globals: &super::globals::Globals,
        qh: &QueueHandle<State>,
        compositor: &WlCompositor,
        viewporter: Option<&WpViewporter>,
        title: String,
        app_id: String,
    ) -> Result<Self, WaylandError> {
        let wm: XdgWmBase = globals
            .bind(qh, 1..=5, ())
            .ok_or(WaylandError::MissingGlobal("xdg_wm_base"))?;
        let surface = compositor.create_surface(qh, ());
        let viewport = viewporter.map(|v| v.get_viewport(&surface, qh, ()));
        let xdg = wm.get_xdg_surface(&surface, qh, ());
        let toplevel = xdg.get_toplevel(qh, ());
        toplevel.set_title(title);
        toplevel.set_app_id(app_id);
        surface.commit();
        let seat = globals.bind(qh, 1..=5, ());
        Ok(Self {
            surface,
            viewport,
            role: Role::Toplevel {
                wm,
                xdg,
                toplevel,
                seat,
            },
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
        // The subsurface lives on without its factory.
        subcompositor.destroy();
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
            role: Role::Embedded {
                subsurface,
                parent: parent.clone(),
            },
        })
    }

    /// Whether this is a subsurface of an application's surface.
    pub(super) fn is_embedded(&self) -> bool {
        matches!(self.role, Role::Embedded { .. })
    }

    /// Places an embedded window's subsurface at (x, y) of the
    /// application's surface. A subsurface position is the parent's state,
    /// so the parent is committed once to apply it (as waylandsink does);
    /// nothing for our own toplevel.
    pub(super) fn set_position(&self, x: i32, y: i32) {
        if let Role::Embedded { subsurface, parent } = &self.role {
            subsurface.set_position(x, y);
            parent.commit();
        }
    }

    /// Destroys every object made for the window (and the keyboard the
    /// seat gave), children before parents. The presenter calls it once,
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
            } => {
                if let Some(k) = state.keyboard.take()
                    && k.version() >= 3
                {
                    k.release();
                }
                if let Some(s) = seat
                    && s.version() >= 5
                {
                    s.release();
                }
                toplevel.destroy();
                xdg.destroy();
                wm.destroy();
            }
            Role::Embedded { subsurface, .. } => subsurface.destroy(),
        }
        self.surface.destroy();
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

delegate_noop!(State: ignore WlSubcompositor);
delegate_noop!(State: ignore WlSubsurface);
delegate_noop!(State: ignore WlRegion);
delegate_noop!(State: ignore WpViewporter);
delegate_noop!(State: ignore WpViewport);

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
