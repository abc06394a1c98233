//! Implementation of [`super::VkDmaBufSrc`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use gstreamer_base as gst_base;
use gstreamer_base::prelude::*;
use gstreamer_base::subclass::base_src::CreateSuccess;
use gstreamer_base::subclass::prelude::*;
use gstreamer_video as gst_video;

use super::pool::{RingPool, SlotMemories};
use crate::DrmModifier;
use crate::Report;
use crate::gst::caps::{self as dcaps, StreamFormat};
use crate::vulkan::{ContextOptions, ExportedImage, Exporter, Kernels, VulkanContext};

mod caps;
mod properties;
mod ring;

use crate::elements::lock;
use caps::{caps_of, dma_drm_pairs, template_caps};
use properties::Settings;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "vkdmabufsrc",
        gst::DebugColorFlags::empty(),
        Some("Vulkan test pattern into exported dma-bufs"),
    )
});

const FORMATS: [&str; 5] = ["BGRx", "BGRA", "RGBx", "RGBA", "NV12"];

struct State {
    /// The pattern frame each slot's image holds (drawn into it last), so
    /// the next drawing there redraws only where the box moved; `None`
    /// until drawn (and after a failed drawing).
    drawn: Arc<Mutex<Vec<Option<u32>>>>,
    /// Each slot's last drawing, where it was not waited for (kernel
    /// dma-bufs: its completion is the dma-buf's implicit fence); dropped
    /// (which waits for the GPU) before the ring's images.
    in_flight: Arc<Mutex<Vec<Option<crate::vulkan::Submission>>>>,
    kernels: Arc<Kernels>,
    /// The ring's images; the pool's buffer `i` carries image `i`.
    ring: Vec<Arc<ExportedImage>>,
    /// The memories and layout of each image, for the pool.
    slots: Vec<SlotMemories>,
    stream: StreamFormat,
    frame: u64,
    mappable: bool,
    /// Made in `decide_allocation`, once downstream said whether it takes
    /// `VideoMeta`.
    pool: Option<RingPool>,
}
#[derive(Default)]
pub struct VkDmaBufSrc {
    settings: Mutex<Settings>,
    context: Mutex<Option<Arc<VulkanContext>>>,
    state: Mutex<Option<State>>,
    flushing: AtomicBool,
    /// Frames pushed without a CPU wait for their drawing.
    gpu_fenced: std::sync::atomic::AtomicU64,
}

impl VkDmaBufSrc {
    fn pool(&self) -> Option<RingPool> {
        lock(&self.state).as_ref().and_then(|s| s.pool.clone())
    }

    fn context(&self) -> Result<Arc<VulkanContext>, gst::ErrorMessage> {
        let mut guard = lock(&self.context);
        if let Some(ctx) = guard.as_ref() {
            return Ok(Arc::clone(ctx));
        }
        let ctx = VulkanContext::new(&ContextOptions::from_env()).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                ["No usable Vulkan device: {}", Report(&e)]
            )
        })?;
        *guard = Some(Arc::clone(&ctx));
        Ok(ctx)
    }

    /// Builds the ring for `stream` and decides mappability by trying to map
    /// a buffer of it READWRITE (the caps-feature rule).
    fn build_state(&self, stream: StreamFormat) -> Result<State, gst::LoggableError> {
        let settings = *lock(&self.settings);
        let ctx = self.context().map_err(|e| gst::loggable_error!(CAT, "{:?}", e))?;
        // A tiled modifier (DMA_DRM, 1.24+): the driver's own export; its
        // mapping is meaningless, so the buffers count as non-mappable.
        let tiled = stream.modifier != DrmModifier::Linear;
        let exporter = if tiled {
            Exporter::new(&ctx).map_err(|e| gst::loggable_error!(CAT, "{}", Report(&e)))?
        } else if settings.non_mappable {
            // Sealing against writable mappings needs memfds of our own,
            // even where the driver could export (modifier devices).
            Exporter::host_only(&ctx, Box::new(crate::alloc::MemfdAllocator::new()))
        } else {
            let backend = crate::alloc::best_available().map_err(|e| gst::loggable_error!(CAT, "{}", Report(&e)))?;
            Exporter::with_allocator(&ctx, backend)
        };
        let kernels = Kernels::new(&ctx).map_err(|e| gst::loggable_error!(CAT, "{}", Report(&e)))?;
        let (ring, slots) = ring::build(&exporter, stream, settings)?;
        // The rule: try to map one of our buffers for READWRITE.
        let mappable = !tiled
            && crate::gst::memory::dmabuf_maps_writable(ring[0].dmabuf())
                .map_err(|e| gst::loggable_error!(CAT, "{}", Report(&e)))?;
        gst::info!(
            CAT,
            imp = self,
            "ring of {} {:?} images, mappable: {}",
            ring.len(),
            stream.fourcc,
            mappable
        );
        Ok(State {
            drawn: Arc::new(Mutex::new(vec![None; ring.len()])),
            in_flight: Arc::new(Mutex::new((0..ring.len()).map(|_| None).collect())),
            kernels: Arc::new(kernels),
            ring,
            slots,
            stream,
            frame: 0,
            mappable,
            pool: None,
        })
    }
}

