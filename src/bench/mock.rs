//! A scripted OpenAI-compatible server on loopback: each model answers with known delays
//! (time to first token, gap between tokens), with or without a role chunk and usage, or
//! fails, hangs, or serves one request at a time. The benchmark calibrates its client against
//! it (`hearth bench --calibrate`), and the tests check every metric against its script.
//!
//! It logs, per request, when it received the request and when it wrote the first token, on
//! the process's monotonic clock, so a caller in the same process can compare what the client
//! measured with what the server did.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use tokio::sync::mpsc;

use crate::openai::{self, sse, ErrorBody, ErrorDetail};

/// How one mock model answers.
#[derive(Clone, Debug)]
pub struct MockScript {
    /// From receiving the request to writing the first content token.
    pub ttft: Duration,
    /// Between content tokens.
    pub itl: Duration,
    /// Content tokens per answer (capped by the request's `max_tokens`).
    pub tokens: u32,
    /// Send a role-only chunk at once, before the first token (as OpenAI and hearth do).
    pub role_chunk: bool,
    /// Send `usage` (when the request asks for it).
    pub usage: bool,
    /// Answer every request with this HTTP status and an OpenAI error body.
    pub fail_status: Option<u16>,
    /// Accept the request and never answer.
    pub hang: bool,
    /// Close a streamed answer's connection after this many content tokens, with no
    /// `finish_reason`, usage or `[DONE]`: a server dying mid-answer.
    pub cut_after: Option<u32>,
    /// Serve at most this many requests at once, the others waiting in arrival order: a
    /// server with a known capacity (`Some(1)`: one at a time).
    pub slots: Option<u32>,
    /// Offer llama-server's `/tokenize` for this model (counts whitespace-separated words).
    pub tokenize: bool,
    /// Whole (non-streamed) answers, in order: the n-th request to this model gets the n-th
    /// reply, the last one repeating (a scripted judge). Empty: `tok tok …`.
    pub replies: Vec<String>,
    /// A machine that drifts: the time to first token and between tokens are multiplied by
    /// `drift[k / drift_every % len]` for this model's k-th request (0-based, the load check
    /// included), so models given the same drift and request counts slow down alike, round
    /// by round. Empty: no drift.
    pub drift: Vec<f64>,
    /// Requests per drift step (see `drift`).
    pub drift_every: u32,
}

impl Default for MockScript {
    fn default() -> Self {
        Self {
            ttft: Duration::from_millis(20),
            itl: Duration::from_millis(5),
            tokens: 8,
            role_chunk: true,
            usage: true,
            fail_status: None,
            hang: false,
            cut_after: None,
            slots: None,
            tokenize: false,
            replies: Vec::new(),
            drift: Vec::new(),
            drift_every: 1,
        }
    }
}

/// What the mock did for one request.
#[derive(Clone, Debug)]
pub struct MockLogEntry {
    /// The model asked for.
    pub model: String,
    /// The last user message.
    pub prompt: String,
    /// When the request was received (body read).
    pub received: Instant,
    /// When its first content token was written, if it was.
    pub first_token: Option<Instant>,
}

struct MockState {
    scripts: HashMap<String, MockScript>,
    replies_served: Mutex<HashMap<String, usize>>,
    /// Requests received per model, for the scripted drift.
    received: Mutex<HashMap<String, u64>>,
    slots: HashMap<String, Arc<tokio::sync::Semaphore>>,
    log: Arc<Mutex<Vec<MockLogEntry>>>,
    served: AtomicU64,
}

