//! The engine room: a small [`Backend`] trait and its implementations.
//!
//! * [`llama::LlamaEngine`] runs GGUF models in-process through llama.cpp, on one thread that
//!   owns the model context and decodes every active request together in one batch.
//! * [`upstream::UpstreamBackend`] forwards to any OpenAI-compatible server (a custom adapter).
//!
//! Callers hold a cheap handle and exchange messages: `generate` returns an [`EventStream`] of
//! [`Event`]s; dropping the stream cancels the request.

pub mod admission;
mod backend;
pub mod compute;
pub mod constraint;
pub mod devices;
pub mod json_close;
pub mod kv_disk;
pub mod llama;
pub mod memory;
pub mod prompt_cache;
pub mod quantize;
pub mod speculative;
pub mod structured;
pub mod template;
pub mod text;
pub mod tools;
pub mod upstream;

use std::pin::Pin;
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub use tools::{ToolCall, ToolChoice, ToolDef, ToolFormat, ToolRequest};

/// Why a generation could not start or did not finish.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum EngineError {
    /// The prompt does not fit in the context window.
    #[error("the prompt has {prompt_tokens} tokens but the context holds {n_ctx}; shorten the prompt or raise --ctx")]
    ContextOverflow {
        /// Tokens in the prompt after templating.
        prompt_tokens: usize,
        /// Context length per sequence.
        n_ctx: usize,
    },
    /// The request itself is invalid (empty messages, bad parameter…).
    #[error("{0}")]
    InvalidRequest(String),
    /// One request parameter cannot be honoured (an unsupported schema keyword in
    /// `response_format`, say): a 400 that names the parameter.
    #[error("{message}")]
    InvalidParam {
        /// The OpenAI parameter at fault (`response_format`, `tools`…).
        param: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Too many requests are already waiting.
    #[error("the request queue is full ({0} waiting); retry later")]
    QueueFull(usize),
    /// The model could not be loaded.
    #[error("cannot load model: {0}")]
    Load(String),
    /// The chat template failed to render.
    #[error("chat template error: {0}")]
    Template(String),
    /// llama.cpp failed while decoding.
    #[error("decode failed: {0}")]
    Decode(String),
    /// The upstream OpenAI-compatible server failed.
    #[error("upstream error: {0}")]
    Upstream(String),
    /// The operation is not offered by this backend.
    #[error("{0} is not supported by this backend")]
    Unsupported(&'static str),
    /// The engine has shut down.
    #[error("the engine has shut down")]
    Shutdown,
}

/// Computes `prompt` once, so that the next request starting with it finds its KV (on a slot,
/// in the prompt cache, or on disk) instead of prefilling it: a one-token greedy generation
/// whose token is thrown away. A generation, because every backend keeps what a finished
/// request computed, and this is the path they all share.
pub async fn warm(backend: &dyn Backend, prompt: Prompt) -> Result<Completion, EngineError> {
    let request = GenerateRequest {
        prompt,
        sampling: SamplingParams {
            max_tokens: Some(1),
            ..SamplingParams::default()
        },
        tools: None,
    };
    let (_, completion) = backend.generate(request)?.collect_text().await?;
    Ok(completion)
}

/// One chat message, as in the OpenAI API.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text.
    pub content: String,
    /// Calls an assistant message made (history sent back by the client).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For a `tool` message: the function that produced it (resolved from the call id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    /// A message with the given role.
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// The message as chat templates expect it: OpenAI's message shape, with the calls'
    /// arguments as objects (the API itself sends them as JSON text; `openai/` has that form).
    pub fn to_template_value(&self) -> Value {
        let mut v = json!({"role": self.role, "content": self.content});
        if !self.tool_calls.is_empty() {
            let calls: Vec<Value> = self
                .tool_calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function",
                           "function": {"name": c.name,
                                        "arguments": tools::arguments_value(&c.arguments)}})
                })
                .collect();
            v["tool_calls"] = json!(calls);
        }
        if let Some(id) = &self.tool_call_id {
            v["tool_call_id"] = json!(id);
        }
        if let Some(name) = &self.name {
            v["name"] = json!(name);
        }
        v
    }
}

/// What to continue: a chat (rendered with the model's template) or raw text.
#[derive(Clone, Debug, PartialEq)]
pub enum Prompt {
    /// Messages rendered through the model's own chat template.
    Chat(Vec<ChatMessage>),
    /// Text given to the model as is.
    Text(String),
}

/// How to pick tokens and when to stop.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (deterministic).
    pub temperature: f32,
    /// Nucleus sampling mass (1.0 = off).
    pub top_p: f32,
    /// Top-k cut-off (0 = off).
    pub top_k: i32,
    /// Random seed; `None` picks one per request.
    pub seed: Option<u32>,
    /// Upper bound on generated tokens; `None` = until the context is full.
    pub max_tokens: Option<u32>,
    /// Strings that end generation; they are not part of the output.
    pub stop: Vec<String>,
    /// Keep generating past end-of-generation tokens (fixed-length benchmark runs, as
    /// llama-bench and vLLM's `--ignore-eos` do).
    pub ignore_eos: bool,
    /// OpenAI's `response_format` object as the client sent it (`json_object`, `json_schema`,
    /// `text`): enforced by a grammar in-process, passed on unchanged to an upstream server.
    pub response_format: Option<Value>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            seed: None,
            max_tokens: None,
            stop: Vec::new(),
            ignore_eos: false,
            response_format: None,
        }
    }
}

