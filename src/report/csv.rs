//! `report.csv`: one row per model and level under the JSON report's names, for spreadsheets.
//! A failed model with no level still gets a row (empty level and figures, its error filled).
//! The CSV's one table is wider than any page table (every figure, machine names), so it is
//! built here, as a `Table`, and written by the csv crate.

use super::latency::{stat_of, LATENCY_METRICS, LATENCY_STATS};
use super::run_summary::{status_str, LevelSummary, ModelSummary, RunSummary};
use super::summary::unrecorded;
use super::table::{Align, Cell, Row, Table};
use super::ReportError;
use crate::stats::Distribution;
use crate::store::record::LoadShape;

fn num(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map_or(String::new(), |x| x.to_string())
}

fn int(v: Option<u64>) -> String {
    v.map_or(String::new(), |x| x.to_string())
}

/// Named cells of one row; the names of the first row are the header.
fn row(m: &ModelSummary, l: Option<&LevelSummary>) -> Vec<(String, String)> {
    let mut cells: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| cells.push((k.to_string(), v));
    put("model", m.model.clone());
    // A shape model's row says so, and leaves its (unscored) quality cells empty.
    let shape = crate::catalog::is_shape_alias(&m.model);
    put(
        "weights",
        if shape { "random (speed only)" } else { "real" }.to_string(),
    );
    let l_quality = l.filter(|_| !shape);
    put("level", l.map_or(String::new(), |l| l.level.clone()));
    let (mode, conc, rate) = match l.and_then(|l| l.shape) {
        Some(LoadShape::Concurrency { concurrency }) => {
            ("concurrency", Some(concurrency as f64), None)
        }
        Some(LoadShape::Rate {
            rate,
            max_concurrency,
            ..
        }) => ("rate", max_concurrency.map(f64::from), Some(rate)),
        None => ("", None, None),
    };
    put("mode", mode.to_string());
    put("concurrency", num(conc));
    put("rate", num(rate));
    put("status", status_str(m.status).to_string());
    put("error", m.error.clone().unwrap_or_default());
    put("completed", int(l.map(|l| l.completed)));
    put("failed", int(l.map(|l| l.failed)));
    put("timeouts", int(l.map(|l| l.timeouts)));
    put(
        "first_failure",
        l.and_then(|l| l.failure_reasons.first())
            .map_or(String::new(), |r| r.error.clone()),
    );
    put("duration", num(l.and_then(|l| l.duration)));
    put("total_input_tokens", int(l.map(|l| l.total_input_tokens)));
    put("total_output_tokens", int(l.map(|l| l.total_output_tokens)));
    put(
        "request_throughput",
        num(l.and_then(|l| l.request_throughput)),
    );
    put(
        "output_throughput",
        num(l.and_then(|l| l.output_throughput)),
    );
    put(
        "checks_passed",
        int(l_quality.map(|l| l.quality.checks_passed)),
    );
    put(
        "checks_total",
        int(l_quality.map(|l| l.quality.checks_total)),
    );
    put(
        "check_pass_rate",
        num(l_quality.and_then(|l| l.quality.pass_rate)),
    );
    put(
        "facet_coverage",
        num(l_quality.and_then(|l| l.quality.facet_coverage)),
    );
    put("score", num(l_quality.and_then(|l| l.quality.score)));
    put(
        "scored_by",
        l_quality
            .and_then(|l| l.quality.scored_by.clone())
            .unwrap_or_default(),
    );
    put(
        "judge_score",
        num(l_quality.and_then(|l| l.quality.judge_score)),
    );
    put(
        "judge_scored",
        int(l_quality.map(|l| l.quality.judge_scored)),
    );
    put(
        "judge_unscored",
        int(l_quality.map(|l| l.quality.judge_unscored)),
    );
    put(
        "human_score",
        num(l_quality.and_then(|l| l.quality.human_score)),
    );
    put(
        "human_scored",
        int(l_quality.map(|l| l.quality.human_scored)),
    );
    put(
        "total_token_throughput",
        num(l.and_then(|l| l.total_token_throughput)),
    );
    put("request_goodput", num(l.and_then(|l| l.request_goodput)));
    put("goodput_share", num(l.and_then(|l| l.goodput_share)));
    for metric in LATENCY_METRICS {
        let d = l.and_then(|l| l.latency.get(metric).copied());
        for stat in LATENCY_STATS {
            put(
                &format!("{stat}_{metric}_ms"),
                num(d.map(|d| stat_of(&d, stat))),
            );
        }
    }
    let brief = |name: &str, d: Option<Distribution>, put: &mut dyn FnMut(&str, String)| {
        put(&format!("median_{name}"), num(d.map(|d| d.median)));
        put(&format!("p95_{name}"), num(d.map(|d| d.p95)));
    };
    brief("ttfb_ms", l.and_then(|l| l.ttfb), &mut put);
    brief("wait_ms", l.and_then(|l| l.wait), &mut put);
    brief("ttft_cold_ms", l.and_then(|l| l.ttft_cold), &mut put);
    brief("ttft_warm_ms", l.and_then(|l| l.ttft_warm), &mut put);
    put("cache_warm", int(l.map(|l| l.prompt_cache.warm)));
    put("cache_cold", int(l.map(|l| l.prompt_cache.cold)));
    put("cache_unknown", int(l.map(|l| l.prompt_cache.unknown)));
    let tps = l.and_then(|l| l.per_request_output_throughput);
    put(
        "mean_per_request_output_throughput",
        num(tps.map(|d| d.mean)),
    );
    put(
        "median_per_request_output_throughput",
        num(tps.map(|d| d.median)),
    );
    put(
        "median_per_request_decode_throughput",
        num(l
            .and_then(|l| l.per_request_decode_throughput)
            .map(|d| d.median)),
    );
    put("draft_tokens", int(l.map(|l| l.drafts.drafted)));
    put("draft_accepted_tokens", int(l.map(|l| l.drafts.accepted)));
    put(
        "draft_acceptance",
        num(l.and_then(|l| l.drafts.acceptance())),
    );
    put("cv_e2el_mean", num(l.and_then(|l| l.cv.e2el_mean)));
    put(
        "cv_output_throughput",
        num(l.and_then(|l| l.cv.output_throughput)),
    );
    put("tokens_usage", int(l.map(|l| l.token_counts.usage)));
    put("tokens_tokenizer", int(l.map(|l| l.token_counts.tokenizer)));
    put("tokens_chunks", int(l.map(|l| l.token_counts.chunks)));
    put(
        "usage_disagreements",
        int(l.map(|l| l.token_counts.usage_disagreements)),
    );
    let r = l.map(|l| &l.resources);
    put("peak_rss_bytes", int(r.and_then(|r| r.peak_rss_bytes)));
    put("server_cpu_ms", num(r.and_then(|r| r.server_cpu_ms)));
    put("client_cpu_ms", num(r.map(|r| r.client_cpu_ms)));
    put("client_lag_p99_ms", num(r.map(|r| r.client_lag_p99_ms)));
    put(
        "client_bottleneck",
        r.map_or(String::new(), |r| r.client_bottleneck.to_string()),
    );
    let g = r.and_then(|r| r.gpu.as_ref());
    put("gpu_memory_peak_bytes", int(g.map(|g| g.peak_memory_bytes)));
    put(
        "gpu_utilization_mean_pct",
        num(g.map(|g| g.mean_utilization_pct)),
    );
    put("gpu_power_mean_w", num(g.map(|g| g.mean_power_w)));
    put("gpu_energy_j", num(g.map(|g| g.energy_j)));
    let e = l.map(|l| &l.energy);
    put("energy_j", num(e.and_then(|e| e.energy_j)));
    put(
        "energy_method",
        e.and_then(|e| e.method.clone()).unwrap_or_default(),
    );
    put(
        "energy_j_per_1k_output_tokens",
        num(e.and_then(|e| e.j_per_1k_output_tokens)),
    );
    put(
        "energy_wh_per_1k_output_tokens",
        num(e.and_then(|e| e.wh_per_1k_output_tokens)),
    );
    put(
        "cost_per_1k_output_tokens",
        num(e.and_then(|e| e.cost_per_1k_output_tokens)),
    );
    put("energy_price_per_kwh", num(e.map(|e| e.price_per_kwh)));
    put("backend", m.backend.clone());
    put("endpoint", m.endpoint.clone());
    put("license", m.license.clone().unwrap_or_default());
    put("quantization", m.quantization.clone().unwrap_or_default());
    put("disk_bytes", int(m.disk_bytes));
    put("load_ms", num(m.load_ms));
    cells
}

