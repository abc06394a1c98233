//! [`Presenter`]: shows `DmaBuf`s on one Wayland surface: linux-dmabuf
//! `wl_buffer`s where the compositor takes them ([`linux_dmabuf`](super::linux_dmabuf)),
//! cached per source ([`buffers`](super::buffers)), `wl_shm` where not
//! ([`shm`](super::shm): the frame's own memfd as the pool, else a counted
//! copy, else a counted conversion into XRGB8888), in our window or a
//! subsurface of an application's ([`window`](super::window)).

use std::any::Any;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use drm_fourcc::{DrmFourcc, DrmModifier};
use wayland_client::protocol::{
    wl_buffer::WlBuffer, wl_compositor::WlCompositor, wl_shm::WlShm, wl_surface::WlSurface,
};
use wayland_client::{Connection, EventQueue, Proxy, QueueHandle};
use wayland_protocols::wp::linux_dmabuf::zv1::client::{
    zwp_linux_dmabuf_feedback_v1::ZwpLinuxDmabufFeedbackV1, zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1,
};
use wayland_protocols::wp::viewporter::client::wp_viewporter::WpViewporter;

use super::buffers::CacheEntry;
use super::colour::{ColourRep, Plan};
use super::colour_management::ColourManagement;
use super::error::WaylandError;
use super::formats::FormatSet;
use super::globals::{self, ROUNDTRIP_TIMEOUT};
use super::linux_dmabuf::ImportKind;
use super::overlay::Overlays;
use super::queue::{State, lost};
use super::shm::ShmBuffer;
use super::shown::{ShownCheck, Verdict};
pub(super) use super::stats::{PresentStats, Presented, Via};
use super::sync::{Explicit, SyncMode};
use super::view::View;

mod waits;
use super::window::Window;
use crate::colour::Colorimetry;
use crate::convert;
use crate::dmabuf::{BufferId, DmaBuf, ModifierName};
use crate::sync::Fence;

/// `DMABUF_INTEROP_SYNC=implicit` keeps a presenter off explicit sync even
/// where the compositor offers it (comparisons, debugging);
/// `DMABUF_INTEROP_SYNC=explicit-sync-v1` prefers
/// `zwp_linux_explicit_synchronization_v1` over linux-drm-syncobj-v1.
pub const SYNC_ENV: &str = "DMABUF_INTEROP_SYNC";

/// Waits on the CPU for a frame's acquire fence where no explicit-sync
/// commit carries it (implicit sync, or a `wl_shm` copy); a fence that has
/// not signalled after 10 s is an error, not a hang.
fn wait_ready(acquire: &Fence) -> Result<(), WaylandError> {
    const LIMIT: Duration = Duration::from_secs(10);
    if acquire.wait(LIMIT)? {
        Ok(())
    } else {
        Err(WaylandError::Timeout("the frame's acquire fence", LIMIT))
    }
}

/// Shows `DmaBuf`s on one Wayland surface. See the module docs.
pub struct Presenter {
    pub(super) conn: Connection,
    pub(super) queue: EventQueue<State>,
    pub(super) qh: QueueHandle<State>,
    pub(super) state: State,
    // wl_compositor has no destructor request; its proxy goes with us.
    pub(super) compositor: WlCompositor,
    pub(super) shm: Option<WlShm>,
    pub(super) dmabuf: Option<ZwpLinuxDmabufV1>,
    pub(super) feedbacks: Vec<ZwpLinuxDmabufFeedbackV1>,
    pub(super) viewporter: Option<WpViewporter>,
    pub(super) window: Window,
    pub(super) cache: HashMap<BufferId, CacheEntry>,
    /// Kinds of buffer tried with `create`: accepted (`created`) or
    /// refused (`failed`). Only accepted kinds use `create_immed`, whose
    /// failure is fatal to the connection (the protocol's
    /// `invalid_wl_buffer`).
    pub(super) import_kinds: HashMap<ImportKind, bool>,
    pub(super) shm_buffers: Vec<ShmBuffer>,
    /// Whether the compositor shows the kinds it accepted (see
    /// `check_shown`).
    pub(super) shown: ShownCheck<ImportKind>,
    /// Files the compositor could not map as `wl_shm` pools (see
    /// `shm_wl_buffer_for`).
    pub(super) shm_unmappable: std::collections::HashSet<(u64, u64)>,
    pub(super) stats: PresentStats,
    /// The application's render rectangle size (embedding only).
    pub(super) render_size: Option<(u32, u32)>,
    /// Orientation, pixel aspect ratio, aspect rule.
    pub(super) view: View,
    /// `wp_presentation`, where offered: feedback for every commit.
    pub(super) presentation: Option<wayland_protocols::wp::presentation_time::client::wp_presentation::WpPresentation>,
    /// The presentation time wanted for the next commit.
    pub(super) next_target: Option<u64>,
    /// FIFO barriers and commit timestamps, where offered.
    pub(super) paced: Option<super::pacing::Paced>,
    /// The size of the last frame committed (for laying it out again).
    pub(super) last_frame: Option<(u32, u32)>,
    /// Explicit sync, where offered and usable.
    pub(super) explicit: Option<Explicit>,
    /// Why explicit sync is not used although the compositor offers it.
    pub(super) sync_fallback: Option<String>,
    /// `wp_color_representation_v1` and the colour-correction rule.
    pub(super) colour: ColourRep,
    /// `wp_color_management_v1` image descriptions.
    pub(super) colour_management: ColourManagement,
    /// Subtitles and other images above the video.
    pub(super) overlays: Overlays,
}

