//! What a frame's samples mean: the YCbCr matrix and the quantisation range.
//!
//! Pure values, filled from GStreamer caps by `gst::caps` and read by every
//! consumer that turns YUV into RGB (the CPU conversion of
//! [`convert`](crate::convert), the Wayland adapter's choice between telling
//! the compositor and converting). A frame whose caps say nothing gets the
//! rule GStreamer itself applies ([`Colorimetry::default_for_size`]), stated
//! here once instead of guessed in each consumer.

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

/// The matrix and range of one stream's YUV frames (RGB frames ignore it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Colorimetry {
    /// YCbCr -> RGB matrix.
    pub matrix: Matrix,
    /// Quantisation range.
    pub range: Range,
}

impl Colorimetry {
    /// BT.601 limited range (GStreamer's default below HD).
    pub const BT601: Self = Self {
        matrix: Matrix::Bt601,
        range: Range::Limited,
    };
    /// BT.709 limited range (GStreamer's default for HD and larger).
    pub const BT709: Self = Self {
        matrix: Matrix::Bt709,
        range: Range::Limited,
    };

    /// BT.2020 limited range (GStreamer's default from 2160 rows).
    pub const BT2020: Self = Self {
        matrix: Matrix::Bt2020,
        range: Range::Limited,
    };

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
