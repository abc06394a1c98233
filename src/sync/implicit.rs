//! Implicit synchronisation of dma-bufs: sync_file export/import and the CPU
//! access bracket (see the [module docs](super)).

use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::io::Errno;

use crate::sys;

/// Which accesses a sync_file covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncAccess {
    /// Reads: exported fences are the writers a reader must wait for; an
    /// imported fence is a reader that writers must wait for.
    Read,
    /// Writes: exported fences are all readers and writers a writer must wait
    /// for; an imported fence is a writer everybody must wait for.
    Write,
    /// Both.
    ReadWrite,
}

impl SyncAccess {
    pub(crate) fn flags(self) -> u64 {
        match self {
            SyncAccess::Read => sys::DMA_BUF_SYNC_READ,
            SyncAccess::Write => sys::DMA_BUF_SYNC_WRITE,
            SyncAccess::ReadWrite => sys::DMA_BUF_SYNC_READ | sys::DMA_BUF_SYNC_WRITE,
        }
    }
}

/// Why an fd cannot take part in implicit synchronisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsupportedReason {
    /// The fd is not a kernel dma-buf (for example a memfd).
    NotDmaBuf,
    /// The fd is a dma-buf but the kernel lacks the ioctl (sync_file
    /// export/import needs Linux 6.0).
    KernelTooOld,
}

impl std::fmt::Display for UnsupportedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UnsupportedReason::NotDmaBuf => "the fd is not a kernel dma-buf (a memfd or other file)",
            UnsupportedReason::KernelTooOld => "the kernel has no such dma-buf ioctl (needs Linux 6.0 or newer)",
        })
    }
}

/// Errors of the `sync` module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// The operation does not exist for this fd or kernel; fall back to
    /// explicit (fence) synchronisation.
    #[error("{op} is unsupported: {reason}")]
    Unsupported {
        /// The ioctl attempted.
        op: &'static str,
        /// Why it is unsupported.
        reason: UnsupportedReason,
    },
    /// The ioctl failed for another reason.
    #[error("{op} failed")]
    Ioctl {
        /// The ioctl attempted.
        op: &'static str,
        /// The error the kernel returned.
        source: Errno,
    },
}

fn classify(op: &'static str, fd: BorrowedFd<'_>, errno: Errno) -> SyncError {
    if errno != Errno::NOTTY {
        return SyncError::Ioctl { op, source: errno };
    }
    let reason = if is_kernel_dmabuf(fd) {
        UnsupportedReason::KernelTooOld
    } else {
        UnsupportedReason::NotDmaBuf
    };
    SyncError::Unsupported { op, reason }
}

/// Exports the fences of `dmabuf` that an access of kind `access` would have
/// to wait for, as a sync_file (`DMA_BUF_IOCTL_EXPORT_SYNC_FILE`).
pub fn export_sync_file(dmabuf: BorrowedFd<'_>, access: SyncAccess) -> Result<OwnedFd, SyncError> {
    const OP: &str = "DMA_BUF_IOCTL_EXPORT_SYNC_FILE";
    // The flags are the low bits of the u64 DMA_BUF_SYNC_* values.
    sys::export_sync_file(dmabuf, access.flags() as u32).map_err(|e| classify(OP, dmabuf, e))
}

/// Attaches the fence in `sync_file` to `dmabuf` as a read or write fence
/// (`DMA_BUF_IOCTL_IMPORT_SYNC_FILE`). `sync_file` stays owned by the caller.
pub fn import_sync_file(
    dmabuf: BorrowedFd<'_>,
    sync_file: BorrowedFd<'_>,
    access: SyncAccess,
) -> Result<(), SyncError> {
    const OP: &str = "DMA_BUF_IOCTL_IMPORT_SYNC_FILE";
    sys::import_sync_file(dmabuf, access.flags() as u32, sync_file).map_err(|e| classify(OP, dmabuf, e))
}

/// Waits on the CPU, at most `timeout`, for the fences of kernel dma-buf
/// `dmabuf` that an access of kind `access` must wait for (poll: `POLLIN`
/// waits for writers, `POLLOUT` for readers and writers; dma-bufs have
/// answered poll since long before the sync_file ioctls, so this is the
/// fallback where those are missing). False on timeout.
pub fn wait_implicit(
    dmabuf: BorrowedFd<'_>,
    access: SyncAccess,
    timeout: std::time::Duration,
) -> Result<bool, SyncError> {
    let flags = match access {
        SyncAccess::Read => rustix::event::PollFlags::IN,
        SyncAccess::Write | SyncAccess::ReadWrite => rustix::event::PollFlags::OUT,
    };
    sys::poll_one(dmabuf, flags, timeout).map_err(|source| SyncError::Ioctl { op: "poll", source })
}

/// Whether CPU access to an fd had to be bracketed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CpuSync {
    /// `DMA_BUF_IOCTL_SYNC` START succeeded; END must follow.
    Bracketed,
    /// The fd is not a dma-buf (ENOTTY): plain memory, nothing to sync.
    NotNeeded,
}

/// Starts CPU access (`DMA_BUF_IOCTL_SYNC` with `DMA_BUF_SYNC_START`).
pub(crate) fn cpu_access_begin(fd: BorrowedFd<'_>, access: SyncAccess) -> Result<CpuSync, SyncError> {
    match sys::dma_buf_sync(fd, sys::DMA_BUF_SYNC_START | access.flags()) {
        Ok(()) => Ok(CpuSync::Bracketed),
        Err(Errno::NOTTY) => Ok(CpuSync::NotNeeded),
        Err(source) => Err(SyncError::Ioctl {
            op: "DMA_BUF_IOCTL_SYNC(START)",
            source,
        }),
    }
}

/// Ends CPU access started by [`cpu_access_begin`]. Errors here cannot be
/// acted upon (the access already happened), so they are returned for logging
/// only.
pub(crate) fn cpu_access_end(fd: BorrowedFd<'_>, access: SyncAccess) -> Result<(), SyncError> {
    sys::dma_buf_sync(fd, sys::DMA_BUF_SYNC_END | access.flags()).map_err(|source| SyncError::Ioctl {
        op: "DMA_BUF_IOCTL_SYNC(END)",
        source,
    })
}

/// Whether `fd` is a kernel dma-buf (checked by the file system magic of the
/// file behind it, not by trying an ioctl).
pub fn is_kernel_dmabuf(fd: BorrowedFd<'_>) -> bool {
    matches!(sys::is_dmabuf(fd), Ok(true))
}
