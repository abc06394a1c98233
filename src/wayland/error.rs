//! Errors of the Wayland adapter.

use std::time::Duration;

use drm_fourcc::DrmFourcc;

use super::formats::FormatTableError;
use crate::dmabuf::ModifierName;
use crate::mapping::MapError;

/// Why something could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum WaylandError {
    /// No connection to the compositor.
    #[error("cannot connect to the Wayland compositor: {0}")]
    Connect(String),
    /// A global the operation needs is not offered.
    #[error("the compositor does not offer {0}")]
    MissingGlobal(&'static str),
    /// The compositor did not advertise (fourcc, modifier) for linux-dmabuf;
    /// nothing was sent.
    #[error(
        "{fourcc:?} with modifier {modifier} is not advertised by the compositor's linux-dmabuf (v{version}); it offers: {offered}"
    )]
    NotAdvertised {
        /// The buffer's format.
        fourcc: DrmFourcc,
        /// The buffer's modifier.
        modifier: ModifierName,
        /// Bound linux-dmabuf version (0: not offered).
        version: u32,
        /// What it offers for that fourcc.
        offered: String,
    },
    /// Neither linux-dmabuf nor `wl_shm` can show this format.
    #[error("neither linux-dmabuf nor wl_shm of this compositor takes {0:?} (modifier {1})")]
    Unsupported(DrmFourcc, ModifierName),
    /// A plane's file is (now) smaller than the plane needs; nothing sent.
    #[error("plane {plane} needs {needed} bytes but its fd now has {fd_size} (truncated after the DmaBuf was built?)")]
    FdTooSmall {
        /// Plane index.
        plane: usize,
        /// End of the plane.
        needed: u64,
        /// Current size of the file.
        fd_size: u64,
    },
    /// The compositor refused the buffer (`zwp_linux_buffer_params_v1.failed`).
    #[error("the compositor could not import the {fourcc:?} {width}x{height} dma-buf (linux-dmabuf `failed`)")]
    ImportFailed {
        /// Format.
        fourcc: DrmFourcc,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// The feedback's format table was malformed.
    #[error(transparent)]
    FormatTable(#[from] FormatTableError),
    /// A size the protocol cannot carry or the compositor would answer
    /// with a fatal error: a width or height above `i32::MAX`, a plane
    /// whose extents pass 32 bits, a zero stride. Nothing was sent.
    #[error(
        "{what} is {value}, beyond what linux-dmabuf's 32-bit fields carry (the compositor would end the connection)"
    )]
    TooLarge {
        /// Which value.
        what: String,
        /// The value.
        value: u64,
    },
    /// The connection broke (compositor gone, protocol error).
    #[error("Wayland connection lost")]
    Connection(#[source] ConnectionLost),
    /// An acquire or release fence could not be made or read (explicit
    /// sync); nothing was committed.
    #[error("explicit sync")]
    Fence(#[from] crate::sync::FenceError),
    /// Copying into `wl_shm` failed.
    #[error("wl_shm copy")]
    Shm(#[from] ShmError),
    /// Waited too long.
    #[error("timed out after {1:?} waiting for {0}")]
    Timeout(&'static str, Duration),
    /// The user closed the window.
    #[error("the window was closed")]
    Closed,
    /// Fullscreen on an output the compositor does not have.
    #[error("no output named {name:?} (the compositor has {known:?})")]
    UnknownOutput {
        /// The name asked for.
        name: String,
        /// The outputs' names (`wl_output` v4 `name`).
        known: Vec<String>,
    },
}

/// What broke a connection ([`WaylandError::Connection`]): libwayland's
/// error (the socket, or a protocol error the compositor sent), a dispatch
/// that failed, a request on an object already gone, or a system call on
/// the connection's fd.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionLost {
    /// libwayland's error: I/O on the socket, or a protocol error.
    #[error(transparent)]
    Backend(#[from] wayland_backend::client::WaylandError),
    /// Dispatching the events failed.
    #[error(transparent)]
    Dispatch(#[from] wayland_client::DispatchError),
    /// A request on an object that is no longer alive.
    #[error("request on a dead object")]
    InvalidId(#[from] wayland_backend::client::InvalidId),
    /// A system call on the connection or on a buffer's fd.
    #[error(transparent)]
    Os(#[from] rustix::io::Errno),
}

/// Why a frame could not be copied into `wl_shm`.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// The format has no entry in the format table.
    #[error(transparent)]
    Format(#[from] crate::format::FormatError),
    /// The caller gave fewer planes than the format has.
    #[error("{given} planes given, {fourcc:?} has {needed}")]
    Planes {
        /// The format.
        fourcc: DrmFourcc,
        /// Planes given.
        given: usize,
        /// Planes the format has.
        needed: usize,
    },
    /// A plane's bytes end before its last row.
    #[error("plane {plane}: {got} bytes for {rows} rows of stride {stride}")]
    Short {
        /// Index of the plane.
        plane: usize,
        /// Bytes given.
        got: usize,
        /// Rows the frame has.
        rows: usize,
        /// The caller's stride.
        stride: usize,
    },
    /// The pool would be larger than `wl_shm` allows (`int32` sizes).
    #[error("a {width}x{height} frame needs {bytes} bytes, more than a wl_shm pool holds")]
    TooLarge {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
        /// Bytes needed.
        bytes: u64,
    },
    /// The source `DmaBuf` could not be mapped for reading.
    #[error(transparent)]
    Map(#[from] MapError),
    /// The CPU conversion into XRGB8888 refused the frame.
    #[error("converting the frame into XRGB8888")]
    Convert(#[from] crate::convert::ConvertError),
    /// Creating, sizing or mapping the pool's memfd failed.
    #[error("{op} of the pool's memfd failed")]
    Memfd {
        /// The call.
        op: &'static str,
        /// What the kernel said.
        source: rustix::io::Errno,
    },
}
