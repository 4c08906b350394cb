//! `hearth compare --aa`: is the gate quiet when nothing changed, on this machine? Identical
//! runs (same build, same configuration, back to back) are compared in pairs; every pair that
//! fails the gate is a false alarm, and the pairs' spread estimates how far a whole run's level
//! drifts from one run to the next — the allowance (`--run-drift`) separate runs need.

use serde::{Deserialize, Serialize};

use super::{compare, per_round, rounds, CompareOptions, Comparison, Verdict, REPLICATED};
use crate::stats::{ratio_test, Design};
use crate::store::record::RunData;

/// One A/A pair's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AaPair {
    /// The first run.
    pub a_run: String,
    /// The second run.
    pub b_run: String,
    /// `model/level/metric` of every row called a regression: each one a false alarm.
    pub regressions: Vec<String>,
    /// Rows called an improvement: false too, though they fail no gate.
    pub improvements: Vec<String>,
}

/// How far one metric moved between identical runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricDrift {
    /// The metric.
    pub metric: String,
    /// Pair comparisons behind the figures (pairs × models × levels).
    pub samples: u32,
    /// The largest change seen between two identical runs, percent.
    pub max_abs_change_pct: f64,
    /// The run-to-run drift this implies beyond the rounds' own noise (standard deviation of
    /// a run's level, percent).
    pub run_drift_pct: f64,
}

/// The calibration: false alarms and drift on this machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The options every pair was judged with.
    pub options: CompareOptions,
    /// Each pair, in the order given.
    pub pairs: Vec<AaPair>,
    /// Pairs with at least one regression: what `hearth compare` would have failed.
    pub false_alarms: u32,
    /// Per replicated metric, the spread identical runs showed.
    pub drift: Vec<MetricDrift>,
    /// The `--run-drift` these runs support: the largest metric's drift, rounded up to half a
    /// percent.
    pub suggested_run_drift_pct: f64,
    /// A run left over when an odd number was given.
    pub unpaired: Option<String>,
}

fn flagged(c: &Comparison, v: Verdict) -> Vec<String> {
    c.rows
        .iter()
        .filter(|r| r.verdict == v)
        .map(|r| format!("{}/{}/{}", r.model, r.level, r.metric))
        .collect()
}

/// Compares identical runs in disjoint pairs (1 with 2, 3 with 4, …) with `opts`, and
/// estimates the run-to-run drift from the same pairs.
pub fn calibrate(runs: &[RunData], opts: &CompareOptions) -> Calibration {
    let mut pairs = Vec::new();
    // Per metric: (d², se²) of each pair comparison without any drift allowance, and the
    // largest |change|.
    let mut spread: Vec<(Vec<f64>, Vec<f64>, f64)> = vec![(vec![], vec![], 0.0); REPLICATED.len()];
    let bare = Design::Independent { run_drift: 0.0 };
    for pair in runs.chunks_exact(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let c = compare(a, b, opts);
        pairs.push(AaPair {
            a_run: a.run.id.clone(),
            b_run: b.run.id.clone(),
            regressions: flagged(&c, Verdict::Regression),
            improvements: flagged(&c, Verdict::Improvement),
        });
        let mut cells: Vec<(&str, &str)> = c
            .rows
            .iter()
            .filter(|r| r.metric == "e2el_ms")
            .map(|r| (r.model.as_str(), r.level.as_str()))
            .collect();
        cells.dedup();
        for (model, level) in cells {
            let (ra, rb) = (rounds(a, model, level), rounds(b, model, level));
            for (i, (_, reduce, _)) in REPLICATED.iter().enumerate() {
                let va: Vec<f64> = per_round(&ra, *reduce).into_values().collect();
                let vb: Vec<f64> = per_round(&rb, *reduce).into_values().collect();
                if let Some(t) = ratio_test(&va, &vb, bare, opts.confidence) {
                    let d = (1.0 + t.change_pct / 100.0).ln();
                    spread[i].0.push(d * d);
                    spread[i].1.push(t.std_error * t.std_error);
                    spread[i].2 = spread[i].2.max(t.change_pct.abs());
                }
            }
        }
    }
    let drift: Vec<MetricDrift> = REPLICATED
        .iter()
        .zip(spread)
        .filter(|(_, (d2, _, _))| !d2.is_empty())
        .map(|((metric, _, _), (d2, se2, max))| {
            // E[d²] = se² + 2σ²: the pairs' squared log changes beyond what their rounds
            // explain, halved (each run carries its own drift).
            let n = d2.len() as f64;
            let excess = (d2.iter().sum::<f64>() - se2.iter().sum::<f64>()) / n;
            MetricDrift {
                metric: metric.to_string(),
                samples: d2.len() as u32,
                max_abs_change_pct: max,
                run_drift_pct: ((excess.max(0.0) / 2.0).sqrt().exp() - 1.0) * 100.0,
            }
        })
        .collect();
    let largest = drift.iter().map(|d| d.run_drift_pct).fold(0.0, f64::max);
    Calibration {
        options: *opts,
        false_alarms: pairs.iter().filter(|p| !p.regressions.is_empty()).count() as u32,
        pairs,
        drift,
        suggested_run_drift_pct: (largest * 2.0).ceil() / 2.0,
        unpaired: (runs.len() % 2 == 1).then(|| runs[runs.len() - 1].run.id.clone()),
    }
}

