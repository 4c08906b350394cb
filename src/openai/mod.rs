//! The OpenAI wire format as hearth speaks it, in one place: the server writes it, the upstream
//! backend, the benchmark client and the judge read it, the benchmark's mock imitates it.
//!
//! Typed structs instead of `json!` at each site let the compiler keep those five consistent;
//! the OpenAPI schema tests (`tests/common/openapi.rs`) stay as the guard of the shapes. Which
//! optional keys are omitted and which are written as `null` is deliberate and follows what
//! hearth has always sent (clients and those tests depend on it).
//!
//! Reading is lenient ([`lenient`]): hearth measures and relays foreign servers (Ollama, vLLM,
//! llama-server…), so a field of unexpected shape reads as absent instead of losing the reply.
//! This module depends on serde only: no HTTP framework, no engine.

mod error;
mod lenient;
mod request;
mod response;
pub mod sse;

pub use error::{ErrorBody, ErrorDetail, ErrorField};
pub use lenient::{read, read_value};
pub use request::{
    ChatCompletionRequest, CompletionRequest, RequestMessage, RequestParams, StreamOptions,
    TokenizeRequest,
};
pub use response::{
    ChatChoice, ChatCompletion, ChatCompletionChunk, ChunkChoice, Delta, FinishReason,
    FunctionCall, FunctionCallDelta, Model, ModelList, PromptTokensDetails, Response,
    ResponseMessage, TextChoice, TextCompletion, Timings, TokenizeResponse, ToolCall,
    ToolCallDelta, Usage,
};

/// The server's root for a `/v1` base URL (`http://host:port/v1/` → `http://host:port`), where
/// hearth and llama-server keep `/tokenize`, `/metrics`, `/health` and hearth's `/api`.
pub fn server_root(base_url: &str) -> &str {
    base_url.trim_end_matches('/').trim_end_matches("/v1")
}

#[cfg(test)]
mod root_tests {
    #[test]
    fn the_root_drops_v1_and_slashes() {
        for url in [
            "http://127.0.0.1:5273/v1",
            "http://127.0.0.1:5273/v1/",
            "http://127.0.0.1:5273/",
            "http://127.0.0.1:5273",
        ] {
            assert_eq!(super::server_root(url), "http://127.0.0.1:5273", "{url}");
        }
    }
}
