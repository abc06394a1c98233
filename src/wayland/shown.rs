//! The never-shown check: whether the compositor really shows a kind of
//! linux-dmabuf buffer it accepted.
//!
//! A compositor may answer `created` for a buffer it then never shows
//! (Weston 16 with some NV12 imports in a VM). The Presenter follows the
//! first commit of each kind (an `ImportKind`): its frame callback confirms
//! the kind for good; a kind whose commit is still not shown after
//! [`NEVER_SHOWN_TIMEOUT`] of our window being painted, or
//! [`FIRST_PAINT_TIMEOUT`] where the window never was, is demoted like a
//! refusal (the Presenter retires its `wl_buffer`s and sends its frames the
//! `wl_shm` way). Pure bookkeeping: the clock readings come in, a verdict
//! goes out, so the rule is unit-tested here without a compositor.

use std::collections::HashSet;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How long the first commit of a kind of linux-dmabuf buffer may wait for
/// its frame callback, once the compositor paints our window, before the
/// kind counts as never shown (a wrong demotion only costs the `wl_shm`
/// way). The clock starts at the later of the commit and the window's
/// first paint (the first frame callback of ours: the area's first commit
/// asks for one): a new window's first paint is slow where the compositor
/// compiles its shaders on an emulated CPU, and that is no fault of the
/// buffer. 5 s: mutter 50 in the VM stage (TCG) paints the area at once but
/// shows the first udmabuf frame only 2.5-3 s later.
pub const NEVER_SHOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a kind's first commit may wait where the compositor has not
/// painted our window at all (no frame callback of ours yet: an embedded
/// window, or an area the video covers on a compositor that skips occluded
/// surfaces) before the kind counts as never shown.
pub const FIRST_PAINT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which kinds were seen shown, and the one commit being watched. `K`: a
/// kind of buffer (the Presenter's `ImportKind`).
#[derive(Debug)]
pub(super) struct ShownCheck<K> {
    /// The first commit of a kind not yet seen shown, and when.
    unconfirmed: Option<(K, Instant)>,
    /// Kinds whose commit was shown (a frame callback came).
    confirmed: HashSet<K>,
}

impl<K> Default for ShownCheck<K> {
    fn default() -> Self {
        Self {
            unconfirmed: None,
            confirmed: HashSet::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> ShownCheck<K> {
    /// A linux-dmabuf commit of `kind` went out at `now`: watched if the
    /// kind is not confirmed yet and no other commit is being watched.
    pub(super) fn committed(&mut self, kind: K, now: Instant) {
        if self.unconfirmed.is_none() && !self.confirmed.contains(&kind) {
            self.unconfirmed = Some((kind, now));
        }
    }

    /// The verdict at `now`: `frame_pending` says whether the watched
    /// commit's frame callback is still awaited, `painted_at` when our
    /// window was first painted. Confirms the kind when its callback came;
    /// returns the kind to demote when it waited too long.
    pub(super) fn check(&mut self, frame_pending: bool, painted_at: Option<Instant>, now: Instant) -> Option<K> {
        let (kind, since) = self.unconfirmed.as_ref()?;
        if !frame_pending {
            self.confirmed.insert(kind.clone());
            self.unconfirmed = None;
            return None;
        }
        let late = match painted_at {
            Some(painted) => now.saturating_duration_since(painted.max(*since)) >= NEVER_SHOWN_TIMEOUT,
            None => now.saturating_duration_since(*since) >= FIRST_PAINT_TIMEOUT,
        };
        if late {
            self.unconfirmed.take().map(|(k, _)| k)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NV12: &str = "NV12 LINEAR udmabuf";
    const XRGB: &str = "XRGB8888 LINEAR memfd";

    #[test]
    fn a_frame_callback_confirms_the_kind_for_good() {
        let t0 = Instant::now();
        let mut check = ShownCheck::default();
        check.committed(NV12, t0);
        assert_eq!(check.check(false, Some(t0), t0), None);
        // Confirmed: a later commit of the kind is not watched again.
        check.committed(NV12, t0);
        assert_eq!(check.check(true, Some(t0), t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn the_clock_starts_at_the_later_of_commit_and_first_paint() {
        let t0 = Instant::now();
        let mut check = ShownCheck::default();
        check.committed(NV12, t0);
        // Painted 3 s after the commit: 5 s from then, not from the commit.
        let painted = Some(t0 + Duration::from_secs(3));
        assert_eq!(check.check(true, painted, t0 + Duration::from_secs(7)), None);
        assert_eq!(check.check(true, painted, t0 + Duration::from_secs(8)), Some(NV12));
        // Demoted once: nothing is watched any more.
        assert_eq!(check.check(true, painted, t0 + Duration::from_secs(20)), None);
    }

    #[test]
    fn an_unpainted_window_waits_the_first_paint_timeout() {
        let t0 = Instant::now();
        let mut check = ShownCheck::default();
        check.committed(XRGB, t0);
        assert_eq!(check.check(true, None, t0 + NEVER_SHOWN_TIMEOUT), None);
        assert_eq!(check.check(true, None, t0 + FIRST_PAINT_TIMEOUT), Some(XRGB));
    }

    #[test]
    fn one_commit_is_watched_at_a_time() {
        let t0 = Instant::now();
        let mut check = ShownCheck::default();
        check.committed(NV12, t0);
        check.committed(XRGB, t0 + Duration::from_secs(1));
        assert_eq!(check.check(true, Some(t0), t0 + NEVER_SHOWN_TIMEOUT), Some(NV12));
        // The second kind was never watched; its next commit is.
        check.committed(XRGB, t0 + Duration::from_secs(6));
        assert_eq!(check.check(false, Some(t0), t0 + Duration::from_secs(6)), None);
    }
}
