//! What the device can do with a dma-buf format: [`format_support`], the
//! modifiers it lists ([`modifiers`]) and the checks imports and exports share.

use ash::vk;
use drm_fourcc::{DrmFourcc, DrmModifier};

use super::context::VulkanContext;
use super::error::{VulkanError, call};
use super::format::{VkFormatInfo, image_extent, storage_view_format, view_formats, vk_format};
use super::memory::DMA_BUF;
use crate::dmabuf::ModifierName;

/// What the device can do with (fourcc, modifier, usage) as a dma-buf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatSupport {
    /// A dma-buf of this kind can be imported.
    pub importable: bool,
    /// The driver can allocate exportable dma-buf memory for it.
    pub exportable: bool,
    /// Largest width and height.
    pub max_extent: (u32, u32),
    /// Memory planes (from the modifier properties, or the format's planes).
    pub plane_count: usize,
    /// Whether planes in separate memory (disjoint) are possible.
    pub disjoint: bool,
    /// Whether images use DRM format modifier tiling (explicit plane
    /// layouts); else LINEAR tiling, where a dma-buf's layout must equal
    /// the driver's ([`linear_layout`](super::linear_layout)).
    pub modifier_tiling: bool,
}

pub(super) fn image_flags(format: &VkFormatInfo, usage: vk::ImageUsageFlags, disjoint: bool) -> vk::ImageCreateFlags {
    let mut flags = vk::ImageCreateFlags::empty();
    if view_formats(format, usage).len() > 1 {
        // Per-plane views (R8, R8G8) and R8G8B8A8 storage views of B8G8R8A8
        // need MUTABLE_FORMAT; storage through them needs EXTENDED_USAGE
        // because the image's own format may have no STORAGE feature
        // (multi-planar formats never do).
        flags |= vk::ImageCreateFlags::MUTABLE_FORMAT;
        if usage.contains(vk::ImageUsageFlags::STORAGE) {
            flags |= vk::ImageCreateFlags::EXTENDED_USAGE;
        }
    }
    if disjoint && format.plane_formats.len() > 1 {
        flags |= vk::ImageCreateFlags::DISJOINT;
    }
    flags
}

pub(super) fn device_name(ctx: &VulkanContext) -> String {
    ctx.info().name.clone()
}

/// Queries import/export support for a dma-buf of `fourcc` with `modifier`
/// and `usage` (`vkGetPhysicalDeviceImageFormatProperties2` with the DMA_BUF
/// external memory info and, when the device has it, the DRM format modifier
/// info). Without `VK_EXT_image_drm_format_modifier` only LINEAR is
/// answerable; other modifiers get `Ok` with nothing supported.
///
/// LINEAR is tried under DRM format modifier tiling first and, where the
/// driver refuses that combination, under LINEAR tiling:
/// lavapipe (Mesa 25.0) lists LINEAR for NV12 but refuses modifier-tiled
/// multi-planar images with MUTABLE_FORMAT (needed for per-plane views),
/// while it takes the same dma-buf as a LINEAR-tiled image.
pub fn format_support(
    ctx: &VulkanContext,
    fourcc: DrmFourcc,
    modifier: DrmModifier,
    usage: vk::ImageUsageFlags,
) -> Result<FormatSupport, VulkanError> {
    let format = vk_format(fourcc).ok_or(VulkanError::UnsupportedFormat { fourcc })?;
    if ctx.capabilities().drm_format_modifier {
        let support = tiling_support(ctx, format, usage, Some(modifier))?;
        if support.importable || support.exportable || modifier != DrmModifier::Linear {
            return Ok(support);
        }
    } else if modifier != DrmModifier::Linear {
        return Ok(FormatSupport::none(format, false));
    }
    tiling_support(ctx, format, usage, None)
}

impl FormatSupport {
    fn none(format: &VkFormatInfo, modifier_tiling: bool) -> Self {
        Self {
            importable: false,
            exportable: false,
            max_extent: (0, 0),
            plane_count: format.plane_formats.len(),
            disjoint: false,
            modifier_tiling,
        }
    }
}

