// Reads NV12 (BT.709 limited range) as RGB through R8 and R8G8 plane views
// at bindings 0 and 1. Chroma is taken from the 2x2 block's sample
// (nearest), matching how the pattern writes it.

@group(0) @binding(0) var luma: texture_2d<f32>;
@group(0) @binding(1) var chroma: texture_2d<f32>;

fn nv12_rgb(id: vec2<u32>) -> vec3<f32> {
    let y = (textureLoad(luma, id, 0).r * 255.0 - 16.0) * 1.164383;
    let uv = textureLoad(chroma, id / 2u, 0).rg * 255.0 - vec2<f32>(128.0, 128.0);
    let r = y + 1.792741 * uv.y;
    let g = y - 0.213249 * uv.x - 0.532909 * uv.y;
    let b = y + 2.112402 * uv.x;
    return clamp(vec3<f32>(r, g, b) / 255.0, vec3<f32>(0.0), vec3<f32>(1.0));
}
