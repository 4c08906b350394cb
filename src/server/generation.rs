//! One generation request, from the validated request to the answer: routing `auto:TAG`,
//! asking the registry for the backend, then either one JSON answer or a stream of
//! server-sent events, every shape from the wire types in `crate::openai`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::error::ApiError;
use super::prometheus::Metrics;
use super::request::CommonParams;
use super::{unix_now, AppState};
use crate::engine::tools::{ParsedCall, ToolStream};
use crate::engine::{
    Completion, EngineError, Event, EventStream, FinishReason, GenerateRequest, Prompt, ToolDef,
    ToolRequest,
};
use crate::openai::{self, sse};

/// Which endpoint asked: decides the objects and where the text goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Text,
}

/// Generates for a parsed request and answers in OpenAI's shape. `default_max_tokens` is the
/// endpoint's default when the request sets none.
pub(super) async fn generate(
    state: &Arc<AppState>,
    kind: Kind,
    common: &CommonParams,
    prompt: Prompt,
    tools: Option<ToolRequest>,
    default_max_tokens: Option<u32>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let asked = common.model()?.to_string();
    let (model, route) = match super::route::route_tag(&asked) {
        Some(tag) => {
            let decision = state.auto_routes.decide(&state.registry, &tag).await?;
            (decision.model.clone(), Some(decision.header_value()))
        }
        None => (asked, None),
    };
    let request = (prompt, tools, default_max_tokens);
    let mut response = generate_with(state, kind, common, request, model, started).await?;
    if let Some(value) = route.and_then(|r| axum::http::HeaderValue::from_str(&r).ok()) {
        response.headers_mut().insert("x-hearth-route", value);
    }
    Ok(response)
}

/// Generates with the model that answers (the one asked for, or the routed one); `started`
/// is when the request arrived, so routing time counts in the latency metrics.
async fn generate_with(
    state: &Arc<AppState>,
    kind: Kind,
    common: &CommonParams,
    (prompt, tools, default_max_tokens): (Prompt, Option<ToolRequest>, Option<u32>),
    model: String,
    started: Instant,
) -> Result<Response, ApiError> {
    let sampling = common.sampling(default_max_tokens)?;
    let backend = state.registry.get(&model).await?;
    // Calls are read back from the text only when the model may make them.
    let callable = tools
        .as_ref()
        .filter(|t| t.active())
        .map(|t| t.tools.clone());
    // Rendering, tokenizing and compiling a constraint take milliseconds of CPU: off the
    // async workers, and off the engine thread.
    let request = GenerateRequest {
        prompt,
        sampling,
        tools,
    };
    let events = tokio::task::spawn_blocking(move || backend.generate(request))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                format!("the request could not be prepared: {e}"),
            )
        })??;
    let turn = Turn {
        id: next_id(kind),
        created: unix_now(),
        model,
        kind,
    };
    if common.stream {
        return Ok(stream_response(
            Arc::clone(state),
            turn,
            events,
            started,
            common.include_usage(),
            callable,
        ));
    }
    let mut events = events;
    let mut text = String::new();
    let mut clock = TokenClock::new(started);
    while let Some(event) = events.next().await {
        match event {
            Event::Token(piece) => {
                clock.tick(&state.metrics);
                text.push_str(&piece);
            }
            Event::Done(done) => {
                clock.done(&state.metrics, &done);
                state.registry.touch(&turn.model);
                let (text, calls) = match &callable {
                    Some(tools) => {
                        let mut scan = ToolStream::default();
                        let mut out = scan.push(&text);
                        let (rest, calls) = scan.finish(tools);
                        out.push_str(&rest);
                        (out, OutCall::new(calls))
                    }
                    None => (text, Vec::new()),
                };
                return Ok(turn.full(text, &calls, &done));
            }
            Event::Error(e) => return Err(e.into()),
        }
    }
    Err(EngineError::Shutdown.into())
}

/// One response's identity, shared by all its chunks.
struct Turn {
    id: String,
    created: u64,
    model: String,
    kind: Kind,
}

