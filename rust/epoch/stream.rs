//! A torch-order epoch that can be read while it is being shuffled.
//!
//! In torch's first regime (`n < SWAP_REGIME_LIMIT`) step `i` of the shuffle touches positions
//! `i` and above only, so position `i` is final once step `i` has run. The shuffle runs on a
//! helper thread that publishes how many positions are final; a reader waits only until the
//! positions it needs are. The epoch therefore starts at once, and a resume at position `p`
//! waits for about `p / n` of the shuffle instead of all of it. The values are exactly those of
//! the one-thread shuffle.
//!
//! When the shuffle is done, the helper gathers the rank's share into its own buffer and frees
//! the full permutation once no reader is inside it, so a rank keeps only its share (a whole
//! shard, one replica at offset 0, keeps the permutation itself). Readers count themselves in
//! and check `done` with sequentially consistent operations, the helper sets `done` and then
//! waits for the count to reach zero, so the buffer is never freed under a reader.
//!
//! After `fork`, a child does not have the helper thread; if the shuffle was not done at the
//! fork, the child computes the epoch itself (on first use, on the calling thread, answering
//! Ctrl-C as it goes) and reads that.
//!
//! The helper is started as `util/thread.rs` describes and touches no thread-local storage, so a
//! process short of memory does not die starting it; if no thread can be started, the caller
//! shuffles on its own thread instead.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::epoch::order::RankOrder;
use crate::epoch::shard::Shard;
use crate::orders::mt19937::TorchMt;
use crate::orders::torch::randperm;
use crate::orders::torch::{swap_loop, Generation};
use crate::util::buffer::{zeroed_vec, IndexSlice, IndexVec};
use crate::util::error::{poll, Error};

/// Steps between two publications of the shuffle's progress (well under a millisecond).
const PUBLISH_EVERY: usize = 1 << 16;
/// How long a reader sleeps between two looks at the progress.
const WAIT_STEP: Duration = Duration::from_micros(50);
/// How often a waiting reader asks its caller whether to give up (Ctrl-C).
const CHECK_WAIT: Duration = Duration::from_millis(20);
/// The longest a dropped epoch waits for its helper to stop (it takes well under a
/// millisecond); past it the helper frees the buffers when it ends.
const HELPER_EXIT_WAIT: Duration = Duration::from_secs(10);

/// A `Vec<u32>` taken apart, so that one thread can write positions while others read others.
struct RawBuf {
    ptr: *mut u32,
    len: usize,
}

impl RawBuf {
    fn new(len: usize) -> Result<Self, Error> {
        let mut v = std::mem::ManuallyDrop::new(zeroed_vec::<u32>(len as u64)?);
        debug_assert_eq!(v.len(), v.capacity());
        Ok(Self {
            ptr: v.as_mut_ptr(),
            len: v.len(),
        })
    }

    /// Frees the buffer.
    ///
    /// # Safety
    /// Called once, with no access to the buffer during or after it.
    unsafe fn free(&self) {
        if self.len > 0 {
            drop(Vec::from_raw_parts(self.ptr, self.len, self.len));
        }
    }
}

struct Inner {
    shard: Shard,
    seed: u64,
    /// The torch generation whose order this is (for a forked child's recomputation).
    generation: Generation,
    /// The permutation being shuffled, by the helper only, coded as `P[i] ^ i` (so the zeroed
    /// buffer starts as the identity); positions below `progress` are final. A whole shard's
    /// is decoded in place when done, and is then its share.
    full: RawBuf,
    progress: AtomicUsize,
    /// The rank's share, written by the helper before it sets `done` (unused for a whole shard,
    /// whose share is `full`).
    share: RawBuf,
    done: AtomicBool,
    /// Readers must no longer enter `full` (set before it is decoded in place or freed).
    sealed: AtomicBool,
    /// Readers inside `full` right now.
    readers: AtomicUsize,
    full_freed: AtomicBool,
    /// Set when the epoch is dropped, so that an unfinished shuffle stops.
    cancel: AtomicBool,
    pid: u32,
    /// The share as computed by a forked child whose parent had not finished.
    forked: OnceLock<Vec<u32>>,
}

