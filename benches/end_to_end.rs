//! End to end, on a private headless Weston 14 (GL renderer on llvmpipe,
//! 60 Hz), the same source for every client:
//! `videotestsrc is-live=true num-buffers=N ! video/x-raw,format=F,
//! width=W,height=H,framerate=60/1` at 1920x1080 and 3840x2160, BGRx and
//! NV12, into
//!
//! - our `wldmabufsink` (`gst-launch-1.0 -m`, frames shown from its
//!   `wldmabufsink-stats` message),
//! - GStreamer's `waylandsink` (`gst-launch-1.0` with
//!   `GST_DEBUG=waylandsink:6,wl*:6`; frames shown = its frame callbacks,
//!   the `frame_redraw_cb` lines: 1.22 logs drops as "dropped (redraw
//!   pending)", 1.24+ replaces a pending frame silently, so counting
//!   `show_frame` calls would overcount there),
//! - GStreamer's `glimagesink` (the GL anchor: upload, draw, EGL swap;
//!   frames shown = the buffers its EGL surface attached, counted in the
//!   client's `WAYLAND_DEBUG` log: EGL swaps wait for the frame callback),
//! - the viewer's Vulkan path (`viewer --present vulkan --pipeline ...`:
//!   import, composite with the overlay, export, linux-dmabuf).
//!
//! wldmabufsink's presentation timing comes from the same stats: presented
//! minus target (`wp_presentation` feedback against running time + base
//! time + latency), median and 95th percentile of |error| over the long
//! run's frames; the other clients ask for no feedback.
//!
//! Each client is its own process; its CPU time (user + system) is read
//! from `/proc/<pid>/stat` once it has exited but before it is reaped
//! (`waitid(WNOWAIT)`), Weston's as the difference of its
//! `/proc/<pid>/stat` around the run. A fresh Weston per run (kiosk-shell
//! 14.0.2 crashes when a second client maps a toplevel after the first went
//! away).
//!
//! Steady state: every case runs twice, with 60 and with 360 frames, and
//! the costs per frame are the differences (CPU of the long run minus the
//! short one, over the frames shown more), so startup (GStreamer registry,
//! Vulkan instance, pipeline compilation) drops out.
//!
//! Then export: `vkdmabufsrc` at 1080p into `fakesink` against
//! `videotestsrc ! vulkanupload ! fakesink` (frames per second from
//! gst-launch's "Execution ended after").
//!
//! Not criterion: one real-time run per case is the measurement; the
//! output is a markdown table (also written to `target/end_to_end.md`).
//! `scripts/bench` builds the plugin and the viewer first.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use dmabuf_interop::wayland::headless::{Weston, WestonOptions};
use rustix::process::{Pid, WaitId, WaitIdOptions, waitid};

/// The short and the long run of each case (their difference is the
/// steady state).
const SHORT: u32 = 60;
const LONG: u32 = 360;
/// Frames of the export runs.
const FRAMES: u32 = 300;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Client {
    Ours,
    Waylandsink,
    Glimagesink,
    Vulkan,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Ours => "wldmabufsink",
            Client::Waylandsink => "waylandsink",
            Client::Glimagesink => "glimagesink",
            Client::Vulkan => "viewer --present vulkan",
        }
    }
}

struct Outcome {
    shown: u64,
    client_cpu: f64,
    weston_cpu: f64,
    /// wldmabufsink's presented - target (`wp_presentation` feedback
    /// against running time + base time + latency), median and p95 of
    /// |error|, microseconds; the other clients ask for no feedback.
    timing: Timing,
}

/// Presented - target: (median, p95 of |error|) in microseconds.
type Timing = Option<(i64, u64)>;

/// target/release, from target/release/deps/end_to_end-*.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().and_then(Path::parent).expect("target dir").to_path_buf()
}

fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')').ok_or("bad stat")? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or("bad stat field")
    };
    let (utime, stime) = (ticks(11)?, ticks(12)?);
    Ok((utime + stime) as f64 / rustix::param::clock_ticks_per_second() as f64)
}

fn source(format: &str, (w, h): (u32, u32), frames: u32) -> String {
    format!(
        "videotestsrc is-live=true num-buffers={frames} ! video/x-raw,format={format},width={w},height={h},framerate=60/1"
    )
}

