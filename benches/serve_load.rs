//! A closed-loop load generator for OpenAI-compatible servers (hearth's `hearth serve`, or
//! llama.cpp's `llama-server`): `concurrency` workers each send one streamed
//! `/chat/completions` request, wait for its last byte, and send the next, until `requests`
//! have been sent in all. One untimed warm-up request goes first.
//!
//! Not a test: run it with `cargo bench --bench serve_load -- --url URL --model NAME ...`, or
//! through `perf/serve-vs-llama-server.sh`, which runs it against both servers.
//!
//! Every request: `stream: true`, `stream_options: {include_usage: true}`, `temperature: 0`,
//! `ignore_eos: true` (so each generates exactly `max_tokens`), a prompt from a fixed rotation
//! of distinct short prompts (so no server answers from a prompt cache alone).
//!
//! Options (flag, else environment variable, else default):
//! * `--url`          `SERVE_LOAD_URL`          base URL ending in /v1 (required)
//! * `--model`        `SERVE_LOAD_MODEL`        model name sent in each request (required)
//! * `--concurrency`  `SERVE_LOAD_CONCURRENCY`  requests in flight (default 1)
//! * `--requests`     `SERVE_LOAD_REQUESTS`     total timed requests (default 8 × concurrency)
//! * `--requests-per-worker` `SERVE_LOAD_REQUESTS_PER_WORKER` alternative to `--requests`
//! * `--max-tokens`   `SERVE_LOAD_MAX_TOKENS`   tokens generated per request (default 128)
//! * `--api-key`      `SERVE_LOAD_API_KEY`      bearer key, if the server wants one
//! * `--label`        `SERVE_LOAD_LABEL`        name echoed in the report and progress lines
//! * `--self-test`    check the statistics helpers on hand-made inputs and exit
//!
//! stdout: one JSON line: `label`, `model`, `concurrency`, `requests` (succeeded), `failures`,
//! `max_tokens`, `wall_s`, `completion_tokens`, `output_tok_s`, `decode_tok_s_mean`,
//! `ttft_ms` {p50, p95, p99, mean}, `e2e_ms` {p50, p95, mean}, `prompt_tokens_mean`,
//! `usage_reported`, `client_cpu_ticks` (this process's CPU time, USER_HZ ticks) and `errors`
//! (the first few). stderr: progress and a one-line summary.
//!
//! Definitions: TTFT is send → first chunk with non-empty `delta.content`; e2e is send → end
//! of the response body; aggregate output tokens/s is the sum of completion tokens divided by
//! the wall time from the first send to the last end; per-request decode tokens/s is
//! `(completion_tokens - 1) / (end - first token)`. Completion tokens come from the usage chunk;
//! a server that sends none is counted by content chunks instead (`usage_reported: false`).

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

/// Distinct short prompts, rotated per request. Their first words differ, so beyond the chat
/// template's shared preamble no request can reuse another's prompt cache.
const PROMPTS: [&str; 16] = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a refrigerator keeps food cold, step by step.",
    "Describe a busy morning market in a small coastal town.",
    "List some tips for someone learning to play the guitar.",
    "Why is the sky blue? Give a simple explanation for a child.",
    "Tell me about the history of the bicycle in a few paragraphs.",
    "Compose a friendly letter inviting a neighbour to a garden party.",
    "What are the main differences between cats and dogs as pets?",
    "Summarise the water cycle and why it matters for farming.",
    "Imagine a city on Mars in the year 2200 and describe daily life there.",
    "Give advice to a student preparing for a mathematics exam.",
    "How do bees make honey? Describe the whole process.",
    "Write a recipe for a simple vegetable soup with instructions.",
    "Describe the sound of rain on a tin roof at night.",
    "Plan a three day hiking trip in the mountains for beginners.",
    "Explain what a computer program is to someone who has never used one.",
];

/// Most error messages kept in the report.
const MAX_ERRORS_REPORTED: usize = 5;