// SAFETY: the buffers are shared under the protocol in the module docs: the helper alone
// writes `full` (positions >= progress) and `share` (before `done`); readers read final
// positions of `full` while counted in `readers`, and `share` after `done`.
unsafe impl Send for Inner {}
unsafe impl Sync for Inner {}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: the last reference is gone, so nobody reads or writes the buffers.
        unsafe {
            if !self.full_freed.load(Ordering::SeqCst) {
                self.full.free();
            }
            self.share.free();
        }
    }
}

/// A rank's torch-order epoch, shuffled on a helper thread (see the module docs).
pub struct Streamed {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Streamed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streamed")
            .field("shard", &self.inner.shard)
            .field("progress", &self.inner.progress.load(Ordering::Relaxed))
            .field("done", &self.inner.done.load(Ordering::Relaxed))
            .finish()
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        self.inner.cancel.store(true, Ordering::SeqCst);
        // Wait until the helper has let go (it looks at `cancel` every fraction of a
        // millisecond), so that the buffers are freed here and now: whoever drops an epoch can
        // build the next one in the memory it had. A forked child has no helper to wait for.
        if self.inner.pid == std::process::id() {
            let deadline = Instant::now() + HELPER_EXIT_WAIT;
            while Arc::strong_count(&self.inner) > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(20));
            }
        }
    }
}

impl Streamed {
    /// Whether an epoch of this shard is shuffled by torch's swap loop (the one that can be
    /// streamed) in `generation`, in a buffer coded in 32 bits.
    pub fn applies(shard: &Shard, generation: Generation) -> bool {
        generation.swap_regime(shard.n()) && shard.n() < u64::from(u32::MAX) && !shard.is_empty()
    }

    /// Starts shuffling `[0, n)` with torch's generator seeded with `seed` on a helper thread.
    /// `Ok(None)` if no thread could be started (nothing is kept then). Both buffers are
    /// allocated here, so running out of memory is reported now, not while reading.
    pub fn start(shard: Shard, seed: u64, generation: Generation) -> Result<Option<Self>, Error> {
        debug_assert!(Self::applies(&shard, generation));
        let full = RawBuf::new(shard.n() as usize)?;
        let share_len = if shard.is_whole() { 0 } else { shard.len() };
        let share = match RawBuf::new(share_len as usize) {
            Ok(s) => s,
            Err(e) => {
                // SAFETY: just allocated, never shared.
                unsafe { full.free() };
                return Err(e);
            }
        };
        let inner = Arc::new(Inner {
            shard,
            seed,
            generation,
            full,
            progress: AtomicUsize::new(0),
            share,
            done: AtomicBool::new(false),
            sealed: AtomicBool::new(false),
            readers: AtomicUsize::new(0),
            full_freed: AtomicBool::new(false),
            cancel: AtomicBool::new(false),
            pid: std::process::id(),
            forked: OnceLock::new(),
        });
        let helper = Arc::clone(&inner);
        // `shuffle` touches no thread-local storage, as `util/thread.rs` requires.
        let spawned = crate::util::thread::spawn_detached(Box::new(move || helper.shuffle()));
        Ok(spawned.ok().map(|()| Self { inner }))
    }

