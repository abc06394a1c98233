//! The Vulkan adapter on lavapipe, under the validation layer: import round
//! trips, export of the GPU pattern against the CPU reference, cross-context
//! sharing, the cache, and every refusal.
#![cfg(feature = "vulkan")]

mod common;

use dmabuf_interop::colour::Colorimetry;
use std::sync::Arc;

use common::*;
use dmabuf_interop::alloc::{Allocator, AllocatorKind, MemfdAllocator};
use dmabuf_interop::reference::overlay::Overlay;
use dmabuf_interop::reference::pattern;
use dmabuf_interop::vulkan::ash::vk;
use dmabuf_interop::vulkan::{self, ExportBackend, Exporter, ImportCache, Kernels, VulkanError};
use dmabuf_interop::{DmaBuf, DrmFourcc, DrmModifier};

const IMPORT_USAGE: vk::ImageUsageFlags =
    vk::ImageUsageFlags::from_raw(vk::ImageUsageFlags::TRANSFER_SRC.as_raw() | vk::ImageUsageFlags::SAMPLED.as_raw());
const EXPORT_USAGE: vk::ImageUsageFlags =
    vk::ImageUsageFlags::from_raw(vk::ImageUsageFlags::STORAGE.as_raw() | vk::ImageUsageFlags::TRANSFER_SRC.as_raw());

/// The tests that count this process's fds (`open_fds`, `fd_targets`) run
/// alone: they hold `FDS` for writing, every other test for reading, so no
/// parallel test opens or closes fds in their window.
static FDS: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    FDS.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    FDS.write().unwrap_or_else(|e| e.into_inner())
}

fn row_bytes(buf: &DmaBuf) -> Vec<usize> {
    let info = buf.format_info();
    info.planes
        .iter()
        .map(|p| p.min_row_bytes(buf.width()).unwrap() as usize)
        .collect()
}

#[test]
fn import_round_trip_every_pixel() {
    let _fds = shared();
    let ctx = vulkan();
    for (fourcc, w, h) in [
        (DrmFourcc::Xrgb8888, 250, 75),
        (DrmFourcc::Abgr8888, 64, 33),
        (DrmFourcc::Nv12, 250, 76),
        (DrmFourcc::Nv12, 33, 17),
    ] {
        let buf = pattern_dmabuf(&ctx, fourcc, w, h, 3);
        let image = vulkan::import(&ctx, &buf, IMPORT_USAGE).expect("import");
        let got = image.download().expect("download");
        let want = pattern::frame_planes(fourcc, w, h, 3).unwrap();
        assert_planes_eq(&got, &want, &row_bytes(&buf), &format!("import {fourcc} {w}x{h}"));
    }
    assert_no_validation_messages(&ctx);
}

#[test]
fn export_renders_the_pattern_the_cpu_predicts() {
    let _fds = shared();
    let ctx = vulkan();
    let exporter = Exporter::new(&ctx).expect("exporter");
    let kernels = Kernels::new(&ctx).expect("kernels");
    for fourcc in vulkan::PATTERN_FORMATS {
        for (w, h) in [(1, 1), (250, 75), (1920, 1080), (4095, 17)] {
            let image = exporter.export(fourcc, w, h, EXPORT_USAGE, &[]).expect("export");
            // lavapipe cannot export natively: the probe must pick the host path.
            let support = vulkan::format_support(&ctx, fourcc, DrmModifier::Linear, EXPORT_USAGE).unwrap();
            assert_eq!(image.export_backend() == ExportBackend::Native, support.exportable);
            let frame = 5;
            kernels.draw_pattern(&image, frame).expect("draw");
            let buf = image.dmabuf();
            assert_eq!((buf.width(), buf.height(), buf.fourcc()), (w, h, fourcc));
            let got = read_planes(buf);
            let want = pattern::frame_planes(fourcc, w, h, frame).unwrap();
            assert_planes_eq(&got, &want, &row_bytes(buf), &format!("export {fourcc} {w}x{h}"));
        }
    }
    assert_no_validation_messages(&ctx);
}

