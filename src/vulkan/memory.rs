//! The one place that creates dma-buf `VkImage`s, picks their memory types,
//! imports or allocates and binds their memory, and names PLANE vs MEMORY_PLANE aspects.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::Arc;

use ash::vk;
use drm_fourcc::DrmFourcc;
use rustix::io::Errno;

use super::context::VulkanContext;
use super::error::{VulkanError, call};
use super::format::{VkFormatInfo, image_extent, memory_plane_aspect, plane_aspect, view_formats, vk_format};
use super::image::VulkanImage;
use super::support::{device_name, image_flags};
use crate::dmabuf::DmaBuf;
use crate::format::{self, Layout, PlaneLayout};

/// The external memory handle type of every image here.
pub(super) const DMA_BUF: vk::ExternalMemoryHandleTypeFlags = vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT;

impl VulkanImage {
    /// The aspect naming memory binding `index` of a disjoint image:
    /// MEMORY_PLANE_i under DRM format modifier tiling, PLANE_i otherwise
    /// (VUID-VkBindImagePlaneMemoryInfo-planeAspect-02284,
    /// VUID-VkImagePlaneMemoryRequirementsInfo-planeAspect-02282).
    fn binding_aspect(&self, index: usize) -> vk::ImageAspectFlags {
        if self.modifier_tiling {
            memory_plane_aspect(index)
        } else {
            plane_aspect(index)
        }
    }
}

pub(super) fn create_image<'a>(
    ctx: &VulkanContext,
    format: &VkFormatInfo,
    width: u32,
    height: u32,
    usage: vk::ImageUsageFlags,
    disjoint: bool,
    finish: impl FnOnce(vk::ImageCreateInfo<'a>) -> vk::ImageCreateInfo<'a>,
) -> Result<vk::Image, VulkanError> {
    let (width, height) = image_extent(format.fourcc, width, height);
    let mut external = vk::ExternalMemoryImageCreateInfo::default().handle_types(DMA_BUF);
    let flags = image_flags(format, usage, disjoint);
    let formats = view_formats(format, usage);
    let mut format_list = vk::ImageFormatListCreateInfo::default().view_formats(&formats);
    let info = vk::ImageCreateInfo::default()
        .flags(flags)
        .image_type(vk::ImageType::TYPE_2D)
        .format(format.format)
        .extent(vk::Extent3D {
            width,
            height,
            depth: 1,
        })
        .mip_levels(1)
        .array_layers(1)
        .samples(vk::SampleCountFlags::TYPE_1)
        .usage(usage)
        .sharing_mode(vk::SharingMode::EXCLUSIVE)
        // Required for external memory (VUID-VkImageCreateInfo-pNext-01443).
        .initial_layout(vk::ImageLayout::UNDEFINED);
    let mut info = finish(info).push_next(&mut external);
    if flags.contains(vk::ImageCreateFlags::MUTABLE_FORMAT) {
        // Every view format, listed: required under DRM format modifier
        // tiling (VUID-VkImageCreateInfo-tiling-02353), and lets drivers
        // keep compression for the listed formats.
        info = info.push_next(&mut format_list);
    }
    // SAFETY: every chained struct outlives the call; the caller destroys the
    // image (it is stored in a VulkanImage before any further fallible step).
    unsafe { ctx.device().create_image(&info, None) }.map_err(call("vkCreateImage"))
}

/// The driver's layout of every plane of a LINEAR, non-disjoint image
/// (COLOR aspect for one-plane formats, PLANE_i otherwise), with offsets
/// from the start of the image's memory.
///
/// Mesa 25.0's lavapipe reports offset 0 for every plane of a multi-planar
/// image (the offset inside the plane, not inside the memory) while it
/// stores plane i+1 right after plane i (`offset + size`): verified by
/// locating the chroma rows the pattern shader wrote into an exported NV12
/// memfd. A report whose planes overlap cannot be a real layout, so such
/// reports are corrected to that packing; `tests/vulkan.rs` checks every
/// byte of NV12 imports and exports against the CPU reference.
fn driver_plane_layouts(ctx: &VulkanContext, image: &VulkanImage) -> Vec<vk::SubresourceLayout> {
    let multi = image.format.plane_formats.len() > 1;
    let mut layouts: Vec<vk::SubresourceLayout> = (0..image.format.plane_formats.len())
        .map(|plane| {
            let aspect = if multi {
                plane_aspect(plane)
            } else {
                vk::ImageAspectFlags::COLOR
            };
            let sub = vk::ImageSubresource::default().aspect_mask(aspect);
            // SAFETY: a LINEAR image of ours; the aspect exists for its format.
            unsafe { ctx.device().get_image_subresource_layout(image.image, sub) }
        })
        .collect();
    // Disjoint planes each start their own memory: offsets may all be 0.
    for i in (1..layouts.len()).filter(|_| !image.disjoint) {
        let previous_end = layouts[i - 1].offset + layouts[i - 1].size;
        if layouts[i].offset < previous_end {
            layouts[i].offset = previous_end;
        }
    }
    layouts
}

