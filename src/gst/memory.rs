//! `DmaBuf` <-> `gst::Buffer` of `GstDmaBufAllocator` memory.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;

use drm_fourcc::DrmModifier;
use gstreamer as gst;
use gstreamer_allocators as gst_allocators;
use gstreamer_video as gst_video;

use gst_allocators::prelude::*;
use gstreamer::glib::translate::IntoGlib;

use super::caps::video_format;
use crate::dmabuf::{DmaBuf, DmaBufError};

/// Why a buffer and a `DmaBuf` could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// A memory of the buffer is not dma-buf memory.
    #[error("memory {index} of {count} is not dma-buf memory (allocator {allocator:?}); it needs the copy path")]
    NotDmaBuf {
        /// Index of the memory.
        index: usize,
        /// Memories in the buffer.
        count: usize,
        /// Name of the memory's allocator (type).
        allocator: String,
    },
    /// The buffer has no memory.
    #[error("the buffer has no memory")]
    Empty,
    /// The format has no GstVideoFormat.
    #[error("format {0} has no GstVideoFormat")]
    UnsupportedFormat(String),
    /// A plane of the VideoMeta/VideoInfo lies outside the buffer's memories.
    #[error("plane {plane}: offset {offset} lies outside the buffer's {total} bytes of memory")]
    PlaneOutsideMemory {
        /// Index of the plane.
        plane: usize,
        /// Offset in the buffer.
        offset: usize,
        /// Total bytes of memory.
        total: usize,
    },
    /// A plane stride that no dma-buf can have (negative or over u32).
    #[error("plane {plane}: stride {stride} is not a valid dma-buf stride")]
    BadStride {
        /// Index of the plane.
        plane: usize,
        /// The stride.
        stride: i64,
    },
    /// A GStreamer call failed.
    #[error("{0}")]
    Gstreamer(String),
    /// The resulting `DmaBuf` did not validate.
    #[error(transparent)]
    DmaBuf(#[from] DmaBufError),
}

/// Whether every memory of `buffer` is dma-buf memory (GStreamer's
/// `gst_is_dmabuf_memory` on each).
pub fn is_dmabuf_buffer(buffer: &gst::BufferRef) -> bool {
    buffer.n_memory() > 0
        && buffer
            .iter_memories()
            .all(|m| m.is_memory_type::<gst_allocators::DmaBufMemory>())
}

/// A fresh `GstDmaBufAllocator` memory over the whole file of plane `index`,
/// owning a dup of its fd (GStreamer closes it when the memory is freed).
fn file_memory(
    allocator: &gst_allocators::DmaBufAllocator,
    dmabuf: &DmaBuf,
    index: usize,
) -> Result<gst::Memory, MemoryError> {
    let plane = &dmabuf.planes()[index];
    let size = usize::try_from(plane.fd_size()).map_err(|_| MemoryError::Gstreamer("fd too large".into()))?;
    let dup = plane
        .fd()
        .try_clone_to_owned()
        .map_err(|e| MemoryError::Gstreamer(format!("dup of plane {index}'s fd: {e}")))?;
    // SAFETY: `dup` is a valid fd we own; the memory takes it over and closes
    // it when freed.
    unsafe { allocator.alloc_dmabuf(dup, size) }.map_err(|e| MemoryError::Gstreamer(e.to_string()))
}

/// Wraps `dmabuf` as a `gst::Buffer`: one `GstDmaBufAllocator` memory per
/// distinct file (planes sharing a file share a memory) and a `VideoMeta`
/// with the exact offsets and strides.
///
/// Ownership: each memory owns a dup of its fd (closed by GStreamer when the
/// memory is freed); the `DmaBuf` keeps its own fds.
pub fn buffer_from_dmabuf(dmabuf: &DmaBuf) -> Result<gst::Buffer, MemoryError> {
    let format =
        video_format(dmabuf.fourcc()).ok_or_else(|| MemoryError::UnsupportedFormat(dmabuf.fourcc().to_string()))?;
    let allocator = gst_allocators::DmaBufAllocator::new();
    let planes = dmabuf.planes();
    let mut buffer = gst::Buffer::new();
    let mut offsets = Vec::with_capacity(planes.len());
    let mut strides = Vec::with_capacity(planes.len());
    {
        let buffer = buffer
            .get_mut()
            .ok_or(MemoryError::Gstreamer("new buffer not writable".into()))?;
        // Start in the buffer of the memory of each plane's file.
        let mut starts = [0usize; crate::format::MAX_PLANES];
        let mut total = 0usize;
        for (i, plane) in planes.iter().enumerate() {
            let first = dmabuf.first_plane_in_file(i);
            let start = if first == i {
                let memory = file_memory(&allocator, dmabuf, i)?;
                let start = total;
                total += memory.size();
                buffer.append_memory(memory);
                start
            } else {
                starts[first]
            };
            starts[i] = start;
            offsets.push(start + plane.offset() as usize);
            strides.push(i32::try_from(plane.stride()).map_err(|_| MemoryError::BadStride {
                plane: i,
                stride: i64::from(plane.stride()),
            })?);
        }
        gst_video::VideoMeta::add_full(
            buffer,
            gst_video::VideoFrameFlags::empty(),
            format,
            dmabuf.width(),
            dmabuf.height(),
            &offsets,
            &strides,
        )
        .map_err(|e| MemoryError::Gstreamer(e.to_string()))?;
    }
    Ok(buffer)
}