#[test]
fn consecutive_frames_differ_where_the_box_moved() {
    let _fds = shared();
    let ctx = vulkan();
    let exporter = Exporter::new(&ctx).unwrap();
    let kernels = Kernels::new(&ctx).unwrap();
    let image = exporter
        .export(DrmFourcc::Xrgb8888, 320, 240, EXPORT_USAGE, &[])
        .unwrap();
    kernels.draw_pattern(&image, 0).unwrap();
    let first = read_planes(image.dmabuf());
    kernels.draw_pattern(&image, 1).unwrap();
    let second = read_planes(image.dmabuf());
    assert_ne!(first, second);
    assert_eq!(second, pattern::frame_planes(DrmFourcc::Xrgb8888, 320, 240, 1).unwrap());
    assert_no_validation_messages(&ctx);
}

#[test]
fn host_export_on_lavapipe_uses_the_host_allocator() {
    let _fds = shared();
    let ctx = vulkan();
    let exporter = Exporter::with_allocator(&ctx, Box::new(MemfdAllocator::new()));
    let backend = exporter.backend_for(DrmFourcc::Nv12, EXPORT_USAGE, &[]).unwrap();
    let support = vulkan::format_support(&ctx, DrmFourcc::Nv12, DrmModifier::Linear, EXPORT_USAGE).unwrap();
    // The probe decides: lavapipe reports IMPORTABLE only, so host export.
    assert_eq!(backend == ExportBackend::Native, support.exportable);
    if !support.exportable {
        assert_eq!(backend, ExportBackend::Host(AllocatorKind::Memfd));
        let image = exporter.export(DrmFourcc::Nv12, 64, 64, EXPORT_USAGE, &[]).unwrap();
        assert_eq!(image.export_backend(), ExportBackend::Host(AllocatorKind::Memfd));
        assert!(
            !image.dmabuf().is_kernel_dmabuf(),
            "a memfd must never be called a dma-buf"
        );
        // The host allocation has exactly the driver's layout.
        let layout = vulkan::linear_layout(&ctx, DrmFourcc::Nv12, 64, 64, EXPORT_USAGE).unwrap();
        for (p, l) in image.dmabuf().planes().iter().zip(layout.planes()) {
            assert_eq!((p.offset(), p.stride()), (l.offset, l.stride));
        }
    }
    assert_no_validation_messages(&ctx);
}

#[test]
fn export_in_one_context_import_in_another() {
    let _fds = shared();
    // The two-process shape: two independent instances and devices share
    // nothing but the dma-buf's fds.
    let producer = vulkan();
    let consumer = vulkan();
    let exporter = Exporter::new(&producer).unwrap();
    let kernels = Kernels::new(&producer).unwrap();
    for fourcc in [DrmFourcc::Abgr8888, DrmFourcc::Nv12] {
        let exported = exporter.export(fourcc, 200, 100, EXPORT_USAGE, &[]).unwrap();
        kernels.draw_pattern(&exported, 9).unwrap();
        // Only the fds travel: rebuild the DmaBuf from dups, as a receiver would.
        let src = exported.dmabuf();
        let mut builder = DmaBuf::builder(src.fourcc(), src.modifier(), src.width(), src.height());
        for p in src.planes() {
            builder = builder.plane(p.fd().try_clone_to_owned().unwrap(), p.offset(), p.stride());
        }
        let received = builder.build().unwrap();
        let imported = vulkan::import(&consumer, &received, IMPORT_USAGE).unwrap();
        let got = imported.download().unwrap();
        let want = pattern::frame_planes(fourcc, 200, 100, 9).unwrap();
        assert_planes_eq(&got, &want, &row_bytes(&received), &format!("cross-context {fourcc}"));
    }
    assert_no_validation_messages(&producer);
    assert_no_validation_messages(&consumer);
}

