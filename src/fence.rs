//! Fences as values: the point at which a buffer's contents are ready (an
//! acquire fence) or at which it may be written again (a release fence).
//!
//! A [`Fence`] is one of three things, and every explicit-sync path of the
//! crate speaks in them:
//! - [`Fence::Implicit`]: no fence of its own; the dma-buf's reservation
//!   object (implicit sync) orders the accesses. [`Fence::from_dmabuf`]
//!   turns that into an explicit sync_file where the kernel can
//!   (`DMA_BUF_IOCTL_EXPORT_SYNC_FILE`, Linux 6.0, kernel dma-bufs only).
//! - [`Fence::SyncFile`]: a sync_file fd (what Vulkan's SYNC_FD semaphores,
//!   EGL native fences and `zwp_linux_explicit_synchronization_v1` use).
//! - [`Fence::Timeline`]: a point on a DRM syncobj timeline
//!   ([`Timeline`], what `wp_linux_drm_syncobj_v1` and Vulkan timeline
//!   semaphores imported from an OPAQUE_FD use).
//!
//! Conversions go through the kernel: a sync_file is imported into a
//! timeline point and exported from one by way of a binary syncobj
//! (`DRM_IOCTL_SYNCOBJ_TRANSFER`), through the `drm` crate's syncobj
//! ioctls (and `sys` for the one it cannot do). Timelines need a DRM node
//! whose driver has `DRM_CAP_SYNCOBJ_TIMELINE` ([`DrmDevice`]).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use drm::control::{Device as _, syncobj};

use crate::dmabuf::DmaBuf;
use crate::sync::{self, SyncAccess, SyncError};
use crate::sys;

/// Errors of the `fence` module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    /// A DRM node could not be opened or has no timeline syncobjs.
    #[error("DRM device {path}: {reason}")]
    Device {
        /// The node.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No DRM node with timeline syncobjs was found.
    #[error("no DRM node with timeline syncobjs (DRM_CAP_SYNCOBJ_TIMELINE) under /dev/dri")]
    NoDevice,
    /// A syncobj ioctl failed.
    #[error("{op} failed: {source}")]
    Drm {
        /// The operation.
        op: &'static str,
        /// What the kernel said.
        source: rustix::io::Errno,
    },
    /// The timeline point has no fence yet (nothing was submitted for it),
    /// so there is nothing to export.
    #[error("timeline point {point} has no fence yet")]
    NotSubmitted {
        /// The point.
        point: u64,
    },
    /// Implicit-sync export or import failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// Polling a sync_file failed.
    #[error("poll on a sync_file failed: {0}")]
    Poll(rustix::io::Errno),
}

fn drm_err(op: &'static str) -> impl FnOnce(std::io::Error) -> FenceError {
    move |e| FenceError::Drm { op, source: errno(&e) }
}

/// The kernel's errno behind an `io::Error` from the `drm` crate.
fn errno(e: &std::io::Error) -> rustix::io::Errno {
    rustix::io::Errno::from_io_error(e).unwrap_or(rustix::io::Errno::IO)
}

/// The point at which a buffer's contents are ready, or may be reused.
#[derive(Debug)]
pub enum Fence {
    /// The dma-buf's own fences (implicit sync).
    Implicit,
    /// A sync_file.
    SyncFile(OwnedFd),
    /// A point on a DRM syncobj timeline.
    Timeline(TimelinePoint),
}

