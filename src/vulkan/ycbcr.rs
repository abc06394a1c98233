//! Sampling YUV images through a `VkSamplerYcbcrConversion`.

use crate::colour::{Matrix, Range};
use std::sync::Arc;

use ash::vk;

use super::context::VulkanContext;
use super::error::{VulkanError, call};
use super::image::VulkanImage;

/// A YCbCr conversion (the image's matrix and range,
/// [`VulkanImage::colorimetry`]), the sampler that applies it
/// and a view of the whole YUV image through it. Bind `sampler` as the
/// immutable sampler of a COMBINED_IMAGE_SAMPLER descriptor with `view`;
/// shaders then read RGB.
///
/// It keeps its image alive. Its objects are used by the caller's command
/// buffers, so on drop they (and the image) are destroyed only once the
/// context's queue has finished what was submitted before (see
/// [`VulkanContext::collect_retired`]).
pub struct YcbcrSampler {
    ctx: Arc<VulkanContext>,
    image: Arc<VulkanImage>,
    conversion: vk::SamplerYcbcrConversion,
    sampler: vk::Sampler,
    view: vk::ImageView,
}

impl std::fmt::Debug for YcbcrSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YcbcrSampler")
            .field("conversion", &self.conversion)
            .field("sampler", &self.sampler)
            .field("view", &self.view)
            .finish()
    }
}

impl YcbcrSampler {
    /// Builds the conversion, sampler and view for `image` (a YUV format
    /// imported or exported with SAMPLED usage). Chroma is taken co-sited
    /// with even luma samples when the format supports it (the placement of
    /// MPEG-2/H.264 4:2:0 and of our pattern), else at the midpoint.
    pub fn new(image: &Arc<VulkanImage>) -> Result<Self, VulkanError> {
        let ctx = image.context();
        if !ctx.capabilities().ycbcr_conversion {
            return Err(VulkanError::MissingExtension {
                device: ctx.info().name.clone(),
                extension: "samplerYcbcrConversion feature".into(),
                needed_for: "sampling YUV images as RGB",
            });
        }
        let info = crate::format::info(image.fourcc())?;
        if !info.is_yuv {
            return Err(VulkanError::Usage("a YCbCr conversion applies to YUV formats only"));
        }
        if !image.usage().contains(vk::ImageUsageFlags::SAMPLED) {
            return Err(VulkanError::Usage(
                "a YCbCr view needs an image created with SAMPLED usage",
            ));
        }
        // SAFETY: plain query on the context's physical device.
        let features = unsafe {
            ctx.instance()
                .get_physical_device_format_properties(ctx.physical_device(), image.vk_format())
        }
        .linear_tiling_features;
        let chroma = if features.contains(vk::FormatFeatureFlags::COSITED_CHROMA_SAMPLES) {
            vk::ChromaLocation::COSITED_EVEN
        } else {
            vk::ChromaLocation::MIDPOINT
        };
        let mut this = Self {
            ctx: Arc::clone(ctx),
            image: Arc::clone(image),
            conversion: vk::SamplerYcbcrConversion::null(),
            sampler: vk::Sampler::null(),
            view: vk::ImageView::null(),
        };
        let device = ctx.device();
        let conversion_info = vk::SamplerYcbcrConversionCreateInfo::default()
            .format(image.vk_format())
            .ycbcr_model(match image.colorimetry().matrix {
                Matrix::Bt601 => vk::SamplerYcbcrModelConversion::YCBCR_601,
                Matrix::Bt709 => vk::SamplerYcbcrModelConversion::YCBCR_709,
                Matrix::Bt2020 => vk::SamplerYcbcrModelConversion::YCBCR_2020,
            })
            .ycbcr_range(match image.colorimetry().range {
                Range::Limited => vk::SamplerYcbcrRange::ITU_NARROW,
                Range::Full => vk::SamplerYcbcrRange::ITU_FULL,
            })
            .x_chroma_offset(chroma)
            .y_chroma_offset(chroma)
            .chroma_filter(vk::Filter::NEAREST);
        // SAFETY: the feature is enabled on the device (checked above); the
        // handle is destroyed in Drop, also on the error paths below.
        this.conversion = unsafe { device.create_sampler_ycbcr_conversion(&conversion_info, None) }
            .map_err(call("vkCreateSamplerYcbcrConversion"))?;
        let mut with_conversion = vk::SamplerYcbcrConversionInfo::default().conversion(this.conversion);
        let sampler_info = vk::SamplerCreateInfo::default()
            .mag_filter(vk::Filter::NEAREST)
            .min_filter(vk::Filter::NEAREST)
            .mipmap_mode(vk::SamplerMipmapMode::NEAREST)
            .address_mode_u(vk::SamplerAddressMode::CLAMP_TO_EDGE)
            .address_mode_v(vk::SamplerAddressMode::CLAMP_TO_EDGE)
            .address_mode_w(vk::SamplerAddressMode::CLAMP_TO_EDGE)
            .push_next(&mut with_conversion);
        // SAFETY: as above.
        this.sampler = unsafe { device.create_sampler(&sampler_info, None) }.map_err(call("vkCreateSampler"))?;
        let mut view_conversion = vk::SamplerYcbcrConversionInfo::default().conversion(this.conversion);
        let mut view_usage = vk::ImageViewUsageCreateInfo::default().usage(vk::ImageUsageFlags::SAMPLED);
        let view_info = vk::ImageViewCreateInfo::default()
            .image(image.image())
            .view_type(vk::ImageViewType::TYPE_2D)
            .format(image.vk_format())
            .subresource_range(
                vk::ImageSubresourceRange::default()
                    .aspect_mask(vk::ImageAspectFlags::COLOR)
                    .level_count(1)
                    .layer_count(1),
            )
            .push_next(&mut view_conversion)
            .push_next(&mut view_usage);
        // SAFETY: the image is bound and outlives the view (we hold it; see
        // Drop); the view is destroyed in Drop.
        this.view = unsafe { device.create_image_view(&view_info, None) }.map_err(call("vkCreateImageView"))?;
        Ok(this)
    }

    /// The conversion object.
    pub fn conversion(&self) -> vk::SamplerYcbcrConversion {
        self.conversion
    }

    /// The sampler (use it as an immutable sampler).
    pub fn sampler(&self) -> vk::Sampler {
        self.sampler
    }

    /// The view of the whole image through the conversion.
    pub fn view(&self) -> vk::ImageView {
        self.view
    }

    /// The image sampled.
    pub fn image(&self) -> &Arc<VulkanImage> {
        &self.image
    }
}

impl Drop for YcbcrSampler {
    fn drop(&mut self) {
        let (view, sampler, conversion) = (self.view, self.sampler, self.conversion);
        // The image (dropped with our Arc after this) waits for the queue
        // too: our view of it may be in a caller's pending submission.
        self.image.mark_handed_out();
        self.ctx.retire(Box::new(move |device| {
            // SAFETY: our handles (or null); the queue finished every
            // submission made before the drop (see `retire`).
            unsafe {
                device.destroy_image_view(view, None);
                device.destroy_sampler(sampler, None);
                device.destroy_sampler_ycbcr_conversion(conversion, None);
            }
        }));
    }
}
