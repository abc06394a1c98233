//! `wldmabufsink`: shows video on Wayland through linux-dmabuf `wl_buffer`s,
//! zero-copy.
//!
//! - Its own `xdg_toplevel`, or a `wl_surface` the application hands over,
//!   GstVideoOverlay-style: the `window-handle` property takes the
//!   `wl_surface*`, and `display-handle` (or a `GstContext` of type
//!   `GstWlDisplayHandleContextType` / `GstWaylandDisplayHandleContextType`
//!   with a `display` pointer, as waylandsink takes it) the `wl_display*`.
//!   A `prepare-window-handle` element message is posted at NULL->READY so
//!   a sync bus handler can set them. (gstreamer-rs 0.25 cannot implement
//!   the GstVideoOverlay interface in Rust, hence properties.)
//! - Paces with frame callbacks: a frame waits up to one `frame-timeout`
//!   for the previous frame to be shown, and is dropped (counted) after.
//!   Scales with `wp_viewporter` to the window size, keeping the aspect
//!   ratio.
//! - Proposes a dma-buf pool and our allocator in the ALLOCATION query, so
//!   upstream writes straight into dma-bufs; checks every buffer for
//!   dma-buf memory whatever the caps; system memory goes through a counted
//!   `wl_shm` copy; under `memory:DMABuf` nothing is mapped.
//! - Caps list only formats the compositor takes (linux-dmabuf with a
//!   LINEAR/implicit modifier, or `wl_shm` for plain caps).
//! - A buffer goes back upstream (to its pool) only after the compositor's
//!   `wl_buffer.release`.
//! - Statistics: the read-only `stats` property (a `GstStructure`), also
//!   posted as an element message named `wldmabufsink-stats` at EOS.
//!
//! Properties: `display` (socket name or path; default `WAYLAND_DISPLAY`),
//! `window-handle`, `display-handle`, `frame-timeout` (ms), `stats`.

mod imp;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

glib::wrapper! {
    /// The `wldmabufsink` element.
    pub struct WlDmaBufSink(ObjectSubclass<imp::WlDmaBufSink>)
        @extends gstreamer_video::VideoSink, gstreamer_base::BaseSink, gst::Element, gst::Object;
}

/// Registers `wldmabufsink` with `plugin` (or statically, with `None`).
pub fn register(plugin: Option<&gst::Plugin>) -> Result<(), glib::BoolError> {
    gst::Element::register(plugin, "wldmabufsink", gst::Rank::NONE, WlDmaBufSink::static_type())
}
