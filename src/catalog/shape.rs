//! A model's architecture shape: the facts of its published configuration that llama.cpp needs
//! to build its compute graph (layers, widths, heads, vocabulary, rope, sliding window,
//! experts). With a shape, hearth can make a model of that architecture with random weights
//! (`hearth model synth`) and measure its speed and memory without downloading it; the shape
//! comes from the built-in catalog, a user's models.json, or a Hugging Face `config.json`.

use serde::{Deserialize, Serialize};

/// The llama.cpp architectures hearth can write shape models for.
pub const ARCHITECTURES: &[&str] = &["llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"];

/// What a shape model's alias ends with (`mistral-7b~shape`), so its nature shows wherever
/// its name does.
pub const SHAPE_SUFFIX: &str = "~shape";

/// The capability tag every shape model carries (`--filter tag=shape`).
pub const SHAPE_TAG: &str = "shape";

/// True for the name of a shape model (`mistral-7b~shape`, `x~shape@q8_0`): what reports,
/// scoring and routing go by, since a run's records carry names, not catalog entries.
pub fn is_shape_alias(name: &str) -> bool {
    name.contains(SHAPE_SUFFIX)
}

/// The real model a shape model stands for (`mistral-7b` for `mistral-7b~shape@q8_0`).
pub fn real_alias_of(name: &str) -> Option<&str> {
    name.split_once(SHAPE_SUFFIX).map(|(real, _)| real)
}

/// How a shape model was made: its shape's source, type and seed (the same three make the
/// same file), and which real model confirms its quality.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SyntheticOrigin {
    /// Where the shape came from: `catalog:ALIAS` or `config:PATH`.
    pub shape_source: String,
    /// The real model whose speed this stands in for (download it to measure quality).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_alias: Option<String>,
    /// The quantisation the weights were written in (`Q4_K_M`).
    pub quantization: String,
    /// The random seed of the weights.
    pub seed: u64,
    /// What wrote it (hearth's version).
    pub tool: String,
}

/// Why a shape is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    /// The config.json is not JSON, or lacks a field every shape needs.
    #[error("not a usable config.json: {0}")]
    Config(String),
    /// The architecture is one hearth cannot write.
    #[error("architecture `{0}` is not one hearth can synthesise (it can: {list})", list = ARCHITECTURES.join(", "))]
    Architecture(String),
    /// The numbers do not make a model (zero layers, heads that do not divide the width…).
    #[error("inconsistent shape: {0}")]
    Inconsistent(String),
}

/// A transformer's architecture, as its published config states it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Shape {
    /// llama.cpp architecture name (`llama`, `qwen2`, `qwen3`, `gemma2`, `gemma3`, `phi3`).
    pub architecture: String,
    /// Transformer blocks.
    pub layers: u32,
    /// Hidden size.
    pub embedding: u32,
    /// Attention (query) heads.
    pub heads: u32,
    /// Key/value heads (grouped-query attention); equal to `heads` without GQA.
    pub kv_heads: u32,
    /// Per-head size, when it is not `embedding / heads` (Gemma).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<u32>,
    /// Feed-forward (intermediate) size, per expert for mixtures of experts.
    pub ffn: u32,
    /// Vocabulary size (rows of the embedding matrix).
    pub vocab: u32,
    /// Context length the model was trained with.
    pub context: u32,
    /// Whether the output projection reuses the token embedding matrix.
    #[serde(default)]
    pub tied_embeddings: bool,
    /// RoPE base frequency.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f32,
    /// RMS-norm epsilon.
    #[serde(default = "default_rms_eps")]
    pub rms_eps: f32,
    /// Sliding-window size of the local attention layers (Gemma 2/3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<u32>,
    /// Experts per MoE layer (Mixtral-style), `None` for dense models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experts: Option<u32>,
    /// Experts each token is routed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experts_used: Option<u32>,
    /// Attention logit soft-capping (Gemma 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attn_softcap: Option<f32>,
    /// Final logit soft-capping (Gemma 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_softcap: Option<f32>,
}

