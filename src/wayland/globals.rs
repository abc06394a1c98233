//! The registry and roundtrips with a time limit. wayland-client's
//! `registry_queue_init` and `EventQueue::roundtrip` block until the
//! compositor answers: a compositor that accepted the connection and then
//! stalls (stopped, deadlocked, swamped) would hang the caller forever.
//! Here every wait is bounded and ends in [`WaylandError::Timeout`].

use std::ops::RangeInclusive;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wayland_client::backend::{Backend, ObjectData, ObjectId, protocol::Message};
use wayland_client::protocol::{wl_callback::WlCallback, wl_display, wl_registry};
use wayland_client::{Connection, Dispatch, EventQueue, Proxy, QueueHandle};

use super::error::WaylandError;
use super::queue::lost;

/// How long connecting may wait for each of the compositor's answers (the
/// globals, the initial events, the first configure).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`Presenter::roundtrip`](super::Presenter::roundtrip) waits.
pub const ROUNDTRIP_TIMEOUT: Duration = Duration::from_secs(5);

/// One advertised global.
#[derive(Debug, Clone)]
struct Global {
    name: u32,
    interface: String,
    version: u32,
}

/// The compositor's globals, collected by the registry's own object data
/// (so no event queue needs dispatching to fill the list).
pub(crate) struct Globals {
    registry: wl_registry::WlRegistry,
    list: Arc<Mutex<Vec<Global>>>,
}

struct RegistryData(Arc<Mutex<Vec<Global>>>);

impl ObjectData for RegistryData {
    fn event(self: Arc<Self>, backend: &Backend, msg: Message<ObjectId, OwnedFd>) -> Option<Arc<dyn ObjectData>> {
        let conn = Connection::from_backend(backend.clone());
        let mut list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match wl_registry::WlRegistry::parse_event(&conn, msg) {
            Ok((
                _,
                wl_registry::Event::Global {
                    name,
                    interface,
                    version,
                },
            )) => list.push(Global {
                name,
                interface,
                version,
            }),
            Ok((_, wl_registry::Event::GlobalRemove { name })) => list.retain(|g| g.name != name),
            // A malformed message: nothing to record.
            _ => {}
        }
        None
    }

    fn destroyed(&self, _: ObjectId) {}
}

impl Globals {
    /// Gets the registry and waits (at most `timeout`) for the initial
    /// list of globals.
    pub(crate) fn new<D: 'static>(
        conn: &Connection,
        queue: &mut EventQueue<D>,
        state: &mut D,
        timeout: Duration,
    ) -> Result<Self, WaylandError> {
        let list = Arc::new(Mutex::new(Vec::new()));
        let registry = conn
            .display()
            .send_constructor(
                wl_display::Request::GetRegistry {},
                Arc::new(RegistryData(Arc::clone(&list))),
            )
            .map_err(lost)?;
        roundtrip_within(conn, queue, state, timeout, "the registry's globals")?;
        Ok(Self { registry, list })
    }

    /// Binds the global of interface `I` at the highest version in
    /// `versions` that the compositor offers; `None` if it offers none.
    pub(crate) fn bind<I, U, D>(&self, qh: &QueueHandle<D>, versions: RangeInclusive<u32>, udata: U) -> Option<I>
    where
        I: Proxy + 'static,
        U: Send + Sync + 'static,
        D: Dispatch<I, U> + 'static,
    {
        let list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        let global = list
            .iter()
            .find(|g| g.interface == I::interface().name && g.version >= *versions.start())?;
        Some(
            self.registry
                .bind(global.name, global.version.min(*versions.end()), qh, udata),
        )
    }
}

impl Globals {
    /// Whether the compositor offers a global of interface `I`.
    pub(crate) fn has<I: Proxy + 'static>(&self) -> bool {
        let list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.iter().any(|g| g.interface == I::interface().name)
    }

    /// Binds every global of interface `I` (e.g. each `wl_output`) at the
    /// highest version in `versions` offered.
    pub(crate) fn bind_all<I, D>(&self, qh: &QueueHandle<D>, versions: RangeInclusive<u32>) -> Vec<I>
    where
        I: Proxy + 'static,
        D: Dispatch<I, ()> + 'static,
    {
        let list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.iter()
            .filter(|g| g.interface == I::interface().name && g.version >= *versions.start())
            .map(|g| self.registry.bind(g.name, g.version.min(*versions.end()), qh, ()))
            .collect()
    }
}

struct SyncDone(AtomicBool);

impl ObjectData for SyncDone {
    fn event(self: Arc<Self>, _: &Backend, _: Message<ObjectId, OwnedFd>) -> Option<Arc<dyn ObjectData>> {
        self.0.store(true, Ordering::Release);
        None
    }

    fn destroyed(&self, _: ObjectId) {}
}

/// `wl_display.sync` and a wait for its `done` of at most `timeout`
/// (dispatching `queue` meanwhile, and once more after it, so the events
/// sent before the `done` have been handled); `what` names the wait in the
/// error.
pub(crate) fn roundtrip_within<D: 'static>(
    conn: &Connection,
    queue: &mut EventQueue<D>,
    state: &mut D,
    timeout: Duration,
    what: &'static str,
) -> Result<(), WaylandError> {
    let done = Arc::new(SyncDone(AtomicBool::new(false)));
    let _callback: WlCallback = conn
        .display()
        .send_constructor(wl_display::Request::Sync {}, Arc::clone(&done) as Arc<dyn ObjectData>)
        .map_err(lost)?;
    let deadline = Instant::now() + timeout;
    loop {
        read_within(
            queue,
            state,
            deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50)),
        )?;
        if done.0.load(Ordering::Acquire) {
            queue.dispatch_pending(state).map_err(lost)?;
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(WaylandError::Timeout(what, timeout));
        }
    }
}

/// Flushes, dispatches what has arrived on `queue`, and waits up to
/// `timeout` for more (reading the socket ourselves, so that this also
/// works on an application's connection, whose own queue the application
/// dispatches).
pub(crate) fn read_within<D: 'static>(
    queue: &mut EventQueue<D>,
    state: &mut D,
    timeout: Duration,
) -> Result<(), WaylandError> {
    queue.flush().map_err(lost)?;
    queue.dispatch_pending(state).map_err(lost)?;
    if let Some(guard) = queue.prepare_read() {
        let ready = crate::sys::poll_one(guard.connection_fd(), rustix::event::PollFlags::IN, timeout).map_err(lost)?;
        if ready {
            guard.read().map_err(lost)?;
        }
    }
    queue.dispatch_pending(state).map_err(lost)?;
    Ok(())
}
