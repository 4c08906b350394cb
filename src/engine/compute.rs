//! How llama.cpp computes a step: the KV cache's element type, flash attention, and the batch
//! sizes. These change speed and memory, never what greedy decoding answers (beyond a quantised
//! cache's rounding), so they are serving settings `hearth tune` can search and `serve`, `bench`
//! and `model run` take as flags.

use std::fmt;
use std::str::FromStr;

use llama_cpp_2::context::params::KvCacheType;

/// The element type of the KV cache (llama.cpp's `type_k` and `type_v`, set alike).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum KvType {
    /// 16-bit floats, llama.cpp's default.
    #[default]
    F16,
    /// 8-bit blocks: about half the memory of f16.
    Q8_0,
    /// 4-bit blocks: about a quarter, with a measurable loss.
    Q4_0,
}

impl KvType {
    /// The bytes of `f16_bytes` worth of f16 cache in this type: llama.cpp's block sizes (32
    /// elements in 34 bytes for q8_0, in 18 for q4_0).
    pub fn scale(self, f16_bytes: u64) -> u64 {
        match self {
            Self::F16 => f16_bytes,
            Self::Q8_0 => (f16_bytes / 2 * 34).div_ceil(32),
            Self::Q4_0 => (f16_bytes / 2 * 18).div_ceil(32),
        }
    }

    /// Whether this type is quantised (llama.cpp then needs flash attention for the V cache).
    pub fn is_quantized(self) -> bool {
        self != Self::F16
    }

    pub(crate) fn ggml(self) -> KvCacheType {
        match self {
            Self::F16 => KvCacheType::F16,
            Self::Q8_0 => KvCacheType::Q8_0,
            Self::Q4_0 => KvCacheType::Q4_0,
        }
    }
}

impl FromStr for KvType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f16" => Ok(Self::F16),
            "q8_0" | "q8" => Ok(Self::Q8_0),
            "q4_0" | "q4" => Ok(Self::Q4_0),
            other => Err(format!(
                "`{other}` is not a KV cache type; use f16, q8_0 or q4_0"
            )),
        }
    }
}

impl fmt::Display for KvType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F16 => "f16",
            Self::Q8_0 => "q8_0",
            Self::Q4_0 => "q4_0",
        })
    }
}

/// Whether attention runs as one fused kernel (flash attention).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum FlashAttn {
    /// llama.cpp decides per device (its default).
    #[default]
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

impl FlashAttn {
    fn llama(self) -> llama_cpp_sys_2::llama_flash_attn_type {
        match self {
            Self::Auto => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
            Self::On => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
            Self::Off => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
        }
    }
}

impl FromStr for FlashAttn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "on" | "true" | "1" => Ok(Self::On),
            "off" | "false" | "0" => Ok(Self::Off),
            other => Err(format!(
                "`{other}` is not a flash attention mode; use auto, on or off"
            )),
        }
    }
}

impl fmt::Display for FlashAttn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::On => "on",
            Self::Off => "off",
        })
    }
}

/// The default logical batch: the most tokens one decode step takes (llama.cpp's default).
pub const DEFAULT_BATCH: u32 = 512;

/// Everything about how a step is computed that a user may set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Compute {
    /// The KV cache's element type.
    pub kv_type: KvType,
    /// Flash attention.
    pub flash_attn: FlashAttn,
    /// Most tokens one decode step takes: bounds a prefill chunk, and so how long decoding
    /// sequences wait behind a long prompt.
    pub batch: u32,
    /// Most tokens llama.cpp computes at once inside a step (its micro-batch); never above
    /// `batch`.
    pub ubatch: u32,
}

impl Default for Compute {
    fn default() -> Self {
        Self {
            kv_type: KvType::default(),
            flash_attn: FlashAttn::default(),
            batch: DEFAULT_BATCH,
            ubatch: DEFAULT_BATCH,
        }
    }
}

