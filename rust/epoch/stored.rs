//! A rank's share kept in memory: `share[j]` is its `j`-th index. The share of a stored global
//! order (the torch order of a small epoch, a length-grouped order, a batch order) is made here,
//! once, by [`Stored::share_of`] and [`Stored::share_from`].

use crate::epoch::order::{Epoch, RankOrder};
use crate::epoch::shard::Shard;
use crate::util::buffer::{IndexSlice, IndexVec};
use crate::util::error::Error;

/// A rank's indices, stored; `n` is the dataset length (it types the buffer).
#[derive(Debug)]
pub struct Stored {
    share: IndexVec,
    n: u64,
}

impl Stored {
    /// The share `share` of a dataset of `n` items, typed for `n` (see `IndexVec::zeroed`).
    pub fn new(share: IndexVec, n: u64) -> Self {
        Self { share, n }
    }

    /// The epoch of rank and offset `shard` whose global order is `order` (of `shard.n()`
    /// items), taking `order` over when the rank reads all of it in order. `interrupted` runs
    /// between chunks; `true` stops the work with [`Error::Interrupted`].
    pub fn share_of(
        order: IndexVec,
        shard: Shard,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Epoch, Error> {
        let share = match order {
            IndexVec::U32(p) => IndexVec::U32(shard.take(p, interrupted)?),
            IndexVec::I64(p) => IndexVec::I64(shard.take(p, interrupted)?),
        };
        Ok(Epoch::new(Self::new(share, shard.n()), shard))
    }

    /// [`Self::share_of`] for an order the caller keeps.
    pub fn share_from(
        order: &IndexVec,
        shard: Shard,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Epoch, Error> {
        let share = match order {
            IndexVec::U32(p) => IndexVec::U32(shard.gather(p, interrupted)?),
            IndexVec::I64(p) => IndexVec::I64(shard.gather(p, interrupted)?),
        };
        Ok(Epoch::new(Self::new(share, shard.n()), shard))
    }
}

impl RankOrder for Stored {
    fn len(&self) -> u64 {
        self.share.len() as u64
    }

    fn n(&self) -> u64 {
        self.n
    }

    fn fill(
        &self,
        start: u64,
        out: &mut [u64],
        _interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error> {
        self.share.as_slice().widen_into(start as usize, out);
        Ok(())
    }

    fn stored(
        &self,
        _interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Option<IndexSlice<'_>>, Error> {
        Ok(Some(self.share.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..proptest::prelude::ProptestConfig::default() })]

        #[test]
        fn shares_gather_the_order(n in 1u64..300, w in 1u64..9, offset in 0u64..12, drop_last: bool) {
            let order = IndexVec::U32((0..n as u32).rev().collect());
            for r in 0..w {
                let shard = Shard::new(n, w, r, offset, drop_last).unwrap();
                let kept = Stored::share_from(&order, shard, &mut || false).unwrap();
                let taken = Stored::share_of(order.clone(), shard, &mut || false).unwrap();
                for share in [kept, taken] {
                    proptest::prop_assert_eq!(share.len(), shard.len());
                    for j in 0..shard.len() {
                        proptest::prop_assert_eq!(share.get(j), n - 1 - shard.source(j));
                    }
                }
            }
        }
    }

    #[test]
    fn a_whole_shard_takes_the_order_over() {
        let order = IndexVec::U32(vec![2, 0, 1]);
        let ptr = order.as_slice();
        let IndexSlice::U32(before) = ptr else {
            panic!()
        };
        let before = before.as_ptr();
        let e = Stored::share_of(order, Shard::whole(3).unwrap(), &mut || false).unwrap();
        let Some(IndexSlice::U32(after)) = e.stored(&mut || false).unwrap() else {
            panic!()
        };
        assert_eq!(after.as_ptr(), before, "no copy");
        assert_eq!(after, [2, 0, 1]);
    }
}
