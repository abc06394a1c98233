//! The moving test pattern, computed on the CPU.
//!
//! This is the reference the GPU pattern (`shaders/pattern_*.wgsl`) is
//! compared with, byte for byte: eight colour bars over the upper three
//! quarters, a grey ramp below, and an orange box (1/8 of each dimension)
//! moving 4 px right and 2 px down per frame. YUV is BT.709 limited range in
//! 8.8 fixed point; a 2x2 block's chroma is that of its top-left pixel. Keep
//! it in step with `shaders/pattern_common.wgsl`.

use drm_fourcc::DrmFourcc;

use crate::format::{self, FormatError};

const BARS: [[u32; 3]; 8] = [
    [255, 255, 255],
    [255, 255, 0],
    [0, 255, 255],
    [0, 255, 0],
    [255, 0, 255],
    [255, 0, 0],
    [0, 0, 255],
    [0, 0, 0],
];

/// The box's colour.
pub const BOX_RGB: [u8; 3] = [255, 128, 0];

/// Where the box is in frame `frame`: (x, y, width, height).
pub fn box_rect(width: u32, height: u32, frame: u32) -> (u32, u32, u32, u32) {
    let bw = (width / 8).max(1);
    let bh = (height / 8).max(1);
    let bx = frame.wrapping_mul(4) % (width - bw + 1);
    let by = frame.wrapping_mul(2) % (height - bh + 1);
    (bx, by, bw, bh)
}

/// RGB of pixel (x, y) of frame `frame` of a `width`x`height` pattern.
pub fn rgb(width: u32, height: u32, frame: u32, x: u32, y: u32) -> [u8; 3] {
    let (bx, by, bw, bh) = box_rect(width, height, frame);
    let c = if x >= bx && x < bx + bw && y >= by && y < by + bh {
        [255, 128, 0]
    } else if height >= 4 && y >= height - height / 4 {
        let grey = x * 255 / (width - 1).max(1);
        [grey, grey, grey]
    } else {
        BARS[(x * 8 / width).min(7) as usize]
    };
    [c[0] as u8, c[1] as u8, c[2] as u8]
}

/// BT.709 limited-range YUV of an RGB triple, as the shaders compute it.
pub fn rgb_to_yuv(c: [u8; 3]) -> [u8; 3] {
    let (r, g, b) = (i32::from(c[0]), i32::from(c[1]), i32::from(c[2]));
    let y = 16 + ((47 * r + 157 * g + 16 * b + 128) >> 8);
    let u = 128 + ((-26 * r - 86 * g + 112 * b + 128) >> 8);
    let v = 128 + ((112 * r - 102 * g - 10 * b + 128) >> 8);
    [y.clamp(0, 255) as u8, u.clamp(0, 255) as u8, v.clamp(0, 255) as u8]
}

/// Frame `frame` in `fourcc`, each plane tightly packed (rows of the plane's
/// minimum row size). Supported: the four 32-bit RGB formats (alpha 255) and
/// NV12.
pub fn frame_planes(fourcc: DrmFourcc, width: u32, height: u32, frame: u32) -> Result<Vec<Vec<u8>>, FormatError> {
    format::linear_layout(fourcc, width, height, 1)?;
    let (w, h) = (width as usize, height as usize);
    let px = |x: usize, y: usize| rgb(width, height, frame, x as u32, y as u32);
    Ok(match fourcc {
        DrmFourcc::Xrgb8888 | DrmFourcc::Argb8888 | DrmFourcc::Xbgr8888 | DrmFourcc::Abgr8888 => {
            let bgr = matches!(fourcc, DrmFourcc::Xrgb8888 | DrmFourcc::Argb8888);
            let mut out = Vec::with_capacity(w * h * 4);
            for y in 0..h {
                for x in 0..w {
                    let [r, g, b] = px(x, y);
                    out.extend_from_slice(&if bgr { [b, g, r, 255] } else { [r, g, b, 255] });
                }
            }
            vec![out]
        }
        DrmFourcc::Nv12 => {
            let mut luma = Vec::with_capacity(w * h);
            for y in 0..h {
                for x in 0..w {
                    luma.push(rgb_to_yuv(px(x, y))[0]);
                }
            }
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let mut chroma = Vec::with_capacity(cw * ch * 2);
            for y in 0..ch {
                for x in 0..cw {
                    let [_, u, v] = rgb_to_yuv(px(2 * x, 2 * y));
                    chroma.extend_from_slice(&[u, v]);
                }
            }
            vec![luma, chroma]
        }
        other => return Err(FormatError::Unsupported { fourcc: other }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_ramp_and_box() {
        // 1920x1080, frame 0: box at the origin, 240x135.
        assert_eq!(box_rect(1920, 1080, 0), (0, 0, 240, 135));
        assert_eq!(rgb(1920, 1080, 0, 10, 10), BOX_RGB);
        assert_eq!(rgb(1920, 1080, 0, 300, 10), [255, 255, 0]); // yellow bar
        assert_eq!(rgb(1920, 1080, 0, 1919, 10), [0, 0, 0]); // black bar
        assert_eq!(rgb(1920, 1080, 0, 1919, 1079), [255, 255, 255]); // end of ramp
        assert_eq!(rgb(1920, 1080, 0, 0, 1079), [0, 0, 0]); // start of ramp
        // The box moves 4 px right and 2 px down a frame.
        assert_eq!(box_rect(1920, 1080, 10), (40, 20, 240, 135));
        // A 1x1 image is all box.
        assert_eq!(rgb(1, 1, 7, 0, 0), BOX_RGB);
    }

    #[test]
    fn yuv_of_known_colours() {
        assert_eq!(rgb_to_yuv([0, 0, 0]), [16, 128, 128]);
        assert_eq!(rgb_to_yuv([255, 255, 255]), [235, 128, 128]);
        // BT.709 red: Y 63, Cb 102, Cr 240.
        assert_eq!(rgb_to_yuv([255, 0, 0]), [63, 102, 240]);
    }

    #[test]
    fn planes_have_packed_sizes() {
        let p = frame_planes(DrmFourcc::Nv12, 5, 3, 0).unwrap();
        assert_eq!((p[0].len(), p[1].len()), (15, 3 * 2 * 2));
        let p = frame_planes(DrmFourcc::Xrgb8888, 5, 3, 0).unwrap();
        assert_eq!(p[0].len(), 60);
        assert!(frame_planes(DrmFourcc::Yuyv, 4, 4, 0).is_err());
    }
}