impl Fence {
    /// The fences a reader of `buf` must wait for (its writers), as a
    /// sync_file: one per distinct fd, merged. `Ok(Fence::Implicit)` where
    /// the buffer cannot tell (a memfd stand-in, a kernel before 6.0): its
    /// readers then rely on implicit sync, as before.
    pub fn from_dmabuf(buf: &DmaBuf) -> Result<Fence, FenceError> {
        let mut files = Vec::new();
        let mut seen: Vec<BorrowedFd<'_>> = Vec::new();
        for plane in buf.planes() {
            let fd = plane.fd();
            if seen.iter().any(|s| same_file(*s, fd)) {
                continue;
            }
            seen.push(fd);
            match sync::export_sync_file(fd, SyncAccess::Read) {
                Ok(f) => files.push(f),
                Err(SyncError::Unsupported { .. }) => return Ok(Fence::Implicit),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(sync_file_merge_all(files)?.map_or(Fence::Implicit, Fence::SyncFile))
    }

    /// This fence, with [`Fence::Implicit`] made explicit from `buf`'s own
    /// fences ([`from_dmabuf`](Self::from_dmabuf)) where the kernel can.
    pub fn or_from_dmabuf(self, buf: &DmaBuf) -> Result<Fence, FenceError> {
        match self {
            Fence::Implicit => Fence::from_dmabuf(buf),
            explicit => Ok(explicit),
        }
    }

    /// The fence as a sync_file of its own (a dup, or a timeline point
    /// exported); `None` for [`Fence::Implicit`].
    pub fn to_sync_file(&self) -> Result<Option<OwnedFd>, FenceError> {
        match self {
            Fence::Implicit => Ok(None),
            Fence::SyncFile(fd) => dup(fd.as_fd(), "dup of a sync_file").map(Some),
            Fence::Timeline(p) => p.timeline.export_sync_file(p.point).map(Some),
        }
    }

    /// Whether the fence has signalled; `None` for [`Fence::Implicit`],
    /// which has no state of its own.
    pub fn is_signalled(&self) -> Result<Option<bool>, FenceError> {
        match self {
            Fence::Implicit => Ok(None),
            Fence::SyncFile(fd) => sync_file_wait(fd.as_fd(), Duration::ZERO).map(Some),
            Fence::Timeline(p) => p.timeline.is_signalled(p.point).map(Some),
        }
    }

    /// Waits up to `timeout` for the fence; true once signalled (always
    /// for [`Fence::Implicit`]).
    pub fn wait(&self, timeout: Duration) -> Result<bool, FenceError> {
        match self {
            Fence::Implicit => Ok(true),
            Fence::SyncFile(fd) => sync_file_wait(fd.as_fd(), timeout),
            Fence::Timeline(p) => p.timeline.wait(p.point, timeout),
        }
    }
}

/// A sync_file that signals when both `a` and `b` have (`SYNC_IOC_MERGE`).
pub fn sync_file_merge(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> Result<OwnedFd, FenceError> {
    sys::sync_file_merge(a, b).map_err(|source| FenceError::Drm {
        op: "SYNC_IOC_MERGE",
        source,
    })
}

/// One sync_file for all of `files` (merged); `None` for none.
pub fn sync_file_merge_all(files: impl IntoIterator<Item = OwnedFd>) -> Result<Option<OwnedFd>, FenceError> {
    let mut merged: Option<OwnedFd> = None;
    for file in files {
        merged = Some(match merged {
            None => file,
            Some(m) => sync_file_merge(m.as_fd(), file.as_fd())?,
        });
    }
    Ok(merged)
}

/// A dup of `fd` (`what` names it in the error).
pub(crate) fn dup(fd: BorrowedFd<'_>, what: &'static str) -> Result<OwnedFd, FenceError> {
    fd.try_clone_to_owned().map_err(|e| FenceError::Drm {
        op: what,
        source: errno(&e),
    })
}

/// Waits up to `timeout` for a sync_file to signal (poll for POLLIN).
pub fn sync_file_wait(sync_file: BorrowedFd<'_>, timeout: Duration) -> Result<bool, FenceError> {
    crate::sys::poll_one(sync_file, rustix::event::PollFlags::IN, timeout).map_err(FenceError::Poll)
}

fn same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    match (rustix::fs::fstat(a), rustix::fs::fstat(b)) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}

/// An open DRM node (render node preferred) whose driver has timeline
/// syncobjs.
#[derive(Debug)]
pub struct DrmDevice {
    fd: OwnedFd,
    path: PathBuf,
    rdev: u64,
}

impl AsFd for DrmDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl drm::Device for DrmDevice {}
impl drm::control::Device for DrmDevice {}

impl DrmDevice {
    /// Opens `path` and checks `DRM_CAP_SYNCOBJ_TIMELINE`.
    pub fn open(path: &Path) -> Result<Arc<Self>, FenceError> {
        let device = |reason: String| FenceError::Device {
            path: path.to_owned(),
            reason,
        };
        let fd = rustix::fs::open(
            path,
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| device(format!("open: {e}")))?;
        let rdev = rustix::fs::fstat(&fd)
            .map_err(|e| device(format!("fstat: {e}")))?
            .st_rdev;
        let this = Self {
            fd,
            path: path.to_owned(),
            rdev,
        };
        use drm::Device as _;
        match this.get_driver_capability(drm::DriverCapability::TimelineSyncObj) {
            Ok(1) => Ok(Arc::new(this)),
            Ok(_) => Err(device(
                "the driver has no timeline syncobjs (DRM_CAP_SYNCOBJ_TIMELINE = 0)".into(),
            )),
            Err(e) => Err(device(format!("DRM_CAP_SYNCOBJ_TIMELINE: {e}"))),
        }
    }

    /// The first node under /dev/dri with timeline syncobjs, render nodes
    /// first; with `rdev`, a node of that device (a compositor's
    /// linux-dmabuf main device) before any other.
    pub fn find(rdev: Option<u64>) -> Result<Arc<Self>, FenceError> {
        let mut nodes: Vec<(bool, bool, PathBuf)> = std::fs::read_dir("/dev/dri")
            .map_err(|_| FenceError::NoDevice)?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let render = name.starts_with("renderD");
                if !render && !name.starts_with("card") {
                    return None;
                }
                let same =
                    rdev.is_some_and(|r| rustix::fs::stat(e.path()).is_ok_and(|s| same_drm_device(s.st_rdev, r)));
                Some((!same, !render, e.path()))
            })
            .collect();
        nodes.sort();
        nodes
            .iter()
            .find_map(|(_, _, p)| Self::open(p).ok())
            .ok_or(FenceError::NoDevice)
    }

