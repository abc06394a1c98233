//! The sink's `stats` property: what the sink counted, what the
//! Presenter counted and the presentation errors, as one structure
//! (`wldmabufsink-stats`, also posted as an element message at EOS).

use std::time::Duration;

use gstreamer as gst;
use gstreamer::subclass::prelude::*;

use super::{CAT, Counters, WlDmaBufSink};
use crate::Report;
use crate::elements::lock;
use crate::wayland::{PresentStats, Presenter, SyncMode};

impl WlDmaBufSink {
    /// At EOS: the last commits' `wp_presentation` feedback, waited for
    /// at most 100 ms, so the stats count them.
    pub(super) fn wait_feedback(&self) {
        let mut state = lock(&self.state);
        let super::State {
            presenter,
            timing_errors,
            ..
        } = &mut *state;
        if let Some(p) = presenter.as_mut() {
            if let Err(e) = p.wait_timings(Duration::from_millis(100)) {
                gst::debug!(CAT, imp = self, "feedback at EOS: {}", Report(&e));
            }
            timing_errors.collect(p);
        }
    }

    /// The `stats` property (and the message posted at EOS).
    pub(super) fn stats_structure(&self) -> gst::Structure {
        let state = lock(&self.state);
        let counters = state.counters;
        let stats = state.presenter.as_ref().map(Presenter::stats).unwrap_or_default();
        let timing = state.timing_errors.summary();
        let pool = state.allocator.as_ref().map_or("none", |a| a.backend_name());
        structure(counters, &stats, timing, pool)
    }
}

/// `counters`: the sink's counts; `timing`: (timed frames, median
/// and p95 presentation error in microseconds), from `timing::Errors`;
/// `pool`: the back end of the pool proposed upstream (`none` before one).
pub(super) fn structure(
    counters: Counters,
    stats: &PresentStats,
    timing: (u64, i64, u64),
    pool: &str,
) -> gst::Structure {
    let Counters {
        frames,
        dropped,
        gpu_converted,
        gpu_copied_in,
    } = counters;
    let (timed, median, p95) = timing;
    gst::Structure::builder("wldmabufsink-stats")
        .field("frames", frames)
        .field("pool", pool)
        .field("shown", stats.presented)
        .field("zero-copy", stats.zero_copy)
        .field("shm-zero-copy", stats.shm_zero_copy)
        .field("copies", stats.copies)
        .field("converted", stats.converted)
        .field("gpu-converted", gpu_converted)
        .field("gpu-copied-in", gpu_copied_in)
        .field("dropped", dropped)
        .field("wl-buffers", stats.wl_buffers_created)
        .field("cache-hits", stats.cache_hits)
        .field("releases", stats.releases)
        .field("reused-before-release", stats.reused_before_release)
        .field("import-refusals", stats.import_refusals)
        .field("never-shown", stats.never_shown)
        .field("hidden-restores", stats.hidden_restores)
        .field("overlay-sets", stats.overlay_sets)
        .field("colour-told", stats.colour_told)
        .field("colour-converted", stats.colour_converted)
        .field("colour-uncorrected", stats.colour_uncorrected)
        .field("alpha-told", stats.alpha_told)
        .field("alpha-untold", stats.alpha_untold)
        .field("colour-described", stats.colour_described)
        .field("colour-description-failures", stats.colour_description_failures)
        .field(
            "sync",
            match stats.sync {
                SyncMode::Implicit => "implicit",
                SyncMode::DrmSyncobj => "linux-drm-syncobj-v1",
                SyncMode::ExplicitSyncV1 => "linux-explicit-synchronization-v1",
            },
        )
        .field("explicit-sync-commits", stats.explicit_sync_commits)
        .field("release-points-signalled", stats.release_points_signalled)
        .field("presented-feedback", stats.feedback_presented)
        .field("discarded-feedback", stats.feedback_discarded)
        .field("presented-zero-copy-feedback", stats.feedback_zero_copy)
        .field("pacing", stats.pacing.name())
        .field("timed-commits", stats.timed_commits)
        .field("timed", timed)
        .field("presentation-error-median-us", median)
        .field("presentation-error-p95-us", p95)
        .build()
}
