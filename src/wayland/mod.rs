//! Wayland adapter (feature `wayland`): `DmaBuf`s shown as
//! `zwp_linux_dmabuf_v1` `wl_buffer`s.
//!
//! - [`FormatSet`]: what the compositor accepts. linux-dmabuf is bound at
//!   the highest version offered up to 5: v3 sends format/modifier events,
//!   v4+ sends feedback (a format table we map and validate, a main device,
//!   tranches with target device and scanout flag), re-evaluated on every
//!   `done` ([`Presenter::take_formats_changed`]).
//! - [`Presenter`]: one surface (our own `xdg_toplevel`, or an
//!   application's `wl_surface` for embedding). (fourcc, modifier) is
//!   checked against the advertised set before any request, so an
//!   unsupported buffer is a typed error, not a protocol error that kills
//!   the connection. One `wl_buffer` per source identity ([`BufferId`],
//!   never the fd number), reused across frames and destroyed when the
//!   source dies. A frame's keep-alive (e.g. its GStreamer buffer) is
//!   dropped only on `wl_buffer.release`, so a producer never writes into
//!   a buffer the compositor still reads. When linux-dmabuf or the format
//!   is missing, frames are copied into `wl_shm` (counted).
//! - [`headless`] (feature `headless`): a private headless Weston 14 with
//!   output capture, for tests, the viewer and users' CI.
//!
//! Every wait is bounded: connecting ([`CONNECT_TIMEOUT`]), roundtrips
//! ([`ROUNDTRIP_TIMEOUT`]), the first import check of a kind of buffer;
//! a compositor that stops answering is a [`WaylandError::Timeout`].
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use dmabuf_interop::DrmFourcc;
//! use dmabuf_interop::alloc::{self, Allocator};
//! use dmabuf_interop::wayland::{Presenter, Target};
//!
//! let mut presenter = Presenter::connect(Target::Toplevel {
//!     title: "video".into(),
//!     app_id: "org.example.player".into(),
//! })?;
//! let frame = alloc::best_available()?.allocate(DrmFourcc::Xrgb8888, 640, 480, 256)?;
//! // The keep-alive (here nothing) is dropped when the compositor
//! // releases the buffer.
//! let shown = presenter.present(&frame, Box::new(()))?;
//! presenter.wait_frame(Duration::from_millis(100))?;
//! println!("{:?}: {:?}", shown.via(), presenter.stats());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`BufferId`]: crate::BufferId

mod buffers;
mod colour;
mod colour_management;
mod connect;
mod error;
mod formats;
mod globals;
#[cfg(feature = "headless")]
pub mod headless;
mod input;
mod linux_dmabuf;
mod overlay;
mod pacing;
mod placement;
mod presenter;
#[cfg(feature = "headless")]
mod protocols;
mod queue;
mod shm;
mod shown;
mod stats;
mod sync;
mod timing;
mod view;
mod window;

pub use buffers::Release;
pub use colour::{ASSUMED_UNTOLD, ColourCorrection, ColourOffer};
pub use colour_management::ColourManagementOffer;
pub use error::{ConnectionLost, ShmError, WaylandError};
pub use formats::{FormatSet, FormatTableError, Tranche, parse_format_table, tranche_formats};
pub use globals::{CONNECT_TIMEOUT, ROUNDTRIP_TIMEOUT};
pub use input::{InputEvent, MAX_PENDING_INPUT, Modifiers};
pub use linux_dmabuf::MAX_DMABUF_VERSION;
pub use overlay::OverlayImage;
pub use pacing::{Pacing, QUEUE_DEPTH};
pub use presenter::{Presenter, SYNC_ENV};
pub use shown::{FIRST_PAINT_TIMEOUT, NEVER_SHOWN_TIMEOUT};
pub use stats::{PresentStats, Presented, Via};
pub use sync::SyncMode;
pub use timing::{CLOCK_MONOTONIC, FrameTiming, MAX_TIMINGS, Outcome, monotonic_ns};
pub use view::{Layout, Orientation, Rect, View, fit};
pub use wayland_client;
pub use window::Target;

/// Linux evdev key codes ([`Presenter::take_keys`]) a player usually needs
/// (from `linux/input-event-codes.h`).
pub mod keys {
    /// Escape.
    pub const KEY_ESC: u32 = 1;
    /// Q.
    pub const KEY_Q: u32 = 16;
    /// Space.
    pub const KEY_SPACE: u32 = 57;
}
pub use wayland_protocols;
