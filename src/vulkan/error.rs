//! Errors of the Vulkan adapter.

use ash::vk;
use drm_fourcc::DrmFourcc;
use rustix::io::Errno;

use crate::alloc::AllocError;
use crate::dmabuf::{DmaBufError, ModifierName};
use crate::format::FormatError;

/// Why libvulkan could not be loaded ([`VulkanError::Loader`]): ash's
/// `LoadingError` (the library missing, or an entry point it lacks),
/// shared so that `VulkanError` stays `Clone`; two are equal when they are
/// the same failure.
#[derive(Debug, Clone)]
pub struct LoaderError(std::sync::Arc<ash::LoadingError>);

impl From<ash::LoadingError> for LoaderError {
    fn from(e: ash::LoadingError) -> Self {
        Self(std::sync::Arc::new(e))
    }
}

impl std::fmt::Display for LoaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for LoaderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for LoaderError {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for LoaderError {}

/// Why a Vulkan adapter operation failed. Each variant names the device,
/// format, plane or number involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VulkanError {
    /// libvulkan could not be loaded.
    #[error(
        "cannot load the Vulkan loader (install libvulkan1 and a driver; \
         on Debian 12 `scripts/setup` installs Mesa 25's lavapipe)"
    )]
    Loader(#[source] LoaderError),
    /// A Vulkan call returned an error.
    #[error("{call} failed: {result}")]
    Call {
        /// The Vulkan entry point.
        call: &'static str,
        /// What it returned.
        result: vk::Result,
    },
    /// No physical device matched the selection.
    #[error("no Vulkan device matches {wanted}; available: {available}")]
    NoDevice {
        /// What was asked for.
        wanted: String,
        /// The devices the loader listed, with why each was passed over.
        available: String,
    },
    /// The device lacks an extension the operation needs.
    #[error("Vulkan device {device:?} lacks {extension} (needed for {needed_for})")]
    MissingExtension {
        /// Device name.
        device: String,
        /// The extension.
        extension: String,
        /// What it is needed for.
        needed_for: &'static str,
    },
    /// The device's Vulkan version is too old.
    #[error("Vulkan device {device:?} supports Vulkan {version}; 1.2 or newer is needed")]
    TooOld {
        /// Device name.
        device: String,
        /// The version it reports, as major.minor.
        version: String,
    },
    /// The fourcc has no Vulkan format.
    #[error("format {fourcc} has no Vulkan equivalent in dmabuf_interop::vulkan::VK_FORMATS")]
    UnsupportedFormat {
        /// The format.
        fourcc: DrmFourcc,
    },
    /// The modifier cannot be used for this format on this device.
    #[error("modifier {modifier} is not supported for {fourcc} on {device:?}: {reason}")]
    UnsupportedModifier {
        /// The format.
        fourcc: DrmFourcc,
        /// The modifier.
        modifier: ModifierName,
        /// Device name.
        device: String,
        /// Why.
        reason: &'static str,
    },
    /// The device cannot import or create such an image at all.
    #[error("{fourcc} {width}x{height} with modifier {modifier} cannot be {action} as a dma-buf on {device:?}")]
    NotSupported {
        /// The format.
        fourcc: DrmFourcc,
        /// The modifier.
        modifier: ModifierName,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// "imported" or "exported".
        action: &'static str,
        /// Device name.
        device: String,
    },
    /// The image exceeds the device's limits.
    #[error("{fourcc} {width}x{height} is larger than {device:?} allows ({max_width}x{max_height})")]
    TooLarge {
        /// The format.
        fourcc: DrmFourcc,
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
        /// Largest width.
        max_width: u32,
        /// Largest height.
        max_height: u32,
        /// Device name.
        device: String,
    },
    /// Without explicit modifiers the driver decides the LINEAR layout; the
    /// dma-buf must match it.
    #[error(
        "plane {plane}: the dma-buf's {field} is {given} but {device:?} lays out a LINEAR {fourcc} \
         {width}x{height} with {field} {needed}; allocate with the driver's layout \
         (vulkan::linear_layout) or use a device with VK_EXT_image_drm_format_modifier"
    )]
    LayoutMismatch {
        /// Index of the plane.
        plane: usize,
        /// "stride" or "offset".
        field: &'static str,
        /// The dma-buf's value.
        given: u64,
        /// The driver's value.
        needed: u64,
        /// The format.
        fourcc: DrmFourcc,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Device name.
        device: String,
    },
    /// The dma-buf has another number of planes than the modifier has
    /// memory planes on this device.
    #[error(
        "{fourcc:?} with modifier {modifier} has {needed} memory plane(s) on {device}, the dma-buf describes {given}"
    )]
    PlaneCount {
        /// The format.
        fourcc: DrmFourcc,
        /// The modifier.
        modifier: ModifierName,
        /// Planes the dma-buf describes.
        given: usize,
        /// Memory planes of the modifier (`drmFormatModifierPlaneCount`).
        needed: usize,
        /// Device name.
        device: String,
    },
    /// The fd is smaller than the memory the image needs.
    #[error("plane {plane}: the image needs {needed} bytes of its fd from offset 0, the fd has {fd_size}")]
    FdTooSmall {
        /// Index of the plane.
        plane: usize,
        /// Bytes needed.
        needed: u64,
        /// Bytes the fd has.
        fd_size: u64,
    },
    /// No memory type accepts both the fd and the image.
    #[error("no memory type suits both the dma-buf (types {fd_types:#b}) and the image (types {image_types:#b})")]
    NoMemoryType {
        /// Types the fd can be imported as.
        fd_types: u32,
        /// Types the image accepts.
        image_types: u32,
    },
    /// Planes in separate files need a disjoint image.
    #[error("{fourcc}: planes live in {files} different files and {device:?} cannot bind them disjointly: {reason}")]
    Disjoint {
        /// The format.
        fourcc: DrmFourcc,
        /// Distinct files.
        files: usize,
        /// Device name.
        device: String,
        /// Why.
        reason: &'static str,
    },
    /// dup of a plane fd failed.
    #[error("plane {plane}: dup of the fd failed")]
    Dup {
        /// Index of the plane.
        plane: usize,
        /// The error.
        source: Errno,
    },
    /// The operation does not apply to this image.
    #[error("{0}")]
    Usage(&'static str),
    /// Implicit synchronisation with a kernel dma-buf failed.
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    /// An explicit fence could not be read or made (a release fence to wait
    /// for, a timeline point to export).
    #[error("fence")]
    Fence(#[source] crate::sync::FenceError),
    /// The GPU did not finish within the bound (a fence that never
    /// signals: a hung device, or a dma-buf fence its producer never
    /// signals). What the work uses is freed once it does finish.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: &'static str,
        /// The bound.
        timeout: std::time::Duration,
    },
    /// Allocating host memory for the export failed.
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// The resulting buffer did not validate.
    #[error(transparent)]
    DmaBuf(#[from] DmaBufError),
    /// A layout computation failed.
    #[error(transparent)]
    Format(#[from] FormatError),
}

/// Maps a failed Vulkan call to [`VulkanError::Call`].
pub(crate) fn call(name: &'static str) -> impl FnOnce(vk::Result) -> VulkanError {
    move |result| VulkanError::Call { call: name, result }
}
