//! The benchmark's data as it is stored: one run, its models, its load levels and one record
//! per request with raw instants. These types are the vocabulary shared by the three rooms that
//! touch a run: `bench` writes them, `store` keeps them, `report` reads them back. Every metric
//! in a report is a function of these records, never of state kept in memory during the run.

use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still going, or the process died before it could say otherwise.
    Running,
    /// Every planned request was attempted.
    Complete,
    /// Stopped by the user (Ctrl-C); finished requests are kept.
    Interrupted,
    /// The run itself could not go on (not one model's failure: that is a model status).
    Failed,
}

/// How one model fared in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    /// Not finished yet (or the process died).
    Running,
    /// Loaded, and every counted request answered.
    Ok,
    /// Answered, but some counted requests failed (errors, timeouts, streams cut short);
    /// `error` gives their share and the first error. Its figures cover the answers that came.
    Degraded,
    /// Could not be loaded, or no request succeeded; `error` says why.
    Failed,
    /// The run was stopped while this model was being measured.
    Interrupted,
    /// Not measured, on purpose: the setting cannot run in this build or on this machine (a
    /// GPU row without a GPU); `error` says why.
    Skipped,
}

impl ModelStatus {
    /// The status as stored and printed (`ok`, `failed`…), the serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelStatus::Running => "running",
            ModelStatus::Ok => "ok",
            ModelStatus::Degraded => "degraded",
            ModelStatus::Failed => "failed",
            ModelStatus::Interrupted => "interrupted",
            ModelStatus::Skipped => "skipped",
        }
    }
}

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// A complete answer arrived.
    Ok,
    /// The server answered with an error, or the stream broke.
    Error,
    /// No complete answer within the request timeout.
    Timeout,
}

/// Where a request's token counts come from, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The server's `usage` object.
    Usage,
    /// hearth tokenized the prompt and the answer with the model's own tokenizer.
    Tokenizer,
    /// Counted content chunks (one token per chunk): the last resort for external servers
    /// that send no usage.
    Chunks,
}

/// One benchmark run: what was asked and on what machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Stable id, also the run folder's name (e.g. `20261128-041502-7f3a`).
    pub id: String,
    /// Wall-clock start, Unix milliseconds.
    pub started_unix_ms: i64,
    /// Wall-clock end, Unix milliseconds; `None` while running.
    pub finished_unix_ms: Option<i64>,
    /// How it ended.
    pub status: RunStatus,
    /// The resolved benchmark options (models, prompts, load shapes, sampling, SLOs…), as given
    /// to the run, so a report can print exactly what was measured.
    pub options: RunOptions,
    /// The machine and software.
    pub environment: Environment,
    /// The client's own health: calibration floor, CPU use, scheduling lag, bottleneck verdict.
    pub client: serde_json::Value,
}

/// What a run was asked to do, stored with it and read back by the reports, the rubric and
/// `annotate`: one type, so the writer and its readers cannot drift apart.
///
/// Runs stored by older (or newer) hearths stay readable: every field has a default, and keys
/// this version does not know are kept in [`RunOptions::other`] and written back unchanged, so
/// re-rendering an old run prints the options it was stored with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    /// The benchmark's own settings as `bench::BenchOptions` wrote them (prompt set, load
    /// shapes, rounds, sampling…). Kept as JSON because the prompt set's checks belong to
    /// `eval`, which this vocabulary does not depend on; [`RunOptions::prompts`] reads it.
    #[serde(default)]
    pub bench: serde_json::Value,
    /// Service-level objectives for goodput, ms by metric key (`ttft_ms`, `e2e_ms`, …).
    #[serde(default)]
    pub slo: SloLimits,
    /// Price of a kWh behind the cost per 1k tokens.
    #[serde(default)]
    pub energy_price_per_kwh: Option<f64>,
    /// The model names asked for (before offload and speculation settings multiplied them).
    #[serde(default)]
    pub models: Vec<String>,
    /// Speculative decoding modes measured (`off`, `ngram`).
    #[serde(default)]
    pub speculative: Vec<String>,
    /// KV cache type, flash attention and batch sizes of hearth's own server (none for an
    /// external endpoint, or a run stored before they were settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<crate::engine::compute::Compute>,
    /// The external endpoint measured, when not hearth's own server.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The folder the reports were written to, so `annotate import` can refresh them.
    #[serde(default)]
    pub out: Option<String>,
    /// What the recommendation weighs quality and memory by.
    #[serde(default)]
    pub quality: QualityOptions,
    /// The models were measured in alternating rounds of one session (`--interleave`), so
    /// `compare` pairs their rounds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interleaved: bool,
    /// Keys of other hearth versions (or hand-made runs), kept as they were.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl RunOptions {
    /// The prompt set the run sent, as stored (each a `bench::prompts::PromptSpec`); empty
    /// when the run did not store one.
    pub fn prompts(&self) -> &[serde_json::Value] {
        self.bench
            .get("prompts")
            .and_then(serde_json::Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The options as a JSON value with sorted keys: what reports print and embed, the same
    /// bytes whichever hearth version stored them.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        // Keys sorted, as every stored blob has them: serde_json sorted all maps until
        // llguidance switched its `preserve_order` feature on for the whole build.
        value.sort_all_objects();
        value
    }
}