    /// Writes the indices at positions `start..start + out.len()` into `out`, waiting until
    /// the shuffle has made them final. `interrupted` runs every few milliseconds of waiting;
    /// `true` stops the wait with [`Error::Interrupted`].
    pub fn fill_range(
        &self,
        start: u64,
        out: &mut [u64],
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error> {
        let inner = &*self.inner;
        let mut last = 0;
        inner
            .shard
            .for_each_source(start, out.len(), |_, p| last = last.max(p as usize));
        let mut waited = Duration::ZERO;
        loop {
            if let Some(share) = self.finished_share(interrupted)? {
                let s = start as usize;
                for (o, &v) in out.iter_mut().zip(&share[s..]) {
                    *o = u64::from(v);
                }
                return Ok(());
            }
            if inner.progress.load(Ordering::Acquire) > last {
                inner.readers.fetch_add(1, Ordering::SeqCst);
                if !inner.sealed.load(Ordering::SeqCst) {
                    // Counted in before the seal: `full` stays as it is until we leave, and
                    // every position needed is final (below `progress`, read with Acquire).
                    let full = inner.full.ptr;
                    inner.shard.for_each_source(start, out.len(), |k, p| {
                        // SAFETY: `p < n`, final, and `full` is untouched while we are in.
                        out[k] = u64::from(unsafe { *full.add(p as usize) }) ^ p;
                    });
                    inner.readers.fetch_sub(1, Ordering::SeqCst);
                    return Ok(());
                }
                inner.readers.fetch_sub(1, Ordering::SeqCst);
                // Sealed: the share is moments away.
            }
            std::thread::sleep(WAIT_STEP);
            waited += WAIT_STEP;
            if waited >= CHECK_WAIT {
                waited = Duration::ZERO;
                if interrupted() {
                    return Err(Error::Interrupted);
                }
            }
        }
    }

    /// The whole share, once the shuffle is done; `interrupted` runs every few milliseconds
    /// while waiting, and `true` stops the wait with [`Error::Interrupted`].
    pub fn wait_share(&self, interrupted: &mut dyn FnMut() -> bool) -> Result<&[u32], Error> {
        loop {
            if let Some(share) = self.finished_share(interrupted)? {
                return Ok(share);
            }
            std::thread::sleep(Duration::from_millis(2));
            poll(interrupted)?;
        }
    }

    /// The share if the shuffle is done (in this process, or recomputed after a fork, when
    /// `interrupted` returning `true` stops the recomputation with [`Error::Interrupted`]).
    fn finished_share(
        &self,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Option<&[u32]>, Error> {
        let inner = &*self.inner;
        if inner.done.load(Ordering::SeqCst) {
            let (ptr, len) = if inner.shard.is_whole() {
                (inner.full.ptr, inner.full.len)
            } else {
                (inner.share.ptr, inner.share.len)
            };
            // SAFETY: written before `done` and never again; `full` is kept for a whole shard.
            return Ok(Some(unsafe { std::slice::from_raw_parts(ptr, len) }));
        }
        if inner.pid == std::process::id() {
            return Ok(None);
        }
        // A forked child: the helper stayed in the parent.
        if inner.forked.get().is_none() {
            let share = compute_share(&inner.shard, inner.seed, inner.generation, interrupted)?;
            let _ = inner.forked.set(share);
        }
        Ok(inner.forked.get().map(Vec::as_slice))
    }
}

impl RankOrder for Streamed {
    fn len(&self) -> u64 {
        self.inner.shard.len()
    }

    fn n(&self) -> u64 {
        self.inner.shard.n()
    }

    /// Waits (calling `interrupted` every few milliseconds) until the positions are final.
    fn fill(
        &self,
        start: u64,
        out: &mut [u64],
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error> {
        self.fill_range(start, out, interrupted)
    }

    /// The share, once the shuffle is done.
    fn stored(
        &self,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Option<IndexSlice<'_>>, Error> {
        Ok(Some(IndexSlice::U32(self.wait_share(interrupted)?)))
    }
}

/// The rank's share computed on this thread (after a fork); `interrupted` runs every few tens
/// of milliseconds and `true` stops the work with [`Error::Interrupted`].
fn compute_share(
    shard: &Shard,
    seed: u64,
    generation: Generation,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<Vec<u32>, Error> {
    // n < 2**32, so the permutation is a `uint32` buffer.
    let IndexVec::U32(full) = randperm(shard.n(), seed, generation, interrupted)? else {
        return Err(Error::InvalidArgument(
            "streamed epochs have fewer than 2**32 items".into(),
        ));
    };
    shard.take(full, interrupted)
}

impl Inner {
    /// The helper thread's work: shuffle, publish, make the share, free the permutation.
    fn shuffle(&self) {
        let n = self.full.len;
        let full = self.full.ptr;
        // SAFETY: only this thread writes `full`; readers read positions below `progress`.
        let finished = unsafe {
            swap_loop::<u32, true>(
                full,
                n,
                &mut TorchMt::new(self.seed),
                PUBLISH_EVERY,
                &mut |i| {
                    self.progress.store(i, Ordering::Release);
                    !self.cancel.load(Ordering::Relaxed)
                },
            )
        };
        if !finished {
            return; // dropped: `Inner::drop` frees the buffers
        }
        self.progress.store(n, Ordering::Release);
        let cancelled = || self.cancel.load(Ordering::Relaxed);
        if self.shard.is_whole() {
            // The permutation is the share: decode it in place once no reader is inside.
            self.seal();
            for start in (0..n).step_by(PUBLISH_EVERY) {
                if cancelled() {
                    return;
                }
                for i in start..(start + PUBLISH_EVERY).min(n) {
                    // SAFETY: in bounds, and sealed: no reader is inside `full`.
                    unsafe { *full.add(i) ^= i as u32 };
                }
            }
            self.done.store(true, Ordering::SeqCst);
            return;
        }
        let share = self.share.ptr;
        let len = self.share.len;
        for start in (0..len).step_by(PUBLISH_EVERY) {
            if cancelled() {
                return;
            }
            let count = PUBLISH_EVERY.min(len - start);
            self.shard.for_each_source(start as u64, count, |k, p| {
                // SAFETY: both in bounds; `share` is not read before `done`.
                unsafe { *share.add(start + k) = *full.add(p as usize) ^ p as u32 };
            });
        }
        self.done.store(true, Ordering::SeqCst);
        self.seal();
        self.full_freed.store(true, Ordering::SeqCst);
        // SAFETY: sealed, so no reader is inside `full` and none will enter it.
        unsafe { self.full.free() };
    }

    /// Closes `full` to readers and waits for those inside to leave. A reader counts itself
    /// in and then checks `sealed`; this thread sets `sealed` and then checks the count; both
    /// sequentially consistent, so at least one of them sees the other.
    fn seal(&self) {
        self.sealed.store(true, Ordering::SeqCst);
        while self.readers.load(Ordering::SeqCst) != 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn torch_share(shard: &Shard, seed: u64) -> Vec<u64> {
        let perm = randperm(shard.n(), seed, Generation::Current, &mut || false).unwrap();
        let IndexVec::U32(p) = perm else { panic!() };
        let mut out = vec![0u64; shard.len() as usize];
        shard.for_each_source(0, out.len(), |k, q| out[k] = u64::from(p[q as usize]));
        out
    }

    #[test]
    fn streamed_reads_equal_the_stored_epoch_at_any_time() {
        for &(n, w, r, offset) in &[
            (1u64, 1u64, 0u64, 0u64),
            (2, 1, 0, 0),
            (1000, 3, 1, 0),
            (300_007, 8, 3, 0),
            (300_007, 8, 3, 150_000),
            (1 << 20, 1, 0, 0),
            (1 << 20, 1, 0, 12_345),
            (999_999, 5, 4, 999_990),
        ] {
            let shard = Shard::new(n, w, r, offset, false).unwrap();
            let want = torch_share(&shard, 42);
            let s = Streamed::start(shard, 42, Generation::Current)
                .unwrap()
                .unwrap();
            assert_eq!(s.len(), want.len() as u64);
            // Read in pieces while the shuffle runs, then again once it is done.
            let mut got = Vec::new();
            for piece in want.chunks(4096).map(<[u64]>::len) {
                let mut buf = vec![0u64; piece];
                s.fill_range(got.len() as u64, &mut buf, &mut || false)
                    .unwrap();
                got.extend(buf);
            }
            assert_eq!(got, want, "n={n} w={w} r={r} offset={offset}");
            let share = s.wait_share(&mut || false).unwrap();
            assert!(share.iter().zip(&want).all(|(&a, &b)| u64::from(a) == b));
            let mut again = vec![0u64; want.len()];
            s.fill_range(0, &mut again, &mut || false).unwrap();
            assert_eq!(again, want);
        }
    }

    #[test]
    fn a_resume_deep_in_the_epoch_reads_the_same_values() {
        let shard = Shard::new(3_000_000, 4, 2, 2_000_000, false).unwrap();
        let want = torch_share(&shard, 7);
        let s = Streamed::start(shard, 7, Generation::Current)
            .unwrap()
            .unwrap();
        let mut tail = vec![0u64; 1000];
        s.fill_range(want.len() as u64 - 1000, &mut tail, &mut || false)
            .unwrap();
        assert_eq!(tail, want[want.len() - 1000..]);
    }

    #[test]
    fn dropping_an_unfinished_epoch_stops_its_shuffle() {
        let n = 50_000_000;
        for _ in 0..4 {
            let shard = Shard::new(n, 8, 0, 0, false).unwrap();
            let s = Streamed::start(shard, 1, Generation::Current)
                .unwrap()
                .unwrap();
            // What `drop` does first; the helper must then let go long before the end.
            s.inner.cancel.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Arc::strong_count(&s.inner) > 1 {
                assert!(Instant::now() < deadline, "the helper did not stop");
                std::thread::sleep(Duration::from_millis(1));
            }
            let progress = s.inner.progress.load(Ordering::SeqCst);
            assert!(progress < n as usize, "stopped at {progress} of {n}");
            assert!(!s.inner.done.load(Ordering::SeqCst));
            let inner = Arc::downgrade(&s.inner);
            drop(s);
            assert!(inner.upgrade().is_none(), "freed when dropped");
        }
    }

    #[test]
    fn a_dropped_epoch_is_freed_before_drop_returns() {
        for (w, read_to_end) in [(1, true), (1, false), (3, true), (3, false)] {
            let shard = Shard::new(20_000_000, w, 0, 0, false).unwrap();
            let s = Streamed::start(shard, 2, Generation::Current)
                .unwrap()
                .unwrap();
            if read_to_end {
                let mut tail = [0u64; 10];
                s.fill_range(s.len() - 10, &mut tail, &mut || false)
                    .unwrap();
            }
            let inner = Arc::downgrade(&s.inner);
            drop(s);
            assert!(inner.upgrade().is_none(), "w={w} read_to_end={read_to_end}");
        }
    }

    #[test]
    fn readers_on_many_threads_agree() {
        let shard = Shard::new(2_000_003, 2, 1, 0, false).unwrap();
        let want = torch_share(&shard, 3);
        let s = Streamed::start(shard, 3, Generation::Current)
            .unwrap()
            .unwrap();
        let mut got = vec![vec![0u64; 300_000]; 4];
        let tasks = got
            .iter_mut()
            .enumerate()
            .map(|(t, buf)| {
                let s = &s;
                Box::new(move || {
                    s.fill_range(t as u64 * 200_000, buf, &mut || false)
                        .unwrap();
                }) as Box<dyn FnOnce() + Send + '_>
            })
            .collect();
        crate::util::thread::run_all(tasks);
        for (t, buf) in got.iter().enumerate() {
            assert_eq!(
                buf[..],
                want[t * 200_000..t * 200_000 + 300_000],
                "reader {t}"
            );
        }
    }
}

#[cfg(test)]
mod interrupt_tests {
    use super::*;

    #[test]
    fn a_waiting_reader_can_be_interrupted() {
        let shard = Shard::new(100_000_000, 1, 0, 0, false).unwrap();
        let s = Streamed::start(shard, 1, Generation::Current)
            .unwrap()
            .unwrap();
        let mut out = [0u64; 10];
        let mut asked = 0;
        let r = s.fill_range(99_999_000, &mut out, &mut || {
            asked += 1;
            true
        });
        assert_eq!(r, Err(Error::Interrupted));
        assert_eq!(asked, 1);
    }
}
