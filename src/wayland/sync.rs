//! Explicit synchronisation with the compositor: `wp_linux_drm_syncobj_v1`
//! where offered, else `zwp_linux_explicit_synchronization_v1`, else the
//! dma-bufs' implicit fences.
//!
//! **linux-drm-syncobj-v1.** Where the compositor offers `wp_linux_drm_syncobj_manager_v1` and a DRM
//! node with timeline syncobjs exists (the compositor's linux-dmabuf main
//! device first), every commit of a dma-buf carries an acquire point (the
//! frame's [`Fence`]: a sync_file, a timeline point, or the dma-buf's own
//! implicit fence exported with `DMA_BUF_IOCTL_EXPORT_SYNC_FILE`; a buffer
//! with no fences at all gets a point signalled at once) and a release
//! point. Acquire points live on one timeline per surface; release points
//! on one timeline per `wl_buffer`, as the protocol recommends (the
//! compositor may signal release points out of order, and a later point
//! signals every earlier one). A buffer is handed back to its producer when
//! its release point signals, not on `wl_buffer.release`, whose delivery
//! the protocol leaves undefined.
//!
//! Protocol rules that would end the connection are kept by construction:
//! points are set only in a commit that attaches a dma-buf; before a
//! commit of a `wl_shm` copy the per-surface object is destroyed
//! (`unsupported_buffer`), and made again for the next dma-buf (one per
//! surface at a time: `surface_exists`); acquire and release points are on
//! different timelines (`conflicting_points`). The object is made only for
//! our own surface (a toplevel, or our subsurface when embedding), never
//! for one something else manages.
//!
//! **linux-explicit-synchronization-v1** (Weston), used only where the
//! compositor's linux-dmabuf feedback names a render device (Weston's
//! headless backend offers it without one, and then kills the client at
//! its first `get_release`). Each dma-buf commit
//! carries the frame's acquire fence as a sync_file (`set_acquire_fence`;
//! none where the buffer has no fences at all) and asks for a release
//! object (`get_release`); the buffer is handed back once that object said
//! `immediate_release`, or `fenced_release` and its fence has signalled.
//! `wl_buffer.release`, which the compositor still sends, no longer decides.
//! Neither request is made in a commit of a `wl_shm` copy
//! (`unsupported_buffer`, `no_buffer`).
//!
//! Without either protocol, or without a timeline-capable node for the
//! first, frames use implicit sync as before ([`SyncMode::Implicit`]).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use wayland_client::backend::ObjectId;
use wayland_client::protocol::wl_surface::WlSurface;
use wayland_client::{Connection, Dispatch, QueueHandle, delegate_noop};
use wayland_protocols::wp::linux_drm_syncobj::v1::client::{
    wp_linux_drm_syncobj_manager_v1::WpLinuxDrmSyncobjManagerV1,
    wp_linux_drm_syncobj_surface_v1::WpLinuxDrmSyncobjSurfaceV1,
    wp_linux_drm_syncobj_timeline_v1::WpLinuxDrmSyncobjTimelineV1,
};
use wayland_protocols::wp::linux_explicit_synchronization::zv1::client::{
    zwp_linux_buffer_release_v1::{self, ZwpLinuxBufferReleaseV1},
    zwp_linux_explicit_synchronization_v1::ZwpLinuxExplicitSynchronizationV1,
    zwp_linux_surface_synchronization_v1::ZwpLinuxSurfaceSynchronizationV1,
};

use super::error::WaylandError;
use super::queue::State;
use crate::dmabuf::DmaBuf;
use crate::sync::{DrmDevice, Fence, FenceError, Timeline, sync_file_merge_all, sync_file_wait};

/// How frames are synchronised with the compositor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// The dma-bufs' implicit fences (no sync protocol).
    #[default]
    Implicit,
    /// `wp_linux_drm_syncobj_v1`: acquire and release timeline points.
    DrmSyncobj,
    /// `zwp_linux_explicit_synchronization_v1`: acquire fences and
    /// release events with fences.
    ExplicitSyncV1,
}

/// What ends the compositor's hold on a `wl_buffer` under explicit sync
/// (instead of `wl_buffer.release`): every part must have signalled.
#[derive(Debug, Default)]
pub(crate) struct Hold {
    /// Release objects (explicit-sync v1) whose event has not come yet.
    pub(super) awaiting: u32,
    /// `fenced_release` fences not signalled yet.
    pub(super) fences: Vec<OwnedFd>,
    /// The release point of the latest commit (syncobj; a later point on
    /// the buffer's own timeline signals every earlier one).
    pub(super) point: Option<(Arc<Timeline>, u64)>,
}

