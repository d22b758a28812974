//! The shard order: `ShardSizes`, a dataset's shards, whose `epoch` builds one rank's share of
//! an epoch as an `Epoch`.

use std::sync::Arc;

use numpy::PyReadonlyArray1;
use pyo3::prelude::*;

use crate::bindings::epoch::Epoch;
use crate::epoch::indices::EpochIndices;
use crate::epoch::shard::Shard;
use crate::orders::shards::{ShardOrder, ShardSizes as CoreSizes};

/// The shards of a dataset, by size (`ConcatDataset` order).
#[pyclass(frozen, module = "resumable_samplers._core")]
pub struct ShardSizes {
    inner: Arc<CoreSizes>,
}

#[pymethods]
impl ShardSizes {
    #[new]
    fn new(py: Python<'_>, sizes: PyReadonlyArray1<'_, i64>) -> PyResult<Self> {
        let sizes = sizes.as_slice()?;
        let inner = py.detach(|| CoreSizes::new(sizes))?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The number of samples.
    #[getter]
    fn n(&self) -> u64 {
        self.inner.n()
    }

    /// The number of non-empty shards.
    #[getter]
    fn shards(&self) -> u64 {
        self.inner.shards()
    }

    /// A digest of the non-empty shards' sizes in order, in `[0, 2**63)`.
    #[getter]
    fn digest(&self) -> u64 {
        self.inner.digest()
    }

    /// Rank `rank`'s share of epoch `epoch` after the resume `levels` (`(num_replicas,
    /// position)` pairs, oldest first).
    #[allow(clippy::too_many_arguments)]
    fn epoch(
        &self,
        py: Python<'_>,
        window: u64,
        seed: u64,
        epoch: u64,
        levels: Vec<(u64, u64)>,
        num_replicas: u64,
        rank: u64,
        drop_last: bool,
    ) -> PyResult<Epoch> {
        let sizes = Arc::clone(&self.inner);
        let order = py.detach(|| {
            ShardOrder::new(
                sizes,
                window,
                seed,
                epoch,
                &levels,
                num_replicas,
                rank,
                drop_last,
            )
        })?;
        // The shard reports `consumed(position) = position * num_replicas`, this level's
        // global position.
        let shard = Shard::new(self.inner.n(), num_replicas, rank, 0, drop_last)?;
        Ok(Epoch::from_parts(EpochIndices::Shards(order), shard))
    }
}