fn default_rope_theta() -> f32 {
    10_000.0
}

fn default_rms_eps() -> f32 {
    1e-5
}

impl Shape {
    /// Per-head key/value size.
    pub fn head_size(&self) -> u32 {
        self.head_dim.unwrap_or(self.embedding / self.heads.max(1))
    }

    /// Query projection width (heads × head size), which differs from `embedding` in Gemma.
    pub fn q_width(&self) -> u64 {
        u64::from(self.heads) * u64::from(self.head_size())
    }

    /// Key (and value) projection width.
    pub fn kv_width(&self) -> u64 {
        u64::from(self.kv_heads) * u64::from(self.head_size())
    }

    /// KV-cache bytes per token of context at f16, every layer (what memory estimates use).
    pub fn kv_bytes_per_token(&self) -> u64 {
        2 * u64::from(self.layers) * self.kv_width() * 2
    }

    /// Parameters the shape implies (weights, norms and biases), as llama.cpp would count them.
    pub fn parameters(&self) -> u64 {
        let (e, v) = (u64::from(self.embedding), u64::from(self.vocab));
        let ffn = u64::from(self.ffn) * e * 3 * u64::from(self.experts.unwrap_or(1));
        let attn = e * self.q_width() * 2 + e * self.kv_width() * 2;
        let embeddings = e * v * if self.tied_embeddings { 1 } else { 2 };
        embeddings + u64::from(self.layers) * (attn + ffn)
    }

    /// Refuses numbers that cannot make a model, before any file is written.
    pub fn validate(&self) -> Result<(), ShapeError> {
        if !ARCHITECTURES.contains(&self.architecture.as_str()) {
            return Err(ShapeError::Architecture(self.architecture.clone()));
        }
        let bad = |what: &str| Err(ShapeError::Inconsistent(what.to_string()));
        if self.layers == 0 || self.embedding == 0 || self.heads == 0 || self.ffn == 0 {
            return bad("layers, embedding, heads and ffn must all be positive");
        }
        if self.vocab < 300 {
            return bad("the vocabulary needs at least 300 tokens (the byte-level base)");
        }
        if self.kv_heads == 0 || !self.heads.is_multiple_of(self.kv_heads) {
            return bad("heads must be a multiple of kv_heads");
        }
        if self.head_dim.is_none() && !self.embedding.is_multiple_of(self.heads) {
            return bad("embedding must be a multiple of heads (or give head_dim)");
        }
        if !self.embedding.is_multiple_of(32)
            || !self.ffn.is_multiple_of(32)
            || !self.head_size().is_multiple_of(32)
        {
            return bad(
                "embedding, ffn and head size must be multiples of 32 (a quantisation block)",
            );
        }
        if self.experts.is_some() && self.architecture != "llama" {
            return bad("mixtures of experts are written for the llama architecture only");
        }
        Ok(())
    }