impl Hold {
    /// Drops what has signalled; true once nothing holds the buffer.
    pub(super) fn poll(&mut self) -> Result<bool, FenceError> {
        let mut pending = Vec::new();
        for f in self.fences.drain(..) {
            if !sync_file_wait(f.as_fd(), std::time::Duration::ZERO)? {
                pending.push(f);
            }
        }
        self.fences = pending;
        if let Some((timeline, point)) = &self.point
            && timeline.is_signalled(*point)?
        {
            self.point = None;
        }
        Ok(self.awaiting == 0 && self.fences.is_empty() && self.point.is_none())
    }
}

impl Hold {
    /// The hold as one fence to wait on, once the compositor has said all
    /// it will (every release event in, the release point has its fence):
    /// `None` while it has not.
    pub(super) fn as_fence(&mut self) -> Result<Option<Fence>, FenceError> {
        if self.awaiting > 0 {
            return Ok(None);
        }
        let mut files = Vec::new();
        if let Some((timeline, point)) = &self.point {
            if !timeline.has_fence(*point)? {
                return Ok(None);
            }
            files.push(timeline.export_sync_file(*point)?);
        }
        for f in &self.fences {
            files.push(crate::sync::dup(f.as_fd(), "dup of a release fence")?);
        }
        Ok(Some(
            sync_file_merge_all(files)?.map_or(Fence::Implicit, Fence::SyncFile),
        ))
    }
}

/// The explicit-sync protocol a presenter uses.
pub(super) enum Explicit {
    /// linux-drm-syncobj-v1.
    Syncobj(DrmSyncobj),
    /// linux-explicit-synchronization-v1.
    V1(ExplicitV1),
}

impl Explicit {
    pub(super) fn mode(&self) -> SyncMode {
        match self {
            Explicit::Syncobj(_) => SyncMode::DrmSyncobj,
            Explicit::V1(_) => SyncMode::ExplicitSyncV1,
        }
    }

    /// Before a commit of a buffer without explicit sync (`wl_shm`).
    pub(super) fn suspend(&mut self) {
        if let Explicit::Syncobj(s) = self {
            s.suspend();
        }
    }

    /// Destroys everything of ours on the connection.
    pub(super) fn destroy(self) {
        match self {
            Explicit::Syncobj(s) => s.destroy(),
            Explicit::V1(v) => v.destroy(),
        }
    }
}

/// linux-explicit-synchronization-v1 state of one presenter.
pub(super) struct ExplicitV1 {
    global: ZwpLinuxExplicitSynchronizationV1,
    surface: Option<ZwpLinuxSurfaceSynchronizationV1>,
}

impl ExplicitV1 {
    pub(super) fn new(global: ZwpLinuxExplicitSynchronizationV1) -> Self {
        Self { global, surface: None }
    }

    /// Sets the acquire fence and asks for a release object for the commit
    /// that attaches `buf` (as `buffer`) on `surface`; `hold` counts the
    /// release event to wait for.
    pub(super) fn set_fences(
        &mut self,
        surface: &WlSurface,
        qh: &QueueHandle<State>,
        buf: &DmaBuf,
        buffer: ObjectId,
        acquire: Fence,
        hold: &mut Hold,
    ) -> Result<(), WaylandError> {
        // Everything that can fail comes before the first request.
        // `acquire`, or the dma-buf's implicit fence; none at all for a
        // buffer without fences.
        let fence = acquire.or_from_dmabuf(buf)?.to_sync_file()?;
        let sync = self
            .surface
            .get_or_insert_with(|| self.global.get_synchronization(surface, qh, ()));
        if let Some(fd) = &fence {
            sync.set_acquire_fence(fd.as_fd());
        }
        sync.get_release(qh, buffer);
        hold.awaiting += 1;
        Ok(())
    }

    fn destroy(self) {
        if let Some(s) = self.surface {
            s.destroy();
        }
        self.global.destroy();
    }
}

impl Dispatch<ZwpLinuxBufferReleaseV1, ObjectId> for State {
    fn event(
        state: &mut Self,
        _: &ZwpLinuxBufferReleaseV1,
        event: zwp_linux_buffer_release_v1::Event,
        buffer: &ObjectId,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        let Some(hold) = state.held.get_mut(buffer).and_then(|h| h.fenced.as_mut()) else {
            return;
        };
        hold.awaiting = hold.awaiting.saturating_sub(1);
        match event {
            zwp_linux_buffer_release_v1::Event::FencedRelease { fence } => hold.fences.push(fence),
            zwp_linux_buffer_release_v1::Event::ImmediateRelease => {}
            _ => {}
        }
    }
}

delegate_noop!(State: ignore ZwpLinuxExplicitSynchronizationV1);
delegate_noop!(State: ignore ZwpLinuxSurfaceSynchronizationV1);

