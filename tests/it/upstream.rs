//! The upstream adapter against a mock OpenAI server on 127.0.0.1: streamed text and usage,
//! the exact request body, the completions endpoint, OpenAI-shaped errors, connection
//! failures, and cancellation reaching the upstream.

use std::convert::Infallible;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tokio_stream::wrappers::ReceiverStream;

use hearth::catalog::Upstream;
use hearth::engine::upstream::UpstreamBackend;
use hearth::engine::{
    Backend, ChatMessage, Completion, EngineError, Event, EventStream, FinishReason,
    GenerateRequest, Prompt, SamplingParams, Usage,
};

/// Upper bound on any wait, so a broken adapter fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(20);

/// What the mock answers to every request.
#[derive(Clone)]
enum Reply {
    /// `200 text/event-stream` with these raw frames, then the end of the body.
    Stream(Vec<Vec<u8>>),
    /// These frames, then the body stays open until the client leaves (reported then).
    StreamThenHold(Vec<Vec<u8>>),
    /// This status with this JSON body.
    Status(u16, Value),
}

/// One request as the mock saw it.
#[derive(Debug)]
struct Recorded {
    path: String,
    authorization: Option<String>,
    body: Value,
}

#[derive(Clone)]
struct MockState {
    reply: Reply,
    requests: std_mpsc::Sender<Recorded>,
    disconnected: std_mpsc::Sender<()>,
}

/// A mock OpenAI server running on its own runtime, which the backend shares.
struct Mock {
    runtime: Runtime,
    base_url: String,
    requests: std_mpsc::Receiver<Recorded>,
    disconnected: std_mpsc::Receiver<()>,
}

impl Mock {
    fn start(reply: Reply) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (requests_tx, requests) = std_mpsc::channel();
        let (disconnected_tx, disconnected) = std_mpsc::channel();
        let state = MockState {
            reply,
            requests: requests_tx,
            disconnected: disconnected_tx,
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(handle))
            .route("/v1/completions", post(handle))
            .with_state(state);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self {
            runtime,
            base_url: format!("http://{addr}/v1"),
            requests,
            disconnected,
        }
    }

    fn backend(&self, api_key_env: Option<&str>) -> UpstreamBackend {
        UpstreamBackend::new(
            "mock",
            &Upstream {
                base_url: self.base_url.clone(),
                model: "mock-model".into(),
                api_key_env: api_key_env.map(str::to_string),
                pid: None,
                process: None,
            },
            self.runtime.handle().clone(),
        )
        .expect("the backend starts")
    }

    fn recorded(&self) -> Recorded {
        self.requests
            .recv_timeout(PATIENCE)
            .expect("the mock received a request")
    }

    fn next(&self, stream: &mut EventStream) -> Option<Event> {
        self.runtime
            .block_on(async { tokio::time::timeout(PATIENCE, stream.next()).await })
            .expect("an event arrives in time")
    }

    /// Every event until the stream ends; checks that exactly one Done/Error comes last.
    fn drain(&self, mut stream: EventStream) -> (Vec<String>, Result<Completion, EngineError>) {
        let mut tokens = Vec::new();
        loop {
            match self.next(&mut stream) {
                Some(Event::Token(t)) => tokens.push(t),
                Some(Event::Done(c)) => {
                    assert_eq!(self.next(&mut stream), None, "Done must be last");
                    return (tokens, Ok(c));
                }
                Some(Event::Error(e)) => {
                    assert_eq!(self.next(&mut stream), None, "Error must be last");
                    return (tokens, Err(e));
                }
                None => panic!("stream ended without Done or Error"),
            }
        }
    }
}

