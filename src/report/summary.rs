//! From stored records to the numbers every report prints. Each metric is defined once here
//! (see docs/report.md and `definitions`), so JSON, CSV, Markdown, HTML, the terminal table and
//! `compare` can never disagree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::metrics::Latencies;
pub(crate) use super::metrics::{
    counted, decode_tps, e2el_ms, itl_gaps, output_tps, per_s, span_s, stat_of, tpot_ms, ttft_ms,
    LATENCY_METRICS, LATENCY_STATS,
};

use super::quality::{self, Quality, Rubric, Scores};
use super::recommend::{recommend, Criteria, Recommendation};
use crate::stats::{coefficient_of_variation, Distribution};
use crate::store::record::{
    LevelRecord, LoadShape, ModelRecord, ModelStatus, RequestRecord, RequestStatus, RunData,
    RunOptions, RunRecord, ScoreSource, TokenSource,
};

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

/// One model's facts: what it is, how it fared, and its totals over all levels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// Name shown in reports.
    pub model: String,
    /// `hearth` or `endpoint`.
    pub backend: String,
    /// Base URL requests went to.
    pub endpoint: String,
    /// Licence id, when known.
    pub license: Option<String>,
    /// Capability tags.
    pub tags: Vec<String>,
    /// Quantisation, when known.
    pub quantization: Option<String>,
    /// Model file size on disk, bytes.
    pub disk_bytes: Option<u64>,
    /// Cold load time, milliseconds.
    pub load_ms: Option<f64>,
    /// How the model fared.
    pub status: ModelStatus,
    /// Why it failed.
    pub error: Option<String>,
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

impl Slo {
    /// Reads `options.slo`; `None` when absent or when it sets no limit.
    pub fn from_options(options: &RunOptions) -> Option<Slo> {
        let limits = &options.slo;
        let s = Slo {
            ttft_ms: limits.ttft_ms,
            e2e_ms: limits.e2e_ms,
            tpot_ms: limits.tpot_ms,
            itl_ms: limits.itl_ms,
        };
        (s != Slo::default()).then_some(s)
    }

    /// Whether one counted request met every limit (see docs/report.md for the undefined
    /// cases: a missing TTFT fails, an undefined TPOT or ITL passes).
    fn met_by(&self, r: &RequestRecord) -> bool {
        if r.status != RequestStatus::Ok {
            return false;
        }
        let ok = |limit: Option<f64>, value: Option<f64>, undefined_passes: bool| match limit {
            None => true,
            Some(l) => value.map_or(undefined_passes, |v| v <= l),
        };
        ok(self.ttft_ms, ttft_ms(r), false)
            && ok(self.e2e_ms, e2el_ms(r), false)
            && ok(self.tpot_ms, tpot_ms(r), true)
            && ok(self.itl_ms, itl_gaps(r).into_iter().reduce(f64::max), true)
    }
}

/// How many counted successful requests hit the server's prompt cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptCacheCounts {
    /// `cached_tokens ≥ ¾ · prompt_tokens` (see [`is_cache_warm`]).
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
}

impl Drafts {
    fn of(records: &[&RequestRecord]) -> Self {
        let mut d = Self::default();
        for r in records {
            let Some(t) = &r.server_timings else { continue };
            let (Some(n), Some(a)) = (t["draft_n"].as_u64(), t["draft_n_accepted"].as_u64()) else {
                continue;
            };
            d.reported += 1;
            d.drafted += n;
            d.accepted += a;
        }
        d
    }

