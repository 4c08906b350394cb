//! What a summary of a stored run holds: the types every renderer, `compare` and capability
//! routing read. They are apart from the summariser (`summary`) so that the recommendation can
//! read a summary while the summariser calls the recommendation, without the two files
//! importing each other.

use std::ops::Deref;

use serde::{Deserialize, Serialize};

use super::latency::Latencies;
use super::quality::Quality;
use crate::stats::Distribution;
use crate::store::record::{GpuLevel, LoadShape, ModelRecord, ModelStatus, RunRecord, ScoreSource};

/// Electricity price used for the cost figure when the run's options name none, per kWh.
pub const DEFAULT_ENERGY_PRICE_PER_KWH: f64 = 0.30;

/// Everything a report shows about one run, computed from its stored records only.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The run as stored (options, environment, client health).
    pub run: RunRecord,
    /// One entry per model, failed ones included, in the order they were measured.
    pub models: Vec<ModelSummary>,
    /// One entry per model and load level, in the order they were measured.
    pub levels: Vec<LevelSummary>,
    /// Who scored the answers (judges with their rubric version, people), for the reader to
    /// weigh the scores.
    pub scorers: Vec<Scorer>,
    /// The pick: fastest model meeting the quality bar and the memory budget.
    pub recommendation: Recommendation,
    /// Where each model saturates, for runs that judged open-loop levels for it (sweeps).
    pub sweeps: Vec<SweepSummary>,
}

/// One source of scores in a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scorer {
    /// `judge` or `human`.
    pub source: ScoreSource,
    /// The judge model and endpoint, or the annotator.
    pub scorer: String,
    /// The judge's rubric prompt version.
    pub rubric_version: Option<String>,
    /// Answers it gave a score.
    pub scored: u64,
    /// Answers it was asked about but gave no readable score.
    pub unscored: u64,
}

/// One model's facts: its stored record (what it is, how it fared) and its totals over all
/// levels. The record is held, not copied field by field, so a field added to `ModelRecord`
/// reaches every report; flattened, so the JSON keeps one flat object per model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The model as stored: name, backend, endpoint, licence, tags, quantisation, size, load
    /// time, status and error.
    #[serde(flatten)]
    pub record: ModelRecord,
    /// Successful counted requests over all levels.
    pub completed: u64,
    /// Failed counted requests over all levels.
    pub failed: u64,
    /// Largest peak RSS over its levels, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Quality over all its counted answers (checks, judge and human scores).
    #[serde(default)]
    pub quality: Quality,
}

/// `summary.model`, `summary.status`: a summary reads as the record it extends.
impl Deref for ModelSummary {
    type Target = ModelRecord;
    fn deref(&self) -> &ModelRecord {
        &self.record
    }
}

/// One distinct failure message and how often it happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailureReason {
    /// The error (cut to 300 characters).
    pub error: String,
    /// Occurrences among counted requests.
    pub count: u64,
}

/// Service-level objectives from the run's options (`options.slo`), any subset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// Largest acceptable TTFT, ms.
    pub ttft_ms: Option<f64>,
    /// Largest acceptable end-to-end latency, ms.
    pub e2e_ms: Option<f64>,
    /// Largest acceptable TPOT, ms.
    pub tpot_ms: Option<f64>,
    /// Largest acceptable single inter-chunk gap, ms.
    pub itl_ms: Option<f64>,
}

/// How many counted successful requests hit the server's prompt cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptCacheCounts {
    /// `cached_tokens ≥ ¾ · prompt_tokens` (the rule is `is_cache_warm` in `summary.rs`).
    pub warm: u64,
    /// `cached_tokens` known and below three quarters of the prompt.
    pub cold: u64,
    /// The server did not say.
    pub unknown: u64,
}

