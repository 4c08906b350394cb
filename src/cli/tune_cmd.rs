//! `hearth tune`: the serving configuration that holds the user's load best on this machine,
//! found by measurement. Each probe is a short bench session of one configuration (stored in
//! the run history like any run); `hearth::tune` decides what to probe next and who wins; a
//! confirm run sets the winner against the default, alternating, and says by how much.

use std::cell::Cell;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use hearth::bench::session::{self, Library, SessionSettings};
use hearth::engine::compute::{Compute, FlashAttn, KvType, DEFAULT_BATCH};
use hearth::engine::devices::GpuLayers;
use hearth::engine::memory::DEFAULT_SLOTS;
use hearth::engine::speculative::Speculative;
use hearth::profiles::Profile;
use hearth::store::record::{LoadShape, TuneRecord};
use hearth::text::human_bytes;
use hearth::tune::{self, Configuration, Confirmation, Plan, Probe, ProbeError, Search, Status};
use serde::Serialize;

use super::bench_cmd::{self, BenchArgs};
use super::progress::{session_observer, JsonProgress};
use super::Context;

/// `hearth tune`'s flags: the workload and SLO as `hearth bench` takes them, the axes to
/// search, and the budget.
#[derive(Debug, Args)]
pub struct TuneArgs {
    #[command(flatten)]
    bench: BenchArgs,
    /// Slot counts to try (`--parallel` of `hearth serve`); default: 1, 2, 4 … up to the
    /// load's concurrency, and serve's default.
    #[arg(long = "parallel", value_delimiter = ',')]
    parallel: Vec<u32>,
    /// Total wall time for the search and the confirm run (`90s`, `20m`, `1h`); when it runs
    /// out, the best so far is the answer.
    #[arg(long, default_value = "20m")]
    budget: String,
    /// Print the result as one JSON document (see docs/tune.md).
    #[arg(long)]
    json: bool,
    /// Save the pick as its model's serving profile: `serve`, `service start` and `model run`
    /// then use it (a flag still overrides it; `hearth config list` and `model info` show it).
    #[arg(long)]
    apply: bool,
}

/// One serving configuration: what `hearth serve` would be started with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServeConfig {
    /// The model (a variant is `alias@type`).
    pub model: String,
    /// Slots decoded together.
    pub parallel: u32,
    /// Speculative decoding.
    pub speculative: Speculative,
    /// Context per slot, tokens, when shorter than serve's (what the workload needs, so that
    /// more slots fit a memory budget).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<u32>,
    /// CPU threads, when not the `threads` setting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// Layers offloaded to the GPU, when not this machine's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_layers: Option<GpuLayers>,
    /// KV cache type, flash attention and batch sizes.
    #[serde(flatten)]
    pub compute: Compute,
    /// How many settings differ from `hearth serve` with no flags.
    #[serde(skip)]
    changes: u32,
}

impl Configuration for ServeConfig {
    fn complexity(&self) -> u32 {
        self.changes
    }
}

impl ServeConfig {
    /// The command that serves this configuration.
    fn serve_command(&self) -> String {
        let mut command = format!(
            "hearth serve --models {} --parallel {} --speculative {}",
            self.model, self.parallel, self.speculative
        );
        for (flag, value) in [
            ("ctx", self.ctx.map(|v| v.to_string())),
            ("threads", self.threads.map(|v| v.to_string())),
            ("gpu-layers", self.gpu_layers.map(|v| v.to_string())),
        ] {
            if let Some(v) = value {
                command.push_str(&format!(" --{flag} {v}"));
            }
        }
        command + &self.compute.flags()
    }

    fn label(&self) -> String {
        hearth::report::tune::label_of(&serde_json::to_value(self).unwrap_or_default())
    }

    /// This configuration with one more setting changed from the default.
    fn changed(&self, change: impl FnOnce(&mut Self)) -> Self {
        let mut out = self.clone();
        change(&mut out);
        out.changes += 1;
        out
    }

    /// This configuration with another compute setting, its changes counted again.
    fn with_compute(&self, compute: Compute) -> Self {
        Self {
            changes: self.changes - self.compute.changes() + compute.changes(),
            compute,
            ..self.clone()
        }
    }
}

