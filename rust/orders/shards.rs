//! The shard order: a lazy, locality-aware shuffle of a dataset stored in shards, split over
//! ranks in contiguous ranges so that each rank reads few shards at a time.
//!
//! Indices follow `ConcatDataset` over the shards: shard `k` holds
//! `[z_0 + ... + z_{k-1}, z_0 + ... + z_k)`. Empty shards take no part in the order.
//!
//! # One epoch
//! * **Shard stream.** The `K` non-empty shards are put in the order of the lazy bijection of
//!   `[0, K)` keyed by `(seed, epoch)`; concatenating their samples gives the stream of `n`
//!   positions (stream position `q` is a sample of the shard at `starts[t] <= q < starts[t+1]`).
//! * **Ranks.** The stream is cut into `W` contiguous parts, part `r` being
//!   `[floor(r n / W), floor((r + 1) n / W))` (the sizes differ by at most one, and each cut
//!   splits at most one shard). Every rank reads `L = ceil(n / W)` positions (`floor` with
//!   `drop_last`): a rank whose part is one shorter repeats one sample (padding), a rank whose
//!   part is one longer with `drop_last` leaves its last sample out.
//! * **Windows.** A rank's part, seen as the shards it overlaps in stream order, is grouped into
//!   windows of `window` consecutive shards; the samples of a window (a contiguous stretch of the
//!   stream) are read in the order of the lazy bijection keyed by `(seed, epoch)` and the
//!   window's first stream position. So a rank has at most `window` shards open at a time, and
//!   over all ranks an epoch opens each shard once, plus once more per cut (at most `W - 1`) and
//!   per padding sample of an empty part (fewer than `W`).
//! * **Padding.** A rank pads by repeating its last sample, so it opens no new shard and repeats
//!   nothing another rank reads; a rank with an empty part (when `n < W`) reads the sample at
//!   its part's place in the sequence below (the next rank's first).
//!
//! # Resuming elastically
//! The epoch's *sequence* `S_0` is the concatenation of the `W` ranks' readings (without
//! padding): rank `r`'s `j`-th sample is `S_0[floor(r n / W) + j]`. A job of `W_0` ranks that
//! each read `k_0` samples leaves the sequence `S_1`: the concatenation, over the old ranks in
//! order, of what each had left (positions `k_0..` of its part, without padding; with
//! `drop_last`, up to the `L` it would have read). A job of `W_1` ranks resumes by cutting `S_1`
//! exactly as an epoch cuts `S_0` (same part, padding and `drop_last` rules), and so on for
//! `W_1 -> W_2`: a resume is a list of levels `(W_i, k_i)`, and the current ranks read the cut of
//! the last sequence. Every `S_i` is `S_0` restricted to a set of runs, in order; each old rank's
//! remainder keeps its windows, so a new rank still has at most `window` shards open at a time
//! (consecutive old ranks share at most the one shard their cut split, which is in both windows).
//! The union of the new ranks' samples is what the old ranks had left, plus fewer than `W_i`
//! padding repeats (without `drop_last`) or minus fewer than `W_i` samples (with it).
//!
//! Construction is O(K) (the stream's shard starts) plus O(sum of `W_i`) for a resume; any
//! position is then found in O(log K).

use std::sync::Arc;

use crate::orders::lazy::LazyPermutation;
use crate::util::buffer::zeroed_vec;
use crate::util::error::{invalid, Error};
use crate::util::limits::{written, MAX_LEN};

/// The largest number of ranks of a resumed level (its runs are kept in memory).
pub const MAX_LEVEL_REPLICAS: u64 = 1 << 20;
/// Windows of at most this many shards are read through a table of their shards.
const TABLE_SHARDS: usize = 64;
/// Indices computed between two calls of the caller's `interrupted`.
const CHECK_EVERY: u64 = 1 << 16;
/// Keys the windows' bijections apart from the shard order's.
const WINDOW_TWEAK: u64 = 0xA409_3822_299F_31D0; // pi, continued

/// splitmix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Start of part `r` when `m` positions are cut into `w` parts: `floor(r m / w)`.
fn cut(m: u64, w: u64, r: u64) -> u64 {
    (u128::from(m) * u128::from(r) / u128::from(w)) as u64
}

/// Positions every rank reads when `m` are shared by `w` ranks.
fn per_rank(m: u64, w: u64, drop_last: bool) -> u64 {
    if drop_last {
        m / w
    } else {
        m.div_ceil(w)
    }
}

