//! [`Importer`]: hands an application one validated `DmaBuf` per sample.
//!
//! It wraps an `appsink` that the application puts at the end of its
//! pipeline. Its sink pad answers the ALLOCATION query with a video buffer
//! pool over [`DmaBufPoolAllocator`] **and** the allocator as an allocation
//! parameter (without the parameter basesrc silently falls back to system
//! memory), plus `VideoMeta`, so upstream elements write straight into
//! dma-bufs. Every buffer is checked for dma-buf memory whatever the caps
//! say: dma-buf buffers are taken as they are (zero-copy), system memory is
//! copied into a dma-buf and counted, and under `memory:DMABuf` caps nothing
//! is ever mapped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::allocator::DmaBufPoolAllocator;
use super::caps::{CapsError, parse_caps};
use super::memory::{DmaBufCache, MemoryError, is_dmabuf_buffer};
use crate::alloc::{AllocError, Allocator};
use crate::dmabuf::DmaBuf;
use crate::mapping::{MapAccess, MapError};

/// Samples the importer's appsink queues before upstream waits.
pub const QUEUE_DEPTH: u32 = 4;

/// Counters a player shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportStats {
    /// Samples handed out.
    pub frames: u64,
    /// Of those, taken as dma-bufs without copying.
    pub zero_copy: u64,
    /// Of those, copied from system memory into a dma-buf.
    pub copies: u64,
    /// Buffers upstream got from our pool's allocator.
    pub pool_allocations: u64,
}

/// One imported frame. Holds the GStreamer sample, so the producer (a
/// buffer pool) cannot reuse the memory while the frame is alive.
#[derive(Debug)]
pub struct ImportedFrame {
    /// The frame.
    pub dmabuf: DmaBuf,
    /// Presentation timestamp.
    pub pts: Option<gst::ClockTime>,
    /// Whether the frame arrived as dma-buf memory (no copy).
    pub zero_copy: bool,
    /// Whether its caps carried `memory:DMABuf` (then it was never mapped).
    pub dmabuf_caps: bool,
    sample: gst::Sample,
}

impl ImportedFrame {
    /// The GStreamer sample the frame came from.
    pub fn sample(&self) -> &gst::Sample {
        &self.sample
    }
}

