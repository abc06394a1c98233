//! `wldmabufsink`: shows video on Wayland through linux-dmabuf `wl_buffer`s,
//! zero-copy.
//!
//! - Its own `xdg_toplevel`, or a `wl_surface` the application hands over
//!   through **GstVideoOverlay**, as players embed waylandsink: at
//!   NULL->READY the sink posts `prepare-window-handle`
//!   (`gst_video_overlay_prepare_window_handle`), a sync bus handler calls
//!   `set_window_handle(wl_surface*)` and hands the `wl_display*` in a
//!   `GstContext` of type `GstWlDisplayHandleContextType` /
//!   `GstWaylandDisplayHandleContextType` (`display` pointer), or sets the
//!   `display-handle` property. Video goes to a subsurface of ours placed by
//!   `set_render_rectangle`; `expose` commits again. The `window-handle` and
//!   `display-handle` properties stay for compatibility.
//! - Paces with frame callbacks. Under `sync=true` (the default) `render`
//!   never waits for the compositor: a frame that finds the previous one
//!   not shown yet is held and committed by the sink's thread as soon as
//!   the compositor is ready, a newer frame replacing it (the replaced one
//!   counted dropped), so each repaint gets the newest frame, as
//!   waylandsink does. With `sync=false` a frame waits up to one
//!   `frame-timeout` for the previous one (that wait paces an unclocked
//!   producer), then is held likewise.
//!   Where the compositor offers `wp_commit_timing_v1` and `wp_fifo_v1`
//!   (Weston 16, mutter 50; `commit-timing`, default true) frames are
//!   instead committed a render delay (33 ms) ahead with their target
//!   time, behind FIFO barriers, up to two waiting in the compositor (see
//!   [`wayland::Pacing`](crate::wayland::Pacing)).
//!   Scales with `wp_viewporter` to the window size.
//! - What players set (see [`wayland::View`](crate::wayland::View)):
//!   `rotate-method` and GstVideoDirection's `video-direction` (`auto`:
//!   the stream's `image-orientation` tag) as
//!   `wl_surface.set_buffer_transform`, zero-copy; the stream's pixel
//!   aspect ratio; `force-aspect-ratio` (default true: fitted and centred
//!   on black borders; false: stretched); `fullscreen` and
//!   `fullscreen-output` (a `wl_output` name); the `title` tag as the
//!   window title.
//! - Subtitles and other overlays: the caps take
//!   `meta:GstVideoOverlayComposition` (and the ALLOCATION answer lists
//!   the meta), so textoverlay and overlaycomposition attach their images
//!   instead of blending them into the frame; each rectangle is shown
//!   above the video (see [`Presenter::set_overlays`](crate::wayland::Presenter::set_overlays)),
//!   the video stays zero-copy. Every buffer is checked for the meta.
//! - Navigation (GstNavigation): pointer motion, buttons, the wheel and
//!   keys on our toplevel go upstream as navigation events, positions in
//!   the frame's pixels (the turn, scale and borders undone; nothing over
//!   the borders), keys by their xkb keysym names from the compositor's
//!   keymap, with the modifier state; events an application sends through
//!   the interface (window coordinates, or its surface's when embedded)
//!   are mapped the same way. Input is read while frames are shown.
//! - Timing: `wp_presentation` feedback for every commit; each frame's
//!   presented time against its target (running time + base time +
//!   latency + render delay) in the stats (median, p95).
//! - Proposes a dma-buf pool and our allocator in the ALLOCATION query, so
//!   upstream writes straight into dma-bufs; checks every buffer for
//!   dma-buf memory whatever the caps; system memory goes through a counted
//!   `wl_shm` copy; under `memory:DMABuf` nothing is mapped.
//! - Caps list only what the compositor takes: on GStreamer >= 1.24
//!   `memory:DMABuf, format=DMA_DRM, drm-format={...}` with every (fourcc,
//!   modifier) pair it advertises, on 1.22 `memory:DMABuf` with its LINEAR
//!   formats; plain caps for LINEAR dma-bufs and the `wl_shm` copy. A
//!   change of the compositor's feedback sends RECONFIGURE upstream.
//! - A buffer goes back upstream (to its pool) only after the compositor's
//!   `wl_buffer.release`.
//! - Statistics: the read-only `stats` property (a `GstStructure`), also
//!   posted as an element message named `wldmabufsink-stats` at EOS.
//!
//! Properties: `display` (socket name or path; default `WAYLAND_DISPLAY`),
//! `window-handle`, `display-handle`, `frame-timeout` (ms), `commit-timing`,
//! `colour-correction`, `rotate-method`, `video-direction`,
//! `force-aspect-ratio`, `fullscreen`, `fullscreen-output`, `stats`.
//!
//! Rank: none. `autovideosink` and `playbin` do not pick it by themselves;
//! players name it (`playbin video-sink=wldmabufsink`,
//! `gst-play-1.0 --videosink=wldmabufsink`).

mod imp;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

glib::wrapper! {
    /// The `wldmabufsink` element.
    pub struct WlDmaBufSink(ObjectSubclass<imp::WlDmaBufSink>)
        @extends gstreamer_video::VideoSink, gstreamer_base::BaseSink, gst::Element, gst::Object,
        @implements gstreamer_video::VideoOverlay, gstreamer_video::Navigation;
}

/// Registers `wldmabufsink` with `plugin` (or statically, with `None`).
pub fn register(plugin: Option<&gst::Plugin>) -> Result<(), glib::BoolError> {
    gst::Element::register(plugin, "wldmabufsink", gst::Rank::NONE, WlDmaBufSink::static_type())
}
