//! `Reader`, the iterator a sampler hands to Python, written against the C API (stable ABI):
//! its `tp_iternext` is a bounds check, a load and `PyLong_FromUnsignedLongLong`, so iterating
//! a sampler costs about what iterating a list costs. PyO3's `__next__` machinery would add a
//! method trampoline and a borrow check to every index.
//!
//! When `tp_iternext` has to compute a chunk or wait for a streamed epoch, it releases the GIL
//! and checks for signals (Ctrl-C) every few milliseconds of waiting. Meanwhile the reader is
//! taken out of the object, so another thread or a signal handler calling `next()` on it gets
//! `RuntimeError`, and `position()` still answers. A panic (a bug) is caught at the boundary
//! and raised as `pyo3_runtime.PanicException`, as PyO3 raises it from every other entry point.
//!
//! `Reader.deferred(start)` is a reader that starts at its first `next()`: it calls `start()`
//! then (and only then), takes over the reader that returns, and from then on reads at the same
//! speed. The reader it took over answers `position()`, the length hint and `next()` for it, so
//! whoever keeps that one (a sampler's state) follows the iteration. A deferred reader refers to
//! Python objects, so it takes part in the garbage collector.

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use std::ffi::{c_int, c_uint, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use crate::bindings::convert::Signals;
use crate::epoch::order::Epoch;
use crate::epoch::reader::ChunkReader;

/// The object layout: the Python header, then the reader it owns.
#[repr(C)]
struct ReaderObject {
    ob_base: ffi::PyObject,
    /// Owned (`Box::into_raw`); null only if the object was made some other way, and while a
    /// `next()` waits for a streamed epoch (`busy`).
    reader: *mut ChunkReader,
    /// A `next()` is waiting, and running signal handlers while it does; the reader is out.
    busy: bool,
    /// `position()` and the length hint while busy (unchanged until the wait ends).
    busy_position: u64,
    busy_remaining: u64,
    /// Owned: the callable a deferred reader calls at its first `next()`; null once called.
    start: *mut ffi::PyObject,
    /// Owned: the deferred reader that took this one's reader over; null otherwise.
    adopter: *mut ffi::PyObject,
}

/// The `Reader` type, created once per process.
static READER_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// A new `Reader` over `epoch` from position `start`, computing chunks ahead on a helper
/// thread when `ahead` is true and the epoch computes its indices (lazy order, mixture).
pub fn new_reader<'py>(
    py: Python<'py>,
    epoch: Epoch,
    start: u64,
    ahead: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let mut reader = ChunkReader::new(epoch, start);
    reader.set_ahead(ahead);
    let obj = alloc_reader(py)?;
    // SAFETY: a fresh `Reader` object, not yet shared.
    unsafe { (*obj.as_ptr().cast::<ReaderObject>()).reader = Box::into_raw(Box::new(reader)) };
    Ok(obj)
}

/// A new, empty `Reader` object (no reader, no start).
fn alloc_reader(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let tp = reader_type(py)?;
    // SAFETY: `tp` is our heap type; GenericAlloc zero-fills the object, tracks it for the
    // garbage collector and takes a reference to the type, which `reader_dealloc` gives back.
    unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyType_GenericAlloc(tp.as_type_ptr(), 0)) }
}

/// The `Reader` type (created on first use).
pub fn reader_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    Ok(READER_TYPE.get_or_try_init(py, || make_type(py))?.bind(py))
}

