// Vertex helpers of the graphics pipelines (render pass, one colour
// attachment): positions in pixels of a width x height target, turned into
// clip space. A rectangle's edges on integer pixel edges cover exactly the
// pixels whose centres lie inside (the rasterisation rule), so quads place
// pixels as exactly as the compute kernels' per-pixel tests.

// Corner `vi` (0..5: two triangles) of the rectangle [x0, x1) x [y0, y1).
fn rect_corner(vi: u32, x0: f32, y0: f32, x1: f32, y1: f32, width: u32, height: u32) -> vec4<f32> {
    var corner = array<vec2<f32>, 6>(
        vec2<f32>(0.0, 0.0), vec2<f32>(1.0, 0.0), vec2<f32>(0.0, 1.0),
        vec2<f32>(1.0, 0.0), vec2<f32>(1.0, 1.0), vec2<f32>(0.0, 1.0),
    );
    let c = corner[vi % 6u];
    let px = vec2<f32>(mix(x0, x1, c.x), mix(y0, y1, c.y));
    let size = vec2<f32>(f32(width), f32(height));
    // WGSL's clip space has y up (naga's SPIR-V output flips it into
    // Vulkan's, whose y points down like the pixels').
    let ndc = px / size * 2.0 - vec2<f32>(1.0, 1.0);
    return vec4<f32>(ndc.x, -ndc.y, 0.0, 1.0);
}

// One triangle over the whole target (vertex 0..2).
fn fullscreen(vi: u32) -> vec4<f32> {
    let x = f32((vi << 1u) & 2u);
    let y = f32(vi & 2u);
    return vec4<f32>(x * 2.0 - 1.0, y * 2.0 - 1.0, 0.0, 1.0);
}

// The pixel a fragment covers.
fn pixel(position: vec4<f32>) -> vec2<u32> {
    return vec2<u32>(position.xy);
}
