//! Caps <-> dma-buf stream descriptions, and the GstVideoFormat <-> fourcc
//! table. Pure functions: no element, no pipeline.
//!
//! The `memory:DMABuf` caps feature is only for dma-bufs that cannot be
//! mapped (GStreamer's `GstDmaBufAllocator` documentation); mappable ones
//! flow under plain `video/x-raw` caps. GStreamer 1.22 writes dma-buf caps as
//! `video/x-raw(memory:DMABuf), format=NV12` (implicitly LINEAR); 1.24+ as
//! `format=DMA_DRM, drm-format=NV12:0x0100000000000002` (LINEAR is written
//! `NV12`, never `NV12:0x0`). Which style is chosen at run time from
//! [`gstreamer::version`], never by a cargo feature.

use drm_fourcc::{DrmFourcc, DrmModifier};

pub use super::colorimetry::colorimetry_of;

use gst_video::VideoFormat;
use gstreamer as gst;
use gstreamer_video as gst_video;

/// The caps feature for non-mappable dma-bufs.
pub const CAPS_FEATURE_MEMORY_DMABUF: &str = "memory:DMABuf";

/// GstVideoFormat <-> fourcc: the GStreamer adapter's view of the format
/// table (GStreamer names byte order, DRM names the little-endian word).
pub const VIDEO_FORMATS: &[(DrmFourcc, VideoFormat)] = &[
    (DrmFourcc::Xrgb8888, VideoFormat::Bgrx),
    (DrmFourcc::Argb8888, VideoFormat::Bgra),
    (DrmFourcc::Xbgr8888, VideoFormat::Rgbx),
    (DrmFourcc::Abgr8888, VideoFormat::Rgba),
    (DrmFourcc::Rgb565, VideoFormat::Rgb16),
    (DrmFourcc::Nv12, VideoFormat::Nv12),
    (DrmFourcc::Nv21, VideoFormat::Nv21),
    (DrmFourcc::Yuv420, VideoFormat::I420),
    (DrmFourcc::Yvu420, VideoFormat::Yv12),
    (DrmFourcc::Yuyv, VideoFormat::Yuy2),
    (DrmFourcc::Uyvy, VideoFormat::Uyvy),
    (DrmFourcc::P010, VideoFormat::P01010le),
];

/// The GstVideoFormat of `fourcc`.
pub fn video_format(fourcc: DrmFourcc) -> Option<VideoFormat> {
    VIDEO_FORMATS.iter().find(|(f, _)| *f == fourcc).map(|(_, v)| *v)
}

/// The fourcc of a GstVideoFormat.
pub fn fourcc_of(format: VideoFormat) -> Option<DrmFourcc> {
    VIDEO_FORMATS.iter().find(|(_, v)| *v == format).map(|(f, _)| *f)
}

/// A stream of video frames as caps describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFormat {
    /// Pixel format.
    pub fourcc: DrmFourcc,
    /// Modifier (LINEAR for plain and 1.22-style caps).
    pub modifier: DrmModifier,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate as (numerator, denominator); (0, 1) for variable.
    pub framerate: (i32, i32),
    /// Whether the caps carry the `memory:DMABuf` feature.
    pub dmabuf_feature: bool,
}

/// Why caps could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapsError {
    /// Not raw video.
    #[error("caps are {0:?}, not video/x-raw")]
    NotRawVideo(String),
    /// Caps with no structure, or more than one (not fixed).
    #[error("caps are not fixed: {0}")]
    NotFixed(String),
    /// A required field is missing or has the wrong type.
    #[error("caps lack a valid {0:?} field")]
    MissingField(&'static str),
    /// The format has no fourcc in the table.
    #[error("video format {0:?} has no dma-buf fourcc here (supported: see gst::caps::VIDEO_FORMATS)")]
    UnsupportedFormat(String),
    /// A `drm-format` string that does not parse.
    #[error("drm-format {0:?} is not FOURCC or FOURCC:0xMODIFIER")]
    BadDrmFormat(String),
    /// A non-LINEAR modifier cannot be expressed in GStreamer 1.22 caps.
    #[error("GStreamer {0} caps cannot carry modifier {1:#x} (DMA_DRM caps need 1.24)")]
    ModifierNeedsDmaDrm(String, u64),
}

