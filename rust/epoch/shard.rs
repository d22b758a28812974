//! Which global positions a rank reads: replica sharding, torch's padding rule, `drop_last`
//! and the resume offset, all in one place.
//!
//! The epoch's global sequence is `G(p) = P[p mod n]`: the wrap-around is exactly torch's
//! padding (`indices += indices[:pad]`, repeated when `pad > n`). A job of `W` replicas that
//! has consumed the global positions `[0, c)` continues with rank `r` reading
//! `G(c + r + j * W)` for `j < ceil((n - c) / W)` (`floor` with `drop_last`). With `c = 0` this
//! is `torch.utils.data.DistributedSampler`'s `indices[rank:total_size:num_replicas]`.

use crate::util::buffer::{zeroed_vec, IndexElem};
use crate::util::error::{invalid, poll, Error};
use crate::util::limits::MAX_LEN;

/// One rank's view of an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    n: u64,
    replicas: u64,
    rank: u64,
    offset: u64,
    drop_last: bool,
}

impl Shard {
    /// Rank `rank` of `replicas` over a dataset of `n` items, resuming after the global
    /// positions `[0, offset)` were consumed.
    pub fn new(
        n: u64,
        replicas: u64,
        rank: u64,
        offset: u64,
        drop_last: bool,
    ) -> Result<Self, Error> {
        if n > MAX_LEN {
            return Err(invalid(format!(
                "dataset length should be at most 2**63 - 1, got {n}"
            )));
        }
        if replicas == 0 {
            return Err(invalid("num_replicas should be a positive integer, got 0"));
        }
        check_rank(i128::from(rank), replicas)?;
        Ok(Self {
            n,
            replicas,
            rank,
            offset,
            drop_last,
        })
    }

    /// The whole epoch of a single replica: every position of `[0, n)` in order.
    pub fn whole(n: u64) -> Result<Self, Error> {
        Self::new(n, 1, 0, 0, false)
    }

    pub fn n(&self) -> u64 {
        self.n
    }

