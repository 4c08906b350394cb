//! `hearth bench`: measures candidate models (and runtimes) on this machine.
//!
//! Every target is an OpenAI-compatible endpoint measured over HTTP by the same client: local
//! aliases are served for the run by hearth's own server on a loopback port, external servers
//! (llama-server, Ollama, vLLM, Foundry Local, another hearth) are named by URL. For each model
//! and load level: warm-up rounds (recorded, never counted), timed rounds, resources and the
//! server's own metrics sampled on the same clock. Every record goes to the store as soon as it
//! exists; reports are rendered from the store afterwards.
//!
//! Rooms: [`load`] (arrival schedules, running a round), [`client`] (one request, raw
//! instants), [`resources`] and [`scrape`] (what serving costs, the server's view) with the
//! per-level accounting in `measure`, [`recorder`] (writes to the store), [`mock`] (a
//! scripted server) and [`calibrate`] (the client's own floor against it).

pub mod calibrate;
pub mod client;
pub mod environment;
pub mod gpu;
pub mod load;
mod measure;
pub mod mock;
pub mod prompts;
pub mod recorder;
pub mod resources;
pub mod scrape;
pub mod session;
pub mod workload;

pub use calibrate::{calibrate, Calibration};

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use client::{Clock, Endpoint, Job, RequestParams};
use prompts::PromptSpec;
use recorder::Recorder;
use resources::ProcessProbe;

use crate::openai;
use crate::store::record::{
    LoadShape, ModelRecord, ModelStatus, RequestRecord, RequestStatus, TokenSource,
};
use crate::store::StoreError;

/// Why a benchmark could not run (one model failing is not this: it is recorded and the run
/// goes on).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The history store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A helper thread could not start or died.
    #[error("benchmark thread: {0}")]
    Thread(std::io::Error),
}

/// Whether repeated prompts may be answered from the server's prompt cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptCache {
    /// Every request's prompt is made unique with a short nonce prefix, for every runtime
    /// alike, so no request is served from a cache of an earlier one.
    Cold,
    /// Prompts repeat word for word across rounds: later rounds time cache hits, as a chat
    /// app with a fixed system prompt would see.
    Warm,
}

/// What to measure, resolved from flags, environment and defaults.
#[derive(Clone, Debug, Serialize)]
pub struct BenchOptions {
    /// The prompt set.
    pub prompts: Vec<PromptSpec>,
    /// Load levels, measured in order for each model.
    pub shapes: Vec<LoadShape>,
    /// Warm-up rounds per level (recorded as round 0, never counted).
    pub warmup: u32,
    /// Timed rounds per level.
    pub rounds: u32,
    /// Requests per round (default: the prompt set, at least as many as the concurrency).
    pub requests_per_round: Option<u32>,
    /// Most tokens per answer, unless a prompt says otherwise.
    pub max_tokens: u32,
    /// Stream answers (TTFT and ITL need it).
    pub stream: bool,
    /// Sampling temperature.
    pub temperature: f32,
    /// Sampling and schedule seed.
    pub seed: u64,
    /// Ask servers to ignore end-of-sequence (fixed-length answers).
    pub ignore_eos: bool,
    /// Per-request time limit, seconds.
    pub timeout_secs: f64,
    /// Prompt-cache policy.
    pub prompt_cache: PromptCache,
    /// Service-level objectives for goodput, milliseconds by metric (`ttft_ms`, `e2e_ms`…).
    pub slo: HashMap<String, f64>,
    /// Price of a kWh for the cost estimate.
    pub energy_price_per_kwh: f64,
    /// How often resources and server metrics are sampled, milliseconds.
    pub sample_interval_ms: u64,
    /// Prompt lengths to generate instead of the prompt set's texts (filler fitted with the
    /// server's tokenizer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<workload::TokenLengths>,
    /// Answer lengths to ask for (end-of-sequence ignored, so each answer has its length).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<workload::TokenLengths>,
    /// Context depths, tokens: each level is measured once per depth, every prompt behind
    /// that much distinct filler context (empty: prompts as they are).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depths: Vec<u32>,
    /// Find each model's saturation instead of measuring `shapes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
    /// End an open-loop level early once the server falls behind its arrivals, judged over
    /// this many seconds (on in sweeps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_over_saturated_secs: Option<f64>,
    /// Measure the targets in alternating rounds of one session (A B, then B A, …) instead of
    /// one after another, so `compare` can pair their rounds and the machine's drift cancels.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interleave: bool,
}

