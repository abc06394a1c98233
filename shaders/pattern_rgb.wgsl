// Pattern into a 32-bit RGB image. build.rs instantiates STORAGE_FORMAT as
// rgba8unorm (XBGR8888/ABGR8888) and bgra8unorm (XRGB8888/ARGB8888): the
// shader writes logical RGBA and the view's format orders the bytes.

@group(0) @binding(0) var out_image: texture_storage_2d<STORAGE_FORMAT, write>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.width || id.y >= params.height {
        return;
    }
    let c = pattern_rgb(id.x, id.y);
    textureStore(out_image, id.xy, vec4<f32>(to_unorm(c.x), to_unorm(c.y), to_unorm(c.z), 1.0));
}