impl Compute {
    /// Refuses what llama.cpp would refuse at context creation, in words the user can act on.
    pub fn check(&self) -> Result<(), String> {
        if self.kv_type.is_quantized() && self.flash_attn == FlashAttn::Off {
            return Err(format!(
                "a {} KV cache needs flash attention (llama.cpp quantises the V cache only inside it): use --flash-attn auto or on, or --kv-type f16",
                self.kv_type
            ));
        }
        if self.batch == 0 || self.ubatch == 0 {
            return Err("batch sizes must be at least 1".into());
        }
        Ok(())
    }

    /// The micro-batch actually used: never above the batch.
    pub fn effective_ubatch(&self) -> u32 {
        self.ubatch.min(self.batch).max(1)
    }

    /// How many settings differ from the default (a tie between two configurations goes to
    /// the one that changes less).
    pub fn changes(&self) -> u32 {
        let d = Self::default();
        u32::from(self.kv_type != d.kv_type)
            + u32::from(self.flash_attn != d.flash_attn)
            + u32::from(self.batch != d.batch)
            + u32::from(self.effective_ubatch() != d.effective_ubatch())
    }

    /// The flags that give these settings, leaving out the defaults (for a printed command).
    pub fn flags(&self) -> String {
        let d = Self::default();
        let mut out = String::new();
        if self.kv_type != d.kv_type {
            out.push_str(&format!(" --kv-type {}", self.kv_type));
        }
        if self.flash_attn != d.flash_attn {
            out.push_str(&format!(" --flash-attn {}", self.flash_attn));
        }
        if self.batch != d.batch {
            out.push_str(&format!(" --batch {}", self.batch));
        }
        if self.effective_ubatch() != d.effective_ubatch() {
            out.push_str(&format!(" --ubatch {}", self.effective_ubatch()));
        }
        out
    }

    pub(crate) fn apply(
        &self,
        params: llama_cpp_2::context::params::LlamaContextParams,
    ) -> llama_cpp_2::context::params::LlamaContextParams {
        params
            .with_type_k(self.kv_type.ggml())
            .with_type_v(self.kv_type.ggml())
            .with_flash_attention_policy(self.flash_attn.llama())
            .with_n_batch(self.batch)
            .with_n_ubatch(self.effective_ubatch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_types_scale_by_llama_cpp_block_sizes() {
        // SmolLM2-135M: 30 layers × 3 KV heads × (64 + 64) × 2 bytes = 23,040 bytes per token.
        assert_eq!(KvType::F16.scale(23_040), 23_040);
        assert_eq!(KvType::Q8_0.scale(23_040), 12_240);
        assert_eq!(KvType::Q4_0.scale(23_040), 6_480);
    }

    #[test]
    fn names_round_trip_and_nonsense_is_refused() {
        for t in [KvType::F16, KvType::Q8_0, KvType::Q4_0] {
            assert_eq!(t.to_string().parse::<KvType>().unwrap(), t);
        }
        for f in [FlashAttn::Auto, FlashAttn::On, FlashAttn::Off] {
            assert_eq!(f.to_string().parse::<FlashAttn>().unwrap(), f);
        }
        assert!("q5_k".parse::<KvType>().unwrap_err().contains("f16, q8_0"));
        assert!("maybe".parse::<FlashAttn>().is_err());
    }

    #[test]
    fn a_quantised_cache_without_flash_attention_is_refused() {
        let c = Compute {
            kv_type: KvType::Q8_0,
            flash_attn: FlashAttn::Off,
            ..Compute::default()
        };
        assert!(c.check().unwrap_err().contains("flash attention"));
        assert!(Compute {
            flash_attn: FlashAttn::Auto,
            ..c
        }
        .check()
        .is_ok());
    }

    #[test]
    fn flags_name_only_what_differs_from_the_default() {
        assert_eq!(Compute::default().flags(), "");
        assert_eq!(Compute::default().changes(), 0);
        let c = Compute {
            kv_type: KvType::Q8_0,
            batch: 256,
            ubatch: 512,
            ..Compute::default()
        };
        // The micro-batch is capped at the batch, so it differs too.
        assert_eq!(c.flags(), " --kv-type q8_0 --batch 256 --ubatch 256");
        assert_eq!(c.changes(), 3);
    }
}
