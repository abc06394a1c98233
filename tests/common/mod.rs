//! Helpers shared by the integration tests.
#![allow(dead_code)]

#[cfg(all(feature = "gstreamer", feature = "headless"))]
pub mod gst;
pub mod vgem;

use std::sync::Arc;

use dmabuf_interop::DmaBuf;
use dmabuf_interop::mapping::MapAccess;
#[cfg(feature = "vulkan")]
use dmabuf_interop::vulkan::{ContextOptions, VulkanContext};

/// A Vulkan context on the machine's dma-buf capable device (lavapipe in
/// CI) under VK_LAYER_KHRONOS_validation. Fails loudly, with the fix, when
/// either is missing. `DMABUF_INTEROP_NO_VALIDATION=1` runs without the layer.
#[cfg(feature = "vulkan")]
pub fn vulkan() -> Arc<VulkanContext> {
    let validation = std::env::var_os("DMABUF_INTEROP_NO_VALIDATION").is_none();
    VulkanContext::new(&ContextOptions {
        validation,
        ..Default::default()
    })
    .unwrap_or_else(|e| {
        panic!(
            "these tests need a Vulkan device with dma-buf import (Mesa 25 lavapipe) and the Khronos \
             validation layer; run scripts/setup. Error: {e}"
        )
    })
}

/// A memfd dma-buf in the driver's LINEAR layout (for sampling and
/// transfers) holding pattern frame `frame`.
#[cfg(feature = "vulkan")]
pub fn pattern_dmabuf(
    ctx: &Arc<VulkanContext>,
    fourcc: dmabuf_interop::DrmFourcc,
    w: u32,
    h: u32,
    frame: u32,
) -> DmaBuf {
    use dmabuf_interop::alloc::Allocator;
    use dmabuf_interop::vulkan::ash::vk;
    let usage = vk::ImageUsageFlags::TRANSFER_SRC | vk::ImageUsageFlags::SAMPLED;
    let layout = dmabuf_interop::vulkan::linear_layout(ctx, fourcc, w, h, usage).expect("driver layout");
    let buf = dmabuf_interop::alloc::MemfdAllocator::new()
        .allocate_layout(fourcc, w, h, &layout)
        .expect("allocate");
    write_planes(
        &buf,
        &dmabuf_interop::reference::pattern::frame_planes(fourcc, w, h, frame).unwrap(),
    );
    buf
}

/// Fails the test if the validation layer said anything.
#[cfg(feature = "vulkan")]
pub fn assert_no_validation_messages(ctx: &VulkanContext) {
    let messages = ctx.validation_messages();
    assert!(
        messages.is_empty(),
        "{} validation messages:\n{}",
        messages.len(),
        messages.join("\n")
    );
}

/// Writes tightly packed `planes` into `buf` (row by row, honouring strides).
pub fn write_planes(buf: &DmaBuf, planes: &[Vec<u8>]) {
    let mut map = buf.map(MapAccess::ReadWrite).expect("map read-write");
    for (i, packed) in planes.iter().enumerate() {
        let row = packed.len() / plane_rows(buf, i);
        map.write_rows(i, packed, row).expect("write plane rows");
    }
}

/// Reads `buf` back, each plane tightly packed (rows of the minimum row size).
pub fn read_planes(buf: &DmaBuf) -> Vec<Vec<u8>> {
    let map = buf.map(MapAccess::Read).expect("map read");
    let info = buf.format_info();
    (0..buf.planes().len())
        .map(|i| {
            let row = info.planes[i].min_row_bytes(buf.width()).expect("row size") as usize;
            let mut out = vec![0; row * plane_rows(buf, i)];
            map.read_rows(i, &mut out, row).expect("read plane rows");
            out
        })
        .collect()
}

pub fn plane_rows(buf: &DmaBuf, plane: usize) -> usize {
    buf.format_info().planes[plane].rows(buf.height()) as usize
}

/// Asserts two packed planes are equal, naming the first differing pixel.
pub fn assert_planes_eq(got: &[Vec<u8>], want: &[Vec<u8>], row_bytes: &[usize], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: plane count");
    for (i, ((g, w), &row)) in got.iter().zip(want).zip(row_bytes).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: plane {i} size");
        if let Some(at) = g.iter().zip(w).position(|(a, b)| a != b) {
            panic!(
                "{what}: plane {i} differs first at row {} byte {}: got {} want {}",
                at / row,
                at % row,
                g[at],
                w[at]
            );
        }
    }
}

