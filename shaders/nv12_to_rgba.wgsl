// NV12 to RGBA8 (semiplanar_read.wgsl), writing a storage image.

struct Size {
    width: u32,
    height: u32,
    yuv: Yuv,
}

var<immediate> size: Size;

@group(0) @binding(2) var out_image: texture_storage_2d<rgba8unorm, write>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= size.width || id.y >= size.height {
        return;
    }
    textureStore(out_image, id.xy, vec4<f32>(yuv_rgb(id.xy, size.yuv), 1.0));
}
