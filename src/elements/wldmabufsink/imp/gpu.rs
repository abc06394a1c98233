//! The sink's GPU conversion (property `gpu-conversion`, built with the
//! `vulkan` feature): a YUV frame the compositor cannot be told about and
//! would misread ([`Presenter::converts_for_colour`]) is converted into
//! XRGB8888 on the GPU, with its matrix and range, into an exported
//! dma-buf that goes to the compositor like any RGB frame: zero CPU
//! copies, where the Presenter's own conversion copies into `wl_shm` on
//! the CPU.
//!
//! It takes a frame only where the Vulkan adapter can: a device is found
//! (once, at the first frame that needs it; a failure is logged and the CPU
//! path stays for the rest of the sink's life), the device imports the
//! frame, and the kernels read its format (NV12, I420, P010:
//! [`VIDEO_FORMATS`]). A frame whose layout the device will not import as
//! an image (a LINEAR pitch it does not lay out) is copied on the GPU into
//! an image of the device's own ([`CopyIn`]). Everything else falls through
//! to the Presenter, which converts on the CPU and counts it. A format the
//! device refuses to import goes to the CPU from then on; the others stay
//! on the GPU.
//!
//! Outputs: a ring of [`OUTPUT_RING`] exported images per size. An output
//! is drawn into only once the compositor has let go of it (its release,
//! or under explicit sync its release fence, waited for on the GPU); the
//! conversion is waited for before the commit, so the frame's own memory
//! is free again when the sink returns.

use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::subclass::prelude::*;

use super::{CAT, Counters, WlDmaBufSink};
use crate::vulkan::{
    ContextOptions, CopyIn, ExportedImage, Exporter, ImportCache, Kernels, VIDEO_FORMATS, VulkanContext, VulkanError,
    VulkanImage,
};
use crate::wayland::{Presenter, WaylandError};
use crate::{DmaBuf, DrmFourcc, Report};

/// Output images per size: one on screen, one queued, one drawn.
const OUTPUT_RING: usize = 3;

/// How long an output may stay with the compositor before a conversion
/// into it gives up (a compositor that never releases).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// The conversion's state in the sink.
#[derive(Default)]
pub(super) struct Gpu {
    /// `gpu-conversion` as the presenter was connected.
    pub(super) enabled: bool,
    device: Device,
}

/// The Vulkan side, made at the first frame that needs it.
#[derive(Default)]
enum Device {
    #[default]
    Unmade,
    Ready(Box<Path>),
    /// Making it or a conversion failed: the CPU path for good.
    Off,
}

struct Path {
    kernels: Kernels,
    exporter: Exporter,
    imports: ImportCache,
    ring: Vec<ExportedImage>,
    next: usize,
    /// Formats the device refused to import: the CPU's from then on.
    refused: Vec<DrmFourcc>,
    /// Where frames the device will not import as they are laid out are
    /// copied on the GPU (one format and size at a time).
    copied: Option<CopyIn>,
    /// The last layout the device refused ([`Shape::of`]): frames laid out
    /// so go straight to the copy-in instead of failing an import each.
    refused_layout: Option<Shape>,
}

/// A frame's format, size and plane offsets and strides: what decides
/// whether the device imports it.
#[derive(PartialEq, Eq)]
struct Shape(DrmFourcc, u32, u32, Vec<(u32, u32)>);

impl Shape {
    fn of(frame: &DmaBuf) -> Self {
        let planes = frame.planes().iter().map(|p| (p.offset(), p.stride())).collect();
        Self(frame.fourcc(), frame.width(), frame.height(), planes)
    }
}

/// What a GPU conversion did with a frame.
pub(super) enum Outcome {
    /// Converted and shown; `copied_in`: copied into the device on the
    /// GPU first ([`CopyIn`]).
    Shown {
        /// Whether the frame was copied in.
        copied_in: bool,
    },
    /// Not taken (not needed, not enabled, no device, a format the kernels
    /// do not read, or the device refused it): the caller presents the
    /// frame; `Some` says why the GPU path is now off for good.
    NotTaken(Option<String>),
}

