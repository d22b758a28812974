//! One rank's indices for one epoch: materialised once (torch order) or computed on demand
//! (identity and lazy orders), and read by position.

use std::sync::Arc;

use crate::epoch::shard::{gather, Shard};
use crate::epoch::stream::Streamed;
use crate::orders::lazy::LazyPermutation;
use crate::orders::mixture::Mixture;
use crate::orders::shards::ShardOrder;
use crate::orders::torch::randperm;
use crate::orders::torch::Generation;
use crate::util::buffer::{IndexElem, IndexVec};
use crate::util::error::{invalid, Error};

/// The permutation `P` of an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// `P` is the identity (`shuffle=False`, the sequential sampler).
    Identity,
    /// `P = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))` as the
    /// torch releases of `generation` compute it.
    Torch {
        seed: u64,
        epoch: u64,
        generation: Generation,
    },
    /// `P` is the keyed bijection of [`LazyPermutation`] for the full `(seed, epoch)`.
    Lazy { seed: u64, epoch: u64 },
}

/// The order names [`Order::parse`] accepts.
pub const ORDER_NAMES: [&str; 4] = ["torch", "torch-legacy", "lazy", "identity"];

impl Order {
    /// Parses an order name; `seed` and `epoch` are taken modulo 2**64. `"torch"` is the order
    /// of torch 2.6 and later, `"torch-legacy"` that of torch up to 2.5 (see `orders/torch.rs`).
    pub fn parse(permutation: &str, seed: u64, epoch: u64) -> Result<Self, Error> {
        let torch = |generation| Order::Torch {
            seed,
            epoch,
            generation,
        };
        match permutation {
            "torch" => Ok(torch(Generation::Current)),
            "torch-legacy" => Ok(torch(Generation::Legacy)),
            "lazy" => Ok(Order::Lazy { seed, epoch }),
            "identity" => Ok(Order::Identity),
            other => Err(invalid(format!(
                "permutation should be one of {}, got {other:?}",
                ORDER_NAMES.map(|n| format!("'{n}'")).join(", ")
            ))),
        }
    }

    /// Whether the orders named `a` and `b` give the same permutation of `n` items for every
    /// seed and epoch: the same name, or both torch generations below the length where their
    /// loops part.
    pub fn same_permutation(a: &str, b: &str, n: u64) -> Result<bool, Error> {
        let (x, y) = (Self::parse(a, 0, 0)?, Self::parse(b, 0, 0)?);
        Ok(match (x, y) {
            (Order::Torch { generation: g, .. }, Order::Torch { generation: h, .. }) => {
                g.swap_regime(n) == h.swap_regime(n)
            }
            _ => x == y,
        })
    }
}

/// Torch-order epochs of at least this many items are shuffled on a helper thread and read as
/// they become final (see `epoch/stream.rs`); smaller ones are shuffled before the first index.
const STREAM_MIN: u64 = 1 << 20;
/// A mixture epoch is copied out in chunks of this many indices, checking for signals between.
const MIXTURE_CHUNK: u64 = 1 << 20;
/// Outputs at least this long are filled on all cores (the result never depends on it).
const PARALLEL_FILL: usize = 1 << 18;
/// Indices computed between two calls of the caller's `check`.
const FILL_CHUNK: usize = 1 << 24;

/// This rank's indices for an epoch, in the order they are yielded.
#[derive(Debug)]
// One value per epoch, behind an `Arc`: keeping the lazy keys inline saves an indirection per
// index and costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum EpochIndices {
    /// Stored: `buf[j]` is the `j`-th index.
    Stored(IndexVec),
    /// Computed: the `j`-th index is `shard.source(j)`.
    Identity(Shard),
    /// Computed: the `j`-th index is `perm.index(shard.source(j))`.
    Lazy { shard: Shard, perm: LazyPermutation },
    /// Torch order, being shuffled on a helper thread and readable as it becomes final.
    Streamed(Streamed),
    /// Computed: the `j`-th index is the mixture's index at stream position
    /// `start + shard.source(j)` (the epoch covers the stream positions `start..start + n`).
    Mixture {
        shard: Shard,
        mix: Arc<Mixture>,
        start: u64,
    },
    /// Computed: the shard order's rank share.
    Shards(ShardOrder),
}

