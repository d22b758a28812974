//! Reading one rank's epoch in order, a chunk at a time, from any start position.
//!
//! Chunks start small (so the first index is ready at once, even for a lazy epoch) and double
//! up to [`MAX_CHUNK`]. When computing a chunk is real work (the lazy order, several ns per
//! index), the next chunk is computed on another thread while the caller consumes the current
//! one, so on a machine with a spare core the caller only ever waits for the first chunk. The
//! values never depend on which thread computed them.
//!
//! The helper thread lives for one chunk: nothing outlives the reader but a detached thread
//! finishing a fill. After `fork` the child has no such thread; the reader notices (the process
//! id changed) and computes the chunk itself. A thread that cannot be started is no error
//! either: the chunk is then computed on the calling thread (see `util/thread.rs`).
//!
//! Once the last index has been read, the reader lets go of the epoch and of its buffers: a
//! finished iterator that its caller keeps does not keep an epoch in memory.

use crate::epoch::order::Epoch;
use crate::util::buffer::zeroed_vec;
use crate::util::error::Error;
use crate::util::thread::{spawn, Handle};

/// Size of the first chunk.
pub const FIRST_CHUNK: usize = 1 << 10;
/// Chunks double up to this size (512 KiB of `u64`).
pub const MAX_CHUNK: usize = 1 << 16;
/// Chunks at least this long are computed ahead on a helper thread (shorter ones cost less
/// than starting a thread).
const AHEAD_MIN: usize = 1 << 13;

/// A chunk being computed on a helper thread.
struct Pending {
    start: u64,
    /// The filled buffer, or `None` if the fill failed (it is then redone here).
    handle: Handle<Option<Vec<u64>>>,
}

/// A cursor over one epoch's indices.
pub struct ChunkReader {
    /// The epoch, until its last index has been read.
    epoch: Option<Epoch>,
    /// The epoch's length.
    len: u64,
    /// The current chunk: the indices at positions `chunk_start..chunk_start + buf.len()`.
    buf: Vec<u64>,
    /// The next value to hand out is `buf[next]`.
    next: usize,
    chunk_start: u64,
    pending: Option<Pending>,
    /// The previous chunk's buffer, reused for the next fill.
    spare: Vec<u64>,
    /// Whether chunks are computed ahead on a helper thread.
    ahead: bool,
}

impl ChunkReader {
    /// A reader whose first value is the index at position `start` (clamped to the epoch).
    pub fn new(epoch: Epoch, start: u64) -> Self {
        let len = epoch.len();
        let start = start.min(len);
        let ahead = epoch.computes();
        Self {
            epoch: Some(epoch),
            len,
            buf: Vec::new(),
            next: 0,
            chunk_start: start,
            pending: None,
            spare: Vec::new(),
            ahead,
        }
    }

    /// Turns computing ahead on a helper thread off (or back on for an epoch that computes).
    pub fn set_ahead(&mut self, ahead: bool) {
        self.ahead = ahead && self.epoch.as_ref().is_some_and(|e| e.computes());
    }

    /// How many indices of the epoch lie before the next one to be returned.
    #[inline]
    pub fn position(&self) -> u64 {
        self.chunk_start + self.next as u64
    }

    /// How many indices are left.
    pub fn remaining(&self) -> u64 {
        self.len - self.position()
    }

    /// The next index if it is in the current chunk (the fast path: no work, no error).
    #[inline(always)]
    pub fn next_buffered(&mut self) -> Option<u64> {
        let v = *self.buf.get(self.next)?;
        self.next += 1;
        Some(v)
    }

    /// The next index, or `None` at the end of the epoch.
    #[inline(always)]
    pub fn next_index(&mut self) -> Result<Option<u64>, Error> {
        self.next_index_interruptible(&mut || false)
    }

