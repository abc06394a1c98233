//! GstVideoOverlay: embedding into an application's `wl_surface`, expose
//! and the render rectangle.

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::subclass::prelude::*;
use gstreamer_video as gst_video;

use super::{CAT, WlDmaBufSink};
use crate::Report;
use crate::elements::lock;

// GstVideoOverlay. gstreamer-video 0.25 has no subclass trait for it, so the
// interface's C vtable is filled here; each entry forwards to a safe method.
// SAFETY: the vtable functions below match GstVideoOverlayInterface's
// signatures, and GLib calls them only on instances of this type.
unsafe impl IsImplementable<WlDmaBufSink> for gst_video::VideoOverlay {
    fn interface_init(iface: &mut glib::Interface<Self>) {
        let iface: &mut gst_video::ffi::GstVideoOverlayInterface = iface.as_mut();
        iface.set_window_handle = Some(overlay_set_window_handle);
        iface.expose = Some(overlay_expose);
        iface.set_render_rectangle = Some(overlay_set_render_rectangle);
        iface.handle_events = Some(overlay_handle_events);
    }
}

/// The sink behind an interface pointer.
///
/// # Safety
/// `overlay` is an instance of `WlDmaBufSink` (GLib dispatches this
/// interface's vtable only on instances of the type that installed it).
unsafe fn sink_of<'a>(overlay: *mut gst_video::ffi::GstVideoOverlay) -> &'a WlDmaBufSink {
    // SAFETY: see the function's contract; the instance outlives the call.
    let instance = unsafe { &*(overlay as *mut <WlDmaBufSink as ObjectSubclass>::Instance) };
    instance.imp()
}

unsafe extern "C" fn overlay_set_window_handle(overlay: *mut gst_video::ffi::GstVideoOverlay, handle: usize) {
    // SAFETY: called by GstVideoOverlay on our instance.
    unsafe { sink_of(overlay) }.set_window_handle(handle);
}

unsafe extern "C" fn overlay_expose(overlay: *mut gst_video::ffi::GstVideoOverlay) {
    // SAFETY: called by GstVideoOverlay on our instance.
    unsafe { sink_of(overlay) }.expose();
}

unsafe extern "C" fn overlay_set_render_rectangle(
    overlay: *mut gst_video::ffi::GstVideoOverlay,
    x: i32,
    y: i32,
    width: i32,
    height: i32,
) {
    // SAFETY: called by GstVideoOverlay on our instance.
    unsafe { sink_of(overlay) }.set_render_rectangle(x, y, width, height);
}

unsafe extern "C" fn overlay_handle_events(_: *mut gst_video::ffi::GstVideoOverlay, _: glib::ffi::gboolean) {
    // Embedded, the application owns input (our subsurface takes none);
    // our own window only reads keys. Nothing to switch.
}

impl WlDmaBufSink {
    /// `gst_video_overlay_set_window_handle`: the application's
    /// `wl_surface*` (0: a window of our own). Taken at the next NULL->READY,
    /// as waylandsink does before it made its window.
    fn set_window_handle(&self, handle: usize) {
        if lock(&self.state).presenter.is_some() {
            gst::warning!(
                CAT,
                imp = self,
                "window handle {handle:#x} set while the sink shows video: taken at the next start"
            );
        }
        lock(&self.foreign).surface = handle;
    }

    /// `gst_video_overlay_expose`: show the current frame again.
    fn expose(&self) {
        if let Some(p) = lock(&self.state).presenter.as_mut()
            && let Err(e) = p.expose()
        {
            gst::warning!(CAT, imp = self, "expose: {}", Report(&e));
        }
    }

    /// `gst_video_overlay_set_render_rectangle`: where video goes in the
    /// application's surface. A width and height of -1 unset the
    /// rectangle (GStreamer's rule): frames go back to their own size at
    /// (0, 0). No other size of 0 or less reaches this vtable entry:
    /// GStreamer's wrapper refuses it first (`g_return_val_if_fail ((width
    /// == -1 && height == -1) || (width > 0 && height > 0), FALSE)`).
    fn set_render_rectangle(&self, x: i32, y: i32, width: i32, height: i32) {
        let rect = (x, y, width, height);
        lock(&self.foreign).render_rectangle = Some(rect);
        if let Some(p) = lock(&self.state).presenter.as_mut()
            && let Err(e) = p.set_render_rectangle(Some(rect))
        {
            gst::warning!(CAT, imp = self, "set_render_rectangle: {}", Report(&e));
        }
    }
}
