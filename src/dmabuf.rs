//! [`DmaBuf`]: the one currency between the adapters.
//!
//! A `DmaBuf` is a validated description of an image in one or more file
//! descriptors: fourcc, modifier, size, and 1 to 4 planes of
//! `{ fd, offset, stride }`. It can only be made through [`DmaBufBuilder`],
//! which checks every plane against the format table and the real size of
//! each fd, with overflow-checked arithmetic, so every adapter can trust it.
//!
//! Ownership: each plane holds an `Arc<OwnedFd>`. Planes that live in the same
//! buffer share one `Arc` (or separate fds of the same file). The fds are
//! closed when the last `DmaBuf` clone and the last other holder of the `Arc`
//! are gone; a `DmaBuf` never closes an fd it was only lent (see
//! [`DmaBufBuilder::plane_borrowed`], which dups).

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Weak};

use drm_fourcc::{DrmFourcc, DrmModifier};
use rustix::io::Errno;

use crate::colour::Colorimetry;
use crate::format::{self, FormatInfo, MAX_PLANES};
use crate::sys::{self, FdInfo};

/// One plane of a [`DmaBuf`].
#[derive(Clone)]
pub struct Plane {
    fd: Arc<OwnedFd>,
    offset: u32,
    stride: u32,
    file: FdInfo,
}

impl Plane {
    /// The fd holding this plane (possibly shared with other planes).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The shared owner of the fd, for callers that must keep it alive
    /// independently of the `DmaBuf`.
    pub fn shared_fd(&self) -> &Arc<OwnedFd> {
        &self.fd
    }

    /// Byte offset of the plane's first row in its fd.
    pub fn offset(&self) -> u32 {
        self.offset
    }

    /// Bytes from one row to the next.
    pub fn stride(&self) -> u32 {
        self.stride
    }

    /// Size in bytes of the file behind the fd, as measured when the buffer
    /// was built.
    pub fn fd_size(&self) -> u64 {
        self.file.size
    }

    /// Whether the fd is a kernel dma-buf (false for a memfd stand-in).
    pub fn is_kernel_dmabuf(&self) -> bool {
        self.file.is_dmabuf
    }

    /// Whether this plane and `other` live in the same file (same inode),
    /// whatever fd numbers they were given through.
    pub fn same_file(&self, other: &Plane) -> bool {
        (self.file.dev, self.file.ino) == (other.file.dev, other.file.ino)
    }

    /// The (st_dev, st_ino) identity of the file behind the fd.
    pub fn file_id(&self) -> (u64, u64) {
        (self.file.dev, self.file.ino)
    }
}

impl fmt::Debug for Plane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plane")
            .field("fd", &self.fd)
            .field("offset", &self.offset)
            .field("stride", &self.stride)
            .field("fd_size", &self.file.size)
            .field("inode", &self.file.ino)
            .field("kernel_dmabuf", &self.file.is_dmabuf)
            .finish()
    }
}

struct Inner {
    info: &'static FormatInfo,
    fourcc: DrmFourcc,
    modifier: DrmModifier,
    width: u32,
    height: u32,
    planes: Vec<Plane>,
    colorimetry: Colorimetry,
}

/// A validated image in dma-buf file descriptors.
///
/// Cloning is cheap (one reference count) and clones share the fds.
#[derive(Clone)]
pub struct DmaBuf(Arc<Inner>);

impl DmaBuf {
    /// Starts building a `DmaBuf`; add planes in DRM plane order.
    pub fn builder(fourcc: DrmFourcc, modifier: DrmModifier, width: u32, height: u32) -> DmaBufBuilder {
        DmaBufBuilder {
            fourcc,
            modifier,
            width,
            height,
            planes: Vec::with_capacity(MAX_PLANES),
            colorimetry: None,
        }
    }

    /// The same planes (fds shared, same identity) with another meaning of
    /// their samples, e.g. when caps arrive after an allocator built it.
    pub fn with_colorimetry(&self, colorimetry: Colorimetry) -> DmaBuf {
        let i = &self.0;
        DmaBuf(Arc::new(Inner {
            info: i.info,
            fourcc: i.fourcc,
            modifier: i.modifier,
            width: i.width,
            height: i.height,
            planes: i.planes.clone(),
            colorimetry,
        }))
    }

