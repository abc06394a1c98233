// Reads a two-plane 4:2:0 frame (NV12, P010) as RGB through its luma and
// interleaved-chroma plane views at bindings 0 and 1 (yuv_common.wgsl).

@group(0) @binding(0) var luma: texture_2d<f32>;
@group(0) @binding(1) var chroma: texture_2d<f32>;

fn yuv_rgb(id: vec2<u32>, k: Yuv) -> vec3<f32> {
    return yuv_to_rgb(textureLoad(luma, id, 0).r, textureLoad(chroma, id / 2u, 0).rg, k);
}
