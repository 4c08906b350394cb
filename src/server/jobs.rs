//! Long work started from the web UI (or any client) as server-side jobs: `POST /api/bench`
//! and `POST /api/tune` run `hearth bench|tune` as a child process with `--progress-json`,
//! `POST /api/models/quantize` and `POST /api/models/synth` run `hearth model quantize|synth`
//! (the catalog is read again when they end, so the new model is served at once). `GET /api/jobs/{id}/events` follows any
//! job as server-sent events (from the first event, so a page opened late sees the whole job),
//! and `POST /api/jobs/{id}/cancel` interrupts it as Ctrl-C would: a bench keeps the requests
//! finished so far, stored and reported.
//!
//! A child process, not a task in the server: the bench loads its own engine with its own
//! threads and memory, exits when done, and a crash in it cannot take the server down; the
//! run it stores is exactly what the same `hearth bench` on the command line would store.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::broadcast;

use super::error::ApiError;
use super::handlers::{body_bytes, finish};
use super::request::parse_body;
use super::AppState;

type Shared = State<Arc<AppState>>;

/// How the server starts jobs: the hearth binary, the home it runs with, and the catalog
/// files to read again when a job made a model.
#[derive(Clone, Debug)]
pub struct JobRunner {
    /// The `hearth` executable (the server's own).
    pub exe: PathBuf,
    /// `HEARTH_HOME` of the jobs (the server's), so their runs land in the server's history.
    pub home: PathBuf,
    /// The server's catalog files (the user's models.json, where made models are entered).
    pub catalog_files: Vec<PathBuf>,
}

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum JobStatus {
    Running,
    Done,
    Failed,
    Cancelled,
}

/// One job: what was asked, where it is, every event so far.
struct Job {
    id: String,
    /// `bench`, `tune`, `quantize` or `synth`.
    kind: &'static str,
    request: Value,
    status: JobStatus,
    /// The run it stored, once known.
    run: Option<String>,
    events: Vec<Value>,
    live: broadcast::Sender<Value>,
    pid: Option<u32>,
    cancel_asked: bool,
    /// Per-request events kept so far.
    kept_requests: usize,
}

/// Per-request progress events a job keeps for late followers.
const KEPT_REQUEST_EVENTS: usize = 2_000;

impl Job {
    fn record(&mut self, event: Value) {
        if self.run.is_none() {
            if let Some(run) = event["run"].as_str() {
                self.run = Some(run.to_string());
            }
        }
        let per_request = event["event"] == "request";
        if !per_request || self.kept_requests < KEPT_REQUEST_EVENTS {
            self.kept_requests += usize::from(per_request);
            self.events.push(event.clone());
        }
        let _ = self.live.send(event);
    }

    fn summary(&self) -> Value {
        json!({
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "run": self.run,
            "request": self.request,
            "events": self.events.len(),
        })
    }
}

/// The jobs of this server's lifetime.
#[derive(Default)]
pub(super) struct Jobs {
    jobs: Mutex<Vec<Job>>,
    next: Mutex<u64>,
}

impl Jobs {
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Job) -> T) -> Option<T> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.iter_mut().find(|j| j.id == id).map(f)
    }

    /// Interrupts every running job, as Ctrl-C would: when the server stops, its jobs stop
    /// too (a bench or tune stores what it measured) instead of running on unwatched.
    pub(super) fn interrupt_all(&self) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        for job in jobs.iter_mut().filter(|j| j.status == JobStatus::Running) {
            job.cancel_asked = true;
            if let Some(pid) = job.pid {
                interrupt(pid);
            }
        }
    }

    /// Records `event` for job `id` and sends it to the pages following it. Past
    /// [`KEPT_REQUEST_EVENTS`] a job's per-request events are sent but not kept (a late
    /// follower still gets every other event, and the last counts come with the next ones).
    fn push(&self, id: &str, event: Value) {
        self.with(id, |job| job.record(event));
    }

    /// Ends job `id` with `status` and its `end` event, in one step: a follower that arrives
    /// sees either a running job whose end is still to come, or an ended one with its end.
    fn end(&self, id: &str, status: JobStatus, end: Value) {
        self.with(id, |job| {
            job.status = status;
            job.record(end);
        });
    }
}

