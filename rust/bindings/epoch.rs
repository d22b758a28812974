//! The epoch functions and class: `randperm`, sharding arithmetic, and `Epoch`, one rank's
//! share of an epoch of any order, read as NumPy arrays or through the C-level reader.

use numpy::ndarray::ArrayView1;
use numpy::{Element, PyArray1, PyArrayMethods};
use pyo3::prelude::*;

use crate::bindings::convert::{detached, owned_array, owned_readonly_array};
use crate::bindings::reader::new_reader;
use crate::epoch::named::{self, Order};
use crate::epoch::order::Epoch as CoreEpoch;
use crate::epoch::shard::{self, resume_point as core_resume_point, Shard};
use crate::util::buffer::IndexSlice;

/// A read-only NumPy view of `data` whose base object is `owner`, which keeps it alive.
fn readonly_view<'py, T: Element>(data: &[T], owner: &Bound<'py, Epoch>) -> Bound<'py, PyAny> {
    let view = ArrayView1::from(data);
    // SAFETY: `data` lives in the epoch of the frozen `owner`, which is never mutated and is
    // the array's base, so the memory outlives the array.
    let arr = unsafe { PyArray1::borrow_from_array(&view, owner.clone().into_any()) };
    arr.readwrite().make_nonwriteable();
    arr.into_any()
}

/// A permutation of `[0, n)` as a NumPy array: `torch.randperm(n)` for the generator seeded
/// with `seed` (`"torch"`: torch 2.6 and later; `"torch-legacy"`: torch up to 2.5), or the lazy
/// bijection keyed by `(seed, 0)`.
#[pyfunction]
#[pyo3(signature = (n, seed, permutation="torch"))]
pub(crate) fn randperm<'py>(
    py: Python<'py>,
    n: u64,
    seed: u64,
    permutation: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let perm = detached(py, |i| named::permutation(n, seed, permutation, i))?;
    Ok(owned_array(py, perm))
}

/// How many indices rank `rank` of `num_replicas` reads after the global positions
/// `[0, offset)` of an epoch of `n` items were consumed (torch's padding rule, exactly).
/// `rank` as one of `num_replicas` ranks (any Python integer; torch's `ValueError` otherwise).
#[pyfunction]
pub(crate) fn check_rank(rank: &Bound<'_, PyAny>, num_replicas: u64) -> PyResult<u64> {
    match rank.extract::<i128>() {
        Ok(r) => Ok(shard::check_rank(r, num_replicas)?),
        Err(_) => Err(shard::rank_error(&rank.str()?.to_cow()?, num_replicas).into()),
    }
}

#[pyfunction]
pub(crate) fn shard_len(
    n: u64,
    num_replicas: u64,
    rank: u64,
    offset: u64,
    drop_last: bool,
) -> PyResult<u64> {
    Ok(Shard::new(n, num_replicas, rank, offset, drop_last)?.len())
}

/// Where a job of `num_replicas` ranks resumes after the global positions `[0, consumed)`:
/// `(offset, position)`, the shard offset to build the epoch with and the position to read from.
#[pyfunction]
pub(crate) fn resume_point(consumed: u64, num_replicas: u64) -> PyResult<(u64, u64)> {
    Ok(core_resume_point(consumed, num_replicas)?)
}

/// Whether the orders named `a` and `b` give the same permutation of `n` items for every seed
/// and epoch.
#[pyfunction]
pub(crate) fn same_order(a: &str, b: &str, n: u64) -> PyResult<bool> {
    Ok(Order::same_permutation(a, b, n)?)
}

/// One rank's indices for one epoch, of any order.
#[pyclass(frozen, module = "resumable_samplers._core")]
pub struct Epoch {
    inner: CoreEpoch,
}

impl From<CoreEpoch> for Epoch {
    fn from(inner: CoreEpoch) -> Self {
        Self { inner }
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
        Ok(detached(py, |i| order.epoch(shard, i))?.into())
    }

    fn __len__(&self) -> usize {
        self.inner.len() as usize
    }

    /// The global position consumed once every rank has read `position` indices of this
    /// epoch (the inverse of `resume_point`).
    fn consumed(&self, position: u64) -> u128 {
        self.inner.consumed(position)
    }

    /// An iterator over the indices from position `start` on, as Python ints; `position()`
    /// tells how far it got. With `ahead`, an epoch that computes its indices (lazy order,
    /// mixture) computes the next chunk on a helper thread while the current one is read.
    #[pyo3(signature = (start=0, ahead=true))]
    fn reader<'py>(slf: &Bound<'py, Self>, start: u64, ahead: bool) -> PyResult<Bound<'py, PyAny>> {
        new_reader(slf.py(), slf.get().inner.clone(), start, ahead)
    }

    /// The indices from position `start` on, as a read-only NumPy array (a view when stored).
    #[pyo3(signature = (start=0))]
    fn array<'py>(slf: &Bound<'py, Self>, start: u64) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let inner = &slf.get().inner;
        let stored = detached(py, |i| inner.stored(i))?;
        Ok(match stored.map(|all| all.tail(start)) {
            Some(IndexSlice::U32(v)) => readonly_view(v, slf),
            Some(IndexSlice::I64(v)) => readonly_view(v, slf),
            None => owned_readonly_array(py, detached(py, |i| inner.to_vec_from(start, i))?),
        })
    }
}
