// The compute composites' store: the overlay's colour where it shows, else
// the video's.
//
// out_image is the XRGB8888 output seen through an R8G8B8A8 storage view:
// the .bgra swizzle puts B, G, R, X into bytes 0..3.
fn store_with_overlay(id: vec2<u32>, video: vec3<f32>) {
    let o = overlay(id.x, id.y);
    if o.w != 0u {
        textureStore(out_image, id, vec4<f32>(vec3<f32>(o.xyz) / 255.0, 1.0).bgra);
    } else {
        textureStore(out_image, id, vec4<f32>(video, 1.0).bgra);
    }
}
