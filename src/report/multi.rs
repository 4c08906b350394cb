//! Several stored runs in one report (`hearth report A B C`): the runs, every model and level
//! of each side by side, overlaid charts (one colour per run), and for each later run the
//! statistical verdicts `compare` gives against the first. Each run's own figures come from
//! the same summary its own report prints, so the two never disagree.

use std::fmt::Write;

use serde::Serialize;

use super::charts::{bar_chart, line_chart, Line};
use super::compare::{compare, CompareOptions, Comparison, Verdict};
use super::format::{fmt_num, utc};
use super::run_summary::{LevelSummary, RunSummary};
use super::table::{Align, Cell, Mark, Row, Table};
use super::{json::ReportDocument, summarize, Format, ReportError};
use crate::store::record::{LoadShape, RunData};

use Align::{Left as L, Right as R};

/// The schema id of a multi-run JSON report.
pub const MULTI_SCHEMA: &str = "hearth.bench.multi/1";

/// The JSON document: each run's own report document, then the comparisons against the first.
#[derive(Serialize)]
struct MultiDocument<'a> {
    schema: &'static str,
    /// Each run's report, exactly as `hearth report RUN --format json` writes it.
    runs: Vec<ReportDocument>,
    /// Run 2, 3, … each judged against run 1 (the baseline).
    comparisons: &'a [Comparison],
}

/// Renders `runs` (at least two, the first the baseline) in `format`: JSON, Markdown or HTML.
pub fn render_many(runs: &[RunData], format: Format) -> Result<String, ReportError> {
    let summaries: Vec<RunSummary> = runs.iter().map(summarize).collect();
    let comparisons: Vec<Comparison> = runs[1..]
        .iter()
        .map(|b| compare(&runs[0], b, &CompareOptions::default()))
        .collect();
    match format {
        Format::Json => {
            let doc = MultiDocument {
                schema: MULTI_SCHEMA,
                runs: summaries.iter().map(ReportDocument::new).collect(),
                comparisons: &comparisons,
            };
            let mut s = serde_json::to_string_pretty(&doc)?;
            s.push('\n');
            Ok(s)
        }
        Format::Markdown => Ok(markdown(&summaries, &comparisons)),
        Format::Html => Ok(html(&summaries, &comparisons)),
        Format::Csv => Err(ReportError::SeveralRunsAsCsv),
    }
}

