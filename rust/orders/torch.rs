//! `torch.randperm` on the CPU, bit for bit, and fast.
//!
//! torch (aten `randperm_cpu`) has two loops:
//! - the swap loop: start from the identity and for `i` in `0..n-1` swap `P[i]` with
//!   `P[i + random() % (n - i)]` (`random()` is one 32-bit draw);
//! - the "inside-out" Fisher-Yates: for `i` in `0..n`, `z = random64() % (i + 1)`,
//!   `P[i] = P[z]; P[z] = i`.
//!
//! Which one runs depends on torch's release ([`Generation`]): up to torch 2.5 the swap loop
//! runs for every `n`; from torch 2.6 on (pytorch PR #143682) the inside-out loop runs for
//! `n >= u32::MAX / 20`.
//!
//! The random stream never depends on the array, so the swap targets are drawn `AHEAD` steps
//! early into a ring and their cache lines prefetched; by the time a swap runs its memory is
//! (usually) in cache. That hides most of the cache-miss latency that dominates torch's loop,
//! and the output is unchanged because the draws happen in the same order.
//!
//! Each loop draws from a generator it is handed and leaves it right after its last draw, as
//! torch's generator is left: an order that draws more after a permutation (the token-budget
//! batch order) continues from there ([`shuffle`], [`randperm_from`]).

use crate::orders::mt19937::TorchMt;
use crate::util::buffer::{IndexElem, IndexVec};
use crate::util::error::{invalid, poll, Error};
use crate::util::limits::MAX_LEN;

/// torch (from 2.6) uses the swap loop for `n` below this and the inside-out loop from here on.
pub const SWAP_REGIME_LIMIT: u64 = (u32::MAX / 20) as u64;

/// Which torch releases' `randperm` to follow: they differ for `n >= SWAP_REGIME_LIMIT` only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Generation {
    /// torch up to 2.5: the swap loop for every `n`.
    Legacy,
    /// torch 2.6 and later: the inside-out loop from `SWAP_REGIME_LIMIT` items on.
    Current,
}

impl Generation {
    /// Whether `randperm(n)` runs the swap loop in this generation.
    pub fn swap_regime(self, n: u64) -> bool {
        match self {
            Generation::Legacy => true,
            Generation::Current => n < SWAP_REGIME_LIMIT,
        }
    }
}

/// The seed of torch's generator for epoch `epoch` of a sampler seeded with `seed`:
/// `seed + epoch`, modulo 2**64 (negative Python seeds arrive as their two's complement).
pub fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    seed.wrapping_add(epoch)
}

/// How many steps ahead swap targets are drawn and prefetched (a power of two).
const AHEAD: usize = 64;

/// Steps between two calls of the caller's `interrupted` (a few tens of milliseconds of work).
pub const CHECK_EVERY: usize = 1 << 22;