impl std::fmt::Debug for Presenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presenter")
            .field("stats", &self.stats)
            .field("formats", &self.state.formats)
            .finish_non_exhaustive()
    }
}

impl Presenter {
    /// Sends what is queued and waits until the compositor has processed
    /// it (and dispatches the events that came meanwhile), at most
    /// [`ROUNDTRIP_TIMEOUT`]: a compositor that stopped answering is a
    /// [`WaylandError::Timeout`].
    pub fn roundtrip(&mut self) -> Result<(), WaylandError> {
        self.roundtrip_within(ROUNDTRIP_TIMEOUT, "wl_display.sync (a roundtrip)")
    }

    pub(super) fn roundtrip_within(&mut self, timeout: Duration, what: &'static str) -> Result<(), WaylandError> {
        globals::roundtrip_within(&self.conn, &mut self.queue, &mut self.state, timeout, what)?;
        self.settle()
    }

    /// Dispatches what has arrived, waiting up to `timeout` for something
    /// (reading the socket ourselves, so that this also works on an
    /// application's connection).
    pub fn dispatch_timeout(&mut self, timeout: Duration) -> Result<(), WaylandError> {
        globals::read_within(&mut self.queue, &mut self.state, timeout)?;
        self.settle()
    }

    /// What follows every read of events: the state's
    /// ([`State::settle`]), then late import answers and the never-shown
    /// check.
    fn settle(&mut self) -> Result<(), WaylandError> {
        self.state.settle()?;
        self.apply_late_answers();
        self.check_shown();
        if std::mem::take(&mut self.state.configure_changed) {
            self.configured()?;
        }
        Ok(())
    }

