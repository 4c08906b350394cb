//! `compare`: configurations metric by metric, with a verdict that separates a real change from
//! the noise of a shared machine.
//!
//! Two ways in: two stored runs ([`compare`]), or the configurations of one run
//! ([`compare_within`]) — which, from an interleaved session (`hearth bench --interleave`), ran
//! round by round side by side, so the machine's drift cancels. Timing verdicts rest on
//! **rounds as replicates** (each round's median, or its throughput; see
//! [`crate::stats::ratio_test`]), never on pooled requests: requests of one round share the
//! machine's minute, and pooling them made identical runs differ "at p = 0.001". Every row
//! states the smallest change it could have detected.

mod calibration;
mod quality;
mod verdict;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::latency::{by_round, counted, e2el_ms, itl_gaps, output_tps, span_s, tpot_ms, ttft_ms};
use super::run_summary::{status_str, LevelSummary, ModelSummary, RunSummary};
use super::summary::summarize;
use super::table::{Align, Cell, Row, Table};
use super::terminal;
use super::{fmt_bytes, fmt_num};
use crate::stats::median;
use crate::store::record::{ModelStatus, RequestRecord, RequestStatus, RunData};
pub use calibration::{calibrate, Calibration};
use quality::compare_quality;
use verdict::{change_pct, replicate_row, threshold_verdict};
pub use verdict::{CompareOptions, Verdict};

/// One metric of one model and level on both sides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    /// The model (B's, when comparing configurations within one run).
    pub model: String,
    /// The level label; `all` for model-wide rows.
    pub level: String,
    /// The metric (see docs/report.md, "compare").
    pub metric: String,
    /// Value on side A: the geometric mean of the rounds' values for replicated metrics.
    pub a: Option<f64>,
    /// Value on side B.
    pub b: Option<f64>,
    /// B / A − 1, percent (percentage points for `failed_pct` and `check_pass_pct`).
    pub change_pct: Option<f64>,
    /// Lower bound of the confidence interval of the change.
    pub ci_low: Option<f64>,
    /// Upper bound of that interval.
    pub ci_high: Option<f64>,
    /// Two-sided p-value of "no change".
    pub p_value: Option<f64>,
    /// The smallest change (either way, same unit as `change_pct`) these replicates would
    /// detect four times in five: what a "no regression" could have missed.
    pub detectable: Option<f64>,
    /// Replicates behind the verdict on each side: rounds, or prompts for quality rows.
    pub replicates: Option<[u32; 2]>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, when the numbers alone do not say (threshold-only metrics, failures, few rounds).
    pub note: Option<String>,
}

/// How the two sides were measured: what the verdict can and cannot rule out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pairing {
    /// Two stored runs: each carries its minute's machine state; the verdict allows for the
    /// run-to-run drift.
    SeparateRuns,
    /// Configurations of one run, measured one after another (not interleaved): as separate.
    OneAfterAnother,
    /// Configurations of one interleaved session: round r of each ran back to back, so rounds
    /// pair up and the drift cancels.
    Interleaved,
}

/// The result of comparing side A (baseline) with side B.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Run A's id.
    pub a_run: String,
    /// Run B's id (A's again within one run).
    pub b_run: String,
    /// Within one run: the baseline configuration every other model is compared with.
    pub baseline_model: Option<String>,
    /// How the sides were measured.
    pub pairing: Pairing,
    /// The options used.
    pub options: CompareOptions,
    /// What the reader must know before trusting the verdicts (drift, too few rounds, a
    /// threshold below what could be detected).
    pub warnings: Vec<String>,
    /// One row per model, level and metric.
    pub rows: Vec<CompareRow>,
}

/// Why configurations of one run cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A run of one configuration has nothing to compare within it.
    #[error("run {0} measured one configuration: nothing to compare within it (give two runs, or bench several with --interleave)")]
    OneConfiguration(String),
}

/// Reduces one round's successful counted requests to the round's value of a metric.
type Reduce = fn(&[&RequestRecord]) -> Option<f64>;

