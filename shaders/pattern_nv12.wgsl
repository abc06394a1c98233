// Pattern into NV12 through per-plane views (R8 for luma, R8G8 for chroma):
// lavapipe has no STORAGE on the multi-planar format itself. Each 2x2 block's
// chroma is that of its top-left pixel.

@group(0) @binding(0) var luma: texture_storage_2d<r8unorm, write>;
@group(0) @binding(1) var chroma: texture_storage_2d<rg8unorm, write>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.width || id.y >= params.height {
        return;
    }
    let yuv = rgb_to_yuv(pattern_rgb(id.x, id.y));
    textureStore(luma, id.xy, vec4<f32>(to_unorm(yuv.x), 0.0, 0.0, 1.0));
    if (id.x & 1u) == 0u && (id.y & 1u) == 0u {
        textureStore(chroma, id.xy / 2u, vec4<f32>(to_unorm(yuv.y), to_unorm(yuv.z), 0.0, 1.0));
    }
}
