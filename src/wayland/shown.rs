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
//! `wl_shm` way).
//!
//! A window the compositor does not paint at all sends no frame callbacks
//! either, whatever its buffers: minimised, under a fullscreen window, an
//! older kiosk-shell toplevel. So a demotion is verified: the next commit
//! (the `wl_shm` way) must be shown within [`NEVER_SHOWN_TIMEOUT`]. If it is,
//! the kind really is never shown ([`Verdict::NeverShown`], counted); if it
//! is not, the window is hidden and the kind goes back
//! ([`Verdict::Restore`]), to be watched again on its next commit. Pure
//! bookkeeping: the clock readings come in, a verdict goes out, so the rule
//! is unit-tested here without a compositor.

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
/// shows the first udmabuf frame only 2.5-3 s later. Also how long the
/// `wl_shm` commit after a demotion may wait (see the module docs).
pub const NEVER_SHOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a kind's first commit may wait where the compositor has not
/// painted our window at all (no frame callback of ours yet: an embedded
/// window, or an area the video covers on a compositor that skips occluded
/// surfaces) before the kind counts as never shown.
pub const FIRST_PAINT_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`ShownCheck::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict<K> {
    /// The watched commit waited too long: send the kind the `wl_shm` way
    /// (tentatively: the next commit says whether the window is painted).
    Demote(K),
    /// The commit after the demotion was shown: the window is painted and
    /// the kind is not, for good.
    NeverShown(K),
    /// The commit after the demotion was not shown either: the window is
    /// not painted (hidden), no fault of the kind; it goes back.
    Restore(K),
}

/// Which kinds were seen shown, and the one commit being watched. `K`: a
/// kind of buffer (the Presenter's `ImportKind`).
#[derive(Debug)]
pub(super) struct ShownCheck<K> {
    /// The first commit of a kind not yet seen shown, and when.
    unconfirmed: Option<(K, Instant)>,
    /// A demoted kind being verified, and when the first commit after the
    /// demotion went out (`None`: not yet).
    demoted: Option<(K, Option<Instant>)>,
    /// Kinds whose commit was shown (a frame callback came).
    confirmed: HashSet<K>,
    /// Verdicts that gave a frame's wait up (demotions and restores).
    gave_up: u64,
}

impl<K> Default for ShownCheck<K> {
    fn default() -> Self {
        Self {
            unconfirmed: None,
            demoted: None,
            confirmed: HashSet::new(),
            gave_up: 0,
        }
    }
}

impl<K: Clone + Eq + Hash> ShownCheck<K> {
    /// A commit went out at `now`: of a linux-dmabuf buffer of `kind`, or
    /// (`None`) the `wl_shm` way. A linux-dmabuf kind is watched if it is
    /// not confirmed yet and nothing else is being watched; the first
    /// commit after a demotion is the one that verifies it.
    pub(super) fn committed(&mut self, kind: Option<K>, now: Instant) {
        if let Some((_, since @ None)) = &mut self.demoted {
            *since = Some(now);
            return;
        }
        let Some(kind) = kind else { return };
        if self.unconfirmed.is_none() && self.demoted.is_none() && !self.confirmed.contains(&kind) {
            self.unconfirmed = Some((kind, now));
        }
    }

    /// The verdict at `now`: `frame_pending` says whether the latest
    /// commit's frame callback is still awaited, `painted_at` when our
    /// window was first painted. Confirms a watched kind when its callback
    /// came; demotes it when it waited too long; settles a demotion by the
    /// commit after it.
    pub(super) fn check(
        &mut self,
        frame_pending: bool,
        painted_at: Option<Instant>,
        now: Instant,
    ) -> Option<Verdict<K>> {
        if let Some((kind, since)) = &self.demoted {
            let since = (*since)?;
            let verdict = if !frame_pending {
                Verdict::NeverShown(kind.clone())
            } else if now.saturating_duration_since(since) >= NEVER_SHOWN_TIMEOUT {
                Verdict::Restore(kind.clone())
            } else {
                return None;
            };
            self.demoted = None;
            if matches!(verdict, Verdict::Restore(_)) {
                self.gave_up += 1;
            }
            return Some(verdict);
        }
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
        if !late {
            return None;
        }
        let (kind, _) = self.unconfirmed.take()?;
        self.demoted = Some((kind.clone(), None));
        self.gave_up += 1;
        Some(Verdict::Demote(kind))
    }

    /// How many verdicts gave a frame's wait up (a demotion, or a restore:
    /// the frame was not shown either way); a wait for a frame callback
    /// during which one came ends unshown.
    pub(super) fn waits_given_up(&self) -> u64 {
        self.gave_up
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
        check.committed(Some(NV12), t0);
        assert_eq!(check.check(false, Some(t0), t0), None);
        // Confirmed: a later commit of the kind is not watched again.
        check.committed(Some(NV12), t0);
        assert_eq!(check.check(true, Some(t0), t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn the_clock_starts_at_the_later_of_commit_and_first_paint() {
        let t0 = Instant::now();
        let mut check = ShownCheck::default();
        check.committed(Some(NV12), t0);
        // Painted 3 s after the commit: 5 s from then, not from the commit.
        let painted = Some(t0 + Duration::from_secs(3));
        assert_eq!(check.check(true, painted, t0 + Duration::from_secs(7)), None);
        assert_eq!(
            check.check(true, painted, t0 + Duration::from_secs(8)),
            Some(Verdict::Demote(NV12))
        );
        // Demoted once: nothing is watched any more.
        assert_eq!(check.check(true, painted, t0 + Duration::from_secs(20)), None);
    }

    #[test]
    fn an_unpainted_window_waits_the_first_paint_timeout() {
        let t0 = Instant::now();
        let mut check = ShownCheck::default();
        check.committed(Some(XRGB), t0);
        assert_eq!(check.check(true, None, t0 + NEVER_SHOWN_TIMEOUT), None);
        assert_eq!(
            check.check(true, None, t0 + FIRST_PAINT_TIMEOUT),
            Some(Verdict::Demote(XRGB))
        );
    }

    #[test]
    fn one_commit_is_watched_at_a_time() {
        let t0 = Instant::now();
        let mut check = ShownCheck::default();
        check.committed(Some(NV12), t0);
        check.committed(Some(XRGB), t0 + Duration::from_secs(1));
        assert_eq!(check.check(false, Some(t0), t0 + Duration::from_secs(1)), None);
        // NV12 confirmed; XRGB was never watched: its next commit is.
        check.committed(Some(XRGB), t0 + Duration::from_secs(2));
        assert_eq!(
            check.check(true, Some(t0), t0 + Duration::from_secs(7)),
            Some(Verdict::Demote(XRGB))
        );
    }

    #[test]
    fn a_shown_commit_after_the_demotion_makes_it_final() {
        let t0 = Instant::now();
        let mut check = ShownCheck::default();
        check.committed(Some(NV12), t0);
        assert_eq!(
            check.check(true, Some(t0), t0 + NEVER_SHOWN_TIMEOUT),
            Some(Verdict::Demote(NV12))
        );
        // No commit since the demotion: nothing to say yet.
        assert_eq!(check.check(true, Some(t0), t0 + Duration::from_secs(30)), None);
        // The wl_shm commit after it is shown: the window is painted.
        let t1 = t0 + Duration::from_secs(31);
        check.committed(None, t1);
        assert_eq!(check.check(true, Some(t0), t1), None);
        assert_eq!(check.check(false, Some(t0), t1), Some(Verdict::NeverShown(NV12)));
        assert_eq!(check.check(true, Some(t0), t1 + Duration::from_secs(60)), None);
    }

    #[test]
    fn a_hidden_window_gets_the_kind_back() {
        let t0 = Instant::now();
        let mut check = ShownCheck::default();
        check.committed(Some(NV12), t0);
        assert_eq!(
            check.check(true, Some(t0), t0 + NEVER_SHOWN_TIMEOUT),
            Some(Verdict::Demote(NV12))
        );
        // Neither is the wl_shm commit shown: the window is not painted.
        let t1 = t0 + Duration::from_secs(6);
        check.committed(None, t1);
        assert_eq!(check.check(true, Some(t0), t1 + Duration::from_secs(4)), None);
        assert_eq!(
            check.check(true, Some(t0), t1 + NEVER_SHOWN_TIMEOUT),
            Some(Verdict::Restore(NV12))
        );
        // Watched again from its next commit; shown once the window is.
        let t2 = t1 + Duration::from_secs(20);
        check.committed(Some(NV12), t2);
        assert_eq!(check.check(false, Some(t0), t2), None);
        check.committed(Some(NV12), t2);
        assert_eq!(check.check(true, Some(t0), t2 + Duration::from_secs(60)), None);
    }
}
