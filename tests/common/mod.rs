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

/// A HEARTH_HOME whose catalog points `smollm2-135m` at the test model file, without copying it.
pub fn home_with_model() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let models = serde_json::json!({"smollm2-135m": {"path": model_path()}});
    std::fs::write(home.path().join("models.json"), models.to_string()).unwrap();
    home
}
