//! The one table that describes pixel formats, and linear layout computation.
//!
//! Every other module (the [`DmaBuf`](crate::DmaBuf) builder, the allocators,
//! later the Vulkan, GStreamer and Wayland adapters) asks this table how many
//! planes a format has and how many bytes a row of each plane needs. Mappings
//! to other vocabularies (VkFormat, GstVideoFormat, wl_shm) live with their
//! adapters and are keyed by the same [`DrmFourcc`].
//!
//! All arithmetic is checked: sizes are computed in `u64`, strides and offsets
//! must fit the `u32` that DRM, Wayland and GStreamer's `VideoMeta` use, and
//! anything that does not fit is a [`FormatError`], never a wrap-around.

use drm_fourcc::DrmFourcc;

/// The most planes any format (or any modifier's auxiliary planes) can have.
pub const MAX_PLANES: usize = 4;

/// How one plane of a format stores its samples.
///
/// A *block* is the smallest horizontal run of pixels that has a whole number
/// of bytes: one pixel for RGB and planar YUV, two pixels for packed 4:2:2
/// (YUYV, UYVY), whose four bytes hold two luma and one chroma pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneFormat {
    /// Bytes one block occupies.
    pub bytes_per_block: u32,
    /// Samples (of this plane, after subsampling) in one block.
    pub block_width: u32,
    /// Horizontal subsampling: the plane is `ceil(width / h_sub)` samples wide.
    pub h_sub: u32,
    /// Vertical subsampling: the plane is `ceil(height / v_sub)` rows high.
    pub v_sub: u32,
}

impl PlaneFormat {
    const fn new(bytes_per_block: u32, block_width: u32, h_sub: u32, v_sub: u32) -> Self {
        Self {
            bytes_per_block,
            block_width,
            h_sub,
            v_sub,
        }
    }

    /// Samples in one row of this plane for an image `width` pixels wide
    /// (subsampled sizes round up: a 3-pixel-wide 4:2:0 image has 2 chroma
    /// samples per row).
    pub const fn samples(&self, width: u32) -> u32 {
        width.div_ceil(self.h_sub)
    }

    /// Rows of this plane for an image `height` pixels high (rounded up).
    pub const fn rows(&self, height: u32) -> u32 {
        height.div_ceil(self.v_sub)
    }

    /// The fewest bytes a row of this plane can have, or `None` when that does
    /// not fit in a `u32` stride.
    pub const fn min_row_bytes(&self, width: u32) -> Option<u32> {
        self.samples(width)
            .div_ceil(self.block_width)
            .checked_mul(self.bytes_per_block)
    }
}

/// Everything the crate knows about one format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatInfo {
    /// The DRM fourcc this entry describes.
    pub fourcc: DrmFourcc,
    /// The name DRM gives the format (`drm_fourcc.h` without `DRM_FORMAT_`).
    pub name: &'static str,
    /// One entry per plane, in DRM plane order.
    pub planes: &'static [PlaneFormat],
    /// Whether the format carries YUV (as opposed to RGB) samples.
    pub is_yuv: bool,
    /// Whether the format has a meaningful alpha channel.
    pub has_alpha: bool,
}

impl FormatInfo {
    /// Number of planes of the format (for LINEAR and implicit modifiers).
    pub const fn plane_count(&self) -> usize {
        self.planes.len()
    }
}

const RGB32: &[PlaneFormat] = &[PlaneFormat::new(4, 1, 1, 1)];
const RGB16: &[PlaneFormat] = &[PlaneFormat::new(2, 1, 1, 1)];
const PACKED_422: &[PlaneFormat] = &[PlaneFormat::new(4, 2, 1, 1)];
const SEMI_PLANAR_420_8: &[PlaneFormat] = &[PlaneFormat::new(1, 1, 1, 1), PlaneFormat::new(2, 1, 2, 2)];
const SEMI_PLANAR_420_16: &[PlaneFormat] = &[PlaneFormat::new(2, 1, 1, 1), PlaneFormat::new(4, 1, 2, 2)];
const PLANAR_420_8: &[PlaneFormat] = &[
    PlaneFormat::new(1, 1, 1, 1),
    PlaneFormat::new(1, 1, 2, 2),
    PlaneFormat::new(1, 1, 2, 2),
];

const fn entry(
    fourcc: DrmFourcc,
    name: &'static str,
    planes: &'static [PlaneFormat],
    is_yuv: bool,
    has_alpha: bool,
) -> FormatInfo {
    FormatInfo {
        fourcc,
        name,
        planes,
        is_yuv,
        has_alpha,
    }
}