#[glib::object_subclass]
impl ObjectSubclass for VkDmaBufSrc {
    const NAME: &'static str = "DmabufInteropVkDmaBufSrc";
    type Type = super::VkDmaBufSrc;
    type ParentType = gst_base::PushSrc;
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
        let state = lock(&self.state).take();
        if let Some(pool) = state.and_then(|s| s.pool) {
            let _ = pool.set_active(false);
        }
        Ok(())
    }

    fn negotiate(&self) -> Result<(), gst::LoggableError> {
        let obj = self.obj();
        let pad = obj.src_pad();
        let non_mappable = lock(&self.settings).non_mappable;
        // Offer only what this mode produces, in the running GStreamer's
        // caps style (DMA_DRM on 1.24+), so that downstream's answer is
        // about the caps we will set.
        let pairs = if non_mappable && dcaps::runtime_has_dma_drm() {
            let ctx = self.context().map_err(|e| gst::loggable_error!(CAT, "{:?}", e))?;
            let exporter = Exporter::new(&ctx).map_err(|e| gst::loggable_error!(CAT, "{}", Report(&e)))?;
            dma_drm_pairs(|f| {
                let planes = crate::vulkan::modifiers(&ctx, f).unwrap_or_default();
                exporter
                    .native_export_modifiers(f, ring::usage(f))
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|m| {
                        let listed = planes.iter().find(|s| s.modifier == m)?;
                        Some((m, listed.plane_count))
                    })
                    .collect()
            })
        } else {
            Vec::new()
        };
        let offer = caps_of(!non_mappable, non_mappable.then_some(Some(&pairs[..])));
        let peer = pad.peer_query_caps(Some(&offer));
        if peer.is_empty() {
            let msg = if non_mappable {
                format!(
                    "the buffers cannot be mapped, so caps carry memory:DMABuf ({offer}), and downstream \
                     accepts none of them: an element that must map (a conversion) cannot follow; use \
                     passthrough elements or a dma-buf importer"
                )
            } else {
                format!("downstream accepts none of {offer}")
            };
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ["{}", msg]);
            return Err(gst::loggable_error!(CAT, "{}", msg));
        }
        // Format, size and rate, defaulting to 320x240@30; a drm-format
        // list fixates to its first entry.
        let mut wanted = peer.clone();
        wanted.truncate();
        if let Some(s) = wanted.make_mut().structure_mut(0) {
            s.fixate_field_nearest_int("width", 320);
            s.fixate_field_nearest_int("height", 240);
            s.fixate_field_nearest_fraction("framerate", gst::Fraction::new(30, 1));
        }
        wanted.fixate();
        let mut stream = dcaps::parse_caps(&wanted).map_err(|e| gst::loggable_error!(CAT, "{}", Report(&e)))?;
        // The caps say what the pattern kernels write: YUV is BT.709
        // limited range (`crate::reference::pattern`), whatever the size's default.
        let mut colorimetry = wanted.structure(0).and_then(|s| s.get::<String>("colorimetry").ok());
        if crate::format::info(stream.fourcc).is_ok_and(|i| i.is_yuv) {
            let bt709 = |c: &str| {
                c.parse::<gst_video::VideoColorimetry>().is_ok_and(|c| {
                    c.matrix() == gst_video::VideoColorMatrix::Bt709
                        && c.range() == gst_video::VideoColorRange::Range16_235
                })
            };
            match &colorimetry {
                Some(c) if !bt709(c) => {
                    let msg =
                        format!("downstream asks for colorimetry {c}; the pattern is BT.709 limited range (bt709)");
                    gst::element_imp_error!(self, gst::CoreError::Negotiation, ["{}", msg]);
                    return Err(gst::loggable_error!(CAT, "{}", msg));
                }
                Some(_) => {}
                None => colorimetry = Some("bt709".into()),
            }
        }
        // Renegotiation (downstream asked for another size or format): the
        // pattern and the timestamps go on from where they were. Buffers of
        // the old ring still downstream keep their dma-bufs alive by
        // themselves (each memory owns a dup of its fd), and go back to the
        // old pool, which frees them.
        let previous = lock(&self.state).take();
        let previous_frame = previous.as_ref().map_or(0, |s| s.frame);
        if let Some(pool) = previous.and_then(|s| s.pool) {
            let _ = pool.set_active(false);
        }
        let mut state = self.build_state(stream)?;
        state.frame = previous_frame;
        if state.mappable == non_mappable {
            let msg = format!(
                "non-mappable={non_mappable} but the exported buffers are {}mappable",
                if state.mappable { "" } else { "not " }
            );
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ["{}", msg]);
            return Err(gst::loggable_error!(CAT, "{}", msg));
        }
        stream.dmabuf_feature = !state.mappable;
        let mut caps =
            dcaps::caps_for(&stream, state.mappable).map_err(|e| gst::loggable_error!(CAT, "{}", Report(&e)))?;
        if let Some(c) = colorimetry
            && let Some(s) = caps.make_mut().structure_mut(0)
        {
            s.set("colorimetry", c);
        }
        if !peer.can_intersect(&caps) {
            let msg = format!("downstream does not accept {caps} (it accepts {peer})");
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ["{}", msg]);
            return Err(gst::loggable_error!(CAT, "{}", msg));
        }
        *lock(&self.state) = Some(state);
        obj.set_caps(&caps)
            .map_err(|e| gst::loggable_error!(CAT, "{}", Report(&e)))
    }

    fn decide_allocation(&self, query: &mut gst::query::Allocation) -> Result<(), gst::LoggableError> {
        // Our buffers come from our own pool (the ring); downstream tells us
        // whether it reads VideoMeta, which our driver-chosen layout needs
        // unless it happens to be GStreamer's default.
        let video_meta = query.find_allocation_meta::<gst_video::VideoMeta>().is_some();
        let (caps, _) = query.get();
        let caps = caps
            .ok_or_else(|| gst::loggable_error!(CAT, "ALLOCATION query without caps"))?
            .to_owned();
        let (slots, stream) = {
            let guard = lock(&self.state);
            let state = guard
                .as_ref()
                .ok_or_else(|| gst::loggable_error!(CAT, "not negotiated"))?;
            (state.slots.clone(), state.stream)
        };
        let format = dcaps::video_format(stream.fourcc).ok_or_else(|| gst::loggable_error!(CAT, "format"))?;
        let defaults = gst_video::VideoInfo::builder(format, stream.width, stream.height)
            .build()
            .map_err(|e| gst::loggable_error!(CAT, "{}", Report(&e)))?;
        let planes = slots[0].offsets.len();
        if stream.modifier != DrmModifier::Linear && !video_meta {
            let msg = format!(
                "downstream does not read GstVideoMeta, which a tiled {} buffer needs for its plane layout",
                dcaps::drm_format_string(stream.fourcc, stream.modifier)
            );
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ["{}", msg]);
            return Err(gst::loggable_error!(CAT, "{}", msg));
        }
        // An export with more memory planes than the format (auxiliary
        // planes) is never GStreamer's default layout.
        let default_layout = planes == defaults.n_planes() as usize
            && slots[0].offsets[..] == defaults.offset()[..]
            && slots[0].strides[..] == defaults.stride()[..];
        if !video_meta && !default_layout {
            let msg = format!(
                "downstream does not read GstVideoMeta, and the exported layout (offsets {:?}, strides {:?}) \
                 is not GStreamer's default for {caps} (offsets {:?}, strides {:?}): add an element that \
                 supports VideoMeta (e.g. a dma-buf importer) or choose a size whose rows the driver does \
                 not pad",
                slots[0].offsets,
                slots[0].strides,
                defaults.offset(),
                defaults.stride(),
            );
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ["{}", msg]);
            return Err(gst::loggable_error!(CAT, "{}", msg));
        }
        let size: usize = slots[0].memories.iter().map(|m| m.size()).sum();
        let count = slots.len() as u32;
        let pool = RingPool::new(slots, video_meta.then_some((format, stream.width, stream.height)));
        let mut config = pool.config();
        config.set_params(Some(&caps), size as u32, count, count);
        if video_meta {
            config.add_option(gst_video::BUFFER_POOL_OPTION_VIDEO_META);
        }
        pool.set_config(config)
            .map_err(|e| gst::loggable_error!(CAT, "pool config: {}", Report(&e)))?;
        pool.set_active(true)
            .map_err(|e| gst::loggable_error!(CAT, "pool activation: {}", Report(&e)))?;
        gst::info!(
            CAT,
            imp = self,
            "pool of {count} ring buffers of {size} bytes, VideoMeta: {video_meta}"
        );
        // basesrc takes pool 0 of the query: ours, not downstream's proposal.
        while query.allocation_pools().count() > 0 {
            query.remove_nth_allocation_pool(0);
        }
        query.add_allocation_pool(Some(&pool), size as u32, count, count);
        if let Some(state) = lock(&self.state).as_mut()
            && let Some(old) = state.pool.replace(pool)
        {
            let _ = old.set_active(false);
        }
        Ok(())
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.store(true, Ordering::SeqCst);
        if let Some(pool) = self.pool() {
            pool.set_flushing(true);
        }
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.store(false, Ordering::SeqCst);
        if let Some(pool) = self.pool() {
            pool.set_flushing(false);
        }
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
            let framerate = lock(&self.state).as_ref().map(|s| s.stream.framerate);
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
        !lock(&self.settings).is_live
    }

    fn do_seek(&self, segment: &mut gst::Segment) -> bool {
        // Restart the pattern at the frame the seek position names.
        let Some(segment) = segment.downcast_mut::<gst::ClockTime>() else {
            return false;
        };
        let mut guard = lock(&self.state);
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
            let pool = self.pool().ok_or(gst::FlowError::NotNegotiated)?;
            // Waits, holding no lock, until downstream has released a ring
            // buffer (unlock() makes it return Flushing).
            let mut buffer = match pool.acquire_buffer(None) {
                Ok(b) => b,
                Err(gst::FlowError::Error) => {
                    let why = pool.take_error().unwrap_or_else(|| "the ring pool failed".into());
                    gst::element_imp_error!(self, gst::ResourceError::NoSpaceLeft, ["{}", why]);
                    return Err(gst::FlowError::Error);
                }
                Err(e) => return Err(e),
            };
            let Some(index) = pool.slot_of(&buffer) else {
                continue;
            };
            let (kernels, image, frame, (n, d), in_flight, drawn) = {
                let mut guard = lock(&self.state);
                let state = guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
                if state.pool.as_ref() != Some(&pool) {
                    // Renegotiated meanwhile: that buffer goes back to the
                    // old pool, which frees it.
                    continue;
                }
                let frame = state.frame;
                state.frame += 1;
                (
                    Arc::clone(&state.kernels),
                    Arc::clone(&state.ring[index]),
                    frame,
                    state.stream.framerate,
                    Arc::clone(&state.in_flight),
                    Arc::clone(&state.drawn),
                )
            };
            let failed = |e: crate::vulkan::VulkanError| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ["Vulkan rendering failed: {}", Report(&e)]
                );
                gst::FlowError::Error
            };
            // No state lock from here on (property reads, queries and
            // seeks go on meanwhile).
            // What the image holds, forgotten until this drawing is done
            // (a failure leaves it unknown: the next one draws it whole).
            let from = lock(&drawn)[index].take();
            let mut submission = kernels
                .update_pattern_submit(&image, from, frame as u32)
                .map_err(failed)?;
            submission.keep(Arc::clone(&image));
            if image.dmabuf().is_kernel_dmabuf() && submission.fenced_on_dmabufs() {
                // The drawing's completion is on the dma-buf as its implicit
                // write fence: downstream readers (a sink exporting it as
                // its acquire fence, a compositor, a mapping) wait for it,
                // so the buffer goes now, without a CPU wait. The
                // submission lives in the slot until the image is drawn
                // into again (long done by then).
                let previous = lock(&in_flight).get_mut(index).map(|slot| slot.replace(submission));
                drop(previous);
                self.gpu_fenced.fetch_add(1, Ordering::Relaxed);
            } else {
                // A memfd stand-in carries no fences, and a kernel before
                // 6.0 does not take ours: wait here.
                submission.wait().map_err(failed)?;
            }
            lock(&drawn)[index] = Some(frame as u32);
            // Fresh from the pool: one reference, writable.
            let b = buffer.make_mut();
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
            return Ok(CreateSuccess::NewBuffer(buffer));
        }
    }
}
