// NV12 (BT.709 limited range) to RGBA8, reading the planes through R8 and
// R8G8 views and writing a storage image. Chroma is taken from the 2x2
// block's sample (nearest), matching how the pattern writes it.

struct Size {
    width: u32,
    height: u32,
}

var<immediate> size: Size;

@group(0) @binding(0) var luma: texture_2d<f32>;
@group(0) @binding(1) var chroma: texture_2d<f32>;
@group(0) @binding(2) var out_image: texture_storage_2d<rgba8unorm, write>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= size.width || id.y >= size.height {
        return;
    }
    let y = (textureLoad(luma, id.xy, 0).r * 255.0 - 16.0) * 1.164383;
    let uv = textureLoad(chroma, id.xy / 2u, 0).rg * 255.0 - vec2<f32>(128.0, 128.0);
    let r = y + 1.792741 * uv.y;
    let g = y - 0.213249 * uv.x - 0.532909 * uv.y;
    let b = y + 2.112402 * uv.x;
    let rgb = clamp(vec3<f32>(r, g, b) / 255.0, vec3<f32>(0.0), vec3<f32>(1.0));
    textureStore(out_image, id.xy, vec4<f32>(rgb, 1.0));
}
