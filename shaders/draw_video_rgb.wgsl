// Graphics composite, video pass: a 32-bit RGB frame (sampled image; the
// view's format orders the bytes) onto the colour attachment, one
// fullscreen triangle. The overlay follows as quads (draw_overlay.wgsl).

@group(0) @binding(0) var video: texture_2d<f32>;

@vertex
fn vs_main(@builtin(vertex_index) vi: u32) -> @builtin(position) vec4<f32> {
    return fullscreen(vi);
}

@fragment
fn fs_main(@builtin(position) position: vec4<f32>) -> @location(0) vec4<f32> {
    return vec4<f32>(textureLoad(video, pixel(position), 0).rgb, 1.0);
}
