// Pattern into a 32-bit RGB image, written through an R8G8B8A8 storage view
// (a declared format: no shaderStorageImageWriteWithoutFormat, and no
// STORAGE feature needed on B8G8R8A8). build.rs instantiates SWIZZLE as rgba
// (XBGR8888/ABGR8888: bytes R,G,B,A) and bgra (XRGB8888/ARGB8888: bytes
// B,G,R,A), so the swizzle orders the bytes in memory.

@group(0) @binding(0) var out_image: texture_storage_2d<rgba8unorm, write>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.width || id.y >= params.height {
        return;
    }
    let c = pattern_rgb(id.x, id.y);
    textureStore(out_image, id.xy, vec4<f32>(to_unorm(c.x), to_unorm(c.y), to_unorm(c.z), 1.0).SWIZZLE);
}
