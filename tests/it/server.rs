//! `hearth serve` over real HTTP on 127.0.0.1 with the real default model.

use crate::common;
mod security;

use std::sync::Arc;
use std::time::Duration;

use common::openapi::assert_matches;
use common::server::{Setup, TestServer, MODEL};
use hearth::cache::Cache;
use hearth::catalog::{Catalog, CatalogEntry, Upstream};
use hearth::engine::compute::{Compute, KvType};
use hearth::loader::LoadOptions;
use hearth::server::{self, Registry, ServerOptions};
use serde_json::{json, Value};

fn chat_body(prompt: &str, max_tokens: u32) -> Value {
    json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
    })
}

impl TestServer {
    async fn chat_text(&self, prompt: &str, max_tokens: u32) -> String {
        let (status, body) = self
            .post("/v1/chat/completions", &chat_body(prompt, max_tokens))
            .await;
        assert_eq!(status, 200, "{body}");
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Starts a streamed chat request and returns the response as soon as headers arrive.
    async fn open_stream(&self, body: &Value) -> reqwest::Response {
        let mut body = body.clone();
        body["stream"] = json!(true);
        let r = self.send_json("/v1/chat/completions", &body).await;
        assert_eq!(r.status(), 200);
        r
    }

    /// The raw SSE body of a streamed request.
    async fn stream_raw(&self, path: &str, body: &Value) -> String {
        let r = self.send_json(path, body).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        r.text().await.unwrap()
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Splits an SSE body into its `data:` payloads, checking the framing byte for byte.
fn frames(raw: &str) -> Vec<&str> {
    assert!(
        raw.ends_with("data: [DONE]\n\n"),
        "must end with [DONE]: {raw:?}"
    );
    raw.split_terminator("\n\n")
        .map(|f| {
            f.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("bad frame {f:?}"))
        })
        .collect()
}

/// The JSON chunks of an SSE body (everything before the final `[DONE]`).
fn json_chunks(raw: &str) -> Vec<Value> {
    let payloads = frames(raw);
    assert_eq!(*payloads.last().unwrap(), "[DONE]");
    payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect()
}

fn content_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn models_endpoints_list_and_describe() {
    let s = Setup::default().start().await;
    let (status, list) = s.get("/v1/models").await;
    assert_eq!(status, 200);
    assert_matches("ListModelsResponse", &list);
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&MODEL), "{ids:?}");
    let (status, model) = s.get("/v1/models/smollm2-135m").await;
    assert_eq!(status, 200);
    assert_matches("Model", &model);
    assert_eq!(model["loaded"], true);
    let (status, err) = s.get("/v1/models/no-such-model").await;
    assert_eq!(status, 404);
    assert_matches("ErrorResponse", &err);
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_completion_matches_openai_schema_and_is_deterministic() {
    let s = Setup::default().start().await;
    let (status, body) = s
        .post(
            "/v1/chat/completions",
            &chat_body("What is the capital of France?", 24),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_matches("CreateChatCompletionResponse", &body);
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!text.trim().is_empty());
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    assert!(usage["completion_tokens"].as_u64().unwrap() <= 24);
    let timings = &body["timings"];
    // llama-server's meaning: prompt_n computed, cache_n reused, together the whole prompt.
    assert_eq!(
        timings["prompt_n"].as_u64().unwrap() + timings["cache_n"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        timings["cache_n"],
        usage["prompt_tokens_details"]["cached_tokens"]
    );
    assert_eq!(timings["predicted_n"], usage["completion_tokens"]);
    assert!(timings["prompt_ms"].as_f64().unwrap() > 0.0);
    let (_, again) = s
        .post(
            "/v1/chat/completions",
            &chat_body("What is the capital of France?", 24),
        )
        .await;
    // The first answer came from a whole-prompt prefill, the repeats reuse the prompt from the
    // cache (another batch shape, whose greedy text may differ): two repeats are compared.
    let (_, third) = s
        .post(
            "/v1/chat/completions",
            &chat_body("What is the capital of France?", 24),
        )
        .await;
    assert_eq!(
        again["choices"][0]["message"]["content"], third["choices"][0]["message"]["content"],
        "temperature 0 repeats"
    );
    // The repeat reuses the cached prompt: cache_n counts it, prompt_n only what was computed.
    let (t, u) = (&again["timings"], &again["usage"]);
    let cached = u["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert_eq!(t["cache_n"].as_u64().unwrap(), cached);
    assert_eq!(
        t["prompt_n"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() - cached
    );
    // /metrics counts the reused tokens too (this server is the test's own: nothing else ran).
    assert!(cached > 0);
    assert!(s.metric("hearth_prompt_tokens_cached_total").await >= cached as f64);
    // max_completion_tokens and stop are honoured.
    let mut limited = chat_body("Write a long story about a dragon.", 100);
    limited["max_completion_tokens"] = json!(3);
    let (_, body) = s.post("/v1/chat/completions", &limited).await;
    assert_eq!(body["usage"]["completion_tokens"], 3);
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    let full = s.chat_text("Write a long story about a dragon.", 40).await;
    let word = full.split_whitespace().nth(4).unwrap().to_string();
    let mut stopped = chat_body("Write a long story about a dragon.", 40);
    stopped["stop"] = json!([word.clone(), "\u{1F600}"]);
    let (_, body) = s.post("/v1/chat/completions", &stopped).await;
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let cut = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(cut, &full[..full.find(&word).unwrap()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_streaming_framing_is_exact() {
    let s = Setup::default().start().await;
    // A warm-up, so that the answers compared below all reuse the prompt from the prompt cache
    // (a cold prefill is another batch shape, whose greedy text may differ).
    s.chat_text("Name a fruit.", 16).await;
    let mut body = chat_body("Name a fruit.", 16);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let raw = s.stream_raw("/v1/chat/completions", &body).await;
    let chunks = json_chunks(&raw);
    for c in &chunks {
        assert_matches("CreateChatCompletionStreamResponse", c);
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], chunks[0]["id"], "one id per stream");
    }
    // Role first, then deltas, then the finish chunk, then usage.
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let n = chunks.len();
    let finish = &chunks[n - 2];
    assert!(finish["choices"][0]["finish_reason"].is_string());
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert!(finish["timings"]["predicted_per_second"].is_number());
    let usage_chunk = &chunks[n - 1];
    assert_eq!(usage_chunk["choices"], json!([]));
    for c in &chunks[1..n - 2] {
        assert!(c["choices"][0]["finish_reason"].is_null());
        assert!(c["choices"][0]["delta"]["content"].is_string());
    }
    // Same text as without streaming.
    let streamed = content_of(&chunks);
    assert_eq!(streamed, s.chat_text("Name a fruit.", 16).await);
    assert_eq!(
        usage_chunk["usage"]["completion_tokens"].as_u64().unwrap(),
        s.post("/v1/chat/completions", &chat_body("Name a fruit.", 16))
            .await
            .1["usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
    );
    // Without include_usage there is no usage chunk.
    body["stream_options"] = json!({"include_usage": false});
    let raw = s.stream_raw("/v1/chat/completions", &body).await;
    assert!(!raw.contains("\"usage\""), "{raw}");
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_endpoint_streams_and_not() {
    let s = Setup::default().start().await;
    let body = json!({"model": MODEL, "prompt": "The sky is", "max_tokens": 8, "temperature": 0});
    // A warm-up, so that both answers compared reuse the prompt from the prompt cache (a cold
    // prefill is another batch shape, whose greedy text may differ).
    assert_eq!(s.post("/v1/completions", &body).await.0, 200);
    let (status, full) = s.post("/v1/completions", &body).await;
    assert_eq!(status, 200, "{full}");
    assert_matches("CreateCompletionResponse", &full);
    let text = full["choices"][0]["text"].as_str().unwrap().to_string();
    assert!(!text.is_empty());
    assert_eq!(full["usage"]["completion_tokens"], 8);
    let mut streaming = body.clone();
    streaming["stream"] = json!(true);
    streaming["stream_options"] = json!({"include_usage": true});
    let raw = s.stream_raw("/v1/completions", &streaming).await;
    let chunks = json_chunks(&raw);
    for c in &chunks {
        // OpenAI streams `finish_reason: null` until the last chunk (as do llama-server and
        // vLLM) although the schema shares the non-streamed shape; relax only that field.
        let mut relaxed = c.clone();
        for choice in relaxed["choices"].as_array_mut().unwrap() {
            if choice["finish_reason"].is_null() {
                choice["finish_reason"] = json!("stop");
            }
        }
        assert_matches("CreateCompletionResponse", &relaxed);
    }
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(streamed, text);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 8);
    // Default max_tokens is OpenAI's 16.
    let (_, short) = s
        .post("/v1/completions", &json!({"model": MODEL, "prompt": "Once upon a time", "temperature": 0, "ignore_eos": true}))
        .await;
    assert_eq!(short["usage"]["completion_tokens"], 16);
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_concurrent_streams_equal_each_alone() {
    let s = Setup {
        parallel: 8,
        ..Setup::default()
    }
    .start()
    .await;
    // Prompts the model is sure of: a row decoded alone and in a batch of eight get slightly
    // different logits from llama.cpp's kernels, so an answer with a near-tie could flip
    // whatever the server does. What is tested is that concurrent streams do not disturb each
    // other (a mixed-up slot, cell or stream would change these answers too).
    let prompts: Vec<String> = common::CONFIDENT.iter().map(|s| s.to_string()).collect();
    let mut alone = Vec::new();
    for p in &prompts {
        alone.push(s.chat_text(p, 32).await);
    }
    let together = futures::future::join_all(prompts.iter().map(|p| {
        let mut body = chat_body(p, 32);
        body["stream"] = json!(true);
        let s = &s;
        async move {
            let raw = s.stream_raw("/v1/chat/completions", &body).await;
            content_of(&json_chunks(&raw))
        }
    }))
    .await;
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(a, t, "request {i} changed under concurrency");
    }
    assert_eq!(s.metric("hearth_active_requests").await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_q8_0_kv_cache_fits_more_slots_in_the_same_budget_and_serves() {
    // The budget that gives an f16 cache 2 slots of 4096 tokens (see
    // `slots_left_to_hearth_are_sized_by_the_memory_budget_and_ps_says_why`): q8_0 cells take 34/64 of the bytes.
    let s = Setup {
        parallel: 8,
        ctx: 4096,
        memory_budget: Some(728 << 20),
        compute: Compute {
            kv_type: KvType::Q8_0,
            batch: 128,
            ubatch: 64,
            ..Compute::default()
        },
        ..Setup::default()
    }
    .start()
    .await;
    let (_, ps) = s.get("/api/ps").await;
    let model = &ps["models"][0];
    assert!(model["slots"].as_u64().unwrap() > 2, "{ps}");
    assert_eq!(model["kv_type"], "q8_0", "{ps}");
    assert_eq!(
        (model["batch"].as_u64(), model["ubatch"].as_u64()),
        (Some(128), Some(64))
    );
    // It answers, the same way twice, and a prompt longer than the batch is cut into chunks.
    let a = s.chat_text(common::CONFIDENT[1], 24).await;
    assert!(a.contains("1, 2, 3"), "{a}");
    assert_eq!(s.chat_text(common::CONFIDENT[1], 24).await, a);
    let long = s.chat_text(common::CONFIDENT[0], 24).await;
    assert!(long.contains("Alice"), "{long}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_disconnect_frees_the_sequence() {
    let s = Setup {
        parallel: 1,
        ..Setup::default()
    }
    .start()
    .await;
    let mut body = chat_body("Write a long story about a dragon.", 800);
    body["ignore_eos"] = json!(true);
    let mut r = s.open_stream(&body).await;
    // Wait until real content flows, then hang up.
    let mut seen = String::new();
    while !seen.contains("\"content\":\"") || seen.matches("data: ").count() < 3 {
        seen.push_str(&String::from_utf8_lossy(&r.chunk().await.unwrap().unwrap()));
    }
    drop(r);
    // The only slot must be free again: this request completes.
    let text = s.chat_text("Say hello.", 8).await;
    assert!(!text.is_empty());
    assert_eq!(s.metric("hearth_active_requests").await, 0.0);
    assert_eq!(s.metric("hearth_kv_cache_used_cells").await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_answers_429_and_nothing_else_breaks() {
    let s = Setup {
        parallel: 1,
        queue: 1,
        ..Setup::default()
    }
    .start()
    .await;
    let mut long = chat_body("Write a long story about a dragon.", 800);
    long["ignore_eos"] = json!(true);
    // A occupies the only slot once it streams generated text (its role chunk comes before
    // it is admitted, and with TCP_NODELAY it arrives at once).
    let mut a = s.open_stream(&long).await;
    let has_text = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        text.split("\"content\":\"")
            .skip(1)
            .any(|rest| !rest.starts_with('"'))
    };
    let mut seen = Vec::new();
    while !has_text(&seen) {
        let chunk = a.chunk().await.unwrap().expect("A streams until dropped");
        seen.extend_from_slice(&chunk);
    }
    assert!(seen.starts_with(b"data: "));
    // B waits in the queue (its headers arrive once it is queued).
    let short = chat_body("Say hi.", 4);
    let b = s.open_stream(&short).await;
    // C finds the queue full.
    let (status, err) = s.post("/v1/chat/completions", &chat_body("Hi", 4)).await;
    assert_eq!(status, 429, "{err}");
    assert_matches("ErrorResponse", &err);
    // Free the slot: B completes, and new requests are served.
    drop(a);
    let b_text = b.text().await.unwrap();
    assert!(b_text.ends_with("data: [DONE]\n\n"));
    assert!(!s.chat_text("Say hello.", 4).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_has_its_status_and_openai_shape_and_the_server_keeps_serving() {
    let s = Setup {
        ctx: 128,
        ..Setup::default()
    }
    .start()
    .await;
    let raw = |body: &'static str| {
        let s = &s;
        async move {
            let r = s
                .http
                .post(s.url("/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let long_prompt = "word ".repeat(300);
    let cases: Vec<(u16, Value, &str)> = vec![
        (
            raw("{not json").await.0,
            raw("{not json").await.1,
            "malformed JSON",
        ),
        {
            let (st, b) = s
                .post(
                    "/v1/chat/completions",
                    &json!({"model": MODEL, "messages": []}),
                )
                .await;
            (st, b, "empty messages")
        },
        {
            let mut body = chat_body("hi", 4);
            body["temperature"] = json!(7);
            let (st, b) = s.post("/v1/chat/completions", &body).await;
            (st, b, "bad temperature")
        },
        {
            let mut body = chat_body("hi", 4);
            body["n"] = json!(2);
            let (st, b) = s.post("/v1/chat/completions", &body).await;
            (st, b, "n = 2")
        },
        {
            let (st, b) = s
                .post("/v1/chat/completions", &chat_body(&long_prompt, 4))
                .await;
            (st, b, "prompt over the context")
        },
        {
            let (st, b) = s
                .post(
                    "/v1/chat/completions",
                    &json!({"messages": [{"role": "user", "content": "x"}]}),
                )
                .await;
            (st, b, "missing model")
        },
    ];
    for (status, body, what) in &cases {
        assert_eq!(*status, 400, "{what}: {body}");
        assert_matches("ErrorResponse", body);
        assert!(!s.chat_text("Say hi.", 4).await.is_empty(), "after {what}");
    }
    assert_eq!(cases[4].1["error"]["code"], "context_length_exceeded");
    let mut unknown = chat_body("hi", 4);
    unknown["model"] = json!("no-such-model");
    let (status, body) = s.post("/v1/chat/completions", &unknown).await;
    assert_eq!(status, 404);
    assert_matches("ErrorResponse", &body);
    // Over the body limit (64 KiB here).
    let huge = chat_body(&"x".repeat(100 * 1024), 4);
    let (status, body) = s.post("/v1/chat/completions", &huge).await;
    assert_eq!(status, 413, "{body}");
    assert_matches("ErrorResponse", &body);
    let (status, body) = s.get("/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert_matches("ErrorResponse", &body);
    assert!(!s.chat_text("Say hi.", 4).await.is_empty());
    assert!(
        s.metric("hearth_requests_total{endpoint=\"/v1/chat/completions\",status=\"400\"}")
            .await
            >= 6.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_guards_everything_but_health() {
    let s = Setup {
        api_key: Some("s3cret".into()),
        ..Setup::default()
    }
    .start()
    .await;
    let (status, body) = s.get("/v1/models").await;
    assert_eq!(status, 401);
    assert_matches("ErrorResponse", &body);
    let wrong = s
        .http
        .get(s.url("/v1/models"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = s
        .http
        .post(s.url("/v1/chat/completions"))
        .bearer_auth("s3cret")
        .json(&chat_body("Say hi.", 4))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(s.get("/health").await.0, 200);
    assert_eq!(s.get("/metrics").await.0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn binding_beyond_loopback_without_a_key_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let load = LoadOptions {
        threads: 1,
        n_ctx: 128,
        parallel: 1,
        auto_parallel: false,
        auto_ctx: false,
        queue_capacity: 1,
        memory_budget: u64::MAX,
        offload: Default::default(),
        speculative: hearth::engine::speculative::Speculative::Off,
        compute: Default::default(),
        flags: Default::default(),
        profiles: Default::default(),
        prompt_cache_disk_bytes: 0,
    };
    let registry = Arc::new(Registry::new(
        Catalog::builtin(),
        Cache::new(home.path()),
        load,
        Duration::from_secs(60),
    ));
    let options = ServerOptions {
        host: "0.0.0.0".parse().unwrap(),
        port: 0,
        ..ServerOptions::default()
    };
    let err = server::start(options, registry).await.unwrap_err();
    assert!(err.to_string().contains("API key"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn models_load_on_first_use_unload_on_request_and_after_idle_ttl() {
    let s = Setup {
        preload: false,
        idle_ttl: Duration::from_millis(300),
        ..Setup::default()
    }
    .start()
    .await;
    assert_eq!(s.get("/api/ps").await.1["models"], json!([]));
    // First use loads it.
    assert!(!s.chat_text("Say hi.", 4).await.is_empty());
    // The idle reaper unloads it once unused for the TTL: poll what the server reports.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while s.get("/api/ps").await.1["models"] != json!([]) {
        assert!(
            std::time::Instant::now() < deadline,
            "model never unloaded after its idle TTL"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Explicit load and unload, on a server whose reaper cannot race the sequence (a stalled
    // machine could otherwise pass 300 ms between the load and the unload).
    let s = Setup {
        preload: false,
        ..Setup::default()
    }
    .start()
    .await;
    let (status, body) = s.post("/api/load", &json!({"model": MODEL})).await;
    assert_eq!(status, 200, "{body}");
    let (_, ps) = s.get("/api/ps").await;
    assert_eq!(ps["models"][0]["model"], MODEL);
    assert_eq!(ps["models"][0]["slots"], 4);
    let (status, _) = s.post("/api/unload", &json!({"model": MODEL})).await;
    assert_eq!(status, 200);
    let (status, body) = s.post("/api/unload", &json!({"model": MODEL})).await;
    assert_eq!(status, 404);
    assert_matches("ErrorResponse", &body);
    let (_, st) = s.get("/api/status").await;
    assert_eq!(st["status"], "ok");
    assert!(st["endpoint"].as_str().unwrap().ends_with("/v1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_expose_requests_tokens_latency_and_kv() {
    let s = Setup::default().start().await;
    let mut body = chat_body("Name a colour.", 8);
    body["stream"] = json!(true);
    s.stream_raw("/v1/chat/completions", &body).await;
    assert!(s.metric("hearth_completion_tokens_total").await >= 1.0);
    assert!(s.metric("hearth_time_to_first_token_seconds_count").await >= 1.0);
    assert!(s.metric("hearth_inter_token_latency_seconds_count").await >= 1.0);
    assert_eq!(
        s.metric("hearth_kv_cache_capacity_cells").await,
        4.0 * 1024.0
    );
    assert_eq!(s.metric("hearth_queue_length").await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_finishes_requests_in_flight() {
    let s = Setup::default().start().await;
    let mut r = s
        .open_stream(&chat_body("Write a long story about a dragon.", 48))
        .await;
    let first = r.chunk().await.unwrap().unwrap();
    let TestServer { server, .. } = s;
    let shutdown = tokio::spawn(server.shutdown());
    let mut rest = String::from_utf8_lossy(&first).into_owned();
    while let Some(chunk) = r.chunk().await.unwrap() {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
    shutdown.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_adapter_is_served_through_the_same_api_with_streaming() {
    let origin = Setup::default().start().await;
    let proxy = Setup {
        preload: false,
        extra: vec![CatalogEntry {
            alias: "via-upstream".into(),
            upstream: Some(Upstream {
                base_url: format!("{}/v1", origin.base),
                model: MODEL.into(),
                api_key_env: None,
                pid: None,
                process: None,
            }),
            ..CatalogEntry::default()
        }],
        ..Setup::default()
    }
    .start()
    .await;
    // A warm-up: the answers compared both reuse the prompt from the origin's prompt cache (a
    // cold prefill is another batch shape, whose greedy text may differ).
    origin.chat_text("Name a fruit.", 16).await;
    let direct = origin.chat_text("Name a fruit.", 16).await;
    let mut body = chat_body("Name a fruit.", 16);
    body["model"] = json!("via-upstream");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let raw = proxy.stream_raw("/v1/chat/completions", &body).await;
    let chunks = json_chunks(&raw);
    assert_eq!(content_of(&chunks), direct);
    assert!(chunks.iter().any(|c| c["model"] == "via-upstream"));
    let usage = &chunks.last().unwrap()["usage"];
    assert!(
        usage["prompt_tokens"].as_u64().unwrap() > 0,
        "usage counted upstream"
    );
    let (_, list) = proxy.get("/v1/models").await;
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "via-upstream"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_openai_python_client_just_works() {
    let s = Setup::default().start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_client.py");
    let base = format!("{}/v1", s.base);
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&base)
        .arg(MODEL)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "openai client script failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("all ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenize_counts_with_the_models_tokenizer() {
    let t = Setup::default().start().await;
    let (status, body) = t
        .post(
            "/tokenize",
            &json!({"model": MODEL, "content": "Hello world, hello again."}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let tokens = body["tokens"].as_array().unwrap();
    assert!(!tokens.is_empty() && tokens.len() < 12, "{body}");
    // The same text the same way; a longer text more tokens.
    let (_, again) = t
        .post(
            "/tokenize",
            &json!({"model": MODEL, "content": "Hello world, hello again."}),
        )
        .await;
    assert_eq!(again, body);
    let (_, longer) = t
        .post(
            "/tokenize",
            &json!({"model": MODEL, "content": "Hello world, hello again. And once more."}),
        )
        .await;
    assert!(longer["tokens"].as_array().unwrap().len() > tokens.len());
    let (status, err) = t
        .post("/tokenize", &json!({"model": "nope", "content": "x"}))
        .await;
    assert_eq!(status, 404, "{err}");
    let (status, _) = t.post("/tokenize", &json!({"content": "x"})).await;
    assert_eq!(status, 400);
    t.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn slots_left_to_hearth_are_sized_by_the_memory_budget_and_ps_says_why() {
    // The default model: ~140 MiB of weights and buffers, 90 MiB of KV per 4096-token slot.
    // Half of 728 MiB less the model leaves room for 2 slots, not the 8 wished for.
    let s = Setup {
        parallel: 8,
        ctx: 4096,
        memory_budget: Some(728 << 20),
        ..Setup::default()
    }
    .start()
    .await;
    let (status, ps) = s.get("/api/ps").await;
    assert_eq!(status, 200, "{ps}");
    let model = &ps["models"][0];
    assert_eq!(model["slots"], 2, "{ps}");
    assert_eq!(model["n_ctx"], 4096, "{ps}");
    let why = model["slots_why"].as_str().unwrap();
    assert!(
        why.contains("not 8") && why.contains("half the memory budget"),
        "{why}"
    );
    // The chosen slots serve: a request answers.
    assert!(!s.chat_text("Say hi.", 4).await.is_empty());
}
