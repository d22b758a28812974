//! One rank's indices for one epoch: materialised once (torch order) or computed on demand
//! (identity order), and read by position.

use crate::buffer::{IndexElem, IndexVec};
use crate::error::{invalid, Error};
use crate::permutation::torch_randperm;
use crate::shard::{Shard, MAX_LEN};

/// The permutation `P` of an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// `P` is the identity (`shuffle=False`, the sequential sampler).
    Identity,
    /// `P = torch.randperm(n, generator=torch.Generator().manual_seed(seed))`.
    Torch { seed: u64 },
}

/// This rank's indices for an epoch, in the order they are yielded.
#[derive(Debug)]
pub enum EpochIndices {
    /// Stored: `buf[j]` is the `j`-th index.
    Stored(IndexVec),
    /// Computed: the `j`-th index is `shard.source(j)`.
    Identity(Shard),
}

impl EpochIndices {
    /// Builds the epoch. Long work calls `check` now and then; its error aborts the build.
    pub fn build<E: From<Error>>(
        shard: Shard,
        order: Order,
        check: &mut dyn FnMut() -> Result<(), E>,
    ) -> Result<Self, E> {
        match order {
            Order::Identity => Ok(EpochIndices::Identity(shard)),
            Order::Torch { seed } => {
                if shard.is_empty() {
                    return Ok(EpochIndices::Stored(IndexVec::zeroed(0, shard.n())?));
                }
                let perm = randperm(shard.n(), seed, check)?;
                if shard.is_whole() {
                    return Ok(EpochIndices::Stored(perm));
                }
                let mut share = IndexVec::zeroed(shard.len(), shard.n())?;
                match (&perm, &mut share) {
                    (IndexVec::U32(p), IndexVec::U32(s)) => gather(&shard, p, s),
                    (IndexVec::I64(p), IndexVec::I64(s)) => gather(&shard, p, s),
                    _ => unreachable!("both buffers are typed by n"),
                }
                Ok(EpochIndices::Stored(share))
            }
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            EpochIndices::Stored(v) => v.len() as u64,
            EpochIndices::Identity(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `j`-th index, for `j < len()`.
    #[inline(always)]
    pub fn get(&self, j: u64) -> u64 {
        match self {
            EpochIndices::Stored(v) => v.get(j as usize),
            EpochIndices::Identity(s) => s.source(j),
        }
    }

    /// The indices from position `start` on, as a new buffer (`start >= len()` gives an empty
    /// one).
    pub fn to_vec_from(&self, start: u64) -> Result<IndexVec, Error> {
        let len = self.len().saturating_sub(start);
        match self {
            EpochIndices::Stored(v) => {
                let s = start.min(v.len() as u64) as usize;
                Ok(match v {
                    IndexVec::U32(v) => IndexVec::U32(copy_of(&v[s..])?),
                    IndexVec::I64(v) => IndexVec::I64(copy_of(&v[s..])?),
                })
            }
            EpochIndices::Identity(shard) => {
                let mut out = IndexVec::zeroed(len, shard.n())?;
                match &mut out {
                    IndexVec::U32(o) => {
                        shard.for_each_source(start, o.len(), |k, p| o[k] = p as u32)
                    }
                    IndexVec::I64(o) => {
                        shard.for_each_source(start, o.len(), |k, p| o[k] = p as i64)
                    }
                }
                Ok(out)
            }
        }
    }
}

/// `torch.randperm(n)` for the generator seeded with `seed`, in the narrowest buffer.
pub fn randperm<E: From<Error>>(
    n: u64,
    seed: u64,
    check: &mut dyn FnMut() -> Result<(), E>,
) -> Result<IndexVec, E> {
    if n > MAX_LEN {
        return Err(invalid(format!("n should be at most 2**63 - 1, got {n}")).into());
    }
    let mut perm = IndexVec::zeroed(n, n)?;
    match &mut perm {
        IndexVec::U32(p) => torch_randperm(p, seed, check)?,
        IndexVec::I64(p) => torch_randperm(p, seed, check)?,
    }
    Ok(perm)
}

fn gather<T: IndexElem>(shard: &Shard, perm: &[T], share: &mut [T]) {
    shard.for_each_source(0, share.len(), |k, p| share[k] = perm[p as usize]);
}

fn copy_of<T: IndexElem>(src: &[T]) -> Result<Vec<T>, Error> {
    let mut v = crate::buffer::zeroed_vec(src.len() as u64)?;
    v.copy_from_slice(src);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(shard: Shard, order: Order) -> EpochIndices {
        EpochIndices::build::<Error>(shard, order, &mut || Ok(())).unwrap()
    }

    #[test]
    fn shares_of_a_shuffled_epoch_partition_it_with_padding() {
        let n = 1003;
        let full = build(Shard::whole(n).unwrap(), Order::Torch { seed: 9 });
        for w in [1, 2, 3, 8, 64, 2000] {
            let mut all = Vec::new();
            for r in 0..w {
                let s = Shard::new(n, w, r, 0, false).unwrap();
                let e = build(s, Order::Torch { seed: 9 });
                assert_eq!(e.len(), s.len());
                for j in 0..e.len() {
                    assert_eq!(e.get(j), full.get(s.source(j) as usize as u64));
                    all.push(e.get(j));
                }
            }
            all.sort_unstable();
            all.dedup();
            assert_eq!(all.len() as u64, n, "w={w}");
        }
    }

    #[test]
    fn to_vec_from_matches_get() {
        for order in [Order::Identity, Order::Torch { seed: 1 }] {
            let s = Shard::new(57, 4, 1, 3, false).unwrap();
            let e = build(s, order);
            for start in [0, 1, 5, e.len(), e.len() + 3] {
                let v = e.to_vec_from(start).unwrap();
                let want: Vec<u64> = (start..e.len()).map(|j| e.get(j)).collect();
                let got: Vec<u64> = (0..v.len()).map(|k| v.get(k)).collect();
                assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn check_error_propagates() {
        let s = Shard::whole(crate::permutation::CHECK_EVERY as u64 * 2).unwrap();
        let r = EpochIndices::build::<Error>(s, Order::Torch { seed: 0 }, &mut || {
            Err(Error::InvalidArgument("interrupted".into()))
        });
        assert!(r.is_err());
    }
}
