//! The Vulkan context: instance, device and queue with what dma-buf interop
//! needs, created here or wrapped from the caller's.

use std::ffi::{CStr, CString, c_void};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use ash::{ext, khr, vk};

use super::error::{VulkanError, call};
use super::retire::{Destroy, Retired};

/// Environment variable that overrides the device choice: a substring of the
/// device name (`llvmpipe`), a DRM node path (`/dev/dri/renderD128`) or an
/// index into the loader's list (`#1`).
pub const DEVICE_ENV: &str = "DMABUF_INTEROP_VULKAN_DEVICE";

/// Extensions without which nothing in this adapter works.
pub const REQUIRED_EXTENSIONS: [&CStr; 3] = [
    khr::external_memory_fd::NAME,
    ext::external_memory_dma_buf::NAME,
    ext::queue_family_foreign::NAME,
];

/// Which device to use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeviceSelector {
    /// The first suitable device, preferring discrete, then integrated GPUs,
    /// then anything else (lavapipe).
    #[default]
    Default,
    /// The first suitable device whose name contains this text.
    Name(String),
    /// The device behind this DRM node (`/dev/dri/renderD128`), matched via
    /// `VK_EXT_physical_device_drm`.
    DrmNode(std::path::PathBuf),
    /// The n-th device the loader lists.
    Index(usize),
}

impl DeviceSelector {
    fn from_env() -> Option<Self> {
        let value = std::env::var(DEVICE_ENV).ok()?;
        let value = value.trim();
        Some(if value.starts_with("/dev/") {
            DeviceSelector::DrmNode(value.into())
        } else if let Some(index) = value.strip_prefix('#').and_then(|n| n.parse().ok()) {
            DeviceSelector::Index(index)
        } else {
            DeviceSelector::Name(value.to_owned())
        })
    }
}

impl fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSelector::Default => f.write_str("any device with dma-buf support"),
            DeviceSelector::Name(n) => write!(f, "name containing {n:?}"),
            DeviceSelector::DrmNode(p) => write!(f, "DRM node {}", p.display()),
            DeviceSelector::Index(i) => write!(f, "device #{i}"),
        }
    }
}

/// Options for [`VulkanContext::new`].
#[derive(Debug, Clone, Default)]
pub struct ContextOptions {
    /// Device choice; [`DEVICE_ENV`] overrides it.
    pub device: DeviceSelector,
    /// Enable `VK_LAYER_KHRONOS_validation` and collect its warnings and
    /// errors (see [`VulkanContext::validation_messages`]). An error if the
    /// layer is not installed.
    pub validation: bool,
}

/// What the device offers beyond the required extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// `VK_EXT_image_drm_format_modifier`: explicit tiling and plane layouts.
    pub drm_format_modifier: bool,
    /// `VK_KHR_external_semaphore_fd` with SYNC_FD export: GPU completion as a
    /// sync_file.
    pub semaphore_sync_fd: bool,
    /// `samplerYcbcrConversion` feature (Vulkan 1.1).
    pub ycbcr_conversion: bool,
    /// `timelineSemaphore` feature (Vulkan 1.2): semaphores with 64-bit
    /// counters, signalled and waited on by the host too.
    pub timeline_semaphore: bool,
    /// The device's DRM render node (major, minor), from
    /// `VK_EXT_physical_device_drm`.
    pub render_node: Option<(i64, i64)>,
}

/// Identity of the chosen device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `deviceName`.
    pub name: String,
    /// Driver name and info, when the driver reports them.
    pub driver: String,
    /// Vulkan version the device supports, as major.minor.patch.
    pub api_version: String,
    /// Device type (CPU for lavapipe).
    pub device_type: vk::PhysicalDeviceType,
}

/// A device as [`VulkanContext::list_devices`] reports it.
#[derive(Debug, Clone)]
pub struct ListedDevice {
    /// `deviceName`.
    pub name: String,
    /// `Ok` when the device has what dma-buf interop needs, else why not.
    pub usable: Result<(), VulkanError>,
}