/// The JSON document `--json` prints.
#[derive(Serialize)]
struct TuneDocument {
    winner: Option<Side>,
    baseline: Side,
    confirm: Option<Confirmation>,
    load: String,
    slo: Option<String>,
    search: Search<ServeConfig>,
}

#[derive(Serialize)]
struct Side {
    config: ServeConfig,
    serve_command: String,
    goodput_rps: Option<f64>,
}

pub fn tune(ctx: &Context, args: TuneArgs) -> Result<ExitCode> {
    let budget = parse_budget(&args.budget)?;
    if budget < Duration::from_secs(30) {
        bail!(
            "--budget {} is too short for one probe (30s at least)",
            args.budget
        );
    }
    // One load: a closed-loop concurrency, an open-loop arrival rate, or by default each
    // configuration at the concurrency of its slots, so the search finds the load that most
    // requests meet the SLO at (the slot counts double as the load's levels). The most
    // requests in flight bounds the slot counts worth trying.
    let capacity = args.bench.concurrency.is_empty() && args.bench.rate.is_empty();
    let in_flight = match (
        args.bench.concurrency.as_slice(),
        args.bench.rate.as_slice(),
    ) {
        ([], []) => DEFAULT_SLOTS,
        ([c], []) => *c,
        ([], [r]) if r.is_finite() && *r > 0.0 => {
            args.bench.max_concurrency.unwrap_or(DEFAULT_SLOTS)
        }
        _ => bail!("hearth tune holds one load: give one --concurrency or one --rate"),
    };
    if args.parallel.contains(&0) {
        bail!("--parallel must be at least 1");
    }
    let mut base = bench_cmd::resolve(ctx, &args.bench)?;
    if base.endpoint.is_some() {
        bail!("hearth tune configures hearth's own server; --endpoint measures another");
    }
    // One load, one configuration a session: bench's sweep and interleaving do not apply.
    if base.options.shapes.len() != 1
        || args.bench.concurrency.is_empty() && args.bench.rate.is_empty()
    {
        base.options.shapes = vec![LoadShape::Concurrency {
            concurrency: in_flight,
        }];
    }
    let load = if capacity {
        "each configuration at the concurrency of its slots".to_string()
    } else {
        base.options.shapes[0].label()
    };
    base.options.sweep = None;
    base.options.stop_over_saturated_secs = None;
    base.options.interleave = false;
    base.options.warmup = base.options.warmup.max(1);
    // The judge scores each model's answers once, in its first probe (answers at temperature
    // 0 hardly change with the serving settings); `--min-score` then rules models out.
    let judge = base.judge.take();
    let min_score = judge.as_ref().map(|_| args.bench.min_score);
    let judged = std::cell::RefCell::new(std::collections::BTreeSet::new());
    if args.bench.shapes {
        bail!("name the shape models to tune in --models (`llama-3.2-1b~shape`; `hearth model synth` makes one): a shape model is tuned for speed only, and its pick is never applied");
    }
    let catalog = ctx.catalog()?;
    for model in &base.models {
        catalog.get(model)?;
    }
    if let Some(j) = judge.as_ref().filter(|j| j.endpoint.is_none()) {
        catalog
            .get(&j.model)
            .map_err(|e| anyhow::anyhow!("--judge {}: {e}", j.model))?;
    }
    let configs = configurations(&base, &args, in_flight, ctx.settings.speculative.value);
    // Ruled out before anything runs: what the memory estimate says cannot fit the budget.
    // What does not fit at serve's context per slot may fit at what the workload needs.
    let memory_budget = base.recommend_memory_bytes;
    let gguf_of = |model: &str| {
        let entry = catalog.get(model).ok()?;
        hearth::loader::local_path(&ctx.cache, entry).and_then(|p| hearth::gguf::read(&p).ok())
    };
    let too_big = |c: &ServeConfig| -> Option<String> {
        let budget = memory_budget?;
        let entry = catalog.get(&c.model).ok()?;
        let file = gguf_of(&c.model);
        let cells = u64::from(c.ctx.unwrap_or(base.load.n_ctx)) * u64::from(c.parallel);
        let need = hearth::loader::estimate(entry, file.as_ref(), c.compute.kv_type, cells)?;
        (!need.fits(budget)).then(|| {
            format!(
                "needs about {} (weights {}, KV cache {}), over the memory budget of {}",
                human_bytes(need.total_bytes()),
                human_bytes(need.weights_bytes),
                human_bytes(need.kv_cache_bytes),
                human_bytes(budget)
            )
        })
    };
    let shorter_ctx = workload_ctx(&base).filter(|n| {
        args.bench.ctx.is_none() && *n < base.load.n_ctx && base.options.depths.is_empty()
    });
    let mut pruned = Vec::new();
    let mut kept: Vec<ServeConfig> = Vec::new();
    for (i, c) in configs.into_iter().enumerate() {
        // The default stays as serve runs it: whatever it needs, tune measures the others
        // against it.
        let Some(why) = too_big(&c).filter(|_| i > 0) else {
            kept.push(c);
            continue;
        };
        match shorter_ctx.map(|n| c.changed(|c| c.ctx = Some(n))) {
            Some(s) if too_big(&s).is_none() => {
                if !kept.contains(&s) {
                    kept.push(s);
                }
            }
            _ => pruned.push((c, why)),
        }
    }
    let configs = kept;
    let start = Instant::now();
    let started_unix_ms = hearth::store::unix_ms();
    // A run id's form (time stamp and a random suffix), marked as a tune.
    let tune_id = format!("tune-{}", session::new_run_id());
    let files = bench_cmd::catalog_files(ctx, &args.bench);
    let user_models_file = ctx.user_models_file();
    // Ctrl-C stops the probe in flight (its run is kept, marked interrupted) and the search:
    // what was measured before it decides.
    let interrupted = Cell::new(false);
    let plan = Plan {
        first_rounds: base.options.rounds.clamp(2, 4),
        stages: 3,
        confidence: 0.95,
    };
    // What probes took, per round run (the warm-up round counts: it also pays the model's
    // load): (seconds, rounds). A probe starts only when what it should take, and the confirm
    // run after it (one block of four probes, two when the default missed the SLO in some
    // round), still fit the budget.
    let spent = Cell::new((0.0f64, 0u32));
    // Whether the default met the SLO with no request in some round: its confirm run then
    // needs a second block for Fieller's interval to close, and the search leaves room for it.
    let default_config = configs[0].clone();
    let default_missed = Cell::new(false);
    let probe_once = |c: &ServeConfig, rounds: u32| -> Result<Probe, ProbeError> {
        if args.bench.progress_json {
            JsonProgress::emit(serde_json::json!({
                "event": "probe", "config": c.label(), "rounds": rounds,
            }));
        } else if !args.json {
            eprintln!("tune: probing {} ({rounds} rounds)", c.label());
        }
        let mut s = base.clone();
        s.models = vec![c.model.clone()];
        s.variants = Vec::new();
        s.speculative = vec![c.speculative];
        s.load.parallel = c.parallel;
        s.load.compute = c.compute;
        if let Some(n) = c.ctx {
            s.load.n_ctx = n;
            s.load.auto_ctx = false;
        }
        if let Some(threads) = c.threads {
            s.load.threads = threads;
        }
        if let Some(layers) = c.gpu_layers {
            s.gpu_layers = vec![layers];
        }
        if capacity {
            s.options.shapes = vec![LoadShape::Concurrency {
                concurrency: c.parallel,
            }];
        }
        s.options.rounds = rounds;
        s.judge = match &judge {
            Some(j) if judged.borrow_mut().insert(c.model.clone()) => Some(j.clone()),
            _ => None,
        };
        s.run_id = session::new_run_id();
        s.out_dir = ctx.config.home().join("runs").join(&s.run_id);
        let store = ctx
            .open_store()
            .map_err(|e| ProbeError::Failed(e.to_string()))?;
        let outcome = session::run(
            s,
            Library {
                catalog_files: &files,
                user_models_file: &user_models_file,
                cache: &ctx.cache,
            },
            store,
            session_observer(args.bench.progress_json),
        )
        .map_err(|e| ProbeError::Failed(e.to_string()))?;
        if outcome.interrupted {
            interrupted.set(true);
            return Err(ProbeError::Stopped);
        }
        tune::probe_of(&outcome.data).map_err(ProbeError::Failed)
    };
    let mut probe = |c: &ServeConfig, rounds: u32| -> Result<Probe, ProbeError> {
        let began = Instant::now();
        let result = probe_once(c, rounds);
        if let Ok(p) = &result {
            if *c == default_config && p.rounds.iter().any(|v| *v <= 0.0) {
                default_missed.set(true);
            }
            let (secs, n) = spent.get();
            spent.set((secs + began.elapsed().as_secs_f64(), n + rounds + 1));
        }
        result
    };
    // A fifth more than the mean so far: configurations differ in speed.
    let expected = |rounds: u32| {
        let (secs, n) = spent.get();
        let per_round = if n == 0 { 0.0 } else { secs / f64::from(n) };
        Duration::from_secs_f64(1.2 * per_round * f64::from(rounds + 1))
    };
    // The confirm run is longer than a first-stage probe: blocks of A B B A at twice its
    // rounds.
    let confirm_rounds = plan.first_rounds * 2;
    let block_cost = || expected(confirm_rounds) * 4;
    let confirm_cost = || block_cost() * if default_missed.get() { 2 } else { 1 };
    let search_may_go_on = |rounds: u32| {
        !interrupted.get() && start.elapsed() + expected(rounds) + confirm_cost() <= budget
    };
    let search =
        tune::successive_halving_gated(configs, 0, plan, &mut probe, search_may_go_on, |entries| {
            quality_gate(entries, min_score)
        });
    // Then the compute settings, one at a time around the pick: they hardly interact with
    // the model and the slots, and the full product would multiply the probes by 8.
    let pinned = &args.bench.compute;
    let neighbours = |c: &ServeConfig| -> Vec<ServeConfig> {
        let mut out = Vec::new();
        let now = c.compute;
        if pinned.kv_type.is_none() {
            for kv in [KvType::F16, KvType::Q8_0] {
                if kv != now.kv_type && now.flash_attn != FlashAttn::Off {
                    out.push(c.with_compute(Compute { kv_type: kv, ..now }));
                }
            }
        }
        if pinned.flash_attn.is_none() && !now.kv_type.is_quantized() {
            let other = if now.flash_attn == FlashAttn::Off {
                FlashAttn::Auto
            } else {
                FlashAttn::Off
            };
            out.push(c.with_compute(Compute {
                flash_attn: other,
                ..now
            }));
        }
        if args.bench.threads.is_none() && c.threads.is_none() {
            for threads in other_thread_counts(base.load.threads) {
                out.push(c.changed(|c| c.threads = Some(threads)));
            }
        }
        // Offload, on a machine that offloads: none, and half the layers (room for the KV
        // cache and the other slots on a small GPU).
        let offloads = base.gpu_layers[0];
        if args.bench.gpu_layers.is_empty() && c.gpu_layers.is_none() && !offloads.is_cpu() {
            let blocks = gguf_of(&c.model).and_then(|g| g.block_count).unwrap_or(0);
            let half = GpuLayers::Count((blocks / 2) as u32);
            for layers in [GpuLayers::Count(0), half] {
                if layers != offloads && (layers.is_cpu() || blocks >= 2) {
                    out.push(c.changed(|c| c.gpu_layers = Some(layers)));
                }
            }
        }
        if pinned.batch.is_none() && pinned.ubatch.is_none() {
            let batch = if now.batch > 128 {
                now.batch / 4
            } else {
                DEFAULT_BATCH
            };
            out.push(c.with_compute(Compute {
                batch,
                ubatch: batch,
                ..now
            }));
        }
        out
    };
    let mut search = tune::refine(search, neighbours, plan, &mut probe, search_may_go_on);
    for (c, why) in pruned {
        search.push_pruned(c, why);
    }
    // The confirm run: the winner against the default, alternating (A B B A), rounds paired.
    let confirm = match search.winner {
        Some(w)
            if w != search.baseline
                && start.elapsed() + block_cost() <= budget
                && !interrupted.get() =>
        {
            tune::confirm_run(
                &search.entries[search.baseline].config,
                &search.entries[w].config,
                confirm_rounds,
                plan.confidence,
                &mut probe,
                || !interrupted.get() && start.elapsed() + block_cost() <= budget,
            )
        }
        _ => None,
    };
    let side = |i: usize| Side {
        config: search.entries[i].config.clone(),
        serve_command: search.entries[i].config.serve_command(),
        goodput_rps: search.entries[i].objective(),
    };
    let doc = TuneDocument {
        winner: search.winner.map(side),
        baseline: side(search.baseline),
        confirm,
        load,
        slo: (!base.options.slo.is_empty()).then(|| {
            let mut limits: Vec<String> = base
                .options
                .slo
                .iter()
                .map(|(k, v)| format!("{} ≤ {v} ms", k.trim_end_matches("_ms")))
                .collect();
            limits.sort();
            format!("{} (each request)", limits.join(", "))
        }),
        search,
    };
    store_tune(ctx, &tune_id, &doc, started_unix_ms, interrupted.get())?;
    if args.bench.progress_json {
        JsonProgress::emit(serde_json::json!({
            "event": "stored", "run": tune_id, "interrupted": interrupted.get(),
        }));
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_result(&doc);
        outln!("stored as {tune_id}: `hearth report {tune_id} --format html` draws it");
    }
    if args.apply {
        apply(ctx, &doc, interrupted.get())?;
    }
    Ok(if interrupted.get() {
        ExitCode::from(130)
    } else if doc.winner.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The quality constraints, the recommendation's rules:
/// - a model whose answers pass clearly fewer automatic checks than the best model's (more than
///   `CHECK_MARGIN` below, each with at least `MIN_CHECKS` checks) is excluded, whatever its
///   speed. Checks are the model's, summed over every probe of its configurations; prompts
///   without checks (generated ones) rule out nothing;
/// - with `--judge`, a model whose judged answers score under `min_score` on average is
///   excluded.
fn quality_gate(
    entries: &[tune::Entry<ServeConfig>],
    min_score: Option<f64>,
) -> Vec<(usize, String)> {
    use hearth::report::recommend::{CHECK_MARGIN, MIN_CHECKS};
    let mut by_model: std::collections::BTreeMap<&str, tune::ModelQuality> = Default::default();
    for e in entries {
        let t = by_model.entry(&e.config.model).or_default();
        for p in &e.probes {
            t.add(
                p.checks_passed,
                p.checks_total,
                p.judge_score,
                p.judge_scored,
            );
        }
    }
    let best = by_model
        .iter()
        .filter(|(_, q)| q.checks_total >= MIN_CHECKS)
        .max_by(|a, b| a.1.pass_rate().total_cmp(&b.1.pass_rate()));
    let why_out = |model: &str| -> Option<String> {
        let mine = &by_model[model];
        if let Some((best_model, best)) = best {
            if mine.checks_total >= MIN_CHECKS && mine.pass_rate() < best.pass_rate() - CHECK_MARGIN
            {
                return Some(format!(
                    "quality: {:.0} % of {} automatic checks passed, more than {:.0} points under {best_model}'s {:.0} %",
                    100.0 * mine.pass_rate(),
                    mine.checks_total,
                    100.0 * CHECK_MARGIN,
                    100.0 * best.pass_rate()
                ));
            }
        }
        let min = min_score?;
        let score = mine.judge_mean()?;
        (score < min).then(|| {
            format!(
                "quality: the judge scored its answers {score:.2} on average ({} answers), under --min-score {min}",
                mine.judged
            )
        })
    };
    entries
        .iter()
        .enumerate()
        .filter(|(_, e)| !matches!(e.status, Status::Excluded(_)))
        .filter_map(|(i, e)| Some((i, why_out(&e.config.model)?)))
        .collect()
}

/// Keeps the search in the run history as a tune (its probes are already runs there).
fn store_tune(
    ctx: &Context,
    id: &str,
    doc: &TuneDocument,
    started_unix_ms: i64,
    interrupted: bool,
) -> Result<()> {
    let summary = match &doc.winner {
        None => "no configuration could be measured".to_string(),
        Some(w) if w.config == doc.baseline.config => format!("default kept: {}", w.serve_command),
        Some(w) => match doc.confirm.as_ref().and_then(|c| c.ratio) {
            Some(ratio) => format!("{} (goodput ×{ratio:.2} the default's)", w.serve_command),
            None => w.serve_command.clone(),
        },
    };
    let record = TuneRecord {
        id: id.to_string(),
        started_unix_ms,
        finished_unix_ms: hearth::store::unix_ms(),
        status: if interrupted {
            "interrupted"
        } else if doc.search.out_of_budget {
            "out_of_budget"
        } else {
            "finished"
        }
        .into(),
        summary,
        document: serde_json::to_value(doc)?,
    };
    ctx.open_store()?.insert_tune(&record)?;
    Ok(())
}

/// `--apply`: the pick becomes its model's serving profile. Not after Ctrl-C (the person
/// stopped the search), and never for a shape model (its answers are noise: the real model
/// must be downloaded and tuned).
fn apply(ctx: &Context, doc: &TuneDocument, interrupted: bool) -> Result<()> {
    let Some(w) = &doc.winner else {
        bail!("nothing to apply: no configuration could be measured");
    };
    if interrupted {
        bail!("not applied: the search was stopped before it finished");
    }
    let c = &w.config;
    if hearth::catalog::is_shape_alias(&c.model) {
        bail!(
            "not applied: `{}` is a shape model (random weights, measured for speed only); download the real model and tune it",
            c.model
        );
    }
    let source = format!(
        "hearth tune {}: load {}, SLO {}, goodput {} req/s{}",
        hearth::text::utc(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        ),
        doc.load,
        doc.slo.as_deref().unwrap_or("none"),
        hearth::report::fmt_num(w.goodput_rps, 2),
        match doc.confirm.as_ref().and_then(|k| k.ratio) {
            Some(ratio) => format!(", ×{ratio:.2} the default's"),
            None => String::new(),
        }
    );
    let profile = Profile {
        parallel: Some(c.parallel),
        ctx: c.ctx,
        speculative: Some(c.speculative),
        threads: c.threads,
        gpu_layers: c.gpu_layers,
        kv_type: Some(c.compute.kv_type),
        flash_attn: Some(c.compute.flash_attn),
        batch: Some(c.compute.batch),
        ubatch: Some(c.compute.effective_ubatch()),
        source: Some(source),
    };
    let file = ctx.profiles_file();
    let mut profiles = ctx.profiles()?;
    profiles.set(&c.model, profile.clone());
    profiles.save(&file)?;
    eprintln!(
        "applied: `hearth serve --models {}` now serves it with {} ({}; a flag overrides it)",
        c.model,
        profile.flags(),
        file.display()
    );
    Ok(())
}

/// Every configuration to search: each model (and variant) × slot counts × drafting modes,
/// the default (the first model as `hearth serve` runs it) first.
fn configurations(
    base: &SessionSettings,
    args: &TuneArgs,
    concurrency: u32,
    default_spec: Speculative,
) -> Vec<ServeConfig> {
    let mut models = base.models.clone();
    for ty in &args.bench.variants {
        for m in &base.models {
            models.push(format!("{m}@{ty}"));
        }
    }
    let slots: Vec<u32> = if args.parallel.is_empty() {
        let mut s: Vec<u32> = std::iter::successors(Some(1u32), |n| Some(n * 2))
            .take_while(|n| *n <= concurrency)
            .collect();
        s.push(DEFAULT_SLOTS);
        s.sort_unstable();
        s.dedup();
        s
    } else {
        args.parallel.clone()
    };
    let specs: Vec<Speculative> = if args.bench.speculative.is_empty() {
        vec![default_spec, other(default_spec)]
    } else {
        args.bench.speculative.clone()
    };
    let compute = base.load.compute;
    let mut out = vec![ServeConfig {
        model: models[0].clone(),
        parallel: DEFAULT_SLOTS,
        speculative: default_spec,
        ctx: None,
        threads: None,
        gpu_layers: None,
        compute,
        changes: 0,
    }];
    for (mi, model) in models.iter().enumerate() {
        for &parallel in &slots {
            for &speculative in &specs {
                let c = ServeConfig {
                    model: model.clone(),
                    parallel,
                    speculative,
                    ctx: None,
                    threads: None,
                    gpu_layers: None,
                    compute,
                    changes: u32::from(mi > 0)
                        + u32::from(parallel != DEFAULT_SLOTS)
                        + u32::from(speculative != default_spec),
                };
                // The same settings have the same changes: equality is the settings'.
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
    }
    out
}

/// The context per slot a generated workload needs: its longest prompt and answer (four
/// standard deviations above the mean) and room for the chat template, in blocks of 256.
/// `None` for prompt sets and datasets, whose lengths are known only once tokenised.
fn workload_ctx(base: &SessionSettings) -> Option<u32> {
    let options = &base.options;
    let input = options.input_tokens?;
    let output = options
        .output_tokens
        .map_or(options.max_tokens, |o| o.mean + 4 * o.spread);
    Some((input.mean + 4 * input.spread + output + 64).next_multiple_of(256))
}

/// Thread counts worth trying besides `now` (the `threads` setting, physical cores by
/// default): every logical core where the cores run two threads each, and half the cores on a
/// machine with eight or more (decoding is bound by memory bandwidth, which fewer threads may
/// already fill). None on a small machine without SMT, like the two-core one the README
/// measures on.
fn other_thread_counts(now: u32) -> Vec<u32> {
    let logical = num_cpus::get() as u32;
    let physical = num_cpus::get_physical() as u32;
    let mut out = Vec::new();
    if logical > physical {
        out.push(logical);
    }
    if physical >= 8 {
        out.push(physical / 2);
    }
    out.retain(|n| *n != now && *n > 0);
    out.dedup();
    out
}

fn other(s: Speculative) -> Speculative {
    match s {
        Speculative::Off => Speculative::Ngram,
        Speculative::Ngram => Speculative::Off,
    }
}

/// `90s`, `20m`, `1h`, or plain seconds (read as `--slo` reads durations).
fn parse_budget(text: &str) -> Result<Duration> {
    let ms = bench_cmd::duration_ms(text, 1000.0).ok_or_else(|| {
        anyhow::anyhow!("--budget {text}: expected a duration such as 90s, 20m or 1h")
    })?;
    if !(ms.is_finite() && ms > 0.0) {
        bail!("--budget {text}: must be positive");
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

fn print_result(doc: &TuneDocument) {
    let mut table = super::shared::table(&[
        "configuration",
        "status",
        "goodput req/s",
        "TTFT p95 ms",
        "TPOT p95 ms",
        "out tok/s",
        "peak RSS",
        "quality",
        "rounds",
    ]);
    let fmt = |v: Option<f64>, d: usize| hearth::report::fmt_num(v, d);
    let value = serde_json::to_value(doc).map_err(|e| e.to_string());
    let quality = value
        .as_ref()
        .ok()
        .and_then(|v| hearth::report::tune::quality_of(v).ok())
        .unwrap_or_default();
    for e in &doc.search.entries {
        let last = e.last();
        table.add_row(vec![
            e.config.label(),
            match &e.status {
                Status::NotReached => "not reached".into(),
                Status::Eliminated(stage) => format!("eliminated at stage {stage}"),
                Status::Tied => "tied (within noise)".into(),
                Status::Winner => "WINNER".into(),
                Status::Failed(why) => format!("failed: {why}"),
                Status::Pruned(why) => format!("pruned: {why}"),
                Status::Excluded(why) => format!("excluded: {why}"),
            },
            fmt(e.objective(), 2),
            fmt(last.and_then(|p| p.ttft_ms), 0),
            fmt(last.and_then(|p| p.tpot_ms), 1),
            fmt(last.and_then(|p| p.output_tok_s), 1),
            hearth::report::fmt_bytes(last.and_then(|p| p.peak_rss_bytes)),
            quality
                .get(&e.config.model)
                .cloned()
                .unwrap_or_else(|| "—".into()),
            e.rounds().len().to_string(),
        ]);
    }
    outln!("{table}");
    for line in &doc.search.trace {
        outln!("  {line}");
    }
    let slo = doc
        .slo
        .as_deref()
        .unwrap_or("none (every successful request counts)");
    outln!("load {}, SLO {slo}", doc.load);
    let lines =
        value.and_then(|v| hearth::report::tune::decision_of(&v).map_err(|e| e.to_string()));
    match lines {
        Ok(lines) => {
            for line in lines {
                outln!("{line}");
            }
        }
        Err(e) => outln!("(the decision could not be put in words: {e})"),
    }
}
