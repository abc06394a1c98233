//! Implementation of [`super::VkDmaBufSrc`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use gstreamer_base as gst_base;
use gstreamer_base::prelude::*;
use gstreamer_base::subclass::base_src::CreateSuccess;
use gstreamer_base::subclass::prelude::*;
use gstreamer_video as gst_video;

use crate::alloc::AllocatorKind;
use crate::gst::caps::{self as dcaps, StreamFormat};
use crate::gst::memory::buffer_from_dmabuf;
use crate::vulkan::ash::vk;
use crate::vulkan::{ContextOptions, ExportedImage, Exporter, Kernels, VulkanContext};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "vkdmabufsrc",
        gst::DebugColorFlags::empty(),
        Some("Vulkan test pattern into exported dma-bufs"),
    )
});

const FORMATS: [&str; 5] = ["BGRx", "BGRA", "RGBx", "RGBA", "NV12"];

#[derive(Debug, Clone, Copy)]
struct Settings {
    is_live: bool,
    non_mappable: bool,
    ring_size: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            is_live: false,
            non_mappable: false,
            ring_size: 4,
        }
    }
}

/// One image of the ring and the memories that carry it downstream.
struct Slot {
    image: ExportedImage,
    memories: Vec<gst::Memory>,
    offsets: Vec<usize>,
    strides: Vec<i32>,
}

impl Slot {
    /// Free when no buffer downstream still holds one of its memories: the
    /// slot's own reference is the only one left. (`is_writable` would not
    /// do: a memory in exactly one buffer counts as writable.)
    fn is_idle(&self) -> bool {
        self.memories.iter().all(|m| {
            let ptr = m.as_ptr() as *mut gst::ffi::GstMemory;
            // SAFETY: `m` is a live memory we hold a reference to; its
            // refcount is a gint updated with g_atomic operations.
            let refcount = unsafe { std::ptr::addr_of_mut!((*ptr).mini_object.refcount) };
            // SAFETY: as above: a valid, aligned gint that lives as long as `m`.
            let count = unsafe { std::sync::atomic::AtomicI32::from_ptr(refcount) };
            count.load(Ordering::SeqCst) == 1
        })
    }
}

struct State {
    kernels: Kernels,
    ring: Vec<Slot>,
    stream: StreamFormat,
    frame: u64,
    mappable: bool,
}

#[derive(Default)]
pub struct VkDmaBufSrc {
    settings: Mutex<Settings>,
    context: Mutex<Option<Arc<VulkanContext>>>,
    state: Mutex<Option<State>>,
    flushing: AtomicBool,
}

fn template_caps() -> gst::Caps {
    let structure = gst::Structure::builder("video/x-raw")
        .field("format", gst::List::new(FORMATS))
        .field("width", gst::IntRange::new(1, 16384))
        .field("height", gst::IntRange::new(1, 16384))
        .field(
            "framerate",
            gst::FractionRange::new(gst::Fraction::new(0, 1), gst::Fraction::new(i32::MAX, 1)),
        )
        .build();
    gst::Caps::builder_full()
        .structure(structure.clone())
        .structure_with_features(structure, gst::CapsFeatures::new([dcaps::CAPS_FEATURE_MEMORY_DMABUF]))
        .build()
}

