//! The connection's event side: [`State`], which every event handler
//! updates, and what follows every read of events ([`State::settle`]);
//! reading with a time limit is `globals::read_within`.

use std::any::Any;
use std::collections::HashMap;

use wayland_client::backend::ObjectId;
use wayland_client::protocol::{
    wl_buffer::WlBuffer,
    wl_callback::{self, WlCallback},
    wl_compositor::WlCompositor,
    wl_surface::WlSurface,
};
use wayland_client::{Connection, Dispatch, Proxy, QueueHandle, delegate_noop};

use super::error::WaylandError;
use super::formats::{FormatSet, FormatTableError};
use super::linux_dmabuf::FeedbackBuilder;
use super::sync::Hold;

/// Everything the event handlers update.
#[derive(Default)]
pub(crate) struct State {
    pub(super) formats: FormatSet,
    pub(super) formats_changed: bool,
    pub(super) feedback: HashMap<ObjectId, FeedbackBuilder>,
    pub(super) surface_feedback: Option<ObjectId>,
    pub(super) surface_feedback_seen: bool,
    pub(super) feedback_error: Option<FormatTableError>,
    pub(super) configured: bool,
    pub(super) toplevel_size: Option<(u32, u32)>,
    /// A configure came that the window's layout has not followed yet.
    pub(super) configure_changed: bool,
    /// The last configure said fullscreen.
    pub(super) fullscreen: bool,
    /// `wp_presentation` feedback.
    pub(super) timings: super::timing::Timings,
    /// `wl_output` names (v4), by output.
    pub(super) output_names: HashMap<ObjectId, String>,
    pub(super) closed: bool,
    /// The frame callback of the latest commit; an older one's `done` does
    /// not mean the latest frame was shown.
    pub(super) frame_callback: Option<ObjectId>,
    /// Frame callbacks of frames committed and not yet shown, oldest
    /// first (bounded: see `Presenter::commit_frame`).
    pub(super) queued_frames: std::collections::VecDeque<ObjectId>,
    /// The frame callback of our toplevel area's first commit.
    pub(super) area_callback: Option<ObjectId>,
    /// When the compositor first painted our window (the first frame
    /// callback of ours, the area's or a frame's): the never-shown clock
    /// runs from there, not from a slow first paint of a new window.
    pub(super) painted_at: Option<std::time::Instant>,
    /// The one map of `wl_buffer`s between commit and release (see
    /// [`Held`]).
    pub(super) held: HashMap<ObjectId, Held>,
    pub(super) releases: u64,
    pub(super) release_points_signalled: u64,
    pub(super) created: HashMap<ObjectId, Result<WlBuffer, ()>>,
    /// Import checks that timed out, by params object: kept until the
    /// compositor answers.
    pub(super) late_checks: HashMap<
        ObjectId,
        (
            wayland_protocols::wp::linux_dmabuf::zv1::client::zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1,
            super::linux_dmabuf::ImportKind,
        ),
    >,
    /// Their answers (accepted?), for the presenter to apply.
    pub(super) late_answers: Vec<(super::linux_dmabuf::ImportKind, bool)>,
    /// The seat's pointer and keyboard, and their events.
    pub(super) input: super::input::Input,
    /// What the compositor offers for colour.
    pub(super) colour: super::colour::ColourOffer,
    /// What its `wp_color_manager_v1` offers.
    pub(super) colour_management: super::colour_management::ColourManagementOffer,
    /// Image descriptions made, by object: pending, ready or failed.
    pub(super) descriptions: HashMap<ObjectId, super::colour_management::Status>,
}

/// A `wl_buffer`'s life between a commit and its release: what must stay
/// alive until then, how the release comes, and whether the buffer is
/// destroyed then. One entry per buffer, so the three cannot disagree.
#[derive(Default)]
pub(super) struct Held {
    /// Keep-alives of the commits (e.g. the GStreamer buffer), dropped on
    /// release; non-empty once committed ("busy").
    pub(super) keep: Vec<Box<dyn Any + Send>>,
    /// Under explicit sync, what ends the hold (a release point, or
    /// release events and their fences) instead of `wl_buffer.release`.
    pub(super) fenced: Option<Hold>,
    /// No longer wanted (dropped from a cache): destroyed once released
    /// (destroying a held buffer means its release never comes and its
    /// keep-alives are never dropped).
    pub(super) retired: Option<WlBuffer>,
}

impl State {
    /// Whether the compositor holds `id` (committed, not released).
    pub(super) fn is_held(&self, id: &ObjectId) -> bool {
        self.held.get(id).is_some_and(|h| !h.keep.is_empty())
    }

    /// Destroys `buffer` now if the compositor does not hold it, else on
    /// its release.
    pub(super) fn retire(&mut self, buffer: WlBuffer) {
        match self.held.get_mut(&buffer.id()) {
            Some(h) if !h.keep.is_empty() => h.retired = Some(buffer),
            _ => {
                self.held.remove(&buffer.id());
                buffer.destroy();
            }
        }
    }

    /// A `wl_buffer.release`. For a buffer under explicit sync it means
    /// nothing (the protocol leaves its delivery undefined; the release
    /// point decides), else the buffer is free.
    pub(super) fn released(&mut self, buffer: &WlBuffer) {
        self.releases += 1;
        if self.held.get(&buffer.id()).is_none_or(|h| h.fenced.is_none()) {
            self.free(&buffer.id());
        }
    }

    /// The compositor is done with `id`: the keep-alives go (handing the
    /// frame back to its producer) and a retired buffer is destroyed.
    pub(super) fn free(&mut self, id: &ObjectId) {
        if let Some(h) = self.held.remove(id)
            && let Some(b) = h.retired
        {
            b.destroy();
        }
    }

    /// Buffers retired but still held.
    pub(super) fn retired_count(&self) -> usize {
        self.held.values().filter(|h| h.retired.is_some()).count()
    }

    /// What follows every read of events: buffers whose release point
    /// signalled are freed, and a malformed feedback format table is the
    /// error it is.
    pub(super) fn settle(&mut self) -> Result<(), WaylandError> {
        self.poll_release_points()?;
        match self.feedback_error.take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Frees the buffers whose release point has signalled.
    pub(super) fn poll_release_points(&mut self) -> Result<(), WaylandError> {
        let mut done = Vec::new();
        for (id, held) in &mut self.held {
            if let Some(hold) = &mut held.fenced
                && hold.poll()?
            {
                done.push(id.clone());
            }
        }
        for id in done {
            self.release_points_signalled += 1;
            self.free(&id);
        }
        Ok(())
    }
}

/// A broken connection, as an error.
pub(super) fn lost(e: impl Into<super::error::ConnectionLost>) -> WaylandError {
    WaylandError::Connection(e.into())
}

delegate_noop!(State: ignore WlCompositor);
delegate_noop!(State: ignore WlSurface);

impl Dispatch<WlCallback, ()> for State {
    fn event(
        state: &mut Self,
        callback: &WlCallback,
        event: wl_callback::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_callback::Event::Done { .. } = event {
            let id = callback.id();
            state.queued_frames.retain(|q| *q != id);
            let frame = state.frame_callback.as_ref() == Some(&id);
            let area = state.area_callback.as_ref() == Some(&id);
            if frame {
                state.frame_callback = None;
            }
            if area {
                state.area_callback = None;
            }
            if frame || area {
                state.painted_at.get_or_insert_with(std::time::Instant::now);
            }
        }
    }
}