/// Checks the dma-buf against the driver's LINEAR layout; returns the offset
/// in each memory binding's fd where the binding starts.
pub(super) fn check_linear_layout(
    ctx: &VulkanContext,
    image: &VulkanImage,
    dmabuf: &DmaBuf,
    disjoint: bool,
) -> Result<Vec<u64>, VulkanError> {
    let mismatch = |plane, field, given, needed| VulkanError::LayoutMismatch {
        plane,
        field,
        given,
        needed,
        fourcc: dmabuf.fourcc(),
        width: dmabuf.width(),
        height: dmabuf.height(),
        device: device_name(ctx),
    };
    let mut bind_offsets = Vec::new();
    let layouts = driver_plane_layouts(ctx, image);
    for (i, (plane, layout)) in dmabuf.planes().iter().zip(&layouts).enumerate() {
        if u64::from(plane.stride()) != layout.row_pitch {
            return Err(mismatch(i, "stride", u64::from(plane.stride()), layout.row_pitch));
        }
        // Plane 0 (or every plane, when disjoint) decides where its binding
        // starts; the others must sit where the driver puts them.
        let offset = u64::from(plane.offset());
        if i == 0 || disjoint {
            let start = offset
                .checked_sub(layout.offset)
                .ok_or_else(|| mismatch(i, "offset", offset, layout.offset))?;
            bind_offsets.push(start);
        } else if offset != bind_offsets[0] + layout.offset {
            return Err(mismatch(i, "offset", offset, bind_offsets[0] + layout.offset));
        }
    }
    Ok(bind_offsets)
}

/// Memory requirements of `image`, or of the memory plane named by
/// `plane_aspect` (disjoint images).
fn memory_requirements(
    ctx: &VulkanContext,
    image: vk::Image,
    plane_aspect: Option<vk::ImageAspectFlags>,
) -> (vk::MemoryRequirements, bool) {
    let mut plane_info = vk::ImagePlaneMemoryRequirementsInfo::default();
    let mut info = vk::ImageMemoryRequirementsInfo2::default().image(image);
    if let Some(aspect) = plane_aspect {
        plane_info = plane_info.plane_aspect(aspect);
        info = info.push_next(&mut plane_info);
    }
    let mut dedicated = vk::MemoryDedicatedRequirements::default();
    let mut req = vk::MemoryRequirements2::default().push_next(&mut dedicated);
    // SAFETY: valid image; chained structs live for the call.
    unsafe { ctx.device().get_image_memory_requirements2(&info, &mut req) };
    let requirements = req.memory_requirements;
    let wants_dedicated =
        dedicated.prefers_dedicated_allocation == vk::TRUE || dedicated.requires_dedicated_allocation == vk::TRUE;
    (requirements, wants_dedicated)
}

/// Imports one memory object per binding (one, or one per plane when
/// disjoint) and binds the image.
pub(super) fn bind_memory(
    ctx: &VulkanContext,
    image: &mut VulkanImage,
    dmabuf: &DmaBuf,
    bind_offsets: &[u64],
) -> Result<(), VulkanError> {
    let disjoint = image.disjoint;
    for (binding, &bind_offset) in bind_offsets.iter().enumerate() {
        let plane = &dmabuf.planes()[binding];
        let (req, wants_dedicated) =
            memory_requirements(ctx, image.image, disjoint.then(|| image.binding_aspect(binding)));
        let needed = bind_offset.saturating_add(req.size);
        if needed > plane.fd_size() {
            return Err(VulkanError::FdTooSmall {
                plane: binding,
                needed,
                fd_size: plane.fd_size(),
            });
        }
        if bind_offset % req.alignment.max(1) != 0 {
            return Err(VulkanError::LayoutMismatch {
                plane: binding,
                field: "offset alignment",
                given: bind_offset,
                needed: req.alignment,
                fourcc: dmabuf.fourcc(),
                width: dmabuf.width(),
                height: dmabuf.height(),
                device: device_name(ctx),
            });
        }
        // A dedicated allocation must be bound at offset 0 and covers one
        // non-disjoint image.
        let dedicate = wants_dedicated && bind_offset == 0 && !disjoint;
        let memory = import_fd_memory(
            ctx,
            binding,
            plane.fd(),
            plane.fd_size(),
            req.memory_type_bits,
            dedicate.then_some(image.image),
        )?;
        image.memory.push(memory);
    }
    bind_image(ctx, image, bind_offsets)
}