async fn handle(
    State(state): State<MockState>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let _ = state.requests.send(Recorded {
        path: uri.path().to_string(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().expect("ascii header").to_string()),
        body: serde_json::from_str(&body).expect("the request body is JSON"),
    });
    let (frames, hold) = match state.reply {
        Reply::Status(code, body) => {
            return Response::builder()
                .status(StatusCode::from_u16(code).expect("status"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .expect("response");
        }
        Reply::Stream(frames) => (frames, false),
        Reply::StreamThenHold(frames) => (frames, true),
    };
    // Capacity 1: each frame goes out on its own instead of being queued up front.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, Infallible>>(1);
    let disconnected = state.disconnected;
    tokio::spawn(async move {
        for frame in frames {
            if tx.send(Ok(frame)).await.is_err() {
                break;
            }
        }
        if hold {
            // The body's receiver is dropped when the client goes away.
            tx.closed().await;
            let _ = disconnected.send(());
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .expect("response")
}

/// One SSE event carrying `value`, exactly as OpenAI frames it.
fn event(value: &Value) -> String {
    format!("data: {value}\n\n")
}

fn chat_chunk(delta: Value, finish_reason: Option<&str>) -> String {
    event(&json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "mock-model",
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        "usage": null,
    }))
}

fn text_chunk(text: &str, finish_reason: Option<&str>) -> String {
    event(&json!({
        "id": "cmpl-mock",
        "object": "text_completion",
        "created": 1_700_000_000,
        "model": "mock-model",
        "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish_reason}],
        "usage": null,
    }))
}

fn usage_chunk(prompt_tokens: usize, completion_tokens: usize) -> String {
    event(&json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "mock-model",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }))
}

const DONE: &str = "data: [DONE]\n\n";

/// Cuts `bytes` at odd places (sizes cycle through small primes), so frame boundaries fall
/// inside `data:` prefixes, JSON, multi-byte characters and blank lines.
fn odd_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    let sizes = [1, 7, 3, 17, 5, 11, 2];
    let mut frames = Vec::new();
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at >= bytes.len() {
            break;
        }
        let end = (at + size).min(bytes.len());
        frames.push(bytes[at..end].to_vec());
        at = end;
    }
    frames
}

/// The deltas the mock chat stream sends: cut mid-word, with lone multi-byte characters.
const DELTAS: [&str; 6] = ["Hel", "lo, w", "ö", "rld ", "🔥", "!"];

fn chat_frames() -> Vec<Vec<u8>> {
    // First frame: the role chunk and the first delta together (two events in one chunk).
    let mut frames = vec![
        (chat_chunk(json!({"role": "assistant", "content": ""}), None)
            + &chat_chunk(json!({"content": DELTAS[0]}), None))
            .into_bytes(),
    ];
    let mut middle = String::new();
    for delta in &DELTAS[1..] {
        middle += &chat_chunk(json!({ "content": delta }), None);
    }
    middle += &chat_chunk(json!({}), Some("length"));
    frames.extend(odd_frames(middle.as_bytes()));
    // Last frame: usage and [DONE] together.
    frames.push((usage_chunk(21, 7) + DONE).into_bytes());
    frames
}

fn chat_request() -> GenerateRequest {
    GenerateRequest {
        prompt: Prompt::Chat(vec![
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Say hello."),
        ]),
        sampling: SamplingParams {
            temperature: 0.5,
            max_tokens: Some(7),
            stop: vec!["\n\n".into()],
            seed: Some(42),
            ..SamplingParams::default()
        },
        tools: None,
    }
}

fn upstream_message(result: Result<Completion, EngineError>) -> String {
    match result {
        Err(EngineError::Upstream(message)) => message,
        other => panic!("expected an upstream error, got {other:?}"),
    }
}

#[test]
fn chat_text_streams_in_order_and_usage_comes_from_the_upstream() {
    let mock = Mock::start(Reply::Stream(chat_frames()));
    let key_var = "HEARTH_TEST_UPSTREAM_KEY_CHAT";
    std::env::set_var(key_var, "sk-test-123");
    let backend = mock.backend(Some(key_var));

    let stream = backend.generate(chat_request()).expect("generate");
    let (tokens, done) = mock.drain(stream);
    let done = done.expect("the generation succeeds");

    assert_eq!(
        tokens, DELTAS,
        "one token event per non-empty delta, in order"
    );
    assert_eq!(tokens.concat(), "Hello, wörld 🔥!");
    assert_eq!(
        done.usage,
        Usage {
            prompt_tokens: 21,
            completion_tokens: 7,
            ..Usage::default()
        },
        "counts are the upstream's, not the number of chunks"
    );
    assert_eq!(done.finish_reason, FinishReason::Length);
    assert!(done.timings.ttft_ms > 0.0, "{:?}", done.timings);
    assert_eq!(done.timings.prompt_ms, done.timings.ttft_ms);
    assert!(done.timings.decode_ms >= 0.0, "{:?}", done.timings);
    assert_eq!(backend.stats().active, 0, "nothing in flight after Done");

    let seen = mock.recorded();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.authorization.as_deref(), Some("Bearer sk-test-123"));
    let body = seen.body;
    assert_eq!(body["model"], "mock-model");
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello."},
        ])
    );
    assert_eq!(body["max_tokens"], 7);
    assert_eq!(body["stop"], json!(["\n\n"]));
    assert_eq!(body["seed"], 42);
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["top_p"], 1.0);
    assert!(body.get("top_k").is_none(), "top_k 0 is not sent: {body}");
    assert!(body.get("ignore_eos").is_none(), "{body}");
    assert!(body.get("prompt").is_none(), "{body}");
}

