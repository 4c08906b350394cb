//! How one metric's change becomes a verdict: the size of the change against the threshold,
//! and for sampled metrics a seeded bootstrap interval of the difference of medians and a
//! Mann–Whitney test, which must both agree before a change counts.

use serde::{Deserialize, Serialize};

use super::{row, CompareRow};
use crate::stats::{bootstrap_diff_ci, mann_whitney_p, median, Center};

/// Bootstrap resamples per compared metric: enough for a stable 95% interval, cheap for the
/// few hundred requests a level has.
const RESAMPLES: usize = 2000;

/// How strict `compare` is.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareOptions {
    /// Smallest change, in percent of A, that can count as a regression or improvement.
    pub threshold_pct: f64,
    /// Confidence of the interval and of the test (0.95: p must be below 0.05).
    pub confidence: f64,
    /// Seed of the bootstrap, so a comparison is reproducible.
    pub seed: u64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            threshold_pct: 5.0,
            confidence: 0.95,
            seed: 0,
        }
    }
}

/// What a metric's change means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Worse beyond the threshold, and significant (or the model failed in B).
    Regression,
    /// Better beyond the threshold, and significant.
    Improvement,
    /// Within the threshold.
    Unchanged,
    /// Beyond the threshold but not significant: too few or too noisy samples to tell.
    Noise,
    /// Nothing to compare: the model or level is in one run only, or failed in both.
    Missing,
}

/// The change from a to b in percent of a; `None` when a is zero (no base to scale by).
pub(super) fn change_pct(a: f64, b: f64) -> Option<f64> {
    (a != 0.0).then(|| (b - a) / a.abs() * 100.0)
}

/// Verdict from the size of a change alone, for single-number metrics.
pub(super) fn threshold_verdict(
    change: Option<f64>,
    higher_is_worse: bool,
    threshold: f64,
) -> Verdict {
    match change {
        None => Verdict::Missing,
        Some(c) if c.abs() <= threshold => Verdict::Unchanged,
        Some(c) if (c > 0.0) == higher_is_worse => Verdict::Regression,
        Some(_) => Verdict::Improvement,
    }
}

/// Deterministic per-row seed, so rows do not share one random stream yet stay reproducible.
fn row_seed(seed: u64, key: &str) -> u64 {
    key.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One sampled metric (per-request values in A and B): medians, change, interval, test, verdict.
pub(super) fn sampled_row(
    model: &str,
    level: &str,
    metric: &str,
    a: &[f64],
    b: &[f64],
    higher_is_worse: bool,
    opts: &CompareOptions,
) -> CompareRow {
    let mut r = row(model, level, metric, Verdict::Missing);
    r.a = median(a);
    r.b = median(b);
    let (Some(ma), Some(mb)) = (r.a, r.b) else {
        return r;
    };
    r.change_pct = change_pct(ma, mb);
    let ci = bootstrap_diff_ci(
        a,
        b,
        Center::Median,
        opts.confidence,
        RESAMPLES,
        row_seed(opts.seed, &format!("{model}/{level}/{metric}")),
    );
    r.ci_low = ci.map(|c| c.low);
    r.ci_high = ci.map(|c| c.high);
    r.p_value = mann_whitney_p(a, b);
    r.verdict = match r.change_pct {
        None if ma == mb => Verdict::Unchanged,
        Some(c) if c.abs() <= opts.threshold_pct => Verdict::Unchanged,
        _ => {
            let up = mb > ma;
            let ci_agrees = ci.is_some_and(|c| if up { c.low > 0.0 } else { c.high < 0.0 });
            let test_agrees = r.p_value.is_some_and(|p| p < 1.0 - opts.confidence);
            if !(ci_agrees && test_agrees) {
                Verdict::Noise
            } else if up == higher_is_worse {
                Verdict::Regression
            } else {
                Verdict::Improvement
            }
        }
    };
    r
}
