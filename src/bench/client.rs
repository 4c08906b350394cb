//! The measuring client: sends one OpenAI chat completion and records raw instants on the
//! level's monotonic clock — scheduled start, send, first byte, first chunk, first content
//! token, every content chunk, end — plus usage and the server's own timings.
//!
//! What it deliberately gets right (and common scripts get wrong): a role-only first chunk is
//! not a token; the clock starts at the *scheduled* start, not at the send; token counts come
//! from `usage` and say so, with content chunks counted beside them as a cross-check.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::error_chain::error_chain;
use crate::openai::sse::{SseEvent, SseParser};
use crate::openai::{self, ErrorBody};
use crate::store::record::{RequestRecord, RequestStatus, TokenSource};

/// One level's time origin: every instant of every request in the level is measured from here.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// A clock starting at `origin`.
    pub fn at(origin: Instant) -> Self {
        Self { origin }
    }

    /// The origin.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Milliseconds from the origin to `t` (negative if `t` is earlier).
    pub fn ms(&self, t: Instant) -> f64 {
        match t.checked_duration_since(self.origin) {
            Some(d) => d.as_secs_f64() * 1000.0,
            None => -(self.origin.duration_since(t).as_secs_f64() * 1000.0),
        }
    }

    /// Milliseconds from the origin to now.
    pub fn now_ms(&self) -> f64 {
        self.ms(Instant::now())
    }
}

/// Where and how requests are sent.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Base URL ending in `/v1`.
    pub base_url: String,
    /// Model name sent in each request.
    pub model: String,
    /// Bearer key, when the server wants one.
    pub api_key: Option<String>,
}

/// Sampling and shape of every request, the same for every runtime measured.
#[derive(Clone, Debug)]
pub struct RequestParams {
    /// Stream the answer (SSE) or take it whole.
    pub stream: bool,
    /// Sampling temperature (0 = greedy: deterministic and comparable).
    pub temperature: f32,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// Ask the server to generate exactly `max_tokens` (servers that ignore it still count).
    pub ignore_eos: bool,
    /// Give up on a request after this long.
    pub timeout: Duration,
}

/// One request to make.
#[derive(Clone, Debug)]
pub struct Job {
    /// Prompt id in the prompt set.
    pub prompt_id: String,
    /// The cold-cache nonce sent before the prompt (`(ref …) `), so no request is answered
    /// from the cache of another; empty when prompts may repeat.
    pub nonce: String,
    /// The user message after the nonce: the prompt set's text, or generated filler, behind
    /// any depth context.
    pub prompt: String,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Round (0 = warm-up).
    pub round: u32,
    /// Order within the level.
    pub seq: u32,
    /// OpenAI `response_format` to send (the prompt's structured output), if any.
    pub response_format: Option<Value>,
}

/// The chat completion request for `job`.
pub fn request_body(
    endpoint: &Endpoint,
    params: &RequestParams,
    job: &Job,
) -> openai::ChatCompletionRequest {
    openai::ChatCompletionRequest {
        model: endpoint.model.clone(),
        messages: vec![openai::RequestMessage::new(
            "user",
            format!("{}{}", job.nonce, job.prompt),
        )],
        params: openai::RequestParams {
            max_tokens: Some(job.max_tokens.into()),
            temperature: Some(params.temperature),
            stream: params.stream,
            seed: params.seed,
            stream_options: params.stream.then_some(openai::StreamOptions {
                include_usage: true,
            }),
            ignore_eos: params.ignore_eos,
            response_format: job.response_format.clone(),
            ..openai::RequestParams::default()
        },
    }
}

/// Sends `job` and records it. `scheduled` is when the load shape meant it to start; the send
/// happens now. Never fails: a failure is a record with an error status.
pub async fn execute(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    params: &RequestParams,
    job: &Job,
    clock: Clock,
    scheduled: Instant,
    level: &str,
) -> RequestRecord {
    let mut record = unsent_record(&endpoint.model, level, job, clock.ms(scheduled));
    let body = request_body(endpoint, params, job);
    let exchange = exchange(http, endpoint, params, &body, clock, &mut record);
    match tokio::time::timeout(params.timeout, exchange).await {
        Ok(Ok(())) => record.status = RequestStatus::Ok,
        Ok(Err(message)) => {
            record.status = RequestStatus::Error;
            record.error = Some(message);
        }
        Err(_) => {
            record.status = RequestStatus::Timeout;
            record.error = Some(format!(
                "no complete answer within {:.0} s",
                params.timeout.as_secs_f64()
            ));
        }
    }
    if record.end_ms.is_none() {
        record.end_ms = Some(clock.now_ms());
    }
    settle_token_counts(&mut record, params.stream);
    record
}

