//! Every per-model and per-level table the reports print, each built once from a summary: the
//! Markdown page, the HTML page and the terminal lay these out and add nothing to them, so a
//! header or a figure reads the same wherever it appears. Columns are described once
//! (`ColumnSpec`: header, alignment, key figure, cell), never matched to cells by position.
//! `outline` puts them in page order.

mod about;
mod load;
mod quality;
mod resources;
#[cfg(test)]
mod tests;

pub use about::{environment, failed_requests, models, recommendation};
pub use load::{depth, sweep, DEPTH_NOTE, SWEEP_NOTE};
pub use quality::{check_failures, quality, scorer_lines};
pub use resources::resources;

use super::format::{fmt_bytes, fmt_num, fmt_pct};
use super::run_summary::{status_str, LevelSummary, ModelSummary, RunSummary};
use super::table::{Cell, ColumnSpec as Col, Mark, Table};
use crate::stats::Distribution;
use crate::store::record::ModelStatus;

/// Where a model's colour comes from: its place in the run, the same in every chart.
pub(crate) fn color_of(s: &RunSummary, model: &str) -> usize {
    s.models.iter().position(|m| m.model == model).unwrap_or(0)
}

/// A model name led by its chart colour.
fn swatch(s: &RunSummary, model: &str) -> Cell {
    Cell::marked(model, Mark::Swatch(color_of(s, model)))
}

/// A summary row: a model at one of its levels, or a model that has none (it failed first).
type ModelRow<'s> = (&'s ModelSummary, Option<&'s LevelSummary>);

/// A figure of the row's level; a dash for a model without levels.
fn of_level<'s>(f: impl Fn(&LevelSummary) -> String + 's) -> impl Fn(&ModelRow) -> String + 's {
    move |(_, l): &ModelRow| l.map_or_else(|| "—".into(), &f)
}

/// One row per model and level (a model without levels still gets a row): the comparison a
/// reader looks at first, printed by `hearth bench` and heading both pages. The key columns are
/// the terminal's 100-column table (status and ok/failed only when something failed); `--wide`
/// and the pages show them all.
pub fn summary(s: &RunSummary) -> Table {
    let columns: Vec<Col<ModelRow>> = vec![
        Col::text("model", |(m, _): &ModelRow| swatch(s, &m.model)).key(),
        Col::text("level", |(_, l): &ModelRow| match l {
            Some(l) if l.stopped.is_some() => {
                Cell::marked(format!("{} ⚠ over-saturated", l.level), Mark::Error)
            }
            Some(l) => Cell::new(l.level.clone()),
            None => Cell::new("—"),
        })
        .key(),
        Col::text("status", |(m, _): &ModelRow| {
            Cell::marked(status_str(m.status), Mark::Status(m.status))
        })
        .key_if(s.models.iter().any(|m| m.status != ModelStatus::Ok)),
        Col::figure("ok/failed", |(_, l): &ModelRow| {
            l.map_or("0/0".into(), |l| format!("{}/{}", l.completed, l.failed))
        })
        .key_if(s.levels.iter().any(|l| l.failed > 0)),
        Col::figure(
            "mean e2e ms",
            of_level(|l| fmt_num(l.latency.e2el.map(|d| d.mean), 1)),
        ),
        Col::figure(
            "p95 e2e ms",
            of_level(|l| fmt_num(l.latency.e2el.map(|d| d.p95), 1)),
        ),
        Col::figure(
            "TTFT p50 / p95 ms",
            of_level(|l| p50_p95(l.latency.ttft, 1)),
        )
        .key(),
        Col::figure("ITL p50 ms", of_level(itl_label)),
        Col::figure(
            "TPOT mean ms",
            of_level(|l| fmt_num(l.latency.tpot.map(|d| d.mean), 2)),
        )
        .key(),
        Col::figure(
            "out tok/s (aggregate)",
            of_level(|l| fmt_num(l.output_throughput, 1)),
        )
        .key(),
        Col::figure(
            "tok/s per request (p50)",
            of_level(|l| fmt_num(l.per_request_output_throughput.map(|d| d.median), 1)),
        ),
        Col::figure(
            "drafts accepted",
            of_level(|l| {
                l.drafts
                    .acceptance()
                    .map_or("—".into(), |a| format!("{:.0}%", a * 100.0))
            }),
        ),
        Col::figure("checks passed", of_level(checks_label)).key(),
        Col::text("score (1–5)", of_level(score_label)),
        Col::figure(
            "peak RSS",
            of_level(|l| {
                let bound = if l.resources.client_bottleneck {
                    " ⚠ client-bound"
                } else {
                    ""
                };
                fmt_bytes(l.resources.peak_rss_bytes) + bound
            }),
        )
        .key(),
        Col::figure("size", |(m, _): &ModelRow| fmt_bytes(m.disk_bytes)),
        Col::text("licence", |(m, _): &ModelRow| {
            m.license.clone().unwrap_or_else(|| "—".into())
        }),
    ];
    let mut t = Table::build(&columns, s.rows(), |(m, _)| m.status == ModelStatus::Failed);
    if s.levels.iter().any(|l| l.drafts.bursty()) {
        t.notes.push(
            "ITL is the gap between streamed chunks. Where tokens arrive in bursts (accepted \
             speculative drafts sent back to back: N% of gaps under a fifth of the request's \
             time per token; or several tokens to a chunk: ×N tok/chunk), ITL p50 falls near \
             zero; TPOT, the time per output token, is the figure to compare."
                .into(),
        );
    }
    t
}