/// A timeline of ours and the compositor's handle of it.
pub(super) struct SharedTimeline {
    pub(super) timeline: Arc<Timeline>,
    pub(super) proxy: WpLinuxDrmSyncobjTimelineV1,
    /// The last point used.
    pub(super) point: u64,
}

impl SharedTimeline {
    fn new(
        manager: &WpLinuxDrmSyncobjManagerV1,
        device: &Arc<DrmDevice>,
        qh: &QueueHandle<State>,
    ) -> Result<Self, FenceError> {
        let timeline = Timeline::new(device)?;
        // The compositor gets its own reference (SCM_RIGHTS copy); ours
        // closes at the end of this scope.
        let fd = timeline.export()?;
        let proxy = manager.import_timeline(fd.as_fd(), qh, ());
        Ok(Self {
            timeline,
            proxy,
            point: 0,
        })
    }

    fn next(&mut self) -> u64 {
        self.point += 1;
        self.point
    }
}

/// `point` as the protocol's (hi, lo) pair.
fn split(point: u64) -> (u32, u32) {
    ((point >> 32) as u32, point as u32)
}

/// The syncobj state of one presenter.
pub(super) struct DrmSyncobj {
    manager: WpLinuxDrmSyncobjManagerV1,
    device: Arc<DrmDevice>,
    acquire: SharedTimeline,
    /// The per-surface object; `None` after a `wl_shm` commit.
    surface: Option<WpLinuxDrmSyncobjSurfaceV1>,
}

impl DrmSyncobj {
    /// Sets up explicit sync with `manager` on a timeline-capable DRM node
    /// (the compositor's main device first). `None` (implicit sync) where
    /// there is none, with the reason.
    pub(super) fn new(
        manager: WpLinuxDrmSyncobjManagerV1,
        main_device: Option<u64>,
        qh: &QueueHandle<State>,
    ) -> Result<Self, (WpLinuxDrmSyncobjManagerV1, FenceError)> {
        let device = match DrmDevice::find(main_device) {
            Ok(d) => d,
            Err(e) => return Err((manager, e)),
        };
        let acquire = match SharedTimeline::new(&manager, &device, qh) {
            Ok(t) => t,
            Err(e) => return Err((manager, e)),
        };
        Ok(Self {
            manager,
            device,
            acquire,
            surface: None,
        })
    }

    /// A release timeline for a new `wl_buffer`.
    pub(super) fn release_timeline(&self, qh: &QueueHandle<State>) -> Result<SharedTimeline, WaylandError> {
        Ok(SharedTimeline::new(&self.manager, &self.device, qh)?)
    }

    /// Sets the acquire point (from `acquire`, or `buf`'s implicit fence)
    /// and the release point (next on `release`) for the commit that
    /// attaches `buf` on `surface`; returns the release point to wait for.
    pub(super) fn set_points(
        &mut self,
        surface: &WlSurface,
        qh: &QueueHandle<State>,
        buf: &DmaBuf,
        acquire: Fence,
        release: &mut SharedTimeline,
    ) -> Result<u64, WaylandError> {
        let point = self.acquire.next();
        let acquire = acquire.or_from_dmabuf(buf)?;
        let timeline = &self.acquire.timeline;
        match &acquire {
            Fence::SyncFile(fd) => timeline.import_sync_file(point, fd.as_fd())?,
            Fence::Timeline(src) => timeline.import_point(point, src)?,
            // Nothing to wait for: a memfd stand-in, a kernel without
            // sync_file export.
            Fence::Implicit => timeline.signal(point)?,
        }
        let sync_surface = self
            .surface
            .get_or_insert_with(|| self.manager.get_surface(surface, qh, ()));
        let (hi, lo) = split(point);
        sync_surface.set_acquire_point(&self.acquire.proxy, hi, lo);
        let release_point = release.next();
        let (hi, lo) = split(release_point);
        sync_surface.set_release_point(&release.proxy, hi, lo);
        Ok(release_point)
    }

    /// Before a commit of a buffer without explicit sync (`wl_shm`).
    pub(super) fn suspend(&mut self) {
        if let Some(s) = self.surface.take() {
            s.destroy();
        }
    }

    /// Destroys everything of ours on the connection.
    pub(super) fn destroy(self) {
        if let Some(s) = self.surface {
            s.destroy();
        }
        self.acquire.proxy.destroy();
        self.manager.destroy();
    }
}

delegate_noop!(State: ignore WpLinuxDrmSyncobjManagerV1);
delegate_noop!(State: ignore WpLinuxDrmSyncobjSurfaceV1);
delegate_noop!(State: ignore WpLinuxDrmSyncobjTimelineV1);