impl Path {
    fn new() -> Result<Self, VulkanError> {
        let ctx: Arc<VulkanContext> = VulkanContext::new(&ContextOptions::from_env())?;
        let kernels = Kernels::new(&ctx)?;
        Ok(Self {
            imports: ImportCache::new(&ctx, kernels.composite_video_usage()),
            exporter: Exporter::new(&ctx)?,
            kernels,
            ring: Vec::new(),
            next: 0,
            refused: Vec::new(),
            copied: None,
            refused_layout: None,
        })
    }

    /// Copies `frame`, whose layout the device does not import as an
    /// image, into [`Path::copied`] on the GPU (a new image at a new format
    /// or size).
    fn copy_in(&mut self, frame: &DmaBuf) -> Result<(), VulkanError> {
        if !self.copied.as_ref().is_some_and(|c| c.fits(frame)) {
            let usage = self.kernels.composite_video_usage();
            self.copied = None;
            self.copied = Some(CopyIn::new(
                &self.exporter,
                frame.fourcc(),
                frame.width(),
                frame.height(),
                usage,
            )?);
        }
        match &mut self.copied {
            Some(c) => c.copy(frame).map(drop),
            None => Err(VulkanError::Usage("no image to copy the frame into")),
        }
    }

    /// The index of the next output for a `width`x`height` frame, a new
    /// ring at a new size (the old outputs die once the compositor lets go
    /// of them).
    fn output(&mut self, presenter: &mut Presenter, width: u32, height: u32) -> Result<usize, VulkanError> {
        let size = |o: &ExportedImage| (o.dmabuf().width(), o.dmabuf().height());
        if self.ring.first().is_none_or(|o| size(o) != (width, height)) {
            for old in self.ring.drain(..) {
                presenter.forget(old.dmabuf());
            }
            let tiers = presenter.formats().preferred_modifiers(DrmFourcc::Xrgb8888);
            for _ in 0..OUTPUT_RING {
                let usage = self.kernels.composite_output_usage();
                let out = self
                    .exporter
                    .export_preferring(DrmFourcc::Xrgb8888, width, height, usage, &tiers)?;
                self.ring.push(out);
            }
            self.next = 0;
        }
        let out = self.next;
        self.next = (self.next + 1) % self.ring.len();
        Ok(out)
    }
}

/// A conversion step failed: the frame's import (its format goes to the
/// CPU), the rest of the Vulkan side (the GPU path goes off; either way the
/// frame falls through to the CPU) or the Wayland side (the frame's error).
enum Failed {
    Import(VulkanError),
    Vulkan(VulkanError),
    Wayland(WaylandError),
}

impl WlDmaBufSink {
    /// Shows `frame` converted on the GPU where [`Gpu::present`] takes it
    /// (counted in `counters`); false where the caller presents it.
    pub(super) fn convert_on_gpu(
        &self,
        gpu: &mut Gpu,
        presenter: &mut Presenter,
        frame: &DmaBuf,
        counters: &mut Counters,
    ) -> Result<bool, WaylandError> {
        match gpu.present(presenter, frame)? {
            Outcome::Shown { copied_in } => {
                counters.gpu_converted += 1;
                counters.gpu_copied_in += u64::from(copied_in);
                Ok(true)
            }
            Outcome::NotTaken(Some(why)) => {
                gst::warning!(CAT, imp = self, "{why}");
                Ok(false)
            }
            Outcome::NotTaken(None) => Ok(false),
        }
    }
}

impl Gpu {
    /// A new presenter: `gpu-conversion` as set now; outputs of the last
    /// presenter are dropped (its `wl_buffer`s went with it), the device
    /// is kept.
    pub(super) fn reset(&mut self, enabled: bool) {
        self.enabled = enabled;
        if let Device::Ready(path) = &mut self.device {
            path.ring.clear();
            path.imports.purge();
        }
    }