/// A sweep, as GuideLLM's: the synchronous point (one request at a time), the most the
/// server can do (many requests in flight), then open-loop rates spread between the two and
/// one step past the top, so the report shows where latency turns up (the knee) and which
/// rate the server no longer keeps up with.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sweep {
    /// Open-loop rates measured after the two bounds.
    pub rates: u32,
    /// Requests in flight for the throughput bound.
    pub max_concurrency: u32,
    /// Arrival burstiness of the rate levels (1 = Poisson).
    pub burstiness: f64,
}

impl Sweep {
    /// The sweep's open-loop rates, requests/s, from the two measured bounds: `rates` evenly
    /// spaced steps above the synchronous rate, the last but one at the maximum and the last
    /// one step beyond it; for a server that does not scale, around its capacity instead.
    /// Rounded to three significant digits, so level labels stay short.
    /// Empty when a bound is missing (nothing succeeded there).
    pub fn rates_between(&self, synchronous: f64, maximum: f64) -> Vec<f64> {
        if !(synchronous > 0.0 && maximum > 0.0) || self.rates == 0 {
            return Vec::new();
        }
        let top = maximum.max(synchronous);
        let n = f64::from(self.rates);
        let raw: Vec<f64> = if top < synchronous * crate::store::record::SCALING_MIN_RATIO {
            // A server that does not scale with concurrency (the most at once within a fifth
            // of one at a time: one slot, as Foundry Local serves) has no range between its
            // bounds. Its rates are placed around that capacity instead, from half of it to 30%
            // past it (far enough past for the detector to see the queue grow within a level),
            // so the levels show where it keeps up and where it falls behind.
            let share = |i: f64| {
                if n == 1.0 {
                    1.3
                } else {
                    0.5 + 0.8 * i / (n - 1.0)
                }
            };
            (0..self.rates).map(|i| top * share(f64::from(i))).collect()
        } else {
            let step = if n == 1.0 {
                top - synchronous
            } else {
                (top - synchronous) / (n - 1.0)
            };
            (1..=self.rates)
                .map(|i| synchronous + step * f64::from(i))
                .collect()
        };
        let mut rates: Vec<f64> = raw.into_iter().map(|r| round_significant(r, 3)).collect();
        rates.dedup();
        rates
    }
}

/// `x` rounded to `digits` significant digits.
fn round_significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// One thing to measure.
#[derive(Clone, Debug)]
pub struct Target {
    /// The model record as known before measuring (name, backend, licence, size…).
    pub model: ModelRecord,
    /// Where requests go.
    pub endpoint: Endpoint,
    /// The serving process, when it can be watched (hearth's own, or `--pid`).
    pub probe: Option<ProcessProbe>,
    /// Served by hearth for this run: loaded before and unloaded after through the lifecycle
    /// API, and its cold load timed.
    pub managed: bool,
}

/// Live progress, so a long run shows where it is.
pub trait Progress: Send + Sync {
    /// A model starts; `planned` requests will be sent for it.
    fn model_started(&self, model: &str, planned: u64);
    /// A level or round starts.
    fn stage(&self, model: &str, stage: &str);
    /// A request finished.
    fn request_done(&self, model: &str, ok: bool);
    /// A model is done.
    fn model_finished(&self, model: &str, status: ModelStatus, error: Option<&str>);
}

/// How many requests a round of `shape` sends.
pub fn requests_per_round(options: &BenchOptions, shape: &LoadShape) -> u32 {
    if let Some(n) = options.requests_per_round {
        return n.max(1);
    }
    let prompts = options.prompts.len() as u32;
    let width = match shape {
        LoadShape::Concurrency { concurrency } => *concurrency,
        LoadShape::Rate {
            rate,
            max_concurrency,
            ..
        } => {
            // Arrivals must outlast two saturation windows for the detector to judge them.
            let seconds = options
                .stop_over_saturated_secs
                .map_or(4.0, |w| (2.0 * w).max(4.0));
            max_concurrency
                .unwrap_or(0)
                .max((rate * seconds).ceil() as u32)
        }
    };
    prompts.max(width).max(1)
}