/// The latency limits a request must meet to count toward goodput, ms; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SloLimits {
    /// Time to first token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// End-to-end latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_ms: Option<f64>,
    /// Time per output token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<f64>,
    /// Largest gap between content chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl_ms: Option<f64>,
}

/// The recommendation's quality bar and memory budget, and who scored the answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QualityOptions {
    /// Lowest acceptable mean score (1–5); `None` takes the report's default.
    #[serde(default)]
    pub min_score: Option<f64>,
    /// Memory budget, bytes of peak RSS; `None` is the measured machine's memory.
    #[serde(default)]
    pub memory_budget_bytes: Option<u64>,
    /// The judge, as `model@endpoint`, when one scored the run.
    #[serde(default)]
    pub judge: Option<String>,
    /// The judge's rubric version, when one scored the run.
    #[serde(default)]
    pub rubric_version: Option<String>,
}

/// The machine and software a run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// Host name.
    pub hostname: String,
    /// OS name and version.
    pub os: String,
    /// Kernel version.
    pub kernel: String,
    /// CPU model name.
    pub cpu_model: String,
    /// SIMD features that matter for llama.cpp (avx2, avx512f, fma, f16c, neon…).
    pub cpu_features: Vec<String>,
    /// Logical CPUs.
    pub logical_cpus: u32,
    /// Physical cores.
    pub physical_cores: u32,
    /// Total memory, bytes.
    pub memory_bytes: u64,
    /// Threads the engine was given.
    pub threads: u32,
    /// hearth's version.
    pub hearth_version: String,
    /// llama.cpp's version as built into hearth (ggml version / crate version).
    pub llama_cpp_version: String,
    /// `git describe` of the checkout hearth ran from, when it ran from one.
    pub git_commit: Option<String>,
    /// GPU backends built into hearth (`cuda`, `vulkan`, `metal`); empty for a CPU-only build.
    #[serde(default)]
    pub gpu_backends: Vec<String>,
    /// Every compute device llama.cpp saw: `CUDA0: NVIDIA H100 80GB (CUDA, gpu, 79.1 GiB)`.
    #[serde(default)]
    pub devices: Vec<String>,
}

/// One model (or external endpoint) in a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The name shown in reports: the alias, or the endpoint's model name.
    pub model: String,
    /// `hearth` (served in-process for the run) or `endpoint` (an external server).
    pub backend: String,
    /// The base URL requests went to (ends in `/v1`).
    pub endpoint: String,
    /// Licence id from the catalog, when known.
    pub license: Option<String>,
    /// Capability tags from the catalog.
    pub tags: Vec<String>,
    /// Quantisation, when known.
    pub quantization: Option<String>,
    /// Size of the model file on disk, bytes, when known.
    pub disk_bytes: Option<u64>,
    /// Cold load: from asking for the model to its first token, milliseconds.
    pub load_ms: Option<f64>,
    /// How it fared.
    pub status: ModelStatus,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// A server scales with concurrency when its most requests per second at once reach this
