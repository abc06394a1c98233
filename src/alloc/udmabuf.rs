//! `/dev/udmabuf`: memfd pages exported as kernel dma-bufs.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use drm_fourcc::DrmFourcc;

use super::{
    AllocError, Allocator, AllocatorKind, FdSource, allocate_from_fd_source, bytes_from_fd_source, open_device,
    sealed_memfd, syscall,
};
use crate::dmabuf::DmaBuf;
use crate::format::Layout;
use crate::sys;

/// `/dev/udmabuf`: memfd pages exported as a kernel dma-buf.
#[derive(Debug)]
pub struct UdmabufAllocator {
    device: OwnedFd,
}

impl UdmabufAllocator {
    /// Default device node.
    pub const DEVICE: &'static str = "/dev/udmabuf";

    /// Opens [`DEVICE`](Self::DEVICE).
    pub fn open() -> Result<Self, AllocError> {
        Ok(Self {
            device: open_device(AllocatorKind::Udmabuf, Path::new(Self::DEVICE))?,
        })
    }
}

impl FdSource for UdmabufAllocator {
    fn kind(&self) -> AllocatorKind {
        AllocatorKind::Udmabuf
    }

    fn allocate_fd(&self, size: u64) -> Result<OwnedFd, AllocError> {
        // The memfd is only needed until the dma-buf holds its pages.
        let memfd = sealed_memfd(AllocatorKind::Udmabuf, size)?;
        sys::udmabuf_create(self.device.as_fd(), memfd.as_fd(), size)
            .map_err(syscall(AllocatorKind::Udmabuf, "UDMABUF_CREATE"))
    }
}
fd_source_allocator!(UdmabufAllocator);
