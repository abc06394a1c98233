//! Synchronisation of dma-bufs: implicit (the dma-buf's own fences),
//! sync_files and DRM syncobj timelines, and [`Fence`], the value every
//! explicit-sync path of the crate speaks in.
//!
//! ## Implicit sync
//!
//! A kernel dma-buf carries the fences of the devices that read or write it
//! (its reservation object). [`export_sync_file`] snapshots those fences as a
//! sync_file that Vulkan can import as a semaphore payload;
//! [`import_sync_file`] attaches a sync_file (for example one exported from a
//! Vulkan semaphore after rendering) to the dma-buf so that implicitly synced
//! consumers such as compositors wait for it.
//!
//! None of this exists for fds that are not kernel dma-bufs (a memfd standing
//! in for one) or on kernels older than 6.0: both are a clear
//! [`SyncError::Unsupported`] so the caller can fall back to waiting on a CPU
//! fence.
//!
//! ## Fences
//!
//! A [`Fence`] is one of three things, and every explicit-sync path of the
//! crate speaks in them:
//! - [`Fence::Implicit`]: no fence of its own; the dma-buf's reservation
//!   object (implicit sync) orders the accesses. [`Fence::from_dmabuf`]
//!   turns that into an explicit sync_file where the kernel can
//!   (`DMA_BUF_IOCTL_EXPORT_SYNC_FILE`, Linux 6.0, kernel dma-bufs only).
//! - [`Fence::SyncFile`]: a sync_file fd (what Vulkan's SYNC_FD semaphores,
//!   EGL native fences and `zwp_linux_explicit_synchronization_v1` use).
//! - [`Fence::Timeline`]: a point on a DRM syncobj timeline
//!   ([`Timeline`], what `wp_linux_drm_syncobj_v1` and Vulkan timeline
//!   semaphores imported from an OPAQUE_FD use).
//!
//! Conversions go through the kernel: a sync_file is imported into a
//! timeline point and exported from one by way of a binary syncobj
//! (`DRM_IOCTL_SYNCOBJ_TRANSFER`), through the `drm` crate's syncobj
//! ioctls (and `sys` for the one it cannot do). Timelines need a DRM node
//! whose driver has `DRM_CAP_SYNCOBJ_TIMELINE` ([`DrmDevice`]).

mod fence;
mod implicit;
mod sync_file;
mod syncobj;

pub use fence::{Fence, FenceError};
pub(crate) use implicit::{CpuSync, cpu_access_begin, cpu_access_end};
pub use implicit::{
    SyncAccess, SyncError, UnsupportedReason, export_sync_file, import_sync_file, is_kernel_dmabuf, wait_implicit,
};
pub(crate) use sync_file::dup;
pub use sync_file::{sync_file_merge, sync_file_merge_all, sync_file_wait};
pub use syncobj::{DrmDevice, Timeline, TimelinePoint};