/// multiple of one at a time; below it (one slot, as Foundry Local serves) a sweep places its
/// rates around that capacity, and the report says the server does not scale.
pub const SCALING_MIN_RATIO: f64 = 1.2;

/// One load shape a model was measured at.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum LoadShape {
    /// Closed loop: `concurrency` clients, each sends its next request when the last ends.
    /// Concurrency 1 is the reference workflow's sequential shape.
    Concurrency {
        /// Requests in flight.
        concurrency: u32,
    },
    /// Open loop: requests arrive at `rate` per second (Poisson when `burstiness` is 1, gamma
    /// otherwise), at most `max_concurrency` in flight when set.
    Rate {
        /// Mean arrivals per second.
        rate: f64,
        /// Gamma shape; 1 = Poisson, < 1 burstier, > 1 more regular.
        burstiness: f64,
        /// Cap on requests in flight (waiting time for a slot is reported apart).
        max_concurrency: Option<u32>,
    },
}

impl LoadShape {
    /// A short label used as the level's key in reports: `c=4`, `r=2`.
    pub fn label(&self) -> String {
        match self {
            LoadShape::Concurrency { concurrency } => format!("c={concurrency}"),
            LoadShape::Rate { rate, .. } => format!("r={rate}"),
        }
    }
}

/// One model measured at one load shape: its resources and the client's health while it ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LevelRecord {
    /// The model.
    pub model: String,
    /// `LoadShape::label()`.
    pub level: String,
    /// The load shape.
    pub shape: LoadShape,
    /// Wall time of the timed rounds: first scheduled start to last end, milliseconds.
    pub duration_ms: f64,
    /// Peak resident memory of the serving process while this level ran, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// CPU time the serving process used during this level, milliseconds.
    pub server_cpu_ms: Option<f64>,
    /// CPU time the benchmark client itself used, milliseconds.
    pub client_cpu_ms: f64,
    /// Worst lag of the client's own timer (how late it woke up), p99, milliseconds.
    pub client_lag_p99_ms: f64,
    /// True when the client, not the server, limited the measurement.
    pub client_bottleneck: bool,
    /// Energy used, joules.
    pub energy_j: Option<f64>,
    /// `rapl` (measured) or `estimate: …` (the formula and its constants).
    pub energy_method: Option<String>,
    /// Time series sampled while the level ran (resources, the server's own metrics).
    pub samples: Vec<Sample>,
    /// The server's own account of the level, from the change in its Prometheus counters and
    /// histograms between start and end (requests, tokens, mean server-side TTFT…), when it
    /// exposes `/metrics`. Free-form JSON because every server names these differently.
    pub server_metrics: Option<serde_json::Value>,
    /// GPU memory, utilisation, power and energy while the level ran, where NVML sees a GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuLevel>,
    /// Why the level ended before its planned requests, when it did: the server fell behind
    /// its arrivals (`over-saturated: …`, with the evidence). Such a level is the sweep's
    /// answer to "how much load is too much", not a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Tokens of filler context before every prompt of the level (`--depth`), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
}

/// A level's GPU figures, as stored with the level.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuLevel {
    /// The GPUs measured (`NVIDIA H200`).
    pub devices: Vec<String>,
    /// Highest device memory in use while the level ran, bytes.
    pub peak_memory_bytes: u64,
    /// Mean utilisation over the level's samples, percent.
    pub mean_utilization_pct: f64,
    /// Highest utilisation sampled, percent: above 0 means the GPU did work in this level.
    pub peak_utilization_pct: f64,
    /// Mean board power over the level's samples, watts.
    pub mean_power_w: f64,
    /// Highest board power sampled, watts.
    pub peak_power_w: f64,
    /// GPU energy during the level, joules.
    pub energy_j: f64,
    /// How the energy was obtained (`nvml: GPU energy counter`, or power samples integrated).
    pub energy_method: String,
}