/// `POST /api/bench` asks for this; every field but `models` has `hearth bench`'s default.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BenchRequest {
    /// Catalog aliases to measure.
    models: Vec<String>,
    /// A built-in prompt set (`default`, `summarize`, `structured`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prompt_set: Option<String>,
    /// Closed-loop concurrency levels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    concurrency: Vec<u32>,
    /// Timed rounds per level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rounds: Option<u32>,
    /// Warm-up rounds per level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    warmup: Option<u32>,
    /// Requests per round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    requests: Option<u32>,
    /// Most tokens per answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

impl JobRequest for BenchRequest {
    const KIND: &'static str = "bench";
    const PATH: &'static str = "/api/bench";

    fn args(&self, state: &AppState) -> Result<Vec<String>, ApiError> {
        if self.models.is_empty() {
            return Err(ApiError::bad_param("models", "name at least one model"));
        }
        for model in &self.models {
            state.registry.catalog().get(model).map_err(|e| {
                ApiError::new(StatusCode::NOT_FOUND, "model_not_found", e.to_string())
            })?;
        }
        let mut args = vec![
            "bench".to_string(),
            "--progress-json".into(),
            "--models".into(),
            self.models.join(","),
        ];
        if let Some(set) = &self.prompt_set {
            if !crate::bench::prompts::BUILTIN_SETS.contains(&set.as_str()) {
                return Err(ApiError::bad_param(
                    "prompt_set",
                    format!(
                        "unknown prompt set {set} (one of {})",
                        crate::bench::prompts::BUILTIN_SETS.join(", ")
                    ),
                ));
            }
            args.extend(["--prompt-set".into(), set.clone()]);
        }
        if !self.concurrency.is_empty() {
            if self.concurrency.contains(&0) {
                return Err(ApiError::bad_param("concurrency", "levels start at 1"));
            }
            let levels: Vec<String> = self.concurrency.iter().map(u32::to_string).collect();
            args.extend(["--concurrency".into(), levels.join(",")]);
        }
        for (flag, value) in [
            ("--rounds", self.rounds),
            ("--warmup", self.warmup),
            ("--requests", self.requests),
            ("--max-tokens", self.max_tokens),
        ] {
            if let Some(v) = value {
                args.extend([flag.to_string(), v.to_string()]);
            }
        }
        Ok(args)
    }
}

/// What a job runs: a request body that becomes the arguments of a `hearth` command.
pub(super) trait JobRequest: serde::de::DeserializeOwned + Serialize {
    /// The job's kind (`bench`, `tune`, `quantize`, `synth`).
    const KIND: &'static str;
    /// The endpoint, for the metrics.
    const PATH: &'static str;
    /// The `hearth` arguments, after checking what the server can check up front.
    fn args(&self, state: &AppState) -> Result<Vec<String>, ApiError>;
}

/// `POST` of a job's request: starts the job; answers 202 with its id at once.
pub(super) async fn start<R: JobRequest>(
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let request: R = parse_body(&body_bytes(body)?)?;
        let args = request.args(&state)?;
        let request = serde_json::to_value(&request).map_err(ApiError::internal)?;
        spawn(&state, R::KIND, request, args).await
    }
    .await;
    finish(&state, R::PATH, result)
}

/// `POST /api/tune` asks for this: the load and SLO as for a benchmark, and the search's
/// budget.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TuneRequest {
    /// Catalog aliases to search over (variants as `alias@type`).
    models: Vec<String>,
    /// A built-in prompt set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prompt_set: Option<String>,
    /// The load: closed-loop concurrency levels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    concurrency: Vec<u32>,
    /// Requests per round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    requests: Option<u32>,
    /// Most tokens per answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    /// Service-level objectives, as `hearth bench --slo` takes them (`ttft=500ms,e2e=5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    slo: Option<String>,
    /// Slot counts to try.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parallel: Vec<u32>,
    /// Wall time for the search and the confirm run (`90s`, `20m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    budget: Option<String>,
    /// Save the pick as the model's serving profile.
    #[serde(default)]
    apply: bool,
}

/// `POST /api/tune` runs `hearth tune` as a job: its `probe` events say which configuration
/// is measured, and its `stored` event names the tune (`GET /api/report?runs=tune-…`).
impl JobRequest for TuneRequest {
    const KIND: &'static str = "tune";
    const PATH: &'static str = "/api/tune";

