//! Plain memfds: the back end every machine has.

use std::os::fd::OwnedFd;

use drm_fourcc::DrmFourcc;

use super::{
    AllocError, Allocator, AllocatorKind, FdSource, allocate_from_fd_source, bytes_from_fd_source, sealed_memfd,
};
use crate::dmabuf::DmaBuf;
use crate::format::Layout;

/// Plain memfds: works everywhere, not a kernel dma-buf.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemfdAllocator;

impl MemfdAllocator {
    /// The memfd allocator (it holds no resources).
    pub fn new() -> Self {
        MemfdAllocator
    }
}

impl FdSource for MemfdAllocator {
    fn kind(&self) -> AllocatorKind {
        AllocatorKind::Memfd
    }

    fn allocate_fd(&self, size: u64) -> Result<OwnedFd, AllocError> {
        sealed_memfd(AllocatorKind::Memfd, size)
    }
}
fd_source_allocator!(MemfdAllocator);