/// The shards of a dataset: where each non-empty shard starts in `ConcatDataset` order.
#[derive(Debug)]
pub struct ShardSizes {
    /// `base[k]`: the first index of the `k`-th non-empty shard; `base[K] = n`.
    base: Vec<u64>,
}

impl ShardSizes {
    /// The shards of sizes `sizes` (`ConcatDataset` order).
    pub fn new(sizes: &[i64]) -> Result<Self, Error> {
        let mut total = 0u64;
        let mut nonempty = 0usize;
        for (k, &z) in sizes.iter().enumerate() {
            if z < 0 {
                return Err(invalid(format!(
                    "shard_sizes[{k}] should be non-negative, got {z}"
                )));
            }
            total = total
                .checked_add(z as u64)
                .filter(|&t| t <= MAX_LEN)
                .ok_or_else(|| {
                    invalid(format!(
                        "shard_sizes should sum to at most {}",
                        written(MAX_LEN.into())
                    ))
                })?;
            nonempty += usize::from(z > 0);
        }
        let mut base = Vec::new();
        base.try_reserve_exact(nonempty + 1)
            .map_err(|_| Error::Alloc {
                bytes: (nonempty as u128 + 1) * 8,
            })?;
        let mut at = 0u64;
        for &z in sizes {
            if z > 0 {
                base.push(at);
                at += z as u64;
            }
        }
        base.push(at);
        Ok(Self { base })
    }

    /// The number of samples.
    pub fn n(&self) -> u64 {
        self.base[self.base.len() - 1]
    }

    /// The number of non-empty shards.
    pub fn shards(&self) -> u64 {
        (self.base.len() - 1) as u64
    }

    /// A 64-bit digest of the non-empty shards' sizes in order (what the order depends on).
    pub fn digest(&self) -> u64 {
        self.base
            .iter()
            .fold(mix(self.shards() ^ 0x5851_F42D_4C95_7F2D), |h, &b| {
                mix(h ^ b).wrapping_add(0x9E37_79B9_7F4A_7C15)
            })
            & (MAX_LEN)
    }

    fn size(&self, k: u64) -> u64 {
        self.base[k as usize + 1] - self.base[k as usize]
    }
}

/// A stretch of the epoch's sequence `S_0`: positions `s0..s0 + len`, the resumed sequence's
/// positions from `at` on.
#[derive(Clone, Copy, Debug)]
struct Run {
    at: u64,
    s0: u64,
    len: u64,
}

/// A window: stream positions `start..end` over the shards `first..=last` of the epoch order.
struct Window {
    start: u64,
    end: u64,
    first: usize,
    last: usize,
    perm: LazyPermutation,
}

/// One rank's indices of one epoch of the shard order (see the module docs).
#[derive(Debug)]
pub struct ShardOrder {
    sizes: Arc<ShardSizes>,
    /// The epoch's shard order (`None` for an empty dataset).
    shard_perm: Option<LazyPermutation>,
    /// `starts[t]`: the stream position of the `t`-th shard of the epoch order; `starts[K] = n`.
    starts: Vec<u64>,
    window: u64,
    /// The ranks of the epoch's first level, which lay out the windows.
    layout: u64,
    window_key: u64,
    /// The resumed sequence as runs of `S_0`.
    runs: Vec<Run>,
    /// This rank's part of the resumed sequence: `part_start..part_start + part_len`.
    part_start: u64,
    part_len: u64,
    len: u64,
    /// The padding sample, when the rank reads one.
    pad: u64,
}

