//! Safe CPU access to linear [`DmaBuf`]s.
//!
//! [`DmaBuf::map`] maps every distinct file of the buffer once and brackets
//! the access with `DMA_BUF_IOCTL_SYNC` START/END so that caches are kept
//! coherent with devices that also touch the buffer. An fd that is not a
//! dma-buf (a memfd) answers ENOTTY to that ioctl: it is plain memory and
//! needs no bracket. The mapping is undone (END, then `munmap`) when the
//! guard is dropped.
//!
//! Like any shared memory, the bytes may change under a reader while another
//! process or a device writes them; synchronise with the producer (fences,
//! see [`sync`](mod@crate::sync)) before mapping.

use std::ffi::c_void;
use std::os::fd::{AsFd, BorrowedFd};
use std::ptr::NonNull;

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
    #[error("plane {plane}: the fd cannot be mapped for writing ({source})")]
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
    /// `mmap` failed.
    #[error("plane {plane}: mmap of {len} bytes failed: {source}")]
    Mmap {
        /// Index of the first plane in that fd.
        plane: usize,
        /// Bytes asked for.
        len: u64,
        /// What mmap said.
        source: Errno,
    },
    /// `DMA_BUF_IOCTL_SYNC` failed on a real dma-buf.
    #[error("plane {plane}: {source}")]
    Sync {
        /// Index of the first plane in that fd.
        plane: usize,
        /// The sync error.
        source: SyncError,
    },
}

/// One mmap of one file: unmapped (after the END bracket) on drop.
struct Region<'a> {
    fd: BorrowedFd<'a>,
    ptr: NonNull<c_void>,
    len: usize,
    sync: CpuSync,
    access: MapAccess,
}

impl Region<'_> {
    fn bytes(&self, start: usize, len: usize) -> &[u8] {
        debug_assert!(start + len <= self.len);
        // SAFETY: [ptr, ptr+self.len) is a live mapping owned by self;
        // start+len <= self.len was checked by the builder-validated plane
        // end, and the returned borrow is tied to &self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<u8>().add(start), len) }
    }

    fn bytes_mut(&mut self, start: usize, len: usize) -> &mut [u8] {
        debug_assert!(start + len <= self.len);
        // SAFETY: as in `bytes`, and the mapping is writable (checked by the
        // caller) and exclusively borrowed through &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u8>().add(start), len) }
    }
}

impl Drop for Region<'_> {
    fn drop(&mut self) {
        if self.sync == CpuSync::Bracketed {
            // The access already happened; an END failure has no remedy.
            let _ = sync::cpu_access_end(self.fd, self.access.sync());
        }
        // SAFETY: ptr/len are exactly what mmap returned, and no slice into
        // the region outlives self (they borrow it).
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
            let region = map_region(fd, index, needed, access)?;
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

fn map_region(fd: BorrowedFd<'_>, plane: usize, len: u64, access: MapAccess) -> Result<Region<'_>, MapError> {
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

    /// The bytes of plane `plane`: `stride * rows` bytes from its offset.
    pub fn plane(&self, plane: usize) -> Result<&[u8], MapError> {
        let (region, start, len) = self.plane_span(plane)?;
        Ok(self.regions[region].bytes(start, len))
    }

    /// The bytes of plane `plane`, writable. Fails on a read-only mapping.
    pub fn plane_mut(&mut self, plane: usize) -> Result<&mut [u8], MapError> {
        if self.access != MapAccess::ReadWrite {
            return Err(MapError::ReadOnly);
        }
        let (region, start, len) = self.plane_span(plane)?;
        Ok(self.regions[region].bytes_mut(start, len))
    }

    /// Number of distinct files mapped (planes sharing a file share one).
    pub fn mapped_files(&self) -> usize {
        self.regions.len()
    }
}