struct Validation {
    loader: ext::debug_utils::Instance,
    messenger: vk::DebugUtilsMessengerEXT,
    // Read by the callback through a raw pointer; freed after the messenger.
    messages: Box<Mutex<Vec<String>>>,
}

/// Instance, device and queue with dma-buf interop enabled. Shared as
/// `Arc<VulkanContext>` by everything made from it.
pub struct VulkanContext {
    entry: ash::Entry,
    instance: ash::Instance,
    physical: vk::PhysicalDevice,
    device: ash::Device,
    queue: Mutex<vk::Queue>,
    queue_family: u32,
    memory_fd: khr::external_memory_fd::Device,
    modifier: Option<ext::image_drm_format_modifier::Device>,
    semaphore_fd: Option<khr::external_semaphore_fd::Device>,
    capabilities: Capabilities,
    info: DeviceInfo,
    validation: Option<Validation>,
    owns_handles: bool,
    retired: Retired,
}

impl fmt::Debug for VulkanContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VulkanContext")
            .field("device", &self.info)
            .field("capabilities", &self.capabilities)
            .field("owns_handles", &self.owns_handles)
            .finish()
    }
}

struct Candidate {
    physical: vk::PhysicalDevice,
    name: String,
    device_type: vk::PhysicalDeviceType,
    api_version: u32,
    extensions: Vec<CString>,
    queue_family: Option<u32>,
    render_node: Option<(i64, i64)>,
}

impl Candidate {
    fn has(&self, name: &CStr) -> bool {
        self.extensions.iter().any(|e| e.as_c_str() == name)
    }

    /// Why this device cannot be used, if it cannot.
    fn unsuitable(&self) -> Option<VulkanError> {
        if vk::api_version_major(self.api_version) == 1 && vk::api_version_minor(self.api_version) < 2 {
            return Some(VulkanError::TooOld {
                device: self.name.clone(),
                version: format!(
                    "{}.{}",
                    vk::api_version_major(self.api_version),
                    vk::api_version_minor(self.api_version)
                ),
            });
        }
        for ext in REQUIRED_EXTENSIONS {
            if !self.has(ext) {
                return Some(VulkanError::MissingExtension {
                    device: self.name.clone(),
                    extension: ext.to_string_lossy().into_owned(),
                    needed_for: "dma-buf import and export",
                });
            }
        }
        if self.queue_family.is_none() {
            return Some(VulkanError::Usage("the device has no compute queue"));
        }
        None
    }
}

unsafe extern "system" fn debug_callback(
    severity: vk::DebugUtilsMessageSeverityFlagsEXT,
    types: vk::DebugUtilsMessageTypeFlagsEXT,
    data: *const vk::DebugUtilsMessengerCallbackDataEXT<'_>,
    user: *mut c_void,
) -> vk::Bool32 {
    // SAFETY: the loader passes a valid callback-data pointer for the duration
    // of the call; `user` is the Box<Mutex<Vec<String>>> owned by the
    // context, which destroys the messenger before freeing it.
    let (message, messages) = unsafe {
        let message = data
            .as_ref()
            .and_then(|d| d.message_as_c_str())
            .map(|m| m.to_string_lossy().into_owned())
            .unwrap_or_default();
        (message, &*(user as *const Mutex<Vec<String>>))
    };
    if is_outdated_layer_check(&message) {
        return vk::FALSE;
    }
    let text = format!("[{severity:?} {types:?}] {message}");
    eprintln!("vulkan validation: {text}");
    if let Ok(mut list) = messages.lock() {
        list.push(text);
    }
    vk::FALSE
}