/// Open fds of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

/// What each open fd of this process points at (for leak messages).
pub fn fd_targets() -> Vec<String> {
    let mut list: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            format!("{}->{target}", e.file_name().to_string_lossy())
        })
        .collect();
    list.sort();
    list
}

/// Distinct bytes for every plane of `buf` (tightly packed), for formats the
/// pattern does not cover.
pub fn ramp_planes(buf: &DmaBuf, seed: u8) -> Vec<Vec<u8>> {
    let info = buf.format_info();
    (0..buf.planes().len())
        .map(|i| {
            let row = info.planes[i].min_row_bytes(buf.width()).expect("row") as usize;
            (0..row * plane_rows(buf, i))
                .map(|b| (b as u8).wrapping_mul(7).wrapping_add(i as u8 * 31).wrapping_add(seed))
                .collect()
        })
        .collect()
}

/// Largest per-channel difference between a capture and `expected` (RGB of
/// each pixel) over a 16x12 grid of sample points, skipping points within
/// 2 pixels of a colour edge (where chroma subsampling and filtering may
/// blend neighbours); returns (worst difference, points compared).
#[cfg(feature = "headless")]
pub fn grid_error(
    image: &dmabuf_interop::wayland::headless::Image,
    expected: impl Fn(u32, u32) -> [u8; 3],
    width: u32,
    height: u32,
) -> (u32, usize) {
    grid_error_above(image, expected, width, height, height)
}

/// [`grid_error`] over the rows above `below` only (e.g. SMPTE bars'
/// colour bars, whose bottom -I/+Q patches videotestsrc paints in other
/// colours for YUV than for RGB).
#[cfg(feature = "headless")]
pub fn grid_error_above(
    image: &dmabuf_interop::wayland::headless::Image,
    expected: impl Fn(u32, u32) -> [u8; 3],
    width: u32,
    height: u32,
    below: u32,
) -> (u32, usize) {
    let (mut worst, mut points) = (0, 0);
    for gy in 0..12 {
        for gx in 0..16 {
            let (x, y) = (width * (2 * gx + 1) / 32, height * (2 * gy + 1) / 24);
            if y >= below {
                continue;
            }
            let want = expected(x, y);
            let flat = [(-2i32, 0i32), (2, 0), (0, -2), (0, 2)].iter().all(|&(dx, dy)| {
                let (nx, ny) = (x as i32 + dx, y as i32 + dy);
                nx >= 0
                    && ny >= 0
                    && (nx as u32) < width
                    && (ny as u32) < height
                    && expected(nx as u32, ny as u32) == want
            });
            if !flat {
                continue;
            }
            let got = image.pixel(x, y).expect("sample point inside the capture");
            for c in 0..3 {
                worst = worst.max((i32::from(got[c]) - i32::from(want[c])).unsigned_abs());
            }
            points += 1;
        }
    }
    (worst, points)
}

/// Saves `image` as `<name>.png` in `$DMABUF_INTEROP_CAPTURE_DIR` when that
/// is set (to look at what the tests saw).
#[cfg(feature = "headless")]
pub fn keep_capture(image: &dmabuf_interop::wayland::headless::Image, name: &str) {
    if let Some(dir) = std::env::var_os("DMABUF_INTEROP_CAPTURE_DIR") {
        let path = std::path::Path::new(&dir).join(format!("{name}.png"));
        image.save_png(&path).expect("save capture");
        println!("capture saved to {}", path.display());
    }
}