/// Fills `out` (its length is `n`) with `torch.randperm(n)` of the torch `generation` for the
/// generator seeded with `seed`. `interrupted` runs every [`CHECK_EVERY`] steps; `true` stops
/// the work with [`Error::Interrupted`] (the buffer is then unspecified).
pub fn torch_randperm<T: IndexElem>(
    out: &mut [T],
    seed: u64,
    generation: Generation,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<(), Error> {
    shuffle(out, &mut TorchMt::new(seed), generation, interrupted)
}

/// Fills `out` with `torch.randperm(out.len())` of the torch `generation` drawn from `rng`
/// where it is, and leaves `rng` after the loop's last draw (`n - 1` draws in the swap loop,
/// `2n` in the inside-out one), where torch leaves its generator. `interrupted` as for
/// [`torch_randperm`].
pub fn shuffle<T: IndexElem>(
    out: &mut [T],
    rng: &mut TorchMt,
    generation: Generation,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<(), Error> {
    if generation.swap_regime(out.len() as u64) {
        swap_regime(out, rng, interrupted)
    } else {
        inside_out_regime(out, rng, interrupted)
    }
}

#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

fn swap_regime<T: IndexElem>(
    out: &mut [T],
    rng: &mut TorchMt,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<(), Error> {
    let n = out.len();
    // The first pass over a fresh buffer takes its page faults (seconds for hundreds of MB):
    // ask `interrupted` between chunks of it too.
    for (c, chunk) in out.chunks_mut(CHECK_EVERY).enumerate() {
        let base = c * CHECK_EVERY;
        for (k, v) in chunk.iter_mut().enumerate() {
            *v = T::from_u64((base + k) as u64);
        }
        poll(interrupted)?;
    }
    // SAFETY: `out` is an exclusive slice of `n` elements.
    let finished = unsafe {
        swap_loop::<T, false>(out.as_mut_ptr(), n, rng, CHECK_EVERY, &mut |_| {
            !interrupted()
        })
    };
    if finished {
        Ok(())
    } else {
        Err(Error::Interrupted)
    }
}

/// torch's first regime on the `n` elements at `out`, which hold the identity: for `i` in
/// `0..n-1`, swap `P[i]` and `P[i + random() % (n - i)]`, drawing from `rng` (left after the
/// last draw). After each `interval` steps (and after
/// the last) it calls `every(i)` with the number of steps done; `false` stops the loop, and the
/// function then returns `false`.
///
/// Step `i` touches positions `i` and above only, so once `every(i)` has been called, positions
/// `0..i` hold their final values and are never written again.
///
/// With `XOR_CODED`, the array holds `P[i] ^ i` instead of `P[i]`, so an all-zero buffer is the
/// identity and needs no initialising pass (each swap also XORs both elements with `i ^ t`).
///
/// # Safety
/// `out` is valid for reads and writes of `n` elements, and nothing else writes them while the
/// loop runs; others may read positions below the `i` last passed to `every`.
pub unsafe fn swap_loop<T: IndexElem, const XOR_CODED: bool>(
    out: *mut T,
    n: usize,
    rng: &mut TorchMt,
    interval: usize,
    every: &mut dyn FnMut(usize) -> bool,
) -> bool {
    if n < 2 {
        return true;
    }
    if u32::try_from(n).is_ok() {
        swap_loop_in::<T, XOR_CODED, u32>(out, n, rng, interval, every)
    } else {
        // Only torch's legacy generation runs this loop for n >= 2**32: the 32-bit draw is
        // taken modulo a 64-bit `n - i`.
        swap_loop_in::<T, XOR_CODED, u64>(out, n, rng, interval, every)
    }
}

/// The width of `n - i` in the swap loop: `u32` whenever `n` fits (a faster division).
trait Width: Copy {
    fn of(v: usize) -> Self;
    /// `draw % m`, as a position offset.
    fn rem(draw: u32, m: Self) -> usize;
}

impl Width for u32 {
    #[inline(always)]
    fn of(v: usize) -> Self {
        v as u32
    }
    #[inline(always)]
    fn rem(draw: u32, m: Self) -> usize {
        (draw % m) as usize
    }
}

impl Width for u64 {
    #[inline(always)]
    fn of(v: usize) -> Self {
        v as u64
    }
    #[inline(always)]
    fn rem(draw: u32, m: Self) -> usize {
        (u64::from(draw) % m) as usize
    }
}

/// [`swap_loop`] with `n - i` computed in `W`, which holds `n`.
#[inline(always)]
unsafe fn swap_loop_in<T: IndexElem, const XOR_CODED: bool, W: Width>(
    out: *mut T,
    n: usize,
    rng: &mut TorchMt,
    interval: usize,
    every: &mut dyn FnMut(usize) -> bool,
) -> bool {
    let steps = n - 1;
    let mut ring = [0usize; AHEAD];
    for (k, slot) in ring.iter_mut().enumerate().take(steps.min(AHEAD)) {
        let z = W::rem(rng.next_u32(), W::of(n - k));
        *slot = z;
        prefetch(out.wrapping_add(k + z));
    }
    let mut i = 0;
    while i < steps {
        let end = (i + interval).min(steps);
        while i < end {
            let slot = i & (AHEAD - 1);
            let z = ring[slot];
            let ahead = i + AHEAD;
            if ahead < steps {
                let z2 = W::rem(rng.next_u32(), W::of(n - ahead));
                ring[slot] = z2;
                prefetch(out.wrapping_add(ahead + z2));
            }
            std::ptr::swap(out.add(i), out.add(i + z));
            if XOR_CODED {
                let d = (i ^ (i + z)) as u64;
                *out.add(i) = T::from_u64(T::to_u64(*out.add(i)) ^ d);
                *out.add(i + z) = T::from_u64(T::to_u64(*out.add(i + z)) ^ d);
            }
            i += 1;
        }
        if !every(i) {
            return false;
        }
    }
    true
}

fn inside_out_regime<T: IndexElem>(
    out: &mut [T],
    rng: &mut TorchMt,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<(), Error> {
    let n = out.len();
    let mut ring = [0u64; AHEAD];
    for (k, slot) in ring.iter_mut().enumerate().take(n.min(AHEAD)) {
        let z = rng.next_u64() % (k as u64 + 1);
        *slot = z;
        prefetch(out.as_ptr().wrapping_add(z as usize));
    }
    let mut i = 0;
    while i < n {
        let end = (i + CHECK_EVERY).min(n);
        while i < end {
            let slot = i & (AHEAD - 1);
            let z = ring[slot] as usize;
            let ahead = i + AHEAD;
            if ahead < n {
                let z2 = rng.next_u64() % (ahead as u64 + 1);
                ring[slot] = z2;
                prefetch(out.as_ptr().wrapping_add(z2 as usize));
            }
            let me = T::from_u64(i as u64);
            // torch writes P[i] = i first, so z == i leaves i in place.
            out[i] = if z == i { me } else { out[z] };
            out[z] = me;
            i += 1;
        }
        poll(interrupted)?;
    }
    Ok(())
}

/// `torch.randperm(n)` of the torch `generation` for the generator seeded with `seed`, in the
/// narrowest buffer (`interrupted` as for [`torch_randperm`]).
pub fn randperm(
    n: u64,
    seed: u64,
    generation: Generation,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<IndexVec, Error> {
    randperm_from(n, &mut TorchMt::new(seed), generation, interrupted)
}

/// [`randperm`] drawn from `rng` where it is, leaving it after the last draw (see [`shuffle`]).
pub fn randperm_from(
    n: u64,
    rng: &mut TorchMt,
    generation: Generation,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<IndexVec, Error> {
    if n > MAX_LEN {
        return Err(invalid(format!("n should be at most 2**63 - 1, got {n}")));
    }
    let mut perm = IndexVec::zeroed(n, n)?;
    match &mut perm {
        IndexVec::U32(p) => shuffle(p, rng, generation, interrupted)?,
        IndexVec::I64(p) => shuffle(p, rng, generation, interrupted)?,
    }
    Ok(perm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_check() -> bool {
        false
    }

    /// torch's loops written plainly, as the reference for the prefetching versions.
    fn reference(n: usize, seed: u64, inside_out: bool) -> Vec<u64> {
        let mut rng = TorchMt::new(seed);
        if !inside_out {
            let mut p: Vec<u64> = (0..n as u64).collect();
            for i in 0..n.saturating_sub(1) {
                let z = u64::from(rng.next_u32()) % (n - i) as u64;
                p.swap(i, i + z as usize);
            }
            p
        } else {
            let mut p = vec![0u64; n];
            for i in 0..n {
                let z = (rng.next_u64() % (i as u64 + 1)) as usize;
                p[i] = i as u64;
                p[i] = p[z];
                p[z] = i as u64;
            }
            p
        }
    }

    fn run<T: IndexElem>(n: usize, seed: u64, inside_out: bool) -> Vec<u64> {
        let mut out = vec![T::default(); n];
        let rng = &mut TorchMt::new(seed);
        if inside_out {
            inside_out_regime(&mut out, rng, &mut no_check).unwrap();
        } else {
            swap_regime(&mut out, rng, &mut no_check).unwrap();
        }
        out.into_iter().map(T::to_u64).collect()
    }

    #[test]
    fn prefetching_loops_equal_plain_loops() {
        for n in [
            0, 1, 2, 3, 17, 63, 64, 65, 311, 312, 313, 623, 624, 625, 1000, 65_537,
        ] {
            for seed in [0, 1, 6691, u64::MAX, (1 << 32) + 5] {
                for inside_out in [false, true] {
                    let want = reference(n, seed, inside_out);
                    assert_eq!(run::<u32>(n, seed, inside_out), want, "n={n} seed={seed}");
                    assert_eq!(run::<i64>(n, seed, inside_out), want, "n={n} seed={seed}");
                }
            }
        }
    }

    #[test]
    fn the_xor_coded_loop_gives_the_same_permutation() {
        for n in [0usize, 1, 2, 3, 17, 1000, 65_537, 300_001] {
            let want = reference(n, 9, false);
            let mut coded = vec![0u32; n]; // all zero: the identity, coded
                                           // SAFETY: an exclusive buffer of `n` elements.
            unsafe {
                swap_loop::<u32, true>(
                    coded.as_mut_ptr(),
                    n,
                    &mut TorchMt::new(9),
                    1000,
                    &mut |_| true,
                )
            };
            let got: Vec<u64> = coded
                .iter()
                .enumerate()
                .map(|(i, &d)| u64::from(d) ^ i as u64)
                .collect();
            assert_eq!(got, want, "n={n}");
        }
    }

    #[test]
    fn the_64_bit_swap_loop_equals_the_32_bit_one() {
        // Legacy torch past 2**32 items takes `random() % (n - i)` in 64 bits; below, both
        // widths must give torch's loop.
        for n in [2usize, 3, 65, 1000, 65_537] {
            let mut out: Vec<u64> = (0..n as u64).collect();
            // SAFETY: an exclusive buffer of `n` elements.
            unsafe {
                swap_loop_in::<u64, false, u64>(
                    out.as_mut_ptr(),
                    n,
                    &mut TorchMt::new(11),
                    100,
                    &mut |_| true,
                )
            };
            assert_eq!(out, reference(n, 11, false), "n={n}");
        }
    }

    #[test]
    fn each_loop_leaves_the_generator_after_its_last_draw() {
        // torch's generator after randperm(n) has given n - 1 draws (swap loop) or 2n
        // (inside-out loop): a permutation drawn next continues the same stream.
        for (n, inside_out) in [
            (0, false),
            (1, false),
            (2, false),
            (1000, false),
            (1000, true),
        ] {
            let mut rng = TorchMt::new(21);
            let mut out = vec![0u32; n];
            if inside_out {
                inside_out_regime(&mut out, &mut rng, &mut no_check).unwrap();
            } else {
                shuffle(&mut out, &mut rng, Generation::Current, &mut no_check).unwrap();
            }
            let draws = if inside_out {
                2 * n
            } else {
                n.saturating_sub(1)
            };
            let mut plain = TorchMt::new(21);
            for _ in 0..draws {
                plain.next_u32();
            }
            let next = randperm_from(300, &mut rng, Generation::Current, &mut no_check).unwrap();
            let mut want: Vec<u64> = (0..300).collect();
            for i in 0..299 {
                let z = u64::from(plain.next_u32()) % (300 - i) as u64;
                want.swap(i, i + z as usize);
            }
            let got: Vec<u64> = (0..300).map(|k| next.get(k)).collect();
            assert_eq!(got, want, "n={n} inside_out={inside_out}");
            assert_eq!(rng.next_u32(), plain.next_u32());
        }
    }

    #[test]
    fn outputs_are_permutations() {
        for inside_out in [false, true] {
            let mut p = run::<u32>(100_000, 3, inside_out);
            p.sort_unstable();
            assert!(p.iter().enumerate().all(|(i, &v)| v == i as u64));
        }
    }

    #[test]
    fn regime_is_chosen_by_length_and_generation() {
        assert_eq!(SWAP_REGIME_LIMIT, 214_748_364);
        assert!(Generation::Current.swap_regime(SWAP_REGIME_LIMIT - 1));
        assert!(!Generation::Current.swap_regime(SWAP_REGIME_LIMIT));
        assert!(Generation::Legacy.swap_regime(SWAP_REGIME_LIMIT));
        assert!(Generation::Legacy.swap_regime(u64::MAX));
        let mut small = vec![0u32; 1000];
        torch_randperm(&mut small, 5, Generation::Current, &mut no_check).unwrap();
        let small: Vec<u64> = small.into_iter().map(u64::from).collect();
        assert_eq!(small, reference(1000, 5, false));
    }

    #[test]
    fn interruption_stops_the_work() {
        let mut out = vec![0u32; CHECK_EVERY + 10];
        let mut calls = 0;
        let r = torch_randperm(&mut out, 0, Generation::Current, &mut || {
            calls += 1;
            true
        });
        assert_eq!(r, Err(Error::Interrupted));
        assert_eq!(calls, 1);
        // The legacy generation (the swap loop for every n) too.
        let mut out = vec![0u32; CHECK_EVERY + 10];
        let r = torch_randperm(&mut out, 0, Generation::Legacy, &mut || true);
        assert_eq!(r, Err(Error::Interrupted));
    }
}
