//! The Vulkan render path on lavapipe, under the validation layer: what a
//! submission owns (safe code may drop the images and kernels it uses), the
//! graphics path (colour attachments: a copy or a draw of the video, the
//! overlay as small quads, the pattern as clears and one quad) against the
//! CPU references at every pixel, and the compute path beside it.
#![cfg(feature = "vulkan")]

mod common;

use std::time::{Duration, Instant};

use common::*;
use dmabuf_interop::colour::Colorimetry;
use dmabuf_interop::reference::overlay::Overlay;
use dmabuf_interop::sync::Fence;
use dmabuf_interop::vulkan::ash::vk;
use dmabuf_interop::vulkan::{self, Exporter, Kernels, VideoPass, VulkanContext};
use dmabuf_interop::{DmaBuf, DrmFourcc};

use dmabuf_interop::reference::pattern;

const IMPORT_USAGE: vk::ImageUsageFlags =
    vk::ImageUsageFlags::from_raw(vk::ImageUsageFlags::TRANSFER_SRC.as_raw() | vk::ImageUsageFlags::SAMPLED.as_raw());
/// The compute path's outputs.
const STORAGE_OUT: vk::ImageUsageFlags = vk::ImageUsageFlags::STORAGE;
/// The graphics path's outputs (what compressed modifiers keep).
const ATTACHMENT_OUT: vk::ImageUsageFlags = vk::ImageUsageFlags::from_raw(
    vk::ImageUsageFlags::COLOR_ATTACHMENT.as_raw() | vk::ImageUsageFlags::TRANSFER_DST.as_raw(),
);