/// Speculative decoding as the server reported it in each response's `timings` (`draft_n`,
/// `draft_n_accepted`: llama-server's names, which hearth uses too), over counted successful
/// requests: a draft only speeds decoding up when most of it is accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Drafts {
    /// Requests whose server reported draft counts.
    pub reported: u64,
    /// Tokens drafted.
    pub drafted: u64,
    /// Drafted tokens the model accepted.
    pub accepted: u64,
    /// Output tokens of the successful streamed requests (for tokens per chunk).
    #[serde(default)]
    pub streamed_tokens: u64,
    /// Content chunks those requests arrived in.
    #[serde(default)]
    pub streamed_chunks: u64,
    /// Gaps between consecutive chunks of those requests.
    #[serde(default)]
    pub chunk_gaps: u64,
    /// Of those, gaps under a fifth of their request's time per token: chunks that came as
    /// one burst (accepted drafts sent one token a chunk, back to back).
    #[serde(default)]
    pub burst_gaps: u64,
}

impl Drafts {
    /// Share of drafted tokens accepted; `None` when nothing was drafted.
    pub fn acceptance(&self) -> Option<f64> {
        (self.drafted > 0).then(|| self.accepted as f64 / self.drafted as f64)
    }

    /// Output tokens per streamed chunk: above 1, tokens arrive in bursts (accepted drafts,
    /// or a server that batches its stream), and ITL — the gap between chunks — is no longer
    /// a time per token (TPOT is). `None` without streamed counted tokens.
    pub fn tokens_per_chunk(&self) -> Option<f64> {
        (self.streamed_chunks > 0)
            .then(|| self.streamed_tokens as f64 / self.streamed_chunks as f64)
    }

    /// Share of chunk gaps inside a burst; `None` without gaps.
    pub fn burst_share(&self) -> Option<f64> {
        (self.chunk_gaps > 0).then(|| self.burst_gaps as f64 / self.chunk_gaps as f64)
    }

    /// True when tokens clearly arrive in bursts: several to a chunk, or many chunks back to
    /// back.
    pub fn bursty(&self) -> bool {
        self.tokens_per_chunk().is_some_and(|t| t > 1.05)
            || self.burst_share().is_some_and(|b| b > 0.2)
    }

    /// For tables: `71% of 1234`, `none drafted`, or `—` when the server reports no drafts.
    pub fn label(&self) -> String {
        match self.acceptance() {
            Some(a) => format!("{:.0}% of {}", a * 100.0, self.drafted),
            None if self.reported > 0 => "none drafted".into(),
            None => "—".into(),
        }
    }
}

/// Run-to-run noise within one level: spread of the per-round figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundCv {
    /// Counted rounds that had at least one successful request.
    pub rounds: u32,
    /// CV (population std / mean) of the per-round mean E2E latency.
    pub e2el_mean: Option<f64>,
    /// CV of the per-round aggregate output throughput.
    pub output_throughput: Option<f64>,
}

/// Where the token counts of counted successful requests came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenCounts {
    /// From the server's `usage`.
    pub usage: u64,
    /// From hearth's tokenizer (fallback).
    pub tokenizer: u64,
    /// One token per content chunk (last resort).
    pub chunks: u64,
    /// Requests whose independent count differs from `usage`.
    pub usage_disagreements: u64,
    /// Those requests, so each can be looked up in the stored records (at most
    /// [`MAX_LISTED_DISAGREEMENTS`] per level).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disagreements: Vec<TokenDisagreement>,
}

/// Disagreeing requests listed per level; the count says how many there were in all.
pub const MAX_LISTED_DISAGREEMENTS: usize = 20;

/// One request whose server `usage` and hearth's own count (content chunks) differ, and the
/// likely reason: the reader needs to know which number to trust.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenDisagreement {
    /// Round of the request.
    pub round: u32,
    /// Its order in the level.
    pub seq: u32,
    /// `usage.completion_tokens`.
    pub usage: u64,
    /// hearth's count (content chunks).
    pub counted: u64,
    /// The probable cause, and which side is right.
    pub likely: String,
}

