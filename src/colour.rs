//! What a frame's samples mean: the YCbCr matrix, the quantisation range,
//! the transfer function, the primaries, where chroma samples sit, and the
//! HDR10 metadata of a mastering display.
//!
//! Pure values, filled from GStreamer caps by `gst::caps` and read by every
//! consumer that turns YUV into RGB (the CPU conversion of
//! [`convert`](crate::convert), the Wayland adapter's choice between telling
//! the compositor and converting). A frame whose caps say nothing gets the
//! rule GStreamer itself applies ([`Colorimetry::default_for_size`]), stated
//! here once instead of guessed in each consumer. What a stream leaves open
//! stays open (`Unspecified`, `None`): a consumer then tells the compositor
//! nothing about it rather than inventing a value.

/// The YCbCr -> RGB matrix (the luma coefficients Kr, Kb).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Matrix {
    /// ITU-R BT.601 (SD video): Kr 0.299, Kb 0.114.
    Bt601,
    /// ITU-R BT.709 (HD video): Kr 0.2126, Kb 0.0722.
    Bt709,
    /// ITU-R BT.2020 non-constant luminance: Kr 0.2627, Kb 0.0593.
    Bt2020,
}

impl Matrix {
    /// (Kr, Kb): the red and blue luma coefficients.
    pub const fn coefficients(self) -> (f64, f64) {
        match self {
            Matrix::Bt601 => (0.299, 0.114),
            Matrix::Bt709 => (0.2126, 0.0722),
            Matrix::Bt2020 => (0.2627, 0.0593),
        }
    }
}

/// Quantisation range of the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Range {
    /// "TV" range: 8-bit luma 16..=235, chroma 16..=240 (offsets and scales
    /// times 4 at 10 bits).
    Limited,
    /// "PC" range: every code value, chroma centred on 128.
    Full,
}

impl Range {
    /// (luma offset, luma scale, chroma scale) in 8-bit code values, as
    /// GStreamer's `gst_video_color_range_offsets` gives them.
    pub const fn offsets(self) -> (f64, f64, f64) {
        match self {
            Range::Limited => (16.0, 219.0, 224.0),
            Range::Full => (0.0, 255.0, 255.0),
        }
    }
}

/// The transfer function (how code values map to light). BT.601's and
/// BT.2020's 10/12-bit curves are BT.709's (GStreamer keeps separate names
/// for them; they are one function).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transfer {
    /// The stream does not say.
    Unspecified,
    /// BT.709 / BT.601 / BT.2020 SDR (the display side: BT.1886).
    Bt709,
    /// IEC 61966-2-1 sRGB.
    Srgb,
    /// Pure power 2.2.
    Gamma22,
    /// Pure power 2.8 (BT.470 System B/G).
    Gamma28,
    /// SMPTE 240M.
    Smpte240,
    /// Linear light.
    Linear,
    /// SMPTE ST 2084 perceptual quantiser (HDR10).
    Pq,
    /// ARIB STD-B67 hybrid log-gamma.
    Hlg,
}

/// The RGB primaries (and white point).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Primaries {
    /// The stream does not say.
    Unspecified,
    /// BT.709 / sRGB.
    Bt709,
    /// BT.470 System M (NTSC 1953).
    Bt470M,
    /// BT.470 System B/G (PAL).
    Bt470Bg,
    /// SMPTE 170M (BT.601 525-line); SMPTE 240M has the same primaries.
    Smpte170M,
    /// Generic film (illuminant C).
    Film,
    /// BT.2020 / BT.2100.
    Bt2020,
    /// Adobe RGB (1998).
    AdobeRgb,
    /// SMPTE RP 431-2 (DCI-P3, DCI white).
    DciP3,
    /// SMPTE EG 432-1 (Display P3, D65 white).
    DisplayP3,
    /// SMPTE ST 428-1 (CIE XYZ).
    Xyz,
    /// EBU Tech 3213-E.
    Ebu3213,
}

/// Where subsampled chroma samples sit relative to luma, as H.273's
/// Chroma420SampleLocType (0-5) names them; 4:4:4 formats ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChromaSite {
    /// The stream does not say.
    Unspecified,
    /// Type 0: horizontally co-sited, vertically centred (MPEG-2, H.264's
    /// default; GStreamer's `mpeg2`).
    Left,
    /// Type 1: centred both ways (JPEG, MPEG-1; GStreamer's `jpeg`).
    Center,
    /// Type 2: co-sited both ways (GStreamer's `cosited`, BT.2020's).
    TopLeft,
    /// Type 3: horizontally centred, vertically co-sited.
    Top,
}

impl ChromaSite {
    /// H.273 Chroma420SampleLocType, `None` when unspecified.
    pub const fn h273(self) -> Option<u8> {
        match self {
            ChromaSite::Unspecified => None,
            ChromaSite::Left => Some(0),
            ChromaSite::Center => Some(1),
            ChromaSite::TopLeft => Some(2),
            ChromaSite::Top => Some(3),
        }
    }
}

