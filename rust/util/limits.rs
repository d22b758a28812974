//! Limits every layer checks against.

/// The largest dataset length: indices are `int64` in Python, so `n <= 2**63 - 1`.
pub const MAX_LEN: u64 = i64::MAX as u64;
