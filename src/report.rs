//! [`Report`]: an error with its whole chain of causes, for the places
//! that show an error to a person (element messages, logs, the examples).
//!
//! The crate's error types follow the convention of `std::error::Error`:
//! each `Display` says what went wrong at its own level only and hands
//! the cause on through [`source`](std::error::Error::source), so a
//! wrapped error is never printed twice. `Report` joins the levels with
//! `": "`.
//!
//! ```
//! use dmabuf_interop::Report;
//! use dmabuf_interop::sync::FenceError;
//!
//! let err = FenceError::Poll(rustix::io::Errno::INVAL);
//! assert_eq!(err.to_string(), "poll on a sync_file failed");
//! assert!(Report(&err).to_string().starts_with("poll on a sync_file failed: "));
//! ```

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources, `": "` between them.
#[derive(Clone, Copy)]
pub struct Report<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn every_level_is_printed_once() {
        let e = Outer(Inner(std::io::Error::other("root")));
        assert_eq!(e.to_string(), "outer");
        assert_eq!(Report(&e).to_string(), "outer: inner: root");
    }

    #[test]
    fn an_error_without_a_source_is_its_message() {
        let e = std::io::Error::other("alone");
        assert_eq!(Report(&e).to_string(), "alone");
    }
}
