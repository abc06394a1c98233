//! sync_files: merge, wait, dup (`SYNC_IOC_MERGE`, poll).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use super::fence::{FenceError, errno};
use crate::sys;

/// A sync_file that signals when both `a` and `b` have (`SYNC_IOC_MERGE`).
pub fn sync_file_merge(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> Result<OwnedFd, FenceError> {
    sys::sync_file_merge(a, b).map_err(|source| FenceError::Drm {
        op: "SYNC_IOC_MERGE",
        source,
    })
}

/// One sync_file for all of `files` (merged); `None` for none.
pub fn sync_file_merge_all(files: impl IntoIterator<Item = OwnedFd>) -> Result<Option<OwnedFd>, FenceError> {
    let mut merged: Option<OwnedFd> = None;
    for file in files {
        merged = Some(match merged {
            None => file,
            Some(m) => sync_file_merge(m.as_fd(), file.as_fd())?,
        });
    }
    Ok(merged)
}

/// A dup of `fd` (`what` names it in the error).
pub(crate) fn dup(fd: BorrowedFd<'_>, what: &'static str) -> Result<OwnedFd, FenceError> {
    fd.try_clone_to_owned().map_err(|e| FenceError::Drm {
        op: what,
        source: errno(&e),
    })
}

/// Waits up to `timeout` for a sync_file to signal (poll for POLLIN).
pub fn sync_file_wait(sync_file: BorrowedFd<'_>, timeout: Duration) -> Result<bool, FenceError> {
    crate::sys::poll_one(sync_file, rustix::event::PollFlags::IN, timeout).map_err(FenceError::Poll)
}

/// Whether `a` and `b` are the same open file (device and inode).
pub(super) fn same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    match (rustix::fs::fstat(a), rustix::fs::fstat(b)) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}