fn make_type(py: Python<'_>) -> PyResult<Py<PyType>> {
    // The method table must outlive the type (which lives until the process ends).
    let methods: &'static mut [ffi::PyMethodDef; 4] = Box::leak(Box::new([
        ffi::PyMethodDef {
            ml_name: c"deferred".as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunction: reader_deferred,
            },
            ml_flags: ffi::METH_O | ffi::METH_CLASS,
            ml_doc: c"deferred(start, /)\n--\n\nA reader that calls ``start()`` at its first \
                      ``next()`` (and only then) and reads the Reader it returns."
                .as_ptr(),
        },
        ffi::PyMethodDef {
            ml_name: c"position".as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunction: reader_position,
            },
            ml_flags: ffi::METH_NOARGS,
            ml_doc: c"How many indices of the epoch lie before the next one.".as_ptr(),
        },
        ffi::PyMethodDef {
            ml_name: c"__length_hint__".as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunction: reader_length_hint,
            },
            ml_flags: ffi::METH_NOARGS,
            ml_doc: c"How many indices are left.".as_ptr(),
        },
        ffi::PyMethodDef::zeroed(),
    ]));
    let doc: &CStr = c"An epoch's indices from a start position, as Python ints.";
    let mut slots = [
        ffi::PyType_Slot {
            slot: ffi::Py_tp_iter,
            pfunc: ffi::PyObject_SelfIter as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_iternext,
            pfunc: reader_next as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_dealloc,
            pfunc: reader_dealloc as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_traverse,
            pfunc: reader_traverse as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_clear,
            pfunc: reader_clear as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_methods,
            pfunc: methods.as_mut_ptr().cast(),
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_doc,
            pfunc: doc.as_ptr() as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: 0,
            pfunc: ptr::null_mut(),
        },
    ];
    let mut spec = ffi::PyType_Spec {
        name: c"resumable_samplers._core.Reader".as_ptr(),
        basicsize: std::mem::size_of::<ReaderObject>() as c_int,
        itemsize: 0,
        flags: (ffi::Py_TPFLAGS_DEFAULT
            | ffi::Py_TPFLAGS_DISALLOW_INSTANTIATION
            | ffi::Py_TPFLAGS_HAVE_GC) as c_uint,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: a valid spec; the name and method table are static, the rest is copied.
    let tp = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyType_FromSpec(&mut spec))? };
    Ok(tp
        .cast_into::<PyType>()
        .map_err(|_| PyTypeError::new_err("PyType_FromSpec did not return a type"))?
        .unbind())
}

/// The reader inside `slf`, if any.
///
/// # Safety
/// `slf` is a `Reader` object and the GIL is held (so nothing else uses the reader now).
unsafe fn reader_of<'a>(slf: *mut ffi::PyObject) -> Option<&'a mut ChunkReader> {
    (*slf.cast::<ReaderObject>()).reader.as_mut()
}

/// Raises the Python exception for a caught panic; returns null.
unsafe fn raise_panic() -> *mut ffi::PyObject {
    let py = Python::assume_attached();
    pyo3::panic::PanicException::new_err(
        "internal error in resumable_samplers while reading indices",
    )
    .restore(py);
    ptr::null_mut()
}

/// A Python int for an index. Indices are below `2**63`, and CPython's signed constructor has
/// a fast path for one-digit ints that the unsigned one lacks.
#[inline(always)]
unsafe fn new_int(v: u64) -> *mut ffi::PyObject {
    match i64::try_from(v) {
        Ok(v) => ffi::PyLong_FromLongLong(v),
        Err(_) => ffi::PyLong_FromUnsignedLongLong(v),
    }
}

unsafe extern "C" fn reader_next(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let obj = slf.cast::<ReaderObject>();
    let Some(reader) = (*obj).reader.as_mut() else {
        return next_without_reader(slf);
    };
    if let Some(v) = reader.next_buffered() {
        return new_int(v);
    }
    // The slow path computes the next chunk, or waits for a streamed epoch with the GIL
    // released, checking for signals (Ctrl-C) meanwhile. Other threads and signal handlers may
    // then use this object, so the reader is taken out while it works: a nested next() raises,
    // and position() answers from the saved values.
    let raw = (*obj).reader;
    (*obj).busy_position = reader.position();
    (*obj).busy_remaining = reader.remaining();
    (*obj).busy = true;
    (*obj).reader = ptr::null_mut();
    let py = Python::assume_attached();
    let mut signals = Signals::default();
    let result = catch_unwind(AssertUnwindSafe(|| {
        py.detach(|| reader.next_index_interruptible(&mut || signals.poll()))
    }));
    (*obj).reader = raw;
    (*obj).busy = false;
    match result.map(|r| signals.raise(r)) {
        Ok(Ok(Some(v))) => new_int(v),
        Ok(Ok(None)) => ptr::null_mut(), // exhausted: StopIteration
        // A core error, or the signal handler's exception (KeyboardInterrupt, ...).
        Ok(Err(e)) => {
            e.restore(py);
            ptr::null_mut()
        }
        Err(_) => raise_panic(),
    }
}

