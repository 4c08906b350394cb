//! `report.json`: the machine-readable report. Level fields use vLLM's benchmark JSON names
//! where the meaning is the same, so existing dashboards read it; docs/report.md is its schema.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::definitions::DEFINITIONS;
use super::run_summary::{LevelSummary, ModelSummary, Recommendation, RunSummary, Scorer};
use super::ReportError;
use crate::store::record::{Environment, RunStatus};

/// The schema id written into every JSON report; bump the suffix on an incompatible change.
pub const SCHEMA: &str = "hearth.bench.report/1";

/// The whole JSON report, as written and as read back by tools (and tests).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportDocument {
    /// Always `SCHEMA`.
    pub schema: String,
    /// The run's identity and timing.
    pub run: RunInfo,
    /// Machine and software.
    pub environment: Environment,
    /// The resolved benchmark options, as stored.
    pub options: serde_json::Value,
    /// The client's own health, as stored.
    pub client: serde_json::Value,
    /// One entry per model, failed ones included.
    pub models: Vec<ModelSummary>,
    /// One entry per model and level.
    pub levels: Vec<LevelSummary>,
    /// Who scored the answers.
    #[serde(default)]
    pub scorers: Vec<Scorer>,
    /// The pick: fastest model meeting the quality bar and memory budget, and why not the
    /// others.
    #[serde(default)]
    pub recommendation: Recommendation,
    /// Where each model saturates (sweeps and runs that judged open-loop levels).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sweeps: Vec<super::sweep::SweepSummary>,
    /// Warnings a reader must not miss (client bottleneck, failures, token fallbacks).
    pub warnings: Vec<String>,
    /// Metric name → definition.
    pub definitions: BTreeMap<String, String>,
}

/// The run's identity and timing (the rest of the run record is at the document's top level).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Run id.
    pub id: String,
    /// Wall-clock start, Unix ms.
    pub started_unix_ms: i64,
    /// Wall-clock end, Unix ms.
    pub finished_unix_ms: Option<i64>,
    /// How the run ended.
    pub status: RunStatus,
}

