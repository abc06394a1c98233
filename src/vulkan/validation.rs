//! Capturing `VK_LAYER_KHRONOS_validation`'s messages: the debug messenger,
//! its callback, and the checks of older layers the current specification
//! no longer has.

use std::ffi::c_void;
use std::sync::Mutex;

use ash::{ext, vk};

use super::error::{VulkanError, call};

pub(super) struct Validation {
    pub(super) loader: ext::debug_utils::Instance,
    pub(super) messenger: vk::DebugUtilsMessengerEXT,
    // Read by the callback through a raw pointer; freed after the messenger.
    pub(super) messages: Box<Mutex<Vec<String>>>,
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

pub(super) fn create_messenger(entry: &ash::Entry, instance: &ash::Instance) -> Result<Validation, VulkanError> {
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
