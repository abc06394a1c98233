//! `vkdmabufsrc`: renders the moving test pattern with Vulkan into exported
//! dma-buf images and pushes them as `GstDmaBufAllocator` memory with a
//! `VideoMeta`.
//!
//! Properties: `is-live`, `non-mappable` (seal the memfds against new
//! writable mappings, forcing `memory:DMABuf` caps, for testing the rules),
//! `ring-size`; `num-buffers` comes from basesrc. Formats BGRx, BGRA, RGBx,
//! RGBA, NV12; width, height and framerate from caps (default 320x240 at
//! 30/1). The ring's images are the buffers of a `GstBufferPool` of ours
//! (offered in the ALLOCATION query): an image is rendered into again only
//! after downstream released the buffer that carried it. Non-mappable
//! output is `memory:DMABuf` in the running GStreamer's style (1.24+:
//! `format=DMA_DRM, drm-format=...`); a `VideoMeta` is attached only when
//! downstream reads it (else the layout must be GStreamer's default).

mod imp;
mod pool;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

glib::wrapper! {
    /// The `vkdmabufsrc` element.
    pub struct VkDmaBufSrc(ObjectSubclass<imp::VkDmaBufSrc>)
        @extends gstreamer_base::PushSrc, gstreamer_base::BaseSrc, gst::Element, gst::Object;
}

/// Registers `vkdmabufsrc` with `plugin` (or statically, with `None`).
pub fn register(plugin: Option<&gst::Plugin>) -> Result<(), glib::BoolError> {
    gst::Element::register(plugin, "vkdmabufsrc", gst::Rank::NONE, VkDmaBufSrc::static_type())
}
