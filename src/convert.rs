//! CPU conversion of every format of the [format table](crate::format) into
//! XRGB8888, the one format every `wl_shm` offers (the protocol requires
//! it): the last resort of a sink whose compositor takes a stream's format
//! neither as a dma-buf nor through `wl_shm`. YUV goes through the frame's
//! [`Colorimetry`] (matrix and range); 4:2:0 and 4:2:2 chroma is taken from
//! the nearest sample.
//!
//! Pure and bounds-checked: every plane is checked against its stride and
//! rows before a byte is read, so a short plane is a [`ConvertError`].

use drm_fourcc::DrmFourcc;

use crate::colour::Colorimetry;
use crate::format::{self, FormatError};

/// Why a frame could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The format is not in the table.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Fewer planes than the format has.
    #[error("{fourcc:?} has {needed} planes, {given} given")]
    Planes {
        /// The format.
        fourcc: DrmFourcc,
        /// Planes given.
        given: usize,
        /// Planes the format has.
        needed: usize,
    },
    /// A plane (or the destination, `plane` = `None`) is shorter than its
    /// rows at its stride need.
    #[error("plane {plane:?} has {got} bytes, {needed} needed ({rows} rows at stride {stride})")]
    Short {
        /// The source plane, or `None` for the destination.
        plane: Option<usize>,
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        needed: usize,
        /// Rows of the plane.
        rows: usize,
        /// Its stride.
        stride: usize,
    },
}

/// Whether [`to_xrgb8888`] converts `fourcc` (every format of the table).
pub fn can_convert(fourcc: DrmFourcc) -> bool {
    format::info(fourcc).is_ok()
}

/// Fixed-point (16 fractional bits) YCbCr -> RGB coefficients for samples
/// given in 10-bit code values (8-bit ones times 4).
#[derive(Debug, Clone, Copy)]
struct Coefficients {
    y_offset: i32,
    y: i32,
    r_v: i32,
    g_u: i32,
    g_v: i32,
    b_u: i32,
}

impl Coefficients {
    fn new(c: Colorimetry) -> Self {
        let (kr, kb) = c.matrix.coefficients();
        let kg = 1.0 - kr - kb;
        let (y_offset, y_scale, c_scale) = c.range.offsets();
        // Output 0..=255 from 10-bit inputs: scales are per 10-bit unit.
        let fixed = |v: f64| (v * 65536.0 / 4.0).round() as i32;
        let y = 255.0 / y_scale;
        let chroma = 255.0 / c_scale;
        Self {
            y_offset: (y_offset * 4.0) as i32,
            y: fixed(y),
            r_v: fixed(2.0 * (1.0 - kr) * chroma),
            g_u: fixed(2.0 * (1.0 - kb) * kb / kg * chroma),
            g_v: fixed(2.0 * (1.0 - kr) * kr / kg * chroma),
            b_u: fixed(2.0 * (1.0 - kb) * chroma),
        }
    }

    /// One pixel from 10-bit Y, Cb, Cr as XRGB8888 bytes (B, G, R, X).
    #[inline]
    fn pixel(&self, y: i32, u: i32, v: i32) -> [u8; 4] {
        let y = (y - self.y_offset) * self.y + (1 << 15);
        let (u, v) = (u - 512, v - 512);
        let clamp = |x: i32| (x >> 16).clamp(0, 255) as u8;
        [
            clamp(y + self.b_u * u),
            clamp(y - self.g_u * u - self.g_v * v),
            clamp(y + self.r_v * v),
            0xff,
        ]
    }
}

/// Checks that `plane` holds `rows` rows of `row` bytes at `stride`.
fn check(plane: Option<usize>, len: usize, stride: usize, row: usize, rows: usize) -> Result<(), ConvertError> {
    if rows == 0 {
        return Ok(());
    }
    let needed = (rows - 1).checked_mul(stride).and_then(|n| n.checked_add(row));
    match needed {
        Some(n) if n <= len && (rows == 1 || stride >= row) => Ok(()),
        _ => Err(ConvertError::Short {
            plane,
            got: len,
            needed: needed.unwrap_or(usize::MAX),
            rows,
            stride,
        }),
    }
}

