//! What can this machine do? The report to attach to bug reports.
//!
//! ```text
//! cargo run --example probe                 # human-readable
//! cargo run --example probe -- --json       # for machines
//! cargo run --example probe -- --headless   # also a private headless Weston's linux-dmabuf
//! ```
//!
//! It tries every allocator for real (a test allocation each), says which one
//! `alloc::best_available()` picks and whether its buffers are kernel
//! dma-bufs, whether implicit synchronisation (sync_file) works on them, and
//! which formats the crate describes, what the Vulkan device offers per
//! format and modifier, and what the Wayland compositor (`WAYLAND_DISPLAY`,
//! or with `--headless` a private headless Weston) offers through
//! linux-dmabuf: version, feedback main device and tranches, modifiers.

use std::path::Path;
use std::process::ExitCode;

use dmabuf_interop::alloc;
use dmabuf_interop::format::FORMATS;
use dmabuf_interop::sync::{self, SyncAccess};
use dmabuf_interop::{DmaBuf, DrmFourcc, Report};
use serde_json::{Value, json};

fn device_nodes() -> Value {
    let list = |dir: &str, prefix: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path().display().to_string())
                    .filter(|p| {
                        Path::new(p)
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    json!({
        "udmabuf": Path::new("/dev/udmabuf").exists(),
        "dma_heaps": list("/dev/dma_heap", ""),
        "render_nodes": list("/dev/dri", "renderD"),
    })
}

fn sync_support(buf: &DmaBuf) -> Value {
    match sync::export_sync_file(buf.planes()[0].fd(), SyncAccess::Read) {
        Ok(_) => json!({ "supported": true }),
        Err(e) => json!({ "supported": false, "why": Report(&e).to_string() }),
    }
}

/// Vulkan devices and, on the one the adapter picks, dma-buf support per
/// format (LINEAR; with modifiers the per-modifier list is longer).
#[cfg(feature = "vulkan")]
fn vulkan_report() -> Value {
    use dmabuf_interop::vulkan::{self, ContextOptions, Exporter, VulkanContext, ash::vk};
    let devices = match VulkanContext::list_devices() {
        Ok(list) => list
            .into_iter()
            .map(|d| json!({ "name": d.name, "usable": d.usable.is_ok(), "why_not": d.usable.err().map(|e| Report(&e).to_string()) }))
            .collect::<Vec<_>>(),
        Err(e) => return json!({ "error": Report(&e).to_string() }),
    };
    let ctx = match VulkanContext::new(&ContextOptions::default()) {
        Ok(ctx) => ctx,
        Err(e) => return json!({ "devices": devices, "error": Report(&e).to_string() }),
    };
    let usage = vk::ImageUsageFlags::SAMPLED | vk::ImageUsageFlags::TRANSFER_SRC;
    let exporter = Exporter::new(&ctx).ok();
    let formats: Vec<Value> = vulkan::VK_FORMATS
        .iter()
        .map(|f| {
            let support = vulkan::format_support(&ctx, f.fourcc, dmabuf_interop::DrmModifier::Linear, usage);
            let backend = exporter
                .as_ref()
                .and_then(|e| e.backend_for(f.fourcc, usage, &[]).ok())
                .map(|b| format!("{b:?}"));
            let modifiers: Vec<Value> = vulkan::modifiers(&ctx, f.fourcc)
                .unwrap_or_default()
                .iter()
                .map(|m| {
                    json!({
                        "modifier": dmabuf_interop::dmabuf::ModifierName(m.modifier).to_string(),
                        "planes": m.plane_count,
                        "features": format!("{:?}", m.features),
                    })
                })
                .collect();
            match support {
                Ok(s) => json!({
                    "modifiers": modifiers,
                    "fourcc": dmabuf_interop::format::info(f.fourcc).map(|i| i.name).unwrap_or("?"),
                    "vk_format": format!("{:?}", f.format),
                    "importable": s.importable,
                    "exportable": s.exportable,
                    "export_backend": if s.importable || s.exportable { backend } else { None },
                    "max_extent": [s.max_extent.0, s.max_extent.1],
                    "planes": s.plane_count,
                    "disjoint": s.disjoint,
                }),
                Err(e) => json!({ "fourcc": f.fourcc.to_string(), "error": Report(&e).to_string() }),
            }
        })
        .collect();
    let caps = ctx.capabilities();
    json!({
        "devices": devices,
        "chosen": {
            "name": ctx.info().name,
            "driver": ctx.info().driver,
            "api_version": ctx.info().api_version,
            "drm_format_modifier": caps.drm_format_modifier,
            "semaphore_sync_fd": caps.semaphore_sync_fd,
            "ycbcr_conversion": caps.ycbcr_conversion,
            "render_node": caps.render_node.map(|(a, b)| format!("{a}:{b}")),
        },
        "linear_formats": formats,
    })
}

#[cfg(not(feature = "vulkan"))]
fn vulkan_report() -> Value {
    json!({ "error": "built without the `vulkan` feature" })
}

/// The compositor's linux-dmabuf offer: the session's (`WAYLAND_DISPLAY`)
/// or, with `headless`, a private headless Weston's.
#[cfg(feature = "headless")]
fn compositor_report(headless: bool) -> Value {
    use dmabuf_interop::wayland::headless::{Weston, WestonOptions};
    use dmabuf_interop::wayland::{Presenter, Target};
    let target = || Target::Toplevel {
        title: "dmabuf-interop probe".into(),
        app_id: "dmabuf-interop.probe".into(),
    };
    // The window is never given a buffer, so it never maps.
    let (which, presenter, _weston) = if headless {
        let weston = match Weston::start(WestonOptions::default()) {
            Ok(w) => w,
            Err(e) => return json!({ "error": Report(&e).to_string() }),
        };
        let p = Presenter::connect_to(&weston.socket_path(), target());
        ("private headless Weston".to_owned(), p, Some(weston))
    } else if let Some(display) = std::env::var_os("WAYLAND_DISPLAY") {
        (
            display.to_string_lossy().into_owned(),
            Presenter::connect(target()),
            None,
        )
    } else {
        return json!({ "error": "no WAYLAND_DISPLAY (--headless probes a private headless Weston)" });
    };
    let presenter = match presenter {
        Ok(p) => p,
        Err(e) => return json!({ "compositor": which, "error": Report(&e).to_string() }),
    };
    let f = presenter.formats();
    let node_of = |dev: u64| {
        std::fs::read_dir("/dev/dri").ok().and_then(|dir| {
            dir.flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("render")))
                .find(|p| rustix::fs::stat(p).is_ok_and(|st| st.st_rdev == dev))
                .map(|p| p.display().to_string())
        })
    };
    let device = |dev: Option<u64>| {
        dev.map(|d| {
            let (major, minor) = (rustix::fs::major(d), rustix::fs::minor(d));
            match node_of(d) {
                Some(node) => format!("{major}:{minor} ({node})"),
                None => format!("{major}:{minor}"),
            }
        })
    };
    let tranches: Vec<Value> = f
        .tranches
        .iter()
        .map(|t| json!({ "target_device": device(t.target_device), "scanout": t.scanout, "pairs": t.formats.len() }))
        .collect();
    let formats: Vec<Value> = f
        .dmabuf_fourccs()
        .into_iter()
        .map(|fourcc| {
            let modifiers: Vec<String> = f
                .modifiers(fourcc)
                .into_iter()
                .map(|m| dmabuf_interop::dmabuf::ModifierName(m).to_string())
                .collect();
            json!({ "fourcc": fourcc.to_string(), "modifiers": modifiers })
        })
        .collect();
    let colour = {
        let c = presenter.colour_offer();
        if c.representation {
            let pairs: Vec<String> = c.pairs.iter().map(|(m, r)| format!("{m:?} {r:?}")).collect();
            json!({ "offered": true, "pairs": pairs, "alpha_modes": c.alpha_modes, "listed": c.raw_pairs.len() })
        } else {
            json!({ "offered": false })
        }
    };
    let management = {
        let m = presenter.colour_management_offer();
        json!({
            "offered": m.offered,
            "parametric": m.parametric,
            "mastering": m.mastering,
            "transfer_functions": m.transfer_functions,
            "primaries": m.primaries,
        })
    };
    json!({
        "compositor": which,
        "colour_management": management,
        "linux_dmabuf_version": f.dmabuf_version,
        "main_device": device(f.main_device),
        "tranches": tranches,
        "dmabuf_formats": formats,
        "shm_formats": f.shm_fourccs().len(),
        "colour_representation": colour,
        "sync": match (presenter.stats().sync, presenter.sync_fallback()) {
            (dmabuf_interop::wayland::SyncMode::DrmSyncobj, _) => "explicit (linux-drm-syncobj-v1)".to_string(),
            (dmabuf_interop::wayland::SyncMode::ExplicitSyncV1, _) => {
                "explicit (linux-explicit-synchronization-v1)".to_string()
            }
            (_, Some(why)) => format!("implicit (linux-drm-syncobj-v1 offered but unusable: {why})"),
            (_, None) => "implicit (no explicit-sync protocol offered)".to_string(),
        },
    })
}

