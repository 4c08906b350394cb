//! Verdicts on replicates: is configuration B faster or slower than A, by how much, and what is
//! the smallest change these measurements could have seen?
//!
//! The unit is the **replicate** (a benchmark round, or a whole run), never the single request:
//! requests of one round share the machine's state of that minute, so pooling them makes any
//! two runs "significantly" different on a shared machine (an A/A pair of identical runs was
//! called a regression at p = 0.001). Each replicate gives one value (the round's median TPOT,
//! its throughput…); the test runs on their logarithms, so a change is a ratio and a
//! slow-down and the matching speed-up are the same size.
//!
//! - **Paired** replicates (an interleaved session: A's round r and B's round r ran back to back)
//!   compare round by round, so the drift the machine makes between rounds cancels: a paired t
//!   test on the log ratios.
//! - **Independent** replicates (two separate runs) compare by Welch's t test, with the drift
//!   between runs added as a known variance (Satterthwaite's degrees of freedom count only the
//!   measured parts as uncertain): rounds of one run cannot show how far the whole
//!   machine moves from one run to the next (10–15 % here, see `hearth compare --aa`).
//!
//! The smallest detectable change is the change this test would find four times in five at
//! its confidence ((t₁₋α/₂ + t₀.₈) standard errors): "no regression" then says how much it
//! could have missed. Go's benchstat takes the same view (runs as samples, many of them).

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Power at which the smallest detectable change is stated: found four times in five.
const POWER: f64 = 0.8;

/// Degrees of freedom beyond which Student's t is the normal distribution for our purposes.
const MAX_DF: f64 = 1000.0;

/// How the two sides' replicates relate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Design {
    /// `a[i]` and `b[i]` were measured side by side (alternating rounds of one session).
    Paired,
    /// Separate runs, with the machine's run-to-run drift as a standard deviation of the log
    /// of a run's level (0.05 ≈ 5 %), added to each side's variance.
    Independent {
        /// Standard deviation of a whole run's level on the log scale.
        run_drift: f64,
    },
}

/// The change from A to B on replicates, with its uncertainty.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatioTest {
    /// B / A − 1 in percent (ratio of the replicates' geometric means).
    pub change_pct: f64,
    /// Lower bound of the confidence interval of the change, percent.
    pub ci_low_pct: f64,
    /// Upper bound of the confidence interval of the change, percent.
    pub ci_high_pct: f64,
    /// Two-sided p-value of "no change".
    pub p_value: f64,
    /// Smallest change (percent, either way) found with 80 % power at this confidence.
    pub detectable_pct: f64,
    /// Degrees of freedom of the t distribution used.
    pub df: f64,
    /// Standard error of the log ratio (drift included): what `compare --aa` weighs drift by.
    pub std_error: f64,
}

impl RatioTest {
    /// True when the confidence interval lies wholly on one side of zero.
    pub fn significant(&self) -> bool {
        self.ci_low_pct > 0.0 || self.ci_high_pct < 0.0
    }
}

/// The interval of `mean(b) − mean(a)` at `confidence` (Welch's t on the raw values), for
/// replicates that may be zero (a round in which no request met the SLO), where a ratio of logs
/// does not exist. `None` with fewer than two replicates a side.
pub fn difference_interval(a: &[f64], b: &[f64], confidence: f64) -> Option<[f64; 2]> {
    let finite = |x: &[f64]| -> Vec<f64> { x.iter().copied().filter(|v| v.is_finite()).collect() };
    let (diff, se, df) = welch(&finite(a), &finite(b), 0.0)?;
    let (_, critical) = two_sided(df, confidence)?;
    Some([diff - critical * se, diff + critical * se])
}

/// The ratio `mean(b) / mean(a)` of paired replicates and its interval at `confidence`, by
/// Fieller's theorem: for values that may be zero (a round in which no request met the SLO),
/// where the paired log ratio has no value. `None` with fewer than two pairs, or when `a`'s
/// mean is not clearly above zero (the interval is then unbounded).
///
/// Written by hand: a dozen lines of algebra (the roots of one quadratic) that no kept crate
/// offers.
pub fn paired_ratio_interval(a: &[f64], b: &[f64], confidence: f64) -> Option<(f64, [f64; 2])> {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(x, y)| (*x, *y))
        .collect();
    let n = pairs.len() as f64;
    if pairs.len() < 2 {
        return None;
    }
    let (ma, mb) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let cov = |f: &dyn Fn(&(f64, f64)) -> f64| pairs.iter().map(f).sum::<f64>() / (n - 1.0);
    let saa = cov(&|p| (p.0 - ma) * (p.0 - ma)) / n;
    let sbb = cov(&|p| (p.1 - mb) * (p.1 - mb)) / n;
    let sab = cov(&|p| (p.0 - ma) * (p.1 - mb)) / n;
    let t2 = two_sided(n - 1.0, confidence)?.1.powi(2);
    // (mb − ρ·ma)² ≤ t²·(sbb − 2ρ·sab + ρ²·saa): a quadratic in ρ, bounded when its leading
    // coefficient is positive (ma clearly above zero).
    let qa = ma * ma - t2 * saa;
    let qb = ma * mb - t2 * sab;
    let qc = mb * mb - t2 * sbb;
    let discriminant = qb * qb - qa * qc;
    if ma <= 0.0 || qa <= 0.0 || discriminant < 0.0 {
        return None;
    }
    let root = discriminant.sqrt();
    Some((mb / ma, [(qb - root) / qa, (qb + root) / qa]))
}