    /// The never-shown check ([`ShownCheck`]) after every read. A kind the
    /// compositor accepted but does not show is demoted like a refusal:
    /// its `wl_buffer`s retired, its frames sent the `wl_shm` way from
    /// then on, and the wait for that frame callback given up, so playback
    /// goes on. It is counted (`never_shown`, `import_refusals`) once the
    /// next commit is shown; if that one is not shown either, the window
    /// is hidden and the kind goes back to linux-dmabuf.
    fn check_shown(&mut self) {
        let pending = self.state.frame_callback.is_some();
        let kind = match self.shown.check(pending, self.state.painted_at, Instant::now()) {
            None => return,
            Some(Verdict::NeverShown(_)) => {
                self.stats.import_refusals += 1;
                self.stats.never_shown += 1;
                return;
            }
            Some(Verdict::Restore(kind)) => {
                self.import_kinds.insert(kind, true);
                self.stats.hidden_restores += 1;
                self.state.frame_callback = None;
                self.state.queued_frames.clear();
                return;
            }
            Some(Verdict::Demote(kind)) => kind,
        };
        self.import_kinds.insert(kind.clone(), false);
        let stale: Vec<BufferId> = self
            .cache
            .iter()
            .filter(|(_, e)| !e.shm && e.kind == kind)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some(e) = self.cache.remove(&id) {
                e.retire(&mut self.state);
            }
        }
        self.state.frame_callback = None;
        self.state.queued_frames.clear();
    }

    /// What the compositor accepts. Re-evaluated on every feedback `done`.
    pub fn formats(&self) -> &FormatSet {
        &self.state.formats
    }

    /// True once after the preferred format set changed (feedback `done`
    /// with different tranches): renegotiate, re-pick modifiers.
    pub fn take_formats_changed(&mut self) -> bool {
        std::mem::take(&mut self.state.formats_changed)
    }

    /// Counters so far.
    pub fn stats(&self) -> PresentStats {
        PresentStats {
            feedback_presented: self.state.timings.presented,
            feedback_discarded: self.state.timings.discarded,
            feedback_zero_copy: self.state.timings.zero_copy,
            releases: self.state.releases,
            sync: self.explicit.as_ref().map_or(SyncMode::Implicit, Explicit::mode),
            release_points_signalled: self.state.release_points_signalled,
            pacing: self.pacing(),
            ..self.stats
        }
    }

    /// The surface frames go to: ours (a toplevel, or a subsurface of the
    /// application's surface when embedding).
    pub fn surface(&self) -> &WlSurface {
        &self.window.surface
    }

    /// The connection (for users that add their own objects).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The size the window manager asked for (None: ours to choose).
    pub fn configured_size(&self) -> Option<(u32, u32)> {
        self.state.toplevel_size
    }

    /// Keys pressed in our window since the last call (at most the last 64),
    /// as Linux evdev codes (layout-independent: `KEY_Q` is 16 whatever the
    /// keymap; see [`keys`](super::keys)). Always empty for a foreign surface (the
    /// application owns input) and on seats without a keyboard.
    pub fn take_keys(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.state.input.keys)
    }

    /// Whether the user closed the window.
    pub fn is_closed(&self) -> bool {
        self.state.closed
    }

    /// Why explicit sync is not used although the compositor offers a
    /// protocol for it (no DRM node with timeline syncobjs for
    /// linux-drm-syncobj-v1; no render device named for
    /// linux-explicit-synchronization-v1); `None` when it is used or not
    /// offered.
    pub fn sync_fallback(&self) -> Option<&str> {
        self.sync_fallback.as_deref()
    }

    /// Shows `buf`: linux-dmabuf when the compositor advertises its format
    /// and modifier and accepts the kind, else `wl_shm` ([`Via`]: the
    /// buffer's own memory as the pool where it can be, else a counted copy
    /// or conversion). `keepalive` (e.g. the
    /// GStreamer buffer, which keeps a pool from reusing the memory) is
    /// dropped when the compositor releases the `wl_buffer` (under
    /// explicit sync: when its release point signals). The buffer is ready
    /// when its own implicit fences say so (see [`present_with_fence`](Self::present_with_fence)).
    pub fn present(&mut self, buf: &DmaBuf, keepalive: Box<dyn Any + Send>) -> Result<Presented, WaylandError> {
        self.present_with_fence(buf, keepalive, Fence::Implicit)
    }

    /// [`present`](Self::present) with the point at which `buf`'s contents
    /// are ready. Under explicit sync it becomes the commit's acquire point
    /// (the compositor does not show the frame before it signals);
    /// [`Fence::Implicit`] means the dma-buf's own fences, exported as a
    /// sync_file where the kernel can. Without explicit sync, or for the
    /// `wl_shm` copy, the fence is waited for on the CPU first, so no path
    /// shows a frame early.
    pub fn present_with_fence(
        &mut self,
        buf: &DmaBuf,
        keepalive: Box<dyn Any + Send>,
        acquire: Fence,
    ) -> Result<Presented, WaylandError> {
        self.begin_frame()?;
        let dmabuf_ok = self.dmabuf.is_some() && self.state.formats.supports_dmabuf(buf.fourcc(), buf.modifier());
        let linear = buf.modifier() == DrmModifier::Linear;
        let shm_ok = linear && self.state.formats.supports_shm(buf.fourcc());
        // Every LINEAR frame has a path while wl_shm exists: the CPU
        // conversion into XRGB8888, which every wl_shm offers.
        let fallback_ok = linear && self.shm.is_some() && convert::can_convert(buf.fourcc());
        let plan = self.colour_plan(buf.fourcc(), buf.colorimetry(), fallback_ok);
        self.prepare_description(&buf.colorimetry())?;
        let imported = if dmabuf_ok && plan != Plan::Convert {
            match self.wl_buffer_for(buf) {
                Ok(found) => Some(found),
                // Refused by the compositor: the wl_shm paths.
                Err(WaylandError::ImportFailed { .. }) if fallback_ok => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let (wl_buffer, presented) = if let Some((b, hit)) = imported {
            if self.explicit.is_some() {
                self.set_sync_points(buf, acquire)?;
            } else {
                wait_ready(&acquire)?;
            }
            (b, Presented::LinuxDmabuf { cached: hit })
        } else if !fallback_ok {
            if self.dmabuf.is_some() {
                // Say what linux-dmabuf offers instead.
                self.check_advertised(buf)?;
            }
            return Err(WaylandError::Unsupported(buf.fourcc(), ModifierName(buf.modifier())));
        } else {
            // The compositor reads wl_shm memory on the CPU, unfenced.
            wait_ready(&acquire)?;
            if plan == Plan::Convert {
                (self.convert_dmabuf_to_shm(buf)?, Presented::Converted)
            } else if let Some((b, hit)) = self.shm_wl_buffer_for(buf)? {
                (b, Presented::ShmZeroCopy { cached: hit })
            } else if shm_ok {
                (self.copy_dmabuf_to_shm(buf)?, Presented::ShmCopy)
            } else {
                (self.convert_dmabuf_to_shm(buf)?, Presented::Converted)
            }
        };
        self.apply_colour(buf.fourcc(), &buf.colorimetry(), plan, presented.via());
        self.commit_frame(&wl_buffer, presented, buf.width(), buf.height(), keepalive)?;
        let kind = matches!(presented, Presented::LinuxDmabuf { .. }).then(|| ImportKind::of(buf));
        self.shown.committed(kind, Instant::now());
        Ok(presented)
    }

    /// Acquire and release points for the commit that attaches `buf`'s
    /// (cached) `wl_buffer`; the buffer is then held until its release
    /// point signals.
    fn set_sync_points(&mut self, buf: &DmaBuf, acquire: Fence) -> Result<(), WaylandError> {
        let (Some(explicit), Some(entry)) = (self.explicit.as_mut(), self.cache.get_mut(&buf.id())) else {
            return Ok(());
        };
        let id = entry.buffer.id();
        match explicit {
            Explicit::Syncobj(sync) => {
                let release = match &mut entry.release {
                    Some(r) => r,
                    none => none.insert(sync.release_timeline(&self.qh)?),
                };
                let point = sync.set_points(&self.window.surface, &self.qh, buf, acquire, release)?;
                let held = self.state.held.entry(id).or_default();
                held.fenced.get_or_insert_default().point = Some((release.timeline.clone(), point));
            }
            Explicit::V1(v1) => {
                let existing = self.state.held.get_mut(&id).and_then(|h| h.fenced.take());
                let held = existing.is_some();
                let mut hold = existing.unwrap_or_default();
                let set = v1.set_fences(&self.window.surface, &self.qh, buf, id.clone(), acquire, &mut hold);
                // A failure sends nothing: an earlier commit's hold stays as
                // it was, and no empty hold may free the buffer.
                if set.is_ok() || held {
                    self.state.held.entry(id).or_default().fenced = Some(hold);
                }
                set?;
            }
        }
        self.stats.explicit_sync_commits += 1;
        Ok(())
    }

    /// Takes in what arrived (releases, frame callbacks) before a frame;
    /// refuses when the window was closed.
    fn begin_frame(&mut self) -> Result<(), WaylandError> {
        self.dispatch_timeout(Duration::ZERO)?;
        if self.state.closed {
            return Err(WaylandError::Closed);
        }
        Ok(())
    }

    /// Attaches, damages, scales, asks for a frame callback and commits.
    fn commit_frame(
        &mut self,
        wl_buffer: &WlBuffer,
        presented: Presented,
        width: u32,
        height: u32,
        keepalive: Box<dyn Any + Send>,
    ) -> Result<(), WaylandError> {
        let id = wl_buffer.id();
        if presented.zero_copy() && self.state.is_held(&id) {
            self.stats.reused_before_release += 1;
        }
        if !matches!(presented, Presented::LinuxDmabuf { .. })
            && let Some(sync) = &mut self.explicit
        {
            // A wl_shm buffer on a surface with a syncobj object is the
            // protocol's unsupported_buffer error.
            sync.suspend();
        }
        self.state.held.entry(id).or_default().keep.push(keepalive);
        self.window.surface.attach(Some(wl_buffer), 0, 0);
        if self.window.surface.version() >= 4 {
            self.window.surface.damage_buffer(0, 0, i32::MAX, i32::MAX);
        } else {
            self.window.surface.damage(0, 0, i32::MAX, i32::MAX);
        }
        self.last_frame = Some((width, height));
        let layout = self.layout_for(width, height);
        self.apply_layout(layout);
        let target_ns = self.next_target.take();
        if let Some(p) = &self.presentation {
            let pending = super::timing::Pending {
                commit: self.stats.presented + 1,
                committed_ns: super::timing::monotonic_ns(),
                target_ns,
            };
            super::timing::request(p, pending, &self.window.surface, &self.qh);
        }
        if let Some(paced) = &self.paced {
            self.stats.timed_commits += u64::from(paced.before_commit(target_ns, self.state.timings.refresh_ns));
        }
        let callback = self.window.surface.frame(&self.qh, ());
        self.state.frame_callback = Some(callback.id());
        // Bounded: a compositor that withholds callbacks (a hidden
        // window) must not grow it.
        if self.state.queued_frames.len() >= 16 {
            self.state.queued_frames.pop_front();
        }
        self.state.queued_frames.push_back(callback.id());
        self.window.surface.commit();
        self.conn.flush().map_err(lost)?;
        self.stats.presented += 1;
        self.stats.cache_hits += u64::from(presented.cache_hit());
        match presented {
            Presented::LinuxDmabuf { .. } => self.stats.zero_copy += 1,
            Presented::ShmZeroCopy { .. } => {
                self.stats.zero_copy += 1;
                self.stats.shm_zero_copy += 1;
            }
            Presented::ShmCopy => self.stats.copies += 1,
            Presented::Converted => {
                self.stats.copies += 1;
                self.stats.converted += 1;
            }
        }
        Ok(())
    }

    /// Shows frame bytes from ordinary memory (e.g. a GStreamer buffer of
    /// system memory) through a counted `wl_shm` copy, converted into
    /// XRGB8888 with `colorimetry` where `wl_shm` lacks the format.
    /// `planes` holds each plane's bytes and stride.
    pub fn present_memory(
        &mut self,
        fourcc: DrmFourcc,
        width: u32,
        height: u32,
        planes: &[(&[u8], usize)],
        colorimetry: Colorimetry,
        keepalive: Box<dyn Any + Send>,
    ) -> Result<Presented, WaylandError> {
        self.begin_frame()?;
        let convertible = self.shm.is_some() && convert::can_convert(fourcc);
        let plan = self.colour_plan(fourcc, colorimetry, convertible);
        self.prepare_description(&colorimetry)?;
        let (b, presented) = if self.state.formats.supports_shm(fourcc) && plan != Plan::Convert {
            (self.copy_to_shm(fourcc, width, height, planes)?, Presented::ShmCopy)
        } else if convertible {
            (
                self.convert_to_shm(fourcc, width, height, planes, colorimetry)?,
                Presented::Converted,
            )
        } else {
            return Err(WaylandError::Unsupported(fourcc, ModifierName(DrmModifier::Linear)));
        };
        self.apply_colour(fourcc, &colorimetry, plan, presented.via());
        self.commit_frame(&b, presented, width, height, keepalive)?;
        Ok(presented)
    }
}

impl Drop for Presenter {
    fn drop(&mut self) {
        // Everything we made on the connection goes, children first (on an
        // application's connection nothing of ours may outlive us). The
        // keep-alives go with the state; the compositor may still read
        // buffers it held, which stay valid through its own references.
        if let Some(sync) = self.explicit.take() {
            sync.destroy();
        }
        for (_, e) in self.cache.drain() {
            if let Some(r) = e.release {
                r.proxy.destroy();
            }
            e.buffer.destroy();
        }
        for h in self.state.held.values_mut() {
            if let Some(b) = h.retired.take() {
                b.destroy();
            }
        }
        for b in self.shm_buffers.drain(..) {
            b.buffer.destroy();
            b.pool.destroy();
        }
        for f in self.feedbacks.drain(..) {
            f.destroy();
        }
        if let Some(p) = self.presentation.take() {
            p.destroy();
        }
        self.colour.destroy();
        self.colour_management.destroy();
        if let Some(p) = self.paced.take() {
            p.destroy();
        }
        self.overlays.destroy();
        self.window.destroy(&mut self.state);
        if let Some(v) = self.viewporter.take() {
            v.destroy();
        }
        if let Some(d) = self.dmabuf.take() {
            d.destroy();
        }
        if let Some(s) = self.shm.take()
            && s.version() >= 2
        {
            s.release();
        }
        // wl_compositor and wl_registry have no destructor request.
        let _ = self.conn.flush();
    }
}