/// [`format_support`] under one tiling: DRM format modifier tiling with
/// `modifier`, or LINEAR tiling (`None`).
fn tiling_support(
    ctx: &VulkanContext,
    format: &'static VkFormatInfo,
    usage: vk::ImageUsageFlags,
    with_modifier: Option<DrmModifier>,
) -> Result<FormatSupport, VulkanError> {
    let use_modifier_ext = with_modifier.is_some();
    let modifier = with_modifier.unwrap_or(DrmModifier::Linear);
    let none = FormatSupport::none(format, use_modifier_ext);
    let tiling = if use_modifier_ext {
        vk::ImageTiling::DRM_FORMAT_MODIFIER_EXT
    } else {
        vk::ImageTiling::LINEAR
    };
    // Format features of this tiling (and the modifier's plane count).
    let Some((features, memory_planes)) = tiling_features(ctx, format.format, with_modifier) else {
        return Ok(none);
    };
    let plane_count = memory_planes.unwrap_or(format.plane_formats.len());
    if !usage_supported(ctx, format, usage, features, with_modifier) {
        return Ok(none);
    }
    let disjoint = features.contains(vk::FormatFeatureFlags::DISJOINT);
    let queue_family = [ctx.queue_family()];
    let mut modifier_info = vk::PhysicalDeviceImageDrmFormatModifierInfoEXT::default()
        .drm_format_modifier(modifier.into())
        .sharing_mode(vk::SharingMode::EXCLUSIVE)
        .queue_family_indices(&queue_family);
    let mut external_info = vk::PhysicalDeviceExternalImageFormatInfo::default().handle_type(DMA_BUF);
    let flags = image_flags(format, usage, false);
    let formats = view_formats(format, usage);
    let mut format_list = vk::ImageFormatListCreateInfo::default().view_formats(&formats);
    let mut info = vk::PhysicalDeviceImageFormatInfo2::default()
        .format(format.format)
        .ty(vk::ImageType::TYPE_2D)
        .tiling(tiling)
        .usage(usage)
        .flags(flags)
        .push_next(&mut external_info);
    if use_modifier_ext {
        info = info.push_next(&mut modifier_info);
    }
    if flags.contains(vk::ImageCreateFlags::MUTABLE_FORMAT) {
        // VUID-VkPhysicalDeviceImageFormatInfo2-tiling-02313.
        info = info.push_next(&mut format_list);
    }
    let mut external_props = vk::ExternalImageFormatProperties::default();
    let mut props = vk::ImageFormatProperties2::default().push_next(&mut external_props);
    // SAFETY: valid physical device; all chained structs live for the call.
    let result = unsafe {
        ctx.instance()
            .get_physical_device_image_format_properties2(ctx.physical_device(), &info, &mut props)
    };
    match result {
        Ok(()) => {}
        Err(vk::Result::ERROR_FORMAT_NOT_SUPPORTED) => return Ok(none),
        Err(e) => return Err(call("vkGetPhysicalDeviceImageFormatProperties2")(e)),
    }
    let extent = props.image_format_properties.max_extent;
    let features = external_props.external_memory_properties.external_memory_features;
    Ok(FormatSupport {
        importable: features.contains(vk::ExternalMemoryFeatureFlags::IMPORTABLE),
        exportable: features.contains(vk::ExternalMemoryFeatureFlags::EXPORTABLE),
        max_extent: (extent.width, extent.height),
        plane_count,
        disjoint,
        modifier_tiling: use_modifier_ext,
    })
}

/// Format features of `format` under LINEAR tiling (`modifier` None) or
/// under DRM format modifier tiling with `modifier`, and the number of
/// memory planes under the modifier (the format's planes under LINEAR
/// tiling: `None`); `None` overall when the device does not list the modifier.
fn tiling_features(
    ctx: &VulkanContext,
    format: vk::Format,
    modifier: Option<DrmModifier>,
) -> Option<(vk::FormatFeatureFlags, Option<usize>)> {
    match modifier {
        Some(m) => {
            let raw: u64 = m.into();
            modifier_properties(ctx, format)
                .iter()
                .find(|e| e.drm_format_modifier == raw)
                .map(|e| {
                    (
                        e.drm_format_modifier_tiling_features,
                        Some(e.drm_format_modifier_plane_count as usize),
                    )
                })
        }
        None => {
            // SAFETY: plain query on the context's physical device.
            let props = unsafe {
                ctx.instance()
                    .get_physical_device_format_properties(ctx.physical_device(), format)
            };
            Some((props.linear_tiling_features, None))
        }
    }
}

