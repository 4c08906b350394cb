//! Handlers: OpenAI endpoints under `/v1`, model lifecycle under `/api`, health and metrics.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::openai::{self, ApiError, ChatRequest, CommonParams, CompletionRequest};
use super::registry::RegistryError;
use super::{unix_now, AppState};
use crate::catalog::CatalogError;
use crate::engine::tools::{ParsedCall, ToolStream};
use crate::engine::{
    Completion, Event, EventStream, FinishReason, GenerateRequest, Prompt, ToolRequest,
};

type Shared = State<Arc<AppState>>;

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match &e {
            RegistryError::Unknown(CatalogError::UnknownModel { .. }) => ApiError {
                status: StatusCode::NOT_FOUND,
                message: format!("{e}"),
                param: Some("model".into()),
                code: Some("model_not_found"),
            },
            _ => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "model_load_failed",
                e.to_string(),
            ),
        }
    }
}

/// Reads the body, mapping an oversized one to 413 and any other failure to 400.
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "request_too_large"
        } else {
            "invalid_body"
        };
        ApiError::new(status, code, rejection.body_text())
    })
}

/// Records the outcome of a request in the metrics and turns errors into responses.
fn finish(state: &AppState, endpoint: &str, result: Result<Response, ApiError>) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    state.metrics.request(endpoint, response.status().as_u16());
    response
}

pub(super) async fn chat_completions(
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let request: ChatRequest = openai::parse_body(&body_bytes(body)?)?;
        let messages = request.messages()?;
        let tools = request.tools()?;
        generate(
            &state,
            Kind::Chat,
            &request.common,
            Prompt::Chat(messages),
            tools,
            None,
        )
        .await
    }
    .await;
    finish(&state, "/v1/chat/completions", result)
}

pub(super) async fn completions(
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let request: CompletionRequest = openai::parse_body(&body_bytes(body)?)?;
        let prompt = request.prompt()?;
        // OpenAI's legacy completions default to 16 tokens.
        generate(
            &state,
            Kind::Text,
            &request.common,
            Prompt::Text(prompt),
            None,
            Some(16),
        )
        .await
    }
    .await;
    finish(&state, "/v1/completions", result)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Text,
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

    fn json(&self) -> Value {
        json!({"id": self.id, "type": "function",
               "function": {"name": self.call.name, "arguments": self.call.arguments}})
    }
}

/// The finish reason to report: `tool_calls` when the answer is calls.
fn finish_reason(c: &Completion, calls: &[OutCall]) -> FinishReason {
    if calls.is_empty() {
        c.finish_reason
    } else {
        FinishReason::ToolCalls
    }
}

/// Identifies the backend build in every response, as OpenAI's `system_fingerprint` does.
const FINGERPRINT: &str = concat!("hearth-", env!("CARGO_PKG_VERSION"));

fn usage_json(c: &Completion) -> Value {
    json!({
        "prompt_tokens": c.usage.prompt_tokens,
        "completion_tokens": c.usage.completion_tokens,
        "total_tokens": c.usage.prompt_tokens + c.usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": c.usage.cached_prompt_tokens},
    })
}

/// Engine-side timings in llama-server's shape, so clients can tell engine time from network.
fn timings_json(c: &Completion) -> Value {
    let t = &c.timings;
    let per = |ms: f64, n: usize| if n > 0 { ms / n as f64 } else { 0.0 };
    let predicted = c.usage.completion_tokens.saturating_sub(1);
    json!({
        "prompt_n": c.usage.prompt_tokens,
        "prompt_ms": t.prompt_ms,
        "prompt_per_token_ms": per(t.prompt_ms, c.usage.prompt_tokens),
        "prompt_per_second": t.prompt_per_second,
        "predicted_n": c.usage.completion_tokens,
        "predicted_ms": t.decode_ms,
        "predicted_per_token_ms": per(t.decode_ms, predicted),
        "predicted_per_second": t.decode_per_second,
        "ttft_ms": t.ttft_ms,
        "queued_ms": t.queued_ms,
        "draft_n": t.draft_n,
        "draft_n_accepted": t.draft_n_accepted,
    })
}

