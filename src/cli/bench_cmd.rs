//! `hearth bench`: resolves what to measure (models, prompts, load levels, settings) from
//! flags, their environment twins and defaults into [`SessionSettings`], runs the session in
//! the library (`bench::session`), then renders the reports from the stored run and prints
//! the comparison table.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::{Args, ValueEnum};

use hearth::bench::resources::CLIENT_THREAD_PREFIX;
use hearth::bench::session::{self, ExternalEndpoint, JudgeChoice, Library, SessionSettings};
use hearth::bench::workload::TokenLengths;
use hearth::bench::{self, prompts, BenchOptions, PromptCache, Sweep};
use hearth::engine::devices::{GpuLayers, Offload};
use hearth::engine::memory::DEFAULT_CTX;
use hearth::engine::speculative::Speculative;
use hearth::loader::LoadOptions;
use hearth::profiles::{Profile, Profiles};
use hearth::store::record::{LoadShape, ModelStatus, RequestStatus, RunData};

use super::progress::{session_observer, JsonProgress};
use super::settings;
use super::Context;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Models to measure, comma-separated: catalog aliases, or model names at --endpoint
    /// (default: BENCH_MODELS, else every model in --models-file, else the default model).
    #[arg(long, value_delimiter = ',')]
    pub(super) models: Vec<String>,
    /// A models.json with extra entries (local files, upstream endpoints, tags).
    #[arg(long, value_name = "FILE")]
    models_file: Option<PathBuf>,
    /// A prompts.json: a list of strings or of {id, prompt, max_tokens, facets, checks,
    /// reference} objects
    /// (default: the built-in summarizer set).
    #[arg(long, value_name = "FILE", conflicts_with = "prompt_set")]
    prompts: Option<PathBuf>,
    /// A built-in prompt set instead: `default`, `summarize` (summaries of source notes
    /// given in the prompt), or `structured` (JSON answers against realistic schemas, each
    /// beside a free answer to the same prompt).
    #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(prompts::BUILTIN_SETS))]
    prompt_set: Option<String>,
    /// Stream answers (the default; BENCH_STREAM=1). TTFT and inter-token latency need it.
    #[arg(long, overrides_with = "no_stream")]
    stream: bool,
    /// Measure whole responses instead (BENCH_STREAM=0).
    #[arg(long)]
    no_stream: bool,
    /// Benchmark an external OpenAI-compatible server (base URL, with or without /v1) instead
    /// of hearth's own; also read from HEARTH_ENDPOINT or FOUNDRY_LOCAL_ENDPOINT.
    #[arg(long)]
    endpoint: Option<String>,
    /// API key for --endpoint (default: HEARTH_API_KEY).
    #[arg(long)]
    api_key: Option<String>,
    /// Process id of the external server, to measure its memory and CPU: the --endpoint's,
    /// or the one behind upstream entries of --models-file (an entry's own `pid` or `process`
    /// wins).
    #[arg(long)]
    pid: Option<u32>,
    /// Timed rounds per load level.
    #[arg(long, default_value_t = 3)]
    pub(super) rounds: u32,
    /// Warm-up rounds per load level (recorded, never counted).
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// Requests per round (default: the prompt set, at least the concurrency).
    #[arg(long)]
    requests: Option<u32>,
    /// Closed-loop concurrency levels, comma-separated (default 1: sequential).
    #[arg(long, value_delimiter = ',')]
    pub(super) concurrency: Vec<u32>,
    /// Open-loop arrival rates in requests per second, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(super) rate: Vec<f64>,
    /// Arrival burstiness for --rate: 1 = Poisson, < 1 burstier, > 1 more regular (gamma).
    #[arg(long, default_value_t = 1.0)]
    burstiness: f64,
    /// Cap on requests in flight for --rate (their wait for a slot is reported apart).
    #[arg(long)]
    pub(super) max_concurrency: Option<u32>,
    /// Generate prompts of this many tokens instead of the prompt set's (`MEAN` or
    /// `MEAN:SPREAD`, normal, seeded): distinct filler fitted to each drawn length with the
    /// server's tokenizer (`/tokenize`), so every runtime gets the same lengths.
    #[arg(long, value_name = "MEAN[:SPREAD]", conflicts_with = "dataset")]
    input_tokens: Option<TokenLengths>,
    /// Ask for answers of this many tokens (`MEAN` or `MEAN:SPREAD`, normal, seeded), with
    /// end-of-sequence ignored so each answer has its drawn length.
    #[arg(long, value_name = "MEAN[:SPREAD]")]
    output_tokens: Option<TokenLengths>,
    /// A ShareGPT-style conversation file (a JSON list of `{"conversations": [{"from":
    /// "human", "value": …}, {"from": "gpt", "value": …}]}`, or `messages` of role/content):
    /// each conversation's first user turn is a prompt, answered with as many tokens as its
    /// recorded answer (about 4 characters a token; end-of-sequence ignored).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prompts", "prompt_set"])]
    dataset: Option<PathBuf>,
    /// Context depths to measure every level at, tokens, comma-separated (`0,2048,8192`):
    /// each prompt is put behind that much filler context (counted with the server's
    /// tokenizer, distinct per request so no prefix cache hit flatters it unless
    /// `--prompt-cache warm`); the report shows prefill and decode speed against depth.
    #[arg(
        long = "depth",
        value_name = "TOKENS",
        value_delimiter = ',',
        conflicts_with = "sweep"
    )]
    depths: Vec<u32>,
    /// Find how much load each model takes here: measure one request at a time, then
    /// --sweep-max-concurrency at once, then N open-loop rates spread between the two and one
    /// step past the top, each stopped early once the server falls behind (the report draws
    /// latency against throughput and marks the knee). Replaces --concurrency and --rate.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "5",
          conflicts_with_all = ["concurrency", "rate", "max_concurrency"])]
    sweep: Option<u32>,
    /// Requests in flight for the sweep's throughput bound.
    #[arg(long, default_value_t = 32, value_name = "N")]
    sweep_max_concurrency: u32,
    /// End an open-loop level early once the server falls behind its arrivals: the requests
    /// waiting and the age of the oldest grow over this many seconds (on in sweeps, 10 s).
    /// The level is recorded as over-saturated, not as failed.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "10")]
    stop_over_saturated: Option<f64>,
    /// Measure the configurations (models, --variants, --speculative, --gpu-layers) in
    /// alternating rounds of one session instead of one after another, every one loaded
    /// throughout: round r of each runs before round r + 1 of any (A B, then B A, …), so the
    /// machine's drift falls on all alike. `hearth compare RUN` then pairs their rounds and
    /// finds changes separate runs cannot. Use --rounds 6 or more.
    #[arg(long, conflicts_with = "sweep")]
    interleave: bool,
    /// Print every column of the summary table (the default keeps the key figures within 100
    /// columns; the reports have every figure).
    #[arg(long)]
    wide: bool,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Sampling and arrival-schedule seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Most tokens per answer (a prompt's own max_tokens wins).
    #[arg(long, default_value_t = 256)]
    max_tokens: u32,
    /// Ask servers to ignore end-of-sequence, so every answer has max_tokens tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// cold: every prompt made unique so no server answers from its prompt cache; warm:
    /// prompts repeat across rounds (cache hits are reported apart either way).
    #[arg(long, value_enum, default_value_t = CacheArg::Cold)]
    prompt_cache: CacheArg,
    /// Service-level objectives for goodput, e.g. `ttft=500ms,e2e=5s,tpot=50ms,itl=100ms`.
    #[arg(long)]
    slo: Option<String>,
    /// Share of a model's counted requests (0–1) that may fail before the exit code says so:
    /// by default any failed request makes the run fail (a model is `degraded`), so a CI job
    /// does not pass on a server that lost answers.
    #[arg(long, default_value_t = 0.0, value_name = "SHARE")]
    max_failure_share: f64,
    /// Give up on a request after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    /// Price of a kWh for the approximate cost per 1k tokens.
    #[arg(long, default_value_t = 0.30)]
    energy_price: f64,
    /// Where to write the reports (default: a new folder under $HEARTH_HOME/runs).
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// CPU threads for local models (default: the `threads` setting).
    #[arg(long)]
    pub(super) threads: Option<u32>,
    /// Context per request for local models (default: the `ctx` setting, at most 4096).
    #[arg(long)]
    pub(super) ctx: Option<u32>,
    /// Only measure the client against the built-in mock server, print its floor, and exit.
    #[arg(long)]
    calibrate: bool,
    /// Progress as JSON lines on stderr instead of bars (for scripts and the server's
    /// benchmark jobs), ending with `{"event":"stored","run":ID}`.
    #[arg(long)]
    pub(super) progress_json: bool,
    /// Score every answer 1–5 with this judge model after the timed part: a catalog alias
    /// (served by hearth), or a model name at --judge-endpoint.
    #[arg(long, value_name = "MODEL")]
    judge: Option<String>,
    /// An OpenAI-compatible server (base URL) that runs the --judge model.
    #[arg(long, value_name = "URL", requires = "judge")]
    judge_endpoint: Option<String>,
    /// API key for --judge-endpoint (default: HEARTH_JUDGE_API_KEY).
    #[arg(long)]
    judge_api_key: Option<String>,
    /// Quality bar of the recommendation: lowest acceptable mean score (1–5).
    #[arg(long, default_value_t = hearth::report::recommend::DEFAULT_MIN_SCORE)]
    pub(super) min_score: f64,
    /// Offload settings to measure every local model at, comma-separated (`0,all`): each
    /// model is run once per setting, side by side in one report; settings this build or
    /// machine cannot run are recorded as skipped with the reason. Default: the `gpu_layers`
    /// setting, else all layers when a GPU is usable, else 0.
    #[arg(long, value_delimiter = ',', value_name = "N|all")]
    pub(super) gpu_layers: Vec<GpuLayers>,
    /// The GPU to offload to, by index from `hearth devices`.
    #[arg(long)]
    device: Option<usize>,
    /// Speculative decoding modes to measure every local model with, comma-separated
    /// (`off,ngram` runs each model both ways, side by side in one report). Default: the
    /// `speculative` setting, else ngram.
    #[arg(long, value_delimiter = ',', value_name = "off|ngram")]
    pub(super) speculative: Vec<Speculative>,
    #[command(flatten)]
    pub(super) compute: super::shared::ComputeArgs,
    /// Quantisation variants to add for every local model, comma-separated (`q4_0,q8_0`):
    /// made with `model quantize` when missing, and measured beside their source.
    #[arg(long, value_delimiter = ',', value_name = "TYPE")]
    pub(super) variants: Vec<String>,
    /// Add the shape twin of every catalog model (`ALIAS~shape`: its architecture with random
    /// weights, made with `model synth` when missing): the speed and memory of models you have
    /// not downloaded. Their answers are noise: never scored, never recommended.
    #[arg(long)]
    pub(super) shapes: bool,
    /// Memory budget of the recommendation, MiB of peak RSS (default: the `memory_limit_mb`
    /// setting, else this machine's memory).
    #[arg(long, value_name = "MIB")]
    memory_budget: Option<u64>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CacheArg {
    Cold,
    Warm,
}

/// Parses `ttft=500ms,e2e=5s` into milliseconds by metric key (`ttft_ms`…).
fn parse_slo(text: &str) -> Result<HashMap<String, f64>> {
    let mut slo = HashMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .with_context(|| format!("--slo entry `{part}` is not METRIC=DURATION"))?;
        let key = match key.trim() {
            "ttft" => "ttft_ms",
            "e2e" | "e2el" | "latency" => "e2e_ms",
            "tpot" => "tpot_ms",
            "itl" => "itl_ms",
            other => bail!("--slo: unknown metric `{other}` (ttft, e2e, tpot, itl)"),
        };
        let value = value.trim();
        let ms = duration_ms(value, 1.0)
            .with_context(|| format!("--slo: `{value}` is not a duration like 500ms or 5s"))?;
        if ms.is_nan() || ms <= 0.0 {
            bail!("--slo: {key} must be positive");
        }
        slo.insert(key.to_string(), ms);
    }
    Ok(slo)
}

