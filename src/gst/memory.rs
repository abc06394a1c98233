//! `DmaBuf` <-> `gst::Buffer` of `GstDmaBufAllocator` memory.

use crate::colour::Colorimetry;
use std::collections::VecDeque;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use drm_fourcc::DrmModifier;
use gstreamer as gst;
use gstreamer_allocators as gst_allocators;
use gstreamer_video as gst_video;

use gst_allocators::prelude::*;

use super::caps::video_format;
use crate::dmabuf::{DmaBuf, DmaBufError};

/// Why a buffer and a `DmaBuf` could not be converted.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// A buffer with a non-LINEAR modifier (DMA_DRM caps) came without a
    /// `VideoMeta`: caps give no offsets or strides for tiled layouts.
    #[error("a {0} buffer needs a VideoMeta: DMA_DRM caps carry no plane layout for it")]
    NeedsVideoMeta(crate::dmabuf::ModifierName),
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
    #[error("{op} failed")]
    Gstreamer {
        /// What was attempted.
        op: &'static str,
        /// What GStreamer said.
        source: gst::glib::BoolError,
    },
    /// A system call on a memory's or plane's fd failed.
    #[error("{op} of the fd of memory/plane {index} failed")]
    Fd {
        /// The call (`dup`, `fstat`).
        op: &'static str,
        /// Index of the memory (buffer -> DmaBuf) or plane (DmaBuf -> buffer).
        index: usize,
        /// What the kernel said.
        source: rustix::io::Errno,
    },
    /// A plane's file is larger than this platform's memory sizes.
    #[error("plane {plane}: a file of {size} bytes does not fit a GstMemory")]
    FileTooLarge {
        /// Index of the plane.
        plane: usize,
        /// Size of its file.
        size: u64,
    },
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
    let size = usize::try_from(plane.fd_size()).map_err(|_| MemoryError::FileTooLarge {
        plane: index,
        size: plane.fd_size(),
    })?;
    let dup = dup_fd(plane.fd(), index)?;
    // SAFETY: `dup` is a valid fd we own; the memory takes it over and closes
    // it when freed.
    unsafe { allocator.alloc_dmabuf(dup, size) }.map_err(|source| MemoryError::Gstreamer {
        op: "gst_dmabuf_allocator_alloc",
        source,
    })
}

fn dup_fd(fd: BorrowedFd<'_>, index: usize) -> Result<OwnedFd, MemoryError> {
    rustix::io::fcntl_dupfd_cloexec(fd, 0).map_err(|source| MemoryError::Fd {
        op: "dup",
        index,
        source,
    })
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
        // A buffer made on the line above has one reference.
        let buffer = buffer.make_mut();
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
        .map_err(|source| MemoryError::Gstreamer {
            op: "gst_buffer_add_video_meta_full",
            source,
        })?;
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
/// `VideoMeta`, or `info`'s defaults when it has none (LINEAR only: other
/// modifiers need the meta, [`MemoryError::NeedsVideoMeta`]). The `DmaBuf`
/// holds dups of the fds, so it outlives the buffer safely; `modifier` is
/// what the caps said (LINEAR for plain and 1.22-style caps; DMA_DRM caps
/// name it). `info` comes from [`super::caps::video_info`] for caps of any
/// style.
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
        let fd = dup_fd(memory_fd(memory, index, count)?, index)?;
        memories.push((Arc::new(fd), memory.offset(), memory.size(), total));
        total += memory.size();
    }
    if modifier != DrmModifier::Linear && buffer.meta::<gst_video::VideoMeta>().is_none() {
        return Err(MemoryError::NeedsVideoMeta(crate::dmabuf::ModifierName(modifier)));
    }
    let (offsets, strides) = plane_layout(buffer, info);
    let mut builder =
        DmaBuf::builder(fourcc, modifier, info.width(), info.height()).colorimetry(super::caps::colorimetry_of(info));
    // Every plane the meta describes, auxiliary ones (a compression
    // modifier's metadata planes, beyond the format's count) included;
    // the builder checks the count against the modifier.
    for (plane, (&offset, &stride)) in offsets.iter().zip(&strides).enumerate() {
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
    colorimetry: Colorimetry,
}

impl CacheKey {
    /// Same format, size, modifier and colorimetry: frames of one
    /// negotiated stream.
    fn same_stream(&self, other: &CacheKey) -> bool {
        (self.format, self.width, self.height, self.modifier, self.colorimetry)
            == (
                other.format,
                other.width,
                other.height,
                other.modifier,
                other.colorimetry,
            )
    }
}

fn cache_key(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    modifier: DrmModifier,
    colorimetry: Colorimetry,
) -> Result<CacheKey, MemoryError> {
    let mut files = Vec::with_capacity(buffer.n_memory());
    for (index, memory) in buffer.iter_memories().enumerate() {
        // Only the file's identity: one fstat per memory on this per-frame path.
        let stat =
            rustix::fs::fstat(memory_fd(memory, index, buffer.n_memory())?).map_err(|source| MemoryError::Fd {
                op: "fstat",
                index,
                source,
            })?;
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
        colorimetry,
    })
}