    /// Reads a Hugging Face `config.json` (the small file every model repository has).
    pub fn from_hf_config(text: &str) -> Result<Shape, ShapeError> {
        let root: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ShapeError::Config(e.to_string()))?;
        // Multimodal Gemma 3 nests the language model's config.
        let cfg = root.get("text_config").unwrap_or(&root);
        let model_type = cfg
            .get("model_type")
            .or_else(|| root.get("model_type"))
            .and_then(|v| v.as_str())
            .ok_or_else(|| ShapeError::Config("no `model_type`".into()))?;
        let (architecture, moe) = match model_type {
            "llama" | "mistral" | "smollm" => ("llama", false),
            "mixtral" => ("llama", true),
            "qwen2" => ("qwen2", false),
            "qwen3" => ("qwen3", false),
            "gemma2" => ("gemma2", false),
            "gemma3" | "gemma3_text" => ("gemma3", false),
            "phi3" => ("phi3", false),
            other => return Err(ShapeError::Architecture(other.to_string())),
        };
        let uint = |key: &str| -> Option<u32> {
            cfg.get(key)
                .and_then(|v| v.as_u64())
                .and_then(|n| u32::try_from(n).ok())
        };
        let float = |key: &str| cfg.get(key).and_then(|v| v.as_f64()).map(|f| f as f32);
        let need = |key: &str| uint(key).ok_or_else(|| ShapeError::Config(format!("no `{key}`")));
        let heads = need("num_attention_heads")?;
        let gemma = architecture.starts_with("gemma");
        let shape = Shape {
            architecture: architecture.to_string(),
            layers: need("num_hidden_layers")?,
            embedding: need("hidden_size")?,
            heads,
            kv_heads: uint("num_key_value_heads").unwrap_or(heads),
            head_dim: uint("head_dim"),
            ffn: need("intermediate_size")?,
            vocab: need("vocab_size")?,
            context: uint("max_position_embeddings").unwrap_or(4096),
            tied_embeddings: cfg
                .get("tie_word_embeddings")
                .or_else(|| root.get("tie_word_embeddings"))
                .and_then(|v| v.as_bool())
                .unwrap_or(gemma),
            rope_theta: float("rope_theta").unwrap_or(if architecture == "gemma3" {
                1_000_000.0
            } else {
                10_000.0
            }),
            rms_eps: float("rms_norm_eps").unwrap_or(1e-6),
            sliding_window: if gemma { uint("sliding_window") } else { None },
            experts: if moe { uint("num_local_experts") } else { None },
            experts_used: if moe {
                uint("num_experts_per_tok")
            } else {
                None
            },
            attn_softcap: if gemma {
                float("attn_logit_softcapping")
            } else {
                None
            },
            final_softcap: if gemma {
                float("final_logit_softcapping")
            } else {
                None
            },
        };
        shape.validate()?;
        Ok(shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2_CONFIG: &str = include_str!("../../tests/data/smollm2-135m-config.json");

    #[test]
    fn hf_config_reads_into_the_catalog_shape() {
        let shape = Shape::from_hf_config(SMOLLM2_CONFIG).unwrap();
        let builtin = crate::catalog::Catalog::builtin();
        let entry = builtin.get("smollm2-135m").unwrap();
        assert_eq!(Some(&shape), entry.shape.as_ref());
        // 134.5M parameters as published.
        assert!((shape.parameters() as f64 / 134.5e6 - 1.0).abs() < 0.01);
        assert_eq!(
            shape.kv_bytes_per_token(),
            entry.kv_bytes_per_token.unwrap()
        );
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let err = |t: &str| Shape::from_hf_config(t).unwrap_err().to_string();
        assert!(err("{not json").contains("not a usable config.json"));
        assert!(err(r#"{"hidden_size": 8}"#).contains("model_type"));
        assert!(err(r#"{"model_type": "mamba"}"#).contains("`mamba` is not one"));
        let no_layers = SMOLLM2_CONFIG.replace("\"num_hidden_layers\"", "\"n_layers\"");
        assert!(err(&no_layers).contains("num_hidden_layers"));
        let odd_heads =
            SMOLLM2_CONFIG.replace("\"num_key_value_heads\": 3", "\"num_key_value_heads\": 4");
        assert!(
            err(&odd_heads).contains("multiple of kv_heads"),
            "{}",
            err(&odd_heads)
        );
    }

    #[test]
    fn every_builtin_entry_carries_a_valid_shape() {
        for entry in crate::catalog::builtin_entries() {
            let shape = entry
                .shape
                .as_ref()
                .unwrap_or_else(|| panic!("{} has no shape", entry.alias));
            shape.validate().unwrap();
            assert_eq!(
                Some(shape.kv_bytes_per_token()),
                entry.kv_bytes_per_token,
                "{}",
                entry.alias
            );
        }
    }
}
