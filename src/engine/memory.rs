//! Will a model fit? An estimate made before loading (weights + KV cache + working buffers)
//! checked against the memory available, so an oversized model is refused with a clear
//! message instead of being killed by the OS halfway through a load.

use serde::Serialize;

/// Working buffers llama.cpp allocates besides weights and KV cache (compute graph, logits).
/// Measured on the default model at n_batch 512: ~60 MiB; rounded up for larger vocabularies.
const OVERHEAD_BYTES: u64 = 96 * 1024 * 1024;

/// The parts of a model's memory need.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Model weights (mapped from the file).
    pub weights_bytes: u64,
    /// Weights the CPU backend copies into its interleaved ("repacked") layout for faster
    /// kernels; the mapped originals stay resident too, so these count twice.
    pub repacked_bytes: u64,
    /// KV cache for the whole context (all sequences).
    pub kv_cache_bytes: u64,
    /// Compute buffers and the rest.
    pub overhead_bytes: u64,
}

/// One tensor's facts that decide whether llama.cpp's CPU backend repacks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorBytes {
    /// `ggml_type` id.
    pub ggml_type: u32,
    /// Rows (`ne[1]`).
    pub rows: u64,
    /// Bytes of data.
    pub bytes: u64,
    /// The token embedding (looked up by row, never multiplied: never repacked).
    pub embedding: bool,
}

/// Bytes of `tensors` that llama.cpp's CPU backend repacks on this machine
/// (`ggml_repack_get_optimal_repack_type` in ggml-cpu/repack.cpp): Q4_0, Q4_K, IQ4_NL and
/// MXFP4 with whole groups of 8 rows on x86 with AVX2 (Q2_K too with AVX-512); on ARM with
/// dot-product instructions also Q5_K and Q6_K. Nothing elsewhere.
pub fn repacked_bytes(tensors: &[TensorBytes]) -> u64 {
    const Q4_0: u32 = 2;
    const Q2_K: u32 = 10;
    const Q4_K: u32 = 12;
    const IQ4_NL: u32 = 20;
    const MXFP4: u32 = 39;
    #[allow(unused_mut)]
    let mut types: Vec<u32> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            types.extend([Q4_0, Q4_K, IQ4_NL, MXFP4]);
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            types.push(Q2_K);
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        const Q5_K: u32 = 13;
        const Q6_K: u32 = 14;
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            types.extend([Q4_0, Q4_K, IQ4_NL, MXFP4, Q5_K, Q6_K]);
        }
    }
    tensors
        .iter()
        .filter(|t| !t.embedding && t.rows.is_multiple_of(8) && types.contains(&t.ggml_type))
        .map(|t| t.bytes)
        .sum()
}

/// Working memory a loaded model touches besides weights and KV cache: llama.cpp reserves
/// compute buffers for a 512-token batch of about 512 × 4 × (vocabulary + 5 × width) bytes
/// (the logits of every batch position dominate), of which a prefill touches about 37 %, plus
/// ~8 MiB of the process's own. Fitted to peak RSS measured on six models from 135M to 2.6B
/// (`perf/shape-models.sh`), within 2 % of the total for every model of 1B or more.
pub fn working_bytes(n_vocab: u64, n_embd: u64) -> u64 {
    let reserved = 512 * 4 * (n_vocab + 5 * n_embd);
    reserved * 37 / 100 + 8 * 1024 * 1024
}

impl MemoryEstimate {
    /// Estimate for `weights_bytes` of weights and `n_ctx_total` context tokens, with the
    /// fixed allowance for buffers (when the vocabulary and width are not known).
    pub fn new(weights_bytes: u64, kv_bytes_per_token: u64, n_ctx_total: u64) -> Self {
        Self {
            weights_bytes,
            repacked_bytes: 0,
            kv_cache_bytes: kv_bytes_per_token * n_ctx_total,
            overhead_bytes: OVERHEAD_BYTES,
        }
    }

    /// Estimate with repacked weights and working buffers from the model's own facts.
    pub fn measured_model(
        weights_bytes: u64,
        repacked_bytes: u64,
        kv_bytes_per_token: u64,
        n_ctx_total: u64,
        working_bytes: u64,
    ) -> Self {
        Self {
            weights_bytes,
            repacked_bytes,
            kv_cache_bytes: kv_bytes_per_token * n_ctx_total,
            overhead_bytes: working_bytes,
        }
    }

    /// The sum.
    pub fn total_bytes(&self) -> u64 {
        self.weights_bytes + self.repacked_bytes + self.kv_cache_bytes + self.overhead_bytes
    }

    /// Whether the estimate fits in `budget_bytes`.
    pub fn fits(&self, budget_bytes: u64) -> bool {
        self.total_bytes() <= budget_bytes
    }
}

/// Memory the OS reports available right now, in bytes.
pub fn available_bytes() -> u64 {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    sys.available_memory()
}

/// Formats a byte count the way people read memory sizes.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_sums_weights_kv_and_overhead() {
        let e = MemoryEstimate::new(1000, 10, 4096);
        assert_eq!(e.kv_cache_bytes, 40960);
        assert_eq!(e.total_bytes(), 1000 + 40960 + OVERHEAD_BYTES);
        assert!(e.fits(e.total_bytes()));
        assert!(!e.fits(e.total_bytes() - 1));
    }

    #[test]
    fn human_bytes_picks_a_readable_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(98_362_432), "93.8 MiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