/// One row per run: what it was and where it ran.
fn runs_table(s: &[RunSummary]) -> Table {
    let mut t = Table::new(&[
        ("", L),
        ("run", L),
        ("started", L),
        ("status", L),
        ("hearth", L),
        ("machine", L),
        ("models", L),
        ("levels", R),
    ]);
    for (i, r) in s.iter().enumerate() {
        let env = &r.run.environment;
        t.push(Row::new(vec![
            Cell::new(if i == 0 { "baseline" } else { "" }),
            Cell::marked(r.run.id.clone(), Mark::Swatch(i)),
            Cell::new(utc(r.run.started_unix_ms)),
            Cell::new(format!("{:?}", r.run.status).to_lowercase()),
            Cell::new(env.git_commit.clone().unwrap_or_else(|| "—".into())),
            Cell::new(format!(
                "{} · {} ({} threads)",
                env.hostname, env.cpu_model, env.threads
            )),
            Cell::new(
                r.models
                    .iter()
                    .map(|m| m.model.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Cell::new(r.levels.len().to_string()),
        ]));
    }
    t
}

/// Every (model, level) of any run, in first-seen order.
fn keys(s: &[RunSummary]) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in s {
        for l in &r.levels {
            let k = (l.model.clone(), l.level.clone());
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    keys
}

/// Model and level, then one row per run that measured it: the figures each run's own
/// summary table shows, one under the other.
fn side_by_side(s: &[RunSummary]) -> Table {
    let mut t = Table::new(&[
        ("model", L),
        ("level", L),
        ("run", L),
        ("ok/failed", R),
        ("e2e p50 ms", R),
        ("TTFT p50 / p95 ms", R),
        ("ITL p50 ms", R),
        ("out tok/s (aggregate)", R),
        ("tok/s per request (p50)", R),
        ("peak RSS MiB", R),
    ]);
    for (model, level) in keys(s) {
        for (i, r) in s.iter().enumerate() {
            let Some(l) = r
                .levels
                .iter()
                .find(|l| l.model == model && l.level == level)
            else {
                continue;
            };
            let lat = &l.latency;
            t.push(Row::new(vec![
                Cell::new(model.clone()),
                Cell::new(level.clone()),
                Cell::marked(r.run.id.clone(), Mark::Swatch(i)),
                Cell::new(format!("{}/{}", l.completed, l.failed)),
                Cell::new(fmt_num(lat.e2el.map(|d| d.median), 1)),
                Cell::new(format!(
                    "{} / {}",
                    fmt_num(lat.ttft.map(|d| d.median), 1),
                    fmt_num(lat.ttft.map(|d| d.p95), 1)
                )),
                Cell::new(fmt_num(lat.itl.map(|d| d.median), 2)),
                Cell::new(fmt_num(l.output_throughput, 1)),
                Cell::new(fmt_num(
                    l.per_request_output_throughput.map(|d| d.median),
                    1,
                )),
                Cell::new(fmt_num(
                    l.resources
                        .peak_rss_bytes
                        .map(|b| b as f64 / f64::from(1u32 << 20)),
                    0,
                )),
            ]));
        }
    }
    t
}

/// The rows of a comparison a reader acts on: regressions and improvements first, then
/// noise; unchanged and missing rows are counted in the heading instead.
fn verdict_rows(c: &Comparison) -> Table {
    let mut table = c.rows_table();
    let keep: Vec<bool> = c
        .rows
        .iter()
        .map(|r| {
            matches!(
                r.verdict,
                Verdict::Regression | Verdict::Improvement | Verdict::Noise
            )
        })
        .collect();
    let mut i = 0;
    table.rows.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    table
}

fn verdict_counts(c: &Comparison) -> String {
    let count = |v: Verdict| c.rows.iter().filter(|r| r.verdict == v).count();
    format!(
        "{} regression(s), {} improvement(s), {} beyond the threshold but within noise, {} unchanged, {} not in both",
        count(Verdict::Regression),
        count(Verdict::Improvement),
        count(Verdict::Noise),
        count(Verdict::Unchanged),
        count(Verdict::Missing)
    )
}

fn markdown(s: &[RunSummary], comparisons: &[Comparison]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# hearth benchmark report: {} runs\n\nThe first run is the baseline; each other run is judged against it with `hearth compare`'s statistics.\n",
        s.len()
    );
    out.push_str("## Runs\n\n");
    super::markdown::table(&mut out, &runs_table(s));
    out.push_str("## Side by side\n\n");
    super::markdown::table(&mut out, &side_by_side(s));
    for c in comparisons {
        let _ = writeln!(
            out,
            "## {} against {}\n\n{}.\n",
            c.b_run,
            c.a_run,
            verdict_counts(c)
        );
        let rows = verdict_rows(c);
        if !rows.rows.is_empty() {
            super::markdown::table(&mut out, &rows);
        }
    }
    out
}

fn html(s: &[RunSummary], comparisons: &[Comparison]) -> String {
    use super::html::{esc, page_start, table};
    let mut out = String::with_capacity(128 * 1024);
    page_start(&mut out, &format!("{} runs", s.len()));
    let _ = write!(
        out,
        "<header><h1>hearth benchmark report: {} runs</h1><div class=\"meta\">baseline {} · one colour per run in every table and chart</div></header><main>",
        s.len(),
        esc(&s[0].run.id)
    );
    out.push_str("<h2>Runs</h2>");
    table(&mut out, &runs_table(s));
    out.push_str("<h2>Side by side</h2>");
    table(&mut out, &side_by_side(s));
    out.push_str("<h2>Charts</h2><div class=\"grid\">");
    overlaid_charts(&mut out, s);
    out.push_str("</div>");
    for c in comparisons {
        let _ = write!(
            out,
            "<h2>{} against {}</h2><p class=\"note\">{}.</p>",
            esc(&c.b_run),
            esc(&c.a_run),
            esc(&verdict_counts(c))
        );
        let rows = verdict_rows(c);
        if !rows.rows.is_empty() {
            table(&mut out, &rows);
        }
    }
    out.push_str("</main></body></html>\n");
    out
}

/// x of a level on a load axis of its mode.
fn load(l: &LevelSummary) -> Option<(&'static str, f64)> {
    match l.shape? {
        LoadShape::Concurrency { concurrency } => Some(("concurrency", f64::from(concurrency))),
        LoadShape::Rate { rate, .. } => Some(("rate", rate)),
    }
}

/// Per load mode with two or more levels, TTFT p50 and output tokens/s against load, one line
/// per run and model; otherwise bars per run, model and level.
fn overlaid_charts(out: &mut String, s: &[RunSummary]) {
    use super::html::figure;
    let mut lined = false;
    for mode in ["concurrency", "rate"] {
        let mut ttft = Vec::new();
        let mut tput = Vec::new();
        for (i, r) in s.iter().enumerate() {
            let mut models: Vec<&str> = Vec::new();
            for l in &r.levels {
                if !models.contains(&l.model.as_str()) {
                    models.push(&l.model);
                }
            }
            for (mi, model) in models.iter().enumerate() {
                let mut pts: Vec<(f64, &LevelSummary)> = r
                    .levels
                    .iter()
                    .filter(|l| l.model == *model)
                    .filter_map(|l| load(l).filter(|(m, _)| *m == mode).map(|(_, x)| (x, l)))
                    .collect();
                if pts.len() < 2 {
                    continue;
                }
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                let name = format!("{} · {model}", short(&r.run.id));
                ttft.push(Line {
                    name: name.clone(),
                    color: i,
                    points: pts
                        .iter()
                        .filter_map(|(x, l)| Some((*x, l.latency.ttft?.median)))
                        .collect(),
                    dashed: mi > 0,
                    markers: true,
                });
                tput.push(Line {
                    name,
                    color: i,
                    points: pts
                        .iter()
                        .filter_map(|(x, l)| Some((*x, l.output_throughput?)))
                        .collect(),
                    dashed: mi > 0,
                    markers: true,
                });
            }
        }
        if ttft.is_empty() {
            continue;
        }
        lined = true;
        let x = if mode == "rate" {
            "request rate (requests/s)"
        } else {
            "concurrency (requests in flight)"
        };
        figure(
            out,
            line_chart(
                &format!("TTFT p50 against {mode}"),
                x,
                "TTFT (ms)",
                &ttft,
                true,
            ),
            "One colour per run; a second model of a run is dashed.",
        );
        figure(
            out,
            line_chart(
                &format!("Output throughput against {mode}"),
                x,
                "output tokens/s (aggregate)",
                &tput,
                true,
            ),
            "One colour per run; a second model of a run is dashed.",
        );
    }
    if !lined {
        let bars = |f: &dyn Fn(&LevelSummary) -> Option<f64>| -> Vec<(String, usize, f64)> {
            s.iter()
                .enumerate()
                .flat_map(|(i, r)| {
                    r.levels.iter().filter_map(move |l| {
                        Some((
                            format!("{} · {} {}", short(&r.run.id), l.model, l.level),
                            i,
                            f(l)?,
                        ))
                    })
                })
                .collect()
        };
        figure(
            out,
            bar_chart(
                "TTFT p50",
                "ms",
                &bars(&|l| l.latency.ttft.map(|d| d.median)),
                &|v| format!("{v:.0} ms"),
            ),
            "One colour per run.",
        );
        figure(
            out,
            bar_chart(
                "Output throughput",
                "output tokens/s (aggregate)",
                &bars(&|l| l.output_throughput),
                &|v| format!("{v:.1}"),
            ),
            "One colour per run.",
        );
    }
}

/// The part of a run id that tells runs of one day apart (`045946-b1af`).
fn short(id: &str) -> &str {
    id.split_once('-').map_or(id, |(_, rest)| rest)
}
