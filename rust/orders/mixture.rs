//! Weighted mixtures of sources: which source each position of a global stream draws from, and
//! which of that source's indices it gets, for any position in O(log K) and with no O(N) index.
//!
//! **Schedule.** The K sources are the leaves of a balanced binary tree. Each inner node splits
//! the positions that reach it between its two subtrees in proportion to their weights: of the
//! first `M` positions of a node with weight `wn` and left weight `wl`, exactly
//! `L(M) = floor(M * wl / wn + 1/2)` go left (`L(M + 1) - L(M)` is 0 or 1, so position `M` goes
//! left when it is 1). A node's positions are numbered in the order they reach it, so the count
//! of source `k` among the first `m` stream positions comes from one pass down the tree, and the
//! source of position `p` from one walk from the root to a leaf.
//!
//! **Bound.** Each split is off its exact share by at most 1/2, and an error made at depth `i`
//! is scaled by the weight fractions below it (each at most 1), so for every prefix `m` and leaf
//! `k` at depth `d_k`: `|count_k(m) - m * w_k / W| <= d_k / 2 <= ceil(log2 K) / 2`, exactly, for
//! the integer weights (see `docs/mixture.md`). Two sources are within 1/2, up to four within 1.
//!
//! **Draws.** The `j`-th draw from source `k` is the `j mod n_k`-th element of the source's
//! cycle `j / n_k`, a fresh permutation of `[0, n_k)` keyed by `(seed, k, cycle)`, offset by the
//! sizes of the sources before it (`ConcatDataset`'s numbering).
//!
//! **Reweighting.** A mixture is a list of segments, each a start position and weights. The
//! positions of a segment follow its weights from the segment's start; every source continues
//! its draws (and so its cycle) where the previous segments left it.

use std::sync::Arc;

use crate::orders::lazy::LazyPermutation;
use crate::orders::torch::Generation;
use crate::orders::torch::{epoch_seed, randperm};
use crate::util::buffer::{filled_vec, IndexVec};
use crate::util::error::{invalid, Error};
use crate::util::fork_lock::ForkLock;
use crate::util::limits::MAX_LEN;

/// The largest sum of weights: keeps `2 * m * wl + wn` within 128 bits for any 64-bit `m`.
pub const MAX_WEIGHT_SUM: u64 = 1 << 62;

const LEAF: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Node {
    /// Left weight and node weight (`wl <= wn`).
    wl: u64,
    wn: u64,
    left: u32,
    right: u32,
    /// The source of a leaf; `LEAF` marks inner nodes.
    source: u32,
}

/// One segment's weights as a tree of proportional splits.
#[derive(Clone, Debug)]
pub struct Schedule {
    nodes: Vec<Node>,
    depth: u32,
}

impl Schedule {
    pub fn new(weights: &[u64]) -> Result<Self, Error> {
        if weights.is_empty() {
            return Err(invalid("weights should not be empty"));
        }
        if weights.len() > (LEAF - 1) as usize / 2 {
            return Err(invalid("too many sources"));
        }
        let mut sum: u64 = 0;
        for &w in weights {
            sum = sum
                .checked_add(w)
                .filter(|&s| s <= MAX_WEIGHT_SUM)
                .ok_or_else(|| invalid("the sum of the weights should be at most 2**62"))?;
        }
        if sum == 0 {
            return Err(invalid("weights should not all be zero"));
        }
        let mut nodes = Vec::with_capacity(2 * weights.len());
        let depth = Self::build(weights, 0, weights.len(), &mut nodes);
        Ok(Self { nodes, depth })
    }

    /// Adds the subtree over `weights[lo..hi]` and returns its depth; its root is the node
    /// pushed first.
    fn build(weights: &[u64], lo: usize, hi: usize, nodes: &mut Vec<Node>) -> u32 {
        let at = nodes.len();
        let wn = weights[lo..hi].iter().sum();
        nodes.push(Node {
            wl: 0,
            wn,
            left: LEAF,
            right: LEAF,
            source: lo as u32,
        });
        if hi - lo == 1 {
            return 0;
        }
        let mid = lo + (hi - lo) / 2;
        let left = nodes.len() as u32;
        let dl = Self::build(weights, lo, mid, nodes);
        let right = nodes.len() as u32;
        let dr = Self::build(weights, mid, hi, nodes);
        let node = &mut nodes[at];
        node.wl = weights[lo..mid].iter().sum();
        node.left = left;
        node.right = right;
        node.source = LEAF;
        1 + dl.max(dr)
    }