impl GpuLevel {
    /// True when the GPU ran kernels during the level, so its energy belongs to the level's
    /// work (an idle GPU beside a CPU-only level draws power the level did not cause).
    pub fn busy(&self) -> bool {
        self.peak_utilization_pct > 0.0
    }
}

/// One point of a level's time series, on the same clock as the requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since the level started.
    pub t_ms: f64,
    /// Resident memory of the serving process, bytes.
    pub rss_bytes: Option<u64>,
    /// CPU use of the serving process since the previous sample, in cores (1.0 = one core).
    pub cpu_cores: Option<f64>,
    /// Requests waiting in the server's queue (its `/metrics`).
    pub server_queue: Option<f64>,
    /// Requests the server is decoding.
    pub server_active: Option<f64>,
    /// Share of the server's KV cache in use, 0..1.
    pub server_kv_usage: Option<f64>,
    /// GPU memory in use (every watched GPU), bytes; only where NVML sees a GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory_bytes: Option<u64>,
    /// GPU utilisation, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_utilization_pct: Option<f64>,
    /// GPU board power, watts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_power_w: Option<f64>,
}

/// One request, with raw instants in milliseconds since its level started (one monotonic
/// clock for the whole level), so every latency can be derived later and re-derived the same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The model.
    pub model: String,
    /// The level (`LoadShape::label()`).
    pub level: String,
    /// Round number; round 0 is the warm-up and is never counted.
    pub round: u32,
    /// Order of scheduling within the level.
    pub seq: u32,
    /// The prompt's id in the prompt set.
    pub prompt_id: String,
    /// When the load shape meant the request to start. Latencies are measured from here, so
    /// time spent waiting for a free client slot is never hidden.
    pub scheduled_ms: f64,
    /// When the request was actually sent (after any wait for a client slot).
    pub sent_ms: Option<f64>,
    /// First response byte (headers).
    pub first_byte_ms: Option<f64>,
    /// First body chunk of any kind (a role-only SSE chunk counts here, not as a token).
    pub first_chunk_ms: Option<f64>,
    /// First chunk that carried generated content.
    pub first_token_ms: Option<f64>,
    /// Last byte of the response.
    pub end_ms: Option<f64>,
    /// Arrival of every content-carrying chunk, in order (the first equals `first_token_ms`).
    pub chunk_ms: Vec<f64>,
    /// How it ended.
    pub status: RequestStatus,
    /// HTTP status, when a response arrived.
    pub http_status: Option<u16>,
    /// The error, when it failed.
    pub error: Option<String>,
    /// Prompt tokens.
    pub prompt_tokens: Option<u64>,
    /// Generated tokens.
    pub completion_tokens: Option<u64>,
    /// Prompt tokens the server took from its prompt cache (`usage.prompt_tokens_details`).
    pub cached_tokens: Option<u64>,
    /// Where the token counts come from.
    pub token_source: TokenSource,
    /// Completion tokens counted independently (tokenizer or chunks) when `usage` was also
    /// present, so disagreements can be counted.
    pub counted_completion_tokens: Option<u64>,
    /// The server's own `timings` object, when it sends one (hearth, llama-server).
    pub server_timings: Option<serde_json::Value>,
    /// The generated text.
    pub output: String,
}

/// Everything stored about one run: what reports and comparisons are made from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    /// The run.
    pub run: RunRecord,
    /// Its models, in the order they were measured.
    pub models: Vec<ModelRecord>,
    /// Its levels, in the order they were measured.
    pub levels: Vec<LevelRecord>,
    /// Its requests (warm-up included, `round == 0`), ordered by model, level, seq.
    pub requests: Vec<RequestRecord>,
    /// Quality scores of its answers (judge and human), ordered by model, level, round, seq,
    /// source (`human` before `judge`). Absent in data written before scores existed.
    #[serde(default)]
    pub scores: Vec<ScoreRecord>,
}

/// Who gave a score. A person's score outranks the judge's wherever both exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreSource {
    /// A judge model, scoring against the versioned rubric prompt.
    Judge,
    /// A person, through `hearth annotate import`.
    Human,
}