/// Converts one frame of `fourcc` (`planes`: each plane's bytes and stride)
/// into XRGB8888 rows of `dst` at `dst_stride`. YUV samples are read with
/// `colorimetry`; RGB formats ignore it.
pub fn to_xrgb8888(
    fourcc: DrmFourcc,
    width: u32,
    height: u32,
    planes: &[(&[u8], usize)],
    colorimetry: Colorimetry,
    dst: &mut [u8],
    dst_stride: usize,
) -> Result<(), ConvertError> {
    let info = format::info(fourcc)?;
    if planes.len() < info.planes.len() {
        return Err(ConvertError::Planes {
            fourcc,
            given: planes.len(),
            needed: info.planes.len(),
        });
    }
    let (w, h) = (width as usize, height as usize);
    for (i, plane) in info.planes.iter().enumerate() {
        let row = plane.min_row_bytes(width).unwrap_or(u32::MAX) as usize;
        check(
            Some(i),
            planes[i].0.len(),
            planes[i].1,
            row,
            plane.rows(height) as usize,
        )?;
    }
    check(None, dst.len(), dst_stride, w * 4, h)?;
    let k = Coefficients::new(colorimetry);
    // Row `y` of plane `p` (its bytes from the row's start to the plane's
    // end: the checks above guarantee a whole row there).
    let row = |p: usize, y: usize| &planes[p].0[y * planes[p].1..];
    let expand = |c: u16, bits: u32| ((u32::from(c) * 255 + ((1 << bits) - 1) / 2) / ((1 << bits) - 1)) as u8;
    let p16 = |b: &[u8], i: usize| i32::from(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])) >> 6;
    for y in 0..h {
        let out = dst[y * dst_stride..y * dst_stride + w * 4].chunks_exact_mut(4);
        match fourcc {
            DrmFourcc::Nv12 | DrmFourcc::Nv21 => {
                let (luma, chroma) = (row(0, y), row(1, y / 2));
                let (u_at, v_at) = if fourcc == DrmFourcc::Nv12 { (0, 1) } else { (1, 0) };
                for (x, px) in out.enumerate() {
                    let c = x / 2 * 2;
                    let (u, v) = (i32::from(chroma[c + u_at]) << 2, i32::from(chroma[c + v_at]) << 2);
                    px.copy_from_slice(&k.pixel(i32::from(luma[x]) << 2, u, v));
                }
            }
            DrmFourcc::P010 => {
                let (luma, chroma) = (row(0, y), row(1, y / 2));
                for (x, px) in out.enumerate() {
                    let c = x / 2 * 2;
                    px.copy_from_slice(&k.pixel(p16(luma, x), p16(chroma, c), p16(chroma, c + 1)));
                }
            }
            DrmFourcc::Yuv420 | DrmFourcc::Yvu420 => {
                let (luma, a, b) = (row(0, y), row(1, y / 2), row(2, y / 2));
                let (us, vs) = if fourcc == DrmFourcc::Yuv420 { (a, b) } else { (b, a) };
                for (x, px) in out.enumerate() {
                    let (u, v) = (i32::from(us[x / 2]) << 2, i32::from(vs[x / 2]) << 2);
                    px.copy_from_slice(&k.pixel(i32::from(luma[x]) << 2, u, v));
                }
            }
            DrmFourcc::Yuyv | DrmFourcc::Uyvy => {
                // Two pixels per four bytes: Y0 U Y1 V (YUYV) or U Y0 V Y1.
                let (y_at, u_at, v_at) = if fourcc == DrmFourcc::Yuyv {
                    (0, 1, 3)
                } else {
                    (1, 0, 2)
                };
                let src = row(0, y);
                for (x, px) in out.enumerate() {
                    let block = &src[x / 2 * 4..x / 2 * 4 + 4];
                    let luma = i32::from(block[y_at + (x % 2) * 2]) << 2;
                    let (u, v) = (i32::from(block[u_at]) << 2, i32::from(block[v_at]) << 2);
                    px.copy_from_slice(&k.pixel(luma, u, v));
                }
            }
            DrmFourcc::Rgb565 => {
                for (px, s) in out.zip(row(0, y).chunks_exact(2)) {
                    let v = u16::from_le_bytes([s[0], s[1]]);
                    px.copy_from_slice(&[
                        expand(v & 0x1f, 5),
                        expand((v >> 5) & 0x3f, 6),
                        expand(v >> 11, 5),
                        0xff,
                    ]);
                }
            }
            DrmFourcc::Xbgr8888 | DrmFourcc::Abgr8888 => {
                for (px, s) in out.zip(row(0, y).chunks_exact(4)) {
                    px.copy_from_slice(&[s[2], s[1], s[0], 0xff]);
                }
            }
            // XRGB8888, ARGB8888: the same bytes (alpha dropped).
            _ => {
                for (px, s) in out.zip(row(0, y).chunks_exact(4)) {
                    px.copy_from_slice(&[s[0], s[1], s[2], 0xff]);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::colour::{Matrix, Range};

    /// The RGB a YUV triple means (floating point, the reference).
    fn reference(c: Colorimetry, y: f64, u: f64, v: f64) -> [f64; 3] {
        let (kr, kb) = c.matrix.coefficients();
        let (yo, ys, cs) = c.range.offsets();
        let (y, u, v) = ((y - yo) / ys, (u - 128.0) / cs, (v - 128.0) / cs);
        let r = y + 2.0 * (1.0 - kr) * v;
        let b = y + 2.0 * (1.0 - kb) * u;
        let g = (y - kr * r - kb * b) / (1.0 - kr - kb);
        [r, g, b].map(|x| (x * 255.0).clamp(0.0, 255.0))
    }

    fn all_colorimetries() -> Vec<Colorimetry> {
        let mut all = Vec::new();
        for matrix in [Matrix::Bt601, Matrix::Bt709, Matrix::Bt2020] {
            for range in [Range::Limited, Range::Full] {
                all.push(Colorimetry::BT601.with_matrix(matrix, range));
            }
        }
        all
    }

    fn nv12(w: usize, h: usize, y: u8, u: u8, v: u8) -> (Vec<u8>, Vec<u8>) {
        let luma = vec![y; w * h];
        let chroma = [u, v].repeat(w / 2 * h / 2);
        (luma, chroma)
    }

    #[test]
    fn nv12_matches_the_reference_within_one_code_value() {
        for c in all_colorimetries() {
            for (y, u, v) in [
                (16, 128, 128),
                (235, 128, 128),
                (81, 90, 240),
                (145, 54, 34),
                (41, 240, 110),
                (128, 128, 128),
            ] {
                let (luma, chroma) = nv12(4, 2, y, u, v);
                let mut dst = vec![0u8; 16 * 2];
                to_xrgb8888(DrmFourcc::Nv12, 4, 2, &[(&luma, 4), (&chroma, 4)], c, &mut dst, 16).unwrap();
                let want = reference(c, f64::from(y), f64::from(u), f64::from(v));
                let got = [dst[2], dst[1], dst[0]];
                for ch in 0..3 {
                    assert!(
                        (f64::from(got[ch]) - want[ch]).abs() <= 1.0,
                        "{c:?} yuv ({y},{u},{v}): got {got:?}, want {want:?}"
                    );
                }
                assert_eq!(dst[3], 0xff);
            }
        }
    }

    #[test]
    fn the_matrix_matters() {
        // Pure green in BT.709 limited is not green in BT.601.
        let (luma, chroma) = nv12(2, 2, 173, 42, 26);
        let mut a = vec![0u8; 16];
        let mut b = vec![0u8; 16];
        to_xrgb8888(
            DrmFourcc::Nv12,
            2,
            2,
            &[(&luma, 2), (&chroma, 2)],
            Colorimetry::BT709,
            &mut a,
            8,
        )
        .unwrap();
        to_xrgb8888(
            DrmFourcc::Nv12,
            2,
            2,
            &[(&luma, 2), (&chroma, 2)],
            Colorimetry::BT601,
            &mut b,
            8,
        )
        .unwrap();
        assert!(a[1] >= 250 && a[0] <= 3 && a[2] <= 3, "{a:?}");
        assert!((i32::from(a[1]) - i32::from(b[1])).abs() > 10 || (i32::from(a[2]) - i32::from(b[2])).abs() > 10);
    }

    #[test]
    fn every_layout_agrees_with_nv12() {
        let c = Colorimetry::BT601;
        let (w, h) = (4usize, 2usize);
        let (y, u, v) = (81u8, 90u8, 240u8);
        let (luma, chroma) = nv12(w, h, y, u, v);
        let mut want = vec![0u8; w * 4 * h];
        to_xrgb8888(DrmFourcc::Nv12, 4, 2, &[(&luma, w), (&chroma, w)], c, &mut want, w * 4).unwrap();
        let nv21 = [v, u].repeat(w / 2 * h / 2);
        let us = vec![u; w / 2 * h / 2];
        let vs = vec![v; w / 2 * h / 2];
        let yuyv = [y, u, y, v].repeat(w / 2 * h);
        let uyvy = [u, y, v, y].repeat(w / 2 * h);
        let p010_luma: Vec<u8> = std::iter::repeat_n(u16::from(y) << 8, w * h)
            .flat_map(u16::to_le_bytes)
            .collect();
        let p010_chroma: Vec<u8> = [u16::from(u) << 8, u16::from(v) << 8]
            .repeat(w / 2 * h / 2)
            .into_iter()
            .flat_map(u16::to_le_bytes)
            .collect();
        type Planes<'a> = Vec<(&'a [u8], usize)>;
        let cases: Vec<(DrmFourcc, Planes)> = vec![
            (DrmFourcc::Nv21, vec![(&luma, w), (&nv21, w)]),
            (DrmFourcc::Yuv420, vec![(&luma, w), (&us, w / 2), (&vs, w / 2)]),
            (DrmFourcc::Yvu420, vec![(&luma, w), (&vs, w / 2), (&us, w / 2)]),
            (DrmFourcc::Yuyv, vec![(&yuyv, w * 2)]),
            (DrmFourcc::Uyvy, vec![(&uyvy, w * 2)]),
            (DrmFourcc::P010, vec![(&p010_luma, w * 2), (&p010_chroma, w * 2)]),
        ];
        for (fourcc, planes) in cases {
            let mut got = vec![0u8; w * 4 * h];
            to_xrgb8888(fourcc, 4, 2, &planes, c, &mut got, w * 4).unwrap();
            assert_eq!(got, want, "{fourcc:?}");
        }
    }

    #[test]
    fn rgb_formats_keep_their_colours() {
        let mut dst = vec![0u8; 4];
        to_xrgb8888(
            DrmFourcc::Abgr8888,
            1,
            1,
            &[(&[10, 20, 30, 40], 4)],
            Colorimetry::BT601,
            &mut dst,
            4,
        )
        .unwrap();
        assert_eq!(dst, [30, 20, 10, 0xff]);
        // RGB565 red, green, blue at full intensity.
        for (v, want) in [(0xf800u16, [0, 0, 255]), (0x07e0, [0, 255, 0]), (0x001f, [255, 0, 0])] {
            to_xrgb8888(
                DrmFourcc::Rgb565,
                1,
                1,
                &[(&v.to_le_bytes(), 2)],
                Colorimetry::BT601,
                &mut dst,
                4,
            )
            .unwrap();
            assert_eq!(&dst[..3], &want, "{v:#x}");
        }
    }

    #[test]
    fn short_planes_are_errors_not_panics() {
        let mut dst = vec![0u8; 64];
        let luma = vec![0u8; 15];
        let chroma = vec![0u8; 8];
        let e = to_xrgb8888(
            DrmFourcc::Nv12,
            4,
            4,
            &[(&luma, 4), (&chroma, 4)],
            Colorimetry::BT601,
            &mut dst,
            16,
        );
        assert!(matches!(e, Err(ConvertError::Short { plane: Some(0), .. })), "{e:?}");
        let luma = vec![0u8; 16];
        let e = to_xrgb8888(DrmFourcc::Nv12, 4, 4, &[(&luma, 4)], Colorimetry::BT601, &mut dst, 16);
        assert!(
            matches!(
                e,
                Err(ConvertError::Planes {
                    given: 1,
                    needed: 2,
                    ..
                })
            ),
            "{e:?}"
        );
        let e = to_xrgb8888(
            DrmFourcc::Nv12,
            4,
            4,
            &[(&luma, 4), (&chroma, 4)],
            Colorimetry::BT601,
            &mut dst[..63],
            16,
        );
        assert!(matches!(e, Err(ConvertError::Short { plane: None, .. })), "{e:?}");
        // A stride below the row is refused, not read past.
        let e = to_xrgb8888(
            DrmFourcc::Nv12,
            4,
            4,
            &[(&luma, 2), (&chroma, 4)],
            Colorimetry::BT601,
            &mut dst,
            16,
        );
        assert!(e.is_err());
    }
}