/// [`dmabuf_from_buffer`] that gives the **same** `DmaBuf` (same
/// [`BufferId`](crate::BufferId)) each time the same storage comes back,
/// as pool buffers do. Consumers that cache per source identity (the
/// Wayland `wl_buffer` cache, the Vulkan `ImportCache`) then hit instead of
/// importing every frame anew.
///
/// An entry is reused only when every memory's file (st_dev, st_ino),
/// offset and size, the plane layout, the format, the size and the modifier
/// are all equal. The cached `DmaBuf` holds dups of the fds, so the files
/// stay alive while it is cached and their inode numbers cannot be reused
/// by other files: equal keys really are the same storage.
///
/// The cache belongs to its consumer (an [`Importer`](super::Importer), a
/// sink): it writes nothing on GStreamer's buffers or memories, which other
/// elements (tee branches) share. All methods take `&self` and may be called
/// from several threads. It holds at most [`capacity`](Self::capacity)
/// entries, least recently used first out; a lookup with another format,
/// size or modifier (a renegotiation) drops the entries of the old stream,
/// and [`clear`](Self::clear) drops them all (a sink does on stop).
#[derive(Debug)]
pub struct DmaBufCache {
    /// Most recently used first.
    entries: Mutex<VecDeque<(CacheKey, DmaBuf)>>,
    capacity: usize,
}

impl Default for DmaBufCache {
    fn default() -> Self {
        Self::new()
    }
}

impl DmaBufCache {
    /// Entries kept by [`new`](Self::new): more than the buffers of any
    /// decoder or source pool we know (V4L2 and VA decoders hold up to ~24).
    pub const DEFAULT_CAPACITY: usize = 32;

    /// A cache of [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) entries.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A cache of at most `capacity` entries (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    /// Most entries kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries cached now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Drops every entry (and with them the fd dups they hold).
    pub fn clear(&self) {
        let old = std::mem::take(&mut *self.lock());
        // The DmaBufs (and their fds) are dropped outside the lock.
        drop(old);
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<(CacheKey, DmaBuf)>> {
        // Entries are only pushed/removed whole: a panic elsewhere while
        // holding the lock cannot leave one half-made.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `DmaBuf` of `buffer`: the cached one when the same storage in
    /// the same layout was seen before, else a new one (then cached). Errors
    /// as [`dmabuf_from_buffer`].
    pub fn get(
        &self,
        buffer: &gst::BufferRef,
        info: &gst_video::VideoInfo,
        modifier: DrmModifier,
    ) -> Result<DmaBuf, MemoryError> {
        self.get_as(buffer, info, modifier, super::caps::colorimetry_of(info))
    }

    /// [`get`](Self::get) with the stream's colorimetry as the consumer
    /// read it from the caps ([`colorimetry_from_caps`](super::colorimetry::colorimetry_from_caps):
    /// chroma site and HDR metadata included), which `VideoInfo` lacks.
    pub fn get_as(
        &self,
        buffer: &gst::BufferRef,
        info: &gst_video::VideoInfo,
        modifier: DrmModifier,
        colorimetry: Colorimetry,
    ) -> Result<DmaBuf, MemoryError> {
        if buffer.n_memory() == 0 {
            return Err(MemoryError::Empty);
        }
        let key = cache_key(buffer, info, modifier, colorimetry)?;
        if let Some(hit) = Self::hit(&mut self.lock(), &key) {
            return Ok(hit);
        }
        // Built outside the lock (dups); another thread may have cached the
        // same storage meanwhile: then its DmaBuf wins, so that one storage
        // keeps one identity.
        let mut dmabuf = dmabuf_from_buffer(buffer, info, modifier)?;
        if dmabuf.colorimetry() != colorimetry {
            dmabuf = dmabuf.with_colorimetry(colorimetry);
        }
        let mut entries = self.lock();
        if let Some(hit) = Self::hit(&mut entries, &key) {
            return Ok(hit);
        }
        // A new stream (format, size or modifier): the old one's entries go.
        let (kept, mut dropped): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut *entries)
            .into_iter()
            .partition(|(k, _)| k.same_stream(&key));
        *entries = kept;
        entries.push_front((key, dmabuf.clone()));
        while entries.len() > self.capacity {
            dropped.extend(entries.pop_back());
        }
        drop(entries);
        // The evicted DmaBufs (and their fds) are dropped outside the lock.
        drop(dropped);
        Ok(dmabuf)
    }

    /// The entry of `key`, moved to the front.
    fn hit(entries: &mut VecDeque<(CacheKey, DmaBuf)>, key: &CacheKey) -> Option<DmaBuf> {
        let pos = entries.iter().position(|(k, _)| k == key)?;
        let entry = entries.remove(pos)?;
        let hit = entry.1.clone();
        entries.push_front(entry);
        Some(hit)
    }
}
