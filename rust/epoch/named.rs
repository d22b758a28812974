//! The orders a sampler names with `permutation=` (and the identity of `shuffle=False`):
//! parsing a name, and the epoch each builds.

use crate::epoch::identity::Identity;
use crate::epoch::lazy::Lazy;
use crate::epoch::order::Epoch;
use crate::epoch::shard::Shard;
use crate::epoch::torch;
use crate::orders::torch::{epoch_seed, randperm as torch_randperm, Generation};
use crate::util::buffer::IndexVec;
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
    /// `P` is the keyed bijection of `orders::lazy::LazyPermutation` for the full
    /// `(seed, epoch)`.
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

    /// This order's epoch for `shard`. Long work (a torch-order shuffle that is not streamed)
    /// calls `interrupted` now and then; `true` stops it with [`Error::Interrupted`].
    pub fn epoch(
        self,
        shard: Shard,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Epoch, Error> {
        match self {
            Order::Identity => Ok(Epoch::new(Identity(shard), shard)),
            Order::Lazy { seed, epoch } => Lazy::epoch(shard, seed, epoch),
            Order::Torch {
                seed,
                epoch,
                generation,
            } => torch::epoch(shard, epoch_seed(seed, epoch), generation, interrupted),
        }
    }
}

/// The torch generation named `permutation` (`"torch"` or `"torch-legacy"`), for the orders
/// built on torch's generator alone (length grouping, token budgets).
pub fn torch_generation(permutation: &str) -> Result<Generation, Error> {
    match Order::parse(permutation, 0, 0)? {
        Order::Torch { generation, .. } => Ok(generation),
        _ => Err(invalid(format!(
            "permutation should be 'torch' or 'torch-legacy', got {permutation:?}"
        ))),
    }
}

/// The whole permutation of `[0, n)` of the shuffling order named `permutation`, seeded with
/// `seed` (epoch 0): `torch.randperm(n)` or the lazy bijection. `interrupted` as for
/// [`Order::epoch`].
pub fn permutation(
    n: u64,
    seed: u64,
    permutation: &str,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<IndexVec, Error> {
    match Order::parse(permutation, seed, 0)? {
        Order::Torch {
            seed, generation, ..
        } => torch_randperm(n, seed, generation, interrupted),
        Order::Lazy { seed, epoch } => {
            Lazy::epoch(Shard::whole(n)?, seed, epoch)?.to_vec_from(0, interrupted)
        }
        Order::Identity => Err(invalid(
            "permutation should be one of 'torch', 'torch-legacy', 'lazy', got 'identity'",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(shard: Shard, order: Order) -> Epoch {
        order.epoch(shard, &mut || false).unwrap()
    }

    fn named() -> [Order; 3] {
        [
            Order::Identity,
            Order::Torch {
                seed: 1,
                epoch: 2,
                generation: Generation::Current,
            },
            Order::Lazy { seed: 1, epoch: 2 },
        ]
    }

    #[test]
    fn to_vec_from_matches_get() {
        for order in named() {
            let s = Shard::new(57, 4, 1, 3, false).unwrap();
            let e = build(s, order);
            for start in [0, 1, 5, e.len(), e.len() + 3] {
                let v = e.to_vec_from(start, &mut || false).unwrap();
                let want: Vec<u64> = (start..e.len()).map(|j| e.get(j)).collect();
                let got: Vec<u64> = (0..v.len()).map(|k| v.get(k)).collect();
                assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn fill_matches_get() {
        for order in named() {
            let e = build(Shard::new(1001, 3, 2, 4, false).unwrap(), order);
            for (start, len) in [(0, 0), (0, 10), (7, 100), (e.len() - 5, 5)] {
                let mut out = vec![0u64; len];
                e.fill(start, &mut out, &mut || false).unwrap();
                let want: Vec<u64> = (start..start + len as u64).map(|j| e.get(j)).collect();
                assert_eq!(out, want);
            }
        }
    }

    #[test]
    fn torch_order_seeds_with_seed_plus_epoch() {
        let s = Shard::whole(300).unwrap();
        let torch = |seed, epoch| {
            build(
                s,
                Order::Torch {
                    seed,
                    epoch,
                    generation: Generation::Current,
                },
            )
        };
        let (a, b, c) = (torch(5, 3), torch(8, 0), torch(u64::MAX, 9)); // -1 + 9
        for j in 0..300 {
            assert_eq!(a.get(j), b.get(j));
            assert_eq!(c.get(j), b.get(j));
        }
    }

    #[test]
    fn an_empty_dataset_has_an_empty_epoch_in_every_order() {
        for order in named() {
            let e = build(Shard::whole(0).unwrap(), order);
            assert_eq!(e.len(), 0);
            assert_eq!(e.to_vec_from(0, &mut || false).unwrap().len(), 0);
        }
    }

    #[test]
    fn names_parse_and_compare() {
        for name in ORDER_NAMES {
            assert!(Order::parse(name, 0, 0).is_ok());
        }
        let err = Order::parse("random", 0, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "permutation should be one of 'torch', 'torch-legacy', 'lazy', 'identity', got \"random\""
        );
        assert!(Order::same_permutation("torch", "torch-legacy", 1000).unwrap());
        assert!(!Order::same_permutation("torch", "torch-legacy", 1 << 40).unwrap());
        assert_eq!(torch_generation("torch-legacy"), Ok(Generation::Legacy));
        assert!(torch_generation("lazy").is_err());
        assert!(permutation(5, 0, "identity", &mut || false).is_err());
    }
}