/// Messages of older validation layers (Debian 12 ships 1.3.239) for rules
/// the current specification no longer has. First: VUID-VkImageCreateInfo-pNext-06722
/// applies to images whose format is *not* multi-planar since the rule was
/// split; for multi-planar images VUID-VkImageCreateInfo-pNext-10062 allows
/// the plane formats in `VkImageFormatListCreateInfo`, which DRM format
/// modifier tiling requires (VUID-VkImageCreateInfo-tiling-02353) for
/// per-plane views. Old layers report every plane format as incompatible.
///
/// And one miscomputation of the same layer: for an image created with
/// `VkImageDrmFormatModifierExplicitCreateInfoEXT` (an imported dma-buf) it
/// takes the format features as 0x0 and reports every transfer from it
/// (VUID-vkCmdCopyImageToBuffer-srcImage-01998), although
/// `vkGetImageDrmFormatModifierPropertiesEXT` returns the modifier the
/// device lists with TRANSFER_SRC (checked on lavapipe in the VM stage; the
/// probe prints each modifier's features). Our own check,
/// `usage_supported` in `image.rs`, refuses usages whose features the
/// modifier lacks before any image is created.
fn is_outdated_layer_check(message: &str) -> bool {
    let multi_planar_format_list = message.contains("VUID-VkImageCreateInfo-pNext-06722")
        && message
            .split_once("VkImageCreateInfo::format (")
            .is_some_and(|(_, rest)| rest.split(')').next().is_some_and(|f| f.contains("PLANE_")));
    let zero_modifier_features = message.contains("VUID-vkCmdCopyImageToBuffer-srcImage-01998")
        && message.contains("VkFormatFeatureFlags (0x0)")
        && message.contains("VK_IMAGE_TILING_DRM_FORMAT_MODIFIER_EXT");
    multi_planar_format_list || zero_modifier_features
}

