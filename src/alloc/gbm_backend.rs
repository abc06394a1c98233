//! GBM on a DRM node (feature `gbm`): LINEAR buffers in GPU-visible memory.

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use drm_fourcc::{DrmFourcc, DrmModifier};
use rustix::io::Errno;

use super::{AllocError, Allocator, AllocatorKind, open_device};
use crate::dmabuf::DmaBuf;
use crate::format::{self, Layout};

/// GBM on a DRM render or card node: buffers in GPU-visible memory,
/// LINEAR.
pub struct GbmAllocator {
    device: gbm::Device<std::fs::File>,
    node: PathBuf,
}

impl fmt::Debug for GbmAllocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GbmAllocator").field("node", &self.node).finish()
    }
}

impl GbmAllocator {
    /// Opens the first DRM node where GBM really allocates: render
    /// nodes (`/dev/dri/renderD128` upwards) first, then card nodes,
    /// each proved by a 16x16 XRGB8888 allocation. Some drivers give
    /// GBM no buffers on their render node (virtio-gpu, vgem: dumb
    /// buffers are refused there with EACCES) but do on the card node.
    pub fn open() -> Result<Self, AllocError> {
        let mut last = AllocError::Unavailable {
            kind: AllocatorKind::Gbm,
            path: PathBuf::from("/dev/dri/renderD128"),
            source: Errno::NOENT,
        };
        let render = (128..192).map(|minor| format!("/dev/dri/renderD{minor}"));
        let card = (0..64).map(|minor| format!("/dev/dri/card{minor}"));
        for node in render.chain(card).map(PathBuf::from) {
            if !node.exists() {
                continue;
            }
            let proved = Self::open_node(&node)
                .and_then(|allocator| allocator.allocate(DrmFourcc::Xrgb8888, 16, 16, 64).map(|_| allocator));
            match proved {
                Ok(allocator) => return Ok(allocator),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Opens GBM on the render node at `node`.
    pub fn open_node(node: &Path) -> Result<Self, AllocError> {
        let file = std::fs::File::from(open_device(AllocatorKind::Gbm, node)?);
        let device = gbm::Device::new(file).map_err(|e| AllocError::Unavailable {
            kind: AllocatorKind::Gbm,
            path: node.to_owned(),
            source: Errno::from_io_error(&e).unwrap_or(Errno::NODEV),
        })?;
        Ok(Self {
            device,
            node: node.to_owned(),
        })
    }

    /// The render node in use.
    pub fn node(&self) -> &Path {
        &self.node
    }
}

impl Allocator for GbmAllocator {
    fn kind(&self) -> AllocatorKind {
        AllocatorKind::Gbm
    }

    fn allocate(&self, fourcc: DrmFourcc, width: u32, height: u32, stride_align: u32) -> Result<DmaBuf, AllocError> {
        // Validates the request (format, size, alignment) before GBM sees it.
        format::linear_layout(fourcc, width, height, stride_align)?;
        let gbm_error = |op| {
            move |e: std::io::Error| AllocError::Syscall {
                kind: AllocatorKind::Gbm,
                op,
                source: Errno::from_io_error(&e).unwrap_or(Errno::INVAL),
            }
        };
        let bo = self
            .device
            .create_buffer_object::<()>(width, height, fourcc, gbm::BufferObjectFlags::LINEAR)
            .map_err(gbm_error("gbm_bo_create"))?;
        // GBM_BO_USE_LINEAR asks for a linear layout; backends without
        // modifier support (virtio-gpu's card node, seen in the VM stage)
        // still report DRM_FORMAT_MOD_INVALID for such a bo.
        let modifier = match bo.modifier() {
            DrmModifier::Invalid => DrmModifier::Linear,
            other => other,
        };
        let mut builder = DmaBuf::builder(fourcc, modifier, width, height);
        for plane in 0..bo.plane_count() as i32 {
            let stride = bo.stride_for_plane(plane);
            if stride % stride_align != 0 {
                return Err(AllocError::StrideAlignment {
                    kind: AllocatorKind::Gbm,
                    plane: plane as usize,
                    stride,
                    align: stride_align,
                });
            }
            // gbm_bo_get_fd_for_plane returns a new dma-buf fd we own; the
            // dma-buf outlives the bo, which is destroyed at return.
            let fd = bo.fd_for_plane(plane).map_err(|_| AllocError::Syscall {
                kind: AllocatorKind::Gbm,
                op: "gbm_bo_get_fd_for_plane",
                source: Errno::BADF,
            })?;
            builder = builder.plane(fd, bo.offset(plane), stride);
        }
        Ok(builder.build()?)
    }

    fn allocate_layout(&self, _: DrmFourcc, _: u32, _: u32, _: &Layout) -> Result<DmaBuf, AllocError> {
        Err(AllocError::ExactLayoutUnsupported {
            kind: AllocatorKind::Gbm,
        })
    }

    fn allocate_bytes(&self, _: u64) -> Result<OwnedFd, AllocError> {
        Err(AllocError::ExactLayoutUnsupported {
            kind: AllocatorKind::Gbm,
        })
    }
}