/// Nearest-rank percentile (`p` in 0..=100) of `sorted` (ascending): the smallest value with at
/// least `p`% of the samples at or below it. `None` for no samples.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Checks the statistics helpers on hand-made inputs (run at every start; cheap).
fn self_test() {
    let ten: Vec<f64> = (1..=10).map(f64::from).collect();
    assert_eq!(percentile(&ten, 50.0), Some(5.0));
    assert_eq!(percentile(&ten, 95.0), Some(10.0));
    assert_eq!(percentile(&ten, 90.0), Some(9.0));
    assert_eq!(percentile(&ten, 10.0), Some(1.0));
    assert_eq!(percentile(&ten, 0.0), Some(1.0));
    assert_eq!(percentile(&ten, 100.0), Some(10.0));
    // Wikipedia's nearest-rank example.
    let five = [15.0, 20.0, 35.0, 40.0, 50.0];
    assert_eq!(percentile(&five, 5.0), Some(15.0));
    assert_eq!(percentile(&five, 30.0), Some(20.0));
    assert_eq!(percentile(&five, 40.0), Some(20.0));
    assert_eq!(percentile(&five, 50.0), Some(35.0));
    assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    assert_eq!(percentile(&[], 50.0), None);
    assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
    assert_eq!(mean(&[]), None);

    let mut s = SseState::default();
    let t = Instant::now();
    s.line(
        r#"data: {"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
        t,
    )
    .unwrap();
    assert!(s.first_token.is_none());
    s.line(r#"data: {"choices":[{"delta":{"content":"Hi"}}]}"#, t)
        .unwrap();
    s.line(": keep-alive comment", t).unwrap();
    s.line(r#"data: {"choices":[{"delta":{"content":" there"}}]}"#, t)
        .unwrap();
    s.line(
        r#"data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3}}"#,
        t,
    )
    .unwrap();
    s.line("data: [DONE]", t).unwrap();
    assert_eq!(s.first_token, Some(t));
    assert_eq!((s.content_chunks, s.usage), (2, Some((9, 3))));
    assert!(s.done);
    assert!(SseState::default()
        .line(r#"data: {"error":{"message":"boom"}}"#, t)
        .is_err());
}

/// Command-line options, each also settable by environment.
#[derive(Debug)]
struct Options {
    url: String,
    model: String,
    concurrency: usize,
    requests: usize,
    max_tokens: u32,
    api_key: Option<String>,
    label: String,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let flag = |name: &str| -> Option<String> {
        let long = format!("--{name}");
        let prefix = format!("--{name}=");
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if *a == long {
                return it.next().cloned();
            }
            if let Some(v) = a.strip_prefix(&prefix) {
                return Some(v.to_string());
            }
        }
        let env = format!("SERVE_LOAD_{}", name.to_uppercase().replace('-', "_"));
        std::env::var(env).ok().filter(|v| !v.trim().is_empty())
    };
    let number = |name: &str| -> Result<Option<usize>, String> {
        flag(name)
            .map(|v| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("--{name} {v:?} is not a whole number"))
            })
            .transpose()
    };
    let url = flag("url")
        .ok_or("--url (or SERVE_LOAD_URL) is required, e.g. http://127.0.0.1:5273/v1")?
        .trim_end_matches('/')
        .to_string();
    let model = flag("model").ok_or("--model (or SERVE_LOAD_MODEL) is required")?;
    let concurrency = number("concurrency")?.unwrap_or(1);
    if concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    let requests = match (number("requests")?, number("requests-per-worker")?) {
        (Some(total), _) => total,
        (None, Some(per_worker)) => per_worker * concurrency,
        (None, None) => 8 * concurrency,
    };
    if requests == 0 {
        return Err("at least one request is needed".into());
    }
    let max_tokens = number("max-tokens")?.unwrap_or(128);
    let max_tokens = u32::try_from(max_tokens)
        .ok()
        .filter(|&m| m > 0)
        .ok_or("--max-tokens must be between 1 and 2^32 - 1")?;
    Ok(Options {
        label: flag("label").unwrap_or_else(|| url.clone()),
        url,
        model,
        concurrency,
        requests,
        max_tokens,
        api_key: flag("api-key"),
    })
}

/// What one streamed response has told us so far.
#[derive(Debug, Default)]
struct SseState {
    first_token: Option<Instant>,
    content_chunks: u64,
    /// (prompt_tokens, completion_tokens) from the usage chunk.
    usage: Option<(u64, u64)>,
    done: bool,
}

