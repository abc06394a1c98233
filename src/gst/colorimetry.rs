//! Caps -> [`Colorimetry`]: GStreamer's `colorimetry`, `chroma-site`,
//! `mastering-display-info` and `content-light-level` fields, as plain
//! and DMA_DRM caps carry them (the same fields in GStreamer 1.22 and
//! 1.24+).
//!
//! Two readers. [`colorimetry_of`] reads a `VideoInfo` (the per-frame path:
//! GStreamer has already completed and validated it, so it cannot fail).
//! [`colorimetry_from_caps`] reads the caps themselves, strictly: a field
//! that does not parse, or a matrix that contradicts the format (an RGB
//! matrix on YUV caps), is a [`ColorimetryError`] naming it, where
//! `VideoInfo` silently substitutes the size's default. The sink reports
//! that error and plays on with GStreamer's reading, as every GStreamer
//! element would show the stream.

use std::str::FromStr;

use gst_video::{VideoChromaSite, VideoColorMatrix, VideoColorPrimaries, VideoColorRange, VideoTransferFunction};
use gstreamer as gst;
use gstreamer_video as gst_video;

use crate::colour::{Alpha, ChromaSite, Colorimetry, Hdr10, Matrix, Primaries, Range, Transfer};

/// Why caps' colour fields could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColorimetryError {
    /// A `colorimetry` string GStreamer does not parse.
    #[error("colorimetry {0:?} does not parse (a name such as bt709, or range:matrix:transfer:primaries)")]
    Unparsable(String),
    /// An RGB (identity) matrix on YUV caps, or a YCbCr one on RGB caps.
    #[error("colorimetry {colorimetry:?} has {matrix} matrix, which contradicts format {format}")]
    Contradictory {
        /// The caps' `colorimetry`.
        colorimetry: String,
        /// "an RGB (identity)" or "a YCbCr".
        matrix: &'static str,
        /// The caps' format.
        format: String,
    },
    /// A `chroma-site` string GStreamer does not parse.
    #[error("chroma-site {0:?} does not parse (jpeg, mpeg2, dv, cosited, or flags)")]
    BadChromaSite(String),
    /// A `mastering-display-info` or `content-light-level` field that is
    /// present but malformed.
    #[error("{0} is present but malformed")]
    BadHdrField(&'static str),
    /// The caps are not fixed video caps.
    #[error("not fixed video caps: {0}")]
    NotVideo(String),
}

fn matrix_of(m: VideoColorMatrix, default: Matrix) -> Matrix {
    match m {
        // FCC's coefficients (0.30, 0.11) differ from BT.601's by 0.001.
        VideoColorMatrix::Bt601 | VideoColorMatrix::Fcc => Matrix::Bt601,
        VideoColorMatrix::Bt709 => Matrix::Bt709,
        VideoColorMatrix::Bt2020 => Matrix::Bt2020,
        // SMPTE 240M, unknown (and RGB, which YUV caps cannot mean): the
        // size's default, as GStreamer's own converters read them.
        _ => default,
    }
}

fn range_of(r: VideoColorRange) -> Range {
    match r {
        VideoColorRange::Range0_255 => Range::Full,
        // Unknown is limited: GStreamer's default for YUV.
        _ => Range::Limited,
    }
}

fn transfer_of(t: VideoTransferFunction) -> Transfer {
    use VideoTransferFunction as T;
    match t {
        T::Bt709 | T::Bt601 | T::Bt202010 | T::Bt202012 => Transfer::Bt709,
        T::Srgb => Transfer::Srgb,
        T::Gamma22 => Transfer::Gamma22,
        T::Gamma28 => Transfer::Gamma28,
        T::Smpte240m => Transfer::Smpte240,
        T::Gamma10 => Transfer::Linear,
        T::Smpte2084 => Transfer::Pq,
        T::AribStdB67 => Transfer::Hlg,
        // Gamma 1.8/2.0, log, Adobe RGB's 2.19921875, unknown: nothing a
        // compositor names; said as unspecified.
        _ => Transfer::Unspecified,
    }
}