    /// The node's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The node's device number.
    pub fn rdev(&self) -> u64 {
        self.rdev
    }
}

/// Whether two DRM device numbers are nodes of one device: the same
/// number, or a card and a render node of one driver instance (which
/// share a sysfs device).
fn same_drm_device(a: u64, b: u64) -> bool {
    if a == b {
        return true;
    }
    let sys = |d: u64| {
        let (major, minor) = (rustix::fs::major(d), rustix::fs::minor(d));
        std::fs::canonicalize(format!("/sys/dev/char/{major}:{minor}/device")).ok()
    };
    matches!((sys(a), sys(b)), (Some(x), Some(y)) if x == y)
}

/// A DRM timeline syncobj. Destroyed (its handle) on drop; an exported fd
/// keeps the kernel object alive for whoever holds it.
#[derive(Debug)]
pub struct Timeline {
    device: Arc<DrmDevice>,
    handle: syncobj::Handle,
}

impl Drop for Timeline {
    fn drop(&mut self) {
        let _ = self.device.destroy_syncobj(self.handle);
    }
}

/// A point on a [`Timeline`].
#[derive(Debug, Clone)]
pub struct TimelinePoint {
    /// The timeline.
    pub timeline: Arc<Timeline>,
    /// The point.
    pub point: u64,
}

impl Timeline {
    /// A new timeline on `device`, at point 0 (signalled).
    pub fn new(device: &Arc<DrmDevice>) -> Result<Arc<Self>, FenceError> {
        let handle = device
            .create_syncobj(false)
            .map_err(drm_err("DRM_IOCTL_SYNCOBJ_CREATE"))?;
        Ok(Arc::new(Self {
            device: device.clone(),
            handle,
        }))
    }

    /// Imports a timeline exported by another process or device (an opaque
    /// syncobj fd, e.g. from `vkGetSemaphoreFdKHR(OPAQUE_FD)`).
    pub fn import(device: &Arc<DrmDevice>, fd: BorrowedFd<'_>) -> Result<Arc<Self>, FenceError> {
        let handle = device
            .fd_to_syncobj(fd, false)
            .map_err(drm_err("DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE"))?;
        Ok(Arc::new(Self {
            device: device.clone(),
            handle,
        }))
    }

    /// The device the handle lives on.
    pub fn device(&self) -> &Arc<DrmDevice> {
        &self.device
    }

    /// An opaque fd of the syncobj (for `wp_linux_drm_syncobj_manager_v1
    /// .import_timeline` or a Vulkan timeline semaphore import).
    pub fn export(&self) -> Result<OwnedFd, FenceError> {
        self.device
            .syncobj_to_fd(self.handle, false)
            .map_err(drm_err("DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD"))
    }

    /// Signals `point` (and with it every earlier point) from the CPU.
    pub fn signal(&self, point: u64) -> Result<(), FenceError> {
        self.device
            .syncobj_timeline_signal(&[self.handle], &[point])
            .map_err(drm_err("DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL"))
    }

    /// The last signalled point.
    pub fn signalled_point(&self) -> Result<u64, FenceError> {
        let mut points = [0u64];
        self.device
            .syncobj_timeline_query(&[self.handle], &mut points, false)
            .map_err(drm_err("DRM_IOCTL_SYNCOBJ_QUERY"))?;
        Ok(points[0])
    }

    /// Whether `point` has signalled.
    pub fn is_signalled(&self, point: u64) -> Result<bool, FenceError> {
        Ok(self.signalled_point()? >= point)
    }

