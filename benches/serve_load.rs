//! A closed-loop load generator for OpenAI-compatible servers (hearth's `hearth serve`, or
//! llama.cpp's `llama-server`): `concurrency` workers each send one streamed
//! `/chat/completions` request, wait for its last byte, and send the next, until `requests`
//! have been sent in all. Untimed warm-up requests go first.
//!
//! Not a test: run it with `cargo bench --bench serve_load -- --url URL --model NAME ...`, or
//! through `perf/serve-vs-llama-server.sh`, which runs it against both servers.
//!
//! Every request: `stream: true`, `stream_options: {include_usage: true}`, `temperature: 0`,
//! `ignore_eos: true` (so each generates exactly `max_tokens`). What it asks depends on the
//! workload (`--workload`):
//! * `repeated` — a prompt from a fixed rotation of 16 distinct short prompts (~43 tokens once
//!   templated), so prompts repeat across requests, levels and runs. The warm-up also sends
//!   every prompt of the rotation once (1 token each), so every timed request repeats a prompt
//!   the server has already seen: what a server keeps of earlier prompts decides its TTFT.
//! * `distinct` — every prompt is unique: three words drawn from a hash of the request and its
//!   nonce (`index.seed`) open the user message, then a question from the rotation (~50–60
//!   tokens templated). Nothing beyond the chat template's preamble (and, 1 time in 64, a
//!   first word) is shared with any other request of the run, nor with a run under another
//!   `--seed`.
//! * `set` — the prompts of a `--prompt-set` file (a hearth prompt set, e.g.
//!   `src/bench/prompts/structured.json`), in turn: each request sends its prompt with its
//!   `response_format` and `max_tokens`, and without `ignore_eos` (a structured answer ends
//!   where its document does; compare `decode_tok_s_mean` between sets, not lengths).
//! * `chat` — multi-turn conversations: each worker runs conversations of `--turns` turns. All
//!   share one ~70-token system prompt; the first user message opens with a nonce as above;
//!   every later turn resends the whole history: each earlier answer (the text the server
//!   streamed) and a new user message. `--requests` counts turns: ⌈requests / turns⌉
//!   conversations are run.
//!
//! Options (flag, else environment variable, else default):
//! * `--url`          `SERVE_LOAD_URL`          base URL ending in /v1 (required)
//! * `--model`        `SERVE_LOAD_MODEL`        model name sent in each request (required)
//! * `--workload`     `SERVE_LOAD_WORKLOAD`     repeated, distinct, chat or set (default
//!   repeated; set when `--prompt-set` is given)
//! * `--prompt-set`   `SERVE_LOAD_PROMPT_SET`   the `set` workload's prompts (JSON file)
//! * `--seed`         `SERVE_LOAD_SEED`         nonce of distinct and chat prompts (default 0);
//!   runs with different seeds send disjoint prompts
//! * `--turns`        `SERVE_LOAD_TURNS`        turns per chat conversation (default 5)
//! * `--concurrency`  `SERVE_LOAD_CONCURRENCY`  requests in flight (default 1)
//! * `--requests`     `SERVE_LOAD_REQUESTS`     total timed requests (default 8 × concurrency)
//! * `--requests-per-worker` `SERVE_LOAD_REQUESTS_PER_WORKER` alternative to `--requests`
//! * `--max-tokens`   `SERVE_LOAD_MAX_TOKENS`   tokens generated per request (default 128)
//! * `--api-key`      `SERVE_LOAD_API_KEY`      bearer key, if the server wants one
//! * `--label`        `SERVE_LOAD_LABEL`        name echoed in the report and progress lines
//! * `--self-test`    check the statistics helpers and prompt makers, and exit
//!
//! stdout: one JSON line: `label`, `model`, `workload`, `seed`, `turns` (chat), `concurrency`,
//! `requests` (succeeded), `failures`, `max_tokens`, `wall_s`, `completion_tokens`,
//! `output_tok_s`, `decode_tok_s_mean`, `ttft_ms` {p50, p95, p99, mean}, `e2e_ms` {p50, p95,
//! mean}, `prompt_tokens_mean`, `usage_reported`, the server's own prompt accounting
//! (`prompt_computed_mean`, `prompt_reused_mean`, `prompt_reused_share_max`,
//! `usage_cached_tokens_mean`, `timings_reported`), speculative drafts (`draft_tokens`,
//! `draft_accepted`), `per_turn` (chat: per turn index, `requests`, `ttft_ms`,
//! `prompt_computed_mean`, `prompt_reused_mean`), `client_cpu_ticks` (this process's CPU time,
//! USER_HZ ticks) and `errors` (the first few). stderr: progress and a one-line summary.
//!
//! Definitions: TTFT is send → first chunk with non-empty `delta.content`; e2e is send → end
//! of the response body; aggregate output tokens/s is the sum of completion tokens divided by
//! the wall time from the first send to the last end; per-request decode tokens/s is
//! `(completion_tokens - 1) / (end - first token)`. Completion tokens come from the usage chunk;
//! a server that sends none is counted by content chunks instead (`usage_reported: false`).
//! Prompt tokens computed / reused are the server's `timings.prompt_n` / `timings.cache_n`
//! (llama-server's block, which hearth sends too, on the last chunks of a stream), else
//! `usage.prompt_tokens` minus / `usage.prompt_tokens_details.cached_tokens`;
//! `prompt_reused_share_max` is the largest reused / (computed + reused) of one request.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

