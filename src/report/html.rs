//! `report.html`: one self-contained page (inline CSS and SVG, no script, no network asset)
//! that opens offline: banners for what must not be missed, the summary table, charts, detail
//! tables, the server's time series per level, environment, options and definitions.

use std::fmt::Write;

use super::charts::css_color;
use super::definitions::DEFINITIONS;
use super::html_sections::{charts_section, detail_sections, timeseries_section};
use super::summary::{status_str, LevelSummary, RunSummary};
use super::{fmt_bytes, fmt_num};
use crate::stats::Distribution;
use crate::store::record::{ModelStatus, RunData};

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

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

pub(super) fn pill(s: ModelStatus) -> String {
    let class = match s {
        ModelStatus::Ok => "ok",
        ModelStatus::Failed => "failed",
        _ => "other",
    };
    format!("<span class=\"pill {class}\">{}</span>", status_str(s))
}

pub(super) fn td_num(v: String) -> String {
    format!("<td class=\"num\">{v}</td>")
}

pub(super) fn table(out: &mut String, header: &[&str], rows: &[String]) {
    out.push_str("<div class=\"scroll\"><table><thead><tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str(r);
    }
    out.push_str("</tbody></table></div>");
}

pub(super) fn figure(out: &mut String, chart: Result<String, String>, caption: &str) {
    out.push_str("<figure>");
    match chart {
        Ok(svg) => out.push_str(&svg),
        Err(why) => {
            let _ = write!(
                out,
                "<div class=\"nochart\">chart unavailable: {}</div>",
                esc(&why)
            );
        }
    }
    let _ = write!(out, "<figcaption>{}</figcaption></figure>", esc(caption));
}

pub(super) fn dist4(d: Option<Distribution>) -> String {
    td_num(match d {
        Some(d) => format!(
            "{:.1} / {:.1} / {:.1} / {:.1}",
            d.mean, d.median, d.p95, d.p99
        ),
        None => "—".into(),
    })
}

