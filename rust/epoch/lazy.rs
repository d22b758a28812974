//! A rank's share of the lazy order: its `j`-th index is `perm.index(shard.source(j))`, computed
//! on demand (in vector lanes, and on all cores for long outputs).

use crate::epoch::identity::Identity;
use crate::epoch::order::{Epoch, RankOrder};
use crate::epoch::shard::Shard;
use crate::orders::lazy::LazyPermutation;
use crate::util::buffer::{IndexElem, IndexSliceMut};
use crate::util::error::Error;
use crate::util::thread::cores;

/// Outputs at least this long are filled on all cores (the result never depends on it).
const PARALLEL_FILL: usize = 1 << 18;

/// A rank's share of the lazy order.
#[derive(Debug)]
pub struct Lazy {
    shard: Shard,
    perm: LazyPermutation,
}

impl Lazy {
    /// The epoch of the lazy order keyed by `(seed, epoch)` for `shard`. An empty dataset has
    /// no bijection to key; its (empty) identity is the same thing.
    pub fn epoch(shard: Shard, seed: u64, epoch: u64) -> Result<Epoch, Error> {
        if shard.n() == 0 {
            return Ok(Epoch::new(Identity(shard), shard));
        }
        let perm = LazyPermutation::try_new(shard.n(), seed, epoch)?;
        Ok(Epoch::new(Self { shard, perm }, shard))
    }
}

impl RankOrder for Lazy {
    fn len(&self) -> u64 {
        self.shard.len()
    }

    fn n(&self) -> u64 {
        self.shard.n()
    }

    fn fill(
        &self,
        start: u64,
        out: &mut [u64],
        _interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error> {
        self.perm
            .fill(self.shard.source(start), self.shard.step(), out);
        Ok(())
    }

    fn computes(&self) -> bool {
        true
    }

    fn fill_into(
        &self,
        start: u64,
        out: IndexSliceMut<'_>,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error> {
        match out {
            IndexSliceMut::U32(o) => self.fill_parallel(start, o, interrupted),
            IndexSliceMut::I64(o) => self.fill_parallel(start, o, interrupted),
        }
    }
}

impl Lazy {
    /// `out[k]` = the index at position `start + k`, on all cores for long outputs.
    fn fill_parallel<T: IndexElem>(
        &self,
        start: u64,
        out: &mut [T],
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error> {
        let threads = if out.len() >= PARALLEL_FILL {
            cores()
        } else {
            1
        };
        // Pieces taken in turn by every thread, so a loaded core holds no other up.
        if self.perm.fill_shared(
            self.shard.source(start),
            self.shard.step(),
            out,
            threads,
            interrupted,
        ) {
            return Ok(());
        }
        Err(Error::Interrupted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_partition_the_padded_epoch_and_fill_equals_get() {
        let n = 100_003;
        for w in [1, 3, 8] {
            let mut all = Vec::new();
            for r in 0..w {
                let s = Shard::new(n, w, r, 7, false).unwrap();
                let e = Lazy::epoch(s, 4, 1).unwrap();
                let v = e.to_vec_from(0, &mut || false).unwrap();
                assert_eq!(v.len() as u64, e.len());
                for j in 0..e.len() {
                    assert_eq!(v.get(j as usize), e.get(j));
                    assert_eq!(e.get(j), LazyPermutation::new(n, 4, 1).index(s.source(j)));
                    all.push(e.get(j));
                }
            }
            // positions 7.. of the global sequence: all but the first 7 elements, then padding
            all.sort_unstable();
            all.dedup();
            assert!(all.len() as u64 >= n - 7);
        }
        let empty = Lazy::epoch(Shard::whole(0).unwrap(), 0, 0).unwrap();
        assert_eq!(empty.len(), 0);
    }

    #[test]
    fn the_fill_is_the_same_on_one_thread_and_many() {
        let n = (PARALLEL_FILL * 3) as u64;
        let e = Lazy::epoch(Shard::new(n, 2, 1, 5, false).unwrap(), 3, 9).unwrap();
        let v = e.to_vec_from(11, &mut || false).unwrap();
        for k in (0..v.len()).step_by(997) {
            assert_eq!(v.get(k), e.get(11 + k as u64));
        }
    }

    #[test]
    fn an_empty_domain_is_an_error_not_a_hang() {
        assert!(matches!(
            LazyPermutation::try_new(0, 1, 2),
            Err(Error::InvalidArgument(_))
        ));
        assert!(LazyPermutation::try_new(1 << 63, 1, 2).is_err());
        assert_eq!(
            LazyPermutation::try_new(5, 1, 2),
            Ok(LazyPermutation::new(5, 1, 2))
        );
        let zero = std::panic::catch_unwind(|| LazyPermutation::new(0, 1, 2));
        assert!(
            zero.is_err(),
            "new(0) panics instead of building a permutation that hangs"
        );
    }

    #[test]
    fn a_long_fill_stops_when_interrupted() {
        let e = Lazy::epoch(Shard::whole(1 << 25).unwrap(), 0, 0).unwrap();
        assert_eq!(e.to_vec_from(0, &mut || true), Err(Error::Interrupted));
    }
}
