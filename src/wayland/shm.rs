//! `wl_shm`, where linux-dmabuf cannot carry a frame (no linux-dmabuf, a
//! format or modifier it does not take, a buffer it refused):
//!
//! - **zero copy** when the frame's memory is a file the compositor can map
//!   (a memfd, or a udmabuf over one) in a layout `wl_shm` can describe:
//!   the file itself becomes the `wl_shm_pool`, cached per source like a
//!   linux-dmabuf `wl_buffer` (`PresentStats::shm_zero_copy`), as
//!   waylandsink's own `wl_shm` pool is;
//! - else a **copy** into a small ring of `wl_shm` buffers, reused only
//!   after their release (`PresentStats::copies`);
//! - **converted** on the CPU into XRGB8888 (which every `wl_shm` offers)
//!   when `wl_shm` lacks the format (`PresentStats::converted`), with the
//!   frame's colorimetry.

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
use crate::colour::Colorimetry;
use crate::convert;
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

    /// Converts a LINEAR `DmaBuf` into XRGB8888 in a free `wl_shm` buffer
    /// (its planes read out of the mapping first: shared memory is never
    /// borrowed as a slice).
    pub(super) fn convert_dmabuf_to_shm(&mut self, buf: &DmaBuf) -> Result<WlBuffer, WaylandError> {
        let map = buf.map(MapAccess::Read).map_err(ShmError::from)?;
        let bytes = (0..buf.planes().len())
            .map(|i| map.read_plane(i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ShmError::from)?;
        drop(map);
        let planes: Vec<(&[u8], usize)> = bytes
            .iter()
            .zip(buf.planes())
            .map(|(b, p)| (b.as_slice(), p.stride() as usize))
            .collect();
        self.convert_to_shm(buf.fourcc(), buf.width(), buf.height(), &planes, buf.colorimetry())
    }

    /// Converts `planes` of `fourcc` into XRGB8888 in a free `wl_shm`
    /// buffer.
    pub(super) fn convert_to_shm(
        &mut self,
        fourcc: DrmFourcc,
        width: u32,
        height: u32,
        planes: &[(&[u8], usize)],
        colorimetry: Colorimetry,
    ) -> Result<WlBuffer, WaylandError> {
        let xrgb = crate::format::info(DrmFourcc::Xrgb8888).map_err(ShmError::from)?;
        let index = self.shm_target(xrgb, DrmFourcc::Xrgb8888, width, height)?;
        let target = &mut self.shm_buffers[index];
        let stride = target.stride as usize;
        convert::to_xrgb8888(
            fourcc,
            width,
            height,
            planes,
            colorimetry,
            target.memory.bytes_mut(),
            stride,
        )
        .map_err(ShmError::from)?;
        Ok(target.buffer.clone())
    }

    /// The cached `wl_shm` buffer over `buf`'s own memory (and whether it
    /// was a hit), or `None` when `buf` cannot be shown that way: not
    /// LINEAR, a format `wl_shm` lacks, planes in several files, a kernel
    /// dma-buf other than a udmabuf, a file the compositor could not map
    /// read-write (a write-sealed memfd: the compositor's `mmap` would fail
    /// and end the connection with `invalid_fd`), or a layout `wl_shm`'s
    /// one stride cannot describe. Nothing is sent in those cases.
    pub(super) fn shm_wl_buffer_for(&mut self, buf: &DmaBuf) -> Result<Option<(WlBuffer, bool)>, WaylandError> {
        let Some(shm) = self.shm.clone() else { return Ok(None) };
        if buf.modifier() != DrmModifier::Linear || !self.state.formats.supports_shm(buf.fourcc()) {
            return Ok(None);
        }
        self.purge_dead();
        match self.cache.get(&buf.id()) {
            Some(e) if e.shm => return Ok(Some((e.buffer.clone(), true))),
            // A linux-dmabuf wl_buffer of the same source: not this path.
            Some(_) => return Ok(None),
            None => {}
        }
        let file = buf.planes()[0].file_id();
        if self.shm_unmappable.contains(&file) {
            return Ok(None);
        }
        let Some(layout) = shm_layout(buf) else { return Ok(None) };
        let Ok(format) = wl_shm::Format::try_from(fourcc_to_shm(buf.fourcc())) else {
            return Ok(None);
        };
        let plane = &buf.planes()[0];
        if !shm_mappable(plane.fd(), layout.pool_size) {
            if self.shm_unmappable.len() >= MAX_UNMAPPABLE {
                self.shm_unmappable.clear();
            }
            self.shm_unmappable.insert(file);
            return Ok(None);
        }
        // The pool may go at once: its buffers keep the compositor's
        // mapping (wl_shm_pool.destroy).
        let pool = shm.create_pool(plane.fd(), layout.pool_size, &self.qh, ());
        let buffer = pool.create_buffer(
            layout.offset,
            layout.width,
            layout.height,
            layout.stride,
            format,
            &self.qh,
            (),
        );
        pool.destroy();
        self.cache_new(buf, buffer.clone(), true);
        Ok(Some((buffer, false)))
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
                .position(|b| !self.state.is_held(&b.buffer.id()))
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

/// Most files remembered as not mappable by the compositor (bounded: the
/// set is cleared when full).
const MAX_UNMAPPABLE: usize = 64;

/// A `DmaBuf`'s layout as one `wl_shm_pool` + `create_buffer`, every value
/// checked to fit the protocol's `int`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShmLayout {
    pub(crate) pool_size: i32,
    pub(crate) offset: i32,
    pub(crate) width: i32,
    pub(crate) height: i32,
    pub(crate) stride: i32,
}

/// How `buf` fits `wl_shm`'s implied layout, or `None`. `wl_shm` has one
/// offset and one stride; compositors place further planes right after
/// the first: NV12-like chroma rows `stride` wide, 4:2:0 planar chroma
/// planes `stride / 2` wide (Weston's and libwayland's reading). Every
/// plane must lie in the file the first one does, and the pool is the
/// whole file.
pub(crate) fn shm_layout(buf: &DmaBuf) -> Option<ShmLayout> {
    let info = buf.format_info();
    let planes = buf.planes();
    let first = &planes[0];
    if planes.iter().any(|p| !p.same_file(first)) || planes.len() != info.planes.len() {
        return None;
    }
    if first.is_kernel_dmabuf() && crate::sys::dmabuf_exporter(first.fd()).as_deref() != Some("udmabuf") {
        return None;
    }
    let (stride, height) = (u64::from(first.stride()), u64::from(buf.height()));
    if stride < u64::from(info.planes[0].min_row_bytes(buf.width())?) {
        return None;
    }
    let mut expected = u64::from(first.offset()) + stride * height;
    for (i, p) in planes.iter().enumerate().skip(1) {
        let want_stride = match info.planes.len() {
            2 => stride,
            3 if stride % 2 == 0 => stride / 2,
            _ => return None,
        };
        if u64::from(p.offset()) != expected || u64::from(p.stride()) != want_stride {
            return None;
        }
        expected += want_stride * u64::from(info.planes[i].rows(buf.height()));
    }
    if expected > first.fd_size() {
        return None;
    }
    Some(ShmLayout {
        pool_size: i32::try_from(first.fd_size()).ok()?,
        offset: i32::try_from(first.offset()).ok()?,
        width: i32::try_from(buf.width()).ok()?,
        height: i32::try_from(buf.height()).ok()?,
        stride: i32::try_from(stride).ok()?,
    })
}

/// Whether the compositor's `wl_shm` can map `len` bytes of `fd`: the same
/// `mmap(PROT_READ | PROT_WRITE, MAP_SHARED)` libwayland-server makes for
/// `create_pool`, tried (and undone) here first, since its failure is the
/// fatal `invalid_fd` error.
fn shm_mappable(fd: std::os::fd::BorrowedFd<'_>, len: i32) -> bool {
    let Ok(len) = usize::try_from(len) else { return false };
    if len == 0 {
        return false;
    }
    // SAFETY: a fresh mapping nothing else refers to, unmapped right away.
    let mapped = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            fd,
            0,
        )
    };
    match mapped {
        Ok(ptr) => {
            // SAFETY: unmapping exactly the mapping made above.
            let _ = unsafe { rustix::mm::munmap(ptr, len) };
            true
        }
        Err(_) => false,
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
