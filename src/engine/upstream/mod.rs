//! The upstream backend: a "custom adapter" that forwards generations to any OpenAI-compatible
//! server (Ollama, vLLM, llama-server, Foundry Local, another hearth…).
//!
//! A `models.json` entry with an `upstream` section is served through hearth's own API exactly
//! like a local model: each request becomes one streaming `POST {base_url}/chat/completions`
//! (or `/completions` for raw text), whose server-sent events are read with the shared wire
//! types (`crate::openai`) and turned into [`Event`]s as they arrive, so streaming is preserved
//! end to end. Token counts come from the upstream (it owns the tokenizer); timings are
//! measured here, so they include the network.
//! Dropping the [`EventStream`] aborts the HTTP request, which tells the upstream to stop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod errors;
mod request;
mod stream;

use futures::StreamExt;
use tokio::sync::mpsc::UnboundedSender;

use super::{
    Backend, Completion, EngineError, EngineStats, Event, EventStream, GenerateRequest, ModelFacts,
    Prompt,
};
use crate::catalog::Upstream;
use crate::error_chain::error_chain;
use crate::openai::sse::SseParser;
use errors::{send_error, status_error};
use request::request_body;
use stream::{parse_payload, Tally};

/// How long to wait for the upstream to accept a connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
        let api_key = upstream
            .api_key()
            .map_err(|e| EngineError::Load(format!("{alias}: {e}")))?;
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
                template: None,
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
            if let Some(event) = parser.finish() {
                done = tally.apply(parse_payload(event, job.endpoint)?, events);
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
        for event in parser.push(&chunk) {
            if tally.apply(parse_payload(event, job.endpoint)?, events) {
                done = true;
                break;
            }
        }
    }
    if !done && !tally.finished() {
        return Err(EngineError::Upstream(format!(
            "{} closed the stream before the generation finished",
            job.url
        )));
    }
    Ok(tally.completion(&job.alias))
}