impl TokenDisagreement {
    /// What a difference between the server's count and the chunk count usually means. The
    /// server's `usage` counts tokens; a chunk holds zero, one or several of them.
    pub fn likely(usage: u64, counted: u64) -> &'static str {
        if usage == counted + 1 {
            "usage counts a last token that streamed no text (an end or stop token): usage is right"
        } else if usage > counted {
            "some chunks carried several tokens (drafted tokens, or text held back and sent together): usage is right"
        } else {
            "more content chunks than tokens (a character split across chunks, or chunks of whitespace): usage is right, the chunk count is high"
        }
    }
}

impl TokenCounts {
    /// Requests whose counts did not come from `usage`: the numbers are less certain.
    pub fn fallbacks(&self) -> u64 {
        self.tokenizer + self.chunks
    }
}

/// The serving process's and the client's resource use during a level.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// Peak RSS of the serving process, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Server CPU time, ms.
    pub server_cpu_ms: Option<f64>,
    /// Client CPU time, ms.
    pub client_cpu_ms: f64,
    /// p99 lag of the client's own timer, ms.
    pub client_lag_p99_ms: f64,
    /// The client, not the server, limited the measurement: numbers understate the server.
    pub client_bottleneck: bool,
    /// GPU memory, utilisation, power and energy (NVML), on machines with a GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuLevel>,
}

/// Energy and its approximate cost, per level.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Energy {
    /// Energy used during the level, joules.
    pub energy_j: Option<f64>,
    /// `rapl` (measured) or `estimate: …`.
    pub method: Option<String>,
    /// Joules per 1000 output tokens.
    pub j_per_1k_output_tokens: Option<f64>,
    /// Watt-hours per 1000 output tokens.
    pub wh_per_1k_output_tokens: Option<f64>,
    /// Electricity cost per 1000 output tokens at `price_per_kwh` (approximate).
    pub cost_per_1k_output_tokens: Option<f64>,
    /// Price used, per kWh (`options.energy_price_per_kwh`, default 0.30).
    pub price_per_kwh: f64,
}

/// One model at one load level: the row every report is made of.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LevelSummary {
    /// The model.
    pub model: String,
    /// The level's label (`c=4`, `r=2`).
    pub level: String,
    /// The load shape, when a level record was stored.
    pub shape: Option<LoadShape>,
    /// The model's status (repeated here so a row reads on its own).
    pub model_status: ModelStatus,
    /// Counted requests that succeeded.
    pub completed: u64,
    /// Counted requests that failed (errors + timeouts).
    pub failed: u64,
    /// Of `failed`: server errors or broken streams.
    pub errors: u64,
    /// Of `failed`: timeouts.
    pub timeouts: u64,
    /// Distinct failure messages, most frequent first (at most 5).
    pub failure_reasons: Vec<FailureReason>,
    /// Level duration, seconds.
    pub duration: Option<f64>,
    /// Σ prompt tokens of counted successful requests.
    pub total_input_tokens: u64,
    /// Σ completion tokens of counted successful requests.
    pub total_output_tokens: u64,
    /// Successful requests per second.
    pub request_throughput: Option<f64>,
    /// Output tokens per second, aggregate.
    pub output_throughput: Option<f64>,
    /// Prompt + output tokens per second, aggregate.
    pub total_token_throughput: Option<f64>,
    /// TTFT, TPOT, ITL, E2EL under vLLM's names.
    #[serde(flatten)]
    pub latency: Latencies,
    /// Time to first byte, ms.
    pub ttfb: Option<Distribution>,
    /// Client wait before sending, ms.
    pub wait: Option<Distribution>,
    /// TTFT of cache-cold requests, ms.
    pub ttft_cold: Option<Distribution>,
    /// TTFT of cache-warm requests, ms.
    pub ttft_warm: Option<Distribution>,
    /// Prompt-cache classification counts.
    pub prompt_cache: PromptCacheCounts,
    /// Per-request output tokens/s.
    pub per_request_output_throughput: Option<Distribution>,
    /// Per-request decode tokens/s (after the first token).
    pub per_request_decode_throughput: Option<Distribution>,
    /// Speculative decoding's drafted and accepted tokens, when the server reports them.
    #[serde(default)]
    pub drafts: Drafts,
    /// The SLOs applied, when the run set any.
    pub slo: Option<Slo>,
    /// Requests per second that met every SLO.
    pub request_goodput: Option<f64>,
    /// Share (0..1) of counted requests that met every SLO.
    pub goodput_share: Option<f64>,
    /// Noise across rounds.
    pub cv: RoundCv,
    /// Token-count provenance.
    pub token_counts: TokenCounts,
    /// Resource use.
    pub resources: Resources,
    /// Energy and cost.
    pub energy: Energy,
    /// The server's own account of the level (from its Prometheus metrics), as stored.
    pub server_metrics: Option<serde_json::Value>,
    /// Automatic quality checks on the counted answers.
    #[serde(default)]
    pub quality: Quality,
    /// Why the level ended before its planned requests (`over-saturated: …`), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Tokens of filler context before every prompt (`--depth`), when measured at a depth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// Per-request prompt tokens per second of TTFT: how fast the prompt (and its context)
    /// was taken in, queueing included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_request_prefill_throughput: Option<Distribution>,
}