/// Waits until every deferred destruction ran (the queue finished).
fn settle(ctx: &VulkanContext) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctx.collect_retired() > 0 {
        assert!(Instant::now() < deadline, "deferred destructions never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Checks `out` (XRGB8888) against the pattern frame `frame` under
/// `overlay` at every pixel: overlay pixels exactly, video pixels within
/// `tolerance` (NV12: only 2x2 blocks of one colour, whose chroma is
/// exact). Returns (overlay, video) pixels checked.
fn assert_composite(
    out: &DmaBuf,
    frame: u32,
    overlay: &Overlay,
    tolerance: i32,
    nv12: bool,
    what: &str,
) -> (usize, usize) {
    let (w, h) = (out.width(), out.height());
    // Rows packed (read_planes drops the stride's padding).
    let got = &read_planes(out)[0];
    let stride = w as usize * 4;
    let (mut overlay_px, mut video_px) = (0, 0);
    for y in 0..h {
        for x in 0..w {
            let at = y as usize * stride + x as usize * 4;
            let rgb = [got[at + 2], got[at + 1], got[at]];
            let (want, tol) = match overlay.pixel(w, h, x, y) {
                Some(c) => {
                    overlay_px += 1;
                    (c, 0)
                }
                None => (pattern::rgb(w, h, frame, x, y), tolerance),
            };
            let uniform = !nv12
                || overlay.pixel(w, h, x, y).is_some()
                || [(0, 0), (1, 0), (0, 1), (1, 1)]
                    .iter()
                    .all(|&(dx, dy)| pattern::rgb(w, h, frame, (x & !1) + dx, (y & !1) + dy) == want);
            if !uniform {
                continue;
            }
            if overlay.pixel(w, h, x, y).is_none() {
                video_px += 1;
            }
            for ch in 0..3 {
                let diff = (i32::from(rgb[ch]) - i32::from(want[ch])).abs();
                assert!(diff <= tol, "{what} ({x},{y}) channel {ch}: got {rgb:?} want {want:?}");
            }
        }
    }
    (overlay_px, video_px)
}

/// What a submission uses lives until the GPU is done with it, whatever
/// safe code drops meanwhile: the video image, the output image and the
/// kernels (pipelines, layouts) are dropped right after the submit, before
/// the wait. Destroying them then would be VUID-vkDestroyImage-image-01000
/// and VUID-vkDestroyPipeline-pipeline-00765 (the validation layer reports
/// both for work it has not seen finish); the output's dma-buf must still
/// hold the right picture. Both output kinds (storage for the compute path,
/// colour attachment for the graphics path) and the pattern alike.
#[test]
fn a_submission_outlives_the_images_and_kernels_it_uses() {
    let ctx = vulkan();
    let exporter = Exporter::new(&ctx).unwrap();
    let (w, h) = (640, 360);
    let overlay = Overlay {
        frame: 31,
        progress: Some(500),
    };
    for usage in [STORAGE_OUT, ATTACHMENT_OUT] {
        let what = format!("composite into {usage:?}");
        let out = exporter.export(DrmFourcc::Xrgb8888, w, h, usage, &[]).unwrap();
        let result = out.dmabuf().clone();
        let kernels = Kernels::new(&ctx).unwrap();
        let frame = pattern_dmabuf(&ctx, DrmFourcc::Xrgb8888, w, h, 2);
        let video = vulkan::import(&ctx, &frame, IMPORT_USAGE).unwrap();
        let submission = kernels
            .composite_submit(&video, &out, &overlay, &Fence::Implicit)
            .unwrap();
        drop(video);
        drop(frame);
        drop(out);
        drop(kernels);
        submission.wait().unwrap();
        let (o, v) = assert_composite(&result, 2, &overlay, 0, false, &what);
        assert!(o > 0 && v > 0, "{what}: {o} overlay, {v} video pixels");

        let usage = if usage == STORAGE_OUT {
            usage
        } else {
            vk::ImageUsageFlags::COLOR_ATTACHMENT
        };
        let what = format!("pattern into {usage:?}");
        let image = exporter.export(DrmFourcc::Xbgr8888, w, h, usage, &[]).unwrap();
        let result = image.dmabuf().clone();
        let kernels = Kernels::new(&ctx).unwrap();
        let submission = kernels.draw_pattern_submit(&image, 9).unwrap();
        drop(image);
        drop(kernels);
        submission.wait().unwrap();
        let want = pattern::frame_planes(DrmFourcc::Xbgr8888, w, h, 9).unwrap();
        assert_planes_eq(&read_planes(&result), &want, &[w as usize * 4], &what);
    }
    settle(&ctx);
    assert_no_validation_messages(&ctx);
}

/// The graphics path into an XRGB8888 colour attachment: a copy of the video
/// where the formats match (the CPU device's choice, and `VideoPass::Copy`)
/// and a draw otherwise (and with `VideoPass::Draw`),
/// the overlay drawn as quads over it: every pixel as the CPU predicts, as
/// the compute path does (NV12 within 3 of the RGB pattern, as there). Odd
/// sizes too (the overlay's quads and the draw's edges).
#[test]
fn the_graphics_path_composites_every_pixel_as_the_cpu_predicts() {
    let ctx = vulkan();
    let exporter = Exporter::new(&ctx).unwrap();
    let mut kernels = Kernels::new(&ctx).unwrap();
    for (w, h, pass) in [
        (320, 180, VideoPass::Auto),
        (333, 197, VideoPass::Copy),
        (333, 197, VideoPass::Draw),
    ] {
        kernels.set_video_pass(pass);
        let out = exporter.export(DrmFourcc::Xrgb8888, w, h, ATTACHMENT_OUT, &[]).unwrap();
        for progress in [Some(375), None] {
            let overlay = Overlay { frame: 4071, progress };
            for (fourcc, tolerance) in [(DrmFourcc::Xrgb8888, 0), (DrmFourcc::Xbgr8888, 0), (DrmFourcc::Nv12, 3)] {
                // Without TRANSFER_SRC the video is drawn whatever the pass.
                for usage in [vk::ImageUsageFlags::SAMPLED, IMPORT_USAGE] {
                    let what = format!("{fourcc} {w}x{h} {usage:?} {pass:?} {progress:?}");
                    let frame = pattern_dmabuf(&ctx, fourcc, w, h, 5).with_colorimetry(Colorimetry::BT709);
                    let video = vulkan::import(&ctx, &frame, usage).unwrap();
                    kernels.composite(&video, &out, &overlay).unwrap();
                    let (o, v) =
                        assert_composite(out.dmabuf(), 5, &overlay, tolerance, fourcc == DrmFourcc::Nv12, &what);
                    assert!(
                        o > 0 && v > w as usize * h as usize / 2,
                        "{what}: {o} overlay, {v} video pixels"
                    );
                }
            }
        }
    }
    assert_no_validation_messages(&ctx);
}

/// The pattern drawn into colour attachments (bars and the box as clears,
/// the ramp as one quad) equals the CPU reference at every byte, for each
/// RGB order, at even and odd sizes and over frames where the box wraps.
#[test]
fn the_graphics_path_draws_the_pattern_the_cpu_predicts() {
    let ctx = vulkan();
    let exporter = Exporter::new(&ctx).unwrap();
    let kernels = Kernels::new(&ctx).unwrap();
    for fourcc in [
        DrmFourcc::Xrgb8888,
        DrmFourcc::Argb8888,
        DrmFourcc::Xbgr8888,
        DrmFourcc::Abgr8888,
    ] {
        for (w, h) in [(256, 128), (250, 75), (7, 3), (1, 1)] {
            let image = exporter
                .export(fourcc, w, h, vk::ImageUsageFlags::COLOR_ATTACHMENT, &[])
                .unwrap();
            for frame in [0, 1, 77, 1000] {
                kernels.draw_pattern(&image, frame).unwrap();
                let want = pattern::frame_planes(fourcc, w, h, frame).unwrap();
                let what = format!("{fourcc} {w}x{h} frame {frame}");
                assert_planes_eq(&read_planes(image.dmabuf()), &want, &[w as usize * 4], &what);
            }
        }
    }
    assert_no_validation_messages(&ctx);
}

/// An image that holds a pattern frame is brought to another frame by
/// drawing only the box's old and new places: every frame of a sequence
/// (steps, a wrap-around, jumps as after a seek) equals the CPU reference,
/// and a pixel outside both boxes, changed behind the kernels' back, stays
/// changed (so the rest of the frame really is not drawn).
#[test]
fn the_pattern_updates_only_where_the_box_moved() {
    let ctx = vulkan();
    let exporter = Exporter::new(&ctx).unwrap();
    let kernels = Kernels::new(&ctx).unwrap();
    for (fourcc, w, h) in [(DrmFourcc::Xrgb8888, 256, 128), (DrmFourcc::Abgr8888, 250, 75)] {
        let image = exporter
            .export(fourcc, w, h, Kernels::pattern_usage(fourcc), &[])
            .unwrap();
        kernels
            .update_pattern_submit(&image, Some(5), 0)
            .unwrap()
            .wait()
            .unwrap();
        let what = format!("{fourcc} {w}x{h} first (drawn whole: the image held nothing)");
        let want = pattern::frame_planes(fourcc, w, h, 0).unwrap();
        assert_planes_eq(&read_planes(image.dmabuf()), &want, &[w as usize * 4], &what);
        let mut from = 0;
        for to in [1, 2, 3, 60, 61, 1000, 7, 7] {
            kernels
                .update_pattern_submit(&image, Some(from), to)
                .unwrap()
                .wait()
                .unwrap();
            let want = pattern::frame_planes(fourcc, w, h, to).unwrap();
            let what = format!("{fourcc} {w}x{h} frame {from} -> {to}");
            assert_planes_eq(&read_planes(image.dmabuf()), &want, &[w as usize * 4], &what);
            from = to;
        }
        // Bottom-right corner: in neither box of 7 -> 8.
        let stride = image.dmabuf().planes()[0].stride() as usize;
        let corner = (h as usize - 1) * stride + (w as usize - 1) * 4;
        {
            let mut map = image
                .dmabuf()
                .map(dmabuf_interop::mapping::MapAccess::ReadWrite)
                .unwrap();
            let mut plane = map.read_plane(0).unwrap();
            plane[corner] ^= 0xff;
            map.write_plane(0, &plane).unwrap();
        }
        kernels
            .update_pattern_submit(&image, Some(7), 8)
            .unwrap()
            .wait()
            .unwrap();
        let got = &read_planes(image.dmabuf())[0];
        let want = &pattern::frame_planes(fourcc, w, h, 8).unwrap()[0];
        let packed = (h as usize - 1) * w as usize * 4 + (w as usize - 1) * 4;
        assert_eq!(got[packed], want[packed] ^ 0xff, "{fourcc}: the corner was drawn again");
        assert_eq!(got[..packed], want[..packed], "{fourcc}: frame 8 before the corner");
    }
    assert_no_validation_messages(&ctx);
}

/// A copy keeps the video's fourth byte, so the composite copies only into
/// XRGB8888 (whose padding nobody reads): an ARGB8888 output is drawn, and
/// opaque, even from a video whose padding byte is 0 and with
/// `VideoPass::Copy` asked for.
#[test]
fn an_argb_output_is_opaque_whatever_the_videos_padding() {
    let ctx = vulkan();
    let exporter = Exporter::new(&ctx).unwrap();
    let mut kernels = Kernels::new(&ctx).unwrap();
    kernels.set_video_pass(VideoPass::Copy);
    let (w, h) = (64, 36);
    let frame = pattern_dmabuf(&ctx, DrmFourcc::Xrgb8888, w, h, 1);
    {
        let mut map = frame.map(dmabuf_interop::mapping::MapAccess::ReadWrite).unwrap();
        let mut plane = map.read_plane(0).unwrap();
        plane.iter_mut().skip(3).step_by(4).for_each(|x| *x = 0);
        map.write_plane(0, &plane).unwrap();
    }
    let video = vulkan::import(&ctx, &frame, IMPORT_USAGE).unwrap();
    let overlay = Overlay {
        frame: 0,
        progress: None,
    };
    let out = exporter.export(DrmFourcc::Argb8888, w, h, ATTACHMENT_OUT, &[]).unwrap();
    kernels.composite(&video, &out, &overlay).unwrap();
    let got = &read_planes(out.dmabuf())[0];
    assert!(
        got.iter().skip(3).step_by(4).all(|&a| a == 255),
        "transparent pixels in the output"
    );
    assert_composite(out.dmabuf(), 1, &overlay, 0, false, "ARGB8888 out");
    assert_no_validation_messages(&ctx);
}

/// Distinct YUV samples for every plane of a `fourcc` frame (tightly
/// packed): luma and each chroma channel run through their whole code
/// range, out-of-range codes included; P010 gets 10-bit codes (the low two
/// bits vary too) in the top bits of its 16-bit words.
fn yuv_planes(fourcc: DrmFourcc, w: u32, h: u32) -> Vec<Vec<u8>> {
    let (w, h) = (w as usize, h as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let luma = |x: usize, y: usize| ((x * 1021 / w.max(2) + y * 37) % 1024) as u16;
    let cb = |x: usize, y: usize| ((x * 17 + y * 1019 / ch.max(2)) % 1024) as u16;
    let cr = |x: usize, y: usize| ((1023 - x * 1013 / cw.max(2) + y * 29) % 1024) as u16;
    let eight = |v: u16| (v >> 2) as u8;
    let plane = |pw: usize, ph: usize, f: &dyn Fn(usize, usize) -> Vec<u8>| -> Vec<u8> {
        (0..ph).flat_map(|y| (0..pw).flat_map(move |x| f(x, y))).collect()
    };
    match fourcc {
        DrmFourcc::Nv12 => vec![
            plane(w, h, &|x, y| vec![eight(luma(x, y))]),
            plane(cw, ch, &|x, y| vec![eight(cb(x, y)), eight(cr(x, y))]),
        ],
        DrmFourcc::Yuv420 => vec![
            plane(w, h, &|x, y| vec![eight(luma(x, y))]),
            plane(cw, ch, &|x, y| vec![eight(cb(x, y))]),
            plane(cw, ch, &|x, y| vec![eight(cr(x, y))]),
        ],
        DrmFourcc::P010 => {
            let word = |v: u16| (v << 6).to_le_bytes().to_vec();
            vec![
                plane(w, h, &|x, y| word(luma(x, y))),
                plane(cw, ch, &|x, y| [word(cb(x, y)), word(cr(x, y))].concat()),
            ]
        }
        other => panic!("no YUV samples for {other}"),
    }
}

/// Open fds of this process on the file behind `fd` (by device and inode:
/// other tests' fds, opened meanwhile in other threads, do not count).
fn fds_on(fd: std::os::fd::BorrowedFd<'_>) -> usize {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let id = |path: &std::path::Path| std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let file = id(std::path::Path::new(&format!("/proc/self/fd/{}", fd.as_raw_fd())));
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| file.is_some() && id(&e.path()) == file)
        .count()
}

/// The CPU conversion (`convert::to_xrgb8888`) of packed `planes`.
fn cpu_xrgb(fourcc: DrmFourcc, w: u32, h: u32, planes: &[Vec<u8>], colorimetry: Colorimetry) -> Vec<u8> {
    let info = dmabuf_interop::format::info(fourcc).unwrap();
    let rows: Vec<(&[u8], usize)> = planes
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_slice(), p.len() / info.planes[i].rows(h) as usize))
        .collect();
    let mut want = vec![0u8; w as usize * h as usize * 4];
    dmabuf_interop::convert::to_xrgb8888(fourcc, w, h, &rows, colorimetry, &mut want, w as usize * 4).unwrap();
    want
}

