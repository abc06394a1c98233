//! The Vulkan context: instance, device and queue with what dma-buf interop
//! needs, created here or wrapped from the caller's.

use std::ffi::CStr;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use ash::{ext, khr, vk};

use super::device_select::{DeviceSelector, candidates, choose_device, device_info_of, sync_fd_semaphores};
use super::error::{VulkanError, call};
use super::recycle::Recycler;
use super::retire::{Destroy, Retired};
use super::unwind::{Cleanup, Unwind};
use super::validation::{Validation, create_messenger};

/// Environment variable that overrides the device choice: a substring of the
/// device name (`llvmpipe`), a DRM node path (`/dev/dri/renderD128`) or an
/// index into the loader's list (`#1`).
pub const DEVICE_ENV: &str = "DMABUF_INTEROP_VULKAN_DEVICE";

/// Set to `1`, [`ContextOptions::from_env`] turns the validation layer on
/// (the elements' contexts: vkdmabufsrc, wldmabufsink's GPU conversion).
pub const VALIDATION_ENV: &str = "DMABUF_INTEROP_VULKAN_VALIDATION";

impl ContextOptions {
    /// The default device, under the validation layer when
    /// [`VALIDATION_ENV`] is `1` (its messages, less the outdated checks
    /// of old layers, are printed as `vulkan validation: ...` on stderr
    /// and collected in [`VulkanContext::validation_messages`]).
    pub fn from_env() -> Self {
        Self {
            validation: std::env::var(VALIDATION_ENV).is_ok_and(|v| v == "1"),
            ..Self::default()
        }
    }
}

/// Extensions without which nothing in this adapter works.
pub const REQUIRED_EXTENSIONS: [&CStr; 3] = [
    khr::external_memory_fd::NAME,
    ext::external_memory_dma_buf::NAME,
    ext::queue_family_foreign::NAME,
];

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
    /// Finished submissions' objects, for the next ones.
    recycled: Recycler,
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

impl VulkanContext {
    /// Creates an instance and a device with the extensions dma-buf interop
    /// needs (`VK_KHR_external_memory_fd`, `VK_EXT_external_memory_dma_buf`,
    /// `VK_EXT_queue_family_foreign`) and those it uses when present
    /// (`VK_EXT_image_drm_format_modifier`, `VK_KHR_external_semaphore_fd`,
    /// `VK_EXT_physical_device_drm`, the YCbCr conversion feature).
    pub fn new(options: &ContextOptions) -> Result<Arc<Self>, VulkanError> {
        // SAFETY: loading libvulkan runs its initialisers; it is the system's
        // Vulkan loader, which is what this crate is for.
        let entry = unsafe { ash::Entry::load() }.map_err(|e| VulkanError::Loader(e.into()))?;
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
        let mut guard = Unwind::new(HalfInstance {
            instance,
            validation: None,
        });
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
        let HalfInstance { instance, validation } = guard.handover();
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
            recycled: Recycler::default(),
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

    /// The objects finished submissions handed back (`recycle`).
    pub(crate) fn recycler(&self) -> &Recycler {
        &self.recycled
    }

    /// How many per-submission objects (command pool + buffer + fence,
    /// semaphores, descriptor pools) were reused instead of created.
    pub fn reused_objects(&self) -> u64 {
        self.recycled.reused()
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
        let entry = unsafe { ash::Entry::load() }.map_err(|e| VulkanError::Loader(e.into()))?;
        let app = vk::ApplicationInfo::default().api_version(vk::API_VERSION_1_3);
        // SAFETY: create_info outlives the call; the instance is destroyed below.
        let instance =
            unsafe { entry.create_instance(&vk::InstanceCreateInfo::default().application_info(&app), None) }
                .map_err(call("vkCreateInstance"))?;
        let guard = Unwind::new(HalfInstance {
            instance,
            validation: None,
        });
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
        // Kept for reuse, so idle: destroyed on a device the caller owns too.
        self.recycled.finish(&self.device);
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

/// An instance (and its messenger) before its device exists, in an
/// [`Unwind`] on the error paths.
struct HalfInstance {
    instance: ash::Instance,
    validation: Option<Validation>,
}

impl HalfInstance {
    fn instance(&self) -> &ash::Instance {
        &self.instance
    }
}

impl Cleanup for HalfInstance {
    fn clean_up(&mut self) {
        // SAFETY: the instance and messenger were created by our caller and no
        // device made from them is alive on this path.
        unsafe {
            if let Some(v) = self.validation.take() {
                v.loader.destroy_debug_utils_messenger(v.messenger, None);
            }
            self.instance.destroy_instance(None);
        }
    }
}

/// The unit tests' context: the machine's device (lavapipe in CI) under the
/// validation layer (`DMABUF_INTEROP_NO_VALIDATION=1` runs without it).
#[cfg(test)]
pub(crate) fn test_context() -> Arc<VulkanContext> {
    VulkanContext::new(&ContextOptions {
        validation: std::env::var_os("DMABUF_INTEROP_NO_VALIDATION").is_none(),
        ..Default::default()
    })
    .expect("a Vulkan device (lavapipe) and the validation layer: run scripts/setup")
}
