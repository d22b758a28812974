//! Python bindings: argument conversion, the GIL released around the work, buffers handed to
//! NumPy without a copy, and core errors mapped to Python exceptions. No algorithm lives here.

use std::sync::Arc;

use numpy::ndarray::ArrayView1;
use numpy::{Element, IntoPyArray, PyArray1, PyArrayMethods};
use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyValueError};
use pyo3::prelude::*;

use crate::buffer::IndexVec;
use crate::epoch::{lazy_randperm, randperm as core_randperm, EpochIndices, Order, ORDER_NAMES};
use crate::error::{invalid, Error};
use crate::mixture::{Mixture as CoreMixture, SourceOrder};
use crate::permutation::SWAP_REGIME_LIMIT;
use crate::py_reader::{new_reader, reader_type};
use crate::shard::{resume_point as core_resume_point, Shard};

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

fn owned_array(py: Python<'_>, v: IndexVec) -> Bound<'_, PyAny> {
    match v {
        IndexVec::U32(v) => v.into_pyarray(py).into_any(),
        IndexVec::I64(v) => v.into_pyarray(py).into_any(),
    }
}

/// A read-only NumPy view of `data` whose base object is `owner`, which keeps it alive.
fn readonly_view<'py, T: Element>(data: &[T], owner: &Bound<'py, Epoch>) -> Bound<'py, PyAny> {
    let view = ArrayView1::from(data);
    // SAFETY: `data` lives in the `Arc<EpochIndices>` of the frozen `owner`, which is never
    // mutated and is the array's base, so the memory outlives the array.
    let arr = unsafe { PyArray1::borrow_from_array(&view, owner.clone().into_any()) };
    arr.readwrite().make_nonwriteable();
    arr.into_any()
}

/// The indices an epoch computed, as a read-only NumPy array that owns them.
fn owned_readonly_array(py: Python<'_>, v: IndexVec) -> Bound<'_, PyAny> {
    fn frozen<'py, T: Element>(arr: Bound<'py, PyArray1<T>>) -> Bound<'py, PyAny> {
        arr.readwrite().make_nonwriteable();
        arr.into_any()
    }
    match v {
        IndexVec::U32(v) => frozen(v.into_pyarray(py)),
        IndexVec::I64(v) => frozen(v.into_pyarray(py)),
    }
}

/// A permutation of `[0, n)` as a NumPy array: `torch.randperm(n)` for the generator seeded
/// with `seed` (`"torch"`: torch 2.6 and later; `"torch-legacy"`: torch up to 2.5), or the lazy
/// bijection keyed by `(seed, 0)`.
#[pyfunction]
#[pyo3(signature = (n, seed, permutation="torch"))]
fn randperm<'py>(
    py: Python<'py>,
    n: u64,
    seed: u64,
    permutation: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let perm = match Order::parse(permutation, seed, 0)? {
        Order::Lazy { seed, epoch } => {
            py.detach(|| lazy_randperm::<PyErr>(n, seed, epoch, &mut check_signals))?
        }
        Order::Torch {
            seed, generation, ..
        } => py.detach(|| core_randperm::<PyErr>(n, seed, generation, &mut check_signals))?,
        Order::Identity => {
            return Err(PyValueError::new_err(
                "permutation should be one of 'torch', 'torch-legacy', 'lazy', got 'identity'",
            ))
        }
    };
    Ok(owned_array(py, perm))
}

/// How many indices rank `rank` of `num_replicas` reads after the global positions
/// `[0, offset)` of an epoch of `n` items were consumed (torch's padding rule, exactly).
#[pyfunction]
fn shard_len(n: u64, num_replicas: u64, rank: u64, offset: u64, drop_last: bool) -> PyResult<u64> {
    Ok(Shard::new(n, num_replicas, rank, offset, drop_last)?.len())
}

/// Where a job of `num_replicas` ranks resumes after the global positions `[0, consumed)`:
/// `(offset, position)`, the shard offset to build the epoch with and the position to read from.
#[pyfunction]
fn resume_point(consumed: u64, num_replicas: u64) -> PyResult<(u64, u64)> {
    Ok(core_resume_point(consumed, num_replicas)?)
}

/// Whether the orders named `a` and `b` give the same permutation of `n` items for every seed
/// and epoch.
#[pyfunction]
fn same_order(a: &str, b: &str, n: u64) -> PyResult<bool> {
    Ok(Order::same_permutation(a, b, n)?)
}

/// One rank's indices for one epoch.
#[pyclass(frozen, module = "resumable_samplers._core")]
pub struct Epoch {
    inner: Arc<EpochIndices>,
    shard: Shard,
}

impl Epoch {
    /// An epoch over indices computed elsewhere in the core (e.g. a length-grouped order).
    pub(crate) fn from_parts(inner: EpochIndices, shard: Shard) -> Self {
        Self {
            inner: Arc::new(inner),
            shard,
        }
    }
}

