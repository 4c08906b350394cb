//! The HTML report's larger sections: which charts the page shows and from which records (the
//! drawing itself is in `charts`), and the detail tables.

use std::fmt::Write;

use super::charts::{
    bar_chart, cdf_chart, dual_axis_chart, line_chart, scatter_chart, Line, Point,
};
use super::html::{dist4, esc, figure, table, td_num};
use super::summary::{counted, e2el_ms, LevelSummary, RunSummary};
use super::{fmt_bytes, fmt_num, fmt_pct};
use crate::store::record::{LoadShape, RequestStatus, RunData};

/// x position of a level on the load axis, and that axis's name.
fn load_x(l: &LevelSummary) -> Option<(f64, &'static str)> {
    match l.shape? {
        LoadShape::Concurrency { concurrency } => {
            Some((concurrency as f64, "concurrency (requests in flight)"))
        }
        LoadShape::Rate { rate, .. } => Some((rate, "request rate (requests/s)")),
    }
}

/// The chart grid: E2E CDFs per level, TTFT and throughput against load, per-model bars.
pub(super) fn charts_section(
    out: &mut String,
    data: &RunData,
    s: &RunSummary,
    color_of: &dyn Fn(&str) -> usize,
) {
    out.push_str("<h2 id=\"charts\">Charts</h2><div class=\"grid\">");
    // E2E distribution: one CDF per level label, one line per model.
    let mut labels: Vec<&str> = Vec::new();
    for l in &s.levels {
        if !labels.contains(&l.level.as_str()) {
            labels.push(&l.level);
        }
    }
    for label in &labels {
        let samples: Vec<(String, usize, Vec<f64>)> = s
            .levels
            .iter()
            .filter(|l| l.level == *label)
            .map(|l| {
                let v = counted(data, &l.model, &l.level)
                    .filter(|r| r.status == RequestStatus::Ok)
                    .filter_map(e2el_ms)
                    .collect();
                (l.model.clone(), color_of(&l.model), v)
            })
            .collect();
        figure(out, cdf_chart(&format!("End-to-end latency distribution at {label}"), "E2E latency (ms)", &samples), "Empirical CDF: the share of successful requests that finished within x ms (the p50 is where a line crosses 50%).");
    }
    // Against load: TTFT p50/p95 and output throughput, one line per model, per load mode.
    for mode in ["concurrency", "rate"] {
        let of_mode: Vec<&LevelSummary> = s
            .levels
            .iter()
            .filter(|l| load_x(l).is_some_and(|(_, d)| d.starts_with(mode)))
            .collect();
        if of_mode.is_empty() {
            continue;
        }
        let x_desc = load_x(of_mode[0]).map_or("", |(_, d)| d);
        let mut ttft = Vec::new();
        let mut tput = Vec::new();
        for (mi, m) in s.models.iter().enumerate() {
            let mut pts: Vec<(f64, &LevelSummary)> = of_mode
                .iter()
                .filter(|l| l.model == m.model)
                .filter_map(|l| load_x(l).map(|(x, _)| (x, *l)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let series = |f: &dyn Fn(&LevelSummary) -> Option<f64>| {
                pts.iter()
                    .filter_map(|(x, l)| f(l).map(|y| (*x, y)))
                    .collect::<Vec<_>>()
            };
            ttft.push(Line {
                name: format!("{} p50", m.model),
                color: mi,
                points: series(&|l| l.latency.ttft.map(|d| d.median)),
                dashed: false,
                markers: true,
            });
            ttft.push(Line {
                name: format!("{} p95", m.model),
                color: mi,
                points: series(&|l| l.latency.ttft.map(|d| d.p95)),
                dashed: true,
                markers: true,
            });
            tput.push(Line {
                name: m.model.clone(),
                color: mi,
                points: series(&|l| l.output_throughput),
                dashed: false,
                markers: true,
            });
        }
        figure(
            out,
            line_chart(
                &format!("TTFT against {mode}"),
                x_desc,
                "TTFT (ms)",
                &ttft,
                true,
            ),
            "Solid: median TTFT; dashed: p95.",
        );
        figure(
            out,
            line_chart(
                &format!("Output throughput against {mode}"),
                x_desc,
                "output tokens/s (aggregate)",
                &tput,
                true,
            ),
            "Σ output tokens of successful requests / level duration.",
        );
    }
    // Per-model bars.
    let mut tps = Vec::new();
    let mut rss = Vec::new();
    for m in &s.models {
        let mine: Vec<&LevelSummary> = s.levels.iter().filter(|l| l.model == m.model).collect();
        let lowest = mine.iter().min_by(|a, b| {
            load_x(a)
                .map_or(f64::MAX, |x| x.0)
                .total_cmp(&load_x(b).map_or(f64::MAX, |x| x.0))
        });
        if let Some(v) = lowest.and_then(|l| {
            l.per_request_output_throughput
                .map(|d| (d.median, &l.level))
        }) {
            tps.push((format!("{} ({})", m.model, v.1), color_of(&m.model), v.0));
        }
        if let Some(b) = m.peak_rss_bytes {
            rss.push((
                m.model.clone(),
                color_of(&m.model),
                b as f64 / (1u64 << 20) as f64,
            ));
        }
    }
    figure(out, bar_chart("Tokens/s per request (median, lightest load)", "output tokens/s per request", &tps, &|v| format!("{v:.1}")), "Per-request output tokens/s at each model's lightest load level (the reference workflow's sequential tokens/s).");
    figure(
        out,
        bar_chart("Peak resident memory", "MiB", &rss, &|v| {
            format!("{v:.0} MiB")
        }),
        "Largest peak RSS of the serving process over the model's levels.",
    );
    quality_figure(out, s, color_of);
    out.push_str("</div>");
}

/// Quality against latency, one point per model sized by its peak memory: the trade-off the
/// recommendation decides. Mean score when any answer is scored, else the share of automatic
/// checks passed (said on the axis).
fn quality_figure(out: &mut String, s: &RunSummary, color_of: &dyn Fn(&str) -> usize) {
    let r = &s.recommendation;
    let scored = r.quality_applied;
    let points: Vec<Point> = r
        .candidates
        .iter()
        .filter_map(|c| {
            let y = if scored {
                c.score?
            } else {
                c.check_pass_rate? * 100.0
            };
            Some(Point {
                name: c.model.clone(),
                color: color_of(&c.model),
                x: c.p95_e2el_ms?,
                y,
                size: c.peak_rss_bytes.map(|b| b as f64),
            })
        })
        .collect();
    if points.is_empty() {
        // No scores and no checks: there is no quality axis to draw.
        return;
    }
    let level = r.level.as_deref().unwrap_or("the first level");
    let (y_desc, y_range) = if scored {
        ("mean score (1–5)", (0.5, 5.5))
    } else {
        ("automatic checks passed (%)", (0.0, 105.0))
    };
    figure(
        out,
        scatter_chart(
            "Quality against latency",
            &format!("p95 end-to-end latency at {level} (ms)"),
            y_desc,
            y_range,
            &points,
        ),
        "One point per model; the point's area grows with its peak memory. Up and to the left is better.",
    );
}

/// Requests in flight over time (sent → end) as a step line, for the counted requests of one
/// level: the span the server's samples cover and the reports speak about.
fn in_flight(data: &RunData, model: &str, level: &str) -> Vec<(f64, f64)> {
    let mut events: Vec<(f64, f64)> = Vec::new();
    for r in counted(data, model, level) {
        let start = r.sent_ms.unwrap_or(r.scheduled_ms);
        events.push((start / 1000.0, 1.0));
        if let Some(end) = r.end_ms {
            events.push((end / 1000.0, -1.0));
        }
    }
    // Ends before starts at the same instant, so a closed loop does not show a false 2.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut points = Vec::with_capacity(events.len() * 2);
    let mut n = 0.0;
    for (t, d) in events {
        points.push((t, n));
        n += d;
        points.push((t, n));
    }
    points
}

/// Per level: requests in flight beside the server's queue and active requests, and memory
/// beside KV-cache use.
pub(super) fn timeseries_section(out: &mut String, data: &RunData, s: &RunSummary) {
    out.push_str("<h2 id=\"timeseries\">Server time series</h2><p class=\"note\">Per level, on the requests' clock: requests in flight (from the stored request records) beside the server's own queue and active requests, and memory beside KV-cache use.</p>");
    for (i, l) in s.levels.iter().enumerate() {
        let Some(rec) = data
            .levels
            .iter()
            .find(|r| r.model == l.model && r.level == l.level)
        else {
            continue;
        };
        let series = |f: &dyn Fn(&crate::store::record::Sample) -> Option<f64>| {
            rec.samples
                .iter()
                .filter_map(|p| f(p).map(|v| (p.t_ms / 1000.0, v)))
                .collect::<Vec<_>>()
        };
        let mut load = vec![Line {
            name: "in flight (client)".into(),
            color: 0,
            points: in_flight(data, &l.model, &l.level),
            dashed: false,
            markers: false,
        }];
        for (name, c, pts) in [
            ("server queue", 2, series(&|p| p.server_queue)),
            ("server active", 4, series(&|p| p.server_active)),
        ] {
            if !pts.is_empty() {
                load.push(Line {
                    name: name.into(),
                    color: c,
                    points: pts,
                    dashed: false,
                    markers: false,
                });
            }
        }
        let mem = series(&|p| p.rss_bytes.map(|b| b as f64 / (1u64 << 20) as f64));
        let kv = series(&|p| p.server_kv_usage.map(|u| u * 100.0));
        let _ = write!(
            out,
            "<details{}><summary>{} at {}</summary><div class=\"grid\">",
            if i < 4 { " open" } else { "" },
            esc(&l.model),
            esc(&l.level)
        );
        figure(out, dual_axis_chart(&format!("Load — {} at {}", l.model, l.level), "requests", &load, "", &[], None), "Requests in flight as the client saw them, and the server's queue and active requests from its /metrics.");
        let mem_lines: Vec<Line> = if mem.is_empty() {
            vec![]
        } else {
            vec![Line {
                name: "RSS (MiB)".into(),
                color: 0,
                points: mem,
                dashed: false,
                markers: false,
            }]
        };
        let kv_lines: Vec<Line> = if kv.is_empty() {
            vec![]
        } else {
            vec![Line {
                name: "KV cache used (%)".into(),
                color: 1,
                points: kv,
                dashed: true,
                markers: false,
            }]
        };
        let chart = if mem_lines.is_empty() && !kv_lines.is_empty() {
            dual_axis_chart(
                &format!("Memory — {} at {}", l.model, l.level),
                "KV cache used (%)",
                &kv_lines,
                "",
                &[],
                None,
            )
        } else {
            dual_axis_chart(
                &format!("Memory — {} at {}", l.model, l.level),
                "resident memory (MiB)",
                &mem_lines,
                "KV cache used (%)",
                &kv_lines,
                Some((0.0, 100.0)),
            )
        };
        figure(out, chart, "Resident memory of the serving process (left) and the share of its KV cache in use (right, dashed).");
        out.push_str("</div></details>");
    }
}

/// Latency detail, throughput/goodput/cache/noise, and resources/energy tables.
pub(super) fn detail_sections(out: &mut String, s: &RunSummary) {
    out.push_str("<h2 id=\"latency\">Latency detail</h2><p class=\"note\">Each cell: mean / p50 / p95 / p99, milliseconds.</p>");
    let rows: Vec<String> = s
        .levels
        .iter()
        .map(|l| {
            format!(
                "<tr><td>{}</td><td>{}</td>{}{}{}{}{}{}</tr>",
                esc(&l.model),
                esc(&l.level),
                dist4(l.latency.ttft),
                dist4(l.latency.tpot),
                dist4(l.latency.itl),
                dist4(l.latency.e2el),
                dist4(l.wait),
                dist4(l.ttfb)
            )
        })
        .collect();
    table(
        out,
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

    out.push_str("<h2 id=\"throughput\">Throughput, goodput, prompt cache and noise</h2>");
    let rows: Vec<String> = s
        .levels
        .iter()
        .map(|l| {
            format!(
                "<tr><td>{}</td><td>{}</td>{}{}{}{}{}{}{}{}{}{}{}</tr>",
                esc(&l.model),
                esc(&l.level),
                td_num(fmt_num(l.duration, 2)),
                td_num(fmt_num(l.request_throughput, 2)),
                td_num(fmt_num(l.output_throughput, 1)),
                td_num(fmt_num(l.total_token_throughput, 1)),
                td_num(fmt_num(
                    l.per_request_decode_throughput.map(|d| d.median),
                    1
                )),
                td_num(l.drafts.label()),
                td_num(if l.slo.is_some() {
                    format!(
                        "{} ({})",
                        fmt_num(l.request_goodput, 2),
                        fmt_pct(l.goodput_share)
                    )
                } else {
                    "no SLO".into()
                }),
                td_num(format!(
                    "{} / {} / {}",
                    l.prompt_cache.cold, l.prompt_cache.warm, l.prompt_cache.unknown
                )),
                td_num(format!(
                    "{} / {}",
                    fmt_num(l.ttft_cold.map(|d| d.median), 1),
                    fmt_num(l.ttft_warm.map(|d| d.median), 1)
                )),
                td_num(format!(
                    "{} / {}",
                    fmt_pct(l.cv.e2el_mean),
                    fmt_pct(l.cv.output_throughput)
                )),
                td_num(l.cv.rounds.to_string()),
            )
        })
        .collect();
    table(
        out,
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
            "cache cold / warm / unknown",
            "TTFT p50 cold / warm ms",
            "CV E2E / tok/s",
            "rounds",
        ],
        &rows,
    );
    if let Some(slo) = s.levels.iter().find_map(|l| l.slo) {
        let _ = write!(out, "<p class=\"note\">SLO: TTFT ≤ {} ms, E2E ≤ {} ms, TPOT ≤ {} ms, ITL ≤ {} ms (— = not set).</p>", fmt_num(slo.ttft_ms, 0), fmt_num(slo.e2e_ms, 0), fmt_num(slo.tpot_ms, 1), fmt_num(slo.itl_ms, 1));
    }

    out.push_str("<h2 id=\"resources\">Resources and energy</h2>");
    let rows: Vec<String> = s
        .levels
        .iter()
        .map(|l| {
            let (r, e, t) = (&l.resources, &l.energy, &l.token_counts);
            format!(
                "<tr{}><td>{}</td><td>{}</td>{}{}{}{}<td>{}</td>{}<td>{}</td>{}{}<td>{}</td></tr>",
                if r.client_bottleneck {
                    " class=\"failed\""
                } else {
                    ""
                },
                esc(&l.model),
                esc(&l.level),
                td_num(fmt_bytes(r.peak_rss_bytes)),
                td_num(fmt_num(r.server_cpu_ms, 0)),
                td_num(fmt_num(Some(r.client_cpu_ms), 0)),
                td_num(fmt_num(Some(r.client_lag_p99_ms), 2)),
                if r.client_bottleneck {
                    "<b>YES</b>"
                } else {
                    "no"
                },
                td_num(fmt_num(e.energy_j, 1)),
                esc(e.method.as_deref().unwrap_or("—")),
                td_num(format!(
                    "{} J / {} Wh",
                    fmt_num(e.j_per_1k_output_tokens, 1),
                    fmt_num(e.wh_per_1k_output_tokens, 4)
                )),
                td_num(fmt_num(e.cost_per_1k_output_tokens, 6)),
                esc(&format!(
                    "{} usage / {} tokenizer / {} chunks; {} disagree",
                    t.usage, t.tokenizer, t.chunks, t.usage_disagreements
                )),
            )
        })
        .collect();
    table(out, &super::RESOURCE_COLUMNS, &rows);
    let price = s
        .levels
        .first()
        .map_or(super::summary::DEFAULT_ENERGY_PRICE_PER_KWH, |l| {
            l.energy.price_per_kwh
        });
    let _ = write!(out, "<p class=\"note\">Cost is approximate: energy × {price:.2} per kWh (options.energy_price_per_kwh; default 0.30).</p>");
    let with_metrics: Vec<&LevelSummary> = s
        .levels
        .iter()
        .filter(|l| l.server_metrics.is_some())
        .collect();
    if !with_metrics.is_empty() {
        out.push_str("<details><summary>The servers' own metrics per level</summary>");
        for l in with_metrics {
            let _ = write!(
                out,
                "<h3>{} at {}</h3><pre>{}</pre>",
                esc(&l.model),
                esc(&l.level),
                esc(&serde_json::to_string_pretty(&l.server_metrics).unwrap_or_default())
            );
        }
        out.push_str("</details>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::sample_run;

    #[test]
    fn in_flight_steps_up_and_down() {
        let data = sample_run();
        let pts = in_flight(&data, "smollm2", "c=4");
        let max = pts.iter().map(|p| p.1).fold(0.0, f64::max);
        assert_eq!(max, 4.0);
        assert_eq!(pts.last().unwrap().1, 0.0);
    }
}