/// The data table: one row per model and level, every figure under its JSON name.
fn table(summary: &RunSummary) -> Table {
    let rows: Vec<_> = summary.rows().into_iter().map(|(m, l)| row(m, l)).collect();
    let names: Vec<String> = match rows.first() {
        Some(r) => r.iter().map(|(k, _)| k.clone()).collect(),
        // A run without models still names its columns.
        None => row(&empty_model(), None)
            .into_iter()
            .map(|(k, _)| k)
            .collect(),
    };
    let columns: Vec<(&str, Align)> = names.iter().map(|n| (n.as_str(), Align::Left)).collect();
    let mut t = Table::new(&columns);
    for r in rows {
        t.push(Row::new(r.into_iter().map(|(_, v)| Cell::new(v)).collect()));
    }
    t
}

/// A table as CSV: the header line, then one line per row (marks and notes do not apply).
fn write(t: &Table) -> Result<String, ReportError> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(t.header())?;
    for r in &t.rows {
        w.write_record(r.cells.iter().map(|c| &c.text))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| ReportError::Csv(e.into_error().into()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The CSV text: a header line, then one row per model and level.
pub(super) fn render(summary: &RunSummary) -> Result<String, ReportError> {
    write(&table(summary))
}

/// A placeholder used only to name the columns of a run without models.
fn empty_model() -> ModelSummary {
    ModelSummary {
        record: unrecorded(""),
        completed: 0,
        failed: 0,
        peak_rss_bytes: None,
        quality: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use crate::report::{render, Format};
    use crate::store::testdata::sample_run;

    #[test]
    fn csv_has_a_header_and_one_row_per_model_and_level() {
        let text = render(&sample_run(), Format::Csv).unwrap();
        let mut r = ::csv::Reader::from_reader(text.as_bytes());
        let header = r.headers().unwrap().clone();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .unwrap_or_else(|| panic!("{name}"))
        };
        let rows: Vec<_> = r.records().map(Result::unwrap).collect();
        // smollm2 ×2, qwen ×2, broken-model ×1 (no level, still a row).
        assert_eq!(rows.len(), 5);
        assert_eq!(&rows[0][col("model")], "smollm2");
        assert_eq!(&rows[0][col("median_ttft_ms")], "40");
        assert_eq!(&rows[0][col("total_output_tokens")], "12");
        let broken = rows
            .iter()
            .find(|r| &r[col("model")] == "broken-model")
            .unwrap();
        assert_eq!(&broken[col("status")], "failed");
        assert!(broken[col("error")].contains("<script>"));
        assert!(rows.iter().any(|r| &r[col("client_bottleneck")] == "true"));
    }
}
