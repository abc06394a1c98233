//! CPU access to linear [`DmaBuf`]s.
//!
//! [`DmaBuf::map`] maps every distinct file of the buffer once and brackets
//! the access with `DMA_BUF_IOCTL_SYNC` START/END so that caches are kept
//! coherent with devices that also touch the buffer. An fd that is not a
//! dma-buf (a memfd) answers ENOTTY to that ioctl: it is plain memory and
//! needs no bracket. The mapping is undone (END, then `munmap`) when the
//! guard is dropped.
//!
//! # Why the safe API copies
//!
//! A dma-buf is shared memory: clones of one [`DmaBuf`], other `DmaBuf`s over
//! the same fd, devices and other processes can all reach the same bytes.
//! Handing safe code a `&[u8]` or `&mut [u8]` over them would let it observe
//! (or cause) writes that Rust's aliasing rules forbid. So, as `vm-memory`
//! does for guest memory and memmap2 does by making `map` unsafe:
//!
//! - the safe methods copy in and out ([`DmaBufMapping::read_plane`],
//!   [`read_rows`](DmaBufMapping::read_rows),
//!   [`write_plane`](DmaBufMapping::write_plane),
//!   [`write_rows`](DmaBufMapping::write_rows),
//!   [`fill_plane`](DmaBufMapping::fill_plane)); no reference into the
//!   mapping ever reaches safe code;
//! - within this process, a file is mapped either by any number of
//!   [`MapAccess::Read`] mappings or by one [`MapAccess::ReadWrite`]
//!   mapping, whichever `DmaBuf` it is reached through; a conflicting
//!   [`DmaBuf::map`] fails with [`MapError::Busy`] (it never blocks);
//! - slices ([`plane_slice`](DmaBufMapping::plane_slice),
//!   [`plane_slice_mut`](DmaBufMapping::plane_slice_mut)) are `unsafe`, with
//!   the contract written on them: nothing outside this process (a device,
//!   another process) may write the plane while the slice lives.
//!
//! Synchronise with the producer (fences, see [`sync`](mod@crate::sync))
//! before mapping: the bracket keeps caches coherent, it does not wait for
//! a device that is still writing through a driver without implicit fences.

use std::collections::HashMap;
use std::ffi::c_void;
use std::os::fd::{AsFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::{LazyLock, Mutex};

use drm_fourcc::DrmModifier;
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

use crate::dmabuf::{DmaBuf, ModifierName};
use crate::format::MAX_PLANES;
use crate::sync::{self, CpuSync, SyncAccess, SyncError};
use crate::sys;

/// What a mapping may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapAccess {
    /// Read only.
    Read,
    /// Read and write.
    ReadWrite,
}

impl MapAccess {
    fn sync(self) -> SyncAccess {
        match self {
            MapAccess::Read => SyncAccess::Read,
            MapAccess::ReadWrite => SyncAccess::ReadWrite,
        }
    }
}

/// Why a buffer could not be mapped or a plane not accessed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// Only LINEAR buffers have a CPU-meaningful layout.
    #[error("only LINEAR buffers can be mapped; this one has modifier {modifier}")]
    NotLinear {
        /// The buffer's modifier.
        modifier: ModifierName,
    },
    /// The fd refuses a writable shared mapping: it was opened read-only or
    /// is sealed against writes (`F_SEAL_WRITE`/`F_SEAL_FUTURE_WRITE`).
    #[error("plane {plane}: the fd cannot be mapped for writing")]
    NotWritable {
        /// Index of the first plane in that fd.
        plane: usize,
        /// What mmap said.
        source: Errno,
    },
    /// The file shrank after the buffer was validated.
    #[error("plane {plane}: the fd now has {fd_size} bytes but the plane needs {needed}")]
    FdShrunk {
        /// Index of the plane.
        plane: usize,
        /// Bytes needed.
        needed: u64,
        /// Bytes the fd has now.
        fd_size: u64,
    },
    /// A plane index past the buffer's planes.
    #[error("plane {plane} does not exist; the buffer has {count}")]
    NoSuchPlane {
        /// Index asked for.
        plane: usize,
        /// Planes the buffer has.
        count: usize,
    },
    /// Write access asked of a read-only mapping.
    #[error("the mapping is read-only")]
    ReadOnly,
    /// The file is already mapped in this process in a way that conflicts:
    /// a read-write mapping while any other exists, or any mapping while a
    /// read-write one exists (through this `DmaBuf`, a clone, or another
    /// `DmaBuf` over the same file).
    #[error("plane {plane}: its file is already mapped {held} in this process")]
    Busy {
        /// Index of the first plane in that file.
        plane: usize,
        /// What holds it: "read-write" or "read-only".
        held: &'static str,
    },
    /// A copy's source or destination does not have the size the plane needs.
    #[error("plane {plane}: the copy needs {needed} bytes, the slice has {got}")]
    Length {
        /// Index of the plane.
        plane: usize,
        /// Bytes the copy needs.
        needed: usize,
        /// Bytes the caller's slice has.
        got: usize,
    },
    /// `mmap` failed.
    #[error("plane {plane}: mmap of {len} bytes failed")]
    Mmap {
        /// Index of the first plane in that fd.
        plane: usize,
        /// Bytes asked for.
        len: u64,
        /// What mmap said.
        source: Errno,
    },
    /// `DMA_BUF_IOCTL_SYNC` failed on a real dma-buf.
    #[error("plane {plane}: bracketing CPU access")]
    Sync {
        /// Index of the first plane in that fd.
        plane: usize,
        /// The sync error.
        source: SyncError,
    },
}

