//! Presentation timing: each frame's target (its running time plus base
//! time plus latency, on the pipeline clock) handed to the presenter, and
//! the compositor's `wp_presentation` feedback turned into errors
//! (presented minus target) for the `stats` property.

use std::collections::VecDeque;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use gstreamer_base as gst_base;
use gstreamer_base::prelude::*;

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::WlDmaBufSink;
use crate::wayland::{Outcome, Pacing, Presenter};

/// How far ahead of its time a frame is committed under commit timing
/// (basesink's render delay, added to the latency the sink reports):
/// two 60 Hz refreshes, more than headless Weston's commit-to-present
/// (a median 25.9 ms without timing), so the compositor holds each frame
/// until its time instead of showing it late.
pub(super) const RENDER_AHEAD: Duration = Duration::from_millis(33);

impl WlDmaBufSink {
    /// Sets basesink's render delay to [`RENDER_AHEAD`] under commit
    /// timing, where the application left it at zero; back to zero (if
    /// we set it) otherwise.
    pub(super) fn render_ahead(&self, pacing: Pacing) {
        let sink = self.obj();
        let sink: &gst_base::BaseSink = sink.upcast_ref();
        if pacing == Pacing::CommitTiming {
            if sink.render_delay().is_zero() {
                sink.set_render_delay(gst::ClockTime::from_nseconds(RENDER_AHEAD.as_nanos() as u64));
                self.render_ahead_set.store(true, Ordering::SeqCst);
            }
        } else if self.render_ahead_set.swap(false, Ordering::SeqCst) {
            sink.set_render_delay(gst::ClockTime::ZERO);
        }
    }
}

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

/// When `buffer` should be on screen, in nanoseconds of `CLOCK_MONOTONIC`
/// (the presenter moves it onto the compositor's presentation clock:
/// Weston presents in `CLOCK_MONOTONIC_RAW`): running time + base time +
/// latency + ts-offset on the pipeline clock (basesink renders it a render
/// delay before that: the delay is part of the latency). The pipeline's monotonic system clock is
/// `CLOCK_MONOTONIC` itself; any other clock (an audio sink's, a realtime
/// or network clock) is related to it by sampling both now, so a player
/// whose audio sink provides the clock still gets commit timing and
/// timing stats (the two clocks drift apart by far less than a frame over
/// one frame's lead). `None` without a clock or a timestamp. Reads
/// basesink's segment, which takes the sink pad's stream lock: called in
/// the streaming thread only.
pub(super) fn target_monotonic_ns(sink: &gst_base::BaseSink, buffer: &gst::Buffer) -> Option<u64> {
    let clock = sink.clock()?;
    let segment = sink.segment().downcast::<gst::ClockTime>().ok()?;
    let running = segment.to_running_time(buffer.pts()?)?;
    let at = (running + sink.base_time()? + sink.latency()).nseconds();
    let at = at.checked_add_signed(sink.ts_offset())?;
    let monotonic = clock
        .downcast_ref::<gst::SystemClock>()
        .is_some_and(|c| c.property::<gst::ClockType>("clock-type") == gst::ClockType::Monotonic);
    if monotonic {
        Some(at)
    } else {
        on_monotonic(at, clock.time().nseconds(), crate::wayland::monotonic_ns())
    }
}

/// `at` on a clock that reads `clock_now` while `CLOCK_MONOTONIC` reads
/// `monotonic_now`, as a `CLOCK_MONOTONIC` time; `None` before the
/// monotonic clock's zero.
fn on_monotonic(at: u64, clock_now: u64, monotonic_now: u64) -> Option<u64> {
    u64::try_from(i128::from(at) - i128::from(clock_now) + i128::from(monotonic_now)).ok()
}

#[cfg(test)]
mod tests {
    use super::{Errors, on_monotonic};

    #[test]
    fn another_clock_is_moved_by_the_offset_of_now() {
        // A realtime clock 1.7e18 ns past its epoch, monotonic 5 s after boot.
        let (clock_now, mono_now) = (1_700_000_000_000_000_000, 5_000_000_000);
        assert_eq!(
            on_monotonic(clock_now + 40_000_000, clock_now, mono_now),
            Some(5_040_000_000)
        );
        assert_eq!(
            on_monotonic(clock_now - 1_000_000_000, clock_now, mono_now),
            Some(4_000_000_000)
        );
        assert_eq!(on_monotonic(0, clock_now, mono_now), None);
    }

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