fn run(client: Client, format: &str, size: (u32, u32), frames: u32, scratch: &Path) -> Result<Outcome, String> {
    let weston = Weston::start(WestonOptions {
        width: size.0,
        height: size.1,
        refresh_mhz: 60_000,
        ..Default::default()
    })
    .map_err(|e| format!("Weston 14 (run scripts/setup): {e}"))?;
    let weston_pid = weston.pid().ok_or("Weston has no pid")?;
    let src = source(format, size, frames);
    let target = target_dir();
    let mut cmd = match client {
        Client::Ours | Client::Waylandsink => {
            let mut c = Command::new("gst-launch-1.0");
            let sink = if client == Client::Ours {
                "wldmabufsink"
            } else {
                "waylandsink"
            };
            c.arg("-m")
                .args(format!("{src} ! {sink}").split(' '))
                .env("GST_PLUGIN_PATH", &target)
                .env("GST_DEBUG", "waylandsink:6,wl*:6")
                .env("GST_DEBUG_NO_COLOR", "1");
            c
        }
        Client::Glimagesink => {
            let mut c = Command::new("gst-launch-1.0");
            c.args(format!("{src} ! glimagesink").split(' '))
                .env("WAYLAND_DEBUG", "1")
                .env("GST_GL_WINDOW", "wayland")
                .env_remove("DISPLAY");
            c
        }
        Client::Vulkan => {
            let viewer = target.join("examples/viewer");
            if !viewer.exists() {
                return Err(format!(
                    "{} missing: cargo build --release --example viewer",
                    viewer.display()
                ));
            }
            let mut c = Command::new(viewer);
            c.args(["--present", "vulkan", "--pipeline", &src]);
            c
        }
    };
    let out_path = scratch.join("stdout");
    let err_path = scratch.join("stderr");
    cmd.envs(weston.client_env())
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).map_err(|e| e.to_string())?)
        .stderr(fs::File::create(&err_path).map_err(|e| e.to_string())?);
    let weston_before = cpu_seconds(weston_pid)?;
    let mut child = cmd.spawn().map_err(|e| format!("{cmd:?}: {e}"))?;
    let pid = Pid::from_raw(child.id() as i32).ok_or("no child pid")?;
    // Exited but not reaped: /proc/<pid>/stat still holds its whole CPU time.
    waitid(WaitId::Pid(pid), WaitIdOptions::EXITED | WaitIdOptions::NOWAIT).map_err(|e| e.to_string())?;
    let client_cpu = cpu_seconds(child.id())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    let weston_cpu = cpu_seconds(weston_pid)? - weston_before;
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    if !status.success() {
        let tail: String = stderr.lines().rev().take(15).collect::<Vec<_>>().join("\n");
        return Err(format!("{} exited with {status}:\n{stdout}\n{tail}", client.name()));
    }
    let number_after = |text: &str, key: &str| -> Option<u64> {
        let at = text.find(key)? + key.len();
        text[at..]
            .split(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())?
            .parse()
            .ok()
    };
    let shown = match client {
        Client::Ours => number_after(&stdout, "shown=(guint64)").ok_or("no wldmabufsink-stats message")?,
        Client::Waylandsink => stderr.lines().filter(|l| l.contains("frame_redraw_cb")).count() as u64,
        // `-> wl_surface#N.attach(wl_buffer#M, 0, 0)` (`@` before
        // libwayland 1.23): a buffer, not nil.
        Client::Glimagesink => stderr
            .lines()
            .filter(|l| l.contains("-> wl_surface") && l.contains(".attach(wl_buffer"))
            .count() as u64,
        Client::Vulkan => number_after(&stdout, "summary: ").ok_or("no viewer summary")?,
    };
    let timing = match client {
        Client::Ours => {
            let median = |key: &str| -> Option<i64> {
                let at = stdout.find(key)? + key.len();
                let digits: String = stdout[at..]
                    .chars()
                    .take_while(|c| *c == '-' || c.is_ascii_digit())
                    .collect();
                digits.parse().ok()
            };
            median("presentation-error-median-us=(gint64)")
                .zip(number_after(&stdout, "presentation-error-p95-us=(guint64)"))
        }
        _ => None,
    };
    Ok(Outcome {
        shown,
        client_cpu,
        weston_cpu,
        timing,
    })
}