fn c_string_field(bytes: &[std::ffi::c_char]) -> String {
    // SAFETY: Vulkan fixed-size name fields are NUL-terminated within their
    // array (the spec guarantees it); CStr::from_bytes_until_nul checks it.
    let bytes: &[u8] = unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast(), bytes.len()) };
    CStr::from_bytes_until_nul(bytes)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl VulkanContext {
    /// Creates an instance and a device with the extensions dma-buf interop
    /// needs (`VK_KHR_external_memory_fd`, `VK_EXT_external_memory_dma_buf`,
    /// `VK_EXT_queue_family_foreign`) and those it uses when present
    /// (`VK_EXT_image_drm_format_modifier`, `VK_KHR_external_semaphore_fd`,
    /// `VK_EXT_physical_device_drm`, the YCbCr conversion feature).
    pub fn new(options: &ContextOptions) -> Result<Arc<Self>, VulkanError> {
        // SAFETY: loading libvulkan runs its initialisers; it is the system's
        // Vulkan loader, which is what this crate is for.
        let entry = unsafe { ash::Entry::load() }.map_err(|e| VulkanError::Loader(e.to_string()))?;
        let selector = DeviceSelector::from_env().unwrap_or_else(|| options.device.clone());

        let mut layers: Vec<*const std::ffi::c_char> = Vec::new();
        let mut instance_extensions: Vec<*const std::ffi::c_char> = Vec::new();
        const VALIDATION_LAYER: &CStr = c"VK_LAYER_KHRONOS_validation";
        if options.validation {
            // SAFETY: plain query on a loaded entry.
            let available = unsafe { entry.enumerate_instance_layer_properties() }
                .map_err(call("vkEnumerateInstanceLayerProperties"))?;
            if !available
                .iter()
                .any(|l| l.layer_name_as_c_str().is_ok_and(|n| n == VALIDATION_LAYER))
            {
                return Err(VulkanError::MissingExtension {
                    device: "instance".into(),
                    extension: "VK_LAYER_KHRONOS_validation (Debian: vulkan-validationlayers)".into(),
                    needed_for: "validation",
                });
            }
            layers.push(VALIDATION_LAYER.as_ptr());
            instance_extensions.push(ext::debug_utils::NAME.as_ptr());
        }
        let app = vk::ApplicationInfo::default()
            .application_name(c"dmabuf-interop")
            .engine_name(c"dmabuf-interop")
            .api_version(vk::API_VERSION_1_3);
        let create_info = vk::InstanceCreateInfo::default()
            .application_info(&app)
            .enabled_layer_names(&layers)
            .enabled_extension_names(&instance_extensions);
        // SAFETY: create_info and everything it points to outlive the call.
        let instance = unsafe { entry.create_instance(&create_info, None) }.map_err(call("vkCreateInstance"))?;
        // From here on a guard destroys the instance on every error path.
        let mut guard = InstanceGuard::new(instance);
        if options.validation {
            guard.validation = Some(create_messenger(&entry, guard.instance())?);
        }

        let chosen = choose_device(guard.instance(), &selector)?;
        let mut device_extensions: Vec<&CStr> = REQUIRED_EXTENSIONS.to_vec();
        let modifiers = chosen.has(ext::image_drm_format_modifier::NAME);
        if modifiers {
            device_extensions.push(ext::image_drm_format_modifier::NAME);
        }
        let semaphore_fd = chosen.has(khr::external_semaphore_fd::NAME);
        if semaphore_fd {
            device_extensions.push(khr::external_semaphore_fd::NAME);
        }
        let (ycbcr, timeline) = {
            let mut ycbcr = vk::PhysicalDeviceSamplerYcbcrConversionFeatures::default();
            let mut timeline = vk::PhysicalDeviceTimelineSemaphoreFeatures::default();
            let mut features = vk::PhysicalDeviceFeatures2::default()
                .push_next(&mut ycbcr)
                .push_next(&mut timeline);
            // SAFETY: valid physical device and properly chained out-structs.
            unsafe {
                guard
                    .instance()
                    .get_physical_device_features2(chosen.physical, &mut features)
            };
            (
                ycbcr.sampler_ycbcr_conversion == vk::TRUE,
                timeline.timeline_semaphore == vk::TRUE,
            )
        };
        let family = chosen.queue_family.unwrap_or(0);
        let priorities = [1.0f32];
        let queue_info = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(family)
            .queue_priorities(&priorities)];
        let extension_ptrs: Vec<*const std::ffi::c_char> = device_extensions.iter().map(|e| e.as_ptr()).collect();
        let mut enable_ycbcr =
            vk::PhysicalDeviceSamplerYcbcrConversionFeatures::default().sampler_ycbcr_conversion(ycbcr);
        let mut enable_timeline = vk::PhysicalDeviceTimelineSemaphoreFeatures::default().timeline_semaphore(timeline);
        let device_info = vk::DeviceCreateInfo::default()
            .queue_create_infos(&queue_info)
            .enabled_extension_names(&extension_ptrs)
            .push_next(&mut enable_ycbcr)
            .push_next(&mut enable_timeline);
        // SAFETY: the physical device belongs to the instance; every extension
        // enabled was listed by the device.
        let device = unsafe { guard.instance().create_device(chosen.physical, &device_info, None) }
            .map_err(call("vkCreateDevice"))?;
        // SAFETY: queue family and index 0 were requested at device creation.
        let queue = unsafe { device.get_device_queue(family, 0) };
        let (instance, validation) = guard.release();
        let capabilities = Capabilities {
            drm_format_modifier: modifiers,
            semaphore_sync_fd: semaphore_fd && sync_fd_semaphores(&instance, chosen.physical),
            ycbcr_conversion: ycbcr,
            timeline_semaphore: timeline,
            render_node: chosen.render_node,
        };
        let info = device_info_of(&instance, chosen.physical);
        Ok(Arc::new(Self::assemble(
            entry,
            instance,
            chosen.physical,
            device,
            queue,
            family,
            capabilities,
            info,
            validation,
            true,
        )))
    }

    /// Wraps a caller's instance, device and queue (compositors and players
    /// already have one). `enabled_extensions` are the device extensions the
    /// caller enabled: the required ones are checked (a typed error names the
    /// first missing one) and optional ones are used when listed. The
    /// context does not destroy the wrapped handles.
    ///
    /// # Safety
    /// `instance`, `physical`, `device` and `queue` must be valid, belong
    /// together, `queue` must be from `queue_family`, the extensions listed
    /// must really be enabled, and all must outlive the returned context and
    /// everything made from it. Queue submissions made through the context
    /// are serialised by it; the caller must not submit to the same queue
    /// concurrently.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn from_raw(
        entry: ash::Entry,
        instance: ash::Instance,
        physical: vk::PhysicalDevice,
        device: ash::Device,
        queue: vk::Queue,
        queue_family: u32,
        enabled_extensions: &[&CStr],
    ) -> Result<Arc<Self>, VulkanError> {
        let info = device_info_of(&instance, physical);
        for ext in REQUIRED_EXTENSIONS {
            if !enabled_extensions.contains(&ext) {
                return Err(VulkanError::MissingExtension {
                    device: info.name,
                    extension: ext.to_string_lossy().into_owned(),
                    needed_for: "dma-buf import and export (not enabled on the wrapped device)",
                });
            }
        }
        let modifiers = enabled_extensions.contains(&ext::image_drm_format_modifier::NAME);
        let semaphore_fd = enabled_extensions.contains(&khr::external_semaphore_fd::NAME);
        let capabilities = Capabilities {
            drm_format_modifier: modifiers,
            semaphore_sync_fd: semaphore_fd && sync_fd_semaphores(&instance, physical),
            // The caller did not tell whether the features are enabled.
            ycbcr_conversion: false,
            timeline_semaphore: false,
            render_node: None,
        };
        Ok(Arc::new(Self::assemble(
            entry,
            instance,
            physical,
            device,
            queue,
            queue_family,
            capabilities,
            info,
            None,
            false,
        )))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        entry: ash::Entry,
        instance: ash::Instance,
        physical: vk::PhysicalDevice,
        device: ash::Device,
        queue: vk::Queue,
        queue_family: u32,
        capabilities: Capabilities,
        info: DeviceInfo,
        validation: Option<Validation>,
        owns_handles: bool,
    ) -> Self {
        let memory_fd = khr::external_memory_fd::Device::new(&instance, &device);
        let modifier = capabilities
            .drm_format_modifier
            .then(|| ext::image_drm_format_modifier::Device::new(&instance, &device));
        let semaphore_fd = capabilities
            .semaphore_sync_fd
            .then(|| khr::external_semaphore_fd::Device::new(&instance, &device));
        Self {
            entry,
            instance,
            physical,
            device,
            queue: Mutex::new(queue),
            queue_family,
            memory_fd,
            modifier,
            semaphore_fd,
            capabilities,
            info,
            validation,
            owns_handles,
            retired: Retired::default(),
        }
    }

    /// The loader entry.
    pub fn entry(&self) -> &ash::Entry {
        &self.entry
    }

    /// The instance.
    pub fn instance(&self) -> &ash::Instance {
        &self.instance
    }

    /// The physical device.
    pub fn physical_device(&self) -> vk::PhysicalDevice {
        self.physical
    }

    /// The logical device.
    pub fn device(&self) -> &ash::Device {
        &self.device
    }

    /// The queue family of [`VulkanContext::lock_queue`]'s queue.
    pub fn queue_family(&self) -> u32 {
        self.queue_family
    }

    /// The queue, locked: Vulkan requires external synchronisation of
    /// submissions.
    pub fn lock_queue(&self) -> MutexGuard<'_, vk::Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Destroys with `destroy` once the queue has finished everything
    /// submitted so far (see the `retire` module).
    pub(crate) fn retire(&self, destroy: Destroy) {
        self.retired.defer(&self.device, &self.queue, destroy);
    }

    /// Runs `destroy` once `fence` (submitted, handed over) has signalled.
    pub(crate) fn retire_after(&self, fence: vk::Fence, destroy: Destroy) {
        self.retired.after_fence(fence, destroy);
    }

    /// Destroys the dropped objects whose last use the queue has finished
    /// (images and samplers handed to the caller's command buffers wait for
    /// that), without blocking; returns how many still wait. This also
    /// happens on every submission and drop, and the context waits for the
    /// rest when it goes away.
    pub fn collect_retired(&self) -> usize {
        self.retired.collect(&self.device)
    }

    /// Dropped objects whose destruction still waits for the queue.
    pub fn retired_pending(&self) -> usize {
        self.retired.len()
    }

    /// Optional features found on the device.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// Name, driver and version of the device.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    pub(crate) fn memory_fd(&self) -> &khr::external_memory_fd::Device {
        &self.memory_fd
    }

    pub(crate) fn modifier_ext(&self) -> Option<&ext::image_drm_format_modifier::Device> {
        self.modifier.as_ref()
    }

    pub(crate) fn semaphore_fd(&self) -> Option<&khr::external_semaphore_fd::Device> {
        self.semaphore_fd.as_ref()
    }

    /// Validation messages (warnings and errors) collected so far; empty when
    /// validation is off. Tests assert this stays empty.
    pub fn validation_messages(&self) -> Vec<String> {
        self.validation
            .as_ref()
            .and_then(|v| v.messages.lock().ok().map(|m| m.clone()))
            .unwrap_or_default()
    }

    /// Whether the validation layer is active on this context.
    pub fn validation_enabled(&self) -> bool {
        self.validation.is_some()
    }

    /// Every physical device the loader lists and whether it is usable, for
    /// reports (the probe example).
    pub fn list_devices() -> Result<Vec<ListedDevice>, VulkanError> {
        // SAFETY: as in `new`.
        let entry = unsafe { ash::Entry::load() }.map_err(|e| VulkanError::Loader(e.to_string()))?;
        let app = vk::ApplicationInfo::default().api_version(vk::API_VERSION_1_3);
        // SAFETY: create_info outlives the call; the instance is destroyed below.
        let instance =
            unsafe { entry.create_instance(&vk::InstanceCreateInfo::default().application_info(&app), None) }
                .map_err(call("vkCreateInstance"))?;
        let guard = InstanceGuard::new(instance);
        let list = candidates(guard.instance()).map(|list| {
            list.into_iter()
                .map(|c| ListedDevice {
                    usable: c.unsuitable().map_or(Ok(()), Err),
                    name: c.name,
                })
                .collect()
        });
        drop(guard);
        list
    }
}