impl EpochIndices {
    /// Builds the epoch. Long work calls `check` now and then; its error aborts the build.
    pub fn build<E: From<Error>>(
        shard: Shard,
        order: Order,
        check: &mut dyn FnMut() -> Result<(), E>,
    ) -> Result<Self, E> {
        match order {
            Order::Identity => Ok(EpochIndices::Identity(shard)),
            // An empty dataset has no bijection to key; its (empty) identity is the same thing.
            Order::Lazy { .. } if shard.n() == 0 => Ok(EpochIndices::Identity(shard)),
            Order::Lazy { seed, epoch } => Ok(EpochIndices::Lazy {
                shard,
                perm: LazyPermutation::try_new(shard.n(), seed, epoch)?,
            }),
            Order::Torch {
                seed,
                epoch,
                generation,
            } => {
                let seed = seed.wrapping_add(epoch);
                if shard.is_empty() {
                    return Ok(EpochIndices::Stored(IndexVec::zeroed(0, shard.n())?));
                }
                if shard.n() >= STREAM_MIN && Streamed::applies(&shard, generation) {
                    if let Some(s) = Streamed::start(shard, seed, generation)? {
                        return Ok(EpochIndices::Streamed(s));
                    }
                    // No helper thread: shuffle here, as for small epochs.
                }
                let perm = randperm(shard.n(), seed, generation, check)?;
                if shard.is_whole() {
                    return Ok(EpochIndices::Stored(perm));
                }
                let mut share = IndexVec::zeroed(shard.len(), shard.n())?;
                match (&perm, &mut share) {
                    (IndexVec::U32(p), IndexVec::U32(s)) => gather(&shard, p, s, check)?,
                    (IndexVec::I64(p), IndexVec::I64(s)) => gather(&shard, p, s, check)?,
                    _ => unreachable!("both buffers are typed by n"),
                }
                Ok(EpochIndices::Stored(share))
            }
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            EpochIndices::Stored(v) => v.len() as u64,
            EpochIndices::Identity(s) | EpochIndices::Lazy { shard: s, .. } => s.len(),
            EpochIndices::Streamed(s) => s.len(),
            EpochIndices::Mixture { shard, .. } => shard.len(),
            EpochIndices::Shards(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `j`-th index, for `j < len()`.
    #[cfg(test)]
    pub fn get(&self, j: u64) -> u64 {
        let mut one = [0u64];
        self.fill_range(j, &mut one)
            .expect("test epochs are readable");
        one[0]
    }

    /// Writes the indices at positions `start..start + out.len()` (all `< len()`) into `out`
    /// (waiting, for a streamed epoch, until they are final). Fails only in a forked child
    /// that has to compute a streamed epoch itself and cannot allocate it.
    pub fn fill_range(&self, start: u64, out: &mut [u64]) -> Result<(), Error> {
        self.fill_range_interruptible(start, out, &mut || false)
    }

    /// [`Self::fill_range`], calling `interrupted` every few milliseconds while it waits for a
    /// streamed epoch or computes a mixture's torch-order cycle; `true` stops it with
    /// [`Error::Interrupted`].
    pub fn fill_range_interruptible(
        &self,
        start: u64,
        out: &mut [u64],
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), Error> {
        debug_assert!(start + out.len() as u64 <= self.len());
        match self {
            EpochIndices::Streamed(s) => return s.fill_range(start, out, interrupted),
            EpochIndices::Shards(s) => return s.fill(start, out, interrupted),
            EpochIndices::Stored(v) => {
                let s = start as usize;
                match v {
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
            EpochIndices::Identity(shard) => {
                shard.for_each_source(start, out.len(), |k, p| out[k] = p)
            }
            EpochIndices::Lazy { shard, perm } => perm.fill(shard.source(start), shard.step(), out),
            EpochIndices::Mixture {
                shard,
                mix,
                start: s0,
            } => {
                let first = shard.source(start);
                // One replica reading a stretch that does not wrap: consecutive positions.
                if shard.step() == 1 && first + (out.len() as u64) <= shard.n() {
                    return mix.fill_run(s0 + first, out, interrupted);
                }
                return mix.fill(|k| s0 + shard.source(start + k as u64), out, interrupted);
            }
        }
        Ok(())
    }

    /// The indices from position `start` on, as a new buffer (`start >= len()` gives an empty
    /// one). Long work calls `check` now and then; its error aborts it.
    pub fn to_vec_from<E: From<Error>>(
        &self,
        start: u64,
        check: &mut dyn FnMut() -> Result<(), E>,
    ) -> Result<IndexVec, E> {
        let len = self.len().saturating_sub(start);
        Ok(match self {
            EpochIndices::Stored(v) => {
                let s = start.min(v.len() as u64) as usize;
                match v {
                    IndexVec::U32(v) => IndexVec::U32(copy_of(&v[s..])?),
                    IndexVec::I64(v) => IndexVec::I64(copy_of(&v[s..])?),
                }
            }
            EpochIndices::Streamed(st) => {
                let share = st.wait_share(check)?;
                let s = start.min(share.len() as u64) as usize;
                IndexVec::U32(copy_of(&share[s..])?)
            }
            EpochIndices::Identity(shard) => {
                let mut out = IndexVec::zeroed(len, shard.n())?;
                match &mut out {
                    IndexVec::U32(o) => fill_identity(shard, start, o, check)?,
                    IndexVec::I64(o) => fill_identity(shard, start, o, check)?,
                }
                out
            }
            EpochIndices::Lazy { shard, perm } => {
                let mut out = IndexVec::zeroed(len, shard.n())?;
                match &mut out {
                    IndexVec::U32(o) => fill_lazy(perm, shard, start, o, check)?,
                    IndexVec::I64(o) => fill_lazy(perm, shard, start, o, check)?,
                }
                out
            }
            EpochIndices::Mixture { .. } | EpochIndices::Shards(_) => {
                let n = match self {
                    EpochIndices::Mixture { mix, .. } => mix.total_len(),
                    EpochIndices::Shards(s) => s.n(),
                    _ => unreachable!("matched above"),
                };
                let mut out = IndexVec::zeroed(len, n)?;
                let mut buf = crate::util::buffer::zeroed_vec::<u64>(len.min(MIXTURE_CHUNK))?;
                let mut done = 0u64;
                while done < len {
                    let k = (len - done).min(MIXTURE_CHUNK) as usize;
                    // A torch-order source's cycle is computed inside: `check` runs during it.
                    let mut stopped = None;
                    let filled =
                        self.fill_range_interruptible(start + done, &mut buf[..k], &mut || {
                            match check() {
                                Ok(()) => false,
                                Err(e) => {
                                    stopped = Some(e);
                                    true
                                }
                            }
                        });
                    match (filled, stopped) {
                        (Err(Error::Interrupted), Some(e)) => return Err(e),
                        (Err(e), _) => return Err(e.into()),
                        (Ok(()), _) => {}
                    }
                    match &mut out {
                        IndexVec::U32(o) => {
                            for (d, &x) in o[done as usize..].iter_mut().zip(&buf[..k]) {
                                *d = x as u32;
                            }
                        }
                        IndexVec::I64(o) => {
                            for (d, &x) in o[done as usize..].iter_mut().zip(&buf[..k]) {
                                *d = x as i64;
                            }
                        }
                    }
                    done += k as u64;
                    check()?;
                }
                out
            }
        })
    }
}

/// `out[k]` = the identity epoch's index `start + k`.
fn fill_identity<T: IndexElem, E>(
    shard: &Shard,
    start: u64,
    out: &mut [T],
    check: &mut dyn FnMut() -> Result<(), E>,
) -> Result<(), E> {
    let mut done = start;
    for chunk in out.chunks_mut(FILL_CHUNK) {
        shard.for_each_source(done, chunk.len(), |k, p| chunk[k] = T::from_u64(p));
        done += chunk.len() as u64;
        check()?;
    }
    Ok(())
}

/// `out[k]` = the lazy epoch's index `start + k`, on all cores for long outputs.
fn fill_lazy<T: IndexElem, E>(
    perm: &LazyPermutation,
    shard: &Shard,
    start: u64,
    out: &mut [T],
    check: &mut dyn FnMut() -> Result<(), E>,
) -> Result<(), E> {
    let threads = if out.len() >= PARALLEL_FILL {
        std::thread::available_parallelism().map_or(1, |t| t.get())
    } else {
        1
    };
    let mut done = start;
    for chunk in out.chunks_mut(FILL_CHUNK) {
        perm.fill_parallel(shard.source(done), shard.step(), chunk, threads);
        done += chunk.len() as u64;
        check()?;
    }
    Ok(())
}

/// A lazy permutation of `[0, n)` keyed by `(seed, epoch)`, filled on all cores.
pub fn lazy_randperm<E: From<Error>>(
    n: u64,
    seed: u64,
    epoch: u64,
    check: &mut dyn FnMut() -> Result<(), E>,
) -> Result<IndexVec, E> {
    let shard = Shard::whole(n)?;
    EpochIndices::build(shard, Order::Lazy { seed, epoch }, check)?.to_vec_from(0, check)
}

fn copy_of<T: IndexElem>(src: &[T]) -> Result<Vec<T>, Error> {
    let mut v = crate::util::buffer::zeroed_vec(src.len() as u64)?;
    v.copy_from_slice(src);
    Ok(v)
}

impl EpochIndices {
    /// This rank's share of an epoch whose global order is `order`, taking it over when the rank
    /// reads all of it in order.
    pub fn share_of(order: IndexVec, shard: Shard) -> Result<EpochIndices, Error> {
        if shard.is_whole() || order.is_empty() {
            return Ok(Self::Stored(order));
        }
        Self::share_from(&order, shard)
    }

    /// [`Self::share_of`] for an order the caller keeps.
    pub fn share_from(order: &IndexVec, shard: Shard) -> Result<EpochIndices, Error> {
        debug_assert_eq!(order.len() as u64, shard.n());
        let mut share = IndexVec::zeroed(shard.len(), shard.n())?;
        match (order, &mut share) {
            (IndexVec::U32(p), IndexVec::U32(s)) => {
                gather::<_, Error>(&shard, p, s, &mut || Ok(()))?
            }
            (IndexVec::I64(p), IndexVec::I64(s)) => {
                gather::<_, Error>(&shard, p, s, &mut || Ok(()))?
            }
            (p, s) => {
                // Typed by another n: convert element by element.
                for j in 0..s.len() {
                    let v = p.get(shard.source(j as u64) as usize);
                    match s {
                        IndexVec::U32(s) => s[j] = v as u32,
                        IndexVec::I64(s) => s[j] = v as i64,
                    }
                }
            }
        }
        Ok(Self::Stored(share))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(shard: Shard, order: Order) -> EpochIndices {
        EpochIndices::build::<Error>(shard, order, &mut || Ok(())).unwrap()
    }

    fn to_vec(e: &EpochIndices, start: u64) -> IndexVec {
        e.to_vec_from::<Error>(start, &mut || Ok(())).unwrap()
    }

    #[test]
    fn shares_of_a_shuffled_epoch_partition_it_with_padding() {
        let n = 1003;
        let full = build(
            Shard::whole(n).unwrap(),
            Order::Torch {
                seed: 9,
                epoch: 0,
                generation: Generation::Current,
            },
        );
        for w in [1, 2, 3, 8, 64, 2000] {
            let mut all = Vec::new();
            for r in 0..w {
                let s = Shard::new(n, w, r, 0, false).unwrap();
                let e = build(
                    s,
                    Order::Torch {
                        seed: 9,
                        epoch: 0,
                        generation: Generation::Current,
                    },
                );
                assert_eq!(e.len(), s.len());
                for j in 0..e.len() {
                    assert_eq!(e.get(j), full.get(s.source(j) as usize as u64));
                    all.push(e.get(j));
                }
            }
            all.sort_unstable();
            all.dedup();
            assert_eq!(all.len() as u64, n, "w={w}");
        }
    }

    #[test]
    fn to_vec_from_matches_get() {
        for order in [
            Order::Identity,
            Order::Torch {
                seed: 1,
                epoch: 2,
                generation: Generation::Current,
            },
            Order::Lazy { seed: 1, epoch: 2 },
        ] {
            let s = Shard::new(57, 4, 1, 3, false).unwrap();
            let e = build(s, order);
            for start in [0, 1, 5, e.len(), e.len() + 3] {
                let v = to_vec(&e, start);
                let want: Vec<u64> = (start..e.len()).map(|j| e.get(j)).collect();
                let got: Vec<u64> = (0..v.len()).map(|k| v.get(k)).collect();
                assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn check_error_propagates() {
        let interrupted = || Err::<(), _>(Error::InvalidArgument("interrupted".into()));
        // Synchronous shuffles (the lazy fill here) stop at the check.
        let s = Shard::whole(FILL_CHUNK as u64 * 2).unwrap();
        let lazy =
            EpochIndices::build::<Error>(s, Order::Lazy { seed: 0, epoch: 0 }, &mut || Ok(()));
        assert!(lazy
            .unwrap()
            .to_vec_from(0, &mut interrupted.clone())
            .is_err());
        // A streamed torch-order epoch is built at once; waiting for all of it stops too.
        let s = Shard::new(1 << 25, 2, 1, 0, false).unwrap();
        let e = EpochIndices::build::<Error>(
            s,
            Order::Torch {
                seed: 0,
                epoch: 0,
                generation: Generation::Current,
            },
            &mut interrupted.clone(),
        );
        let e = e.unwrap();
        assert!(matches!(e, EpochIndices::Streamed(_)));
        assert!(e.to_vec_from(0, &mut interrupted.clone()).is_err());
    }

    #[test]
    fn fill_range_matches_get() {
        for order in [
            Order::Identity,
            Order::Torch {
                seed: 3,
                epoch: 1,
                generation: Generation::Current,
            },
            Order::Lazy { seed: 3, epoch: 1 },
        ] {
            let e = build(Shard::new(1001, 3, 2, 4, false).unwrap(), order);
            for (start, len) in [(0, 0), (0, 10), (7, 100), (e.len() - 5, 5)] {
                let mut out = vec![0u64; len];
                e.fill_range(start, &mut out).unwrap();
                let want: Vec<u64> = (start..start + len as u64).map(|j| e.get(j)).collect();
                assert_eq!(out, want);
            }
        }
    }

    #[test]
    fn torch_order_seeds_with_seed_plus_epoch() {
        let s = Shard::whole(300).unwrap();
        let a = build(
            s,
            Order::Torch {
                seed: 5,
                epoch: 3,
                generation: Generation::Current,
            },
        );
        let b = build(
            s,
            Order::Torch {
                seed: 8,
                epoch: 0,
                generation: Generation::Current,
            },
        );
        let c = build(
            s,
            Order::Torch {
                seed: u64::MAX,
                epoch: 9,
                generation: Generation::Current,
            },
        ); // -1 + 9
        for j in 0..300 {
            assert_eq!(a.get(j), b.get(j));
            assert_eq!(c.get(j), b.get(j));
        }
    }

    #[test]
    fn lazy_shares_partition_the_padded_epoch_and_fill_equals_get() {
        let n = 100_003;
        for w in [1, 3, 8] {
            let mut all = Vec::new();
            for r in 0..w {
                let s = Shard::new(n, w, r, 7, false).unwrap();
                let e = build(s, Order::Lazy { seed: 4, epoch: 1 });
                let v = to_vec(&e, 0);
                assert_eq!(v.len() as u64, e.len());
                for j in 0..e.len() {
                    assert_eq!(v.get(j as usize), e.get(j));
                    all.push(e.get(j));
                }
            }
            // positions 7.. of the global sequence: all but the first 7 elements, then padding
            all.sort_unstable();
            all.dedup();
            assert!(all.len() as u64 >= n - 7);
        }
        let empty = build(Shard::whole(0).unwrap(), Order::Lazy { seed: 0, epoch: 0 });
        assert_eq!(empty.len(), 0);
    }

    #[test]
    fn lazy_fill_is_the_same_on_one_thread_and_many() {
        let n = (PARALLEL_FILL * 3) as u64;
        let e = build(
            Shard::new(n, 2, 1, 5, false).unwrap(),
            Order::Lazy { seed: 3, epoch: 9 },
        );
        let v = to_vec(&e, 11);
        for k in (0..v.len()).step_by(997) {
            assert_eq!(v.get(k), e.get(11 + k as u64));
        }
    }

    #[test]
    fn an_empty_domain_is_an_error_not_a_hang() {
        assert!(matches!(
            LazyPermutation::try_new(0, 1, 2),
            Err(Error::InvalidArgument(_))
        ));
        assert!(LazyPermutation::try_new(1 << 63, 1, 2).is_err());
        assert_eq!(
            LazyPermutation::try_new(5, 1, 2),
            Ok(LazyPermutation::new(5, 1, 2))
        );
        let zero = std::panic::catch_unwind(|| LazyPermutation::new(0, 1, 2));
        assert!(
            zero.is_err(),
            "new(0) panics instead of building a permutation that hangs"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..proptest::prelude::ProptestConfig::default() })]

        #[test]
        fn shares_gather_the_order(n in 1u64..300, w in 1u64..9, offset in 0u64..12, drop_last: bool) {
            let order = IndexVec::U32((0..n as u32).rev().collect());
            for r in 0..w {
                let shard = Shard::new(n, w, r, offset, drop_last).unwrap();
                let share = EpochIndices::share_from(&order, shard).unwrap();
                proptest::prop_assert_eq!(share.len(), shard.len());
                for j in 0..shard.len() {
                    proptest::prop_assert_eq!(share.get(j), n - 1 - shard.source(j));
                }
            }
        }

    }
}
