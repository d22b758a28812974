//! The MT19937 stream exactly as torch's CPU generator produces it.
//!
//! `torch.Generator().manual_seed(s)` keeps the 64-bit seed but initialises MT19937 with
//! `init_genrand(s mod 2**32)`; `random()` is one tempered 32-bit output and `random64()` is two
//! of them, the first as the high word. `rand_mt` implements the reference MT19937, which is the
//! same stream.

use rand_mt::Mt;

/// torch's CPU random stream for one seed.
pub struct TorchMt(Mt);

impl TorchMt {
    /// The stream of `torch.Generator().manual_seed(seed)`, with `seed` as its unsigned 64-bit
    /// value (negative Python seeds are taken modulo 2**64 by the caller).
    pub fn new(seed: u64) -> Self {
        // torch keeps only the low 32 bits for the engine state.
        Self(Mt::new(seed as u32))
    }

    /// torch's `random()`.
    #[inline(always)]
    pub fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    /// torch's `random64()`: `(hi << 32) | lo` from two consecutive draws.
    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        let hi = u64::from(self.next_u32());
        let lo = u64::from(self.next_u32());
        (hi << 32) | lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_mt19937() {
        // The C++ standard fixes the 10000th output of mt19937 with the default seed 5489.
        let mut mt = TorchMt::new(5489);
        assert_eq!(mt.next_u32(), 3_499_211_612);
        for _ in 1..9_999 {
            mt.next_u32();
        }
        assert_eq!(mt.next_u32(), 4_123_659_995);
    }

    #[test]
    fn seed_uses_low_32_bits() {
        let mut a = TorchMt::new(7);
        let mut b = TorchMt::new(7 + (1 << 32));
        let mut c = TorchMt::new(u64::MAX); // -1 in Python
        let mut d = TorchMt::new(u64::from(u32::MAX));
        for _ in 0..1000 {
            assert_eq!(a.next_u32(), b.next_u32());
            assert_eq!(c.next_u32(), d.next_u32());
        }
    }

    #[test]
    fn random64_is_high_then_low() {
        let mut a = TorchMt::new(42);
        let mut b = TorchMt::new(42);
        let hi = u64::from(b.next_u32());
        let lo = u64::from(b.next_u32());
        assert_eq!(a.next_u64(), (hi << 32) | lo);
    }
}
