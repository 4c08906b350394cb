//! One `hearth bench` session, from resolved settings to a stored run: the targets (catalog
//! models served by hearth's own server on a loopback port, upstream entries, or models at an
//! external endpoint), the variants to make first, one server per offload and speculation
//! setting, the client's floor, the timed run with Ctrl-C keeping what finished, and the judge.
//!
//! The CLI resolves flags, environment and settings into [`SessionSettings`] and calls
//! [`run`]; reports are rendered by the caller from the returned data, which was read back
//! from the store.

mod servers;
mod targets;

pub use targets::v1_url;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use super::recorder::Recorder;
use super::resources::CLIENT_THREAD_PREFIX;
use super::{BenchError, BenchOptions, Progress, Target};
use crate::cache::Cache;
use crate::cache::MakeObserver;
use crate::catalog::{Catalog, CatalogError};
use crate::engine::devices::GpuLayers;
use crate::engine::speculative::Speculative;
use crate::eval::judge::{self, JudgeEndpoint};
use crate::loader::LoadOptions;
use crate::server::ServerError;
use crate::store::record::{
    LoadShape, QualityOptions, RunData, RunOptions, RunRecord, RunStatus, SloLimits,
};
use crate::store::{unix_ms, Store, StoreError};
use crate::variants::VariantError;
use servers::Servers;
use targets::{
    judge_endpoint, make_named_shapes, make_named_variants, target, with_shapes, with_variants,
};

/// Why a session could not run or finish (one model failing is not this: it is recorded and
/// the run goes on).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The catalog files could not be read.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The judge is not a model hearth knows or can fetch.
    #[error("--judge {alias}: {reason}")]
    Judge {
        /// The judge's alias.
        alias: String,
        /// Why it cannot judge.
        reason: String,
    },
    /// A variant to compare could not be made.
    #[error(transparent)]
    Variant(#[from] VariantError),
    /// The run folder could not be made.
    #[error("cannot create the run folder {}: {source}", path.display())]
    RunFolder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A runtime for the client or the server could not start.
    #[error("cannot start the benchmark's runtime: {0}")]
    Runtime(std::io::Error),
    /// hearth's own server for the local models could not start.
    #[error("cannot start hearth's server for the run: {0}")]
    Server(#[from] ServerError),
    /// The client's floor could not be measured against the mock server.
    #[error("cannot calibrate the client: {0}")]
    Calibration(std::io::Error),
    /// The run could not be written to or read from the history.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The recorder failed.
    #[error(transparent)]
    Bench(#[from] BenchError),
}

/// An external OpenAI-compatible server to measure instead of hearth's own.
#[derive(Clone, Debug)]
pub struct ExternalEndpoint {
    /// Its base URL, with or without `/v1`.
    pub url: String,
    /// Bearer key, when it wants one.
    pub api_key: Option<String>,
    /// Its process, to watch its memory and CPU.
    pub pid: Option<u32>,
}

/// Who scores the answers after the timed part.
#[derive(Clone, Debug)]
pub struct JudgeChoice {
    /// A catalog alias, or a model name at `endpoint`.
    pub model: String,
    /// The judge's server; `None` serves the catalog model with hearth.
    pub endpoint: Option<String>,
    /// Bearer key for `endpoint`.
    pub api_key: Option<String>,
}

/// Everything a session needs, resolved by the caller from flags, environment and settings.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// What every target is measured with.
    pub options: BenchOptions,
    /// Model names, in order: catalog aliases, or names at `endpoint`.
    pub models: Vec<String>,
    /// Measure these at an external server instead of hearth's own.
    pub endpoint: Option<ExternalEndpoint>,
    /// The external server's process (`--pid`), watched for memory and CPU: the endpoint's,
    /// and every catalog upstream's that names no process of its own.
    pub server_pid: Option<u32>,
    /// Quantisation types whose variants are made (when missing) and measured beside each
    /// local model.
    pub variants: Vec<String>,
    /// Add each catalog model's shape twin (random weights: speed and memory only), made
    /// when missing.
    pub shapes: bool,
    /// The judge, when answers are scored.
    pub judge: Option<JudgeChoice>,
    /// The recommendation's quality bar (1–5).
    pub min_score: f64,
    /// The recommendation's memory budget, bytes of peak RSS (`None`: the machine's memory).
    pub recommend_memory_bytes: Option<u64>,
    /// How hearth's own server loads local models (offload and speculation are set per
    /// server from the two lists below).
    pub load: LoadOptions,
    /// Offload settings each local model is measured at (at least one).
    pub gpu_layers: Vec<GpuLayers>,
    /// The GPU to offload to.
    pub device: Option<usize>,
    /// Speculative decoding modes each local model is measured with (at least one).
    pub speculative: Vec<Speculative>,
    /// The run's id.
    pub run_id: String,
    /// Where the reports go (recorded with the run for `annotate import`).
    pub out_dir: PathBuf,
}

/// Where the session finds and keeps models.
pub struct Library<'a> {
    /// Catalog files, read again after variants are added to the user file.
    pub catalog_files: &'a [PathBuf],
    /// The user catalog, where made variants are entered.
    pub user_models_file: &'a std::path::Path,
    /// The model cache.
    pub cache: &'a Cache,
}