/// The load levels of a model: the asked shapes, or a sweep's two bounds (its rates are
/// known only once the bounds are measured).
fn first_shapes(options: &BenchOptions) -> Vec<LoadShape> {
    match options.sweep {
        Some(sweep) => vec![
            LoadShape::Concurrency { concurrency: 1 },
            LoadShape::Concurrency {
                concurrency: sweep.max_concurrency.max(2),
            },
        ],
        None => options.shapes.clone(),
    }
}

/// Requests planned for one model in all (a sweep's rate levels counted once they are known).
pub fn planned_requests(options: &BenchOptions) -> u64 {
    first_shapes(options)
        .iter()
        .map(|s| {
            u64::from(requests_per_round(options, s)) * u64::from(options.warmup + options.rounds)
        })
        .sum()
}

fn jobs_for_round(options: &BenchOptions, shape: &LoadShape, round: u32, run_id: &str) -> Vec<Job> {
    let n = requests_per_round(options, shape);
    (0..n)
        .map(|i| {
            let spec = &options.prompts[i as usize % options.prompts.len()];
            let seq = round * n + i;
            let prompt = match options.prompt_cache {
                PromptCache::Warm => spec.prompt.clone(),
                PromptCache::Cold => {
                    let nonce = &run_id[run_id.len().saturating_sub(4)..];
                    format!("(ref {nonce}-{}-{seq}) {}", shape.label(), spec.prompt)
                }
            };
            Job {
                prompt_id: spec.id.clone(),
                prompt,
                max_tokens: spec.max_tokens.unwrap_or(options.max_tokens),
                round,
                seq,
                response_format: spec.response_format.clone(),
            }
        })
        .collect()
}

/// A cold-cache prompt split into its nonce (`(ref …) `, as `jobs_for_round` writes it) and
/// the rest; `("", prompt)` for a prompt without one.
fn split_nonce(prompt: &str) -> (&str, &str) {
    match prompt.split_once(") ") {
        Some((nonce, _)) if nonce.starts_with("(ref ") => prompt.split_at(nonce.len() + 2),
        _ => ("", prompt),
    }
}

/// Gives a round's jobs the workload's lengths: generated prompts of the drawn token lengths
/// (each distinct, beginning with the cold-cache nonce when there is one), answers of the
/// drawn lengths, and `depth` tokens of filler context before each prompt (distinct per
/// request when cold, so no prefix cache flatters a depth). Counts in `misses` texts that
/// could not be fitted exactly.
async fn shape_jobs(
    options: &BenchOptions,
    ctx: &load::LevelContext,
    tokenizer: bool,
    depth: Option<u32>,
    jobs: &mut [Job],
    misses: &mut u32,
) {
    // Per level, so two levels never send the same text.
    let level_seed = ctx
        .level
        .bytes()
        .fold(options.seed, |h, b| h.rotate_left(5) ^ u64::from(b));
    let per_round = jobs.len().max(1) as u64;
    for job in jobs.iter_mut() {
        // Warm: the same lengths and texts every round, so later rounds hit the prompt cache.
        let seq = match options.prompt_cache {
            PromptCache::Cold => u64::from(job.seq),
            PromptCache::Warm => u64::from(job.seq) % per_round,
        };
        if let Some(output) = options.output_tokens {
            job.max_tokens = output.draw(options.seed ^ 0x6f75_7470, seq);
        }
        // Cold: texts differ per level and request; warm: the same every round and level.
        let text_seed = match options.prompt_cache {
            PromptCache::Cold => level_seed,
            PromptCache::Warm => options.seed,
        };
        if let Some(input) = options.input_tokens {
            let tokens = input.draw(options.seed ^ 0x696e_7075, seq);
            let (nonce, _) = split_nonce(&job.prompt);
            let seed = text_seed ^ seq.wrapping_mul(0x2545_F491_4F6C_DD1D);
            let (prompt, exact) =
                workload::fitted_prompt(&ctx.http, &ctx.endpoint, tokenizer, nonce, tokens, seed)
                    .await;
            if !exact {
                *misses += 1;
            }
            job.prompt_id = format!("generated-{tokens}");
            job.prompt = prompt;
        }
        if let Some(depth) = depth.filter(|d| *d > 0) {
            let seed = text_seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x6465_7074;
            let (context, exact) =
                workload::fitted_prompt(&ctx.http, &ctx.endpoint, tokenizer, "", depth, seed).await;
            if !exact {
                *misses += 1;
            }
            // The nonce stays first, so even the context's first words differ per request.
            let (nonce, rest) = split_nonce(&job.prompt);
            job.prompt = format!("{nonce}{context}\n\n{rest}");
        }
    }
}