/// Mappings of each file in this process, by (st_dev, st_ino): how many
/// read-only ones, and whether a read-write one exists.
static MAPPED: LazyLock<Mutex<HashMap<(u64, u64), FileUse>>> = LazyLock::new(Default::default);

#[derive(Debug, Default, Clone, Copy)]
struct FileUse {
    readers: usize,
    writer: bool,
}

/// The registration of one mapping of one file; released on drop.
struct FileClaim {
    file: (u64, u64),
    access: MapAccess,
}

impl FileClaim {
    fn take(file: (u64, u64), access: MapAccess, plane: usize) -> Result<Self, MapError> {
        // A poisoned lock only means a panic elsewhere; the counts are
        // updated in single statements, so they are still consistent.
        let mut mapped = MAPPED.lock().unwrap_or_else(|e| e.into_inner());
        let entry = mapped.entry(file).or_default();
        let held = if entry.writer {
            Some("read-write")
        } else if access == MapAccess::ReadWrite && entry.readers > 0 {
            Some("read-only")
        } else {
            None
        };
        if let Some(held) = held {
            if !entry.writer && entry.readers == 0 {
                mapped.remove(&file);
            }
            return Err(MapError::Busy { plane, held });
        }
        match access {
            MapAccess::Read => entry.readers += 1,
            MapAccess::ReadWrite => entry.writer = true,
        }
        Ok(FileClaim { file, access })
    }
}

impl Drop for FileClaim {
    fn drop(&mut self) {
        let mut mapped = MAPPED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = mapped.get_mut(&self.file) {
            match self.access {
                MapAccess::Read => entry.readers = entry.readers.saturating_sub(1),
                MapAccess::ReadWrite => entry.writer = false,
            }
            if !entry.writer && entry.readers == 0 {
                mapped.remove(&self.file);
            }
        }
    }
}

/// One mmap of one file: unmapped (after the END bracket) on drop.
struct Region<'a> {
    fd: BorrowedFd<'a>,
    ptr: NonNull<c_void>,
    len: usize,
    sync: CpuSync,
    access: MapAccess,
    // Dropped after the unmap in `Drop::drop` (fields drop after the body).
    _claim: FileClaim,
}

impl Region<'_> {
    /// Pointer to byte `start`; `start + len <= self.len` is the caller's
    /// promise (checked in debug builds).
    fn at(&self, start: usize, len: usize) -> *mut u8 {
        debug_assert!(start + len <= self.len);
        // SAFETY: start <= self.len, so the result stays inside (or one past)
        // the mapping.
        unsafe { self.ptr.as_ptr().cast::<u8>().add(start) }
    }
}

impl Drop for Region<'_> {
    fn drop(&mut self) {
        if self.sync == CpuSync::Bracketed {
            // The access already happened; an END failure has no remedy.
            let _ = sync::cpu_access_end(self.fd, self.access.sync());
        }
        // SAFETY: ptr/len are exactly what mmap returned, and no slice into
        // the region outlives self (the unsafe slice accessors borrow the
        // mapping that owns it).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr(), self.len) };
    }
}

