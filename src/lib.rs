//! Zero-copy dma-buf interop between Vulkan, GStreamer and Wayland.
//!
//! The crate is one hub, [`DmaBuf`], and adapters around it. This is the
//! ground floor:
//!
//! - [`format`](mod@format): the one table of pixel formats and linear layout computation;
//! - [`colour`]: what a frame's samples mean (YCbCr matrix, range,
//!   transfer, primaries, HDR metadata);
//! - [`convert`]: CPU conversion of every format into XRGB8888 (the last
//!   resort where a compositor takes a format by no other path);
//! - [`dmabuf`]: the validated [`DmaBuf`], its cache identity and its weak
//!   handle;
//! - [`mapping`]: safe CPU access to linear buffers, bracketed with
//!   `DMA_BUF_IOCTL_SYNC`;
//! - [`alloc`]: where fds come from (udmabuf, dma-heap, GBM, memfd: one file
//!   each) and [`alloc::best_available`];
//! - [`sync`]: implicit sync (sync_file export/import), sync_files, DRM
//!   syncobj timelines and [`sync::Fence`];
//! - [`reference`](mod@reference): the CPU references of what the GPU draws (the test
//!   pattern, the viewer's overlay);
//! - [`Report`]: an error with its chain of causes, for messages to a
//!   person (each error's own `Display` names its level only).
//!
//! Adapters, each over the ground floor only: [`vulkan`] (feature
//! `vulkan`), [`gst`] (feature `gstreamer`), [`wayland`] (feature
//! `wayland`); and on top, [`elements`]: the GStreamer elements
//! `vkdmabufsrc` and `wldmabufsink`, compositions of the adapters.
//!
//! ```
//! use dmabuf_interop::alloc::{self, Allocator};
//! use dmabuf_interop::mapping::MapAccess;
//! use dmabuf_interop::DrmFourcc;
//!
//! let allocator = alloc::best_available()?;
//! let buf = allocator.allocate(DrmFourcc::Nv12, 64, 48, 64)?;
//! assert_eq!(buf.planes().len(), 2);
//! let mut map = buf.map(MapAccess::ReadWrite)?;
//! map.fill_plane(0, 0x80)?;
//! assert_eq!(map.read_plane(0)?[0], 0x80);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

pub mod alloc;
pub mod colour;
pub mod convert;
pub mod dmabuf;
#[cfg(all(feature = "gstreamer", any(feature = "vulkan", feature = "wayland")))]
pub mod elements;
pub mod format;
#[cfg(feature = "gstreamer")]
pub mod gst;
pub mod mapping;
pub mod reference;
mod report;
pub mod sync;
mod sys;
#[cfg(feature = "vulkan")]
pub mod vulkan;
#[cfg(feature = "wayland")]
pub mod wayland;

pub use dmabuf::{BufferId, DmaBuf, DmaBufBuilder, DmaBufError, Plane, WeakDmaBuf};
pub use drm_fourcc::{DrmFourcc, DrmModifier};
pub use report::Report;
