//! Where the Presenter's video goes and how its window behaves: the
//! application's render rectangle, the [`View`] (turn, pixel aspect
//! ratio, aspect rule), fullscreen and title, and the layout that follows
//! every change (a configure, a new rectangle or view) without a new
//! buffer. The frame path (`presenter.rs`) lays each new frame out with
//! [`Presenter::layout_for`] and [`Presenter::apply_layout`].

use wayland_client::Proxy;

use super::error::WaylandError;
use super::input::InputEvent;
use super::presenter::Presenter;
use super::queue::lost;
use super::view::{Layout, View};

impl Presenter {
    /// Where video goes inside an application's surface (GstVideoOverlay's
    /// render rectangle): the next frames are placed in the
    /// `width`x`height` rectangle at (x, y) by the [`View`] (fitted and
    /// centred, or stretched), the shown one at once (the application's
    /// surface is committed once to apply the subsurface's position).
    /// `None`, or a width or height of 0 or less, goes back to the frame's
    /// own size at (0, 0). Ignored for our own toplevel, which follows the
    /// compositor's configure.
    pub fn set_render_rectangle(&mut self, rect: Option<(i32, i32, i32, i32)>) -> Result<(), WaylandError> {
        let rect = rect.filter(|&(_, _, w, h)| w > 0 && h > 0);
        let (x, y) = rect.map_or((0, 0), |(x, y, _, _)| (x, y));
        self.window.set_origin(x, y);
        self.render_size = rect.map(|(_, _, w, h)| (w as u32, h as u32));
        self.relayout()
    }

    /// How frames are turned and placed (see [`View`]); the shown frame
    /// follows at once.
    pub fn set_view(&mut self, view: View) -> Result<(), WaylandError> {
        self.view = view;
        self.relayout()
    }

    /// The current [`View`].
    pub fn view(&self) -> View {
        self.view
    }

    /// Pointer and keyboard input on our window since the last call (at
    /// most the last [`MAX_PENDING_INPUT`](super::MAX_PENDING_INPUT)), in
    /// the order it came. Pointer positions are mapped into the pixels of
    /// the frame shown ([`Layout::to_buffer`]: the video's place, its
    /// scale and its turn undone); pointer events over the borders, or
    /// before any frame, are left out. Always empty for a foreign surface
    /// (the application owns input). Input is read whenever the presenter
    /// reads events (every frame).
    pub fn take_input(&mut self) -> Vec<InputEvent> {
        let events = std::mem::take(&mut self.state.input.events);
        let video = self.window.surface.id();
        let area = self.window.area().map(Proxy::id);
        let video_corner = self
            .window
            .applied()
            .map(|(l, _)| (f64::from(l.video.x), f64::from(l.video.y)));
        events
            .into_iter()
            .filter_map(|raw| {
                let Some(surface) = raw.surface else {
                    return Some(raw.event);
                };
                // Video surface coordinates are relative to its place in
                // the area.
                let (ox, oy) = if surface == video {
                    video_corner?
                } else if Some(&surface) == area.as_ref() {
                    (0.0, 0.0)
                } else {
                    return None;
                };
                let map = |x: f64, y: f64| self.area_to_frame(x + ox, y + oy);
                Some(match raw.event {
                    InputEvent::PointerMotion { x, y, modifiers } => {
                        let (x, y) = map(x, y)?;
                        InputEvent::PointerMotion { x, y, modifiers }
                    }
                    InputEvent::PointerButton {
                        button,
                        pressed,
                        x,
                        y,
                        modifiers,
                    } => {
                        let (x, y) = map(x, y)?;
                        InputEvent::PointerButton {
                            button,
                            pressed,
                            x,
                            y,
                            modifiers,
                        }
                    }
                    InputEvent::Scroll {
                        x,
                        y,
                        dx,
                        dy,
                        modifiers,
                    } => {
                        let (x, y) = map(x, y)?;
                        InputEvent::Scroll {
                            x,
                            y,
                            dx,
                            dy,
                            modifiers,
                        }
                    }
                    key @ InputEvent::Key { .. } => key,
                })
            })
            .collect()
    }

    /// The pixel of the shown frame under point (x, y) of the surface
    /// that takes input: our toplevel's window, or, embedded, the
    /// application's surface (the render rectangle's corner is taken
    /// off). None over the borders, outside the video, before any frame.
    pub fn window_to_frame(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let (ox, oy) = self.window.origin();
        self.area_to_frame(x - f64::from(ox), y - f64::from(oy))
    }

    /// [`window_to_frame`](Self::window_to_frame) from the area's
    /// coordinates, with the layout and turn on screen.
    fn area_to_frame(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let ((layout, orientation), (w, h)) = self.window.applied().zip(self.last_frame)?;
        layout.to_buffer(x, y, w, h, orientation)
    }

    /// Why the compositor's keymap could not be used (keys then come
    /// without names: no [`InputEvent::Key`]), if it could not.
    pub fn keymap_error(&self) -> Option<&str> {
        self.state.input.keymap_error.as_deref()
    }

