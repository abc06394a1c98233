//! The `wl_shm` fallback: frames the compositor cannot import (no
//! linux-dmabuf, a format or modifier it does not take, a buffer it
//! refused) or that arrive in ordinary memory are copied into a small ring
//! of `wl_shm` buffers, reused only after their release. Counted in
//! `PresentStats::copies`.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use drm_fourcc::{DrmFourcc, DrmModifier};
use wayland_client::protocol::{
    wl_buffer::WlBuffer,
    wl_shm::{self, WlShm},
    wl_shm_pool::WlShmPool,
};
use wayland_client::{Connection, Dispatch, Proxy, QueueHandle, WEnum, delegate_noop};

use super::error::{ShmError, WaylandError};
use super::formats::{fourcc_to_shm, shm_to_fourcc};
use super::presenter::Presenter;
use super::queue::State;
use crate::dmabuf::{DmaBuf, ModifierName};
use crate::format::FormatInfo;
use crate::mapping::MapAccess;

/// Most `wl_shm` buffers the fallback keeps (each a frame in flight).
const MAX_SHM_BUFFERS: usize = 4;

/// One `wl_shm` buffer with its own pool and memory.
pub(super) struct ShmBuffer {
    key: (DrmFourcc, u32, u32),
    pub(super) buffer: WlBuffer,
    pub(super) pool: WlShmPool,
    memory: ShmMemory,
    stride: u32,
    offsets: Vec<usize>,
}

/// A shared-memory file mapped read-write (the `wl_shm` pool's backing).
struct ShmMemory {
    fd: OwnedFd,
    ptr: std::ptr::NonNull<std::ffi::c_void>,
    len: usize,
}

// SAFETY: the mapping is owned by this value (a raw pointer is not Send by
// default) and only touched through `&mut self` methods of the presenter.
unsafe impl Send for ShmMemory {}