/// Student's t at `df` and its two-sided critical value at `confidence`; `None` for a
/// confidence outside (0, 1).
fn two_sided(df: f64, confidence: f64) -> Option<(StudentsT, f64)> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return None;
    }
    let t = StudentsT::new(0.0, 1.0, df).ok()?;
    let critical = t.inverse_cdf(1.0 - (1.0 - confidence) / 2.0);
    Some((t, critical))
}

/// Welch's difference `mean(b) − mean(a)` of independent replicates: (difference, standard
/// error, degrees of freedom), with `run_drift` (relative, per run) added as a known variance:
/// Satterthwaite's degrees of freedom count only the measured parts as uncertain, so a
/// variance that is mostly the allowance is close to normal, and two rounds a side can still
/// show a 3× change. Capped where t and the normal agree to the third decimal. `None` with
/// fewer than two replicates a side.
fn welch(a: &[f64], b: &[f64], run_drift: f64) -> Option<(f64, f64, f64)> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (ma, va) = mean_var(a);
    let (mb, vb) = mean_var(b);
    let (sa, sb) = (va / a.len() as f64, vb / b.len() as f64);
    let drift = 2.0 * run_drift.max(0.0).powi(2);
    let measured = sa * sa / (a.len() as f64 - 1.0) + sb * sb / (b.len() as f64 - 1.0);
    let df = if measured > 0.0 {
        ((sa + sb + drift).powi(2) / measured).min(MAX_DF)
    } else if drift > 0.0 {
        MAX_DF
    } else {
        (a.len() + b.len() - 2) as f64
    };
    Some((mb - ma, (sa + sb + drift).sqrt(), df))
}

/// Sample variance (divides by n − 1) and mean.
fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

/// Compares B's replicates with A's (positive values: milliseconds, tokens per second).
/// `None` when a side has fewer than two usable replicates (no noise to judge by), when a
/// paired design has fewer than two pairs, or when `confidence` is not in (0, 1).
pub fn ratio_test(a: &[f64], b: &[f64], design: Design, confidence: f64) -> Option<RatioTest> {
    let logs = |x: &[f64]| -> Vec<f64> {
        x.iter()
            .filter(|v| v.is_finite() && **v > 0.0)
            .map(|v| v.ln())
            .collect()
    };
    let (diff, se, df) = match design {
        Design::Paired => {
            let d: Vec<f64> = a
                .iter()
                .zip(b)
                .filter(|(x, y)| x.is_finite() && y.is_finite() && **x > 0.0 && **y > 0.0)
                .map(|(x, y)| y.ln() - x.ln())
                .collect();
            if d.len() < 2 {
                return None;
            }
            let (mean, var) = mean_var(&d);
            (mean, (var / d.len() as f64).sqrt(), d.len() as f64 - 1.0)
        }
        Design::Independent { run_drift } => welch(&logs(a), &logs(b), run_drift)?,
    };
    let (t, critical) = two_sided(df, confidence)?;
    let p_value = if se > 0.0 {
        (2.0 * (1.0 - t.cdf((diff / se).abs()))).clamp(0.0, 1.0)
    } else if diff == 0.0 {
        1.0
    } else {
        0.0
    };
    let pct = |x: f64| (x.exp() - 1.0) * 100.0;
    Some(RatioTest {
        change_pct: pct(diff),
        ci_low_pct: pct(diff - critical * se),
        ci_high_pct: pct(diff + critical * se),
        p_value,
        detectable_pct: pct((critical + t.inverse_cdf(POWER)) * se),
        df,
        std_error: se,
    })
}