impl Drop for VulkanContext {
    fn drop(&mut self) {
        // Objects whose destruction waited for the queue go first, also on
        // a device the caller owns.
        let leaked = self.retired.finish(&self.device);
        if leaked > 0 {
            // Work that never finished still uses objects of the device:
            // destroying it would free them under the GPU.
            eprintln!(
                "dmabuf-interop: {leaked} Vulkan submission(s) did not finish within {:?}; the device is leaked, \
                 not destroyed under them",
                super::GPU_TIMEOUT
            );
            return;
        }
        if !self.owns_handles {
            return;
        }
        // SAFETY: we created these handles; everything made from the context
        // holds an Arc to it, so nothing else uses them any more.
        unsafe {
            let _ = self.device.device_wait_idle();
            self.device.destroy_device(None);
            if let Some(v) = self.validation.take() {
                v.loader.destroy_debug_utils_messenger(v.messenger, None);
            }
            self.instance.destroy_instance(None);
        }
    }
}

/// Destroys a half-built instance on error paths.
struct InstanceGuard {
    instance: ash::Instance,
    validation: Option<Validation>,
    armed: bool,
}

impl InstanceGuard {
    fn new(instance: ash::Instance) -> Self {
        Self {
            instance,
            validation: None,
            armed: true,
        }
    }

