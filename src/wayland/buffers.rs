//! The `wl_buffer` cache and keep-alives: one `wl_buffer` per source
//! identity ([`BufferId`], never the fd number), reused across frames. A
//! frame's keep-alive (e.g. its GStreamer buffer) is dropped only on
//! `wl_buffer.release`, so a producer never writes into a buffer the
//! compositor still reads; a `wl_buffer` we no longer want is destroyed
//! only once the compositor released it (else its release never comes and
//! its keep-alives are held forever).

use std::time::{Duration, Instant};

use crate::sync::Fence;

use wayland_client::protocol::wl_buffer::{self, WlBuffer};
use wayland_client::{Connection, Dispatch, Proxy, QueueHandle};

use super::error::WaylandError;
use super::linux_dmabuf::ImportKind;
use super::presenter::Presenter;
use super::queue::State;
use super::sync::SharedTimeline;
use crate::dmabuf::{DmaBuf, WeakDmaBuf};

/// Where a presented buffer stands ([`Presenter::take_release`]).
#[derive(Debug)]
pub enum Release {
    /// The compositor does not hold it: write away.
    Free,
    /// Handed back: write only after this fence (the compositor's last
    /// read of it) has signalled.
    After(Fence),
    /// Still the compositor's, with no fence yet to wait on.
    Held,
}

/// A cached `wl_buffer` and the source it shows.
pub(super) struct CacheEntry {
    pub(super) source: WeakDmaBuf,
    pub(super) buffer: WlBuffer,
    /// The buffer's own release timeline (explicit sync), made at its
    /// first commit.
    pub(super) release: Option<SharedTimeline>,
    /// A `wl_shm` buffer over the source's memory (never given explicit
    /// sync points), not a linux-dmabuf one.
    pub(super) shm: bool,
    /// The source's kind (a never-shown kind's entries are dropped).
    pub(super) kind: ImportKind,
}

impl CacheEntry {
    /// Retires the `wl_buffer` (see [`State::retire`]) and destroys our
    /// release timeline's proxy (points already set stay in force).
    pub(super) fn retire(self, state: &mut State) {
        if let Some(r) = self.release {
            r.proxy.destroy();
        }
        state.retire(self.buffer);
    }
}

impl Presenter {
    /// The cached `wl_buffer` for `buf` (one per source identity), and
    /// whether it was a hit. On a miss a new one is made
    /// ([`create_buffer_checked`](Self::create_buffer_checked) for a kind of
    /// buffer the compositor has not accepted yet, `create_immed` after):
    /// a buffer the compositor refuses is a [`WaylandError::ImportFailed`]
    /// instead of a protocol error that ends the connection.
    pub fn wl_buffer_for(&mut self, buf: &DmaBuf) -> Result<(WlBuffer, bool), WaylandError> {
        self.purge_dead();
        match self.cache.get(&buf.id()) {
            Some(e) if !e.shm => return Ok((e.buffer.clone(), true)),
            // A wl_shm buffer over this source: its kind was refused (or
            // never shown), so it is no linux-dmabuf one (nor may it carry
            // explicit-sync requests: `unsupported_buffer`, fatal).
            Some(_) => return Err(Self::import_failed(buf)),
            None => {}
        }
        let buffer = self.import(buf)?;
        self.cache_new(buf, buffer.clone(), false);
        Ok((buffer, false))
    }

    /// Caches a new `wl_buffer` made for `buf` (linux-dmabuf, or `shm`: a
    /// `wl_shm` buffer over its memory) and counts it.
    pub(super) fn cache_new(&mut self, buf: &DmaBuf, buffer: WlBuffer, shm: bool) {
        self.stats.wl_buffers_created += 1;
        self.cache.insert(
            buf.id(),
            CacheEntry {
                source: buf.downgrade(),
                buffer,
                release: None,
                shm,
                kind: ImportKind::of(buf),
            },
        );
    }

    /// Drops the cached `wl_buffer` of `buf`, if any (the next use makes a
    /// new one). For callers that know a source will not come back. A
    /// buffer the compositor still holds is destroyed on its release.
    pub fn forget(&mut self, buf: &DmaBuf) {
        if let Some(e) = self.cache.remove(&buf.id()) {
            e.retire(&mut self.state);
        }
    }