/// Distinct short prompts: the `repeated` workload's rotation, and the questions that close
/// `distinct` and chat-opening prompts. Their first words differ, so beyond the chat template's
/// shared preamble no two of them share a prefix.
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

/// Words drawn (by each request's nonce) into distinct and chat prompts, so that unique
/// prompts also differ in their words, not only in a number.
const WORDS: [&str; 64] = [
    "amber", "anchor", "badger", "basalt", "beacon", "birch", "bramble", "canyon", "cedar",
    "cobalt", "comet", "copper", "coral", "cricket", "delta", "dune", "ember", "falcon", "fern",
    "fjord", "garnet", "glacier", "granite", "harbor", "hazel", "heron", "indigo", "iris",
    "jasper", "juniper", "kestrel", "lagoon", "lantern", "lichen", "maple", "marble", "meadow",
    "nebula", "nutmeg", "oasis", "obsidian", "orchid", "otter", "pebble", "pepper", "quartz",
    "quill", "raven", "reef", "saffron", "sequoia", "sparrow", "tundra", "thistle", "umber",
    "velvet", "violet", "walnut", "willow", "yarrow", "zephyr", "zinc", "orbit", "prairie",
];

/// The system prompt every chat conversation starts with (~70 tokens), shared by all of them:
/// a server that keeps it need not compute it again.
const CHAT_SYSTEM: &str = "You are Juniper, a patient and friendly assistant for a community \
library. Answer in plain English, in short paragraphs, and stay on the topic the visitor raises. \
When a question is vague, make a sensible assumption and say what it is. Prefer concrete \
examples over abstract advice, avoid jargon, and never invent book titles or facts you are \
unsure of.";

/// The user messages of chat turns 2, 3, ... (rotated past the end).
const FOLLOW_UPS: [&str; 4] = [
    "Thanks. Can you give me one concrete example of that?",
    "What is the most common mistake people make with this?",
    "Could you summarise everything so far in two sentences?",
    "How would you explain the same thing to a ten year old?",
];

/// Most error messages kept in the report.
const MAX_ERRORS_REPORTED: usize = 5;

/// What the requests ask (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Repeated,
    Distinct,
    Chat,
    Set,
}

impl Workload {
    fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "repeated" => Ok(Self::Repeated),
            "distinct" => Ok(Self::Distinct),
            "chat" => Ok(Self::Chat),
            "set" => Ok(Self::Set),
            other => Err(format!(
                "--workload {other:?} is not one of repeated, distinct, chat, set"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Repeated => "repeated",
            Self::Distinct => "distinct",
            Self::Chat => "chat",
            Self::Set => "set",
        }
    }
}

