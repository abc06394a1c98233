//! Subtitles and other overlays: a buffer's
//! `GstVideoOverlayCompositionMeta` (what textoverlay, overlaycomposition
//! or dvbsuboverlay attach when our caps take
//! `meta:GstVideoOverlayComposition`) handed to the Presenter as images
//! above the video, so the frame itself is never blended into (it stays
//! zero-copy). Every buffer is checked for the meta, whatever the caps.

use gstreamer as gst;
use gstreamer_video as gst_video;

use crate::wayland::{OverlayImage, Presenter, Rect, WaylandError};

/// Shows `buffer`'s overlay composition with its frame (none: the
/// overlays go). A composition shown already (same seqnum) is not read
/// again.
pub(super) fn apply(presenter: &mut Presenter, buffer: &gst::BufferRef) -> Result<(), WaylandError> {
    let Some(meta) = buffer.meta::<gst_video::VideoOverlayCompositionMeta>() else {
        presenter.clear_overlays();
        return Ok(());
    };
    let composition = meta.overlay();
    let key = u64::from(composition.seqnum());
    if presenter.overlay_key() == Some(key) {
        return Ok(());
    }
    let mut images = Vec::new();
    for rectangle in composition.iter() {
        // Premultiplied, as Wayland composites; any global alpha applied.
        let pixels = rectangle.pixels_unscaled_argb(gst_video::VideoOverlayFormatFlags::PREMULTIPLIED_ALPHA);
        let Some(vmeta) = pixels.meta::<gst_video::VideoMeta>() else {
            continue;
        };
        let (width, height, stride) = (vmeta.width(), vmeta.height(), vmeta.stride()[0]);
        let (x, y, w, h) = rectangle.render_rectangle();
        let Ok(map) = pixels.into_mapped_buffer_readable() else {
            continue;
        };
        images.push((
            map,
            width,
            height,
            stride.max(0) as u32,
            Rect {
                x,
                y,
                width: w,
                height: h,
            },
        ));
    }
    let images: Vec<OverlayImage<'_>> = images
        .iter()
        .map(|(map, width, height, stride, rect)| OverlayImage {
            pixels: map.as_slice(),
            width: *width,
            height: *height,
            stride: *stride,
            rect: *rect,
        })
        .collect();
    presenter.set_overlays(key, &images)
}
