//! The HTML page's building blocks, shared by the page and its chart sections: escaping, the
//! status pill, a [`Table`] as markup, and a chart in its figure.

use crate::report::charts::ChartError;
use std::fmt::Write;

use super::super::charts::css_color;
use super::super::run_summary::status_str;
use super::super::table::{Align, Mark, Table};
use crate::store::record::ModelStatus;

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

/// A model status as a coloured pill: green ok, red failed, yellow anything else.
pub(crate) fn pill(s: ModelStatus) -> String {
    let class = match s {
        ModelStatus::Ok => "ok",
        ModelStatus::Failed => "failed",
        _ => "other",
    };
    format!("<span class=\"pill {class}\">{}</span>", status_str(s))
}

/// A table with its intro and notes: figures right-aligned, alert rows highlighted, marks
/// drawn (pill, colour swatch, bold, error text, key cells as row headers).
pub(crate) fn table(out: &mut String, t: &Table) {
    if let Some(intro) = &t.intro {
        let _ = write!(out, "<p class=\"note\">{}</p>", esc(intro));
    }
    out.push_str("<div class=\"scroll\"><table><thead><tr>");
    for c in &t.columns {
        let _ = write!(out, "<th>{}</th>", esc(&c.name));
    }
    out.push_str("</tr></thead><tbody>");
    for r in &t.rows {
        out.push_str(if r.alert {
            "<tr class=\"failed\">"
        } else {
            "<tr>"
        });
        for (c, col) in r.cells.iter().zip(&t.columns) {
            let td = match col.align {
                Align::Right => "<td class=\"num\">",
                Align::Left => "<td>",
            };
            let text = esc(&c.text);
            let _ = match c.mark {
                Mark::None => write!(out, "{td}{text}</td>"),
                Mark::Status(s) => write!(out, "{td}{}</td>", pill(s)),
                Mark::Swatch(i) => write!(
                    out,
                    "{td}<span class=\"swatch\" style=\"background:{}\"></span>{text}</td>",
                    css_color(i)
                ),
                Mark::Strong => write!(out, "{td}<b>{text}</b></td>"),
                Mark::Error => write!(out, "<td class=\"err\">{text}</td>"),
                Mark::Key => write!(out, "<th>{text}</th>"),
            };
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    for note in &t.notes {
        let _ = write!(out, "<p class=\"note\">{}</p>", esc(note));
    }
}

/// A chart in its figure with a caption; a chart that could not be drawn shows why instead.
pub(crate) fn figure(out: &mut String, chart: Result<String, ChartError>, caption: &str) {
    out.push_str("<figure>");
    match chart {
        Ok(svg) => out.push_str(&svg),
        Err(why) => {
            let _ = write!(
                out,
                "<div class=\"nochart\">chart unavailable: {}</div>",
                esc(&why.to_string())
            );
        }
    }
    let _ = write!(out, "<figcaption>{}</figcaption></figure>", esc(caption));
}
