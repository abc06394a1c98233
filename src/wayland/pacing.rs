//! Commits paced by the compositor instead of by frame callbacks, where it
//! offers `wp_fifo_manager_v1` (Weston 16, mutter 50, KWin 6.7): each
//! frame's commit sets a FIFO barrier and waits for the one before
//! (`set_barrier` + `wait_barrier`), so the compositor shows every queued
//! frame for at least one refresh, in order, and the presenter may commit
//! the next frame before the last one was shown (up to [`QUEUE_DEPTH`]
//! frames waiting). With `wp_commit_timing_manager_v1` each such commit
//! also carries its target presentation time (`set_timestamp`, in the
//! presentation clock): the compositor shows it as close to, and not
//! before, that time. The user then commits ahead of time (the sink's
//! render delay) rather than racing frame callbacks.
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
    /// FIFO barriers (`wp_fifo_v1`), no timestamps.
    Fifo,
    /// FIFO barriers and target timestamps (`wp_commit_timer_v1`).
    CommitTiming,
}

impl Pacing {
    /// Its name in the sink's stats.
    pub fn name(self) -> &'static str {
        match self {
            Pacing::FrameCallbacks => "frame-callbacks",
            Pacing::Fifo => "fifo",
            Pacing::CommitTiming => "commit-timing",
        }
    }
}

/// The FIFO and timer objects of the video surface.
pub(super) struct Paced {
    fifo_manager: WpFifoManagerV1,
    fifo: WpFifoV1,
    timing: Option<(WpCommitTimingManagerV1, WpCommitTimerV1)>,
    /// The user's choice ([`Presenter::set_paced`](super::Presenter::set_paced)).
    pub(super) enabled: bool,
}

impl Paced {
    /// The objects for `surface`, where the compositor offers the FIFO
    /// protocol (the timer only with it: without FIFO a timestamp would
    /// not stop frame callbacks from racing).
    pub(super) fn new(globals: &Globals, qh: &QueueHandle<State>, surface: &WlSurface) -> Option<Self> {
        let fifo_manager: WpFifoManagerV1 = globals.bind(qh, 1..=1, ())?;
        let fifo = fifo_manager.get_fifo(surface, qh, ());
        let timing = globals.bind::<WpCommitTimingManagerV1, _, _>(qh, 1..=1, ()).map(|m| {
            let timer = m.get_timer(surface, qh, ());
            (m, timer)
        });
        Some(Self {
            fifo_manager,
            fifo,
            timing,
            enabled: true,
        })
    }

    /// What pacing the next commits get.
    pub(super) fn mode(&self) -> Pacing {
        match (self.enabled, self.timing.is_some()) {
            (false, _) => Pacing::FrameCallbacks,
            (true, false) => Pacing::Fifo,
            (true, true) => Pacing::CommitTiming,
        }
    }

    /// Before a frame's commit: the FIFO barrier and, with a target, its
    /// timestamp. True when a timestamp was set.
    pub(super) fn before_commit(&self, target_ns: Option<u64>) -> bool {
        if !self.enabled {
            return false;
        }
        self.fifo.set_barrier();
        self.fifo.wait_barrier();
        match (&self.timing, target_ns) {
            (Some((_, timer)), Some(ns)) => {
                let (hi, lo, nsec) = timestamp(ns);
                timer.set_timestamp(hi, lo, nsec);
                true
            }
            _ => false,
        }
    }

    /// Destroys the objects (before their surface).
    pub(super) fn destroy(self) {
        self.fifo.destroy();
        self.fifo_manager.destroy();
        if let Some((manager, timer)) = self.timing {
            timer.destroy();
            manager.destroy();
        }
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