    /// Share of drafted tokens accepted; `None` when nothing was drafted.
    pub fn acceptance(&self) -> Option<f64> {
        (self.drafted > 0).then(|| self.accepted as f64 / self.drafted as f64)
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenCounts {
    /// From the server's `usage`.
    pub usage: u64,
    /// From hearth's tokenizer (fallback).
    pub tokenizer: u64,
    /// One token per content chunk (last resort).
    pub chunks: u64,
    /// Requests whose independent count differs from `usage`.
    pub usage_disagreements: u64,
}

impl TokenCounts {
    /// Requests whose counts did not come from `usage`: the numbers are less certain.
    pub fn fallbacks(&self) -> u64 {
        self.tokenizer + self.chunks
    }
}

/// The serving process's and the client's resource use during a level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
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
}

/// Summarizes a stored run: the single entry point every report and the terminal table use.
pub fn summarize(data: &RunData) -> RunSummary {
    let price = data
        .run
        .options
        .energy_price_per_kwh
        .unwrap_or(DEFAULT_ENERGY_PRICE_PER_KWH);
    let slo = Slo::from_options(&data.run.options);
    let rubric = Rubric::of(data);
    let scores = Scores::of(data);

    // Levels: stored level records first, then any (model, level) only seen in requests.
    let mut keys: Vec<(String, String, Option<&LevelRecord>)> = data
        .levels
        .iter()
        .map(|l| (l.model.clone(), l.level.clone(), Some(l)))
        .collect();
    for r in &data.requests {
        if !keys.iter().any(|(m, l, _)| *m == r.model && *l == r.level) {
            keys.push((r.model.clone(), r.level.clone(), None));
        }
    }
    let levels: Vec<LevelSummary> = keys
        .iter()
        .map(|(m, l, rec)| {
            let status = data
                .models
                .iter()
                .find(|x| x.model == *m)
                .map_or(ModelStatus::Ok, |x| x.status);
            summarize_level(data, m, l, *rec, status, slo, price, (&rubric, &scores))
        })
        .collect();

    let mut models: Vec<ModelSummary> = data
        .models
        .iter()
        .map(|m| model_summary(m, &levels))
        .collect();
    let assess_model = |model: &str| {
        let answers: Vec<&RequestRecord> = crate::eval::judge::scorable(data)
            .into_iter()
            .filter(|r| r.model == model)
            .collect();
        quality::assess(&rubric, &scores, &answers)
    };
    // A level whose model has no record still gets a model row, so nothing is dropped.
    for l in &levels {
        if !models.iter().any(|m| m.model == l.model) {
            let rec = ModelRecord {
                model: l.model.clone(),
                backend: String::new(),
                endpoint: String::new(),
                license: None,
                tags: vec![],
                quantization: None,
                disk_bytes: None,
                load_ms: None,
                status: ModelStatus::Ok,
                error: None,
            };
            models.push(model_summary(&rec, &levels));
        }
    }
    for m in &mut models {
        m.quality = assess_model(&m.model);
    }
    let mut scorers: Vec<Scorer> = Vec::new();
    for s in &data.scores {
        let i = match scorers.iter().position(|x| {
            x.source == s.source && x.scorer == s.scorer && x.rubric_version == s.rubric_version
        }) {
            Some(i) => i,
            None => {
                scorers.push(Scorer {
                    source: s.source,
                    scorer: s.scorer.clone(),
                    rubric_version: s.rubric_version.clone(),
                    scored: 0,
                    unscored: 0,
                });
                scorers.len() - 1
            }
        };
        if s.score.is_some() {
            scorers[i].scored += 1;
        } else {
            scorers[i].unscored += 1;
        }
    }
    let mut summary = RunSummary {
        run: data.run.clone(),
        models,
        levels,
        scorers,
        recommendation: Recommendation::default(),
    };
    summary.recommendation = recommend(&summary, Criteria::of(&summary), |_| true);
    summary
}

fn model_summary(m: &ModelRecord, levels: &[LevelSummary]) -> ModelSummary {
    let mine = || levels.iter().filter(|l| l.model == m.model);
    ModelSummary {
        model: m.model.clone(),
        backend: m.backend.clone(),
        endpoint: m.endpoint.clone(),
        license: m.license.clone(),
        tags: m.tags.clone(),
        quantization: m.quantization.clone(),
        disk_bytes: m.disk_bytes,
        load_ms: m.load_ms,
        status: m.status,
        error: m.error.clone(),
        completed: mine().map(|l| l.completed).sum(),
        failed: mine().map(|l| l.failed).sum(),
        peak_rss_bytes: mine().filter_map(|l| l.resources.peak_rss_bytes).max(),
        quality: Quality::default(),
    }
}

#[allow(clippy::too_many_arguments)]
fn summarize_level(
    data: &RunData,
    model: &str,
    level: &str,
    rec: Option<&LevelRecord>,
    model_status: ModelStatus,
    slo: Option<Slo>,
    price: f64,
    (rubric, scores): (&Rubric, &Scores),
) -> LevelSummary {
    let all: Vec<&RequestRecord> = counted(data, model, level).collect();
    let ok: Vec<&RequestRecord> = all
        .iter()
        .copied()
        .filter(|r| r.status == RequestStatus::Ok)
        .collect();
    let errors = all
        .iter()
        .filter(|r| r.status == RequestStatus::Error)
        .count() as u64;
    let timeouts = all
        .iter()
        .filter(|r| r.status == RequestStatus::Timeout)
        .count() as u64;

    let mut reasons: Vec<FailureReason> = Vec::new();
    for r in all.iter().filter(|r| r.status != RequestStatus::Ok) {
        let msg = match (&r.error, r.status) {
            (Some(e), _) => e.chars().take(300).collect(),
            (None, RequestStatus::Timeout) => "timeout".to_string(),
            (None, _) => format!(
                "error (HTTP {})",
                r.http_status.map_or("-".into(), |s| s.to_string())
            ),
        };
        match reasons.iter_mut().find(|x| x.error == msg) {
            Some(x) => x.count += 1,
            None => reasons.push(FailureReason {
                error: msg,
                count: 1,
            }),
        }
    }
    reasons.sort_by_key(|r| std::cmp::Reverse(r.count));
    reasons.truncate(5);

    let duration = span_s(all.iter().copied())
        .or_else(|| rec.map(|l| l.duration_ms / 1000.0).filter(|d| *d > 0.0));
    let total_input_tokens: u64 = ok.iter().filter_map(|r| r.prompt_tokens).sum();
    let total_output_tokens: u64 = ok.iter().filter_map(|r| r.completion_tokens).sum();
    let dist = |f: &dyn Fn(&RequestRecord) -> Option<f64>| {
        Distribution::from_values(&ok.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
    };
    let gaps: Vec<f64> = ok.iter().flat_map(|r| itl_gaps(r)).collect();

    // Prompt cache.
    let mut cache = PromptCacheCounts::default();
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for r in &ok {
        match (r.cached_tokens, r.prompt_tokens) {
            (Some(c), Some(p)) if is_cache_warm(c, p) => {
                cache.warm += 1;
                warm.extend(ttft_ms(r));
            }
            (Some(_), Some(_)) => {
                cache.cold += 1;
                cold.extend(ttft_ms(r));
            }
            _ => cache.unknown += 1,
        }
    }

    // Rounds.
    let mut rounds: BTreeMap<u32, Vec<&RequestRecord>> = BTreeMap::new();
    for r in &ok {
        rounds.entry(r.round).or_default().push(r);
    }
    let round_means: Vec<f64> = rounds
        .values()
        .filter_map(|rs| {
            crate::stats::mean(&rs.iter().filter_map(|r| e2el_ms(r)).collect::<Vec<_>>())
        })
        .collect();
    let round_tput: Vec<f64> = rounds
        .values()
        .filter_map(|rs| {
            let toks: u64 = rs.iter().filter_map(|r| r.completion_tokens).sum();
            per_s(toks as f64, span_s(rs.iter().copied()))
        })
        .collect();

    // Tokens.
    let mut tokens = TokenCounts::default();
    for r in &ok {
        match r.token_source {
            TokenSource::Usage => tokens.usage += 1,
            TokenSource::Tokenizer => tokens.tokenizer += 1,
            TokenSource::Chunks => tokens.chunks += 1,
        }
        if r.counted_completion_tokens.is_some()
            && r.counted_completion_tokens != r.completion_tokens
        {
            tokens.usage_disagreements += 1;
        }
    }

    let (request_goodput, goodput_share) = match slo {
        Some(s) if !all.is_empty() => {
            let met = all.iter().filter(|r| s.met_by(r)).count() as f64;
            (per_s(met, duration), Some(met / all.len() as f64))
        }
        _ => (None, None),
    };

    let resources = rec.map_or_else(Resources::default, |l| Resources {
        peak_rss_bytes: l.peak_rss_bytes,
        server_cpu_ms: l.server_cpu_ms,
        client_cpu_ms: l.client_cpu_ms,
        client_lag_p99_ms: l.client_lag_p99_ms,
        client_bottleneck: l.client_bottleneck,
    });
    let energy_j = rec.and_then(|l| l.energy_j);
    let j_per_1k = energy_j
        .filter(|_| total_output_tokens > 0)
        .map(|j| j / total_output_tokens as f64 * 1000.0);
    let energy = Energy {
        energy_j,
        method: rec.and_then(|l| l.energy_method.clone()),
        j_per_1k_output_tokens: j_per_1k,
        wh_per_1k_output_tokens: j_per_1k.map(|j| j / 3600.0),
        cost_per_1k_output_tokens: j_per_1k.map(|j| j / 3.6e6 * price),
        price_per_kwh: price,
    };

    LevelSummary {
        model: model.to_string(),
        level: level.to_string(),
        shape: rec.map(|l| l.shape),
        model_status,
        completed: ok.len() as u64,
        failed: errors + timeouts,
        errors,
        timeouts,
        failure_reasons: reasons,
        duration,
        total_input_tokens,
        total_output_tokens,
        request_throughput: per_s(ok.len() as f64, duration),
        output_throughput: per_s(total_output_tokens as f64, duration),
        total_token_throughput: per_s((total_input_tokens + total_output_tokens) as f64, duration),
        latency: Latencies {
            ttft: dist(&ttft_ms),
            tpot: dist(&tpot_ms),
            itl: Distribution::from_values(&gaps),
            e2el: dist(&e2el_ms),
        },
        ttfb: dist(&|r| r.first_byte_ms.map(|t| t - r.scheduled_ms)),
        wait: dist(&|r| r.sent_ms.map(|t| t - r.scheduled_ms)),
        ttft_cold: Distribution::from_values(&cold),
        ttft_warm: Distribution::from_values(&warm),
        prompt_cache: cache,
        per_request_output_throughput: dist(&output_tps),
        per_request_decode_throughput: dist(&decode_tps),
        drafts: Drafts::of(&ok),
        slo,
        request_goodput,
        goodput_share,
        cv: RoundCv {
            rounds: rounds.len() as u32,
            e2el_mean: coefficient_of_variation(&round_means),
            output_throughput: coefficient_of_variation(&round_tput),
        },
        token_counts: tokens,
        resources,
        energy,
        server_metrics: rec.and_then(|l| l.server_metrics.clone()),
        quality: quality::assess(rubric, scores, &ok),
    }
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
        for l in self
            .levels
            .iter()
            .filter(|l| l.failed > 0 && l.model_status == ModelStatus::Ok)
        {
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
            let t = l.token_counts;
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
            w.push(format!(
                "{} at {}: {} request(s) where the server's usage disagrees with hearth's own count",
                l.model, l.level, l.token_counts.usage_disagreements
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
    match s {
        ModelStatus::Running => "running",
        ModelStatus::Ok => "ok",
        ModelStatus::Failed => "failed",
        ModelStatus::Interrupted => "interrupted",
        ModelStatus::Skipped => "skipped",
    }
}

/// Whether a request's prompt was served mostly from the server's prompt cache: at least three
/// quarters of its tokens. Half would not do: a chat template's fixed preamble (SmolLM2's
/// default system prompt is ~30 of a ~60-token request) is cached for every request, also for
/// cold ones with a unique nonce; a repeated prompt is cached whole but for its last token on
/// hearth and llama-server, and to the last full 16-token block on vLLM (≥ 80% from 64 tokens).
pub fn is_cache_warm(cached_tokens: u64, prompt_tokens: u64) -> bool {
    cached_tokens * 4 >= prompt_tokens * 3
}

#[cfg(test)]
mod tests {
    use super::is_cache_warm;

    #[test]
    fn a_cached_template_preamble_is_not_a_warm_prompt() {
        // Measured on the default model: 34 of 58 tokens cached for a cold, nonce-prefixed prompt.
        assert!(!is_cache_warm(34, 58));
        // The same prompt repeated: all but the last token.
        assert!(is_cache_warm(57, 58));
        // vLLM's 16-token blocks: 48 of 64.
        assert!(is_cache_warm(48, 64));
        assert!(!is_cache_warm(0, 10));
        assert!(is_cache_warm(0, 0));
    }
}