/// The exporter's half of the caps-feature rule: whether GStreamer can map
/// `dmabuf` for READWRITE. Each distinct file is wrapped in a fresh
/// dma-buf memory and mapped with `gst_memory_map` directly, because
/// `gst_buffer_map` silently falls back to a system-memory copy when the fd
/// refuses a writable mapping (which would make every buffer look mappable).
pub fn dmabuf_maps_writable(dmabuf: &DmaBuf) -> Result<bool, MemoryError> {
    let allocator = gst_allocators::DmaBufAllocator::new();
    for i in dmabuf.distinct_files() {
        let memory = file_memory(&allocator, dmabuf, i)?;
        if memory.into_mapped_memory_writable().is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The fd of `memory` (memory `index` of `count` in its buffer), borrowed
/// from the memory, or [`MemoryError::NotDmaBuf`] naming it.
fn memory_fd(memory: &gst::MemoryRef, index: usize, count: usize) -> Result<BorrowedFd<'_>, MemoryError> {
    let Some(dmabuf) = memory.downcast_memory_ref::<gst_allocators::DmaBufMemory>() else {
        return Err(MemoryError::NotDmaBuf {
            index,
            count,
            allocator: memory
                .allocator()
                .map(|a| a.type_().name().to_string())
                .unwrap_or_else(|| "none".into()),
        });
    };
    // SAFETY: the memory owns this fd and outlives the borrow (tied to
    // `memory`'s lifetime).
    Ok(unsafe { BorrowedFd::borrow_raw(dmabuf.fd()) })
}

/// Plane offsets (in the buffer) and strides: the `VideoMeta`'s, or the
/// `VideoInfo` defaults when the buffer has none.
fn plane_layout(buffer: &gst::BufferRef, info: &gst_video::VideoInfo) -> (Vec<usize>, Vec<i32>) {
    match buffer.meta::<gst_video::VideoMeta>() {
        Some(meta) => (meta.offset().to_vec(), meta.stride().to_vec()),
        None => (info.offset().to_vec(), info.stride().to_vec()),
    }
}

/// Reads a buffer of dma-buf memory as a `DmaBuf`.
///
/// Every memory must be dma-buf memory ([`MemoryError::NotDmaBuf`] names the
/// first that is not). Offsets and strides come from the buffer's
/// `VideoMeta`, or `info`'s defaults when it has none. The `DmaBuf` holds
/// dups of the fds, so it outlives the buffer safely; `modifier` is what the
/// caps said (LINEAR for 1.22-style caps).
pub fn dmabuf_from_buffer(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    modifier: DrmModifier,
) -> Result<DmaBuf, MemoryError> {
    let count = buffer.n_memory();
    if count == 0 {
        return Err(MemoryError::Empty);
    }
    let fourcc = super::caps::fourcc_of(info.format())
        .ok_or_else(|| MemoryError::UnsupportedFormat(info.format().to_str().to_string()))?;
    // (dup of the fd, offset of the memory in its fd, size, start in the
    // buffer). One dup per memory, shared by the planes inside it.
    let mut memories: Vec<(Arc<OwnedFd>, usize, usize, usize)> = Vec::with_capacity(count);
    let mut total = 0usize;
    for (index, memory) in buffer.iter_memories().enumerate() {
        let fd = memory_fd(memory, index, count)?
            .try_clone_to_owned()
            .map_err(|e| MemoryError::Gstreamer(format!("dup of memory {index}'s fd: {e}")))?;
        memories.push((Arc::new(fd), memory.offset(), memory.size(), total));
        total += memory.size();
    }
    let (offsets, strides) = plane_layout(buffer, info);
    let mut builder = DmaBuf::builder(fourcc, modifier, info.width(), info.height());
    for (plane, (&offset, &stride)) in offsets.iter().zip(&strides).enumerate().take(info.n_planes() as usize) {
        let (fd, mem_offset, _, start) = memories
            .iter()
            .find(|(_, _, size, start)| offset >= *start && offset < start + size)
            .ok_or(MemoryError::PlaneOutsideMemory { plane, offset, total })?;
        let in_fd = u32::try_from(mem_offset + (offset - start)).map_err(|_| MemoryError::PlaneOutsideMemory {
            plane,
            offset,
            total,
        })?;
        let stride = u32::try_from(stride).map_err(|_| MemoryError::BadStride {
            plane,
            stride: i64::from(stride),
        })?;
        builder = builder.plane(Arc::clone(fd), in_fd, stride);
    }
    Ok(builder.build()?)
}

/// What a cached `DmaBuf` was made from; equal keys mean the same frame
/// storage in the same layout.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CacheKey {
    /// (st_dev, st_ino, offset, size) of every memory.
    files: Vec<(u64, u64, usize, usize)>,
    offsets: Vec<usize>,
    strides: Vec<i32>,
    format: gst_video::VideoFormat,
    width: u32,
    height: u32,
    modifier: u64,
}

