//! Errors of the `alloc` module.

use std::path::PathBuf;

use rustix::io::Errno;

use super::AllocatorKind;
use crate::dmabuf::DmaBufError;
use crate::format::FormatError;

/// Errors of the `alloc` module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The back end's device cannot be opened on this machine.
    #[error("{kind} allocator unavailable: cannot open {}", path.display())]
    Unavailable {
        /// The back end.
        kind: AllocatorKind,
        /// The device node tried.
        path: PathBuf,
        /// Why it could not be opened.
        source: Errno,
    },
    /// The back end was left out at compile time.
    #[error("{kind} allocator not compiled in: enable cargo feature `{feature}`")]
    NotCompiledIn {
        /// The back end.
        kind: AllocatorKind,
        /// The cargo feature that brings it.
        feature: &'static str,
    },
    /// [`ALLOCATOR_ENV`](super::ALLOCATOR_ENV) or [`AllocatorKind::from_name`] got a name that is no
    /// back end.
    #[error("unknown allocator {name:?}: expected one of udmabuf, dma-heap, gbm, memfd")]
    UnknownKind {
        /// The name given.
        name: String,
    },
    /// The request itself is invalid (format, size, alignment).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A system call failed.
    #[error("{kind} allocator: {op} failed")]
    Syscall {
        /// The back end.
        kind: AllocatorKind,
        /// The call.
        op: &'static str,
        /// The error.
        source: Errno,
    },
    /// The buffer is larger than the back end can allocate.
    #[error("{kind} allocator: {size} bytes is too large")]
    TooLarge {
        /// The back end.
        kind: AllocatorKind,
        /// Bytes asked for.
        size: u64,
    },
    /// The back end chose a stride that breaks the caller's alignment.
    #[error("{kind} allocator: plane {plane} got stride {stride}, not a multiple of the required {align}")]
    StrideAlignment {
        /// The back end.
        kind: AllocatorKind,
        /// Index of the plane.
        plane: usize,
        /// Stride chosen.
        stride: u32,
        /// Alignment required.
        align: u32,
    },
    /// The back end picks its own layout and cannot follow a given one.
    #[error("{kind} allocator chooses its own layout and cannot allocate an exact one")]
    ExactLayoutUnsupported {
        /// The back end.
        kind: AllocatorKind,
    },
    /// The fd the back end returned is not what it should be (a kernel
    /// dma-buf for every kind but memfd).
    #[error("{kind} allocator returned an fd that is not a kernel dma-buf")]
    NotADmaBuf {
        /// The back end.
        kind: AllocatorKind,
    },
    /// The allocated fd did not validate as the requested buffer.
    #[error("allocated buffer is invalid")]
    Buffer(#[from] DmaBufError),
}
