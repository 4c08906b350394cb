//! The process-wide llama.cpp backend.
//!
//! `LlamaBackend::init()` succeeds once per process (a second call fails), yet the engine, the
//! device listing and quantization all need it, tests included, which load many engines in
//! one process. It lives here, apart from its users, so that none of them depends on another
//! just to reach it.

use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;

use super::EngineError;

/// llama.cpp's backend may be initialised once per process; keep it for the process lifetime.
/// llama.cpp's log goes to `tracing` from the first call on.
pub(crate) fn llama_backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Load(e.clone()))
}
