//! [`Exporter`]: `VkImage`s whose memory is a dma-buf made for them, by the
//! driver (native export) or from a host allocator and imported.

use crate::colour::Colorimetry;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use ash::vk;
use drm_fourcc::{DrmFourcc, DrmModifier};

use super::context::VulkanContext;
use super::error::{VulkanError, call};
use super::format::vk_format;
use super::image::{VulkanImage, create_views};
use super::import::{implicit_fds, import};
use super::memory::{DMA_BUF, allocate_export_memory, create_image, exported_plane_layouts, linear_layout};
use super::support::{check_extent, device_modifiers, device_name, format_support};
use crate::alloc::{self, Allocator, AllocatorKind};
use crate::dmabuf::{DmaBuf, ModifierName};
use crate::format;

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

    /// States what the image's YUV samples mean (the producer knows: the
    /// crate's pattern kernels write BT.709 limited range), for the image
    /// and its dma-buf alike (same identity). An export starts with
    /// GStreamer's default for its size, as every `DmaBuf` does.
    pub fn set_colorimetry(&mut self, colorimetry: Colorimetry) {
        self.image.colorimetry = colorimetry;
        self.dmabuf = self.dmabuf.with_colorimetry(colorimetry);
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
    /// The context images are exported from.
    pub fn context(&self) -> &Arc<VulkanContext> {
        &self.ctx
    }

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

    /// The modifiers the driver exports natively for `fourcc` with `usage`
    /// (empty: no native export, e.g. lavapipe without a dma-buf exporter,
    /// or [`host_only`](Self::host_only)).
    pub fn native_export_modifiers(
        &self,
        fourcc: DrmFourcc,
        usage: vk::ImageUsageFlags,
    ) -> Result<Vec<DrmModifier>, VulkanError> {
        Ok(self.native_modifiers(fourcc, usage, &[])?.unwrap_or_default())
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

    /// [`export`](Self::export) for a consumer with preferences: `tiers`
    /// are its modifiers, best first (a compositor's feedback tranches,
    /// scanout first: `FormatSet::preferred_modifiers` in the Wayland
    /// adapter). Each tier is tried in turn with the modifiers of it that
    /// the device lists with the features `usage` needs
    /// ([`choose_modifiers`](super::choose_modifiers)), so a render-only
    /// export gets the compressed modifiers that lack STORAGE; when no tier
    /// can be exported, any modifier (as `export` with none named).
    pub fn export_preferring(
        &self,
        fourcc: DrmFourcc,
        width: u32,
        height: u32,
        usage: vk::ImageUsageFlags,
        tiers: &[Vec<DrmModifier>],
    ) -> Result<ExportedImage, VulkanError> {
        let listed = super::modifiers(&self.ctx, fourcc)?;
        let needs = super::usage_features(usage);
        for tier in tiers {
            let mods = if listed.is_empty() {
                // No modifier listing (LINEAR only, LINEAR tiling).
                tier.clone()
            } else {
                super::choose_modifiers(&listed, needs, std::slice::from_ref(tier))
            };
            if mods.is_empty() {
                continue;
            }
            if let Ok(image) = self.export(fourcc, width, height, usage, &mods) {
                return Ok(image);
            }
        }
        self.export(fourcc, width, height, usage, &[])
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
    let memory = allocate_export_memory(ctx, &mut out)?;
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
    let layouts = exported_plane_layouts(ctx, &out, plane_count);
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
