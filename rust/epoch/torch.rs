//! A rank's share of a torch-order epoch: large epochs that torch shuffles with its swap loop
//! are streamed (read while a helper thread shuffles, see `epoch/stream.rs`); the others are
//! shuffled before the first index and stored.

use crate::epoch::order::Epoch;
use crate::epoch::shard::Shard;
use crate::epoch::stored::Stored;
use crate::epoch::stream::Streamed;
use crate::orders::torch::{randperm, Generation};
use crate::util::buffer::IndexVec;
use crate::util::error::Error;
use crate::util::thread::cores;

/// Torch-order epochs of at least this many items are shuffled on a helper thread and read as
/// they become final; smaller ones are shuffled before the first index.
const STREAM_MIN: u64 = 1 << 20;

/// The epoch `torch.randperm(n, generator=torch.Generator().manual_seed(seed))` of the torch
/// `generation` for `shard` (the caller adds the epoch to the seed). `interrupted` runs every
/// few tens of milliseconds of shuffling; `true` stops it with [`Error::Interrupted`].
pub fn epoch(
    shard: Shard,
    seed: u64,
    generation: Generation,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<Epoch, Error> {
    if shard.is_empty() {
        let none = Stored::new(IndexVec::zeroed(0, shard.n())?, shard.n());
        return Ok(Epoch::new(none, shard));
    }
    // Streaming pays only with a second core for the shuffle: on one (a process pinned to a
    // CPU) the reader and the shuffle would take turns, slower than shuffling first.
    if shard.n() >= STREAM_MIN && Streamed::applies(&shard, generation) && cores() >= 2 {
        if let Some(s) = Streamed::start(shard, seed, generation)? {
            return Ok(Epoch::new(s, shard));
        }
        // No helper thread: shuffle here, as for small epochs.
    }
    let perm = randperm(shard.n(), seed, generation, interrupted)?;
    Stored::share_of(perm, shard, interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(shard: Shard, seed: u64) -> Epoch {
        epoch(shard, seed, Generation::Current, &mut || false).unwrap()
    }

    #[test]
    fn shares_of_a_shuffled_epoch_partition_it_with_padding() {
        let n = 1003;
        let full = build(Shard::whole(n).unwrap(), 9);
        for w in [1, 2, 3, 8, 64, 2000] {
            let mut all = Vec::new();
            for r in 0..w {
                let s = Shard::new(n, w, r, 0, false).unwrap();
                let e = build(s, 9);
                assert_eq!(e.len(), s.len());
                for j in 0..e.len() {
                    assert_eq!(e.get(j), full.get(s.source(j)));
                    all.push(e.get(j));
                }
            }
            all.sort_unstable();
            all.dedup();
            assert_eq!(all.len() as u64, n, "w={w}");
        }
    }

    #[test]
    fn large_epochs_are_streamed_and_read_the_same_as_stored_ones() {
        let n = STREAM_MIN + 3;
        let shard = Shard::new(n, 3, 1, 5, false).unwrap();
        let streamed = build(shard, 4);
        let perm = randperm(n, 4, Generation::Current, &mut || false).unwrap();
        let stored = Stored::share_of(perm, shard, &mut || false).unwrap();
        assert!(format!("{streamed:?}").contains("Streamed"));
        let a = streamed.to_vec_from(100, &mut || false).unwrap();
        let b = stored.to_vec_from(100, &mut || false).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn waiting_for_a_streamed_epoch_stops_when_interrupted() {
        let s = Shard::new(1 << 25, 2, 1, 0, false).unwrap();
        let e = epoch(s, 0, Generation::Current, &mut || true).unwrap();
        assert_eq!(e.to_vec_from(0, &mut || true), Err(Error::Interrupted));
    }
}
