//! `hearth bench`: resolves what to measure (models, prompts, load levels) from flags, their
//! environment twins and defaults, serves local models with hearth's own server on a loopback
//! port, runs the benchmark, and renders the reports from the store.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Args, ValueEnum};

use hearth::bench::client::Endpoint;
use hearth::bench::resources::{ProcessProbe, CLIENT_THREAD_PREFIX};
use hearth::bench::{self, prompts, recorder::Recorder, BenchOptions, PromptCache, Target};
use hearth::cache::BarProgress;
use hearth::catalog::{Catalog, CatalogEntry};
use hearth::engine::devices::{self, GpuLayers, Offload};
use hearth::engine::speculative::Speculative;
use hearth::env;
use hearth::eval::judge::{self, JudgeEndpoint};
use hearth::models::{self, LoadOptions};
use hearth::server::{self, Registry, ServerOptions};
use hearth::store::record::{LoadShape, ModelRecord, ModelStatus, RunRecord, RunStatus};

use super::Context;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Models to measure, comma-separated: catalog aliases, or model names at --endpoint
    /// (default: the default model, or every model in --models-file).
    #[arg(long, env = env::BENCH_MODELS, value_delimiter = ',')]
    models: Vec<String>,
    /// A models.json with extra entries (local files, upstream endpoints, tags).
    #[arg(long, value_name = "FILE")]
    models_file: Option<PathBuf>,
    /// A prompts.json: a list of strings or of {id, prompt, max_tokens, facets, checks,
    /// reference} objects
    /// (default: the built-in summarizer set).
    #[arg(long, value_name = "FILE", conflicts_with = "prompt_set")]
    prompts: Option<PathBuf>,
    /// A built-in prompt set instead: `default`, or `summarize` (summaries of source notes
    /// given in the prompt).
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
    /// API key for --endpoint.
    #[arg(long, env = env::HEARTH_API_KEY, hide_env_values = true)]
    api_key: Option<String>,
    /// Process id of the external server, to measure its memory and CPU.
    #[arg(long)]
    pid: Option<u32>,
    /// Timed rounds per load level.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Warm-up rounds per load level (recorded, never counted).
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// Requests per round (default: the prompt set, at least the concurrency).
    #[arg(long)]
    requests: Option<u32>,
    /// Closed-loop concurrency levels, comma-separated (default 1: sequential).
    #[arg(long, value_delimiter = ',')]
    concurrency: Vec<u32>,
    /// Open-loop arrival rates in requests per second, comma-separated.
    #[arg(long, value_delimiter = ',')]
    rate: Vec<f64>,
    /// Arrival burstiness for --rate: 1 = Poisson, < 1 burstier, > 1 more regular (gamma).
    #[arg(long, default_value_t = 1.0)]
    burstiness: f64,
    /// Cap on requests in flight for --rate (their wait for a slot is reported apart).
    #[arg(long)]
    max_concurrency: Option<u32>,
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
    /// Give up on a request after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    /// Price of a kWh for the approximate cost per 1k tokens.
    #[arg(long, default_value_t = 0.30)]
    energy_price: f64,
    /// Where to write the reports (default: a new folder under $HEARTH_HOME/runs).
    #[arg(long)]
    out: Option<PathBuf>,
    /// CPU threads for local models (default: the `threads` setting).
    #[arg(long)]
    threads: Option<u32>,
    /// Context per request for local models (default: the `ctx` setting, at most 4096).
    #[arg(long)]
    ctx: Option<u32>,
    /// Only measure the client against the built-in mock server, print its floor, and exit.
    #[arg(long)]
    calibrate: bool,
    /// Score every answer 1–5 with this judge model after the timed part: a catalog alias
    /// (served by hearth), or a model name at --judge-endpoint.
    #[arg(long, value_name = "MODEL")]
    judge: Option<String>,
    /// An OpenAI-compatible server (base URL) that runs the --judge model.
    #[arg(long, value_name = "URL", requires = "judge")]
    judge_endpoint: Option<String>,
    /// API key for --judge-endpoint.
    #[arg(long, env = env::HEARTH_JUDGE_API_KEY, hide_env_values = true)]
    judge_api_key: Option<String>,
    /// Quality bar of the recommendation: lowest acceptable mean score (1–5).
    #[arg(long, default_value_t = hearth::report::recommend::DEFAULT_MIN_SCORE)]
    min_score: f64,
    /// Offload settings to measure every local model at, comma-separated (`0,all`): each
    /// model is run once per setting, side by side in one report; settings this build or
    /// machine cannot run are recorded as skipped with the reason. Default: the `gpu_layers`
    /// setting, else all layers when a GPU is usable, else 0.
    #[arg(long, value_delimiter = ',', value_name = "N|all")]
    gpu_layers: Vec<GpuLayers>,
    /// The GPU to offload to, by index from `hearth devices`.
    #[arg(long)]
    device: Option<usize>,
    /// Speculative decoding modes to measure every local model with, comma-separated
    /// (`off,ngram` runs each model both ways, side by side in one report). Default: the
    /// `speculative` setting, else ngram.
    #[arg(long, value_delimiter = ',', value_name = "off|ngram")]
    speculative: Vec<Speculative>,
    /// Quantisation variants to add for every local model, comma-separated (`q4_0,q8_0`):
    /// made with `model quantize` when missing, and measured beside their source.
    #[arg(long, value_delimiter = ',', value_name = "TYPE")]
    variants: Vec<String>,
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
        let (number, scale) = if let Some(n) = value.strip_suffix("ms") {
            (n, 1.0)
        } else if let Some(n) = value.strip_suffix('s') {
            (n, 1000.0)
        } else {
            (value, 1.0)
        };
        let ms: f64 = number
            .trim()
            .parse()
            .with_context(|| format!("--slo: `{value}` is not a duration like 500ms or 5s"))?;
        if ms.is_nan() || ms <= 0.0 {
            bail!("--slo: {key} must be positive");
        }
        slo.insert(key.to_string(), ms * scale);
    }
    Ok(slo)
}