/// Why a sample could not be imported.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImportError {
    /// The sample had no buffer or caps.
    #[error("sample without {0}")]
    Incomplete(&'static str),
    /// The caps do not describe a supported stream.
    #[error(transparent)]
    Caps(#[from] CapsError),
    /// The buffer's memory could not be taken as a `DmaBuf`.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// System memory arrived under `memory:DMABuf` caps: mapping it would
    /// break the rule that such buffers are never mapped.
    #[error("buffer of system memory under memory:DMABuf caps (memory {0} is not dma-buf)")]
    NotDmaBufUnderDmaBufCaps(String),
    /// Copying system memory into a dma-buf failed.
    #[error("copy into a dma-buf failed")]
    Copy(#[from] CopyError),
    /// The pipeline reported an error or the sink is flushing.
    #[error("appsink: {0}")]
    Sink(String),
}

/// Why the copy of a system-memory frame into a dma-buf failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CopyError {
    /// The dma-buf for the copy could not be allocated.
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// The dma-buf could not be mapped or written.
    #[error(transparent)]
    Map(#[from] MapError),
    /// GStreamer could not map the buffer for reading.
    #[error("mapping the buffer")]
    Frame(#[source] gst::glib::BoolError),
    /// The buffer's VideoMeta does not describe the negotiated frame.
    #[error("the VideoMeta ({meta}) does not match the caps ({caps})")]
    Meta {
        /// Format, size and planes of the meta.
        meta: String,
        /// Format, size and planes of the caps.
        caps: String,
    },
    /// A plane's stride is negative (bottom-up rows) or shorter than a row.
    #[error("plane {plane}: stride {stride} cannot hold a row of {row_bytes} bytes top-down")]
    Stride {
        /// Index of the plane.
        plane: usize,
        /// The frame's stride.
        stride: i32,
        /// Bytes of pixels in a row.
        row_bytes: usize,
    },
    /// A plane's last row ends past the buffer's memory.
    #[error(
        "plane {plane}: {rows} rows of stride {stride} from offset {offset} need {needed} bytes, the buffer has {got}"
    )]
    Short {
        /// Index of the plane.
        plane: usize,
        /// Rows the caps ask for.
        rows: usize,
        /// The frame's stride.
        stride: usize,
        /// Where the plane starts in the buffer.
        offset: usize,
        /// Bytes needed (end of the last row).
        needed: usize,
        /// Bytes present.
        got: usize,
    },
}

impl From<AllocError> for ImportError {
    fn from(e: AllocError) -> Self {
        ImportError::Copy(e.into())
    }
}

/// An appsink that hands out `DmaBuf`s. See the module docs.
pub struct Importer {
    appsink: gst_app::AppSink,
    allocator: DmaBufPoolAllocator,
    frames: AtomicU64,
    zero_copy: AtomicU64,
    copies: AtomicU64,
    copy_target: Mutex<Box<dyn Allocator>>,
    cache: DmaBufCache,
}

impl std::fmt::Debug for Importer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Importer {
    /// An importer whose pool and copies use [`crate::alloc::best_available`].
    pub fn new() -> Result<Arc<Self>, ImportError> {
        let allocator = DmaBufPoolAllocator::new()?;
        let copy_target = crate::alloc::best_available()?;
        Ok(Self::with_allocators(allocator, copy_target))
    }

    /// An importer with explicit allocators for the proposed pool and for
    /// copies of system memory.
    pub fn with_allocators(allocator: DmaBufPoolAllocator, copy_target: Box<dyn Allocator>) -> Arc<Self> {
        // A bounded queue: upstream waits (back pressure) instead of the
        // pool growing without limit when the application pulls slower.
        let appsink = gst_app::AppSink::builder()
            .name("dmabuf-importer")
            .max_buffers(QUEUE_DEPTH)
            .build();
        let this = Arc::new(Self {
            appsink,
            allocator,
            frames: AtomicU64::new(0),
            zero_copy: AtomicU64::new(0),
            copies: AtomicU64::new(0),
            copy_target: Mutex::new(copy_target),
            cache: DmaBufCache::new(),
        });
        if let Some(pad) = this.appsink.static_pad("sink") {
            let allocator = this.allocator.clone();
            pad.add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, move |_, info| {
                let Some(gst::PadProbeData::Query(query)) = info.data.as_mut() else {
                    return gst::PadProbeReturn::Ok;
                };
                let gst::QueryViewMut::Allocation(q) = query.view_mut() else {
                    return gst::PadProbeReturn::Ok;
                };
                if propose_allocation(q, &allocator) {
                    gst::PadProbeReturn::Handled
                } else {
                    gst::PadProbeReturn::Ok
                }
            });
        }
        this
    }

    /// The appsink to add to the pipeline (link upstream into it).
    pub fn appsink(&self) -> &gst_app::AppSink {
        &self.appsink
    }

    /// The allocator proposed to upstream.
    pub fn allocator(&self) -> &DmaBufPoolAllocator {
        &self.allocator
    }

    /// Counters so far.
    pub fn stats(&self) -> ImportStats {
        ImportStats {
            frames: self.frames.load(Ordering::Relaxed),
            zero_copy: self.zero_copy.load(Ordering::Relaxed),
            copies: self.copies.load(Ordering::Relaxed),
            pool_allocations: self.allocator.allocations(),
        }
    }

    /// The next frame, `Ok(None)` at end of stream or when `timeout` passes.
    pub fn pull(&self, timeout: gst::ClockTime) -> Result<Option<ImportedFrame>, ImportError> {
        match self.appsink.try_pull_sample(timeout) {
            Some(sample) => self.import(sample).map(Some),
            None => Ok(None),
        }
    }

    /// Imports one sample (as [`pull`](Self::pull) does).
    pub fn import(&self, sample: gst::Sample) -> Result<ImportedFrame, ImportError> {
        let caps = sample.caps().ok_or(ImportError::Incomplete("caps"))?;
        let stream = parse_caps(caps)?;
        let buffer = sample.buffer().ok_or(ImportError::Incomplete("buffer"))?;
        // Any caps style: plain, 1.22 memory:DMABuf, 1.24+ DMA_DRM.
        let info = super::caps::video_info(caps)?;
        // Checked on every buffer, whatever the caps say.
        let (dmabuf, zero_copy) = if is_dmabuf_buffer(buffer) {
            (self.cache.get(buffer, &info, stream.modifier)?, true)
        } else if stream.dmabuf_feature {
            let first = buffer
                .iter_memories()
                .position(|m| !m.is_memory_type::<gstreamer_allocators::DmaBufMemory>())
                .unwrap_or(0);
            return Err(ImportError::NotDmaBufUnderDmaBufCaps(first.to_string()));
        } else {
            (self.copy_into_dmabuf(buffer, &info)?, false)
        };
        self.frames.fetch_add(1, Ordering::Relaxed);
        if zero_copy {
            self.zero_copy.fetch_add(1, Ordering::Relaxed);
        } else {
            self.copies.fetch_add(1, Ordering::Relaxed);
        }
        Ok(ImportedFrame {
            pts: buffer.pts(),
            dmabuf,
            zero_copy,
            dmabuf_caps: stream.dmabuf_feature,
            sample,
        })
    }

    /// The counted copy path: system memory into a fresh dma-buf.
    fn copy_into_dmabuf(&self, buffer: &gst::BufferRef, info: &gst_video::VideoInfo) -> Result<DmaBuf, ImportError> {
        let fourcc = super::caps::fourcc_of(info.format())
            .ok_or_else(|| ImportError::Caps(CapsError::UnsupportedFormat(info.format().to_str().to_string())))?;
        let data = buffer
            .map_readable()
            .map_err(|e| CopyError::Frame(gst::glib::bool_error!("gst_buffer_map: {e}")))?;
        let planes = checked_planes(&data, buffer, info, fourcc)?;
        let target = self
            .copy_target
            .lock()
            // An allocator left by a panic mid-call is still an allocator.
            .unwrap_or_else(|e| e.into_inner())
            .allocate(fourcc, info.width(), info.height(), 64)?;
        let mut map = target.map(MapAccess::ReadWrite).map_err(CopyError::Map)?;
        for (i, (src, src_stride)) in planes.into_iter().enumerate() {
            map.write_rows(i, src, src_stride).map_err(CopyError::Map)?;
        }
        drop(map);
        Ok(target)
    }
}

