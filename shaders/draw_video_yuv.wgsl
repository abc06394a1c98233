// Graphics composite, video pass: a YUV frame (a reader:
// semiplanar_read.wgsl or planar_read.wgsl, with the frame's matrix and
// range) onto the colour attachment, one fullscreen triangle.

@vertex
fn vs_main(@builtin(vertex_index) vi: u32) -> @builtin(position) vec4<f32> {
    return fullscreen(vi);
}

@fragment
fn fs_main(@builtin(position) position: vec4<f32>) -> @location(0) vec4<f32> {
    return vec4<f32>(yuv_rgb(pixel(position), params.yuv), 1.0);
}
