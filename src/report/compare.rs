//! `compare`: two stored runs, metric by metric, with a verdict that separates a real
//! regression from the noise every benchmark has. A change only counts as a regression when it
//! is both large (beyond `threshold_pct`) and significant (a seeded bootstrap interval of the
//! difference of medians excludes zero and a Mann–Whitney test agrees).

mod quality;
mod verdict;

use serde::{Deserialize, Serialize};

use super::latency::{counted, e2el_ms, itl_gaps, output_tps, tpot_ms, ttft_ms};
use super::run_summary::{status_str, LevelSummary, RunSummary};
use super::summary::summarize;
use super::table::{Align, Cell, Row, Table};
use super::terminal;
use super::{fmt_bytes, fmt_num};
use crate::stats::median;
use crate::store::record::{ModelStatus, RequestRecord, RequestStatus, RunData};
use quality::compare_quality;
use verdict::{change_pct, sampled_row, threshold_verdict};
pub use verdict::{CompareOptions, Verdict};

/// One metric of one model and level in both runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    /// The model.
    pub model: String,
    /// The level label, empty for model-wide rows.
    pub level: String,
    /// The metric (see docs/report.md, "compare").
    pub metric: String,
    /// Value in run A (median of per-request values for sampled metrics).
    pub a: Option<f64>,
    /// Value in run B.
    pub b: Option<f64>,
    /// (b − a) / a, percent.
    pub change_pct: Option<f64>,
    /// Lower bound of the bootstrap interval of median(B) − median(A).
    pub ci_low: Option<f64>,
    /// Upper bound of that interval.
    pub ci_high: Option<f64>,
    /// Two-sided Mann–Whitney p-value.
    pub p_value: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, when the numbers alone do not say (threshold-only metrics, failures).
    pub note: Option<String>,
}

/// The result of comparing run A (baseline) with run B (candidate).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Run A's id.
    pub a_run: String,
    /// Run B's id.
    pub b_run: String,
    /// The options used.
    pub options: CompareOptions,
    /// One row per model, level and metric.
    pub rows: Vec<CompareRow>,
}

/// Sampled metrics: name, per-request value, and whether a higher value is worse.
type Extract = fn(&RequestRecord) -> Option<f64>;
const SAMPLED: [(&str, Extract, bool); 5] = [
    ("ttft_ms", ttft_ms, true),
    ("tpot_ms", tpot_ms, true),
    ("itl_ms", request_median_itl, true),
    ("e2el_ms", e2el_ms, true),
    ("output_tok_s_per_request", output_tps, false),
];

/// ITL compared per request (each request's median chunk gap): samples stay independent and
/// a long answer does not outweigh a short one.
fn request_median_itl(r: &RequestRecord) -> Option<f64> {
    median(&itl_gaps(r))
}

fn row(model: &str, level: &str, metric: &str, verdict: Verdict) -> CompareRow {
    CompareRow {
        model: model.into(),
        level: level.into(),
        metric: metric.into(),
        a: None,
        b: None,
        change_pct: None,
        ci_low: None,
        ci_high: None,
        p_value: None,
        verdict,
        note: None,
    }
}

fn values(data: &RunData, model: &str, level: &str, f: Extract) -> Vec<f64> {
    counted(data, model, level)
        .filter(|r| r.status == RequestStatus::Ok)
        .filter_map(f)
        .collect()
}