/// A running mock server, on a thread and runtime of its own (as a real server would be in a
/// process of its own), so its work never delays the client it measures.
pub struct MockServer {
    /// Base URL ending in `/v1`.
    pub base_url: String,
    log: Arc<Mutex<Vec<MockLogEntry>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl MockServer {
    /// Starts on 127.0.0.1 on a free port, serving `scripts` by model name.
    pub async fn start(scripts: HashMap<String, MockScript>) -> std::io::Result<Self> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let slots = scripts
            .iter()
            .map(|(k, s)| {
                let n = s
                    .slots
                    .map_or(tokio::sync::Semaphore::MAX_PERMITS, |n| n.max(1) as usize);
                (k.clone(), Arc::new(tokio::sync::Semaphore::new(n)))
            })
            .collect();
        let state = Arc::new(MockState {
            scripts,
            replies_served: Mutex::new(HashMap::new()),
            received: Mutex::new(HashMap::new()),
            slots,
            log: log.clone(),
            served: AtomicU64::new(0),
        });
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<std::io::Result<SocketAddr>>();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("mock-server".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("mock-server")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let bound =
                        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await;
                    let listener = match bound.and_then(|l| l.local_addr().map(|a| (l, a))) {
                        Ok((listener, addr)) => {
                            let _ = ready_tx.send(Ok(addr));
                            listener
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let app = Router::new()
                        .route("/v1/chat/completions", post(chat))
                        .route("/v1/models", get(models))
                        .route("/tokenize", post(tokenize))
                        .route("/metrics", get(metrics))
                        .with_state(state);
                    // As real servers should: each streamed chunk leaves at once (no Nagle).
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    // Stop at once when dropped, hanging streams included.
                    tokio::select! {
                        _ = axum::serve(listener, app).into_future() => {}
                        _ = stop => {}
                    }
                });
                // Streams still open (a hanging script) are dropped with the runtime.
                runtime.shutdown_background();
            })?;
        let addr = ready_rx
            .await
            .map_err(|_| std::io::Error::other("the mock server thread died"))??;
        Ok(Self {
            base_url: format!("http://{addr}/v1"),
            log,
            shutdown: Some(shutdown),
        })
    }

    /// Everything served so far.
    pub fn log(&self) -> Vec<MockLogEntry> {
        self.log.lock().expect("mock log").clone()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn models(State(state): State<Arc<MockState>>) -> Json<openai::ModelList> {
    let data = state
        .scripts
        .keys()
        .map(|id| openai::Model::new(id, 0, "mock", None))
        .collect();
    Json(openai::ModelList::new(data))
}

async fn tokenize(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let request: openai::TokenizeRequest = serde_json::from_slice(&body).unwrap_or_default();
    match state.scripts.get(&request.model) {
        Some(script) if script.tokenize => {
            let tokens = (0..request.content.split_whitespace().count() as i32).collect();
            Json(openai::TokenizeResponse { tokens }).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "no tokenizer"),
    }
}

async fn metrics(State(state): State<Arc<MockState>>) -> String {
    let served = state.served.load(Ordering::Relaxed);
    format!("# TYPE mock_served counter\nmock_served_total {served}\n")
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = ErrorBody::from(ErrorDetail {
        message: message.into(),
        kind: "mock_error".into(),
        param: None,
        code: None,
    });
    (status, Json(body)).into_response()
}

async fn chat(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let received = Instant::now();
    let Ok(request) = openai::read::<openai::ChatCompletionRequest>(&body) else {
        return error(StatusCode::BAD_REQUEST, "malformed JSON");
    };
    let model = request.model.clone();
    let Some(mut script) = state.scripts.get(&model).cloned() else {
        return error(StatusCode::NOT_FOUND, &format!("no model {model}"));
    };
    let k = {
        let mut received = state.received.lock().expect("mock counts");
        let k = received.entry(model.clone()).or_default();
        *k += 1;
        *k - 1
    };
    if !script.drift.is_empty() {
        let step = k / u64::from(script.drift_every.max(1));
        let factor = script.drift[(step % script.drift.len() as u64) as usize];
        script.ttft = script.ttft.mul_f64(factor);
        script.itl = script.itl.mul_f64(factor);
    }
    let prompt = request
        .messages
        .last()
        .map(|m| m.content.clone())
        .unwrap_or_default();
    let prompt_words = prompt.split_whitespace().count() as u64;
    let index = {
        let mut log = state.log.lock().expect("mock log");
        log.push(MockLogEntry {
            model: model.clone(),
            prompt,
            received,
            first_token: None,
        });
        log.len() - 1
    };
    if let Some(status) = script.fail_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error(status, "scripted failure");
    }
    if script.hang {
        std::future::pending::<()>().await;
    }
    let stream = request.params.stream;
    let include_usage = request
        .params
        .stream_options
        .is_some_and(|o| o.include_usage);
    let n = request
        .params
        .max_tokens
        .map_or(script.tokens, |m| script.tokens.min(m as u32));
    let slots = state.slots.get(&model).cloned().expect("mock slots");
    let log = state.log.clone();
    if !stream {
        let _turn = slots.acquire_owned().await.expect("open semaphore");
        let start = Instant::now();
        tokio::time::sleep_until((start + script.ttft + script.itl * n.saturating_sub(1)).into())
            .await;
        log.lock().expect("mock log")[index].first_token = Some(Instant::now());
        state.served.fetch_add(1, Ordering::Relaxed);
        let content = if script.replies.is_empty() {
            words(n)
        } else {
            let mut served = state.replies_served.lock().expect("mock replies");
            let k = served.entry(model.clone()).or_default();
            let reply = script.replies[(*k).min(script.replies.len() - 1)].clone();
            *k += 1;
            reply
        };
        let choice = openai::ChatChoice {
            message: openai::ResponseMessage {
                content: Some(content),
                ..openai::ResponseMessage::default()
            },
            finish_reason: Some(openai::FinishReason::Length),
            ..openai::ChatChoice::default()
        };
        let mut body = envelope(&model, "chat.completion", vec![choice]);
        if script.usage {
            body.usage = Some(usage(prompt_words, n));
        }
        return Json(body).into_response();
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let chunk = |delta: openai::Delta, finish: Option<openai::FinishReason>| {
        let choice = openai::ChunkChoice {
            delta,
            finish_reason: finish,
            ..openai::ChunkChoice::default()
        };
        Bytes::from(sse::frame(&envelope(
            &model,
            "chat.completion.chunk",
            vec![choice],
        )))
    };
    let role = chunk(
        openai::Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            ..openai::Delta::default()
        },
        None,
    );
    let token = chunk(
        openai::Delta {
            content: Some("tok ".into()),
            ..openai::Delta::default()
        },
        None,
    );
    let finish = chunk(openai::Delta::default(), Some(openai::FinishReason::Length));
    let mut usage_only = envelope::<openai::ChunkChoice>(&model, "chat.completion.chunk", vec![]);
    usage_only.usage = Some(usage(prompt_words, n));
    let usage = Bytes::from(sse::frame(&usage_only));
    let state2 = state.clone();
    tokio::spawn(async move {
        let _turn = slots.acquire_owned().await.expect("open semaphore");
        let start = Instant::now();
        if script.role_chunk && tx.send(Ok(role)).await.is_err() {
            return;
        }
        for i in 0..n {
            let due = start + script.ttft + script.itl * i;
            tokio::time::sleep_until(due.into()).await;
            if i == 0 {
                log.lock().expect("mock log")[index].first_token = Some(Instant::now());
            }
            if tx.send(Ok(token.clone())).await.is_err() {
                return;
            }
            if script.cut_after == Some(i + 1) {
                return;
            }
        }
        let _ = tx.send(Ok(finish)).await;
        if script.usage && include_usage {
            let _ = tx.send(Ok(usage)).await;
        }
        let _ = tx
            .send(Ok(Bytes::from_static(sse::DONE_FRAME.as_bytes())))
            .await;
        state2.served.fetch_add(1, Ordering::Relaxed);
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .expect("valid response")
}

/// The mock's answer or chunk: a fixed id and time, no fingerprint.
fn envelope<C>(model: &str, object: &str, choices: Vec<C>) -> openai::Response<C> {
    openai::Response {
        id: "mock".into(),
        object: object.into(),
        created: 0,
        model: model.into(),
        system_fingerprint: None,
        choices,
        usage: None,
        timings: None,
        error: None,
    }
}

/// The scripted counts: a prompt token per word of the last message (as its `/tokenize`
/// counts), `n` generated.
fn usage(prompt: u64, n: u32) -> openai::Usage {
    let n = u64::from(n);
    openai::Usage {
        prompt_tokens: Some(prompt),
        completion_tokens: Some(n),
        total_tokens: Some(prompt + n),
        prompt_tokens_details: None,
    }
}

fn words(n: u32) -> String {
    vec!["tok"; n as usize].join(" ")
}