/// A request as known before it is sent: scheduled, nothing measured yet, failed until an
/// answer says otherwise.
fn unsent_record(model: &str, level: &str, job: &Job, scheduled_ms: f64) -> RequestRecord {
    RequestRecord {
        model: model.to_string(),
        level: level.to_string(),
        round: job.round,
        seq: job.seq,
        prompt_id: job.prompt_id.clone(),
        scheduled_ms,
        sent_ms: None,
        first_byte_ms: None,
        first_chunk_ms: None,
        first_token_ms: None,
        end_ms: None,
        chunk_ms: Vec::new(),
        status: RequestStatus::Error,
        http_status: None,
        error: None,
        prompt_tokens: None,
        completion_tokens: None,
        cached_tokens: None,
        token_source: TokenSource::Chunks,
        counted_completion_tokens: None,
        server_timings: None,
        output: String::new(),
    }
}

/// The HTTP exchange itself; fills `record` as instants happen.
async fn exchange(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    params: &RequestParams,
    body: &openai::ChatCompletionRequest,
    clock: Clock,
    record: &mut RequestRecord,
) -> Result<(), String> {
    let url = format!(
        "{}/chat/completions",
        endpoint.base_url.trim_end_matches('/')
    );
    let mut request = http.post(&url).json(body);
    if let Some(key) = &endpoint.api_key {
        request = request.bearer_auth(key);
    }
    let again = request.try_clone();
    record.sent_ms = Some(clock.now_ms());
    let response = match (request.send().await, again) {
        (Ok(response), _) => response,
        // No response at all, typically a pooled keep-alive connection the server closed
        // just as it was reused (llama-server does): the request never reached the server.
        // Send it once more on a fresh connection, as OpenAI's own client would; the time
        // lost stays in the latency, which is measured from the scheduled start.
        (Err(first), Some(again)) if !first.is_timeout() => {
            tracing::debug!(
                "resending after a connection error: {}",
                error_chain(&first)
            );
            record.sent_ms = Some(clock.now_ms());
            again
                .send()
                .await
                .map_err(|e| format!("cannot reach {url}: {}", error_chain(&e)))?
        }
        (Err(e), _) => return Err(format!("cannot reach {url}: {}", error_chain(&e))),
    };
    record.first_byte_ms = Some(clock.now_ms());
    let status = response.status();
    record.http_status = Some(status.as_u16());
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        record.end_ms = Some(clock.now_ms());
        let message = ErrorBody::read(&text)
            .and_then(|e| e.message().map(str::to_string))
            .unwrap_or_else(|| text.chars().take(300).collect());
        return Err(format!("HTTP {status}: {message}"));
    }
    if !params.stream {
        let bytes = response.bytes().await.map_err(|e| error_chain(&e))?;
        let now = clock.now_ms();
        record.first_chunk_ms = Some(now);
        record.end_ms = Some(now);
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("response is not JSON: {e}"))?;
        let reply: openai::ChatCompletion = openai::read_value(&value);
        if let Some(message) = reply.error.as_ref().and_then(|e| e.message()) {
            return Err(message.to_string());
        }
        let message = reply.choices.into_iter().next().map(|c| c.message);
        record.output = message.and_then(|m| m.content).unwrap_or_default();
        take_usage(record, reply.usage);
        take_timings(record, &value);
        return Ok(());
    }
    let mut sse = SseParser::default();
    let mut stream = response.bytes_stream();
    // When the last network chunk arrived: the instant of an event the body's end completes.
    let mut last = None;
    // Whether a chunk said why generation stopped (`finish_reason`).
    let mut finished = false;
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| format!("stream broken: {}", error_chain(&e)))?;
        let now = clock.now_ms();
        last = Some(now);
        record.first_chunk_ms.get_or_insert(now);
        for event in sse.push(&piece) {
            if take_event(record, event, now, clock, &mut finished)? {
                return Ok(());
            }
        }
    }
    // A last event whose closing blank line never came.
    if let (Some(event), Some(now)) = (sse.finish(), last) {
        if take_event(record, event, now, clock, &mut finished)? {
            return Ok(());
        }
    }
    record.end_ms = Some(clock.now_ms());
    // A server that closes the stream without `[DONE]` but said why it stopped (or sent the
    // final usage) is still complete: some servers omit the terminator. One that just stops
    // mid-answer died: its tokens so far stay in the record's output, for inspection, but it
    // is a failed request, never a short success.
    if finished || record.completion_tokens.is_some() {
        return Ok(());
    }
    if record.chunk_ms.is_empty() {
        return Err("stream ended before any content or [DONE]".into());
    }
    Err(format!(
        "stream ended early: the connection closed after {} content chunks with no finish_reason and no [DONE]",
        record.chunk_ms.len()
    ))
}