/// Compares run B against baseline A, for every model and level of either run.
pub fn compare(a: &RunData, b: &RunData, opts: &CompareOptions) -> Comparison {
    let (sa, sb) = (summarize(a), summarize(b));
    let mut rows = Vec::new();
    let mut names: Vec<&str> = sa.models.iter().map(|m| m.model.as_str()).collect();
    for m in &sb.models {
        if !names.contains(&m.model.as_str()) {
            names.push(&m.model);
        }
    }
    for name in names {
        let (ma, mb) = (
            sa.models.iter().find(|m| m.model == name),
            sb.models.iter().find(|m| m.model == name),
        );
        let (ma, mb) = match (ma, mb) {
            (Some(x), Some(y)) => (x, y),
            (x, _) => {
                let mut r = row(name, "", "status", Verdict::Missing);
                r.note = Some(format!(
                    "only in run {}",
                    if x.is_some() { "A" } else { "B" }
                ));
                rows.push(r);
                continue;
            }
        };
        if ma.status != mb.status || ma.status != ModelStatus::Ok {
            use ModelStatus::{Failed, Ok as Good};
            // Failed in B after working in A is the one status change that is a regression;
            // a run stopped by the user (interrupted) is not evidence either way.
            let (verdict, skip_levels) = match (ma.status, mb.status) {
                (Good, Failed) => (Verdict::Regression, true),
                (Failed, Good) => (Verdict::Improvement, false),
                (Failed, Failed) => (Verdict::Missing, true),
                _ => (Verdict::Missing, false),
            };
            let error = if mb.status == Failed {
                &mb.error
            } else {
                &ma.error
            };
            let mut r = row(name, "", "status", verdict);
            r.note = Some(format!(
                "A {}, B {}{}",
                status_str(ma.status),
                status_str(mb.status),
                error.as_deref().map_or(String::new(), |e| format!(": {e}"))
            ));
            rows.push(r);
            if skip_levels {
                continue;
            }
        }
        compare_levels(a, b, &sa, &sb, name, opts, &mut rows);
        compare_quality(a, b, ma, mb, opts, &mut rows);
    }
    Comparison {
        a_run: a.run.id.clone(),
        b_run: b.run.id.clone(),
        options: *opts,
        rows,
    }
}

fn compare_levels(
    a: &RunData,
    b: &RunData,
    sa: &RunSummary,
    sb: &RunSummary,
    model: &str,
    opts: &CompareOptions,
    rows: &mut Vec<CompareRow>,
) {
    let mine = |s: &'_ RunSummary| {
        s.levels
            .iter()
            .filter(|l| l.model == model)
            .cloned()
            .collect::<Vec<LevelSummary>>()
    };
    let (la, lb) = (mine(sa), mine(sb));
    let mut labels: Vec<&str> = la.iter().map(|l| l.level.as_str()).collect();
    for l in &lb {
        if !labels.contains(&l.level.as_str()) {
            labels.push(&l.level);
        }
    }
    for level in labels {
        let (Some(x), Some(y)) = (
            la.iter().find(|l| l.level == level),
            lb.iter().find(|l| l.level == level),
        ) else {
            let mut r = row(model, level, "level", Verdict::Missing);
            r.note = Some(format!(
                "level only in run {}",
                if la.iter().any(|l| l.level == level) {
                    "A"
                } else {
                    "B"
                }
            ));
            rows.push(r);
            continue;
        };
        if x.completed > 0 && y.completed == 0 {
            let mut r = row(model, level, "status", Verdict::Regression);
            r.note = Some(format!(
                "every request failed in B{}",
                y.failure_reasons
                    .first()
                    .map_or(String::new(), |f| format!(": {}", f.error))
            ));
            rows.push(r);
            continue;
        }
        for (metric, f, higher_is_worse) in SAMPLED {
            rows.push(sampled_row(
                model,
                level,
                metric,
                &values(a, model, level, f),
                &values(b, model, level, f),
                higher_is_worse,
                opts,
            ));
        }
        let single =
            |metric: &str, va: Option<f64>, vb: Option<f64>, higher_is_worse: bool, note: &str| {
                let mut r = row(model, level, metric, Verdict::Missing);
                r.a = va;
                r.b = vb;
                if let (Some(p), Some(q)) = (va, vb) {
                    r.change_pct = change_pct(p, q).or((p == q).then_some(0.0));
                    r.verdict =
                        threshold_verdict(r.change_pct, higher_is_worse, opts.threshold_pct);
                }
                r.note = Some(note.to_string());
                r
            };
        // Aggregate throughput is one number per level, but its noise is known from the
        // rounds: a change must also exceed twice the two runs' round-to-round variation.
        let mut throughput = single(
            "output_throughput",
            x.output_throughput,
            y.output_throughput,
            false,
            "beyond threshold and 2× the rounds' CV",
        );
        if matches!(
            throughput.verdict,
            Verdict::Regression | Verdict::Improvement
        ) {
            let noise_pct = match (x.cv.output_throughput, y.cv.output_throughput) {
                (Some(ca), Some(cb)) => Some(2.0 * (ca + cb) * 100.0),
                _ => None,
            };
            let change = throughput.change_pct.unwrap_or(0.0).abs();
            match noise_pct {
                Some(noise) if change > noise => {}
                Some(noise) => {
                    throughput.verdict = Verdict::Noise;
                    throughput.note = Some(format!("within the rounds' noise (±{noise:.1}%)"));
                }
                None => {
                    throughput.verdict = Verdict::Noise;
                    throughput.note =
                        Some("noise unknown (fewer than 2 rounds in a run)".to_string());
                }
            }
        }
        rows.push(throughput);
        rows.push(single(
            "peak_rss_bytes",
            x.resources.peak_rss_bytes.map(|v| v as f64),
            y.resources.peak_rss_bytes.map(|v| v as f64),
            true,
            "threshold only",
        ));
        let rate = |l: &LevelSummary| {
            let n = l.completed + l.failed;
            (n > 0).then(|| l.failed as f64 / n as f64 * 100.0)
        };
        let (fa, fb) = (rate(x), rate(y));
        let mut r = row(model, level, "failed_pct", Verdict::Missing);
        r.a = fa;
        r.b = fb;
        if let (Some(p), Some(q)) = (fa, fb) {
            r.change_pct = Some(q - p);
            r.verdict = threshold_verdict(r.change_pct, true, opts.threshold_pct);
        }
        r.note = Some("change in points; threshold only".into());
        rows.push(r);
    }
}

