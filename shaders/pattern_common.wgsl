// The moving test pattern, shared by every pattern shader. Integer maths only,
// so that tests/common's CPU reference reproduces every byte exactly.
//
// Picture: eight full-intensity colour bars across the upper three quarters,
// a grey ramp across the lower quarter, and an orange box (1/8 of each
// dimension, at least one pixel) that moves 4 px right and 2 px down per
// frame, wrapping around.

struct Params {
    width: u32,
    height: u32,
    frame: u32,
    _pad: u32,
}

var<immediate> params: Params;

fn bar_colour(bar: u32) -> vec3<u32> {
    switch bar {
        case 0u: { return vec3<u32>(255u, 255u, 255u); } // white
        case 1u: { return vec3<u32>(255u, 255u, 0u); }   // yellow
        case 2u: { return vec3<u32>(0u, 255u, 255u); }   // cyan
        case 3u: { return vec3<u32>(0u, 255u, 0u); }     // green
        case 4u: { return vec3<u32>(255u, 0u, 255u); }   // magenta
        case 5u: { return vec3<u32>(255u, 0u, 0u); }     // red
        case 6u: { return vec3<u32>(0u, 0u, 255u); }     // blue
        default: { return vec3<u32>(0u, 0u, 0u); }       // black
    }
}

fn pattern_rgb(x: u32, y: u32) -> vec3<u32> {
    let w = params.width;
    let h = params.height;
    let box_w = max(w / 8u, 1u);
    let box_h = max(h / 8u, 1u);
    let box_x = (params.frame * 4u) % (w - box_w + 1u);
    let box_y = (params.frame * 2u) % (h - box_h + 1u);
    if x >= box_x && x < box_x + box_w && y >= box_y && y < box_y + box_h {
        return vec3<u32>(255u, 128u, 0u);
    }
    if y >= h - h / 4u && h >= 4u {
        let grey = x * 255u / max(w - 1u, 1u);
        return vec3<u32>(grey, grey, grey);
    }
    return bar_colour(x * 8u / w);
}

// BT.709 limited range, 8.8 fixed point.
fn rgb_to_yuv(c: vec3<u32>) -> vec3<u32> {
    let r = i32(c.x);
    let g = i32(c.y);
    let b = i32(c.z);
    let y = 16 + ((47 * r + 157 * g + 16 * b + 128) >> 8u);
    let u = 128 + ((-26 * r - 86 * g + 112 * b + 128) >> 8u);
    let v = 128 + ((112 * r - 102 * g - 10 * b + 128) >> 8u);
    return vec3<u32>(vec3<i32>(clamp(y, 0, 255), clamp(u, 0, 255), clamp(v, 0, 255)));
}

fn to_unorm(v: u32) -> f32 {
    return f32(v) / 255.0;
}