/// A private headless Weston 14 with a `width`x`height` output; fails
/// loudly, with the fix, when Weston is missing or too old.
#[cfg(feature = "headless")]
pub fn weston(
    width: u32,
    height: u32,
    renderer: dmabuf_interop::wayland::headless::Renderer,
) -> dmabuf_interop::wayland::headless::Weston {
    use dmabuf_interop::wayland::headless::{Weston, WestonOptions};
    Weston::start(WestonOptions {
        width,
        height,
        renderer,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("these tests need Weston 14 (run scripts/setup): {e}"))
}

/// A compositor that stopped answering: SIGSTOP on creation, SIGCONT on
/// drop (its socket still accepts connections, as a deadlocked or swamped
/// compositor's does).
#[cfg(feature = "headless")]
pub struct Stopped(rustix::process::Pid);

#[cfg(feature = "headless")]
impl Stopped {
    pub fn new(weston: &dmabuf_interop::wayland::headless::Weston) -> Self {
        let pid = weston.pid().expect("weston runs");
        let pid = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
        rustix::process::kill_process(pid, rustix::process::Signal::STOP).expect("SIGSTOP weston");
        // SIGSTOP is delivered asynchronously: wait until the process is
        // really stopped (state T in /proc), so nothing it does afterwards
        // can race the test.
        let stat = format!("/proc/{}/stat", pid.as_raw_nonzero());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let s = std::fs::read_to_string(&stat).expect("weston's /proc stat");
            // The state follows the ")" that ends the command name.
            let state = s
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            if state == Some('T') {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "weston did not stop: {s}");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        Self(pid)
    }
}

#[cfg(feature = "headless")]
impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process(self.0, rustix::process::Signal::CONT);
    }
}

/// Set by `scripts/test`'s VM stage (the guest has udmabuf, dma-heap, vgem,
/// virtio-gpu and lavapipe with modifiers): device tests must run there.
pub const VM_STAGE_ENV: &str = "DMABUF_INTEROP_VM_STAGE";

/// Whether a test that needs `what` (a device this machine may lack) runs.
/// Where it is `present`: yes. In the VM stage a missing device fails the
/// test (the stage exists to provide it). Elsewhere (the bare host stage)
/// the test says on stderr that it runs in the VM stage (`scripts/vm-test`)
/// and does nothing.
pub fn device_test(what: &str, present: bool) -> bool {
    staged_test(what, present, VM_STAGE_ENV, "VM stage (scripts/vm-test)")
}

/// `present`, or (outside the stage that must provide `what`) false with
/// a note; inside that stage (`env` set) a missing `what` fails the test.
pub fn staged_test(what: &str, present: bool, env: &str, stage: &str) -> bool {
    if present {
        return true;
    }
    assert!(
        std::env::var_os(env).is_none(),
        "the {stage} must provide {what}, but it is missing"
    );
    eprintln!("needs {what}: not on this machine; runs in scripts/test's {stage}");
    false
}

/// Frames per soak test: 3000, or `DMABUF_INTEROP_SOAK_FRAMES` (the VM
/// stage runs fewer: its CPU is emulated).
pub fn frames() -> usize {
    std::env::var("DMABUF_INTEROP_SOAK_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// A KMS card with a connected output (virtio-gpu in the VM stage), for
/// Weston's DRM backend.
pub fn kms_card_with_output() -> bool {
    std::fs::read_dir("/sys/class/drm")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("card")
                && name.contains('-')
                && std::fs::read_to_string(e.path().join("status")).is_ok_and(|s| s.trim() == "connected")
        })
}

/// Weston on its DRM backend (a real display pipeline: the VM stage's
/// virtio-gpu), or None outside the VM stage where no KMS output exists
/// (`device_test`).
#[cfg(feature = "headless")]
pub fn drm_weston() -> Option<dmabuf_interop::wayland::headless::Weston> {
    use dmabuf_interop::wayland::headless::{Backend, Weston, WestonOptions};
    if !device_test(
        "a KMS card with a connected output (virtio-gpu)",
        kms_card_with_output(),
    ) {
        return None;
    }
    let weston = Weston::start(WestonOptions {
        backend: Backend::Drm,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("Weston's DRM backend: {e}"));
    Some(weston)
}

/// Set by `scripts/chroot-stage` (GStreamer 1.26 in a Debian 13 chroot).
pub const GST_STAGE_ENV: &str = "DMABUF_INTEROP_GST_STAGE";

/// Whether a test that needs `what` (a GStreamer element or version this
/// machine may lack, e.g. `glupload`) runs: where it is `present`, yes; in
/// the GStreamer 1.26 stage a missing one fails the test; elsewhere the test
/// says it runs in that stage and does nothing.
pub fn gst_stage_test(what: &str, present: bool) -> bool {
    staged_test(
        what,
        present,
        GST_STAGE_ENV,
        "GStreamer 1.26 stage (scripts/chroot-stage)",
    )
}
