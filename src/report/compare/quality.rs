//! Model-wide quality in `compare`: the mean score and the share of automatic checks passed.

use super::super::quality::{Quality, Scores};
use super::super::run_summary::ModelSummary;
use super::verdict::{change_pct, threshold_verdict, CompareOptions, Verdict};
use super::{row, CompareRow};
use crate::stats::mann_whitney_p;
use crate::store::record::RunData;

/// Smallest change of a mean score, in points on the 1–5 scale, that can count as a change.
const SCORE_POINTS: f64 = 0.25;

/// Each counted answer's score (a person's over the judge's), for one model.
fn answer_scores(data: &RunData, model: &str) -> Vec<f64> {
    let scores = Scores::of(data);
    crate::eval::judge::scorable(data)
        .into_iter()
        .filter(|r| r.model == model)
        .filter_map(|r| scores.effective(r))
        .collect()
}

/// Model-wide quality: the mean score (a drop must be at least a quarter point and
/// significant by Mann–Whitney) and the share of automatic checks passed (change in points,
/// on the threshold: at temperature 0 answers repeat, so any change is a real one).
pub(super) fn compare_quality(
    a: &RunData,
    b: &RunData,
    ma: &ModelSummary,
    mb: &ModelSummary,
    opts: &CompareOptions,
    rows: &mut Vec<CompareRow>,
) {
    let model = ma.model.as_str();
    let (qa, qb) = (&ma.quality, &mb.quality);
    if qa.score.is_some() || qb.score.is_some() {
        let mut r = row(model, "all", "score", Verdict::Missing);
        r.a = qa.score;
        r.b = qb.score;
        match (qa.score, qb.score) {
            (Some(x), Some(y)) => {
                r.change_pct = change_pct(x, y);
                r.p_value = mann_whitney_p(&answer_scores(a, model), &answer_scores(b, model));
                r.verdict = if (y - x).abs() < SCORE_POINTS {
                    Verdict::Unchanged
                } else if !r.p_value.is_some_and(|p| p < 1.0 - opts.confidence) {
                    Verdict::Noise
                } else if y < x {
                    Verdict::Regression
                } else {
                    Verdict::Improvement
                };
                let by = |q: &Quality| q.scored_by.clone().unwrap_or_default();
                r.note = Some(if by(qa) == by(qb) {
                    format!(
                        "mean 1–5 by {}; ≥ {SCORE_POINTS} points and significant",
                        by(qa)
                    )
                } else {
                    format!(
                        "scored by {} in A, {} in B: not like for like",
                        by(qa),
                        by(qb)
                    )
                });
            }
            (x, _) => {
                r.note = Some(format!(
                    "scored only in run {}",
                    if x.is_some() { "A" } else { "B" }
                ));
            }
        }
        rows.push(r);
    }
    if let (Some(x), Some(y)) = (qa.pass_rate, qb.pass_rate) {
        let mut r = row(model, "all", "check_pass_pct", Verdict::Missing);
        r.a = Some(x * 100.0);
        r.b = Some(y * 100.0);
        r.change_pct = Some((y - x) * 100.0);
        r.verdict = threshold_verdict(r.change_pct, false, opts.threshold_pct);
        r.note = Some("automatic checks; change in points; threshold only".into());
        rows.push(r);
    }
}