    /// Waits up to `timeout` for `point` to signal (also while nothing was
    /// submitted for it yet); false on timeout.
    pub fn wait(&self, point: u64, timeout: Duration) -> Result<bool, FenceError> {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let deadline = i128::from(now.tv_sec) * 1_000_000_000 + i128::from(now.tv_nsec) + timeout.as_nanos() as i128;
        let deadline = i64::try_from(deadline).unwrap_or(i64::MAX);
        match self
            .device
            .syncobj_timeline_wait(&[self.handle], &[point], deadline, true, true, false)
        {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::TIME.raw_os_error()) => Ok(false),
            Err(e) => Err(FenceError::Drm {
                op: "DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT",
                source: errno(&e),
            }),
        }
    }

    /// Whether `point` has a fence yet (signalled or not): only then can it
    /// be exported as a sync_file.
    pub fn has_fence(&self, point: u64) -> Result<bool, FenceError> {
        match self
            .device
            // WAIT_FOR_SUBMIT too: kernels before 6.6 answer EINVAL for a
            // point without a fence under WAIT_AVAILABLE alone; with both
            // and no timeout, "not yet" is ETIME on every kernel.
            .syncobj_timeline_wait(&[self.handle], &[point], 0, true, true, true)
        {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::TIME.raw_os_error()) => Ok(false),
            Err(e) => Err(FenceError::Drm {
                op: "DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT(WAIT_AVAILABLE | WAIT_FOR_SUBMIT)",
                source: errno(&e),
            }),
        }
    }

    /// Makes `point` signal when `sync_file` does (the sync_file stays the
    /// caller's).
    pub fn import_sync_file(&self, point: u64, sync_file: BorrowedFd<'_>) -> Result<(), FenceError> {
        let binary = self.binary()?;
        sys::syncobj_import_sync_file(self.device.as_fd(), binary.handle.into(), sync_file).map_err(|e| {
            FenceError::Drm {
                op: "DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE(IMPORT_SYNC_FILE)",
                source: e,
            }
        })?;
        self.device
            .syncobj_timeline_transfer(binary.handle, self.handle, 0, point)
            .map_err(drm_err("DRM_IOCTL_SYNCOBJ_TRANSFER"))
    }

    /// The fence of `point` as a sync_file. `FenceError::NotSubmitted`
    /// while nothing was submitted for the point.
    pub fn export_sync_file(&self, point: u64) -> Result<OwnedFd, FenceError> {
        let binary = self.binary()?;
        self.device
            .syncobj_timeline_transfer(self.handle, binary.handle, point, 0)
            .map_err(|e| {
                if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) {
                    FenceError::NotSubmitted { point }
                } else {
                    FenceError::Drm {
                        op: "DRM_IOCTL_SYNCOBJ_TRANSFER",
                        source: errno(&e),
                    }
                }
            })?;
        self.device
            .syncobj_to_fd(binary.handle, true)
            .map_err(drm_err("DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD(EXPORT_SYNC_FILE)"))
    }

    /// Moves the fence of `src` (a point of a timeline on the same device
    /// file, or any timeline by way of a sync_file) to `point` here.
    pub fn import_point(&self, point: u64, src: &TimelinePoint) -> Result<(), FenceError> {
        if Arc::ptr_eq(&self.device, &src.timeline.device) {
            return self
                .device
                .syncobj_timeline_transfer(src.timeline.handle, self.handle, src.point, point)
                .map_err(drm_err("DRM_IOCTL_SYNCOBJ_TRANSFER"));
        }
        let file = src.timeline.export_sync_file(src.point)?;
        self.import_sync_file(point, file.as_fd())
    }

    /// Registers `eventfd` to be signalled when `point` signals
    /// (`DRM_IOCTL_SYNCOBJ_EVENTFD`, Linux 6.6), for waiting in a poll loop.
    pub fn notify(&self, point: u64, eventfd: BorrowedFd<'_>) -> Result<(), FenceError> {
        self.device
            .syncobj_eventfd(self.handle, point, eventfd, false)
            .map_err(drm_err("DRM_IOCTL_SYNCOBJ_EVENTFD"))
    }

    /// A temporary binary syncobj on the same device.
    fn binary(&self) -> Result<Timeline, FenceError> {
        let handle = self
            .device
            .create_syncobj(false)
            .map_err(drm_err("DRM_IOCTL_SYNCOBJ_CREATE"))?;
        Ok(Timeline {
            device: self.device.clone(),
            handle,
        })
    }
}