// The three methods every rank share has (`len`, `n`, `fill`); emptiness is `len() == 0`.
#[allow(clippy::len_without_is_empty)]
impl ShardOrder {
    /// Rank `rank` of `replicas` in epoch `epoch` of the shard order, after the resume levels
    /// `levels` (`(W_i, k_i)`: `W_i` ranks each read `k_i` samples of the sequence left by the
    /// levels before; empty for a fresh epoch).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sizes: Arc<ShardSizes>,
        window: u64,
        seed: u64,
        epoch: u64,
        levels: &[(u64, u64)],
        replicas: u64,
        rank: u64,
        drop_last: bool,
    ) -> Result<Self, Error> {
        if window == 0 {
            return Err(invalid("window should be a positive integer, got 0"));
        }
        if replicas == 0 {
            return Err(invalid("num_replicas should be a positive integer, got 0"));
        }
        if rank >= replicas {
            return Err(invalid(format!(
                "Invalid rank {rank}, rank should be in the interval [0, {}]",
                replicas - 1
            )));
        }
        let n = sizes.n();
        let k = sizes.shards();
        let shard_perm = if k > 0 {
            Some(LazyPermutation::try_new(k, seed, epoch)?)
        } else {
            None
        };
        let mut starts = zeroed_vec::<u64>(k + 1)?;
        if let Some(perm) = &shard_perm {
            let mut chunk = [0u64; 4096];
            let mut t = 0u64;
            while t < k {
                let c = (k - t).min(chunk.len() as u64) as usize;
                perm.fill(t, 1, &mut chunk[..c]);
                for (i, &s) in chunk[..c].iter().enumerate() {
                    let at = (t as usize) + i;
                    starts[at + 1] = starts[at] + sizes.size(s);
                }
                t += c as u64;
            }
        }
        let mut runs = Vec::new();
        if n > 0 {
            runs.push(Run {
                at: 0,
                s0: 0,
                len: n,
            });
        }
        let mut m = n;
        for (i, &(w, done)) in levels.iter().enumerate() {
            if !(1..=MAX_LEVEL_REPLICAS).contains(&w) {
                return Err(invalid(format!(
                    "levels[{i}]: num_replicas should be in [1, 2**20], got {w}"
                )));
            }
            let each = per_rank(m, w, drop_last);
            if done > each {
                return Err(invalid(format!(
                    "levels[{i}]: position {done} is past the end of the epoch, where each of \
                     its {w} ranks reads {each}"
                )));
            }
            let mut next = Vec::new();
            let mut at = 0u64;
            for r in 0..w {
                let (a, b) = (cut(m, w, r), cut(m, w, r + 1));
                let own = b - a;
                let (lo, hi) = (a + done.min(own), a + own.min(each));
                push_runs(&runs, lo, hi, &mut at, &mut next)?;
            }
            runs = next;
            m = at;
        }
        let len = per_rank(m, replicas, drop_last);
        let part_start = cut(m, replicas, rank);
        let part_len = cut(m, replicas, rank + 1) - part_start;
        let mut order = Self {
            layout: levels.first().map_or(replicas, |l| l.0),
            sizes,
            shard_perm,
            starts,
            window,
            window_key: mix(mix(seed ^ WINDOW_TWEAK) ^ epoch),
            runs,
            part_start,
            part_len,
            len,
            pad: 0,
        };
        if len > part_len {
            let p = order.s0_of(part_start + part_len.saturating_sub(1));
            let w = order.window_of(p);
            order.pad = order.index_at(&w, w.start + w.perm.index(p - w.start));
        }
        Ok(order)
    }

    /// This rank's number of indices.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The dataset's length.
    pub fn n(&self) -> u64 {
        self.sizes.n()
    }

    /// Writes this rank's indices at positions `start..start + out.len()` (all `< len()`) into
    /// `out`, calling `interrupted` now and then; `true` stops it with [`Error::Interrupted`].
    pub fn fill(
        &self,
        start: u64,
        out: &mut [u64],
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error> {
        debug_assert!(start + out.len() as u64 <= self.len);
        let mut j = start;
        let mut k = 0usize;
        let mut since_check = 0u64;
        while k < out.len() {
            if j >= self.part_len {
                out[k..].fill(self.pad);
                break;
            }
            let s = self.part_start + j;
            let run = self.run_of(s);
            let p = run.s0 + (s - run.at);
            let w = self.window_of(p);
            let count = (w.end - p)
                .min(run.s0 + run.len - p)
                .min(self.part_len - j)
                .min((out.len() - k) as u64);
            let seg = &mut out[k..k + count as usize];
            w.perm.fill(p - w.start, 1, seg);
            self.map_window(&w, seg);
            k += count as usize;
            j += count;
            since_check += count;
            if since_check >= CHECK_EVERY {
                since_check = 0;
                if interrupted() {
                    return Err(Error::Interrupted);
                }
            }
        }
        Ok(())
    }

    /// The run of the resumed sequence that holds its position `s`.
    fn run_of(&self, s: u64) -> Run {
        self.runs[self.runs.partition_point(|r| r.at <= s) - 1]
    }

    /// The `S_0` position of the resumed sequence's position `s`.
    fn s0_of(&self, s: u64) -> u64 {
        let run = self.run_of(s);
        run.s0 + (s - run.at)
    }

    /// The epoch order's shard that holds stream position `q`, searched in `lo..hi`.
    fn shard_at(&self, q: u64, lo: usize, hi: usize) -> usize {
        lo + self.starts[lo..hi].partition_point(|&s| s <= q) - 1
    }

    /// The window of the first level that holds `S_0` position `p`.
    fn window_of(&self, p: u64) -> Window {
        let (n, w, k) = (self.n(), self.layout, self.sizes.shards() as usize);
        let r = ((u128::from(p) + 1) * u128::from(w) - 1) / u128::from(n);
        let r = r as u64;
        let (a, b) = (cut(n, w, r), cut(n, w, r + 1));
        let first_shard = self.shard_at(a, 0, k + 1);
        let t = self.shard_at(p, first_shard, k + 1);
        let size = self.window as usize;
        let lo = first_shard + (t - first_shard) / size * size;
        let hi = lo.saturating_add(size).min(k);
        let start = a.max(self.starts[lo]);
        let end = b.min(self.starts[hi]);
        Window {
            start,
            end,
            first: lo,
            last: hi - 1,
            perm: LazyPermutation::new(end - start, self.window_key, start),
        }
    }

    /// Replaces each window offset `v` in `seg` by the dataset index at stream position
    /// `w.start + v`.
    fn map_window(&self, w: &Window, seg: &mut [u64]) {
        let shards = w.last + 1 - w.first;
        if shards > TABLE_SHARDS || seg.len() < shards {
            for v in seg.iter_mut() {
                *v = self.index_at(w, w.start + *v);
            }
            return;
        }
        // Where each of the window's shards starts in the stream and in the dataset.
        let perm = self.shard_perm.as_ref().expect("a window has samples");
        let mut stream = [u64::MAX; TABLE_SHARDS + 1];
        let mut base = [0u64; TABLE_SHARDS];
        for i in 0..shards {
            stream[i] = self.starts[w.first + i];
            base[i] = self.sizes.base[perm.index((w.first + i) as u64) as usize];
        }
        let stream = &stream[..shards];
        for v in seg.iter_mut() {
            let q = w.start + *v;
            let t = stream.partition_point(|&s| s <= q) - 1;
            *v = base[t] + (q - stream[t]);
        }
    }

    /// The dataset index at stream position `q` of window `w`.
    fn index_at(&self, w: &Window, q: u64) -> u64 {
        let t = self.shard_at(q, w.first, w.last + 1);
        let perm = self.shard_perm.as_ref().expect("a window has samples");
        self.sizes.base[perm.index(t as u64) as usize] + (q - self.starts[t])
    }
}