#[cfg(not(feature = "headless"))]
fn compositor_report(_headless: bool) -> Value {
    json!({ "error": "built without the `headless` feature" })
}

fn report(headless: bool) -> Value {
    let uname = rustix::system::uname();
    let allocators: Vec<Value> = alloc::probe()
        .into_iter()
        .map(|p| {
            json!({
                "kind": p.kind.name(),
                "works": p.result.is_ok(),
                "kernel_dmabuf": p.kind.makes_kernel_dmabufs(),
                "error": p.result.err().map(|e| Report(&e).to_string()),
            })
        })
        .collect();
    let best = match alloc::best_available() {
        Ok(allocator) => {
            let sample = allocator.allocate(DrmFourcc::Xrgb8888, 64, 64, 64);
            json!({
                "kind": allocator.kind().name(),
                "forced_by": std::env::var(alloc::ALLOCATOR_ENV).ok().map(|v| format!("{}={v}", alloc::ALLOCATOR_ENV)),
                "kernel_dmabuf": sample.as_ref().map(|b| b.is_kernel_dmabuf()).unwrap_or(false),
                "implicit_sync": sample.as_ref().map(sync_support).unwrap_or(Value::Null),
            })
        }
        Err(e) => json!({ "error": Report(&e).to_string() }),
    };
    let formats: Vec<Value> = FORMATS
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "fourcc": f.fourcc.to_string(),
                "planes": f.plane_count(),
                "yuv": f.is_yuv,
            })
        })
        .collect();
    json!({
        "crate": { "name": env!("CARGO_PKG_NAME"), "version": env!("CARGO_PKG_VERSION") },
        "kernel": {
            "release": uname.release().to_string_lossy(),
            "machine": uname.machine().to_string_lossy(),
        },
        "device_nodes": device_nodes(),
        "allocators": allocators,
        "best_allocator": best,
        "formats": formats,
        "vulkan": vulkan_report(),
        "wayland": compositor_report(headless),
    })
}

