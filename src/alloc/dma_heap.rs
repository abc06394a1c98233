//! dma-heaps (`/dev/dma_heap/<name>`): kernel dma-bufs in CPU memory.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use drm_fourcc::DrmFourcc;

use super::{
    AllocError, Allocator, AllocatorKind, FdSource, allocate_from_fd_source, bytes_from_fd_source, open_device, syscall,
};
use crate::dmabuf::DmaBuf;
use crate::format::Layout;
use crate::sys;

/// A dma-heap (`/dev/dma_heap/<name>`), `system` by default.
#[derive(Debug)]
pub struct DmaHeapAllocator {
    heap: OwnedFd,
    path: PathBuf,
}

impl DmaHeapAllocator {
    /// Opens `/dev/dma_heap/system`.
    pub fn open() -> Result<Self, AllocError> {
        Self::open_heap("system")
    }

    /// Opens `/dev/dma_heap/<name>`.
    pub fn open_heap(name: &str) -> Result<Self, AllocError> {
        let path = Path::new("/dev/dma_heap").join(name);
        Ok(Self {
            heap: open_device(AllocatorKind::DmaHeap, &path)?,
            path,
        })
    }

    /// The heap's device node.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl FdSource for DmaHeapAllocator {
    fn kind(&self) -> AllocatorKind {
        AllocatorKind::DmaHeap
    }

    fn allocate_fd(&self, size: u64) -> Result<OwnedFd, AllocError> {
        sys::dma_heap_alloc(self.heap.as_fd(), size).map_err(syscall(AllocatorKind::DmaHeap, "DMA_HEAP_IOCTL_ALLOC"))
    }
}
fd_source_allocator!(DmaHeapAllocator);