/// ITL p50, with how bursty the chunks were when drafts or multi-token chunks shape it.
fn itl_label(l: &LevelSummary) -> String {
    let itl = fmt_num(l.latency.itl.map(|d| d.median), 2);
    match (l.drafts.tokens_per_chunk(), l.drafts.burst_share()) {
        (Some(t), _) if t > 1.05 => format!("{itl} (×{t:.1} tok/chunk)"),
        (_, Some(b)) if l.drafts.bursty() => format!("{itl} ({:.0}% in bursts)", b * 100.0),
        _ => itl,
    }
}

/// What a shape model's quality cells say instead of a figure.
pub const RANDOM_WEIGHTS: &str = "n/a — random weights";

fn checks_label(l: &LevelSummary) -> String {
    if crate::catalog::is_shape_alias(&l.model) {
        RANDOM_WEIGHTS.into()
    } else {
        format!("{}/{}", l.quality.checks_passed, l.quality.checks_total)
    }
}

fn score_label(l: &LevelSummary) -> String {
    if crate::catalog::is_shape_alias(&l.model) {
        RANDOM_WEIGHTS.into()
    } else {
        l.quality.score_label()
    }
}

fn p50_p95(d: Option<Distribution>, decimals: usize) -> String {
    match d {
        Some(d) => format!(
            "{} / {}",
            fmt_num(Some(d.median), decimals),
            fmt_num(Some(d.p95), decimals)
        ),
        None => "—".to_string(),
    }
}

/// A level's model and level cells, the first two columns of every per-level table.
fn level_columns<'a>() -> [Col<'a, &'a LevelSummary>; 2] {
    [
        Col::text("model", |l: &&LevelSummary| l.model.clone()).key(),
        Col::text("level", |l: &&LevelSummary| l.level.clone()).key(),
    ]
}

/// Every latency distribution of each level, four statistics per cell.
pub fn latency(s: &RunSummary) -> Table {
    let dist4 = |d: Option<Distribution>| match d {
        Some(d) => format!(
            "{:.1} / {:.1} / {:.1} / {:.1}",
            d.mean, d.median, d.p95, d.p99
        ),
        None => "—".into(),
    };
    let mut columns = Vec::from(level_columns());
    columns.extend([
        Col::figure("TTFT", move |l: &&LevelSummary| dist4(l.latency.ttft)),
        Col::figure("TPOT", move |l: &&LevelSummary| dist4(l.latency.tpot)),
        Col::figure("ITL", move |l: &&LevelSummary| dist4(l.latency.itl)),
        Col::figure("E2E", move |l: &&LevelSummary| dist4(l.latency.e2el)),
        Col::figure("client wait", move |l: &&LevelSummary| dist4(l.wait)),
        Col::figure("TTFB", move |l: &&LevelSummary| dist4(l.ttfb)),
    ]);
    let mut t = Table::build(&columns, &s.levels, |_| false);
    t.intro = Some("Each cell: mean / p50 / p95 / p99, milliseconds.".into());
    t
}

/// Throughput, goodput under the run's SLO, the prompt cache and the run's own noise.
pub fn throughput(s: &RunSummary) -> Table {
    let mut columns = Vec::from(level_columns());
    columns.extend([
        Col::figure("duration s", |l: &&LevelSummary| fmt_num(l.duration, 2)),
        Col::figure("req/s", |l: &&LevelSummary| {
            fmt_num(l.request_throughput, 2)
        }),
        Col::figure("out tok/s", |l: &&LevelSummary| {
            fmt_num(l.output_throughput, 1)
        }),
        Col::figure("total tok/s", |l: &&LevelSummary| {
            fmt_num(l.total_token_throughput, 1)
        }),
        Col::figure("decode tok/s per request (p50)", |l: &&LevelSummary| {
            fmt_num(l.per_request_decode_throughput.map(|d| d.median), 1)
        }),
        Col::figure("drafts accepted", |l: &&LevelSummary| l.drafts.label()),
        Col::figure("goodput req/s (share)", |l: &&LevelSummary| match l.slo {
            Some(_) => format!(
                "{} ({})",
                fmt_num(l.request_goodput, 2),
                fmt_pct(l.goodput_share)
            ),
            None => "no SLO".into(),
        }),
        Col::figure("cache cold / warm / unknown", |l: &&LevelSummary| {
            let c = &l.prompt_cache;
            format!("{} / {} / {}", c.cold, c.warm, c.unknown)
        }),
        Col::figure("TTFT p50 cold / warm ms", |l: &&LevelSummary| {
            format!(
                "{} / {}",
                fmt_num(l.ttft_cold.map(|d| d.median), 1),
                fmt_num(l.ttft_warm.map(|d| d.median), 1)
            )
        }),
        Col::figure("CV E2E / tok/s", |l: &&LevelSummary| {
            format!(
                "{} / {}",
                fmt_pct(l.cv.e2el_mean),
                fmt_pct(l.cv.output_throughput)
            )
        }),
        Col::figure("rounds", |l: &&LevelSummary| l.cv.rounds.to_string()),
    ]);
    let mut t = Table::build(&columns, &s.levels, |_| false);
    if let Some(slo) = s.levels.iter().find_map(|l| l.slo) {
        t.notes.push(format!(
            "SLO: TTFT ≤ {} ms, E2E ≤ {} ms, TPOT ≤ {} ms, ITL ≤ {} ms (— = not set).",
            fmt_num(slo.ttft_ms, 0),
            fmt_num(slo.e2e_ms, 0),
            fmt_num(slo.tpot_ms, 1),
            fmt_num(slo.itl_ms, 1)
        ));
    }
    t
}
