//! The kernel edge: every ioctl the crate issues, with its uapi struct, and
//! the few fd queries that need care. Nothing else in the crate talks to the
//! kernel through raw pointers.
//!
//! Structs mirror `include/uapi/linux/{dma-buf,udmabuf,dma-heap,sync_file}.h`
//! and `include/uapi/drm/drm.h` (the syncobj ioctl the `drm` crate lacks).

use std::ffi::c_void;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::fs::{FileType, SeekFrom};
use rustix::io::Errno;
use rustix::ioctl::{self, Ioctl, IoctlOutput, Opcode, Setter, Updater, opcode};

/// `DMA_BUF_MAGIC` from `include/uapi/linux/magic.h`: the `f_type` of the
/// dma-buf pseudo file system.
const DMA_BUF_MAGIC: u64 = 0x444d_4142;

/// Whether `fd` is a kernel dma-buf (as opposed to a memfd or anything else).
pub(crate) fn is_dmabuf(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    let stat = rustix::fs::fstatfs(fd)?;
    // `f_type` is signed on some ABIs; the magic is positive either way.
    #[allow(clippy::unnecessary_cast)]
    Ok(stat.f_type as u64 == DMA_BUF_MAGIC)
}

/// The exporter of a dma-buf (`exp_name` in `/proc/self/fdinfo`, e.g.
/// `udmabuf`), or `None` when the fd is no dma-buf or procfs is missing.
pub(crate) fn dmabuf_exporter(fd: BorrowedFd<'_>) -> Option<String> {
    use std::os::fd::AsRawFd;
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("exp_name:"))
        .map(|name| name.trim().to_string())
}

/// Identity and size of the file behind `fd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FdInfo {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub is_dmabuf: bool,
}

/// Reads the (st_dev, st_ino) identity and the byte size of `fd`.
///
/// The size of a regular file (a memfd) is `st_size`. A dma-buf reports its
/// size only through `lseek(SEEK_END)`; dma-buf's llseek returns the size
/// without moving the file position, so this has no side effect on it. We do
/// not `lseek` regular files because that would move a position shared with
/// every dup of the fd.
pub(crate) fn fd_info(fd: BorrowedFd<'_>) -> Result<FdInfo, Errno> {
    let stat = rustix::fs::fstat(fd)?;
    let is_dmabuf = is_dmabuf(fd)?;
    let size = if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile {
        u64::try_from(stat.st_size).map_err(|_| Errno::INVAL)?
    } else {
        rustix::fs::seek(fd, SeekFrom::End(0))?
    };
    #[allow(clippy::useless_conversion)]
    Ok(FdInfo {
        dev: u64::from(stat.st_dev),
        ino: u64::from(stat.st_ino),
        size,
        is_dmabuf,
    })
}

// ---------------------------------------------------------------- dma-buf.h