    /// What the samples mean (matrix and range; RGB buffers ignore it):
    /// as built, else GStreamer's default for the size
    /// ([`Colorimetry::default_for_size`]).
    pub fn colorimetry(&self) -> Colorimetry {
        self.0.colorimetry
    }

    /// The pixel format.
    pub fn fourcc(&self) -> DrmFourcc {
        self.0.fourcc
    }

    /// The format modifier (tiling, compression); `Linear` for CPU-readable
    /// row-major buffers, `Invalid` for "implicit, driver-defined".
    pub fn modifier(&self) -> DrmModifier {
        self.0.modifier
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.0.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.0.height
    }

    /// The planes, in DRM plane order.
    pub fn planes(&self) -> &[Plane] {
        &self.0.planes
    }

    /// The format table entry for this buffer's fourcc.
    pub fn format_info(&self) -> &'static FormatInfo {
        self.0.info
    }

    /// Whether every plane's fd is a kernel dma-buf. `false` for the memfd
    /// stand-in used on machines without an exporter: fine for every
    /// mmap-based importer (lavapipe, llvmpipe compositors, GStreamer), not
    /// for hardware that needs real dma-bufs.
    pub fn is_kernel_dmabuf(&self) -> bool {
        self.0.planes.iter().all(Plane::is_kernel_dmabuf)
    }

    /// The index of the first plane that lives in the same file as plane
    /// `index` (`index` itself when it is the first). Consumers that make one
    /// object per file (a mapping, a `GstMemory`, a Vulkan memory binding)
    /// key on this.
    pub fn first_plane_in_file(&self, index: usize) -> usize {
        let planes = &self.0.planes;
        match planes.get(index) {
            Some(plane) => planes[..index].iter().position(|p| p.same_file(plane)).unwrap_or(index),
            None => index,
        }
    }

    /// The first plane of each distinct file, in plane order.
    pub fn distinct_files(&self) -> Vec<usize> {
        (0..self.0.planes.len())
            .filter(|&i| self.first_plane_in_file(i) == i)
            .collect()
    }

    /// An identity usable as a cache key: format, size, and per plane the
    /// file's (st_dev, st_ino), offset and stride. Never raw fd numbers, which
    /// the process recycles. Pair it with [`DmaBuf::downgrade`] to know when
    /// the source is gone.
    pub fn id(&self) -> BufferId {
        BufferId {
            fourcc: self.0.fourcc as u32,
            modifier: self.0.modifier.into(),
            width: self.0.width,
            height: self.0.height,
            planes: self
                .0
                .planes
                .iter()
                .map(|p| PlaneId {
                    dev: p.file.dev,
                    ino: p.file.ino,
                    offset: p.offset,
                    stride: p.stride,
                })
                .collect(),
        }
    }

    /// A weak handle that says whether this buffer (any of its clones) is
    /// still alive, without keeping its fds open.
    pub fn downgrade(&self) -> WeakDmaBuf {
        WeakDmaBuf(Arc::downgrade(&self.0))
    }

    /// Whether two handles are clones of the same buffer.
    pub fn ptr_eq(&self, other: &DmaBuf) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for DmaBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaBuf")
            .field("fourcc", &self.0.fourcc)
            .field("modifier", &ModifierName(self.0.modifier))
            .field("width", &self.0.width)
            .field("height", &self.0.height)
            .field("planes", &self.0.planes)
            .finish()
    }
}

/// A [`DmaBuf`] that does not keep its fds alive.
#[derive(Clone)]
pub struct WeakDmaBuf(Weak<Inner>);

impl WeakDmaBuf {
    /// The buffer, if any clone of it is still alive.
    pub fn upgrade(&self) -> Option<DmaBuf> {
        self.0.upgrade().map(DmaBuf)
    }

    /// Whether any clone of the buffer is still alive.
    pub fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
    }
}

impl fmt::Debug for WeakDmaBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WeakDmaBuf(alive: {})", self.is_alive())
    }
}

/// Identity of one plane inside a [`BufferId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlaneId {
    /// `st_dev` of the file.
    pub dev: u64,
    /// `st_ino` of the file.
    pub ino: u64,
    /// Plane offset.
    pub offset: u32,
    /// Plane stride.
    pub stride: u32,
}

/// The identity of a [`DmaBuf`]'s contents, for cache keys. See
/// [`DmaBuf::id`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufferId {
    /// Raw fourcc code.
    pub fourcc: u32,
    /// Raw modifier.
    pub modifier: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Per plane identity.
    pub planes: Vec<PlaneId>,
}