    fn args(&self, state: &AppState) -> Result<Vec<String>, ApiError> {
        let bench = BenchRequest {
            models: self.models.clone(),
            prompt_set: self.prompt_set.clone(),
            concurrency: self.concurrency.clone(),
            rounds: None,
            warmup: None,
            requests: self.requests,
            max_tokens: self.max_tokens,
        };
        let mut args = bench.args(state)?;
        args[0] = "tune".into();
        if let Some(slo) = &self.slo {
            args.extend(["--slo".into(), slo.clone()]);
        }
        if !self.parallel.is_empty() {
            if self.parallel.contains(&0) {
                return Err(ApiError::bad_param("parallel", "slot counts start at 1"));
            }
            let counts: Vec<String> = self.parallel.iter().map(u32::to_string).collect();
            args.extend(["--parallel".into(), counts.join(",")]);
        }
        if let Some(budget) = &self.budget {
            args.extend(["--budget".into(), budget.clone()]);
        }
        if self.apply {
            args.push("--apply".into());
        }
        Ok(args)
    }
}

/// `POST /api/models/quantize` asks for this.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QuantizeRequest {
    /// The source model's alias.
    model: String,
    /// The target type (`Q8_0`, `Q4_K_M`…).
    #[serde(rename = "type")]
    ty: String,
}

/// `POST /api/models/quantize {"model", "type"}` makes the variant `MODEL@TYPE` as
/// `hearth model quantize` does.
impl JobRequest for QuantizeRequest {
    const KIND: &'static str = "quantize";
    const PATH: &'static str = "/api/models/quantize";

    fn args(&self, state: &AppState) -> Result<Vec<String>, ApiError> {
        known_model(state, &self.model)?;
        crate::engine::quantize::parse_type(&self.ty)
            .map_err(|e| ApiError::bad_param("type", e.to_string()))?;
        Ok(vec![
            "model".into(),
            "quantize".into(),
            self.model.clone(),
            "--type".into(),
            self.ty.clone(),
        ])
    }
}

/// `POST /api/models/synth` asks for this.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SynthRequest {
    /// The catalog model whose shape to copy.
    model: String,
    /// Quantisation to write (default: the entry's own).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    ty: Option<String>,
}

/// `POST /api/models/synth {"model", "type"}` makes the shape model `MODEL~shape` (random
/// weights in the model's architecture) as `hearth model synth` does.
impl JobRequest for SynthRequest {
    const KIND: &'static str = "synth";
    const PATH: &'static str = "/api/models/synth";

    fn args(&self, state: &AppState) -> Result<Vec<String>, ApiError> {
        known_model(state, &self.model)?;
        let mut args = vec!["model".into(), "synth".into(), self.model.clone()];
        if let Some(ty) = &self.ty {
            crate::engine::quantize::parse_type(ty)
                .map_err(|e| ApiError::bad_param("type", e.to_string()))?;
            args.extend(["--type".into(), ty.clone()]);
        }
        Ok(args)
    }
}

fn known_model(state: &AppState, alias: &str) -> Result<(), ApiError> {
    state
        .registry
        .catalog()
        .get(alias)
        .map(|_| ())
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "model_not_found", e.to_string()))
}