/// `next()` of a reader that holds none: busy, taken over, deferred or made otherwise.
#[cold]
unsafe fn next_without_reader(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let obj = slf.cast::<ReaderObject>();
    if (*obj).busy {
        let msg = c"Reader is busy: next() was called again while it waits (from a signal \
                    handler or another thread)";
        ffi::PyErr_SetString(ffi::PyExc_RuntimeError, msg.as_ptr());
        return ptr::null_mut();
    }
    if !(*obj).adopter.is_null() {
        return reader_next((*obj).adopter);
    }
    if (*obj).start.is_null() {
        return ptr::null_mut(); // exhausted, or its start failed: StopIteration
    }
    // The first next() of a deferred reader. The start is taken first, so it is called once:
    // after an error the reader is exhausted, as a generator is. While `start()` runs (Python
    // code), a nested next() raises as during any other wait.
    let start = std::mem::replace(&mut (*obj).start, ptr::null_mut());
    (*obj).busy_position = 0;
    (*obj).busy_remaining = 0;
    (*obj).busy = true;
    let got = ffi::PyObject_CallObject(start, ptr::null_mut());
    (*obj).busy = false;
    ffi::Py_DECREF(start);
    if got.is_null() {
        return ptr::null_mut();
    }
    let source = got.cast::<ReaderObject>();
    if ffi::Py_TYPE(got) != ffi::Py_TYPE(slf) || (*source).reader.is_null() {
        let msg = c"start of a deferred Reader should return a Reader that holds its indices \
                    (one made by Epoch.reader)";
        ffi::PyErr_SetString(ffi::PyExc_TypeError, msg.as_ptr());
        ffi::Py_DECREF(got);
        return ptr::null_mut();
    }
    (*obj).reader = std::mem::replace(&mut (*source).reader, ptr::null_mut());
    ffi::Py_INCREF(slf);
    (*source).adopter = slf;
    ffi::Py_DECREF(got);
    reader_next(slf)
}

/// `Reader.deferred(start)`.
unsafe extern "C" fn reader_deferred(
    _cls: *mut ffi::PyObject,
    start: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let py = Python::assume_attached();
    let given = Bound::from_borrowed_ptr(py, start);
    if !given.is_callable() {
        let name = given
            .get_type()
            .name()
            .map_or_else(|_| "?".into(), |n| n.to_string());
        PyTypeError::new_err(format!(
            "start should be a callable returning a Reader, got {name}"
        ))
        .restore(py);
        return ptr::null_mut();
    }
    match alloc_reader(py) {
        Ok(obj) => {
            ffi::Py_INCREF(start);
            (*obj.as_ptr().cast::<ReaderObject>()).start = start;
            obj.into_ptr()
        }
        Err(e) => {
            e.restore(py);
            ptr::null_mut()
        }
    }
}

/// `(position, remaining)`: the reader's, those saved while a `next()` waits, or those of the
/// deferred reader that took this one's reader over.
unsafe fn counts(slf: *mut ffi::PyObject) -> (u64, u64) {
    let obj = slf.cast::<ReaderObject>();
    match reader_of(slf) {
        Some(r) => (r.position(), r.remaining()),
        None if (*obj).busy => ((*obj).busy_position, (*obj).busy_remaining),
        None if !(*obj).adopter.is_null() => counts((*obj).adopter),
        None => (0, 0),
    }
}

unsafe extern "C" fn reader_traverse(
    slf: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut c_void,
) -> c_int {
    let obj = slf.cast::<ReaderObject>();
    // Instances of a heap type visit their type.
    for p in [ffi::Py_TYPE(slf).cast(), (*obj).start, (*obj).adopter] {
        if !p.is_null() {
            let r = visit(p, arg);
            if r != 0 {
                return r;
            }
        }
    }
    0
}

unsafe extern "C" fn reader_clear(slf: *mut ffi::PyObject) -> c_int {
    let obj = slf.cast::<ReaderObject>();
    for field in [&mut (*obj).start, &mut (*obj).adopter] {
        let p = std::mem::replace(field, ptr::null_mut());
        if !p.is_null() {
            ffi::Py_DECREF(p);
        }
    }
    0
}

unsafe extern "C" fn reader_position(
    slf: *mut ffi::PyObject,
    _args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    ffi::PyLong_FromUnsignedLongLong(counts(slf).0)
}

unsafe extern "C" fn reader_length_hint(
    slf: *mut ffi::PyObject,
    _args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    ffi::PyLong_FromUnsignedLongLong(counts(slf).1)
}

unsafe extern "C" fn reader_dealloc(slf: *mut ffi::PyObject) {
    let obj = slf.cast::<ReaderObject>();
    ffi::PyObject_GC_UnTrack(slf.cast());
    reader_clear(slf);
    let reader = std::mem::replace(&mut (*obj).reader, ptr::null_mut());
    if !reader.is_null() {
        // Dropping frees two buffers and detaches a helper thread, if one is running.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(reader))));
    }
    let tp = ffi::Py_TYPE(slf);
    let free = ffi::PyType_GetSlot(tp, ffi::Py_tp_free);
    if !free.is_null() {
        let free: ffi::freefunc = std::mem::transmute(free);
        free(slf.cast());
    }
    ffi::Py_DECREF(tp.cast());
}