/// What the person running the session sees: live progress of the requests, notes, the
/// quantizer and the judge.
pub trait SessionObserver: Progress + MakeObserver {
    /// The timed part is over: live bars can go before the table is printed.
    fn measured(&self);
    /// The judge has scored `done` of `total` distinct answers.
    fn judging(&self, judge: &str, done: usize, total: usize);
    /// Judging is over.
    fn judged(&self);
}

/// A finished (or interrupted) session: the run as stored.
pub struct SessionOutcome {
    /// The run, read back from the store (with judge scores when judged).
    pub data: RunData,
    /// Stopped by Ctrl-C; every finished request is kept.
    pub interrupted: bool,
    /// Where the run is stored, for the person to find it.
    pub store_location: String,
}

/// Runs one benchmark session and stores it in `store`.
pub fn run(
    settings: SessionSettings,
    library: Library<'_>,
    store: Store,
    observer: Arc<dyn SessionObserver>,
) -> Result<SessionOutcome, SessionError> {
    let mut catalog = Catalog::load(library.catalog_files)?;
    let mut names = settings.models.clone();
    if !settings.variants.is_empty() && settings.endpoint.is_none() {
        names = with_variants(&settings, &library, &catalog, &names, observer.as_ref())?;
        catalog = Catalog::load(library.catalog_files)?;
    }
    if settings.endpoint.is_none()
        && make_named_variants(&settings, &library, &catalog, &names, observer.as_ref())
    {
        catalog = Catalog::load(library.catalog_files)?;
    }
    if settings.endpoint.is_none()
        && make_named_shapes(&settings, &library, &catalog, &names, observer.as_ref())
    {
        catalog = Catalog::load(library.catalog_files)?;
    }
    if settings.shapes && settings.endpoint.is_none() {
        names = with_shapes(&settings, &library, &catalog, &names, observer.as_ref());
        catalog = Catalog::load(library.catalog_files)?;
    }
    if let Some(JudgeChoice {
        model,
        endpoint: None,
        ..
    }) = &settings.judge
    {
        // Before anything is created: a misspelt judge leaves no run behind.
        catalog.get(model).map_err(|e| SessionError::Judge {
            alias: model.clone(),
            reason: e.to_string(),
        })?;
    }
    let out_dir = &settings.out_dir;
    std::fs::create_dir_all(out_dir).map_err(|source| SessionError::RunFolder {
        path: out_dir.clone(),
        source,
    })?;

    // Runtimes: the client's threads are named so its CPU can be told from the server's.
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("{CLIENT_THREAD_PREFIX}client"))
        .enable_all()
        .build()
        .map_err(SessionError::Runtime)?;
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hearth-server")
        .enable_all()
        .build()
        .map_err(SessionError::Runtime)?;

    let targets: Vec<Target> = names
        .iter()
        .map(|name| target(name, &settings, &catalog, library.cache, &client_rt))
        .collect();
    let mut judge = judge_endpoint(&settings, &catalog, library.cache, &client_rt)?;
    let judge_is_local = judge.as_ref().is_some_and(|j| j.base_url.is_empty());

    let mut servers = Servers::new(
        &catalog,
        library.cache,
        &settings.load,
        settings.device,
        &server_rt,
    );
    let targets = servers.serve(targets, &settings.gpu_layers, &settings.speculative)?;
    if let (Some(j), true) = (judge.as_mut(), judge_is_local) {
        j.base_url = servers.any_url((settings.gpu_layers[0], settings.speculative[0]))?;
    }

    // The client's floor, measured before the run at the run's widest concurrency.
    let widest = widest_concurrency(&settings.options.shapes);
    let calibration = client_rt
        .block_on(super::calibrate(widest, widest * 2))
        .map_err(SessionError::Calibration)?;

    let options = &settings.options;
    let mut run = RunRecord {
        id: settings.run_id.clone(),
        started_unix_ms: unix_ms(),
        finished_unix_ms: None,
        status: RunStatus::Running,
        options: run_options(&settings, &names, judge.as_ref()),
        environment: super::environment::current(settings.load.threads),
        client: json!({
            "calibration": &calibration,
            "cpu_limit_share": super::CLIENT_CPU_LIMIT,
            "lag_limit_ms": super::CLIENT_LAG_LIMIT_MS,
        }),
    };
    let (recorder, writer) = Recorder::start(store, &run)?;
    let levels = match options.sweep {
        Some(sweep) => format!(
            "a sweep (c=1, c={}, then {} rates between; levels stop once over-saturated)",
            sweep.max_concurrency, sweep.rates
        ),
        None => format!("{} level(s)", options.shapes.len()),
    };
    observer.notice(&format!(
        "hearth bench: run {}: {} model(s), {levels}, {} warm-up + {} timed round(s), {}streaming",
        settings.run_id,
        targets.len(),
        options.warmup,
        options.rounds,
        if options.stream { "" } else { "not " }
    ));

    // An interleaved session keeps every configuration loaded: once their threads outnumber the
    // cores, llama.cpp's OpenMP threads stop spinning between steps and all of them slow alike
    // (two cores, two configurations of two threads: 3.4× the time per token).
    let local = targets.iter().filter(|t| t.managed).count() as u32;
    let cores = num_cpus::get() as u32;
    if options.interleave && local > 1 && local * settings.load.threads > cores {
        observer.notice(&format!(
            "hearth bench: warning: {local} configurations × {} threads exceed this machine's {cores} cores: in an interleaved session all of them slow down alike (comparisons stay fair; speeds do not match a run of one). --threads {} keeps them apart.",
            settings.load.threads,
            (cores / local).max(1)
        ));
    }
    let interrupted = measure(&client_rt, options, targets, &recorder, &observer);
    observer.measured();

    run.finished_unix_ms = Some(unix_ms());
    run.status = if interrupted {
        RunStatus::Interrupted
    } else {
        RunStatus::Complete
    };
    recorder.update_run(&run);
    drop(recorder);
    let mut store = writer.finish()?;
    let mut data = store.load_run(&settings.run_id)?;
    if let (Some(judge), false) = (&judge, interrupted) {
        if judge_answers(&client_rt, &mut store, &data, judge, observer.as_ref())? {
            data = store.load_run(&settings.run_id)?;
        }
    }
    servers.shutdown();
    Ok(SessionOutcome {
        data,
        interrupted,
        store_location: store.location(),
    })
}

