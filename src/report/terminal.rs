//! Tables in the terminal (comfy-table): the summary `hearth bench` and `hearth runs show`
//! print, and `compare`'s verdicts. Marks and alignment are the pages' business; the terminal
//! prints the text.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::ContentArrangement;

use super::outline::{outline, Block};
use super::run_summary::RunSummary;
use super::table::Table;

/// How wide the terminal's tables may be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Width {
    /// The key figures, wrapped to fit [`FIT_COLUMNS`]; the reports have the rest.
    #[default]
    Fit,
    /// Every column, unwrapped (`--wide`).
    Wide,
}

/// The width the terminal's tables fit: a common terminal, and a CI log, without wrapping.
pub const FIT_COLUMNS: u16 = 100;

/// How much of a fitted table's first cell (the model) is kept on one line.
const NAME_CELL: usize = 28;

/// How much of any other fitted cell is kept on one line (`75.6 / 78.9`; `286.9 / 307.4` wraps).
const FIGURE_CELL: usize = 13;

/// A table as box-drawn text, without its intro and notes (the caller words those for the
/// terminal), every column unwrapped.
pub(crate) fn render(table: &Table) -> String {
    render_at(table, Width::Wide)
}

fn render_at(table: &Table, width: Width) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    match width {
        Width::Wide => {
            t.set_header(table.header());
            for r in &table.rows {
                t.add_row(r.cells.iter().map(|c| c.text.as_str()));
            }
        }
        Width::Fit => {
            // Headers wrap before figures do: each column is as wide as its longest cell (the
            // row's name up to NAME_CELL, another cell up to FIGURE_CELL) or its longest header
            // word; comfy-table's own wrapping is the fallback for what still does not fit.
            let table = table.key_columns();
            let widths: Vec<usize> = table
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let cap = if i == 0 { NAME_CELL } else { FIGURE_CELL };
                    let longest_cell = table
                        .rows
                        .iter()
                        .map(|r| r.cells[i].text.chars().count())
                        .max()
                        .unwrap_or(0);
                    let longest_word = c.name.split(' ').map(|w| w.chars().count()).max();
                    longest_cell.min(cap).max(longest_word.unwrap_or(0))
                })
                .collect();
            t.set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(FIT_COLUMNS);
            t.set_header(table.header().iter().zip(&widths).map(|(h, w)| wrap(h, *w)));
            for r in &table.rows {
                t.add_row(r.cells.iter().zip(&widths).map(|(c, w)| wrap(&c.text, *w)));
            }
        }
    }
    t.to_string()
}

/// Text broken at spaces into lines of at most `width` characters (a longer word keeps its own
/// line). Written here because it is a few lines, not worth a dependency.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split(' ') {
        let n = word.chars().count();
        if line > 0 && line + 1 + n > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += n;
    }
    out
}

/// The summary printed at the end of `hearth bench` and by `hearth runs show`: the report's
/// terminal sections (the summary table heading both pages, then sweep and depth where the run
/// has them), then the warnings a reader must not miss (client bottleneck, failed models with
/// errors, token-count fallbacks), one per line.
pub fn terminal_table(summary: &RunSummary, width: Width) -> String {
    let mut out = String::new();
    for (i, section) in outline(summary).iter().filter(|s| s.terminal).enumerate() {
        // The first section is what the command prints; the others say what they are.
        if i > 0 {
            out.push_str(section.heading);
            out.push_str(":\n");
        }
        for block in &section.blocks {
            if let Block::Table(t) = block {
                out.push_str(&render_at(t, width));
                out.push('\n');
            }
        }
    }
    if width == Width::Fit {
        out.push_str("(key figures; --wide shows every column, the reports every table)\n");
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
        let text = terminal_table(&summarize(&data), Width::Fit);
        assert!(text.contains("smollm2"), "{text}");
        assert!(text.contains("broken-model"), "{text}");
        assert!(text.contains("CLIENT BOTTLENECK"), "{text}");
        assert!(text.contains("MODEL FAILED: broken-model"), "{text}");
        assert!(text.contains("fell back from usage"), "{text}");
    }

    #[test]
    fn the_fitted_table_fits_100_columns_and_wide_shows_every_column() {
        let data = testdata::sample_run();
        let s = summarize(&data);
        let tables = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| !l.starts_with("! "))
                .map(str::to_string)
                .collect()
        };
        let fit = terminal_table(&s, Width::Fit);
        for line in tables(&fit) {
            assert!(line.chars().count() <= FIT_COLUMNS as usize, "{line}");
        }
        assert!(fit.contains("TTFT p50"), "a key figure: {fit}");
        assert!(!fit.contains("licence"), "not a key figure: {fit}");
        let wide = terminal_table(&s, Width::Wide);
        assert!(wide.contains("licence") && wide.contains("TTFT p50 / p95 ms"));
        assert!(
            tables(&wide)
                .iter()
                .any(|l| l.chars().count() > FIT_COLUMNS as usize),
            "the wide table is wider"
        );
    }
}