/// A request to a backend.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateRequest {
    /// What to continue.
    pub prompt: Prompt,
    /// How to sample.
    pub sampling: SamplingParams,
    /// Tools the model may call (chat prompts only).
    pub tools: Option<ToolRequest>,
}

/// Why generation ended, in OpenAI's vocabulary.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// End-of-generation token or a stop string.
    Stop,
    /// `max_tokens` or the context limit.
    Length,
    /// The answer is one or more tool calls (set by the API layer, which reads them).
    #[serde(rename = "tool_calls")]
    ToolCalls,
}

/// Token counts, counted by the tokenizer, never estimated.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    /// Tokens in the prompt after templating.
    pub prompt_tokens: usize,
    /// Tokens generated (the end-of-generation token is not counted).
    pub completion_tokens: usize,
    /// Prompt tokens whose KV was reused from an earlier request (not computed again).
    #[serde(default)]
    pub cached_prompt_tokens: usize,
}

/// Where the time went, measured inside the engine (network excluded).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Timings {
    /// Waiting for a free sequence slot.
    pub queued_ms: f64,
    /// Prompt processing (prefill) until the first token was sampled.
    pub prompt_ms: f64,
    /// From submission to the first generated token.
    pub ttft_ms: f64,
    /// From the first token to the last.
    pub decode_ms: f64,
    /// Prompt tokens computed per second of prefill (tokens reused from the prompt cache
    /// took no prefill time and are not counted).
    pub prompt_per_second: f64,
    /// Generated tokens per second after the first.
    pub decode_per_second: f64,
    /// Tokens drafted by speculative decoding (llama-server's name).
    #[serde(default)]
    pub draft_n: usize,
    /// Drafted tokens the model accepted.
    #[serde(default)]
    pub draft_n_accepted: usize,
}

impl Timings {
    /// Fills the per-second rates from durations and counts.
    pub fn with_rates(mut self, usage: Usage) -> Self {
        let rate = |n: usize, ms: f64| {
            if ms > 0.0 {
                n as f64 * 1000.0 / ms
            } else {
                0.0
            }
        };
        self.prompt_per_second = rate(
            usage
                .prompt_tokens
                .saturating_sub(usage.cached_prompt_tokens),
            self.prompt_ms,
        );
        self.decode_per_second = rate(usage.completion_tokens.saturating_sub(1), self.decode_ms);
        self
    }
}

/// The summary that ends a successful stream.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Completion {
    /// Token counts.
    pub usage: Usage,
    /// Engine-side timings.
    pub timings: Timings,
    /// Why it ended.
    pub finish_reason: FinishReason,
}

/// One message on a generation stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A piece of text (whole UTF-8 characters; may hold several tokens or none).
    Token(String),
    /// Generation finished normally; always the last event.
    Done(Completion),
    /// Generation failed; always the last event.
    Error(EngineError),
}

/// The receiving end of a generation. Dropping it cancels the request in the engine.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<Event>,
}

impl EventStream {
    /// A connected sender/stream pair.
    pub fn channel() -> (mpsc::UnboundedSender<Event>, Self) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, Self { rx })
    }

    /// The next event, or `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event, blocking the thread (for non-async callers such as tests).
    pub fn blocking_next(&mut self) -> Option<Event> {
        self.rx.blocking_recv()
    }

    /// Drains the stream into the whole text and its summary.
    pub async fn collect_text(mut self) -> Result<(String, Completion), EngineError> {
        let mut text = String::new();
        while let Some(event) = self.next().await {
            match event {
                Event::Token(t) => text.push_str(&t),
                Event::Done(c) => return Ok((text, c)),
                Event::Error(e) => return Err(e),
            }
        }
        Err(EngineError::Shutdown)
    }
}

impl futures::Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

/// A point-in-time view of a backend's load, for `ps` and `/metrics`.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct EngineStats {
    /// Requests being decoded now.
    pub active: usize,
    /// Requests waiting for a slot.
    pub queued: usize,
    /// Sequence slots (maximum concurrent requests in one batch).
    pub slots: usize,
    /// KV-cache cells in use, summed over sequences.
    pub kv_used: usize,
    /// KV-cache cells in all.
    pub kv_capacity: usize,
    /// Tokens drafted by speculative decoding since the model loaded.
    pub draft_tokens: u64,
    /// Drafted tokens the model accepted since it loaded.
    pub draft_accepted: u64,
}

/// Static facts about a loaded model.
#[derive(Clone, Debug, Serialize)]
pub struct ModelFacts {
    /// The alias it was loaded under.
    pub alias: String,
    /// Context length per sequence.
    pub n_ctx: usize,
    /// Time to load, in milliseconds.
    pub load_ms: f64,
    /// Bytes of the model file (0 for upstream models).
    pub file_bytes: u64,
    /// The syntax the model writes tool calls in (from its chat template).
    pub tool_format: ToolFormat,
    /// Which chat template renders its chats, and why (`None` for upstream models, whose
    /// server renders them).
    pub template: Option<template::TemplateChoice>,
}

/// What every model backend offers. Kept small on purpose: load happens in the constructor,
/// then generation and tokenization; everything else (batching, HTTP) lives elsewhere.
pub trait Backend: Send + Sync {
    /// Facts about the loaded model.
    fn facts(&self) -> &ModelFacts;
    /// Starts a generation; events arrive on the returned stream.
    fn generate(&self, request: GenerateRequest) -> Result<EventStream, EngineError>;
    /// Splits text into the model's tokens.
    fn tokenize(&self, text: &str) -> Result<Vec<i32>, EngineError>;
    /// Current load.
    fn stats(&self) -> EngineStats;
}
