//! The length-grouped orders' epochs: a rank's share of the length-grouped order, and of the
//! shuffled order of token-budget batches. Both are stored orders, shared as every stored order
//! is (`epoch/stored.rs`).

use crate::epoch::order::Epoch;
use crate::epoch::shard::Shard;
use crate::epoch::stored::Stored;
use crate::orders::length::{self, LengthElem, Packing};
use crate::orders::torch::{epoch_seed, Generation};
use crate::util::error::Error;

/// Rank `shard`'s share of epoch `epoch` of the length-grouped order of `lengths` (of
/// `shard.n()` items): transformers' `get_length_grouped_indices` with megabatches of
/// `megabatch` samples and the generator seeded with `seed + epoch`. `max_len` is the largest
/// length. `interrupted` runs every few tens of milliseconds; `true` stops the work with
/// [`Error::Interrupted`].
#[allow(clippy::too_many_arguments)]
pub fn length_grouped<L: LengthElem>(
    lengths: &[L],
    max_len: u64,
    megabatch: u64,
    seed: u64,
    epoch: u64,
    generation: Generation,
    shard: Shard,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<Epoch, Error> {
    debug_assert_eq!(lengths.len() as u64, shard.n());
    let seed = epoch_seed(seed, epoch);
    let order = length::length_grouped(lengths, max_len, megabatch, seed, generation, interrupted)?;
    Stored::share_of(order, shard, interrupted)
}

/// Rank `shard`'s share of the shuffled batch order of `packing` (`shard.n()` is its number of
/// batches); the batch ids are read like any epoch's indices.
pub fn batches(
    packing: &Packing,
    shard: Shard,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<Epoch, Error> {
    debug_assert_eq!(packing.num_batches(), shard.n());
    Stored::share_from(&packing.order, shard, interrupted)
}