#[test]
fn text_prompts_use_the_completions_endpoint() {
    let mut sse = String::new();
    for piece in ["Once", " upon", "", " a ", "tïme"] {
        sse += &text_chunk(piece, None);
    }
    sse += &text_chunk("", Some("stop"));
    // This upstream ignores include_usage: no usage chunk at all.
    sse += DONE;
    let mock = Mock::start(Reply::Stream(odd_frames(sse.as_bytes())));
    let backend = mock.backend(None);

    let request = GenerateRequest {
        prompt: Prompt::Text("Tell me a story:".into()),
        sampling: SamplingParams {
            top_k: 40,
            top_p: 0.9,
            ..SamplingParams::default()
        },
        tools: None,
    };
    let (tokens, done) = mock.drain(backend.generate(request).expect("generate"));
    let done = done.expect("the generation succeeds");
    assert_eq!(tokens, ["Once", " upon", " a ", "tïme"]);
    assert_eq!(
        done.usage,
        Usage {
            prompt_tokens: 0,
            completion_tokens: 4,
            ..Usage::default()
        },
        "without upstream usage, content chunks are counted"
    );
    assert_eq!(done.finish_reason, FinishReason::Stop);

    let seen = mock.recorded();
    assert_eq!(seen.path, "/v1/completions");
    assert_eq!(seen.authorization, None);
    let body = seen.body;
    assert_eq!(body["model"], "mock-model");
    assert_eq!(body["prompt"], "Tell me a story:");
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["top_k"], 40);
    assert!(
        (body["top_p"].as_f64().unwrap() - 0.9).abs() < 1e-6,
        "{body}"
    );
    assert!(body.get("messages").is_none(), "{body}");
    assert!(
        body.get("max_tokens").is_none(),
        "unset max_tokens is not sent"
    );
    assert!(body.get("stop").is_none(), "empty stop is not sent");
    assert!(body.get("seed").is_none(), "unset seed is not sent");
}

#[test]
fn an_upstream_500_carries_its_message() {
    let mock = Mock::start(Reply::Status(
        500,
        json!({"error": {"message": "CUDA out of memory", "type": "server_error", "param": null, "code": null}}),
    ));
    let backend = mock.backend(None);
    let (tokens, result) = mock.drain(backend.generate(chat_request()).expect("generate"));
    assert!(tokens.is_empty());
    let message = upstream_message(result);
    assert!(message.contains("500"), "{message}");
    assert!(message.contains("CUDA out of memory"), "{message}");
    assert_eq!(backend.stats().active, 0);
}

#[test]
fn an_upstream_404_names_the_missing_model() {
    let mock = Mock::start(Reply::Status(
        404,
        json!({"error": {
            "message": "The model `mock-model` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": null,
            "code": "model_not_found",
        }}),
    ));
    let backend = mock.backend(None);
    let (_, result) = mock.drain(backend.generate(chat_request()).expect("generate"));
    let message = upstream_message(result);
    assert!(message.contains("404"), "{message}");
    assert!(
        message.contains("The model `mock-model` does not exist"),
        "{message}"
    );
    assert!(message.contains(&mock.base_url), "names the URL: {message}");
}

#[test]
fn an_error_event_mid_stream_ends_the_generation_with_its_message() {
    let sse = chat_chunk(json!({"role": "assistant", "content": ""}), None)
        + &chat_chunk(json!({"content": "Par"}), None)
        + &event(&json!({"error": {"message": "worker crashed", "type": "server_error"}}));
    let mock = Mock::start(Reply::Stream(odd_frames(sse.as_bytes())));
    let backend = mock.backend(None);
    let (tokens, result) = mock.drain(backend.generate(chat_request()).expect("generate"));
    assert_eq!(tokens, ["Par"]);
    let message = upstream_message(result);
    assert!(message.contains("worker crashed"), "{message}");
}

#[test]
fn a_stream_that_stops_short_is_an_error() {
    let sse = chat_chunk(json!({"content": "Half"}), None);
    let mock = Mock::start(Reply::Stream(vec![sse.into_bytes()]));
    let backend = mock.backend(None);
    let (tokens, result) = mock.drain(backend.generate(chat_request()).expect("generate"));
    assert_eq!(tokens, ["Half"]);
    let message = upstream_message(result);
    assert!(
        message.contains("before the generation finished"),
        "{message}"
    );
}