impl Turn {
    fn object(&self, streaming: bool) -> &'static str {
        match (self.kind, streaming) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Text, _) => "text_completion",
        }
    }

    fn envelope(&self, streaming: bool, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": self.object(streaming),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
        })
    }

    /// A streamed piece of text (or, for chat, the opening role chunk when `role` is set).
    fn delta(&self, text: &str, role: bool) -> Value {
        let choice = match self.kind {
            Kind::Chat if role => {
                json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null})
            }
            Kind::Chat => {
                json!({"index": 0, "delta": {"content": text}, "logprobs": null, "finish_reason": null})
            }
            Kind::Text => {
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": null})
            }
        };
        self.envelope(true, json!([choice]))
    }

    /// Streamed tool calls in OpenAI's delta shape: per call, one chunk opening it (id, name,
    /// empty arguments) and one with its arguments.
    fn tool_deltas(&self, calls: &[OutCall]) -> Vec<Value> {
        let mut chunks = Vec::new();
        for (index, c) in calls.iter().enumerate() {
            for call in [
                json!({"index": index, "id": c.id, "type": "function",
                       "function": {"name": c.call.name, "arguments": ""}}),
                json!({"index": index, "function": {"arguments": c.call.arguments}}),
            ] {
                let choice = json!({"index": 0, "delta": {"tool_calls": [call]}, "logprobs": null, "finish_reason": null});
                chunks.push(self.envelope(true, json!([choice])));
            }
        }
        chunks
    }

    /// The chunk carrying `finish_reason` (and engine timings).
    fn finish_chunk(&self, c: &Completion, calls: &[OutCall]) -> Value {
        let reason = finish_reason(c, calls);
        let choice = match self.kind {
            Kind::Chat => {
                json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": reason})
            }
            Kind::Text => {
                json!({"index": 0, "text": "", "logprobs": null, "finish_reason": reason})
            }
        };
        let mut v = self.envelope(true, json!([choice]));
        v["timings"] = timings_json(c);
        v
    }

    /// The final chunk with usage, sent when `stream_options.include_usage` is set.
    fn usage_chunk(&self, c: &Completion) -> Value {
        let mut v = self.envelope(true, json!([]));
        v["usage"] = usage_json(c);
        v
    }

    /// The whole non-streamed response.
    fn full(&self, text: String, calls: &[OutCall], c: &Completion) -> Value {
        let choice = match self.kind {
            Kind::Chat if !calls.is_empty() => {
                let text = text.trim();
                let content = (!text.is_empty()).then_some(text);
                let calls: Vec<Value> = calls.iter().map(OutCall::json).collect();
                json!({"index": 0, "message": {"role": "assistant", "content": content, "refusal": null, "tool_calls": calls}, "logprobs": null, "finish_reason": FinishReason::ToolCalls})
            }
            Kind::Chat => {
                json!({"index": 0, "message": {"role": "assistant", "content": text, "refusal": null}, "logprobs": null, "finish_reason": c.finish_reason})
            }
            Kind::Text => {
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": c.finish_reason})
            }
        };
        let mut v = self.envelope(false, json!([choice]));
        v["usage"] = usage_json(c);
        v["timings"] = timings_json(c);
        v
    }
}