    fn instance(&self) -> &ash::Instance {
        &self.instance
    }

    /// Hands the instance (and messenger) to the caller, who destroys them.
    fn release(mut self) -> (ash::Instance, Option<Validation>) {
        self.armed = false;
        (self.instance.clone(), self.validation.take())
    }
}

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // SAFETY: the instance and messenger were created by `new` and no
        // device made from them is alive on this path.
        unsafe {
            if let Some(v) = self.validation.take() {
                v.loader.destroy_debug_utils_messenger(v.messenger, None);
            }
            self.instance.destroy_instance(None);
        }
    }
}

fn create_messenger(entry: &ash::Entry, instance: &ash::Instance) -> Result<Validation, VulkanError> {
    let loader = ext::debug_utils::Instance::new(entry, instance);
    let messages: Box<Mutex<Vec<String>>> = Box::default();
    let info = vk::DebugUtilsMessengerCreateInfoEXT::default()
        .message_severity(vk::DebugUtilsMessageSeverityFlagsEXT::WARNING | vk::DebugUtilsMessageSeverityFlagsEXT::ERROR)
        .message_type(vk::DebugUtilsMessageTypeFlagsEXT::VALIDATION | vk::DebugUtilsMessageTypeFlagsEXT::PERFORMANCE)
        .pfn_user_callback(Some(debug_callback))
        .user_data((&*messages as *const Mutex<Vec<String>>).cast_mut().cast());
    // SAFETY: the user-data pointer stays valid (boxed) until the messenger is
    // destroyed, which Validation's owners do before dropping the box.
    let messenger =
        unsafe { loader.create_debug_utils_messenger(&info, None) }.map_err(call("vkCreateDebugUtilsMessengerEXT"))?;
    Ok(Validation {
        loader,
        messenger,
        messages,
    })
}