/// Starts `hearth ARGS` as job `kind`; answers 202 with the job's id.
async fn spawn(
    state: &Arc<AppState>,
    kind: &'static str,
    request: Value,
    args: Vec<String>,
) -> Result<Response, ApiError> {
    let Some(runner) = state.jobs_runner.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_jobs",
            "this server does not run jobs",
        ));
    };
    let id = {
        let mut next = state.jobs.next.lock().unwrap_or_else(|e| e.into_inner());
        *next += 1;
        format!("job-{next}")
    };
    let mut child = tokio::process::Command::new(&runner.exe)
        .args(&args)
        .env(crate::env::HEARTH_HOME, &runner.home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ApiError::internal(format!("cannot start hearth {kind}: {e}")))?;
    let (live, _) = broadcast::channel(1024);
    state
        .jobs
        .jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Job {
            id: id.clone(),
            kind,
            request,
            status: JobStatus::Running,
            run: None,
            events: Vec::new(),
            live,
            pid: child.id(),
            cancel_asked: false,
            kept_requests: 0,
        });
    tracing::info!(%id, ?args, "job started");
    // What the command prints on stdout (the bench's table, the made model's name) is kept
    // as `output` events; its stderr carries the JSON progress, other lines as `log` events.
    let stdout = child.stdout.take().expect("piped");
    let (out_state, out_job) = (Arc::clone(state), id.clone());
    let output = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            out_state
                .jobs
                .push(&out_job, json!({"event": "output", "line": line}));
        }
    });
    let stderr = child.stderr.take().expect("piped");
    let (jobs_state, job) = (Arc::clone(state), id.clone());
    tokio::spawn(async move {
        let jobs = &jobs_state.jobs;
        let mut lines = BufReader::new(stderr).lines();
        let mut log_tail: Vec<String> = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<Value>(&line) {
                Ok(event) if event.is_object() => jobs.push(&job, event),
                _ if !line.trim().is_empty() => {
                    log_tail.push(line.clone());
                    if log_tail.len() > 20 {
                        log_tail.remove(0);
                    }
                    jobs.push(&job, json!({"event": "log", "line": line}));
                }
                _ => {}
            }
        }
        let _ = output.await;
        let exit = child.wait().await;
        let code = exit.as_ref().ok().and_then(|s| s.code());
        let status = jobs
            .with(&job, |j| match code {
                Some(0) => JobStatus::Done,
                _ if j.cancel_asked => JobStatus::Cancelled,
                _ => JobStatus::Failed,
            })
            .unwrap_or(JobStatus::Failed);
        if matches!(kind, "quantize" | "synth") && status == JobStatus::Done {
            // The made model is in the user's models.json now: serve it.
            match crate::catalog::Catalog::load(&runner.catalog_files) {
                Ok(catalog) => jobs_state.registry.replace_catalog(catalog),
                Err(e) => tracing::warn!("cannot read the catalog again: {e}"),
            }
        }
        let end = json!({
            "event": "end",
            "status": status,
            "exit_code": code,
            "error": (status == JobStatus::Failed).then(|| log_tail.join("\n")),
        });
        jobs.end(&job, status, end);
        tracing::info!(id = %job, ?status, "job ended");
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "status": "running"})),
    )
        .into_response())
}

/// `GET /api/jobs`: the jobs of this server's lifetime, newest first.
pub(super) async fn list(State(state): Shared) -> Response {
    let jobs: Vec<Value> = {
        let jobs = state.jobs.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.iter().rev().map(Job::summary).collect()
    };
    finish(
        &state,
        "/api/jobs",
        Ok(Json(json!({"jobs": jobs})).into_response()),
    )
}

fn unknown_job(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "job_not_found",
        format!("no job {id}"),
    )
}

/// `GET /api/jobs/{id}/events`: the job's events as SSE, every one from the first, until
/// its `end` event.
pub(super) async fn events(State(state): Shared, Path(id): Path<String>) -> Response {
    let Some((past, live, over)) = state.jobs.with(&id, |j| {
        (
            j.events.clone(),
            j.live.subscribe(),
            j.status != JobStatus::Running,
        )
    }) else {
        return finish(&state, "/api/jobs/events", Err(unknown_job(&id)));
    };
    // The events so far, then the live ones until the job's `end` (a page that lagged more
    // than the channel holds misses some progress lines, never the end: it comes last).
    let live = futures::stream::unfold((live, over), |(mut live, over)| async move {
        if over {
            return None;
        }
        loop {
            match live.recv().await {
                Ok(event) => {
                    let end = event["event"] == "end";
                    return Some((event, (live, end)));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let stream = futures::stream::iter(past)
        .chain(live)
        .map(|event| Ok::<_, std::convert::Infallible>(Event::default().data(event.to_string())));
    let sse = Sse::new(stream).keep_alive(KeepAlive::default());
    finish(&state, "/api/jobs/events", Ok(sse.into_response()))
}

/// `POST /api/jobs/{id}/cancel`: interrupts the job as Ctrl-C would (what it measured so far
/// is stored and reported).
pub(super) async fn cancel(State(state): Shared, Path(id): Path<String>) -> Response {
    let result = match state.jobs.with(&id, |j| {
        if j.status != JobStatus::Running {
            return Ok(j.status);
        }
        j.cancel_asked = true;
        if let Some(pid) = j.pid {
            interrupt(pid);
        }
        Ok(JobStatus::Running)
    }) {
        None => Err(unknown_job(&id)),
        Some(Ok(status)) => {
            Ok(Json(json!({"id": id, "status": status, "cancel": "asked"})).into_response())
        }
        Some(Err(e)) => Err(e),
    };
    finish(&state, "/api/jobs/cancel", result)
}

/// Sends SIGINT to `pid` (the bench's own Ctrl-C handling keeps the results so far).
fn interrupt(pid: u32) {
    let sent = crate::process::Snapshot::of(pid, false)
        .is_some_and(|p| p.signal(sysinfo::Signal::Interrupt));
    if !sent {
        tracing::warn!(pid, "could not interrupt the job");
    }
}
