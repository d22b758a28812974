//! Property tests of the core's index arithmetic across modules: sharding, padding and offsets
//! partition the epoch; nothing overflows up to `n = 2**63 - 1`; the lazy order is a bijection;
//! the prefetching torch loops equal torch's plain loops.

use proptest::prelude::*;

use crate::epoch::named::Order;
use crate::epoch::order::Epoch;
use crate::epoch::shard::Shard;
use crate::orders::lazy::LazyPermutation;
use crate::orders::mt19937::TorchMt;
use crate::orders::torch::{torch_randperm, SWAP_REGIME_LIMIT};
use crate::util::limits::MAX_LEN;

fn build(shard: Shard, order: Order) -> Epoch {
    order.epoch(shard, &mut || false).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// The ranks' reads after an offset `c` are the global positions `[c, T')`, each once, and
    /// position `p` reads element `p mod n`.
    #[test]
    fn shards_partition_the_rest_of_the_epoch(
        n in 0u64..1500,
        w in 1u64..70,
        c_pct in 0u64..=110,
        drop_last: bool,
    ) {
        let c = n * c_pct / 100;
        let mut positions = Vec::new();
        let mut len = None;
        for r in 0..w {
            let s = Shard::new(n, w, r, c, drop_last).unwrap();
            prop_assert!(len.is_none() || len == Some(s.len()), "unequal shard lengths");
            len = Some(s.len());
            let mut walked = Vec::new();
            s.for_each_source(0, s.len() as usize, |_, p| walked.push(p));
            for j in 0..s.len() {
                let p = c + r + j * w;
                prop_assert_eq!(s.source(j), p % n);
                prop_assert_eq!(walked[j as usize], p % n);
                positions.push(p);
            }
        }
        positions.sort_unstable();
        let total = if c >= n {
            0
        } else if drop_last {
            (n - c) / w * w
        } else {
            (n - c).div_ceil(w) * w
        };
        prop_assert_eq!(positions, (c..c + total).collect::<Vec<_>>());
    }

    /// Lengths and sources stay exact (checked against 128-bit arithmetic) for any `n` up to
    /// 2**63 - 1, any number of replicas and any offset.
    #[test]
    fn no_overflow_at_any_size(
        n in 1u64..=MAX_LEN,
        w in 1u64..=u64::MAX,
        r_seed: u64,
        offset: u64,
        j_seed: u64,
        drop_last: bool,
    ) {
        let r = r_seed % w;
        let s = Shard::new(n, w, r, offset, drop_last).unwrap();
        let expect = if offset >= n {
            0
        } else if drop_last {
            (n - offset) / w
        } else {
            (n - offset).div_ceil(w)
        };
        prop_assert_eq!(s.len(), expect);
        if expect > 0 {
            let j = j_seed % expect;
            let wide = (u128::from(offset) + u128::from(r) + u128::from(j) * u128::from(w))
                % u128::from(n);
            prop_assert_eq!(u128::from(s.source(j)), wide);
            let steps = (expect - j).min(4) as usize;
            let mut walked = Vec::new();
            s.for_each_source(j, steps, |_, p| walked.push(p));
            for (k, p) in walked.into_iter().enumerate() {
                prop_assert_eq!(p, s.source(j + k as u64));
            }
        }
    }

    /// The lazy order is a bijection of `[0, n)` for every key.
    #[test]
    fn lazy_is_a_bijection(n in 1u64..2500, seed: u64, epoch: u64) {
        let p = LazyPermutation::new(n, seed, epoch);
        let mut seen = vec![false; n as usize];
        for x in 0..n {
            let y = p.index(x);
            prop_assert!(y < n);
            prop_assert!(!seen[y as usize]);
            seen[y as usize] = true;
        }
    }

    /// On huge domains the lazy order stays in range and inverts exactly.
    #[test]
    fn lazy_inverts_on_huge_domains(n in 1u64..=MAX_LEN, seed: u64, epoch: u64, x_seed: u64) {
        let p = LazyPermutation::new(n, seed, epoch);
        let x = x_seed % n;
        let y = p.index(x);
        prop_assert!(y < n);
        prop_assert_eq!(p.inverse(y), x);
    }

    /// Bulk reads (fill_range, to_vec_from) equal per-position reads for every order.
    #[test]
    fn bulk_reads_equal_single_reads(
        n in 1u64..3000,
        w in 1u64..9,
        r_seed: u64,
        c_pct in 0u64..100,
        seed: u64,
        start_seed: u64,
    ) {
        let shard = Shard::new(n, w, r_seed % w, n * c_pct / 100, false).unwrap();
        for order in [Order::Identity, Order::Torch { seed, epoch: 1, generation: crate::orders::torch::Generation::Current }, Order::Lazy { seed, epoch: 1 }] {
            let e = build(shard, order);
            let start = if e.is_empty() { 0 } else { start_seed % e.len() };
            let v = e.to_vec_from(start, &mut || false).unwrap();
            let mut chunk = vec![0u64; (e.len() - start) as usize];
            e.fill(start, &mut chunk, &mut || false).unwrap();
            for (k, &x) in chunk.iter().enumerate() {
                prop_assert_eq!(x, e.get(start + k as u64));
                prop_assert_eq!(v.get(k), x);
            }
        }
    }

    /// The prefetching swap-regime loop equals torch's loop, for any length and seed.
    #[test]
    fn swap_regime_equals_torchs_loop(n in 0usize..5000, seed: u64) {
        prop_assert!((n as u64) < SWAP_REGIME_LIMIT);
        let mut ours = vec![0u32; n];
        torch_randperm(&mut ours, seed, crate::orders::torch::Generation::Current, &mut || false).unwrap();
        let mut rng = TorchMt::new(seed);
        let mut want: Vec<u32> = (0..n as u32).collect();
        for i in 0..n.saturating_sub(1) {
            let z = rng.next_u32() as usize % (n - i);
            want.swap(i, i + z);
        }
        prop_assert_eq!(ours, want);
    }
}
