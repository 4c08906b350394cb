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
