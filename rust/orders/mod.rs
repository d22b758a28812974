//! The orders: permutations of `[0, n)` and the sequences built from them, as pure functions of
//! their keys, and the names samplers give them ([`named`]). Nothing here knows about ranks,
//! readers or Python.

pub mod lazy;
pub mod length;
pub mod mixture;
pub mod mt19937;
pub mod named;
pub mod shards;
pub mod torch;