/// Runs every target in turn, or in alternating rounds when `options.interleave` asks for it.
/// Returns true when the run was interrupted by `stop`.
pub async fn run(
    options: &BenchOptions,
    targets: Vec<Target>,
    recorder: &Recorder,
    progress: &dyn Progress,
    mut stop: watch::Receiver<bool>,
) -> bool {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()
        .expect("HTTP client");
    if options.interleave && targets.len() > 1 {
        return run_interleaved(options, &targets, &http, recorder, progress, &mut stop).await;
    }
    for target in targets {
        if *stop.borrow() {
            return true;
        }
        let interrupted = run_target(options, &target, &http, recorder, progress, &mut stop).await;
        if interrupted {
            return true;
        }
    }
    false
}

/// What a target's levels counted, for its final status.
#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    first_error: Option<String>,
    interrupted: bool,
}

impl Tally {
    fn add(&mut self, outcome: LevelOutcome) {
        self.ok += outcome.ok;
        self.failed += outcome.failed;
        if self.first_error.is_none() {
            self.first_error = outcome.first_error;
        }
        self.interrupted |= outcome.interrupted;
    }
}

/// Records the target as running and loads it. `None` when it cannot be measured (known to
/// fail, not applicable, or failed to load): recorded with its reason.
async fn begin_target(
    options: &BenchOptions,
    target: &Target,
    http: &reqwest::Client,
    recorder: &Recorder,
    progress: &dyn Progress,
) -> Option<(ModelRecord, bool)> {
    let mut model = target.model.clone();
    let name = model.model.clone();
    if matches!(model.status, ModelStatus::Failed | ModelStatus::Skipped) {
        // Known to fail (unknown alias, failed download) or not to apply (a GPU setting
        // without a GPU) before measuring: keep it in the run with its reason.
        recorder.model(&model);
        progress.model_started(&name, 0);
        progress.model_finished(&name, model.status, model.error.as_deref());
        return None;
    }
    model.status = ModelStatus::Running;
    recorder.model(&model);
    progress.model_started(&name, planned_requests(options));
    progress.stage(&name, "loading");
    match prepare(http, target, options.timeout_secs).await {
        Ok(load_ms) => model.load_ms = load_ms,
        Err(error) => {
            model.status = ModelStatus::Failed;
            model.error = Some(error);
            recorder.model(&model);
            progress.model_finished(&name, model.status, model.error.as_deref());
            return None;
        }
    }
    recorder.model(&model);
    let tokenizer = client::has_tokenizer(http, &target.endpoint).await;
    Some((model, tokenizer))
}

/// Unloads the target and records its final status from what its levels counted.
async fn end_target(
    target: &Target,
    mut model: ModelRecord,
    tally: Tally,
    http: &reqwest::Client,
    recorder: &Recorder,
    progress: &dyn Progress,
) {
    if target.managed {
        unload(http, target).await;
    }
    let Tally {
        ok,
        failed,
        first_error,
        interrupted,
    } = tally;
    model.status = if interrupted {
        ModelStatus::Interrupted
    } else if ok == 0 {
        ModelStatus::Failed
    } else if failed > 0 {
        ModelStatus::Degraded
    } else {
        ModelStatus::Ok
    };
    model.error = match (model.status, first_error) {
        (ModelStatus::Failed, e) => Some(e.unwrap_or_else(|| "no request succeeded".into())),
        (ModelStatus::Degraded, e) => Some(format!(
            "{failed} of {} counted requests failed ({:.1}%); first error: {}",
            ok + failed,
            failed as f64 * 100.0 / (ok + failed) as f64,
            e.unwrap_or_default()
        )),
        // Only warm-up requests failed: the figures are whole, the note stays.
        (ModelStatus::Ok, Some(e)) => Some(format!("a warm-up request failed: {e}")),
        (_, Some(e)) => Some(format!("some requests failed; first error: {e}")),
        (_, None) => None,
    };
    recorder.model(&model);
    progress.model_finished(&model.model, model.status, model.error.as_deref());
}