#[test]
fn connection_refused_names_the_base_url() {
    // A port that was just free: bound, then released.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let base_url = format!("http://127.0.0.1:{port}/v1");
    let backend = UpstreamBackend::new(
        "gone",
        &Upstream {
            base_url: base_url.clone(),
            model: "m".into(),
            api_key_env: None,
            pid: None,
            process: None,
        },
        runtime.handle().clone(),
    )
    .expect("construction makes no request");
    let stream = backend.generate(chat_request()).expect("generate");
    let result = runtime
        .block_on(async { tokio::time::timeout(PATIENCE, stream.collect_text()).await })
        .expect("the failure arrives in time");
    let message = match result {
        Err(EngineError::Upstream(message)) => message,
        other => panic!("expected an upstream error, got {other:?}"),
    };
    assert!(message.contains(&base_url), "{message}");
    assert!(message.contains("cannot connect"), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");
}

#[test]
fn dropping_the_stream_disconnects_from_the_upstream() {
    let first = chat_chunk(json!({"role": "assistant", "content": ""}), None)
        + &chat_chunk(json!({"content": "Once"}), None);
    let mock = Mock::start(Reply::StreamThenHold(vec![first.into_bytes()]));
    let backend = mock.backend(None);
    let mut stream = backend.generate(chat_request()).expect("generate");
    assert_eq!(mock.next(&mut stream), Some(Event::Token("Once".into())));
    assert_eq!(backend.stats().active, 1, "the request is in flight");
    assert!(
        mock.disconnected.try_recv().is_err(),
        "the upstream is still streaming"
    );

    drop(stream);
    mock.disconnected
        .recv_timeout(PATIENCE)
        .expect("the upstream sees the client disconnect");
    assert_eq!(backend.stats().active, 0, "the cancelled request is gone");
}

#[test]
fn facts_stats_and_tokenize() {
    let mock = Mock::start(Reply::Stream(Vec::new()));
    let backend = mock.backend(None);
    let facts = backend.facts();
    assert_eq!(facts.alias, "mock");
    assert_eq!(facts.n_ctx, 0);
    assert_eq!(facts.file_bytes, 0);
    assert_eq!(facts.load_ms, 0.0);
    let stats = backend.stats();
    assert_eq!((stats.active, stats.slots, stats.queued), (0, 0, 0));
    assert_eq!(
        backend.tokenize("hello"),
        Err(EngineError::Unsupported("tokenize"))
    );
}

#[test]
fn bad_settings_and_requests_are_refused_up_front() {
    let mock = Mock::start(Reply::Stream(Vec::new()));
    let handle = mock.runtime.handle().clone();
    let upstream = |base_url: &str, api_key_env: Option<&str>| Upstream {
        base_url: base_url.into(),
        model: "m".into(),
        api_key_env: api_key_env.map(str::to_string),
        pid: None,
        process: None,
    };

    let missing = "HEARTH_TEST_UPSTREAM_KEY_THAT_IS_NEVER_SET";
    match UpstreamBackend::new(
        "a",
        &upstream(&mock.base_url, Some(missing)),
        handle.clone(),
    ) {
        Err(EngineError::Load(m)) => assert!(m.contains(missing), "{m}"),
        other => panic!("expected a load error, got {other:?}"),
    }
    match UpstreamBackend::new("a", &upstream("localhost:1234/v1", None), handle.clone()) {
        Err(EngineError::Load(m)) => assert!(m.contains("localhost:1234/v1"), "{m}"),
        other => panic!("expected a load error, got {other:?}"),
    }

    let backend = mock.backend(None);
    let empty = GenerateRequest {
        prompt: Prompt::Chat(Vec::new()),
        sampling: SamplingParams::default(),
        tools: None,
    };
    assert!(matches!(
        backend.generate(empty),
        Err(EngineError::InvalidRequest(_))
    ));
    let zero = GenerateRequest {
        sampling: SamplingParams {
            max_tokens: Some(0),
            ..SamplingParams::default()
        },
        ..chat_request()
    };
    assert!(matches!(
        backend.generate(zero),
        Err(EngineError::InvalidRequest(_))
    ));
    assert!(
        mock.requests.try_recv().is_err(),
        "refused requests never reach the upstream"
    );
}
