//! The implicit-sync bridge against a fence that is really pending: vgem
//! (`modprobe vgem`, the VM stage) attaches an unsignalled fence to one of
//! its buffers (VGEM_FENCE_ATTACH) and signals it on request
//! (VGEM_FENCE_SIGNAL). A Vulkan submission that reads the buffer must wait
//! for that fence; what the CPU writes before the signal is what it reads.
//! The vgem ioctls are test tooling (no user needs them), so they live here,
//! their opcodes checked against the uapi headers' values.
#![cfg(feature = "vulkan")]

mod common;

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dmabuf_interop::sync::{self, SyncAccess};
use dmabuf_interop::vulkan::{self, ash::vk};
use dmabuf_interop::{DmaBuf, DrmFourcc, DrmModifier, pattern};
use rustix::ioctl::{self, Opcode, Updater, opcode};

// drm.h / drm_mode.h / vgem_drm.h
#[repr(C)]
#[derive(Default)]
struct CreateDumb {
    height: u32,
    width: u32,
    bpp: u32,
    flags: u32,
    handle: u32,
    pitch: u32,
    size: u64,
}
#[repr(C)]
#[derive(Default)]
struct PrimeHandle {
    handle: u32,
    flags: u32,
    fd: i32,
}
#[repr(C)]
#[derive(Default)]
struct VgemFenceAttach {
    handle: u32,
    flags: u32,
    out_fence: u32,
    pad: u32,
}
#[repr(C)]
#[derive(Default)]
struct VgemFenceSignal {
    fence: u32,
    flags: u32,
}
const DRM_COMMAND_BASE: u8 = 0x40;
const CREATE_DUMB: Opcode = opcode::read_write::<CreateDumb>(b'd', 0xB2);
const PRIME_HANDLE_TO_FD: Opcode = opcode::read_write::<PrimeHandle>(b'd', 0x2D);
const VGEM_FENCE_ATTACH: Opcode = opcode::read_write::<VgemFenceAttach>(b'd', DRM_COMMAND_BASE + 1);
const VGEM_FENCE_SIGNAL: Opcode = opcode::write::<VgemFenceSignal>(b'd', DRM_COMMAND_BASE + 2);
const VGEM_FENCE_WRITE: u32 = 0x1;
const DRM_CLOEXEC: u32 = 0o2000000;
const DRM_RDWR: u32 = 0o2;

/// `ioctl(fd, opcode, &mut arg)` for the read-write/write ioctls above.
///
/// # Safety
/// `OPCODE` must be the ioctl whose argument struct is `T`.
unsafe fn drm_ioctl<const OPCODE: Opcode, T>(fd: BorrowedFd<'_>, arg: &mut T) -> rustix::io::Result<()> {
    // SAFETY: the caller pairs the opcode with its struct; `arg` outlives
    // the call and the kernel reads/writes only that struct.
    unsafe { ioctl::ioctl(fd, Updater::<OPCODE, T>::new(arg)) }
}

/// vgem's card node (its dumb buffers are refused on render nodes).
fn vgem_card() -> Option<PathBuf> {
    std::fs::read_dir("/sys/class/drm").ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        // /sys/class/drm/cardN -> ../../devices/platform/vgem/drm/cardN
        let device = std::fs::read_link(e.path()).ok()?;
        let is_vgem = device.components().any(|c| c.as_os_str() == "vgem");
        (name.starts_with("card") && !name.contains('-') && is_vgem).then(|| PathBuf::from("/dev/dri").join(name))
    })
}

#[test]
fn opcodes_match_the_uapi_headers() {
    // Values printed by a C program including <drm/drm.h>, <drm/vgem_drm.h>.
    assert_eq!(CREATE_DUMB, 0xC020_64B2);
    assert_eq!(PRIME_HANDLE_TO_FD, 0xC00C_642D);
    assert_eq!(VGEM_FENCE_ATTACH, 0xC010_6441);
    assert_eq!(VGEM_FENCE_SIGNAL, 0x4008_6442);
}