/// The levels every target is measured at, before a sweep adds its rates: each shape at each
/// depth.
fn planned_levels(options: &BenchOptions) -> Vec<(LoadShape, Option<u32>)> {
    let depths: Vec<Option<u32>> = if options.depths.is_empty() {
        vec![None]
    } else {
        options.depths.iter().copied().map(Some).collect()
    };
    first_shapes(options)
        .into_iter()
        .flat_map(|s| depths.iter().map(move |d| (s, *d)))
        .collect()
}

async fn run_target(
    options: &BenchOptions,
    target: &Target,
    http: &reqwest::Client,
    recorder: &Recorder,
    progress: &dyn Progress,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let Some((model, tokenizer)) = begin_target(options, target, http, recorder, progress).await
    else {
        return false;
    };
    let name = model.model.clone();
    let mut tally = Tally::default();
    let mut shapes = planned_levels(options);
    let mut bounds = Vec::new();
    let mut i = 0;
    while let Some((shape, depth)) = shapes.get(i).copied() {
        i += 1;
        let level = Level {
            options,
            target,
            shape: &shape,
            depth,
            tokenizer,
        };
        let outcome = run_level(level, http, recorder, progress, stop).await;
        if let (Some(sweep), true) = (options.sweep, i <= 2) {
            bounds.push(outcome.request_rate);
            if i == 2 {
                let rates = sweep.rates_between(bounds[0], bounds[1]);
                tracing::info!(model = %name, synchronous = bounds[0], maximum = bounds[1], ?rates, "sweep bounds measured");
                shapes.extend(rates.into_iter().map(|rate| {
                    let rate = LoadShape::Rate {
                        rate,
                        burstiness: sweep.burstiness,
                        max_concurrency: None,
                    };
                    (rate, None)
                }));
            }
        }
        tally.add(outcome);
        if tally.interrupted {
            break;
        }
    }
    let interrupted = tally.interrupted;
    end_target(target, model, tally, http, recorder, progress).await;
    interrupted
}

/// Measures the targets in alternating rounds of one session: at each level, round r of every
/// target runs before round r + 1 of any, in the order A B C, then C B A, … (so none always
/// goes first). Whatever the machine does between rounds falls on all of them alike, which
/// `compare` exploits by pairing their rounds. Every target stays loaded for the session.
async fn run_interleaved(
    options: &BenchOptions,
    targets: &[Target],
    http: &reqwest::Client,
    recorder: &Recorder,
    progress: &dyn Progress,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut live = Vec::new();
    let mut interrupted = false;
    for target in targets {
        if *stop.borrow() {
            interrupted = true;
            break;
        }
        if let Some((model, tokenizer)) =
            begin_target(options, target, http, recorder, progress).await
        {
            live.push((target, model, tokenizer, Tally::default()));
        }
    }
    // Stopped while loading: the targets loaded so far still end (unloaded, marked stopped).
    let levels_to_run = if interrupted {
        Vec::new()
    } else {
        planned_levels(options)
    };
    for (shape, depth) in levels_to_run {
        let mut levels = Vec::with_capacity(live.len());
        let clock = Clock::start();
        for (target, _, tokenizer, _) in &live {
            let level = Level {
                options,
                target,
                shape: &shape,
                depth,
                tokenizer: *tokenizer,
            };
            levels.push(LevelRun::start(level, clock, recorder, http).await);
        }
        let mut turn = 0;
        while levels.iter().any(|l| !l.over) && !interrupted {
            let order: Vec<usize> = if turn % 2 == 0 {
                (0..levels.len()).collect()
            } else {
                (0..levels.len()).rev().collect()
            };
            turn += 1;
            for i in order {
                levels[i].round(http, recorder, progress, stop).await;
                if levels[i].outcome.interrupted {
                    interrupted = true;
                    break;
                }
            }
        }
        for (level, (_, _, _, tally)) in levels.into_iter().zip(live.iter_mut()) {
            tally.add(level.finish(http, recorder).await);
        }
        if interrupted {
            break;
        }
    }
    for (target, model, _, mut tally) in live {
        tally.interrupted |= interrupted;
        end_target(target, model, tally, http, recorder, progress).await;
    }
    interrupted
}

