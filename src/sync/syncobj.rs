//! DRM syncobj timelines: [`DrmDevice`], [`Timeline`], [`TimelinePoint`]
//! (what `wp_linux_drm_syncobj_v1` and Vulkan timeline semaphores use).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use drm::control::{Device as _, syncobj};

use super::fence::{FenceError, drm_err, errno};
use crate::sys;

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