fn candidates(instance: &ash::Instance) -> Result<Vec<Candidate>, VulkanError> {
    // SAFETY: plain queries on a valid instance.
    let physicals = unsafe { instance.enumerate_physical_devices() }.map_err(call("vkEnumeratePhysicalDevices"))?;
    let mut out = Vec::with_capacity(physicals.len());
    for physical in physicals {
        // SAFETY: `physical` comes from this instance.
        let props = unsafe { instance.get_physical_device_properties(physical) };
        // SAFETY: as above.
        let extensions: Vec<CString> = unsafe { instance.enumerate_device_extension_properties(physical) }
            .map_err(call("vkEnumerateDeviceExtensionProperties"))?
            .iter()
            .filter_map(|e| e.extension_name_as_c_str().ok().map(CStr::to_owned))
            .collect();
        // SAFETY: as above.
        let families = unsafe { instance.get_physical_device_queue_family_properties(physical) };
        let queue_family = families
            .iter()
            .position(|f| f.queue_flags.contains(vk::QueueFlags::COMPUTE))
            .and_then(|i| u32::try_from(i).ok());
        let has_drm = extensions
            .iter()
            .any(|e| e.as_c_str() == ext::physical_device_drm::NAME);
        let render_node = has_drm.then(|| {
            let mut drm = vk::PhysicalDeviceDrmPropertiesEXT::default();
            let mut props2 = vk::PhysicalDeviceProperties2::default().push_next(&mut drm);
            // SAFETY: the extension is supported, so the chained struct is valid.
            unsafe { instance.get_physical_device_properties2(physical, &mut props2) };
            (drm.has_render == vk::TRUE).then_some((drm.render_major, drm.render_minor))
        });
        out.push(Candidate {
            physical,
            name: c_string_field(&props.device_name),
            device_type: props.device_type,
            api_version: props.api_version,
            extensions,
            queue_family,
            render_node: render_node.flatten(),
        });
    }
    Ok(out)
}