/// A CPU mapping of a whole [`DmaBuf`]; see [`DmaBuf::map`].
pub struct DmaBufMapping<'a> {
    buf: &'a DmaBuf,
    access: MapAccess,
    regions: Vec<Region<'a>>,
    region_of_plane: [usize; MAX_PLANES],
}

impl DmaBuf {
    /// Maps the buffer for CPU access. Only LINEAR buffers can be mapped.
    ///
    /// Planes in the same file share one mapping. Writable access fails with
    /// [`MapError::NotWritable`] on an fd sealed against writes; that is how
    /// exporters find out that a buffer is not mappable (the
    /// `memory:DMABuf` rule).
    pub fn map(&self, access: MapAccess) -> Result<DmaBufMapping<'_>, MapError> {
        if self.modifier() != DrmModifier::Linear {
            return Err(MapError::NotLinear {
                modifier: ModifierName(self.modifier()),
            });
        }
        let info = self.format_info();
        let mut regions: Vec<Region<'_>> = Vec::with_capacity(self.planes().len());
        let mut region_of_plane = [0; MAX_PLANES];
        for (index, plane) in self.planes().iter().enumerate() {
            let first = self.first_plane_in_file(index);
            if first != index {
                region_of_plane[index] = region_of_plane[first];
                continue;
            }
            // The mapping covers every plane that lives in this file.
            let needed = self.planes()[index..]
                .iter()
                .zip(&info.planes[index..])
                .filter(|(p, _)| p.same_file(plane))
                .map(|(p, f)| plane_end(p.offset(), p.stride(), f.rows(self.height())))
                .max()
                .unwrap_or(0);
            let fd = plane.fd();
            let now = sys::fd_info(fd).map_err(|source| MapError::Mmap {
                plane: index,
                len: needed,
                source,
            })?;
            if now.size < needed {
                return Err(MapError::FdShrunk {
                    plane: index,
                    needed,
                    fd_size: now.size,
                });
            }
            let claim = FileClaim::take(plane.file_id(), access, index)?;
            let region = map_region(fd, index, needed, access, claim)?;
            region_of_plane[index] = regions.len();
            regions.push(region);
        }
        Ok(DmaBufMapping {
            buf: self,
            access,
            regions,
            region_of_plane,
        })
    }
}

fn plane_end(offset: u32, stride: u32, rows: u32) -> u64 {
    // Cannot overflow: (2^32-1) + (2^32-1)^2 < 2^64.
    u64::from(offset) + u64::from(stride) * u64::from(rows)
}

fn map_region(
    fd: BorrowedFd<'_>,
    plane: usize,
    len: u64,
    access: MapAccess,
    claim: FileClaim,
) -> Result<Region<'_>, MapError> {
    let too_big = || MapError::Mmap {
        plane,
        len,
        source: Errno::NOMEM,
    };
    let byte_len = usize::try_from(len).map_err(|_| too_big())?;
    let prot = match access {
        MapAccess::Read => ProtFlags::READ,
        MapAccess::ReadWrite => ProtFlags::READ | ProtFlags::WRITE,
    };
    // SAFETY: a fresh shared mapping at an address the kernel picks; it
    // aliases no Rust object. Its lifetime is managed by Region.
    let ptr = unsafe { rustix::mm::mmap(std::ptr::null_mut(), byte_len, prot, MapFlags::SHARED, fd.as_fd(), 0) }
        .map_err(|source| match (access, source) {
            (MapAccess::ReadWrite, Errno::PERM | Errno::ACCESS) => MapError::NotWritable { plane, source },
            _ => MapError::Mmap { plane, len, source },
        })?;
    let ptr = NonNull::new(ptr).ok_or_else(too_big)?;
    let mut region = Region {
        fd,
        ptr,
        len: byte_len,
        sync: CpuSync::NotNeeded,
        access,
        _claim: claim,
    };
    // On error `region` drops here and is unmapped.
    region.sync = sync::cpu_access_begin(fd, access.sync()).map_err(|source| MapError::Sync { plane, source })?;
    Ok(region)
}