/// The timed run on the client's runtime; Ctrl-C stops it with every finished request kept,
/// a second Ctrl-C quits at once. Returns whether it was interrupted.
fn measure(
    rt: &tokio::runtime::Runtime,
    options: &BenchOptions,
    targets: Vec<Target>,
    recorder: &Recorder,
    observer: &Arc<dyn SessionObserver>,
) -> bool {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    rt.block_on(async {
        let ctrl_c = tokio::spawn({
            let observer = observer.clone();
            async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    observer.notice(
                        "\ninterrupted: keeping every finished request (Ctrl-C again to quit at once)",
                    );
                    let _ = stop_tx.send(true);
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(130);
                    }
                }
            }
        });
        let run = tokio::spawn({
            let options = options.clone();
            let recorder = recorder.clone();
            let observer = observer.clone();
            async move {
                let progress: &dyn Progress = observer.as_ref();
                super::run_targets(&options, targets, &recorder, progress, stop_rx).await
            }
        });
        let interrupted = run.await.unwrap_or(true);
        ctrl_c.abort();
        interrupted
    })
}

/// What is stored as the run's options: everything a report needs to say what was measured.
fn run_options(
    settings: &SessionSettings,
    names: &[String],
    judge: Option<&JudgeEndpoint>,
) -> RunOptions {
    let options = &settings.options;
    let limit = |key: &str| options.slo.get(key).copied();
    RunOptions {
        bench: serde_json::to_value(options).unwrap_or_default(),
        slo: SloLimits {
            ttft_ms: limit("ttft_ms"),
            e2e_ms: limit("e2e_ms"),
            tpot_ms: limit("tpot_ms"),
            itl_ms: limit("itl_ms"),
        },
        energy_price_per_kwh: Some(options.energy_price_per_kwh),
        models: names.to_vec(),
        speculative: settings
            .speculative
            .iter()
            .map(ToString::to_string)
            .collect(),
        compute: settings.endpoint.is_none().then_some(settings.load.compute),
        endpoint: settings.endpoint.as_ref().map(|e| e.url.clone()),
        out: Some(settings.out_dir.display().to_string()),
        quality: QualityOptions {
            min_score: Some(settings.min_score),
            memory_budget_bytes: settings.recommend_memory_bytes,
            judge: judge.map(JudgeEndpoint::scorer),
            rubric_version: judge.map(|_| judge::RUBRIC_VERSION.to_string()),
        },
        interleaved: options.interleave,
        other: serde_json::Map::new(),
    }
}

