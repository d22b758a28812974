//! A rank's share of a mixture's epoch: epoch `e` of a mixture read `num_samples` positions per
//! epoch covers its stream positions `[e * num_samples, (e + 1) * num_samples)`, sharded like
//! every other epoch. Computed on demand.

use std::sync::Arc;

use crate::epoch::order::{Epoch, RankOrder};
use crate::epoch::shard::Shard;
use crate::orders::mixture::Mixture;
use crate::util::error::{invalid, Error};

/// A rank's share of one epoch of a mixture.
#[derive(Debug)]
pub struct MixtureShare {
    shard: Shard,
    mix: Arc<Mixture>,
    /// The stream position of the epoch's first global position.
    start: u64,
}

impl MixtureShare {
    /// Epoch `epoch` of `mix` for `shard`, whose `n` is the number of stream positions per
    /// epoch.
    pub fn epoch(mix: Arc<Mixture>, shard: Shard, epoch: u64) -> Result<Epoch, Error> {
        let n = shard.n();
        let start = epoch
            .checked_mul(n)
            .filter(|s| s.checked_add(n).is_some_and(|e| e < u64::MAX))
            .ok_or_else(|| invalid("(epoch + 1) * num_samples should stay below 2**64 - 1"))?;
        Ok(Epoch::new(Self { shard, mix, start }, shard))
    }
}

impl RankOrder for MixtureShare {
    fn len(&self) -> u64 {
        self.shard.len()
    }

    /// The concatenated sources' length: the indices are `ConcatDataset` indices.
    fn n(&self) -> u64 {
        self.mix.total_len()
    }

    fn fill(
        &self,
        start: u64,
        out: &mut [u64],
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error> {
        let shard = &self.shard;
        let first = shard.source(start);
        // One replica reading a stretch that does not wrap: consecutive positions.
        if shard.step() == 1 && first + (out.len() as u64) <= shard.n() {
            return self.mix.fill_run(self.start + first, out, interrupted);
        }
        self.mix.fill(
            |k| self.start + shard.source(start + k as u64),
            out,
            interrupted,
        )
    }

    fn computes(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::mixture::SourceOrder;

    #[test]
    fn shares_read_the_epoch_s_stream_positions() {
        let mix = Arc::new(
            Mixture::new(&[5, 7], &[(0, vec![1, 2])], SourceOrder::Lazy { seed: 3 }).unwrap(),
        );
        let n = 11;
        for w in [1, 2, 3] {
            for r in 0..w {
                let shard = Shard::new(n, w, r, 2, false).unwrap();
                let e = MixtureShare::epoch(Arc::clone(&mix), shard, 4).unwrap();
                assert_eq!(e.n(), 12);
                let v = e.to_vec_from(0, &mut || false).unwrap();
                for j in 0..e.len() {
                    let want = mix.at(4 * n + shard.source(j)).unwrap();
                    assert_eq!((e.get(j), v.get(j as usize)), (want, want));
                }
            }
        }
    }

    #[test]
    fn the_last_epoch_ends_below_the_last_stream_position() {
        let mix = Arc::new(Mixture::new(&[5], &[(0, vec![1])], SourceOrder::Identity).unwrap());
        let shard = Shard::whole(1 << 32).unwrap();
        assert!(MixtureShare::epoch(Arc::clone(&mix), shard, (1 << 32) - 2).is_ok());
        assert_eq!(
            MixtureShare::epoch(mix, shard, (1 << 32) - 1).unwrap_err(),
            invalid("(epoch + 1) * num_samples should stay below 2**64 - 1")
        );
    }
}
