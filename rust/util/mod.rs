//! The bottom layer: errors, limits, index buffers, helper threads and the fork-safe lock.

pub mod buffer;
pub mod error;
pub mod fork_lock;
pub mod limits;
pub mod thread;
