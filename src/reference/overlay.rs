//! The viewer's overlay, computed on the CPU: a frame counter (six
//! seven-segment digits in a dark box, top left) and a progress bar along
//! the bottom.
//!
//! [`crate::vulkan::Kernels::composite`] draws it on the GPU from
//! `shaders/overlay_common.wgsl`; this module is that shader's byte-exact
//! reference and tells tests where the overlay lies. Everything scales with
//! one unit, `height / 90` pixels (at least 1): a digit is 3 x 5 units on a
//! 4-unit pitch, the box has a one-unit margin, the bar is 2 units high.
//! Keep the two in step.

/// Digits of the counter (the frame number modulo 10^6, zero-padded).
pub const DIGITS: u32 = 6;

/// Colour of a lit segment.
pub const DIGIT_RGB: [u8; 3] = [255, 255, 255];
/// Colour of the counter's box.
pub const BOX_RGB: [u8; 3] = [16, 16, 16];
/// Colour of the bar's filled part.
pub const FILL_RGB: [u8; 3] = [255, 64, 160];
/// Colour of the bar's empty part.
pub const TRACK_RGB: [u8; 3] = [48, 48, 48];

/// Segments a..g (bits 0..6: top, upper right, lower right, bottom, lower
/// left, upper left, middle) lit for each digit 0..9.
pub const SEGMENTS: [u8; 10] = [63, 6, 91, 79, 102, 109, 125, 7, 127, 111];

/// What the overlay shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overlay {
    /// The number the counter shows (modulo 10^6).
    pub frame: u32,
    /// Progress in thousandths (clamped to 1000); `None` hides the bar.
    pub progress: Option<u32>,
}

/// A rectangle in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl Rect {
    /// Whether (x, y) lies inside.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && y >= self.y && x - self.x < self.width && y - self.y < self.height
    }
}

/// The overlay's unit in pixels for a frame `height` pixels high.
pub fn unit(height: u32) -> u32 {
    (height / 90).max(1)
}

/// The counter's box (it may reach past the frame's edges on tiny frames;
/// only pixels inside the frame are drawn).
pub fn counter_rect(height: u32) -> Rect {
    let s = unit(height);
    Rect {
        x: 2 * s,
        y: 2 * s,
        width: (4 * DIGITS + 1) * s,
        height: 7 * s,
    }
}

/// Cell (`cx`, `cy`) of digit `i` (0 = leftmost) in the counter box: the
/// pixel rectangle of one unit square of the 3 x 5 digit grid.
pub fn digit_cell(height: u32, i: u32, cx: u32, cy: u32) -> Rect {
    let s = unit(height);
    let b = counter_rect(height);
    Rect {
        x: b.x + (1 + 4 * i + cx) * s,
        y: b.y + (1 + cy) * s,
        width: s,
        height: s,
    }
}

/// The progress bar's track, or `None` when the frame is too narrow.
pub fn bar_rect(width: u32, height: u32) -> Option<Rect> {
    let s = unit(height);
    (width > 4 * s && height >= 3 * s).then(|| Rect {
        x: 2 * s,
        y: height - 3 * s,
        width: width - 4 * s,
        height: 2 * s,
    })
}

/// Whether cell (`cx`, `cy`) of a 3 x 5 digit is lit.
pub fn cell_lit(digit: u32, cx: u32, cy: u32) -> bool {
    let s = SEGMENTS[(digit % 10) as usize];
    let on = |bit: u8| s & (1 << bit) != 0;
    (on(0) && cy == 0)
        || (on(1) && cx == 2 && cy <= 2)
        || (on(2) && cx == 2 && cy >= 2)
        || (on(3) && cy == 4)
        || (on(4) && cx == 0 && cy >= 2)
        || (on(5) && cx == 0 && cy <= 2)
        || (on(6) && cy == 2)
}