/// Folds one server-sent event, its bytes arrived at `now` ms, into the record; `true` at
/// `[DONE]` (the end, timed when it is read).
fn take_event(
    record: &mut RequestRecord,
    event: SseEvent,
    now: f64,
    clock: Clock,
    finished: &mut bool,
) -> Result<bool, String> {
    let data = match event {
        SseEvent::Done => {
            record.end_ms = Some(clock.now_ms());
            return Ok(true);
        }
        SseEvent::Data(data) => data,
    };
    let value: Value = serde_json::from_str(&data)
        .map_err(|_| format!("malformed SSE data: {}", crate::text::clip(&data, 200)))?;
    *finished |= apply_chunk(record, &value, now)?;
    Ok(false)
}

/// Folds one streamed JSON chunk into the record, arrived at `now` ms; true when the chunk
/// says why generation stopped.
fn apply_chunk(record: &mut RequestRecord, value: &Value, now: f64) -> Result<bool, String> {
    let chunk: openai::ChatCompletionChunk = openai::read_value(value);
    if let Some(error) = &chunk.error {
        let message = error.message().unwrap_or("error event in stream");
        return Err(message.to_string());
    }
    let mut finish = false;
    if let Some(choice) = chunk.choices.into_iter().next() {
        finish = choice.finish_reason.is_some();
        let delta = choice.delta;
        let content = delta.content.or(choice.text).unwrap_or_default();
        // Reasoning models stream their thinking apart from the answer; those are generated
        // tokens too, so they end the wait for the first token.
        let reasoning = delta
            .reasoning_content
            .or(delta.reasoning)
            .unwrap_or_default();
        if !content.is_empty() || !reasoning.is_empty() {
            record.first_token_ms.get_or_insert(now);
            record.chunk_ms.push(now);
            record.output.push_str(&content);
        }
    }
    take_usage(record, chunk.usage);
    take_timings(record, value);
    Ok(finish)
}

fn take_usage(record: &mut RequestRecord, usage: Option<openai::Usage>) {
    if let Some(usage) = usage {
        record.prompt_tokens = usage.prompt_tokens;
        record.completion_tokens = usage.completion_tokens;
        record.cached_tokens = usage.prompt_tokens_details.and_then(|d| d.cached_tokens);
        if record.completion_tokens.is_some() {
            record.token_source = TokenSource::Usage;
        }
    }
}

/// The server's own `timings`, stored verbatim: each server has its own fields (llama-server's
/// `cache_n`, hearth's `draft_n`…), and the report reads them from the store.
fn take_timings(record: &mut RequestRecord, value: &Value) {
    if let Some(timings) = value.get("timings").filter(|t| t.is_object()) {
        record.server_timings = Some(timings.clone());
    }
}

/// Token counts: `usage` when the server sent it, otherwise the content chunks (one token per
/// chunk, which is how every streaming server we know sends them). With both, the chunk count
/// is kept beside usage so that disagreements can be counted.
fn settle_token_counts(record: &mut RequestRecord, stream: bool) {
    let chunks = stream.then_some(record.chunk_ms.len() as u64);
    match record.token_source {
        TokenSource::Usage => record.counted_completion_tokens = chunks,
        TokenSource::Chunks | TokenSource::Tokenizer => {
            if record.status == RequestStatus::Ok {
                record.completion_tokens = chunks;
            }
        }
    }
}

/// Replaces chunk-counted completion tokens with a count from the model's own tokenizer, for
/// local models whose server sent no usage.
pub fn count_with_tokenizer(record: &mut RequestRecord, count: impl Fn(&str) -> Option<u64>) {
    if record.token_source != TokenSource::Usage && record.status == RequestStatus::Ok {
        if let Some(n) = count(&record.output) {
            record.counted_completion_tokens = record.completion_tokens;
            record.completion_tokens = Some(n);
            record.token_source = TokenSource::Tokenizer;
        }
    }
}

