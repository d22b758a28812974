//! Limits every layer checks against.

/// The largest dataset length: indices are `int64` in Python, so `n <= 2**63 - 1`.
pub const MAX_LEN: u64 = i64::MAX as u64;

/// `value` as messages write a limit: a power of two, or one less, as `2**k` or `2**k - 1`
/// (from `2**16` on); any other value as its digits. Messages write limits from their values.
pub fn written(value: u128) -> String {
    for (power, rest) in [(Some(value), ""), (value.checked_add(1), " - 1")] {
        if let Some(p) = power.filter(|p| *p >= 1 << 16 && p.is_power_of_two()) {
            return format!("2**{}{rest}", p.trailing_zeros());
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_written_as_powers_of_two() {
        assert_eq!(written(MAX_LEN.into()), "2**63 - 1");
        assert_eq!(written(u64::MAX.into()), "2**64 - 1");
        assert_eq!(written(1 << 62), "2**62");
        assert_eq!(written(1 << 16), "2**16");
        assert_eq!(written(1000), "1000");
        assert_eq!(written(255), "255");
    }
}
