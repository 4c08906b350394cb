//! The upstream backend: a "custom adapter" that forwards generations to any OpenAI-compatible
//! server (Ollama, vLLM, llama-server, Foundry Local, another hearth…).
//!
//! A `models.json` entry with an `upstream` section is served through hearth's own API exactly
//! like a local model: each request becomes one streaming `POST {base_url}/chat/completions`
//! (or `/completions` for raw text), whose server-sent events are parsed by hand and turned
//! into [`Event`]s as they arrive, so streaming is preserved end to end. Token counts come from
//! the upstream (it owns the tokenizer); timings are measured here, so they include the network.
//! Dropping the [`EventStream`] aborts the HTTP request, which tells the upstream to stop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc::UnboundedSender;

use super::{
    Backend, Completion, EngineError, EngineStats, Event, EventStream, FinishReason,
    GenerateRequest, ModelFacts, Prompt, SamplingParams, Timings, Usage,
};
use crate::catalog::Upstream;

/// How long to wait for the upstream to accept a connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most characters of an upstream's non-JSON error body quoted in an error message.
const QUOTE_LIMIT: usize = 300;

/// A model served by an OpenAI-compatible server elsewhere; hearth only relays.
///
/// Cheap to share: every request runs as its own task on the runtime given to
/// [`UpstreamBackend::new`], so `generate` never blocks its caller.
pub struct UpstreamBackend {
    facts: ModelFacts,
    target: Arc<Target>,
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    active: Arc<AtomicUsize>,
}

impl std::fmt::Debug for UpstreamBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The API key stays out of logs.
        f.debug_struct("UpstreamBackend")
            .field("facts", &self.facts)
            .field("base_url", &self.target.base_url)
            .field("model", &self.target.model)
            .finish_non_exhaustive()
    }
}

/// Where requests go and how they authenticate.
struct Target {
    /// Base URL including `/v1`, without a trailing slash.
    base_url: String,
    /// Model name the upstream expects.
    model: String,
    /// Bearer token, read once from the environment at start-up.
    api_key: Option<String>,
}

/// Which OpenAI endpoint a request uses; decides the body and where the text sits in a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    /// `/chat/completions`: text in `choices[0].delta.content`.
    Chat,
    /// `/completions`: text in `choices[0].text`.
    Completions,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat/completions",
            Endpoint::Completions => "completions",
        }
    }
}

impl UpstreamBackend {
    /// Checks the upstream's settings and prepares an HTTP client; no request is made, so a
    /// server that is down is reported by the first generation, not here.
    ///
    /// `runtime`: where request tasks run (`generate` is sync and may be called from any
    /// thread). A named `api_key_env` that is unset fails here, so a missing key shows up at
    /// start-up rather than as an opaque 401 on every request.
    pub fn new(
        alias: &str,
        upstream: &Upstream,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, EngineError> {
        let base_url = upstream.base_url.trim().trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base_url).map_err(|e| {
            EngineError::Load(format!(
                "{alias}: upstream base_url {:?} is not a valid URL: {e}",
                upstream.base_url
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(EngineError::Load(format!(
                "{alias}: upstream base_url {base_url} must start with http:// or https://"
            )));
        }
        if upstream.model.trim().is_empty() {
            return Err(EngineError::Load(format!(
                "{alias}: upstream model name is empty"
            )));
        }
        let api_key = match &upstream.api_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(key) if !key.trim().is_empty() => Some(key.trim().to_string()),
                _ => {
                    return Err(EngineError::Load(format!(
                        "{alias}: the upstream's API key is read from the environment variable \
                         {var}, which is not set"
                    )))
                }
            },
        };
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| EngineError::Load(format!("{alias}: cannot build HTTP client: {e}")))?;
        tracing::info!(
            alias,
            base_url,
            model = upstream.model,
            "upstream adapter ready"
        );
        Ok(Self {
            facts: ModelFacts {
                alias: alias.to_string(),
                n_ctx: 0,
                load_ms: 0.0,
                file_bytes: 0,
                tool_format: crate::engine::ToolFormat::Generic,
            },
            target: Arc::new(Target {
                base_url,
                model: upstream.model.clone(),
                api_key,
            }),
            client,
            runtime,
            active: Arc::new(AtomicUsize::new(0)),
        })
    }
}