    /// Where the last frame went (None before the first).
    pub fn layout(&self) -> Option<Layout> {
        self.last_frame.map(|(w, h)| self.layout_for(w, h))
    }

    /// Asks for our window to be fullscreen, on the output named `output`
    /// (`wl_output` v4 names, e.g. `"HDMI-A-1"`; `None`: the compositor
    /// chooses), or to leave fullscreen. The compositor answers with a
    /// configure, which the layout follows: the video fitted and centred
    /// in the output, black around it. An unknown name is
    /// [`WaylandError::UnknownOutput`], with the names there are. Ignored
    /// when embedded (the application owns its window).
    pub fn set_fullscreen(&mut self, fullscreen: bool, output: Option<&str>) -> Result<(), WaylandError> {
        let output = match output.filter(|_| fullscreen) {
            None => None,
            Some(name) => {
                let found = self
                    .window
                    .outputs()
                    .iter()
                    .find(|o| self.state.output_names.get(&o.id()).is_some_and(|n| n == name))
                    .cloned();
                match found {
                    Some(o) => Some(o),
                    None => {
                        return Err(WaylandError::UnknownOutput {
                            name: name.into(),
                            known: self.output_names(),
                        });
                    }
                }
            }
        };
        self.window.set_fullscreen(fullscreen, output.as_ref());
        self.conn.flush().map_err(lost)
    }

    /// Our window's title (e.g. a stream's title tag); ignored when
    /// embedded. Sent with the next flush.
    pub fn set_title(&mut self, title: &str) {
        self.window.set_title(title);
    }

    /// Whether the compositor's last configure made our window
    /// fullscreen.
    pub fn is_fullscreen(&self) -> bool {
        self.state.fullscreen
    }

    /// The names of the compositor's outputs (`wl_output` v4; outputs of
    /// older versions have none), for [`set_fullscreen`](Self::set_fullscreen).
    pub fn output_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.state.output_names.values().cloned().collect();
        names.sort();
        names
    }

    /// Where a `width`x`height` frame goes now: in our window's configured
    /// size, or the application's render rectangle, by the view. Without
    /// `wp_viewporter` nothing can be scaled: the turned buffer at its own
    /// size, centred where the area is larger.
    pub(super) fn layout_for(&self, width: u32, height: u32) -> Layout {
        let area = if self.window.is_embedded() {
            self.render_size
        } else {
            self.state.toplevel_size
        };
        if self.window.viewport.is_some() {
            return self.view.layout(width, height, area);
        }
        let unscaled = View {
            pixel_aspect_ratio: (1, 1),
            ..self.view
        };
        let (w, h) = unscaled.natural_size(width, height);
        let area = area.map_or((w, h), |(aw, ah)| (aw.max(w), ah.max(h)));
        Layout::centred(area, w, h)
    }

    /// Lays the shown frame out again (a configure, a new render
    /// rectangle or view): the video surface is committed with its new
    /// turn and size (no new buffer, no frame callback), the area with the
    /// video's place.
    pub(super) fn relayout(&mut self) -> Result<(), WaylandError> {
        let Some((w, h)) = self.last_frame else {
            return Ok(());
        };
        let layout = self.layout_for(w, h);
        if self.window.changes(&layout, self.view.orientation) {
            self.apply_layout(layout);
            self.window.surface.commit();
            self.conn.flush().map_err(lost)?;
        }
        Ok(())
    }

    /// After an acked configure: the window laid out again for it, and
    /// the xdg surface committed even where nothing changed, which is
    /// what makes the ack take effect (see
    /// [`Window::commit_xdg_surface`](super::window::Window::commit_xdg_surface)). Before the first frame there is
    /// nothing to lay out: that frame's commit carries the ack.
    pub(super) fn configured(&mut self) -> Result<(), WaylandError> {
        let Some((w, h)) = self.last_frame else {
            return Ok(());
        };
        let layout = self.layout_for(w, h);
        let moved = self.window.moves(&layout);
        if self.window.changes(&layout, self.view.orientation) {
            self.apply_layout(layout);
            self.window.surface.commit();
        }
        if !moved {
            self.window.commit_xdg_surface();
        }
        self.conn.flush().map_err(lost)
    }

    /// Applies `layout` and the view's turn to the window (the caller
    /// commits the video surface), keeping the area's first-paint frame
    /// callback for the never-shown check.
    pub(super) fn apply_layout(&mut self, layout: Layout) {
        if let Some(id) = self.window.apply(layout, self.view.orientation, &self.qh) {
            self.state.area_callback = Some(id);
        }
        self.place_overlays();
    }

    /// Commits the surface again (GstVideoOverlay's `expose`): the
    /// compositor shows the buffer it holds once more.
    pub fn expose(&mut self) -> Result<(), WaylandError> {
        self.window.surface.commit();
        self.conn.flush().map_err(lost)
    }
}