/// Whether `features` (of the image's format and tiling) allow `usage`, the
/// way the image is used here: transfers and sampling on the format itself,
/// storage through the storage view formats, which are checked under the
/// same tiling. A query that says "supported" is not enough: lavapipe's
/// modifier-tiled formats answer it but lack TRANSFER_SRC
/// (VUID-vkCmdCopyImageToBuffer-srcImage-01998 on first use).
fn usage_supported(
    ctx: &VulkanContext,
    format: &VkFormatInfo,
    usage: vk::ImageUsageFlags,
    features: vk::FormatFeatureFlags,
    modifier: Option<DrmModifier>,
) -> bool {
    use vk::FormatFeatureFlags as F;
    use vk::ImageUsageFlags as U;
    let needs = [
        (U::TRANSFER_SRC, F::TRANSFER_SRC),
        (U::TRANSFER_DST, F::TRANSFER_DST),
        (U::SAMPLED, F::SAMPLED_IMAGE),
        (U::COLOR_ATTACHMENT, F::COLOR_ATTACHMENT),
    ];
    if needs.iter().any(|&(u, f)| usage.contains(u) && !features.contains(f)) {
        return false;
    }
    !usage.contains(U::STORAGE)
        || format.plane_formats.iter().all(|&plane| {
            let view = storage_view_format(plane);
            let view_features = if view == format.format {
                Some(features)
            } else {
                tiling_features(ctx, view, modifier).map(|(f, _)| f)
            };
            view_features.is_some_and(|f| f.contains(F::STORAGE_IMAGE))
        })
}

pub(super) fn check_extent(
    ctx: &VulkanContext,
    fourcc: DrmFourcc,
    w: u32,
    h: u32,
    s: &FormatSupport,
) -> Result<(), VulkanError> {
    let (padded_w, padded_h) = image_extent(fourcc, w, h);
    if padded_w > s.max_extent.0 || padded_h > s.max_extent.1 {
        return Err(VulkanError::TooLarge {
            fourcc,
            width: w,
            height: h,
            max_width: s.max_extent.0,
            max_height: s.max_extent.1,
            device: device_name(ctx),
        });
    }
    Ok(())
}

/// The DRM format modifier properties the device lists for `format`
/// (`VK_EXT_image_drm_format_modifier`'s two-call query).
fn modifier_properties(ctx: &VulkanContext, format: vk::Format) -> Vec<vk::DrmFormatModifierPropertiesEXT> {
    let mut list = vk::DrmFormatModifierPropertiesListEXT::default();
    let mut props = vk::FormatProperties2::default().push_next(&mut list);
    // SAFETY: valid physical device; the chained struct asks only for the count.
    unsafe {
        ctx.instance()
            .get_physical_device_format_properties2(ctx.physical_device(), format, &mut props)
    };
    let mut entries = vec![vk::DrmFormatModifierPropertiesEXT::default(); list.drm_format_modifier_count as usize];
    let mut list = vk::DrmFormatModifierPropertiesListEXT::default().drm_format_modifier_properties(&mut entries);
    let mut props = vk::FormatProperties2::default().push_next(&mut list);
    // SAFETY: the array has the count the driver reported.
    unsafe {
        ctx.instance()
            .get_physical_device_format_properties2(ctx.physical_device(), format, &mut props)
    };
    entries
}

/// One DRM format modifier a device lists for a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModifierSupport {
    /// The modifier.
    pub modifier: DrmModifier,
    /// Memory planes of an image with it (`drmFormatModifierPlaneCount`):
    /// the number of planes a dma-buf imported with it must describe.
    pub plane_count: usize,
    /// What images of this format and modifier can do
    /// (`drmFormatModifierTilingFeatures`).
    pub features: vk::FormatFeatureFlags,
}