/// Each plane of a system-memory frame as (bytes from its first row to the
/// end of its last row, stride), from `data` (the whole buffer, mapped).
///
/// The layout is checked rather than trusted: `gst_video_frame_map` would
/// only `g_return_if_fail` on a VideoMeta smaller than the caps, and
/// gstreamer-rs' `plane_data` slices stride x caps height, which a
/// malformed VideoMeta can put past the memory. Negative (bottom-up)
/// strides and strides shorter than a row are refused.
pub(crate) fn checked_planes<'a>(
    data: &'a [u8],
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    fourcc: crate::DrmFourcc,
) -> Result<Vec<(&'a [u8], usize)>, CopyError> {
    let (offsets, strides) = checked_layout(buffer, info)?;
    let format = crate::format::info(fourcc).map_err(|_| CopyError::Meta {
        meta: String::new(),
        caps: format!("{fourcc:?} is not in the format table"),
    })?;
    let mut planes = Vec::with_capacity(format.planes.len());
    for (i, plane) in format.planes.iter().enumerate() {
        let row_bytes = plane.min_row_bytes(info.width()).unwrap_or(0) as usize;
        let rows = plane.rows(info.height()) as usize;
        let stride = strides.get(i).copied().unwrap_or(0);
        let src_stride = usize::try_from(stride)
            .ok()
            .filter(|&s| s >= row_bytes)
            .ok_or(CopyError::Stride {
                plane: i,
                stride,
                row_bytes,
            })?;
        let offset = offsets.get(i).copied().unwrap_or(0);
        let short = |needed| CopyError::Short {
            plane: i,
            rows,
            stride: src_stride,
            offset,
            needed,
            got: data.len(),
        };
        let end = rows
            .saturating_sub(1)
            .checked_mul(src_stride)
            .and_then(|n| n.checked_add(row_bytes))
            .and_then(|n| n.checked_add(offset))
            .ok_or(short(usize::MAX))?;
        let bytes = data.get(offset..end).ok_or(short(end))?;
        planes.push((bytes, src_stride));
    }
    Ok(planes)
}

