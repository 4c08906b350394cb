//! Model-wide quality in `compare`: the mean score and the share of automatic checks passed,
//! each judged for the number of prompts behind it. A prompt's answers repeat across rounds
//! (temperature 0) and change together with batch shapes and the prompt cache, so the prompt
//! is the independent unit: six prompts' pass rate swings by a third between identical runs,
//! which is "too few prompts to tell", never a regression.

use super::super::quality::{Quality, Scores};
use super::super::run_summary::ModelSummary;
use super::verdict::{change_pct, CompareOptions, Verdict};
use super::{row, CompareRow};
use std::collections::BTreeMap;

use crate::stats::{fisher_exact_p, mann_whitney_p, mean};
use crate::store::record::RunData;

/// Smallest change of a mean score, in points on the 1–5 scale, that can count as a change.
const SCORE_POINTS: f64 = 0.25;

/// Each prompt's mean score over its counted answers (a person's score over the judge's), for
/// one model: one value per prompt, the independent unit.
fn prompt_scores(data: &RunData, model: &str) -> Vec<f64> {
    let scores = Scores::of(data);
    let mut by_prompt: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in crate::eval::judge::scorable(data) {
        if r.model == model {
            if let Some(s) = scores.effective(r) {
                by_prompt.entry(r.prompt_id.as_str()).or_default().push(s);
            }
        }
    }
    by_prompt.values().filter_map(|v| mean(v)).collect()
}

/// Model-wide quality: the mean score (a change must be at least a quarter point and
/// significant by Mann–Whitney over the prompts' mean scores) and the share of automatic checks
/// passed (beyond the threshold in points and significant by a Fisher exact test with each
/// prompt one trial).
pub(super) fn compare_quality(
    a: &RunData,
    b: &RunData,
    ma: &ModelSummary,
    mb: &ModelSummary,
    opts: &CompareOptions,
    rows: &mut Vec<CompareRow>,
) {
    // Rows carry B's name: within one run, the configuration judged against the baseline.
    let model = mb.model.as_str();
    let (qa, qb) = (&ma.quality, &mb.quality);
    if qa.score.is_some() || qb.score.is_some() {
        let mut r = row(model, "all", "score", Verdict::Missing);
        r.a = qa.score;
        r.b = qb.score;
        let mut noise_note = false;
        match (qa.score, qb.score) {
            (Some(x), Some(y)) => {
                r.change_pct = change_pct(x, y);
                let (sa, sb) = (prompt_scores(a, &ma.model), prompt_scores(b, &mb.model));
                r.replicates = Some([sa.len() as u32, sb.len() as u32]);
                r.p_value = mann_whitney_p(&sa, &sb);
                r.verdict = if (y - x).abs() < SCORE_POINTS {
                    Verdict::Unchanged
                } else if !r.p_value.is_some_and(|p| p < 1.0 - opts.confidence) {
                    noise_note = true;
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
                if noise_note {
                    r.note = Some(format!(
                        "too few prompts to tell ({} and {} scored)",
                        sa.len(),
                        sb.len()
                    ));
                }
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
        rows.push(pass_rate_row(
            model,
            (x, qa.checked_prompts),
            (y, qb.checked_prompts),
            opts,
        ));
    }
}

/// The share of checks passed, with each prompt one trial: a prompt's answers and checks pass
/// or fail together, so counting checks would make six prompts look like a hundred.
pub(super) fn pass_rate_row(
    model: &str,
    a: (f64, u64),
    b: (f64, u64),
    opts: &CompareOptions,
) -> CompareRow {
    let ((x, na), (y, nb)) = (a, b);
    let mut r = row(model, "all", "check_pass_pct", Verdict::Missing);
    r.a = Some(x * 100.0);
    r.b = Some(y * 100.0);
    let change = (y - x) * 100.0;
    r.change_pct = Some(change);
    r.replicates = Some([na as u32, nb as u32]);
    // Runs stored before answers were counted: the checks are all there is.
    if na == 0 || nb == 0 {
        r.verdict = if change.abs() <= opts.threshold_pct {
            Verdict::Unchanged
        } else {
            Verdict::Noise
        };
        r.note = Some("prompts not counted in this run: no test".into());
        return r;
    }
    let hits = |rate: f64, n: u64| (rate * n as f64).round() as u64;
    let p = fisher_exact_p(hits(x, na), na, hits(y, nb), nb);
    r.p_value = Some(p);
    // What a normal approximation says these counts could detect (80 % power), in points.
    let pooled = (x * na as f64 + y * nb as f64) / (na + nb) as f64;
    let z = {
        use statrs::distribution::{ContinuousCDF, Normal};
        let n = Normal::standard();
        n.inverse_cdf(1.0 - (1.0 - opts.confidence) / 2.0) + n.inverse_cdf(0.8)
    };
    r.detectable =
        Some(z * (pooled * (1.0 - pooled) * (1.0 / na as f64 + 1.0 / nb as f64)).sqrt() * 100.0);
    r.verdict = if change.abs() <= opts.threshold_pct {
        Verdict::Unchanged
    } else if p >= 1.0 - opts.confidence {
        r.note = Some(format!(
            "too few prompts to tell ({na} and {nb}; exact test p = {p:.2})"
        ));
        Verdict::Noise
    } else if change < 0.0 {
        Verdict::Regression
    } else {
        Verdict::Improvement
    };
    if r.note.is_none() {
        r.note = Some("change in points; Fisher exact test, one trial per prompt".into());
    }
    r
}