/// Replicated metrics: name, the round's value, and whether a higher value is worse.
const REPLICATED: [(&str, Reduce, bool); 6] = [
    ("ttft_ms", |rs| median_of(rs, ttft_ms), true),
    ("tpot_ms", |rs| median_of(rs, tpot_ms), true),
    // Each request's median chunk gap: a long answer does not outweigh a short one.
    ("itl_ms", |rs| median_of(rs, |r| median(&itl_gaps(r))), true),
    ("e2el_ms", |rs| median_of(rs, e2el_ms), true),
    (
        "output_tok_s_per_request",
        |rs| median_of(rs, output_tps),
        false,
    ),
    ("output_throughput", round_throughput, false),
];

fn median_of(rs: &[&RequestRecord], f: fn(&RequestRecord) -> Option<f64>) -> Option<f64> {
    median(&rs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
}

/// Output tokens per second of the round's wall time (its first schedule to its last end).
fn round_throughput(rs: &[&RequestRecord]) -> Option<f64> {
    let tokens: u64 = rs.iter().filter_map(|r| r.completion_tokens).sum();
    let span = span_s(rs.iter().copied())?;
    (tokens > 0).then(|| tokens as f64 / span)
}

/// The successful counted requests of a model at a level, by timed round.
type Rounds<'a> = BTreeMap<u32, Vec<&'a RequestRecord>>;

fn rounds<'a>(data: &'a RunData, model: &'a str, level: &'a str) -> Rounds<'a> {
    by_round(counted(data, model, level).filter(|r| r.status == RequestStatus::Ok))
}

/// Each timed round's value of a metric, by round number.
fn per_round(rounds: &Rounds, reduce: Reduce) -> BTreeMap<u32, f64> {
    rounds
        .iter()
        .filter_map(|(round, rs)| Some((*round, reduce(rs)?)))
        .collect()
}

pub(super) fn row(model: &str, level: &str, metric: &str, verdict: Verdict) -> CompareRow {
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
        detectable: None,
        replicates: None,
        verdict,
        note: None,
    }
}

/// One configuration: a model in a run, with the run's summary.
struct Side<'a> {
    data: &'a RunData,
    summary: &'a RunSummary,
    model: &'a ModelSummary,
}

impl Side<'_> {
    fn levels(&self) -> Vec<&LevelSummary> {
        self.summary
            .levels
            .iter()
            .filter(|l| l.model == self.model.model)
            .collect()
    }
}

/// Compares run B against baseline A, for every model and level of either run. Separate runs
/// carry the machine's drift between them; the verdict allows `options.run_drift_pct` for it.
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
        let find = |s: &RunSummary| s.models.iter().position(|m| m.model == name);
        match (find(&sa), find(&sb)) {
            (Some(i), Some(j)) => compare_pair(
                &Side {
                    data: a,
                    summary: &sa,
                    model: &sa.models[i],
                },
                &Side {
                    data: b,
                    summary: &sb,
                    model: &sb.models[j],
                },
                Pairing::SeparateRuns,
                opts,
                &mut rows,
            ),
            (x, _) => {
                let mut r = row(name, "", "status", Verdict::Missing);
                r.note = Some(format!(
                    "only in run {}",
                    if x.is_some() { "A" } else { "B" }
                ));
                rows.push(r);
            }
        }
    }
    finish(
        &a.run.id,
        &b.run.id,
        None,
        Pairing::SeparateRuns,
        opts,
        rows,
    )
}

/// Compares the configurations of one run: its first model is the baseline, every other model
/// is judged against it. From an interleaved session the rounds pair up (round r of each ran
/// back to back) and the machine's drift cancels; otherwise they count as separate runs.
pub fn compare_within(run: &RunData, opts: &CompareOptions) -> Result<Comparison, CompareError> {
    let summary = summarize(run);
    if summary.models.len() < 2 {
        return Err(CompareError::OneConfiguration(run.run.id.clone()));
    }
    let pairing = if run.run.options.interleaved {
        Pairing::Interleaved
    } else {
        Pairing::OneAfterAnother
    };
    let side = |i: usize| Side {
        data: run,
        summary: &summary,
        model: &summary.models[i],
    };
    let mut rows = Vec::new();
    for i in 1..summary.models.len() {
        compare_pair(&side(0), &side(i), pairing, opts, &mut rows);
    }
    let baseline = Some(summary.models[0].model.clone());
    Ok(finish(
        &run.run.id,
        &run.run.id,
        baseline,
        pairing,
        opts,
        rows,
    ))
}