struct CacheEntry {
    key: CacheKey,
    dmabuf: DmaBuf,
}

static CACHE_QUARK: std::sync::LazyLock<gst::glib::Quark> =
    std::sync::LazyLock::new(|| gst::glib::Quark::from_str("dmabuf-interop-dmabuf"));

unsafe extern "C" fn free_cache_entry(data: gst::glib::ffi::gpointer) {
    // SAFETY: `data` is the `Box<CacheEntry>` leaked by
    // `dmabuf_from_buffer_cached`; GStreamer calls this once, when the
    // memory is freed or the entry replaced.
    drop(unsafe { Box::from_raw(data.cast::<CacheEntry>()) });
}

fn cache_key(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    modifier: DrmModifier,
) -> Result<CacheKey, MemoryError> {
    let mut files = Vec::with_capacity(buffer.n_memory());
    for (index, memory) in buffer.iter_memories().enumerate() {
        // Only the file's identity: one fstat per memory on this per-frame path.
        let stat = rustix::fs::fstat(memory_fd(memory, index, buffer.n_memory())?)
            .map_err(|e| MemoryError::Gstreamer(format!("fstat of memory {index}'s fd: {e}")))?;
        #[allow(clippy::useless_conversion)]
        files.push((
            u64::from(stat.st_dev),
            u64::from(stat.st_ino),
            memory.offset(),
            memory.size(),
        ));
    }
    let (offsets, strides) = plane_layout(buffer, info);
    Ok(CacheKey {
        files,
        offsets,
        strides,
        format: info.format(),
        width: info.width(),
        height: info.height(),
        modifier: modifier.into(),
    })
}

/// [`dmabuf_from_buffer`] that gives the **same** `DmaBuf` (same
/// [`BufferId`](crate::BufferId)) each time the same storage comes back,
/// as pool buffers do. Consumers that cache per source identity (the
/// Wayland `wl_buffer` cache, the Vulkan `ImportCache`) then hit instead of
/// importing every frame anew.
///
/// The `DmaBuf` is kept on the buffer's first memory and dropped when that
/// memory is freed (so caches keyed by it purge their entries). It is
/// reused only when every memory's file (st_dev, st_ino), offset and size,
/// the plane layout, the format, the size and the modifier are all equal.
pub fn dmabuf_from_buffer_cached(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    modifier: DrmModifier,
) -> Result<DmaBuf, MemoryError> {
    let key = cache_key(buffer, info, modifier)?;
    let memory = buffer.peek_memory(0);
    let object = memory.as_ptr() as *mut gst::ffi::GstMiniObject;
    // SAFETY: `object` is a live memory (borrowed through `buffer`); the
    // qdata under our quark is only ever a `CacheEntry` we set below.
    let cached = unsafe { gst::ffi::gst_mini_object_get_qdata(object, CACHE_QUARK.into_glib()) };
    if !cached.is_null() {
        // SAFETY: see above; the entry lives while the memory does, and we
        // only read it here.
        let entry = unsafe { &*cached.cast::<CacheEntry>() };
        if entry.key == key {
            return Ok(entry.dmabuf.clone());
        }
    }
    let dmabuf = dmabuf_from_buffer(buffer, info, modifier)?;
    let entry = Box::new(CacheEntry {
        key,
        dmabuf: dmabuf.clone(),
    });
    // SAFETY: ownership of the box passes to the memory's qdata; GStreamer
    // frees the previous entry (if any) with the same destroy function.
    unsafe {
        gst::ffi::gst_mini_object_set_qdata(
            object,
            CACHE_QUARK.into_glib(),
            Box::into_raw(entry).cast(),
            Some(free_cache_entry),
        );
    }
    Ok(dmabuf)
}