#[pymethods]
impl Epoch {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        n: u64,
        num_replicas: u64,
        rank: u64,
        offset: u64,
        drop_last: bool,
        permutation: &str,
        seed: u64,
        epoch: u64,
    ) -> PyResult<Self> {
        let shard = Shard::new(n, num_replicas, rank, offset, drop_last)?;
        let order = Order::parse(permutation, seed, epoch)?;
        let inner = py.detach(|| EpochIndices::build::<PyErr>(shard, order, &mut check_signals))?;
        Ok(Self {
            inner: Arc::new(inner),
            shard,
        })
    }

    fn __len__(&self) -> usize {
        self.inner.len() as usize
    }

    /// The global position consumed once every rank has read `position` indices of this
    /// epoch (the inverse of `resume_point`).
    fn consumed(&self, position: u64) -> u128 {
        self.shard.consumed(position)
    }

    /// An iterator over the indices from position `start` on, as Python ints; `position()`
    /// tells how far it got. With `ahead`, a lazy epoch's next chunk is computed on a helper
    /// thread while the current one is read.
    #[pyo3(signature = (start=0, ahead=true))]
    fn reader<'py>(slf: &Bound<'py, Self>, start: u64, ahead: bool) -> PyResult<Bound<'py, PyAny>> {
        new_reader(slf.py(), Arc::clone(&slf.get().inner), start, ahead)
    }

    /// The indices from position `start` on, as a read-only NumPy array (a view when stored).
    #[pyo3(signature = (start=0))]
    fn array<'py>(slf: &Bound<'py, Self>, start: u64) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let inner = &slf.get().inner;
        let from = start.min(inner.len()) as usize;
        Ok(match &**inner {
            EpochIndices::Stored(IndexVec::U32(v)) => readonly_view(&v[from..], slf),
            EpochIndices::Stored(IndexVec::I64(v)) => readonly_view(&v[from..], slf),
            EpochIndices::Streamed(st) => {
                let share = py.detach(|| st.wait_share::<PyErr>(&mut check_signals))?;
                readonly_view(&share[from.min(share.len())..], slf)
            }
            computed => {
                let v = py.detach(|| computed.to_vec_from::<PyErr>(start, &mut check_signals))?;
                owned_readonly_array(py, v)
            }
        })
    }
}

/// A weighted mixture of sources over a stream of positions.
#[pyclass(frozen, module = "resumable_samplers._core")]
pub struct Mixture {
    inner: Arc<CoreMixture>,
}

#[pymethods]
impl Mixture {
    /// Sources of `lengths`; segment `s` follows `weights[s]` from stream position `starts[s]`.
    #[new]
    fn new(
        lengths: Vec<u64>,
        starts: Vec<u64>,
        weights: Vec<Vec<u64>>,
        permutation: &str,
        seed: u64,
    ) -> PyResult<Self> {
        if starts.len() != weights.len() {
            return Err(invalid("starts and weights should have the same length").into());
        }
        let order = SourceOrder::parse(permutation, seed)?;
        let segments: Vec<(u64, Vec<u64>)> = starts.into_iter().zip(weights).collect();
        Ok(Self {
            inner: Arc::new(CoreMixture::new(&lengths, &segments, order)?),
        })
    }

    /// Rank `rank`'s share of epoch `epoch`: the stream positions `[epoch * n, (epoch + 1) * n)`
    /// sharded like the other epochs, resuming after the global positions `[0, offset)`.
    #[allow(clippy::too_many_arguments)]
    fn epoch(
        &self,
        n: u64,
        num_replicas: u64,
        rank: u64,
        offset: u64,
        drop_last: bool,
        epoch: u64,
    ) -> PyResult<Epoch> {
        let shard = Shard::new(n, num_replicas, rank, offset, drop_last)?;
        let start = epoch
            .checked_mul(n)
            .filter(|s| s.checked_add(n).is_some_and(|e| e < u64::MAX))
            .ok_or_else(|| invalid("(epoch + 1) * num_samples should stay below 2**64 - 1"))?;
        let inner = EpochIndices::Mixture {
            shard,
            mix: Arc::clone(&self.inner),
            start,
        };
        Ok(Epoch {
            inner: Arc::new(inner),
            shard,
        })
    }

    /// How many of the stream positions `[0, position)` drew from each source.
    fn counts(&self, position: u64) -> Vec<u64> {
        self.inner.counts(position)
    }

    /// The source that stream position `position` draws from, and its draw number there.
    fn draw(&self, position: u64) -> PyResult<(usize, u64)> {
        if position == u64::MAX {
            return Err(invalid("position should be below 2**64 - 1").into());
        }
        Ok(self.inner.draw(position))
    }

    /// The largest depth of the schedule's tree (the proportion bound is half of it).
    #[getter]
    fn depth(&self) -> u32 {
        self.inner.depth()
    }
}

#[pymodule]
mod _core {
    #[pymodule_export]
    use super::{randperm, resume_point, same_order, shard_len, Epoch, Mixture};
    #[pymodule_export]
    use crate::py_length::{
        default_megabatch_mult, length_grouped_epoch, lengths_scan, typical_batch_size,
        TokenBudgetBatches,
    };

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        m.add("SWAP_REGIME_LIMIT", super::SWAP_REGIME_LIMIT)?;
        m.add(
            "ORDER_NAMES",
            pyo3::types::PyTuple::new(m.py(), super::ORDER_NAMES)?,
        )?;
        m.add("Reader", super::reader_type(m.py())?)
    }
}
