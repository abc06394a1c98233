// YCbCr -> RGB for one colorimetry, shared by the YUV readers
// (semiplanar_read.wgsl: NV12, P010; planar_read.wgsl: I420). The host
// pushes `Yuv` (`kernels::yuv_constants`). Chroma is taken from the 2x2
// block's sample (nearest), as the CPU conversion (`convert`) and the
// pattern do.

// In 8-bit code values (a 10-bit sample counts a quarter):
// y = (Y - y_offset) * y_gain, (u, v) = (Cb, Cr - 128) * c_gain,
// R = y + rv v, G = y + gu u + gv v, B = y + bu u.
struct Yuv {
    y_offset: f32,
    y_gain: f32,
    c_gain: f32,
    rv: f32,
    gu: f32,
    gv: f32,
    bu: f32,
    // Normalised sample -> 8-bit code value: 255 for 8-bit planes, 1023/4
    // for 10-bit ones (P010's R10X6 views read code / 1023).
    sample_scale: f32,
}

// RGB in 0..1 from normalised samples of Y and (Cb, Cr).
fn yuv_to_rgb(y_sample: f32, uv_sample: vec2<f32>, k: Yuv) -> vec3<f32> {
    let y = (y_sample * k.sample_scale - k.y_offset) * k.y_gain;
    let uv = (uv_sample * k.sample_scale - vec2<f32>(128.0, 128.0)) * k.c_gain;
    let r = y + k.rv * uv.y;
    let g = y + k.gu * uv.x + k.gv * uv.y;
    let b = y + k.bu * uv.x;
    return clamp(vec3<f32>(r, g, b) / 255.0, vec3<f32>(0.0), vec3<f32>(1.0));
}