    /// How many indices this rank reads in the (rest of the) epoch.
    pub fn len(&self) -> u64 {
        if self.offset >= self.n {
            return 0;
        }
        let rest = self.n - self.offset;
        if self.drop_last {
            rest / self.replicas
        } else {
            rest.div_ceil(self.replicas)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when this rank reads the whole permutation in order (one replica, no offset).
    pub fn is_whole(&self) -> bool {
        self.replicas == 1 && self.offset == 0
    }

    /// The global position consumed once every rank has read `position` indices of this
    /// shard: `offset + position * replicas`. The inverse of [`resume_point`].
    pub fn consumed(&self, position: u64) -> u128 {
        u128::from(self.offset) + u128::from(position) * u128::from(self.replicas)
    }

    /// The element of `P` that this rank's `j`-th index is, for `j < len()`.
    #[inline]
    pub fn source(&self, j: u64) -> u64 {
        let p = j
            .checked_mul(self.replicas)
            .and_then(|m| m.checked_add(self.offset))
            .and_then(|m| m.checked_add(self.rank));
        match p {
            Some(p) if p < self.n => p,
            Some(p) => p % self.n,
            None => {
                let p = u128::from(self.offset)
                    + u128::from(self.rank)
                    + u128::from(j) * u128::from(self.replicas);
                (p % u128::from(self.n)) as u64
            }
        }
    }

    /// The stride between consecutive sources, modulo `n`.
    pub fn step(&self) -> u64 {
        if self.n == 0 {
            0
        } else {
            self.replicas % self.n
        }
    }

    /// Calls `f(k, source(start + k))` for `k` in `0..count`, stepping modulo `n` without
    /// multiplications or overflow.
    #[inline]
    pub fn for_each_source(&self, start: u64, count: usize, mut f: impl FnMut(usize, u64)) {
        if count == 0 {
            return;
        }
        let n = self.n;
        let step = self.step();
        let mut p = self.source(start);
        for k in 0..count {
            f(k, p);
            p += step;
            if p >= n {
                p -= n;
            }
        }
    }
}

/// Where a job of `replicas` ranks resumes after the global positions `[0, consumed)`: the
/// shard offset `consumed mod replicas` and the position `consumed / replicas` in that shard.
/// Rank `r` then reads `G(consumed + r + j * replicas)`, the same as a shard built with
/// `offset = consumed`, while every resume point with the same residue shares one shard.
pub fn resume_point(consumed: u64, replicas: u64) -> Result<(u64, u64), Error> {
    if replicas == 0 {
        return Err(invalid("num_replicas should be a positive integer, got 0"));
    }
    Ok((consumed % replicas, consumed / replicas))
}

/// torch's `DistributedSampler` rule, in its wording: `rank` is one of the `replicas` ranks
/// (`replicas >= 1`). Signed, so that a negative rank gets the same message.
pub fn check_rank(rank: i128, replicas: u64) -> Result<u64, Error> {
    if replicas == 0 {
        return Err(invalid("num_replicas should be a positive integer, got 0"));
    }
    if rank < 0 || rank >= i128::from(replicas) {
        return Err(rank_error(&rank.to_string(), replicas));
    }
    Ok(rank as u64)
}

/// The error [`check_rank`] gives, for a rank written as `rank` (any integer, however large).
pub fn rank_error(rank: &str, replicas: u64) -> Error {
    invalid(format!(
        "Invalid rank {rank}, rank should be in the interval [0, {}]",
        replicas.saturating_sub(1)
    ))
}

/// Indices gathered between two calls of the caller's `interrupted`.
const GATHER_CHUNK: usize = 1 << 24;

impl Shard {
    /// This rank's share of a stored global order `perm` of `n` items, in a new buffer:
    /// `share[j] = perm[source(j)]`. `interrupted` runs between chunks; `true` stops the work
    /// with [`Error::Interrupted`].
    pub fn gather<T: IndexElem>(
        &self,
        perm: &[T],
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Vec<T>, Error> {
        debug_assert_eq!(perm.len() as u64, self.n);
        let mut share = zeroed_vec::<T>(self.len())?;
        let mut done = 0;
        for chunk in share.chunks_mut(GATHER_CHUNK) {
            self.for_each_source(done, chunk.len(), |k, p| chunk[k] = perm[p as usize]);
            done += chunk.len() as u64;
            poll(interrupted)?;
        }
        Ok(share)
    }

    /// [`Self::gather`], taking `perm` over when this rank reads all of it in order.
    pub fn take<T: IndexElem>(
        &self,
        perm: Vec<T>,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Vec<T>, Error> {
        if self.is_whole() {
            return Ok(perm);
        }
        self.gather(&perm, interrupted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// torch's DistributedSampler, written out: pad (or trim), then take every W-th element.
    fn torch_positions(n: u64, w: u64, r: u64, drop_last: bool) -> Vec<u64> {
        let (num_samples, total) = if drop_last && !n.is_multiple_of(w) {
            let s = n / w;
            (s, s * w)
        } else {
            let s = n.div_ceil(w);
            (s, s * w)
        };
        let base: Vec<u64> = (0..n).collect();
        let mut idx = base.clone();
        if drop_last {
            idx.truncate(total as usize);
        } else {
            while (idx.len() as u64) < total {
                let need = (total as usize - idx.len()).min(base.len());
                idx.extend_from_slice(&base[..need]);
            }
        }
        let out: Vec<u64> = idx
            .into_iter()
            .skip(r as usize)
            .step_by(w as usize)
            .collect();
        assert_eq!(out.len() as u64, num_samples);
        out
    }

    fn ours(s: &Shard) -> Vec<u64> {
        let mut v = vec![0; s.len() as usize];
        s.for_each_source(0, v.len(), |k, p| v[k] = p);
        for (j, &p) in v.iter().enumerate() {
            assert_eq!(p, s.source(j as u64));
        }
        v
    }

    #[test]
    fn equals_torch_padding_and_striding() {
        for n in 1..40u64 {
            for w in 1..12u64 {
                for r in 0..w {
                    for drop_last in [false, true] {
                        let s = Shard::new(n, w, r, 0, drop_last).unwrap();
                        assert_eq!(
                            ours(&s),
                            torch_positions(n, w, r, drop_last),
                            "n={n} w={w} r={r}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn offset_continues_the_global_sequence() {
        // After consuming [0, c) with any W, the union of the W' ranks' reads is [c, T').
        for n in 1..30u64 {
            for c in 0..=n + 2 {
                for w in 1..7u64 {
                    let mut seen = Vec::new();
                    for r in 0..w {
                        let s = Shard::new(n, w, r, c, false).unwrap();
                        for j in 0..s.len() {
                            seen.push((c + r + j * w, s.source(j)));
                        }
                    }
                    seen.sort_unstable();
                    let expect_len = if c >= n { 0 } else { (n - c).div_ceil(w) * w };
                    assert_eq!(seen.len() as u64, expect_len);
                    for (k, &(p, src)) in seen.iter().enumerate() {
                        assert_eq!(p, c + k as u64);
                        assert_eq!(src, p % n);
                    }
                }
            }
        }
    }

    #[test]
    fn empty_and_invalid() {
        assert_eq!(Shard::new(0, 4, 2, 0, false).unwrap().len(), 0);
        assert_eq!(Shard::new(3, 4, 2, 0, true).unwrap().len(), 0);
        assert!(Shard::new(3, 0, 0, 0, false).is_err());
        assert_eq!(
            Shard::new(3, 3, 3, 0, false),
            Err(invalid(
                "Invalid rank 3, rank should be in the interval [0, 2]"
            ))
        );
        assert!(Shard::new(MAX_LEN + 1, 1, 0, 0, false).is_err());
    }

    #[test]
    fn no_overflow_at_the_extremes() {
        let s = Shard::new(MAX_LEN, u64::MAX, u64::MAX - 1, MAX_LEN - 1, false).unwrap();
        assert_eq!(s.len(), 1);
        assert!(s.source(0) < MAX_LEN);
        let s = Shard::new(MAX_LEN, 3, 2, 5, false).unwrap();
        let last = s.len() - 1;
        assert!(s.source(last) < MAX_LEN);
        let mut got = Vec::new();
        s.for_each_source(last - 2, 3, |_, p| got.push(p));
        assert_eq!(
            got,
            vec![s.source(last - 2), s.source(last - 1), s.source(last)]
        );
    }

    #[test]
    fn resume_point_is_the_inverse_of_consumed() {
        for n in 1..25u64 {
            for w in 1..6u64 {
                for c in 0..=n + w {
                    let (offset, position) = resume_point(c, w).unwrap();
                    for r in 0..w {
                        for drop_last in [false, true] {
                            let whole = Shard::new(n, w, r, c, drop_last).unwrap();
                            let split = Shard::new(n, w, r, offset, drop_last).unwrap();
                            let rest = split.len().saturating_sub(position);
                            assert_eq!(whole.len(), rest, "n={n} w={w} c={c} r={r}");
                            for j in 0..whole.len() {
                                assert_eq!(whole.source(j), split.source(position + j));
                            }
                            assert_eq!(split.consumed(position), u128::from(c));
                        }
                    }
                }
            }
        }
        assert!(resume_point(3, 0).is_err());
    }
}