/// Asserts `out` (XRGB8888) equals `want` within 1 at every pixel the
/// overlay (if any) leaves to the video; returns the worst difference.
fn assert_matches_cpu(out: &DmaBuf, want: &[u8], overlay: Option<&Overlay>, what: &str) -> i32 {
    let (w, h) = (out.width(), out.height());
    let got = &read_planes(out)[0];
    let (mut worst, mut checked) = (0, 0);
    for y in 0..h {
        for x in 0..w {
            if overlay.is_some_and(|o| o.pixel(w, h, x, y).is_some()) {
                continue;
            }
            let at = (y * w + x) as usize * 4;
            for ch in 0..3 {
                let diff = (i32::from(got[at + ch]) - i32::from(want[at + ch])).abs();
                worst = worst.max(diff);
                assert!(
                    diff <= 1,
                    "{what} ({x},{y}) byte {ch}: GPU {:?} CPU {:?}",
                    &got[at..at + 3],
                    &want[at..at + 3]
                );
            }
            checked += 1;
        }
    }
    assert!(checked > (w * h / 2) as usize, "{what}: {checked} pixels checked");
    worst
}

/// The GPU reads every YUV format of `VIDEO_FORMATS` (NV12, I420 with its
/// three planes, P010 with 10 bits) with the frame's matrix and range as the
/// CPU conversion (`convert::to_xrgb8888`, itself checked against reference
/// colours) does: every pixel of frames that run through the whole code
/// range, for BT.601/709/2020 x limited/full, within 1 (float against fixed
/// point rounding). Both paths: the sink's conversion (graphics, no
/// overlay) and the viewer's compute composite (its video pixels).
#[test]
fn every_yuv_format_converts_on_the_gpu_as_on_the_cpu() {
    use dmabuf_interop::alloc::Allocator;
    use dmabuf_interop::colour::{Matrix, Range};
    let ctx = vulkan();
    let exporter = Exporter::new(&ctx).unwrap();
    let kernels = Kernels::new(&ctx).unwrap();
    let (w, h) = (130, 66);
    let attachment = exporter.export(DrmFourcc::Xrgb8888, w, h, ATTACHMENT_OUT, &[]).unwrap();
    let storage = exporter.export(DrmFourcc::Xrgb8888, w, h, STORAGE_OUT, &[]).unwrap();
    let overlay = Overlay {
        frame: 12,
        progress: Some(250),
    };
    let mut worst = 0;
    for fourcc in [DrmFourcc::Nv12, DrmFourcc::Yuv420, DrmFourcc::P010] {
        assert!(vulkan::VIDEO_FORMATS.contains(&fourcc));
        let layout = vulkan::linear_layout(&ctx, fourcc, w, h, vk::ImageUsageFlags::SAMPLED).expect("driver layout");
        let frame = dmabuf_interop::alloc::MemfdAllocator::new()
            .allocate_layout(fourcc, w, h, &layout)
            .unwrap();
        let planes = yuv_planes(fourcc, w, h);
        write_planes(&frame, &planes);
        for matrix in [Matrix::Bt601, Matrix::Bt709, Matrix::Bt2020] {
            for range in [Range::Limited, Range::Full] {
                let colorimetry = Colorimetry::BT709.with_matrix(matrix, range);
                let what = format!("{fourcc} {matrix:?} {range:?}");
                let frame = frame.clone().with_colorimetry(colorimetry);
                let want = cpu_xrgb(fourcc, w, h, &planes, colorimetry);
                let video = vulkan::import(&ctx, &frame, vk::ImageUsageFlags::SAMPLED).unwrap();
                kernels
                    .convert_submit(&video, &attachment, &Fence::Implicit)
                    .unwrap()
                    .wait()
                    .unwrap();
                kernels.composite(&video, &storage, &overlay).unwrap();
                worst = worst.max(assert_matches_cpu(attachment.dmabuf(), &want, None, &what));
                let what = format!("{what}, compute composite");
                worst = worst.max(assert_matches_cpu(storage.dmabuf(), &want, Some(&overlay), &what));
            }
        }
    }
    println!("GPU against CPU conversion: worst byte difference {worst}");
    assert_no_validation_messages(&ctx);
}

