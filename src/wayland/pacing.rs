//! Commits timed by the compositor instead of by frame callbacks, where it
//! offers both `wp_commit_timing_manager_v1` and `wp_fifo_manager_v1`
//! (Weston 16, mutter 50): each frame's commit carries its target
//! presentation time (`set_timestamp`, in the presentation clock: the
//! compositor shows it as close to, and not before, that time), sets a
//! FIFO barrier and waits for the one before (`set_barrier` +
//! `wait_barrier`: every queued frame is shown for at least one refresh,
//! in order), and the presenter may commit the next frame before the last
//! one was shown (up to [`QUEUE_DEPTH`] frames waiting). The user then
//! commits ahead of time (the sink's render delay) rather than racing
//! frame callbacks.
//!
//! FIFO alone (KWin 6.7 offers no commit timing) is not used: it only
//! queues frames behind each other, which on the compositor stage's KWin
//! made frames later (a median 17.0 ms after their target against 6.9 ms
//! paced by frame callbacks).
//!
//! Both objects belong to the video surface and are destroyed before it.

use wayland_client::protocol::wl_surface::WlSurface;
use wayland_client::{QueueHandle, delegate_noop};
use wayland_protocols::wp::commit_timing::v1::client::{
    wp_commit_timer_v1::WpCommitTimerV1, wp_commit_timing_manager_v1::WpCommitTimingManagerV1,
};
use wayland_protocols::wp::fifo::v1::client::{wp_fifo_manager_v1::WpFifoManagerV1, wp_fifo_v1::WpFifoV1};

use super::globals::Globals;
use super::queue::State;

/// Frames committed and not yet shown (their frame callback not yet
/// done) that the compositor may hold in its FIFO queue before the
/// presenter waits: enough to commit a frame one refresh ahead while the
/// one before still waits for its refresh.
pub const QUEUE_DEPTH: usize = 2;

/// How commits are paced (see the module docs); what the stats report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pacing {
    /// Each commit waits for the previous frame's callback.
    #[default]
    FrameCallbacks,
    /// Target timestamps (`wp_commit_timer_v1`) and FIFO barriers
    /// (`wp_fifo_v1`).
    CommitTiming,
}

impl Pacing {
    /// Its name in the sink's stats.
    pub fn name(self) -> &'static str {
        match self {
            Pacing::FrameCallbacks => "frame-callbacks",
            Pacing::CommitTiming => "commit-timing",
        }
    }
}

/// The FIFO and timer objects of the video surface.
pub(super) struct Paced {
    fifo_manager: WpFifoManagerV1,
    fifo: WpFifoV1,
    timing_manager: WpCommitTimingManagerV1,
    timer: WpCommitTimerV1,
    /// The user's choice ([`Presenter::set_paced`](super::Presenter::set_paced)).
    pub(super) enabled: bool,
}

impl Paced {
    /// The objects for `surface`, where the compositor offers both
    /// protocols.
    pub(super) fn new(globals: &Globals, qh: &QueueHandle<State>, surface: &WlSurface) -> Option<Self> {
        if !(globals.has::<WpFifoManagerV1>() && globals.has::<WpCommitTimingManagerV1>()) {
            return None;
        }
        let fifo_manager: WpFifoManagerV1 = globals.bind(qh, 1..=1, ())?;
        let timing_manager: WpCommitTimingManagerV1 = globals.bind(qh, 1..=1, ())?;
        Some(Self {
            fifo: fifo_manager.get_fifo(surface, qh, ()),
            timer: timing_manager.get_timer(surface, qh, ()),
            fifo_manager,
            timing_manager,
            enabled: true,
        })
    }

    /// What pacing the next commits get.
    pub(super) fn mode(&self) -> Pacing {
        if self.enabled {
            Pacing::CommitTiming
        } else {
            Pacing::FrameCallbacks
        }
    }

    /// Before a frame's commit: the FIFO barrier and, with a target, its
    /// timestamp, `refresh_ns` / 2 early (the refresh nearest the target
    /// shows it: a frame is never shown before its timestamp, so at the
    /// target itself it would come anywhere up to a whole refresh late).
    /// True when a timestamp was set.
    pub(super) fn before_commit(&self, target_ns: Option<u64>, refresh_ns: u32) -> bool {
        if !self.enabled {
            return false;
        }
        self.fifo.set_barrier();
        self.fifo.wait_barrier();
        match target_ns {
            Some(ns) => {
                let (hi, lo, nsec) = timestamp(ns.saturating_sub(u64::from(refresh_ns / 2)));
                self.timer.set_timestamp(hi, lo, nsec);
                true
            }
            None => false,
        }
    }

    /// Destroys the objects (before their surface).
    pub(super) fn destroy(self) {
        self.fifo.destroy();
        self.fifo_manager.destroy();
        self.timer.destroy();
        self.timing_manager.destroy();
    }
}

/// `set_timestamp`'s (tv_sec_hi, tv_sec_lo, tv_nsec) for `ns` nanoseconds
/// (tv_nsec always below 10^9: anything else is the fatal
/// `invalid_timestamp`).
pub(super) fn timestamp(ns: u64) -> (u32, u32, u32) {
    let secs = ns / 1_000_000_000;
    ((secs >> 32) as u32, secs as u32, (ns % 1_000_000_000) as u32)
}

delegate_noop!(State: ignore WpFifoManagerV1);
delegate_noop!(State: ignore WpFifoV1);
delegate_noop!(State: ignore WpCommitTimingManagerV1);
delegate_noop!(State: ignore WpCommitTimerV1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_split_into_the_protocols_fields() {
        assert_eq!(timestamp(0), (0, 0, 0));
        assert_eq!(timestamp(1_999_999_999), (0, 1, 999_999_999));
        let ns = ((1u64 << 32) + 5) * 1_000_000_000 + 7;
        assert_eq!(timestamp(ns), (1, 5, 7));
    }
}
