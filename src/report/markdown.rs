//! `report.md`: the reference workflow's `benchmark_report.md`, richer: the comparison table,
//! latency detail, cache and noise, resources and energy, environment, options, failures with
//! their errors, and the definitions of every metric.

use std::fmt::Write;

use super::definitions::DEFINITIONS;
use super::quality;
use super::summary::{status_str, RunSummary};
use super::{fmt_bytes, fmt_num, fmt_pct};
use crate::stats::Distribution;

/// Makes text safe inside a Markdown table cell (and inert as HTML, which Markdown renders).
pub(crate) fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '\\' => out.push_str("\\\\"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '`' => out.push_str("\\`"),
            // `_` is left alone: GitHub does not emphasise inside words (Q4_1, model_v2).
            '*' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for r in rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    out.push('\n');
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

/// The Markdown report.
pub(super) fn render(s: &RunSummary) -> String {
    let mut out = String::new();
    let run = &s.run;
    let _ = writeln!(out, "# hearth benchmark report — run `{}`\n", cell(&run.id));
    let _ = writeln!(
        out,
        "Status: **{:?}** · started {} · {} models · {} levels\n",
        run.status,
        super::html::utc(run.started_unix_ms),
        s.models.len(),
        s.levels.len()
    );
    let warnings = s.warnings();
    if !warnings.is_empty() {
        out.push_str("> [!WARNING]\n");
        for w in &warnings {
            let _ = writeln!(out, "> - **{}**", cell(w));
        }
        out.push('\n');
    }

    out.push_str("## Summary\n\n");
    let mut rows = Vec::new();
    for (m, l) in s.rows() {
        let mut r = vec![cell(&m.model)];
        match l {
            Some(l) => r.extend([
                cell(&l.level),
                status_str(m.status).to_string(),
                format!("{}/{}", l.completed, l.failed),
                fmt_num(l.latency.e2el.map(|d| d.mean), 1),
                fmt_num(l.latency.e2el.map(|d| d.p95), 1),
                p50_p95(l.latency.ttft, 1),
                fmt_num(l.output_throughput, 1),
                fmt_num(l.per_request_output_throughput.map(|d| d.median), 1),
                fmt_bytes(l.resources.peak_rss_bytes)
                    + if l.resources.client_bottleneck {
                        " ⚠ client-bound"
                    } else {
                        ""
                    },
            ]),
            None => r.extend(
                [
                    "—".into(),
                    format!("**{}**", status_str(m.status)),
                    "0/0".into(),
                ]
                .into_iter()
                .chain((0..6).map(|_| "—".to_string())),
            ),
        }
        r.push(fmt_bytes(m.disk_bytes));
        r.push(cell(m.license.as_deref().unwrap_or("—")));
        rows.push(r);
    }
    table(
        &mut out,
        &[
            "model",
            "level",
            "status",
            "ok/failed",
            "mean e2e ms",
            "p95 e2e ms",
            "TTFT p50/p95 ms",
            "out tok/s (aggregate)",
            "tok/s per request (p50)",
            "peak RSS",
            "size",
            "licence",
        ],
        &rows,
    );

    out.push_str("## Latency detail (ms)\n\n");
    let rows: Vec<Vec<String>> = s
        .levels
        .iter()
        .map(|l| {
            let d = |x: Option<Distribution>| match x {
                Some(d) => format!(
                    "{:.1} / {:.1} / {:.1} / {:.1}",
                    d.mean, d.median, d.p95, d.p99
                ),
                None => "—".into(),
            };
            vec![
                cell(&l.model),
                cell(&l.level),
                d(l.latency.ttft),
                d(l.latency.tpot),
                d(l.latency.itl),
                d(l.latency.e2el),
                d(l.wait),
                d(l.ttfb),
            ]
        })
        .collect();
    out.push_str("Each cell: mean / p50 / p95 / p99.\n\n");
    table(
        &mut out,
        &[
            "model",
            "level",
            "TTFT",
            "TPOT",
            "ITL",
            "E2E",
            "client wait",
            "TTFB",
        ],
        &rows,
    );

    out.push_str("## Throughput, goodput, prompt cache and noise\n\n");
    let rows: Vec<Vec<String>> = s
        .levels
        .iter()
        .map(|l| {
            vec![
                cell(&l.model),
                cell(&l.level),
                fmt_num(l.duration, 2),
                fmt_num(l.request_throughput, 2),
                fmt_num(l.output_throughput, 1),
                fmt_num(l.total_token_throughput, 1),
                fmt_num(l.per_request_decode_throughput.map(|d| d.median), 1),
                l.drafts.label(),
                match l.slo {
                    Some(_) => format!(
                        "{} ({})",
                        fmt_num(l.request_goodput, 2),
                        fmt_pct(l.goodput_share)
                    ),
                    None => "no SLO".into(),
                },
                format!(
                    "{} cold / {} warm / {} unknown; TTFT p50 cold {} warm {}",
                    l.prompt_cache.cold,
                    l.prompt_cache.warm,
                    l.prompt_cache.unknown,
                    fmt_num(l.ttft_cold.map(|d| d.median), 1),
                    fmt_num(l.ttft_warm.map(|d| d.median), 1)
                ),
                format!(
                    "{} rounds: E2E {} · tok/s {}",
                    l.cv.rounds,
                    fmt_pct(l.cv.e2el_mean),
                    fmt_pct(l.cv.output_throughput)
                ),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "model",
            "level",
            "duration s",
            "req/s",
            "out tok/s",
            "total tok/s",
            "decode tok/s per request (p50)",
            "drafts accepted",
            "goodput req/s (share)",
            "prompt cache",
            "CV across rounds",
        ],
        &rows,
    );
    if let Some(slo) = s.levels.iter().find_map(|l| l.slo) {
        let _ = writeln!(
            out,
            "SLO: TTFT ≤ {} ms, E2E ≤ {} ms, TPOT ≤ {} ms, ITL ≤ {} ms (— = not set).\n",
            fmt_num(slo.ttft_ms, 0),
            fmt_num(slo.e2e_ms, 0),
            fmt_num(slo.tpot_ms, 1),
            fmt_num(slo.itl_ms, 1)
        );
    }

    out.push_str("## Resources and energy\n\n");
    let price = s
        .levels
        .first()
        .map_or(super::summary::DEFAULT_ENERGY_PRICE_PER_KWH, |l| {
            l.energy.price_per_kwh
        });
    let rows: Vec<Vec<String>> = s
        .levels
        .iter()
        .map(|l| {
            let r = &l.resources;
            let e = &l.energy;
            vec![
                cell(&l.model),
                cell(&l.level),
                fmt_bytes(r.peak_rss_bytes),
                fmt_num(r.server_cpu_ms, 0),
                fmt_num(Some(r.client_cpu_ms), 0),
                fmt_num(Some(r.client_lag_p99_ms), 2),
                if r.client_bottleneck {
                    "**YES**".into()
                } else {
                    "no".into()
                },
                fmt_num(e.energy_j, 1),
                cell(e.method.as_deref().unwrap_or("—")),
                format!(
                    "{} J / {} Wh",
                    fmt_num(e.j_per_1k_output_tokens, 1),
                    fmt_num(e.wh_per_1k_output_tokens, 4)
                ),
                fmt_num(e.cost_per_1k_output_tokens, 6),
                format!(
                    "{} usage / {} tokenizer / {} chunks; {} disagree",
                    l.token_counts.usage,
                    l.token_counts.tokenizer,
                    l.token_counts.chunks,
                    l.token_counts.usage_disagreements
                ),
            ]
        })
        .collect();
    table(&mut out, &super::RESOURCE_COLUMNS, &rows);
    let _ = writeln!(
        out,
        "Cost is approximate: energy × {price:.2} per kWh (`options.energy_price_per_kwh`).\n"
    );

    out.push_str("## Quality\n\n");
    let scorers = quality::scorer_lines(s);
    if scorers.is_empty() {
        out.push_str("No answer has a score yet (`hearth bench --judge MODEL`, or `hearth annotate export` / `import`); automatic checks below.\n\n");
    } else {
        out.push_str("Scores 1–5; a person's score replaces the judge's for the same answer.\n\n");
        for line in scorers {
            let _ = writeln!(out, "- {}", cell(&line));
        }
        out.push('\n');
    }
    let rows: Vec<Vec<String>> = quality::level_rows(&s.levels)
        .into_iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    table(&mut out, &quality::LEVEL_HEADER, &rows);
    let failed: Vec<Vec<String>> = quality::failure_rows(&s.levels)
        .into_iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    if !failed.is_empty() {
        out.push_str("Failed checks:\n\n");
        table(&mut out, &quality::FAILURE_HEADER, &failed);
    }

    out.push_str("## Models\n\n");
    let rows: Vec<Vec<String>> = s
        .models
        .iter()
        .map(|m| {
            vec![
                cell(&m.model),
                status_str(m.status).into(),
                cell(&m.backend),
                cell(&m.endpoint),
                cell(m.quantization.as_deref().unwrap_or("—")),
                fmt_bytes(m.disk_bytes),
                fmt_num(m.load_ms, 0),
                cell(m.license.as_deref().unwrap_or("—")),
                cell(&m.tags.join(", ")),
                cell(m.error.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    table(&mut out, &super::MODEL_COLUMNS, &rows);

    let failures: Vec<Vec<String>> = s
        .levels
        .iter()
        .flat_map(|l| {
            l.failure_reasons.iter().map(move |r| {
                vec![
                    cell(&l.model),
                    cell(&l.level),
                    r.count.to_string(),
                    cell(&r.error),
                ]
            })
        })
        .collect();
    if !failures.is_empty() {
        out.push_str("## Failed requests\n\n");
        table(&mut out, &["model", "level", "count", "error"], &failures);
    }

    out.push_str("## Environment\n\n");
    let e = &run.environment;
    let env_rows = vec![
        vec!["host".into(), cell(&e.hostname)],
        vec![
            "OS / kernel".into(),
            cell(&format!("{} / {}", e.os, e.kernel)),
        ],
        vec![
            "CPU".into(),
            cell(&format!(
                "{} ({} logical, {} physical; {})",
                e.cpu_model,
                e.logical_cpus,
                e.physical_cores,
                e.cpu_features.join(" ")
            )),
        ],
        vec!["memory".into(), fmt_bytes(Some(e.memory_bytes))],
        vec!["engine threads".into(), e.threads.to_string()],
        vec![
            "hearth / llama.cpp".into(),
            cell(&format!("{} / {}", e.hearth_version, e.llama_cpp_version)),
        ],
        vec!["git".into(), cell(e.git_commit.as_deref().unwrap_or("—"))],
        vec!["devices".into(), cell(&super::devices_text(e))],
    ];
    table(&mut out, &["", ""], &env_rows);

    out.push_str("## Options\n\n```json\n");
    out.push_str(&fenced(
        &serde_json::to_string_pretty(&run.options.to_json()).unwrap_or_default(),
    ));
    out.push_str("\n```\n\nClient health:\n\n```json\n");
    out.push_str(&fenced(
        &serde_json::to_string_pretty(&run.client).unwrap_or_default(),
    ));
    out.push_str("\n```\n\n## Definitions\n\n");
    for (k, v) in DEFINITIONS {
        let _ = writeln!(out, "- **{k}**: {v}");
    }
    recommendation(&mut out, s);
    out
}

/// The closing section: the pick and why the others were not picked.
fn recommendation(out: &mut String, s: &super::RunSummary) {
    let r = &s.recommendation;
    out.push_str("\n## Recommendation\n\n");
    let _ = writeln!(out, "{}\n", cell(&r.explanation));
    let rows: Vec<Vec<String>> = super::recommend::rows(r)
        .into_iter()
        .map(|row| row.iter().map(|c| cell(c)).collect())
        .collect();
    table(out, &super::recommend::HEADER, &rows);
}

/// Keeps JSON from closing its code fence early.
fn fenced(s: &str) -> String {
    s.replace("```", "`\u{200b}``")
}

#[cfg(test)]
mod tests {
    use crate::report::testdata::sample_run;
    use crate::report::{render, Format};

    #[test]
    fn markdown_has_every_section_and_escapes_text() {
        let md = render(&sample_run(), Format::Markdown).unwrap();
        for heading in [
            "## Summary",
            "## Latency detail",
            "## Resources and energy",
            "## Models",
            "## Failed requests",
            "## Environment",
            "## Options",
            "## Definitions",
        ] {
            assert!(md.contains(heading), "{heading}");
        }
        assert!(md.contains("broken-model"));
        assert!(!md.contains("<script>"), "model errors must be escaped");
        assert!(md.contains("&lt;script&gt;"));
        assert!(md.contains("bad \\| magic"), "pipes must not break tables");
        assert!(md.contains("CLIENT BOTTLENECK"));
        assert!(md.contains("0.25 per kWh"));
    }
}