impl VkDmaBufSrc {
    fn context(&self) -> Result<Arc<VulkanContext>, gst::ErrorMessage> {
        let mut guard = self.context.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ctx) = guard.as_ref() {
            return Ok(Arc::clone(ctx));
        }
        let ctx = VulkanContext::new(&ContextOptions::default())
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ["No usable Vulkan device: {}", e]))?;
        *guard = Some(Arc::clone(&ctx));
        Ok(ctx)
    }

    /// Builds the ring for `stream` and decides mappability by trying to map
    /// a buffer of it READWRITE (the caps-feature rule).
    fn build_state(&self, stream: StreamFormat) -> Result<State, gst::LoggableError> {
        let settings = *self.settings.lock().unwrap_or_else(|p| p.into_inner());
        let ctx = self.context().map_err(|e| gst::loggable_error!(CAT, "{:?}", e))?;
        let exporter = if settings.non_mappable {
            // Sealing against writable mappings needs memfds of our own,
            // even where the driver could export (modifier devices).
            Exporter::host_only(&ctx, Box::new(crate::alloc::MemfdAllocator::new()))
        } else {
            let backend = crate::alloc::best_available().map_err(|e| gst::loggable_error!(CAT, "{}", e))?;
            Exporter::with_allocator(&ctx, backend)
        };
        let kernels = Kernels::new(&ctx).map_err(|e| gst::loggable_error!(CAT, "{}", e))?;
        let usage = vk::ImageUsageFlags::STORAGE | vk::ImageUsageFlags::TRANSFER_SRC;
        let mut ring = Vec::with_capacity(settings.ring_size as usize);
        for _ in 0..settings.ring_size.max(2) {
            let image = exporter
                .export(stream.fourcc, stream.width, stream.height, usage, &[])
                .map_err(|e| gst::loggable_error!(CAT, "export failed: {}", e))?;
            if settings.non_mappable {
                if exporter.backend_for(stream.fourcc, usage, &[]).ok()
                    != Some(crate::vulkan::ExportBackend::Host(AllocatorKind::Memfd))
                {
                    return Err(gst::loggable_error!(CAT, "non-mappable mode needs the memfd host path"));
                }
                for plane in image.dmabuf().planes() {
                    // The Vulkan import already holds its mapping; new
                    // writable mappings (GStreamer's map) now fail.
                    rustix::fs::fcntl_add_seals(plane.fd(), rustix::fs::SealFlags::FUTURE_WRITE)
                        .map_err(|e| gst::loggable_error!(CAT, "F_SEAL_FUTURE_WRITE: {}", e))?;
                }
            }
            let buffer = buffer_from_dmabuf(image.dmabuf()).map_err(|e| gst::loggable_error!(CAT, "{}", e))?;
            let meta = buffer
                .meta::<gst_video::VideoMeta>()
                .ok_or_else(|| gst::loggable_error!(CAT, "no VideoMeta"))?;
            let (offsets, strides) = (meta.offset().to_vec(), meta.stride().to_vec());
            let memories: Vec<gst::Memory> = buffer.iter_memories_owned().collect();
            drop(buffer);
            ring.push(Slot {
                image,
                memories,
                offsets,
                strides,
            });
        }
        // The rule: try to map one of our buffers for READWRITE.
        let mappable = crate::gst::memory::dmabuf_maps_writable(ring[0].image.dmabuf())
            .map_err(|e| gst::loggable_error!(CAT, "{}", e))?;
        gst::info!(
            CAT,
            imp = self,
            "ring of {} {:?} images, mappable: {}",
            ring.len(),
            stream.fourcc,
            mappable
        );
        Ok(State {
            kernels,
            ring,
            stream,
            frame: 0,
            mappable,
        })
    }

    fn buffer_for(&self, slot: &Slot, stream: &StreamFormat) -> Result<gst::Buffer, gst::LoggableError> {
        let mut buffer = gst::Buffer::new();
        {
            let b = buffer
                .get_mut()
                .ok_or_else(|| gst::loggable_error!(CAT, "new buffer not writable"))?;
            for m in &slot.memories {
                b.append_memory(m.clone());
            }
            let format = dcaps::video_format(stream.fourcc).ok_or_else(|| gst::loggable_error!(CAT, "format"))?;
            gst_video::VideoMeta::add_full(
                b,
                gst_video::VideoFrameFlags::empty(),
                format,
                stream.width,
                stream.height,
                &slot.offsets,
                &slot.strides,
            )
            .map_err(|e| gst::loggable_error!(CAT, "{}", e))?;
        }
        Ok(buffer)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for VkDmaBufSrc {
    const NAME: &'static str = "DmabufInteropVkDmaBufSrc";
    type Type = super::VkDmaBufSrc;
    type ParentType = gst_base::PushSrc;
}

impl ObjectImpl for VkDmaBufSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecBoolean::builder("is-live")
                    .nick("Is live")
                    .blurb("Act as a live source (timestamps follow the clock)")
                    .default_value(false)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("non-mappable")
                    .nick("Non-mappable")
                    .blurb(
                        "Seal the memfds against new writable mappings so the buffers cannot be mapped \
                         READWRITE: caps then carry memory:DMABuf (for testing the caps-feature rules)",
                    )
                    .default_value(false)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("ring-size")
                    .nick("Ring size")
                    .blurb("Exported images rendered into in turn (at least 2)")
                    .minimum(2)
                    .maximum(64)
                    .default_value(4)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        match pspec.name() {
            "is-live" => {
                s.is_live = value.get().unwrap_or(false);
                self.obj().set_live(s.is_live);
            }
            "non-mappable" => s.non_mappable = value.get().unwrap_or(false),
            "ring-size" => s.ring_size = value.get().unwrap_or(4),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        match pspec.name() {
            "is-live" => s.is_live.to_value(),
            "non-mappable" => s.non_mappable.to_value(),
            "ring-size" => s.ring_size.to_value(),
            _ => glib::Value::from_type(pspec.value_type()),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_format(gst::Format::Time);
        obj.set_live(false);
    }
}

impl GstObjectImpl for VkDmaBufSrc {}

impl ElementImpl for VkDmaBufSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Vulkan dma-buf test source",
                "Source/Video",
                "Renders a moving test pattern with Vulkan into exported dma-buf images",
                env!("CARGO_PKG_NAME"),
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> =
            LazyLock::new(|| super::super::always_pad(gst::PadDirection::Src, &template_caps()));
        TEMPLATES.as_ref()
    }
}

