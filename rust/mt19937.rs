//! The MT19937 stream exactly as torch's CPU generator produces it.
//!
//! `torch.Generator().manual_seed(s)` keeps the 64-bit seed but initialises MT19937 with
//! `init_genrand(s mod 2**32)`; `random()` is one tempered 32-bit output and `random64()` is two
//! of them, the first as the high word.
//!
//! [`TorchMt`] wraps `rand_mt` (the reference MT19937) for single draws. [`Mt19937Blocks`]
//! produces the same stream a whole state (624 words) at a time, with the twist and the tempering
//! as straight loops the compiler vectorises: a shuffle draws hundreds of millions of words, and
//! `rand_mt` offers only one word per call.

use rand_mt::Mt;

/// torch's CPU random stream for one seed, one draw at a time.
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

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER: u32 = 0x8000_0000;
const LOWER: u32 = 0x7fff_ffff;

/// The same stream as [`TorchMt`], a block of [`Mt19937Blocks::BLOCK`] tempered words at a time.
pub struct Mt19937Blocks {
    state: [u32; N],
}

impl Mt19937Blocks {
    /// Words per block: one full regeneration of the state.
    pub const BLOCK: usize = N;

    /// `init_genrand(seed mod 2**32)`, as torch seeds its generator.
    pub fn new(seed: u64) -> Self {
        let mut state = [0u32; N];
        state[0] = seed as u32;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Self { state }
    }

    #[inline(always)]
    fn mix(a: u32, b: u32, m: u32) -> u32 {
        let y = (a & UPPER) | (b & LOWER);
        m ^ (y >> 1) ^ ((y & 1).wrapping_neg() & MATRIX_A)
    }

    /// Writes the next `BLOCK` outputs of the stream into `out`.
    pub fn next_block(&mut self, out: &mut [u32; N]) {
        let s = &mut self.state;
        // The twist, split where its inputs wrap around so each loop reads only settled words.
        for i in 0..N - M {
            s[i] = Self::mix(s[i], s[i + 1], s[i + M]);
        }
        for i in N - M..N - 1 {
            s[i] = Self::mix(s[i], s[i + 1], s[i + M - N]);
        }
        s[N - 1] = Self::mix(s[N - 1], s[0], s[M - 1]);
        for (o, &x) in out.iter_mut().zip(s.iter()) {
            let mut y = x;
            y ^= y >> 11;
            y ^= (y << 7) & 0x9d2c_5680;
            y ^= (y << 15) & 0xefc6_0000;
            y ^= y >> 18;
            *o = y;
        }
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
    fn blocks_equal_single_draws() {
        for seed in [0, 1, 5489, 6691, u64::MAX, (1 << 32) + 5] {
            let mut one = TorchMt::new(seed);
            let mut blocks = Mt19937Blocks::new(seed);
            let mut buf = [0u32; N];
            for _ in 0..20 {
                blocks.next_block(&mut buf);
                for &x in &buf {
                    assert_eq!(x, one.next_u32(), "seed={seed}");
                }
            }
        }
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