fn next_id(kind: Kind) -> String {
    unique_id(match kind {
        Kind::Chat => "chatcmpl-",
        Kind::Text => "cmpl-",
    })
}

/// An id for a tool call the model made, `call_…` as OpenAI writes them.
fn call_id() -> String {
    unique_id("call_")
}

/// `prefix` then the time in nanoseconds and a process-wide counter, in hex: unique within
/// the process and unlikely to repeat across restarts.
fn unique_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{prefix}{nanos:x}{n:04x}")
}

/// A call of the answer with its id.
struct OutCall {
    id: String,
    call: ParsedCall,
}

impl OutCall {
    fn new(calls: Vec<ParsedCall>) -> Vec<Self> {
        calls
            .into_iter()
            .map(|call| Self {
                id: call_id(),
                call,
            })
            .collect()
    }

    fn wire(&self) -> openai::ToolCall {
        openai::ToolCall::function(&self.id, &self.call.name, &self.call.arguments)
    }
}

/// The finish reason to report: `tool_calls` when the answer is calls.
fn finish_reason(c: &Completion, calls: &[OutCall]) -> openai::FinishReason {
    if calls.is_empty() {
        wire_reason(c.finish_reason)
    } else {
        openai::FinishReason::ToolCalls
    }
}

fn wire_reason(reason: FinishReason) -> openai::FinishReason {
    match reason {
        FinishReason::Stop => openai::FinishReason::Stop,
        FinishReason::Length => openai::FinishReason::Length,
        FinishReason::ToolCalls => openai::FinishReason::ToolCalls,
    }
}

/// Identifies the backend build in every response, as OpenAI's `system_fingerprint` does.
const FINGERPRINT: &str = concat!("hearth-", env!("CARGO_PKG_VERSION"));

fn usage(c: &Completion) -> openai::Usage {
    let (prompt, completion) = (
        c.usage.prompt_tokens as u64,
        c.usage.completion_tokens as u64,
    );
    openai::Usage {
        prompt_tokens: Some(prompt),
        completion_tokens: Some(completion),
        total_tokens: Some(prompt + completion),
        prompt_tokens_details: Some(openai::PromptTokensDetails {
            cached_tokens: Some(c.usage.cached_prompt_tokens as u64),
        }),
    }
}

/// Engine-side timings in llama-server's shape, so clients can tell engine time from network.
fn timings(c: &Completion) -> openai::Timings {
    let t = &c.timings;
    let per = |ms: f64, n: usize| if n > 0 { ms / n as f64 } else { 0.0 };
    let predicted = c.usage.completion_tokens.saturating_sub(1);
    // llama-server's meaning: prompt_n is what this request computed, cache_n what it reused.
    let cached = c.usage.cached_prompt_tokens.min(c.usage.prompt_tokens);
    let computed = c.usage.prompt_tokens - cached;
    openai::Timings {
        prompt_n: computed as u64,
        cache_n: cached as u64,
        prompt_ms: t.prompt_ms,
        prompt_per_token_ms: per(t.prompt_ms, computed),
        prompt_per_second: t.prompt_per_second,
        predicted_n: c.usage.completion_tokens as u64,
        predicted_ms: t.decode_ms,
        predicted_per_token_ms: per(t.decode_ms, predicted),
        predicted_per_second: t.decode_per_second,
        ttft_ms: t.ttft_ms,
        queued_ms: t.queued_ms,
        draft_n: t.draft_n as u64,
        draft_n_accepted: t.draft_n_accepted as u64,
    }
}

/// A chunk (or answer) of this turn: one choice, nothing else yet.
fn envelope<C>(turn: &Turn, object: &str, choices: Vec<C>) -> openai::Response<C> {
    openai::Response {
        id: turn.id.clone(),
        object: object.into(),
        created: turn.created,
        model: turn.model.clone(),
        system_fingerprint: Some(FINGERPRINT.into()),
        choices,
        usage: None,
        timings: None,
        error: None,
    }
}