#[test]
fn nv12_to_rgba_conversion() {
    let _fds = shared();
    let ctx = vulkan();
    let exporter = Exporter::new(&ctx).unwrap();
    let kernels = Kernels::new(&ctx).unwrap();
    let (w, h) = (96, 64);
    let usage = EXPORT_USAGE | vk::ImageUsageFlags::SAMPLED;
    let mut nv12 = exporter.export(DrmFourcc::Nv12, w, h, usage, &[]).unwrap();
    // The pattern is BT.709 limited; the conversion reads what the image says.
    nv12.set_colorimetry(Colorimetry::BT709);
    let rgba = exporter.export(DrmFourcc::Abgr8888, w, h, usage, &[]).unwrap();
    kernels.draw_pattern(&nv12, 2).unwrap();
    kernels.nv12_to_rgba(&nv12, &rgba).unwrap();
    let got = &read_planes(rgba.dmabuf())[0];
    // YUV 4:2:0 loses chroma detail and rounds: compare with the RGB
    // pattern where the 2x2 block is uniform, within a small tolerance.
    let mut checked = 0;
    for y in (0..h).step_by(2) {
        for x in (0..w).step_by(2) {
            let c = pattern::rgb(w, h, 2, x, y);
            let uniform = [(1, 0), (0, 1), (1, 1)]
                .iter()
                .all(|&(dx, dy)| pattern::rgb(w, h, 2, x + dx, y + dy) == c);
            if !uniform {
                continue;
            }
            let at = ((y * w + x) * 4) as usize;
            for ch in 0..3 {
                let diff = (i32::from(got[at + ch]) - i32::from(c[ch])).abs();
                assert!(
                    diff <= 3,
                    "pixel ({x},{y}) channel {ch}: got {} want {}",
                    got[at + ch],
                    c[ch]
                );
            }
            assert_eq!(got[at + 3], 255);
            checked += 1;
        }
    }
    assert!(checked > 500, "only {checked} uniform blocks checked");
    assert_no_validation_messages(&ctx);
}

#[test]
fn composite_draws_video_and_overlay() {
    let _fds = shared();
    // The viewer's Vulkan path: an imported video frame (RGB and NV12) plus
    // the overlay into an exported XRGB8888 image, compared with the CPU
    // references (pattern + overlay) at every pixel.
    let ctx = vulkan();
    let exporter = Exporter::new(&ctx).unwrap();
    let kernels = Kernels::new(&ctx).unwrap();
    let (w, h) = (320, 180);
    let out = exporter.export(DrmFourcc::Xrgb8888, w, h, EXPORT_USAGE, &[]).unwrap();
    let overlay = Overlay {
        frame: 4071,
        progress: Some(375),
    };
    for (fourcc, tolerance) in [(DrmFourcc::Xrgb8888, 0), (DrmFourcc::Xbgr8888, 0), (DrmFourcc::Nv12, 3)] {
        // The pattern's YUV is BT.709 limited (the frame says so, as
        // vkdmabufsrc's caps do).
        let frame = pattern_dmabuf(&ctx, fourcc, w, h, 5).with_colorimetry(Colorimetry::BT709);
        let video = vulkan::import(&ctx, &frame, IMPORT_USAGE).unwrap();
        kernels.composite(&video, &out, &overlay).unwrap();
        let got = &read_planes(out.dmabuf())[0];
        let stride = out.dmabuf().planes()[0].stride() as usize;
        let (mut overlay_px, mut video_px) = (0, 0);
        for y in 0..h {
            for x in 0..w {
                let at = y as usize * stride + x as usize * 4;
                let bgr = &got[at..at + 3];
                let rgb = [bgr[2], bgr[1], bgr[0]];
                let (want, tol) = match overlay.pixel(w, h, x, y) {
                    Some(c) => {
                        overlay_px += 1;
                        (c, 0)
                    }
                    None => {
                        video_px += 1;
                        (pattern::rgb(w, h, 5, x, y), tolerance)
                    }
                };
                // NV12: chroma is per 2x2 block, so only blocks of one colour
                // have an exact expectation.
                let uniform = fourcc != DrmFourcc::Nv12
                    || overlay.pixel(w, h, x, y).is_some()
                    || [(0, 0), (1, 0), (0, 1), (1, 1)]
                        .iter()
                        .all(|&(dx, dy)| pattern::rgb(w, h, 5, (x & !1) + dx, (y & !1) + dy) == want);
                if !uniform {
                    continue;
                }
                for ch in 0..3 {
                    let diff = (i32::from(rgb[ch]) - i32::from(want[ch])).abs();
                    assert!(
                        diff <= tol,
                        "{fourcc} ({x},{y}) channel {ch}: got {rgb:?} want {want:?}"
                    );
                }
            }
        }
        // The overlay is all there (a 50x14 counter box + a 312x4 bar at this size).
        assert!(
            overlay_px == 1948 && video_px > 40000,
            "{overlay_px} overlay, {video_px} video pixels"
        );
    }
    // Refusals: wrong output format, size mismatch, missing usage.
    let small = exporter.export(DrmFourcc::Xrgb8888, 64, 64, EXPORT_USAGE, &[]).unwrap();
    let rgba_out = exporter.export(DrmFourcc::Abgr8888, w, h, EXPORT_USAGE, &[]).unwrap();
    let video = vulkan::import(&ctx, &pattern_dmabuf(&ctx, DrmFourcc::Xrgb8888, w, h, 0), IMPORT_USAGE).unwrap();
    for (dst, what) in [(&small, "size"), (&rgba_out, "format")] {
        assert!(
            matches!(kernels.composite(&video, dst, &overlay), Err(VulkanError::Usage(_))),
            "{what} mismatch accepted"
        );
    }
    let storage_only = vulkan::import(
        &ctx,
        &pattern_dmabuf(&ctx, DrmFourcc::Xrgb8888, w, h, 0),
        vk::ImageUsageFlags::TRANSFER_SRC,
    )
    .unwrap();
    assert!(matches!(
        kernels.composite(&storage_only, &out, &overlay),
        Err(VulkanError::Usage(_))
    ));
    assert_no_validation_messages(&ctx);
}

