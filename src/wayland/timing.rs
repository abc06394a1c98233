//! When frames were really shown: `wp_presentation` feedback for every
//! commit ([`FrameTiming`]: presented at what time with what refresh, or
//! discarded), kept in a bounded queue for the user to take
//! ([`Presenter::take_timings`](super::Presenter::take_timings)) and
//! counted in [`PresentStats`](super::PresentStats).

use std::collections::VecDeque;

use wayland_client::protocol::wl_surface::WlSurface;
use wayland_client::{Connection, Dispatch, QueueHandle, WEnum};
use wayland_protocols::wp::presentation_time::client::{
    wp_presentation::{self, WpPresentation},
    wp_presentation_feedback::{self, Kind, WpPresentationFeedback},
};

use super::queue::State;

/// At most this many timings wait to be taken (the oldest go).
pub const MAX_TIMINGS: usize = 256;

/// `CLOCK_MONOTONIC`, one clock id compositors present in (Weston uses
/// `CLOCK_MONOTONIC_RAW`, 4).
pub const CLOCK_MONOTONIC: u32 = 1;

/// How one commit went, by the compositor's `wp_presentation` feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTiming {
    /// The commit's number (counting every frame commit of the
    /// presenter from 1: [`PresentStats::presented`](super::PresentStats::presented)
    /// after it).
    pub commit: u64,
    /// When it was committed, in nanoseconds of `CLOCK_MONOTONIC`.
    pub committed_ns: u64,
    /// When the user wanted it shown ([`Presenter::set_target`](super::Presenter::set_target)),
    /// in nanoseconds of the presentation clock.
    pub target_ns: Option<u64>,
    /// What the compositor said.
    pub outcome: Outcome,
}

/// What became of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Shown: when its first pixel left for the display, in nanoseconds
    /// of the presentation clock ([`Presenter::presentation_clock`](super::Presenter::presentation_clock)),
    /// the output's refresh period (0: unknown) and how
    /// (`wp_presentation_feedback.kind`: vsync 0x1, hw_clock 0x2,
    /// hw_completion 0x4, zero_copy 0x8).
    Presented {
        /// Presentation time.
        time_ns: u64,
        /// Refresh period.
        refresh_ns: u32,
        /// `kind` flags.
        flags: u32,
    },
    /// Replaced by a later commit before it was shown.
    Discarded,
}

/// Timings and counters, in [`State`].
#[derive(Debug, Default)]
pub(crate) struct Timings {
    /// The compositor's presentation clock (`clock_id`).
    pub(super) clock: Option<u32>,
    pub(super) done: VecDeque<FrameTiming>,
    pub(super) presented: u64,
    pub(super) discarded: u64,
    /// Presented with the zero_copy flag (the buffer scanned out, or
    /// shown with no compositor copy).
    pub(super) zero_copy: u64,
    /// The refresh period the last `presented` reported (0: unknown or
    /// variable).
    pub(super) refresh_ns: u32,
}

impl Timings {
    fn push(&mut self, timing: FrameTiming) {
        if self.done.len() >= MAX_TIMINGS {
            self.done.pop_front();
        }
        self.done.push_back(timing);
    }
}

/// What a feedback object carries until its answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    pub(super) commit: u64,
    pub(super) committed_ns: u64,
    pub(super) target_ns: Option<u64>,
}

/// Now in nanoseconds of `CLOCK_MONOTONIC` (what
/// [`Presenter::from_monotonic`](super::Presenter::from_monotonic) takes):
/// a caller with another clock samples both to relate them.
pub fn monotonic_ns() -> u64 {
    now_ns(rustix::time::ClockId::Monotonic)
}

fn now_ns(clock: rustix::time::ClockId) -> u64 {
    let t = rustix::time::clock_gettime(clock);
    (t.tv_sec as u64).saturating_mul(1_000_000_000) + t.tv_nsec as u64
}

/// `monotonic_ns` (a `CLOCK_MONOTONIC` time) on the presentation clock
/// `clock_id`, by the two clocks' offset now; `None` for a clock this
/// process cannot read (the protocol allows any `clockid_t`).
pub(super) fn from_monotonic(monotonic_ns: u64, clock_id: u32) -> Option<u64> {
    use rustix::time::ClockId;
    let clock = match clock_id {
        0 => ClockId::Realtime,
        1 => return Some(monotonic_ns),
        4 => ClockId::MonotonicRaw,
        7 => ClockId::Boottime,
        _ => return None,
    };
    let (mono, other) = (self::monotonic_ns(), now_ns(clock));
    Some((monotonic_ns as i128 + other as i128 - mono as i128).max(0) as u64)
}

/// Asks for the feedback of the commit about to be made.
pub(super) fn request(presentation: &WpPresentation, pending: Pending, surface: &WlSurface, qh: &QueueHandle<State>) {
    presentation.feedback(surface, qh, pending);
}

impl Dispatch<WpPresentation, ()> for State {
    fn event(
        state: &mut Self,
        _: &WpPresentation,
        event: wp_presentation::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wp_presentation::Event::ClockId { clk_id } = event {
            state.timings.clock = Some(clk_id);
        }
    }
}

impl Dispatch<WpPresentationFeedback, Pending> for State {
    fn event(
        state: &mut Self,
        _: &WpPresentationFeedback,
        event: wp_presentation_feedback::Event,
        pending: &Pending,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        let outcome = match event {
            wp_presentation_feedback::Event::Presented {
                tv_sec_hi,
                tv_sec_lo,
                tv_nsec,
                refresh,
                flags,
                ..
            } => {
                let secs = (u64::from(tv_sec_hi) << 32) | u64::from(tv_sec_lo);
                let flags = match flags {
                    WEnum::Value(k) => k.bits(),
                    WEnum::Unknown(bits) => bits,
                };
                state.timings.presented += 1;
                state.timings.refresh_ns = refresh;
                if flags & Kind::ZeroCopy.bits() != 0 {
                    state.timings.zero_copy += 1;
                }
                Outcome::Presented {
                    time_ns: secs.saturating_mul(1_000_000_000).saturating_add(u64::from(tv_nsec)),
                    refresh_ns: refresh,
                    flags,
                }
            }
            wp_presentation_feedback::Event::Discarded => {
                state.timings.discarded += 1;
                Outcome::Discarded
            }
            // sync_output: which output; not needed.
            _ => return,
        };
        state.timings.push(FrameTiming {
            commit: pending.commit,
            committed_ns: pending.committed_ns,
            target_ns: pending.target_ns,
            outcome,
        });
    }
}