impl Comparison {
    /// True when any row is a regression: what `hearth compare` turns into a failing exit
    /// status for CI.
    pub fn has_regression(&self) -> bool {
        self.rows.iter().any(|r| r.verdict == Verdict::Regression)
    }

    /// Every row as a table: the verdicts a reader scans for REGRESSION.
    pub(crate) fn rows_table(&self) -> Table {
        let ci_head = format!("{:.0}% CI of B−A", self.options.confidence * 100.0);
        let mut t = Table::new(&[
            ("model", Align::Left),
            ("level", Align::Left),
            ("metric", Align::Left),
            ("A", Align::Right),
            ("B", Align::Right),
            ("change", Align::Right),
            (ci_head.as_str(), Align::Right),
            ("p", Align::Right),
            ("verdict", Align::Left),
            ("note", Align::Left),
        ]);
        for r in &self.rows {
            let v = |x: Option<f64>| {
                if r.metric == "peak_rss_bytes" {
                    fmt_bytes(x.map(|b| b as u64))
                } else {
                    fmt_num(x, 2)
                }
            };
            let ci = match (r.ci_low, r.ci_high) {
                (Some(l), Some(h)) => format!("[{l:.2}, {h:.2}]"),
                _ => "—".into(),
            };
            let change = match (r.change_pct, r.metric.as_str()) {
                (Some(c), "failed_pct") => format!("{c:+.1} pt"),
                (Some(c), _) => format!("{c:+.1}%"),
                (None, _) => "—".into(),
            };
            let verdict = match r.verdict {
                Verdict::Regression => "REGRESSION",
                Verdict::Improvement => "improvement",
                Verdict::Unchanged => "unchanged",
                Verdict::Noise => "noise",
                Verdict::Missing => "missing",
            };
            t.push(Row {
                cells: vec![
                    Cell::new(r.model.clone()),
                    Cell::new(r.level.clone()),
                    Cell::new(r.metric.clone()),
                    Cell::new(v(r.a)),
                    Cell::new(v(r.b)),
                    Cell::new(change),
                    Cell::new(ci),
                    Cell::new(r.p_value.map_or("—".into(), |p| format!("{p:.3}"))),
                    Cell::new(verdict),
                    Cell::new(r.note.clone().unwrap_or_default()),
                ],
                alert: r.verdict == Verdict::Regression,
            });
        }
        t
    }