    /// Converts and shows `frame` where it should and can (see the module
    /// docs); a Wayland error is the frame's error.
    pub(super) fn present(&mut self, presenter: &mut Presenter, frame: &DmaBuf) -> Result<Outcome, WaylandError> {
        if !self.enabled || !VIDEO_FORMATS.contains(&frame.fourcc()) || !presenter.converts_for_colour(frame) {
            return Ok(Outcome::NotTaken(None));
        }
        if matches!(self.device, Device::Unmade) {
            match Path::new() {
                Ok(path) => self.device = Device::Ready(Box::new(path)),
                Err(e) => return Ok(self.turn_off(presenter, &e)),
            }
        }
        let Device::Ready(path) = &mut self.device else {
            return Ok(Outcome::NotTaken(None));
        };
        if path.refused.contains(&frame.fourcc()) {
            return Ok(Outcome::NotTaken(None));
        }
        match convert(path, presenter, frame) {
            Ok(copied_in) => Ok(Outcome::Shown { copied_in }),
            Err(Failed::Wayland(e)) => Err(e),
            Err(Failed::Import(e)) => {
                path.refused.push(frame.fourcc());
                Ok(Outcome::NotTaken(Some(format!(
                    "the Vulkan device does not import {:?}, converting it on the CPU: {}",
                    frame.fourcc(),
                    Report(&e)
                ))))
            }
            Err(Failed::Vulkan(e)) => Ok(self.turn_off(presenter, &e)),
        }
    }

    /// Leaves the GPU path for good after `e` (its outputs' `wl_buffer`s
    /// go); the frame falls through to the CPU.
    fn turn_off(&mut self, presenter: &mut Presenter, e: &VulkanError) -> Outcome {
        if let Device::Ready(path) = std::mem::replace(&mut self.device, Device::Off) {
            for out in &path.ring {
                presenter.forget(out.dmabuf());
            }
        }
        Outcome::NotTaken(Some(format!(
            "GPU conversion off, converting on the CPU: {}",
            Report(e)
        )))
    }
}

/// Draws `frame` into a free output and commits that; true when the frame
/// was copied in first.
fn convert(path: &mut Path, presenter: &mut Presenter, frame: &DmaBuf) -> Result<bool, Failed> {
    // Imported as it is (zero-copy), else copied in on the GPU where only
    // its layout is refused (remembered: a stream keeps its layout).
    let imported = if path.refused_layout.as_ref().is_some_and(|s| *s == Shape::of(frame)) {
        None
    } else {
        match path.imports.get_or_import(frame) {
            Ok(image) => Some(image),
            Err(VulkanError::LayoutMismatch { .. }) => {
                path.refused_layout = Some(Shape::of(frame));
                None
            }
            Err(e) => return Err(Failed::Import(e)),
        }
    };
    if imported.is_none() {
        path.copy_in(frame).map_err(Failed::Import)?;
    }
    let index = path
        .output(presenter, frame.width(), frame.height())
        .map_err(Failed::Vulkan)?;
    let out = &path.ring[index];
    let video: &VulkanImage = match (&imported, &path.copied) {
        (Some(image), _) => image,
        (None, Some(copied)) => copied.image(),
        (None, None) => return Err(Failed::Vulkan(VulkanError::Usage("no copied frame"))),
    };
    // Never draw into a buffer the compositor may still read: under
    // explicit sync the draw waits for its release fence on the GPU,
    // otherwise for the release here.
    let after = presenter
        .writable_after(out.dmabuf(), RELEASE_TIMEOUT)
        .map_err(Failed::Wayland)?;
    // Waited for here: the frame's memory goes back upstream when the sink
    // returns, and the output's contents are complete at the commit.
    path.kernels
        .convert_submit(video, out, &after)
        .and_then(|s| s.wait())
        .map_err(Failed::Vulkan)?;
    presenter.present(out.dmabuf(), Box::new(())).map_err(Failed::Wayland)?;
    Ok(imported.is_none())
}