/// The chat chunk of one delta.
fn chat_chunk(turn: &Turn, delta: openai::Delta) -> openai::ChatCompletionChunk {
    let choice = openai::ChunkChoice {
        delta,
        ..openai::ChunkChoice::default()
    };
    envelope(turn, "chat.completion.chunk", vec![choice])
}

/// The text-completion chunk (or answer) of one choice.
fn text_completion(
    turn: &Turn,
    text: String,
    finish_reason: Option<openai::FinishReason>,
) -> openai::TextCompletion {
    let choice = openai::TextChoice {
        text,
        finish_reason,
        ..openai::TextChoice::default()
    };
    envelope(turn, "text_completion", vec![choice])
}

/// One server-sent event of this stream, already encoded.
type Frame = String;

impl Turn {
    /// A streamed piece of text (or, for chat, the opening role chunk when `role` is set).
    fn delta(&self, text: &str, role: bool) -> Frame {
        match self.kind {
            Kind::Chat if role => sse::frame(&chat_chunk(
                self,
                openai::Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..openai::Delta::default()
                },
            )),
            Kind::Chat => sse::frame(&chat_chunk(
                self,
                openai::Delta {
                    content: Some(text.into()),
                    ..openai::Delta::default()
                },
            )),
            Kind::Text => sse::frame(&text_completion(self, text.into(), None)),
        }
    }

    /// Streamed tool calls in OpenAI's delta shape: per call, one chunk opening it (id, name,
    /// empty arguments) and one with its arguments.
    fn tool_deltas(&self, calls: &[OutCall]) -> Vec<Frame> {
        let mut chunks = Vec::new();
        for (index, c) in calls.iter().enumerate() {
            let index = index as u32;
            for call in [
                openai::ToolCallDelta {
                    index,
                    id: Some(c.id.clone()),
                    kind: Some("function".into()),
                    function: openai::FunctionCallDelta {
                        name: Some(c.call.name.clone()),
                        arguments: Some(String::new()),
                    },
                },
                openai::ToolCallDelta {
                    index,
                    function: openai::FunctionCallDelta {
                        name: None,
                        arguments: Some(c.call.arguments.clone()),
                    },
                    ..openai::ToolCallDelta::default()
                },
            ] {
                let delta = openai::Delta {
                    tool_calls: Some(vec![call]),
                    ..openai::Delta::default()
                };
                chunks.push(sse::frame(&chat_chunk(self, delta)));
            }
        }
        chunks
    }

    /// The chunk carrying `finish_reason` (and engine timings).
    fn finish_chunk(&self, c: &Completion, calls: &[OutCall]) -> Frame {
        let reason = Some(finish_reason(c, calls));
        match self.kind {
            Kind::Chat => {
                let mut chunk = chat_chunk(self, openai::Delta::default());
                chunk.choices[0].finish_reason = reason;
                chunk.timings = Some(timings(c));
                sse::frame(&chunk)
            }
            Kind::Text => {
                let mut chunk = text_completion(self, String::new(), reason);
                chunk.timings = Some(timings(c));
                sse::frame(&chunk)
            }
        }
    }

    /// The final chunk with usage, sent when `stream_options.include_usage` is set.
    fn usage_chunk(&self, c: &Completion) -> Frame {
        match self.kind {
            Kind::Chat => self.usage_only::<openai::ChunkChoice>("chat.completion.chunk", c),
            Kind::Text => self.usage_only::<openai::TextChoice>("text_completion", c),
        }
    }

    fn usage_only<C: Serialize>(&self, object: &str, c: &Completion) -> Frame {
        let mut chunk = envelope::<C>(self, object, Vec::new());
        chunk.usage = Some(usage(c));
        sse::frame(&chunk)
    }

    /// The whole non-streamed response.
    fn full(&self, text: String, calls: &[OutCall], c: &Completion) -> Response {
        match self.kind {
            Kind::Chat => {
                let message = if calls.is_empty() {
                    openai::ResponseMessage {
                        content: Some(text),
                        ..openai::ResponseMessage::default()
                    }
                } else {
                    let text = text.trim();
                    openai::ResponseMessage {
                        content: (!text.is_empty()).then(|| text.to_string()),
                        tool_calls: Some(calls.iter().map(OutCall::wire).collect()),
                        ..openai::ResponseMessage::default()
                    }
                };
                let choice = openai::ChatChoice {
                    message,
                    finish_reason: Some(finish_reason(c, calls)),
                    ..openai::ChatChoice::default()
                };
                let mut answer = envelope(self, "chat.completion", vec![choice]);
                answer.usage = Some(usage(c));
                answer.timings = Some(timings(c));
                Json(answer).into_response()
            }
            Kind::Text => {
                let mut answer = text_completion(self, text, Some(wire_reason(c.finish_reason)));
                answer.usage = Some(usage(c));
                answer.timings = Some(timings(c));
                Json(answer).into_response()
            }
        }
    }
}

