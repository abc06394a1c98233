//! fd and mapping accounting: nothing leaks, nothing closes what it does not
//! own.
//!
//! This binary holds a single test so that no other test opens fds while it
//! counts `/proc/self/fd`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use dmabuf_interop::alloc::{Allocator, MemfdAllocator};
use dmabuf_interop::mapping::MapAccess;
use dmabuf_interop::{DmaBuf, DmaBufError, DrmFourcc, DrmModifier};
use rustix::fs::MemfdFlags;

const N: usize = 1000;

fn open_fds() -> usize {
    // The directory handle itself is open while counting, the same every time.
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps")
        .lines()
        .count()
}

fn memfd(size: u64) -> OwnedFd {
    let fd = rustix::fs::memfd_create("fd-accounting", MemfdFlags::CLOEXEC).expect("memfd_create");
    rustix::fs::ftruncate(&fd, size).expect("ftruncate");
    fd
}

fn is_open(fd: BorrowedFd<'_>) -> bool {
    rustix::io::fcntl_getfd(fd).is_ok()
}

/// Part 2 holds 3000 fds at once: make sure the soft limit allows it.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let want = (4 * N + 64) as u64;
    if limit.current.is_some_and(|c| c < want) {
        limit.current = Some(limit.maximum.map_or(want, |m| m.min(want)));
        setrlimit(Resource::Nofile, limit).expect("raise RLIMIT_NOFILE");
    }
}

#[test]
fn no_fd_leaks_and_no_foreign_fd_closed() {
    raise_fd_limit();
    let allocator = MemfdAllocator::new();
    let baseline = open_fds();

    // 1. Planes sharing one fd (NV12 from the allocator): one fd per buffer.
    let shared: Vec<DmaBuf> = (0..N)
        .map(|_| allocator.allocate(DrmFourcc::Nv12, 64, 48, 64).expect("allocate"))
        .collect();
    assert_eq!(open_fds(), baseline + N, "one fd per buffer whose planes share it");
    drop(shared);
    assert_eq!(open_fds(), baseline, "shared-plane buffers leaked fds");

    // 2. Separate fds per plane (I420 in three memfds): three per buffer.
    let separate: Vec<DmaBuf> = (0..N)
        .map(|_| {
            DmaBuf::builder(DrmFourcc::Yuv420, DrmModifier::Linear, 16, 16)
                .plane(memfd(256), 0, 16)
                .plane(memfd(64), 0, 8)
                .plane(memfd(64), 0, 8)
                .build()
                .expect("three-fd I420")
        })
        .collect();
    assert_eq!(open_fds(), baseline + 3 * N);
    drop(separate);
    assert_eq!(open_fds(), baseline, "separate-plane buffers leaked fds");

    // 3. The caller keeps an Arc of the fd: dropping every buffer leaves it open.
    let callers = Arc::new(memfd(4096));
    let borrowers: Vec<DmaBuf> = (0..N)
        .map(|_| {
            DmaBuf::builder(DrmFourcc::Xrgb8888, DrmModifier::Linear, 16, 16)
                .plane(Arc::clone(&callers), 0, 64)
                .build()
                .expect("buffer over the caller's fd")
        })
        .collect();
    assert_eq!(open_fds(), baseline + 1, "sharing an Arc opens nothing");
    drop(borrowers);
    assert!(is_open(callers.as_fd()), "the caller's fd was closed");
    assert_eq!(Arc::strong_count(&callers), 1);

    // 4. A lent fd (plane_borrowed) is dup'ed: the original is never closed,
    //    the dups all are.
    let lent = memfd(4096);
    let dups: Vec<DmaBuf> = (0..N)
        .map(|_| {
            DmaBuf::builder(DrmFourcc::Xrgb8888, DrmModifier::Linear, 16, 16)
                .plane_borrowed(lent.as_fd(), 0, 64)
                .build()
                .expect("buffer over a lent fd")
        })
        .collect();
    assert_eq!(open_fds(), baseline + 2 + N, "one dup per buffer");
    drop(dups);
    assert!(is_open(lent.as_fd()), "the lent fd was closed");
    assert_eq!(open_fds(), baseline + 2);

    // 5. Rejected builds close what they were given and nothing else.
    for _ in 0..N {
        let err = DmaBuf::builder(DrmFourcc::Xrgb8888, DrmModifier::Linear, 16, 16)
            .plane(memfd(4096), 0, 4)
            .build()
            .unwrap_err();
        assert!(matches!(err, DmaBufError::StrideTooSmall { .. }));
        let err = DmaBuf::builder(DrmFourcc::Xrgb8888, DrmModifier::Linear, 16, 16)
            .plane_borrowed(lent.as_fd(), 8192, 64)
            .build()
            .unwrap_err();
        assert!(matches!(err, DmaBufError::OffsetPastEnd { .. }));
    }
    assert_eq!(open_fds(), baseline + 2, "rejected builds leaked fds");
    assert!(is_open(lent.as_fd()) && is_open(callers.as_fd()));

    // 6. Mapping guards unmap on drop.
    let buf = allocator.allocate(DrmFourcc::Yuv420, 640, 480, 64).unwrap();
    let maps_before = mappings();
    for i in 0..N {
        let mut map = buf.map(MapAccess::ReadWrite).expect("map");
        map.fill_plane(i % 3, i as u8).unwrap();
    }
    assert_eq!(mappings(), maps_before, "mapping guards leaked mappings");
    drop(buf);
    drop(lent);
    drop(callers);
    assert_eq!(open_fds(), baseline);
    println!(
        "fd accounting: baseline {baseline} open fds; +{N} with {N} shared-plane buffers, +{} with {N} three-fd \
         buffers, back to {baseline} after each; {N} lent-fd dups closed, caller's fds open; {N} map/unmap cycles, \
         {maps_before} mappings before and after",
        3 * N
    );
}