#[test]
fn cache_reuses_while_the_source_lives() {
    let _fds = shared();
    let ctx = vulkan();
    let mut cache = ImportCache::new(&ctx, IMPORT_USAGE);
    let a = pattern_dmabuf(&ctx, DrmFourcc::Xrgb8888, 64, 64, 0);
    let first = cache.get_or_import(&a).unwrap();
    let again = cache.get_or_import(&a.clone()).unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    // The same file reached through other fd numbers is the same entry.
    let mut b = DmaBuf::builder(a.fourcc(), a.modifier(), a.width(), a.height());
    for p in a.planes() {
        b = b.plane_borrowed(p.fd(), p.offset(), p.stride());
    }
    let b = b.build().unwrap();
    assert!(Arc::ptr_eq(&first, &cache.get_or_import(&b).unwrap()));
    assert_eq!(cache.stats(), (2, 1));
    assert_eq!(cache.len(), 1);
    // Another buffer is another entry; dropping a source drops its entry.
    let c = pattern_dmabuf(&ctx, DrmFourcc::Xrgb8888, 64, 64, 1);
    cache.get_or_import(&c).unwrap();
    assert_eq!(cache.len(), 2);
    drop(c);
    assert_eq!(cache.purge(), 1);
    drop((a, b));
    drop((first, again));
    assert_eq!(cache.purge(), 1);
    assert!(cache.is_empty());
    assert_no_validation_messages(&ctx);
}

