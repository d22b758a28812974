//! Length grouping and token-budget packing, computed from a lengths buffer that is only read.
//!
//! - The length-grouped order is transformers' `get_length_grouped_indices(lengths, b, mult,
//!   generator)`: `P = torch.randperm(n)`, cut into megabatches of `mult * b` consecutive
//!   positions (the last one shorter), each sorted by length, longest first, equal lengths in
//!   `P`'s order (Python's stable `sorted(..., reverse=True)`); then the first element of the
//!   first megabatch whose longest element is the longest of all (`torch.argmax` over the
//!   megabatches' maxima, first maximum) is swapped with the first element of megabatch 0.
//! - Token-budget batches: the same sorted megabatches, each cut greedily into batches of at
//!   most `max_tokens` padded tokens (`len(batch) * max(length in batch)`) and at most
//!   `max_batch_size` samples; a sample longer than the budget gets a batch of its own. The
//!   batches are then shuffled by `torch.randperm(num_batches)` drawn from the same generator,
//!   continuing after the sample permutation.
//!
//! Megabatches are sorted on all cores in chunks, with the caller's `interrupted` between chunks;
//! the result never depends on the number of threads.

use crate::orders::mt19937::TorchMt;
use crate::orders::torch::{epoch_seed, randperm, randperm_from, Generation};
use crate::util::buffer::{IndexElem, IndexVec};
use crate::util::error::{invalid, poll, Error};
use crate::util::thread::cores;

/// An element of a lengths buffer (any NumPy integer type).
pub trait LengthElem: Copy + Send + Sync + 'static {
    /// The length as `i128` (exact for every integer type).
    fn wide(self) -> i128;
    /// The length as `u64`; exact once [`scan`] has accepted the buffer (no negatives).
    fn get(self) -> u64;
}

macro_rules! length_elem {
    ($($t:ty),*) => {$(
        impl LengthElem for $t {
            #[inline(always)]
            fn wide(self) -> i128 {
                self as i128
            }
            #[inline(always)]
            fn get(self) -> u64 {
                self as u64
            }
        }
    )*};
}
length_elem!(u8, u16, u32, u64, i8, i16, i32, i64);

/// What one pass over the lengths finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    pub n: u64,
    pub max: u64,
    pub sum: u128,
    /// A 63-bit hash of the values (as integers, whatever their type) and their count.
    pub fingerprint: u64,
    /// The first `(index, length)` with a length above the `limit` given to [`scan`].
    pub first_above: Option<(u64, u64)>,
}

/// Elements read between two calls of the caller's `interrupted`.
const SCAN_CHUNK: usize = 1 << 22;
const FP_MUL: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline(always)]
fn fp_step(h: u64, v: u64) -> u64 {
    (h.rotate_left(23) ^ v).wrapping_mul(FP_MUL)
}

/// splitmix64's finaliser: a bijection that spreads every input bit.
fn fp_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Checks that every length is non-negative and computes [`Stats`]; `limit` sets what
/// `first_above` looks for. Changing any one value always changes the fingerprint.
pub fn scan<L: LengthElem>(
    lengths: &[L],
    limit: u64,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<Stats, Error> {
    let mut lanes = [0u64; 4];
    let mut max = 0u64;
    let mut sum = 0u128;
    let mut first_above = None;
    let mut base = 0usize;
    for chunk in lengths.chunks(SCAN_CHUNK) {
        if let Some(k) = chunk.iter().position(|&l| l.wide() < 0) {
            let (i, v) = (base + k, chunk[k].wide());
            return Err(invalid(format!(
                "lengths should hold non-negative integers, got lengths[{i}] = {v}"
            )));
        }
        let mut quads = chunk.chunks_exact(4);
        for q in &mut quads {
            for (lane, &l) in lanes.iter_mut().zip(q) {
                *lane = fp_step(*lane, l.get());
            }
        }
        for (lane, &l) in lanes.iter_mut().zip(quads.remainder()) {
            *lane = fp_step(*lane, l.get());
        }
        let mut chunk_sum = 0u128;
        for &l in chunk {
            let v = l.get();
            max = max.max(v);
            chunk_sum += u128::from(v);
        }
        sum += chunk_sum;
        if first_above.is_none() {
            if let Some(k) = chunk.iter().position(|&l| l.get() > limit) {
                first_above = Some(((base + k) as u64, chunk[k].get()));
            }
        }
        base += chunk.len();
        poll(interrupted)?;
    }
    let n = lengths.len() as u64;
    let mut h = fp_mix(n);
    for lane in lanes {
        h = fp_mix(h ^ lane);
    }
    Ok(Stats {
        n,
        max,
        sum,
        fingerprint: h >> 1,
        first_above,
    })
}

/// transformers' default megabatch multiplier: `min(n // (batch_size * 4), 50)`, at least 1.
pub fn default_megabatch_mult(n: u64, batch_size: u64) -> u64 {
    let per = batch_size.saturating_mul(4).max(1);
    (n / per).clamp(1, 50)
}

/// How an epoch is cut into megabatches: `mult` batches of `batch_size` samples each, sized by
/// [`megabatch_size`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Megabatch {
    pub batch_size: u64,
    pub mult: u64,
}