    /// The depth of the tree: `ceil(log2 K)`.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// How many of a node's first `m` positions go left: `floor(m * wl / wn + 1/2)`.
    #[inline]
    fn split(node: &Node, m: u64) -> u64 {
        if node.wl == 0 {
            0
        } else if node.wl == node.wn {
            m
        } else {
            let num = 2 * u128::from(m) * u128::from(node.wl) + u128::from(node.wn);
            (num / (2 * u128::from(node.wn))) as u64
        }
    }

    /// The source of position `m` (`m < u64::MAX`) and how many earlier positions drew from it.
    pub fn locate(&self, m: u64) -> (usize, u64) {
        let mut at = 0usize;
        let mut m = m;
        loop {
            let node = &self.nodes[at];
            if node.source != LEAF {
                return (node.source as usize, m);
            }
            let l = Self::split(node, m);
            if Self::split(node, m + 1) > l {
                at = node.left as usize;
                m = l;
            } else {
                at = node.right as usize;
                m -= l;
            }
        }
    }

    /// Adds to `out[k]` the number of the first `m` positions that draw from source `k`.
    pub fn add_counts(&self, m: u64, out: &mut [u64]) {
        self.count_from(0, m, out);
    }

    fn count_from(&self, at: usize, m: u64, out: &mut [u64]) {
        let node = &self.nodes[at];
        if node.source != LEAF {
            out[node.source as usize] += m;
            return;
        }
        let l = Self::split(node, m);
        self.count_from(node.left as usize, l, out);
        self.count_from(node.right as usize, m - l, out);
    }
}

/// Walks a schedule position by position with additions only (a Bresenham line per node):
/// each inner node keeps `(2 * M * wl + wn) mod 2 * wn` for the number `M` of positions that
/// reached it, and each leaf its count.
struct Walker<'a> {
    schedule: &'a Schedule,
    /// Per node: the remainder (inner nodes) or the count (leaves).
    state: Vec<u64>,
}

impl<'a> Walker<'a> {
    /// Positioned before position `m`.
    fn new(schedule: &'a Schedule, m: u64) -> Result<Self, Error> {
        let mut state = filled_vec(schedule.nodes.len(), 0)?;
        Self::init(schedule, 0, m, &mut state);
        Ok(Self { schedule, state })
    }

    fn init(schedule: &Schedule, at: usize, m: u64, state: &mut [u64]) {
        let node = &schedule.nodes[at];
        if node.source != LEAF {
            state[at] = m;
            return;
        }
        if node.wn == 0 {
            return; // never reached
        }
        let num = 2 * u128::from(m) * u128::from(node.wl) + u128::from(node.wn);
        state[at] = (num % (2 * u128::from(node.wn))) as u64;
        let l = Schedule::split(node, m);
        Self::init(schedule, node.left as usize, l, state);
        Self::init(schedule, node.right as usize, m - l, state);
    }

    /// The source of the next position and how many earlier positions drew from it.
    #[inline]
    fn next(&mut self) -> (usize, u64) {
        let nodes = &self.schedule.nodes;
        let mut at = 0usize;
        loop {
            let node = &nodes[at];
            if node.source != LEAF {
                let count = self.state[at];
                self.state[at] = count + 1;
                return (node.source as usize, count);
            }
            // wl <= wn < 2**62, so these sums stay below 2**64. Branch-free: where a position
            // goes is data-dependent and would defeat the branch predictor.
            let r = self.state[at] + 2 * node.wl;
            let left = u64::from(r >= 2 * node.wn);
            let mask = left.wrapping_neg();
            self.state[at] = r - ((2 * node.wn) & mask);
            at = (node.right ^ ((node.left ^ node.right) & mask as u32)) as usize;
        }
    }
}

/// Where each source's draws are: the current cycle's permutation and position in it, so that
/// consecutive draws of a source cost no division.
#[derive(Clone)]
struct Cursor {
    next_draw: u64,
    item: u64,
    perm: CyclePerm,
}

/// One cycle's order of a source. One per source in a fill: keeping the lazy keys inline saves
/// an indirection per draw.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
enum CyclePerm {
    Lazy(LazyPermutation),
    Table(Arc<IndexVec>),
    Identity,
}