#[test]
fn a_read_waits_for_a_pending_vgem_fence() {
    let Some(card) = vgem_card() else {
        device_test("vgem (modprobe vgem)", false);
        return;
    };
    let ctx = vulkan();
    if !device_test(
        "a Vulkan device with SYNC_FD semaphores (lavapipe where /dev/udmabuf exists)",
        ctx.capabilities().semaphore_sync_fd,
    ) {
        return;
    }
    let device: OwnedFd = rustix::fs::open(
        &card,
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .expect("open vgem card node");
    let (w, h) = (64u32, 48u32);
    let mut dumb = CreateDumb {
        width: w,
        height: h,
        bpp: 32,
        ..Default::default()
    };
    // SAFETY: CREATE_DUMB takes struct drm_mode_create_dumb.
    unsafe { drm_ioctl::<CREATE_DUMB, _>(device.as_fd(), &mut dumb) }.expect("DRM_IOCTL_MODE_CREATE_DUMB");
    let mut prime = PrimeHandle {
        handle: dumb.handle,
        flags: DRM_CLOEXEC | DRM_RDWR,
        fd: -1,
    };
    // SAFETY: PRIME_HANDLE_TO_FD takes struct drm_prime_handle.
    unsafe { drm_ioctl::<PRIME_HANDLE_TO_FD, _>(device.as_fd(), &mut prime) }.expect("PRIME export");
    // SAFETY: the ioctl succeeded and created this fd for us.
    let fd = unsafe { OwnedFd::from_raw_fd(prime.fd) };
    let buf = DmaBuf::builder(DrmFourcc::Xrgb8888, DrmModifier::Linear, w, h)
        .plane(Arc::new(fd), 0, dumb.pitch)
        .build()
        .expect("vgem dma-buf");
    assert!(buf.is_kernel_dmabuf());

    // A writer's fence, not yet signalled: readers must wait for it.
    let mut attach = VgemFenceAttach {
        handle: dumb.handle,
        flags: VGEM_FENCE_WRITE,
        ..Default::default()
    };
    // SAFETY: VGEM_FENCE_ATTACH takes struct drm_vgem_fence_attach.
    unsafe { drm_ioctl::<VGEM_FENCE_ATTACH, _>(device.as_fd(), &mut attach) }.expect("VGEM_FENCE_ATTACH");
    let pending = sync::export_sync_file(buf.planes()[0].fd(), SyncAccess::Read).expect("export sync_file");
    assert!(!signalled(pending.as_fd()), "the vgem fence is pending");

    // Vulkan reads the buffer on another thread: it must block on the fence.
    let image = vulkan::import(
        &ctx,
        &buf,
        vk::ImageUsageFlags::TRANSFER_SRC | vk::ImageUsageFlags::SAMPLED,
    )
    .expect("import the vgem dma-buf");
    let reader = std::thread::spawn(move || image.download().expect("download"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!reader.is_finished(), "the read did not wait for the pending fence");

    // The "producer" finishes its frame, then signals.
    let want = pattern::frame_planes(DrmFourcc::Xrgb8888, w, h, 5).unwrap();
    write_rows_unsynced(&buf, &want[0]);
    let mut signal = VgemFenceSignal {
        fence: attach.out_fence,
        flags: 0,
    };
    // SAFETY: VGEM_FENCE_SIGNAL takes struct drm_vgem_fence_signal.
    unsafe { drm_ioctl::<VGEM_FENCE_SIGNAL, _>(device.as_fd(), &mut signal) }.expect("VGEM_FENCE_SIGNAL");
    assert!(signalled(pending.as_fd()));
    let got = reader.join().expect("reader thread");
    assert_eq!(got, want, "the read saw the frame finished before the signal");
    assert_no_validation_messages(&ctx);
}

/// Whether a sync_file has signalled (poll for POLLIN without waiting).
fn signalled(sync_file: BorrowedFd<'_>) -> bool {
    let mut fds = [rustix::event::PollFd::new(&sync_file, rustix::event::PollFlags::IN)];
    rustix::event::poll(&mut fds, Some(&rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 })).unwrap_or(0) == 1
}

/// Writes packed rows through a plain mmap of the dma-buf, without
/// DMA_BUF_IOCTL_SYNC (which would wait for the pending fence: this is the
/// producer whose fence it is).
fn write_rows_unsynced(buf: &DmaBuf, packed: &[u8]) {
    let plane = &buf.planes()[0];
    let len = plane.fd_size() as usize;
    // SAFETY: a fresh shared mapping of a dma-buf we hold, unmapped below;
    // nothing else in this process maps it meanwhile.
    let ptr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            plane.fd(),
            0,
        )
    }
    .expect("mmap the vgem dma-buf");
    let row = packed.len() / buf.height() as usize;
    let stride = plane.stride() as usize;
    for (y, src) in packed.chunks_exact(row).enumerate() {
        // SAFETY: y * stride + row <= len (validated by the DmaBuf builder).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), ptr.cast::<u8>().add(y * stride), row) };
    }
    // SAFETY: the mapping made above, not used after this.
    unsafe { rustix::mm::munmap(ptr, len) }.expect("munmap");
}