/// The widest concurrency any level reaches (for the client's floor), 1–256.
fn widest_concurrency(shapes: &[LoadShape]) -> u32 {
    shapes
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
        .clamp(1, 256)
}

/// Sequences hearth's server decodes together: the widest closed loop, or a rate level's cap
/// (8 without one).
pub fn parallel_for(shapes: &[LoadShape]) -> u32 {
    shapes
        .iter()
        .map(|s| match s {
            LoadShape::Concurrency { concurrency } => *concurrency,
            LoadShape::Rate {
                max_concurrency, ..
            } => max_concurrency.unwrap_or(8),
        })
        .max()
        .unwrap_or(1)
        .max(1)
}

/// Scores the run's answers with the judge and stores the scores. Ctrl-C stops judging (the
/// run is kept, unscored). Returns whether scores were stored.
fn judge_answers(
    rt: &tokio::runtime::Runtime,
    store: &mut Store,
    data: &RunData,
    judge: &JudgeEndpoint,
    observer: &dyn SessionObserver,
) -> Result<bool, SessionError> {
    let scores = rt.block_on(async {
        tokio::select! {
            scores = judge::judge_run(data, judge, |done, total| {
                observer.judging(&judge.model, done, total);
            }) => Some(scores),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    observer.judged();
    let Some(scores) = scores else {
        observer.notice("judging interrupted: the run is kept without judge scores");
        return Ok(false);
    };
    let unscored = scores.iter().filter(|s| s.score.is_none()).count();
    observer.notice(&format!(
        "judge {}: {} of {} answers scored (rubric {})",
        judge.scorer(),
        scores.len() - unscored,
        scores.len(),
        judge::RUBRIC_VERSION
    ));
    if unscored > 0 {
        let reason = scores
            .iter()
            .find_map(|s| s.score.is_none().then_some(s.reason.as_deref()).flatten())
            .unwrap_or("");
        observer.notice(&format!("  {unscored} left unscored, e.g. {reason}"));
    }
    store.upsert_scores(&data.run.id, &scores)?;
    Ok(!scores.is_empty())
}

/// `YYYYMMDD-HHMMSS-xxxx` (UTC): sorts by time, unique enough with 16 random bits.
pub fn new_run_id() -> String {
    let stamp = crate::text::utc_stamp(unix_ms());
    let nonce: u16 = rand::random();
    format!("{stamp}-{nonce:04x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_url_adds_the_version_once() {
        assert_eq!(v1_url("http://h:1"), "http://h:1/v1");
        assert_eq!(v1_url("http://h:1/"), "http://h:1/v1");
        assert_eq!(v1_url("http://h:1/v1/"), "http://h:1/v1");
    }

    #[test]
    fn servers_decode_as_many_sequences_as_the_widest_level() {
        let shapes = [
            LoadShape::Concurrency { concurrency: 4 },
            LoadShape::Rate {
                rate: 2.0,
                burstiness: 1.0,
                max_concurrency: None,
            },
        ];
        assert_eq!(parallel_for(&shapes), 8);
        assert_eq!(parallel_for(&shapes[..1]), 4);
        assert_eq!(parallel_for(&[]), 1);
        assert_eq!(widest_concurrency(&shapes), 4);
        assert_eq!(widest_concurrency(&[]), 1);
    }
}