impl ShmMemory {
    fn new(len: usize) -> Result<Self, ShmError> {
        let err = |op| move |source| ShmError::Memfd { op, source };
        let fd = rustix::fs::memfd_create("dmabuf-interop-shm", rustix::fs::MemfdFlags::CLOEXEC)
            .map_err(err("memfd_create"))?;
        rustix::fs::ftruncate(&fd, len as u64).map_err(err("ftruncate"))?;
        // SAFETY: a fresh shared mapping of a file we own, of its full size.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .map_err(err("mmap"))?;
        let ptr = std::ptr::NonNull::new(ptr).ok_or(ShmError::Memfd {
            op: "mmap",
            source: rustix::io::Errno::NOMEM,
        })?;
        Ok(Self { fd, ptr, len })
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` maps `len` bytes for as long as `self` lives; the
        // file is ours and only the compositor reads it (while it holds the
        // buffer, during which we do not write: see `shm_target`).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u8>(), self.len) }
    }
}

impl Drop for ShmMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping made in `new`; nothing refers to it.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr(), self.len) };
    }
}

impl Presenter {
    /// Copies `planes` (each plane's bytes and stride) into a free
    /// `wl_shm` buffer.
    pub(super) fn copy_to_shm(
        &mut self,
        fourcc: DrmFourcc,
        width: u32,
        height: u32,
        planes: &[(&[u8], usize)],
    ) -> Result<WlBuffer, WaylandError> {
        let info = crate::format::info(fourcc).map_err(ShmError::from)?;
        if planes.len() < info.planes.len() {
            return Err(ShmError::Planes {
                fourcc,
                given: planes.len(),
                needed: info.planes.len(),
            }
            .into());
        }
        for (i, plane) in info.planes.iter().enumerate() {
            let (src, src_stride) = planes[i];
            let row = plane.min_row_bytes(width).unwrap_or(0) as usize;
            let rows = plane.rows(height) as usize;
            let needed = (rows.saturating_sub(1))
                .checked_mul(src_stride)
                .and_then(|n| n.checked_add(row));
            if rows > 0 && needed.is_none_or(|n| src.len() < n) {
                return Err(ShmError::Short {
                    plane: i,
                    got: src.len(),
                    rows,
                    stride: src_stride,
                }
                .into());
            }
        }
        let index = self.shm_target(info, fourcc, width, height)?;
        let target = &mut self.shm_buffers[index];
        let stride = target.stride as usize;
        let offsets = target.offsets.clone();
        let dst = target.memory.bytes_mut();
        for (i, plane) in info.planes.iter().enumerate() {
            let (src, src_stride) = planes[i];
            let row = plane.min_row_bytes(width).unwrap_or(0) as usize;
            for y in 0..plane.rows(height) as usize {
                let d = offsets[i] + y * stride;
                dst[d..d + row].copy_from_slice(&src[y * src_stride..y * src_stride + row]);
            }
        }
        Ok(target.buffer.clone())
    }

    /// Copies a LINEAR `DmaBuf` into a free `wl_shm` buffer, row by row
    /// straight from its mapping.
    pub(super) fn copy_dmabuf_to_shm(&mut self, buf: &DmaBuf) -> Result<WlBuffer, WaylandError> {
        let info = buf.format_info();
        let index = self.shm_target(info, buf.fourcc(), buf.width(), buf.height())?;
        let map = buf.map(MapAccess::Read).map_err(ShmError::from)?;
        let target = &mut self.shm_buffers[index];
        let stride = target.stride as usize;
        let offsets = target.offsets.clone();
        let dst = target.memory.bytes_mut();
        for i in 0..info.planes.len() {
            map.read_rows(i, &mut dst[offsets[i]..], stride)
                .map_err(ShmError::from)?;
        }
        Ok(target.buffer.clone())
    }

    /// Index of a free (released) `wl_shm` buffer of this format and size,
    /// or of a new one (at most [`MAX_SHM_BUFFERS`]; beyond that we wait a
    /// second for a release).
    fn shm_target(
        &mut self,
        info: &FormatInfo,
        fourcc: DrmFourcc,
        width: u32,
        height: u32,
    ) -> Result<usize, WaylandError> {
        let shm = self.shm.clone().ok_or(WaylandError::MissingGlobal("wl_shm"))?;
        let key = (fourcc, width, height);
        // Buffers of another format or size go (on their release if the
        // compositor still holds them).
        let (keep, old): (Vec<_>, Vec<_>) = std::mem::take(&mut self.shm_buffers)
            .into_iter()
            .partition(|b| b.key == key);
        self.shm_buffers = keep;
        for b in old {
            self.state.retire(b.buffer);
            b.pool.destroy();
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if let Some(i) = self
                .shm_buffers
                .iter()
                .position(|b| !self.state.busy.contains_key(&b.buffer.id()))
            {
                return Ok(i);
            }
            if self.shm_buffers.len() < MAX_SHM_BUFFERS {
                let b = self.new_shm_buffer(&shm, info, fourcc, width, height)?;
                self.shm_buffers.push(b);
                return Ok(self.shm_buffers.len() - 1);
            }
            if Instant::now() > deadline {
                return Err(WaylandError::Timeout(
                    "a released wl_shm buffer",
                    Duration::from_secs(1),
                ));
            }
            self.dispatch_timeout(Duration::from_millis(10))?;
        }
    }

    fn new_shm_buffer(
        &self,
        shm: &WlShm,
        info: &FormatInfo,
        fourcc: DrmFourcc,
        width: u32,
        height: u32,
    ) -> Result<ShmBuffer, WaylandError> {
        let unsupported = || WaylandError::Unsupported(fourcc, ModifierName(DrmModifier::Linear));
        // wl_shm has one stride for every plane: the layout compositors
        // assume is plane after plane, each `stride` wide (NV12: luma
        // rows then interleaved chroma rows). Single-plane formats and
        // NV12-like semi-planar formats fit it.
        let semi_planar =
            info.planes.len() == 2 && info.planes[1].bytes_per_block == 2 * info.planes[0].bytes_per_block;
        if info.planes.len() > 1 && !semi_planar {
            return Err(unsupported());
        }
        let format = wl_shm::Format::try_from(fourcc_to_shm(fourcc)).map_err(|()| unsupported())?;
        // Every size goes out as an int32: checked, never wrapped.
        let too_large = |bytes| ShmError::TooLarge { width, height, bytes };
        let row = info.planes[0].min_row_bytes(width).ok_or(too_large(u64::MAX))?;
        let stride = row.next_multiple_of(4);
        let mut offsets = Vec::new();
        let mut len = 0u64;
        for plane in info.planes {
            offsets.push(len as usize);
            len += u64::from(stride) * u64::from(plane.rows(height));
        }
        let (Ok(pool_len), Ok(w), Ok(h), Ok(s)) = (
            i32::try_from(len),
            i32::try_from(width),
            i32::try_from(height),
            i32::try_from(stride),
        ) else {
            return Err(too_large(len).into());
        };
        let memory = ShmMemory::new(len as usize)?;
        let pool = shm.create_pool(memory.fd.as_fd(), pool_len, &self.qh, ());
        let buffer = pool.create_buffer(0, w, h, s, format, &self.qh, ());
        Ok(ShmBuffer {
            key: (fourcc, width, height),
            buffer,
            pool,
            memory,
            stride,
            offsets,
        })
    }
}

delegate_noop!(State: ignore WlShmPool);

impl Dispatch<WlShm, ()> for State {
    fn event(state: &mut Self, _: &WlShm, event: wl_shm::Event, _: &(), _: &Connection, _: &QueueHandle<Self>) {
        if let wl_shm::Event::Format { format } = event {
            let raw = match format {
                WEnum::Value(f) => f as u32,
                WEnum::Unknown(u) => u,
            };
            state.formats.shm.insert(shm_to_fourcc(raw));
        }
    }
}
