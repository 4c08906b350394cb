//! From stored records to the numbers every report prints: `summarize` is the single entry
//! point; each metric is defined once (see docs/report.md and `definitions`), so JSON, CSV,
//! Markdown, HTML, the terminal table and `compare` can never disagree. The types it fills are
//! in `run_summary`.

pub use super::latency::Latencies;
use super::latency::{
    by_round, counted, decode_tps, e2el_ms, itl_gaps, output_tps, per_s, span_s, tpot_ms, ttft_ms,
};
use super::quality::{self, Quality, Rubric, Scores};
use super::recommend::recommend;
pub use super::run_summary::{
    status_str, Drafts, Energy, FailureReason, LevelSummary, ModelSummary, PromptCacheCounts,
    Resources, RoundCv, RunSummary, Scorer, Slo, TokenCounts, TokenDisagreement,
    DEFAULT_ENERGY_PRICE_PER_KWH, MAX_LISTED_DISAGREEMENTS,
};
use super::run_summary::{Criteria, Recommendation};
use crate::stats::{coefficient_of_variation, Distribution};
use crate::store::record::{
    LevelRecord, ModelRecord, ModelStatus, RequestRecord, RequestStatus, RunData, RunOptions,
    TokenSource,
};

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
    pub fn met_by(&self, r: &RequestRecord) -> bool {
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

impl Drafts {
    fn of(records: &[&RequestRecord]) -> Self {
        let mut d = Self::default();
        for r in records {
            if let (Some(tokens), false) = (r.completion_tokens, r.chunk_ms.is_empty()) {
                d.streamed_tokens += tokens;
                d.streamed_chunks += r.chunk_ms.len() as u64;
                if let Some(tpot) = tpot_ms(r).filter(|t| *t > 0.0) {
                    for gap in r.chunk_ms.windows(2).map(|w| w[1] - w[0]) {
                        d.chunk_gaps += 1;
                        d.burst_gaps += u64::from(gap < tpot / 5.0);
                    }
                }
            }
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
            let rec = unrecorded(&l.model);
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
        sweeps: Vec::new(),
    };
    summary.sweeps = super::sweep::sweeps(&data.run.options, &summary.levels);
    summary.recommendation = recommend(&summary, Criteria::of(&summary), |_| true);
    summary
}

/// The record of a model that has requests or levels but no model record of its own (a run
/// stopped before the model was written): a name and nothing else, status ok.
pub(crate) fn unrecorded(model: &str) -> ModelRecord {
    ModelRecord {
        model: model.to_string(),
        backend: String::new(),
        endpoint: String::new(),
        license: None,
        tags: vec![],
        quantization: None,
        disk_bytes: None,
        load_ms: None,
        status: ModelStatus::Ok,
        error: None,
    }
}

fn model_summary(m: &ModelRecord, levels: &[LevelSummary]) -> ModelSummary {
    let mine = || levels.iter().filter(|l| l.model == m.model);
    ModelSummary {
        record: m.clone(),
        completed: mine().map(|l| l.completed).sum(),
        failed: mine().map(|l| l.failed).sum(),
        peak_rss_bytes: mine().filter_map(|l| l.resources.peak_rss_bytes).max(),
        quality: Default::default(),
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

    // In an interleaved session the other configurations' rounds ran between this one's: its
    // time is the sum of its own rounds, not the span from first to last.
    let own_span = if data.run.options.interleaved {
        let spans: Vec<f64> = by_round(all.iter().copied())
            .values()
            .filter_map(|rs| span_s(rs.iter().copied()))
            .collect();
        (!spans.is_empty()).then(|| spans.iter().sum())
    } else {
        span_s(all.iter().copied())
    };
    let duration = own_span.or_else(|| rec.map(|l| l.duration_ms / 1000.0).filter(|d| *d > 0.0));
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
    let rounds = by_round(ok.iter().copied());
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
            if let (Some(usage), Some(counted), true) = (
                r.completion_tokens,
                r.counted_completion_tokens,
                tokens.disagreements.len() < MAX_LISTED_DISAGREEMENTS,
            ) {
                tokens.disagreements.push(TokenDisagreement {
                    round: r.round,
                    seq: r.seq,
                    usage,
                    counted,
                    likely: TokenDisagreement::likely(usage, counted).to_string(),
                });
            }
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
        gpu: l.gpu.clone(),
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
        // A shape model's answers are noise: never checked or scored.
        quality: if crate::catalog::is_shape_alias(model) {
            Quality::default()
        } else {
            quality::assess(rubric, scores, &ok)
        },
        stopped: rec.and_then(|l| l.stopped.clone()),
        depth: rec.and_then(|l| l.depth),
        per_request_prefill_throughput: dist(&|r| {
            let ttft = ttft_ms(r)?;
            (ttft > 0.0).then_some(r.prompt_tokens? as f64 * 1000.0 / ttft)
        }),
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
    use super::{is_cache_warm, summarize};
    use crate::store::testdata::sample_run;

    #[test]
    fn drafts_sent_back_to_back_are_bursts_and_the_table_says_so() {
        let mut data = sample_run();
        let steady = summarize(&data);
        assert!(steady.levels.iter().all(|l| !l.drafts.bursty()));
        // Four chunks 0.1 ms apart, then 40 ms to the next four: accepted drafts.
        for r in data.requests.iter_mut().filter(|r| !r.chunk_ms.is_empty()) {
            let first = r.chunk_ms[0];
            let n = r.chunk_ms.len();
            r.chunk_ms = (0..n)
                .map(|i| first + (i / 4) as f64 * 40.0 + (i % 4) as f64 * 0.1)
                .collect();
            r.end_ms = r.chunk_ms.last().copied();
        }
        let bursty = summarize(&data);
        let level = bursty
            .levels
            .iter()
            .find(|l| l.drafts.chunk_gaps > 0)
            .unwrap();
        assert!(level.drafts.bursty());
        let share = level.drafts.burst_share().unwrap();
        assert!(share > 0.2 && share <= 0.75, "{share}");
        let table = crate::report::sections::summary(&bursty);
        assert!(table.notes.iter().any(|n| n.contains("TPOT")));
        assert!(table
            .rows
            .iter()
            .any(|r| r.cells.iter().any(|c| c.text.contains("in bursts"))));
    }

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
