//! The held frame's committer. With `sync=true` the streaming thread does
//! not wait in `render` for the compositor: a frame that finds it not
//! ready (the last frame's callback outstanding, or the FIFO queue full)
//! is held, replacing an older held frame (which stays counted as
//! dropped), and this thread commits it as soon as the compositor is
//! ready. basesink's clock keeps the stream's time, so a compositor that
//! shows frames more slowly than the stream comes gets the newest frame at
//! each of its repaints, where a wait in `render` made the next frames
//! late and basesink dropped them before the sink saw them (waylandsink
//! does the same: it commits its staged buffer from the frame callback).
//! With `sync=false`, `render` still waits (up to `frame-timeout`): there
//! the wait is what paces an unclocked producer to the compositor.

use std::sync::Arc;
use std::sync::Condvar;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;

use crate::elements::lock;

/// How often the thread reads the compositor's events while a frame is
/// held (without blocking: the state's lock is held only for that).
pub(super) const POLL: Duration = Duration::from_millis(2);
/// How long it waits with nothing held before it looks at its stop flag
/// again (a newly held frame wakes it at once).
pub(super) const IDLE: Duration = Duration::from_millis(100);
/// How long the frame held back at EOS waits for the compositor to show
/// the one before it.
const HELD_FRAME_TIMEOUT: Duration = Duration::from_secs(2);

/// The running thread (READY to NULL).
pub(super) struct Pump {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pump {
    /// Starts the thread for `sink` (it holds the element weakly).
    pub(super) fn start(sink: &super::super::WlDmaBufSink) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let weak: glib::WeakRef<super::super::WlDmaBufSink> = sink.downgrade();
        let thread = std::thread::Builder::new()
            .name("wldmabufsink-held".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    let Some(sink) = weak.upgrade() else {
                        break;
                    };
                    let held = sink.imp().commit_held(IDLE);
                    drop(sink);
                    if held {
                        std::thread::sleep(POLL);
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it; `wake` is the condition it
    /// waits on while nothing is held. The caller holds none of the
    /// sink's locks.
    pub(super) fn stop(mut self, wake: &Condvar) {
        self.stop.store(true, Ordering::SeqCst);
        wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        // Not stopped by `stop` (an element dropped outside NULL): the
        // thread ends by itself once it sees the flag or the element gone;
        // never joined from itself.
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl super::WlDmaBufSink {
    /// The pump's step: commits the held frame if the compositor is ready
    /// for it; with nothing held, first waits up to `idle` for a frame to
    /// be held. True while a frame is still held (look again soon).
    pub(super) fn commit_held(&self, idle: Duration) -> bool {
        let mut guard = lock(&self.state);
        if guard.held.is_none() {
            guard = match self.held_ready.wait_timeout(guard, idle) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        // A flush drops the held frame (FlushStart); until then it waits.
        if self.flushing.load(Ordering::SeqCst) {
            return guard.held.is_some();
        }
        let Some(frame) = guard.held.take() else {
            return false;
        };
        let shown = self.show_in(&mut guard, &frame, Duration::ZERO, true);
        let still_held = guard.held.is_some();
        drop(guard);
        // An error (posted already) ends the stream at the next render;
        // a flush or a renegotiation only loses the held frame.
        if self.after_show(shown) == Err(gst::FlowError::Error) {
            *lock(&self.pump_failure) = Some(gst::FlowError::Error);
        }
        still_held
    }

    /// Shows the frame held back at EOS (see `State::held`), waiting up to
    /// [`HELD_FRAME_TIMEOUT`] for the compositor to show the one before.
    pub(super) fn show_held(&self) {
        let Some(frame) = lock(&self.state).held.take() else {
            return;
        };
        let _ = self.show_with(&frame, HELD_FRAME_TIMEOUT, true);
    }
}
