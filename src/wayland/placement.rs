//! Where the Presenter's video goes and how its window behaves: the
//! application's render rectangle, the [`View`] (turn, pixel aspect
//! ratio, aspect rule), fullscreen and title, and the layout that follows
//! every change (a configure, a new rectangle or view) without a new
//! buffer. The frame path (`presenter.rs`) lays each new frame out with
//! [`Presenter::layout_for`] and [`Presenter::apply_layout`].

use wayland_client::Proxy;

use super::error::WaylandError;
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
