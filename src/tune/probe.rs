//! A probe's figures, read from the bench run that measured it: the objective per timed round
//! (requests per second that met the SLO: goodput), and the latency, throughput and memory the
//! table shows.

use super::Probe;
use crate::report::latency::{by_round, counted, span_s};
use crate::report::summary::{summarize, Slo};
use crate::store::record::{ModelStatus, RequestStatus, RunData};

/// The probe of the run's one configuration at its one level; why not, when the model failed
/// or no request succeeded.
pub fn probe_of(data: &RunData) -> Result<Probe, String> {
    let summary = summarize(data);
    let model = summary.models.first().ok_or("the run measured no model")?;
    if model.status == ModelStatus::Failed {
        return Err(model
            .error
            .clone()
            .unwrap_or_else(|| "the model failed".into()));
    }
    let level = summary
        .levels
        .iter()
        .find(|l| l.model == model.model)
        .ok_or("the run measured no level")?;
    let slo = Slo::from_options(&data.run.options);
    let ok = counted(data, &model.model, &level.level).filter(|r| r.status == RequestStatus::Ok);
    let rounds = by_round(ok)
        .values()
        .filter_map(|rs| {
            let met = rs
                .iter()
                .filter(|r| slo.as_ref().is_none_or(|s| s.met_by(r)))
                .count();
            span_s(rs.iter().copied()).map(|span| met as f64 / span)
        })
        .collect();
    Ok(Probe {
        rounds,
        run_id: Some(data.run.id.clone()),
        ttft_ms: level.latency.ttft.map(|d| d.p95),
        tpot_ms: level.latency.tpot.map(|d| d.p95),
        output_tok_s: level.output_throughput,
        peak_rss_bytes: level.resources.peak_rss_bytes,
        checks_passed: model.quality.checks_passed,
        checks_total: model.quality.checks_total,
        judge_score: model.quality.judge_score,
        judge_scored: model.quality.judge_scored,
    })
}
