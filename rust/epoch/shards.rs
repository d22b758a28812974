//! A rank's share of an epoch of the shard order ([`crate::orders::shards`]), computed on
//! demand.

use std::sync::Arc;

use crate::epoch::order::{Epoch, RankOrder};
use crate::epoch::shard::Shard;
use crate::orders::shards::{ShardOrder, ShardSizes};
use crate::util::error::Error;

impl RankOrder for ShardOrder {
    fn len(&self) -> u64 {
        ShardOrder::len(self)
    }

    fn n(&self) -> u64 {
        ShardOrder::n(self)
    }

    fn fill(
        &self,
        start: u64,
        out: &mut [u64],
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error> {
        ShardOrder::fill(self, start, out, interrupted)
    }

    fn computes(&self) -> bool {
        true
    }
}

/// Rank `rank` of `replicas` in epoch `epoch` of the shard order over `sizes`, after the resume
/// `levels` (see [`ShardOrder::new`]). Its shard reports `consumed(position) = position *
/// replicas`: positions count per rank, at the current level.
#[allow(clippy::too_many_arguments)]
pub fn shard_epoch(
    sizes: Arc<ShardSizes>,
    window: u64,
    seed: u64,
    epoch: u64,
    levels: &[(u64, u64)],
    replicas: u64,
    rank: u64,
    drop_last: bool,
) -> Result<Epoch, Error> {
    let n = sizes.n();
    let order = ShardOrder::new(
        sizes, window, seed, epoch, levels, replicas, rank, drop_last,
    )?;
    let shard = Shard::new(n, replicas, rank, 0, drop_last)?;
    Ok(Epoch::new(order, shard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_reads_the_order_and_counts_positions_per_rank() {
        let sizes = Arc::new(ShardSizes::new(&[5, 0, 9, 4, 12]).unwrap());
        let e = shard_epoch(Arc::clone(&sizes), 2, 3, 1, &[(3, 2)], 2, 1, false).unwrap();
        let o = ShardOrder::new(sizes, 2, 3, 1, &[(3, 2)], 2, 1, false).unwrap();
        assert_eq!(e.len(), ShardOrder::len(&o));
        let mut want = vec![0; ShardOrder::len(&o) as usize];
        ShardOrder::fill(&o, 0, &mut want, &mut || false).unwrap();
        let got = e.to_vec_from(0, &mut || false).unwrap();
        assert_eq!((0..got.len()).map(|k| got.get(k)).collect::<Vec<_>>(), want);
        assert_eq!(e.consumed(4), 8);
        assert!(e.computes());
    }
}