fn finish(
    a_run: &str,
    b_run: &str,
    baseline_model: Option<String>,
    pairing: Pairing,
    opts: &CompareOptions,
    rows: Vec<CompareRow>,
) -> Comparison {
    let mut c = Comparison {
        a_run: a_run.into(),
        b_run: b_run.into(),
        baseline_model,
        pairing,
        options: *opts,
        warnings: Vec::new(),
        rows,
    };
    c.warnings = c.collect_warnings();
    c
}

/// Every row of one configuration against another: status, each level's metrics, quality.
fn compare_pair(
    a: &Side,
    b: &Side,
    pairing: Pairing,
    opts: &CompareOptions,
    rows: &mut Vec<CompareRow>,
) {
    let name = b.model.model.as_str();
    let (ma, mb) = (a.model, b.model);
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
            return;
        }
    }
    compare_levels(a, b, pairing, opts, rows);
    compare_quality(a.data, b.data, ma, mb, opts, rows);
}

fn compare_levels(
    a: &Side,
    b: &Side,
    pairing: Pairing,
    opts: &CompareOptions,
    rows: &mut Vec<CompareRow>,
) {
    let model = b.model.model.as_str();
    let (la, lb) = (a.levels(), b.levels());
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
                "level only in {}",
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
        let (ra, rb) = (
            rounds(a.data, &a.model.model, level),
            rounds(b.data, &b.model.model, level),
        );
        for (metric, reduce, higher_is_worse) in REPLICATED {
            rows.push(replicate_row(
                model,
                level,
                metric,
                &per_round(&ra, reduce),
                &per_round(&rb, reduce),
                higher_is_worse,
                pairing,
                opts,
            ));
        }
        let mut rss = row(model, level, "peak_rss_bytes", Verdict::Missing);
        rss.a = x.resources.peak_rss_bytes.map(|v| v as f64);
        rss.b = y.resources.peak_rss_bytes.map(|v| v as f64);
        if let (Some(p), Some(q)) = (rss.a, rss.b) {
            rss.change_pct = change_pct(p, q).or((p == q).then_some(0.0));
            rss.verdict = threshold_verdict(rss.change_pct, true, opts.threshold_pct);
        }
        rss.note = Some(if pairing == Pairing::Interleaved {
            "threshold only; the process served every configuration of the session".into()
        } else {
            "threshold only".into()
        });
        rows.push(rss);
        let rate = |l: &LevelSummary| {
            let n = l.completed + l.failed;
            (n > 0).then(|| l.failed as f64 / n as f64 * 100.0)
        };
        let mut r = row(model, level, "failed_pct", Verdict::Missing);
        r.a = rate(x);
        r.b = rate(y);
        if let (Some(p), Some(q)) = (r.a, r.b) {
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

    /// What the verdicts cannot rule out, in words: drift between separate runs, rows with
    /// one round, and metrics whose smallest detectable change is above the threshold.
    fn collect_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let drift = self.options.run_drift_pct;
        match self.pairing {
            Pairing::SeparateRuns | Pairing::OneAfterAnother => out.push(format!(
                "{} carries the machine's state of its own minutes: the verdicts allow ±{drift}% of run-to-run drift (--run-drift; measure this machine's with `hearth compare --aa`). For smaller changes, measure both in one session: `hearth bench --interleave`.",
                if self.pairing == Pairing::SeparateRuns {
                    "Each run"
                } else {
                    "These configurations ran one after another, not interleaved: each"
                }
            )),
            Pairing::Interleaved => {}
        }
        let unjudged = self
            .rows
            .iter()
            .filter(|r| r.replicates.is_some_and(|[a, b]| a.min(b) < 2) && r.level != "all")
            .count();
        if unjudged > 0 {
            out.push(format!(
                "{unjudged} row(s) rest on a single round on a side: no noise estimate, so no verdict beyond the threshold (bench with --rounds 3 or more)."
            ));
        }
        let mut blind: BTreeMap<&str, f64> = BTreeMap::new();
        for r in &self.rows {
            if let (Some(d), true) = (r.detectable, r.level != "all") {
                if d > self.options.threshold_pct {
                    let e = blind.entry(r.metric.as_str()).or_insert(d);
                    *e = e.max(d);
                }
            }
        }
        if !blind.is_empty() {
            let list: Vec<String> = blind
                .iter()
                .map(|(m, d)| format!("{m} (±{d:.1}%)"))
                .collect();
            out.push(format!(
                "The threshold ({}%) is below the smallest change these replicates can detect for {}: a regression that small could pass unseen. More rounds, an interleaved session, or a larger --threshold.",
                self.options.threshold_pct,
                list.join(", ")
            ));
        }
        out
    }

    /// Every row as a table: the verdicts a reader scans for REGRESSION.
    pub(crate) fn rows_table(&self) -> Table {
        let ci_head = format!("{:.0}% CI", self.options.confidence * 100.0);
        let mut t = Table::new(&[
            ("model", Align::Left),
            ("level", Align::Left),
            ("metric", Align::Left),
            ("A", Align::Right),
            ("B", Align::Right),
            ("change", Align::Right),
            (ci_head.as_str(), Align::Right),
            ("p", Align::Right),
            ("detectable", Align::Right),
            ("n A/B", Align::Right),
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
            let unit = if matches!(r.metric.as_str(), "failed_pct" | "check_pass_pct") {
                " pt"
            } else {
                "%"
            };
            let ci = match (r.ci_low, r.ci_high) {
                (Some(l), Some(h)) => format!("[{l:+.1}, {h:+.1}]{unit}"),
                _ => "—".into(),
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
                    Cell::new(
                        r.change_pct
                            .map_or("—".into(), |c| format!("{c:+.1}{unit}")),
                    ),
                    Cell::new(ci),
                    Cell::new(r.p_value.map_or("—".into(), |p| format!("{p:.3}"))),
                    Cell::new(
                        r.detectable
                            .map_or("—".into(), |d| format!("±{d:.1}{unit}")),
                    ),
                    Cell::new(r.replicates.map_or("—".into(), |[a, b]| format!("{a}/{b}"))),
                    Cell::new(verdict),
                    Cell::new(r.note.clone().unwrap_or_default()),
                ],
                alert: r.verdict == Verdict::Regression,
            });
        }
        t
    }

    /// Who is A and who is B, in a line.
    pub fn sides(&self) -> String {
        match (&self.baseline_model, self.pairing) {
            (Some(m), Pairing::Interleaved) => format!(
                "run {}: A = {m} (baseline), B = each other configuration, in alternating rounds of one session",
                self.a_run
            ),
            (Some(m), _) => format!(
                "run {}: A = {m} (baseline), B = each other configuration, measured after it",
                self.a_run
            ),
            (None, _) => format!("A = run {} (baseline), B = run {}", self.a_run, self.b_run),
        }
    }

    /// A terminal table of every row, then how to read it and what it cannot rule out.
    pub fn table(&self) -> String {
        let design = match self.pairing {
            Pairing::Interleaved => "a paired t test on the rounds' log ratios (round r of A and B ran back to back)".to_string(),
            _ => format!(
                "Welch's t test on the logs of the rounds' values, with ±{}% run-to-run drift added to each side",
                self.options.run_drift_pct
            ),
        };
        let mut out = format!(
            "{}\n{}\nTiming metrics: each round is one replicate (its median per-request value; output_throughput: its tokens per second of wall time); A and B are the rounds' geometric means; n = rounds.\nREGRESSION needs |change| > {}% AND the {:.0}% confidence interval of the change excluding 0, by {design}. detectable = the smallest change found four times in five at this noise.\npeak_rss_bytes and failed_pct rest on the threshold alone; check_pass_pct on a Fisher exact test with each prompt one trial, score on Mann–Whitney over the prompts' mean scores (n = prompts). A model OK in A and failed in B is a regression.\n",
            self.sides(),
            terminal::render(&self.rows_table()),
            self.options.threshold_pct,
            self.options.confidence * 100.0,
        );
        for w in &self.warnings {
            out.push_str(&format!("! {w}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests;
