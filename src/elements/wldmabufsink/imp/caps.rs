//! The sink's caps: the template (every format, both caps styles) and,
//! once connected, what the compositor takes (linux-dmabuf pairs under
//! `memory:DMABuf`, plain formats by `wl_shm` and the CPU conversion).

use gstreamer as gst;

use gstreamer_video as gst_video;

use crate::DrmModifier;
use crate::gst::caps::{self as dcaps, CAPS_FEATURE_MEMORY_DMABUF};
use crate::wayland::FormatSet;

/// Everything the sink may take: on GStreamer >= 1.24 `memory:DMABuf` is
/// `format=DMA_DRM` (any drm-format: the compositor decides, see
/// [`caps_for_formats`]) plus plain formats; on 1.22 both structures list
/// the formats.
pub(super) fn template_caps() -> gst::Caps {
    let formats: Vec<&str> = dcaps::VIDEO_FORMATS.iter().map(|(_, f)| f.to_str().as_str()).collect();
    if dcaps::runtime_has_dma_drm() {
        let mut caps = caps_with(&formats, &[]);
        let dma_drm = dcaps::raw_video(i32::MAX).field("format", "DMA_DRM").build();
        prepend_dmabuf(&mut caps, dma_drm);
        with_overlay_meta(caps)
    } else {
        with_overlay_meta(caps_with(&formats, &formats))
    }
}

/// `caps`, then each of its structures again with
/// `meta:GstVideoOverlayComposition` added to its features: upstream
/// overlay elements (textoverlay for subtitles, overlaycomposition,
/// dvbsuboverlay) then attach their images as a meta instead of blending
/// them into the frame, and the Presenter shows them above the video. The
/// meta variants come last, so elements that do not care negotiate as
/// before.
fn with_overlay_meta(caps: gst::Caps) -> gst::Caps {
    let mut out = caps.clone();
    {
        let out = out.make_mut();
        for (s, f) in caps.iter_with_features() {
            let mut f = f.to_owned();
            f.add(gst_video::CAPS_FEATURE_META_GST_VIDEO_OVERLAY_COMPOSITION);
            out.append_structure_full(s.to_owned(), Some(f));
        }
    }
    out
}

/// Puts `structure` under `memory:DMABuf` in front of `caps` (preferred).
fn prepend_dmabuf(caps: &mut gst::Caps, structure: gst::Structure) {
    let mut out = gst::Caps::new_empty();
    {
        let out = out.make_mut();
        out.append_structure_full(structure, Some(gst::CapsFeatures::new([CAPS_FEATURE_MEMORY_DMABUF])));
        for (s, f) in caps.iter_with_features() {
            out.append_structure_full(s.to_owned(), Some(f.to_owned()));
        }
    }
    *caps = out;
}

fn caps_with(plain: &[&str], dmabuf: &[&str]) -> gst::Caps {
    let structure = |formats: &[&str]| {
        dcaps::raw_video(i32::MAX)
            .field("format", gst::List::new(formats.iter().copied()))
            .build()
    };
    let mut caps = gst::Caps::builder_full();
    if !dmabuf.is_empty() {
        caps = caps.structure_with_features(structure(dmabuf), gst::CapsFeatures::new([CAPS_FEATURE_MEMORY_DMABUF]));
    }
    if !plain.is_empty() {
        caps = caps.structure(structure(plain));
    }
    caps.build()
}

/// Caps for what this compositor takes. Plain caps: every format with a
/// path that cannot fail mid-stream, best first: those shown with zero
/// copies as LINEAR dma-bufs, then those `wl_shm` takes (zero copy over a
/// memfd pool, else copied), then, wherever `wl_shm` exists, every other
/// format of the table (converted on the CPU into XRGB8888, counted).
/// `memory:DMABuf`: on GStreamer >= 1.24 a DMA_DRM structure with every
/// (fourcc, modifier) pair the compositor advertises (v4/v5 feedback
/// tranches or v3 modifier events; INVALID left out) for fourccs GStreamer
/// and our format table know; on 1.22 the LINEAR zero-copy formats.
pub(super) fn caps_for_formats(set: &FormatSet) -> gst::Caps {
    let mut dmabuf = Vec::new();
    let (mut shm, mut converted) = (Vec::new(), Vec::new());
    let mut pairs = Vec::new();
    let has_shm = !set.shm.is_empty();
    for (fourcc, format) in dcaps::VIDEO_FORMATS {
        let name = format.to_str().as_str();
        if set.supports_dmabuf(*fourcc, DrmModifier::Linear) {
            dmabuf.push(name);
        } else if set.supports_shm(*fourcc) {
            shm.push(name);
        } else if has_shm && crate::convert::can_convert(*fourcc) {
            converted.push(name);
        }
        pairs.extend(set.modifiers(*fourcc).into_iter().map(|m| (*fourcc, m)));
    }
    let plain: Vec<&str> = dmabuf.iter().chain(&shm).chain(&converted).copied().collect();
    if !dcaps::runtime_has_dma_drm() {
        return with_overlay_meta(caps_with(&plain, &dmabuf));
    }
    let mut caps = caps_with(&plain, &[]);
    if let Some(dma_drm) = dcaps::dma_drm_structure(pairs) {
        prepend_dmabuf(&mut caps, dma_drm);
    }
    with_overlay_meta(caps)
}
