//! Allocators and the mapping guard.
//!
//! The memfd back end runs everywhere. udmabuf, dma-heap and GBM need device
//! nodes the bare host lacks; their tests run in `scripts/test`'s VM stage
//! (`common::device_test`).

mod common;

use std::os::fd::{AsFd, BorrowedFd};

use dmabuf_interop::alloc::{self, AllocError, Allocator, AllocatorKind, MemfdAllocator};
use dmabuf_interop::format::{self, PlaneLayout};
use dmabuf_interop::mapping::{MapAccess, MapError};
use dmabuf_interop::sync::{self, SyncAccess, SyncError, UnsupportedReason};
use dmabuf_interop::{DmaBuf, DrmFourcc, DrmModifier};
use rustix::fs::SealFlags;
use rustix::mm::{MapFlags, ProtFlags};

/// A byte that depends on plane, row and column, so misplaced rows show.
fn pattern(plane: usize, y: usize, x: usize) -> u8 {
    (plane * 101 + y * 7 + x * 13) as u8
}

/// Rows of each plane of `buf`, from the format table.
fn plane_rows(buf: &DmaBuf, plane: usize) -> usize {
    buf.format_info().planes[plane].rows(buf.height()) as usize
}

fn write_pattern(buf: &DmaBuf) {
    let mut map = buf.map(MapAccess::ReadWrite).expect("map read-write");
    for plane in 0..buf.planes().len() {
        let stride = buf.planes()[plane].stride() as usize;
        let mut bytes = vec![0; map.plane_len(plane).expect("plane")];
        assert_eq!(bytes.len(), stride * plane_rows(buf, plane));
        for (y, row) in bytes.chunks_exact_mut(stride).enumerate() {
            for (x, b) in row.iter_mut().enumerate() {
                *b = pattern(plane, y, x);
            }
        }
        map.write_plane(plane, &bytes).expect("write plane");
    }
}

/// Reads the buffer through a second, independent mmap of a dup'ed fd.
fn check_pattern_independently(buf: &DmaBuf) {
    for (plane_index, plane) in buf.planes().iter().enumerate() {
        let dup = plane.fd().try_clone_to_owned().expect("dup");
        let len = plane.fd_size() as usize;
        // SAFETY: a fresh read-only shared mapping of a file we hold; unmapped
        // below before `dup` is dropped.
        let ptr = unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, ProtFlags::READ, MapFlags::SHARED, &dup, 0) }
            .expect("independent mmap");
        // SAFETY: ptr..ptr+len is the live read-only mapping made above.
        let all = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
        let stride = plane.stride() as usize;
        let start = plane.offset() as usize;
        for y in 0..plane_rows(buf, plane_index) {
            let row = &all[start + y * stride..start + (y + 1) * stride];
            for (x, &b) in row.iter().enumerate() {
                assert_eq!(b, pattern(plane_index, y, x), "plane {plane_index} row {y} col {x}");
            }
        }
        // SAFETY: unmapping exactly the mapping made above; `all` is dead.
        unsafe { rustix::mm::munmap(ptr, len) }.expect("munmap");
    }
}

#[test]
fn memfd_round_trip_through_the_mapping_guard() {
    let allocator = MemfdAllocator::new();
    for (fourcc, w, h) in [
        (DrmFourcc::Xrgb8888, 250, 75),
        (DrmFourcc::Nv12, 3, 5),
        (DrmFourcc::Yuv420, 1920, 1080),
        (DrmFourcc::Yuyv, 33, 7),
        (DrmFourcc::P010, 64, 9),
    ] {
        let buf = allocator.allocate(fourcc, w, h, 64).expect("allocate");
        assert!(!buf.is_kernel_dmabuf());
        assert_eq!(buf.modifier(), DrmModifier::Linear);
        assert!(buf.planes().iter().all(|p| p.stride() % 64 == 0));
        write_pattern(&buf);
        check_pattern_independently(&buf);
        // And back through a read-only guard.
        let map = buf.map(MapAccess::Read).expect("map read");
        assert_eq!(map.mapped_files(), 1, "planes share one memfd");
        assert_eq!(map.read_plane(0).unwrap()[1], pattern(0, 0, 1));
    }
}

