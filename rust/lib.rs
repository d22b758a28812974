//! Core of `resumable-samplers`: seeded permutations, replica sharding, padding and offset
//! slicing, written into plain buffers. The layers, each using only those below it:
//!
//! - [`util`]: errors, limits, index buffers, helper threads and the fork-safe lock;
//! - [`orders`]: the permutations themselves (torch's generations over MT19937, the lazy
//!   bijection, mixtures, length grouping), knowing nothing of ranks or readers;
//! - [`epoch`]: one rank's share of an epoch of any order, streamed or stored, and its readers;
//! - `bindings` (behind the `python` feature): the Python module, argument conversion only.

pub mod epoch;
pub mod orders;
pub mod util;

#[cfg(feature = "python")]
mod bindings;

#[cfg(test)]
mod invariants;