/// Waits up to `timeout` for `flags` on `fd` (poll(2)); true when ready.
/// An interrupted poll is retried with what is left of the timeout.
pub(crate) fn poll_one(
    fd: BorrowedFd<'_>,
    flags: rustix::event::PollFlags,
    timeout: std::time::Duration,
) -> Result<bool, Errno> {
    let deadline = std::time::Instant::now().checked_add(timeout);
    loop {
        let left = deadline.map_or(timeout, |d| d.saturating_duration_since(std::time::Instant::now()));
        let ts = rustix::event::Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [rustix::event::PollFd::new(&fd, flags)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(n) => return Ok(n > 0),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

pub(crate) const DMA_BUF_SYNC_READ: u64 = 1 << 0;
pub(crate) const DMA_BUF_SYNC_WRITE: u64 = 1 << 1;
pub(crate) const DMA_BUF_SYNC_START: u64 = 0;
pub(crate) const DMA_BUF_SYNC_END: u64 = 1 << 2;

#[repr(C)]
struct DmaBufSync {
    flags: u64,
}
const DMA_BUF_IOCTL_SYNC: Opcode = opcode::write::<DmaBufSync>(b'b', 0);

#[repr(C)]
struct DmaBufExportSyncFile {
    flags: u32,
    fd: i32,
}
const DMA_BUF_IOCTL_EXPORT_SYNC_FILE: Opcode = opcode::read_write::<DmaBufExportSyncFile>(b'b', 2);

#[repr(C)]
struct DmaBufImportSyncFile {
    flags: u32,
    fd: i32,
}
const DMA_BUF_IOCTL_IMPORT_SYNC_FILE: Opcode = opcode::write::<DmaBufImportSyncFile>(b'b', 3);

/// `DMA_BUF_IOCTL_SYNC` with `flags` (`DMA_BUF_SYNC_*`), retried while it
/// answers EINTR or EAGAIN: the kernel's dma-buf documentation says the
/// ioctl "might fail with -EAGAIN or -EINTR, in which case it must be
/// restarted" (a signal, or a fence wait interrupted).
pub(crate) fn dma_buf_sync(fd: BorrowedFd<'_>, flags: u64) -> Result<(), Errno> {
    loop {
        // SAFETY: DMA_BUF_IOCTL_SYNC is _IOW('b', 0, struct dma_buf_sync) and
        // DmaBufSync has that struct's layout; the kernel only reads it.
        match unsafe { ioctl::ioctl(fd, Setter::<DMA_BUF_IOCTL_SYNC, _>::new(DmaBufSync { flags })) } {
            Err(Errno::INTR | Errno::AGAIN) => continue,
            other => return other,
        }
    }
}

/// `DMA_BUF_IOCTL_EXPORT_SYNC_FILE`: a sync_file of the fences `flags`
/// (`DMA_BUF_SYNC_READ`/`WRITE`) would wait for.
pub(crate) fn export_sync_file(fd: BorrowedFd<'_>, flags: u32) -> Result<OwnedFd, Errno> {
    let mut arg = DmaBufExportSyncFile { flags, fd: -1 };
    // SAFETY: _IOWR('b', 2, struct dma_buf_export_sync_file); the struct layout
    // matches and `arg` outlives the call.
    unsafe { ioctl::ioctl(fd, Updater::<DMA_BUF_IOCTL_EXPORT_SYNC_FILE, _>::new(&mut arg))? };
    owned_from_kernel(arg.fd)
}

/// `DMA_BUF_IOCTL_IMPORT_SYNC_FILE`: adds `sync_file`'s fence to the dma-buf
/// as a read (`DMA_BUF_SYNC_READ`) or write fence.
pub(crate) fn import_sync_file(fd: BorrowedFd<'_>, flags: u32, sync_file: BorrowedFd<'_>) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let arg = DmaBufImportSyncFile {
        flags,
        fd: sync_file.as_raw_fd(),
    };
    // SAFETY: _IOW('b', 3, struct dma_buf_import_sync_file); the kernel reads
    // the struct and takes its own reference on the fence; the sync_file fd
    // stays ours.
    unsafe { ioctl::ioctl(fd, Setter::<DMA_BUF_IOCTL_IMPORT_SYNC_FILE, _>::new(arg)) }
}

/// Wraps an fd the kernel just created for us.
fn owned_from_kernel(raw: RawFd) -> Result<OwnedFd, Errno> {
    if raw < 0 {
        return Err(Errno::BADF);
    }
    // SAFETY: the ioctl that returned `raw` succeeded and created this fd for
    // the calling process; nothing else owns it yet.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

// ---------------------------------------------------------------- udmabuf.h

const UDMABUF_FLAGS_CLOEXEC: u32 = 0x01;

#[repr(C)]
struct UdmabufCreateArg {
    memfd: u32,
    flags: u32,
    offset: u64,
    size: u64,
}
const UDMABUF_CREATE: Opcode = opcode::write::<UdmabufCreateArg>(b'u', 0x42);

/// `UDMABUF_CREATE` returns the new dma-buf fd as the ioctl's return value,
/// which none of rustix's ready patterns pass on.
struct UdmabufCreate(UdmabufCreateArg);

// SAFETY: the opcode is _IOW('u', 0x42, struct udmabuf_create), the pointer is
// to a live struct of that layout which the kernel only reads, and the output
// is the non-negative fd the ioctl returns on success.
unsafe impl Ioctl for UdmabufCreate {
    type Output = OwnedFd;
    const IS_MUTATING: bool = false;

    fn opcode(&self) -> Opcode {
        UDMABUF_CREATE
    }

    fn as_ptr(&mut self) -> *mut c_void {
        (&mut self.0 as *mut UdmabufCreateArg).cast()
    }

    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut c_void) -> rustix::io::Result<OwnedFd> {
        owned_from_kernel(out)
    }
}

/// Turns `size` bytes of `memfd` (sealed against shrinking, not against
/// writes) into a dma-buf through `/dev/udmabuf`.
pub(crate) fn udmabuf_create(device: BorrowedFd<'_>, memfd: BorrowedFd<'_>, size: u64) -> Result<OwnedFd, Errno> {
    use std::os::fd::AsRawFd;
    let memfd = u32::try_from(memfd.as_raw_fd()).map_err(|_| Errno::BADF)?;
    let arg = UdmabufCreateArg {
        memfd,
        flags: UDMABUF_FLAGS_CLOEXEC,
        offset: 0,
        size,
    };
    // SAFETY: see the `Ioctl` impl above; `device` is an open /dev/udmabuf.
    unsafe { ioctl::ioctl(device.as_fd(), UdmabufCreate(arg)) }
}

// ---------------------------------------------------------------- dma-heap.h

#[repr(C)]
struct DmaHeapAllocationData {
    len: u64,
    fd: u32,
    fd_flags: u32,
    heap_flags: u64,
}
const DMA_HEAP_IOCTL_ALLOC: Opcode = opcode::read_write::<DmaHeapAllocationData>(b'H', 0x0);

/// Allocates `len` bytes from the dma-heap open at `heap`.
pub(crate) fn dma_heap_alloc(heap: BorrowedFd<'_>, len: u64) -> Result<OwnedFd, Errno> {
    let fd_flags = (rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC).bits();
    let mut arg = DmaHeapAllocationData {
        len,
        fd: 0,
        fd_flags,
        heap_flags: 0,
    };
    // SAFETY: _IOWR('H', 0, struct dma_heap_allocation_data); layout matches
    // and `arg` outlives the call; the kernel writes the new fd into `arg.fd`.
    unsafe { ioctl::ioctl(heap, Updater::<DMA_HEAP_IOCTL_ALLOC, _>::new(&mut arg))? };
    owned_from_kernel(i32::try_from(arg.fd).map_err(|_| Errno::BADF)?)
}

// ---------------------------------------------------------------- drm.h (syncobj), sync_file.h

/// `struct drm_syncobj_handle`.
#[repr(C)]
struct DrmSyncobjHandle {
    handle: u32,
    flags: u32,
    fd: i32,
    pad: u32,
    point: u64,
}
const DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE: Opcode = opcode::read_write::<DrmSyncobjHandle>(b'd', 0xC2);
const DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE: u32 = 1 << 0;

/// `DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE` with `IMPORT_SYNC_FILE`: replaces the
/// fence of the (binary) syncobj `handle` on `device` with `sync_file`'s.
/// The `drm` crate's `fd_to_syncobj` cannot do this: it always passes
/// handle 0, which the kernel answers with ENOENT for this flag.
pub(crate) fn syncobj_import_sync_file(
    device: BorrowedFd<'_>,
    handle: u32,
    sync_file: BorrowedFd<'_>,
) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let mut arg = DrmSyncobjHandle {
        handle,
        flags: DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE,
        fd: sync_file.as_raw_fd(),
        pad: 0,
        point: 0,
    };
    // SAFETY: DRM_IOWR(0xC2, struct drm_syncobj_handle); the layout matches
    // and `arg` outlives the call. The kernel takes its own reference on the
    // fence; the sync_file fd stays the caller's.
    unsafe { ioctl::ioctl(device, Updater::<DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE, _>::new(&mut arg)) }
}

/// `struct sync_merge_data`.
#[repr(C)]
struct SyncMergeData {
    name: [u8; 32],
    fd2: i32,
    fence: i32,
    flags: u32,
    pad: u32,
}
const SYNC_IOC_MERGE: Opcode = opcode::read_write::<SyncMergeData>(b'>', 3);

/// `SYNC_IOC_MERGE`: a new sync_file that signals when both `a` and `b` have.
pub(crate) fn sync_file_merge(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    use std::os::fd::AsRawFd;
    let mut name = [0u8; 32];
    name[..14].copy_from_slice(b"dmabuf-interop");
    let mut arg = SyncMergeData {
        name,
        fd2: b.as_raw_fd(),
        fence: -1,
        flags: 0,
        pad: 0,
    };
    // SAFETY: _IOWR('>', 3, struct sync_merge_data); the layout matches and
    // `arg` outlives the call; the kernel writes the new fd into `fence`.
    unsafe { ioctl::ioctl(a, Updater::<SYNC_IOC_MERGE, _>::new(&mut arg))? };
    owned_from_kernel(arg.fence)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The opcodes as the C headers compute them (checked against
    // <linux/dma-buf.h>, <linux/udmabuf.h>, <linux/dma-heap.h> on x86_64).
    #[test]
    fn opcodes_match_the_uapi_headers() {
        assert_eq!(DMA_BUF_IOCTL_SYNC as u64, 0x4008_6200);
        assert_eq!(DMA_BUF_IOCTL_EXPORT_SYNC_FILE as u64, 0xc008_6202);
        assert_eq!(DMA_BUF_IOCTL_IMPORT_SYNC_FILE as u64, 0x4008_6203);
        assert_eq!(UDMABUF_CREATE as u64, 0x4018_7542);
        assert_eq!(DMA_HEAP_IOCTL_ALLOC as u64, 0xc018_4800);
        // <drm/drm.h>, <linux/sync_file.h>
        assert_eq!(DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE as u64, 0xc018_64c2);
        assert_eq!(SYNC_IOC_MERGE as u64, 0xc030_3e03);
    }
}