    /// [`Self::next_index`]; `interrupted` runs every few milliseconds while it waits for a
    /// streamed epoch, and `true` stops the wait with [`Error::Interrupted`] (the position is
    /// unchanged then).
    #[inline(always)]
    pub fn next_index_interruptible(
        &mut self,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Option<u64>, Error> {
        match self.next_buffered() {
            Some(v) => Ok(Some(v)),
            None => self.next_index_slow(interrupted),
        }
    }

    #[cold]
    #[inline(never)]
    fn next_index_slow(
        &mut self,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Option<u64>, Error> {
        if !self.advance(interrupted)? {
            return Ok(None);
        }
        let v = self.buf[0];
        self.next = 1;
        Ok(Some(v))
    }

    /// Makes the chunk after the current one current; `false` at the end of the epoch.
    fn advance(&mut self, interrupted: &mut dyn FnMut() -> bool) -> Result<bool, Error> {
        let start = self.chunk_start + self.buf.len() as u64;
        let end = self.len;
        let epoch = match &self.epoch {
            Some(e) if start < end => e.clone(),
            _ => {
                // Nothing left: an empty current chunk at the end keeps `position()` exact, and
                // the epoch and the buffers are let go (a finished iterator may be kept around).
                self.chunk_start = end;
                self.buf = Vec::new();
                self.spare = Vec::new();
                self.next = 0;
                self.pending = None;
                self.epoch = None;
                return Ok(false);
            }
        };
        let len = chunk_len(self.buf.len(), end - start);
        let filled = match self.take_pending(start, len) {
            Some(v) => v,
            None => {
                let mut v = self.buffer(len)?;
                if let Err(e) = epoch.fill(start, &mut v, interrupted) {
                    self.spare = v;
                    return Err(e);
                }
                v
            }
        };
        self.spare = std::mem::replace(&mut self.buf, filled);
        self.chunk_start = start;
        self.next = 0;
        self.start_ahead();
        Ok(true)
    }

    /// The helper thread's chunk, if it computed the one at `start` and is in this process.
    fn take_pending(&mut self, start: u64, len: usize) -> Option<Vec<u64>> {
        let p = self.pending.take()?;
        if p.start != start {
            return None; // never happens for sequential reads; the thread is detached
        }
        // `None` after a fork too: the thread stayed in the parent.
        match p.handle.join() {
            Some(Some(v)) if v.len() == len => Some(v),
            _ => None,
        }
    }

    /// A buffer of `len` values, reusing the spare one when it is large enough.
    fn buffer(&mut self, len: usize) -> Result<Vec<u64>, Error> {
        let mut v = std::mem::take(&mut self.spare);
        if v.capacity() < len {
            v = zeroed_vec::<u64>(len as u64)?;
        }
        // Within capacity: no allocation.
        v.resize(len, 0);
        Ok(v)
    }

    /// Starts computing the chunk after the current one on a helper thread, when worth it.
    fn start_ahead(&mut self) {
        if !self.ahead {
            return;
        }
        let start = self.chunk_start + self.buf.len() as u64;
        let end = self.len;
        let Some(epoch) = self.epoch.clone() else {
            return;
        };
        if start >= end {
            return;
        }
        let len = chunk_len(self.buf.len(), end - start);
        if len < AHEAD_MIN {
            return;
        }
        let Ok(mut v) = self.buffer(len) else {
            return; // the fill on this thread will report the allocation failure
        };
        // An epoch's fill touches no thread-local storage, as `util/thread.rs` requires.
        let spawned = spawn(move || epoch.fill(start, &mut v, &mut || false).ok().map(|()| v));
        if let Ok(handle) = spawned {
            self.pending = Some(Pending { start, handle });
        }
        // A refused thread's closure (and its buffer) is dropped; the next fill allocates.
    }
}

/// The length of the chunk after one of `prev` values, with `left` values left.
fn chunk_len(prev: usize, left: u64) -> usize {
    let want = (prev * 2).clamp(FIRST_CHUNK, MAX_CHUNK);
    want.min(usize::try_from(left).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoch::named::Order;
    use crate::epoch::shard::Shard;

    fn epoch(n: u64, w: u64, r: u64, order: Order) -> Epoch {
        let shard = Shard::new(n, w, r, 0, false).unwrap();
        order.epoch(shard, &mut || false).unwrap()
    }

    fn read_all(r: &mut ChunkReader) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(v) = r.next_index().unwrap() {
            out.push(v);
            assert_eq!(r.position(), r.chunk_start + r.next as u64);
        }
        out
    }

    #[test]
    fn reads_every_index_from_any_start_with_and_without_helper_threads() {
        let orders = [
            Order::Lazy { seed: 3, epoch: 1 },
            Order::Torch {
                seed: 3,
                epoch: 1,
                generation: crate::orders::torch::Generation::Current,
            },
            Order::Identity,
        ];
        for order in orders {
            for &(n, w, r) in &[(0u64, 1u64, 0u64), (1, 1, 0), (5000, 3, 2), (300_001, 2, 1)] {
                let e = epoch(n, w, r, order);
                let want: Vec<u64> = (0..e.len()).map(|j| e.get(j)).collect();
                for start in [0, 1, 1023, 1024, 70_000, e.len(), e.len() + 5] {
                    for ahead in [true, false] {
                        let mut rd = ChunkReader::new(e.clone(), start);
                        rd.set_ahead(ahead);
                        let from = (start.min(e.len())) as usize;
                        assert_eq!(rd.position(), from as u64);
                        assert_eq!(read_all(&mut rd), want[from..], "{order:?} n={n} {start}");
                        assert_eq!(rd.position(), e.len());
                        assert_eq!(rd.remaining(), 0);
                        assert_eq!(rd.next_index().unwrap(), None, "stays exhausted");
                        assert_eq!(rd.buf.capacity() + rd.spare.capacity(), 0, "buffers freed");
                    }
                }
            }
        }
    }

    /// An order defined here and nowhere else: `j`-th index `(7 j + 3) mod n`, computed.
    #[derive(Debug)]
    struct Affine(Shard);

    impl crate::epoch::order::RankOrder for Affine {
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
            let n = self.0.n();
            self.0
                .for_each_source(start, out.len(), |k, p| out[k] = (7 * p + 3) % n);
            Ok(())
        }
        fn computes(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_new_order_is_read_through_its_trait_alone() {
        let shard = Shard::new(100_003, 3, 1, 2, false).unwrap();
        let e = Epoch::new(Affine(shard), shard);
        let want: Vec<u64> = (0..e.len())
            .map(|j| (7 * shard.source(j) + 3) % 100_003)
            .collect();
        for ahead in [true, false] {
            let mut rd = ChunkReader::new(e.clone(), 5);
            rd.set_ahead(ahead);
            assert_eq!(read_all(&mut rd), want[5..]);
        }
        let v = e.to_vec_from(0, &mut || false).unwrap();
        assert_eq!((0..v.len()).map(|k| v.get(k)).collect::<Vec<_>>(), want);
    }

    #[test]
    fn chunks_grow_from_small_to_max() {
        assert_eq!(chunk_len(0, 1 << 40), FIRST_CHUNK);
        assert_eq!(chunk_len(FIRST_CHUNK, 1 << 40), 2 * FIRST_CHUNK);
        assert_eq!(chunk_len(MAX_CHUNK, 1 << 40), MAX_CHUNK);
        assert_eq!(chunk_len(MAX_CHUNK, 7), 7);
    }

    #[test]
    fn an_exhausted_reader_lets_go_of_its_epoch() {
        for order in [
            Order::Lazy { seed: 1, epoch: 0 },
            Order::Torch {
                seed: 1,
                epoch: 0,
                generation: crate::orders::torch::Generation::Current,
            },
        ] {
            let e = epoch(100_000, 1, 0, order);
            let mut rd = ChunkReader::new(e.clone(), 0);
            assert_eq!(e.holders(), 2);
            read_all(&mut rd);
            // The helper threads may still hold a reference for a moment.
            for _ in 0..1000 {
                if e.holders() == 1 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            assert_eq!(e.holders(), 1, "{order:?}");
            assert_eq!((rd.position(), rd.remaining()), (100_000, 0));
        }
    }

    #[test]
    fn a_pending_chunk_from_another_process_is_recomputed() {
        let e = epoch(1 << 20, 1, 0, Order::Lazy { seed: 1, epoch: 2 });
        let mut rd = ChunkReader::new(e.clone(), 0);
        let mut got = Vec::new();
        for _ in 0..100_000 {
            got.push(rd.next_index().unwrap().unwrap());
        }
        // Pretend the helper ran in a parent process and computed the wrong values.
        let start = rd.chunk_start + rd.buf.len() as u64;
        let len = chunk_len(rd.buf.len(), e.len() - start);
        if let Some(p) = rd.pending.take() {
            let _ = p.handle.join();
        }
        let mut handle = spawn(move || Some(vec![u64::MAX; len])).ok().unwrap();
        handle.pretend_forked();
        rd.pending = Some(Pending { start, handle });
        got.extend(read_all(&mut rd));
        let want: Vec<u64> = (0..e.len()).map(|j| e.get(j)).collect();
        assert_eq!(got, want);
    }
}