fn print_human(r: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    println!("{} {} probe", s(&r["crate"]["name"]), s(&r["crate"]["version"]));
    println!(
        "kernel: Linux {} {}",
        s(&r["kernel"]["release"]),
        s(&r["kernel"]["machine"])
    );
    let nodes = &r["device_nodes"];
    let joined = |v: &Value| {
        let items: Vec<String> = v.as_array().into_iter().flatten().map(s).collect();
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    println!(
        "device nodes: /dev/udmabuf {}; dma-heaps: {}; render nodes: {}",
        if nodes["udmabuf"].as_bool() == Some(true) {
            "present"
        } else {
            "absent"
        },
        joined(&nodes["dma_heaps"]),
        joined(&nodes["render_nodes"]),
    );
    println!("allocators (each tried with a real allocation):");
    for a in r["allocators"].as_array().into_iter().flatten() {
        let what = if a["kernel_dmabuf"].as_bool() == Some(true) {
            "kernel dma-buf"
        } else {
            "plain memfd, not a kernel dma-buf"
        };
        match a["error"].as_str() {
            None => println!("  {:<9} works ({what})", s(&a["kind"])),
            Some(e) => println!("  {:<9} no: {e}", s(&a["kind"])),
        }
    }
    let best = &r["best_allocator"];
    match best["error"].as_str() {
        Some(e) => println!("best allocator: none ({e})"),
        None => {
            let forced = best["forced_by"]
                .as_str()
                .map(|f| format!(", forced by {f}"))
                .unwrap_or_default();
            println!("best allocator: {}{forced}", s(&best["kind"]));
            let sync = &best["implicit_sync"];
            match sync["supported"].as_bool() {
                Some(true) => println!("implicit sync (sync_file export/import): supported"),
                _ => println!("implicit sync (sync_file export/import): no, {}", s(&sync["why"])),
            }
        }
    }
    let formats: Vec<String> = r["formats"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| format!("{} ({}p)", s(&f["name"]), f["planes"]))
        .collect();
    println!("formats: {}", formats.join(", "));
    let vk = &r["vulkan"];
    if let Some(e) = vk["error"].as_str() {
        println!("vulkan: {e}");
    }
    for d in vk["devices"].as_array().into_iter().flatten() {
        match d["why_not"].as_str() {
            None => println!("vulkan device: {} (usable)", s(&d["name"])),
            Some(e) => println!("vulkan device: {} (not usable: {e})", s(&d["name"])),
        }
    }
    let chosen = &vk["chosen"];
    if chosen.is_object() {
        println!(
            "vulkan chosen: {} [{}] Vulkan {}; modifiers: {}, sync_file semaphores: {}, YCbCr: {}",
            s(&chosen["name"]),
            s(&chosen["driver"]).trim(),
            s(&chosen["api_version"]),
            chosen["drm_format_modifier"],
            chosen["semaphore_sync_fd"],
            chosen["ycbcr_conversion"]
        );
        println!("  LINEAR dma-buf support (sampled + transfer):");
        for f in vk["linear_formats"].as_array().into_iter().flatten() {
            match f["error"].as_str() {
                Some(e) => println!("    {:<5} error: {e}", s(&f["fourcc"])),
                None => println!(
                    "    {:<8} {:<42} import {:<5} export {:<5} via {:<14} max {}x{}, {} plane(s){}",
                    s(&f["fourcc"]),
                    s(&f["vk_format"]),
                    f["importable"],
                    f["exportable"],
                    f["export_backend"].as_str().unwrap_or("-"),
                    f["max_extent"][0],
                    f["max_extent"][1],
                    f["planes"],
                    if f["disjoint"].as_bool() == Some(true) {
                        ", disjoint ok"
                    } else {
                        ""
                    }
                ),
            }
            for m in f["modifiers"].as_array().into_iter().flatten() {
                println!(
                    "             modifier {} ({} plane(s)): {}",
                    s(&m["modifier"]),
                    m["planes"],
                    s(&m["features"])
                );
            }
        }
    }
    let wl = &r["wayland"];
    match wl["error"].as_str() {
        Some(e) => println!("wayland: {e}"),
        None => {
            println!(
                "wayland ({}): linux-dmabuf v{}, main device {}, {} wl_shm formats",
                s(&wl["compositor"]),
                wl["linux_dmabuf_version"],
                wl["main_device"].as_str().unwrap_or("- (v3: no feedback)"),
                wl["shm_formats"]
            );
            println!("  sync: {}", s(&wl["sync"]));
            let colour = &wl["colour_representation"];
            if colour["offered"].as_bool() == Some(true) {
                let pairs: Vec<String> = colour["pairs"].as_array().into_iter().flatten().map(s).collect();
                let alpha: Vec<String> = colour["alpha_modes"].as_array().into_iter().flatten().map(s).collect();
                println!(
                    "  wp_color_representation_v1: {} ({} pairs listed), alpha modes {}",
                    pairs.join(", "),
                    colour["listed"],
                    alpha.join(", ")
                );
            } else {
                println!(
                    "  wp_color_representation_v1: not offered (YUV not BT.601 limited is converted: colour-correction=auto)"
                );
            }
            let m = &wl["colour_management"];
            if m["offered"].as_bool() == Some(true) {
                println!(
                    "  wp_color_manager_v1: parametric {}, mastering metadata {}, named transfer functions {}, named primaries {} (protocol values)",
                    m["parametric"], m["mastering"], m["transfer_functions"], m["primaries"]
                );
            } else {
                println!(
                    "  wp_color_manager_v1: not offered (no image descriptions: transfer, primaries, HDR metadata)"
                );
            }
            for t in wl["tranches"].as_array().into_iter().flatten() {
                println!(
                    "  tranche: target {}, scanout {}, {} (format, modifier) pairs",
                    t["target_device"].as_str().unwrap_or("?"),
                    t["scanout"],
                    t["pairs"]
                );
            }
            for f in wl["dmabuf_formats"].as_array().into_iter().flatten() {
                let mods: Vec<String> = f["modifiers"].as_array().into_iter().flatten().map(s).collect();
                println!("  {}: {}", s(&f["fourcc"]), mods.join(", "));
            }
        }
    }
    println!("(machine-readable: --json)");
}

fn main() -> ExitCode {
    let mut json_out = false;
    let mut headless = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => json_out = true,
            "--headless" => headless = true,
            "-h" | "--help" => {
                println!(
                    "usage: probe [--json] [--headless]\nReports what dma-buf interop this machine can do; \
                     --headless also starts a private headless Weston and reports its linux-dmabuf offer."
                );
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("probe: unknown argument {other:?} (usage: probe [--json] [--headless])");
                return ExitCode::from(2);
            }
        }
    }
    let r = report(headless);
    if json_out {
        match serde_json::to_string_pretty(&r) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("probe: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print_human(&r);
    }
    ExitCode::SUCCESS
}