/// SplitMix64: a small, well-mixed hash of one number (Steele, Lea and Flood 2014), enough
/// to pick a request's words and question; no randomness crate's stream is needed.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The opening of a unique prompt: three words drawn from the request's hash, then its nonce
/// `index.seed` (unique by construction), e.g. `Heron, basalt, quill [12.7].`; `index` None is
/// the warm-up's. The words come first so that two requests' prompts part at their first
/// word (63 times in 64), not after a shared `[` and seed. Returns the opening and the hash
/// the rest of the prompt is picked with.
fn nonce(seed: u64, index: Option<usize>) -> (String, u64) {
    let tag = index.map_or_else(|| "w".to_string(), |i| i.to_string());
    let h = splitmix64(splitmix64(seed) ^ index.map_or(u64::MAX, |i| i as u64));
    let word = |shift: u32| WORDS[((h >> shift) % WORDS.len() as u64) as usize];
    let first = word(0);
    let capital = first[..1].to_uppercase() + &first[1..];
    (
        format!("{capital}, {}, {} [{tag}.{seed}].", word(8), word(16)),
        h,
    )
}

/// The `distinct` workload's prompt of request `index` (None: the warm-up's).
fn distinct_prompt(seed: u64, index: Option<usize>) -> String {
    let (opening, h) = nonce(seed, index);
    let question = PROMPTS[((h >> 32) % PROMPTS.len() as u64) as usize];
    format!("{opening} {question}")
}

/// The first user message of chat conversation `index` (None: the warm-up's).
fn chat_opening(seed: u64, index: Option<usize>) -> String {
    distinct_prompt(seed, index)
}

/// The user message of chat turn `turn` (1-based; turn 1 is the opening).
fn chat_follow_up(turn: usize) -> &'static str {
    FOLLOW_UPS[(turn.max(2) - 2) % FOLLOW_UPS.len()]
}

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

/// Checks the statistics helpers, the SSE reader and the prompt makers on hand-made inputs
/// (run at every start; cheap).
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
        r#"data: {"choices":[{"delta":{},"finish_reason":"length"}],"timings":{"prompt_n":5,"cache_n":4,"prompt_ms":12.5,"draft_n":6,"draft_n_accepted":3}}"#,
        t,
    )
    .unwrap();
    s.line(
        r#"data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}"#,
        t,
    )
    .unwrap();
    s.line("data: [DONE]", t).unwrap();
    assert_eq!(s.first_token, Some(t));
    assert_eq!((s.content_chunks, s.usage), (2, Some((9, 3))));
    assert_eq!(s.text, "Hi there");
    assert_eq!(s.cached_tokens, Some(4));
    assert_eq!(
        s.timings,
        Some(ServerTimings {
            prompt_n: 5,
            cache_n: 4,
            draft_n: 6,
            draft_n_accepted: 3
        })
    );
    assert!(s.done);
    assert!(SseState::default()
        .line(r#"data: {"error":{"message":"boom"}}"#, t)
        .is_err());

    // Unique prompts: no two share an opening (words and nonce), across indices and seeds,
    // and their first words vary.
    let mut seen = std::collections::HashSet::new();
    let mut first_words = std::collections::HashSet::new();
    for seed in [1, 2] {
        for index in (0..500).map(Some).chain([None]) {
            let p = distinct_prompt(seed, index);
            let opening = p.split("]. ").next().unwrap().to_string();
            first_words.insert(p.split(',').next().unwrap().to_string());
            assert!(seen.insert(opening), "duplicate prompt opening: {p}");
        }
    }
    assert!(first_words.len() > 48, "first words vary too little");
    assert!(distinct_prompt(3, Some(0)).contains(" [0.3]. "));
    assert_eq!(chat_follow_up(2), FOLLOW_UPS[0]);
    assert_eq!(chat_follow_up(6), FOLLOW_UPS[0]);
    assert_eq!(Workload::parse("chat"), Ok(Workload::Chat));
    assert!(Workload::parse("nope").is_err());
}