/// `mult * batch_size` samples per megabatch, capped at `n` (one megabatch holds them all).
pub fn megabatch_size(n: u64, batch_size: u64, mult: u64) -> Result<u64, Error> {
    if batch_size == 0 || mult == 0 {
        return Err(invalid(format!(
            "batch_size and megabatch_mult should be positive, got {batch_size} and {mult}"
        )));
    }
    Ok(batch_size.saturating_mul(mult).min(n.max(1)))
}

/// The typical number of samples in a token-budget batch: `max_tokens // mean length`,
/// between 1 and `max_batch_size`. Megabatches hold `megabatch_mult` of these.
pub fn typical_batch_size(stats: &Stats, max_tokens: u64, max_batch_size: u64) -> u64 {
    let mean = if stats.n == 0 {
        1
    } else {
        stats.sum.div_ceil(u128::from(stats.n)).max(1)
    };
    let b = (u128::from(max_tokens) / mean).clamp(1, u128::from(max_batch_size.max(1)));
    b as u64
}

/// Megabatches sorted between two calls of `interrupted` (about this many samples).
const SORT_CHUNK: usize = 1 << 20;
/// Orders shorter than this are sorted on the calling thread only.
const PARALLEL_SORT: usize = 1 << 16;

/// Sorts each run of `size` consecutive elements of `order` (the last run shorter) by length,
/// longest first, keeping the order of equal lengths.
fn sort_megabatches<T: IndexElem, L: LengthElem>(
    order: &mut [T],
    lengths: &[L],
    size: usize,
    max_len: u64,
    threads: usize,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<(), Error> {
    let size = size.max(1);
    let threads = if order.len() >= PARALLEL_SORT {
        threads.max(1)
    } else {
        1
    };
    let per_chunk = (SORT_CHUNK / size).max(1) * size;
    for chunk in order.chunks_mut(per_chunk) {
        let megabatches = chunk.len().div_ceil(size);
        let per_thread = megabatches.div_ceil(threads) * size;
        let parts = chunk.len().div_ceil(per_thread);
        let mut results: Vec<Result<(), Error>> = Vec::new();
        reserve(&mut results, parts)?;
        results.resize(parts, Ok(()));
        // Each part is sorted on a helper thread, or here if the OS refuses one (`util/thread.rs`).
        let mut tasks: Vec<Box<dyn FnOnce() + Send + '_>> = Vec::new();
        reserve(&mut tasks, parts)?;
        for (part, result) in chunk.chunks_mut(per_thread).zip(results.iter_mut()) {
            tasks.push(Box::new(move || {
                *result = sort_part(part, lengths, size, max_len);
            }));
        }
        crate::util::thread::run_all(tasks);
        // A helper that could not allocate its scratch space (a new thread may find no room
        // for its own allocations) left its part as it was: sort it here.
        for (part, result) in chunk.chunks_mut(per_thread).zip(results) {
            if result.is_err() {
                sort_part(part, lengths, size, max_len)?;
            }
        }
        poll(interrupted)?;
    }
    Ok(())
}

/// Room for `len` more elements in `v`, or `Error::Alloc`.
fn reserve<V>(v: &mut Vec<V>, len: usize) -> Result<(), Error> {
    v.try_reserve_exact(len).map_err(|_| Error::Alloc {
        bytes: len as u128 * std::mem::size_of::<V>() as u128,
    })
}

/// Sorts the megabatches of one thread's part. Fails only if its scratch buffers (about 12
/// bytes per sample of one megabatch, 24 for lengths above `u32::MAX`) cannot be allocated,
/// and then before touching the part.
fn sort_part<T: IndexElem, L: LengthElem>(
    part: &mut [T],
    lengths: &[L],
    size: usize,
    max_len: u64,
) -> Result<(), Error> {
    let len_of = |i: T| lengths[i.to_u64() as usize].get();
    let room = size.min(part.len());
    if max_len <= u64::from(u16::MAX) {
        let mut scratch = RadixScratch::default();
        reserve(&mut scratch.keys, room)?;
        reserve(&mut scratch.tmp_keys, room)?;
        reserve(&mut scratch.tmp_vals, room)?;
        for mb in part.chunks_mut(size) {
            radix_sort_desc16(mb, &len_of, &mut scratch);
        }
        return Ok(());
    }
    if max_len > u64::from(u32::MAX) || size > u32::MAX as usize {
        // (inverted length, position) in 128 bits.
        let key = |i: T, k: usize| (u128::from(!len_of(i)) << 64) | k as u128;
        return sort_by_packed_keys(part, size, room, key, |key| key as u64 as usize);
    }
    let key = |i: T, k: usize| (u64::from(!(len_of(i) as u32)) << 32) | k as u64;
    sort_by_packed_keys(part, size, room, key, |key| (key & 0xFFFF_FFFF) as usize)
}

/// Sorts each megabatch (of `size`) of `part` by length, descending, ties in their order:
/// `key(index, position)` packs the inverted length above the position, so the keys are
/// distinct and an unstable sort of them is the stable sort by length; `position(key)` unpacks
/// the position. The scratch space (`room` keys and indices) is allocated fallibly (a stable
/// sort allocates its own and aborts if it cannot), before the part is touched.
fn sort_by_packed_keys<T: IndexElem, K: Ord + Copy>(
    part: &mut [T],
    size: usize,
    room: usize,
    key: impl Fn(T, usize) -> K,
    position: impl Fn(K) -> usize,
) -> Result<(), Error> {
    let mut keys: Vec<K> = Vec::new();
    let mut vals: Vec<T> = Vec::new();
    reserve(&mut keys, room)?;
    reserve(&mut vals, room)?;
    for mb in part.chunks_mut(size) {
        keys.clear();
        keys.extend(mb.iter().enumerate().map(|(k, &i)| key(i, k)));
        keys.sort_unstable();
        vals.clear();
        vals.extend_from_slice(mb);
        for (o, &k) in mb.iter_mut().zip(&keys) {
            *o = vals[position(k)];
        }
    }
    Ok(())
}

/// Buffers reused across the megabatches of one thread.
struct RadixScratch<T> {
    keys: Vec<u16>,
    tmp_keys: Vec<u16>,
    tmp_vals: Vec<T>,
}

impl<T> Default for RadixScratch<T> {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            tmp_keys: Vec::new(),
            tmp_vals: Vec::new(),
        }
    }
}

