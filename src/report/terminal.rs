//! Tables in the terminal (comfy-table): the summary `hearth bench` and `hearth runs show`
//! print, and `compare`'s verdicts. Marks and alignment are the pages' business; the terminal
//! prints the text.

use comfy_table::presets::UTF8_FULL_CONDENSED;

use super::run_summary::RunSummary;
use super::sections;
use super::table::Table;

/// A table as box-drawn text, without its intro and notes (the caller words those for the
/// terminal).
pub(crate) fn render(table: &Table) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(table.header());
    for r in &table.rows {
        t.add_row(r.cells.iter().map(|c| c.text.as_str()));
    }
    t.to_string()
}

/// The summary table printed at the end of `hearth bench` (the same table that heads the
/// Markdown and HTML reports), then the warnings a reader must not miss (client bottleneck,
/// failed models with errors, token-count fallbacks), one per line.
pub fn terminal_table(summary: &RunSummary) -> String {
    let mut out = render(&sections::summary(summary));
    out.push('\n');
    if let Some(depth) = sections::depth(summary) {
        out.push_str("Speed against context depth:\n");
        out.push_str(&render(&depth));
        out.push('\n');
    }
    if let Some(sweep) = sections::sweep(summary) {
        out.push_str("Sweep (the knee: past it, latency grows faster than throughput):\n");
        out.push_str(&render(&sweep));
        out.push('\n');
    }
    for w in summary.warnings() {
        out.push_str("! ");
        out.push_str(&w);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::summarize;
    use crate::store::testdata;

    #[test]
    fn terminal_table_shows_every_model_and_warnings() {
        let data = testdata::sample_run();
        let text = terminal_table(&summarize(&data));
        assert!(text.contains("smollm2"), "{text}");
        assert!(text.contains("broken-model"), "{text}");
        assert!(text.contains("CLIENT BOTTLENECK"), "{text}");
        assert!(text.contains("MODEL FAILED: broken-model"), "{text}");
        assert!(text.contains("fell back from usage"), "{text}");
    }
}
