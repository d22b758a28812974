//! Core of `resumable-samplers`, in layers that use only the ones below them: [`util`] (errors,
//! limits, buffers, threads), [`orders`] (the permutations and sequences, pure functions of their
//! keys), [`epoch`] (one rank's share of an epoch: sharding, streaming, reading) and, behind the
//! `python` feature, `bindings` (the Python module).

pub mod epoch;
pub mod orders;
pub mod util;

#[cfg(feature = "python")]
mod bindings;

#[cfg(test)]
mod invariants;