/// Loads a managed model (timing the cold load to its first token) or checks that an external
/// endpoint answers for the model. Returns the cold load time when measured.
async fn prepare(
    http: &reqwest::Client,
    target: &Target,
    timeout_secs: f64,
) -> Result<Option<f64>, String> {
    let started = Instant::now();
    if target.managed {
        let root = openai::server_root(&target.endpoint.base_url);
        let response = http
            .post(format!("{root}/api/load"))
            .json(&json!({"model": target.endpoint.model}))
            .send()
            .await
            .map_err(|e| format!("cannot reach hearth's server: {e}"))?;
        if !response.status().is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(openai::ErrorBody::read(&text)
                .map_or_else(|| "the model failed to load".to_string(), |e| e.text()));
        }
    }
    // One token proves the model answers (and, after a load, ends the cold start).
    let params = RequestParams {
        stream: true,
        temperature: 0.0,
        seed: Some(0),
        ignore_eos: false,
        // A cold load of a large model can take a while; an unresponsive server should not.
        timeout: Duration::from_secs_f64(timeout_secs.max(0.001)),
    };
    let job = Job {
        prompt_id: "load-check".into(),
        prompt: "Hi".into(),
        max_tokens: 1,
        round: 0,
        seq: 0,
        response_format: None,
    };
    let clock = Clock::at(started);
    let record = client::execute(
        http,
        &target.endpoint,
        &params,
        &job,
        clock,
        started,
        "load",
    )
    .await;
    if record.status != RequestStatus::Ok {
        return Err(record
            .error
            .unwrap_or_else(|| "the model did not answer".into()));
    }
    Ok(target
        .managed
        .then(|| record.first_token_ms.or(record.end_ms))
        .flatten())
}

async fn unload(http: &reqwest::Client, target: &Target) {
    let root = openai::server_root(&target.endpoint.base_url);
    let _ = http
        .post(format!("{root}/api/unload"))
        .json(&json!({"model": target.endpoint.model}))
        .send()
        .await;
}

struct LevelOutcome {
    ok: u64,
    /// Successful counted requests per second of the timed rounds (0 when none).
    request_rate: f64,
    /// Counted (timed) requests that failed.
    failed: u64,
    first_error: Option<String>,
    interrupted: bool,
}

/// What one level measures.
struct Level<'a> {
    options: &'a BenchOptions,
    target: &'a Target,
    shape: &'a LoadShape,
    /// Tokens of filler context before every prompt, when measuring at a depth.
    depth: Option<u32>,
    /// The endpoint counts tokens (`/tokenize`) for answers that came without usage.
    tokenizer: bool,
}

/// One level of one target, measured round by round: started (its requests planned), then
/// each round in turn, then finished (its resources and record). Split so that an interleaved
/// session can alternate the rounds of several targets.
struct LevelRun<'a> {
    options: &'a BenchOptions,
    target: &'a Target,
    shape: LoadShape,
    depth: Option<u32>,
    tokenizer: bool,
    name: String,
    label: String,
    ctx: load::LevelContext,
    planned: std::vec::IntoIter<Vec<Job>>,
    tx: mpsc::UnboundedSender<RequestRecord>,
    rx: mpsc::UnboundedReceiver<RequestRecord>,
    measure: Option<measure::Measurement>,
    saturation: Option<Duration>,
    stopped: Option<String>,
    fit_misses: u32,
    outcome: LevelOutcome,
    /// Rounds run so far, warm-up included.
    rounds_run: u32,
    /// No round is left: all ran, the level was stopped, or the user interrupted.
    over: bool,
}

