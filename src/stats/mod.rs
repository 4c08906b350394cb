//! Statistics on recorded values: the summaries every report prints and the tests `compare`
//! uses to tell a real regression from noise.
//!
//! Conventions, chosen to match the tools people compare hearth with:
//! - percentiles interpolate linearly between the closest ranks (numpy's default `linear`
//!   method, which vLLM's benchmark uses through `np.percentile`);
//! - standard deviation is the **population** one (divide by n, numpy's `np.std` default, again
//!   what vLLM reports), so a one-value sample has std 0;
//! - values that are not finite (NaN, ±inf) are dropped before anything is computed: they can
//!   only come from a broken record and must not poison a whole summary;
//! - an empty sample has no summary (`None`), never a row of zeros.

mod replicates;

pub use replicates::{
    difference_interval, fisher_exact_p, paired_ratio_interval, ratio_test, Design, RatioTest,
};

use serde::{Deserialize, Serialize};

/// The summary of one sample that every report shows, so all formats print the same numbers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Number of values summarized (after dropping non-finite ones).
    pub count: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// 50th percentile.
    pub median: f64,
    /// Population standard deviation (divides by n).
    pub std: f64,
    /// 90th percentile (linear interpolation).
    pub p90: f64,
    /// 95th percentile (linear interpolation).
    pub p95: f64,
    /// 99th percentile (linear interpolation).
    pub p99: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Distribution {
    /// Summarizes `values`; `None` when no finite value is left, so callers must say "no data"
    /// rather than print zeros.
    pub fn from_values(values: &[f64]) -> Option<Distribution> {
        let sorted = sorted_finite(values);
        Distribution::from_sorted(&sorted)
    }

    /// Summarizes an already sorted, finite sample (saves a sort when the caller has one).
    fn from_sorted(sorted: &[f64]) -> Option<Distribution> {
        if sorted.is_empty() {
            return None;
        }
        let mean = mean(sorted)?;
        Some(Distribution {
            count: sorted.len(),
            mean,
            median: percentile_sorted(sorted, 50.0)?,
            std: population_std(sorted, mean),
            p90: percentile_sorted(sorted, 90.0)?,
            p95: percentile_sorted(sorted, 95.0)?,
            p99: percentile_sorted(sorted, 99.0)?,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        })
    }

    /// Coefficient of variation of the summarized sample (std / mean), when it is defined.
    pub fn cv(&self) -> Option<f64> {
        (self.mean != 0.0 && self.count > 0).then(|| self.std / self.mean.abs())
    }
}

/// The finite values of `values`, sorted ascending.
fn sorted_finite(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Arithmetic mean of the finite values; `None` for an empty sample.
pub fn mean(values: &[f64]) -> Option<f64> {
    let (sum, n) = values
        .iter()
        .filter(|x| x.is_finite())
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Population standard deviation around a known mean.
fn population_std(values: &[f64], mean: f64) -> f64 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    let ss: f64 = values.iter().map(|x| (x - mean) * (x - mean)).sum();
    (ss / n as f64).sqrt()
}

/// The geometric mean of the positive, finite values (a ratio scale: 2× and ½× balance);
/// `None` when there is none.
pub fn geometric_mean(values: &[f64]) -> Option<f64> {
    let logs: Vec<f64> = values
        .iter()
        .filter(|v| v.is_finite() && **v > 0.0)
        .map(|v| v.ln())
        .collect();
    (!logs.is_empty()).then(|| (logs.iter().sum::<f64>() / logs.len() as f64).exp())
}

/// Median of the finite values (linear interpolation for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    percentile(values, 50.0)
}

/// The `p`-th percentile (0..=100) of the finite values, numpy's `linear` method: the rank
/// `p/100 · (n−1)` is interpolated between its two neighbours. `None` when empty or `p` is out
/// of range.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    percentile_sorted(&sorted_finite(values), p)
}

/// `percentile` on a sample that is already sorted and finite.
fn percentile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Coefficient of variation (population std / |mean|) of the finite values: the noise of a
/// run as one unitless number. `None` with fewer than two values (no spread to speak of) or a
/// zero mean.
pub fn coefficient_of_variation(values: &[f64]) -> Option<f64> {
    let d = Distribution::from_values(values)?;
    if d.count < 2 {
        return None;
    }
    d.cv()
}

