//! A stored `hearth tune` as a report: the decision, every configuration with its figures, the
//! Pareto front of goodput against latency (memory as the point's size), and the search trace.
//!
//! It reads the tune's document by its documented fields (docs/tune.md) rather than the
//! search's own types, as any other reader of `tune --json` would: the report never depends on
//! the search.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use super::charts::{scatter_chart, Point};
use super::format::utc;
use super::html::{esc, figure, page_start, table as html_table};
use super::table::{Align, Cell, Row, Table};
use super::{fmt_bytes, fmt_num, Format, ReportError};
use crate::store::record::TuneRecord;

#[derive(Debug, Deserialize)]
struct Document {
    winner: Option<Side>,
    baseline: Side,
    confirm: Option<Confirm>,
    load: String,
    slo: Option<String>,
    search: Search,
}

#[derive(Debug, Deserialize)]
struct Side {
    serve_command: String,
    goodput_rps: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Confirm {
    ratio: Option<f64>,
    interval: Option<[f64; 2]>,
    rounds: usize,
    detectable_pct: Option<f64>,
    #[serde(default)]
    default_goodput_rps: Option<f64>,
    #[serde(default)]
    winner_goodput_rps: Option<f64>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Search {
    entries: Vec<Entry>,
    baseline: usize,
    winner: Option<usize>,
    #[serde(default)]
    trace: Vec<String>,
    #[serde(default)]
    out_of_budget: bool,
}

#[derive(Debug, Deserialize)]
struct Entry {
    config: Config,
    status: String,
    #[serde(default)]
    reason: Option<serde_json::Value>,
    #[serde(default)]
    probes: Vec<Probe>,
}

#[derive(Debug, Deserialize)]
struct Config {
    model: String,
    parallel: u32,
    speculative: String,
    #[serde(default)]
    kv_type: Option<String>,
    #[serde(default)]
    flash_attn: Option<String>,
    #[serde(default)]
    batch: Option<u32>,
    #[serde(default)]
    ubatch: Option<u32>,
    #[serde(default)]
    ctx: Option<u32>,
    #[serde(default)]
    threads: Option<u32>,
    #[serde(default)]
    gpu_layers: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Probe {
    rounds: Vec<f64>,
    #[serde(default)]
    checks_passed: u64,
    #[serde(default)]
    checks_total: u64,
    #[serde(default)]
    judge_score: Option<f64>,
    #[serde(default)]
    judge_scored: u64,
    ttft_ms: Option<f64>,
    tpot_ms: Option<f64>,
    output_tok_s: Option<f64>,
    peak_rss_bytes: Option<u64>,
}

impl Config {
    fn label(&self) -> String {
        let mut l = format!(
            "{} · {} slot{} · drafts {}",
            self.model,
            self.parallel,
            if self.parallel == 1 { "" } else { "s" },
            self.speculative
        );
        for (name, value) in [
            ("ctx", self.ctx.map(|v| v.to_string())),
            ("threads", self.threads.map(|v| v.to_string())),
            ("GPU layers", self.gpu_layers.clone()),
            ("KV", self.kv_type.clone().filter(|v| v != "f16")),
            ("flash", self.flash_attn.clone().filter(|v| v != "auto")),
        ] {
            if let Some(v) = value {
                let _ = write!(l, " · {name} {v}");
            }
        }
        let default = crate::engine::compute::DEFAULT_BATCH;
        let (batch, ubatch) = (
            self.batch.unwrap_or(default),
            self.ubatch.unwrap_or(default),
        );
        let ubatch = ubatch.min(batch);
        if batch != default || ubatch != default {
            let _ = write!(l, " · batch {batch}/{ubatch}");
        }
        l
    }
}

/// A configuration of a tune's document (`config` of an entry) in one line: the model, its
/// slots and drafts, and what differs from the default compute settings. One wording for the
/// terminal and the reports.
pub fn label_of(config: &serde_json::Value) -> String {
    serde_json::from_value::<Config>(config.clone())
        .map(|c| c.label())
        .unwrap_or_else(|_| config.to_string())
}

impl Entry {
    /// The mean over its rounds, as the search ranks it (a round with no request within the
    /// SLO counts as zero); `None` when nothing met it.
    fn goodput(&self) -> Option<f64> {
        let rounds: Vec<f64> = self.probes.iter().flat_map(|p| p.rounds.clone()).collect();
        crate::stats::mean(&rounds).filter(|m| *m > 0.0)
    }

    fn rounds(&self) -> usize {
        self.probes.iter().map(|p| p.rounds.len()).sum()
    }

    fn status_text(&self) -> String {
        let reason = match &self.reason {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        match self.status.as_str() {
            "winner" => "WINNER".into(),
            "tied" => "tied (within noise)".into(),
            "eliminated" => format!("eliminated at stage {reason}"),
            "failed" => format!("failed: {reason}"),
            "pruned" => format!("pruned: {reason}"),
            "excluded" => format!("excluded: {reason}"),
            "not_reached" => "not reached".into(),
            other => other.to_string(),
        }
    }
}

/// Renders a stored tune in `format` (CSV has no shape for it: JSON, Markdown or HTML).
pub fn render(tune: &TuneRecord, format: Format) -> Result<String, ReportError> {
    if format == Format::Json {
        let mut s = serde_json::to_string_pretty(tune)?;
        s.push('\n');
        return Ok(s);
    }
    let doc: Document = serde_json::from_value(tune.document.clone())
        .map_err(|e| ReportError::Tune(format!("{}: {e}", tune.id)))?;
    match format {
        Format::Markdown => Ok(markdown(tune, &doc)),
        Format::Html => Ok(html(tune, &doc)),
        Format::Json | Format::Csv => Err(ReportError::Tune(
            "a tune has no CSV form: use json, markdown or html".into(),
        )),
    }
}

/// Each model's quality in the tune's probes, in words: the share of automatic checks its
/// answers passed over all its configurations' probes, and the judge's mean score where it
/// judged them (`83 % of 40 checks · judge 3.6`; `—` when nothing was checked or judged).
/// Quality belongs to the model, not to a serving configuration: answers at temperature 0
/// hardly change with the settings.
fn quality_by_model(doc: &Document) -> BTreeMap<String, String> {
    let mut totals: BTreeMap<&str, crate::tune::ModelQuality> = BTreeMap::new();
    for e in &doc.search.entries {
        let t = totals.entry(&e.config.model).or_default();
        for p in &e.probes {
            t.add(
                p.checks_passed,
                p.checks_total,
                p.judge_score,
                p.judge_scored,
            );
        }
    }
    totals
        .into_iter()
        .map(|(model, q)| (model.to_string(), q.label()))
        .collect()
}

/// [`quality_by_model`] of a tune's document (what `tune --json` prints), for the terminal's
/// table.
pub fn quality_of(document: &serde_json::Value) -> Result<BTreeMap<String, String>, ReportError> {
    let doc: Document = serde_json::from_value(document.clone())
        .map_err(|e| ReportError::Tune(format!("the tune document: {e}")))?;
    Ok(quality_by_model(&doc))
}

/// The configurations on the Pareto front of goodput (higher is better) against TTFT p95
/// (lower is better): none of the others is at least as good on both and better on one.
fn pareto(doc: &Document) -> Vec<usize> {
    let points: Vec<(usize, f64, f64)> = doc
        .search
        .entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| Some((i, e.goodput()?, e.probes.last()?.ttft_ms?)))
        .collect();
    points
        .iter()
        .filter(|(_, g, t)| {
            !points
                .iter()
                .any(|(_, g2, t2)| g2 >= g && t2 <= t && (g2 > g || t2 < t))
        })
        .map(|(i, _, _)| *i)
        .collect()
}

/// The decision of a tune's document (what `tune --json` prints) in words: the pick, its
/// confirmation, and the honest edges (nothing met the SLO, leaders within noise, a shape
/// model). One wording for the terminal and the reports.
pub fn decision_of(document: &serde_json::Value) -> Result<Vec<String>, ReportError> {
    let doc: Document = serde_json::from_value(document.clone())
        .map_err(|e| ReportError::Tune(format!("the tune document: {e}")))?;
    Ok(decision(&doc))
}

fn decision(doc: &Document) -> Vec<String> {
    let mut lines = Vec::new();
    let entries = &doc.search.entries;
    match (&doc.winner, doc.search.winner) {
        (None, _) | (_, None)
            if entries.iter().any(|e| e.status == "excluded")
                && entries
                    .iter()
                    .all(|e| e.probes.is_empty() || e.status == "excluded") =>
        {
            lines.push("Every configuration measured was ruled out on quality (see the table): a larger model, or a lower --min-score if the bar was set too high.".into());
        }
        (None, _) | (_, None) => {
            // Measured but never within the SLO: the closest has the lowest TTFT p95.
            let closest = entries
                .iter()
                .filter_map(|e| Some((e, e.probes.last()?.ttft_ms?)))
                .min_by(|a, b| a.1.total_cmp(&b.1));
            match closest {
                Some((e, ttft)) if doc.slo.is_some() => {
                    lines.push("No configuration met the SLO.".into());
                    lines.push(format!(
                        "The closest: {} (TTFT p95 {ttft:.0} ms, TPOT p95 {} ms).",
                        e.config.label(),
                        fmt_num(e.probes.last().and_then(|p| p.tpot_ms), 1)
                    ));
                    lines.push("What would help: a smaller model or variant (--variants q4_0), fewer requests in flight, a looser SLO, or a GPU build.".into());
                }
                _ => lines.push("No configuration could be measured: see the failures.".into()),
            }
        }
        (Some(w), Some(i)) if i == doc.search.baseline => {
            lines.push(format!(
                "The default is the pick: nothing beat it beyond noise. Serve with `{}`.",
                w.serve_command
            ));
            // A leader the test could not separate from the default: said, not a coin toss.
            let base = w.goodput_rps.unwrap_or(0.0);
            if let Some((e, g)) = entries
                .iter()
                .filter(|e| e.status == "tied")
                .filter_map(|e| Some((e, e.goodput()?)))
                .filter(|(_, g)| *g > base && base > 0.0)
                .max_by(|a, b| a.1.total_cmp(&b.1))
            {
                lines.push(format!(
                    "{} measured ×{:.2} the default's goodput, within this machine's noise: more rounds (--rounds) or a quieter machine could separate them.",
                    e.config.label(),
                    g / base
                ));
            }
        }
        (Some(w), Some(i)) => {
            lines.push(format!("The pick: `{}`.", w.serve_command));
            lines.push(match &doc.confirm {
                Some(c) => confirmation(c, &doc.baseline.serve_command),
                None => format!(
                    "No confirm run (budget or Ctrl-C): the default measured {} req/s in the search.",
                    fmt_num(doc.baseline.goodput_rps, 2)
                ),
            });
            let model = &entries[i].config.model;
            if let Some(real) = crate::catalog::real_alias_of(model) {
                lines.push(format!(
                    "{model} is a shape model (random weights): its speed is the real model's, its answers are noise. Download `{real}` and tune it to serve."
                ));
            }
        }
    }
    if doc.search.out_of_budget {
        lines.push(
            "The search stopped early (budget spent or Ctrl-C): this is the best so far.".into(),
        );
    }
    lines
}

fn confirmation(c: &Confirm, default_command: &str) -> String {
    let means = format!(
        "{} against {} req/s",
        fmt_num(c.winner_goodput_rps, 2),
        fmt_num(c.default_goodput_rps, 2)
    );
    match (c.ratio, c.interval, c.detectable_pct) {
        (Some(r), Some([lo, hi]), Some(d)) => format!(
            "Confirmed against the default (`{default_command}`), alternating: goodput ×{r:.2} [{lo:.2}, {hi:.2}] ({means}) over {} paired rounds; the smallest change these rounds could detect is ±{d:.0} %.",
            c.rounds
        ),
        (ratio, _, _) => format!(
            "Confirmed against the default (`{default_command}`), alternating, over {} paired rounds: {means}{}{}.",
            c.rounds,
            ratio.map(|r| format!(", ×{r:.2}")).unwrap_or_default(),
            c.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
        ),
    }
}

fn configurations(doc: &Document) -> Table {
    let front = pareto(doc);
    let mut t = Table::new(&[
        ("configuration", Align::Left),
        ("status", Align::Left),
        ("Pareto", Align::Left),
        ("goodput req/s", Align::Right),
        ("TTFT p95 ms", Align::Right),
        ("TPOT p95 ms", Align::Right),
        ("out tok/s", Align::Right),
        ("peak RSS", Align::Right),
        ("quality", Align::Left),
        ("rounds", Align::Right),
    ]);
    let quality = quality_by_model(doc);
    for (i, e) in doc.search.entries.iter().enumerate() {
        let last = e.probes.last();
        let mut label = e.config.label();
        if i == doc.search.baseline {
            label.push_str(" (default)");
        }
        t.push(Row::new(vec![
            Cell::new(label),
            Cell::new(e.status_text()),
            Cell::new(if front.contains(&i) {
                "on the front"
            } else {
                ""
            }),
            Cell::new(fmt_num(e.goodput(), 2)),
            Cell::new(fmt_num(last.and_then(|p| p.ttft_ms), 0)),
            Cell::new(fmt_num(last.and_then(|p| p.tpot_ms), 1)),
            Cell::new(fmt_num(last.and_then(|p| p.output_tok_s), 1)),
            Cell::new(fmt_bytes(last.and_then(|p| p.peak_rss_bytes))),
            Cell::new(quality[&e.config.model].clone()),
            Cell::new(e.rounds().to_string()),
        ]));
    }
    t
}

fn heading(tune: &TuneRecord, doc: &Document) -> String {
    format!(
        "tune {} · {} · load {} · SLO {} · {}",
        tune.id,
        utc(tune.started_unix_ms),
        doc.load,
        doc.slo.as_deref().unwrap_or("none"),
        tune.status
    )
}

fn markdown(tune: &TuneRecord, doc: &Document) -> String {
    let mut out = format!(
        "# hearth tune report\n\n{}\n\n## Decision\n\n",
        heading(tune, doc)
    );
    for line in decision(doc) {
        let _ = writeln!(out, "{line}\n");
    }
    out.push_str("## Configurations\n\n");
    super::markdown::table(&mut out, &configurations(doc));
    out.push_str("\n## Search trace\n\n");
    for line in &doc.search.trace {
        let _ = writeln!(out, "- {line}");
    }
    out
}

fn html(tune: &TuneRecord, doc: &Document) -> String {
    let mut out = String::with_capacity(64 * 1024);
    page_start(&mut out, &tune.id);
    let _ = write!(
        out,
        "<header><h1>hearth tune report</h1><div class=\"meta\">{}</div></header><main>",
        esc(&heading(tune, doc))
    );
    out.push_str("<section id=\"decision\"><h2>Decision</h2>");
    for line in decision(doc) {
        let _ = write!(out, "<p class=\"pick\">{}</p>", esc(&line));
    }
    out.push_str("</section><section id=\"pareto\"><h2>Goodput against latency</h2>");
    let front = pareto(doc);
    let quality = quality_by_model(doc);
    let points: Vec<Point> = doc
        .search
        .entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let last = e.probes.last()?;
            Some(Point {
                name: e.config.label(),
                note: Some(format!("quality {}", quality[&e.config.model])),
                // Default, winner, the rest of the front, the others.
                color: if Some(i) == doc.search.winner {
                    2
                } else if i == doc.search.baseline {
                    0
                } else if front.contains(&i) {
                    1
                } else {
                    3
                },
                x: last.ttft_ms?,
                y: e.goodput()?,
                size: last.peak_rss_bytes.map(|b| b as f64),
            })
        })
        .collect();
    let top = points.iter().map(|p| p.y).fold(0.0f64, f64::max) * 1.15;
    figure(
        &mut out,
        scatter_chart(
            "Goodput against TTFT p95 (point area: peak RSS; quality under each label)",
            "TTFT p95 (ms)",
            "goodput (req/s)",
            (0.0, top.max(0.01)),
            &points,
        ),
        "Each measured configuration at the tune's load: up and to the left is better. The Pareto front (no other configuration is at least as good on both) is marked in the table; the winner is the simplest configuration not beaten beyond noise.",
    );
    out.push_str("</section><section id=\"configurations\"><h2>Configurations</h2>");
    html_table(&mut out, &configurations(doc));
    out.push_str("</section><section id=\"trace\"><h2>Search trace</h2><ul>");
    for line in &doc.search.trace {
        let _ = write!(out, "<li>{}</li>", esc(line));
    }
    out.push_str("</ul></section></main></body></html>\n");
    out
}
