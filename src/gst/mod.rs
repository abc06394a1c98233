//! The GStreamer adapter (feature `gstreamer`): dma-buf memory in both
//! directions and the caps-feature rules.
//!
//! - [`caps`]: caps <-> [`caps::StreamFormat`], GstVideoFormat <-> fourcc,
//!   the `memory:DMABuf` rule and the 1.22 / 1.24 (DMA_DRM) caps styles.
//! - [`memory`]: `DmaBuf` -> `gst::Buffer` of `GstDmaBufAllocator` memory with
//!   a `VideoMeta`, and back, refusing any buffer with a non-dma-buf memory.

pub mod caps;
pub mod memory;

pub use caps::{CAPS_FEATURE_MEMORY_DMABUF, CapsError, StreamFormat, caps_for, parse_caps};
pub use memory::{MemoryError, buffer_from_dmabuf, dmabuf_from_buffer, is_dmabuf_buffer};
