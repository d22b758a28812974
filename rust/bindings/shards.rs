//! The shard order: `ShardSizes`, a dataset's shards, whose `epoch` builds one rank's share of
//! an epoch as an `Epoch`.

use std::sync::Arc;

use numpy::PyReadonlyArray1;
use pyo3::prelude::*;

use crate::bindings::epoch::Epoch;
use crate::epoch::shards::shard_epoch;
use crate::orders::shards::ShardSizes as CoreSizes;

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
        let epoch = py.detach(|| {
            shard_epoch(
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
        Ok(epoch.into())
    }
}