/// Feeds TTFT and inter-token latency as seen by the HTTP layer into the metrics.
struct TokenClock {
    started: Instant,
    last: Option<Instant>,
}

impl TokenClock {
    fn new(started: Instant) -> Self {
        Self {
            started,
            last: None,
        }
    }

    fn tick(&mut self, metrics: &Metrics) {
        let now = Instant::now();
        match self.last {
            None => metrics.first_token((now - self.started).as_secs_f64()),
            Some(prev) => metrics.inter_token((now - prev).as_secs_f64()),
        }
        self.last = Some(now);
    }

    fn done(&self, metrics: &Metrics, c: &Completion) {
        metrics.generation(&c.usage, self.started.elapsed().as_secs_f64());
    }
}

/// Server-sent events: (chat) a role chunk, content deltas, a finish chunk, a usage chunk when
/// asked, then `data: [DONE]` — also after an error. A client that disconnects drops the
/// receiver; the task notices at once and dropping `events` cancels the sequence in the engine.
fn stream_response(
    state: Arc<AppState>,
    turn: Turn,
    mut events: EventStream,
    started: Instant,
    include_usage: bool,
    callable: Option<Vec<ToolDef>>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(async move {
        let send = |frame: Frame| tx.send(Ok(Bytes::from(frame)));
        if turn.kind == Kind::Chat && send(turn.delta("", true)).await.is_err() {
            return;
        }
        let mut clock = TokenClock::new(started);
        // With tools, text that may be a call is held back until the end.
        let mut scan = callable.as_ref().map(|_| ToolStream::default());
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                _ = tx.closed() => {
                    tracing::debug!(id = %turn.id, "client disconnected; cancelling");
                    return;
                }
            };
            let chunks = match event {
                Some(Event::Token(piece)) => {
                    clock.tick(&state.metrics);
                    let piece = match &mut scan {
                        Some(scan) => scan.push(&piece),
                        None => piece,
                    };
                    if piece.is_empty() {
                        Vec::new()
                    } else {
                        vec![turn.delta(&piece, false)]
                    }
                }
                Some(Event::Done(done)) => {
                    clock.done(&state.metrics, &done);
                    let mut v = Vec::new();
                    let mut calls = Vec::new();
                    if let (Some(scan), Some(tools)) = (scan.take(), &callable) {
                        let (rest, found) = scan.finish(tools);
                        if !rest.is_empty() {
                            v.push(turn.delta(&rest, false));
                        }
                        calls = OutCall::new(found);
                        v.extend(turn.tool_deltas(&calls));
                    }
                    v.push(turn.finish_chunk(&done, &calls));
                    if include_usage {
                        v.push(turn.usage_chunk(&done));
                    }
                    for chunk in v {
                        if send(chunk).await.is_err() {
                            return;
                        }
                    }
                    break;
                }
                Some(Event::Error(e)) => {
                    let _ = send(sse::frame(&ApiError::from(e).body())).await;
                    break;
                }
                None => {
                    let e = ApiError::from(EngineError::Shutdown);
                    let _ = send(sse::frame(&e.body())).await;
                    break;
                }
            };
            for chunk in chunks {
                if send(chunk).await.is_err() {
                    return;
                }
            }
        }
        let _ = send(sse::DONE_FRAME.to_string()).await;
        state.registry.touch(&turn.model);
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .expect("static headers are valid")
}
