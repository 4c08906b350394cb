//! Shared helpers for the integration tests: where the real default model is.

#![allow(dead_code)]

pub mod openapi;

use std::path::PathBuf;

/// The default model's GGUF (SmolLM2-135M-Instruct Q4_1), placed by `scripts/setup.sh`.
/// Tests need the real model; without it they fail loudly instead of skipping.
pub fn model_path() -> PathBuf {
    let path = std::env::var_os("HEARTH_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/default-model/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.is_file(),
        "the default model is missing at {}; run scripts/setup.sh (or scripts/test.sh)",
        path.display()
    );
    path
}