/// Plane offsets and strides of `buffer`: its VideoMeta's, checked against
/// the caps (format, size, plane count), or the caps' defaults.
fn checked_layout(buffer: &gst::BufferRef, info: &gst_video::VideoInfo) -> Result<(Vec<usize>, Vec<i32>), CopyError> {
    match buffer.meta::<gst_video::VideoMeta>() {
        Some(meta) => {
            let describe =
                |format: gst_video::VideoFormat, w: u32, h: u32, n: u32| format!("{format:?} {w}x{h}, {n} planes");
            if meta.format() != info.format()
                || meta.width() < info.width()
                || meta.height() < info.height()
                || meta.n_planes() != info.n_planes()
            {
                return Err(CopyError::Meta {
                    meta: describe(meta.format(), meta.width(), meta.height(), meta.n_planes()),
                    caps: describe(info.format(), info.width(), info.height(), info.n_planes()),
                });
            }
            Ok((meta.offset().to_vec(), meta.stride().to_vec()))
        }
        None => Ok((info.offset().to_vec(), info.stride().to_vec())),
    }
}

/// Answers an ALLOCATION query with our pool and allocator; false when the
/// caps are not a video format we handle (the query then goes on as usual).
pub(crate) fn propose_allocation(query: &mut gst::query::Allocation, allocator: &DmaBufPoolAllocator) -> bool {
    let (Some(caps), need_pool) = query.get() else {
        return false;
    };
    if caps
        .structure(0)
        .is_some_and(|s| s.get::<&str>("format").ok() == Some("DMA_DRM"))
    {
        // DMA_DRM buffers come from the producer's own allocator (a
        // decoder's, a Vulkan exporter's), as with waylandsink: no pool,
        // and their layout is read from the VideoMeta.
        query.add_allocation_meta::<gst_video::VideoMeta>(None);
        return true;
    }
    let Ok(info) = super::caps::video_info(caps) else {
        return false;
    };
    if super::caps::fourcc_of(info.format()).is_none() {
        return false;
    }
    let size = info.size() as u32;
    let params = gst::AllocationParams::new(gst::MemoryFlags::empty(), 63, 0, 0);
    if need_pool {
        let pool = gst_video::VideoBufferPool::new();
        let mut config = pool.config();
        config.set_params(Some(&caps.to_owned()), size, 2, 0);
        config.set_allocator(Some(allocator), Some(&params));
        config.add_option(gst_video::BUFFER_POOL_OPTION_VIDEO_META);
        if pool.set_config(config).is_err() {
            return false;
        }
        query.add_allocation_pool(Some(&pool), size, 2, 0);
    }
    // Without this parameter basesrc allocates system memory.
    query.add_allocation_param(Some(allocator), params);
    query.add_allocation_meta::<gst_video::VideoMeta>(None);
    true
}