fn primaries_of(p: VideoColorPrimaries) -> Primaries {
    use VideoColorPrimaries as P;
    match p {
        P::Bt709 => Primaries::Bt709,
        P::Bt470m => Primaries::Bt470M,
        P::Bt470bg => Primaries::Bt470Bg,
        P::Smpte170m | P::Smpte240m => Primaries::Smpte170M,
        P::Film => Primaries::Film,
        P::Bt2020 => Primaries::Bt2020,
        P::Adobergb => Primaries::AdobeRgb,
        P::Smpterp431 => Primaries::DciP3,
        P::Smpteeg432 => Primaries::DisplayP3,
        P::Smptest428 => Primaries::Xyz,
        P::Ebu3213 => Primaries::Ebu3213,
        _ => Primaries::Unspecified,
    }
}

fn chroma_site_of(site: VideoChromaSite) -> ChromaSite {
    // GStreamer's flags say which directions are co-sited; NONE (its
    // `jpeg`) is centred both ways, an empty set is unknown.
    let h = site.contains(VideoChromaSite::H_COSITED);
    let v = site.contains(VideoChromaSite::V_COSITED);
    if site.is_empty() || site.contains(VideoChromaSite::ALT_LINE) {
        // DV's alternating lines have no H.273 location.
        ChromaSite::Unspecified
    } else {
        match (h, v) {
            (true, true) => ChromaSite::TopLeft,
            (true, false) => ChromaSite::Left,
            (false, true) => ChromaSite::Top,
            (false, false) => ChromaSite::Center,
        }
    }
}

/// The colorimetry of a stream as its `VideoInfo` has it (GStreamer
/// completed missing fields with its default for the size). Matrices we do
/// not convert with are read as GStreamer's converters read them: FCC as
/// BT.601, SMPTE 240M and unknown as the size's default; an unknown range
/// as limited. Transfers and primaries without a counterpart here are
/// [`Transfer::Unspecified`] / [`Primaries::Unspecified`]. The chroma site
/// and HDR metadata are left unspecified (`VideoInfo` holds no HDR metadata
/// and cannot tell a stated chroma site from its own guess): see
/// [`colorimetry_from_caps`]. A format with alpha has straight alpha
/// unless the info is flagged `PREMULTIPLIED_ALPHA`.
pub fn colorimetry_of(info: &gst_video::VideoInfo) -> Colorimetry {
    let default = Colorimetry::default_for_size(info.width(), info.height());
    let c = info.colorimetry();
    Colorimetry {
        matrix: matrix_of(c.matrix(), default.matrix),
        range: range_of(c.range()),
        transfer: transfer_of(c.transfer()),
        primaries: primaries_of(c.primaries()),
        // VideoInfo fills in a site the caps did not state, and cannot
        // tell the two apart: only the caps' field says (the strict reader).
        chroma_site: ChromaSite::Unspecified,
        hdr: None,
        alpha: alpha_of(info),
    }
}

/// GStreamer's raw video has straight alpha unless the info says it is
/// premultiplied; formats without alpha leave it unspecified.
fn alpha_of(info: &gst_video::VideoInfo) -> Alpha {
    if !info.format_info().has_alpha() {
        Alpha::Unspecified
    } else if info.flags().contains(gst_video::VideoFlags::PREMULTIPLIED_ALPHA) {
        Alpha::Premultiplied
    } else {
        Alpha::Straight
    }
}

/// The HDR10 metadata of `caps`: `None` without a `mastering-display-info`
/// or `content-light-level` field.
pub fn hdr10_of(caps: &gst::CapsRef) -> Result<Option<Hdr10>, ColorimetryError> {
    let s = caps
        .structure(0)
        .ok_or_else(|| ColorimetryError::NotVideo(caps.to_string()))?;
    let mut hdr = Hdr10::default();
    let mut any = false;
    if s.has_field("mastering-display-info") {
        let m = gst_video::VideoMasteringDisplayInfo::from_caps(caps)
            .map_err(|_| ColorimetryError::BadHdrField("mastering-display-info"))?;
        let p = m.display_primaries();
        hdr.primaries = [0, 1, 2].map(|i| (p[i].x, p[i].y));
        hdr.white_point = (m.white_point().x, m.white_point().y);
        hdr.max_luminance = m.max_display_mastering_luminance();
        hdr.min_luminance = m.min_display_mastering_luminance();
        any = true;
    }
    if s.has_field("content-light-level") {
        let l = gst_video::VideoContentLightLevel::from_caps(caps)
            .map_err(|_| ColorimetryError::BadHdrField("content-light-level"))?;
        hdr.max_cll = l.max_content_light_level();
        hdr.max_fall = l.max_frame_average_light_level();
        any = true;
    }
    Ok(any.then_some(hdr))
}

