//! What a sweep (or any run with open-loop levels judged for over-saturation) says about each
//! model: the synchronous and maximum request rates, the knee of its latency-throughput curve,
//! the highest offered rate the server kept up with, the levels it fell behind at, and the
//! highest rate that still met the SLOs. Computed from the level summaries only, so an old run re-rendered reads the same.

use super::run_summary::LevelSummary;
pub use super::run_summary::{SweepPoint, SweepSummary};
use crate::store::record::{LoadShape, RunOptions, SCALING_MIN_RATIO};

/// Share of a level's requests that may fail and the level still count as kept up with.
const KEPT_UP_MAX_FAILED: f64 = 0.05;
/// Share of a level's requests that must meet the SLOs for its rate to be sustainable.
const SUSTAINABLE_SLO_SHARE: f64 = 0.9;

/// Sweeps of every model with open-loop levels, when the run judged over-saturation (without
/// the judgement, an open-loop level that fell behind looks like one that kept up).
pub fn sweeps(options: &RunOptions, levels: &[LevelSummary]) -> Vec<SweepSummary> {
    let judged = options
        .bench
        .get("stop_over_saturated_secs")
        .is_some_and(|v| v.is_number());
    if !judged {
        return Vec::new();
    }
    let mut models: Vec<&str> = Vec::new();
    for l in levels {
        if !models.contains(&l.model.as_str()) {
            models.push(&l.model);
        }
    }
    models
        .into_iter()
        .filter_map(|m| {
            let mine: Vec<&LevelSummary> = levels.iter().filter(|l| l.model == m).collect();
            sweep_of(m, &mine)
        })
        .collect()
}

fn sweep_of(model: &str, levels: &[&LevelSummary]) -> Option<SweepSummary> {
    let mut rates: Vec<(f64, &LevelSummary)> = levels
        .iter()
        .filter_map(|l| match l.shape? {
            LoadShape::Rate { rate, .. } => Some((rate, *l)),
            LoadShape::Concurrency { .. } => None,
        })
        .collect();
    if rates.is_empty() {
        return None;
    }
    rates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let point = |l: &LevelSummary| SweepPoint {
        level: l.level.clone(),
        rate: match l.shape {
            Some(LoadShape::Rate { rate, .. }) => Some(rate),
            _ => None,
        },
        achieved: l.request_throughput,
        e2e_p50_ms: l.latency.e2el.map(|d| d.median),
    };
    let kept_up = |l: &LevelSummary| {
        let counted = l.completed + l.failed;
        l.stopped.is_none()
            && l.completed > 0
            && (l.failed as f64) <= KEPT_UP_MAX_FAILED * counted as f64
    };
    let closed: Vec<(u32, &LevelSummary)> = levels
        .iter()
        .filter_map(|l| match l.shape? {
            LoadShape::Concurrency { concurrency } => Some((concurrency, *l)),
            LoadShape::Rate { .. } => None,
        })
        .collect();
    let synchronous_rate = closed
        .iter()
        .find(|(c, _)| *c == 1)
        .and_then(|(_, l)| l.request_throughput);
    let maximum_rate = closed
        .iter()
        .filter_map(|(_, l)| l.request_throughput.map(|r| (r, l.level.clone())))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    Some(SweepSummary {
        model: model.to_string(),
        scales_with_concurrency: match (synchronous_rate, &maximum_rate) {
            (Some(one), Some((most, _))) if one > 0.0 => Some(*most >= one * SCALING_MIN_RATIO),
            _ => None,
        },
        synchronous_rate,
        maximum_rate,
        knee: levels
            .iter()
            .filter(|l| kept_up(l))
            .filter_map(|l| Some((l.request_throughput? / l.latency.e2el?.median, *l)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, l)| point(l)),
        max_sustainable: rates
            .iter()
            .rev()
            .find(|(_, l)| kept_up(l))
            .map(|(_, l)| point(l)),
        over_saturated: rates
            .iter()
            .filter(|(_, l)| l.stopped.is_some())
            .map(|(_, l)| point(l))
            .collect(),
        max_rate_under_slo: rates
            .iter()
            .rev()
            .find(|(_, l)| {
                kept_up(l)
                    && l.slo.is_some()
                    && l.goodput_share.is_some_and(|s| s >= SUSTAINABLE_SLO_SHARE)
            })
            .map(|(_, l)| point(l)),
    })
}