impl Overlay {
    /// The overlay's colour at (x, y) of a `width` x `height` frame, or
    /// `None` where the video shows through.
    pub fn pixel(&self, width: u32, height: u32, x: u32, y: u32) -> Option<[u8; 3]> {
        let s = unit(height);
        let b = counter_rect(height);
        if b.contains(x, y) {
            let gx = (x - b.x) / s;
            let gy = (y - b.y) / s;
            if gx >= 1 && (1..=5).contains(&gy) && (gx - 1) % 4 < 3 {
                let i = (gx - 1) / 4;
                let digit = (self.frame % 1_000_000) / 10u32.pow(DIGITS - 1 - i) % 10;
                if cell_lit(digit, (gx - 1) % 4, gy - 1) {
                    return Some(DIGIT_RGB);
                }
            }
            return Some(BOX_RGB);
        }
        let progress = self.progress?;
        let bar = bar_rect(width, height)?;
        if !bar.contains(x, y) {
            return None;
        }
        let filled = bar.width * progress.min(1000) / 1000;
        Some(if x - bar.x < filled { FILL_RGB } else { TRACK_RGB })
    }

    /// The push constants of the composite shaders for a frame of this
    /// size: width, height, frame, progress (`u32::MAX` = no bar).
    pub fn push_constants(&self, width: u32, height: u32) -> [u8; 16] {
        let mut out = [0u8; 16];
        let words = [width, height, self.frame, self.progress.unwrap_or(u32::MAX)];
        for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_cells_spell_the_counter() {
        let o = Overlay {
            frame: 1_234_567,
            progress: None,
        };
        let (w, h) = (640, 360);
        // 1234567 mod 10^6 = 234567
        for (i, digit) in [2u32, 3, 4, 5, 6, 7].into_iter().enumerate() {
            let mut mask = 0u8;
            // One probe cell per segment, each covered by that segment only.
            for (bit, (cx, cy)) in [(1, 0), (2, 1), (2, 3), (1, 4), (0, 3), (0, 1), (1, 2)]
                .into_iter()
                .enumerate()
            {
                let c = digit_cell(h, i as u32, cx, cy);
                if o.pixel(w, h, c.x + c.width / 2, c.y + c.height / 2) == Some(DIGIT_RGB) {
                    mask |= 1 << bit;
                }
            }
            assert_eq!(mask, SEGMENTS[digit as usize], "digit {i}");
        }
    }

    #[test]
    fn bar_fills_in_proportion() {
        let (w, h) = (400, 180);
        let bar = bar_rect(w, h).unwrap();
        let half = Overlay {
            frame: 0,
            progress: Some(500),
        };
        let y = bar.y + 1;
        assert_eq!(half.pixel(w, h, bar.x, y), Some(FILL_RGB));
        assert_eq!(half.pixel(w, h, bar.x + bar.width / 2 - 1, y), Some(FILL_RGB));
        assert_eq!(half.pixel(w, h, bar.x + bar.width / 2, y), Some(TRACK_RGB));
        assert_eq!(half.pixel(w, h, bar.x + bar.width - 1, y), Some(TRACK_RGB));
        assert_eq!(half.pixel(w, h, bar.x + bar.width, y), None);
        assert_eq!(half.pixel(w, h, w / 2, h / 2), None);
        let hidden = Overlay { progress: None, ..half };
        assert_eq!(hidden.pixel(w, h, bar.x, y), None);
    }

    #[test]
    fn tiny_frames_do_not_overflow() {
        let o = Overlay {
            frame: 42,
            progress: Some(2000),
        };
        // Nothing fits in 2x2 (the box starts at 2 units) ...
        for (x, y) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            assert_eq!(o.pixel(2, 2, x, y), None);
        }
        // ... 5x3 has a one-pixel bar, full (progress clamped to 1000).
        assert_eq!(
            bar_rect(5, 3),
            Some(Rect {
                x: 2,
                y: 0,
                width: 1,
                height: 2
            })
        );
        assert_eq!(o.pixel(5, 3, 2, 0), Some(FILL_RGB));
        assert_eq!(o.pixel(5, 3, 2, 2), Some(BOX_RGB));
        assert_eq!(o.pixel(5, 3, 0, 2), None);
        assert_eq!(bar_rect(4, 3), None);
    }
}