impl Backend for UpstreamBackend {
    fn facts(&self) -> &ModelFacts {
        &self.facts
    }

    fn generate(&self, request: GenerateRequest) -> Result<EventStream, EngineError> {
        if matches!(&request.prompt, Prompt::Chat(messages) if messages.is_empty()) {
            return Err(EngineError::InvalidRequest(
                "messages must not be empty".into(),
            ));
        }
        if request.sampling.max_tokens == Some(0) {
            return Err(EngineError::InvalidRequest(
                "max_tokens must be at least 1".into(),
            ));
        }
        if request.tools.as_ref().is_some_and(|t| t.active()) {
            return Err(EngineError::InvalidParam {
                param: "tools",
                message: format!(
                    "tool calls through the upstream model `{}` are not supported yet",
                    self.facts.alias
                ),
            });
        }
        let submitted = Instant::now();
        let (endpoint, body) = request_body(&self.target.model, &request);
        let url = format!("{}/{}", self.target.base_url, endpoint.path());
        let mut http = self.client.post(&url).json(&body);
        if let Some(key) = &self.target.api_key {
            http = http.bearer_auth(key);
        }
        let (events, stream) = EventStream::channel();
        self.active.fetch_add(1, Ordering::SeqCst);
        let job = Job {
            http,
            url,
            base_url: self.target.base_url.clone(),
            endpoint,
            submitted,
            alias: self.facts.alias.clone(),
        };
        self.runtime
            .spawn(run(job, events, ActiveGuard(Arc::clone(&self.active))));
        Ok(stream)
    }

    fn tokenize(&self, _text: &str) -> Result<Vec<i32>, EngineError> {
        // The OpenAI API has no tokenize endpoint, and guessing would give wrong counts.
        Err(EngineError::Unsupported("tokenize"))
    }

    fn stats(&self) -> EngineStats {
        EngineStats {
            active: self.active.load(Ordering::SeqCst),
            ..EngineStats::default()
        }
    }
}

/// Decrements the in-flight counter however the request task ends (even if it is dropped).
struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Everything a request task needs, prepared on the caller's thread.
struct Job {
    http: reqwest::RequestBuilder,
    url: String,
    base_url: String,
    endpoint: Endpoint,
    submitted: Instant,
    alias: String,
}

/// The OpenAI request body for `request`, and the endpoint it goes to.
fn request_body(model: &str, request: &GenerateRequest) -> (Endpoint, Value) {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    let endpoint = match &request.prompt {
        Prompt::Chat(messages) => {
            let messages: Vec<Value> = messages.iter().map(|m| m.to_openai(false)).collect();
            body.insert("messages".into(), json!(messages));
            Endpoint::Chat
        }
        Prompt::Text(text) => {
            body.insert("prompt".into(), json!(text));
            Endpoint::Completions
        }
    };
    body.insert("stream".into(), json!(true));
    body.insert("stream_options".into(), json!({ "include_usage": true }));
    add_sampling(&mut body, &request.sampling);
    (endpoint, Value::Object(body))
}

/// Adds the sampling fields; optional ones only when set, so the upstream's defaults apply.
fn add_sampling(body: &mut Map<String, Value>, sampling: &SamplingParams) {
    body.insert("temperature".into(), json!(sampling.temperature));
    body.insert("top_p".into(), json!(sampling.top_p));
    if sampling.top_k > 0 {
        // Not in OpenAI's API, but vLLM, Ollama and llama-server accept it.
        body.insert("top_k".into(), json!(sampling.top_k));
    }
    if let Some(seed) = sampling.seed {
        body.insert("seed".into(), json!(seed));
    }
    if let Some(max_tokens) = sampling.max_tokens {
        body.insert("max_tokens".into(), json!(max_tokens));
    }
    if !sampling.stop.is_empty() {
        body.insert("stop".into(), json!(sampling.stop));
    }
    if sampling.ignore_eos {
        // Only sent when asked for (fixed-length benchmarks); vLLM and llama-server honour it.
        body.insert("ignore_eos".into(), json!(true));
    }
    if let Some(format) = &sampling.response_format {
        // Passed on unchanged: the upstream enforces structured output its own way.
        body.insert("response_format".into(), format.clone());
    }
}