impl<'a> LevelRun<'a> {
    /// Plans the level's rounds. `clock` is the level's time origin: shared by the levels of
    /// an interleaved session, so their instants line up.
    async fn start(
        level: Level<'a>,
        clock: Clock,
        recorder: &Recorder,
        http: &reqwest::Client,
    ) -> Self {
        let Level {
            options,
            target,
            shape,
            depth,
            tokenizer,
        } = level;
        let name = target.model.model.clone();
        let label = match depth {
            Some(d) => format!("{} d={d}", shape.label()),
            None => shape.label(),
        };
        let ctx = load::LevelContext {
            http: http.clone(),
            endpoint: target.endpoint.clone(),
            params: RequestParams {
                stream: options.stream,
                temperature: options.temperature,
                seed: Some(options.seed),
                // A shape model's text is noise and may hit its end-of-text token anywhere: it
                // always runs to max_tokens, so every request has the same output length.
                ignore_eos: options.ignore_eos
                    || options.output_tokens.is_some()
                    || crate::catalog::is_shape_alias(&name),
                timeout: Duration::from_secs_f64(options.timeout_secs.max(0.001)),
            },
            clock,
            level: label.clone(),
            seed: options.seed,
        };
        let saturation = match shape {
            LoadShape::Rate { .. } => options
                .stop_over_saturated_secs
                .map(|s| Duration::from_secs_f64(s.max(0.1))),
            LoadShape::Concurrency { .. } => None,
        };
        // Every round's requests, made before the level's clock matters: fitting generated
        // prompts to their lengths asks the server's tokenizer.
        let total_rounds = options.warmup + options.rounds;
        let mut fit_misses = 0u32;
        let mut planned = Vec::with_capacity(total_rounds as usize);
        for round_index in 0..total_rounds {
            let mut jobs = jobs_for_round(options, shape, round_index, recorder.run_id());
            shape_jobs(options, &ctx, tokenizer, depth, &mut jobs, &mut fit_misses).await;
            planned.push(jobs);
        }
        let (tx, rx) = mpsc::unbounded_channel::<RequestRecord>();
        LevelRun {
            options,
            target,
            shape: *shape,
            depth,
            tokenizer,
            name,
            label,
            ctx,
            planned: planned.into_iter(),
            tx,
            rx,
            measure: None,
            saturation,
            stopped: None,
            fit_misses,
            outcome: LevelOutcome {
                request_rate: 0.0,
                ok: 0,
                failed: 0,
                first_error: None,
                interrupted: false,
            },
            rounds_run: 0,
            over: total_rounds == 0,
        }
    }

    /// Runs the next round, if any is left.
    async fn round(
        &mut self,
        http: &reqwest::Client,
        recorder: &Recorder,
        progress: &dyn Progress,
        stop: &mut watch::Receiver<bool>,
    ) {
        if self.over {
            return;
        }
        let options = self.options;
        let round_index = self.rounds_run;
        self.rounds_run += 1;
        self.over = self.rounds_run >= options.warmup + options.rounds;
        let warmup = round_index < options.warmup;
        // Warm-up rounds are all recorded as round 0; timed rounds count from 1.
        let round = if warmup {
            0
        } else {
            round_index - options.warmup + 1
        };
        if !warmup && self.measure.is_none() {
            self.measure =
                Some(measure::Measurement::begin(http, self.target, self.ctx.clock, options).await);
        }
        let stage = if warmup {
            format!("{} warm-up", self.label)
        } else {
            format!("{} round {round}/{}", self.label, options.rounds)
        };
        progress.stage(&self.name, &stage);
        let mut jobs = self.planned.next().unwrap_or_default();
        for job in &mut jobs {
            job.round = round;
        }
        let run = load::run_round(&self.ctx, self.shape, jobs, &self.tx, stop, self.saturation);
        tokio::pin!(run);
        // Answers without usage are counted with the server's tokenizer after the round, so
        // the HTTP calls never delay the round's own schedule.
        let mut uncounted = Vec::new();
        let end = loop {
            tokio::select! {
                done = &mut run => break done,
                Some(record) = self.rx.recv() => {
                    if self.tokenizer && record.token_source == TokenSource::Chunks {
                        uncounted.push(record);
                    } else {
                        take_record(record, &self.name, recorder, progress, &mut self.outcome);
                    }
                }
            }
        };
        while let Ok(record) = self.rx.try_recv() {
            uncounted.push(record);
        }
        for mut record in uncounted {
            if self.tokenizer && record.token_source == TokenSource::Chunks {
                let count =
                    client::tokenizer_count(http, &self.target.endpoint, &record.output).await;
                client::count_with_tokenizer(&mut record, |_| count);
            }
            take_record(record, &self.name, recorder, progress, &mut self.outcome);
        }
        match end {
            load::RoundEnd::Done => {}
            load::RoundEnd::Interrupted => {
                self.outcome.interrupted = true;
                self.over = true;
            }
            load::RoundEnd::OverSaturated(evidence) => {
                progress.stage(&self.name, &format!("{} {evidence}", self.label));
                tracing::info!(model = %self.name, level = %self.label, %evidence, "level stopped");
                self.stopped = Some(evidence);
                self.over = true;
            }
        }
    }

