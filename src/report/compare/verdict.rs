//! How one metric's change becomes a verdict: the size of the change against the threshold,
//! and for replicated metrics a t test on the rounds (paired in an interleaved session, Welch's
//! with the run-to-run drift otherwise), which must find the change before it counts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{row, CompareRow, Pairing};
use crate::stats::{geometric_mean, ratio_test, Design};

/// How strict `compare` is.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareOptions {
    /// Smallest change, in percent of A, that can count as a regression or improvement.
    pub threshold_pct: f64,
    /// Confidence of the interval and of the test (0.95: p must be below 0.05).
    pub confidence: f64,
    /// How far a whole run's level moves from one run to the next on this machine (standard
    /// deviation, percent), allowed for when the sides are separate runs. `hearth compare --aa`
    /// measures it.
    #[serde(default = "default_run_drift")]
    pub run_drift_pct: f64,
}

/// The run-to-run drift allowed by default, percent (also the `run_drift_pct` setting's
/// default): 20 A/A pairs on this project's two-core machine put it at 2–5 % per metric
/// (README, "Verdicts that hold").
pub const DEFAULT_RUN_DRIFT_PCT: f64 = 5.0;

fn default_run_drift() -> f64 {
    DEFAULT_RUN_DRIFT_PCT
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            threshold_pct: 5.0,
            confidence: 0.95,
            run_drift_pct: DEFAULT_RUN_DRIFT_PCT,
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
    /// Beyond the threshold but not significant: too few or too noisy replicates to tell.
    Noise,
    /// Nothing to compare: the model or level is on one side only, or failed on both.
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

/// The statistical design of a pairing with these options.
pub(crate) fn design(pairing: Pairing, opts: &CompareOptions) -> Design {
    match pairing {
        Pairing::Interleaved => Design::Paired,
        Pairing::SeparateRuns | Pairing::OneAfterAnother => Design::Independent {
            run_drift: (1.0 + opts.run_drift_pct.max(0.0) / 100.0).ln(),
        },
    }
}

/// One replicated metric (a value per round on each side): centres, change, interval, test,
/// the smallest detectable change, and the verdict.
#[allow(clippy::too_many_arguments)] // one row's whole description; a struct would only rename it
pub(super) fn replicate_row(
    model: &str,
    level: &str,
    metric: &str,
    a: &BTreeMap<u32, f64>,
    b: &BTreeMap<u32, f64>,
    higher_is_worse: bool,
    pairing: Pairing,
    opts: &CompareOptions,
) -> CompareRow {
    let mut r = row(model, level, metric, Verdict::Missing);
    // Paired rounds are those both sides ran; separate runs use every round they have.
    let (va, vb): (Vec<f64>, Vec<f64>) = if pairing == Pairing::Interleaved {
        a.iter()
            .filter_map(|(round, x)| Some((*x, *b.get(round)?)))
            .unzip()
    } else {
        (a.values().copied().collect(), b.values().copied().collect())
    };
    r.replicates = Some([va.len() as u32, vb.len() as u32]);
    r.a = geometric_mean(&va);
    r.b = geometric_mean(&vb);
    let (Some(ga), Some(gb)) = (r.a, r.b) else {
        return r;
    };
    let test = ratio_test(&va, &vb, design(pairing, opts), opts.confidence);
    r.change_pct = test.map_or_else(|| change_pct(ga, gb), |t| Some(t.change_pct));
    let Some(change) = r.change_pct else {
        r.verdict = Verdict::Unchanged;
        return r;
    };
    if let Some(t) = test {
        r.ci_low = Some(t.ci_low_pct);
        r.ci_high = Some(t.ci_high_pct);
        r.p_value = Some(t.p_value);
        r.detectable = Some(t.detectable_pct);
    }
    r.verdict = if change.abs() <= opts.threshold_pct {
        Verdict::Unchanged
    } else {
        match test {
            None => {
                r.note = Some("one round on a side: no noise estimate".into());
                Verdict::Noise
            }
            Some(t) if !t.significant() => Verdict::Noise,
            Some(_) if (change > 0.0) == higher_is_worse => Verdict::Regression,
            Some(_) => Verdict::Improvement,
        }
    };
    r
}
