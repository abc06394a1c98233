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
