//! Compiles the WGSL shaders in `shaders/` to SPIR-V with naga (pure Rust: no
//! C++ toolchain, no checked-in binaries). Only with the `vulkan` feature.

fn main() {
    println!("cargo::rerun-if-changed=shaders");
    #[cfg(feature = "vulkan")]
    shaders::compile_all();
}

#[cfg(feature = "vulkan")]
mod shaders {
    use std::path::PathBuf;

    /// (output name, source files concatenated in order, substitutions)
    type Shader = (
        &'static str,
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
    );
    const SHADERS: &[Shader] = &[
        (
            "pattern_rgba8",
            &["pattern_common.wgsl", "pattern_rgb.wgsl"],
            &[("SWIZZLE", "rgba")],
        ),
        (
            "pattern_bgra8",
            &["pattern_common.wgsl", "pattern_rgb.wgsl"],
            &[("SWIZZLE", "bgra")],
        ),
        ("pattern_nv12", &["pattern_common.wgsl", "pattern_nv12.wgsl"], &[]),
        (
            "nv12_to_rgba",
            &["yuv_common.wgsl", "semiplanar_read.wgsl", "nv12_to_rgba.wgsl"],
            &[],
        ),
        (
            "composite_rgb",
            &["overlay_common.wgsl", "overlay_store.wgsl", "composite_rgb.wgsl"],
            &[("EXTRA_PARAMS", "")],
        ),
        // YUV composites: one per reader (two planes: NV12, P010; three:
        // I420), the output bound after the planes.
        (
            "composite_semiplanar",
            &[
                "overlay_common.wgsl",
                "overlay_store.wgsl",
                "yuv_common.wgsl",
                "semiplanar_read.wgsl",
                "composite_yuv.wgsl",
            ],
            &[("EXTRA_PARAMS", "yuv: Yuv,"), ("OUT_BINDING", "2")],
        ),
        (
            "composite_planar",
            &[
                "overlay_common.wgsl",
                "overlay_store.wgsl",
                "yuv_common.wgsl",
                "planar_read.wgsl",
                "composite_yuv.wgsl",
            ],
            &[("EXTRA_PARAMS", "yuv: Yuv,"), ("OUT_BINDING", "3")],
        ),
        // Graphics pipelines (vs_main + fs_main in one module).
        ("draw_video_rgb", &["raster_common.wgsl", "draw_video_rgb.wgsl"], &[]),
        (
            "draw_video_semiplanar",
            &[
                "overlay_common.wgsl",
                "yuv_common.wgsl",
                "semiplanar_read.wgsl",
                "raster_common.wgsl",
                "draw_video_yuv.wgsl",
            ],
            &[("EXTRA_PARAMS", "yuv: Yuv,")],
        ),
        (
            "draw_video_planar",
            &[
                "overlay_common.wgsl",
                "yuv_common.wgsl",
                "planar_read.wgsl",
                "raster_common.wgsl",
                "draw_video_yuv.wgsl",
            ],
            &[("EXTRA_PARAMS", "yuv: Yuv,")],
        ),
        (
            "draw_overlay",
            &["overlay_common.wgsl", "raster_common.wgsl", "draw_overlay.wgsl"],
            &[("EXTRA_PARAMS", "")],
        ),
        (
            "draw_pattern_ramp",
            &["pattern_common.wgsl", "raster_common.wgsl", "draw_pattern_ramp.wgsl"],
            &[],
        ),
    ];

    pub fn compile_all() {
        let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
        for (name, files, substitutions) in SHADERS {
            let mut source = String::new();
            for file in *files {
                let path = PathBuf::from("shaders").join(file);
                source += &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                source.push('\n');
            }
            for (from, to) in *substitutions {
                source = source.replace(from, to);
            }
            let module = naga::front::wgsl::parse_str(&source)
                .unwrap_or_else(|e| panic!("shader {name}: {}", e.emit_to_string(&source)));
            let info =
                naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
                    .validate(&module)
                    .unwrap_or_else(|e| panic!("shader {name} does not validate: {e:?}"));
            let options = naga::back::spv::Options {
                lang_version: (1, 3),
                ..Default::default()
            };
            let words = naga::back::spv::write_vec(&module, &info, &options, None)
                .unwrap_or_else(|e| panic!("shader {name}: SPIR-V output failed: {e}"));
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            std::fs::write(out_dir.join(format!("{name}.spv")), bytes).expect("write SPIR-V");
        }
    }
}