/// The DRM fourcc code as GStreamer writes it in `drm-format`: four
/// characters, then `:0x%016x` for any modifier but LINEAR.
pub fn drm_format_string(fourcc: DrmFourcc, modifier: DrmModifier) -> String {
    let code = (fourcc as u32).to_le_bytes();
    let chars: String = code.iter().map(|&b| b as char).collect();
    match modifier {
        DrmModifier::Linear => chars,
        other => format!("{chars}:{:#018x}", u64::from(other)),
    }
}

/// Parses a `drm-format` string.
pub fn parse_drm_format(text: &str) -> Result<(DrmFourcc, DrmModifier), CapsError> {
    let bad = || CapsError::BadDrmFormat(text.to_owned());
    let (code, modifier) = match text.split_once(':') {
        Some((code, m)) => {
            let hex = m.strip_prefix("0x").ok_or_else(bad)?;
            (
                code,
                DrmModifier::from(u64::from_str_radix(hex, 16).map_err(|_| bad())?),
            )
        }
        None => (text, DrmModifier::Linear),
    };
    // DMA_DRM caps describe a layout; INVALID (implicit) names none.
    if modifier == DrmModifier::Invalid {
        return Err(bad());
    }
    let bytes: [u8; 4] = code.as_bytes().try_into().map_err(|_| bad())?;
    let fourcc = DrmFourcc::try_from(u32::from_le_bytes(bytes)).map_err(|_| bad())?;
    Ok((fourcc, modifier))
}

/// The `VideoInfo` of fixed caps of any style. GStreamer >= 1.24 reads
/// DMA_DRM caps as the opaque format `DMA_DRM` with no planes (and
/// gstreamer-rs built for 1.22 cannot name it), so DMA_DRM caps are
/// rewritten to the fourcc's format first, as
/// `gst_video_info_dma_drm_from_caps` does: the strides and offsets are then
/// LINEAR ones, meaningful only for LINEAR buffers (others need a
/// `VideoMeta`, see [`crate::gst::dmabuf_from_buffer`]).
pub fn video_info(caps: &gst::CapsRef) -> Result<gst_video::VideoInfo, CapsError> {
    let from_caps =
        |c: &gst::CapsRef| gst_video::VideoInfo::from_caps(c).map_err(|e| CapsError::NotFixed(format!("{c}: {e}")));
    let structure = caps.structure(0).ok_or_else(|| CapsError::NotFixed(caps.to_string()))?;
    if structure.get::<&str>("format").ok() != Some("DMA_DRM") {
        // Plain and 1.22-style caps: read as they are (the per-frame path).
        return from_caps(caps);
    }
    let drm: &str = structure
        .get("drm-format")
        .map_err(|_| CapsError::MissingField("drm-format"))?;
    let (fourcc, _) = parse_drm_format(drm)?;
    let format = video_format(fourcc).ok_or_else(|| CapsError::UnsupportedFormat(fourcc.to_string()))?;
    let mut owned = caps.to_owned();
    if let Some(s) = owned.make_mut().structure_mut(0) {
        s.set("format", format.to_str());
        s.remove_field("drm-format");
    }
    from_caps(&owned)
}

/// The one `video/x-raw` structure every caps of the crate starts from:
/// width and height from 1 to `max_dimension`, any framerate; the caller
/// adds `format` (and `drm-format`).
pub fn raw_video(max_dimension: i32) -> gst::structure::Builder {
    gst::Structure::builder("video/x-raw")
        .field("width", gst::IntRange::new(1, max_dimension))
        .field("height", gst::IntRange::new(1, max_dimension))
        .field(
            "framerate",
            gst::FractionRange::new(gst::Fraction::new(0, 1), gst::Fraction::new(i32::MAX, 1)),
        )
}

/// `video/x-raw, format=DMA_DRM, drm-format={...}` for `pairs` (GStreamer
/// 1.24+ style; put it under `memory:DMABuf`), with open width, height and
/// framerate; `None` when no pair remains. INVALID (implicit) modifiers are
/// left out: DMA_DRM caps cannot name them.
pub fn dma_drm_structure(pairs: impl IntoIterator<Item = (DrmFourcc, DrmModifier)>) -> Option<gst::Structure> {
    let mut list: Vec<String> = pairs
        .into_iter()
        .filter(|&(_, m)| m != DrmModifier::Invalid)
        .map(|(f, m)| drm_format_string(f, m))
        .collect();
    list.dedup();
    if list.is_empty() {
        return None;
    }
    Some(
        raw_video(i32::MAX)
            .field("format", "DMA_DRM")
            .field("drm-format", gst::List::new(list))
            .build(),
    )
}