/// Imports the `size`-byte dma-buf `fd` (of plane `plane`) as device
/// memory of a type both the fd and the resource (`resource_types`, its
/// requirements' bits) accept; `dedicated`: the image the allocation is
/// dedicated to. Vulkan owns the fd it imports, so it is handed a dup; the
/// caller keeps `fd`.
pub(super) fn import_fd_memory(
    ctx: &VulkanContext,
    plane: usize,
    fd: BorrowedFd<'_>,
    size: u64,
    resource_types: u32,
    dedicated: Option<vk::Image>,
) -> Result<vk::DeviceMemory, VulkanError> {
    let mut fd_props = vk::MemoryFdPropertiesKHR::default();
    // SAFETY: a valid fd we hold for the duration of the call.
    unsafe {
        ctx.memory_fd()
            .get_memory_fd_properties(DMA_BUF, fd.as_raw_fd(), &mut fd_props)
    }
    .map_err(call("vkGetMemoryFdPropertiesKHR"))?;
    let types = fd_props.memory_type_bits & resource_types;
    if types == 0 {
        return Err(VulkanError::NoMemoryType {
            fd_types: fd_props.memory_type_bits,
            image_types: resource_types,
        });
    }
    let dup: OwnedFd = fd.try_clone_to_owned().map_err(|e| VulkanError::Dup {
        plane,
        source: Errno::from_io_error(&e).unwrap_or(Errno::BADF),
    })?;
    let raw = dup.into_raw_fd();
    let mut import = vk::ImportMemoryFdInfoKHR::default().handle_type(DMA_BUF).fd(raw);
    let mut dedicated_info = vk::MemoryDedicatedAllocateInfo::default().image(dedicated.unwrap_or_default());
    let mut info = vk::MemoryAllocateInfo::default()
        .allocation_size(size)
        .memory_type_index(types.trailing_zeros())
        .push_next(&mut import);
    if dedicated.is_some() {
        info = info.push_next(&mut dedicated_info);
    }
    // SAFETY: valid allocate info; on success the memory owns `raw`.
    match unsafe { ctx.device().allocate_memory(&info, None) } {
        Ok(memory) => Ok(memory),
        Err(e) => {
            // SAFETY: the import failed, so `raw` is still ours to close.
            drop(unsafe { OwnedFd::from_raw_fd(raw) });
            Err(call("vkAllocateMemory (dma-buf import)")(e))
        }
    }
}

fn bind_image(ctx: &VulkanContext, image: &VulkanImage, bind_offsets: &[u64]) -> Result<(), VulkanError> {
    let mut plane_infos: Vec<vk::BindImagePlaneMemoryInfo> = (0..image.memory.len())
        .map(|i| vk::BindImagePlaneMemoryInfo::default().plane_aspect(image.binding_aspect(i)))
        .collect();
    let binds: Vec<vk::BindImageMemoryInfo> = plane_infos
        .iter_mut()
        .zip(&image.memory)
        .zip(bind_offsets)
        .map(|((plane_info, &memory), &offset)| {
            let bind = vk::BindImageMemoryInfo::default()
                .image(image.image)
                .memory(memory)
                .memory_offset(offset);
            if image.disjoint {
                bind.push_next(plane_info)
            } else {
                bind
            }
        })
        .collect();
    // SAFETY: image and memories are ours; offsets were checked against the
    // requirements and the fd sizes.
    unsafe { ctx.device().bind_image_memory2(&binds) }.map_err(call("vkBindImageMemory2"))
}

