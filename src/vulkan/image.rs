//! `DmaBuf` <-> `VkImage`: import, export, ownership transfer, read-back.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ash::vk;
use drm_fourcc::{DrmFourcc, DrmModifier};
use rustix::io::Errno;

use super::commands::{HostBuffer, submit_and_wait_synced};
use super::context::VulkanContext;
use super::error::{VulkanError, call};
use super::format::{
    VkFormatInfo, image_extent, memory_plane_aspect, plane_aspect, storage_view_format, view_formats, vk_format,
};
use crate::alloc::{self, Allocator, AllocatorKind};
use crate::dmabuf::{DmaBuf, ModifierName};
use crate::format::{self, Layout, PlaneLayout};
use crate::sync::SyncAccess;

const DMA_BUF: vk::ExternalMemoryHandleTypeFlags = vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT;

/// How an exported image's memory was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportBackend {
    /// The driver allocated exportable dma-buf memory
    /// (`VK_EXT_external_memory_dma_buf` export, modifiers when present).
    Native,
    /// The driver cannot export: the LINEAR layout it wants was allocated
    /// from this host allocator and imported.
    Host(AllocatorKind),
}

/// A `VkImage` bound to dma-buf memory, imported or exported.
///
/// Owns the image, its memory and its per-plane views; holds the context
/// alive. The fds belong to the [`DmaBuf`] (Vulkan owns its own dups of
/// them inside the memory objects).
pub struct VulkanImage {
    ctx: Arc<VulkanContext>,
    image: vk::Image,
    memory: Vec<vk::DeviceMemory>,
    /// Sampled views, one per plane (with SAMPLED usage).
    views: Vec<vk::ImageView>,
    /// Storage views, one per plane (with STORAGE usage).
    storage_views: Vec<vk::ImageView>,
    format: &'static VkFormatInfo,
    /// DRM_FORMAT_MODIFIER_EXT tiling (else LINEAR): decides the aspects
    /// that name memory planes.
    modifier_tiling: bool,
    usage: vk::ImageUsageFlags,
    width: u32,
    height: u32,
    disjoint: bool,
    acquired_before: AtomicBool,
    /// Dups of the distinct files of a kernel dma-buf, for implicit sync
    /// (empty for memfds, which have no fences).
    implicit_fds: Vec<OwnedFd>,
}

impl std::fmt::Debug for VulkanImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VulkanImage")
            .field("image", &self.image)
            .field("format", &self.format.format)
            .field("usage", &self.usage)
            .field("size", &(self.width, self.height))
            .field("disjoint", &self.disjoint)
            .finish()
    }
}

impl Drop for VulkanImage {
    fn drop(&mut self) {
        let device = self.ctx.device();
        // SAFETY: all handles are ours (or null, which destroy/free accept);
        // callers wait for their submissions before dropping images.
        unsafe {
            for view in self.views.drain(..).chain(self.storage_views.drain(..)) {
                device.destroy_image_view(view, None);
            }
            device.destroy_image(self.image, None);
            for memory in self.memory.drain(..) {
                device.free_memory(memory, None);
            }
        }
    }
}

impl VulkanImage {
    fn empty(
        ctx: &Arc<VulkanContext>,
        format: &'static VkFormatInfo,
        usage: vk::ImageUsageFlags,
        width: u32,
        height: u32,
    ) -> Self {
        Self {
            ctx: Arc::clone(ctx),
            image: vk::Image::null(),
            memory: Vec::new(),
            views: Vec::new(),
            storage_views: Vec::new(),
            format,
            modifier_tiling: false,
            usage,
            width,
            height,
            disjoint: false,
            acquired_before: AtomicBool::new(false),
            implicit_fds: Vec::new(),
        }
    }

    /// The image handle.
    pub fn image(&self) -> vk::Image {
        self.image
    }

    /// The image's format.
    pub fn vk_format(&self) -> vk::Format {
        self.format.format
    }

    /// Usage the image was created with.
    pub fn usage(&self) -> vk::ImageUsageFlags {
        self.usage
    }