/// A stable sort of `mb` by 16-bit length, longest first: two counting passes (low byte, then
/// high byte) over the inverted lengths, each stable.
fn radix_sort_desc16<T: IndexElem>(
    mb: &mut [T],
    len_of: &impl Fn(T) -> u64,
    scratch: &mut RadixScratch<T>,
) {
    let RadixScratch {
        keys,
        tmp_keys,
        tmp_vals,
    } = scratch;
    keys.clear();
    keys.extend(mb.iter().map(|&i| !(len_of(i) as u16)));
    tmp_keys.clear();
    tmp_keys.resize(mb.len(), 0);
    tmp_vals.clear();
    tmp_vals.resize(mb.len(), T::default());
    radix_pass(keys, mb, tmp_keys, tmp_vals, 0);
    radix_pass(tmp_keys, tmp_vals, keys, mb, 8);
}

/// One stable counting pass on byte `shift / 8` of the keys, from `(keys, vals)` to
/// `(out_keys, out_vals)`.
fn radix_pass<T: Copy>(
    keys: &[u16],
    vals: &[T],
    out_keys: &mut [u16],
    out_vals: &mut [T],
    shift: u32,
) {
    let mut starts = [0usize; 256];
    for &k in keys {
        starts[usize::from((k >> shift) as u8)] += 1;
    }
    let mut total = 0;
    for c in starts.iter_mut() {
        (*c, total) = (total, total + *c);
    }
    for (&k, &v) in keys.iter().zip(vals) {
        let slot = &mut starts[usize::from((k >> shift) as u8)];
        out_keys[*slot] = k;
        out_vals[*slot] = v;
        *slot += 1;
    }
}

