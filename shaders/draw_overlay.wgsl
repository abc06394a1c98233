// Graphics composite, overlay pass: the counter box (instance 0) and the
// progress bar (instance 1) as quads over what the video pass (or a copy)
// left, each pixel coloured by overlay_common.wgsl's `overlay`, so only
// the overlay's own pixels are shaded.

@vertex
fn vs_main(@builtin(vertex_index) vi: u32, @builtin(instance_index) ii: u32) -> @builtin(position) vec4<f32> {
    let w = params.width;
    let h = params.height;
    let s = max(h / 90u, 1u);
    if ii == 0u {
        let x0 = f32(2u * s);
        let y0 = f32(2u * s);
        return rect_corner(vi, x0, y0, x0 + f32((4u * DIGITS + 1u) * s), y0 + f32(7u * s), w, h);
    }
    if params.progress == NO_PROGRESS || w <= 4u * s {
        // No bar: a degenerate quad, nothing rasterised.
        return vec4<f32>(0.0, 0.0, 0.0, 1.0);
    }
    return rect_corner(vi, f32(2u * s), f32(h - 3u * s), f32(w - 2u * s), f32(h - s), w, h);
}

@fragment
fn fs_main(@builtin(position) position: vec4<f32>) -> @location(0) vec4<f32> {
    let p = pixel(position);
    let o = overlay(p.x, p.y);
    if o.w == 0u {
        discard;
    }
    return vec4<f32>(vec3<f32>(o.xyz) / 255.0, 1.0);
}
