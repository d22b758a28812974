//! Python bindings of `orders/length.rs`: lengths arrays borrowed from NumPy (copied for a build only
//! when writable, see [`stable`]), the GIL released around the work, epochs handed back as
//! `Epoch`s over the computed order.

use std::borrow::Cow;
use std::sync::Arc;

use numpy::{Element, PyReadonlyArray1, PyUntypedArray};
use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::bindings::convert::detached;
use crate::bindings::epoch::Epoch;
use crate::epoch::length as length_epoch;
use crate::epoch::named::torch_generation;
use crate::epoch::shard::Shard;
use crate::orders::length::{self, Packing, Stats};
use crate::orders::torch::epoch_seed;
use crate::util::error::Error;

/// A 1-D NumPy integer array (C-contiguous, native byte order), whatever its integer type.
#[derive(FromPyObject)]
pub enum Lengths<'py> {
    U16(PyReadonlyArray1<'py, u16>),
    U32(PyReadonlyArray1<'py, u32>),
    I64(PyReadonlyArray1<'py, i64>),
    U8(PyReadonlyArray1<'py, u8>),
    U64(PyReadonlyArray1<'py, u64>),
    I8(PyReadonlyArray1<'py, i8>),
    I16(PyReadonlyArray1<'py, i16>),
    I32(PyReadonlyArray1<'py, i32>),
}

/// Runs `$body` with `$s` bound to the lengths as a slice of their own type: the array's
/// memory, or with `stable`, a copy unless nothing can write the array (see [`stable`]).
macro_rules! with_slice {
    ($lengths:expr, |$s:ident| $body:expr) => {
        with_slice!(@ $lengths, |a| a.as_slice()?, |$s| $body)
    };
    (stable $lengths:expr, |$s:ident| $body:expr) => {
        with_slice!(@ $lengths, |a| stable(&a)?, |$s| $body)
    };
    (@ $lengths:expr, |$a:ident| $get:expr, |$s:ident| $body:expr) => {
        match $lengths {
            Lengths::U16($a) => {
                let held = $get;
                let $s: &[_] = &held;
                $body
            }
            Lengths::U32($a) => {
                let held = $get;
                let $s: &[_] = &held;
                $body
            }
            Lengths::I64($a) => {
                let held = $get;
                let $s: &[_] = &held;
                $body
            }
            Lengths::U8($a) => {
                let held = $get;
                let $s: &[_] = &held;
                $body
            }
            Lengths::U64($a) => {
                let held = $get;
                let $s: &[_] = &held;
                $body
            }
            Lengths::I8($a) => {
                let held = $get;
                let $s: &[_] = &held;
                $body
            }
            Lengths::I16($a) => {
                let held = $get;
                let $s: &[_] = &held;
                $body
            }
            Lengths::I32($a) => {
                let held = $get;
                let $s: &[_] = &held;
                $body
            }
        }
    };
}

/// The lengths to compute an order from with the GIL released: the array's memory only when
/// NumPy says nothing can write it (the array and every array it views are read-only, over
/// memory of their own, a memory map or `bytes`); otherwise a copy taken now, as another
/// Python thread could change a writable array meanwhile (and a sort given changing keys may
/// fail).
fn stable<'a, T: Element + Copy>(a: &'a PyReadonlyArray1<'_, T>) -> PyResult<Cow<'a, [T]>> {
    let slice = a.as_slice()?;
    if cannot_be_written(a.as_any())? {
        return Ok(Cow::Borrowed(slice));
    }
    let mut copy = Vec::new();
    copy.try_reserve_exact(slice.len())
        .map_err(|_| Error::Alloc {
            bytes: std::mem::size_of_val(slice) as u128,
        })?;
    copy.extend_from_slice(slice);
    Ok(Cow::Owned(copy))
}

/// Whether NumPy reports `array`'s memory as unwritable through any object (see [`stable`]).
fn cannot_be_written(array: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = array.py();
    let mut obj = array.clone();
    loop {
        if obj.is_none() || obj.is_instance_of::<PyBytes>() {
            return Ok(true);
        }
        if obj.cast::<PyUntypedArray>().is_err() {
            return obj.is_instance(&py.import("mmap")?.getattr("mmap")?);
        }
        if obj.getattr("flags")?.getattr("writeable")?.is_truthy()? {
            return Ok(false);
        }
        obj = obj.getattr("base")?;
    }
}

/// One pass over `lengths`: `(n, max, sum, fingerprint, first_above)`, where `first_above` is
/// the first `(index, length)` with a length above `limit`. Raises `ValueError` naming the
/// first negative length.
#[pyfunction]
#[pyo3(signature = (lengths, limit=u64::MAX))]
#[allow(clippy::type_complexity)]
pub(crate) fn lengths_scan(
    py: Python<'_>,
    lengths: Lengths<'_>,
    limit: u64,
) -> PyResult<(u64, u64, u128, u64, Option<(u64, u64)>)> {
    let s: Stats = with_slice!(lengths, |s| detached(py, |i| length::scan(s, limit, i))?);
    Ok((s.n, s.max, s.sum, s.fingerprint, s.first_above))
}

/// transformers' default megabatch multiplier: `min(n // (batch_size * 4), 50)`, at least 1.
#[pyfunction]
pub(crate) fn default_megabatch_mult(n: u64, batch_size: u64) -> u64 {
    length::default_megabatch_mult(n, batch_size)
}

/// Samples per megabatch: `megabatch_mult * batch_size`, capped at `n`.
#[pyfunction]
pub(crate) fn megabatch_size(n: u64, batch_size: u64, megabatch_mult: u64) -> PyResult<u64> {
    Ok(length::megabatch_size(n, batch_size, megabatch_mult)?)
}

/// The typical number of samples of a token-budget batch: `max_tokens // ceil(sum / n)`,
/// between 1 and `max_batch_size`.
#[pyfunction]
pub(crate) fn typical_batch_size(n: u64, total: u128, max_tokens: u64, max_batch_size: u64) -> u64 {
    let stats = Stats {
        n,
        max: 0,
        sum: total,
        fingerprint: 0,
        first_above: None,
    };
    length::typical_batch_size(&stats, max_tokens, max_batch_size)
}

/// This rank's share of the length-grouped order of `lengths` (transformers'
/// `get_length_grouped_indices` with megabatches of `megabatch_size` samples and the generator
/// seeded with `seed + epoch`), sharded as `Epoch` shards the torch order. `max_len` is the
/// largest length (from `lengths_scan`).
#[pyfunction]
#[pyo3(signature = (
    lengths, max_len, megabatch_size, seed, epoch, num_replicas, rank, offset, drop_last,
    permutation="torch"
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn length_grouped_epoch(
    py: Python<'_>,
    lengths: Lengths<'_>,
    max_len: u64,
    megabatch_size: u64,
    seed: u64,
    epoch: u64,
    num_replicas: u64,
    rank: u64,
    offset: u64,
    drop_last: bool,
    permutation: &str,
) -> PyResult<Epoch> {
    let generation = torch_generation(permutation)?;
    let epoch = with_slice!(stable lengths, |s| {
        let shard = Shard::new(s.len() as u64, num_replicas, rank, offset, drop_last)?;
        detached(py, |i| {
            length_epoch::length_grouped(
                s,
                max_len,
                megabatch_size,
                seed,
                epoch,
                generation,
                shard,
                i,
            )
        })?
    });
    Ok(epoch.into())
}

/// One epoch of token-budget batches of `lengths`: megabatches of `megabatch_size` samples,
/// each sorted longest first and cut into batches of at most `max_tokens` padded tokens and
/// `max_batch_size` samples (a sample longer than `max_tokens` alone), in the order
/// `torch.randperm(num_batches)` drawn after the sample permutation from the generator seeded
/// with `seed + epoch`.
#[pyclass(frozen, module = "resumable_samplers._core")]
pub struct TokenBudgetBatches {
    packing: Arc<Packing>,
}

#[pymethods]
impl TokenBudgetBatches {
    #[new]
    #[pyo3(signature = (
        lengths, max_len, megabatch_size, max_tokens, max_batch_size, seed, epoch,
        permutation="torch"
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        lengths: Lengths<'_>,
        max_len: u64,
        megabatch_size: u64,
        max_tokens: u64,
        max_batch_size: u64,
        seed: u64,
        epoch: u64,
        permutation: &str,
    ) -> PyResult<Self> {
        let generation = torch_generation(permutation)?;
        let seed = epoch_seed(seed, epoch);
        let packing = with_slice!(stable lengths, |s| detached(py, |i| {
            length::token_budget(
                s,
                max_len,
                megabatch_size,
                max_tokens,
                max_batch_size,
                seed,
                generation,
                i,
            )
        })?);
        Ok(Self {
            packing: Arc::new(packing),
        })
    }

    fn __len__(&self) -> usize {
        self.packing.num_batches() as usize
    }

    /// The samples of batch `k` (a batch id, not a position in the shuffled order).
    fn batch(&self, k: u64) -> PyResult<Vec<u64>> {
        let p = &self.packing;
        if k >= p.num_batches() {
            return Err(PyIndexError::new_err(format!(
                "batch {k} out of range for {} batches",
                p.num_batches()
            )));
        }
        Ok(p.range(k).map(|j| p.samples.get(j)).collect())
    }

    /// This rank's batch ids: the shuffled batch order sharded as `Epoch` shards an epoch.
    fn epoch(
        &self,
        py: Python<'_>,
        num_replicas: u64,
        rank: u64,
        offset: u64,
        drop_last: bool,
    ) -> PyResult<Epoch> {
        let shard = Shard::new(
            self.packing.num_batches(),
            num_replicas,
            rank,
            offset,
            drop_last,
        )?;
        let packing = &*self.packing;
        Ok(detached(py, |i| length_epoch::batches(packing, shard, i))?.into())
    }
}