/// A duration on the command line (`500ms`, `5s`, `20m`, `1h`) in milliseconds; a bare number
/// counts in `bare_unit_ms`. The one reader of durations for `--slo` and tune's `--budget`:
/// five units do not need a crate.
pub(super) fn duration_ms(text: &str, bare_unit_ms: f64) -> Option<f64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "" => bare_unit_ms,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    Some(number.trim().parse::<f64>().ok()? * scale)
}

/// `--endpoint`, else HEARTH_ENDPOINT, else FOUNDRY_LOCAL_ENDPOINT.
fn endpoint_from(ctx: &Context, args: &BenchArgs) -> Option<String> {
    let settings = &ctx.settings;
    args.endpoint
        .clone()
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .or_else(|| settings.endpoint.value.clone())
        .or_else(|| settings.foundry_endpoint.value.clone())
}

/// The over-saturation window of a sweep, seconds: long enough to span several answers of a
/// small model on a CPU, short enough that a saturated level ends soon.
const DEFAULT_SATURATION_WINDOW_SECS: f64 = 10.0;

fn shapes(args: &BenchArgs) -> Result<Vec<LoadShape>> {
    let mut shapes = Vec::new();
    for &c in &args.concurrency {
        if c == 0 {
            bail!("--concurrency must be at least 1");
        }
        shapes.push(LoadShape::Concurrency { concurrency: c });
    }
    for &rate in &args.rate {
        if !rate.is_finite() || rate <= 0.0 {
            bail!("--rate must be a positive number of requests per second");
        }
        if !args.burstiness.is_finite() || args.burstiness <= 0.0 {
            bail!("--burstiness must be positive");
        }
        shapes.push(LoadShape::Rate {
            rate,
            burstiness: args.burstiness,
            max_concurrency: args.max_concurrency,
        });
    }
    if shapes.is_empty() {
        shapes.push(LoadShape::Concurrency { concurrency: 1 });
    }
    Ok(shapes)
}

