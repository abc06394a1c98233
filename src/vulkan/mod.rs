//! The Vulkan adapter (feature `vulkan`, crate ash): import dma-bufs into
//! `VkImage`s and export `VkImage`s as dma-bufs.
//!
//! - [`VulkanContext`]: instance, device and queue with dma-buf interop
//!   enabled, created here or wrapped from the caller's
//!   ([`VulkanContext::from_raw`]).
//! - [`format_support`]: importable / exportable / max extent / planes for
//!   (fourcc, modifier, usage).
//! - [`import`]: `DmaBuf` -> [`VulkanImage`]; [`ImportCache`] reuses imports.
//! - [`Exporter`]: `VkImage` whose memory is a dma-buf, native or host back
//!   end chosen by probing.
//! - [`Kernels`]: the moving test pattern, the viewer's composite and NV12 ->
//!   RGBA: graphics pipelines into colour attachments (what compressed
//!   modifiers keep), compute shaders into storage images.
//! - [`YcbcrSampler`]: sample YUV images as RGB through a YCbCr conversion.
//!
//! ```no_run
//! use dmabuf_interop::DrmFourcc;
//! use dmabuf_interop::alloc::{self, Allocator};
//! use dmabuf_interop::vulkan::{self, ContextOptions, VulkanContext, ash::vk};
//!
//! let ctx = VulkanContext::new(&ContextOptions::default())?;
//! // A frame some producer wrote (here: a fresh buffer of this machine's
//! // best allocator), imported without a copy.
//! let frame = alloc::best_available()?.allocate(DrmFourcc::Xrgb8888, 640, 480, 256)?;
//! let image = vulkan::import(&ctx, &frame, vk::ImageUsageFlags::SAMPLED | vk::ImageUsageFlags::TRANSFER_SRC)?;
//! // What Vulkan sees, read back through a staging buffer.
//! let planes = image.download()?;
//! assert_eq!(planes[0].len(), 640 * 4 * 480);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Synchronisation rules
//!
//! **Exported images** (Vulkan writes, others read): the dma-buf holds the
//! frame once the submission that wrote it has completed. The helpers here
//! ([`Kernels::draw_pattern`], [`VulkanImage::upload`]) wait for their fence
//! before returning, so the buffer is ready when they return. Your own
//! submissions must end with [`VulkanImage::cmd_release`] and you must wait
//! for their fence (or hand the consumer a sync_file of it, e.g. with
//! [`crate::sync::import_sync_file`] on a kernel dma-buf) before a consumer
//! reads.
//!
//! **Imported images** (others write, Vulkan reads): the producer must be
//! done before you submit work that reads the image. For kernel dma-bufs its
//! pending writes can be waited on with [`crate::sync::export_sync_file`]
//! (`SyncAccess::Read`); memfd stand-ins have no implicit fences, so the
//! producer's own completion signal (a GStreamer buffer being handed over, a
//! CPU write finishing) is the rule. Every access is bracketed by
//! [`VulkanImage::cmd_acquire`] / [`VulkanImage::cmd_release`], the
//! ownership transfer from and to `VK_QUEUE_FAMILY_FOREIGN_EXT`.
//!
//! **Lifetimes**: an image (or [`YcbcrSampler`]) recorded into your command
//! buffers may be dropped as soon as those are submitted to the context's
//! queue: its Vulkan objects are destroyed only once the queue has finished
//! everything submitted before the drop (an empty submission's fence; see
//! [`VulkanContext::collect_retired`]). [`ImportCache`] entries purged while
//! you still use their image are kept alive by your `Arc`.

mod cache;
mod commands;
mod compute;
mod context;
mod copy_in;
mod device_select;
mod error;
mod export;
mod format;
mod image;
mod import;
mod kernels;
mod memory;
mod raster;
mod recycle;
mod render;
mod retire;
mod support;
mod transfer;
mod unwind;
mod validation;
mod ycbcr;

pub use cache::ImportCache;
pub use commands::{GPU_TIMEOUT, Submission};
pub use context::{
    Capabilities, ContextOptions, DEVICE_ENV, DeviceInfo, ListedDevice, REQUIRED_EXTENSIONS, VALIDATION_ENV,
    VulkanContext,
};
pub use copy_in::CopyIn;
pub use device_select::DeviceSelector;
pub use error::{LoaderError, VulkanError};
pub use export::{ExportBackend, ExportedImage, Exporter};
pub use format::{VK_FORMATS, VkFormatInfo, fourccs_for, vk_format};
pub use image::VulkanImage;
pub use import::import;
pub use kernels::{Kernels, PATTERN_FORMATS, VIDEO_FORMATS};
pub use memory::linear_layout;
pub use render::VideoPass;
pub use support::{FormatSupport, ModifierSupport, choose_modifiers, format_support, modifiers, usage_features};
pub use ycbcr::YcbcrSampler;

/// Re-export of ash, so users name the same version.
pub use ash;