/// The request task: relays the upstream's stream until it ends or the caller hangs up.
async fn run(job: Job, events: UnboundedSender<Event>, active: ActiveGuard) {
    let alias = job.alias.clone();
    let url = job.url.clone();
    let mut forward = Box::pin(forward(job, &events));
    let outcome = tokio::select! {
        () = events.closed() => None,
        outcome = &mut forward => Some(outcome),
    };
    // Not in flight any more; released before the final event (and before the connection
    // closes) so whoever sees the end also sees the request gone from `stats()`.
    drop(active);
    // When the caller dropped its stream, dropping the unfinished request closes the
    // connection, which is how an OpenAI server learns to stop generating.
    drop(forward);
    match outcome {
        None => tracing::debug!(alias, url, "client went away; upstream request aborted"),
        Some(Ok(completion)) => {
            let _ = events.send(Event::Done(completion));
        }
        Some(Err(error)) => {
            tracing::warn!(alias, url, %error, "upstream request failed");
            let _ = events.send(Event::Error(error));
        }
    }
}

/// Sends the request and turns the SSE response into token events; returns the summary.
async fn forward(job: Job, events: &UnboundedSender<Event>) -> Result<Completion, EngineError> {
    let response = job
        .http
        .send()
        .await
        .map_err(|e| send_error(&job.base_url, &job.url, &e))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(EngineError::Upstream(status_error(
            &job.url,
            &status.to_string(),
            &body,
        )));
    }
    let mut tally = Tally::new(job.submitted);
    let mut parser = SseParser::default();
    let mut body = response.bytes_stream();
    let mut done = false;
    while !done {
        let Some(chunk) = body.next().await else {
            // The body ended; take a last event that lacked its blank line, then stop.
            if let Some(data) = parser.finish() {
                done = tally.apply(parse_payload(&data, job.endpoint)?, events);
            }
            break;
        };
        let chunk = chunk.map_err(|e| {
            EngineError::Upstream(format!(
                "reading the stream from {} failed: {}",
                job.url,
                error_chain(&e)
            ))
        })?;
        for data in parser.push(&chunk) {
            if tally.apply(parse_payload(&data, job.endpoint)?, events) {
                done = true;
                break;
            }
        }
    }
    if !done && tally.finish_reason.is_none() {
        return Err(EngineError::Upstream(format!(
            "{} closed the stream before the generation finished",
            job.url
        )));
    }
    Ok(tally.completion(&job.alias))
}

/// What one SSE `data:` payload said.
#[derive(Debug, Default, PartialEq)]
struct Chunk {
    /// New text (may be empty, e.g. the first chat chunk that only carries the role).
    content: Option<String>,
    /// The upstream's reason for stopping, on the last choice chunk.
    finish_reason: Option<String>,
    /// Token counts, on the final chunk when `include_usage` was honoured.
    usage: Option<Usage>,
}

/// One parsed `data:` payload.
#[derive(Debug, PartialEq)]
enum Payload {
    /// A `chat.completion.chunk` or `text_completion` object.
    Chunk(Chunk),
    /// `[DONE]`: the stream is over.
    Done,
}