/// [`megabatch_size`] for `n` samples, as a slice length.
fn megabatch_len(n: u64, megabatch: Megabatch) -> Result<usize, Error> {
    let size = megabatch_size(n, megabatch.batch_size, megabatch.mult)?;
    Ok(usize::try_from(size).unwrap_or(usize::MAX))
}

/// transformers' `get_length_grouped_indices` for megabatches of `megabatch` (sized by
/// [`megabatch_size`]) and the generator seeded with `seed`. `max_len` is [`Stats::max`].
pub fn length_grouped<L: LengthElem>(
    lengths: &[L],
    max_len: u64,
    megabatch: Megabatch,
    seed: u64,
    generation: Generation,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<IndexVec, Error> {
    let n = lengths.len() as u64;
    let size = megabatch_len(n, megabatch)?;
    let mut order = randperm(n, seed, generation, interrupted)?;
    match &mut order {
        IndexVec::U32(o) => group(o, lengths, size, max_len, cores(), interrupted)?,
        IndexVec::I64(o) => group(o, lengths, size, max_len, cores(), interrupted)?,
    }
    Ok(order)
}

fn group<T: IndexElem, L: LengthElem>(
    order: &mut [T],
    lengths: &[L],
    size: usize,
    max_len: u64,
    threads: usize,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<(), Error> {
    if order.is_empty() {
        return Ok(());
    }
    sort_megabatches(order, lengths, size, max_len, threads, interrupted)?;
    let len_of = |i: T| lengths[i.to_u64() as usize].get();
    let (mut best, mut best_len) = (0, len_of(order[0]));
    for start in (size..order.len()).step_by(size) {
        let l = len_of(order[start]);
        if l > best_len {
            (best, best_len) = (start, l);
        }
    }
    order.swap(0, best);
    Ok(())
}

/// One epoch's token-budget batches.
#[derive(Debug)]
pub struct Packing {
    /// The samples, megabatch by megabatch, each sorted longest first; batch `k` is
    /// `samples[starts[k]..starts[k + 1]]`.
    pub samples: IndexVec,
    /// `num_batches + 1` boundaries into `samples`.
    pub starts: Vec<u64>,
    /// The shuffled order of the batches: the epoch's global sequence of batch ids.
    pub order: IndexVec,
}

impl Packing {
    pub fn num_batches(&self) -> u64 {
        self.starts.len() as u64 - 1
    }

    /// The positions of batch `k` in `samples`.
    pub fn range(&self, k: u64) -> std::ops::Range<usize> {
        self.starts[k as usize] as usize..self.starts[k as usize + 1] as usize
    }
}

/// Packs `samples` (megabatches of `size`, each sorted longest first) into batches and returns
/// their boundaries.
fn pack<T: IndexElem, L: LengthElem>(
    samples: &[T],
    lengths: &[L],
    size: usize,
    max_tokens: u64,
    max_batch_size: u64,
) -> Result<Vec<u64>, Error> {
    let mut starts: Vec<u64> = Vec::new();
    let grow = |starts: &mut Vec<u64>, more: usize| {
        starts.try_reserve(more).map_err(|_| Error::Alloc {
            bytes: (starts.len() as u128 + more as u128) * 8,
        })
    };
    grow(&mut starts, 1)?;
    starts.push(0);
    let mut base = 0usize;
    for mb in samples.chunks(size) {
        let mut k = 0;
        while k < mb.len() {
            let first = lengths[mb[k].to_u64() as usize].get();
            // Sorted longest first: every later sample of the batch is no longer.
            let cap = max_tokens
                .checked_div(first)
                .unwrap_or(u64::MAX)
                .clamp(1, max_batch_size.max(1));
            let take = usize::try_from(cap).unwrap_or(usize::MAX).min(mb.len() - k);
            k += take;
            if starts.len() == starts.capacity() {
                let more = starts.len();
                grow(&mut starts, more)?;
            }
            starts.push((base + k) as u64);
        }
        base += mb.len();
    }
    Ok(starts)
}

/// One epoch of token-budget batches for the generator seeded with `seed + epoch`: megabatches of
/// `megabatch` typical batches (sized by [`megabatch_size`]), batches of at most `max_tokens`
/// padded tokens (a longer sample alone) and at most `max_batch_size` samples, in a shuffled
/// order.
#[allow(clippy::too_many_arguments)]
pub fn token_budget<L: LengthElem>(
    lengths: &[L],
    max_len: u64,
    megabatch: Megabatch,
    max_tokens: u64,
    max_batch_size: u64,
    seed: u64,
    epoch: u64,
    generation: Generation,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<Packing, Error> {
    let n = lengths.len() as u64;
    let size = megabatch_len(n, megabatch)?;
    // The batch order continues the generator where the sample permutation left it.
    let mut rng = TorchMt::new(epoch_seed(seed, epoch));
    let mut samples = randperm_from(n, &mut rng, generation, interrupted)?;
    let starts = match &mut samples {
        IndexVec::U32(o) => {
            sort_megabatches(o, lengths, size, max_len, cores(), interrupted)?;
            pack(o, lengths, size, max_tokens, max_batch_size)?
        }
        IndexVec::I64(o) => {
            sort_megabatches(o, lengths, size, max_len, cores(), interrupted)?;
            pack(o, lengths, size, max_tokens, max_batch_size)?
        }
    };
    let batches = starts.len() as u64 - 1;
    let order = randperm_from(batches, &mut rng, generation, interrupted)?;
    Ok(Packing {
        samples,
        starts,
        order,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Reverse;

    fn ok() -> bool {
        false
    }

    fn perm(n: u64, seed: u64) -> Vec<u64> {
        let p = randperm(n, seed, Generation::Current, &mut ok).unwrap();
        (0..p.len()).map(|k| p.get(k)).collect()
    }

    /// transformers' function written plainly.
    fn reference(lengths: &[u64], batch_size: u64, mult: u64, seed: u64) -> Vec<u64> {
        let n = lengths.len() as u64;
        let size = (batch_size * mult) as usize;
        let p = perm(n, seed);
        let mut mbs: Vec<Vec<u64>> = p.chunks(size).map(|c| c.to_vec()).collect();
        for mb in &mut mbs {
            mb.sort_by_key(|&i| Reverse(lengths[i as usize]));
        }
        let maxima: Vec<u64> = mbs.iter().map(|mb| lengths[mb[0] as usize]).collect();
        let top = *maxima.iter().max().unwrap();
        let best = maxima.iter().position(|&m| m == top).unwrap();
        let (a, b) = (mbs[0][0], mbs[best][0]);
        mbs[0][0] = b;
        mbs[best][0] = a;
        mbs.concat()
    }

    fn grouped<L: LengthElem>(lengths: &[L], b: u64, mult: u64, seed: u64, t: usize) -> Vec<u64> {
        let n = lengths.len() as u64;
        let max = scan(lengths, u64::MAX, &mut ok).unwrap().max;
        let mut order = randperm(n, seed, Generation::Current, &mut ok).unwrap();
        let size = megabatch_size(n, b, mult).unwrap() as usize;
        match &mut order {
            IndexVec::U32(o) => group(o, lengths, size, max, t, &mut ok).unwrap(),
            IndexVec::I64(o) => group(o, lengths, size, max, t, &mut ok).unwrap(),
        }
        (0..order.len()).map(|k| order.get(k)).collect()
    }

    #[test]
    fn every_key_width_sorts_like_the_reference() {
        // Lengths below 2**16 (radix sort), below 2**32 (64-bit keys) and above (128-bit keys),
        // with many ties.
        for scale in [1u64, 1 << 20, 1 << 40] {
            let lengths: Vec<u64> = (0..500u64).map(|i| (i * 2654435761 % 97) * scale).collect();
            for (b, mult) in [(4, 3), (7, 50)] {
                assert_eq!(
                    grouped(&lengths, b, mult, 9, 2),
                    reference(&lengths, b, mult, 9)
                );
            }
        }
    }

    #[test]
    fn builds_size_megabatches_by_the_megabatch_rule() {
        let lengths: Vec<u32> = (0..30u32).map(|i| (i * 7) % 11).collect();
        let max = 10;
        let build = |batch_size, mult| {
            let mb = Megabatch { batch_size, mult };
            length_grouped(&lengths, max, mb, 4, Generation::Current, &mut ok)
        };
        let as_vec = |v: IndexVec| (0..v.len()).map(|k| v.get(k)).collect::<Vec<_>>();
        assert_eq!(as_vec(build(3, 4).unwrap()), grouped(&lengths, 3, 4, 4, 1));
        // Capped at n: one megabatch, however large the product.
        assert_eq!(
            as_vec(build(u64::MAX, 3).unwrap()),
            grouped(&lengths, 30, 1, 4, 1)
        );
        for (b, mult) in [(0, 3), (3, 0)] {
            assert!(build(b, mult).is_err());
            let mb = Megabatch {
                batch_size: b,
                mult,
            };
            assert!(
                token_budget(&lengths, max, mb, 20, 4, 4, 0, Generation::Current, &mut ok).is_err()
            );
        }
    }

    #[test]
    fn default_mult_is_transformers() {
        assert_eq!(default_megabatch_mult(10, 8), 1);
        assert_eq!(default_megabatch_mult(1000, 8), 31);
        assert_eq!(default_megabatch_mult(100_000, 8), 50);
        assert_eq!(default_megabatch_mult(5, u64::MAX), 1);
    }

    #[test]
    fn negative_lengths_are_named() {
        let e = scan(&[3i64, 0, -2, 5], 10, &mut ok).unwrap_err();
        assert_eq!(
            e,
            invalid("lengths should hold non-negative integers, got lengths[2] = -2")
        );
    }

    #[test]
    fn fingerprint_ignores_the_type_and_sees_every_value() {
        let a: Vec<u16> = (0..1000).map(|i| (i * 7 % 300) as u16).collect();
        let b: Vec<i64> = a.iter().map(|&v| i64::from(v)).collect();
        let fa = scan(&a, 0, &mut ok).unwrap();
        let fb = scan(&b, 0, &mut ok).unwrap();
        assert_eq!(fa.fingerprint, fb.fingerprint);
        assert!(fa.fingerprint < 1 << 63);
        assert_eq!(fa.first_above, Some((1, 7)));
        for k in [0, 1, 2, 3, 500, 999] {
            let mut c = a.clone();
            c[k] += 1;
            assert_ne!(scan(&c, 0, &mut ok).unwrap().fingerprint, fa.fingerprint);
        }
        assert_ne!(
            scan(&a[..999], 0, &mut ok).unwrap().fingerprint,
            fa.fingerprint
        );
        let mut swapped = a.clone();
        swapped.swap(10, 11);
        assert_ne!(
            scan(&swapped, 0, &mut ok).unwrap().fingerprint,
            fa.fingerprint
        );
    }

    #[test]
    fn wide_lengths_use_the_stable_sort_and_agree() {
        let small: Vec<u64> = (0..5000u64).map(|i| (i * 7919) % 97).collect();
        let wide: Vec<u64> = small.iter().map(|&v| v << 33).collect();
        for (b, mult) in [(1, 1), (4, 3), (16, 50)] {
            let want = grouped(&small, b, mult, 11, 1);
            assert_eq!(grouped(&wide, b, mult, 11, 1), want);
            assert_eq!(want, reference(&small, b, mult, 11));
        }
    }

    #[test]
    fn the_three_sorts_agree() {
        // 16-bit lengths (radix), 32-bit lengths (keys) and wider ones (stable sort).
        let small: Vec<u64> = (0..20_000u64).map(|i| (i * 7919) % 1013).collect();
        let want = reference(&small, 8, 7, 4);
        for shift in [0, 20, 40] {
            let wide: Vec<u64> = small.iter().map(|&v| v << shift).collect();
            assert_eq!(grouped(&wide, 8, 7, 4, 2), want, "shift {shift}");
        }
    }

    #[test]
    fn threads_do_not_change_the_order() {
        let lengths: Vec<u16> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 22) as u16)
            .collect();
        let one = grouped(&lengths, 32, 50, 5, 1);
        assert_eq!(grouped(&lengths, 32, 50, 5, 2), one);
        assert_eq!(grouped(&lengths, 32, 50, 5, 7), one);
    }

    #[test]
    fn token_budget_continues_the_generator() {
        let lengths: Vec<u32> = (0..200u32).map(|i| 1 + (i * 37) % 50).collect();
        let megabatch = Megabatch {
            batch_size: 20,
            mult: 2,
        };
        let p = token_budget(
            &lengths,
            50,
            megabatch,
            100,
            u64::MAX,
            1,
            2,
            Generation::Current,
            &mut ok,
        )
        .unwrap();
        // torch's swap loop written plainly: the samples' permutation, then the batches'
        // from the same generator.
        let plain = |m: usize, rng: &mut TorchMt| {
            let mut p: Vec<u64> = (0..m as u64).collect();
            for i in 0..m.saturating_sub(1) {
                p.swap(i, i + rng.next_u32() as usize % (m - i));
            }
            p
        };
        let mut rng = TorchMt::new(3);
        plain(200, &mut rng);
        let want = plain(p.num_batches() as usize, &mut rng);
        let got: Vec<u64> = (0..p.order.len()).map(|k| p.order.get(k)).collect();
        assert_eq!(got, want);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn equals_the_plain_reference(
            lengths in prop::collection::vec(0u64..40, 1..400),
            b in 1u64..20,
            mult in 1u64..8,
            seed: u64,
            t in 1usize..4,
        ) {
            let n = lengths.len() as u64;
            let mult = mult.min(n.div_ceil(b));
            prop_assert_eq!(grouped(&lengths, b, mult, seed, t), reference(&lengths, b, mult, seed));
        }

        #[test]
        fn token_budget_batches_partition_and_respect_the_budget(
            lengths in prop::collection::vec(0u32..60, 1..400),
            megabatch in 1u64..100,
            max_tokens in 1u64..200,
            max_batch_size in 1u64..20,
            seed: u64,
        ) {
            let max = lengths.iter().copied().max().unwrap() as u64;
            let mb = Megabatch { batch_size: megabatch, mult: 1 };
            let p = token_budget(&lengths, max, mb, max_tokens, max_batch_size, seed, 0, Generation::Current, &mut ok).unwrap();
            let n = lengths.len();
            let mut seen = vec![false; n];
            prop_assert_eq!(p.starts[0], 0);
            prop_assert_eq!(*p.starts.last().unwrap(), n as u64);
            for k in 0..p.num_batches() {
                let r = p.range(k);
                prop_assert!(!r.is_empty());
                prop_assert!(r.len() as u64 <= max_batch_size);
                // A batch never crosses a megabatch boundary.
                prop_assert_eq!(r.start as u64 / megabatch, (r.end as u64 - 1) / megabatch);
                let lens: Vec<u64> = r.clone().map(|j| u64::from(lengths[p.samples.get(j) as usize])).collect();
                let top = lens[0];
                prop_assert!(lens.windows(2).all(|w| w[0] >= w[1]));
                prop_assert!(lens.len() == 1 || lens.len() as u64 * top <= max_tokens);
                for j in r {
                    let i = p.samples.get(j) as usize;
                    prop_assert!(!seen[i]);
                    seen[i] = true;
                }
            }
            prop_assert!(seen.iter().all(|&s| s));
            let mut order: Vec<u64> = (0..p.order.len()).map(|k| p.order.get(k)).collect();
            order.sort_unstable();
            prop_assert_eq!(order, (0..p.num_batches()).collect::<Vec<_>>());
        }

    }
}