fn choose_device(instance: &ash::Instance, selector: &DeviceSelector) -> Result<Candidate, VulkanError> {
    let list = candidates(instance)?;
    let wanted_node = match selector {
        DeviceSelector::DrmNode(path) => Some(
            rustix::fs::stat(path)
                .map(|st| {
                    let rdev = st.st_rdev;
                    (i64::from(rustix::fs::major(rdev)), i64::from(rustix::fs::minor(rdev)))
                })
                .map_err(|e| VulkanError::NoDevice {
                    wanted: selector.to_string(),
                    available: format!("cannot stat the node: {e}"),
                })?,
        ),
        _ => None,
    };
    let matches = |(index, c): &(usize, &Candidate)| match selector {
        DeviceSelector::Default => true,
        DeviceSelector::Name(n) => c.name.contains(n.as_str()),
        DeviceSelector::Index(i) => index == i,
        DeviceSelector::DrmNode(_) => c.render_node.is_some() && c.render_node == wanted_node,
    };
    let rank = |c: &Candidate| match c.device_type {
        vk::PhysicalDeviceType::DISCRETE_GPU => 0,
        vk::PhysicalDeviceType::INTEGRATED_GPU => 1,
        vk::PhysicalDeviceType::VIRTUAL_GPU => 2,
        _ => 3,
    };
    let mut selected: Vec<usize> = list.iter().enumerate().filter(matches).map(|(i, _)| i).collect();
    selected.sort_by_key(|&i| rank(&list[i]));
    let mut first_problem = None;
    for &i in &selected {
        match list[i].unsuitable() {
            None => {
                let mut list = list;
                return Ok(list.swap_remove(i));
            }
            Some(problem) => {
                first_problem.get_or_insert(problem);
            }
        }
    }
    // A single matching device that is unsuitable: say exactly why.
    if selected.len() == 1
        && let Some(problem) = first_problem
    {
        return Err(problem);
    }
    let available = list
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let verdict = c.unsuitable().map_or("usable".to_owned(), |e| e.to_string());
            format!("#{i} {:?} ({verdict})", c.name)
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(VulkanError::NoDevice {
        wanted: selector.to_string(),
        available: if available.is_empty() { "none".into() } else { available },
    })
}

fn device_info_of(instance: &ash::Instance, physical: vk::PhysicalDevice) -> DeviceInfo {
    let mut driver = vk::PhysicalDeviceDriverProperties::default();
    let mut props2 = vk::PhysicalDeviceProperties2::default().push_next(&mut driver);
    // SAFETY: valid physical device; driver properties are core in 1.2.
    unsafe { instance.get_physical_device_properties2(physical, &mut props2) };
    let props = props2.properties;
    let v = props.api_version;
    DeviceInfo {
        name: c_string_field(&props.device_name),
        driver: format!(
            "{} {}",
            c_string_field(&driver.driver_name),
            c_string_field(&driver.driver_info)
        ),
        api_version: format!(
            "{}.{}.{}",
            vk::api_version_major(v),
            vk::api_version_minor(v),
            vk::api_version_patch(v)
        ),
        device_type: props.device_type,
    }
}

fn sync_fd_semaphores(instance: &ash::Instance, physical: vk::PhysicalDevice) -> bool {
    let info =
        vk::PhysicalDeviceExternalSemaphoreInfo::default().handle_type(vk::ExternalSemaphoreHandleTypeFlags::SYNC_FD);
    let mut props = vk::ExternalSemaphoreProperties::default();
    // SAFETY: core 1.1 query on a valid physical device.
    unsafe { instance.get_physical_device_external_semaphore_properties(physical, &info, &mut props) };
    // Submissions export their completion and import other fences (a
    // compositor's release fence) as SYNC_FD payloads: both directions.
    props
        .external_semaphore_features
        .contains(vk::ExternalSemaphoreFeatureFlags::EXPORTABLE | vk::ExternalSemaphoreFeatureFlags::IMPORTABLE)
}
