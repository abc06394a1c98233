//! Where dma-buf fds come from.
//!
//! An [`Allocator`] returns a linear [`DmaBuf`] for a format, a size and a
//! stride alignment (or an exact layout a driver asked for). Back ends:
//!
//! | kind | fd | needs |
//! |---|---|---|
//! | [`Udmabuf`](AllocatorKind::Udmabuf) | kernel dma-buf over memfd pages | `/dev/udmabuf` |
//! | [`DmaHeap`](AllocatorKind::DmaHeap) | kernel dma-buf from the system heap | `/dev/dma_heap/system` |
//! | [`Gbm`](AllocatorKind::Gbm) | kernel dma-buf from the GPU driver | feature `gbm`, a DRM render node |
//! | [`Memfd`](AllocatorKind::Memfd) | a plain memfd, **not** a kernel dma-buf | nothing |
//!
//! A memfd is what machines without any dma-buf exporter use: every
//! mmap-based importer (lavapipe, Weston's GL renderer on llvmpipe,
//! GStreamer's dmabuf allocator) takes it exactly like a linear dma-buf.
//! [`DmaBuf::is_kernel_dmabuf`] tells the two apart.
//!
//! [`best_available`] tries the back ends in the order of the table (real
//! dma-bufs in CPU memory first, GPU memory next, memfd last) by really
//! allocating a small buffer, never by guessing from file names. The
//! environment variable [`ALLOCATOR_ENV`] forces one.

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use drm_fourcc::{DrmFourcc, DrmModifier};
use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};
use rustix::io::Errno;

use crate::dmabuf::DmaBuf;
use crate::format::{self, Layout};

/// Environment variable that forces [`best_available`] to one back end:
/// `udmabuf`, `dma-heap`, `gbm` or `memfd`.
pub const ALLOCATOR_ENV: &str = "DMABUF_INTEROP_ALLOCATOR";

/// The allocator back ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllocatorKind {
    /// `/dev/udmabuf`: a memfd turned into a kernel dma-buf.
    Udmabuf,
    /// `/dev/dma_heap/system`.
    DmaHeap,
    /// GBM on a DRM render node (feature `gbm`).
    Gbm,
    /// A plain memfd (not a kernel dma-buf).
    Memfd,
}

impl AllocatorKind {
    /// All kinds, in the order [`best_available`] tries them.
    pub const ALL: [AllocatorKind; 4] = [
        AllocatorKind::Udmabuf,
        AllocatorKind::DmaHeap,
        AllocatorKind::Gbm,
        AllocatorKind::Memfd,
    ];

    /// The name used in reports and in [`ALLOCATOR_ENV`].
    pub fn name(self) -> &'static str {
        match self {
            AllocatorKind::Udmabuf => "udmabuf",
            AllocatorKind::DmaHeap => "dma-heap",
            AllocatorKind::Gbm => "gbm",
            AllocatorKind::Memfd => "memfd",
        }
    }

    /// Whether buffers of this kind are kernel dma-bufs.
    pub fn makes_kernel_dmabufs(self) -> bool {
        self != AllocatorKind::Memfd
    }

    /// Parses a name as printed by [`name`](Self::name).
    pub fn from_name(name: &str) -> Result<Self, AllocError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| AllocError::UnknownKind { name: name.to_owned() })
    }
}

impl fmt::Display for AllocatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A source of linear [`DmaBuf`]s.
pub trait Allocator: Send + Sync + fmt::Debug {
    /// Which back end this is.
    fn kind(&self) -> AllocatorKind;

    /// Allocates a linear buffer of `fourcc` at `width`x`height` whose strides
    /// are multiples of `stride_align` (the consumer's requirement).
    fn allocate(&self, fourcc: DrmFourcc, width: u32, height: u32, stride_align: u32) -> Result<DmaBuf, AllocError> {
        let layout = format::linear_layout(fourcc, width, height, stride_align)?;
        self.allocate_layout(fourcc, width, height, &layout)
    }

    /// Allocates a linear buffer with exactly the given plane offsets and
    /// strides (for example those a Vulkan driver reports for a LINEAR
    /// image). Back ends that choose their own layout (GBM) refuse with
    /// [`AllocError::ExactLayoutUnsupported`].
    fn allocate_layout(
        &self,
        fourcc: DrmFourcc,
        width: u32,
        height: u32,
        layout: &Layout,
    ) -> Result<DmaBuf, AllocError>;

    /// Allocates `size` bytes (rounded up to whole pages) as one fd, for
    /// callers that lay out the buffer themselves (GStreamer's buffer pools).
    /// Back ends that cannot (GBM) refuse with
    /// [`AllocError::ExactLayoutUnsupported`].
    fn allocate_bytes(&self, size: u64) -> Result<OwnedFd, AllocError>;
}

/// Allocators that hand out one fd of a given size and let the layout be
/// chosen by the caller.
trait FdSource {
    fn kind(&self) -> AllocatorKind;
    fn allocate_fd(&self, size: u64) -> Result<OwnedFd, AllocError>;
}

fn bytes_from_fd_source(source: &dyn FdSource, size: u64) -> Result<OwnedFd, AllocError> {
    let rounded = round_up_to_page(size).ok_or(AllocError::TooLarge {
        kind: source.kind(),
        size,
    })?;
    source.allocate_fd(rounded)
}