/// How a frame's colour samples stand to its alpha channel (formats with
/// alpha only; `wp_color_representation_v1`'s alpha modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Alpha {
    /// Not stated: whatever the consumer assumes (a Wayland compositor:
    /// premultiplied, electrical values).
    #[default]
    Unspecified,
    /// Straight (not premultiplied), as GStreamer's raw video has it
    /// unless `GST_VIDEO_FLAG_PREMULTIPLIED_ALPHA` says otherwise.
    Straight,
    /// Colour values premultiplied by alpha in their electrical (encoded)
    /// form: the Wayland default.
    Premultiplied,
}

/// HDR10 static metadata, in the units of CTA-861.3 / SMPTE ST 2086 (and
/// GStreamer's `mastering-display-info` / `content-light-level` caps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hdr10 {
    /// Mastering display primaries (red, green, blue) as CIE 1931 (x, y)
    /// in units of 0.00002.
    pub primaries: [(u16, u16); 3],
    /// Mastering display white point (x, y), units of 0.00002.
    pub white_point: (u16, u16),
    /// Mastering display maximum luminance, units of 0.0001 cd/m².
    pub max_luminance: u32,
    /// Mastering display minimum luminance, units of 0.0001 cd/m².
    pub min_luminance: u32,
    /// MaxCLL, cd/m² (0: unknown).
    pub max_cll: u16,
    /// MaxFALL, cd/m² (0: unknown).
    pub max_fall: u16,
}

/// What one stream's samples mean (RGB frames read only the transfer,
/// primaries and HDR metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Colorimetry {
    /// YCbCr -> RGB matrix.
    pub matrix: Matrix,
    /// Quantisation range.
    pub range: Range,
    /// Transfer function.
    pub transfer: Transfer,
    /// RGB primaries.
    pub primaries: Primaries,
    /// Chroma sample position of subsampled formats.
    pub chroma_site: ChromaSite,
    /// Mastering display and content light levels, where the stream has
    /// them.
    pub hdr: Option<Hdr10>,
    /// What the alpha channel means, for formats that have one.
    pub alpha: Alpha,
}

impl Colorimetry {
    /// GStreamer's `bt601`: BT.601 limited range, BT.709 curve, SMPTE 170M
    /// primaries (its default below HD).
    pub const BT601: Self = Self::new(Matrix::Bt601, Range::Limited, Transfer::Bt709, Primaries::Smpte170M);
    /// GStreamer's `bt709`: BT.709 limited range (its default for HD).
    pub const BT709: Self = Self::new(Matrix::Bt709, Range::Limited, Transfer::Bt709, Primaries::Bt709);
    /// GStreamer's `bt2020`: BT.2020 limited range, SDR (its default from
    /// 2160 rows).
    pub const BT2020: Self = Self::new(Matrix::Bt2020, Range::Limited, Transfer::Bt709, Primaries::Bt2020);

    /// A colorimetry with no chroma siting or HDR metadata.
    pub const fn new(matrix: Matrix, range: Range, transfer: Transfer, primaries: Primaries) -> Self {
        Self {
            matrix,
            range,
            transfer,
            primaries,
            chroma_site: ChromaSite::Unspecified,
            hdr: None,
            alpha: Alpha::Unspecified,
        }
    }

    /// This colorimetry with another matrix and range (the rest kept).
    pub const fn with_matrix(self, matrix: Matrix, range: Range) -> Self {
        Self { matrix, range, ..self }
    }

    /// What GStreamer assumes for YUV caps without `colorimetry`
    /// (`set_default_colorimetry` in video-info.c): BT.2020 from 2160 rows,
    /// BT.709 above 576 rows, BT.601 up to 576 rows, all limited range. The
    /// width plays no part.
    pub const fn default_for_size(_width: u32, height: u32) -> Self {
        if height >= 2160 {
            Self::BT2020
        } else if height > 576 {
            Self::BT709
        } else {
            Self::BT601
        }
    }

    /// Same matrix and range: what a YCbCr -> RGB conversion reads.
    pub fn same_conversion(&self, other: &Colorimetry) -> bool {
        self.matrix == other.matrix && self.range == other.range
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gstreamer_default_switches_at_hd() {
        assert_eq!(Colorimetry::default_for_size(640, 480), Colorimetry::BT601);
        assert_eq!(Colorimetry::default_for_size(1280, 720), Colorimetry::BT709);
        assert_eq!(Colorimetry::default_for_size(1920, 1080), Colorimetry::BT709);
        assert_eq!(Colorimetry::default_for_size(720, 576), Colorimetry::BT601);
        assert_eq!(Colorimetry::default_for_size(3840, 2160), Colorimetry::BT2020);
    }

    #[test]
    fn coefficients_are_the_standards() {
        for m in [Matrix::Bt601, Matrix::Bt709, Matrix::Bt2020] {
            let (kr, kb) = m.coefficients();
            assert!(kr > 0.0 && kb > 0.0 && kr + kb < 1.0, "{m:?}");
        }
    }
}