    /// Per-plane views for sampling, identity swizzle (R8/R8G8 for NV12's
    /// planes, the format itself for RGB). Empty without SAMPLED usage, and
    /// for packed 4:2:2 formats (their views need a YCbCr conversion).
    pub fn plane_views(&self) -> &[vk::ImageView] {
        &self.views
    }

    /// Per-plane views for storage writes (with STORAGE usage; else empty).
    /// Their formats are declared in the kernels' shaders: R8/R8G8 for
    /// NV12's planes, R8G8B8A8 for both 32-bit RGB orders (a B8G8R8A8 image
    /// is written through an R8G8B8A8 view, the shader swizzles; see
    /// `format::storage_view_format`).
    pub fn storage_views(&self) -> &[vk::ImageView] {
        &self.storage_views
    }

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

    /// Width in pixels of the frame (the `VkImage` itself may be one
    /// column/row larger for odd-sized YUV; see the module docs).
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels of the frame.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The frame's fourcc.
    pub fn fourcc(&self) -> DrmFourcc {
        self.format.fourcc
    }

    /// Whether planes are bound to separate memory objects.
    pub fn is_disjoint(&self) -> bool {
        self.disjoint
    }

    /// The context the image belongs to.
    pub fn context(&self) -> &Arc<VulkanContext> {
        &self.ctx
    }

    /// The kernel dma-buf fds to synchronise implicitly with, for `access`.
    pub(crate) fn implicit_sync(&self, access: SyncAccess) -> Vec<(BorrowedFd<'_>, SyncAccess)> {
        self.implicit_fds.iter().map(|fd| (fd.as_fd(), access)).collect()
    }

    fn whole_color_range() -> vk::ImageSubresourceRange {
        vk::ImageSubresourceRange::default()
            .aspect_mask(vk::ImageAspectFlags::COLOR)
            .level_count(1)
            .layer_count(1)
    }