/// One quality score (1–5) of one stored answer, or the record that it could not be scored.
/// Kept apart from the request so judging and annotating never rewrite measured data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreRecord {
    /// The answer's model.
    pub model: String,
    /// The answer's level.
    pub level: String,
    /// The answer's round.
    pub round: u32,
    /// The answer's seq within its level.
    pub seq: u32,
    /// Judge or human.
    pub source: ScoreSource,
    /// Who scored: the judge model and where it ran (`smollm2-135m @ http://…/v1`), or the
    /// annotator's name.
    pub scorer: String,
    /// The judge's rubric prompt version (`hearth-judge/1`), so scores from different prompts
    /// are never mixed up; `None` for people.
    pub rubric_version: Option<String>,
    /// 1–5; `None` when the judge's output could not be read (never guessed).
    pub score: Option<u8>,
    /// The judge's reason or the annotator's comment.
    pub reason: Option<String>,
    /// The judge's raw output, every attempt, so a doubtful score can be checked.
    pub raw: Option<String>,
    /// When it was scored, Unix milliseconds.
    pub scored_unix_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options blob exactly as `hearth bench` stored it before the options were typed
    /// (keys as written by its `json!`), abridged prompts.
    const STORED_BEFORE_TYPING: &str = r#"{"bench":{"energy_price_per_kwh":0.3,"ignore_eos":false,"max_tokens":256,"prompt_cache":"cold","prompts":[{"id":"p1","prompt":"Say hi","facets":["greeting"]}],"requests_per_round":null,"rounds":3,"sample_interval_ms":250,"seed":42,"shapes":[{"concurrency":1}],"slo":{"ttft_ms":500.0},"stream":true,"temperature":0.0,"timeout_secs":300.0,"warmup":1},"endpoint":null,"energy_price_per_kwh":0.3,"models":["smollm2-135m"],"out":"/tmp/runs/x","quality":{"judge":null,"memory_budget_bytes":null,"min_score":3.0,"rubric_version":null},"slo":{"ttft_ms":500.0},"speculative":["ngram"]}"#;

    #[test]
    fn options_stored_before_typing_read_back_and_render_unchanged() {
        let stored: serde_json::Value = serde_json::from_str(STORED_BEFORE_TYPING).unwrap();
        let options: RunOptions = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(options.slo.ttft_ms, Some(500.0));
        assert_eq!(options.quality.min_score, Some(3.0));
        assert_eq!(options.out.as_deref(), Some("/tmp/runs/x"));
        assert_eq!(options.prompts().len(), 1);
        assert!(options.other.is_empty(), "{:?}", options.other);
        // What reports print is the same JSON, byte for byte, keys sorted.
        let mut sorted = stored.clone();
        sorted.sort_all_objects();
        assert_eq!(
            serde_json::to_string(&options.to_json()).unwrap(),
            serde_json::to_string(&sorted).unwrap()
        );
    }

    #[test]
    fn options_of_other_versions_keep_unknown_keys_and_default_missing_ones() {
        let options: RunOptions =
            serde_json::from_str(r#"{"rounds": 2, "slo": {"e2e_ms": 1000}}"#).unwrap();
        assert_eq!(options.slo.e2e_ms, Some(1000.0));
        assert_eq!(options.quality, QualityOptions::default());
        assert_eq!(options.other["rounds"], 2);
        assert!(options.prompts().is_empty());
        let again: RunOptions = serde_json::from_value(options.to_json()).unwrap();
        assert_eq!(again, options);
    }
}

/// One `hearth tune` search as the history keeps it: when it ran, how it ended, its decision in
/// one line, and its whole document (what `tune --json` prints; docs/tune.md describes it).
/// Its probes are ordinary runs, named by id in the document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TuneRecord {
    /// `tune-` and a time stamp, so it never collides with a run id.
    pub id: String,
    /// When the search started, ms since the epoch.
    pub started_unix_ms: i64,
    /// When it ended.
    pub finished_unix_ms: i64,
    /// `finished`, `out_of_budget` (the best so far) or `interrupted` (Ctrl-C).
    pub status: String,
    /// The decision in one line, for listings.
    pub summary: String,
    /// The document.
    pub document: serde_json::Value,
}