impl SseState {
    /// Takes one line of the event stream (without its line end).
    fn line(&mut self, line: &str, now: Instant) -> Result<(), String> {
        let Some(data) = line.strip_prefix("data:") else {
            return Ok(()); // comments, `event:` lines, blank separators
        };
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let v: Value =
            serde_json::from_str(data).map_err(|e| format!("bad SSE data ({e}): {data}"))?;
        if let Some(error) = v.get("error").filter(|e| !e.is_null()) {
            return Err(format!("error in stream: {error}"));
        }
        let content = v["choices"][0]["delta"]["content"]
            .as_str()
            .or_else(|| v["choices"][0]["text"].as_str());
        if content.is_some_and(|c| !c.is_empty()) {
            self.content_chunks += 1;
            self.first_token.get_or_insert(now);
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            if let Some(completion) = u["completion_tokens"].as_u64() {
                self.usage = Some((u["prompt_tokens"].as_u64().unwrap_or(0), completion));
            }
        }
        Ok(())
    }
}

/// One finished request.
#[derive(Debug)]
struct Sample {
    sent: Instant,
    first_token: Option<Instant>,
    ended: Instant,
    completion_tokens: u64,
    prompt_tokens: Option<u64>,
    usage_reported: bool,
}

struct Client {
    http: reqwest::Client,
    opts: Options,
}

impl Client {
    async fn request(&self, index: usize) -> Result<Sample, String> {
        let body = json!({
            "model": self.opts.model,
            "messages": [{"role": "user", "content": PROMPTS[index % PROMPTS.len()]}],
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": 0,
            "ignore_eos": true,
            "max_tokens": self.opts.max_tokens,
        });
        let mut request = self
            .http
            .post(format!("{}/chat/completions", self.opts.url))
            .json(&body);
        if let Some(key) = &self.opts.api_key {
            request = request.bearer_auth(key);
        }
        let sent = Instant::now();
        let response = request.send().await.map_err(|e| error_chain(&e))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(format!("HTTP {status}: {}", text.trim()));
        }
        let mut state = SseState::default();
        let mut buffer: Vec<u8> = Vec::new();
        let mut body = response.bytes_stream();
        while let Some(bytes) = body.next().await {
            let bytes = bytes.map_err(|e| format!("reading the stream: {}", error_chain(&e)))?;
            let now = Instant::now();
            buffer.extend_from_slice(&bytes);
            while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                state.line(line.trim_end_matches(['\n', '\r']), now)?;
            }
        }
        let ended = Instant::now();
        if !state.done {
            return Err("the stream ended without `data: [DONE]`".into());
        }
        let (prompt_tokens, completion_tokens, usage_reported) = match state.usage {
            Some((p, c)) => (Some(p), c, true),
            None => (None, state.content_chunks, false),
        };
        if completion_tokens == 0 {
            return Err("the response carried no tokens".into());
        }
        Ok(Sample {
            sent,
            first_token: state.first_token,
            ended,
            completion_tokens,
            prompt_tokens,
            usage_reported,
        })
    }
}

/// Shared progress of a run.
#[derive(Default)]
struct Progress {
    samples: Vec<Sample>,
    errors: Vec<String>,
    failures: usize,
}

/// An error with its causes, e.g. "error sending request: connection closed".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Percentiles of `values` as JSON (null where there are no samples).
fn summary(values: &mut [f64], ps: &[(&str, f64)]) -> Value {
    values.sort_by(f64::total_cmp);
    let mut out = serde_json::Map::new();
    for (name, p) in ps {
        out.insert((*name).to_string(), json!(percentile(values, *p)));
    }
    out.insert("mean".into(), json!(mean(values)));
    Value::Object(out)
}

/// CPU time this process has used, in clock ticks (USER_HZ, as in /proc/stat), when the OS
/// tells (Linux). Lets a caller subtract the client's own work from machine-wide CPU use.
fn own_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn report(opts: &Options, progress: &Progress) -> Value {
    let samples = &progress.samples;
    let start = samples.iter().map(|s| s.sent).min();
    let end = samples.iter().map(|s| s.ended).max();
    let wall_s = match (start, end) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let completion_tokens: u64 = samples.iter().map(|s| s.completion_tokens).sum();
    let mut ttft: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.first_token.map(|f| ms(f - s.sent)))
        .collect();
    let mut e2e: Vec<f64> = samples.iter().map(|s| ms(s.ended - s.sent)).collect();
    let decode: Vec<f64> = samples
        .iter()
        .filter_map(|s| {
            let first = s.first_token?;
            let secs = (s.ended - first).as_secs_f64();
            (s.completion_tokens > 1 && secs > 0.0).then(|| (s.completion_tokens - 1) as f64 / secs)
        })
        .collect();
    let prompt: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.prompt_tokens.map(|p| p as f64))
        .collect();
    json!({
        "label": opts.label,
        "model": opts.model,
        "concurrency": opts.concurrency,
        "requests": samples.len(),
        "failures": progress.failures,
        "max_tokens": opts.max_tokens,
        "wall_s": wall_s,
        "completion_tokens": completion_tokens,
        "output_tok_s": if wall_s > 0.0 { completion_tokens as f64 / wall_s } else { 0.0 },
        "decode_tok_s_mean": mean(&decode),
        "ttft_ms": summary(&mut ttft, &[("p50", 50.0), ("p95", 95.0), ("p99", 99.0)]),
        "e2e_ms": summary(&mut e2e, &[("p50", 50.0), ("p95", 95.0)]),
        "prompt_tokens_mean": mean(&prompt),
        "usage_reported": samples.iter().all(|s| s.usage_reported),
        "client_cpu_ticks": own_cpu_ticks(),
        "errors": progress.errors,
    })
}