fn export_fps(description: &str, scratch: &Path) -> Result<f64, String> {
    let out_path = scratch.join("export");
    let mut child = Command::new("gst-launch-1.0")
        .args(description.split(' '))
        .env("GST_PLUGIN_PATH", target_dir())
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).map_err(|e| e.to_string())?)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("gst-launch-1.0: {e}"))?;
    // gst-launch prints the time from PLAYING to EOS before tearing down;
    // `vulkanupload` (GStreamer 1.22 on lavapipe) sometimes hangs in that
    // teardown, so the run is ended after a minute and the time still read.
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    let mut hung = false;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            hung = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let text = fs::read_to_string(&out_path).unwrap_or_default();
    let line = text
        .lines()
        .find(|l| l.starts_with("Execution ended after"))
        .ok_or_else(|| format!("{description}: {}{text}", if hung { "hung; " } else { "" }))?;
    if hung {
        eprintln!("end_to_end: {description}: hung after EOS, killed");
    }
    // h:mm:ss.nnnnnnnnn
    let t = line.rsplit(' ').next().unwrap_or("");
    let secs = t
        .split(':')
        .try_fold(0.0, |acc, part| part.parse::<f64>().map(|v| acc * 60.0 + v))
        .map_err(|e| format!("{line}: {e}"))?;
    Ok(f64::from(FRAMES) / secs)
}

/// `cargo test --all-targets` (no `--bench`): every client plays a short
/// 640x360 stream once and must show frames, so the measurement's parts
/// are known to work without the minutes the measurement takes.
fn smoke(scratch: &Path) {
    let target = target_dir();
    for client in [Client::Waylandsink, Client::Glimagesink, Client::Ours, Client::Vulkan] {
        let built = match client {
            Client::Ours => target.join("libdmabuf_interop.so").exists(),
            Client::Vulkan => target.join("examples/viewer").exists(),
            _ => true,
        };
        if !built {
            // A test build of the bench lives in target/debug; the plugin
            // and the viewer are built there only by their own targets.
            eprintln!(
                "end_to_end smoke: {} not built in {}, skipped",
                client.name(),
                target.display()
            );
            continue;
        }
        let outcome = run(client, "BGRx", (640, 360), SHORT, scratch)
            .unwrap_or_else(|e| panic!("end_to_end smoke: {}: {e}", client.name()));
        assert!(outcome.shown > 0, "end_to_end smoke: {} showed no frame", client.name());
        eprintln!(
            "end_to_end smoke: {}: {} of {SHORT} frames shown",
            client.name(),
            outcome.shown
        );
    }
}