/// The `/tokenize` URL next to a `/v1` base (hearth's and llama-server's).
fn tokenize_url(endpoint: &Endpoint) -> String {
    format!("{}/tokenize", openai::server_root(&endpoint.base_url))
}

/// Tokens in `text` by the served model's own tokenizer, when the server offers `/tokenize`.
pub async fn tokenizer_count(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    text: &str,
) -> Option<u64> {
    let mut request = http
        .post(tokenize_url(endpoint))
        .json(&openai::TokenizeRequest {
            model: endpoint.model.clone(),
            content: text.to_string(),
            add_special: Some(false),
        })
        .timeout(Duration::from_secs(10));
    if let Some(key) = &endpoint.api_key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    // Only counted: llama-server may send `{"id", "piece"}` objects in place of ids.
    let reply: openai::TokenizeResponse<IgnoredAny> = response.json().await.ok()?;
    Some(reply.tokens.len() as u64)
}

/// Whether the server can count tokens for us (asked once per model).
pub async fn has_tokenizer(http: &reqwest::Client, endpoint: &Endpoint) -> bool {
    tokenizer_count(http, endpoint, "Hello")
        .await
        .is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_prompts_response_format_goes_into_the_body() {
        let endpoint = Endpoint {
            base_url: "http://x".into(),
            model: "m".into(),
            api_key: None,
        };
        let params = RequestParams {
            stream: false,
            temperature: 0.0,
            seed: None,
            ignore_eos: false,
            timeout: Duration::from_secs(1),
        };
        let mut job = blank_job();
        let body = |job: &Job| serde_json::to_value(request_body(&endpoint, &params, job)).unwrap();
        assert!(body(&job).get("response_format").is_none());
        job.response_format = Some(json!({"type": "json_object"}));
        let body = body(&job);
        assert_eq!(body["response_format"], json!({"type": "json_object"}));
    }

    fn blank_job() -> Job {
        Job {
            prompt_id: "p".into(),
            nonce: String::new(),
            prompt: String::new(),
            max_tokens: 1,
            round: 1,
            seq: 0,
            response_format: None,
        }
    }

    fn blank() -> RequestRecord {
        let mut record = unsent_record("m", "c=1", &blank_job(), 0.0);
        record.status = RequestStatus::Ok;
        record
    }

    #[test]
    fn role_chunk_is_not_a_token() {
        let mut r = blank();
        let role = json!({"choices":[{"delta":{"role":"assistant","content":""}}]});
        apply_chunk(&mut r, &role, 5.0).unwrap();
        assert_eq!(r.first_token_ms, None);
        apply_chunk(
            &mut r,
            &json!({"choices":[{"delta":{"content":"Hi"}}]}),
            9.0,
        )
        .unwrap();
        apply_chunk(
            &mut r,
            &json!({"choices":[{"delta":{"reasoning_content":"hm"}}]}),
            11.0,
        )
        .unwrap();
        assert_eq!(r.first_token_ms, Some(9.0));
        assert_eq!(r.chunk_ms, vec![9.0, 11.0]);
        assert_eq!(r.output, "Hi");
        let usage = json!({"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,
            "prompt_tokens_details":{"cached_tokens":3}}});
        apply_chunk(&mut r, &usage, 12.0).unwrap();
        settle_token_counts(&mut r, true);
        assert_eq!(r.token_source, TokenSource::Usage);
        assert_eq!(
            (r.prompt_tokens, r.completion_tokens, r.cached_tokens),
            (Some(7), Some(2), Some(3))
        );
        assert_eq!(r.counted_completion_tokens, Some(2));
        assert!(apply_chunk(&mut r, &json!({"error":{"message":"boom"}}), 13.0).is_err());
    }

    #[test]
    fn without_usage_chunks_are_counted_and_say_so() {
        let mut r = blank();
        for (i, t) in ["a", "b", "c"].iter().enumerate() {
            apply_chunk(
                &mut r,
                &json!({"choices":[{"delta":{"content":t}}]}),
                i as f64,
            )
            .unwrap();
        }
        settle_token_counts(&mut r, true);
        assert_eq!(r.token_source, TokenSource::Chunks);
        assert_eq!(r.completion_tokens, Some(3));
        count_with_tokenizer(&mut r, |text| Some(text.len() as u64 - 1));
        assert_eq!(r.token_source, TokenSource::Tokenizer);
        assert_eq!(r.completion_tokens, Some(2));
        assert_eq!(r.counted_completion_tokens, Some(3));
    }
}