    /// Records the acquire half of the ownership transfer from
    /// `VK_QUEUE_FAMILY_FOREIGN_EXT` (the other users of the dma-buf) to this
    /// context's queue family, moving the image to `new_layout`.
    ///
    /// The first acquire of an image starts from `UNDEFINED` (its only valid
    /// layout right after creation with external memory,
    /// VUID-VkImageCreateInfo-pNext-01443), later ones from `GENERAL`, the
    /// layout [`cmd_release`](Self::cmd_release) leaves it in. For an
    /// imported dma-buf that first transition does not discard what the
    /// producer wrote: the specification's "External Resource Sharing"
    /// section makes the layout of the first acquire from an external or
    /// foreign queue family the image's true initial layout, the `UNDEFINED`
    /// given at creation being a placeholder. The import tests check every
    /// pixel of the first frame read through a fresh import.
    pub fn cmd_acquire(
        &self,
        cb: vk::CommandBuffer,
        new_layout: vk::ImageLayout,
        dst_stage: vk::PipelineStageFlags,
        dst_access: vk::AccessFlags,
    ) {
        let old_layout = if self.acquired_before.swap(true, Ordering::AcqRel) {
            vk::ImageLayout::GENERAL
        } else {
            vk::ImageLayout::UNDEFINED
        };
        let barrier = vk::ImageMemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::empty())
            .dst_access_mask(dst_access)
            .old_layout(old_layout)
            .new_layout(new_layout)
            .src_queue_family_index(vk::QUEUE_FAMILY_FOREIGN_EXT)
            .dst_queue_family_index(self.ctx.queue_family())
            .image(self.image)
            .subresource_range(Self::whole_color_range());
        // SAFETY: `cb` is in the recording state (caller's contract) and the
        // barrier names our image.
        unsafe {
            self.ctx.device().cmd_pipeline_barrier(
                cb,
                vk::PipelineStageFlags::TOP_OF_PIPE,
                dst_stage,
                vk::DependencyFlags::empty(),
                &[],
                &[],
                &[barrier],
            )
        };
    }

    /// Records the release half of the ownership transfer back to
    /// `VK_QUEUE_FAMILY_FOREIGN_EXT`, leaving the image in `GENERAL`, after
    /// the writes of `src_stage`/`src_access` in `old_layout`.
    pub fn cmd_release(
        &self,
        cb: vk::CommandBuffer,
        old_layout: vk::ImageLayout,
        src_stage: vk::PipelineStageFlags,
        src_access: vk::AccessFlags,
    ) {
        let barrier = vk::ImageMemoryBarrier::default()
            .src_access_mask(src_access)
            .dst_access_mask(vk::AccessFlags::empty())
            .old_layout(old_layout)
            .new_layout(vk::ImageLayout::GENERAL)
            .src_queue_family_index(self.ctx.queue_family())
            .dst_queue_family_index(vk::QUEUE_FAMILY_FOREIGN_EXT)
            .image(self.image)
            .subresource_range(Self::whole_color_range());
        // SAFETY: as in cmd_acquire.
        unsafe {
            self.ctx.device().cmd_pipeline_barrier(
                cb,
                src_stage,
                vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                vk::DependencyFlags::empty(),
                &[],
                &[],
                &[barrier],
            )
        };
    }

    /// Plane extents (width, height) in texels of each plane.
    fn plane_formats(&self) -> &'static [format::PlaneFormat] {
        format::info(self.format.fourcc).map_or(&[], |i| i.planes)
    }

    fn plane_extents(&self) -> Vec<(u32, u32)> {
        self.plane_formats()
            .iter()
            .map(|p| (p.samples(self.width), p.rows(self.height)))
            .collect()
    }

    fn copy_regions(&self, offsets: &[u64]) -> Vec<vk::BufferImageCopy> {
        let multi = self.format.plane_formats.len() > 1;
        self.plane_extents()
            .into_iter()
            .enumerate()
            .map(|(i, (w, h))| {
                let aspect = if multi {
                    plane_aspect(i)
                } else {
                    vk::ImageAspectFlags::COLOR
                };
                // One-plane images are addressed in pixels; packed 4:2:2 ones
                // are copied whole (padded) because their 2x1 blocks must not
                // be split.
                let (w, h) = if self.format.plane_formats.len() == 1 {
                    image_extent(self.format.fourcc, self.width, self.height)
                } else {
                    (w, h)
                };
                vk::BufferImageCopy::default()
                    .buffer_offset(offsets[i])
                    .image_subresource(vk::ImageSubresourceLayers::default().aspect_mask(aspect).layer_count(1))
                    .image_extent(vk::Extent3D {
                        width: w,
                        height: h,
                        depth: 1,
                    })
            })
            .collect()
    }

    /// Tightly packed size of each plane (rows of minimum row bytes).
    fn packed_plane_sizes(&self) -> Vec<usize> {
        self.plane_formats()
            .iter()
            .map(|p| {
                let row = p.min_row_bytes(self.width).unwrap_or(0) as usize;
                row * p.rows(self.height) as usize
            })
            .collect()
    }

    /// Copies the image into host memory through the GPU (acquire, copy to a
    /// staging buffer, release, wait) and returns each plane tightly packed
    /// (rows of the plane's minimum row size). This is the copy path: tests
    /// use it to see what Vulkan sees.
    pub fn download(&self) -> Result<Vec<Vec<u8>>, VulkanError> {
        if !self.usage.contains(vk::ImageUsageFlags::TRANSFER_SRC) {
            return Err(VulkanError::Usage(
                "download needs an image created with TRANSFER_SRC usage",
            ));
        }
        let sizes = self.packed_plane_sizes();
        let (offsets, total) = staging_offsets(&sizes);
        let staging = HostBuffer::new(&self.ctx, total, vk::BufferUsageFlags::TRANSFER_DST)?;
        let regions = self.copy_regions(&offsets);
        submit_and_wait_synced(&self.ctx, &self.implicit_sync(SyncAccess::Read), |cb| {
            self.cmd_acquire(
                cb,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                vk::PipelineStageFlags::TRANSFER,
                vk::AccessFlags::TRANSFER_READ,
            );
            // SAFETY: recording; image in TRANSFER_SRC_OPTIMAL after the
            // acquire; regions lie inside image and buffer.
            unsafe {
                self.ctx.device().cmd_copy_image_to_buffer(
                    cb,
                    self.image,
                    vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                    staging.buffer,
                    &regions,
                )
            };
            self.cmd_release(
                cb,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                vk::PipelineStageFlags::TRANSFER,
                vk::AccessFlags::empty(),
            );
            let to_host = vk::MemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                .dst_access_mask(vk::AccessFlags::HOST_READ);
            // SAFETY: recording.
            unsafe {
                self.ctx.device().cmd_pipeline_barrier(
                    cb,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::PipelineStageFlags::HOST,
                    vk::DependencyFlags::empty(),
                    &[to_host],
                    &[],
                    &[],
                )
            };
            Ok(())
        })?;
        staging.with_bytes(|bytes| {
            offsets
                .iter()
                .zip(&sizes)
                .map(|(&o, &s)| bytes[o as usize..o as usize + s].to_vec())
                .collect()
        })
    }

    /// Copies tightly packed planes into the image through a staging buffer
    /// (`vkCmdCopyBufferToImage`): the copy path that zero-copy import
    /// replaces, kept for comparison and for sources that are not dma-bufs.
    pub fn upload(&self, planes: &[&[u8]]) -> Result<(), VulkanError> {
        if !self.usage.contains(vk::ImageUsageFlags::TRANSFER_DST) {
            return Err(VulkanError::Usage(
                "upload needs an image created with TRANSFER_DST usage",
            ));
        }
        let sizes = self.packed_plane_sizes();
        if planes.len() != sizes.len() || planes.iter().zip(&sizes).any(|(p, &s)| p.len() != s) {
            return Err(VulkanError::Usage(
                "upload: plane count or sizes do not match the image",
            ));
        }
        let (offsets, total) = staging_offsets(&sizes);
        let staging = HostBuffer::new(&self.ctx, total, vk::BufferUsageFlags::TRANSFER_SRC)?;
        staging.with_bytes(|bytes| {
            for (p, &at) in planes.iter().zip(&offsets) {
                bytes[at as usize..at as usize + p.len()].copy_from_slice(p);
            }
        })?;
        let regions = self.copy_regions(&offsets);
        submit_and_wait_synced(&self.ctx, &self.implicit_sync(SyncAccess::Write), |cb| {
            self.cmd_acquire(
                cb,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                vk::PipelineStageFlags::TRANSFER,
                vk::AccessFlags::TRANSFER_WRITE,
            );
            // SAFETY: recording; image in TRANSFER_DST_OPTIMAL.
            unsafe {
                self.ctx.device().cmd_copy_buffer_to_image(
                    cb,
                    staging.buffer,
                    self.image,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    &regions,
                )
            };
            self.cmd_release(
                cb,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                vk::PipelineStageFlags::TRANSFER,
                vk::AccessFlags::TRANSFER_WRITE,
            );
            Ok(())
        })
    }
}

