//! The source's caps: plain formats for mappable buffers, `memory:DMABuf`
//! (both caps styles) for non-mappable ones, and the drm-formats offered.

use drm_fourcc::{DrmFourcc, DrmModifier};
use gstreamer as gst;
use gstreamer_video as gst_video;

use super::FORMATS;
use crate::gst::caps as dcaps;

/// A `video/x-raw` structure up to the 16384 pixels our images take.
fn video_structure() -> gst::structure::Builder {
    dcaps::raw_video(16384)
}

/// The (fourcc, modifier) pairs non-mappable output can take on 1.24+:
/// LINEAR for every format (the sealed-memfd host path, first, so that it
/// is what a downstream accepting anything gets), then every non-LINEAR
/// modifier the device exports natively for that format (`native`: a tiled
/// image's mapping is meaningless, so such buffers go under
/// `memory:DMABuf` too). `native` gives each modifier with its
/// memory-plane count: a modifier with more memory planes than the format
/// has (the auxiliary compression planes of CCS and DCC modifiers) is left
/// out, since GStreamer elements read a frame's planes by the format's
/// count (waylandsink, videoconvert's importers) and would drop them.
pub(super) fn dma_drm_pairs(native: impl Fn(DrmFourcc) -> Vec<(DrmModifier, usize)>) -> Vec<(DrmFourcc, DrmModifier)> {
    let fourccs: Vec<DrmFourcc> = FORMATS
        .iter()
        .filter_map(|f| dcaps::fourcc_of(gst_video::VideoFormat::from_string(f)))
        .collect();
    let mut pairs: Vec<(DrmFourcc, DrmModifier)> = fourccs.iter().map(|&f| (f, DrmModifier::Linear)).collect();
    for &f in &fourccs {
        let format_planes = crate::format::info(f).map_or(0, |i| i.plane_count());
        for (m, memory_planes) in native(f) {
            if m != DrmModifier::Linear
                && m != DrmModifier::Invalid
                && memory_planes == format_planes
                && !pairs.contains(&(f, m))
            {
                pairs.push((f, m));
            }
        }
    }
    pairs
}

/// What the source can produce: mappable buffers under plain caps, and
/// non-mappable ones under `memory:DMABuf` in the running GStreamer's style
/// (1.22: `format=NV12`; 1.24+: `format=DMA_DRM, drm-format=NV12` or
/// `NV12:0x...`). `dmabuf`: `None` for no dma-buf structure, `Some(None)`
/// for any drm-format (the template), `Some(Some(pairs))` for exactly
/// those (the offer, from [`dma_drm_pairs`]).
pub(super) fn caps_of(plain: bool, dmabuf: Option<Option<&[(DrmFourcc, DrmModifier)]>>) -> gst::Caps {
    let mut caps = gst::Caps::new_empty();
    let caps_mut = caps.make_mut();
    if plain {
        caps_mut.append_structure(video_structure().field("format", gst::List::new(FORMATS)).build());
    }
    if let Some(pairs) = dmabuf {
        let structure = if dcaps::runtime_has_dma_drm() {
            let mut s = video_structure().field("format", "DMA_DRM");
            if let Some(pairs) = pairs {
                let drm: Vec<String> = pairs.iter().map(|&(f, m)| dcaps::drm_format_string(f, m)).collect();
                s = s.field("drm-format", gst::List::new(drm));
            }
            s.build()
        } else {
            video_structure().field("format", gst::List::new(FORMATS)).build()
        };
        caps_mut.append_structure_full(
            structure,
            Some(gst::CapsFeatures::new([dcaps::CAPS_FEATURE_MEMORY_DMABUF])),
        );
    }
    caps
}

pub(super) fn template_caps() -> gst::Caps {
    caps_of(true, Some(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dma_drm_offer_is_linear_first_then_the_devices_tiled_modifiers() {
        gst::init().unwrap();
        let x_tiled = DrmModifier::I915_x_tiled;
        // Y-tiled CCS: XRGB plus an auxiliary compression plane.
        let ccs = DrmModifier::I915_y_tiled_ccs;
        let pairs = dma_drm_pairs(|f| match f {
            DrmFourcc::Xrgb8888 => vec![
                (DrmModifier::Linear, 1),
                (x_tiled, 1),
                (ccs, 2),
                (DrmModifier::Invalid, 1),
                (x_tiled, 1),
            ],
            _ => vec![(DrmModifier::Linear, 1)],
        });
        let names: Vec<String> = pairs.iter().map(|&(f, m)| dcaps::drm_format_string(f, m)).collect();
        assert_eq!(
            names,
            ["XR24", "AR24", "XB24", "AB24", "NV12", "XR24:0x0100000000000001"],
            "LINEAR for every format first (the host path), then each tiled modifier once, never INVALID, \
             never one with more memory planes than the format"
        );
        // A device without native export (lavapipe on a bare host): LINEAR only.
        assert_eq!(dma_drm_pairs(|_| Vec::new()).len(), FORMATS.len());
    }
}
