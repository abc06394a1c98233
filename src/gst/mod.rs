//! The GStreamer adapter (feature `gstreamer`): dma-buf memory in both
//! directions and the caps-feature rules.
//!
//! - [`caps`]: caps <-> [`caps::StreamFormat`], GstVideoFormat <-> fourcc,
//!   the `memory:DMABuf` rule and the 1.22 / 1.24 (DMA_DRM) caps styles.
//! - [`memory`]: `DmaBuf` -> `gst::Buffer` of `GstDmaBufAllocator` memory with
//!   a `VideoMeta`, and back, refusing any buffer with a non-dma-buf memory.
//! - [`DmaBufPoolAllocator`]: a `GstDmaBufAllocator` that can allocate (over
//!   [`crate::alloc`]), so proposed pools make upstream write into dma-bufs.
//! - [`Importer`]: an appsink that proposes that pool and hands the
//!   application one `DmaBuf` per sample, with zero-copy/copy counters.
//!
//! ```no_run
//! use dmabuf_interop::alloc::{self, Allocator};
//! use dmabuf_interop::gst::{buffer_from_dmabuf, dmabuf_from_buffer};
//! use dmabuf_interop::{DrmFourcc, DrmModifier};
//! use gstreamer_video as gst_video;
//!
//! gstreamer::init()?;
//! let frame = alloc::best_available()?.allocate(DrmFourcc::Xrgb8888, 64, 48, 64)?;
//! // GstDmaBufAllocator memory with a VideoMeta, ready to push.
//! let buffer = buffer_from_dmabuf(&frame)?;
//! // And back, as a sink reads it (plain caps: LINEAR).
//! let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Bgrx, 64, 48).build()?;
//! let back = dmabuf_from_buffer(&buffer, &info, DrmModifier::Linear)?;
//! assert_eq!(back.id(), frame.id(), "the same storage, not a copy");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod allocator;
pub mod caps;
pub mod colorimetry;
pub mod importer;
pub mod memory;

pub use allocator::DmaBufPoolAllocator;
pub use caps::{CAPS_FEATURE_MEMORY_DMABUF, CapsError, StreamFormat, caps_for, parse_caps};
pub use importer::{CopyError, ImportError, ImportStats, ImportedFrame, Importer, QUEUE_DEPTH};
pub use memory::{
    DmaBufCache, MemoryError, buffer_from_dmabuf, dmabuf_from_buffer, dmabuf_maps_writable, is_dmabuf_buffer,
};