enum PlaneFd {
    Shared(Arc<OwnedFd>),
    DupFailed(Errno),
}

/// Builds a [`DmaBuf`]; see [`DmaBuf::builder`]. Nothing is checked until
/// [`build`](DmaBufBuilder::build), which checks everything.
pub struct DmaBufBuilder {
    fourcc: DrmFourcc,
    modifier: DrmModifier,
    width: u32,
    height: u32,
    planes: Vec<(PlaneFd, u32, u32)>,
    colorimetry: Option<Colorimetry>,
}

impl DmaBufBuilder {
    /// What the samples mean (e.g. from the stream's caps); without it the
    /// buffer has GStreamer's default for its size.
    pub fn colorimetry(mut self, colorimetry: Colorimetry) -> Self {
        self.colorimetry = Some(colorimetry);
        self
    }

    /// Adds the next plane. `fd` may be an `OwnedFd` (the buffer takes it) or
    /// an `Arc<OwnedFd>` shared with other planes or with the caller.
    pub fn plane(mut self, fd: impl Into<Arc<OwnedFd>>, offset: u32, stride: u32) -> Self {
        self.planes.push((PlaneFd::Shared(fd.into()), offset, stride));
        self
    }

    /// Adds the next plane from an fd the caller keeps owning: the buffer
    /// holds a dup of it, so the caller's fd is never closed by us.
    pub fn plane_borrowed(mut self, fd: BorrowedFd<'_>, offset: u32, stride: u32) -> Self {
        let fd = match fd.try_clone_to_owned() {
            Ok(owned) => PlaneFd::Shared(Arc::new(owned)),
            Err(e) => PlaneFd::DupFailed(Errno::from_io_error(&e).unwrap_or(Errno::BADF)),
        };
        self.planes.push((fd, offset, stride));
        self
    }

    /// Checks everything and returns the buffer, or the first problem found.
    ///
    /// Order of checks: size, format, plane count, then per plane: the fd,
    /// the minimum row size (overflow), stride, offset, end of plane.
    pub fn build(self) -> Result<DmaBuf, DmaBufError> {
        let Self {
            fourcc,
            modifier,
            width,
            height,
            planes,
            colorimetry,
        } = self;
        if width == 0 || height == 0 {
            return Err(DmaBufError::ZeroSize { width, height });
        }
        let info = format::info(fourcc).map_err(|_| DmaBufError::UnsupportedFormat { fourcc })?;
        let (min_planes, max_planes) = plane_count_range(info, modifier);
        if planes.len() < min_planes || planes.len() > max_planes {
            return Err(DmaBufError::WrongPlaneCount {
                fourcc,
                modifier: ModifierName(modifier),
                min: min_planes,
                max: max_planes,
                given: planes.len(),
            });
        }
        let mut built = Vec::with_capacity(planes.len());
        for (index, (fd, offset, stride)) in planes.into_iter().enumerate() {
            let fd = match fd {
                PlaneFd::Shared(fd) => fd,
                PlaneFd::DupFailed(source) => {
                    return Err(DmaBufError::Fd {
                        plane: index,
                        op: "dup",
                        source,
                    });
                }
            };
            let file = sys::fd_info(fd.as_fd()).map_err(|source| DmaBufError::Fd {
                plane: index,
                op: "fstat",
                source,
            })?;
            let end = match info.planes.get(index) {
                Some(plane_format) => {
                    let min = plane_format.min_row_bytes(width).ok_or(DmaBufError::Overflow {
                        plane: index,
                        what: "minimum row size (u32)",
                    })?;
                    if stride < min {
                        return Err(DmaBufError::StrideTooSmall {
                            plane: index,
                            stride,
                            min,
                        });
                    }
                    let rows = u64::from(plane_format.rows(height));
                    u64::from(stride)
                        .checked_mul(rows)
                        .and_then(|size| size.checked_add(u64::from(offset)))
                        .ok_or(DmaBufError::Overflow {
                            plane: index,
                            what: "plane end (u64)",
                        })?
                }
                // An auxiliary plane of a vendor modifier (compression
                // metadata): its size is the modifier's business; it must at
                // least start inside the fd.
                None => u64::from(offset) + 1,
            };
            if u64::from(offset) >= file.size {
                return Err(DmaBufError::OffsetPastEnd {
                    plane: index,
                    offset,
                    fd_size: file.size,
                });
            }
            if end > file.size {
                return Err(DmaBufError::FdTooSmall {
                    plane: index,
                    needed: end,
                    fd_size: file.size,
                });
            }
            built.push(Plane {
                fd,
                offset,
                stride,
                file,
            });
        }
        Ok(DmaBuf(Arc::new(Inner {
            info,
            fourcc,
            modifier,
            width,
            height,
            planes: built,
            colorimetry: colorimetry.unwrap_or(Colorimetry::default_for_size(width, height)),
        })))
    }
}