    /// Drops the `wl_buffer`s whose source `DmaBuf` is gone (those the
    /// compositor still holds are destroyed on their release).
    pub fn purge_dead(&mut self) {
        let dead: Vec<_> = self
            .cache
            .iter()
            .filter(|(_, e)| !e.source.is_alive())
            .map(|(id, _)| id.clone())
            .collect();
        for id in dead {
            if let Some(e) = self.cache.remove(&id) {
                e.retire(&mut self.state);
            }
        }
    }

    /// `wl_buffer`s in the cache.
    pub fn cached_buffers(&self) -> usize {
        self.cache.len()
    }

    /// `wl_buffer`s dropped from the cache that wait for their release to
    /// be destroyed.
    pub fn retired_buffers(&self) -> usize {
        self.state.retired_count()
    }

    /// Whether the compositor still holds the `wl_buffer` last made for
    /// `buf` (then nothing may write into `buf`).
    pub fn is_busy(&self, buf: &DmaBuf) -> bool {
        self.cache
            .get(&buf.id())
            .is_some_and(|e| self.state.is_held(&e.buffer.id()))
    }

    /// Dispatches until the compositor released `buf`, or `timeout`.
    pub fn wait_released(&mut self, buf: &DmaBuf, timeout: Duration) -> Result<(), WaylandError> {
        let deadline = Instant::now() + timeout;
        while self.is_busy(buf) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(WaylandError::Timeout("wl_buffer.release", timeout));
            }
            self.dispatch_timeout(left.min(Duration::from_millis(20)))?;
        }
        Ok(())
    }

    /// Hands `buf` back early under explicit sync: once the compositor has
    /// sent everything about its release (release events in, release point
    /// submitted) but before that has signalled, the buffer is given up
    /// here (its keep-alives dropped) and the fence returned, for the
    /// producer to wait on on its GPU (a Vulkan semaphore import) instead
    /// of on the CPU. [`Release::Held`] while the compositor has not said,
    /// or under implicit sync (then [`wait_released`](Self::wait_released)).
    pub fn take_release(&mut self, buf: &DmaBuf) -> Result<Release, WaylandError> {
        self.dispatch_timeout(Duration::ZERO)?;
        let Some(id) = self.cache.get(&buf.id()).map(|e| e.buffer.id()) else {
            return Ok(Release::Free);
        };
        if !self.state.is_held(&id) {
            return Ok(Release::Free);
        }
        let Some(hold) = self.state.held.get_mut(&id).and_then(|h| h.fenced.as_mut()) else {
            return Ok(Release::Held);
        };
        match hold.as_fence()? {
            None => Ok(Release::Held),
            Some(fence) => {
                self.state.release_points_signalled += 1;
                self.state.free(&id);
                Ok(Release::After(fence))
            }
        }
    }

    /// What a producer reusing `buf` must wait for before writing into it:
    /// its release fence where [`take_release`](Self::take_release) hands
    /// one back early (for the producer's GPU to wait on), else
    /// [`Fence::Implicit`] once the compositor released it, waited for here
    /// at most `timeout`.
    pub fn writable_after(&mut self, buf: &DmaBuf, timeout: Duration) -> Result<Fence, WaylandError> {
        match self.take_release(buf)? {
            Release::Free => Ok(Fence::Implicit),
            Release::After(fence) => Ok(fence),
            Release::Held => {
                self.wait_released(buf, timeout)?;
                Ok(Fence::Implicit)
            }
        }
    }

    /// Frames the compositor still holds (their keep-alives are alive).
    pub fn buffers_in_flight(&self) -> usize {
        self.state.held.values().filter(|h| !h.keep.is_empty()).count()
    }
}

impl Dispatch<WlBuffer, ()> for State {
    fn event(
        state: &mut Self,
        buffer: &WlBuffer,
        event: wl_buffer::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_buffer::Event::Release = event {
            state.released(buffer);
        }
    }
}
