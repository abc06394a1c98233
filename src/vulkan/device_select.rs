//! Choosing the device: the loader's physical devices as candidates, what
//! each lacks for dma-buf interop, the selector (`DMABUF_INTEROP_VULKAN_DEVICE`,
//! a name, a render node, an index) and the chosen device's identity.

use std::ffi::{CStr, CString};
use std::fmt;

use ash::{ext, vk};

use super::context::{DEVICE_ENV, DeviceInfo, REQUIRED_EXTENSIONS};
use super::error::{VulkanError, call};

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
    pub(super) fn from_env() -> Option<Self> {
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

pub(super) struct Candidate {
    pub(super) physical: vk::PhysicalDevice,
    pub(super) name: String,
    pub(super) device_type: vk::PhysicalDeviceType,
    pub(super) api_version: u32,
    pub(super) extensions: Vec<CString>,
    pub(super) queue_family: Option<u32>,
    pub(super) render_node: Option<(i64, i64)>,
}

impl Candidate {
    pub(super) fn has(&self, name: &CStr) -> bool {
        self.extensions.iter().any(|e| e.as_c_str() == name)
    }

    /// Why this device cannot be used, if it cannot.
    pub(super) fn unsuitable(&self) -> Option<VulkanError> {
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

pub(super) fn c_string_field(bytes: &[std::ffi::c_char]) -> String {
    // SAFETY: Vulkan fixed-size name fields are NUL-terminated within their
    // array (the spec guarantees it); CStr::from_bytes_until_nul checks it.
    let bytes: &[u8] = unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast(), bytes.len()) };
    CStr::from_bytes_until_nul(bytes)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(super) fn candidates(instance: &ash::Instance) -> Result<Vec<Candidate>, VulkanError> {
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

pub(super) fn choose_device(instance: &ash::Instance, selector: &DeviceSelector) -> Result<Candidate, VulkanError> {
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
            let verdict = c
                .unsuitable()
                .map_or("usable".to_owned(), |e| crate::Report(&e).to_string());
            format!("#{i} {:?} ({verdict})", c.name)
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(VulkanError::NoDevice {
        wanted: selector.to_string(),
        available: if available.is_empty() { "none".into() } else { available },
    })
}

pub(super) fn device_info_of(instance: &ash::Instance, physical: vk::PhysicalDevice) -> DeviceInfo {
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

pub(super) fn sync_fd_semaphores(instance: &ash::Instance, physical: vk::PhysicalDevice) -> bool {
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
