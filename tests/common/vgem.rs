//! vgem test tooling (the VM stage): dumb buffers as dma-bufs, and real
//! pending implicit fences on demand (VGEM_FENCE_ATTACH, signalled by
//! VGEM_FENCE_SIGNAL). No user needs these ioctls, so they live with the
//! tests, their opcodes checked against the uapi headers' values
//! (`pending_fences::opcodes_match_the_uapi_headers`).

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use dmabuf_interop::{DmaBuf, DrmFourcc, DrmModifier};
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
pub const DRM_COMMAND_BASE: u8 = 0x40;
pub const CREATE_DUMB: Opcode = opcode::read_write::<CreateDumb>(b'd', 0xB2);
pub const PRIME_HANDLE_TO_FD: Opcode = opcode::read_write::<PrimeHandle>(b'd', 0x2D);
pub const VGEM_FENCE_ATTACH: Opcode = opcode::read_write::<VgemFenceAttach>(b'd', DRM_COMMAND_BASE + 1);
pub const VGEM_FENCE_SIGNAL: Opcode = opcode::write::<VgemFenceSignal>(b'd', DRM_COMMAND_BASE + 2);
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

/// The first DRM card node (`/dev/dri/cardN`, connectors left out) whose
/// sysfs entry (`/sys/class/drm/cardN`) satisfies `is`.
pub fn card_node(is: impl Fn(&std::path::Path) -> bool) -> Option<PathBuf> {
    std::fs::read_dir("/sys/class/drm").ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        (name.starts_with("card") && !name.contains('-') && is(&e.path())).then(|| PathBuf::from("/dev/dri").join(name))
    })
}

/// vgem's card node (its dumb buffers are refused on render nodes).
pub fn vgem_card() -> Option<PathBuf> {
    // /sys/class/drm/cardN -> ../../devices/platform/vgem/drm/cardN
    card_node(|entry| {
        std::fs::read_link(entry).is_ok_and(|device| device.components().any(|c| c.as_os_str() == "vgem"))
    })
}

/// A vgem dumb buffer as an XRGB8888 `DmaBuf`, with its device and handle.
pub struct VgemBuffer {
    pub device: OwnedFd,
    pub handle: u32,
    pub buf: DmaBuf,
}

impl VgemBuffer {
    pub fn new(card: &std::path::Path, w: u32, h: u32) -> Self {
        let device: OwnedFd = rustix::fs::open(
            card,
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .expect("open vgem card node");
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
        Self {
            device,
            handle: dumb.handle,
            buf,
        }
    }

    /// Attaches an unsignalled write fence (VGEM_FENCE_ATTACH); returns its id.
    pub fn attach_write_fence(&self) -> u32 {
        let mut attach = VgemFenceAttach {
            handle: self.handle,
            flags: VGEM_FENCE_WRITE,
            ..Default::default()
        };
        // SAFETY: VGEM_FENCE_ATTACH takes struct drm_vgem_fence_attach.
        unsafe { drm_ioctl::<VGEM_FENCE_ATTACH, _>(self.device.as_fd(), &mut attach) }.expect("VGEM_FENCE_ATTACH");
        attach.out_fence
    }

    /// Signals fence `fence` (VGEM_FENCE_SIGNAL).
    pub fn signal(&self, fence: u32) {
        let mut signal = VgemFenceSignal { fence, flags: 0 };
        // SAFETY: VGEM_FENCE_SIGNAL takes struct drm_vgem_fence_signal.
        unsafe { drm_ioctl::<VGEM_FENCE_SIGNAL, _>(self.device.as_fd(), &mut signal) }.expect("VGEM_FENCE_SIGNAL");
    }
}

/// Writes packed rows through a plain mmap of the dma-buf, without
/// DMA_BUF_IOCTL_SYNC (which would wait for the pending fence: this is the
/// producer whose fence it is).
pub fn write_rows_unsynced(buf: &DmaBuf, packed: &[u8]) {
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