impl RunSummary {
    /// Rows for per-model-and-level tables: every level, plus one row (level `None`) for each
    /// model that has no level at all (typically one that failed to load), so a failed model
    /// is never dropped from a table.
    pub fn rows(&self) -> Vec<(&ModelSummary, Option<&LevelSummary>)> {
        let mut out = Vec::new();
        for m in &self.models {
            let mut any = false;
            for l in self.levels.iter().filter(|l| l.model == m.model) {
                out.push((m, Some(l)));
                any = true;
            }
            if !any {
                out.push((m, None));
            }
        }
        out
    }

    /// Warnings every format must show: client bottlenecks, failed models, token fallbacks.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        for m in self
            .models
            .iter()
            .filter(|m| crate::catalog::is_shape_alias(&m.model))
        {
            w.push(format!(
                "SPEED ONLY: {} is a shape model (random weights{}): its latency, throughput and memory are real, its answers are noise and were not scored",
                m.model,
                crate::catalog::real_alias_of(&m.model)
                    .map_or(String::new(), |real| format!(", the architecture of {real}"))
            ));
        }
        for l in self.levels.iter().filter(|l| l.resources.client_bottleneck) {
            w.push(format!(
                "CLIENT BOTTLENECK: {} at {}: the benchmark client, not the server, limited this measurement; its throughput and latency understate the server",
                l.model, l.level
            ));
        }
        for m in self.models.iter().filter(|m| m.status != ModelStatus::Ok) {
            w.push(format!(
                "MODEL {}: {} {}",
                status_str(m.status).to_uppercase(),
                m.model,
                m.error
                    .as_deref()
                    .map_or(String::new(), |e| format!("— {e}"))
            ));
        }
        for l in self.levels.iter().filter(|l| {
            l.failed > 0 && matches!(l.model_status, ModelStatus::Ok | ModelStatus::Degraded)
        }) {
            let why = l
                .failure_reasons
                .first()
                .map_or(String::new(), |r| format!(" (e.g. {})", r.error));
            w.push(format!(
                "{} at {}: {} of {} requests failed{why}",
                l.model,
                l.level,
                l.failed,
                l.failed + l.completed
            ));
        }
        for l in self
            .levels
            .iter()
            .filter(|l| l.token_counts.fallbacks() > 0)
        {
            let t = &l.token_counts;
            w.push(format!(
                "token counts for {} at {} fell back from usage: {} by tokenizer, {} by counting chunks",
                l.model, l.level, t.tokenizer, t.chunks
            ));
        }
        for l in self
            .levels
            .iter()
            .filter(|l| l.token_counts.usage_disagreements > 0)
        {
            let listed: Vec<String> = l
                .token_counts
                .disagreements
                .iter()
                .take(5)
                .map(|d| {
                    format!(
                        "round {} #{}: usage {} vs {} chunks — {}",
                        d.round, d.seq, d.usage, d.counted, d.likely
                    )
                })
                .collect();
            w.push(format!(
                "{} at {}: {} request(s) where the server's usage disagrees with hearth's own count ({}{})",
                l.model,
                l.level,
                l.token_counts.usage_disagreements,
                listed.join("; "),
                if l.token_counts.usage_disagreements > listed.len() as u64 {
                    "; … the rest in report.json's token_counts.disagreements"
                } else {
                    ""
                }
            ));
        }
        w
    }

    /// True when any level's client was the bottleneck.
    pub fn client_bottleneck(&self) -> bool {
        self.levels.iter().any(|l| l.resources.client_bottleneck)
    }
}

