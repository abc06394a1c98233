// The viewer's overlay, shared by the composite shaders: a frame counter
// (six seven-segment digits in a dark box, top left) and a progress bar
// along the bottom. Integer maths only, so `overlay::pixel` on the CPU
// reproduces every byte; keep the two in step.

struct Params {
    width: u32,
    height: u32,
    frame: u32,
    // Progress in 1/1000; NO_PROGRESS hides the bar.
    progress: u32,
    // YUV composites: the video's matrix and range (yuv_common.wgsl).
    EXTRA_PARAMS
}

var<immediate> params: Params;

const NO_PROGRESS: u32 = 0xffffffffu;
const DIGITS: u32 = 6u;

// Segments a..g in bits 0..6 for the digits 0..9.
fn segments(digit: u32) -> u32 {
    switch digit {
        case 0u: { return 63u; }
        case 1u: { return 6u; }
        case 2u: { return 91u; }
        case 3u: { return 79u; }
        case 4u: { return 102u; }
        case 5u: { return 109u; }
        case 6u: { return 125u; }
        case 7u: { return 7u; }
        case 8u: { return 127u; }
        default: { return 111u; }
    }
}

// Whether cell (cx, cy) of a 3x5 digit is lit.
fn cell_lit(digit: u32, cx: u32, cy: u32) -> bool {
    let s = segments(digit);
    let a = (s & 1u) != 0u && cy == 0u;
    let b = (s & 2u) != 0u && cx == 2u && cy <= 2u;
    let c = (s & 4u) != 0u && cx == 2u && cy >= 2u;
    let d = (s & 8u) != 0u && cy == 4u;
    let e = (s & 16u) != 0u && cx == 0u && cy >= 2u;
    let f = (s & 32u) != 0u && cx == 0u && cy <= 2u;
    let g = (s & 64u) != 0u && cy == 2u;
    return a || b || c || d || e || f || g;
}

// The overlay's colour at (x, y), or alpha 0 where the video shows.
fn overlay(x: u32, y: u32) -> vec4<u32> {
    let w = params.width;
    let h = params.height;
    let s = max(h / 90u, 1u);
    // Counter box: (2s, 2s), (4 * DIGITS + 1) s wide, 7s high.
    let bx = 2u * s;
    let by = 2u * s;
    if x >= bx && y >= by && x < bx + (4u * DIGITS + 1u) * s && y < by + 7u * s {
        let gx = (x - bx) / s;
        let gy = (y - by) / s;
        if gx >= 1u && gy >= 1u && gy <= 5u && (gx - 1u) % 4u < 3u {
            let i = (gx - 1u) / 4u;
            var value = params.frame % 1000000u;
            for (var k = i + 1u; k < DIGITS; k++) {
                value = value / 10u;
            }
            if cell_lit(value % 10u, (gx - 1u) % 4u, gy - 1u) {
                return vec4<u32>(255u, 255u, 255u, 1u);
            }
        }
        return vec4<u32>(16u, 16u, 16u, 1u);
    }
    // Progress bar: 2s high, s above the bottom edge, 2s from each side.
    if params.progress != NO_PROGRESS && w > 4u * s && y >= h - 3u * s && y < h - s && x >= 2u * s && x < w - 2u * s {
        let filled = (w - 4u * s) * min(params.progress, 1000u) / 1000u;
        if x - 2u * s < filled {
            return vec4<u32>(255u, 64u, 160u, 1u);
        }
        return vec4<u32>(48u, 48u, 48u, 1u);
    }
    return vec4<u32>(0u, 0u, 0u, 0u);
}