/// Offsets of packed planes in a staging buffer, each aligned to 16 bytes
/// (copies need offsets that are multiples of the texel size), and the
/// buffer size.
fn staging_offsets(sizes: &[usize]) -> (Vec<u64>, u64) {
    let mut offsets = Vec::with_capacity(sizes.len());
    let mut at = 0u64;
    for &size in sizes {
        offsets.push(at);
        at = (at + size as u64).next_multiple_of(16);
    }
    (offsets, at)
}

// ------------------------------------------------------------------ support

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
    /// the driver's ([`linear_layout`]).
    pub modifier_tiling: bool,
}

fn image_flags(format: &VkFormatInfo, usage: vk::ImageUsageFlags, disjoint: bool) -> vk::ImageCreateFlags {
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

fn device_name(ctx: &VulkanContext) -> String {
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

fn check_extent(ctx: &VulkanContext, fourcc: DrmFourcc, w: u32, h: u32, s: &FormatSupport) -> Result<(), VulkanError> {
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

/// Dups of the distinct files of a kernel dma-buf (none for memfds).
fn implicit_fds(dmabuf: &DmaBuf, files: &[usize]) -> Result<Vec<OwnedFd>, VulkanError> {
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

// ------------------------------------------------------------------ import

/// Imports `dmabuf` as a `VkImage` with `usage`.
///
/// With `VK_EXT_image_drm_format_modifier` the image uses the dma-buf's own
/// modifier and plane layouts. Without it (lavapipe) only LINEAR dma-bufs
/// are accepted, and only when their offsets and strides equal the driver's
/// LINEAR layout (see [`linear_layout`]); anything else is refused with
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

fn create_image<'a>(
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
fn check_linear_layout(
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
fn bind_memory(
    ctx: &VulkanContext,
    image: &mut VulkanImage,
    dmabuf: &DmaBuf,
    bind_offsets: &[u64],
) -> Result<(), VulkanError> {
    let device = ctx.device();
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
        let mut fd_props = vk::MemoryFdPropertiesKHR::default();
        // SAFETY: a valid fd we hold for the duration of the call.
        unsafe {
            ctx.memory_fd().get_memory_fd_properties(
                DMA_BUF,
                std::os::fd::AsRawFd::as_raw_fd(&plane.fd()),
                &mut fd_props,
            )
        }
        .map_err(call("vkGetMemoryFdPropertiesKHR"))?;
        let types = fd_props.memory_type_bits & req.memory_type_bits;
        if types == 0 {
            return Err(VulkanError::NoMemoryType {
                fd_types: fd_props.memory_type_bits,
                image_types: req.memory_type_bits,
            });
        }
        let type_index = types.trailing_zeros();
        // Vulkan owns the fd it imports (on success): hand it a dup.
        let dup: OwnedFd = plane.fd().try_clone_to_owned().map_err(|e| VulkanError::Dup {
            plane: binding,
            source: Errno::from_io_error(&e).unwrap_or(Errno::BADF),
        })?;
        let raw = dup.into_raw_fd();
        let mut import = vk::ImportMemoryFdInfoKHR::default().handle_type(DMA_BUF).fd(raw);
        // A dedicated allocation must be bound at offset 0 and covers one
        // non-disjoint image.
        let dedicate = wants_dedicated && bind_offset == 0 && !disjoint;
        let mut dedicated = vk::MemoryDedicatedAllocateInfo::default().image(image.image);
        let mut info = vk::MemoryAllocateInfo::default()
            .allocation_size(plane.fd_size())
            .memory_type_index(type_index)
            .push_next(&mut import);
        if dedicate {
            info = info.push_next(&mut dedicated);
        }
        // SAFETY: valid allocate info; on success the memory owns `raw`.
        match unsafe { device.allocate_memory(&info, None) } {
            Ok(memory) => image.memory.push(memory),
            Err(e) => {
                // SAFETY: the import failed, so `raw` is still ours to close.
                drop(unsafe { OwnedFd::from_raw_fd(raw) });
                return Err(call("vkAllocateMemory (dma-buf import)")(e));
            }
        }
    }
    bind_image(ctx, image, bind_offsets)
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

fn create_views(ctx: &VulkanContext, image: &mut VulkanImage) -> Result<(), VulkanError> {
    let needs_conversion = matches!(image.fourcc(), DrmFourcc::Yuyv | DrmFourcc::Uyvy);
    if needs_conversion {
        return Ok(());
    }
    for usage in [vk::ImageUsageFlags::SAMPLED, vk::ImageUsageFlags::STORAGE] {
        if !image.usage.contains(usage) {
            continue;
        }
        let storage = usage == vk::ImageUsageFlags::STORAGE;
        let multi = image.format.plane_formats.len() > 1;
        for (i, &plane_format) in image.format.plane_formats.iter().enumerate() {
            let aspect = if multi {
                plane_aspect(i)
            } else {
                vk::ImageAspectFlags::COLOR
            };
            let view_format = if storage {
                storage_view_format(plane_format)
            } else {
                plane_format
            };
            // Each view only for its own use: the image's other formats may
            // lack this usage's feature (EXTENDED_USAGE).
            let mut view_usage = vk::ImageViewUsageCreateInfo::default().usage(usage);
            let info = vk::ImageViewCreateInfo::default()
                .image(image.image)
                .view_type(vk::ImageViewType::TYPE_2D)
                .format(view_format)
                .subresource_range(
                    vk::ImageSubresourceRange::default()
                        .aspect_mask(aspect)
                        .level_count(1)
                        .layer_count(1),
                )
                .push_next(&mut view_usage);
            // SAFETY: the image is bound; the view format is in the image's
            // format list (MUTABLE_FORMAT where it differs from the image's).
            let view = unsafe { ctx.device().create_image_view(&info, None) }.map_err(call("vkCreateImageView"))?;
            if storage {
                image.storage_views.push(view);
            } else {
                image.views.push(view);
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ export

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

/// A `VkImage` whose memory is a dma-buf made for it. Dereferences to the
/// [`VulkanImage`]; [`dmabuf`](Self::dmabuf) is what to hand to consumers.
#[derive(Debug)]
pub struct ExportedImage {
    image: VulkanImage,
    dmabuf: DmaBuf,
    backend: ExportBackend,
}

impl ExportedImage {
    /// The dma-buf holding the image.
    pub fn dmabuf(&self) -> &DmaBuf {
        &self.dmabuf
    }

    /// How the memory was made.
    pub fn export_backend(&self) -> ExportBackend {
        self.backend
    }

    /// The image.
    pub fn image(&self) -> &VulkanImage {
        &self.image
    }
}

impl std::ops::Deref for ExportedImage {
    type Target = VulkanImage;

    fn deref(&self) -> &VulkanImage {
        &self.image
    }
}

/// Creates images whose memory is a dma-buf, choosing the back end by probing
/// the driver: native export when it reports the format EXPORTABLE as a
/// dma-buf, else the host path (the driver's LINEAR layout allocated from a
/// host [`Allocator`] and imported). An OPAQUE_FD is never handed out.
#[derive(Debug)]
pub struct Exporter {
    ctx: Arc<VulkanContext>,
    allocator: Box<dyn Allocator>,
    native: bool,
}

impl Exporter {
    /// An exporter whose host path uses [`alloc::best_available`].
    pub fn new(ctx: &Arc<VulkanContext>) -> Result<Self, VulkanError> {
        Ok(Self::with_allocator(ctx, alloc::best_available()?))
    }

    /// An exporter whose host path uses `allocator`.
    pub fn with_allocator(ctx: &Arc<VulkanContext>, allocator: Box<dyn Allocator>) -> Self {
        Self {
            ctx: Arc::clone(ctx),
            allocator,
            native: true,
        }
    }

    /// An exporter that always takes the host path with `allocator`, even
    /// where the driver could export: for buffers whose file must be ours,
    /// e.g. a memfd to seal against writable mappings (`vkdmabufsrc
    /// non-mappable=true`).
    pub fn host_only(ctx: &Arc<VulkanContext>, allocator: Box<dyn Allocator>) -> Self {
        Self {
            native: false,
            ..Self::with_allocator(ctx, allocator)
        }
    }

    /// The back end [`export`](Self::export) would use for these parameters.
    pub fn backend_for(
        &self,
        fourcc: DrmFourcc,
        usage: vk::ImageUsageFlags,
        modifiers: &[DrmModifier],
    ) -> Result<ExportBackend, VulkanError> {
        Ok(match self.native_modifiers(fourcc, usage, modifiers)? {
            Some(_) => ExportBackend::Native,
            None => ExportBackend::Host(self.allocator.kind()),
        })
    }

    /// Modifiers the driver can export for this request, or `None` when
    /// native export is impossible.
    fn native_modifiers(
        &self,
        fourcc: DrmFourcc,
        usage: vk::ImageUsageFlags,
        acceptable: &[DrmModifier],
    ) -> Result<Option<Vec<DrmModifier>>, VulkanError> {
        if !self.native {
            return Ok(None);
        }
        let candidates: Vec<DrmModifier> = if self.ctx.capabilities().drm_format_modifier {
            device_modifiers(&self.ctx, fourcc)?
        } else {
            vec![DrmModifier::Linear]
        };
        let mut usable = Vec::new();
        for m in candidates {
            if !acceptable.is_empty() && !acceptable.contains(&m) {
                continue;
            }
            if format_support(&self.ctx, fourcc, m, usage)?.exportable {
                usable.push(m);
            }
        }
        Ok((!usable.is_empty()).then_some(usable))
    }

    /// Creates an image of `fourcc` at `width`x`height` with `usage` whose
    /// memory is a dma-buf with one of `modifiers` (empty: any), and returns
    /// it with its [`DmaBuf`]. [`ExportedImage::export_backend`] says which
    /// back end made it.
    pub fn export(
        &self,
        fourcc: DrmFourcc,
        width: u32,
        height: u32,
        usage: vk::ImageUsageFlags,
        modifiers: &[DrmModifier],
    ) -> Result<ExportedImage, VulkanError> {
        if width == 0 || height == 0 {
            return Err(format::FormatError::ZeroSize { width, height }.into());
        }
        match self.native_modifiers(fourcc, usage, modifiers)? {
            Some(list) => export_native(&self.ctx, fourcc, width, height, usage, &list),
            None => self.export_host(fourcc, width, height, usage, modifiers),
        }
    }

    fn export_host(
        &self,
        fourcc: DrmFourcc,
        width: u32,
        height: u32,
        usage: vk::ImageUsageFlags,
        modifiers: &[DrmModifier],
    ) -> Result<ExportedImage, VulkanError> {
        if !modifiers.is_empty() && !modifiers.contains(&DrmModifier::Linear) {
            return Err(VulkanError::UnsupportedModifier {
                fourcc,
                modifier: ModifierName(modifiers[0]),
                device: device_name(&self.ctx),
                reason: "the driver cannot export dma-bufs and the host path makes LINEAR only",
            });
        }
        let support = format_support(&self.ctx, fourcc, DrmModifier::Linear, usage)?;
        if !support.importable {
            return Err(VulkanError::NotSupported {
                fourcc,
                modifier: ModifierName(DrmModifier::Linear),
                width,
                height,
                action: "exported (host path: import of a host allocation)",
                device: device_name(&self.ctx),
            });
        }
        check_extent(&self.ctx, fourcc, width, height, &support)?;
        let layout = linear_layout(&self.ctx, fourcc, width, height, usage)?;
        let dmabuf = self.allocator.allocate_layout(fourcc, width, height, &layout)?;
        let image = import(&self.ctx, &dmabuf, usage)?;
        Ok(ExportedImage {
            image,
            dmabuf,
            backend: ExportBackend::Host(self.allocator.kind()),
        })
    }
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
fn device_modifiers(ctx: &VulkanContext, fourcc: DrmFourcc) -> Result<Vec<DrmModifier>, VulkanError> {
    Ok(modifiers(ctx, fourcc)?.into_iter().map(|m| m.modifier).collect())
}

/// Native export: the driver allocates exportable dma-buf memory; the
/// chosen modifier and plane layouts are read back.
fn export_native(
    ctx: &Arc<VulkanContext>,
    fourcc: DrmFourcc,
    width: u32,
    height: u32,
    usage: vk::ImageUsageFlags,
    modifiers: &[DrmModifier],
) -> Result<ExportedImage, VulkanError> {
    let format = vk_format(fourcc).ok_or(VulkanError::UnsupportedFormat { fourcc })?;
    // Modifier tiling when any of the modifiers is exportable under it;
    // else the list is LINEAR exportable under LINEAR tiling (format_support).
    let mut use_modifier_ext = false;
    for &m in modifiers {
        let support = format_support(ctx, fourcc, m, usage)?;
        // VUID-VkImageCreateInfo-extent-02252: within the format's limits.
        check_extent(ctx, fourcc, width, height, &support)?;
        use_modifier_ext |= support.exportable && support.modifier_tiling;
    }
    let raw_modifiers: Vec<u64> = modifiers.iter().map(|&m| m.into()).collect();
    let mut list = vk::ImageDrmFormatModifierListCreateInfoEXT::default().drm_format_modifiers(&raw_modifiers);
    let mut out = VulkanImage::empty(ctx, format, usage, width, height);
    out.modifier_tiling = use_modifier_ext;
    out.image = create_image(ctx, format, width, height, usage, false, |info| {
        if use_modifier_ext {
            info.tiling(vk::ImageTiling::DRM_FORMAT_MODIFIER_EXT)
                .push_next(&mut list)
        } else {
            info.tiling(vk::ImageTiling::LINEAR)
        }
    })?;
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
    bind_image(ctx, &out, &[0])?;
    let get_fd = vk::MemoryGetFdInfoKHR::default().memory(memory).handle_type(DMA_BUF);
    // SAFETY: the memory was allocated exportable as DMA_BUF; the returned fd
    // is new and ours.
    let raw = unsafe { ctx.memory_fd().get_memory_fd(&get_fd) }.map_err(call("vkGetMemoryFdKHR"))?;
    // SAFETY: vkGetMemoryFdKHR succeeded and transferred ownership of `raw`.
    let fd = Arc::new(unsafe { OwnedFd::from_raw_fd(raw) });
    let (modifier, plane_count) = match ctx.modifier_ext().filter(|_| use_modifier_ext) {
        Some(ext) => {
            let mut props = vk::ImageDrmFormatModifierPropertiesEXT::default();
            // SAFETY: the image was created with DRM_FORMAT_MODIFIER tiling.
            unsafe { ext.get_image_drm_format_modifier_properties(out.image, &mut props) }
                .map_err(call("vkGetImageDrmFormatModifierPropertiesEXT"))?;
            let modifier = DrmModifier::from(props.drm_format_modifier);
            let count = format_support(ctx, fourcc, modifier, usage)?.plane_count;
            (modifier, count)
        }
        None => (DrmModifier::Linear, format.plane_formats.len()),
    };
    let mut builder = DmaBuf::builder(fourcc, modifier, width, height);
    let layouts: Vec<vk::SubresourceLayout> = if use_modifier_ext {
        (0..plane_count)
            .map(|plane| {
                let sub = vk::ImageSubresource::default().aspect_mask(memory_plane_aspect(plane));
                // SAFETY: DRM_FORMAT_MODIFIER tiling with `plane_count` memory planes.
                unsafe { ctx.device().get_image_subresource_layout(out.image, sub) }
            })
            .collect()
    } else {
        driver_plane_layouts(ctx, &out)
    };
    for layout in layouts {
        let offset = u32::try_from(layout.offset).map_err(|_| VulkanError::Usage("plane offset exceeds u32"))?;
        let stride = u32::try_from(layout.row_pitch).map_err(|_| VulkanError::Usage("row pitch exceeds u32"))?;
        builder = builder.plane(Arc::clone(&fd), offset, stride);
    }
    let dmabuf = builder.build()?;
    create_views(ctx, &mut out)?;
    out.implicit_fds = implicit_fds(&dmabuf, &[0])?;
    // The fd handed out is a dma-buf by construction; say so if not.
    if !crate::sync::is_kernel_dmabuf(fd.as_fd()) {
        return Err(VulkanError::Usage(
            "the driver's DMA_BUF export returned an fd that is not a dma-buf",
        ));
    }
    Ok(ExportedImage {
        image: out,
        dmabuf,
        backend: ExportBackend::Native,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
