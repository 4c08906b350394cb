//! Every per-model and per-level table the reports print, each built once from a summary: the
//! Markdown page, the HTML page and the terminal lay these out and add nothing to them, so a
//! header or a figure reads the same wherever it appears.

use super::format::{devices_text, fmt_bytes, fmt_num, fmt_pct, percent, utc};
use super::run_summary::{
    status_str, LevelSummary, Recommendation, RunSummary, DEFAULT_ENERGY_PRICE_PER_KWH,
};
use super::sweep::SweepPoint;
use super::table::{Align, Cell, Mark, Row, Table};
use crate::stats::Distribution;
use crate::store::record::{ModelStatus, ScoreSource};

use Align::{Left as L, Right as R};

/// Where a model's colour comes from: its place in the run, the same in every chart.
pub(crate) fn color_of(s: &RunSummary, model: &str) -> usize {
    s.models.iter().position(|m| m.model == model).unwrap_or(0)
}

/// One row per model and level (a model without levels still gets a row): the comparison a
/// reader looks at first, printed by `hearth bench` and heading both pages.
pub fn summary(s: &RunSummary) -> Table {
    let mut t = Table::new(&[
        ("model", L),
        ("level", L),
        ("status", L),
        ("ok/failed", R),
        ("mean e2e ms", R),
        ("p95 e2e ms", R),
        ("TTFT p50 / p95 ms", R),
        ("ITL p50 ms", R),
        ("TPOT mean ms", R),
        ("out tok/s (aggregate)", R),
        ("tok/s per request (p50)", R),
        ("drafts accepted", R),
        ("checks passed", R),
        ("score (1–5)", L),
        ("peak RSS", R),
        ("size", R),
        ("licence", L),
    ]);
    for (m, l) in s.rows() {
        let mut cells = vec![Cell::marked(
            m.model.clone(),
            Mark::Swatch(color_of(s, &m.model)),
        )];
        let status = Cell::marked(status_str(m.status), Mark::Status(m.status));
        match l {
            Some(l) => {
                let lat = &l.latency;
                cells.extend([
                    match &l.stopped {
                        Some(_) => {
                            Cell::marked(format!("{} ⚠ over-saturated", l.level), Mark::Error)
                        }
                        None => Cell::new(l.level.clone()),
                    },
                    status,
                    Cell::new(format!("{}/{}", l.completed, l.failed)),
                    Cell::new(fmt_num(lat.e2el.map(|d| d.mean), 1)),
                    Cell::new(fmt_num(lat.e2el.map(|d| d.p95), 1)),
                    Cell::new(p50_p95(lat.ttft, 1)),
                    Cell::new(
                        match (l.drafts.tokens_per_chunk(), l.drafts.burst_share()) {
                            (Some(t), _) if t > 1.05 => format!(
                                "{} (×{t:.1} tok/chunk)",
                                fmt_num(lat.itl.map(|d| d.median), 2)
                            ),
                            (_, Some(b)) if l.drafts.bursty() => format!(
                                "{} ({:.0}% in bursts)",
                                fmt_num(lat.itl.map(|d| d.median), 2),
                                b * 100.0
                            ),
                            _ => fmt_num(lat.itl.map(|d| d.median), 2),
                        },
                    ),
                    Cell::new(fmt_num(lat.tpot.map(|d| d.mean), 2)),
                    Cell::new(fmt_num(l.output_throughput, 1)),
                    Cell::new(fmt_num(
                        l.per_request_output_throughput.map(|d| d.median),
                        1,
                    )),
                    Cell::new(
                        l.drafts
                            .acceptance()
                            .map_or("—".into(), |a| format!("{:.0}%", a * 100.0)),
                    ),
                    Cell::new(checks_label(l)),
                    Cell::new(score_label(l)),
                    Cell::new(
                        fmt_bytes(l.resources.peak_rss_bytes)
                            + if l.resources.client_bottleneck {
                                " ⚠ client-bound"
                            } else {
                                ""
                            },
                    ),
                ]);
            }
            None => {
                cells.extend([Cell::new("—"), status, Cell::new("0/0")]);
                cells.extend((0..11).map(|_| Cell::new("—")));
            }
        }
        cells.push(Cell::new(fmt_bytes(m.disk_bytes)));
        cells.push(Cell::new(m.license.as_deref().unwrap_or("—")));
        t.push(Row {
            cells,
            alert: m.status == ModelStatus::Failed,
        });
    }
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

fn dist4(d: Option<Distribution>) -> Cell {
    Cell::new(match d {
        Some(d) => format!(
            "{:.1} / {:.1} / {:.1} / {:.1}",
            d.mean, d.median, d.p95, d.p99
        ),
        None => "—".into(),
    })
}

/// Every latency distribution of each level, four statistics per cell.
pub fn latency(s: &RunSummary) -> Table {
    let mut t = Table::new(&[
        ("model", L),
        ("level", L),
        ("TTFT", R),
        ("TPOT", R),
        ("ITL", R),
        ("E2E", R),
        ("client wait", R),
        ("TTFB", R),
    ]);
    t.intro = Some("Each cell: mean / p50 / p95 / p99, milliseconds.".into());
    for l in &s.levels {
        t.push(Row::new(vec![
            Cell::new(l.model.clone()),
            Cell::new(l.level.clone()),
            dist4(l.latency.ttft),
            dist4(l.latency.tpot),
            dist4(l.latency.itl),
            dist4(l.latency.e2el),
            dist4(l.wait),
            dist4(l.ttfb),
        ]));
    }
    t
}

/// Throughput, goodput under the run's SLO, the prompt cache and the run's own noise.
pub fn throughput(s: &RunSummary) -> Table {
    let mut t = Table::new(&[
        ("model", L),
        ("level", L),
        ("duration s", R),
        ("req/s", R),
        ("out tok/s", R),
        ("total tok/s", R),
        ("decode tok/s per request (p50)", R),
        ("drafts accepted", R),
        ("goodput req/s (share)", R),
        ("cache cold / warm / unknown", R),
        ("TTFT p50 cold / warm ms", R),
        ("CV E2E / tok/s", R),
        ("rounds", R),
    ]);
    for l in &s.levels {
        t.push(Row::new(vec![
            Cell::new(l.model.clone()),
            Cell::new(l.level.clone()),
            Cell::new(fmt_num(l.duration, 2)),
            Cell::new(fmt_num(l.request_throughput, 2)),
            Cell::new(fmt_num(l.output_throughput, 1)),
            Cell::new(fmt_num(l.total_token_throughput, 1)),
            Cell::new(fmt_num(
                l.per_request_decode_throughput.map(|d| d.median),
                1,
            )),
            Cell::new(l.drafts.label()),
            Cell::new(match l.slo {
                Some(_) => format!(
                    "{} ({})",
                    fmt_num(l.request_goodput, 2),
                    fmt_pct(l.goodput_share)
                ),
                None => "no SLO".into(),
            }),
            Cell::new(format!(
                "{} / {} / {}",
                l.prompt_cache.cold, l.prompt_cache.warm, l.prompt_cache.unknown
            )),
            Cell::new(format!(
                "{} / {}",
                fmt_num(l.ttft_cold.map(|d| d.median), 1),
                fmt_num(l.ttft_warm.map(|d| d.median), 1)
            )),
            Cell::new(format!(
                "{} / {}",
                fmt_pct(l.cv.e2el_mean),
                fmt_pct(l.cv.output_throughput)
            )),
            Cell::new(l.cv.rounds.to_string()),
        ]));
    }
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

/// Memory, CPU, the client's health, energy and its cost, and where token counts came from.
/// GPU columns (memory peak, utilisation, power) appear only when some level was measured on a
/// machine with a GPU.
pub fn resources(s: &RunSummary) -> Table {
    let with_gpu = s.levels.iter().any(|l| l.resources.gpu.is_some());
    let mut columns = vec![
        ("model", L),
        ("level", L),
        ("peak RSS", R),
        ("server CPU ms", R),
    ];
    if with_gpu {
        columns.extend([
            ("GPU mem peak", R),
            ("GPU util mean / peak", R),
            ("GPU power mean / peak", R),
        ]);
    }
    columns.extend([
        ("client CPU ms", R),
        ("client lag p99 ms", R),
        ("client bottleneck", L),
        ("energy J", R),
        ("method", L),
        ("per 1k output tokens", R),
        ("cost per 1k tokens", R),
        ("token counts", L),
    ]);
    let mut t = Table::new(&columns);
    for l in &s.levels {
        let (r, e, tc) = (&l.resources, &l.energy, &l.token_counts);
        let mut cells = vec![
            Cell::new(l.model.clone()),
            Cell::new(l.level.clone()),
            Cell::new(fmt_bytes(r.peak_rss_bytes)),
            Cell::new(fmt_num(r.server_cpu_ms, 0)),
        ];
        if with_gpu {
            let g = r.gpu.as_ref();
            cells.extend([
                Cell::new(fmt_bytes(g.map(|g| g.peak_memory_bytes))),
                Cell::new(g.map_or("—".into(), |g| {
                    format!(
                        "{:.0} % / {:.0} %",
                        g.mean_utilization_pct, g.peak_utilization_pct
                    )
                })),
                Cell::new(g.map_or("—".into(), |g| {
                    format!("{:.0} W / {:.0} W", g.mean_power_w, g.peak_power_w)
                })),
            ]);
        }
        cells.extend([
            Cell::new(fmt_num(Some(r.client_cpu_ms), 0)),
            Cell::new(fmt_num(Some(r.client_lag_p99_ms), 2)),
            if r.client_bottleneck {
                Cell::marked("YES", Mark::Strong)
            } else {
                Cell::new("no")
            },
            Cell::new(fmt_num(e.energy_j, 1)),
            Cell::new(e.method.as_deref().unwrap_or("—")),
            Cell::new(format!(
                "{} J / {} Wh",
                fmt_num(e.j_per_1k_output_tokens, 1),
                fmt_num(e.wh_per_1k_output_tokens, 4)
            )),
            Cell::new(fmt_num(e.cost_per_1k_output_tokens, 6)),
            Cell::new(format!(
                "{} usage / {} tokenizer / {} chunks; {} disagree",
                tc.usage, tc.tokenizer, tc.chunks, tc.usage_disagreements
            )),
        ]);
        t.push(Row {
            cells,
            alert: r.client_bottleneck,
        });
    }
    if with_gpu {
        let names: Vec<&str> = s
            .levels
            .iter()
            .filter_map(|l| l.resources.gpu.as_ref())
            .flat_map(|g| g.devices.iter().map(String::as_str))
            .take(4)
            .collect();
        t.notes.push(format!(
            "GPU figures are NVML's, whole-device ({}): memory in use by every process, utilisation = share of time a kernel ran. A level whose GPU ran kernels adds the GPU's measured energy to its energy (method column); an idle GPU's draw is left out.",
            if names.is_empty() { "no name".to_string() } else { names.join(", ") }
        ));
    }
    let price = s
        .levels
        .first()
        .map_or(DEFAULT_ENERGY_PRICE_PER_KWH, |l| l.energy.price_per_kwh);
    t.notes.push(format!(
        "Cost is approximate: energy × {price:.2} per kWh (options.energy_price_per_kwh; default {DEFAULT_ENERGY_PRICE_PER_KWH:.2})."
    ));
    t
}

/// One line per source of scores: who scored, with what rubric, how many answers; the reader
/// weighs the scores by it.
pub fn scorer_lines(s: &RunSummary) -> Vec<String> {
    s.scorers
        .iter()
        .map(|x| {
            let what = match x.source {
                ScoreSource::Judge => format!(
                    "judge {} (rubric {})",
                    x.scorer,
                    x.rubric_version.as_deref().unwrap_or("?")
                ),
                ScoreSource::Human => format!("people ({})", x.scorer),
            };
            let unscored = if x.unscored > 0 {
                format!(", {} left unscored (unreadable verdict)", x.unscored)
            } else {
                String::new()
            };
            format!("{what}: {} answers scored{unscored}", x.scored)
        })
        .collect()
}

/// Scores and automatic checks per model and level.
pub fn quality(levels: &[LevelSummary]) -> Table {
    let mut t = Table::new(&[
        ("model", L),
        ("level", L),
        ("score (1–5)", L),
        ("judge", L),
        ("human", L),
        ("checks passed", L),
        ("pass rate", L),
        ("facet coverage", L),
    ]);
    for l in levels {
        let q = &l.quality;
        let mean_of = |mean: Option<f64>, n: u64, unscored: u64| match mean {
            Some(m) if unscored > 0 => format!("{m:.2} ({n}; {unscored} unscored)"),
            Some(m) => format!("{m:.2} ({n})"),
            None if unscored > 0 => format!("— ({unscored} unscored)"),
            None => "—".into(),
        };
        if crate::catalog::is_shape_alias(&l.model) {
            let mut cells = vec![Cell::new(l.model.clone()), Cell::new(l.level.clone())];
            cells.extend((0..6).map(|_| Cell::new(RANDOM_WEIGHTS)));
            t.push(Row::new(cells));
            continue;
        }
        t.push(Row::new(vec![
            Cell::new(l.model.clone()),
            Cell::new(l.level.clone()),
            Cell::new(score_label(l)),
            Cell::new(mean_of(q.judge_score, q.judge_scored, q.judge_unscored)),
            Cell::new(mean_of(q.human_score, q.human_scored, 0)),
            Cell::new(checks_label(l)),
            Cell::new(percent(q.pass_rate)),
            Cell::new(percent(q.facet_coverage)),
        ]));
    }
    t
}

/// Every failed check, with the reason a person reads; `None` when every check passed.
pub fn check_failures(levels: &[LevelSummary]) -> Option<Table> {
    let mut t = Table::new(&[
        ("model", L),
        ("level", L),
        ("prompt", L),
        ("check", L),
        ("answers", L),
        ("reason", L),
    ]);
    t.intro = Some("Failed checks, with the reason for the first answer that failed each:".into());
    for l in levels {
        for f in &l.quality.failures {
            t.push(Row::new(vec![
                Cell::new(l.model.clone()),
                Cell::new(l.level.clone()),
                Cell::new(f.prompt_id.clone()),
                Cell::new(f.check.clone()),
                Cell::new(f.count.to_string()),
                Cell::new(f.reason.clone()),
            ]));
        }
    }
    (!t.rows.is_empty()).then_some(t)
}

/// What each model is and how it fared: failed models are listed with their error.
pub fn models(s: &RunSummary) -> Table {
    let mut t = Table::new(&[
        ("model", L),
        ("status", L),
        ("backend", L),
        ("endpoint", L),
        ("quantisation", L),
        ("size", R),
        ("cold load ms", R),
        ("licence", L),
        ("tags", L),
        ("error", L),
    ]);
    for m in &s.models {
        t.push(Row::new(vec![
            Cell::new(m.model.clone()),
            Cell::marked(status_str(m.status), Mark::Status(m.status)),
            Cell::new(m.backend.clone()),
            Cell::new(m.endpoint.clone()),
            Cell::new(m.quantization.as_deref().unwrap_or("—")),
            Cell::new(fmt_bytes(m.disk_bytes)),
            Cell::new(fmt_num(m.load_ms, 0)),
            Cell::new(m.license.as_deref().unwrap_or("—")),
            Cell::new(m.tags.join(", ")),
            Cell::marked(m.error.as_deref().unwrap_or(""), Mark::Error),
        ]));
    }
    t
}

/// Distinct failure messages per level; `None` when no counted request failed.
/// Where each model saturates (a sweep's answer), one row per model; `None` for runs that did
/// not judge open-loop levels for over-saturation.
pub fn sweep(s: &RunSummary) -> Option<Table> {
    if s.sweeps.is_empty() {
        return None;
    }
    let mut t = Table::new(&[
        ("model", L),
        ("one at a time req/s", R),
        ("most req/s (level)", R),
        ("knee (most req/s per latency)", R),
        ("e2e p50 at the knee ms", R),
        ("highest rate kept up with", R),
        ("over-saturated at", L),
        ("highest rate meeting the SLO", R),
    ]);
    let rate = |p: &SweepPoint| {
        format!(
            "{} ({} req/s done)",
            p.level,
            fmt_num(p.achieved, 2).trim_end_matches(".00")
        )
    };
    for w in &s.sweeps {
        let slo = if s.levels.iter().any(|l| l.slo.is_some()) {
            w.max_rate_under_slo.as_ref().map_or("none".into(), rate)
        } else {
            "— (no --slo)".into()
        };
        t.push(Row::new(vec![
            Cell::marked(w.model.clone(), Mark::Swatch(color_of(s, &w.model))),
            Cell::new(fmt_num(w.synchronous_rate, 2)),
            Cell::new(w.maximum_rate.as_ref().map_or("—".into(), |(r, at)| {
                if w.scales_with_concurrency == Some(false) {
                    format!("{r:.2} ({at}): does not scale, about one request at a time; rates placed around that capacity")
                } else {
                    format!("{r:.2} ({at})")
                }
            })),
            Cell::new(w.knee.as_ref().map_or("none".into(), rate)),
            Cell::new(fmt_num(w.knee.as_ref().and_then(|k| k.e2e_p50_ms), 0)),
            Cell::new(w.max_sustainable.as_ref().map_or("none".into(), rate)),
            if w.over_saturated.is_empty() {
                Cell::new("none")
            } else {
                Cell::marked(
                    w.over_saturated
                        .iter()
                        .map(|p| p.level.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                    Mark::Error,
                )
            },
            Cell::new(slo),
        ]));
    }
    Some(t)
}

/// Speed against context depth (`--depth`), one row per model and level measured at a depth;
/// `None` when no level was.
pub fn depth(s: &RunSummary) -> Option<Table> {
    let mut t = Table::new(&[
        ("model", L),
        ("level", L),
        ("depth tokens", R),
        ("prompt tokens (mean)", R),
        ("TTFT p50 ms", R),
        ("prefill tok/s (p50)", R),
        ("decode tok/s per request (p50)", R),
        ("cache-warm prompts", R),
    ]);
    for l in s.levels.iter().filter(|l| l.depth.is_some()) {
        t.push(Row::new(vec![
            Cell::marked(l.model.clone(), Mark::Swatch(color_of(s, &l.model))),
            Cell::new(l.level.clone()),
            Cell::new(l.depth.unwrap_or(0).to_string()),
            Cell::new(fmt_num(
                (l.completed > 0).then(|| l.total_input_tokens as f64 / l.completed as f64),
                0,
            )),
            Cell::new(fmt_num(l.latency.ttft.map(|d| d.median), 1)),
            Cell::new(fmt_num(
                l.per_request_prefill_throughput.map(|d| d.median),
                0,
            )),
            Cell::new(fmt_num(
                l.per_request_decode_throughput.map(|d| d.median),
                1,
            )),
            Cell::new(format!(
                "{} of {}",
                l.prompt_cache.warm,
                l.prompt_cache.warm + l.prompt_cache.cold
            )),
        ]));
    }
    (!t.rows.is_empty()).then_some(t)
}

/// How to read the depth table.
pub const DEPTH_NOTE: &str = "Each prompt was put behind the level's depth in tokens of filler \
context (counted with the server's tokenizer, distinct per request unless the prompt cache is \
warm). Prefill tok/s = prompt tokens / TTFT per request (queueing included); decode tok/s = \
tokens after the first / time after the first.";

/// One line saying how to read the sweep table.
pub const SWEEP_NOTE: &str =
    "A sweep measures one request at a time, then many at once (the most the server \
can do), then open-loop arrival rates between the two and one step past the top. A level is \
over-saturated when its queue of waiting requests and the age of the oldest grew for a whole \
window: it was stopped early, and the server cannot sustain that rate here. The knee is the \
level with the most requests/s per second of median latency: past it, latency grows faster \
than throughput.";

pub fn failed_requests(s: &RunSummary) -> Option<Table> {
    let mut t = Table::new(&[("model", L), ("level", L), ("count", R), ("error", L)]);
    for l in &s.levels {
        for f in &l.failure_reasons {
            t.push(Row::new(vec![
                Cell::new(l.model.clone()),
                Cell::new(l.level.clone()),
                Cell::new(f.count.to_string()),
                Cell::marked(f.error.clone(), Mark::Error),
            ]));
        }
    }
    (!t.rows.is_empty()).then_some(t)
}

/// The machine and software the run measured, one fact per row.
pub fn environment(s: &RunSummary) -> Table {
    let (run, e) = (&s.run, &s.run.environment);
    let mut t = Table::new(&[("", L), ("", L)]);
    for (k, v) in [
        ("host", e.hostname.clone()),
        ("OS / kernel", format!("{} / {}", e.os, e.kernel)),
        (
            "CPU",
            format!(
                "{} — {} logical, {} physical",
                e.cpu_model, e.logical_cpus, e.physical_cores
            ),
        ),
        ("CPU features", e.cpu_features.join(" ")),
        ("memory", fmt_bytes(Some(e.memory_bytes))),
        ("engine threads", e.threads.to_string()),
        ("hearth", e.hearth_version.clone()),
        ("llama.cpp", e.llama_cpp_version.clone()),
        ("git", e.git_commit.clone().unwrap_or_else(|| "—".into())),
        ("devices", devices_text(e)),
        ("run finished", run.finished_unix_ms.map_or("—".into(), utc)),
    ] {
        t.push(Row::new(vec![Cell::marked(k, Mark::Key), Cell::new(v)]));
    }
    t
}

/// Every model the recommendation considered, the pick first, with why each other was not
/// picked.
pub fn recommendation(r: &Recommendation) -> Table {
    let mut t = Table::new(&[
        ("model", L),
        ("p95 e2e ms", L),
        ("score", L),
        ("checks passed", L),
        ("peak RSS", L),
        ("verdict", L),
    ]);
    for c in &r.candidates {
        t.push(Row::new(vec![
            Cell::new(c.model.clone()),
            Cell::new(fmt_num(c.p95_e2el_ms, 0)),
            Cell::new(match (c.score, &c.scored_by) {
                (Some(s), Some(by)) => format!("{s:.2} ({by})"),
                _ => "—".into(),
            }),
            Cell::new(percent(c.check_pass_rate)),
            Cell::new(fmt_bytes(c.peak_rss_bytes)),
            Cell::new(c.not_picked.clone().unwrap_or_else(|| "picked".into())),
        ]));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::summarize;
    use crate::store::testdata::sample_run;

    #[test]
    fn every_row_has_a_cell_per_column() {
        let s = summarize(&sample_run());
        let tables = [
            summary(&s),
            latency(&s),
            throughput(&s),
            resources(&s),
            quality(&s.levels),
            models(&s),
            failed_requests(&s).unwrap(),
            environment(&s),
            recommendation(&s.recommendation),
        ];
        for t in &tables {
            assert!(!t.rows.is_empty(), "{:?}", t.header());
            for r in &t.rows {
                assert_eq!(r.cells.len(), t.columns.len(), "{:?}", t.header());
            }
        }
        // The failed model without levels still has its summary row, highlighted.
        let broken = tables[0]
            .rows
            .iter()
            .find(|r| r.cells[0].text == "broken-model")
            .unwrap();
        assert!(broken.alert);
        assert_eq!(broken.cells[2].mark, Mark::Status(ModelStatus::Failed));
    }

    #[test]
    fn gpu_columns_only_where_a_gpu_was_measured() {
        let mut data = sample_run();
        let cpu = resources(&summarize(&data));
        assert!(!cpu.header().iter().any(|h| h.contains("GPU")));
        assert!(cpu.notes.iter().all(|n| !n.contains("NVML")));

        data.levels[0].gpu = Some(crate::store::record::GpuLevel {
            devices: vec!["NVIDIA H200".into()],
            peak_memory_bytes: 3 << 30,
            mean_utilization_pct: 41.6,
            peak_utilization_pct: 97.0,
            mean_power_w: 250.4,
            peak_power_w: 480.0,
            energy_j: 99.0,
            energy_method: "nvml: GPU energy counter".into(),
        });
        let gpu = resources(&summarize(&data));
        let header = gpu.header();
        let mem = header.iter().position(|h| *h == "GPU mem peak").unwrap();
        let util = header
            .iter()
            .position(|h| *h == "GPU util mean / peak")
            .unwrap();
        let power = header
            .iter()
            .position(|h| *h == "GPU power mean / peak")
            .unwrap();
        let row = gpu
            .rows
            .iter()
            .find(|r| {
                r.cells[0].text == data.levels[0].model && r.cells[1].text == data.levels[0].level
            })
            .unwrap();
        assert_eq!(row.cells[mem].text, "3.00 GiB");
        assert_eq!(row.cells[util].text, "42 % / 97 %");
        assert_eq!(row.cells[power].text, "250 W / 480 W");
        // A level measured without a GPU shows dashes, not zeros.
        let other = gpu.rows.iter().find(|r| !std::ptr::eq(*r, row)).unwrap();
        assert_eq!(other.cells[util].text, "—");
        assert!(gpu.notes.iter().any(|n| n.contains("NVIDIA H200")));
        for r in &gpu.rows {
            assert_eq!(r.cells.len(), gpu.columns.len());
        }
    }
}
