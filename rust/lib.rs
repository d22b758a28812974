//! Core of `resumable-samplers`: seeded permutations, replica sharding, padding and offset
//! slicing, written into plain buffers. Nothing here knows about Python; the bindings live in
//! `python.rs` behind the `python` feature.

pub mod buffer;
pub mod epoch;
pub mod error;
pub mod fork_lock;
pub mod lazy;
pub mod length;
pub mod mixture;
pub mod mt19937;
pub mod permutation;
pub mod reader;
pub mod shard;
pub mod stream;
pub mod thread;

#[cfg(feature = "python")]
mod py_length;
#[cfg(feature = "python")]
mod py_reader;
#[cfg(feature = "python")]
mod python;

#[cfg(test)]
mod invariants;