async fn generate(
    state: &Arc<AppState>,
    kind: Kind,
    common: &CommonParams,
    prompt: Prompt,
    tools: Option<ToolRequest>,
    default_max_tokens: Option<u32>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let asked = common.model()?.to_string();
    let (model, route) = match crate::auto_route::route_tag(&asked) {
        Some(tag) => {
            let decision = state.router.decide(&state.registry, &tag).await?;
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
    let events = backend.generate(GenerateRequest {
        prompt,
        sampling,
        tools,
    })?;
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
                return Ok(Json(turn.full(text, &calls, &done)).into_response());
            }
            Event::Error(e) => return Err(e.into()),
        }
    }
    Err(crate::engine::EngineError::Shutdown.into())
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

    fn tick(&mut self, metrics: &super::Metrics) {
        let now = Instant::now();
        match self.last {
            None => metrics.first_token((now - self.started).as_secs_f64()),
            Some(prev) => metrics.inter_token((now - prev).as_secs_f64()),
        }
        self.last = Some(now);
    }

    fn done(&self, metrics: &super::Metrics, c: &Completion) {
        metrics.generation(
            c.usage.prompt_tokens,
            c.usage.completion_tokens,
            self.started.elapsed().as_secs_f64(),
        );
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
    callable: Option<Vec<crate::engine::ToolDef>>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(async move {
        let frame = |v: &Value| Ok(Bytes::from(format!("data: {v}\n\n")));
        if turn.kind == Kind::Chat && tx.send(frame(&turn.delta("", true))).await.is_err() {
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
                    for chunk in &v {
                        if tx.send(frame(chunk)).await.is_err() {
                            return;
                        }
                    }
                    break;
                }
                Some(Event::Error(e)) => {
                    let _ = tx.send(frame(&ApiError::from(e).body())).await;
                    break;
                }
                None => {
                    let e = ApiError::from(crate::engine::EngineError::Shutdown);
                    let _ = tx.send(frame(&e.body())).await;
                    break;
                }
            };
            for chunk in &chunks {
                if tx.send(frame(chunk)).await.is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await;
        state.registry.touch(&turn.model);
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .expect("static headers are valid")
}

fn model_object(id: &str, loaded: bool) -> Value {
    json!({
        "id": id,
        "object": "model",
        "created": unix_now(),
        "owned_by": "hearth",
        "loaded": loaded,
    })
}

pub(super) async fn list_models(State(state): Shared) -> Response {
    let loaded: Vec<String> = state
        .registry
        .loaded()
        .into_iter()
        .map(|m| m.model)
        .collect();
    let mut ids = state.registry.available();
    for id in &loaded {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    let data: Vec<Value> = ids
        .iter()
        .map(|id| model_object(id, loaded.contains(id)))
        .collect();
    finish(
        &state,
        "/v1/models",
        Ok(Json(json!({"object": "list", "data": data})).into_response()),
    )
}

pub(super) async fn get_model(State(state): Shared, Path(id): Path<String>) -> Response {
    let result = match state.registry.catalog().get(&id) {
        Ok(entry) => {
            let loaded = state
                .registry
                .loaded()
                .iter()
                .any(|m| m.model == entry.alias);
            Ok(Json(model_object(&entry.alias, loaded)).into_response())
        }
        Err(e) => Err(ApiError::from(RegistryError::Unknown(e))),
    };
    finish(&state, "/v1/models/{id}", result)
}

/// Body of `/api/load` and `/api/unload`.
#[derive(serde::Deserialize)]
struct ModelBody {
    model: String,
    /// `/api/load` only: the offload the caller expects. One server offloads every model the
    /// same way (`serve --gpu-layers`), so a different request is refused, not ignored.
    #[serde(default)]
    gpu_layers: Option<crate::engine::devices::GpuLayers>,
}

pub(super) async fn ps(State(state): Shared) -> Response {
    let models = state.registry.loaded();
    finish(
        &state,
        "/api/ps",
        Ok(Json(json!({"models": models})).into_response()),
    )
}

pub(super) async fn load(State(state): Shared, body: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let body: ModelBody = openai::parse_body(&body_bytes(body)?)?;
        let serving = state.registry.offload().gpu_layers;
        if let Some(asked) = body.gpu_layers.filter(|g| *g != serving) {
            return Err(ApiError::bad_param(
                "gpu_layers",
                format!(
                    "this server offloads {serving} layers for every model; restart it with `hearth serve --gpu-layers {asked}` to load with {asked}"
                ),
            ));
        }
        let backend = state.registry.get(&body.model).await?;
        let facts = backend.facts();
        Ok(
            Json(json!({"model": facts.alias, "status": "loaded", "load_ms": facts.load_ms}))
                .into_response(),
        )
    }
    .await;
    finish(&state, "/api/load", result)
}

/// Body of `/tokenize` (llama-server's shape, plus the model: hearth serves several).
#[derive(serde::Deserialize)]
struct TokenizeBody {
    model: String,
    content: String,
}

/// Counts tokens with the model's own tokenizer (no special tokens added), as llama-server's
/// `/tokenize` does, so clients such as `hearth bench` can count tokens a server did not report.
pub(super) async fn tokenize(
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body: TokenizeBody = openai::parse_body(&body_bytes(body)?)?;
        let backend = state.registry.get(&body.model).await?;
        let tokens = backend.tokenize(&body.content).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "tokenize_failed", e.to_string())
        })?;
        Ok(Json(json!({"tokens": tokens})).into_response())
    }
    .await;
    finish(&state, "/tokenize", result)
}

pub(super) async fn unload(State(state): Shared, body: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let body: ModelBody = openai::parse_body(&body_bytes(body)?)?;
        if state.registry.unload(&body.model).await {
            Ok(Json(json!({"model": body.model, "status": "unloaded"})).into_response())
        } else {
            Err(ApiError {
                status: StatusCode::NOT_FOUND,
                message: format!("model `{}` is not loaded", body.model),
                param: Some("model".into()),
                code: Some("model_not_loaded"),
            })
        }
    }
    .await;
    finish(&state, "/api/unload", result)
}

pub(super) async fn status(State(state): Shared) -> Response {
    let loaded = state.registry.loaded();
    let body = json!({
        "status": if state.registry.is_loading() { "loading" } else { "ok" },
        "endpoint": state.endpoint,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs_f64(),
        "pid": std::process::id(),
        "models_loaded": loaded.len(),
        "active_requests": loaded.iter().map(|m| m.stats.active).sum::<usize>(),
    });
    finish(&state, "/api/status", Ok(Json(body).into_response()))
}

pub(super) async fn health(State(state): Shared) -> Response {
    if state.registry.is_loading() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "loading"})),
        )
            .into_response()
    } else {
        Json(json!({"status": "ok"})).into_response()
    }
}

pub(super) async fn metrics(State(state): Shared) -> Response {
    let loaded = state.registry.loaded();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&loaded),
    )
        .into_response()
}

pub(super) async fn not_found(State(state): Shared, uri: Uri) -> Response {
    finish(
        &state,
        "unknown",
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_url",
            format!("no route for {}", uri.path()),
        )),
    )
}
