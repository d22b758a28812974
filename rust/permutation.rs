//! `torch.randperm` on the CPU, bit for bit, and fast.
//!
//! torch (aten `randperm_cpu`) has two regimes:
//! - `n < u32::MAX / 20`: start from the identity and for `i` in `0..n-1` swap `P[i]` with
//!   `P[i + random() % (n - i)]`;
//! - otherwise, the "inside-out" Fisher-Yates: for `i` in `0..n`, `z = random64() % (i + 1)`,
//!   `P[i] = P[z]; P[z] = i`.
//!
//! The random stream never depends on the array, so the swap targets of a whole block of steps
//! are drawn first ([`Mt19937Blocks`], exact floating-point remainders instead of integer
//! division), and each target's cache line is prefetched [`AHEAD`] steps before its swap. The
//! draws happen in torch's order, so the output is unchanged; the cache misses that dominate
//! torch's loop overlap instead of queueing.

use crate::buffer::IndexElem;
use crate::mt19937::Mt19937Blocks;

/// torch uses the swap regime for `n` below this and the inside-out regime from here on.
pub const SWAP_REGIME_LIMIT: u64 = (u32::MAX / 20) as u64;

/// How many steps ahead a target's cache line is prefetched.
const AHEAD: usize = 64;

/// Random words per block, and so steps per block in the swap regime (one word a step).
const WORDS: usize = Mt19937Blocks::BLOCK;
/// Steps per block in the inside-out regime (two words a step).
const PAIRS: usize = WORDS / 2;

/// Steps between two calls of the caller's `check` (a few tens of milliseconds of work).
pub const CHECK_EVERY: usize = 1 << 22;