/// Civil UTC date and time of a Unix millisecond instant (Howard Hinnant's days-to-civil).
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The HTML page.
pub(super) fn render(data: &RunData, s: &RunSummary) -> String {
    let run = &s.run;
    let color_of = |model: &str| s.models.iter().position(|m| m.model == model).unwrap_or(0);
    let mut out = String::with_capacity(256 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>hearth report — {}</title><style>{CSS}</style></head><body>",
        esc(&run.id)
    );
    let _ = write!(
        out,
        "<header><h1>hearth benchmark report</h1><div class=\"meta\">run <b>{}</b> · {:?} · started {} · {} model(s) · {} level(s) · {}</div></header>",
        esc(&run.id),
        run.status,
        utc(run.started_unix_ms),
        s.models.len(),
        s.levels.len(),
        esc(&run.environment.cpu_model)
    );
    out.push_str("<nav><a href=\"#summary\">Summary</a><a href=\"#charts\">Charts</a><a href=\"#latency\">Latency</a><a href=\"#throughput\">Throughput</a><a href=\"#resources\">Resources &amp; energy</a><a href=\"#timeseries\">Time series</a><a href=\"#models\">Models</a><a href=\"#environment\">Environment</a><a href=\"#definitions\">Definitions</a><a href=\"#recommendation\">Recommendation</a></nav><main>");

    // Banners.
    let bottlenecked: Vec<&LevelSummary> = s
        .levels
        .iter()
        .filter(|l| l.resources.client_bottleneck)
        .collect();
    if !bottlenecked.is_empty() {
        out.push_str("<div class=\"banner bad\"><strong>⚠ The benchmark client was the bottleneck</strong>The client, not the server, limited these measurements; their throughput and latency understate the server:<ul>");
        for l in bottlenecked {
            let _ = write!(
                out,
                "<li>{} at {} (client CPU {} ms, timer lag p99 {} ms)</li>",
                esc(&l.model),
                esc(&l.level),
                fmt_num(Some(l.resources.client_cpu_ms), 0),
                fmt_num(Some(l.resources.client_lag_p99_ms), 2)
            );
        }
        out.push_str("</ul></div>");
    }
    let failed: Vec<_> = s
        .models
        .iter()
        .filter(|m| m.status != ModelStatus::Ok)
        .collect();
    if !failed.is_empty() {
        out.push_str("<div class=\"banner bad\"><strong>✖ Model(s) did not complete</strong><ul>");
        for m in failed {
            let _ = write!(
                out,
                "<li><b>{}</b> — {}: {}</li>",
                esc(&m.model),
                status_str(m.status),
                esc(m.error.as_deref().unwrap_or("no error recorded"))
            );
        }
        out.push_str("</ul></div>");
    }
    let other: Vec<String> = s
        .warnings()
        .into_iter()
        .filter(|w| !w.starts_with("CLIENT BOTTLENECK") && !w.starts_with("MODEL "))
        .collect();
    if !other.is_empty() {
        out.push_str("<div class=\"banner warn\"><strong>Warnings</strong><ul>");
        for w in other {
            let _ = write!(out, "<li>{}</li>", esc(&w));
        }
        out.push_str("</ul></div>");
    }

    // Summary table.
    out.push_str("<h2 id=\"summary\">Summary</h2>");
    let mut rows = Vec::new();
    for (m, l) in s.rows() {
        let swatch = format!(
            "<span class=\"swatch\" style=\"background:{}\"></span>",
            css_color(color_of(&m.model))
        );
        let mut r = format!(
            "<tr{}><td>{swatch}{}</td>",
            if m.status == ModelStatus::Failed {
                " class=\"failed\""
            } else {
                ""
            },
            esc(&m.model)
        );
        match l {
            Some(l) => {
                let lat = &l.latency;
                let _ = write!(
                    r,
                    "<td>{}</td><td>{}</td>{}{}{}{}{}{}{}{}",
                    esc(&l.level),
                    pill(m.status),
                    td_num(format!("{}/{}", l.completed, l.failed)),
                    td_num(fmt_num(lat.e2el.map(|d| d.mean), 1)),
                    td_num(fmt_num(lat.e2el.map(|d| d.p95), 1)),
                    td_num(format!(
                        "{} / {}",
                        fmt_num(lat.ttft.map(|d| d.median), 1),
                        fmt_num(lat.ttft.map(|d| d.p95), 1)
                    )),
                    td_num(fmt_num(lat.itl.map(|d| d.median), 2)),
                    td_num(fmt_num(l.output_throughput, 1)),
                    td_num(fmt_num(
                        l.per_request_output_throughput.map(|d| d.median),
                        1
                    )),
                    td_num(
                        fmt_bytes(l.resources.peak_rss_bytes)
                            + if l.resources.client_bottleneck {
                                " ⚠"
                            } else {
                                ""
                            }
                    ),
                );
            }
            None => {
                let _ = write!(
                    r,
                    "<td>—</td><td>{}</td>{}",
                    pill(m.status),
                    "<td class=\"num\">—</td>".repeat(8)
                );
            }
        }
        let _ = write!(
            r,
            "{}<td>{}</td><td class=\"err\">{}</td></tr>",
            td_num(fmt_bytes(m.disk_bytes)),
            esc(m.license.as_deref().unwrap_or("—")),
            esc(m.error.as_deref().unwrap_or(""))
        );
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
            "TTFT p50 / p95 ms",
            "ITL p50 ms",
            "out tok/s (aggregate)",
            "tok/s per request (p50)",
            "peak RSS",
            "size",
            "licence",
            "error",
        ],
        &rows,
    );

    charts_section(&mut out, data, s, &color_of);
    detail_sections(&mut out, s);
    timeseries_section(&mut out, data, s);

    // Models, environment, options, definitions.
    out.push_str("<h2 id=\"quality\">Quality</h2>");
    let scorers = super::quality::scorer_lines(s);
    if scorers.is_empty() {
        out.push_str("<p class=\"note\">No answer has a score yet (<code>hearth bench --judge MODEL</code>, or <code>hearth annotate export</code> / <code>import</code>); automatic checks below.</p>");
    } else {
        out.push_str("<p class=\"note\">Scores 1–5; a person's score replaces the judge's for the same answer.</p><ul>");
        for line in scorers {
            let _ = write!(out, "<li>{}</li>", esc(&line));
        }
        out.push_str("</ul>");
    }
    let row = |cells: &[String]| {
        let tds: String = cells
            .iter()
            .map(|c| format!("<td>{}</td>", esc(c)))
            .collect();
        format!("<tr>{tds}</tr>")
    };
    let rows: Vec<String> = super::quality::level_rows(&s.levels)
        .iter()
        .map(|r| row(r))
        .collect();
    table(&mut out, &super::quality::LEVEL_HEADER, &rows);
    let failed: Vec<String> = super::quality::failure_rows(&s.levels)
        .iter()
        .map(|r| row(r))
        .collect();
    if !failed.is_empty() {
        out.push_str("<p class=\"note\">Failed checks, with the reason for the first answer that failed each:</p>");
        table(&mut out, &super::quality::FAILURE_HEADER, &failed);
    }
    out.push_str("<h2 id=\"models\">Models</h2>");
    let rows: Vec<String> = s
        .models
        .iter()
        .map(|m| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}{}<td>{}</td><td>{}</td><td class=\"err\">{}</td></tr>",
                esc(&m.model),
                pill(m.status),
                esc(&m.backend),
                esc(&m.endpoint),
                esc(m.quantization.as_deref().unwrap_or("—")),
                td_num(fmt_bytes(m.disk_bytes)),
                td_num(fmt_num(m.load_ms, 0)),
                esc(m.license.as_deref().unwrap_or("—")),
                esc(&m.tags.join(", ")),
                esc(m.error.as_deref().unwrap_or(""))
            )
        })
        .collect();
    table(&mut out, &super::MODEL_COLUMNS, &rows);

    let failures: Vec<String> = s
        .levels
        .iter()
        .flat_map(|l| {
            l.failure_reasons.iter().map(move |f| {
                format!(
                    "<tr><td>{}</td><td>{}</td>{}<td class=\"err\">{}</td></tr>",
                    esc(&l.model),
                    esc(&l.level),
                    td_num(f.count.to_string()),
                    esc(&f.error)
                )
            })
        })
        .collect();
    if !failures.is_empty() {
        out.push_str("<h3>Failed requests</h3>");
        table(&mut out, &["model", "level", "count", "error"], &failures);
    }

    out.push_str("<h2 id=\"environment\">Environment</h2>");
    let e = &run.environment;
    let env = [
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
        ("devices", super::devices_text(e)),
        ("run finished", run.finished_unix_ms.map_or("—".into(), utc)),
    ];
    let rows: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v)))
        .collect();
    table(&mut out, &["", ""], &rows);
    let _ = write!(
        out,
        "<h3>Options</h3><pre>{}</pre><h3>Client health</h3><pre>{}</pre>",
        esc(&serde_json::to_string_pretty(&run.options.to_json()).unwrap_or_default()),
        esc(&serde_json::to_string_pretty(&run.client).unwrap_or_default())
    );

    out.push_str("<h2 id=\"definitions\">Definitions</h2><dl>");
    for (k, v) in DEFINITIONS {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
    }
    out.push_str("</dl>");
    let r = &s.recommendation;
    let _ = write!(
        out,
        "<h2 id=\"recommendation\">Recommendation</h2><p class=\"pick\">{}</p>",
        esc(&r.explanation)
    );
    let rows: Vec<String> = super::recommend::rows(r).iter().map(|c| row(c)).collect();
    table(&mut out, &super::recommend::HEADER, &rows);
    let _ = writeln!(
        out,
        "</main><footer>Generated by hearth {} from stored run {} — every figure is derived from the stored per-request records.</footer></body></html>",
        esc(&e.hearth_version),
        esc(&run.id)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::sample_run;
    use crate::report::{render, Format};

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
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_764_300_000_000), "2025-11-28 03:20:00 UTC");
    }
}