/// BENCH_STREAM: 1/true/yes streams, 0/false/no does not.
fn stream_from_env() -> Result<Option<bool>> {
    match std::env::var(env::BENCH_STREAM) {
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "1" | "true" | "yes" | "on" => Ok(Some(true)),
            "0" | "false" | "no" | "off" => Ok(Some(false)),
            other => bail!("BENCH_STREAM={other}: use 1 or 0"),
        },
        Err(_) => Ok(None),
    }
}

fn endpoint_from(args: &BenchArgs) -> Option<String> {
    args.endpoint
        .clone()
        .or_else(|| std::env::var(env::HEARTH_ENDPOINT).ok())
        .or_else(|| std::env::var(env::FOUNDRY_LOCAL_ENDPOINT).ok())
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
}

/// `http://host:port`, `http://host:port/`, `…/v1` → `…/v1`.
fn v1_url(url: &str) -> String {
    let base = url.trim_end_matches('/');
    if base.ends_with("/v1") {
        base.to_string()
    } else {
        format!("{base}/v1")
    }
}

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

/// The model record known before measuring, from the catalog when the name is in it.
fn model_record(
    name: &str,
    backend: &str,
    endpoint: &str,
    entry: Option<&CatalogEntry>,
) -> ModelRecord {
    ModelRecord {
        model: name.to_string(),
        backend: backend.to_string(),
        endpoint: endpoint.to_string(),
        license: entry.and_then(|e| e.license.clone()),
        tags: entry.map(|e| e.capabilities.clone()).unwrap_or_default(),
        quantization: entry.and_then(|e| e.quantization.clone()),
        disk_bytes: None,
        load_ms: None,
        status: ModelStatus::Running,
        error: None,
    }
}