/// Appends to `out` the runs of the resumed sequence `runs` covering its positions `lo..hi`,
/// numbered from `*at` on.
fn push_runs(
    runs: &[Run],
    lo: u64,
    hi: u64,
    at: &mut u64,
    out: &mut Vec<Run>,
) -> Result<(), Error> {
    if lo >= hi {
        return Ok(());
    }
    let mut i = runs.partition_point(|r| r.at <= lo) - 1;
    let mut s = lo;
    while s < hi {
        let run = runs[i];
        let take = (run.at + run.len).min(hi) - s;
        out.try_reserve(1).map_err(|_| Error::Alloc {
            bytes: (out.len() as u128 + 1) * std::mem::size_of::<Run>() as u128,
        })?;
        out.push(Run {
            at: *at,
            s0: run.s0 + (s - run.at),
            len: take,
        });
        *at += take;
        s += take;
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[allow(clippy::too_many_arguments)]
    fn order(
        sizes: &[i64],
        window: u64,
        seed: u64,
        epoch: u64,
        levels: &[(u64, u64)],
        w: u64,
        r: u64,
        drop_last: bool,
    ) -> ShardOrder {
        let s = Arc::new(ShardSizes::new(sizes).unwrap());
        ShardOrder::new(s, window, seed, epoch, levels, w, r, drop_last).unwrap()
    }

    fn read(o: &ShardOrder) -> Vec<u64> {
        let mut out = vec![0; o.len() as usize];
        o.fill(0, &mut out, &mut || false).unwrap();
        out
    }

    fn shard_of(sizes: &[i64], index: u64) -> usize {
        let mut at = 0u64;
        for (k, &z) in sizes.iter().enumerate() {
            at += z as u64;
            if index < at {
                return k;
            }
        }
        unreachable!("index {index} past the end")
    }

    /// The largest number of shards open at once in `seq` (a shard is open from its first to its
    /// last sample) and the number of shards opened.
    fn open_and_loads(sizes: &[i64], seq: &[u64]) -> (usize, usize) {
        let mut span: HashMap<usize, (usize, usize)> = HashMap::new();
        for (t, &i) in seq.iter().enumerate() {
            span.entry(shard_of(sizes, i))
                .and_modify(|s| s.1 = t)
                .or_insert((t, t));
        }
        let mut delta = vec![0i64; seq.len() + 1];
        for &(a, b) in span.values() {
            delta[a] += 1;
            delta[b + 1] -= 1;
        }
        let (mut open, mut most) = (0i64, 0i64);
        for d in delta {
            open += d;
            most = most.max(open);
        }
        (most as usize, span.len())
    }

    fn sizes_strategy() -> impl Strategy<Value = Vec<i64>> {
        prop::collection::vec(prop_oneof![Just(0i64), 1i64..12, 20i64..60], 1..24)
    }

    #[test]
    fn sizes_are_checked() {
        assert!(ShardSizes::new(&[3, -1])
            .unwrap_err()
            .to_string()
            .contains("shard_sizes[1]"));
        assert!(ShardSizes::new(&[i64::MAX, 1]).is_err());
        let s = ShardSizes::new(&[0, 0]).unwrap();
        assert_eq!((s.n(), s.shards()), (0, 0));
        let s = Arc::new(s);
        let o = ShardOrder::new(s.clone(), 2, 0, 0, &[], 3, 1, false).unwrap();
        assert_eq!(o.len(), 0);
        assert!(ShardOrder::new(s.clone(), 0, 0, 0, &[], 1, 0, false).is_err());
        assert!(ShardOrder::new(s.clone(), 1, 0, 0, &[], 2, 2, false).is_err());
        assert!(ShardOrder::new(s, 1, 0, 0, &[(0, 0)], 2, 0, false).is_err());
    }

    #[test]
    fn empty_shards_change_nothing() {
        let a = order(&[5, 7, 3, 9], 2, 4, 1, &[], 2, 1, false);
        let b = order(&[0, 5, 0, 7, 3, 0, 9], 2, 4, 1, &[], 2, 1, false);
        let b_idx = read(&b);
        // The same non-empty shards, the same order, shifted by nothing.
        assert_eq!(read(&a), b_idx);
        let sa = ShardSizes::new(&[5, 7, 3, 9]).unwrap();
        let sb = ShardSizes::new(&[0, 5, 0, 7, 3, 0, 9]).unwrap();
        assert_eq!(sa.digest(), sb.digest());
        assert_ne!(
            sa.digest(),
            ShardSizes::new(&[7, 5, 3, 9]).unwrap().digest()
        );
    }

    #[test]
    fn past_the_end_of_a_level_is_refused() {
        let s = Arc::new(ShardSizes::new(&[10, 10]).unwrap());
        // 20 samples over 3 ranks: 7 each.
        assert!(ShardOrder::new(s.clone(), 2, 0, 0, &[(3, 7)], 2, 0, false).is_ok());
        let e = ShardOrder::new(s, 2, 0, 0, &[(3, 8)], 2, 0, false).unwrap_err();
        assert!(e.to_string().contains("levels[0]"), "{e}");
    }

    #[test]
    fn adjacent_samples_share_a_shard_about_once_per_window() {
        let sizes = vec![200i64; 400];
        for window in [2u64, 4, 8, 16] {
            let o = order(&sizes, window, 7, 3, &[], 1, 0, false);
            let seq = read(&o);
            let same = seq.windows(2).filter(|p| p[0] / 200 == p[1] / 200).count() as f64
                / (seq.len() - 1) as f64;
            let want = 1.0 / window as f64;
            assert!(
                (same - want).abs() < 0.1 * want,
                "window {window}: {same} vs {want}"
            );
        }
    }

    #[test]
    fn shard_order_and_rank_shards_change_every_epoch() {
        let sizes = vec![10i64; 64];
        let first = |e| read(&order(&sizes, 4, 1, e, &[], 4, 0, false))[0] / 10;
        let shards = |e| {
            let mut s: Vec<u64> = read(&order(&sizes, 4, 1, e, &[], 4, 2, false))
                .iter()
                .map(|i| i / 10)
                .collect();
            s.sort_unstable();
            s.dedup();
            s
        };
        let firsts: std::collections::HashSet<u64> = (0..8).map(first).collect();
        assert!(firsts.len() > 4);
        assert_ne!(shards(0), shards(1));
    }

    #[test]
    fn a_large_epoch_builds_fast_and_reads_anywhere() {
        // 1e5 shards, 1e9 samples.
        let sizes = vec![10_000i64; 100_000];
        let s = Arc::new(ShardSizes::new(&sizes).unwrap());
        let o = ShardOrder::new(s, 8, 3, 2, &[(8, 12_345_678)], 5, 4, false).unwrap();
        let mut out = [0u64; 64];
        o.fill(o.len() - 64, &mut out, &mut || false).unwrap();
        assert!(out.iter().all(|&i| i < 1_000_000_000));
    }

    #[test]
    fn reads_through_the_shard_table_equal_direct_lookups() {
        // The table path (windows of up to TABLE_SHARDS shards, segments at least as long)
        // against a lookup of each position that never builds the table: its window, the
        // position's place in the window's bijection, and the shard order's binary search.
        let sizes: Vec<i64> = (0..300).map(|k| 1 + (k * 7919) % 23).collect();
        for window in [1, 5, TABLE_SHARDS as u64, TABLE_SHARDS as u64 + 3] {
            for levels in [&[][..], &[(3, 40)][..]] {
                for (w, r) in [(1, 0), (2, 1), (3, 2)] {
                    let o = order(&sizes, window, 9, 4, levels, w, r, false);
                    let whole = read(&o);
                    assert_eq!(whole.len() as u64, o.len());
                    for (j, &got) in whole.iter().enumerate() {
                        let j = j as u64;
                        let want = if j < o.part_len {
                            let p = o.s0_of(o.part_start + j);
                            let win = o.window_of(p);
                            o.index_at(&win, win.start + win.perm.index(p - win.start))
                        } else {
                            o.pad
                        };
                        assert_eq!(got, want, "window {window}, {levels:?}, rank {r}/{w}, {j}");
                    }
                }
            }
        }
    }

    #[test]
    fn interrupted_fill_stops() {
        let sizes = vec![1_000i64; 1_000];
        let o = order(&sizes, 4, 0, 0, &[], 1, 0, false);
        let mut out = vec![0u64; 1_000_000];
        assert_eq!(o.fill(0, &mut out, &mut || true), Err(Error::Interrupted));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn every_index_once_over_the_ranks_with_locality(
            sizes in sizes_strategy(), window in 1u64..5, w in 1u64..7, seed: u64,
            epoch in 0u64..4, drop_last: bool,
        ) {
            let n: u64 = sizes.iter().map(|&z| z as u64).sum();
            let k = sizes.iter().filter(|&&z| z > 0).count();
            let each = if drop_last { n / w } else { n.div_ceil(w) };
            let mut count = vec![0u64; n as usize];
            let mut loads = 0;
            for r in 0..w {
                let o = order(&sizes, window, seed, epoch, &[], w, r, drop_last);
                prop_assert_eq!(o.len(), each);
                let seq = read(&o);
                for &i in &seq {
                    count[i as usize] += 1;
                }
                let (open, opened) = open_and_loads(&sizes, &seq);
                prop_assert!(open as u64 <= window, "rank {} has {} open", r, open);
                loads += opened;
                // Any start reads what a read from 0 does.
                for start in [0, each / 3, each.saturating_sub(1)] {
                    let mut part = vec![0; (each - start) as usize];
                    o.fill(start, &mut part, &mut || false).unwrap();
                    prop_assert_eq!(&part[..], &seq[start as usize..]);
                }
            }
            prop_assert!(loads as u64 <= k as u64 + 2 * w);
            let extra: u64 = count.iter().map(|&c| c.saturating_sub(1)).sum();
            let missing = count.iter().filter(|&&c| c == 0).count() as u64;
            if drop_last {
                prop_assert_eq!(extra, 0);
                prop_assert_eq!(missing, n - each * w);
            } else {
                prop_assert_eq!(missing, 0);
                prop_assert_eq!(extra, each * w - n);
            }
        }

        #[test]
        fn elastic_resumes_read_what_was_left(
            sizes in sizes_strategy(), window in 1u64..5, seed: u64, drop_last: bool,
            steps in prop::collection::vec((1u64..6, 0.0f64..1.0), 1..4), w_last in 1u64..6,
        ) {
            let n: u64 = sizes.iter().map(|&z| z as u64).sum();
            // Replays each level with the jobs' own readings: what every rank of a level reads
            // after the levels before, and what it leaves.
            let mut levels: Vec<(u64, u64)> = Vec::new();
            let mut left: Vec<u64> = Vec::new();
            for (i, &(w, frac)) in steps.iter().enumerate() {
                let seqs: Vec<Vec<u64>> = (0..w)
                    .map(|r| read(&order(&sizes, window, seed, 1, &levels, w, r, drop_last)))
                    .collect();
                if i > 0 {
                    // The job's readings cover what was left (plus padding, minus drop_last).
                    let mut got: Vec<u64> = seqs.iter().flatten().copied().collect();
                    got.sort_unstable();
                    got.dedup();
                    let mut want = left.clone();
                    want.sort_unstable();
                    if drop_last {
                        prop_assert!(got.iter().all(|g| want.binary_search(g).is_ok()));
                        prop_assert!(((want.len() - got.len()) as u64) < w);
                    } else {
                        prop_assert_eq!(&got, &want);
                    }
                }
                let each = seqs[0].len() as u64;
                let done = (frac * (each + 1) as f64) as u64;
                let done = done.min(each);
                // What is left: each rank's unread real samples (padding repeats excluded).
                let m: u64 = if i == 0 { n } else { left.len() as u64 };
                left = Vec::new();
                for (r, seq) in seqs.iter().enumerate() {
                    let own = cut(m, w, r as u64 + 1) - cut(m, w, r as u64);
                    let real = own.min(each) as usize;
                    left.extend_from_slice(&seq[(done as usize).min(real)..real]);
                }
                levels.push((w, done));
            }
            let mut got = Vec::new();
            for r in 0..w_last {
                let o = order(&sizes, window, seed, 1, &levels, w_last, r, drop_last);
                let seq = read(&o);
                let (open, _) = open_and_loads(&sizes, &seq);
                prop_assert!(open as u64 <= window);
                got.extend(seq);
            }
            let mut want = left.clone();
            want.sort_unstable();
            let mut set = got.clone();
            set.sort_unstable();
            set.dedup();
            if drop_last {
                prop_assert!(set.iter().all(|g| want.binary_search(g).is_ok()));
                prop_assert!(((want.len() - set.len()) as u64) < w_last);
            } else {
                prop_assert_eq!(&set, &want);
                prop_assert!(((got.len() - want.len()) as u64) < w_last);
            }
        }

        #[test]
        fn a_resume_with_the_same_ranks_continues_each_rank(
            sizes in sizes_strategy(), window in 1u64..5, w in 1u64..6, seed: u64,
            drop_last: bool, frac in 0.0f64..1.0,
        ) {
            let shared = Arc::new(ShardSizes::new(&sizes).unwrap());
            let whole: Vec<Vec<u64>> = (0..w)
                .map(|r| read(&order(&sizes, window, seed, 2, &[], w, r, drop_last)))
                .collect(); // the uninterrupted epoch
            let each = whole[0].len() as u64;
            let done = ((frac * (each + 1) as f64) as u64).min(each); // every rank read `done`
            for r in 0..w {
                let want = &whole[r as usize][done as usize..];
                // The resume the samplers take with as many ranks: a new epoch read from `done`.
                let e = ShardOrder::new(Arc::clone(&shared), window, seed, 2, &[], w, r, drop_last)
                    .unwrap();
                let mut got = vec![0u64; (e.len() - done) as usize];
                e.fill(done, &mut got, &mut || false).unwrap();
                prop_assert_eq!(&got[..], want, "rank {} from {}", r, done);
                // The elastic rule with as many ranks: the level `(w, done)` cuts what the ranks
                // had left into each rank's own remainder (padding aside: a rank with nothing
                // of its own left pads with the sequence's next sample, not its last one).
                let n: u64 = sizes.iter().map(|&z| z as u64).sum();
                let own = cut(n, w, r + 1) - cut(n, w, r);
                let real = (own.min(each).saturating_sub(done)) as usize;
                let o = order(&sizes, window, seed, 2, &[(w, done)], w, r, drop_last);
                let resumed = read(&o);
                prop_assert_eq!(resumed.len(), want.len());
                prop_assert_eq!(&resumed[..real], &want[..real], "level ({}, {}), rank {}", w, done, r);
            }
        }
    }
}
