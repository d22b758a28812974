//! Conversions shared by the bindings: core errors to Python exceptions, signal checks between
//! chunks of long work, and index buffers to NumPy arrays.

use numpy::{Element, IntoPyArray, PyArray1, PyArrayMethods};
use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyValueError};
use pyo3::prelude::*;

use crate::util::buffer::IndexVec;
use crate::util::error::Error;

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::InvalidArgument(msg) => PyValueError::new_err(msg),
            Error::Alloc { .. } => PyMemoryError::new_err(e.to_string()),
            Error::Interrupted => PyKeyboardInterrupt::new_err(()),
        }
    }
}

/// The core's interruption callback for Python: it runs Python's signal handlers (Ctrl-C) and
/// keeps the exception one raised, which [`Signals::raise`] then raises instead of
/// [`Error::Interrupted`].
#[derive(Default)]
pub(crate) struct Signals {
    pending: Option<PyErr>,
}

impl Signals {
    /// Runs the signal handlers (taking the GIL for a moment); `true` if one raised.
    pub(crate) fn poll(&mut self) -> bool {
        match Python::attach(|py| py.check_signals()) {
            Ok(()) => false,
            Err(e) => {
                self.pending = Some(e);
                true
            }
        }
    }

    /// The core's result as a Python one: an interruption raises the signal handler's
    /// exception (`KeyboardInterrupt` when there is none).
    pub(crate) fn raise<T>(self, result: Result<T, Error>) -> PyResult<T> {
        match (result, self.pending) {
            (Ok(v), _) => Ok(v),
            (Err(Error::Interrupted), Some(e)) => Err(e),
            (Err(e), _) => Err(e.into()),
        }
    }
}

/// Runs `work` with the GIL released, giving it the interruption callback that answers Ctrl-C.
pub(crate) fn detached<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send,
    F: Send + FnOnce(&mut dyn FnMut() -> bool) -> Result<T, Error>,
{
    let mut signals = Signals::default();
    let result = py.detach(|| work(&mut || signals.poll()));
    signals.raise(result)
}

pub(crate) fn owned_array(py: Python<'_>, v: IndexVec) -> Bound<'_, PyAny> {
    match v {
        IndexVec::U32(v) => v.into_pyarray(py).into_any(),
        IndexVec::I64(v) => v.into_pyarray(py).into_any(),
    }
}

/// The indices an epoch computed, as a read-only NumPy array that owns them.
pub(crate) fn owned_readonly_array(py: Python<'_>, v: IndexVec) -> Bound<'_, PyAny> {
    fn frozen<'py, T: Element>(arr: Bound<'py, PyArray1<T>>) -> Bound<'py, PyAny> {
        arr.readwrite().make_nonwriteable();
        arr.into_any()
    }
    match v {
        IndexVec::U32(v) => frozen(v.into_pyarray(py)),
        IndexVec::I64(v) => frozen(v.into_pyarray(py)),
    }
}
