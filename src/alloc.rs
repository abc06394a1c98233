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
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use drm_fourcc::{DrmFourcc, DrmModifier};
use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};
use rustix::io::Errno;

use crate::dmabuf::{DmaBuf, DmaBufError};
use crate::format::{self, FormatError, Layout};
use crate::sys;

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

/// Plain memfds: works everywhere, not a kernel dma-buf.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemfdAllocator;

impl MemfdAllocator {
    /// The memfd allocator (it holds no resources).
    pub fn new() -> Self {
        MemfdAllocator
    }
}

impl FdSource for MemfdAllocator {
    fn kind(&self) -> AllocatorKind {
        AllocatorKind::Memfd
    }

    fn allocate_fd(&self, size: u64) -> Result<OwnedFd, AllocError> {
        sealed_memfd(AllocatorKind::Memfd, size)
    }
}
fd_source_allocator!(MemfdAllocator);

/// `/dev/udmabuf`: memfd pages exported as a kernel dma-buf.
#[derive(Debug)]
pub struct UdmabufAllocator {
    device: OwnedFd,
}

impl UdmabufAllocator {
    /// Default device node.
    pub const DEVICE: &'static str = "/dev/udmabuf";

    /// Opens [`DEVICE`](Self::DEVICE).
    pub fn open() -> Result<Self, AllocError> {
        Ok(Self {
            device: open_device(AllocatorKind::Udmabuf, Path::new(Self::DEVICE))?,
        })
    }
}

impl FdSource for UdmabufAllocator {
    fn kind(&self) -> AllocatorKind {
        AllocatorKind::Udmabuf
    }

    fn allocate_fd(&self, size: u64) -> Result<OwnedFd, AllocError> {
        // The memfd is only needed until the dma-buf holds its pages.
        let memfd = sealed_memfd(AllocatorKind::Udmabuf, size)?;
        sys::udmabuf_create(self.device.as_fd(), memfd.as_fd(), size)
            .map_err(syscall(AllocatorKind::Udmabuf, "UDMABUF_CREATE"))
    }
}
fd_source_allocator!(UdmabufAllocator);

/// A dma-heap (`/dev/dma_heap/<name>`), `system` by default.
#[derive(Debug)]
pub struct DmaHeapAllocator {
    heap: OwnedFd,
    path: PathBuf,
}

impl DmaHeapAllocator {
    /// Opens `/dev/dma_heap/system`.
    pub fn open() -> Result<Self, AllocError> {
        Self::open_heap("system")
    }

    /// Opens `/dev/dma_heap/<name>`.
    pub fn open_heap(name: &str) -> Result<Self, AllocError> {
        let path = Path::new("/dev/dma_heap").join(name);
        Ok(Self {
            heap: open_device(AllocatorKind::DmaHeap, &path)?,
            path,
        })
    }

    /// The heap's device node.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl FdSource for DmaHeapAllocator {
    fn kind(&self) -> AllocatorKind {
        AllocatorKind::DmaHeap
    }

    fn allocate_fd(&self, size: u64) -> Result<OwnedFd, AllocError> {
        sys::dma_heap_alloc(self.heap.as_fd(), size).map_err(syscall(AllocatorKind::DmaHeap, "DMA_HEAP_IOCTL_ALLOC"))
    }
}
fd_source_allocator!(DmaHeapAllocator);

#[cfg(feature = "gbm")]
pub use self::gbm_backend::GbmAllocator;

#[cfg(feature = "gbm")]
mod gbm_backend {
    use super::*;

    /// GBM on a DRM render or card node: buffers in GPU-visible memory,
    /// LINEAR.
    pub struct GbmAllocator {
        device: gbm::Device<std::fs::File>,
        node: PathBuf,
    }