/// Command-line options, each also settable by environment.
#[derive(Debug)]
struct Options {
    url: String,
    model: String,
    workload: Workload,
    seed: u64,
    turns: usize,
    concurrency: usize,
    requests: usize,
    max_tokens: u32,
    api_key: Option<String>,
    label: String,
    /// The `set` workload's prompts.
    set: Vec<SetItem>,
}

/// One prompt of a `--prompt-set` file: the user message, and what the request adds.
#[derive(Clone, Debug, serde::Deserialize)]
struct SetItem {
    prompt: String,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    max_tokens: Option<u32>,
}

/// Reads a `--prompt-set` file (a hearth prompt set: a list of `{prompt, response_format,
/// max_tokens}` objects; other fields are ignored).
fn read_set(path: &str) -> Result<Vec<SetItem>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--prompt-set {path}: {e}"))?;
    let set: Vec<SetItem> =
        serde_json::from_str(&text).map_err(|e| format!("--prompt-set {path}: {e}"))?;
    if set.is_empty() {
        return Err(format!("--prompt-set {path} holds no prompt"));
    }
    Ok(set)
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
    let set = flag("prompt-set").map(|p| read_set(&p)).transpose()?;
    let default_workload = if set.is_some() {
        Workload::Set
    } else {
        Workload::Repeated
    };
    let workload = flag("workload").map_or(Ok(default_workload), |w| Workload::parse(&w))?;
    if (workload == Workload::Set) != set.is_some() {
        return Err("--prompt-set FILE and --workload set go together".into());
    }
    let set = set.unwrap_or_default();
    let seed = number("seed")?.unwrap_or(0) as u64;
    let turns = number("turns")?.unwrap_or(5);
    if turns == 0 {
        return Err("--turns must be at least 1".into());
    }
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
        workload,
        seed,
        turns,
        concurrency,
        requests,
        max_tokens,
        api_key: flag("api-key"),
        set,
    })
}

/// The server's own prompt accounting and drafts (its `timings` block).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ServerTimings {
    /// Prompt tokens computed by this request.
    prompt_n: u64,
    /// Prompt tokens reused from the server's cache.
    cache_n: u64,
    /// Tokens drafted by speculative decoding (0 when the server sends none).
    draft_n: u64,
    draft_n_accepted: u64,
}