impl CyclePerm {
    /// `out[t]` = the order's item `start + t` (vectorised for the lazy order).
    fn fill_run(&self, start: u64, out: &mut [u64]) {
        match self {
            CyclePerm::Lazy(perm) => perm.fill(start, 1, out),
            CyclePerm::Table(table) => {
                let s = start as usize;
                match &**table {
                    IndexVec::U32(v) => {
                        for (o, &x) in out.iter_mut().zip(&v[s..]) {
                            *o = u64::from(x);
                        }
                    }
                    IndexVec::I64(v) => {
                        for (o, &x) in out.iter_mut().zip(&v[s..]) {
                            *o = x as u64;
                        }
                    }
                }
            }
            CyclePerm::Identity => {
                for (t, o) in out.iter_mut().enumerate() {
                    *o = start + t as u64;
                }
            }
        }
    }

    #[inline]
    fn get(&self, i: u64) -> u64 {
        match self {
            CyclePerm::Lazy(perm) => perm.index(i),
            CyclePerm::Table(table) => match &**table {
                IndexVec::U32(v) => u64::from(v[i as usize]),
                IndexVec::I64(v) => v[i as usize] as u64,
            },
            CyclePerm::Identity => i,
        }
    }
}

/// How each source's draws are ordered within a cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceOrder {
    /// A keyed lazy permutation per `(seed, source, cycle)`.
    Lazy { seed: u64 },
    /// Cycle `c` of a source of `n` items is `torch.randperm(n)` seeded with `seed + c` (as the
    /// torch releases of `generation` compute it): the source's order in epoch `c` of a random
    /// sampler over it alone. Materialised per cycle.
    Torch { seed: u64, generation: Generation },
    /// The source's own order, every cycle.
    Identity,
}

impl SourceOrder {
    pub fn parse(permutation: &str, seed: u64) -> Result<Self, Error> {
        match permutation {
            "lazy" => Ok(SourceOrder::Lazy { seed }),
            "torch" => Ok(SourceOrder::Torch {
                seed,
                generation: Generation::Current,
            }),
            "torch-legacy" => Ok(SourceOrder::Torch {
                seed,
                generation: Generation::Legacy,
            }),
            "identity" => Ok(SourceOrder::Identity),
            other => Err(invalid(format!(
                "permutation should be one of 'lazy', 'torch', 'torch-legacy', 'identity', got \
                 '{other}'"
            ))),
        }
    }
}

#[derive(Clone, Debug)]
struct Segment {
    start: u64,
    schedule: Schedule,
    /// Draws from each source before `start`.
    base: Vec<u64>,
}

/// Per source: the cycle whose torch-order table is kept, and the table. Shared with the
/// readers' helper threads, so a lock a forked child can take (see `fork_lock.rs`); it is held
/// only to look a table up or store one, never while one is computed.
type CycleTables = ForkLock<Vec<Option<(u64, Arc<IndexVec>)>>>;

/// A weighted mixture of sources over a stream of positions.
#[derive(Clone, Debug)]
pub struct Mixture {
    lengths: Vec<u64>,
    offsets: Vec<u64>,
    segments: Vec<Segment>,
    order: SourceOrder,
    /// The torch order's most recent cycle table per source (one cycle of each source).
    tables: Arc<CycleTables>,
}

