//! `report.html`: one self-contained page (inline CSS and SVG, no script, no network asset)
//! that opens offline: banners for what must not be missed, the summary table, charts, detail
//! tables, the server's time series per level, environment, options and definitions. The
//! tables come from `sections`; `markup` draws them, `chart_sections` picks the charts.

mod chart_sections;
mod markup;

use std::fmt::Write;

use super::definitions::DEFINITIONS;
use super::format::{fmt_num, utc};
use super::outline::{outline, Block, Drawing};
use super::run_summary::{status_str, LevelSummary, RunSummary};
use super::sections;
use crate::store::record::{ModelStatus, RunData};
use chart_sections::{charts_section, timeseries_section};
pub(crate) use markup::{esc, figure, table};

const CSS: &str = r#"
:root{--fg:#1f2328;--muted:#656d76;--line:#d8dee4;--bg:#f6f8fa;--accent:#4e79a7;--warn-bg:#fff8c5;--warn:#9a6700;--bad-bg:#ffebe9;--bad:#cf222e;--ok:#1a7f37}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;color:var(--fg);background:#fff}
header{background:linear-gradient(135deg,#2f4b6e,#4e79a7);color:#fff;padding:24px 32px}
header h1{margin:0 0 4px;font-size:24px;font-weight:600}
header .meta{opacity:.9;font-size:13px}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);padding:8px 32px;font-size:13px}
nav a{color:var(--accent);text-decoration:none;margin-right:16px}
main{padding:8px 32px 48px;max-width:1500px}
h2{font-size:19px;border-bottom:1px solid var(--line);padding-bottom:6px;margin-top:36px}
h3{font-size:15px;margin:20px 0 8px}
.banner{border-radius:8px;padding:12px 16px;margin:16px 0;border:1px solid}
.banner strong{display:block;margin-bottom:4px}
.banner ul{margin:4px 0 0;padding-left:20px}
.banner.bad{background:var(--bad-bg);border-color:#ffcecb;color:#82071e}
.banner.warn{background:var(--warn-bg);border-color:#eed888;color:#6a4a00}
.scroll{overflow-x:auto;border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap;vertical-align:top}
th{background:var(--bg);font-weight:600;position:sticky;top:0}
tbody tr:nth-child(even){background:#fbfcfd}
tbody tr:hover{background:#eef4fb}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.err{white-space:normal;max-width:520px;color:var(--bad);word-break:break-word}
tr.failed td{background:var(--bad-bg)}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.pill.ok{background:#dafbe1;color:var(--ok)}.pill.failed{background:var(--bad-bg);color:var(--bad)}.pill.other{background:var(--warn-bg);color:var(--warn)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:16px}
figure{margin:0;border:1px solid var(--line);border-radius:8px;padding:8px;background:#fff}
figure svg{width:100%;height:auto;display:block}
figcaption{font-size:12px;color:var(--muted);padding:4px 6px 0}
.nochart{color:var(--muted);font-style:italic;padding:24px;text-align:center}
details{border:1px solid var(--line);border-radius:8px;padding:8px 12px;margin:10px 0}
details summary{cursor:pointer;font-weight:600}
pre{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:12px;overflow:auto;font-size:12px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:6px 18px}
dt{font-weight:600;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
dd{margin:0;color:#333}
.note{color:var(--muted);font-size:12px}
.pick{font-size:16px;font-weight:600;border-left:4px solid #59a14f;padding:6px 10px;background:#f4faf3}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:baseline}
footer{color:var(--muted);font-size:12px;padding:24px 32px;border-top:1px solid var(--line)}
"#;

/// The start of every hearth HTML page (one run's, several runs'): doctype, head with the
/// title and the inline CSS, and the opening body tag.
pub(crate) fn page_start(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>hearth report — {}</title><style>{CSS}</style></head><body>",
        esc(title)
    );
}

/// The HTML page.
pub(super) fn render(data: &RunData, s: &RunSummary) -> String {
    let run = &s.run;
    let color_of = |model: &str| sections::color_of(s, model);
    let mut out = String::with_capacity(256 * 1024);
    page_start(&mut out, &run.id);
    let _ = write!(
        out,
        "<header><h1>hearth benchmark report</h1><div class=\"meta\">run <b>{}</b> · {:?} · started {} · {} model(s) · {} load level(s) · {}</div></header>",
        esc(&run.id),
        run.status,
        utc(run.started_unix_ms),
        s.models.len(),
        // Load levels (c=1, c=8…), not model × level rows.
        s.levels
            .iter()
            .map(|l| l.level.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        esc(&run.environment.cpu_model)
    );
    let page = outline(s);
    out.push_str("<nav>");
    for section in &page {
        if let Some(nav) = section.nav {
            let _ = write!(out, "<a href=\"#{}\">{}</a>", section.id, esc(nav));
        }
    }
    out.push_str("</nav><main>");

    // Banners: what a reader must not miss, above everything else.
    banner(
        &mut out,
        "bad",
        "⚠ The benchmark client was the bottleneck",
        "The client, not the server, limited these measurements; their throughput and latency understate the server:",
        s.levels.iter().filter(|l| l.resources.client_bottleneck).map(|l| {
            format!(
                "{} at {} (client CPU {} ms, timer lag p99 {} ms)",
                esc(&l.model),
                esc(&l.level),
                fmt_num(Some(l.resources.client_cpu_ms), 0),
                fmt_num(Some(l.resources.client_lag_p99_ms), 2)
            )
        }),
    );
    banner(
        &mut out,
        "bad",
        "✖ Model(s) did not complete",
        "",
        s.models
            .iter()
            .filter(|m| m.status != ModelStatus::Ok)
            .map(|m| {
                format!(
                    "<b>{}</b> — {}: {}",
                    esc(&m.model),
                    status_str(m.status),
                    esc(m.error.as_deref().unwrap_or("no error recorded"))
                )
            }),
    );
    banner(
        &mut out,
        "warn",
        "Warnings",
        "",
        s.warnings()
            .into_iter()
            .filter(|w| !w.starts_with("CLIENT BOTTLENECK") && !w.starts_with("MODEL "))
            .map(|w| esc(&w)),
    );

    for section in &page {
        let level = if section.nav.is_some() { 2 } else { 3 };
        let _ = write!(
            out,
            "<h{level} id=\"{}\">{}</h{level}>",
            section.id,
            esc(section.heading)
        );
        for block in &section.blocks {
            match block {
                Block::Note(text) => {
                    let _ = write!(out, "<p class=\"note\">{}</p>", with_code(&esc(text)));
                }
                Block::List(items) => {
                    out.push_str("<ul>");
                    for item in items {
                        let _ = write!(out, "<li>{}</li>", esc(item));
                    }
                    out.push_str("</ul>");
                }
                Block::Table(t) => table(&mut out, t),
                Block::Json(text) => {
                    let _ = write!(out, "<pre>{}</pre>", esc(text));
                }
                Block::Definitions => {
                    out.push_str("<dl>");
                    for (k, v) in DEFINITIONS {
                        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
                    }
                    out.push_str("</dl>");
                }
                Block::Pick(text) => {
                    let _ = write!(out, "<p class=\"pick\">{}</p>", esc(text));
                }
                Block::Drawn(Drawing::Charts) => charts_section(&mut out, data, s, &color_of),
                Block::Drawn(Drawing::ServerMetrics) => server_metrics(&mut out, s),
                Block::Drawn(Drawing::TimeSeries) => timeseries_section(&mut out, data, s),
            }
        }
    }
    let _ = writeln!(
        out,
        "</main><footer>Generated by hearth {} from stored run {} — every figure is derived from the stored per-request records.</footer></body></html>",
        esc(&run.environment.hearth_version),
        esc(&run.id)
    );
    out
}

/// A banner of class `class` (`bad`, `warn`): its title, a lead line, then one list item per
/// entry (escaped HTML); nothing when there is no entry.
fn banner(
    out: &mut String,
    class: &str,
    title: &str,
    lead: &str,
    items: impl Iterator<Item = String>,
) {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<div class=\"banner {class}\"><strong>{title}</strong>{lead}<ul>"
    );
    for item in items {
        let _ = write!(out, "<li>{item}</li>");
    }
    out.push_str("</ul></div>");
}

/// Escaped prose with its `code` spans (backtick pairs) as code elements.
fn with_code(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    for (i, part) in escaped.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

/// The servers' own account of each level (from their Prometheus metrics), folded away: it is
/// raw JSON for whoever needs to check a figure against the server.
fn server_metrics(out: &mut String, s: &RunSummary) {
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
    use crate::report::{render, Format};
    use crate::store::testdata::sample_run;

    #[test]
    fn html_is_self_contained_escaped_and_has_charts() {
        let html = render(&sample_run(), Format::Html).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(
            !html.contains("<script"),
            "no script, and model errors must be escaped"
        );
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        for fetch in ["src=", "href=\"http", "@import", "url("] {
            assert!(!html.contains(fetch), "no network asset: {fetch}");
        }
        assert!(!html.contains("<link"));
        assert!(html.contains("The benchmark client was the bottleneck"));
        assert!(html.contains("Model(s) did not complete"));
        // Two E2E CDFs (c=1, c=4), TTFT and throughput against concurrency, two bar charts,
        // two time-series charts per level (4 levels); no quality chart (nothing scored or
        // checked).
        assert_eq!(
            html.matches("<svg").count(),
            2 + 2 + 2 + 8,
            "{}",
            html.matches("chart unavailable").count()
        );
        assert!(!html.contains("chart unavailable"));
        assert!(html.contains("id=\"definitions\""));
        assert!(html.contains("2025-11-28"));
    }

    #[test]
    fn a_run_with_one_level_gets_bars_not_lone_points_and_shares_end_at_100() {
        let mut data = sample_run();
        data.levels.retain(|l| l.level == "c=1");
        data.requests.retain(|r| r.level == "c=1");
        let html = render(&data, Format::Html).unwrap();
        assert!(html.contains("TTFT p50 at c=1"), "bars at the one level");
        assert!(html.contains("Output throughput at c=1"));
        assert!(!html.contains("TTFT against concurrency"));
        assert!(!html.contains("chart unavailable"));
        // "2 model(s) · 1 load level(s)": levels, not model × level rows.
        assert!(
            html.contains("· 1 load level(s) ·"),
            "header counts load levels"
        );
        // The CDF's y axis is a share: no tick beyond 100 %.
        let cdf_start = html.find("End-to-end latency distribution at c=1").unwrap();
        let cdf = &html[cdf_start..cdf_start + html[cdf_start..].find("</svg>").unwrap()];
        let ticks: Vec<f64> = cdf
            .split("</text>")
            .filter_map(|s| s.rsplit('>').next()?.trim().parse().ok())
            .collect();
        // The y axis's ticks come first (rising), then the x axis's (latency, ms).
        let y_ticks: Vec<f64> = ticks
            .iter()
            .zip(std::iter::once(f64::NEG_INFINITY).chain(ticks.iter().copied()))
            .take_while(|(t, before)| **t > *before)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(y_ticks.last(), Some(&100.0), "{ticks:?}");
    }

    #[test]
    fn gpu_samples_add_a_gpu_chart_to_their_level() {
        let mut data = sample_run();
        let html = render(&data, Format::Html).unwrap();
        assert!(!html.contains("GPU — "));
        let svgs = html.matches("<svg").count();
        for (i, s) in data.levels[0].samples.iter_mut().enumerate() {
            s.gpu_memory_bytes = Some((4 + i as u64) << 30);
            s.gpu_utilization_pct = Some(50.0 + i as f64);
            s.gpu_power_w = Some(200.0 + 10.0 * i as f64);
        }
        let html = render(&data, Format::Html).unwrap();
        assert_eq!(html.matches("<svg").count(), svgs + 1);
        assert!(html.contains("GPU memory in use (GiB)"));
        assert!(!html.contains("chart unavailable"));
    }
}
