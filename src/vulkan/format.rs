//! fourcc <-> VkFormat: the Vulkan adapter's view of the format table.

use ash::vk;
use drm_fourcc::DrmFourcc;

/// How a fourcc is represented in Vulkan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VkFormatInfo {
    /// The fourcc.
    pub fourcc: DrmFourcc,
    /// The Vulkan format whose memory layout equals the fourcc's.
    pub format: vk::Format,
    /// Per-plane view formats for multi-planar formats (plane views need the
    /// image to be created MUTABLE_FORMAT); the format itself for one plane.
    pub plane_formats: &'static [vk::Format],
    /// Whether alpha must read as 1 (the X in XRGB).
    pub ignore_alpha: bool,
}

const fn entry(
    fourcc: DrmFourcc,
    format: vk::Format,
    plane_formats: &'static [vk::Format],
    ignore_alpha: bool,
) -> VkFormatInfo {
    VkFormatInfo {
        fourcc,
        format,
        plane_formats,
        ignore_alpha,
    }
}

/// DRM formats are little-endian packed words: XRGB8888 is bytes B, G, R, X,
/// which is Vulkan's B8G8R8A8. NV21 and YVU420 (chroma swapped) have no
/// Vulkan format of their own and are not listed.
pub const VK_FORMATS: &[VkFormatInfo] = &[
    entry(
        DrmFourcc::Xrgb8888,
        vk::Format::B8G8R8A8_UNORM,
        &[vk::Format::B8G8R8A8_UNORM],
        true,
    ),
    entry(
        DrmFourcc::Argb8888,
        vk::Format::B8G8R8A8_UNORM,
        &[vk::Format::B8G8R8A8_UNORM],
        false,
    ),
    entry(
        DrmFourcc::Xbgr8888,
        vk::Format::R8G8B8A8_UNORM,
        &[vk::Format::R8G8B8A8_UNORM],
        true,
    ),
    entry(
        DrmFourcc::Abgr8888,
        vk::Format::R8G8B8A8_UNORM,
        &[vk::Format::R8G8B8A8_UNORM],
        false,
    ),
    entry(
        DrmFourcc::Rgb565,
        vk::Format::R5G6B5_UNORM_PACK16,
        &[vk::Format::R5G6B5_UNORM_PACK16],
        false,
    ),
    entry(
        DrmFourcc::Nv12,
        vk::Format::G8_B8R8_2PLANE_420_UNORM,
        &[vk::Format::R8_UNORM, vk::Format::R8G8_UNORM],
        false,
    ),
    entry(
        DrmFourcc::Yuv420,
        vk::Format::G8_B8_R8_3PLANE_420_UNORM,
        &[vk::Format::R8_UNORM, vk::Format::R8_UNORM, vk::Format::R8_UNORM],
        false,
    ),
    entry(
        DrmFourcc::Yuyv,
        vk::Format::G8B8G8R8_422_UNORM,
        &[vk::Format::G8B8G8R8_422_UNORM],
        false,
    ),
    entry(
        DrmFourcc::Uyvy,
        vk::Format::B8G8R8G8_422_UNORM,
        &[vk::Format::B8G8R8G8_422_UNORM],
        false,
    ),
    entry(
        DrmFourcc::P010,
        vk::Format::G10X6_B10X6R10X6_2PLANE_420_UNORM_3PACK16,
        &[vk::Format::R10X6_UNORM_PACK16, vk::Format::R10X6G10X6_UNORM_2PACK16],
        false,
    ),
];

/// The Vulkan representation of `fourcc`, if it has one.
pub fn vk_format(fourcc: DrmFourcc) -> Option<&'static VkFormatInfo> {
    VK_FORMATS.iter().find(|f| f.fourcc == fourcc)
}

/// The fourccs a Vulkan format can stand for (several: XRGB8888 and
/// ARGB8888 are both B8G8R8A8).
pub fn fourccs_for(format: vk::Format) -> impl Iterator<Item = DrmFourcc> {
    VK_FORMATS.iter().filter(move |f| f.format == format).map(|f| f.fourcc)
}

/// The extent of the `VkImage` that holds a `width`x`height` frame of
/// `fourcc`: Vulkan wants 4:2:0 images of even width and height and 4:2:2
/// ones of even width (VUID-VkImageCreateInfo-format-04712/04713), so odd
/// sizes round up. The dma-buf still describes the requested size; the extra
/// row or column is padding inside the same planes.
pub(crate) fn image_extent(fourcc: DrmFourcc, width: u32, height: u32) -> (u32, u32) {
    let (h_sub, v_sub) = crate::format::info(fourcc).map_or((1, 1), |info| {
        info.planes.iter().fold((1, 1), |(h, v), p| {
            // Packed 4:2:2 stores two pixels per block: the same constraint.
            (h.max(p.h_sub).max(p.block_width), v.max(p.v_sub))
        })
    });
    (width.next_multiple_of(h_sub), height.next_multiple_of(v_sub))
}