/// How many planes a buffer of `info` with `modifier` may have: exactly the
/// format's count for LINEAR and implicit (INVALID) modifiers; vendor
/// modifiers may add auxiliary planes up to [`MAX_PLANES`].
pub fn plane_count_range(info: &FormatInfo, modifier: DrmModifier) -> (usize, usize) {
    let n = info.plane_count();
    if is_linear_or_implicit(modifier) {
        (n, n)
    } else {
        (n, MAX_PLANES)
    }
}

fn is_linear_or_implicit(modifier: DrmModifier) -> bool {
    matches!(modifier, DrmModifier::Linear | DrmModifier::Invalid)
}

/// Prints a modifier as its DRM name and value, e.g. `LINEAR (0x0)`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ModifierName(pub DrmModifier);

impl fmt::Display for ModifierName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw: u64 = self.0.into();
        match self.0 {
            DrmModifier::Linear => write!(f, "LINEAR ({raw:#x})"),
            DrmModifier::Invalid => write!(f, "INVALID/implicit ({raw:#x})"),
            DrmModifier::Unrecognized(_) => write!(f, "{raw:#018x}"),
            known => write!(f, "{known:?} ({raw:#018x})"),
        }
    }
}

impl fmt::Debug for ModifierName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a [`DmaBuf`] could not be built. Each variant names the plane and the
/// numbers involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DmaBufError {
    /// Width or height is zero.
    #[error("image size {width}x{height} has a zero dimension")]
    ZeroSize {
        /// Width given.
        width: u32,
        /// Height given.
        height: u32,
    },
    /// The fourcc is not in the format table.
    #[error("format {fourcc} is not supported; see dmabuf_interop::format::FORMATS")]
    UnsupportedFormat {
        /// The fourcc given.
        fourcc: DrmFourcc,
    },
    /// The number of planes does not match the format and modifier.
    #[error("{fourcc} with modifier {modifier} needs {min}..={max} planes, got {given}")]
    WrongPlaneCount {
        /// The format.
        fourcc: DrmFourcc,
        /// The modifier.
        modifier: ModifierName,
        /// Fewest planes allowed.
        min: usize,
        /// Most planes allowed.
        max: usize,
        /// Planes given.
        given: usize,
    },
    /// A stride is smaller than one row of the plane.
    #[error("plane {plane}: stride {stride} is smaller than a row of the plane ({min} bytes)")]
    StrideTooSmall {
        /// Index of the plane.
        plane: usize,
        /// Stride given.
        stride: u32,
        /// The fewest bytes a row needs.
        min: u32,
    },
    /// A plane starts at or past the end of its fd.
    #[error("plane {plane}: offset {offset} is at or past the end of its fd ({fd_size} bytes)")]
    OffsetPastEnd {
        /// Index of the plane.
        plane: usize,
        /// Offset given.
        offset: u32,
        /// Size of the fd.
        fd_size: u64,
    },
    /// A plane (offset + stride * rows) ends past the end of its fd.
    #[error("plane {plane}: needs {needed} bytes (offset + stride * rows) but its fd has {fd_size}")]
    FdTooSmall {
        /// Index of the plane.
        plane: usize,
        /// Where the plane ends.
        needed: u64,
        /// Size of the fd.
        fd_size: u64,
    },
    /// A size does not fit the integer type it must be expressed in.
    #[error("plane {plane}: {what} overflows")]
    Overflow {
        /// Index of the plane.
        plane: usize,
        /// Which quantity overflowed.
        what: &'static str,
    },
    /// A system call on the plane's fd failed.
    #[error("plane {plane}: {op} on its fd failed")]
    Fd {
        /// Index of the plane.
        plane: usize,
        /// The call that failed.
        op: &'static str,
        /// The error.
        source: Errno,
    },
}
