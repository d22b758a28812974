//! One rank's share of an epoch, of any order.
//!
//! Every order's share implements one trait, [`order::RankOrder`] (its length, its dataset
//! length, and `fill`: the indices at a run of positions), and is held as an [`order::Epoch`].
//! Readers ([`reader`]), `indices()`, the C-level iterator and the bindings use only `Epoch`,
//! whatever the order. Sharding, torch's padding and the resume offset are [`shard::Shard`]'s;
//! a stored global order becomes a rank's share in [`stored`], once for every order.
//!
//! The orders: [`identity`], [`lazy`], [`torch`] (stored, or [`stream`]ed while it is
//! shuffled), [`mixture`], [`shards`] (sharded datasets in windows of shards), [`length`]
//! (length-grouped and token-budget batches, stored), and the orders samplers name, with their
//! keys, in [`named`] (the names themselves are `orders/named.rs`'s).
//!
//! # Adding an order
//! Write its pure function of the keys in `orders/` if it needs one. Then add one file here
//! with a type that implements `RankOrder` for a `Shard` (`len`, `n`, `fill`; override
//! `computes` if reading it costs work, `stored` if it keeps its indices in memory, so that
//! NumPy can view them without a copy) and a constructor returning an `Epoch`; and one binding
//! in `bindings/` that converts the Python arguments and calls that constructor, returning
//! `bindings::epoch::Epoch`. Readers, `indices()`, pickling and the samplers need no change.

pub mod identity;
pub mod lazy;
pub mod length;
pub mod mixture;
pub mod named;
pub mod order;
pub mod reader;
pub mod shard;
pub mod shards;
pub mod stored;
pub mod stream;
pub mod torch;
