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
    /// KV cache for the whole context (all sequences).
    pub kv_cache_bytes: u64,
    /// Compute buffers and the rest.
    pub overhead_bytes: u64,
}

impl MemoryEstimate {
    /// Estimate for `weights_bytes` of weights and `n_ctx_total` context tokens.
    pub fn new(weights_bytes: u64, kv_bytes_per_token: u64, n_ctx_total: u64) -> Self {
        Self {
            weights_bytes,
            kv_cache_bytes: kv_bytes_per_token * n_ctx_total,
            overhead_bytes: OVERHEAD_BYTES,
        }
    }

    /// The sum.
    pub fn total_bytes(&self) -> u64 {
        self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes
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