impl Calibration {
    /// Share of pairs that failed the gate.
    pub fn false_alarm_rate(&self) -> f64 {
        if self.pairs.is_empty() {
            0.0
        } else {
            f64::from(self.false_alarms) / self.pairs.len() as f64
        }
    }

    /// True when the gate cried wolf more often than its confidence allows (more than 5 % of
    /// the pairs at 95 %): `compare --aa` fails then.
    pub fn too_noisy(&self) -> bool {
        self.false_alarm_rate() > 1.0 - self.options.confidence + 1e-9
    }

    /// The pairs, the drift per metric and the verdict, as text.
    pub fn table(&self) -> String {
        use super::super::table::{Align, Cell, Row, Table};
        let mut pairs = Table::new(&[
            ("A", Align::Left),
            ("B", Align::Left),
            ("gate", Align::Left),
            ("regressions", Align::Left),
            ("improvements", Align::Left),
        ]);
        for p in &self.pairs {
            pairs.push(Row {
                cells: vec![
                    Cell::new(p.a_run.clone()),
                    Cell::new(p.b_run.clone()),
                    Cell::new(if p.regressions.is_empty() {
                        "quiet"
                    } else {
                        "FALSE ALARM"
                    }),
                    Cell::new(p.regressions.join(", ")),
                    Cell::new(p.improvements.join(", ")),
                ],
                alert: !p.regressions.is_empty(),
            });
        }
        let mut drift = Table::new(&[
            ("metric", Align::Left),
            ("pairs", Align::Right),
            ("largest |change|", Align::Right),
            ("run-to-run drift", Align::Right),
        ]);
        for d in &self.drift {
            drift.push(Row {
                cells: vec![
                    Cell::new(d.metric.clone()),
                    Cell::new(d.samples.to_string()),
                    Cell::new(format!("{:.1}%", d.max_abs_change_pct)),
                    Cell::new(format!("{:.1}%", d.run_drift_pct)),
                ],
                alert: d.run_drift_pct > self.options.run_drift_pct,
            });
        }
        let mut out = format!(
            "{}\n{}\nFalse alarms: {} of {} A/A pairs ({:.0}%; at {:.0}% confidence at most {:.0}% are expected), judged with --threshold {} --run-drift {}.\nThese runs' drift supports --run-drift {}{}.\n",
            super::super::terminal::render(&pairs),
            super::super::terminal::render(&drift),
            self.false_alarms,
            self.pairs.len(),
            self.false_alarm_rate() * 100.0,
            self.options.confidence * 100.0,
            (1.0 - self.options.confidence) * 100.0,
            self.options.threshold_pct,
            self.options.run_drift_pct,
            self.suggested_run_drift_pct,
            if self.suggested_run_drift_pct > self.options.run_drift_pct {
                " (more than the allowance used: separate runs on this machine drift further than the gate assumes)"
            } else {
                ""
            }
        );
        if let Some(u) = &self.unpaired {
            out.push_str(&format!(
                "! {u} had no partner (an odd number of runs) and was left out.\n"
            ));
        }
        if self.pairs.len() < 20 {
            out.push_str(&format!(
                "! {} pair(s) can show a false-alarm rate only in steps of {:.0}%: 20 or more tell a 5% gate from a 10% one.\n",
                self.pairs.len(),
                100.0 / self.pairs.len().max(1) as f64
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdata::run_with_e2e;

    fn run(id: &str, factor: f64) -> RunData {
        let e2e: Vec<f64> = (0..30)
            .map(|i| factor * 1000.0 * (1.0 + 0.05 * ((i * 7 % 11) as f64 / 5.0 - 1.0)))
            .collect();
        run_with_e2e(id, "m", &e2e)
    }

    #[test]
    fn identical_runs_raise_no_alarm_and_drift_shows() {
        // Ten pairs; the machine moves each run by up to ±6 %.
        let runs: Vec<RunData> = (0..20)
            .map(|i| {
                run(
                    &format!("r{i}"),
                    1.0 + 0.06 * ((i * 5 % 7) as f64 / 3.0 - 1.0),
                )
            })
            .collect();
        let cal = calibrate(&runs, &CompareOptions::default());
        assert_eq!(cal.pairs.len(), 10);
        assert_eq!(cal.false_alarms, 0, "{}", cal.table());
        assert!(!cal.too_noisy());
        let e2e = cal.drift.iter().find(|d| d.metric == "e2el_ms").unwrap();
        assert!(e2e.max_abs_change_pct > 5.0, "{}", cal.table());
        assert!(e2e.run_drift_pct > 1.0, "{}", cal.table());
        assert!(cal.table().contains("False alarms: 0 of 10"));
        // Allowing no drift at all, the same runs would have failed the gate.
        let strict = CompareOptions {
            run_drift_pct: 0.0,
            ..CompareOptions::default()
        };
        let cal = calibrate(&runs, &strict);
        assert!(cal.false_alarms > 0, "{}", cal.table());
        assert!(cal.too_noisy());
        assert!(cal.table().contains("FALSE ALARM"));
    }
}