/// Running state of one relayed generation.
struct Tally {
    submitted: Instant,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Non-empty content pieces received: the fallback token count.
    pieces: usize,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl Tally {
    fn new(submitted: Instant) -> Self {
        Self {
            submitted,
            first: None,
            last: None,
            pieces: 0,
            finish_reason: None,
            usage: None,
        }
    }

    /// Records a payload and forwards its text; `true` once the stream is over.
    fn apply(&mut self, payload: Payload, events: &UnboundedSender<Event>) -> bool {
        let chunk = match payload {
            Payload::Done => return true,
            Payload::Chunk(chunk) => chunk,
        };
        if let Some(text) = chunk.content.filter(|t| !t.is_empty()) {
            let now = Instant::now();
            self.first.get_or_insert(now);
            self.last = Some(now);
            self.pieces += 1;
            let _ = events.send(Event::Token(text));
        }
        if chunk.finish_reason.is_some() {
            self.finish_reason = chunk.finish_reason;
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        false
    }

    /// The summary: the upstream's counts when it sent them, local timings always.
    fn completion(&self, alias: &str) -> Completion {
        let usage = self.usage.unwrap_or_else(|| {
            tracing::warn!(
                alias,
                pieces = self.pieces,
                "the upstream sent no usage; counting content chunks as tokens and 0 prompt tokens"
            );
            Usage {
                prompt_tokens: 0,
                completion_tokens: self.pieces,
                ..Usage::default()
            }
        });
        let ms = |from: Instant, to: Instant| to.duration_since(from).as_secs_f64() * 1000.0;
        let first = self.first.unwrap_or_else(Instant::now);
        let ttft_ms = ms(self.submitted, first);
        let timings = Timings {
            queued_ms: 0.0,
            prompt_ms: ttft_ms,
            ttft_ms,
            decode_ms: self.last.map_or(0.0, |last| ms(first, last)),
            ..Timings::default()
        }
        .with_rates(usage);
        let finish_reason = match self.finish_reason.as_deref() {
            Some("length") => FinishReason::Length,
            _ => FinishReason::Stop,
        };
        Completion {
            usage,
            timings,
            finish_reason,
        }
    }
}

/// Incremental server-sent-events parser: bytes in, the `data` of each complete event out.
///
/// Works on bytes and splits only at line ends, so chunk boundaries anywhere (inside a
/// `data:` line or a multi-byte character) are harmless. Field names other than `data`
/// (`event`, `id`, `retry`) and `:` comments are ignored; multi-line data is joined with `\n`.
#[derive(Debug, Default)]
struct SseParser {
    /// Bytes after the last complete line.
    pending: Vec<u8>,
    /// `data` lines of the event being read, if any.
    data: Option<String>,
}

impl SseParser {
    /// Feeds bytes; returns the data of every event completed by them.
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + offset;
            let line = &self.pending[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if let Some(data) = self.line(&line) {
                out.push(data);
            }
        }
        self.pending.drain(..start);
        out
    }

    /// Handles one line; returns the event's data when the line ends an event.
    fn line(&mut self, line: &str) -> Option<String> {
        if line.is_empty() {
            return self.data.take();
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        if field == "data" {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            }
        }
        None
    }

    /// At end of input: the data of an event whose closing blank line never came.
    fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            let line = String::from_utf8_lossy(&rest);
            self.line(line.trim_end_matches('\r'));
        }
        self.data.take()
    }
}

/// Interprets one `data:` payload of an OpenAI stream.
fn parse_payload(data: &str, endpoint: Endpoint) -> Result<Payload, EngineError> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(Payload::Done);
    }
    let value: Value = serde_json::from_str(data).map_err(|e| {
        EngineError::Upstream(format!(
            "the upstream sent an event that is not JSON ({e}): {}",
            quote(data)
        ))
    })?;
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        return Err(EngineError::Upstream(format!(
            "the upstream failed mid-stream: {}",
            error_text(error)
        )));
    }
    let choice = value.get("choices").and_then(|c| c.get(0));
    let content = choice
        .and_then(|c| match endpoint {
            Endpoint::Chat => c.get("delta").and_then(|d| d.get("content")),
            Endpoint::Completions => c.get("text"),
        })
        .and_then(Value::as_str)
        .map(str::to_string);
    let finish_reason = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let usage = value.get("usage").filter(|u| u.is_object()).map(|u| Usage {
        prompt_tokens: count(u, "prompt_tokens"),
        completion_tokens: count(u, "completion_tokens"),
        cached_prompt_tokens: u
            .get("prompt_tokens_details")
            .map_or(0, |d| count(d, "cached_tokens")),
    });
    Ok(Payload::Chunk(Chunk {
        content,
        finish_reason,
        usage,
    }))
}

fn count(usage: &Value, field: &str) -> usize {
    usage.get(field).and_then(Value::as_u64).unwrap_or(0) as usize
}

/// The message inside an OpenAI `error` value: `{"message": ..}` or a bare string.
fn error_text(error: &Value) -> String {
    match error {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("message").and_then(Value::as_str) {
            Some(message) => message.to_string(),
            None => error.to_string(),
        },
        other => other.to_string(),
    }
}

