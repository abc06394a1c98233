//! The sink's view of the window: rotation (`rotate-method`, or the
//! stream's `image-orientation` tag under `auto`), pixel aspect ratio and
//! `force-aspect-ratio`, the title from the tags, and fullscreen.

use gstreamer as gst;
use gstreamer::subclass::prelude::*;

use super::{CAT, WlDmaBufSink, direction};
use crate::Report;
use crate::elements::lock;
use crate::wayland::{Orientation, View};

impl WlDmaBufSink {
    /// The view the settings, the stream's pixel aspect ratio and its
    /// orientation tag ask for.
    pub(super) fn view(&self) -> View {
        let (method, force_aspect_ratio) = {
            let s = lock(&self.settings);
            (s.rotate_method, s.force_aspect_ratio)
        };
        let orientation = direction::orientation_of(method).unwrap_or_else(|| lock(&self.state).tag_orientation);
        let pixel_aspect_ratio = lock(&self.state).stream.as_ref().map_or((1, 1), |s| {
            let par = s.info.par();
            (par.numer().max(0) as u32, par.denom().max(0) as u32)
        });
        View {
            orientation,
            pixel_aspect_ratio,
            force_aspect_ratio,
        }
    }

    /// What the sink takes from the stream's tags: the `image-orientation`
    /// (used under `rotate-method=auto`) and the title (our window's).
    pub(super) fn take_tags(&self, tags: &gst::TagListRef) {
        if let Some(o) = tags.get::<gst::tags::ImageOrientation>() {
            match Orientation::from_image_orientation(o.get()) {
                Some(o) => {
                    lock(&self.state).tag_orientation = o;
                    self.apply_view();
                }
                None => gst::warning!(CAT, imp = self, "unknown image-orientation {:?}", o.get()),
            }
        }
        if let Some(title) = tags.get::<gst::tags::Title>()
            && let Some(p) = lock(&self.state).presenter.as_mut()
        {
            p.set_title(title.get());
        }
    }

    /// Hands the view to the presenter (the shown frame follows at once).
    pub(super) fn apply_view(&self) {
        let view = self.view();
        if let Some(p) = lock(&self.state).presenter.as_mut()
            && let Err(e) = p.set_view(view)
        {
            gst::warning!(CAT, imp = self, "view: {}", Report(&e));
        }
    }

    /// Asks for fullscreen (or to leave it) as the settings say; an unknown
    /// output is a warning, posted once the presenter's lock is released.
    pub(super) fn apply_fullscreen(&self) {
        let (on, output) = {
            let s = lock(&self.settings);
            (s.fullscreen, s.fullscreen_output.clone())
        };
        let result = match lock(&self.state).presenter.as_mut() {
            Some(p) => p.set_fullscreen(on, output.as_deref()),
            None => Ok(()),
        };
        if let Err(e) = result {
            gst::element_imp_warning!(self, gst::ResourceError::Settings, ["{}", Report(&e)]);
        }
    }
}
