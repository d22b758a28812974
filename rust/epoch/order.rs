//! The one interface of a rank's share of an epoch, [`RankOrder`], and [`Epoch`], the value that
//! readers, `indices()`, the C-level iterator and the bindings hold: none of them knows which
//! order it reads.

use std::fmt::Debug;
use std::ops::Deref;
use std::sync::Arc;

use crate::epoch::shard::Shard;
use crate::util::buffer::{zeroed_vec, IndexElem, IndexSlice, IndexSliceMut, IndexVec};
use crate::util::error::{poll, Error};

/// Indices computed between two calls of `interrupted` by the default
/// [`RankOrder::fill_into`] (8 MiB of `u64`).
const WIDEN_CHUNK: usize = 1 << 20;

/// One rank's indices for one epoch, in the order they are yielded, read by position.
pub trait RankOrder: Send + Sync + Debug {
    /// How many indices this rank reads in this epoch.
    fn len(&self) -> u64;

    /// The dataset length: every index is below it (it types the buffers: u32 when n <= 2**32).
    fn n(&self) -> u64;

    /// Writes the indices at positions start..start + out.len() (all < len()), calling
    /// `interrupted` every few milliseconds of work; `true` ends it with Error::Interrupted.
    fn fill(
        &self,
        start: u64,
        out: &mut [u64],
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error>;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether reading computes the indices (several ns each): readers then compute the next
    /// chunk on a helper thread while the caller consumes the current one.
    fn computes(&self) -> bool {
        false
    }

    /// All the indices, when they are kept in memory (waiting until they are, for an order
    /// still being computed, with `interrupted` as for [`Self::fill`]), so that they can be
    /// lent without a copy. `None` for an order computed on demand.
    fn stored(
        &self,
        _interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Option<IndexSlice<'_>>, Error> {
        Ok(None)
    }

    /// [`Self::fill`] into a buffer of the epoch's own element type. The default goes through
    /// `fill` a chunk at a time; an order that writes the elements directly (or on all cores)
    /// overrides it.
    fn fill_into(
        &self,
        start: u64,
        out: IndexSliceMut<'_>,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error> {
        match out {
            IndexSliceMut::U32(o) => fill_through_u64(self, start, o, interrupted),
            IndexSliceMut::I64(o) => fill_through_u64(self, start, o, interrupted),
        }
    }

    /// The indices from position `start` on, as a new buffer typed by [`Self::n`] (`start >=
    /// len()` gives an empty one); `interrupted` as for [`Self::fill`].
    fn to_vec_from(
        &self,
        start: u64,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<IndexVec, Error> {
        if let Some(all) = self.stored(interrupted)? {
            return all.tail(start).to_vec();
        }
        let len = self.len().saturating_sub(start);
        let mut out = IndexVec::zeroed(len, self.n())?;
        if len > 0 {
            self.fill_into(start, out.as_mut_slice(), interrupted)?;
        }
        Ok(out)
    }
}

/// `out[k]` = the index at position `start + k`, computed by `fill` in chunks and narrowed.
fn fill_through_u64<T: IndexElem, O: RankOrder + ?Sized>(
    order: &O,
    start: u64,
    out: &mut [T],
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<(), Error> {
    let mut buf = zeroed_vec::<u64>(out.len().min(WIDEN_CHUNK) as u64)?;
    let mut at = start;
    for chunk in out.chunks_mut(WIDEN_CHUNK) {
        let wide = &mut buf[..chunk.len()];
        order.fill(at, wide, interrupted)?;
        for (d, &x) in chunk.iter_mut().zip(wide.iter()) {
            *d = T::from_u64(x);
        }
        at += chunk.len() as u64;
        poll(interrupted)?;
    }
    Ok(())
}

/// One rank's share of one epoch, of any order: the order's [`RankOrder`] and the [`Shard`]
/// that says which global positions it covers. Cheap to clone (the order is shared).
#[derive(Clone, Debug)]
pub struct Epoch {
    order: Arc<dyn RankOrder>,
    shard: Shard,
}

impl Epoch {
    /// The epoch `order` of the rank and resume offset of `shard`.
    pub fn new(order: impl RankOrder + 'static, shard: Shard) -> Self {
        Self {
            order: Arc::new(order),
            shard,
        }
    }

    pub fn shard(&self) -> &Shard {
        &self.shard
    }

    /// The global position consumed once every rank has read `position` indices of this epoch
    /// (the inverse of `shard::resume_point`).
    pub fn consumed(&self, position: u64) -> u128 {
        self.shard.consumed(position)
    }

    /// How many values hold this epoch's order (the readers' helper threads among them).
    #[cfg(test)]
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.order)
    }

    /// The `j`-th index, for `j < len()`.
    #[cfg(test)]
    pub fn get(&self, j: u64) -> u64 {
        let mut one = [0u64];
        self.fill(j, &mut one, &mut || false)
            .expect("test epochs are readable");
        one[0]
    }
}

impl Deref for Epoch {
    type Target = dyn RankOrder;

    fn deref(&self) -> &Self::Target {
        &*self.order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An order that stores nothing and computes `n - 1 - j`, to check the provided methods.
    #[derive(Debug)]
    struct Reversed(u64);

    impl RankOrder for Reversed {
        fn len(&self) -> u64 {
            self.0
        }
        fn n(&self) -> u64 {
            self.0
        }
        fn fill(
            &self,
            start: u64,
            out: &mut [u64],
            _interrupted: &mut dyn FnMut() -> bool,
        ) -> Result<(), Error> {
            for (k, o) in out.iter_mut().enumerate() {
                *o = self.0 - 1 - (start + k as u64);
            }
            Ok(())
        }
    }

    #[test]
    fn to_vec_from_fills_through_the_order_in_the_narrowest_type() {
        let n = WIDEN_CHUNK as u64 * 2 + 5;
        let e = Epoch::new(Reversed(n), Shard::whole(n).unwrap());
        for start in [0, 1, WIDEN_CHUNK as u64, n - 1, n, n + 3] {
            let v = e.to_vec_from(start, &mut || false).unwrap();
            assert!(matches!(v, IndexVec::U32(_)));
            assert_eq!(v.len() as u64, n.saturating_sub(start));
            for k in [0, v.len() / 2, v.len().saturating_sub(1)] {
                if k < v.len() {
                    assert_eq!(v.get(k), n - 1 - (start + k as u64));
                }
            }
        }
    }

    #[test]
    fn to_vec_from_stops_when_interrupted() {
        let n = WIDEN_CHUNK as u64 * 3;
        let e = Epoch::new(Reversed(n), Shard::whole(n).unwrap());
        let mut calls = 0;
        let r = e.to_vec_from(0, &mut || {
            calls += 1;
            calls == 2
        });
        assert_eq!(r, Err(Error::Interrupted));
        assert_eq!(calls, 2);
    }
}
