//! The source's settings and properties (`is-live`, `non-mappable`,
//! `ring-size`, the read-only counters).

use std::sync::LazyLock;
use std::sync::atomic::Ordering;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use gstreamer_base::prelude::*;

use super::{CAT, VkDmaBufSrc};
use crate::elements::lock;

/// `is-live`'s default.
const DEFAULT_IS_LIVE: bool = false;
/// `non-mappable`'s default.
const DEFAULT_NON_MAPPABLE: bool = false;
/// `ring-size`'s default.
const DEFAULT_RING_SIZE: u32 = 4;

#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    pub(super) is_live: bool,
    pub(super) non_mappable: bool,
    pub(super) ring_size: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            is_live: DEFAULT_IS_LIVE,
            non_mappable: DEFAULT_NON_MAPPABLE,
            ring_size: DEFAULT_RING_SIZE,
        }
    }
}

impl ObjectImpl for VkDmaBufSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecBoolean::builder("is-live")
                    .nick("Is live")
                    .blurb("Act as a live source (timestamps follow the clock)")
                    .default_value(DEFAULT_IS_LIVE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("non-mappable")
                    .nick("Non-mappable")
                    .blurb(
                        "Seal the memfds against new writable mappings so the buffers cannot be mapped \
                         READWRITE: caps then carry memory:DMABuf (for testing the caps-feature rules)",
                    )
                    .default_value(DEFAULT_NON_MAPPABLE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("ring-size")
                    .nick("Ring size")
                    .blurb("Exported images rendered into in turn (at least 2)")
                    .minimum(2)
                    .maximum(64)
                    .default_value(DEFAULT_RING_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("gpu-fenced-frames")
                    .nick("GPU-fenced frames")
                    .blurb(
                        "Frames pushed without a CPU wait for their drawing: its completion travels as the \
                         kernel dma-buf's implicit fence (memfd stand-ins are waited for)",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "is-live" => {
                s.is_live = value.get().unwrap_or(DEFAULT_IS_LIVE);
                self.obj().set_live(s.is_live);
            }
            "non-mappable" => s.non_mappable = value.get().unwrap_or(DEFAULT_NON_MAPPABLE),
            "ring-size" => s.ring_size = value.get().unwrap_or(DEFAULT_RING_SIZE),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "is-live" => s.is_live.to_value(),
            "non-mappable" => s.non_mappable.to_value(),
            "ring-size" => s.ring_size.to_value(),
            "gpu-fenced-frames" => self.gpu_fenced.load(Ordering::Relaxed).to_value(),
            _ => glib::Value::from_type(pspec.value_type()),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_format(gst::Format::Time);
        obj.set_live(DEFAULT_IS_LIVE);
    }
}