/// splitmix64's finaliser, to key each source's permutations apart.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Mixture {
    /// Sources of `lengths`; `segments` are `(start, weights)` with the first start 0 and the
    /// starts increasing.
    pub fn new(
        lengths: &[u64],
        segments: &[(u64, Vec<u64>)],
        order: SourceOrder,
    ) -> Result<Self, Error> {
        if lengths.is_empty() {
            return Err(invalid("sources should not be empty"));
        }
        let mut offsets = Vec::with_capacity(lengths.len());
        let mut total: u64 = 0;
        for &n in lengths {
            offsets.push(total);
            total = total
                .checked_add(n)
                .filter(|&t| t <= MAX_LEN)
                .ok_or_else(|| invalid("the sources' lengths should sum to at most 2**63 - 1"))?;
        }
        if segments.is_empty() || segments[0].0 != 0 {
            return Err(invalid(
                "the first segment of weights should start at position 0",
            ));
        }
        let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
        for (start, weights) in segments {
            if weights.len() != lengths.len() {
                return Err(invalid(format!(
                    "weights should have one entry per source ({}), got {}",
                    lengths.len(),
                    weights.len()
                )));
            }
            if let Some(k) = (0..lengths.len()).find(|&k| weights[k] > 0 && lengths[k] == 0) {
                return Err(invalid(format!(
                    "source {k} is empty but has a positive weight; give it weight 0"
                )));
            }
            let schedule = Schedule::new(weights)?;
            let base = match out.last() {
                None => vec![0; lengths.len()],
                Some(prev) => {
                    if *start <= prev.start {
                        return Err(invalid("segment starts should increase"));
                    }
                    let mut base = prev.base.clone();
                    prev.schedule.add_counts(start - prev.start, &mut base);
                    base
                }
            };
            out.push(Segment {
                start: *start,
                schedule,
                base,
            });
        }
        Ok(Self {
            tables: Arc::new(ForkLock::new(vec![None; lengths.len()])),
            lengths: lengths.to_vec(),
            offsets,
            segments: out,
            order,
        })
    }

    pub fn num_sources(&self) -> usize {
        self.lengths.len()
    }

    /// The number of indices of the concatenated sources (the buffer width of an epoch).
    pub fn total_len(&self) -> u64 {
        self.offsets.last().copied().unwrap_or(0) + self.lengths.last().copied().unwrap_or(0)
    }

    /// The largest depth of a segment's tree.
    pub fn depth(&self) -> u32 {
        self.segments
            .iter()
            .map(|s| s.schedule.depth())
            .max()
            .unwrap_or(0)
    }

    fn segment_of(&self, p: u64) -> usize {
        self.segments.partition_point(|s| s.start <= p) - 1
    }

    /// How many of the stream positions `[0, p)` drew from each source.
    pub fn counts(&self, p: u64) -> Vec<u64> {
        let seg = &self.segments[self.segment_of(p)];
        let mut out = seg.base.clone();
        seg.schedule.add_counts(p - seg.start, &mut out);
        out
    }

    /// The source stream position `p` draws from, and its draw number in that source.
    pub fn draw(&self, p: u64) -> (usize, u64) {
        let seg = &self.segments[self.segment_of(p)];
        let (k, j) = seg.schedule.locate(p - seg.start);
        (k, seg.base[k] + j)
    }

    /// The permutation of source `k`'s cycle `cycle`. Computing a torch-order table asks
    /// `interrupted` now and then; `true` ends it with [`Error::Interrupted`].
    fn cycle_perm(
        &self,
        k: usize,
        cycle: u64,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<CyclePerm, Error> {
        Ok(match self.order {
            SourceOrder::Lazy { seed } => CyclePerm::Lazy(LazyPermutation::try_new(
                self.lengths[k],
                mix(seed ^ mix(k as u64)),
                cycle,
            )?),
            SourceOrder::Torch { seed, generation } => {
                let previous = {
                    let mut tables = self.tables.lock();
                    match tables.get_mut(k) {
                        Some(Some((c, table))) if *c == cycle => {
                            return Ok(CyclePerm::Table(Arc::clone(table)))
                        }
                        // One cycle per source at a time: the previous one goes first.
                        Some(slot) => slot.take(),
                        None => None,
                    }
                };
                drop(previous);
                // Computed with no lock held: a process forked meanwhile has nothing to wait
                // for, and computes the table again if it needs it.
                let table = Arc::new(randperm(
                    self.lengths[k],
                    epoch_seed(seed, cycle),
                    generation,
                    interrupted,
                )?);
                let replaced = {
                    let mut tables = self.tables.lock();
                    let k_count = self.lengths.len();
                    if tables.len() < k_count && tables.try_reserve_exact(k_count).is_ok() {
                        tables.resize(k_count, None); // emptied by a fork: make room again
                    }
                    tables
                        .get_mut(k)
                        .and_then(|slot| slot.replace((cycle, Arc::clone(&table))))
                };
                drop(replaced);
                CyclePerm::Table(table)
            }
            SourceOrder::Identity => CyclePerm::Identity,
        })
    }

    /// The dataset index (in `ConcatDataset` numbering) of the `j`-th draw from source `k`.
    pub fn index(&self, k: usize, j: u64) -> Result<u64, Error> {
        self.index_interruptible(k, j, &mut || false)
    }

    fn index_interruptible(
        &self,
        k: usize,
        j: u64,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<u64, Error> {
        let n = self.lengths[k];
        Ok(self.offsets[k] + self.cycle_perm(k, j / n, interrupted)?.get(j % n))
    }

    /// The dataset index at stream position `p`.
    pub fn at(&self, p: u64) -> Result<u64, Error> {
        let (k, j) = self.draw(p);
        self.index(k, j)
    }

    /// `out[i]` = the index at stream position `positions(i)`, for increasing runs of positions;
    /// consecutive positions cost a walk of additions and one permutation evaluation each.
    /// `interrupted` is asked now and then while a torch-order table is computed; `true` ends
    /// the fill with [`Error::Interrupted`].
    pub fn fill(
        &self,
        mut position: impl FnMut(usize) -> u64,
        out: &mut [u64],
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error> {
        let mut cursors: Vec<Option<Cursor>> = filled_vec(self.lengths.len(), None)?;
        let mut i = 0;
        while i < out.len() {
            let p = position(i);
            let s = self.segment_of(p);
            let seg = &self.segments[s];
            let end = self.segments.get(s + 1).map_or(u64::MAX, |n| n.start);
            let close = |want: u64, at: u64| want >= at && want < end && want - at <= WALK_GAP;
            if i + 1 == out.len() || !close(position(i + 1), p + 1) {
                // An isolated position: locate it directly (O(log K)), no walker to set up.
                let (k, j) = self.draw(p);
                out[i] = self.index_interruptible(k, j, interrupted)?;
                i += 1;
                continue;
            }
            let mut walker = Walker::new(&seg.schedule, p - seg.start)?;
            let mut at = p;
            while i < out.len() {
                let want = position(i);
                if !close(want, at) {
                    break;
                }
                while at < want {
                    walker.next();
                    at += 1;
                }
                let (k, c) = walker.next();
                at += 1;
                out[i] = self.offsets[k]
                    + self.item(&mut cursors[k], k, seg.base[k] + c, interrupted)?;
                i += 1;
            }
        }
        Ok(())
    }

    /// `out[t]` = the index at stream position `p + t`: consecutive positions, in three passes
    /// (the schedule walk, then each source's consecutive draws through its permutation a run
    /// at a time, which the lazy order evaluates in vector lanes, then the interleaving).
    /// `interrupted` as for [`Self::fill`].
    pub fn fill_run(
        &self,
        p: u64,
        out: &mut [u64],
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error> {
        let mut done = 0usize;
        while done < out.len() {
            let at = p + done as u64;
            let s = self.segment_of(at);
            let seg = &self.segments[s];
            let end = self.segments.get(s + 1).map_or(u64::MAX, |n| n.start);
            let len = (out.len() - done).min(usize::try_from(end - at).unwrap_or(usize::MAX));
            self.fill_segment_run(seg, at, &mut out[done..done + len], interrupted)?;
            done += len;
        }
        Ok(())
    }

    fn fill_segment_run(
        &self,
        seg: &Segment,
        p: u64,
        out: &mut [u64],
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error> {
        let k_count = self.lengths.len();
        // Pass 1: the source of each position (kept in `out` for now) and each source's first
        // draw in the run and number of draws.
        // Every buffer is allocated fallibly: this runs on the readers' helper threads too.
        let mut walker = Walker::new(&seg.schedule, p - seg.start)?;
        let mut first = filled_vec(k_count, u64::MAX)?;
        let mut count = filled_vec(k_count, 0usize)?;
        for o in out.iter_mut() {
            let (k, c) = walker.next();
            if count[k] == 0 {
                first[k] = seg.base[k] + c;
            }
            count[k] += 1;
            *o = k as u64;
        }
        // Pass 2: each source's draws first[k].. first[k] + count[k], cycle by cycle.
        let mut from = filled_vec(k_count, 0usize)?;
        let mut total = 0usize;
        for k in 0..k_count {
            from[k] = total;
            total += count[k];
        }
        let mut values = filled_vec(total, 0u64)?;
        for k in (0..k_count).filter(|&k| count[k] > 0) {
            let n = self.lengths[k];
            let mut j = first[k];
            let mut slot = &mut values[from[k]..from[k] + count[k]];
            while !slot.is_empty() {
                let item = j % n;
                let run = slot
                    .len()
                    .min(usize::try_from(n - item).unwrap_or(usize::MAX));
                let (head, rest) = slot.split_at_mut(run);
                self.cycle_perm(k, j / n, interrupted)?.fill_run(item, head);
                for v in head.iter_mut() {
                    *v += self.offsets[k];
                }
                j += run as u64;
                slot = rest;
            }
        }
        // Pass 3: interleave the sources' values in stream order.
        for o in out.iter_mut() {
            let k = *o as usize;
            *o = values[from[k]];
            from[k] += 1;
        }
        Ok(())
    }

    /// Source `k`'s item for its draw `j`, advancing the source's cursor.
    #[inline]
    fn item(
        &self,
        cursor: &mut Option<Cursor>,
        k: usize,
        j: u64,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<u64, Error> {
        let n = self.lengths[k];
        let c = match cursor {
            Some(c) if c.next_draw == j => c,
            _ => cursor.insert(Cursor {
                next_draw: j,
                item: j % n,
                perm: self.cycle_perm(k, j / n, interrupted)?,
            }),
        };
        let local = c.perm.get(c.item);
        c.next_draw += 1;
        c.item += 1;
        if c.item == n {
            // The next cycle is computed when it is first drawn from.
            *cursor = None;
        }
        Ok(local)
    }
}

/// The largest gap between wanted positions that a walk steps over instead of locating anew.
const WALK_GAP: u64 = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn routed_counts(s: &Schedule, m: u64, k: usize) -> Vec<u64> {
        let mut counts = vec![0; k];
        for p in 0..m {
            counts[s.locate(p).0] += 1;
        }
        counts
    }

    #[test]
    fn counts_routing_and_walker_agree() {
        let weights = [3u64, 0, 5, 1, 1, 7, 2];
        let s = Schedule::new(&weights).unwrap();
        let mut walker = Walker::new(&s, 0).unwrap();
        let mut seen = vec![0u64; weights.len()];
        for p in 0..500u64 {
            let mut c = vec![0; weights.len()];
            s.add_counts(p, &mut c);
            assert_eq!(c, seen, "p={p}");
            let (k, j) = s.locate(p);
            assert_eq!(walker.next(), (k, j));
            assert_eq!(j, seen[k]);
            seen[k] += 1;
        }
        assert_eq!(seen[1], 0, "a zero weight is never drawn");
        let mut from_middle = Walker::new(&s, 250).unwrap();
        for p in 250..400u64 {
            assert_eq!(from_middle.next(), s.locate(p));
        }
    }

    #[test]
    fn two_sources_are_within_a_half() {
        let s = Schedule::new(&[1, 2]).unwrap();
        for m in 0..100u64 {
            let c = routed_counts(&s, m, 2);
            let exact = m as f64 / 3.0;
            assert!((c[0] as f64 - exact).abs() <= 0.5 + 1e-12, "m={m} {c:?}");
        }
    }

    #[test]
    fn mixture_draws_follow_cycles_and_concat_numbering() {
        let m = Mixture::new(&[3, 5], &[(0, vec![1, 1])], SourceOrder::Lazy { seed: 9 }).unwrap();
        let mut per_source: Vec<Vec<u64>> = vec![vec![], vec![]];
        for p in 0..16 {
            let (k, _) = m.draw(p);
            per_source[k].push(m.at(p).unwrap());
        }
        assert_eq!(per_source[0].len(), 8);
        // source 0: indices 0..3, each cycle a permutation
        for cycle in per_source[0].chunks(3) {
            let mut c = cycle.to_vec();
            c.sort_unstable();
            assert!(c.len() < 3 || c == vec![0, 1, 2]);
        }
        let mut c = per_source[1][..5].to_vec();
        c.sort_unstable();
        assert_eq!(c, vec![3, 4, 5, 6, 7]);
    }

    #[test]
    fn reweighting_continues_every_source() {
        let w = vec![2, 1, 1];
        let m0 = Mixture::new(&[4, 4, 4], &[(0, w.clone())], SourceOrder::Identity).unwrap();
        let m1 = Mixture::new(
            &[4, 4, 4],
            &[(0, w), (10, vec![0, 1, 3])],
            SourceOrder::Identity,
        )
        .unwrap();
        for p in 0..10 {
            assert_eq!(m0.at(p).unwrap(), m1.at(p).unwrap());
        }
        let before = m1.counts(10);
        let mut next = before.clone();
        for p in 10..40 {
            let (k, j) = m1.draw(p);
            assert_ne!(k, 0, "weight 0 pauses source 0");
            assert_eq!(j, next[k]);
            next[k] += 1;
        }
        assert_eq!(m1.counts(40), next);
        assert_eq!(next[0], before[0]);
    }

    #[test]
    fn invalid_mixtures_are_refused() {
        let id = SourceOrder::Identity;
        assert!(Mixture::new(&[], &[(0, vec![])], id).is_err());
        assert!(Mixture::new(&[3], &[(0, vec![0])], id).is_err());
        assert!(Mixture::new(&[0, 3], &[(0, vec![1, 1])], id).is_err());
        assert!(Mixture::new(&[0, 3], &[(0, vec![0, 1])], id).is_ok());
        assert!(Mixture::new(&[3, 3], &[(1, vec![1, 1])], id).is_err());
        assert!(Mixture::new(&[3, 3], &[(0, vec![1, 1]), (0, vec![1, 2])], id).is_err());
        assert!(Mixture::new(&[3], &[(0, vec![MAX_WEIGHT_SUM + 1])], id).is_err());
        assert!(Mixture::new(&[3, 3], &[(0, vec![1])], id).is_err());
    }

    proptest! {
        #[test]
        fn prefix_counts_stay_within_the_bound(
            weights in prop::collection::vec(0u64..1_000_000, 1..64),
            m in 0u64..(1u64 << 62),
        ) {
            prop_assume!(weights.iter().any(|&w| w > 0));
            let s = Schedule::new(&weights).unwrap();
            let mut c = vec![0; weights.len()];
            s.add_counts(m, &mut c);
            prop_assert_eq!(c.iter().sum::<u64>(), m);
            let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
            let bound = f64::from(s.depth()) / 2.0;
            for (k, &w) in weights.iter().enumerate() {
                // |c_k - m w / W| <= d / 2, checked exactly: |2 W c_k - 2 m w| <= d W
                let lhs = (2 * total * u128::from(c[k])).abs_diff(2 * u128::from(m) * u128::from(w));
                prop_assert!(lhs <= u128::from(s.depth()) * total, "k={} bound={}", k, bound);
            }
        }

        #[test]
        fn runs_equal_single_positions(
            weights in prop::collection::vec(0u64..50, 1..9),
            start in 0u64..10_000,
            count in 0usize..3_000,
            order in 0usize..3,
        ) {
            prop_assume!(weights.iter().any(|&w| w > 0));
            let lengths: Vec<u64> = (0..weights.len() as u64).map(|k| 2 * k + 1).collect();
            let order = [
                SourceOrder::Lazy { seed: 4 },
                SourceOrder::Torch { seed: 4, generation: Generation::Current },
                SourceOrder::Identity,
            ][order];
            let m = Mixture::new(
                &lengths,
                &[(0, weights.clone()), (start + 700, weights.iter().rev().copied().collect())],
                order,
            );
            prop_assume!(m.is_ok());
            let m = m.unwrap();
            let mut out = vec![0; count];
            m.fill_run(start, &mut out, &mut || false).unwrap();
            for (i, &x) in out.iter().enumerate() {
                prop_assert_eq!(x, m.at(start + i as u64).unwrap());
            }
        }

        #[test]
        fn fill_equals_single_positions(
            weights in prop::collection::vec(0u64..50, 1..9),
            start in 0u64..10_000,
            stride in 1u64..80,
            count in 0usize..300,
        ) {
            prop_assume!(weights.iter().any(|&w| w > 0));
            let lengths: Vec<u64> = (0..weights.len() as u64).map(|k| k + 1).collect();
            let m = Mixture::new(
                &lengths,
                &[(0, weights.clone()), (5_000, weights.iter().rev().copied().collect())],
                SourceOrder::Lazy { seed: 4 },
            );
            prop_assume!(m.is_ok());
            let m = m.unwrap();
            let mut out = vec![0; count];
            m.fill(|i| start + i as u64 * stride, &mut out, &mut || false).unwrap();
            for (i, &x) in out.iter().enumerate() {
                prop_assert_eq!(x, m.at(start + i as u64 * stride).unwrap());
            }
        }
    }
}