/// Whether the running GStreamer has DMA_DRM caps (1.24+).
pub fn runtime_has_dma_drm() -> bool {
    let (major, minor, _, _) = gst::version();
    (major, minor) >= (1, 24)
}

/// Caps for a stream of `DmaBuf`s, following the caps-feature rules:
/// mappable buffers get plain `video/x-raw`; non-mappable ones get
/// `memory:DMABuf` in the style of the running GStreamer.
pub fn caps_for(stream: &StreamFormat, mappable: bool) -> Result<gst::Caps, CapsError> {
    caps_for_version(stream, mappable, runtime_has_dma_drm())
}

/// [`caps_for`] with the style chosen by the caller (`dma_drm`: 1.24+).
pub fn caps_for_version(stream: &StreamFormat, mappable: bool, dma_drm: bool) -> Result<gst::Caps, CapsError> {
    let linear = stream.modifier == DrmModifier::Linear;
    let format = video_format(stream.fourcc).ok_or_else(|| CapsError::UnsupportedFormat(stream.fourcc.to_string()))?;
    let mut builder = gst::Structure::builder("video/x-raw");
    // A tiled buffer's mapping is meaningless: never plain caps for it.
    let plain = mappable && linear;
    if plain || !dma_drm {
        if !linear {
            let (major, minor, _, _) = gst::version();
            return Err(CapsError::ModifierNeedsDmaDrm(
                format!("{major}.{minor}"),
                stream.modifier.into(),
            ));
        }
        builder = builder.field("format", format.to_str());
    } else {
        builder = builder
            .field("format", "DMA_DRM")
            .field("drm-format", drm_format_string(stream.fourcc, stream.modifier));
    }
    let structure = builder
        .field("width", stream.width as i32)
        .field("height", stream.height as i32)
        .field("framerate", gst::Fraction::new(stream.framerate.0, stream.framerate.1))
        .build();
    let mut caps = gst::Caps::builder_full().structure(structure).build();
    if !plain {
        let caps = caps.make_mut();
        caps.set_features(0, Some(gst::CapsFeatures::new([CAPS_FEATURE_MEMORY_DMABUF])));
    }
    Ok(caps)
}