#[test]
fn mappings_of_one_file_cannot_alias_a_writer() {
    // Before: `map(&self)` on two clones gave two `&mut [u8]` over the same
    // bytes. Now a writer excludes every other mapping of the file in this
    // process, whichever DmaBuf reaches it.
    let buf = MemfdAllocator::new().allocate(DrmFourcc::Nv12, 64, 32, 64).unwrap();
    let clone = buf.clone();
    let other = DmaBuf::builder(DrmFourcc::Nv12, DrmModifier::Linear, 64, 32)
        .plane(buf.planes()[0].fd().try_clone_to_owned().unwrap(), 0, 64)
        .plane(
            buf.planes()[1].fd().try_clone_to_owned().unwrap(),
            buf.planes()[1].offset(),
            64,
        )
        .build()
        .unwrap();
    let mut writer = buf.map(MapAccess::ReadWrite).unwrap();
    for (who, b) in [("clone", &clone), ("other DmaBuf over a dup", &other)] {
        for access in [MapAccess::Read, MapAccess::ReadWrite] {
            let err = b
                .map(access)
                .err()
                .unwrap_or_else(|| panic!("{who} {access:?} mapped beside a writer"));
            assert_eq!(
                err,
                MapError::Busy {
                    plane: 0,
                    held: "read-write"
                },
                "{who} {access:?}"
            );
        }
    }
    writer.fill_plane(0, 7).unwrap();
    writer.fill_plane(1, 9).unwrap();
    drop(writer);
    // Readers share; a writer beside them is refused; after they go it maps.
    let r1 = clone.map(MapAccess::Read).unwrap();
    let r2 = other.map(MapAccess::Read).unwrap();
    assert_eq!(
        buf.map(MapAccess::ReadWrite).err(),
        Some(MapError::Busy {
            plane: 0,
            held: "read-only"
        })
    );
    assert!(r1.read_plane(0).unwrap().iter().all(|&b| b == 7));
    assert!(r2.read_plane(1).unwrap().iter().all(|&b| b == 9));
    drop((r1, r2));
    buf.map(MapAccess::ReadWrite)
        .expect("free again once the readers are gone");
}

#[test]
fn row_copies_keep_padding_and_check_lengths() {
    let buf = MemfdAllocator::new().allocate(DrmFourcc::Xrgb8888, 10, 3, 64).unwrap();
    assert_eq!(buf.planes()[0].stride(), 64);
    let mut map = buf.map(MapAccess::ReadWrite).unwrap();
    map.fill_plane(0, 0xEE).unwrap();
    let src: Vec<u8> = (0..40 * 3).map(|i| i as u8).collect();
    map.write_rows(0, &src, 40).unwrap();
    let all = map.read_plane(0).unwrap();
    for y in 0..3 {
        assert_eq!(&all[y * 64..y * 64 + 40], &src[y * 40..y * 40 + 40], "row {y}");
        assert!(
            all[y * 64 + 40..y * 64 + 64].iter().all(|&b| b == 0xEE),
            "padding of row {y} kept"
        );
    }
    let mut back = vec![0; 3 * 40];
    map.read_rows(0, &mut back, 40).unwrap();
    assert_eq!(back, src);
    // Short slices and strides below a row are typed errors, not panics.
    assert_eq!(
        map.write_rows(0, &src[..100], 40).unwrap_err(),
        MapError::Length {
            plane: 0,
            needed: 120,
            got: 100
        }
    );
    assert!(matches!(
        map.read_rows(0, &mut back, 39),
        Err(MapError::Length { plane: 0, .. })
    ));
    assert_eq!(
        map.write_plane(0, &src).unwrap_err(),
        MapError::Length {
            plane: 0,
            needed: 192,
            got: 120
        }
    );
}

#[test]
fn memfd_is_sealed_against_resizing() {
    let buf = MemfdAllocator::new().allocate(DrmFourcc::Argb8888, 16, 16, 1).unwrap();
    let seals = rustix::fs::fcntl_get_seals(buf.planes()[0].fd()).unwrap();
    assert!(seals.contains(SealFlags::SHRINK | SealFlags::GROW), "{seals:?}");
    assert!(!seals.contains(SealFlags::WRITE));
    assert!(rustix::fs::ftruncate(buf.planes()[0].fd(), 1).is_err());
    // Sizes are rounded to whole pages.
    assert_eq!(buf.planes()[0].fd_size() % 4096, 0);
}

#[test]
fn exact_layout_from_a_driver() {
    // The layout lavapipe reports for a 250x75 LINEAR RGBA image: row pitch
    // 1024 and 77824 bytes (see PLATFORM.md).
    let layout = format::Layout::from_planes(
        &[PlaneLayout {
            offset: 0,
            stride: 1024,
            size: 1024 * 75,
        }],
        77_824,
    )
    .unwrap();
    let buf = MemfdAllocator::new()
        .allocate_layout(DrmFourcc::Abgr8888, 250, 75, &layout)
        .unwrap();
    assert_eq!(buf.planes()[0].stride(), 1024);
    assert!(buf.planes()[0].fd_size() >= 77_824);
}

