//! The targets of a run, one after another or interleaved round by round: each loaded (its
//! cold load timed), measured level by level (a sweep's rates placed once its bounds are
//! known), then unloaded with its final status.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use super::client::{self, Clock, Job, RequestParams};
use super::level::{run_level, Level, LevelOutcome, LevelRun};
use super::options::{planned_levels, planned_requests, BenchOptions};
use super::recorder::Recorder;
use super::{Progress, Target};
use crate::openai;
use crate::store::record::{LoadShape, ModelRecord, ModelStatus, RequestStatus};

/// Runs every target in turn, or in alternating rounds when `options.interleave` asks for it.
/// Returns true when the run was interrupted by `stop`.
pub async fn run_targets(
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
        nonce: String::new(),
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