/// Two-sided Mann–Whitney U test p-value (are the two samples drawn from the same
/// distribution?), by the normal approximation with tie correction and continuity correction
/// (scipy's `mannwhitneyu(method="asymptotic")`). It needs no assumption of normal latencies,
/// which they never are. `None` when either sample is empty; 1.0 when every value is tied.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> Option<f64> {
    let a = sorted_finite(a);
    let b = sorted_finite(b);
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    // Average ranks over runs of ties; collect Σ(t³ − t) for the variance correction.
    let mut rank_sum_a = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        rank_sum_a += all[i..=j].iter().filter(|(_, in_a)| *in_a).count() as f64 * avg_rank;
        i = j + 1;
    }
    let (n1f, n2f, nf) = (n1 as f64, n2 as f64, n as f64);
    let u1 = rank_sum_a - n1f * (n1f + 1.0) / 2.0;
    let mu = n1f * n2f / 2.0;
    let var = n1f * n2f / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)));
    if var <= 0.0 || !var.is_finite() {
        return Some(1.0);
    }
    let z = ((u1 - mu).abs() - 0.5).max(0.0) / var.sqrt();
    Some((2.0 * normal_sf(z)).min(1.0))
}

/// Upper tail of the standard normal distribution, P(Z > z).
fn normal_sf(z: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(z / std::f64::consts::SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn distribution_of_one_to_ten_matches_numpy() {
        let v: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let d = Distribution::from_values(&v).unwrap();
        assert_eq!(d.count, 10);
        assert_eq!(d.mean, 5.5);
        assert_eq!(d.median, 5.5);
        // np.std(range(1, 11)) = sqrt(8.25)
        assert!(close(d.std, 8.25f64.sqrt(), 1e-12));
        // np.percentile(range(1, 11), [90, 95, 99]) = 9.1, 9.55, 9.91
        assert!(close(d.p90, 9.1, 1e-12));
        assert!(close(d.p95, 9.55, 1e-12));
        assert!(close(d.p99, 9.91, 1e-12));
        assert_eq!((d.min, d.max), (1.0, 10.0));
    }

    #[test]
    fn small_and_degenerate_samples() {
        assert_eq!(Distribution::from_values(&[]), None);
        assert_eq!(Distribution::from_values(&[f64::NAN, f64::INFINITY]), None);
        let one = Distribution::from_values(&[7.0, f64::NAN]).unwrap();
        assert_eq!(one.count, 1);
        assert_eq!(
            (one.mean, one.median, one.std, one.p99),
            (7.0, 7.0, 0.0, 7.0)
        );
        // Even count: the median is the midpoint; np.percentile([1, 2, 4, 8], 25) = 1.75.
        assert_eq!(median(&[8.0, 1.0, 4.0, 2.0]), Some(3.0));
        assert_eq!(percentile(&[8.0, 1.0, 4.0, 2.0], 25.0), Some(1.75));
        assert_eq!(percentile(&[1.0], 101.0), None);
        assert_eq!(mean(&[]), None);
    }

    #[test]
    fn coefficient_of_variation_known_answer() {
        // mean 5, population std 2 (the classic 2,4,4,4,5,5,7,9 example).
        let v = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert!(close(coefficient_of_variation(&v).unwrap(), 0.4, 1e-12));
        assert_eq!(coefficient_of_variation(&[3.0]), None);
        assert_eq!(coefficient_of_variation(&[0.0, 0.0]), None);
    }

    #[test]
    fn mann_whitney_known_answers() {
        // scipy.stats.mannwhitneyu([1..5], [6..10], method="asymptotic"): U = 0, p = 0.012186
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [6.0, 7.0, 8.0, 9.0, 10.0];
        assert!(close(mann_whitney_p(&a, &b).unwrap(), 0.012186, 1e-5));
        assert!(close(mann_whitney_p(&b, &a).unwrap(), 0.012186, 1e-5));
        // Identical samples: U = n1·n2/2, the continuity correction makes p = 1.
        assert!(close(mann_whitney_p(&a, &a).unwrap(), 1.0, 1e-9));
        // With ties: [1,2,2,3] vs [2,3,3,4]: R1 = 1+3+3+6 = 13, U1 = 3, Σ(t³−t) = 24+24 = 48,
        // σ² = 16/12·(9 − 48/56) = 10.857…, z = (5 − 0.5)/σ = 1.36570, p = 0.17203.
        let p = mann_whitney_p(&[1.0, 2.0, 2.0, 3.0], &[2.0, 3.0, 3.0, 4.0]).unwrap();
        assert!(close(p, 0.17203, 2e-5), "{p}");
        assert_eq!(mann_whitney_p(&[4.0, 4.0], &[4.0]), Some(1.0));
        assert_eq!(mann_whitney_p(&[], &[1.0]), None);
    }

    #[test]
    fn normal_tail_matches_known_values() {
        assert!(close(normal_sf(0.0), 0.5, 1e-9));
        assert!(close(normal_sf(1.959_964), 0.025, 1e-6));
        assert!(close(normal_sf(-1.0), 0.841_344_746, 1e-7));
    }
}
