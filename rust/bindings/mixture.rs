//! The mixture's Python class: a schedule of sources whose epochs are read like the others.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::bindings::epoch::Epoch;
use crate::epoch::mixture::MixtureShare;
use crate::epoch::shard::Shard;
use crate::orders::mixture::{Mixture as CoreMixture, SourceOrder};
use crate::util::error::invalid;

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
        Ok(MixtureShare::epoch(Arc::clone(&self.inner), shard, epoch)?.into())
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