/// The colorimetry `caps` state, read strictly (see the module docs):
/// their `colorimetry` (else GStreamer's default for the size),
/// `chroma-site` and HDR10 fields. `info` is the caps' `VideoInfo`
/// ([`video_info`](super::caps::video_info)), which says whether the format
/// is YUV and completes what the caps leave out.
pub fn colorimetry_from_caps(
    caps: &gst::CapsRef,
    info: &gst_video::VideoInfo,
) -> Result<Colorimetry, ColorimetryError> {
    let s = caps
        .structure(0)
        .ok_or_else(|| ColorimetryError::NotVideo(caps.to_string()))?;
    let mut out = colorimetry_of(info);
    if let Ok(text) = s.get::<&str>("colorimetry") {
        let parsed =
            gst_video::VideoColorimetry::from_str(text).map_err(|_| ColorimetryError::Unparsable(text.to_owned()))?;
        let yuv = info.format_info().is_yuv();
        let rgb_matrix = parsed.matrix() == VideoColorMatrix::Rgb;
        if yuv == rgb_matrix && (yuv || parsed.matrix() != VideoColorMatrix::Unknown) {
            return Err(ColorimetryError::Contradictory {
                colorimetry: text.to_owned(),
                matrix: if rgb_matrix { "an RGB (identity)" } else { "a YCbCr" },
                format: info.format().to_str().to_string(),
            });
        }
        let default = Colorimetry::default_for_size(info.width(), info.height());
        out.matrix = matrix_of(parsed.matrix(), default.matrix);
        out.range = range_of(parsed.range());
        out.transfer = transfer_of(parsed.transfer());
        out.primaries = primaries_of(parsed.primaries());
    }
    if let Ok(text) = s.get::<&str>("chroma-site") {
        let site = VideoChromaSite::from_str(text).map_err(|_| ColorimetryError::BadChromaSite(text.to_owned()))?;
        out.chroma_site = chroma_site_of(site);
    }
    out.hdr = hdr10_of(caps)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(caps: &str) -> Result<Colorimetry, ColorimetryError> {
        gst::init().unwrap();
        let caps = gst::Caps::from_str(caps).unwrap();
        let info = super::super::caps::video_info(&caps).unwrap();
        colorimetry_from_caps(&caps, &info)
    }

    fn nv12(extra: &str) -> Result<Colorimetry, ColorimetryError> {
        read(&format!(
            "video/x-raw,format=NV12,width=640,height=480,framerate=30/1{extra}"
        ))
    }

    #[test]
    fn alpha_is_straight_unless_the_info_says_premultiplied() {
        let rgba = |format: &str| {
            read(&format!(
                "video/x-raw,format={format},width=64,height=48,framerate=30/1"
            ))
            .unwrap()
            .alpha
        };
        assert_eq!(rgba("BGRA"), Alpha::Straight);
        assert_eq!(rgba("RGBA"), Alpha::Straight);
        assert_eq!(rgba("BGRx"), Alpha::Unspecified);
        assert_eq!(nv12("").unwrap().alpha, Alpha::Unspecified);
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Bgra, 64, 48)
            .flags(gst_video::VideoFlags::PREMULTIPLIED_ALPHA)
            .build()
            .unwrap();
        assert_eq!(colorimetry_of(&info).alpha, Alpha::Premultiplied);
    }

    #[test]
    fn every_named_gstreamer_colorimetry() {
        use Matrix::*;
        use Range::*;
        // (name, matrix, range, transfer, primaries), as video-color.c
        // defines the names.
        let cases = [
            ("bt601", Bt601, Limited, Transfer::Bt709, Primaries::Smpte170M),
            ("bt709", Bt709, Limited, Transfer::Bt709, Primaries::Bt709),
            ("smpte240m", Bt601, Limited, Transfer::Smpte240, Primaries::Smpte170M),
            ("bt2020", Bt2020, Limited, Transfer::Bt709, Primaries::Bt2020),
            ("bt2020-10", Bt2020, Limited, Transfer::Bt709, Primaries::Bt2020),
            ("bt2100-pq", Bt2020, Limited, Transfer::Pq, Primaries::Bt2020),
            ("bt2100-hlg", Bt2020, Limited, Transfer::Hlg, Primaries::Bt2020),
        ];
        for (name, matrix, range, transfer, primaries) in cases {
            let c = nv12(&format!(",colorimetry={name}")).unwrap_or_else(|e| panic!("{name}: {e}"));
            // smpte240m's matrix is read as the size's default (BT.601 at 480 rows).
            assert_eq!(
                (c.matrix, c.range, c.transfer, c.primaries),
                (matrix, range, transfer, primaries),
                "{name}"
            );
            assert_eq!(c.hdr, None, "{name}");
        }
    }

    #[test]
    fn numeric_colorimetry_and_full_range() {
        // range 1 = 0-255, matrix 3 = BT.709, transfer 5 = BT.709, primaries 1 = BT.709.
        let c = nv12(",colorimetry=1:3:5:1").unwrap();
        assert_eq!(
            (c.matrix, c.range, c.primaries),
            (Matrix::Bt709, Range::Full, Primaries::Bt709)
        );
        // All unknown: the size's default matrix, limited, unspecified rest.
        let c = nv12(",colorimetry=0:0:0:0").unwrap();
        assert_eq!((c.matrix, c.range), (Matrix::Bt601, Range::Limited));
        assert_eq!(
            (c.transfer, c.primaries),
            (Transfer::Unspecified, Primaries::Unspecified)
        );
    }

    #[test]
    fn no_colorimetry_is_gstreamers_default_for_the_size() {
        assert_eq!(nv12("").unwrap(), Colorimetry::BT601);
        let hd = read("video/x-raw,format=NV12,width=1280,height=720,framerate=30/1").unwrap();
        assert_eq!(hd, Colorimetry::BT709);
        // DMA_DRM caps read the same.
        let drm = read("video/x-raw,format=DMA_DRM,drm-format=NV12,width=1280,height=720,colorimetry=bt601");
        assert_eq!(drm.unwrap().matrix, Matrix::Bt601);
    }

    #[test]
    fn invalid_and_contradictory_colorimetry_are_errors() {
        assert_eq!(
            nv12(",colorimetry=nonsense"),
            Err(ColorimetryError::Unparsable("nonsense".into()))
        );
        assert!(matches!(
            nv12(",colorimetry=sRGB"),
            Err(ColorimetryError::Contradictory { .. })
        ));
        let rgb = read("video/x-raw,format=BGRx,width=64,height=64,colorimetry=bt709");
        assert!(matches!(rgb, Err(ColorimetryError::Contradictory { .. })), "{rgb:?}");
        // sRGB on RGB caps is what RGB means.
        let srgb = read("video/x-raw,format=BGRx,width=64,height=64,colorimetry=sRGB").unwrap();
        assert_eq!((srgb.transfer, srgb.primaries), (Transfer::Srgb, Primaries::Bt709));
        assert_eq!(
            nv12(",chroma-site=sideways"),
            Err(ColorimetryError::BadChromaSite("sideways".into()))
        );
        assert_eq!(
            nv12(",mastering-display-info=garbage"),
            Err(ColorimetryError::BadHdrField("mastering-display-info"))
        );
    }

    #[test]
    fn chroma_sites() {
        for (text, site) in [
            ("mpeg2", ChromaSite::Left),
            ("jpeg", ChromaSite::Center),
            ("cosited", ChromaSite::TopLeft),
            ("v-cosited", ChromaSite::Top),
            ("dv", ChromaSite::Unspecified),
        ] {
            assert_eq!(
                nv12(&format!(",chroma-site={text}")).unwrap().chroma_site,
                site,
                "{text}"
            );
        }
        assert_eq!(nv12("").unwrap().chroma_site, ChromaSite::Unspecified);
    }

    #[test]
    fn hdr10_metadata_from_caps() {
        // Display primaries and white point as x:y pairs in 0.00002 units,
        // then max and min luminance in 0.0001 cd/m²; MaxCLL:MaxFALL.
        let mdi = "35400:14600:8500:39850:6550:2300:15635:16450:10000000:1";
        let c = read(&format!(
            "video/x-raw,format=P010_10LE,width=3840,height=2160,colorimetry=bt2100-pq,\
             mastering-display-info=(string){mdi},content-light-level=(string)1000:400"
        ))
        .unwrap();
        assert_eq!(c.transfer, Transfer::Pq);
        let hdr = c.hdr.expect("HDR10 metadata");
        assert_eq!(hdr.primaries, [(35400, 14600), (8500, 39850), (6550, 2300)]);
        assert_eq!(hdr.white_point, (15635, 16450));
        assert_eq!((hdr.max_luminance, hdr.min_luminance), (10_000_000, 1));
        assert_eq!((hdr.max_cll, hdr.max_fall), (1000, 400));
    }
}