/// Two-sided Fisher exact test of two success counts: are `a_hits` of `a_n` and `b_hits` of
/// `b_n` drawn at one rate? Exact for the few answers a quality check has, where a normal
/// approximation would call a swing of two answers significant. 1.0 for empty counts.
pub fn fisher_exact_p(a_hits: u64, a_n: u64, b_hits: u64, b_n: u64) -> f64 {
    use statrs::stats_tests::{fisher::fishers_exact, Alternative};
    let table = [
        a_hits.min(a_n),
        a_n - a_hits.min(a_n),
        b_hits.min(b_n),
        b_n - b_hits.min(b_n),
    ];
    fishers_exact(&table, Alternative::TwoSided).unwrap_or(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_of_means_with_zero_rounds_has_an_interval_around_it() {
        // Without noise in the ratio (b = 2a exactly) the interval is the point.
        let a = [1.0, 2.0, 3.0, 4.0];
        let b: Vec<f64> = a.iter().map(|v| v * 2.0).collect();
        let (r, [lo, hi]) = paired_ratio_interval(&a, &b, 0.95).unwrap();
        assert!((r - 2.0).abs() < 1e-12 && (lo - 2.0).abs() < 1e-9 && (hi - 2.0).abs() < 1e-9);
        // Zero rounds on the default's side: a ratio of means, an interval containing it.
        let a = [0.1, 0.29, 0.0, 0.2, 0.15, 0.12, 0.18, 0.0];
        let b = [0.5, 0.6, 0.48, 0.55, 0.52, 0.5, 0.57, 0.49];
        let (r, [lo, hi]) = paired_ratio_interval(&a, &b, 0.95).unwrap();
        assert!(lo < r && r < hi && lo > 1.0, "{r} [{lo}, {hi}]");
        // Its mean within noise of zero, or never above it: no bounded interval.
        assert!(
            paired_ratio_interval(&[0.0, 0.29, 0.0, 0.09], &[0.5, 0.6, 0.5, 0.5], 0.95).is_none()
        );
        assert!(paired_ratio_interval(&[0.0, 0.0, 0.0], &[1.0, 1.1, 0.9], 0.95).is_none());
    }

    const DRIFT: Design = Design::Independent { run_drift: 0.05 };

    #[test]
    fn identical_replicates_show_no_change() {
        let a = [10.0, 10.5, 9.8, 10.2];
        let t = ratio_test(&a, &a, DRIFT, 0.95).unwrap();
        assert_eq!(t.change_pct, 0.0);
        assert!(!t.significant() && t.p_value > 0.99, "{t:?}");
        let t = ratio_test(&a, &a, Design::Paired, 0.95).unwrap();
        assert!(!t.significant() && t.p_value == 1.0, "{t:?}");
    }

    #[test]
    fn a_paired_change_survives_drift_that_hides_it_between_runs() {
        // The machine drifts ±15 % from round to round; B is 10 % slower in every round.
        let drift = [1.0, 1.15, 0.9, 1.1, 0.85, 1.05];
        let a: Vec<f64> = drift.iter().map(|d| 10.0 * d).collect();
        let b: Vec<f64> = drift.iter().map(|d| 11.0 * d * (1.0 + 0.002 * d)).collect();
        let paired = ratio_test(&a, &b, Design::Paired, 0.95).unwrap();
        assert!(paired.significant(), "{paired:?}");
        assert!((paired.change_pct - 10.0).abs() < 1.0, "{paired:?}");
        assert!(paired.detectable_pct < 2.0, "{paired:?}");
        let separate = ratio_test(&a, &b, DRIFT, 0.95).unwrap();
        assert!(!separate.significant(), "{separate:?}");
        assert!(separate.detectable_pct > 10.0, "{separate:?}");
    }

    #[test]
    fn a_large_change_between_runs_is_found_and_bounds_hold_it() {
        let a = [10.0, 10.3, 9.9, 10.1, 10.2];
        let b: Vec<f64> = a.iter().map(|v| v * 1.5).collect();
        let t = ratio_test(&a, &b, DRIFT, 0.95).unwrap();
        assert!(t.significant() && t.p_value < 0.05, "{t:?}");
        assert!(t.ci_low_pct < 50.0 && 50.0 < t.ci_high_pct, "{t:?}");
        // Faster is the same size on the log scale: −33 %.
        let back = ratio_test(&b, &a, DRIFT, 0.95).unwrap();
        assert!((back.change_pct + 33.33).abs() < 0.1, "{back:?}");
        assert!(back.significant());
    }

    #[test]
    fn one_replicate_cannot_be_judged() {
        assert!(ratio_test(&[10.0], &[20.0, 21.0], DRIFT, 0.95).is_none());
        assert!(ratio_test(&[10.0], &[20.0], Design::Paired, 0.95).is_none());
        assert!(ratio_test(&[10.0, 11.0], &[20.0, 21.0], DRIFT, 1.0).is_none());
    }

    #[test]
    fn more_replicates_detect_smaller_changes() {
        let few = [10.0, 10.4, 9.7];
        let many: Vec<f64> = few.iter().cycle().take(12).copied().collect();
        let d = |x: &[f64]| {
            ratio_test(x, x, Design::Independent { run_drift: 0.0 }, 0.95)
                .unwrap()
                .detectable_pct
        };
        assert!(d(&many) < d(&few) / 2.0, "{} vs {}", d(&many), d(&few));
    }

    #[test]
    fn fisher_needs_more_than_a_few_answers() {
        // 36 % against 18 % of ten answers: a coin could do that.
        assert!(fisher_exact_p(4, 11, 2, 11) > 0.3);
        // 80 % against 40 % of a hundred answers: not a coin.
        assert!(fisher_exact_p(80, 100, 40, 100) < 1e-6);
        assert_eq!(fisher_exact_p(0, 0, 0, 0), 1.0);
        assert_eq!(fisher_exact_p(5, 5, 5, 5), 1.0);
    }
}