#[test]
fn read_only_mapping_refuses_writes_and_unknown_planes() {
    let buf = MemfdAllocator::new().allocate(DrmFourcc::Nv12, 8, 8, 1).unwrap();
    let mut map = buf.map(MapAccess::Read).unwrap();
    assert_eq!(map.write_plane(0, &[0; 64]).unwrap_err(), MapError::ReadOnly);
    assert_eq!(map.fill_plane(1, 0).unwrap_err(), MapError::ReadOnly);
    // SAFETY: never reached with a slice: the mapping is read-only.
    assert_eq!(unsafe { map.plane_slice_mut(0) }.unwrap_err(), MapError::ReadOnly);
    assert_eq!(
        map.read_plane(2).unwrap_err(),
        MapError::NoSuchPlane { plane: 2, count: 2 }
    );
}

#[test]
fn write_sealed_memfd_maps_read_only_but_not_writable() {
    // The honest stand-in for a non-mappable dma-buf (the memory:DMABuf case).
    let buf = MemfdAllocator::new().allocate(DrmFourcc::Xrgb8888, 32, 32, 1).unwrap();
    write_pattern(&buf);
    rustix::fs::fcntl_add_seals(buf.planes()[0].fd(), SealFlags::WRITE).unwrap();
    let err = buf.map(MapAccess::ReadWrite).err().expect("writable map must fail");
    assert!(matches!(err, MapError::NotWritable { plane: 0, .. }), "{err}");
    let map = buf.map(MapAccess::Read).expect("read-only map still works");
    assert_eq!(map.read_plane(0).unwrap()[5], pattern(0, 0, 5));
}

#[test]
fn non_linear_buffers_are_not_mapped() {
    let fd = MemfdAllocator::new().allocate(DrmFourcc::Xrgb8888, 64, 64, 1).unwrap();
    let tiled = DmaBuf::builder(DrmFourcc::Xrgb8888, DrmModifier::I915_x_tiled, 64, 64)
        .plane_borrowed(fd.planes()[0].fd(), 0, 256)
        .build()
        .unwrap();
    assert!(matches!(tiled.map(MapAccess::Read), Err(MapError::NotLinear { .. })));
}

#[test]
fn sync_file_on_a_memfd_is_unsupported() {
    let buf = MemfdAllocator::new().allocate(DrmFourcc::Xrgb8888, 4, 4, 1).unwrap();
    let fd = buf.planes()[0].fd();
    assert!(!sync::is_kernel_dmabuf(fd));
    let err = sync::export_sync_file(fd, SyncAccess::Read).unwrap_err();
    assert_eq!(
        err,
        SyncError::Unsupported {
            op: "DMA_BUF_IOCTL_EXPORT_SYNC_FILE",
            reason: UnsupportedReason::NotDmaBuf
        }
    );
    let err = sync::import_sync_file(fd, fd, SyncAccess::Write).unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::Unsupported {
                reason: UnsupportedReason::NotDmaBuf,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("not a kernel dma-buf"), "{err}");
}

#[test]
fn best_available_reports_what_it_chose() {
    let allocator = alloc::best_available().expect("at least memfd works");
    let buf = allocator.allocate(DrmFourcc::Nv12, 64, 64, 64).unwrap();
    assert_eq!(buf.is_kernel_dmabuf(), allocator.kind().makes_kernel_dmabufs());
    let probe = alloc::probe();
    assert_eq!(probe.len(), 4);
    let memfd = probe.iter().find(|p| p.kind == AllocatorKind::Memfd).unwrap();
    assert!(memfd.result.is_ok());
    // The chosen one is the first that works.
    let first_ok = probe.iter().find(|p| p.result.is_ok()).unwrap().kind;
    if std::env::var_os(alloc::ALLOCATOR_ENV).is_none() {
        assert_eq!(allocator.kind(), first_ok);
    }
}

#[test]
fn unknown_allocator_names_are_errors() {
    assert_eq!(
        AllocatorKind::from_name("ion"),
        Err(AllocError::UnknownKind { name: "ion".into() })
    );
    for kind in AllocatorKind::ALL {
        assert_eq!(AllocatorKind::from_name(kind.name()), Ok(kind));
    }
}

#[test]
fn invalid_requests_are_typed_errors() {
    let a = MemfdAllocator::new();
    assert!(matches!(
        a.allocate(DrmFourcc::Nv12, 0, 10, 64),
        Err(AllocError::Format(format::FormatError::ZeroSize { .. }))
    ));
    assert!(matches!(
        a.allocate(DrmFourcc::Rgb888, 10, 10, 64),
        Err(AllocError::Format(format::FormatError::Unsupported { .. }))
    ));
}

