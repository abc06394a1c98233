//! The ring: the exported images vkdmabufsrc draws into in turn, and the
//! READONLY memories of each (a [`SlotMemories`] per image) its
//! [`RingPool`](super::super::pool::RingPool) hands out.

use std::sync::Arc;

use gstreamer as gst;
use gstreamer_video as gst_video;

use super::super::pool::SlotMemories;
use super::CAT;
use super::properties::Settings;
use crate::DrmModifier;
use crate::Report;
use crate::alloc::AllocatorKind;
use crate::gst::caps::StreamFormat;
use crate::gst::memory::buffer_from_dmabuf;
use crate::vulkan::ash::vk;
use crate::vulkan::{ExportedImage, Exporter, Kernels};

/// What the ring's images of `fourcc` are made for: the pattern kernels
/// write them (colour attachments for RGB, which compressed modifiers keep;
/// storage for NV12), downloads read them.
pub(super) fn usage(fourcc: drm_fourcc::DrmFourcc) -> vk::ImageUsageFlags {
    Kernels::pattern_usage(fourcc) | vk::ImageUsageFlags::TRANSFER_SRC
}

/// Marks a ring memory READONLY (it must not be shared yet): downstream
/// CPU writers (`timeoverlay` blending in place, any writable map) then get
/// a copy instead of changing the ring's image, which is what lets each
/// frame redraw only where the pattern's box moved (the image still holds
/// the frame drawn last). GstBufferPool releases such buffers as usual;
/// one whose memory a writer replaced comes back to the pool as discarded.
fn read_only(memory: &mut gst::Memory) -> Result<(), &'static str> {
    let memory = memory.get_mut().ok_or("a ring memory is already shared")?;
    // SAFETY: we hold the only reference (get_mut), so no other thread
    // reads the flags; GST_MEMORY_FLAG_READONLY is a mini-object flag
    // (GST_MINI_OBJECT_FLAG_LOCK_READONLY), set as GST_MINI_OBJECT_FLAG_SET does.
    unsafe { (*memory.as_mut_ptr()).mini_object.flags |= gst::ffi::GST_MEMORY_FLAG_READONLY };
    Ok(())
}

/// Exports `settings.ring_size` (at least 2) images of `stream` through
/// `exporter`, each with its memories marked READONLY; under
/// `non-mappable` every plane sealed against new writable mappings.
pub(super) fn build(
    exporter: &Exporter,
    stream: StreamFormat,
    settings: Settings,
) -> Result<(Vec<Arc<ExportedImage>>, Vec<SlotMemories>), gst::LoggableError> {
    let tiled = stream.modifier != DrmModifier::Linear;
    let modifiers: Vec<DrmModifier> = if tiled { vec![stream.modifier] } else { Vec::new() };
    let usage = usage(stream.fourcc);
    let mut ring = Vec::with_capacity(settings.ring_size as usize);
    let mut slots = Vec::with_capacity(settings.ring_size as usize);
    for _ in 0..settings.ring_size.max(2) {
        let image = exporter
            .export(stream.fourcc, stream.width, stream.height, usage, &modifiers)
            .map_err(|e| gst::loggable_error!(CAT, "export failed: {}", Report(&e)))?;
        if tiled && image.dmabuf().modifier() != stream.modifier {
            return Err(gst::loggable_error!(
                CAT,
                "asked the driver for {:?}, it exported {:?}",
                stream.modifier,
                image.dmabuf().modifier()
            ));
        }
        if settings.non_mappable && !tiled {
            if exporter.backend_for(stream.fourcc, usage, &[]).ok()
                != Some(crate::vulkan::ExportBackend::Host(AllocatorKind::Memfd))
            {
                return Err(gst::loggable_error!(CAT, "non-mappable mode needs the memfd host path"));
            }
            for plane in image.dmabuf().planes() {
                // The Vulkan import already holds its mapping; new
                // writable mappings (GStreamer's map) now fail.
                rustix::fs::fcntl_add_seals(plane.fd(), rustix::fs::SealFlags::FUTURE_WRITE)
                    .map_err(|e| gst::loggable_error!(CAT, "F_SEAL_FUTURE_WRITE: {}", Report(&e)))?;
            }
        }
        let buffer = buffer_from_dmabuf(image.dmabuf()).map_err(|e| gst::loggable_error!(CAT, "{}", Report(&e)))?;
        let meta = buffer
            .meta::<gst_video::VideoMeta>()
            .ok_or_else(|| gst::loggable_error!(CAT, "no VideoMeta"))?;
        let (offsets, strides) = (meta.offset().to_vec(), meta.stride().to_vec());
        let mut memories: Vec<gst::Memory> = buffer.iter_memories_owned().collect();
        drop(buffer);
        for memory in &mut memories {
            read_only(memory).map_err(|e| gst::loggable_error!(CAT, "{}", e))?;
        }
        ring.push(Arc::new(image));
        slots.push(SlotMemories {
            memories,
            offsets,
            strides,
        });
    }
    Ok((ring, slots))
}
