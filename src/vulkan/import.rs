//! [`import`]: a dma-buf made elsewhere becomes a [`VulkanImage`] (checks,
//! image creation, memory import and binding, views, implicit-sync fds).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use ash::vk;
use drm_fourcc::DrmModifier;
use rustix::io::Errno;

use super::context::VulkanContext;
use super::error::VulkanError;
use super::format::vk_format;
use super::image::{VulkanImage, create_views};
use super::memory::{bind_memory, check_linear_layout, create_image};
use super::support::{check_extent, check_modifier, device_name, format_support, modifiers};
use crate::dmabuf::{DmaBuf, ModifierName};

/// Imports `dmabuf` as a `VkImage` with `usage`.
///
/// With `VK_EXT_image_drm_format_modifier` the image uses the dma-buf's own
/// modifier and plane layouts. Without it (lavapipe) only LINEAR dma-bufs
/// are accepted, and only when their offsets and strides equal the driver's
/// LINEAR layout (see [`linear_layout`](super::linear_layout)); anything else is refused with
/// [`VulkanError::LayoutMismatch`] before memory is touched. Planes in
/// different files are bound disjointly (needs the DISJOINT format feature).
/// Vulkan takes ownership of the fds it imports, so each is dup'ed: the
/// `DmaBuf` keeps its own.
pub fn import(
    ctx: &Arc<VulkanContext>,
    dmabuf: &DmaBuf,
    usage: vk::ImageUsageFlags,
) -> Result<VulkanImage, VulkanError> {
    let fourcc = dmabuf.fourcc();
    let format = vk_format(fourcc).ok_or(VulkanError::UnsupportedFormat { fourcc })?;
    let modifier = dmabuf.modifier();
    if modifier == DrmModifier::Invalid {
        return Err(VulkanError::UnsupportedModifier {
            fourcc,
            modifier: ModifierName(modifier),
            device: device_name(ctx),
            reason: "an implicit (INVALID) modifier has no layout Vulkan can be told",
        });
    }
    if !ctx.capabilities().drm_format_modifier && modifier != DrmModifier::Linear {
        return Err(VulkanError::UnsupportedModifier {
            fourcc,
            modifier: ModifierName(modifier),
            device: device_name(ctx),
            reason: "the device lacks VK_EXT_image_drm_format_modifier, so only LINEAR can be imported",
        });
    }
    if ctx.capabilities().drm_format_modifier && modifier != DrmModifier::Linear {
        let listed = modifiers(ctx, fourcc)?;
        check_modifier(&listed, fourcc, modifier, dmabuf.planes().len(), &device_name(ctx))?;
    }
    let support = format_support(ctx, fourcc, modifier, usage)?;
    let use_modifier_ext = support.modifier_tiling;
    if !support.importable {
        return Err(VulkanError::NotSupported {
            fourcc,
            modifier: ModifierName(modifier),
            width: dmabuf.width(),
            height: dmabuf.height(),
            action: "imported",
            device: device_name(ctx),
        });
    }
    check_extent(ctx, fourcc, dmabuf.width(), dmabuf.height(), &support)?;
    let files = dmabuf.distinct_files();
    let disjoint = files.len() > 1;
    if disjoint && (!support.disjoint || format.plane_formats.len() < 2) {
        return Err(VulkanError::Disjoint {
            fourcc,
            files: files.len(),
            device: device_name(ctx),
            reason: if format.plane_formats.len() < 2 {
                "only multi-planar formats can be disjoint"
            } else {
                "the format has no DISJOINT feature for this tiling"
            },
        });
    }

    let mut out = VulkanImage::empty(ctx, format, usage, dmabuf.width(), dmabuf.height());
    out.colorimetry = dmabuf.colorimetry();
    out.disjoint = disjoint;
    out.modifier_tiling = use_modifier_ext;
    let plane_layouts: Vec<vk::SubresourceLayout> = dmabuf
        .planes()
        .iter()
        .map(|p| vk::SubresourceLayout {
            offset: u64::from(p.offset()),
            row_pitch: u64::from(p.stride()),
            size: 0,
            array_pitch: 0,
            depth_pitch: 0,
        })
        .collect();
    let mut explicit = vk::ImageDrmFormatModifierExplicitCreateInfoEXT::default()
        .drm_format_modifier(modifier.into())
        .plane_layouts(&plane_layouts);
    out.image = create_image(ctx, format, dmabuf.width(), dmabuf.height(), usage, disjoint, |info| {
        if use_modifier_ext {
            info.tiling(vk::ImageTiling::DRM_FORMAT_MODIFIER_EXT)
                .push_next(&mut explicit)
        } else {
            info.tiling(vk::ImageTiling::LINEAR)
        }
    })?;

    // Where each memory binding starts in its fd.
    let bind_offsets: Vec<u64> = if use_modifier_ext {
        // Explicit layouts are relative to the binding, which starts at 0.
        vec![0; if disjoint { dmabuf.planes().len() } else { 1 }]
    } else {
        check_linear_layout(ctx, &out, dmabuf, disjoint)?
    };
    bind_memory(ctx, &mut out, dmabuf, &bind_offsets)?;
    create_views(ctx, &mut out)?;
    out.implicit_fds = implicit_fds(dmabuf, &files)?;
    Ok(out)
}

/// Dups of the distinct files of a kernel dma-buf (none for memfds).
pub(super) fn implicit_fds(dmabuf: &DmaBuf, files: &[usize]) -> Result<Vec<OwnedFd>, VulkanError> {
    files
        .iter()
        .map(|&i| &dmabuf.planes()[i])
        .filter(|p| p.is_kernel_dmabuf())
        .enumerate()
        .map(|(i, p)| {
            p.fd().try_clone_to_owned().map_err(|e| VulkanError::Dup {
                plane: i,
                source: Errno::from_io_error(&e).unwrap_or(Errno::BADF),
            })
        })
        .collect()
}
