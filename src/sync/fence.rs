//! [`Fence`]: the point at which a buffer's contents are ready (an acquire
//! fence) or at which it may be written again (a release fence), and the
//! errors of explicit fences.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use super::implicit::{SyncAccess, SyncError, export_sync_file};
use super::sync_file::{dup, same_file, sync_file_merge_all, sync_file_wait};
use super::syncobj::TimelinePoint;
use crate::dmabuf::DmaBuf;

/// Errors of explicit fences (sync_files and syncobj timelines).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    /// A DRM node could not be opened or has no timeline syncobjs.
    #[error("DRM device {path}: {reason}")]
    Device {
        /// The node.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No DRM node with timeline syncobjs was found.
    #[error("no DRM node with timeline syncobjs (DRM_CAP_SYNCOBJ_TIMELINE) under /dev/dri")]
    NoDevice,
    /// A syncobj ioctl failed.
    #[error("{op} failed")]
    Drm {
        /// The operation.
        op: &'static str,
        /// What the kernel said.
        source: rustix::io::Errno,
    },
    /// The timeline point has no fence yet (nothing was submitted for it),
    /// so there is nothing to export.
    #[error("timeline point {point} has no fence yet")]
    NotSubmitted {
        /// The point.
        point: u64,
    },
    /// Implicit-sync export or import failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// Polling a sync_file failed.
    #[error("poll on a sync_file failed")]
    Poll(#[source] rustix::io::Errno),
}

pub(super) fn drm_err(op: &'static str) -> impl FnOnce(std::io::Error) -> FenceError {
    move |e| FenceError::Drm { op, source: errno(&e) }
}

/// The kernel's errno behind an `io::Error` from the `drm` crate.
pub(super) fn errno(e: &std::io::Error) -> rustix::io::Errno {
    rustix::io::Errno::from_io_error(e).unwrap_or(rustix::io::Errno::IO)
}

/// The point at which a buffer's contents are ready, or may be reused.
#[derive(Debug)]
pub enum Fence {
    /// The dma-buf's own fences (implicit sync).
    Implicit,
    /// A sync_file.
    SyncFile(OwnedFd),
    /// A point on a DRM syncobj timeline.
    Timeline(TimelinePoint),
}

impl Fence {
    /// The fences a reader of `buf` must wait for (its writers), as a
    /// sync_file: one per distinct fd, merged. `Ok(Fence::Implicit)` where
    /// the buffer cannot tell (a memfd stand-in, a kernel before 6.0): its
    /// readers then rely on implicit sync, as before.
    pub fn from_dmabuf(buf: &DmaBuf) -> Result<Fence, FenceError> {
        let mut files = Vec::new();
        let mut seen: Vec<BorrowedFd<'_>> = Vec::new();
        for plane in buf.planes() {
            let fd = plane.fd();
            if seen.iter().any(|s| same_file(*s, fd)) {
                continue;
            }
            seen.push(fd);
            match export_sync_file(fd, SyncAccess::Read) {
                Ok(f) => files.push(f),
                Err(SyncError::Unsupported { .. }) => return Ok(Fence::Implicit),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(sync_file_merge_all(files)?.map_or(Fence::Implicit, Fence::SyncFile))
    }

    /// This fence, with [`Fence::Implicit`] made explicit from `buf`'s own
    /// fences ([`from_dmabuf`](Self::from_dmabuf)) where the kernel can.
    pub fn or_from_dmabuf(self, buf: &DmaBuf) -> Result<Fence, FenceError> {
        match self {
            Fence::Implicit => Fence::from_dmabuf(buf),
            explicit => Ok(explicit),
        }
    }

    /// The fence as a sync_file of its own (a dup, or a timeline point
    /// exported); `None` for [`Fence::Implicit`].
    pub fn to_sync_file(&self) -> Result<Option<OwnedFd>, FenceError> {
        match self {
            Fence::Implicit => Ok(None),
            Fence::SyncFile(fd) => dup(fd.as_fd(), "dup of a sync_file").map(Some),
            Fence::Timeline(p) => p.timeline.export_sync_file(p.point).map(Some),
        }
    }

    /// Whether the fence has signalled; `None` for [`Fence::Implicit`],
    /// which has no state of its own.
    pub fn is_signalled(&self) -> Result<Option<bool>, FenceError> {
        match self {
            Fence::Implicit => Ok(None),
            Fence::SyncFile(fd) => sync_file_wait(fd.as_fd(), Duration::ZERO).map(Some),
            Fence::Timeline(p) => p.timeline.is_signalled(p.point).map(Some),
        }
    }

    /// Waits up to `timeout` for the fence; true once signalled (always
    /// for [`Fence::Implicit`]).
    pub fn wait(&self, timeout: Duration) -> Result<bool, FenceError> {
        match self {
            Fence::Implicit => Ok(true),
            Fence::SyncFile(fd) => sync_file_wait(fd.as_fd(), timeout),
            Fence::Timeline(p) => p.timeline.wait(p.point, timeout),
        }
    }
}