pub fn bench(ctx: &Context, args: BenchArgs) -> Result<ExitCode> {
    if args.calibrate {
        return calibrate();
    }
    let stream = if args.no_stream {
        false
    } else if args.stream {
        true
    } else {
        stream_from_env()?.unwrap_or(true)
    };
    let prompts = match (&args.prompts, &args.prompt_set) {
        (Some(path), _) => prompts::load(path)?,
        (None, Some(name)) => {
            prompts::builtin(name).with_context(|| format!("no built-in prompt set {name}"))?
        }
        (None, None) => prompts::default_set(),
    };
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if !(1.0..=5.0).contains(&args.min_score) {
        bail!("--min-score must be between 1 and 5");
    }
    let memory_budget_bytes = match args.memory_budget {
        Some(mib) => Some(mib * 1024 * 1024),
        None => ctx.config.memory_limit_bytes()?,
    };
    let shapes = shapes(&args)?;
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
        ignore_eos: args.ignore_eos,
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
    };

    let mut files = vec![ctx.user_models_file()];
    files.extend(ctx.config.models_file());
    files.extend(args.models_file.clone());
    let mut catalog = Catalog::load(&files)?;
    let endpoint = endpoint_from(&args);
    let mut names = args.models.clone();
    names.retain(|n| !n.trim().is_empty());
    if names.is_empty() {
        if let Some(file) = &args.models_file {
            names = Catalog::load(std::slice::from_ref(file))?
                .entries()
                .iter()
                .filter(|e| e.origin != hearth::catalog::EntryOrigin::Builtin)
                .map(|e| e.alias.clone())
                .collect();
        }
    }
    if names.is_empty() {
        if endpoint.is_some() {
            bail!("name the models to measure at the endpoint with --models (or BENCH_MODELS)");
        }
        names.push(ctx.config.default_model());
    }

    let threads = args.threads.map_or_else(|| ctx.config.threads(), Ok)?;
    if !args.variants.is_empty() && endpoint.is_none() {
        names = with_variants(ctx, &catalog, &names, &args.variants, threads)?;
        catalog = Catalog::load(&files)?;
    }
    let run_id = new_run_id();
    let out_dir = match &args.out {
        Some(dir) => dir.clone(),
        None => ctx.config.home().join("runs").join(&run_id),
    };
    // The history first: a run that cannot be stored leaves no empty run folder behind.
    if let (Some(alias), None) = (&args.judge, &args.judge_endpoint) {
        // Before anything is created: a misspelt judge leaves no run behind.
        catalog
            .get(alias)
            .with_context(|| format!("--judge {alias}"))?;
    }
    let store = super::runs_cmd::open_store(ctx)?;
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create the run folder {}", out_dir.display()))?;

    // Runtimes: the client's threads are named so its CPU can be told from the server's.
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("{CLIENT_THREAD_PREFIX}client"))
        .enable_all()
        .build()?;
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hearth-server")
        .enable_all()
        .build()?;

    // Targets, and hearth's own server for the local ones.
    let mut targets = Vec::new();
    for name in &names {
        let entry = catalog.get(name).ok();
        if let Some(url) = &endpoint {
            let url = v1_url(url);
            let model = model_record(name, "endpoint", &url, entry);
            targets.push(Target {
                model,
                endpoint: Endpoint {
                    base_url: url,
                    model: name.clone(),
                    api_key: args.api_key.clone(),
                },
                probe: args.pid.map(ProcessProbe::new),
                managed: false,
            });
            continue;
        }
        let Some(entry) = entry else {
            let error = catalog.get(name).err().map(|e| e.to_string());
            targets.push(failed_target(name, error));
            continue;
        };
        if let Some(upstream) = &entry.upstream {
            let url = v1_url(&upstream.base_url);
            let api_key = upstream
                .api_key_env
                .as_deref()
                .and_then(|v| std::env::var(v).ok());
            targets.push(Target {
                model: model_record(name, "upstream", &url, Some(entry)),
                endpoint: Endpoint {
                    base_url: url,
                    model: upstream.model.clone(),
                    api_key,
                },
                probe: None,
                managed: false,
            });
            continue;
        }
        // Download what is missing before anything is timed.
        let path = match models::local_path(&ctx.cache, entry) {
            Some(p) => Ok(p),
            None => client_rt
                .block_on(models::ensure_local(&ctx.cache, entry, &BarProgress::new()))
                .map_err(|e| e.to_string()),
        };
        match path {
            Ok(path) => {
                let mut model = model_record(name, "hearth", "", Some(entry));
                model.disk_bytes = std::fs::metadata(&path).ok().map(|m| m.len());
                targets.push(Target {
                    model,
                    endpoint: Endpoint {
                        base_url: String::new(),
                        model: name.clone(),
                        api_key: None,
                    },
                    probe: Some(ProcessProbe::this_process()),
                    managed: true,
                });
            }
            Err(error) => targets.push(failed_target(name, Some(error))),
        }
    }

    // The judge: an external endpoint, a catalog upstream, or a local model served by hearth.
    let mut judge = match (&args.judge, &args.judge_endpoint) {
        (None, _) => None,
        (Some(model), Some(url)) => Some(JudgeEndpoint {
            base_url: v1_url(url),
            model: model.clone(),
            api_key: args.judge_api_key.clone(),
            constrain: false,
            timeout: Duration::from_secs_f64(args.timeout),
        }),
        (Some(alias), None) => {
            let entry = catalog
                .get(alias)
                .with_context(|| format!("--judge {alias}"))?;
            Some(match &entry.upstream {
                Some(upstream) => JudgeEndpoint {
                    base_url: v1_url(&upstream.base_url),
                    model: upstream.model.clone(),
                    api_key: upstream
                        .api_key_env
                        .as_deref()
                        .and_then(|v| std::env::var(v).ok()),
                    constrain: false,
                    timeout: Duration::from_secs_f64(args.timeout),
                },
                None => {
                    if models::local_path(&ctx.cache, entry).is_none() {
                        client_rt
                            .block_on(models::ensure_local(&ctx.cache, entry, &BarProgress::new()))
                            .with_context(|| format!("--judge {alias}"))?;
                    }
                    // Served by hearth below; hearth constrains the verdict to its schema.
                    JudgeEndpoint {
                        base_url: String::new(),
                        model: alias.clone(),
                        api_key: None,
                        constrain: true,
                        timeout: Duration::from_secs_f64(args.timeout),
                    }
                }
            })
        }
    };
    let judge_is_local = judge.as_ref().is_some_and(|j| j.base_url.is_empty());

    // One in-process server per offload setting that can run here; settings that cannot
    // (no GPU backend, no GPU) are recorded as skipped with the reason, never run on the CPU
    // under a GPU label.
    let settings: Vec<GpuLayers> = if args.gpu_layers.is_empty() {
        vec![ctx
            .config
            .gpu_layers()?
            .unwrap_or_else(devices::default_gpu_layers)]
    } else {
        args.gpu_layers.clone()
    };
    let spec_modes: Vec<Speculative> = if args.speculative.is_empty() {
        vec![ctx.config.speculative()?]
    } else {
        args.speculative.clone()
    };
    // Asked once per setting (it enumerates the devices), not once per model.
    let problems: HashMap<GpuLayers, Option<String>> = settings
        .iter()
        .map(|&s| (s, devices::offload_problem(s, args.device)))
        .collect();
    let parallel = shapes
        .iter()
        .map(|s| match s {
            LoadShape::Concurrency { concurrency } => *concurrency,
            LoadShape::Rate {
                max_concurrency, ..
            } => max_concurrency.unwrap_or(8),
        })
        .max()
        .unwrap_or(1)
        .max(1);
    let load = LoadOptions {
        threads,
        n_ctx: args
            .ctx
            .map_or_else(|| ctx.config.ctx().map(|c| c.min(4096)), Ok)?,
        parallel,
        queue_capacity: 1 << 16,
        memory_budget: super::model_cmd::memory_budget(ctx)?,
        offload: Offload::default(),
        speculative: Speculative::default(),
    };
    let start_server =
        |offload: Offload, speculative: Speculative| -> Result<server::RunningServer> {
            let registry = Arc::new(Registry::new(
                catalog.clone(),
                ctx.cache.clone(),
                LoadOptions {
                    offload,
                    speculative,
                    ..load.clone()
                },
                Duration::from_secs(24 * 3600),
            ));
            let options = ServerOptions {
                port: 0,
                ..ServerOptions::default()
            };
            Ok(server_rt.block_on(server::start(options, registry))?)
        };
    // One server per (offload, speculation) pair in use.
    let mut servers: Vec<((GpuLayers, Speculative), server::RunningServer)> = Vec::new();
    let mut expanded = Vec::new();
    for target in targets {
        if !target.managed {
            expanded.push(target);
            continue;
        }
        for (&setting, &spec) in settings
            .iter()
            .flat_map(|s| spec_modes.iter().map(move |m| (s, m)))
        {
            let mut t = target.clone();
            let mut labels = Vec::new();
            if settings.len() > 1 {
                labels.push(format!("gpu={setting}"));
            }
            if spec_modes.len() > 1 {
                labels.push(format!("spec={spec}"));
            }
            if !labels.is_empty() {
                t.model.model = format!("{} [{}]", t.model.model, labels.join(" "));
            }
            if let Some(why) = &problems[&setting] {
                t.model.status = ModelStatus::Skipped;
                t.model.error = Some(format!("--gpu-layers {setting}: {why}"));
                t.managed = false;
                expanded.push(t);
                continue;
            }
            let url = match servers.iter().find(|(key, _)| *key == (setting, spec)) {
                Some((_, running)) => format!("http://{}/v1", running.addr),
                None => {
                    let offload = Offload {
                        gpu_layers: setting,
                        device: args.device,
                    };
                    let running = start_server(offload, spec)?;
                    let url = format!("http://{}/v1", running.addr);
                    servers.push(((setting, spec), running));
                    url
                }
            };
            t.endpoint.base_url = url.clone();
            t.model.endpoint = url;
            expanded.push(t);
        }
    }
    let targets = expanded;
    if let (Some(j), true) = (judge.as_mut(), judge_is_local) {
        if servers.is_empty() {
            let key = (settings[0], spec_modes[0]);
            let offload = Offload {
                gpu_layers: key.0,
                device: args.device,
            };
            servers.push((key, start_server(offload, key.1)?));
        }
        j.base_url = format!("http://{}/v1", servers[0].1.addr);
    }

    // The client's floor, measured before the run at the run's widest concurrency.
    let widest = shapes
        .iter()
        .map(|s| match s {
            LoadShape::Concurrency { concurrency } => *concurrency,
            LoadShape::Rate {
                rate,
                max_concurrency,
                ..
            } => max_concurrency.unwrap_or((rate * 2.0).ceil() as u32),
        })
        .max()
        .unwrap_or(1)
        .clamp(1, 256);
    let calibration = client_rt.block_on(bench::calibrate(widest, widest * 2))?;

    let mut run = RunRecord {
        id: run_id.clone(),
        started_unix_ms: unix_ms(),
        finished_unix_ms: None,
        status: RunStatus::Running,
        options: serde_json::json!({
            "bench": &options,
            "slo": &options.slo,
            "energy_price_per_kwh": options.energy_price_per_kwh,
            "models": &names,
            "speculative": &spec_modes,
            "endpoint": &endpoint,
            "out": out_dir.display().to_string(),
            "quality": {
                "min_score": args.min_score,
                "memory_budget_bytes": memory_budget_bytes,
                "judge": judge.as_ref().map(|j| j.scorer()),
                "rubric_version": judge.as_ref().map(|_| hearth::eval::judge::RUBRIC_VERSION),
            },
        }),
        environment: bench::environment::current(threads),
        client: serde_json::json!({
            "calibration": &calibration,
            "cpu_limit_share": bench::CLIENT_CPU_LIMIT,
            "lag_limit_ms": bench::CLIENT_LAG_LIMIT_MS,
        }),
    };
    let (recorder, writer) = Recorder::start(store, &run)?;
    eprintln!(
        "hearth bench: run {run_id}: {} model(s), {} level(s), {} warm-up + {} timed round(s), {}streaming",
        targets.len(),
        shapes.len(),
        options.warmup,
        options.rounds,
        if stream { "" } else { "not " }
    );

    let progress = super::bench_progress::BarsProgress::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let interrupted = client_rt.block_on(async {
        let ctrl_c = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "\ninterrupted: keeping every finished request (Ctrl-C again to quit at once)"
                );
                let _ = stop_tx.send(true);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let run = tokio::spawn({
            let options = options.clone();
            let recorder = recorder.clone();
            let progress = progress.clone();
            async move { bench::run(&options, targets, &recorder, &progress, stop_rx).await }
        });
        let interrupted = run.await.unwrap_or(true);
        ctrl_c.abort();
        interrupted
    });
    progress.clear();

    run.finished_unix_ms = Some(unix_ms());
    run.status = if interrupted {
        RunStatus::Interrupted
    } else {
        RunStatus::Complete
    };
    recorder.update_run(&run);
    drop(recorder);
    let mut store = writer.finish()?;
    let mut data = store.load_run(&run_id)?;
    if let (Some(judge), false) = (&judge, interrupted) {
        if judge_answers(&client_rt, &mut store, &data, judge)? {
            data = store.load_run(&run_id)?;
        }
    }
    for (_, running) in servers {
        let _ = server_rt.block_on(running.shutdown());
    }
    let paths = hearth::report::write_all(&data, &out_dir)?;
    let summary = hearth::report::summarize(&data);
    println!("{}", hearth::report::terminal_table(&summary));
    eprintln!("run {run_id} stored in {}", store.location());
    eprintln!("reports:");
    for path in paths {
        eprintln!("  {}", path.display());
    }
    if interrupted {
        return Ok(ExitCode::from(130));
    }
    let all_ok = data
        .models
        .iter()
        .all(|m| matches!(m.status, ModelStatus::Ok | ModelStatus::Skipped));
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Scores the run's answers with the judge and stores the scores. Ctrl-C stops judging (the
/// run is kept, unscored). Returns whether scores were stored.
fn judge_answers(
    rt: &tokio::runtime::Runtime,
    store: &mut hearth::store::Store,
    data: &hearth::store::record::RunData,
    judge: &JudgeEndpoint,
) -> Result<bool> {
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "judging with {msg} {bar:30} {pos}/{len} distinct answers ({elapsed})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(judge.model.clone());
    let scores = rt.block_on(async {
        tokio::select! {
            scores = judge::judge_run(data, judge, |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            }) => Some(scores),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    bar.finish_and_clear();
    let Some(scores) = scores else {
        eprintln!("judging interrupted: the run is kept without judge scores");
        return Ok(false);
    };
    let unscored = scores.iter().filter(|s| s.score.is_none()).count();
    eprintln!(
        "judge {}: {} of {} answers scored (rubric {})",
        judge.scorer(),
        scores.len() - unscored,
        scores.len(),
        judge::RUBRIC_VERSION
    );
    if unscored > 0 {
        let reason = scores
            .iter()
            .find_map(|s| s.score.is_none().then_some(s.reason.as_deref()).flatten())
            .unwrap_or("");
        eprintln!("  {unscored} left unscored, e.g. {reason}");
    }
    store.upsert_scores(&data.run.id, &scores)?;
    Ok(!scores.is_empty())
}

/// `names` with, after each local model, its variants of `types` (`alias@q4_0`), made with
/// `model quantize` when not cached yet. Upstream models and variants themselves get none.
fn with_variants(
    ctx: &Context,
    catalog: &Catalog,
    names: &[String],
    types: &[String],
    threads: u32,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for name in names {
        out.push(name.clone());
        let local = catalog
            .get(name)
            .is_ok_and(|e| e.upstream.is_none() && e.lineage.is_none());
        if !local {
            continue;
        }
        for ty in types {
            let ty = hearth::engine::quantize::parse_type(ty)?;
            let variant = format!("{name}@{}", ty.name.to_ascii_lowercase());
            let cached = catalog
                .get(&variant)
                .is_ok_and(|e| models::local_path(&ctx.cache, e).is_some());
            let variant = if cached {
                variant
            } else {
                eprintln!("making {variant} for the comparison (hearth model quantize)");
                super::model_cmd::quantize(ctx, name, ty.name, threads)?
            };
            if !out.contains(&variant) && !names.contains(&variant) {
                out.push(variant);
            }
        }
    }
    Ok(out)
}

/// A model that cannot be measured at all (unknown alias, failed download): it stays in the
/// run and in every report with its error.
fn failed_target(name: &str, error: Option<String>) -> Target {
    let mut model = model_record(name, "hearth", "", None);
    model.status = ModelStatus::Failed;
    model.error = Some(error.unwrap_or_else(|| "unknown model".into()));
    Target {
        model,
        endpoint: Endpoint {
            base_url: String::new(),
            model: name.to_string(),
            api_key: None,
        },
        probe: None,
        managed: false,
    }
}

fn calibrate() -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("{CLIENT_THREAD_PREFIX}client"))
        .enable_all()
        .build()?;
    let mut table = super::table(&[
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
    println!("{table}");
    println!("TTFT error = client-measured TTFT (send to first content token) minus the mock server's own TTFT (request received to first token written), same clock.");
    Ok(ExitCode::SUCCESS)
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `YYYYMMDD-HHMMSS-xxxx` (UTC): sorts by time, unique enough with 16 random bits.
fn new_run_id() -> String {
    let stamp: String = hearth::report::format_utc(unix_ms())
        .trim_end_matches(" UTC")
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect();
    let nonce: u16 = rand::random();
    format!("{stamp}-{nonce:04x}")
}