/// The DRM format modifiers the device lists for `fourcc`, with their plane
/// counts and features; empty without `VK_EXT_image_drm_format_modifier`
/// (such a device handles LINEAR only, through LINEAR tiling).
pub fn modifiers(ctx: &VulkanContext, fourcc: DrmFourcc) -> Result<Vec<ModifierSupport>, VulkanError> {
    let format = vk_format(fourcc).ok_or(VulkanError::UnsupportedFormat { fourcc })?;
    if !ctx.capabilities().drm_format_modifier {
        return Ok(Vec::new());
    }
    Ok(modifier_properties(ctx, format.format)
        .iter()
        .map(|e| ModifierSupport {
            modifier: DrmModifier::from(e.drm_format_modifier),
            plane_count: e.drm_format_modifier_plane_count as usize,
            features: e.drm_format_modifier_tiling_features,
        })
        .collect())
}

/// Modifiers the device lists for `fourcc`.
pub(super) fn device_modifiers(ctx: &VulkanContext, fourcc: DrmFourcc) -> Result<Vec<DrmModifier>, VulkanError> {
    Ok(modifiers(ctx, fourcc)?.into_iter().map(|m| m.modifier).collect())
}

/// The format features an image needs for `usage` on its own format (what
/// a modifier's `drmFormatModifierTilingFeatures` must hold for it).
/// STORAGE of B8G8R8A8 goes through an R8G8B8A8 view, whose features
/// [`format_support`] checks; here it asks STORAGE_IMAGE of the format.
pub fn usage_features(usage: vk::ImageUsageFlags) -> vk::FormatFeatureFlags {
    use vk::FormatFeatureFlags as F;
    use vk::ImageUsageFlags as U;
    [
        (U::TRANSFER_SRC, F::TRANSFER_SRC),
        (U::TRANSFER_DST, F::TRANSFER_DST),
        (U::SAMPLED, F::SAMPLED_IMAGE),
        (U::STORAGE, F::STORAGE_IMAGE),
        (U::COLOR_ATTACHMENT, F::COLOR_ATTACHMENT),
    ]
    .into_iter()
    .filter(|&(u, _)| usage.contains(u))
    .fold(F::empty(), |acc, (_, f)| acc | f)
}

/// The modifiers of `listed` (a device's, [`modifiers`]) an image needing
/// `needs` may have, best first: those whose tiling features hold `needs`,
/// ordered by `preference` (a consumer's tiers, best first, e.g. a
/// compositor's feedback tranches with the scanout ones first; within a
/// tier its own order) and only those some tier names; with no tiers, in
/// the device's order. What the usage needs decides, not what the kernels
/// could need: a render-only export keeps the compressed modifiers that
/// lack STORAGE (Mesa's anv drops STORAGE from every CCS modifier, radv
/// from most DCC ones, and both keep COLOR_ATTACHMENT).
pub fn choose_modifiers(
    listed: &[ModifierSupport],
    needs: vk::FormatFeatureFlags,
    preference: &[Vec<DrmModifier>],
) -> Vec<DrmModifier> {
    let usable = |m: &DrmModifier| listed.iter().any(|l| l.modifier == *m && l.features.contains(needs));
    if preference.is_empty() {
        return listed.iter().map(|l| l.modifier).filter(|m| usable(m)).collect();
    }
    let mut out: Vec<DrmModifier> = Vec::new();
    for tier in preference {
        for m in tier {
            if usable(m) && !out.contains(m) {
                out.push(*m);
            }
        }
    }
    out
}