fn allocate_from_fd_source(
    source: &dyn FdSource,
    fourcc: DrmFourcc,
    width: u32,
    height: u32,
    layout: &Layout,
) -> Result<DmaBuf, AllocError> {
    // All planes share this one fd; it is closed when the last plane goes.
    let fd = Arc::new(bytes_from_fd_source(source, layout.total_size())?);
    let builder = layout.planes().iter().fold(
        DmaBuf::builder(fourcc, DrmModifier::Linear, width, height),
        |builder, plane| builder.plane(Arc::clone(&fd), plane.offset, plane.stride),
    );
    Ok(builder.build()?)
}

fn round_up_to_page(size: u64) -> Option<u64> {
    let page = rustix::param::page_size() as u64;
    size.max(1).checked_next_multiple_of(page)
}

fn syscall(kind: AllocatorKind, op: &'static str) -> impl FnOnce(Errno) -> AllocError {
    move |source| AllocError::Syscall { kind, op, source }
}

/// A memfd of `size` bytes sealed against shrinking and growing, so that
/// nobody can pull pages out from under a mapping or an import. Write seals
/// are left free: exporters may add `F_SEAL_FUTURE_WRITE` later to make a
/// buffer non-mappable.
fn sealed_memfd(kind: AllocatorKind, size: u64) -> Result<OwnedFd, AllocError> {
    let fd = rustix::fs::memfd_create("dmabuf-interop", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .map_err(syscall(kind, "memfd_create"))?;
    rustix::fs::ftruncate(&fd, size).map_err(syscall(kind, "ftruncate"))?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW).map_err(syscall(kind, "F_ADD_SEALS"))?;
    Ok(fd)
}

fn open_device(kind: AllocatorKind, path: &Path) -> Result<OwnedFd, AllocError> {
    rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).map_err(|source| AllocError::Unavailable {
        kind,
        path: path.to_owned(),
        source,
    })
}

macro_rules! fd_source_allocator {
    ($ty:ty) => {
        impl Allocator for $ty {
            fn kind(&self) -> AllocatorKind {
                FdSource::kind(self)
            }

            fn allocate_layout(
                &self,
                fourcc: DrmFourcc,
                width: u32,
                height: u32,
                layout: &Layout,
            ) -> Result<DmaBuf, AllocError> {
                allocate_from_fd_source(self, fourcc, width, height, layout)
            }

            fn allocate_bytes(&self, size: u64) -> Result<OwnedFd, AllocError> {
                bytes_from_fd_source(self, size)
            }
        }
    };
}

mod dma_heap;
mod error;
#[cfg(feature = "gbm")]
mod gbm_backend;
mod memfd;
mod udmabuf;

pub use dma_heap::DmaHeapAllocator;
pub use error::AllocError;
#[cfg(feature = "gbm")]
pub use gbm_backend::GbmAllocator;
pub use memfd::MemfdAllocator;
pub use udmabuf::UdmabufAllocator;

/// Opens the allocator of `kind`.
pub fn open(kind: AllocatorKind) -> Result<Box<dyn Allocator>, AllocError> {
    Ok(match kind {
        AllocatorKind::Udmabuf => Box::new(UdmabufAllocator::open()?),
        AllocatorKind::DmaHeap => Box::new(DmaHeapAllocator::open()?),
        #[cfg(feature = "gbm")]
        AllocatorKind::Gbm => Box::new(GbmAllocator::open()?),
        #[cfg(not(feature = "gbm"))]
        AllocatorKind::Gbm => return Err(AllocError::NotCompiledIn { kind, feature: "gbm" }),
        AllocatorKind::Memfd => Box::new(MemfdAllocator::new()),
    })
}

/// Opens `kind` and proves it works by allocating a 1x1 XRGB8888 buffer.
fn open_and_try(kind: AllocatorKind) -> Result<Box<dyn Allocator>, AllocError> {
    let allocator = open(kind)?;
    let buf = allocator.allocate(DrmFourcc::Xrgb8888, 1, 1, 1)?;
    if buf.is_kernel_dmabuf() != kind.makes_kernel_dmabufs() {
        return Err(AllocError::NotADmaBuf { kind });
    }
    Ok(allocator)
}

/// What [`probe`] found for one back end.
#[derive(Debug)]
pub struct ProbeResult {
    /// The back end.
    pub kind: AllocatorKind,
    /// `Ok` when a test allocation worked, else why not.
    pub result: Result<(), AllocError>,
}

/// Tries every back end (a real test allocation each) and reports each one.
pub fn probe() -> Vec<ProbeResult> {
    AllocatorKind::ALL
        .into_iter()
        .map(|kind| ProbeResult {
            kind,
            result: open_and_try(kind).map(drop),
        })
        .collect()
}

/// The first back end that works, in [`AllocatorKind::ALL`] order, or the one
/// named by [`ALLOCATOR_ENV`] (an error if that one does not work; set but
/// empty counts as unset). [`Allocator::kind`] says which was chosen.
pub fn best_available() -> Result<Box<dyn Allocator>, AllocError> {
    if let Ok(name) = std::env::var(ALLOCATOR_ENV)
        && !name.trim().is_empty()
    {
        return open_and_try(AllocatorKind::from_name(name.trim())?);
    }
    let mut last = None;
    for kind in AllocatorKind::ALL {
        match open_and_try(kind) {
            Ok(allocator) => return Ok(allocator),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(AllocError::UnknownKind { name: String::new() }))
}
