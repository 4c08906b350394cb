//! ggml's storage types, as far as shape models need them: each type's block geometry and a
//! generator of random but numerically sane blocks. The quantised codes are random; the
//! per-block scales are fixed small normal f16 values (and the K-quants' sub-block scales are
//! kept to 4 bits), so every weight is finite, of the order of 0.01-0.05, and never a denormal.
//! Written by hand: no crate writes raw ggml blocks, and llama.cpp's quantizer needs f32 input
//! (a multi-GB intermediate this module exists to avoid).

use rand::RngCore;

/// A ggml tensor type hearth writes, with its `ggml_type` id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockType {
    /// 32-bit floats (norms, biases, MoE routers).
    F32,
    /// 16-bit floats.
    F16,
    /// 4-bit, one scale per 32.
    Q4_0,
    /// 4-bit, scale and minimum per 32.
    Q4_1,
    /// 5-bit, one scale per 32.
    Q5_0,
    /// 5-bit, scale and minimum per 32.
    Q5_1,
    /// 8-bit, one scale per 32.
    Q8_0,
    /// 4-bit K-quant (super-blocks of 256).
    Q4K,
    /// 5-bit K-quant.
    Q5K,
    /// 6-bit K-quant.
    Q6K,
}

impl BlockType {
    /// The `ggml_type` id written in the GGUF tensor info.
    pub fn ggml_id(self) -> u32 {
        match self {
            BlockType::F32 => 0,
            BlockType::F16 => 1,
            BlockType::Q4_0 => 2,
            BlockType::Q4_1 => 3,
            BlockType::Q5_0 => 6,
            BlockType::Q5_1 => 7,
            BlockType::Q8_0 => 8,
            BlockType::Q4K => 12,
            BlockType::Q5K => 13,
            BlockType::Q6K => 14,
        }
    }