/// What one streamed response has told us so far.
#[derive(Debug, Default)]
struct SseState {
    first_token: Option<Instant>,
    content_chunks: u64,
    /// The streamed answer (chat turns send it back in the next request).
    text: String,
    /// (prompt_tokens, completion_tokens) from the usage chunk.
    usage: Option<(u64, u64)>,
    /// `usage.prompt_tokens_details.cached_tokens`.
    cached_tokens: Option<u64>,
    /// The last `timings` block seen.
    timings: Option<ServerTimings>,
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
        if let Some(c) = content.filter(|c| !c.is_empty()) {
            self.content_chunks += 1;
            self.first_token.get_or_insert(now);
            self.text.push_str(c);
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            if let Some(completion) = u["completion_tokens"].as_u64() {
                self.usage = Some((u["prompt_tokens"].as_u64().unwrap_or(0), completion));
            }
            if let Some(cached) = u["prompt_tokens_details"]["cached_tokens"].as_u64() {
                self.cached_tokens = Some(cached);
            }
        }
        if let Some(t) = v.get("timings").filter(|t| t.is_object()) {
            // llama-server leaves out (or sends -1 for) what it did not measure.
            let count = |key: &str| t[key].as_i64().filter(|&n| n >= 0).map(|n| n as u64);
            if let Some(prompt_n) = count("prompt_n") {
                self.timings = Some(ServerTimings {
                    prompt_n,
                    cache_n: count("cache_n").unwrap_or(0),
                    draft_n: count("draft_n").unwrap_or(0),
                    draft_n_accepted: count("draft_n_accepted").unwrap_or(0),
                });
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
    cached_tokens: Option<u64>,
    timings: Option<ServerTimings>,
    /// 1-based turn of a chat conversation; 0 outside the chat workload.
    turn: usize,
    /// The streamed answer.
    text: String,
}

impl Sample {
    /// (computed, reused) prompt tokens, by the server's timings, else its usage.
    fn prompt_accounting(&self) -> Option<(u64, u64)> {
        if let Some(t) = self.timings {
            return Some((t.prompt_n, t.cache_n));
        }
        let cached = self.cached_tokens?;
        let prompt = self.prompt_tokens?;
        Some((prompt.saturating_sub(cached), cached))
    }
}

struct Client {
    http: reqwest::Client,
    opts: Options,
}

impl Client {
    /// The messages of a one-turn request (repeated and distinct workloads); `index` None is
    /// the warm-up's.
    fn single_turn(&self, index: Option<usize>) -> Value {
        let prompt = match self.opts.workload {
            Workload::Repeated => {
                PROMPTS[index.unwrap_or(PROMPTS.len() - 1) % PROMPTS.len()].to_string()
            }
            Workload::Distinct => distinct_prompt(self.opts.seed, index),
            Workload::Set => self.set_item(index).prompt.clone(),
            Workload::Chat => {
                return json!([
                    {"role": "system", "content": CHAT_SYSTEM},
                    {"role": "user", "content": chat_opening(self.opts.seed, index)},
                ])
            }
        };
        json!([{"role": "user", "content": prompt}])
    }

    /// The `set` workload's prompt for request `index` (the warm-up's: the first).
    fn set_item(&self, index: Option<usize>) -> &SetItem {
        &self.opts.set[index.unwrap_or(0) % self.opts.set.len()]
    }

    async fn request(
        &self,
        messages: &Value,
        max_tokens: u32,
        turn: usize,
    ) -> Result<Sample, String> {
        self.request_with(messages, max_tokens, turn, None).await
    }

    /// A request; with a `set` item, its `response_format` and `max_tokens`, and no
    /// `ignore_eos`: a structured answer ends where its document does (a server would
    /// otherwise go on sampling end-of-text past the grammar's end).
    async fn request_with(
        &self,
        messages: &Value,
        max_tokens: u32,
        turn: usize,
        item: Option<&SetItem>,
    ) -> Result<Sample, String> {
        let mut body = json!({
            "model": self.opts.model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": 0,
            "ignore_eos": item.is_none(),
            "max_tokens": item.and_then(|i| i.max_tokens).unwrap_or(max_tokens),
        });
        if let Some(format) = item.and_then(|i| i.response_format.as_ref()) {
            body["response_format"] = format.clone();
        }
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
            cached_tokens: state.cached_tokens,
            timings: state.timings,
            turn,
            text: state.text,
        })
    }
}

/// Shared progress of a run.
struct Progress {
    samples: Vec<Sample>,
    errors: Vec<String>,
    failures: usize,
    /// Requests the run will send in all.
    total: usize,
    label: String,
}

