//! `report.md`: the reference workflow's `benchmark_report.md`, richer: the comparison table,
//! latency detail, cache and noise, resources and energy, environment, options, failures with
//! their errors, and the definitions of every metric. The tables come from `sections`; this
//! file lays them out as Markdown.

use std::fmt::Write;

use super::definitions::DEFINITIONS;
use super::format::utc;
use super::outline::{outline, Block};
use super::run_summary::RunSummary;
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

    for section in outline(s).iter().filter(|section| section.has_text()) {
        let hashes = if section.nav.is_some() { "##" } else { "###" };
        let _ = writeln!(out, "{hashes} {}\n", section.heading);
        for block in &section.blocks {
            match block {
                // hearth's own prose: its backticks are code spans.
                Block::Note(text) => {
                    let _ = writeln!(out, "{text}\n");
                }
                Block::List(items) => {
                    for item in items {
                        let _ = writeln!(out, "- {}", cell(item));
                    }
                    out.push('\n');
                }
                Block::Table(t) => table(&mut out, t),
                Block::Json(text) => {
                    let _ = writeln!(out, "```json\n{}\n```\n", fenced(text));
                }
                Block::Definitions => {
                    for (k, v) in DEFINITIONS {
                        let _ = writeln!(out, "- **{k}**: {v}");
                    }
                    out.push('\n');
                }
                Block::Pick(text) => {
                    let _ = writeln!(out, "{}\n", cell(text));
                }
                Block::Drawn(_) => {}
            }
        }
    }
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
