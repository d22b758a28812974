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

/// Runs between chunks of long work (with the GIL released) so that Ctrl-C interrupts it.
pub(crate) fn check_signals() -> PyResult<()> {
    Python::attach(|py| py.check_signals())
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
