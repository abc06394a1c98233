//! The presenter's waits and pacing: frame callbacks, FIFO and commit
//! timing, `wp_presentation` feedback, each wait bounded by a timeout
//! through one dispatch loop ([`Presenter::dispatch_until`]).

use std::time::{Duration, Instant};

use super::Presenter;
use crate::wayland::error::WaylandError;
use crate::wayland::pacing::Paced;
use crate::wayland::timing::from_monotonic;
use crate::wayland::{FrameTiming, Pacing, QUEUE_DEPTH};

impl Presenter {
    /// When the next frame committed should be shown, in nanoseconds of
    /// the presentation clock ([`presentation_clock`](Self::presentation_clock)):
    /// recorded in its [`FrameTiming`](crate::wayland::FrameTiming), so that a
    /// player can measure presented minus wanted.
    pub fn set_target(&mut self, target_ns: Option<u64>) {
        self.next_target = target_ns;
    }

    /// The compositor's presentation clock (`wp_presentation.clock_id`,
    /// a `clockid_t`: [`CLOCK_MONOTONIC`](crate::wayland::CLOCK_MONOTONIC) = 1, or
    /// `CLOCK_MONOTONIC_RAW` = 4 as Weston's); `None` without
    /// `wp_presentation`.
    pub fn presentation_clock(&self) -> Option<u32> {
        self.state.timings.clock
    }

    /// A `CLOCK_MONOTONIC` time (e.g. a GStreamer system clock's) on the
    /// presentation clock, for [`set_target`](Self::set_target); `None`
    /// without `wp_presentation` or on a clock this process cannot read.
    pub fn from_monotonic(&self, monotonic_ns: u64) -> Option<u64> {
        from_monotonic(monotonic_ns, self.state.timings.clock?)
    }

    /// The `wp_presentation` feedback that came since the last call (at
    /// most [`MAX_TIMINGS`](crate::wayland::MAX_TIMINGS), the newest), oldest
    /// first; empty without `wp_presentation`.
    pub fn take_timings(&mut self) -> Vec<FrameTiming> {
        self.state.timings.done.drain(..).collect()
    }

    /// Dispatches until every commit has its `wp_presentation` feedback
    /// (presented or discarded), or `timeout`; false on timeout,
    /// [`WaylandError::Closed`] once the window is closed. True at once
    /// without `wp_presentation`.
    pub fn wait_timings(&mut self, timeout: Duration) -> Result<bool, WaylandError> {
        if self.presentation.is_none() {
            return Ok(true);
        }
        self.dispatch_until(timeout, |p| {
            p.state.timings.presented + p.state.timings.discarded >= p.stats.presented
        })
    }

    /// Dispatches, in slices of at most 20 ms, until `done` or `timeout`;
    /// false on timeout, [`WaylandError::Closed`] once the user closed the
    /// window (what was waited for may never come then). The one loop
    /// behind every `wait_*`.
    pub(super) fn dispatch_until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&Self) -> bool,
    ) -> Result<bool, WaylandError> {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            self.dispatch_timeout(left.min(Duration::from_millis(20)))?;
            if self.state.closed {
                return Err(WaylandError::Closed);
            }
        }
        Ok(true)
    }

    /// Whether a frame callback is outstanding (the compositor has not
    /// shown the last commit yet).
    pub fn frame_pending(&self) -> bool {
        self.state.frame_callback.is_some()
    }

    /// Whether the next frame may be committed now: under FIFO pacing
    /// (see [`pacing`](Self::pacing)) while fewer than
    /// [`QUEUE_DEPTH`](crate::wayland::QUEUE_DEPTH) committed frames wait to be
    /// shown, else once the last commit was shown (its frame callback).
    pub fn ready_for_next(&self) -> bool {
        match self.pacing() {
            Pacing::FrameCallbacks => !self.frame_pending(),
            _ => self.state.queued_frames.len() < QUEUE_DEPTH,
        }
    }

    /// Dispatches until [`ready_for_next`](Self::ready_for_next), or
    /// `timeout`; false on timeout.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<bool, WaylandError> {
        self.dispatch_until(timeout, Self::ready_for_next)
    }

    /// How the next commits are paced: [`Pacing::CommitTiming`](crate::wayland::Pacing)
    /// where the compositor offers `wp_fifo_v1` and `wp_commit_timing_v1`
    /// (and [`set_paced`](Self::set_paced) did not turn it off), else
    /// frame callbacks.
    pub fn pacing(&self) -> Pacing {
        self.paced.as_ref().map_or(Pacing::FrameCallbacks, Paced::mode)
    }

    /// Turns FIFO pacing and commit timestamps on (the default where
    /// offered) or off (frame callbacks pace, as without the protocols).
    pub fn set_paced(&mut self, on: bool) {
        if let Some(p) = &mut self.paced {
            p.enabled = on;
        }
    }

    /// Dispatches until the latest commit's frame callback, or `timeout`;
    /// false on timeout, and when the wait was given up: the commit's kind
    /// of buffer seemed never to be shown, or the window is hidden (see
    /// [`PresentStats::never_shown`](crate::wayland::PresentStats::never_shown) and
    /// [`PresentStats::hidden_restores`](crate::wayland::PresentStats::hidden_restores): the wait ends there, the frame
    /// was not shown).
    pub fn wait_frame(&mut self, timeout: Duration) -> Result<bool, WaylandError> {
        let given_up = self.shown.waits_given_up();
        let called = self.dispatch_until(timeout, |p| p.state.frame_callback.is_none())?;
        Ok(called && self.shown.waits_given_up() == given_up)
    }
}