    impl fmt::Debug for GbmAllocator {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("GbmAllocator").field("node", &self.node).finish()
        }
    }

    impl GbmAllocator {
        /// Opens the first DRM node where GBM really allocates: render
        /// nodes (`/dev/dri/renderD128` upwards) first, then card nodes,
        /// each proved by a 16x16 XRGB8888 allocation. Some drivers give
        /// GBM no buffers on their render node (virtio-gpu, vgem: dumb
        /// buffers are refused there with EACCES) but do on the card node.
        pub fn open() -> Result<Self, AllocError> {
            let mut last = AllocError::Unavailable {
                kind: AllocatorKind::Gbm,
                path: PathBuf::from("/dev/dri/renderD128"),
                source: Errno::NOENT,
            };
            let render = (128..192).map(|minor| format!("/dev/dri/renderD{minor}"));
            let card = (0..64).map(|minor| format!("/dev/dri/card{minor}"));
            for node in render.chain(card).map(PathBuf::from) {
                if !node.exists() {
                    continue;
                }
                let proved = Self::open_node(&node)
                    .and_then(|allocator| allocator.allocate(DrmFourcc::Xrgb8888, 16, 16, 64).map(|_| allocator));
                match proved {
                    Ok(allocator) => return Ok(allocator),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }

        /// Opens GBM on the render node at `node`.
        pub fn open_node(node: &Path) -> Result<Self, AllocError> {
            let file = std::fs::File::from(open_device(AllocatorKind::Gbm, node)?);
            let device = gbm::Device::new(file).map_err(|e| AllocError::Unavailable {
                kind: AllocatorKind::Gbm,
                path: node.to_owned(),
                source: Errno::from_io_error(&e).unwrap_or(Errno::NODEV),
            })?;
            Ok(Self {
                device,
                node: node.to_owned(),
            })
        }

        /// The render node in use.
        pub fn node(&self) -> &Path {
            &self.node
        }
    }

    impl Allocator for GbmAllocator {
        fn kind(&self) -> AllocatorKind {
            AllocatorKind::Gbm
        }

        fn allocate(
            &self,
            fourcc: DrmFourcc,
            width: u32,
            height: u32,
            stride_align: u32,
        ) -> Result<DmaBuf, AllocError> {
            // Validates the request (format, size, alignment) before GBM sees it.
            format::linear_layout(fourcc, width, height, stride_align)?;
            let gbm_error = |op| {
                move |e: std::io::Error| AllocError::Syscall {
                    kind: AllocatorKind::Gbm,
                    op,
                    source: Errno::from_io_error(&e).unwrap_or(Errno::INVAL),
                }
            };
            let bo = self
                .device
                .create_buffer_object::<()>(width, height, fourcc, gbm::BufferObjectFlags::LINEAR)
                .map_err(gbm_error("gbm_bo_create"))?;
            // GBM_BO_USE_LINEAR asks for a linear layout; backends without
            // modifier support (virtio-gpu's card node, seen in the VM stage)
            // still report DRM_FORMAT_MOD_INVALID for such a bo.
            let modifier = match bo.modifier() {
                DrmModifier::Invalid => DrmModifier::Linear,
                other => other,
            };
            let mut builder = DmaBuf::builder(fourcc, modifier, width, height);
            for plane in 0..bo.plane_count() as i32 {
                let stride = bo.stride_for_plane(plane);
                if stride % stride_align != 0 {
                    return Err(AllocError::StrideAlignment {
                        kind: AllocatorKind::Gbm,
                        plane: plane as usize,
                        stride,
                        align: stride_align,
                    });
                }
                // gbm_bo_get_fd_for_plane returns a new dma-buf fd we own; the
                // dma-buf outlives the bo, which is destroyed at return.
                let fd = bo.fd_for_plane(plane).map_err(|_| AllocError::Syscall {
                    kind: AllocatorKind::Gbm,
                    op: "gbm_bo_get_fd_for_plane",
                    source: Errno::BADF,
                })?;
                builder = builder.plane(fd, bo.offset(plane), stride);
            }
            Ok(builder.build()?)
        }

        fn allocate_layout(&self, _: DrmFourcc, _: u32, _: u32, _: &Layout) -> Result<DmaBuf, AllocError> {
            Err(AllocError::ExactLayoutUnsupported {
                kind: AllocatorKind::Gbm,
            })
        }

        fn allocate_bytes(&self, _: u64) -> Result<OwnedFd, AllocError> {
            Err(AllocError::ExactLayoutUnsupported {
                kind: AllocatorKind::Gbm,
            })
        }
    }
}

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

/// Errors of the `alloc` module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The back end's device cannot be opened on this machine.
    #[error("{kind} allocator unavailable: cannot open {}: {source}", path.display())]
    Unavailable {
        /// The back end.
        kind: AllocatorKind,
        /// The device node tried.
        path: PathBuf,
        /// Why it could not be opened.
        source: Errno,
    },
    /// The back end was left out at compile time.
    #[error("{kind} allocator not compiled in: enable cargo feature `{feature}`")]
    NotCompiledIn {
        /// The back end.
        kind: AllocatorKind,
        /// The cargo feature that brings it.
        feature: &'static str,
    },
    /// [`ALLOCATOR_ENV`] or [`AllocatorKind::from_name`] got a name that is no
    /// back end.
    #[error("unknown allocator {name:?}: expected one of udmabuf, dma-heap, gbm, memfd")]
    UnknownKind {
        /// The name given.
        name: String,
    },
    /// The request itself is invalid (format, size, alignment).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A system call failed.
    #[error("{kind} allocator: {op} failed: {source}")]
    Syscall {
        /// The back end.
        kind: AllocatorKind,
        /// The call.
        op: &'static str,
        /// The error.
        source: Errno,
    },
    /// The buffer is larger than the back end can allocate.
    #[error("{kind} allocator: {size} bytes is too large")]
    TooLarge {
        /// The back end.
        kind: AllocatorKind,
        /// Bytes asked for.
        size: u64,
    },
    /// The back end chose a stride that breaks the caller's alignment.
    #[error("{kind} allocator: plane {plane} got stride {stride}, not a multiple of the required {align}")]
    StrideAlignment {
        /// The back end.
        kind: AllocatorKind,
        /// Index of the plane.
        plane: usize,
        /// Stride chosen.
        stride: u32,
        /// Alignment required.
        align: u32,
    },
    /// The back end picks its own layout and cannot follow a given one.
    #[error("{kind} allocator chooses its own layout and cannot allocate an exact one")]
    ExactLayoutUnsupported {
        /// The back end.
        kind: AllocatorKind,
    },
    /// The fd the back end returned is not what it should be (a kernel
    /// dma-buf for every kind but memfd).
    #[error("{kind} allocator returned an fd that is not a kernel dma-buf")]
    NotADmaBuf {
        /// The back end.
        kind: AllocatorKind,
    },
    /// The allocated fd did not validate as the requested buffer.
    #[error("allocated buffer is invalid: {0}")]
    Buffer(#[from] DmaBufError),
}