/// Reads a fixed video caps into a [`StreamFormat`] (plain, 1.22 dma-buf or
/// DMA_DRM style).
pub fn parse_caps(caps: &gst::CapsRef) -> Result<StreamFormat, CapsError> {
    if caps.size() != 1 {
        return Err(CapsError::NotFixed(caps.to_string()));
    }
    let (structure, features) = match (caps.structure(0), caps.features(0)) {
        (Some(s), f) => (s, f),
        _ => return Err(CapsError::NotFixed(caps.to_string())),
    };
    if structure.name() != "video/x-raw" {
        return Err(CapsError::NotRawVideo(structure.name().to_string()));
    }
    let dmabuf_feature = features.is_some_and(|f| f.contains(CAPS_FEATURE_MEMORY_DMABUF));
    let format: &str = structure.get("format").map_err(|_| CapsError::MissingField("format"))?;
    let (fourcc, modifier) = if format == "DMA_DRM" {
        let drm: &str = structure
            .get("drm-format")
            .map_err(|_| CapsError::MissingField("drm-format"))?;
        parse_drm_format(drm)?
    } else {
        let video = VideoFormat::from_string(format);
        let fourcc = fourcc_of(video).ok_or_else(|| CapsError::UnsupportedFormat(format.to_owned()))?;
        (fourcc, DrmModifier::Linear)
    };
    let dimension = |name: &'static str| -> Result<u32, CapsError> {
        let v: i32 = structure.get(name).map_err(|_| CapsError::MissingField(name))?;
        u32::try_from(v).map_err(|_| CapsError::MissingField(name))
    };
    let framerate = structure
        .get::<gst::Fraction>("framerate")
        .map(|f| (f.numer(), f.denom()))
        .unwrap_or((0, 1));
    Ok(StreamFormat {
        fourcc,
        modifier,
        width: dimension("width")?,
        height: dimension("height")?,
        framerate,
        dmabuf_feature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(fourcc: DrmFourcc, modifier: DrmModifier) -> StreamFormat {
        StreamFormat {
            fourcc,
            modifier,
            width: 320,
            height: 240,
            framerate: (30, 1),
            dmabuf_feature: false,
        }
    }

    #[test]
    fn table_round_trips_and_covers_the_format_table() {
        for (fourcc, video) in VIDEO_FORMATS {
            assert_eq!(fourcc_of(*video), Some(*fourcc));
            assert_eq!(video_format(*fourcc), Some(*video));
        }
        for info in crate::format::FORMATS {
            assert!(
                video_format(info.fourcc).is_some(),
                "{} has no GstVideoFormat",
                info.name
            );
        }
    }

    #[test]
    fn mappable_buffers_get_plain_caps() {
        gst::init().unwrap();
        let caps = caps_for_version(&stream(DrmFourcc::Nv12, DrmModifier::Linear), true, false).unwrap();
        assert_eq!(
            caps.to_string(),
            "video/x-raw, format=(string)NV12, width=(int)320, height=(int)240, framerate=(fraction)30/1"
        );
        // Same with 1.24 semantics: mappable never gets the feature.
        let caps24 = caps_for_version(&stream(DrmFourcc::Nv12, DrmModifier::Linear), true, true).unwrap();
        assert_eq!(caps, caps24);
    }

    #[test]
    fn non_mappable_buffers_get_the_dmabuf_feature() {
        gst::init().unwrap();
        let caps = caps_for_version(&stream(DrmFourcc::Xrgb8888, DrmModifier::Linear), false, false).unwrap();
        assert_eq!(
            caps.to_string(),
            "video/x-raw(memory:DMABuf), format=(string)BGRx, width=(int)320, height=(int)240, framerate=(fraction)30/1"
        );
        let parsed = parse_caps(&caps).unwrap();
        assert!(parsed.dmabuf_feature);
        assert_eq!(
            (parsed.fourcc, parsed.modifier),
            (DrmFourcc::Xrgb8888, DrmModifier::Linear)
        );
    }

    #[test]
    fn dma_drm_style_for_1_24() {
        gst::init().unwrap();
        let tiled = DrmModifier::from(0x0100_0000_0000_0002u64);
        let caps = caps_for_version(&stream(DrmFourcc::Nv12, tiled), false, true).unwrap();
        let s = caps.structure(0).unwrap();
        assert_eq!(s.get::<&str>("format").unwrap(), "DMA_DRM");
        assert_eq!(s.get::<&str>("drm-format").unwrap(), "NV12:0x0100000000000002");
        assert_eq!(parse_caps(&caps).unwrap().modifier, tiled);
        // LINEAR is written without a modifier.
        let linear = caps_for_version(&stream(DrmFourcc::Xrgb8888, DrmModifier::Linear), false, true).unwrap();
        assert_eq!(linear.structure(0).unwrap().get::<&str>("drm-format").unwrap(), "XR24");
        assert!(caps.features(0).unwrap().contains(CAPS_FEATURE_MEMORY_DMABUF));
        // A tiled modifier cannot be said in 1.22 caps.
        assert!(matches!(
            caps_for_version(&stream(DrmFourcc::Nv12, tiled), false, false),
            Err(CapsError::ModifierNeedsDmaDrm(..))
        ));
    }

    #[test]
    fn drm_format_strings() {
        assert_eq!(parse_drm_format("NV12"), Ok((DrmFourcc::Nv12, DrmModifier::Linear)));
        assert_eq!(
            parse_drm_format("AR24:0x0100000000000001"),
            Ok((DrmFourcc::Argb8888, DrmModifier::from(0x0100_0000_0000_0001u64)))
        );
        for bad in ["NV1", "NV12:1", "NV12:0xzz", "ABCDE"] {
            assert!(parse_drm_format(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_errors_are_typed() {
        gst::init().unwrap();
        let audio = gst::Caps::builder("audio/x-raw").build();
        assert!(matches!(parse_caps(&audio), Err(CapsError::NotRawVideo(_))));
        let gray = gst::Caps::builder("video/x-raw")
            .field("format", "GRAY8")
            .field("width", 4)
            .field("height", 4)
            .build();
        assert!(matches!(parse_caps(&gray), Err(CapsError::UnsupportedFormat(_))));
        let no_width = gst::Caps::builder("video/x-raw")
            .field("format", "NV12")
            .field("height", 4)
            .build();
        assert_eq!(parse_caps(&no_width), Err(CapsError::MissingField("width")));
    }
}