fn main() {
    let scratch = std::env::temp_dir().join(format!("dmabuf-interop-e2e-{}", std::process::id()));
    fs::create_dir_all(&scratch).expect("scratch dir");
    // `cargo bench` passes --bench; a filter narrows the cases (e.g. 1920x1080).
    if !std::env::args().any(|a| a == "--bench") {
        smoke(&scratch);
        let _ = fs::remove_dir_all(&scratch);
        return;
    }
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let gst = Command::new("gst-launch-1.0")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "GStreamer (unknown version)".into());
    let mut table = String::new();
    table.push_str(&format!(
        "| steady state ({LONG} minus {SHORT} frames), 60 fps live, headless Weston 14 (GL on llvmpipe) at 60 Hz, {gst} | client | frames shown of {LONG} | client CPU ms/frame | Weston CPU ms/frame | client CPU vs waylandsink | client + Weston CPU vs glimagesink | presented - target, median / p95 of abs, ms |\n|---|---|---|---|---|---|---|---|\n"
    ));
    for size in [(1920, 1080), (3840, 2160)] {
        for format in ["BGRx", "NV12"] {
            let case = format!("{}x{} {format}", size.0, size.1);
            if filter.as_ref().is_some_and(|f| !case.contains(f.as_str())) {
                continue;
            }
            // (client, frames shown in the long run, client ms/frame,
            // Weston ms/frame, the long run's presentation timing)
            let mut results: Vec<(Client, u64, f64, f64, Timing)> = Vec::new();
            for client in [Client::Waylandsink, Client::Glimagesink, Client::Ours, Client::Vulkan] {
                eprintln!("end_to_end: {case} -> {}", client.name());
                let runs = run(client, format, size, SHORT, &scratch)
                    .and_then(|short| Ok((short, run(client, format, size, LONG, &scratch)?)));
                match runs {
                    Ok((short, long)) if long.shown > short.shown => {
                        let more = (long.shown - short.shown) as f64;
                        let per = |a: f64, b: f64| 1000.0 * (a - b).max(0.0) / more;
                        results.push((
                            client,
                            long.shown,
                            per(long.client_cpu, short.client_cpu),
                            per(long.weston_cpu, short.weston_cpu),
                            long.timing,
                        ));
                    }
                    Ok((short, long)) => table.push_str(&format!(
                        "| {case} | {} | failed: {} frames shown of {SHORT}, {} of {LONG} | | | | | |\n",
                        client.name(),
                        short.shown,
                        long.shown
                    )),
                    Err(e) => {
                        eprintln!("end_to_end: {case} {}: {e}", client.name());
                        table.push_str(&format!(
                            "| {case} | {} | failed: {} | | | | | |\n",
                            client.name(),
                            e.lines().next().unwrap_or("")
                        ));
                    }
                }
            }
            let anchor = |which: Client| results.iter().find(|r| r.0 == which).map(|r| (r.2, r.2 + r.3));
            let (wl, gl) = (anchor(Client::Waylandsink), anchor(Client::Glimagesink));
            let ratio =
                |v: f64, b: Option<f64>| b.filter(|b| *b > 0.0).map_or("-".into(), |b| format!("{:.2}x", v / b));
            for &(client, shown, c, w, timing) in &results {
                let timing = timing.map_or("-".into(), |(m, p)| {
                    format!("{:.1} / {:.1}", m as f64 / 1000.0, p as f64 / 1000.0)
                });
                table.push_str(&format!(
                    "| {case} | {} | {shown} | {c:.2} | {w:.2} | {} | {} | {timing} |\n",
                    client.name(),
                    ratio(c, wl.map(|a| a.0)),
                    ratio(c + w, gl.map(|a| a.1)),
                ));
            }
        }
    }
    table.push('\n');
    if filter.is_none() {
        table.push_str(
            "| export, 1920x1080 BGRx, 300 frames into fakesink (not synced) | frames per second |\n|---|---|\n",
        );
        for (name, description) in [
            (
                "`vkdmabufsrc` (pattern rendered by Vulkan into exported dma-bufs: clears and one quad)",
                format!(
                    "vkdmabufsrc num-buffers={FRAMES} ! video/x-raw,format=BGRx,width=1920,height=1080,framerate=60/1 ! fakesink"
                ),
            ),
            (
                "`videotestsrc ! vulkanupload` (CPU pattern copied into Vulkan memory, caps negotiated by default)",
                format!(
                    "videotestsrc num-buffers={FRAMES} ! video/x-raw,format=BGRx,width=1920,height=1080,framerate=60/1 ! vulkanupload ! fakesink"
                ),
            ),
            (
                "`videotestsrc ! vulkanupload ! video/x-raw(memory:VulkanImage)`",
                format!(
                    "videotestsrc num-buffers={FRAMES} ! video/x-raw,format=BGRx,width=1920,height=1080,framerate=60/1 ! vulkanupload ! video/x-raw(memory:VulkanImage) ! fakesink"
                ),
            ),
        ] {
            eprintln!("end_to_end: export {name}");
            match export_fps(&description, &scratch) {
                Ok(fps) => table.push_str(&format!("| {name} | {fps:.0} |\n")),
                Err(e) => table.push_str(&format!("| {name} | failed: {} |\n", e.lines().next().unwrap_or(""))),
            }
        }
    }
    let _ = fs::remove_dir_all(&scratch);
    println!("\n{table}");
    let _ = fs::write(
        target_dir().parent().unwrap_or(Path::new(".")).join("end_to_end.md"),
        &table,
    );
}