/// The format of the storage view of a plane of `plane_format`: the
/// kernels write through views with a declared format, never "unknown"
/// (VUID-vkCmdDispatch-OpTypeImage-07027 otherwise needs
/// STORAGE_WRITE_WITHOUT_FORMAT, which modifier-tiled images often lack),
/// and B8G8R8A8 is written as R8G8B8A8 with the channels swizzled in the
/// shader (many devices have no STORAGE feature for B8G8R8A8 at all).
pub(crate) fn storage_view_format(plane_format: vk::Format) -> vk::Format {
    match plane_format {
        vk::Format::B8G8R8A8_UNORM => vk::Format::R8G8B8A8_UNORM,
        other => other,
    }
}

/// Every format a view of an image of `info` with `usage` may have: the
/// format itself, its plane formats, and with STORAGE the storage view
/// formats. More than one means the image needs MUTABLE_FORMAT and a
/// `VkImageFormatListCreateInfo` listing them (required under DRM format
/// modifier tiling: VUID-VkImageCreateInfo-tiling-02353 and
/// VUID-VkPhysicalDeviceImageFormatInfo2-tiling-02313; plane formats of a
/// multi-planar format are allowed there by VUID-VkImageCreateInfo-pNext-10062).
pub(crate) fn view_formats(info: &VkFormatInfo, usage: vk::ImageUsageFlags) -> Vec<vk::Format> {
    let mut formats = vec![info.format];
    let storage = usage.contains(vk::ImageUsageFlags::STORAGE);
    for &plane in info.plane_formats {
        for f in [Some(plane), storage.then(|| storage_view_format(plane))]
            .into_iter()
            .flatten()
        {
            if !formats.contains(&f) {
                formats.push(f);
            }
        }
    }
    formats
}

/// The image aspect of plane `index` of a multi-planar image.
pub(crate) fn plane_aspect(index: usize) -> vk::ImageAspectFlags {
    match index {
        0 => vk::ImageAspectFlags::PLANE_0,
        1 => vk::ImageAspectFlags::PLANE_1,
        _ => vk::ImageAspectFlags::PLANE_2,
    }
}

/// The memory-plane aspect of plane `index` (for DRM format modifiers).
pub(crate) fn memory_plane_aspect(index: usize) -> vk::ImageAspectFlags {
    match index {
        0 => vk::ImageAspectFlags::MEMORY_PLANE_0_EXT,
        1 => vk::ImageAspectFlags::MEMORY_PLANE_1_EXT,
        2 => vk::ImageAspectFlags::MEMORY_PLANE_2_EXT,
        _ => vk::ImageAspectFlags::MEMORY_PLANE_3_EXT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format;

    #[test]
    fn every_vulkan_format_agrees_with_the_format_table() {
        for f in VK_FORMATS {
            let info = format::info(f.fourcc).expect("in the format table");
            assert_eq!(info.plane_count(), f.plane_formats.len(), "{}", info.name);
        }
        assert_eq!(
            vk_format(DrmFourcc::Nv12).map(|f| f.format),
            Some(vk::Format::G8_B8R8_2PLANE_420_UNORM)
        );
        assert_eq!(
            vk_format(DrmFourcc::Yuv420).map(|f| f.format),
            Some(vk::Format::G8_B8_R8_3PLANE_420_UNORM)
        );
        assert_eq!(
            vk_format(DrmFourcc::P010).map(|f| f.format),
            Some(vk::Format::G10X6_B10X6R10X6_2PLANE_420_UNORM_3PACK16)
        );
        assert_eq!(
            vk_format(DrmFourcc::Yuyv).map(|f| f.format),
            Some(vk::Format::G8B8G8R8_422_UNORM)
        );
        assert!(vk_format(DrmFourcc::Nv21).is_none());
        assert_eq!(image_extent(DrmFourcc::Nv12, 4095, 17), (4096, 18));
        assert_eq!(image_extent(DrmFourcc::Yuyv, 3, 3), (4, 3));
        assert_eq!(image_extent(DrmFourcc::Xrgb8888, 3, 3), (3, 3));
        let xrgb = vk_format(DrmFourcc::Xrgb8888).expect("listed");
        assert_eq!(
            view_formats(xrgb, vk::ImageUsageFlags::SAMPLED),
            [vk::Format::B8G8R8A8_UNORM]
        );
        assert_eq!(
            view_formats(xrgb, vk::ImageUsageFlags::STORAGE),
            [vk::Format::B8G8R8A8_UNORM, vk::Format::R8G8B8A8_UNORM]
        );
        let nv12 = vk_format(DrmFourcc::Nv12).expect("listed");
        assert_eq!(
            view_formats(nv12, vk::ImageUsageFlags::STORAGE),
            [
                vk::Format::G8_B8R8_2PLANE_420_UNORM,
                vk::Format::R8_UNORM,
                vk::Format::R8G8_UNORM
            ]
        );
        let rgba: Vec<_> = fourccs_for(vk::Format::B8G8R8A8_UNORM).collect();
        assert_eq!(rgba, [DrmFourcc::Xrgb8888, DrmFourcc::Argb8888]);
    }
}