/// The snake_case name of a model status.
pub fn status_str(s: ModelStatus) -> &'static str {
    s.as_str()
}

/// The quality bar when the run's options set none: "good" on the 1–5 rubric.
pub const DEFAULT_MIN_SCORE: f64 = 3.5;

/// What a pick must meet.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Criteria {
    /// Lowest acceptable mean score (1–5).
    pub min_score: f64,
    /// Largest acceptable peak RSS, bytes; `None` = no limit.
    pub memory_budget_bytes: Option<u64>,
}

impl Default for Criteria {
    fn default() -> Self {
        Criteria {
            min_score: DEFAULT_MIN_SCORE,
            memory_budget_bytes: None,
        }
    }
}

/// One model as the recommendation saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The model.
    pub model: String,
    /// p95 end-to-end latency at the level compared, ms.
    pub p95_e2el_ms: Option<f64>,
    /// Mean score (1–5) and who gave it.
    pub score: Option<f64>,
    /// `human`, `judge` or `human+judge`.
    pub scored_by: Option<String>,
    /// Share of automatic checks passed.
    pub check_pass_rate: Option<f64>,
    /// Peak RSS over the run, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Why it was not picked; `None` for the pick.
    pub not_picked: Option<String>,
}

/// The pick and its explanation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The model picked, when one qualifies.
    pub pick: Option<String>,
    /// The load level whose p95 latency decided (`c=1`).
    pub level: Option<String>,
    /// The bar and budget applied.
    pub criteria: Criteria,
    /// False when no model in the run has a score: the pick then rests on speed and memory
    /// only, and says so.
    pub quality_applied: bool,
    /// One or two sentences a person reads.
    pub explanation: String,
    /// Every model considered, the pick first, then by p95 latency.
    pub candidates: Vec<Candidate>,
}

/// One model's answer to "how much load does it take here".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepSummary {
    /// The model.
    pub model: String,
    /// Successful requests per second one at a time (its `c=1` level).
    pub synchronous_rate: Option<f64>,
    /// The most successful requests per second any closed-loop level reached, and that level.
    pub maximum_rate: Option<(f64, String)>,
    /// False when the most at once stayed within 1.2× of one at a time: the server answers
    /// about one request at a time, so the sweep's rates lie around that capacity instead of
    /// between its bounds.
    #[serde(default)]
    pub scales_with_concurrency: Option<bool>,
    /// The knee of the latency-throughput curve: the kept-up level with the most requests/s
    /// per second of median latency (Kleinrock's "power"), beyond which latency grows faster
    /// than throughput.
    pub knee: Option<SweepPoint>,
    /// The highest open-loop rate the server kept up with (not over-saturated, at most 5 %
    /// failed): the most it sustains here, at whatever latency.
    pub max_sustainable: Option<SweepPoint>,
    /// Open-loop levels stopped because the server fell behind, lowest rate first.
    pub over_saturated: Vec<SweepPoint>,
    /// The highest kept-up rate at which at least 90 % of requests met every SLO (only when
    /// the run set SLOs).
    pub max_rate_under_slo: Option<SweepPoint>,
}

/// An open-loop level of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// The level's label (`r=12.5`).
    pub level: String,
    /// Offered arrivals, requests per second (open-loop levels only).
    pub rate: Option<f64>,
    /// What the server delivered, successful requests per second.
    pub achieved: Option<f64>,
    /// Median end-to-end latency, ms.
    pub e2e_p50_ms: Option<f64>,
}