/// The format table: the one place a format is described.
pub const FORMATS: &[FormatInfo] = &[
    entry(DrmFourcc::Xrgb8888, "XRGB8888", RGB32, false, false),
    entry(DrmFourcc::Argb8888, "ARGB8888", RGB32, false, true),
    entry(DrmFourcc::Xbgr8888, "XBGR8888", RGB32, false, false),
    entry(DrmFourcc::Abgr8888, "ABGR8888", RGB32, false, true),
    entry(DrmFourcc::Rgb565, "RGB565", RGB16, false, false),
    entry(DrmFourcc::Nv12, "NV12", SEMI_PLANAR_420_8, true, false),
    entry(DrmFourcc::Nv21, "NV21", SEMI_PLANAR_420_8, true, false),
    entry(DrmFourcc::Yuv420, "YUV420", PLANAR_420_8, true, false),
    entry(DrmFourcc::Yvu420, "YVU420", PLANAR_420_8, true, false),
    entry(DrmFourcc::Yuyv, "YUYV", PACKED_422, true, false),
    entry(DrmFourcc::Uyvy, "UYVY", PACKED_422, true, false),
    entry(DrmFourcc::P010, "P010", SEMI_PLANAR_420_16, true, false),
];

/// Looks a format up in [`FORMATS`].
pub fn info(fourcc: DrmFourcc) -> Result<&'static FormatInfo, FormatError> {
    FORMATS
        .iter()
        .find(|f| f.fourcc == fourcc)
        .ok_or(FormatError::Unsupported { fourcc })
}

/// Looks a raw fourcc code (as carried by Wayland or GStreamer) up in
/// [`FORMATS`].
pub fn info_raw(code: u32) -> Result<&'static FormatInfo, FormatError> {
    let fourcc = DrmFourcc::try_from(code).map_err(|_| FormatError::UnknownCode { code })?;
    info(fourcc)
}

/// Where one plane sits in a linear buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PlaneLayout {
    /// Byte offset of the plane's first row from the start of the buffer.
    pub offset: u32,
    /// Bytes from the start of one row to the start of the next.
    pub stride: u32,
    /// Bytes the plane occupies: `stride * rows`.
    pub size: u64,
}

/// A linear layout: per-plane offsets and strides, and the total size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    planes: [PlaneLayout; MAX_PLANES],
    plane_count: usize,
    total_size: u64,
}

impl Layout {
    /// Builds a layout from explicit planes (for example the one a Vulkan
    /// driver reports for a LINEAR image). Checks the plane count and that
    /// every plane ends inside `total_size`.
    pub fn from_planes(planes: &[PlaneLayout], total_size: u64) -> Result<Self, FormatError> {
        if planes.is_empty() || planes.len() > MAX_PLANES {
            return Err(FormatError::PlaneCount { given: planes.len() });
        }
        let mut out = [PlaneLayout::default(); MAX_PLANES];
        for (index, plane) in planes.iter().enumerate() {
            let end = u64::from(plane.offset)
                .checked_add(plane.size)
                .ok_or(FormatError::Overflow {
                    plane: index,
                    what: "plane end",
                })?;
            if end > total_size {
                return Err(FormatError::PlaneOutsideLayout {
                    plane: index,
                    end,
                    total_size,
                });
            }
            out[index] = *plane;
        }
        Ok(Self {
            planes: out,
            plane_count: planes.len(),
            total_size,
        })
    }

    /// The planes, in DRM plane order.
    pub fn planes(&self) -> &[PlaneLayout] {
        &self.planes[..self.plane_count]
    }

    /// Bytes the whole buffer needs.
    pub fn total_size(&self) -> u64 {
        self.total_size
    }
}

/// Computes the tightest linear layout of `fourcc` at `width`x`height` whose
/// strides are multiples of `stride_align` bytes.
///
/// Planes follow each other with no gap: plane *n+1* starts where plane *n*
/// ends (`offset + stride * rows`). Row sizes of subsampled planes round up.
/// `stride_align` may be any non-zero value; drivers usually want a power of
/// two (64 or 256 are common).
pub fn linear_layout(fourcc: DrmFourcc, width: u32, height: u32, stride_align: u32) -> Result<Layout, FormatError> {
    let info = info(fourcc)?;
    if width == 0 || height == 0 {
        return Err(FormatError::ZeroSize { width, height });
    }
    if stride_align == 0 {
        return Err(FormatError::ZeroAlignment);
    }
    let overflow = |plane, what| FormatError::Overflow { plane, what };
    let mut planes = [PlaneLayout::default(); MAX_PLANES];
    let mut next_offset: u64 = 0;
    for (index, plane) in info.planes.iter().enumerate() {
        let min_row = plane.min_row_bytes(width).ok_or(overflow(index, "minimum row size"))?;
        let stride = min_row
            .checked_next_multiple_of(stride_align)
            .ok_or(overflow(index, "aligned stride"))?;
        let offset = u32::try_from(next_offset).map_err(|_| overflow(index, "plane offset"))?;
        let size = u64::from(stride) * u64::from(plane.rows(height));
        next_offset = next_offset.checked_add(size).ok_or(overflow(index, "total size"))?;
        planes[index] = PlaneLayout { offset, stride, size };
    }
    Ok(Layout {
        planes,
        plane_count: info.planes.len(),
        total_size: next_offset,
    })
}