impl BaseSrcImpl for VkDmaBufSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.store(false, Ordering::SeqCst);
        self.context().map(drop)
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    fn negotiate(&self) -> Result<(), gst::LoggableError> {
        let obj = self.obj();
        let pad = obj.src_pad();
        let template = template_caps();
        let peer = pad.peer_query_caps(Some(&template));
        if peer.is_empty() {
            return Err(gst::loggable_error!(CAT, "downstream accepts none of {}", template));
        }
        // Format, size and rate first (features aside), defaulting to 320x240@30.
        let mut wanted = peer.clone();
        wanted.truncate();
        {
            let caps = wanted.make_mut();
            caps.set_features_simple(None);
            if let Some(s) = caps.structure_mut(0) {
                s.fixate_field_nearest_int("width", 320);
                s.fixate_field_nearest_int("height", 240);
                s.fixate_field_nearest_fraction("framerate", gst::Fraction::new(30, 1));
            }
        }
        wanted.fixate();
        let mut stream = dcaps::parse_caps(&wanted).map_err(|e| gst::loggable_error!(CAT, "{}", e))?;
        // Renegotiation (downstream asked for another size or format): the
        // pattern and the timestamps go on from where they were. Buffers of
        // the old ring still downstream keep their dma-bufs alive by
        // themselves (each memory holds its DmaBuf).
        let previous_frame = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .map_or(0, |s| s.frame);
        let mut state = self.build_state(stream)?;
        state.frame = previous_frame;
        stream.dmabuf_feature = !state.mappable;
        let caps = dcaps::caps_for(&stream, state.mappable).map_err(|e| gst::loggable_error!(CAT, "{}", e))?;
        if !peer.can_intersect(&caps) {
            let msg = if state.mappable {
                format!("downstream does not accept {caps}")
            } else {
                format!(
                    "the buffers cannot be mapped, so caps carry memory:DMABuf ({caps}), and downstream \
                     accepts only {peer}: an element that must map (a conversion) cannot follow; use \
                     passthrough elements or a dma-buf importer"
                )
            };
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ["{}", msg]);
            return Err(gst::loggable_error!(CAT, "{}", msg));
        }
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(state);
        obj.set_caps(&caps).map_err(|e| gst::loggable_error!(CAT, "{}", e))
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn times(&self, buffer: &gst::BufferRef) -> (Option<gst::ClockTime>, Option<gst::ClockTime>) {
        // A live source is paced by the clock: basesrc waits for each
        // buffer's start before pushing it.
        if self.obj().is_live()
            && let Some(pts) = buffer.pts()
        {
            return (Some(pts), buffer.duration().map(|d| pts + d));
        }
        (None, None)
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            let framerate = self
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|s| s.stream.framerate);
            if let Some((n, d)) = framerate.filter(|&(n, _)| n > 0) {
                // One frame: the time it takes to produce one.
                let frame = gst::ClockTime::SECOND
                    .mul_div_floor(d as u64, n as u64)
                    .unwrap_or(gst::ClockTime::ZERO);
                q.set(self.obj().is_live(), frame, gst::ClockTime::NONE);
                return true;
            }
            return false;
        }
        BaseSrcImplExt::parent_query(self, query)
    }

    fn is_seekable(&self) -> bool {
        !self.settings.lock().unwrap_or_else(|p| p.into_inner()).is_live
    }

    fn do_seek(&self, segment: &mut gst::Segment) -> bool {
        // Restart the pattern at the frame the seek position names.
        let Some(segment) = segment.downcast_mut::<gst::ClockTime>() else {
            return false;
        };
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(state) = guard.as_mut() {
            let (n, d) = state.stream.framerate;
            let position = segment.position().unwrap_or(gst::ClockTime::ZERO);
            state.frame = if n > 0 {
                position
                    .nseconds()
                    .mul_div_floor(n as u64, d as u64 * gst::ClockTime::SECOND.nseconds())
                    .unwrap_or(0)
            } else {
                0
            };
        }
        true
    }
}