async fn run(opts: Options) -> Result<Value, String> {
    let http = reqwest::Client::builder()
        .no_proxy()
        // A fresh connection per request: llama-server (cpp-httplib) may close a kept-alive
        // connection just as the next request goes out on it ("connection closed before
        // message completed"). A loopback connect costs well under a millisecond, the same
        // for every server, and is part of the TTFT a new client would see anyway.
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| e.to_string())?;
    let client = Arc::new(Client { http, opts });
    let opts = &client.opts;
    let label = opts.label.clone();

    eprintln!("[{label}] warm-up request (not timed)");
    let warm = client
        .request(PROMPTS.len() - 1)
        .await
        .map_err(|e| format!("warm-up request to {} failed: {e}", opts.url))?;
    if !warm.usage_reported {
        eprintln!(
            "[{label}] note: no usage chunk; completion tokens are counted as content chunks"
        );
    }

    eprintln!(
        "[{label}] {} requests, {} in flight, max_tokens {}",
        opts.requests, opts.concurrency, opts.max_tokens
    );
    let next = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(Mutex::new(Progress::default()));
    let total = opts.requests;
    let workers: Vec<_> = (0..opts.concurrency)
        .map(|_| {
            let client = Arc::clone(&client);
            let next = Arc::clone(&next);
            let progress = Arc::clone(&progress);
            let label = label.clone();
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index >= total {
                        break;
                    }
                    let result = client.request(index).await;
                    let mut p = progress.lock().expect("progress lock");
                    match result {
                        Ok(sample) => p.samples.push(sample),
                        Err(e) => {
                            p.failures += 1;
                            eprintln!("[{label}] request {index} failed: {e}");
                            if p.errors.len() < MAX_ERRORS_REPORTED {
                                p.errors.push(e);
                            }
                        }
                    }
                    let done = p.samples.len() + p.failures;
                    // A line at every quarter (and at the end), not one per request.
                    if done * 4 / total != (done - 1) * 4 / total {
                        eprintln!("[{label}] {done}/{total} done ({} failed)", p.failures);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.map_err(|e| format!("worker panicked: {e}"))?;
    }
    let progress = progress.lock().expect("progress lock");
    Ok(report(opts, &progress))
}

fn main() -> ExitCode {
    self_test();
    // `cargo bench` passes `--bench`; everything else is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.iter().any(|a| a == "--self-test") {
        eprintln!("serve_load: self-test passed");
        return ExitCode::SUCCESS;
    }
    let opts = match parse_options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("serve_load: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("serve_load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(opts)) {
        Ok(report) => {
            let f = |k: &str| report[k].as_f64().unwrap_or(f64::NAN);
            let t = |k: &str| report["ttft_ms"][k].as_f64().unwrap_or(f64::NAN);
            eprintln!(
                "[{}] c={} n={} failed={}: {:.1} output tok/s, {:.1} tok/s per request, \
                 TTFT p50 {:.1} ms p95 {:.1} ms, wall {:.1} s",
                report["label"].as_str().unwrap_or(""),
                report["concurrency"],
                report["requests"],
                report["failures"],
                f("output_tok_s"),
                f("decode_tok_s_mean"),
                t("p50"),
                t("p95"),
                f("wall_s"),
            );
            println!("{report}");
            if report["requests"].as_u64() == Some(0) {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("serve_load: {e}");
            ExitCode::FAILURE
        }
    }
}
