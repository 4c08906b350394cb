//! One level of one target: its rounds planned, run one by one (warm-up first), the answers
//! recorded as they come, and the level's resources and record at the end.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::client::{self, Clock, Job, RequestParams};
use super::jobs::{jobs_for_round, shape_jobs};
use super::options::BenchOptions;
use super::recorder::Recorder;
use super::{load, measure, Progress, Target};
use crate::store::record::{LoadShape, RequestRecord, RequestStatus, TokenSource};

/// What a level counted, for its target's final status and a sweep's bounds.
pub(super) struct LevelOutcome {
    /// Successful counted requests.
    pub(super) ok: u64,
    /// Successful counted requests per second of the timed rounds (0 when none).
    pub(super) request_rate: f64,
    /// Counted (timed) requests that failed.
    pub(super) failed: u64,
    /// The first failure's message.
    pub(super) first_error: Option<String>,
    /// The user stopped the run during the level.
    pub(super) interrupted: bool,
}

/// What one level measures.
pub(super) struct Level<'a> {
    pub(super) options: &'a BenchOptions,
    pub(super) target: &'a Target,
    pub(super) shape: &'a LoadShape,
    /// Tokens of filler context before every prompt, when measuring at a depth.
    pub(super) depth: Option<u32>,
    /// The endpoint counts tokens (`/tokenize`) for answers that came without usage.
    pub(super) tokenizer: bool,
}

/// One level of one target, measured round by round: started (its requests planned), then
/// each round in turn, then finished (its resources and record). Split so that an interleaved
/// session can alternate the rounds of several targets.
pub(super) struct LevelRun<'a> {
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
    pub(super) outcome: LevelOutcome,
    /// Rounds run so far, warm-up included.
    rounds_run: u32,
    /// No round is left: all ran, the level was stopped, or the user interrupted.
    pub(super) over: bool,
}

impl<'a> LevelRun<'a> {
    /// Plans the level's rounds. `clock` is the level's time origin: shared by the levels of
    /// an interleaved session, so their instants line up.
    pub(super) async fn start(
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
    pub(super) async fn round(
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
    pub(super) async fn finish(
        mut self,
        http: &reqwest::Client,
        recorder: &Recorder,
    ) -> LevelOutcome {
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

/// Measures one level of one target, round after round.
pub(super) async fn run_level(
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