/// The LINEAR layout the driver uses for an image of `fourcc` at
/// `width`x`height` with `usage`: per-plane offsets and row pitches and the
/// memory size it needs. Dma-bufs imported on devices without
/// `VK_EXT_image_drm_format_modifier` must have exactly this layout.
pub fn linear_layout(
    ctx: &Arc<VulkanContext>,
    fourcc: DrmFourcc,
    width: u32,
    height: u32,
    usage: vk::ImageUsageFlags,
) -> Result<Layout, VulkanError> {
    let format = vk_format(fourcc).ok_or(VulkanError::UnsupportedFormat { fourcc })?;
    let info = format::info(fourcc)?;
    let mut probe = VulkanImage::empty(ctx, format, usage, width, height);
    probe.image = create_image(ctx, format, width, height, usage, false, |i| {
        i.tiling(vk::ImageTiling::LINEAR)
    })?;
    let mut planes = Vec::with_capacity(info.plane_count());
    for (plane, l) in info.planes.iter().zip(driver_plane_layouts(ctx, &probe)) {
        let offset = u32::try_from(l.offset).map_err(|_| VulkanError::Usage("driver plane offset exceeds u32"))?;
        let stride = u32::try_from(l.row_pitch).map_err(|_| VulkanError::Usage("driver row pitch exceeds u32"))?;
        planes.push(PlaneLayout {
            offset,
            stride,
            size: u64::from(stride) * u64::from(plane.rows(height)),
        });
    }
    let (req, _) = memory_requirements(ctx, probe.image, None);
    Ok(Layout::from_planes(&planes, req.size)?)
}

/// Allocates exportable DMA_BUF memory for `out` (an unbound image of ours)
/// from a memory type it allows, DEVICE_LOCAL preferred, dedicated where the
/// driver wants it; stores the memory in `out` and binds it at offset 0.
pub(super) fn allocate_export_memory(
    ctx: &VulkanContext,
    out: &mut VulkanImage,
) -> Result<vk::DeviceMemory, VulkanError> {
    let (req, wants_dedicated) = memory_requirements(ctx, out.image, None);
    // SAFETY: plain query.
    let props = unsafe {
        ctx.instance()
            .get_physical_device_memory_properties(ctx.physical_device())
    };
    let type_index = (0..props.memory_type_count)
        .filter(|&i| req.memory_type_bits & (1 << i) != 0)
        .max_by_key(|&i| {
            props.memory_types[i as usize]
                .property_flags
                .contains(vk::MemoryPropertyFlags::DEVICE_LOCAL)
        })
        .ok_or(VulkanError::NoMemoryType {
            fd_types: u32::MAX,
            image_types: req.memory_type_bits,
        })?;
    let mut export = vk::ExportMemoryAllocateInfo::default().handle_types(DMA_BUF);
    let mut dedicated = vk::MemoryDedicatedAllocateInfo::default().image(out.image);
    let mut info = vk::MemoryAllocateInfo::default()
        .allocation_size(req.size)
        .memory_type_index(type_index)
        .push_next(&mut export);
    if wants_dedicated {
        info = info.push_next(&mut dedicated);
    }
    // SAFETY: valid allocate info; the memory is stored in `out` at once.
    let memory =
        unsafe { ctx.device().allocate_memory(&info, None) }.map_err(call("vkAllocateMemory (dma-buf export)"))?;
    out.memory.push(memory);
    bind_image(ctx, out, &[0])?;
    Ok(memory)
}

/// The layouts of the `plane_count` memory planes of an exported,
/// non-disjoint image: MEMORY_PLANE_i under DRM format modifier tiling, the
/// driver's LINEAR plane layouts ([`driver_plane_layouts`]) otherwise.
pub(super) fn exported_plane_layouts(
    ctx: &VulkanContext,
    image: &VulkanImage,
    plane_count: usize,
) -> Vec<vk::SubresourceLayout> {
    if image.modifier_tiling {
        (0..plane_count)
            .map(|plane| {
                let sub = vk::ImageSubresource::default().aspect_mask(memory_plane_aspect(plane));
                // SAFETY: DRM_FORMAT_MODIFIER tiling with `plane_count` memory planes.
                unsafe { ctx.device().get_image_subresource_layout(image.image, sub) }
            })
            .collect()
    } else {
        driver_plane_layouts(ctx, image)
    }
}