/// A dma-buf with a vendor `modifier` and `planes` planes against the
/// modifiers the device lists for its format: the modifier must be listed,
/// and the dma-buf must describe one plane per memory plane of it
/// (VUID-VkImageDrmFormatModifierExplicitCreateInfoEXT-drmFormatModifierPlaneCount-02265;
/// compression modifiers add auxiliary planes to the format's).
pub(crate) fn check_modifier(
    listed: &[ModifierSupport],
    fourcc: DrmFourcc,
    modifier: DrmModifier,
    planes: usize,
    device: &str,
) -> Result<(), VulkanError> {
    let Some(entry) = listed.iter().find(|m| m.modifier == modifier) else {
        return Err(VulkanError::UnsupportedModifier {
            fourcc,
            modifier: ModifierName(modifier),
            device: device.to_owned(),
            reason: "the device does not list this modifier for the format",
        });
    };
    if entry.plane_count != planes {
        return Err(VulkanError::PlaneCount {
            fourcc,
            modifier: ModifierName(modifier),
            given: planes,
            needed: entry.plane_count,
            device: device.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A render-only export chooses the compressed modifier a GPU lists
    /// without STORAGE, first when the compositor's best tier names it; a
    /// storage export never does; tiers order, the device's list filters.
    #[test]
    fn modifiers_are_chosen_by_what_the_usage_needs_in_the_consumers_order() {
        use vk::FormatFeatureFlags as F;
        let ccs = DrmModifier::I915_y_tiled_ccs;
        let x_tiled = DrmModifier::I915_x_tiled;
        let y_tiled = DrmModifier::I915_y_tiled;
        let all = F::SAMPLED_IMAGE | F::STORAGE_IMAGE | F::COLOR_ATTACHMENT | F::TRANSFER_SRC | F::TRANSFER_DST;
        let listed = [
            ModifierSupport {
                modifier: DrmModifier::Linear,
                plane_count: 1,
                features: all,
            },
            ModifierSupport {
                modifier: x_tiled,
                plane_count: 1,
                features: all,
            },
            // As anv lists CCS: no STORAGE.
            ModifierSupport {
                modifier: ccs,
                plane_count: 2,
                features: all & !F::STORAGE_IMAGE,
            },
        ];
        let render = usage_features(vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::TRANSFER_DST);
        assert_eq!(render, F::COLOR_ATTACHMENT | F::TRANSFER_DST);
        let storage = usage_features(vk::ImageUsageFlags::STORAGE);
        // Scanout tier first (CCS, X), then the rest; Y is not listed by the
        // device, LINEAR only in the last tier.
        let tiers = vec![vec![ccs, y_tiled, x_tiled], vec![DrmModifier::Linear, x_tiled]];
        assert_eq!(
            choose_modifiers(&listed, render, &tiers),
            [ccs, x_tiled, DrmModifier::Linear]
        );
        assert_eq!(
            choose_modifiers(&listed, storage, &tiers),
            [x_tiled, DrmModifier::Linear]
        );
        // No tiers: the device's order, filtered by the usage.
        assert_eq!(
            choose_modifiers(&listed, render, &[]),
            [DrmModifier::Linear, x_tiled, ccs]
        );
        assert_eq!(choose_modifiers(&listed, storage, &[]), [DrmModifier::Linear, x_tiled]);
        // A consumer that takes only what the device cannot render into.
        assert!(choose_modifiers(&listed, storage, &[vec![ccs]]).is_empty());
    }

    #[test]
    fn vendor_modifiers_are_checked_against_the_device_list() {
        // A compression modifier with an auxiliary plane, as a GPU lists it.
        let ccs = DrmModifier::I915_y_tiled_ccs;
        let listed = [
            ModifierSupport {
                modifier: DrmModifier::Linear,
                plane_count: 1,
                features: vk::FormatFeatureFlags::SAMPLED_IMAGE,
            },
            ModifierSupport {
                modifier: ccs,
                plane_count: 2,
                features: vk::FormatFeatureFlags::SAMPLED_IMAGE,
            },
        ];
        let xrgb = DrmFourcc::Xrgb8888;
        assert!(check_modifier(&listed, xrgb, ccs, 2, "gpu").is_ok());
        let err = check_modifier(&listed, xrgb, ccs, 1, "gpu").unwrap_err();
        assert!(
            matches!(
                err,
                VulkanError::PlaneCount {
                    given: 1,
                    needed: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("2 memory plane(s)"), "{err}");
        let err = check_modifier(&listed, xrgb, DrmModifier::I915_x_tiled, 1, "gpu").unwrap_err();
        assert!(matches!(err, VulkanError::UnsupportedModifier { .. }), "{err}");
    }
}
