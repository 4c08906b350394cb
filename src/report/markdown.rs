//! `report.md`: the reference workflow's `benchmark_report.md`, richer: the comparison table,
//! latency detail, cache and noise, resources and energy, environment, options, failures with
//! their errors, and the definitions of every metric. The tables come from `sections`; this
//! file lays them out as Markdown.

use std::fmt::Write;

use super::definitions::DEFINITIONS;
use super::format::utc;
use super::run_summary::RunSummary;
use super::sections;
use super::table::{Mark, Table};
use crate::store::record::ModelStatus;

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

/// A table as GitHub-flavoured Markdown: its intro, the pipe table, its notes. Marks that
/// Markdown can show are bold (a status other than ok, a warning); the rest is plain text.
pub(crate) fn table(out: &mut String, t: &Table) {
    if let Some(intro) = &t.intro {
        let _ = writeln!(out, "{}\n", cell(intro));
    }
    let header: Vec<String> = t.columns.iter().map(|c| cell(&c.name)).collect();
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for r in &t.rows {
        let cells: Vec<String> = r
            .cells
            .iter()
            .map(|c| match c.mark {
                Mark::Strong => format!("**{}**", cell(&c.text)),
                Mark::Status(s) if s != ModelStatus::Ok => format!("**{}**", cell(&c.text)),
                _ => cell(&c.text),
            })
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
    for note in &t.notes {
        let _ = writeln!(out, "{}\n", cell(note));
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
        utc(run.started_unix_ms),
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
    table(&mut out, &sections::summary(s));
    if let Some(sweep) = sections::sweep(s) {
        out.push_str("## Sweep: how much load each model takes\n\n");
        let _ = writeln!(out, "{}\n", sections::SWEEP_NOTE);
        table(&mut out, &sweep);
    }
    if let Some(depth) = sections::depth(s) {
        out.push_str("## Speed against context depth\n\n");
        let _ = writeln!(out, "{}\n", sections::DEPTH_NOTE);
        table(&mut out, &depth);
    }
    out.push_str("## Latency detail (ms)\n\n");
    table(&mut out, &sections::latency(s));
    out.push_str("## Throughput, goodput, prompt cache and noise\n\n");
    table(&mut out, &sections::throughput(s));
    out.push_str("## Resources and energy\n\n");
    table(&mut out, &sections::resources(s));

    out.push_str("## Quality\n\n");
    let scorers = sections::scorer_lines(s);
    if scorers.is_empty() {
        out.push_str("No answer has a score yet (`hearth bench --judge MODEL`, or `hearth annotate export` / `import`); automatic checks below.\n\n");
    } else {
        out.push_str("Scores 1–5; a person's score replaces the judge's for the same answer.\n\n");
        for line in scorers {
            let _ = writeln!(out, "- {}", cell(&line));
        }
        out.push('\n');
    }
    table(&mut out, &sections::quality(&s.levels));
    if let Some(failed) = sections::check_failures(&s.levels) {
        table(&mut out, &failed);
    }

    out.push_str("## Models\n\n");
    table(&mut out, &sections::models(s));
    if let Some(failures) = sections::failed_requests(s) {
        out.push_str("## Failed requests\n\n");
        table(&mut out, &failures);
    }
    out.push_str("## Environment\n\n");
    table(&mut out, &sections::environment(s));

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

    // The closing section: the pick and why the others were not picked.
    let r = &s.recommendation;
    out.push_str("\n## Recommendation\n\n");
    let _ = writeln!(out, "{}\n", cell(&r.explanation));
    table(&mut out, &sections::recommendation(r));
    out
}

/// Keeps JSON from closing its code fence early.
fn fenced(s: &str) -> String {
    s.replace("```", "`\u{200b}``")
}

#[cfg(test)]
mod tests {
    use crate::report::{render, Format};
    use crate::store::testdata::sample_run;

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