impl DmaBufMapping<'_> {
    /// The buffer this maps.
    pub fn buffer(&self) -> &DmaBuf {
        self.buf
    }

    /// The access this mapping was made with.
    pub fn access(&self) -> MapAccess {
        self.access
    }

    fn plane_span(&self, plane: usize) -> Result<(usize, usize, usize), MapError> {
        let planes = self.buf.planes();
        let p = planes.get(plane).ok_or(MapError::NoSuchPlane {
            plane,
            count: planes.len(),
        })?;
        let rows = self.buf.format_info().planes[plane].rows(self.buf.height());
        // Both fit usize: the region of this length was mapped.
        let start = p.offset() as usize;
        let len = (u64::from(p.stride()) * u64::from(rows)) as usize;
        Ok((self.region_of_plane[plane], start, len))
    }

    /// Bytes of plane `plane` in the mapping: `stride * rows`.
    pub fn plane_len(&self, plane: usize) -> Result<usize, MapError> {
        self.plane_span(plane).map(|(_, _, len)| len)
    }

    fn writable(&self) -> Result<(), MapError> {
        if self.access == MapAccess::ReadWrite {
            Ok(())
        } else {
            Err(MapError::ReadOnly)
        }
    }

    /// Row geometry of `plane`, an index [`plane_span`](Self::plane_span)
    /// has checked: (stride, rows, bytes of pixels per row).
    fn rows_of(&self, plane: usize) -> (usize, usize, usize) {
        let info = &self.buf.format_info().planes[plane];
        let stride = self.buf.planes()[plane].stride() as usize;
        let rows = info.rows(self.buf.height()) as usize;
        // The builder checked that a row's pixels fit the stride.
        let row_bytes = info.min_row_bytes(self.buf.width()).map_or(stride, |b| b as usize);
        (stride, rows, row_bytes.min(stride))
    }

    /// Copies plane `plane` (`stride * rows` bytes, padding included) into
    /// `dst`, which must have exactly [`plane_len`](Self::plane_len) bytes.
    pub fn read_plane_into(&self, plane: usize, dst: &mut [u8]) -> Result<(), MapError> {
        let (region, start, len) = self.plane_span(plane)?;
        if dst.len() != len {
            return Err(MapError::Length {
                plane,
                needed: len,
                got: dst.len(),
            });
        }
        // Bytes written concurrently by another process or a device are
        // copied as whatever they hold (u8 has no invalid values).
        // SAFETY: [start, start+len) lies in the live mapping (validated
        // plane end); `dst` is a distinct Rust allocation: no overlap.
        unsafe { std::ptr::copy_nonoverlapping(self.regions[region].at(start, len), dst.as_mut_ptr(), len) };
        Ok(())
    }

    /// A copy of plane `plane`: `stride * rows` bytes, padding included.
    pub fn read_plane(&self, plane: usize) -> Result<Vec<u8>, MapError> {
        let mut out = vec![0; self.plane_len(plane)?];
        self.read_plane_into(plane, &mut out)?;
        Ok(out)
    }

    /// Copies the pixels of each row of `plane` (without the padding) into
    /// `dst`, row `y` at `y * dst_stride`. `dst` needs at least
    /// `(rows - 1) * dst_stride + row_bytes` bytes and `dst_stride` must
    /// hold a row.
    pub fn read_rows(&self, plane: usize, dst: &mut [u8], dst_stride: usize) -> Result<(), MapError> {
        let (region, start, _) = self.plane_span(plane)?;
        let (stride, rows, row_bytes) = self.rows_of(plane);
        check_rows(plane, dst.len(), dst_stride, rows, row_bytes)?;
        for y in 0..rows {
            let src = self.regions[region].at(start + y * stride, row_bytes);
            let dst = &mut dst[y * dst_stride..y * dst_stride + row_bytes];
            // SAFETY: the source row lies in the mapping (validated plane
            // end); `dst` was bounds-checked by the slice index and is a
            // distinct allocation.
            unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), row_bytes) };
        }
        Ok(())
    }

    /// Overwrites plane `plane` (`stride * rows` bytes, padding included)
    /// with `src`, which must have exactly [`plane_len`](Self::plane_len)
    /// bytes. Fails on a read-only mapping.
    pub fn write_plane(&mut self, plane: usize, src: &[u8]) -> Result<(), MapError> {
        self.writable()?;
        let (region, start, len) = self.plane_span(plane)?;
        if src.len() != len {
            return Err(MapError::Length {
                plane,
                needed: len,
                got: src.len(),
            });
        }
        // SAFETY: the destination range lies in the live, writable mapping,
        // to which this process holds the only claim (FileClaim); `src` is a
        // Rust slice, which cannot overlap a mapping this type owns.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.regions[region].at(start, len), len) };
        Ok(())
    }

    /// Writes each row of `plane` from `src` (row `y` at `y * src_stride`),
    /// leaving the padding after each row's pixels untouched. `src` needs at
    /// least `(rows - 1) * src_stride + row_bytes` bytes. Fails on a
    /// read-only mapping.
    pub fn write_rows(&mut self, plane: usize, src: &[u8], src_stride: usize) -> Result<(), MapError> {
        self.writable()?;
        let (region, start, _) = self.plane_span(plane)?;
        let (stride, rows, row_bytes) = self.rows_of(plane);
        check_rows(plane, src.len(), src_stride, rows, row_bytes)?;
        for y in 0..rows {
            let src = &src[y * src_stride..y * src_stride + row_bytes];
            let dst = self.regions[region].at(start + y * stride, row_bytes);
            // SAFETY: as in `write_plane`, for one row.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, row_bytes) };
        }
        Ok(())
    }

    /// Sets every byte of plane `plane` to `value`. Fails on a read-only
    /// mapping.
    pub fn fill_plane(&mut self, plane: usize, value: u8) -> Result<(), MapError> {
        self.writable()?;
        let (region, start, len) = self.plane_span(plane)?;
        // SAFETY: as in `write_plane`.
        unsafe { std::ptr::write_bytes(self.regions[region].at(start, len), value, len) };
        Ok(())
    }

    /// The bytes of plane `plane` (`stride * rows` from its offset) as a
    /// slice, without a copy.
    ///
    /// # Safety
    ///
    /// For as long as the slice lives, nothing may write these bytes: no
    /// device (wait for the producer's fence first), no other process, and
    /// no code in this process through a raw pointer or another mapping
    /// made outside this crate. (Mappings made through [`DmaBuf::map`] are
    /// already excluded: a read-write one cannot coexist with this one.)
    pub unsafe fn plane_slice(&self, plane: usize) -> Result<&[u8], MapError> {
        let (region, start, len) = self.plane_span(plane)?;
        // SAFETY: the range lies in the live mapping and the borrow is tied
        // to &self; the caller promises that nothing writes it meanwhile.
        Ok(unsafe { std::slice::from_raw_parts(self.regions[region].at(start, len), len) })
    }

    /// The bytes of plane `plane` as a mutable slice, without a copy. Fails
    /// on a read-only mapping.
    ///
    /// # Safety
    ///
    /// For as long as the slice lives, nothing else may read or write these
    /// bytes: no device, no other process, and no code in this process
    /// through a raw pointer or a mapping made outside this crate.
    /// (Mappings made through [`DmaBuf::map`] are already excluded while this
    /// read-write mapping exists.)
    pub unsafe fn plane_slice_mut(&mut self, plane: usize) -> Result<&mut [u8], MapError> {
        self.writable()?;
        let (region, start, len) = self.plane_span(plane)?;
        // SAFETY: as in `plane_slice`; the borrow is exclusive through
        // &mut self and the caller promises exclusivity outside Rust.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.regions[region].at(start, len), len) })
    }

    /// Number of distinct files mapped (planes sharing a file share one).
    pub fn mapped_files(&self) -> usize {
        self.regions.len()
    }
}

/// Checks that a caller's buffer of `len` bytes holds `rows` rows of
/// `row_bytes` at `stride`.
fn check_rows(plane: usize, len: usize, stride: usize, rows: usize, row_bytes: usize) -> Result<(), MapError> {
    let needed = match rows {
        0 => Some(0),
        _ if stride < row_bytes => None,
        _ => (rows - 1).checked_mul(stride).and_then(|n| n.checked_add(row_bytes)),
    };
    match needed {
        Some(needed) if needed <= len => Ok(()),
        Some(needed) => Err(MapError::Length {
            plane,
            needed,
            got: len,
        }),
        // A stride shorter than a row, or a size past usize.
        None => Err(MapError::Length {
            plane,
            needed: usize::MAX,
            got: len,
        }),
    }
}