#[test]
fn refusals_are_typed_and_leak_nothing() {
    let _fds = exclusive();
    let ctx = vulkan();
    let good = pattern_dmabuf(&ctx, DrmFourcc::Xrgb8888, 250, 75, 0);
    let fds_before = open_fds();
    let targets_before = fd_targets();
    let fd = || good.planes()[0].fd();

    // With DRM format modifier tiling (lavapipe where /dev/udmabuf exists)
    // the dma-buf's own layout is given to Vulkan; with LINEAR tiling it
    // must be the driver's.
    let modifier_tiling = vulkan::format_support(&ctx, DrmFourcc::Xrgb8888, DrmModifier::Linear, IMPORT_USAGE)
        .unwrap()
        .modifier_tiling;
    // Stride that is not the driver's (lavapipe pads 250 px rows to 1024 bytes).
    let wrong_stride = DmaBuf::builder(DrmFourcc::Xrgb8888, DrmModifier::Linear, 250, 75)
        .plane_borrowed(fd(), 0, 1000)
        .build()
        .unwrap();
    if modifier_tiling {
        // Explicit layout: a 1000-byte stride over 1024-byte rows reads
        // the rows shifted, which is what the dma-buf says.
        let image = vulkan::import(&ctx, &wrong_stride, IMPORT_USAGE).unwrap();
        let got = image.download().unwrap();
        assert_eq!(got, common::read_planes(&wrong_stride), "explicit stride 1000 honoured");
    } else {
        let err = vulkan::import(&ctx, &wrong_stride, IMPORT_USAGE).unwrap_err();
        assert!(
            matches!(
                err,
                VulkanError::LayoutMismatch {
                    plane: 0,
                    field: "stride",
                    given: 1000,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("linear_layout"), "{err}");
    }
    drop(wrong_stride);

    // fd smaller than the driver's memory requirement (PLATFORM.md: 250x75
    // RGBA needs 77824 bytes; 76800 are enough for the builder).
    let small = MemfdAllocator::new()
        .allocate_layout(
            DrmFourcc::Xrgb8888,
            250,
            75,
            &dmabuf_interop::format::Layout::from_planes(
                &[dmabuf_interop::format::PlaneLayout {
                    offset: 0,
                    stride: 1024,
                    size: 1024 * 75,
                }],
                1024 * 75,
            )
            .unwrap(),
        )
        .unwrap();
    let req = vulkan::linear_layout(&ctx, DrmFourcc::Xrgb8888, 250, 75, IMPORT_USAGE)
        .unwrap()
        .total_size();
    if !modifier_tiling && small.planes()[0].fd_size() < req {
        let err = vulkan::import(&ctx, &small, IMPORT_USAGE).unwrap_err();
        assert!(matches!(err, VulkanError::FdTooSmall { plane: 0, .. }), "{err}");
    }
    drop(small);

    // A fourcc with no Vulkan format.
    let nv21 = MemfdAllocator::new().allocate(DrmFourcc::Nv21, 64, 64, 64).unwrap();
    assert!(matches!(
        vulkan::import(&ctx, &nv21, IMPORT_USAGE),
        Err(VulkanError::UnsupportedFormat {
            fourcc: DrmFourcc::Nv21
        })
    ));
    drop(nv21);

    // A modifier lavapipe cannot import (not listed, or no
    // VK_EXT_image_drm_format_modifier at all).
    let tiled = DmaBuf::builder(DrmFourcc::Xrgb8888, DrmModifier::I915_x_tiled, 250, 75)
        .plane_borrowed(fd(), 0, 1024)
        .build()
        .unwrap();
    let err = vulkan::import(&ctx, &tiled, IMPORT_USAGE).unwrap_err();
    assert!(matches!(err, VulkanError::UnsupportedModifier { .. }), "{err}");
    drop(tiled);
    let implicit = DmaBuf::builder(DrmFourcc::Xrgb8888, DrmModifier::Invalid, 250, 75)
        .plane_borrowed(fd(), 0, 1024)
        .build()
        .unwrap();
    assert!(matches!(
        vulkan::import(&ctx, &implicit, IMPORT_USAGE),
        Err(VulkanError::UnsupportedModifier { .. })
    ));
    drop(implicit);

    // Larger than the device allows.
    let exporter = Exporter::with_allocator(&ctx, Box::new(MemfdAllocator::new()));
    let err = exporter
        .export(DrmFourcc::Xrgb8888, 1 << 20, 4, EXPORT_USAGE, &[])
        .unwrap_err();
    assert!(matches!(err, VulkanError::TooLarge { .. }), "{err}");
    // A modifier list the host path cannot satisfy.
    let err = exporter
        .export(DrmFourcc::Xrgb8888, 64, 64, EXPORT_USAGE, &[DrmModifier::I915_y_tiled])
        .unwrap_err();
    assert!(matches!(err, VulkanError::UnsupportedModifier { .. }), "{err}");
    // An image that is not NV12 refused by the converter; a download without TRANSFER_SRC.
    let no_transfer = vulkan::import(&ctx, &good, vk::ImageUsageFlags::SAMPLED).unwrap();
    assert!(matches!(no_transfer.download(), Err(VulkanError::Usage(_))));
    drop(no_transfer);

    assert_eq!(
        open_fds(),
        fds_before,
        "refusals leaked fds: before {targets_before:?}, after {:?}",
        fd_targets()
    );
    assert_no_validation_messages(&ctx);
}

/// Wraps `ctx`'s own handles as a caller's device that enabled `extensions`.
fn wrap(
    ctx: &Arc<vulkan::VulkanContext>,
    extensions: &[&std::ffi::CStr],
) -> Result<Arc<vulkan::VulkanContext>, VulkanError> {
    // SAFETY: the handles come from a live context; every caller keeps `ctx`
    // alive longer than the wrapper and everything made from it.
    unsafe {
        vulkan::VulkanContext::from_raw(
            ctx.entry().clone(),
            ctx.instance().clone(),
            ctx.physical_device(),
            ctx.device().clone(),
            *ctx.lock_queue(),
            ctx.queue_family(),
            extensions,
        )
    }
}

#[test]
fn a_device_without_the_extensions_is_refused_by_name() {
    let _fds = shared();
    // Wrapping a device that did not enable the required extensions.
    let ctx = vulkan();
    let err = wrap(&ctx, &[vulkan::ash::khr::external_memory_fd::NAME]).unwrap_err();
    assert!(
        matches!(&err, VulkanError::MissingExtension { extension, .. } if extension == "VK_EXT_external_memory_dma_buf"),
        "{err}"
    );
    // Selecting a device by a name nobody has.
    let err = vulkan::VulkanContext::new(&vulkan::ContextOptions {
        device: vulkan::DeviceSelector::Name("no such gpu".into()),
        validation: false,
    })
    .unwrap_err();
    assert!(matches!(err, VulkanError::NoDevice { .. }), "{err}");
    assert!(
        err.to_string().contains("llvmpipe") || err.to_string().contains('#'),
        "{err}"
    );
}

#[test]
fn wrapped_context_imports_like_an_owned_one() {
    let _fds = shared();
    let ctx = vulkan();
    let wrapped = wrap(&ctx, &vulkan::REQUIRED_EXTENSIONS).unwrap();
    let buf = pattern_dmabuf(&wrapped, DrmFourcc::Xrgb8888, 32, 32, 4);
    let image = vulkan::import(&wrapped, &buf, IMPORT_USAGE).unwrap();
    assert_eq!(
        image.download().unwrap(),
        pattern::frame_planes(DrmFourcc::Xrgb8888, 32, 32, 4).unwrap()
    );
    drop(image);
    drop(wrapped);
    assert_no_validation_messages(&ctx);
}

#[test]
fn imported_fds_are_dups_and_are_released() {
    let _fds = exclusive();
    let ctx = vulkan();
    // NV12 takes LINEAR tiling on lavapipe, XRGB8888 DRM modifier tiling
    // where the device has modifiers (the VM stage).
    for fourcc in [DrmFourcc::Nv12, DrmFourcc::Xrgb8888] {
        let buf = pattern_dmabuf(&ctx, fourcc, 128, 64, 0);
        let before = fd_targets();
        let images: Vec<_> = (0..50)
            .map(|_| vulkan::import(&ctx, &buf, IMPORT_USAGE).unwrap())
            .collect();
        let downloaded = images[0].download().unwrap();
        assert_eq!(downloaded, read_planes(&buf), "{fourcc}");
        drop(images);
        assert_eq!(fd_targets(), before, "imports of {fourcc} leaked fds");
        // The source's fds are still ours and open.
        assert!(rustix::io::fcntl_getfd(buf.planes()[0].fd()).is_ok());
    }
    assert_no_validation_messages(&ctx);
}

#[test]
fn native_export_with_modifiers() {
    let _fds = shared();
    let ctx = vulkan();
    // lavapipe offers modifiers and native export where /dev/udmabuf exists.
    if !device_test(
        "a Vulkan device with DRM format modifiers and dma-buf export",
        ctx.capabilities().drm_format_modifier,
    ) {
        return;
    }
    let exporter = Exporter::new(&ctx).unwrap();
    let kernels = Kernels::new(&ctx).unwrap();
    for fourcc in vulkan::PATTERN_FORMATS {
        assert_eq!(
            exporter.backend_for(fourcc, EXPORT_USAGE, &[]).unwrap(),
            ExportBackend::Native
        );
        // LINEAR so the CPU can check the pixels.
        let image = exporter
            .export(fourcc, 640, 360, EXPORT_USAGE, &[DrmModifier::Linear])
            .unwrap();
        assert_eq!(image.export_backend(), ExportBackend::Native);
        assert!(image.dmabuf().is_kernel_dmabuf());
        kernels.draw_pattern(&image, 3).unwrap();
        let got = read_planes(image.dmabuf());
        assert_eq!(got, pattern::frame_planes(fourcc, 640, 360, 3).unwrap());
        // Any modifier: import it back into a second context and compare.
        let tiled = exporter
            .export(fourcc, 640, 360, EXPORT_USAGE | vk::ImageUsageFlags::TRANSFER_SRC, &[])
            .unwrap();
        kernels.draw_pattern(&tiled, 3).unwrap();
        let other = vulkan();
        let imported = vulkan::import(&other, tiled.dmabuf(), IMPORT_USAGE).unwrap();
        assert_eq!(
            imported.download().unwrap(),
            pattern::frame_planes(fourcc, 640, 360, 3).unwrap()
        );
    }
    assert_no_validation_messages(&ctx);
}

#[test]
fn disjoint_multi_plane_import() {
    let _fds = shared();
    let ctx = vulkan();
    let (w, h) = (256, 128);
    // NV12 with luma and chroma in two separate memfds, each with the row
    // pitch the driver reports for its plane and starting at offset 0.
    // (lavapipe asks for the whole image's size for each disjoint plane, so
    // each memfd gets that much.)
    let layout = vulkan::linear_layout(&ctx, DrmFourcc::Nv12, w, h, IMPORT_USAGE).unwrap();
    let planes = pattern::frame_planes(DrmFourcc::Nv12, w, h, 1).unwrap();
    let memfd = || {
        let fd = rustix::fs::memfd_create("disjoint", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, layout.total_size()).unwrap();
        fd
    };
    let buf = DmaBuf::builder(DrmFourcc::Nv12, DrmModifier::Linear, w, h)
        .plane(memfd(), 0, layout.planes()[0].stride)
        .plane(memfd(), 0, layout.planes()[1].stride)
        .build()
        .unwrap();
    assert!(!buf.planes()[0].same_file(&buf.planes()[1]));
    write_planes(&buf, &planes);
    let image = vulkan::import(&ctx, &buf, IMPORT_USAGE).unwrap();
    assert!(image.is_disjoint());
    assert_eq!(image.download().unwrap(), planes);
    assert_no_validation_messages(&ctx);
}

#[test]
fn implicit_sync_on_kernel_dmabufs() {
    let _fds = shared();
    if !device_test(
        "/dev/udmabuf (kernel dma-bufs)",
        std::path::Path::new("/dev/udmabuf").exists(),
    ) {
        return;
    }
    let ctx = vulkan();
    assert!(
        ctx.capabilities().semaphore_sync_fd,
        "device lacks SYNC_FD semaphore export"
    );
    let udmabuf = dmabuf_interop::alloc::open(AllocatorKind::Udmabuf).expect("/dev/udmabuf");
    let exporter = Exporter::with_allocator(&ctx, udmabuf);
    let kernels = Kernels::new(&ctx).unwrap();
    let image = exporter
        .export(DrmFourcc::Xrgb8888, 320, 240, EXPORT_USAGE, &[])
        .unwrap();
    assert!(image.dmabuf().is_kernel_dmabuf());
    kernels.draw_pattern(&image, 6).unwrap();
    // The submission's fence was attached to the dma-buf; it has signalled.
    let fence = dmabuf_interop::sync::export_sync_file(
        image.dmabuf().planes()[0].fd(),
        dmabuf_interop::sync::SyncAccess::Write,
    )
    .expect("export sync_file");
    drop(fence);
    assert_eq!(
        read_planes(image.dmabuf()),
        pattern::frame_planes(DrmFourcc::Xrgb8888, 320, 240, 6).unwrap()
    );
    assert_no_validation_messages(&ctx);
}