// ------------------------------------------------ kernel dma-buf back ends

fn kernel_backend_round_trip(allocator: &dyn Allocator) {
    for (fourcc, w, h) in [(DrmFourcc::Xrgb8888, 250, 75), (DrmFourcc::Nv12, 64, 48)] {
        let buf = allocator.allocate(fourcc, w, h, 64).expect("allocate");
        assert!(
            buf.is_kernel_dmabuf(),
            "{} must return kernel dma-bufs",
            allocator.kind()
        );
        write_pattern(&buf);
        check_pattern_independently(&buf);
        // Implicit sync works on real dma-bufs (Linux 6.0+): nothing is
        // pending, so the exported sync_file is already signalled.
        let fd: BorrowedFd<'_> = buf.planes()[0].fd();
        match sync::export_sync_file(fd, SyncAccess::ReadWrite) {
            Ok(sync_file) => sync::import_sync_file(fd, sync_file.as_fd(), SyncAccess::Read).expect("import"),
            Err(SyncError::Unsupported {
                reason: UnsupportedReason::KernelTooOld,
                ..
            }) => eprintln!("kernel lacks sync_file export; skipped that part"),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn udmabuf_round_trip() {
    if !common::device_test("/dev/udmabuf", std::path::Path::new("/dev/udmabuf").exists()) {
        return;
    }
    let allocator = alloc::open(AllocatorKind::Udmabuf).expect("/dev/udmabuf");
    kernel_backend_round_trip(allocator.as_ref());
}

#[test]
fn dma_heap_round_trip() {
    if !common::device_test(
        "/dev/dma_heap/system",
        std::path::Path::new("/dev/dma_heap/system").exists(),
    ) {
        return;
    }
    let allocator = alloc::open(AllocatorKind::DmaHeap).expect("/dev/dma_heap/system");
    kernel_backend_round_trip(allocator.as_ref());
}

#[test]
#[cfg(feature = "gbm")]
fn gbm_round_trip() {
    // Mesa's GBM makes dma-buf bos on a KMS card node (virtio-gpu in the VM
    // stage); vgem and render nodes refuse dumb buffers.
    let card = std::path::Path::new("/dev/dri/card0").exists() || std::path::Path::new("/dev/dri/card1").exists();
    if !common::device_test("a DRM card node with GBM", card) {
        return;
    }
    let allocator = alloc::open(AllocatorKind::Gbm).expect("GBM on a DRM node");
    let buf = allocator.allocate(DrmFourcc::Xrgb8888, 256, 64, 64).expect("allocate");
    assert!(buf.is_kernel_dmabuf());
    assert_eq!(buf.modifier(), DrmModifier::Linear, "GBM_BO_USE_LINEAR");
    assert!(buf.planes()[0].stride() >= 256 * 4 && buf.planes()[0].stride().is_multiple_of(64));
    // Mesa exports GBM bos without DRM_RDWR (a read-only fd): a writable
    // map is refused, typed, naming the plane; reading works.
    match buf.map(MapAccess::ReadWrite) {
        Ok(map) => {
            drop(map);
            write_pattern(&buf);
            check_pattern_independently(&buf);
        }
        Err(MapError::NotWritable { plane: 0, .. }) => {
            let map = buf.map(MapAccess::Read).expect("map read-only");
            let bytes = map.read_plane(0).expect("plane 0");
            assert_eq!(bytes.len(), buf.planes()[0].stride() as usize * 64);
        }
        Err(e) => panic!("map of a GBM dma-buf: {e}"),
    }
}

#[test]
fn kernel_backends_are_unavailable_here_with_a_clear_error() {
    // On machines without the device the error names the node; where the
    // node exists the allocator opens. Either way no panic.
    match alloc::open(AllocatorKind::Udmabuf) {
        Ok(a) => assert_eq!(a.kind(), AllocatorKind::Udmabuf),
        Err(e) => assert!(e.to_string().contains("/dev/udmabuf"), "{e}"),
    }
    match alloc::open(AllocatorKind::DmaHeap) {
        Ok(a) => assert_eq!(a.kind(), AllocatorKind::DmaHeap),
        Err(e) => assert!(e.to_string().contains("/dev/dma_heap/system"), "{e}"),
    }
    #[cfg(not(feature = "gbm"))]
    assert_eq!(
        alloc::open(AllocatorKind::Gbm).err(),
        Some(AllocError::NotCompiledIn {
            kind: AllocatorKind::Gbm,
            feature: "gbm"
        })
    );
}