impl Progress {
    /// Records one request's outcome and prints a line at every quarter of the run.
    fn record(&mut self, what: &str, result: Result<Sample, String>) -> bool {
        let ok = match result {
            Ok(sample) => {
                self.samples.push(sample);
                true
            }
            Err(e) => {
                self.failures += 1;
                eprintln!("[{}] {what} failed: {e}", self.label);
                if self.errors.len() < MAX_ERRORS_REPORTED {
                    self.errors.push(e);
                }
                false
            }
        };
        let done = self.samples.len() + self.failures;
        let total = self.total.max(1);
        // A line at every quarter (and at the end), not one per request.
        if done * 4 / total != (done - 1) * 4 / total {
            eprintln!(
                "[{}] {done}/{} done ({} failed)",
                self.label, self.total, self.failures
            );
        }
        ok
    }
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

fn ttft_ms(samples: &[&Sample]) -> Vec<f64> {
    samples
        .iter()
        .filter_map(|s| s.first_token.map(|f| ms(f - s.sent)))
        .collect()
}

/// Mean prompt tokens computed and reused per request, by the server's own accounting.
fn prompt_means(samples: &[&Sample]) -> (Option<f64>, Option<f64>) {
    let accounted: Vec<(u64, u64)> = samples
        .iter()
        .filter_map(|s| s.prompt_accounting())
        .collect();
    let computed: Vec<f64> = accounted.iter().map(|a| a.0 as f64).collect();
    let reused: Vec<f64> = accounted.iter().map(|a| a.1 as f64).collect();
    (mean(&computed), mean(&reused))
}

fn report(opts: &Options, progress: &Progress) -> Value {
    let samples: Vec<&Sample> = progress.samples.iter().collect();
    let start = samples.iter().map(|s| s.sent).min();
    let end = samples.iter().map(|s| s.ended).max();
    let wall_s = match (start, end) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let completion_tokens: u64 = samples.iter().map(|s| s.completion_tokens).sum();
    let mut ttft = ttft_ms(&samples);
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
    let (computed, reused) = prompt_means(&samples);
    let reused_share_max = samples
        .iter()
        .filter_map(|s| s.prompt_accounting())
        .filter(|&(c, r)| c + r > 0)
        .map(|(c, r)| r as f64 / (c + r) as f64)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let cached: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.cached_tokens.map(|c| c as f64))
        .collect();
    let timings: Vec<ServerTimings> = samples.iter().filter_map(|s| s.timings).collect();
    let per_turn: Vec<Value> = if opts.workload == Workload::Chat {
        (1..=opts.turns)
            .map(|turn| {
                let of_turn: Vec<&Sample> =
                    samples.iter().copied().filter(|s| s.turn == turn).collect();
                let (computed, reused) = prompt_means(&of_turn);
                json!({
                    "turn": turn,
                    "requests": of_turn.len(),
                    "ttft_ms": summary(&mut ttft_ms(&of_turn), &[("p50", 50.0), ("p95", 95.0)]),
                    "prompt_computed_mean": computed,
                    "prompt_reused_mean": reused,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "label": opts.label,
        "model": opts.model,
        "workload": opts.workload.name(),
        "seed": opts.seed,
        "turns": (opts.workload == Workload::Chat).then_some(opts.turns),
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
        "prompt_computed_mean": computed,
        "prompt_reused_mean": reused,
        "prompt_reused_share_max": reused_share_max,
        "usage_cached_tokens_mean": mean(&cached),
        "timings_reported": timings.len(),
        "draft_tokens": timings.iter().map(|t| t.draft_n).sum::<u64>(),
        "draft_accepted": timings.iter().map(|t| t.draft_n_accepted).sum::<u64>(),
        "per_turn": per_turn,
        "client_cpu_ticks": own_cpu_ticks(),
        "errors": progress.errors,
    })
}

/// One worker of a one-turn workload: takes request indices until `total` are taken.
async fn single_turn_worker(
    client: Arc<Client>,
    next: Arc<AtomicUsize>,
    progress: Arc<Mutex<Progress>>,
) {
    let total = client.opts.requests;
    loop {
        let index = next.fetch_add(1, Ordering::SeqCst);
        if index >= total {
            break;
        }
        let messages = client.single_turn(Some(index));
        let item = (client.opts.workload == Workload::Set).then(|| client.set_item(Some(index)));
        let result = client
            .request_with(&messages, client.opts.max_tokens, 0, item)
            .await;
        let mut p = progress.lock().expect("progress lock");
        p.record(&format!("request {index}"), result);
    }
}

/// One worker of the chat workload: takes conversations until `conversations` are taken and
/// runs each turn by turn, resending the history with each answer as it was streamed. A failed
/// turn ends its conversation (the turns left are not sent).
async fn chat_worker(
    client: Arc<Client>,
    next: Arc<AtomicUsize>,
    progress: Arc<Mutex<Progress>>,
    conversations: usize,
) {
    let opts = &client.opts;
    loop {
        let index = next.fetch_add(1, Ordering::SeqCst);
        if index >= conversations {
            break;
        }
        let mut messages = client.single_turn(Some(index));
        for turn in 1..=opts.turns {
            if turn > 1 {
                let history = messages.as_array_mut().expect("messages are a list");
                history.push(json!({"role": "user", "content": chat_follow_up(turn)}));
            }
            let result = client.request(&messages, opts.max_tokens, turn).await;
            let answer = result.as_ref().ok().map(|s| s.text.clone());
            let ok = progress
                .lock()
                .expect("progress lock")
                .record(&format!("conversation {index} turn {turn}"), result);
            let Some(answer) = answer.filter(|_| ok) else {
                break;
            };
            let history = messages.as_array_mut().expect("messages are a list");
            history.push(json!({"role": "assistant", "content": answer}));
        }
    }
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

    eprintln!(
        "[{label}] {} workload: warm-up (not timed)",
        opts.workload.name()
    );
    let warm = client
        .request(&client.single_turn(None), opts.max_tokens, 0)
        .await
        .map_err(|e| format!("warm-up request to {} failed: {e}", opts.url))?;
    if !warm.usage_reported {
        eprintln!(
            "[{label}] note: no usage chunk; completion tokens are counted as content chunks"
        );
    }
    if warm.prompt_accounting().is_none() {
        eprintln!("[{label}] note: the server reports neither timings nor cached tokens");
    }
    if opts.workload == Workload::Repeated {
        // Every prompt of the rotation once (the warm-up sent the last), one token each: the
        // timed requests then all repeat prompts the server has seen.
        for index in 0..PROMPTS.len() - 1 {
            client
                .request(&client.single_turn(Some(index)), 1, 0)
                .await
                .map_err(|e| format!("priming request {index} to {} failed: {e}", opts.url))?;
        }
    }

    let conversations = opts.requests.div_ceil(opts.turns);
    let total = match opts.workload {
        Workload::Chat => conversations * opts.turns,
        _ => opts.requests,
    };
    match opts.workload {
        Workload::Chat => eprintln!(
            "[{label}] {conversations} conversations of {} turns, {} in flight, max_tokens {}",
            opts.turns, opts.concurrency, opts.max_tokens
        ),
        _ => eprintln!(
            "[{label}] {total} requests, {} in flight, max_tokens {}",
            opts.concurrency, opts.max_tokens
        ),
    }
    let next = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(Mutex::new(Progress {
        samples: Vec::new(),
        errors: Vec::new(),
        failures: 0,
        total,
        label: label.clone(),
    }));
    let workers: Vec<_> = (0..opts.concurrency)
        .map(|_| {
            let client = Arc::clone(&client);
            let next = Arc::clone(&next);
            let progress = Arc::clone(&progress);
            match opts.workload {
                Workload::Chat => tokio::spawn(chat_worker(client, next, progress, conversations)),
                _ => tokio::spawn(single_turn_worker(client, next, progress)),
            }
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
                "[{}] {} c={} n={} failed={}: {:.1} output tok/s, {:.1} tok/s per request, \
                 TTFT p50 {:.1} ms p95 {:.1} ms, prompt computed/reused {:.1}/{:.1}, wall {:.1} s",
                report["label"].as_str().unwrap_or(""),
                report["workload"].as_str().unwrap_or(""),
                report["concurrency"],
                report["requests"],
                report["failures"],
                f("output_tok_s"),
                f("decode_tok_s_mean"),
                t("p50"),
                t("p95"),
                f("prompt_computed_mean"),
                f("prompt_reused_mean"),
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