    /// A terminal table of every row, then how to read it.
    pub fn table(&self) -> String {
        format!(
            "A = {} (baseline), B = {}\n{}\nSampled metrics compare medians of per-request values (ms; tok/s for output_tok_s_per_request; itl_ms = each request's median chunk gap).\nREGRESSION needs |change| > {}% AND the bootstrap {:.0}% CI of median(B)−median(A) excluding 0 AND Mann–Whitney p < {:.3}; beyond the threshold without both it is noise.\noutput_throughput is one number per level: a regression also needs the change beyond 2× the two runs' CV across rounds. peak_rss_bytes and failed_pct rest on the threshold alone. A model OK in A and failed in B is a regression.\n",
            self.a_run,
            self.b_run,
            terminal::render(&self.rows_table()),
            self.options.threshold_pct,
            self.options.confidence * 100.0,
            1.0 - self.options.confidence
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdata::{run_with_e2e, sample_run};

    /// 60 E2E values around 1000 ms with ±15% deterministic spread.
    fn base() -> Vec<f64> {
        (0..60)
            .map(|i| 1000.0 * (1.0 + 0.15 * ((i * 37 % 60) as f64 / 30.0 - 1.0)))
            .collect()
    }

    fn verdict(c: &Comparison, metric: &str) -> Verdict {
        c.rows
            .iter()
            .find(|r| r.metric == metric)
            .unwrap_or_else(|| panic!("{metric}"))
            .verdict
    }

    /// The run with every counted answer scored `score(i)` by the judge.
    fn scored(mut data: RunData, score: impl Fn(usize) -> u8) -> RunData {
        use crate::store::record::{ScoreRecord, ScoreSource};
        data.scores = data
            .requests
            .iter()
            .filter(|r| r.round > 0)
            .enumerate()
            .map(|(i, r)| ScoreRecord {
                model: r.model.clone(),
                level: r.level.clone(),
                round: r.round,
                seq: r.seq,
                source: ScoreSource::Judge,
                scorer: "j".into(),
                rubric_version: Some("hearth-judge/1".into()),
                score: Some(score(i)),
                reason: None,
                raw: None,
                scored_unix_ms: 0,
            })
            .collect();
        data
    }

    #[test]
    fn a_quality_drop_is_a_regression_and_a_tiny_one_is_not() {
        let a = scored(run_with_e2e("a", "m", &base()), |i| 4 + (i % 2) as u8);
        let worse = scored(run_with_e2e("b", "m", &base()), |i| 2 + (i % 2) as u8);
        let c = compare(&a, &worse, &CompareOptions::default());
        assert_eq!(verdict(&c, "score"), Verdict::Regression, "{}", c.table());
        assert!(c.has_regression());
        // One answer in sixty a point lower: under a quarter point, unchanged.
        let same = scored(run_with_e2e("b", "m", &base()), |i| {
            4 + (i % 2) as u8 - u8::from(i == 1)
        });
        let c = compare(&a, &same, &CompareOptions::default());
        assert_eq!(verdict(&c, "score"), Verdict::Unchanged, "{}", c.table());
        assert!(!c.has_regression(), "{}", c.table());
    }

    #[test]
    fn identical_runs_have_no_regression() {
        let a = run_with_e2e("a", "m", &base());
        let c = compare(&a, &a, &CompareOptions::default());
        assert!(!c.has_regression(), "{}", c.table());
        assert!(
            c.rows.iter().all(|r| r.verdict == Verdict::Unchanged),
            "{}",
            c.table()
        );
        let s = sample_run();
        assert!(!compare(&s, &s, &CompareOptions::default()).has_regression());
    }

    #[test]
    fn half_again_slower_is_a_regression() {
        let a = run_with_e2e("a", "m", &base());
        let b = run_with_e2e(
            "b",
            "m",
            &base().iter().map(|v| v * 1.5).collect::<Vec<_>>(),
        );
        let c = compare(&a, &b, &CompareOptions::default());
        assert!(c.has_regression());
        for m in [
            "e2el_ms",
            "ttft_ms",
            "tpot_ms",
            "itl_ms",
            "output_tok_s_per_request",
        ] {
            assert_eq!(verdict(&c, m), Verdict::Regression, "{m}\n{}", c.table());
        }
        let e2e = c.rows.iter().find(|r| r.metric == "e2el_ms").unwrap();
        assert!((e2e.change_pct.unwrap() - 50.0).abs() < 1.0);
        assert!(e2e.ci_low.unwrap() > 0.0 && e2e.p_value.unwrap() < 0.05);
        // And the other way round it is an improvement.
        let back = compare(&b, &a, &CompareOptions::default());
        assert_eq!(verdict(&back, "e2el_ms"), Verdict::Improvement);
        assert!(!back.has_regression(), "{}", back.table());
    }

    #[test]
    fn tiny_noise_is_unchanged() {
        let noisy: Vec<f64> = base()
            .iter()
            .enumerate()
            .map(|(i, v)| v * (1.0 + 0.01 * (i as f64).sin()))
            .collect();
        let c = compare(
            &run_with_e2e("a", "m", &base()),
            &run_with_e2e("b", "m", &noisy),
            &CompareOptions::default(),
        );
        assert!(!c.has_regression(), "{}", c.table());
        assert_eq!(verdict(&c, "e2el_ms"), Verdict::Unchanged);
    }

    #[test]
    fn a_big_change_on_three_noisy_samples_is_noise() {
        let a = run_with_e2e("a", "m", &[100.0, 130.0, 90.0]);
        let b = run_with_e2e("b", "m", &[125.0, 150.0, 112.0]);
        let c = compare(&a, &b, &CompareOptions::default());
        let e2e = c.rows.iter().find(|r| r.metric == "e2el_ms").unwrap();
        assert!(e2e.change_pct.unwrap() > 15.0, "{}", c.table());
        assert_eq!(e2e.verdict, Verdict::Noise, "{}", c.table());
        assert!(!c.has_regression(), "{}", c.table());
    }

    #[test]
    fn a_model_failing_in_b_is_a_regression_and_missing_models_are_listed() {
        let a = run_with_e2e("a", "m", &base());
        let mut b = a.clone();
        b.models[0].status = ModelStatus::Failed;
        b.models[0].error = Some("out of memory".into());
        b.requests.clear();
        b.levels.clear();
        let c = compare(&a, &b, &CompareOptions::default());
        assert!(c.has_regression());
        assert!(c.rows[0].note.as_deref().unwrap().contains("out of memory"));

        let mut stopped = a.clone();
        stopped.models[0].status = ModelStatus::Interrupted;
        let c = compare(&a, &stopped, &CompareOptions::default());
        assert!(!c.has_regression(), "{}", c.table());
        assert_eq!(c.rows[0].verdict, Verdict::Missing);
        assert!(c.rows.len() > 1, "levels are still compared");

        let other = run_with_e2e("b", "other", &base());
        let c = compare(&a, &other, &CompareOptions::default());
        assert!(!c.has_regression());
        assert_eq!(
            c.rows
                .iter()
                .filter(|r| r.verdict == Verdict::Missing)
                .count(),
            2
        );
        assert!(c.table().contains("only in run B"));
    }

    #[test]
    fn comparison_is_reproducible_and_serializes() {
        let a = run_with_e2e("a", "m", &base());
        let b = run_with_e2e(
            "b",
            "m",
            &base().iter().map(|v| v * 1.1).collect::<Vec<_>>(),
        );
        let o = CompareOptions {
            seed: 42,
            ..CompareOptions::default()
        };
        let (c1, c2) = (compare(&a, &b, &o), compare(&a, &b, &o));
        assert_eq!(c1, c2);
        let back: Comparison = serde_json::from_str(&serde_json::to_string(&c1).unwrap()).unwrap();
        assert_eq!(back.rows.len(), c1.rows.len());
    }
}
