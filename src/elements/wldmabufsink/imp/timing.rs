//! Presentation timing: each frame's target (its running time plus base
//! time plus latency, on the pipeline clock) handed to the presenter, and
//! the compositor's `wp_presentation` feedback turned into errors
//! (presented minus target) for the `stats` property.

use std::collections::VecDeque;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_base as gst_base;
use gstreamer_base::prelude::*;

use crate::wayland::{Outcome, Presenter};

/// Errors kept for the percentiles (the newest).
const MAX_ERRORS: usize = 1024;

/// presented - target of the frames shown so far, in nanoseconds.
#[derive(Debug, Default)]
pub(super) struct Errors(VecDeque<i64>);

impl Errors {
    /// Takes the presenter's new feedback in.
    pub(super) fn collect(&mut self, presenter: &mut Presenter) {
        for t in presenter.take_timings() {
            if let (Some(target), Outcome::Presented { time_ns, .. }) = (t.target_ns, t.outcome) {
                if self.0.len() >= MAX_ERRORS {
                    self.0.pop_front();
                }
                self.0.push_back(time_ns as i64 - target as i64);
            }
        }
    }

    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    /// (frames measured, median of presented - target, 95th percentile of
    /// |presented - target|), in microseconds.
    pub(super) fn summary(&self) -> (u64, i64, u64) {
        if self.0.is_empty() {
            return (0, 0, 0);
        }
        let mut signed: Vec<i64> = self.0.iter().copied().collect();
        signed.sort_unstable();
        let mut abs: Vec<u64> = self.0.iter().map(|e| e.unsigned_abs()).collect();
        abs.sort_unstable();
        let p95 = abs[(abs.len() * 95).div_ceil(100).saturating_sub(1)];
        (self.0.len() as u64, signed[signed.len() / 2] / 1000, p95 / 1000)
    }
}

/// When `buffer` should be on screen, in nanoseconds of the compositor's
/// presentation clock: the moment basesink syncs it to (running time +
/// base time + latency + render delay) on the pipeline's monotonic system
/// clock, moved onto the presentation clock (Weston presents in
/// `CLOCK_MONOTONIC_RAW`). `None` where the two clocks cannot be related
/// (an audio or network clock, no `wp_presentation`, no timestamp).
pub(super) fn target_ns(sink: &gst_base::BaseSink, buffer: &gst::Buffer, presenter: &Presenter) -> Option<u64> {
    let clock = sink.clock()?;
    let system = clock.downcast_ref::<gst::SystemClock>()?;
    if system.property::<gst::ClockType>("clock-type") != gst::ClockType::Monotonic {
        return None;
    }
    let segment = sink.segment().downcast::<gst::ClockTime>().ok()?;
    let running = segment.to_running_time(buffer.pts()?)?;
    let at = running + sink.base_time()? + sink.latency() + sink.render_delay();
    presenter.from_monotonic(at.nseconds())
}

#[cfg(test)]
mod tests {
    use super::Errors;

    #[test]
    fn the_summary_is_the_median_and_the_95th_percentile() {
        let mut e = Errors::default();
        assert_eq!(e.summary(), (0, 0, 0));
        e.0.extend((1..=100).map(|i| i * 1000));
        e.0.push_back(-200_000);
        let (n, median, p95) = e.summary();
        assert_eq!((n, median, p95), (101, 50, 96));
    }
}