/// The sweep asked for, checked.
fn sweep(args: &BenchArgs) -> Result<Option<Sweep>> {
    let Some(rates) = args.sweep else {
        return Ok(None);
    };
    if rates == 0 {
        bail!("--sweep needs at least one rate between its bounds");
    }
    if args.sweep_max_concurrency < 2 {
        bail!("--sweep-max-concurrency must be at least 2");
    }
    if !args.burstiness.is_finite() || args.burstiness <= 0.0 {
        bail!("--burstiness must be positive");
    }
    Ok(Some(Sweep {
        rates,
        max_concurrency: args.sweep_max_concurrency,
        burstiness: args.burstiness,
    }))
}

pub fn bench(ctx: &Context, args: BenchArgs) -> Result<ExitCode> {
    if args.calibrate {
        return calibrate();
    }
    let settings = resolve(ctx, &args)?;
    let store = ctx.open_store()?;
    let out_dir = settings.out_dir.clone();
    let files = catalog_files(ctx, &args);
    let user_models_file = ctx.user_models_file();
    let progress = session_observer(args.progress_json);
    let outcome = session::run(
        settings,
        Library {
            catalog_files: &files,
            user_models_file: &user_models_file,
            cache: &ctx.cache,
        },
        store,
        progress,
    )?;
    let data = &outcome.data;
    let paths = hearth::report::write_all(data, &out_dir)?;
    let summary = hearth::report::summarize(data);
    let width = if args.wide {
        hearth::report::TerminalWidth::Wide
    } else {
        hearth::report::TerminalWidth::Fit
    };
    outln!("{}", hearth::report::terminal_table(&summary, width));
    if args.progress_json {
        JsonProgress::emit(serde_json::json!({
            "event": "stored",
            "run": data.run.id,
            "store": outcome.store_location,
            "interrupted": outcome.interrupted,
        }));
    }
    eprintln!("run {} stored in {}", data.run.id, outcome.store_location);
    eprintln!("reports:");
    for path in paths {
        eprintln!("  {}", path.display());
    }
    if outcome.interrupted {
        return Ok(ExitCode::from(130));
    }
    let failing: Vec<String> = data
        .models
        .iter()
        .filter_map(|m| match m.status {
            ModelStatus::Ok | ModelStatus::Skipped => None,
            ModelStatus::Degraded => {
                let share = failure_share(data, &m.model);
                (share > args.max_failure_share).then(|| {
                    format!(
                        "{} (degraded: {:.1}% of requests failed)",
                        m.model,
                        share * 100.0
                    )
                })
            }
            status => Some(format!(
                "{} ({})",
                m.model,
                hearth::report::run_summary::status_str(status)
            )),
        })
        .collect();
    if failing.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "exit status 1: {} (--max-failure-share {} allows a share of failed requests)",
        failing.join(", "),
        args.max_failure_share
    );
    Ok(ExitCode::FAILURE)
}