    /// Ends the level: its resources and record, and what it counted.
    async fn finish(mut self, http: &reqwest::Client, recorder: &Recorder) -> LevelOutcome {
        let (name, level) = (&self.name, &self.label);
        if self.fit_misses > 0 {
            tracing::warn!(model = %name, %level, fit_misses = self.fit_misses, "generated prompts not fitted exactly to their token lengths (no tokenizer at the endpoint, or a fit that did not settle)");
        }
        // A level stopped in its warm-up ran no timed request; it is recorded all the same,
        // with why, so that no report shows it as a level that passed with nothing measured.
        if self.measure.is_none() {
            if let Some(evidence) = self.stopped.take() {
                self.stopped = Some(format!(
                    "{evidence}; in the warm-up, so no timed request ran"
                ));
                self.measure = Some(
                    measure::Measurement::begin(http, self.target, self.ctx.clock, self.options)
                        .await,
                );
            }
        }
        if let Some(measure) = self.measure {
            let mut record = measure.end(&self.shape, level, name).await;
            record.stopped = self.stopped;
            record.depth = self.depth;
            if record.duration_ms > 0.0 {
                self.outcome.request_rate = self.outcome.ok as f64 * 1000.0 / record.duration_ms;
            }
            recorder.level(&record);
        }
        self.outcome
    }
}

async fn run_level(
    level: Level<'_>,
    http: &reqwest::Client,
    recorder: &Recorder,
    progress: &dyn Progress,
    stop: &mut watch::Receiver<bool>,
) -> LevelOutcome {
    let mut run = LevelRun::start(level, Clock::start(), recorder, http).await;
    while !run.over {
        run.round(http, recorder, progress, stop).await;
    }
    run.finish(http, recorder).await
}

fn take_record(
    mut record: RequestRecord,
    model: &str,
    recorder: &Recorder,
    progress: &dyn Progress,
    outcome: &mut LevelOutcome,
) {
    // Records carry the name the report shows, which may differ from the name sent.
    record.model = model.to_string();
    let ok = record.status == RequestStatus::Ok;
    if record.round > 0 {
        if ok {
            outcome.ok += 1;
        } else {
            outcome.failed += 1;
        }
    }
    if !ok && outcome.first_error.is_none() {
        outcome.first_error = record.error.clone();
    }
    progress.request_done(model, ok);
    recorder.request(record);
}

/// Share of one core above which the client counts as the bottleneck.
pub const CLIENT_CPU_LIMIT: f64 = 0.8;
/// Timer lag (p99, ms) above which the client's instants are no longer trusted to the ms.
pub const CLIENT_LAG_LIMIT_MS: f64 = 5.0;

#[cfg(test)]
mod tests {
    use super::Sweep;

    fn sweep(rates: u32) -> Sweep {
        Sweep {
            rates,
            max_concurrency: 32,
            burstiness: 1.0,
        }
    }

    #[test]
    fn sweep_rates_reach_one_step_past_the_maximum() {
        assert_eq!(sweep(4).rates_between(1.0, 4.0), [2.0, 3.0, 4.0, 5.0]);
        assert_eq!(sweep(1).rates_between(1.0, 4.0), [4.0]);
        // Three significant digits, so labels stay short.
        assert_eq!(sweep(2).rates_between(0.7, 2.23456), [2.23, 3.77]);
        // No better at the top than one at a time (one slot): around that capacity instead,
        // from half of it to 30% past it.
        assert_eq!(sweep(2).rates_between(2.0, 1.9), [1.0, 2.6]);
        assert_eq!(sweep(3).rates_between(3.3, 3.4), [1.7, 3.06, 4.42]);
        assert_eq!(sweep(1).rates_between(3.3, 3.3), [4.29]);
        assert!(sweep(3).rates_between(0.0, 5.0).is_empty());
    }
}