    /// Elements per block.
    pub fn block_len(self) -> u64 {
        match self {
            BlockType::F32 | BlockType::F16 => 1,
            BlockType::Q4_0 | BlockType::Q4_1 | BlockType::Q5_0 | BlockType::Q5_1 => 32,
            BlockType::Q8_0 => 32,
            BlockType::Q4K | BlockType::Q5K | BlockType::Q6K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> u64 {
        match self {
            BlockType::F32 => 4,
            BlockType::F16 => 2,
            BlockType::Q4_0 => 18,
            BlockType::Q4_1 => 20,
            BlockType::Q5_0 => 22,
            BlockType::Q5_1 => 24,
            BlockType::Q8_0 => 34,
            BlockType::Q4K => 144,
            BlockType::Q5K => 176,
            BlockType::Q6K => 210,
        }
    }

    /// The 32-element type llama.cpp's quantizer falls back to when a row is not a whole
    /// number of 256-element super-blocks (`tensor_type_fallback` in llama-quant.cpp).
    pub fn fallback_for_row(self, row_len: u64) -> BlockType {
        if row_len.is_multiple_of(self.block_len()) {
            return self;
        }
        match self {
            BlockType::Q4K => BlockType::Q5_0,
            BlockType::Q5K => BlockType::Q5_1,
            BlockType::Q6K => BlockType::Q8_0,
            other => other,
        }
    }

    /// Bytes of a tensor of `elements` (a whole number of rows of whole blocks).
    pub fn bytes_for(self, elements: u64) -> u64 {
        elements / self.block_len() * self.block_bytes()
    }
}

/// IEEE half-precision bits of a normal, in-range `x` (the constants below), truncating.
const fn f16_bits(x: f32) -> [u8; 2] {
    let b = x.to_bits();
    let sign = (b >> 16) & 0x8000;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    let mant = (b >> 13) & 0x3ff;
    assert!(exp > 0 && exp < 31, "not a normal f16");
    (((sign | ((exp as u32) << 10) | mant) & 0xffff) as u16).to_le_bytes()
}

const D_4BIT: [u8; 2] = f16_bits(0.004);
const D_5BIT: [u8; 2] = f16_bits(0.002);
const D_8BIT: [u8; 2] = f16_bits(0.000_25);
const D_KQUANT: [u8; 2] = f16_bits(0.000_1);
const MIN_4_5BIT: [u8; 2] = f16_bits(-0.03);

/// Fills `out` (a whole number of `ty`'s blocks) with random sane blocks.
pub fn fill_random(ty: BlockType, out: &mut [u8], rng: &mut impl RngCore) {
    match ty {
        BlockType::F32 => {
            // Small random floats (MoE routers); norms and biases are written as constants.
            for chunk in out.chunks_exact_mut(4) {
                let r = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
                chunk.copy_from_slice(&((r - 0.5) * 0.04).to_le_bytes());
            }
            return;
        }
        BlockType::F16 => {
            rng.fill_bytes(out);
            // Keep sign and mantissa; exponent 5..=8 (2^-10 .. 2^-7 range): finite, normal.
            for chunk in out.chunks_exact_mut(2) {
                let v = u16::from_le_bytes([chunk[0], chunk[1]]);
                let exp = 5 + (v >> 10 & 0x3);
                let bits = (v & 0x83ff) | (exp << 10);
                chunk.copy_from_slice(&bits.to_le_bytes());
            }
            return;
        }
        _ => rng.fill_bytes(out),
    }
    let n = ty.block_bytes() as usize;
    for block in out.chunks_exact_mut(n) {
        match ty {
            BlockType::Q4_0 => block[0..2].copy_from_slice(&D_4BIT),
            BlockType::Q4_1 => {
                block[0..2].copy_from_slice(&D_4BIT);
                block[2..4].copy_from_slice(&MIN_4_5BIT);
            }
            BlockType::Q5_0 => block[0..2].copy_from_slice(&D_5BIT),
            BlockType::Q5_1 => {
                block[0..2].copy_from_slice(&D_5BIT);
                block[2..4].copy_from_slice(&MIN_4_5BIT);
            }
            BlockType::Q8_0 => block[0..2].copy_from_slice(&D_8BIT),
            BlockType::Q4K | BlockType::Q5K => {
                // d, dmin, then 12 bytes of packed 6-bit scales and mins: masking every byte
                // to its low nibble keeps all sixteen of them in 0..=15.
                block[0..2].copy_from_slice(&D_KQUANT);
                block[2..4].copy_from_slice(&D_KQUANT);
                for b in &mut block[4..16] {
                    *b &= 0x0f;
                }
            }
            BlockType::Q6K => {
                // ql[128], qh[64], int8 scales[16], then d.
                for b in &mut block[192..208] {
                    *b = (*b & 0x0f) + 1;
                }
                block[208..210].copy_from_slice(&D_KQUANT);
            }
            BlockType::F32 | BlockType::F16 => unreachable!("handled above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Decodes an f16 the way ggml does.
    fn f16(bytes: [u8; 2]) -> f32 {
        let v = u16::from_le_bytes(bytes);
        let exp = i32::from(v >> 10 & 0x1f);
        let mant = f32::from(v & 0x3ff);
        let mag = if exp == 0 {
            mant * 2f32.powi(-24)
        } else {
            (1.0 + mant / 1024.0) * 2f32.powi(exp - 15)
        };
        if v & 0x8000 != 0 {
            -mag
        } else {
            mag
        }
    }

    #[test]
    fn scales_are_small_normal_halves() {
        for (c, want) in [(D_4BIT, 0.004), (D_8BIT, 0.000_25), (D_KQUANT, 0.000_1)] {
            let got = f16(c);
            assert!((got / want - 1.0).abs() < 0.01, "{got} vs {want}");
            assert!(got >= 6.1e-5, "denormal");
        }
        assert!((f16(MIN_4_5BIT) + 0.03).abs() < 1e-4);
    }

    #[test]
    fn random_blocks_decode_to_finite_small_weights() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut buf = vec![0u8; 210 * 64];
        fill_random(BlockType::Q6K, &mut buf, &mut rng);
        for block in buf.chunks_exact(210) {
            let d = f16([block[208], block[209]]);
            for &s in &block[192..208] {
                let max = d * f32::from(s as i8) * 32.0;
                assert!(max.is_finite() && max.abs() <= 0.06, "{max}");
            }
        }
        let mut buf = vec![0u8; 2 * 4096];
        fill_random(BlockType::F16, &mut buf, &mut rng);
        for c in buf.chunks_exact(2) {
            let w = f16([c[0], c[1]]);
            assert!(
                w.is_finite() && w.abs() < 0.016 && w.abs() >= 2f32.powi(-10),
                "{w}"
            );
        }
        let mut buf = vec![0u8; 144 * 16];
        fill_random(BlockType::Q4K, &mut buf, &mut rng);
        for block in buf.chunks_exact(144) {
            assert!(block[4..16].iter().all(|&b| b <= 15));
            assert_eq!(&block[0..2], &D_KQUANT);
        }
    }

    #[test]
    fn fallbacks_follow_llama_quantize() {
        assert_eq!(BlockType::Q4K.fallback_for_row(640), BlockType::Q5_0);
        assert_eq!(BlockType::Q6K.fallback_for_row(576), BlockType::Q8_0);
        assert_eq!(BlockType::Q5K.fallback_for_row(896), BlockType::Q5_1);
        assert_eq!(BlockType::Q4K.fallback_for_row(4096), BlockType::Q4K);
        assert_eq!(BlockType::Q4K.bytes_for(4096 * 2), 2 * 16 * 144);
    }
}
