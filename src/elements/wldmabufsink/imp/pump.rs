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

use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;

/// How often the thread reads the compositor's events while a frame is
/// held (without blocking: the state's lock is held only for that).
pub(super) const POLL: Duration = Duration::from_millis(2);
/// How long it waits with nothing held before it looks at its stop flag
/// again (a newly held frame wakes it at once).
pub(super) const IDLE: Duration = Duration::from_millis(100);

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