/// Why a format question could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The fourcc is valid but not in [`FORMATS`].
    #[error("format {fourcc} is not supported (supported: {})", supported_list())]
    Unsupported {
        /// The format asked for.
        fourcc: DrmFourcc,
    },
    /// The raw code is not a fourcc drm-fourcc knows.
    #[error("unknown fourcc code {code:#010x}")]
    UnknownCode {
        /// The raw code.
        code: u32,
    },
    /// Width or height is zero.
    #[error("image size {width}x{height} has a zero dimension")]
    ZeroSize {
        /// Width given.
        width: u32,
        /// Height given.
        height: u32,
    },
    /// A stride alignment of zero was asked for.
    #[error("stride alignment must be at least 1, got 0")]
    ZeroAlignment,
    /// A layout was given with no planes or more than [`MAX_PLANES`].
    #[error("a layout has 1 to {MAX_PLANES} planes, got {given}")]
    PlaneCount {
        /// Planes given.
        given: usize,
    },
    /// A plane of an explicit layout ends past the layout's total size.
    #[error("plane {plane} ends at byte {end}, past the layout's total size {total_size}")]
    PlaneOutsideLayout {
        /// Index of the plane.
        plane: usize,
        /// Where the plane ends.
        end: u64,
        /// The layout's total size.
        total_size: u64,
    },
    /// A size does not fit its integer type.
    #[error("plane {plane}: {what} overflows")]
    Overflow {
        /// Index of the plane.
        plane: usize,
        /// Which quantity overflowed.
        what: &'static str,
    },
}

fn supported_list() -> String {
    FORMATS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_is_in_the_table_once() {
        for (i, a) in FORMATS.iter().enumerate() {
            for b in &FORMATS[i + 1..] {
                assert_ne!(a.fourcc, b.fourcc);
            }
            assert!(!a.planes.is_empty() && a.planes.len() <= MAX_PLANES);
        }
    }

    #[test]
    fn unsupported_format_names_the_supported_ones() {
        let err = info(DrmFourcc::Rgb888).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("RG24") && text.contains("XRGB8888, ARGB8888"), "{text}");
    }

    #[test]
    fn unknown_raw_code_is_an_error() {
        assert_eq!(
            info_raw(0x1234_5678),
            Err(FormatError::UnknownCode { code: 0x1234_5678 })
        );
        assert_eq!(info_raw(DrmFourcc::Nv12 as u32).map(|f| f.fourcc), Ok(DrmFourcc::Nv12));
    }

    #[test]
    fn overflow_near_u32_max_is_reported() {
        assert_eq!(
            linear_layout(DrmFourcc::Xrgb8888, u32::MAX, 1, 1),
            Err(FormatError::Overflow {
                plane: 0,
                what: "minimum row size"
            })
        );
        // The row fits, the alignment pushes it past u32::MAX.
        assert_eq!(
            linear_layout(DrmFourcc::Xrgb8888, u32::MAX / 4, 1, 256),
            Err(FormatError::Overflow {
                plane: 0,
                what: "aligned stride"
            })
        );
        // Each plane fits, the second plane's offset does not.
        assert_eq!(
            linear_layout(DrmFourcc::Nv12, 65536, 65536 * 2, 1),
            Err(FormatError::Overflow {
                plane: 1,
                what: "plane offset"
            })
        );
    }

    #[test]
    fn explicit_layout_is_checked() {
        let plane = PlaneLayout {
            offset: 100,
            stride: 16,
            size: 160,
        };
        assert!(Layout::from_planes(&[plane], 260).is_ok());
        assert_eq!(
            Layout::from_planes(&[plane], 259),
            Err(FormatError::PlaneOutsideLayout {
                plane: 0,
                end: 260,
                total_size: 259
            })
        );
        assert_eq!(Layout::from_planes(&[], 1), Err(FormatError::PlaneCount { given: 0 }));
    }
}