impl PushSrcImpl for VkDmaBufSrc {
    fn create(&self, _buffer: Option<&mut gst::BufferRef>) -> Result<CreateSuccess, gst::FlowError> {
        loop {
            if self.flushing.load(Ordering::SeqCst) {
                return Err(gst::FlowError::Flushing);
            }
            let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let state = guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
            let Some(index) = (0..state.ring.len())
                .map(|i| (state.frame as usize + i) % state.ring.len())
                .find(|&i| state.ring[i].is_idle())
            else {
                // Every image is still downstream: wait for a release.
                drop(guard);
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            let frame = state.frame;
            let slot = &state.ring[index];
            state.kernels.draw_pattern(&slot.image, frame as u32).map_err(|e| {
                gst::element_imp_error!(self, gst::StreamError::Failed, ["Vulkan rendering failed: {}", e]);
                gst::FlowError::Error
            })?;
            let mut buffer = self.buffer_for(slot, &state.stream).map_err(|e| {
                e.log_with_imp(self);
                gst::FlowError::Error
            })?;
            let (n, d) = state.stream.framerate;
            if let Some(b) = buffer.get_mut() {
                if n > 0 {
                    let ns = |f: u64| f.mul_div_floor(d as u64 * gst::ClockTime::SECOND.nseconds(), n as u64);
                    let pts = ns(frame).map(gst::ClockTime::from_nseconds);
                    let next = ns(frame + 1).map(gst::ClockTime::from_nseconds);
                    b.set_pts(pts);
                    if let (Some(p), Some(nx)) = (pts, next) {
                        b.set_duration(nx - p);
                    }
                }
                b.set_offset(frame);
                b.set_offset_end(frame + 1);
            }
            state.frame += 1;
            return Ok(CreateSuccess::NewBuffer(buffer));
        }
    }
}
