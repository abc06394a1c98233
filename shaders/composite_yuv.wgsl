// Composite: a YUV video frame (a reader: semiplanar_read.wgsl or
// planar_read.wgsl, whose planes take the bindings before OUT_BINDING)
// plus the overlay into an XRGB8888 storage image of the same size.

@group(0) @binding(OUT_BINDING) var out_image: texture_storage_2d<rgba8unorm, write>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.width || id.y >= params.height {
        return;
    }
    store_with_overlay(id.xy, yuv_rgb(id.xy, params.yuv));
}
