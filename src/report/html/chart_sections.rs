//! The HTML page's chart sections: which charts the page shows and from which records (the
//! drawing itself is in `report/charts.rs`); the page's tables come from `sections`.

use std::fmt::Write;

use super::super::charts::{
    bar_chart, cdf_chart, dual_axis_chart, line_chart, scatter_chart, Line, Point,
};
use super::super::latency::{counted, e2el_ms};
use super::super::run_summary::{LevelSummary, RunSummary};
use super::markup::{esc, figure};
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
    out.push_str("<div class=\"grid\">");
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
        let mut xs: Vec<f64> = of_mode
            .iter()
            .filter_map(|l| load_x(l).map(|x| x.0))
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        if xs.len() < 2 {
            // One load level: a line "against load" would be a lone point on an axis around
            // it. Bars compare the models at that level instead.
            level_bars(out, &of_mode, color_of);
            continue;
        }
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
    sweep_chart(out, s, color_of);
    depth_chart(out, s, color_of);
    // Per-model bars.
    let mut tps = Vec::new();
    let mut rss = Vec::new();
    for m in &s.models {
        let mine: Vec<&LevelSummary> = s.levels.iter().filter(|l| l.model == m.model).collect();
        // The lightest load: one at a time when measured, else the fewest in flight, else
        // the lowest rate.
        let lightness = |l: &LevelSummary| match l.shape {
            Some(LoadShape::Concurrency { concurrency }) => (0, f64::from(concurrency)),
            Some(LoadShape::Rate { rate, .. }) => (1, rate),
            None => (2, 0.0),
        };
        let lowest = mine.iter().min_by(|a, b| {
            let (a, b) = (lightness(a), lightness(b));
            a.0.cmp(&b.0).then(a.1.total_cmp(&b.1))
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

/// A sweep's picture: median end-to-end latency against the request rate achieved, each model
/// a line through all its levels; the knee (most requests/s per latency) and the over-saturated
/// levels are marked, so where latency turns from the server's into the queue's is seen.
fn sweep_chart(out: &mut String, s: &RunSummary, color_of: &dyn Fn(&str) -> usize) {
    if s.sweeps.is_empty() {
        return;
    }
    let mut lines = Vec::new();
    for w in &s.sweeps {
        let color = color_of(&w.model);
        // The line follows the offered load: one at a time, then the rates upwards. The
        // many-at-once bound is a point of its own: its latency is its own queue's.
        let mut offered: Vec<(f64, &LevelSummary)> = s
            .levels
            .iter()
            .filter(|l| l.model == w.model)
            .filter_map(|l| match l.shape? {
                LoadShape::Concurrency { concurrency: 1 } => Some((0.0, l)),
                LoadShape::Rate { rate, .. } => Some((rate, l)),
                LoadShape::Concurrency { .. } => None,
            })
            .collect();
        offered.sort_by(|a, b| a.0.total_cmp(&b.0));
        let xy = |l: &LevelSummary| Some((l.request_throughput?, l.latency.e2el?.median));
        lines.push(Line {
            name: w.model.clone(),
            color,
            points: offered.iter().filter_map(|(_, l)| xy(l)).collect(),
            dashed: false,
            markers: true,
        });
        if let Some((_, at)) = &w.maximum_rate {
            let bound = s
                .levels
                .iter()
                .find(|l| l.model == w.model && l.level == *at);
            if let Some(p) = bound.and_then(xy).filter(|_| at != "c=1") {
                lines.push(Line {
                    name: format!("{} at {at} (the most it can do)", w.model),
                    color,
                    // Twice: a lone point is drawn as a ring (a highlight), this is a dot.
                    points: vec![p, p],
                    dashed: true,
                    markers: true,
                });
            }
        }
        let marked = |p: &super::super::sweep::SweepPoint| Some((p.achieved?, p.e2e_p50_ms?));
        if let Some(knee) = w.knee.as_ref().and_then(|k| marked(k).map(|p| (k, p))) {
            lines.push(Line {
                name: format!("knee: {} at {}", w.model, knee.0.level),
                color,
                points: vec![knee.1],
                dashed: true,
                markers: true,
            });
        }
        let saturated: Vec<(f64, f64)> = w.over_saturated.iter().filter_map(marked).collect();
        if !saturated.is_empty() {
            lines.push(Line {
                name: format!("{} over-saturated", w.model),
                color,
                points: saturated,
                dashed: true,
                markers: true,
            });
        }
    }
    figure(
        out,
        line_chart(
            "Latency against throughput (sweep)",
            "requests/s completed",
            "E2E latency p50 (ms)",
            &lines,
            true,
        ),
        "Each point is a load level; latency stays flat while the server keeps up and turns up at the knee. Over-saturated levels were stopped early: their figures cover the requests that finished.",
    );
}

/// Prefill (solid) and decode (dashed) tokens/s against context depth, per model and load
/// level: how speed falls as the context fills.
fn depth_chart(out: &mut String, s: &RunSummary, color_of: &dyn Fn(&str) -> usize) {
    let mut series: Vec<(String, usize, Vec<&LevelSummary>)> = Vec::new();
    for l in s.levels.iter().filter(|l| l.depth.is_some()) {
        let load = l.shape.map_or(String::new(), |sh| sh.label());
        let name = format!("{} {load}", l.model);
        match series.iter_mut().find(|(n, _, _)| *n == name) {
            Some((_, _, v)) => v.push(l),
            None => series.push((name, color_of(&l.model), vec![l])),
        }
    }
    if series.iter().all(|(_, _, v)| v.len() < 2) {
        return;
    }
    let mut lines = Vec::new();
    for (name, color, mut levels) in series {
        levels.sort_by_key(|l| l.depth);
        let at = |f: &dyn Fn(&LevelSummary) -> Option<f64>| -> Vec<(f64, f64)> {
            levels
                .iter()
                .filter_map(|l| Some((f64::from(l.depth?), f(l)?)))
                .collect()
        };
        lines.push(Line {
            name: format!("{name} prefill"),
            color,
            points: at(&|l| l.per_request_prefill_throughput.map(|d| d.median)),
            dashed: false,
            markers: true,
        });
        lines.push(Line {
            name: format!("{name} decode"),
            color,
            points: at(&|l| l.per_request_decode_throughput.map(|d| d.median)),
            dashed: true,
            markers: true,
        });
    }
    figure(
        out,
        line_chart(
            "Speed against context depth",
            "context depth (tokens before the prompt)",
            "tokens/s per request (median)",
            &lines,
            true,
        ),
        "Solid: prefill (prompt tokens / TTFT); dashed: decode (tokens after the first / time after the first).",
    );
}

/// TTFT and output throughput per model at a run's only load level.
fn level_bars(out: &mut String, levels: &[&LevelSummary], color_of: &dyn Fn(&str) -> usize) {
    let label = levels.first().map_or("", |l| l.level.as_str());
    let bars = |f: &dyn Fn(&LevelSummary) -> Option<f64>| {
        levels
            .iter()
            .filter_map(|l| f(l).map(|v| (l.model.clone(), color_of(&l.model), v)))
            .collect::<Vec<_>>()
    };
    figure(
        out,
        bar_chart(
            &format!("TTFT p50 at {label}"),
            "TTFT (ms)",
            &bars(&|l| l.latency.ttft.map(|d| d.median)),
            &|v| format!("{v:.0} ms"),
        ),
        "Median time to first token at the run's one load level (more levels draw it against load).",
    );
    figure(
        out,
        bar_chart(
            &format!("Output throughput at {label}"),
            "output tokens/s (aggregate)",
            &bars(&|l| l.output_throughput),
            &|v| format!("{v:.1}"),
        ),
        "Σ output tokens of successful requests / level duration.",
    );
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
                note: None,
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
        let gpu_mem = series(&|p| p.gpu_memory_bytes.map(|b| b as f64 / (1u64 << 30) as f64));
        if !gpu_mem.is_empty() {
            let line = |name: &str, color, points, dashed| Line {
                name: name.into(),
                color,
                points,
                dashed,
                markers: false,
            };
            let util = series(&|p| p.gpu_utilization_pct);
            let power = series(&|p| p.gpu_power_w);
            let right = [
                line("GPU utilisation (%)", 1, util, true),
                line("GPU power (W)", 3, power, true),
            ];
            figure(out, dual_axis_chart(&format!("GPU — {} at {}", l.model, l.level), "GPU memory in use (GiB)", &[line("GPU memory (GiB)", 0, gpu_mem, false)], "utilisation (%) / power (W)", &right, None), "NVML, whole device: memory in use (left), utilisation and board power (right, dashed).");
        }
        out.push_str("</div></details>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdata::sample_run;

    #[test]
    fn in_flight_steps_up_and_down() {
        let data = sample_run();
        let pts = in_flight(&data, "smollm2", "c=4");
        let max = pts.iter().map(|p| p.1).fold(0.0, f64::max);
        assert_eq!(max, 4.0);
        assert_eq!(pts.last().unwrap().1, 0.0);
    }
}
