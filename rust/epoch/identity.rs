//! The identity order (`shuffle=False`, the sequential sampler): a rank's `j`-th index is the
//! source position `shard.source(j)` itself, computed on demand.

use crate::epoch::order::RankOrder;
use crate::epoch::shard::Shard;
use crate::util::buffer::{IndexElem, IndexSliceMut};
use crate::util::error::{poll, Error};

/// Indices written between two calls of the caller's `interrupted`.
const FILL_CHUNK: usize = 1 << 24;

/// A rank's share of the identity order.
#[derive(Debug)]
pub struct Identity(pub Shard);

impl RankOrder for Identity {
    fn len(&self) -> u64 {
        self.0.len()
    }

    fn n(&self) -> u64 {
        self.0.n()
    }

    fn fill(
        &self,
        start: u64,
        out: &mut [u64],
        _interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error> {
        self.0.for_each_source(start, out.len(), |k, p| out[k] = p);
        Ok(())
    }

    fn fill_into(
        &self,
        start: u64,
        out: IndexSliceMut<'_>,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error> {
        match out {
            IndexSliceMut::U32(o) => fill_identity(&self.0, start, o, interrupted),
            IndexSliceMut::I64(o) => fill_identity(&self.0, start, o, interrupted),
        }
    }
}

/// `out[k]` = the identity epoch's index `start + k`.
fn fill_identity<T: IndexElem>(
    shard: &Shard,
    start: u64,
    out: &mut [T],
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<(), Error> {
    let mut done = start;
    for chunk in out.chunks_mut(FILL_CHUNK) {
        shard.for_each_source(done, chunk.len(), |k, p| chunk[k] = T::from_u64(p));
        done += chunk.len() as u64;
        poll(interrupted)?;
    }
    Ok(())
}
