//! The core's error type and its one interruption convention. The bindings map each variant to
//! a Python exception.
//!
//! Long work takes `interrupted: &mut dyn FnMut() -> bool` and calls it every few milliseconds;
//! `true` stops the work with [`Error::Interrupted`] (the bindings then raise what Python's
//! signal handler raised, e.g. `KeyboardInterrupt`).

use std::fmt;

/// Everything the core can refuse to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// An argument outside its accepted range (Python `ValueError`).
    InvalidArgument(String),
    /// A buffer of `bytes` bytes could not be allocated (Python `MemoryError`).
    Alloc { bytes: u128 },
    /// Long work or a wait was stopped by the caller's `interrupted` (Python: the exception its
    /// signal handler raised).
    Interrupted,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(msg) => f.write_str(msg),
            Error::Alloc { bytes } => write!(
                f,
                "cannot allocate {bytes} bytes for the index buffer; use a smaller dataset, \
                 more replicas, or permutation=\"lazy\""
            ),
            Error::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for an `InvalidArgument` error.
pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

/// Calls `interrupted` once: `Err(Error::Interrupted)` if it asks to stop.
#[inline]
pub fn poll(interrupted: &mut dyn FnMut() -> bool) -> Result<(), Error> {
    if interrupted() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}
