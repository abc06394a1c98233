// Graphics pattern, ramp pass: the grey ramp across the lower quarter as
// one quad (pattern_common.wgsl's rule). The bars and the box are clears
// (`pattern_graphics` in src/vulkan/render.rs), so no other pixel runs a
// shader.

@vertex
fn vs_main(@builtin(vertex_index) vi: u32) -> @builtin(position) vec4<f32> {
    let w = params.width;
    let h = params.height;
    return rect_corner(vi, 0.0, f32(h - h / 4u), f32(w), f32(h), w, h);
}

@fragment
fn fs_main(@builtin(position) position: vec4<f32>) -> @location(0) vec4<f32> {
    let x = pixel(position).x;
    let grey = to_unorm(x * 255u / max(params.width - 1u, 1u));
    return vec4<f32>(grey, grey, grey, 1.0);
}