/// Failed share of `model`'s counted (timed) requests.
fn failure_share(data: &RunData, model: &str) -> f64 {
    let counted = data
        .requests
        .iter()
        .filter(|r| r.model == model && r.round > 0);
    let (total, failed) = counted.fold((0u64, 0u64), |(t, f), r| {
        (t + 1, f + u64::from(r.status != RequestStatus::Ok))
    });
    if total == 0 {
        0.0
    } else {
        failed as f64 / total as f64
    }
}

/// The user's catalog files plus `--models-file`.
pub(super) fn catalog_files(ctx: &Context, args: &BenchArgs) -> Vec<PathBuf> {
    let mut files = ctx.catalog_files();
    files.extend(args.models_file.clone());
    files
}

/// Flags, their environment twins, settings and defaults → the session's settings.
pub(super) fn resolve(ctx: &Context, args: &BenchArgs) -> Result<SessionSettings> {
    let stream = if args.no_stream {
        false
    } else if args.stream {
        true
    } else {
        ctx.settings.bench_stream.value.unwrap_or(true)
    };
    let prompts = match (&args.prompts, &args.prompt_set) {
        _ if args.dataset.is_some() => {
            bench::workload::dataset_prompts(args.dataset.as_deref().expect("checked"))?
        }
        (Some(path), _) => prompts::load(path)?,
        (None, Some(name)) => {
            prompts::builtin(name).with_context(|| format!("no built-in prompt set {name}"))?
        }
        (None, None) => prompts::default_set(),
    };
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.max_failure_share) {
        bail!("--max-failure-share is a share between 0 and 1");
    }
    if !(1.0..=5.0).contains(&args.min_score) {
        bail!("--min-score must be between 1 and 5");
    }
    let recommend_memory_bytes = match args.memory_budget {
        Some(mib) => Some(mib * 1024 * 1024),
        None => ctx.settings.memory_limit.value,
    };
    let shapes = shapes(args)?;
    let sweep = sweep(args)?;
    let stop_over_saturated_secs = match args.stop_over_saturated {
        Some(secs) if !(secs.is_finite() && secs > 0.0) => {
            bail!("--stop-over-saturated takes a positive number of seconds")
        }
        Some(_) if sweep.is_none() && args.rate.is_empty() => {
            bail!("--stop-over-saturated judges open-loop levels: use it with --rate or --sweep")
        }
        Some(secs) => Some(secs),
        None => sweep.map(|_| DEFAULT_SATURATION_WINDOW_SECS),
    };
    let options = BenchOptions {
        prompts,
        shapes: shapes.clone(),
        warmup: args.warmup,
        rounds: args.rounds,
        requests_per_round: args.requests,
        max_tokens: args.max_tokens.max(1),
        stream,
        temperature: args.temperature,
        seed: args.seed,
        // A dataset's answers are as long as the recorded ones, whatever the model would say.
        ignore_eos: args.ignore_eos || args.dataset.is_some(),
        timeout_secs: args.timeout,
        prompt_cache: match args.prompt_cache {
            CacheArg::Cold => PromptCache::Cold,
            CacheArg::Warm => PromptCache::Warm,
        },
        slo: args
            .slo
            .as_deref()
            .map(parse_slo)
            .transpose()?
            .unwrap_or_default(),
        energy_price_per_kwh: args.energy_price,
        sample_interval_ms: 250,
        sweep,
        stop_over_saturated_secs,
        interleave: args.interleave,
        input_tokens: args.input_tokens,
        depths: {
            let mut d = args.depths.clone();
            d.dedup();
            d
        },
        output_tokens: args.output_tokens,
    };

    let endpoint = endpoint_from(ctx, args);
    let mut names = settings::list_or(args.models.clone(), &ctx.settings.bench_models);
    names.retain(|n| !n.trim().is_empty());
    if names.is_empty() {
        if let Some(file) = &args.models_file {
            // Every model the file names, in its order: built-in aliases it only describes
            // (size, tags) and variants included. The catalog has merged the same entries.
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            names = hearth::catalog::parse_models_json(&text)
                .map_err(|message| anyhow::anyhow!("{}: {message}", file.display()))?
                .into_iter()
                .map(|e| e.alias)
                .collect();
        }
    }
    if names.is_empty() {
        if endpoint.is_some() {
            bail!("name the models to measure at the endpoint with --models (or BENCH_MODELS)");
        }
        names.push(ctx.settings.default_model.value.clone());
    }

    let threads = ctx.settings.threads.or_flag(args.threads);
    let run_id = session::new_run_id();
    let out_dir = match &args.out {
        Some(dir) => dir.clone(),
        None => ctx.config.home().join("runs").join(&run_id),
    };
    let gpu_layers = if args.gpu_layers.is_empty() {
        vec![ctx.default_gpu_layers()]
    } else {
        args.gpu_layers.clone()
    };
    let speculative: Vec<Speculative> = if args.speculative.is_empty() {
        vec![ctx.settings.speculative.value]
    } else {
        args.speculative.clone()
    };
    let (asked_ctx, auto_ctx) = ctx.settings.context(args.ctx);
    let load = LoadOptions {
        threads,
        n_ctx: match args.ctx {
            Some(n) => n,
            // Deep contexts need room: the deepest, the prompt and the answer (rounded up).
            None => {
                let deepest = args.depths.iter().max().copied().unwrap_or(0);
                let asked = asked_ctx.min(DEFAULT_CTX);
                if deepest > 0 {
                    asked.max((deepest + args.max_tokens + 1024).next_multiple_of(1024))
                } else {
                    asked
                }
            }
        },
        parallel: session::parallel_for(&shapes),
        // The slots follow the concurrency the user asked for; the context, when not given,
        // may shorten to fit (not for depth runs, which need it).
        auto_parallel: false,
        auto_ctx: auto_ctx && args.depths.is_empty(),
        queue_capacity: 1 << 16,
        memory_budget: ctx.memory_budget(),
        offload: Offload::default(),
        speculative: Speculative::default(),
        compute: args.compute.resolve(&ctx.settings)?,
        // A benchmark measures what it is told: no serving profile applies.
        flags: Profile::default(),
        profiles: Profiles::default(),
        // A measurement must not find prompt states of earlier runs.
        prompt_cache_disk_bytes: 0,
    };
    Ok(SessionSettings {
        options,
        models: names,
        endpoint: endpoint.map(|url| ExternalEndpoint {
            url,
            api_key: args
                .api_key
                .clone()
                .or_else(|| ctx.settings.api_key.value.clone()),
            pid: args.pid,
        }),
        server_pid: args.pid,
        variants: args.variants.clone(),
        shapes: args.shapes,
        judge: args.judge.as_ref().map(|model| JudgeChoice {
            model: model.clone(),
            endpoint: args.judge_endpoint.clone(),
            api_key: args
                .judge_api_key
                .clone()
                .or_else(|| ctx.settings.judge_api_key.value.clone()),
        }),
        min_score: args.min_score,
        recommend_memory_bytes,
        load,
        gpu_layers,
        device: args.device,
        speculative,
        run_id,
        out_dir,
    })
}

fn calibrate() -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("{CLIENT_THREAD_PREFIX}client"))
        .enable_all()
        .build()?;
    let mut table = super::shared::table(&[
        "streams",
        "requests",
        "TTFT error p50 (ms)",
        "p99 (ms)",
        "max (ms)",
        "client CPU / request (ms)",
        "timer lag p99 (ms)",
    ]);
    for concurrency in [1u32, 16, 64, 256] {
        let c = rt.block_on(bench::calibrate(concurrency, concurrency * 4))?;
        table.add_row(vec![
            c.concurrency.to_string(),
            c.requests.to_string(),
            format!("{:.3}", c.ttft_error_p50_ms),
            format!("{:.3}", c.ttft_error_p99_ms),
            format!("{:.3}", c.ttft_error_max_ms),
            format!("{:.3}", c.client_cpu_ms_per_request),
            format!("{:.3}", c.lag_p99_ms),
        ]);
    }
    outln!("{table}");
    outln!("TTFT error = client-measured TTFT (send to first content token) minus the mock server's own TTFT (request received to first token written), same clock.");
    Ok(ExitCode::SUCCESS)
}
