//! Python bindings, one file per group of Python-facing names: argument conversion, the GIL
//! released around the work, buffers handed to NumPy without a copy. No algorithm lives here;
//! this file only registers the module.

mod convert;
mod epoch;
mod length;
mod mixture;
mod reader;
mod shards;

use pyo3::prelude::*;

#[pymodule]
mod _core {
    #[pymodule_export]
    use super::epoch::{
        check_rank, epoch_end, randperm, resume_point, same_order, shard_len, Epoch,
    };
    #[pymodule_export]
    use super::mixture::Mixture;
    #[pymodule_export]
    use super::shards::ShardSizes;
    #[pymodule_export]
    use crate::bindings::length::{
        default_megabatch_mult, length_grouped_epoch, lengths_scan, megabatch_size,
        typical_batch_size, TokenBudgetBatches,
    };

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        m.add("SWAP_REGIME_LIMIT", crate::orders::torch::SWAP_REGIME_LIMIT)?;
        m.add("MAX_LEN", crate::util::limits::MAX_LEN)?;
        m.add("MAX_WEIGHT_SUM", crate::orders::mixture::MAX_WEIGHT_SUM)?;
        m.add(
            "MAX_LEVEL_REPLICAS",
            crate::orders::shards::MAX_LEVEL_REPLICAS,
        )?;
        // torch.Generator.manual_seed's seeds, [-2**63, 2**64): the core takes a seed (and
        // seed + epoch) modulo 2**64.
        m.add("SEED_MIN", i64::MIN)?;
        m.add("SEED_END", 1u128 << 64)?;
        m.add(
            "ORDER_NAMES",
            pyo3::types::PyTuple::new(m.py(), crate::orders::named::ORDER_NAMES)?,
        )?;
        m.add("Reader", super::reader::reader_type(m.py())?)
    }
}