/// The message for a non-2xx answer: the upstream's own words when it sent an OpenAI-shaped
/// error, otherwise the start of its body.
fn status_error(url: &str, status: &str, body: &str) -> String {
    let detail = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").filter(|e| !e.is_null()).map(error_text))
        .or_else(|| (!body.trim().is_empty()).then(|| quote(body.trim())));
    match detail {
        Some(detail) => format!("{url} returned HTTP {status}: {detail}"),
        None => format!("{url} returned HTTP {status}"),
    }
}

/// The message when the request could not be sent at all.
fn send_error(base_url: &str, url: &str, error: &reqwest::Error) -> EngineError {
    EngineError::Upstream(if error.is_connect() || error.is_timeout() {
        // The innermost cause ("Connection refused (os error 111)") is the useful part.
        format!(
            "cannot connect to the upstream at {base_url}: {}; is the server running?",
            root_cause(error)
        )
    } else {
        format!("request to {url} failed: {}", error_chain(error))
    })
}

/// The innermost error in a chain.
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut inner = error;
    while let Some(cause) = inner.source() {
        inner = cause;
    }
    inner.to_string()
}

/// An error with its causes, innermost last ("error sending request: connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// At most [`QUOTE_LIMIT`] characters of `text`, marked when cut.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(parser: &mut SseParser, pieces: &[&[u8]]) -> Vec<String> {
        pieces.iter().flat_map(|p| parser.push(p)).collect()
    }

    #[test]
    fn a_data_line_split_across_chunks_is_reassembled() {
        let mut parser = SseParser::default();
        let events = feed(&mut parser, &[b"da", b"ta: {\"a\"", b":1}", b"\n", b"\n"]);
        assert_eq!(events, vec![r#"{"a":1}"#.to_string()]);
    }

    #[test]
    fn a_multibyte_character_split_across_chunks_survives() {
        let bytes = "data: {\"t\":\"é🔥\"}\n\n".as_bytes();
        // Cut inside the 4-byte emoji.
        let cut = bytes.iter().position(|&b| b == 0xF0).unwrap() + 2;
        let mut parser = SseParser::default();
        let events = feed(&mut parser, &[&bytes[..cut], &bytes[cut..]]);
        assert_eq!(events, vec!["{\"t\":\"é🔥\"}".to_string()]);
    }

    #[test]
    fn several_events_in_one_chunk_come_out_in_order() {
        let mut parser = SseParser::default();
        let events = parser.push(b"data: 1\n\ndata: 2\r\n\r\n: comment\n\ndata: [DONE]\n\ndata: 4");
        assert_eq!(events, vec!["1", "2", "[DONE]"]);
        assert_eq!(parser.finish().as_deref(), Some("4"));
        assert_eq!(parser.finish(), None);
    }

    #[test]
    fn a_blank_line_split_between_chunks_still_ends_the_event() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"data: x\n").is_empty());
        assert_eq!(parser.push(b"\ndata: y\n\n"), vec!["x", "y"]);
    }

    #[test]
    fn multi_line_data_and_other_fields() {
        let mut parser = SseParser::default();
        let events = parser.push(b"event: message\nid: 7\ndata: a\ndata:b\nretry: 5\n\n");
        assert_eq!(events, vec!["a\nb"]);
    }

    #[test]
    fn done_marker() {
        assert_eq!(
            parse_payload("[DONE]", Endpoint::Chat).unwrap(),
            Payload::Done
        );
    }

    #[test]
    fn chat_chunks_carry_content_finish_and_usage() {
        let chunk = r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}"#;
        assert_eq!(
            parse_payload(chunk, Endpoint::Chat).unwrap(),
            Payload::Chunk(Chunk {
                content: Some("Hi".into()),
                ..Chunk::default()
            })
        );
        let last = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#;
        assert_eq!(
            parse_payload(last, Endpoint::Chat).unwrap(),
            Payload::Chunk(Chunk {
                finish_reason: Some("length".into()),
                ..Chunk::default()
            })
        );
        let usage =
            r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#;
        assert_eq!(
            parse_payload(usage, Endpoint::Chat).unwrap(),
            Payload::Chunk(Chunk {
                usage: Some(Usage {
                    prompt_tokens: 9,
                    completion_tokens: 3,
                    ..Usage::default()
                }),
                ..Chunk::default()
            })
        );
    }

    #[test]
    fn completion_chunks_carry_text() {
        let chunk = r#"{"object":"text_completion","choices":[{"index":0,"text":" world","finish_reason":"stop"}]}"#;
        assert_eq!(
            parse_payload(chunk, Endpoint::Completions).unwrap(),
            Payload::Chunk(Chunk {
                content: Some(" world".into()),
                finish_reason: Some("stop".into()),
                usage: None,
            })
        );
    }

    #[test]
    fn error_payloads_become_upstream_errors() {
        let shaped = r#"{"error":{"message":"out of memory","type":"server_error","code":null}}"#;
        match parse_payload(shaped, Endpoint::Chat) {
            Err(EngineError::Upstream(m)) => assert!(m.contains("out of memory"), "{m}"),
            other => panic!("expected an upstream error, got {other:?}"),
        }
        match parse_payload(r#"{"error":"boom"}"#, Endpoint::Completions) {
            Err(EngineError::Upstream(m)) => assert!(m.contains("boom"), "{m}"),
            other => panic!("expected an upstream error, got {other:?}"),
        }
        match parse_payload("not json", Endpoint::Chat) {
            Err(EngineError::Upstream(m)) => assert!(m.contains("not json"), "{m}"),
            other => panic!("expected an upstream error, got {other:?}"),
        }
    }

    #[test]
    fn status_errors_quote_the_upstream() {
        let body = r#"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error"}}"#;
        let m = status_error("http://h/v1/chat/completions", "404 Not Found", body);
        assert_eq!(
            m,
            "http://h/v1/chat/completions returned HTTP 404 Not Found: The model `x` does not exist"
        );
        let m = status_error("u", "502 Bad Gateway", "<html>bad gateway</html>");
        assert!(m.ends_with("<html>bad gateway</html>"), "{m}");
        assert_eq!(status_error("u", "500", " "), "u returned HTTP 500");
        let long = "x".repeat(QUOTE_LIMIT * 2);
        assert!(status_error("u", "500", &long).chars().count() < QUOTE_LIMIT + 40);
    }

    #[test]
    fn request_bodies_follow_the_openai_api() {
        let request = GenerateRequest {
            prompt: Prompt::Chat(vec![crate::engine::ChatMessage::new("user", "hi")]),
            sampling: SamplingParams::default(),
            tools: None,
        };
        let (endpoint, body) = request_body("m", &request);
        assert_eq!(endpoint, Endpoint::Chat);
        assert_eq!(
            body,
            json!({
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": true,
                "stream_options": {"include_usage": true},
                "temperature": 0.0,
                "top_p": 1.0,
            })
        );
        let request = GenerateRequest {
            prompt: Prompt::Text("once".into()),
            sampling: SamplingParams {
                top_k: 40,
                seed: Some(7),
                max_tokens: Some(16),
                stop: vec!["\n".into()],
                ignore_eos: true,
                response_format: Some(json!({"type": "json_object"})),
                ..SamplingParams::default()
            },
            tools: None,
        };
        let (endpoint, body) = request_body("m", &request);
        assert_eq!(endpoint, Endpoint::Completions);
        assert_eq!(body["prompt"], "once");
        assert_eq!(body["top_k"], 40);
        assert_eq!(body["seed"], 7);
        assert_eq!(body["max_tokens"], 16);
        assert_eq!(body["stop"], json!(["\n"]));
        assert_eq!(body["ignore_eos"], true);
        assert_eq!(body["response_format"], json!({"type": "json_object"}));
    }

    #[test]
    fn completion_falls_back_to_counting_chunks() {
        let (tx, _stream) = EventStream::channel();
        let mut tally = Tally::new(Instant::now());
        for piece in ["a", "", "b", "c"] {
            tally.apply(
                Payload::Chunk(Chunk {
                    content: Some(piece.into()),
                    ..Chunk::default()
                }),
                &tx,
            );
        }
        let done = tally.completion("t");
        assert_eq!(
            done.usage,
            Usage {
                prompt_tokens: 0,
                completion_tokens: 3,
                ..Usage::default()
            }
        );
        assert_eq!(done.finish_reason, FinishReason::Stop);
        assert_eq!(done.timings.prompt_ms, done.timings.ttft_ms);
    }
}
