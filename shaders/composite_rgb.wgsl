// Composite: a 32-bit RGB video frame (sampled image; the view's format
// orders the bytes) plus the overlay into an XRGB8888 storage image of the
// same size.

@group(0) @binding(0) var video: texture_2d<f32>;
@group(0) @binding(1) var out_image: texture_storage_2d<rgba8unorm, write>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.width || id.y >= params.height {
        return;
    }
    store_with_overlay(id.xy, textureLoad(video, id.xy, 0).rgb);
}
