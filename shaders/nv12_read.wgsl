// Reads NV12 as RGB through R8 and R8G8 plane views at bindings 0 and 1,
// with the frame's matrix and range (`Yuv`, pushed by the host:
// `kernels::yuv_constants`). Chroma is taken from the 2x2 block's sample
// (nearest), matching how the pattern writes it.

// YCbCr -> RGB for one colorimetry, in 8-bit code values:
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
    // Normalised sample -> 8-bit code value (255 for 8-bit planes).
    sample_scale: f32,
}

@group(0) @binding(0) var luma: texture_2d<f32>;
@group(0) @binding(1) var chroma: texture_2d<f32>;

fn nv12_rgb(id: vec2<u32>, k: Yuv) -> vec3<f32> {
    let y = (textureLoad(luma, id, 0).r * k.sample_scale - k.y_offset) * k.y_gain;
    let uv = (textureLoad(chroma, id / 2u, 0).rg * k.sample_scale - vec2<f32>(128.0, 128.0)) * k.c_gain;
    let r = y + k.rv * uv.y;
    let g = y + k.gu * uv.x + k.gv * uv.y;
    let b = y + k.bu * uv.x;
    return clamp(vec3<f32>(r, g, b) / 255.0, vec3<f32>(0.0), vec3<f32>(1.0));
}
