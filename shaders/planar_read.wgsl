// Reads a three-plane 4:2:0 frame (I420: Y, Cb, Cr) as RGB through its
// plane views at bindings 0, 1 and 2 (yuv_common.wgsl).

@group(0) @binding(0) var luma: texture_2d<f32>;
@group(0) @binding(1) var cb_plane: texture_2d<f32>;
@group(0) @binding(2) var cr_plane: texture_2d<f32>;

fn yuv_rgb(id: vec2<u32>, k: Yuv) -> vec3<f32> {
    let c = id / 2u;
    let uv = vec2<f32>(textureLoad(cb_plane, c, 0).r, textureLoad(cr_plane, c, 0).r);
    return yuv_to_rgb(textureLoad(luma, id, 0).r, uv, k);
}