/// Fills `out` (its length is `n`) with `torch.randperm(n)` for the generator seeded with
/// `seed`. `check` runs every [`CHECK_EVERY`] steps or so; an error from it stops the work and
/// is returned (the buffer is then unspecified).
pub fn torch_randperm<T: IndexElem, E>(
    out: &mut [T],
    seed: u64,
    check: &mut dyn FnMut() -> Result<(), E>,
) -> Result<(), E> {
    if (out.len() as u64) < SWAP_REGIME_LIMIT {
        swap_regime(out, seed, check)
    } else {
        inside_out_regime(out, seed, check)
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

/// `u % d` for `u < 2**32`, `1 <= d <= 2**32`, by one floating-point division.
///
/// Exact: `u / d < 2**32`, so the rounding error of the quotient is below `2**-21 / d`, while a
/// non-integer quotient is at least `1 / d` away from the next integer; the floor never moves.
#[inline(always)]
fn rem_small(u: u64, d: u64) -> u64 {
    let q = (u as f64 / d as f64) as u64;
    u - q * d
}

/// `x % d` for any `x < 2**64` and `1 <= d <= 2**32`, without a 64-bit integer division.
#[inline(always)]
fn rem_wide(x: u64, d: u64) -> u64 {
    // Reduce the high word first so the quotient of the rest is below 2**32, where a
    // floating-point estimate is within one of the truth; one correction step makes it exact.
    let h = rem_small(x >> 32, d);
    let rest = (h << 32) | (x & 0xffff_ffff);
    let q = (rest as f64 / d as f64) as u64;
    let r = rest.wrapping_sub(q.wrapping_mul(d)) as i64;
    let d = d as i64;
    (if r < 0 {
        r + d
    } else if r >= d {
        r - d
    } else {
        r
    }) as u64
}

/// Swap targets (offsets `z`, so step `i` swaps `i` and `i + z`) for the steps
/// `first..first + WORDS`, where step `i` reduces modulo `n - i`.
fn swap_targets(
    mt: &mut Mt19937Blocks,
    n: usize,
    first: usize,
    raw: &mut [u32; WORDS],
    z: &mut [u32; WORDS],
) {
    mt.next_block(raw);
    for (k, (zk, &u)) in z.iter_mut().zip(raw.iter()).enumerate() {
        // Steps past the end draw nothing useful; keep their divisor valid.
        let d = n.saturating_sub(first + k).max(1) as u64;
        *zk = rem_small(u64::from(u), d) as u32;
    }
}

fn swap_regime<T: IndexElem, E>(
    out: &mut [T],
    seed: u64,
    check: &mut dyn FnMut() -> Result<(), E>,
) -> Result<(), E> {
    let n = out.len();
    for (i, v) in out.iter_mut().enumerate() {
        *v = T::from_u64(i as u64);
    }
    if n < 2 {
        return Ok(());
    }
    let steps = n - 1;
    let mut mt = Mt19937Blocks::new(seed);
    let mut raw = [0u32; WORDS];
    let (mut cur, mut next) = ([0u32; WORDS], [0u32; WORDS]);
    swap_targets(&mut mt, n, 0, &mut raw, &mut cur);
    for (k, &z) in cur.iter().enumerate().take(AHEAD.min(steps)) {
        prefetch(out.as_ptr().wrapping_add(k + z as usize));
    }
    let mut base = 0;
    let mut since_check = 0;
    while base < steps {
        let len = WORDS.min(steps - base);
        if base + WORDS < steps {
            swap_targets(&mut mt, n, base + WORDS, &mut raw, &mut next);
        }
        for k in 0..len {
            let a = k + AHEAD;
            let ahead = if a < WORDS {
                a + cur[a] as usize
            } else {
                a + next[a - WORDS] as usize
            };
            prefetch(out.as_ptr().wrapping_add(base + ahead));
            let i = base + k;
            out.swap(i, i + cur[k] as usize);
        }
        std::mem::swap(&mut cur, &mut next);
        base += len;
        since_check += len;
        if since_check >= CHECK_EVERY {
            since_check = 0;
            check()?;
        }
    }
    check()
}

/// Targets `z_i = random64() % (i + 1)` for the steps `first..first + PAIRS`.
fn inside_out_targets(
    mt: &mut Mt19937Blocks,
    first: usize,
    raw: &mut [u32; WORDS],
    z: &mut [u64; PAIRS],
) {
    mt.next_block(raw);
    for (k, zk) in z.iter_mut().enumerate() {
        let x = (u64::from(raw[2 * k]) << 32) | u64::from(raw[2 * k + 1]);
        let d = (first + k) as u64 + 1;
        *zk = if d <= 1 << 32 { rem_wide(x, d) } else { x % d };
    }
}

fn inside_out_regime<T: IndexElem, E>(
    out: &mut [T],
    seed: u64,
    check: &mut dyn FnMut() -> Result<(), E>,
) -> Result<(), E> {
    let n = out.len();
    if n == 0 {
        return Ok(());
    }
    let mut mt = Mt19937Blocks::new(seed);
    let mut raw = [0u32; WORDS];
    let (mut cur, mut next) = ([0u64; PAIRS], [0u64; PAIRS]);
    inside_out_targets(&mut mt, 0, &mut raw, &mut cur);
    for &z in cur.iter().take(AHEAD.min(n)) {
        prefetch(out.as_ptr().wrapping_add(z as usize));
    }
    let mut base = 0;
    let mut since_check = 0;
    while base < n {
        let len = PAIRS.min(n - base);
        if base + PAIRS < n {
            inside_out_targets(&mut mt, base + PAIRS, &mut raw, &mut next);
        }
        for k in 0..len {
            let a = k + AHEAD;
            let ahead = if a < PAIRS { cur[a] } else { next[a - PAIRS] };
            prefetch(out.as_ptr().wrapping_add(ahead as usize));
            let i = base + k;
            let z = cur[k] as usize;
            let me = T::from_u64(i as u64);
            // torch writes P[i] = i first, so z == i leaves i in place.
            out[i] = if z == i { me } else { out[z] };
            out[z] = me;
        }
        std::mem::swap(&mut cur, &mut next);
        base += len;
        since_check += len;
        if since_check >= CHECK_EVERY {
            since_check = 0;
            check()?;
        }
    }
    check()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn no_check() -> Result<(), Infallible> {
        Ok(())
    }

    use crate::mt19937::TorchMt;

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
        if inside_out {
            inside_out_regime(&mut out, seed, &mut no_check).unwrap();
        } else {
            swap_regime(&mut out, seed, &mut no_check).unwrap();
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
    fn outputs_are_permutations() {
        for inside_out in [false, true] {
            let mut p = run::<u32>(100_000, 3, inside_out);
            p.sort_unstable();
            assert!(p.iter().enumerate().all(|(i, &v)| v == i as u64));
        }
    }

    #[test]
    fn regime_is_chosen_by_length() {
        assert_eq!(SWAP_REGIME_LIMIT, 214_748_364);
        let mut small = vec![0u32; 1000];
        torch_randperm(&mut small, 5, &mut no_check).unwrap();
        let small: Vec<u64> = small.into_iter().map(u64::from).collect();
        assert_eq!(small, reference(1000, 5, false));
    }

    #[test]
    fn float_remainders_are_exact() {
        let mut rng = TorchMt::new(1);
        let divisors = [
            1u64,
            2,
            3,
            7,
            1000,
            65_537,
            (1 << 31) - 1,
            1 << 31,
            (1 << 32) - 1,
            1 << 32,
        ];
        for &d in &divisors {
            let small = [0u64, 1, d - 1, d, d + 1, u64::from(u32::MAX)];
            for u in small.into_iter().filter(|&u| u <= u64::from(u32::MAX)) {
                assert_eq!(rem_small(u, d), u % d, "u={u} d={d}");
            }
            for x in [
                0u64,
                1,
                u64::MAX,
                u64::MAX - 1,
                (d << 32).wrapping_sub(1),
                d * (u64::MAX / d),
            ] {
                assert_eq!(rem_wide(x, d), x % d, "x={x} d={d}");
            }
        }
        for _ in 0..2_000_000 {
            let d = u64::from(rng.next_u32()) % (1 << 32) + 1;
            let d = if rng.next_u32().is_multiple_of(2) {
                d
            } else {
                d >> (rng.next_u32() % 32)
            }
            .max(1);
            let u = u64::from(rng.next_u32());
            let x = rng.next_u64();
            assert_eq!(rem_small(u, d), u % d, "u={u} d={d}");
            assert_eq!(rem_wide(x, d), x % d, "x={x} d={d}");
        }
    }

    #[test]
    fn check_error_stops_the_work() {
        let mut out = vec![0u32; CHECK_EVERY + 10];
        let mut calls = 0;
        let r = torch_randperm(&mut out, 0, &mut || {
            calls += 1;
            Err("stop")
        });
        assert_eq!(r, Err("stop"));
        assert_eq!(calls, 1);
    }
}