/// A frame in a layout the device will not import as an image (lavapipe
/// without DRM format modifiers takes only its own LINEAR layout, rows of
/// 64-byte multiples; GStreamer packs rows to 4 bytes): `import` refuses it
/// with `LayoutMismatch` (asserted on such a device), and `CopyIn` brings
/// it in on the GPU instead
/// (its memory as buffers, `vkCmdCopyBufferToImage` into an image of the
/// device's own), which then converts as the CPU does at every pixel.
/// I420 320x240 (160-byte chroma rows), NV12 and P010 200x120. Frames of
/// one size reuse the image; the fds Vulkan held on a frame's file are
/// closed once its copy is done.
#[test]
fn a_layout_the_device_refuses_is_copied_in_on_the_gpu() {
    use dmabuf_interop::alloc::Allocator;
    use dmabuf_interop::vulkan::{CopyIn, VulkanError};
    let ctx = vulkan();
    let exporter = Exporter::new(&ctx).unwrap();
    let kernels = Kernels::new(&ctx).unwrap();
    let colorimetry = Colorimetry::BT601.with_matrix(
        dmabuf_interop::colour::Matrix::Bt709,
        dmabuf_interop::colour::Range::Full,
    );
    for (fourcc, w, h) in [
        (DrmFourcc::Yuv420, 320, 240),
        (DrmFourcc::Nv12, 200, 120),
        (DrmFourcc::P010, 200, 120),
    ] {
        let what = format!("{fourcc} {w}x{h}");
        let out = exporter.export(DrmFourcc::Xrgb8888, w, h, ATTACHMENT_OUT, &[]).unwrap();
        let mut copy_in = CopyIn::new(&exporter, fourcc, w, h, vk::ImageUsageFlags::SAMPLED).unwrap();
        for seed in 0..3u16 {
            let frame = dmabuf_interop::alloc::MemfdAllocator::new()
                .allocate(fourcc, w, h, 4)
                .unwrap()
                .with_colorimetry(colorimetry);
            let mut planes = yuv_planes(fourcc, w, h);
            // A different frame each time: luma shifted by the seed.
            if fourcc == DrmFourcc::P010 {
                planes[0].chunks_exact_mut(2).for_each(|s| {
                    let v = (u16::from_le_bytes([s[0], s[1]]) >> 6).wrapping_add(seed * 5) % 1024;
                    s.copy_from_slice(&(v << 6).to_le_bytes());
                });
            } else {
                planes[0].iter_mut().for_each(|v| *v = v.wrapping_add(seed as u8 * 5));
            }
            write_planes(&frame, &planes);
            // Without DRM format modifiers (the host's lavapipe) the layout
            // is refused; with them (the VM stage's guest) drivers may take
            // any pitch, and the copy must work all the same.
            let imported = vulkan::import(&ctx, &frame, vk::ImageUsageFlags::SAMPLED);
            if !ctx.capabilities().drm_format_modifier {
                assert!(
                    matches!(imported, Err(VulkanError::LayoutMismatch { .. })),
                    "{what}: the test needs a layout the device refuses, got {imported:?}"
                );
            }
            drop(imported);
            let own = fds_on(frame.planes()[0].fd());
            assert!(own >= 1, "{what}: the frame holds its file");
            let video = copy_in.copy(&frame).unwrap();
            assert_eq!(video.colorimetry(), colorimetry);
            kernels
                .convert_submit(video, &out, &Fence::Implicit)
                .unwrap()
                .wait()
                .unwrap();
            let want = cpu_xrgb(fourcc, w, h, &planes, colorimetry);
            assert_matches_cpu(out.dmabuf(), &want, None, &format!("{what} frame {seed}"));
            settle(&ctx);
            assert_eq!(
                fds_on(frame.planes()[0].fd()),
                own,
                "{what}: an imported buffer kept an fd"
            );
        }
    }
    assert_no_validation_messages(&ctx);
}
