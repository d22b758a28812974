//! Core of `resumable-samplers`: seeded permutations, replica sharding, padding and offset
//! slicing, written into plain buffers. Layers, lowest first: `util` (errors, limits, buffers,
//! threads), `orders` (pure orders), `epoch` (one rank's share, streams, readers) and the
//! Python `bindings` behind the `python` feature.

pub mod epoch;
pub mod orders;
pub mod util;

#[cfg(feature = "python")]
mod bindings;

#[cfg(test)]
mod invariants;