impl ReportDocument {
    /// Builds the document from a summary.
    pub fn new(summary: &RunSummary) -> ReportDocument {
        let run = &summary.run;
        ReportDocument {
            schema: SCHEMA.to_string(),
            run: RunInfo {
                id: run.id.clone(),
                started_unix_ms: run.started_unix_ms,
                finished_unix_ms: run.finished_unix_ms,
                status: run.status,
            },
            environment: run.environment.clone(),
            options: run.options.to_json(),
            client: run.client.clone(),
            models: summary.models.clone(),
            levels: summary.levels.clone(),
            scorers: summary.scorers.clone(),
            recommendation: summary.recommendation.clone(),
            sweeps: summary.sweeps.clone(),
            warnings: summary.warnings(),
            definitions: DEFINITIONS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// Pretty-printed JSON of the report.
pub(super) fn render(summary: &RunSummary) -> Result<String, ReportError> {
    let mut s = serde_json::to_string_pretty(&ReportDocument::new(summary))?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{render as render_any, Format};
    use crate::store::testdata::sample_run;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-6)
    }

    #[test]
    fn json_report_parses_back_with_hand_computed_numbers() {
        let text = render_any(&sample_run(), Format::Json).unwrap();
        let doc: ReportDocument = serde_json::from_str(&text).unwrap();
        assert_eq!(doc.schema, SCHEMA);
        assert_eq!(doc.models.len(), 3);
        let broken = doc
            .models
            .iter()
            .find(|m| m.model == "broken-model")
            .unwrap();
        assert!(broken.error.as_deref().unwrap().contains("<script>"));

        let l = &doc.levels[0];
        assert_eq!((l.model.as_str(), l.level.as_str()), ("smollm2", "c=1"));
        assert_eq!((l.completed, l.failed, l.errors), (3, 1, 1));
        assert!(close(l.duration, 0.31));
        assert_eq!((l.total_input_tokens, l.total_output_tokens), (60, 12));
        assert!(close(l.output_throughput, 12.0 / 0.31));
        assert!(close(l.total_token_throughput, 72.0 / 0.31));
        assert!(close(l.request_throughput, 3.0 / 0.31));
        let ttft = l.latency.ttft.unwrap();
        assert_eq!(ttft.count, 3);
        assert!(close(Some(ttft.mean), 40.0) && close(Some(ttft.median), 40.0));
        assert!(close(Some(ttft.std), (200.0f64 / 3.0).sqrt()));
        assert!(close(Some(ttft.p99), 49.8));
        let e2el = l.latency.e2el.unwrap();
        assert!(close(Some(e2el.mean), 230.0 / 3.0) && close(Some(e2el.median), 70.0));
        let tpot = l.latency.tpot.unwrap();
        assert!(close(Some(tpot.mean), 40.0 / 3.0) && close(Some(tpot.median), 10.0));
        let itl = l.latency.itl.unwrap();
        assert_eq!(itl.count, 9);
        assert!(close(Some(itl.mean), 110.0 / 9.0) && close(Some(itl.max), 20.0));
        assert!(close(l.request_goodput, 2.0 / 0.31));
        assert!(close(l.goodput_share, 0.5));
        assert_eq!(
            (
                l.prompt_cache.warm,
                l.prompt_cache.cold,
                l.prompt_cache.unknown
            ),
            (1, 1, 1)
        );
        assert!(close(l.ttft_warm.map(|d| d.mean), 50.0));
        assert!(close(l.ttft_cold.map(|d| d.mean), 30.0));
        assert!(close(l.wait.map(|d| d.mean), 0.5));
        assert!(close(l.ttfb.map(|d| d.mean), 39.0));
        // Per round: mean E2E 80 (round 1) and 70 (round 2): cv = 5 / 75.
        assert_eq!(l.cv.rounds, 2);
        assert!(close(l.cv.e2el_mean, 5.0 / 75.0));
        assert_eq!(l.token_counts.usage, 2);
        assert_eq!(l.token_counts.tokenizer, 1);
        assert_eq!(l.token_counts.usage_disagreements, 1);
        // Which request, both counts, and the likely cause (usage = chunks + 1: a stop token).
        let d = &l.token_counts.disagreements[0];
        assert_eq!((d.round, d.seq, d.usage, d.counted), (2, 3, 4, 5));
        assert!(d.likely.contains("usage is right"), "{}", d.likely);
        assert!(doc
            .warnings
            .iter()
            .any(|w| w.contains("round 2 #3: usage 4 vs 5 chunks")));
        // 36 J over 12 tokens: 3000 J per 1k, at 0.25 per kWh.
        assert!(close(l.energy.j_per_1k_output_tokens, 3000.0));
        assert!(close(l.energy.wh_per_1k_output_tokens, 3000.0 / 3600.0));
        assert!(close(
            l.energy.cost_per_1k_output_tokens,
            3000.0 / 3.6e6 * 0.25
        ));
        assert_eq!(l.resources.peak_rss_bytes, Some(200 << 20));
        // Per-request output tok/s: A 5/0.09 = 55.6, B 3/0.07 = 42.9, C 4/0.07 = 57.1; median A.
        assert!(close(
            l.per_request_output_throughput.map(|d| d.median),
            5.0 / 0.09
        ));

        assert!(doc.levels.iter().any(|l| l.resources.client_bottleneck));
        assert!(doc.warnings.iter().any(|w| w.contains("CLIENT BOTTLENECK")));
        assert!(doc.definitions.contains_key("itl"));
    }

    #[test]
    fn json_uses_vllm_field_names() {
        let text = render_any(&sample_run(), Format::Json).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let l = &v["levels"][0];
        for key in [
            "completed",
            "failed",
            "duration",
            "total_input_tokens",
            "total_output_tokens",
            "request_throughput",
            "output_throughput",
            "total_token_throughput",
            "mean_ttft_ms",
            "median_ttft_ms",
            "std_ttft_ms",
            "p90_ttft_ms",
            "p95_ttft_ms",
            "p99_ttft_ms",
            "mean_tpot_ms",
            "p99_tpot_ms",
            "mean_itl_ms",
            "median_itl_ms",
            "mean_e2el_ms",
            "p99_e2el_ms",
            "min_e2el_ms",
            "max_e2el_ms",
            "request_goodput",
            "ttft_cold",
            "wait",
        ] {
            assert!(l.get(key).is_some(), "missing {key}");
        }
        assert_eq!(l["median_ttft_ms"], 40.0);
        assert_eq!(v["schema"], SCHEMA);
        assert!(v["options"]["slo"].is_object());
        assert!(v["environment"]["cpu_model"].is_string());
    }
}
