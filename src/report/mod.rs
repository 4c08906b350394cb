//! Reports rendered from stored runs (never from a benchmark's memory): JSON, CSV, Markdown, a
//! self-contained HTML page with charts, the terminal table `hearth bench` prints, and
//! `compare` between two runs.

mod charts;
pub mod compare;
mod csv;
pub mod definitions;
mod html;
mod html_sections;
pub mod json;
mod markdown;
pub mod metrics;
pub mod quality;
pub mod recommend;
pub mod summary;
#[cfg(test)]
pub(crate) mod testdata;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, Table};

use crate::store::record::RunData;

pub use compare::{compare, CompareOptions, CompareRow, Comparison, Verdict};
/// `YYYY-MM-DD HH:MM:SS UTC`, as every report prints times; the CLI shares it.
pub use html::utc as format_utc;
pub use json::{ReportDocument, SCHEMA};
pub use summary::{summarize, LevelSummary, ModelSummary, RunSummary};

/// Columns of the models table, the same in the Markdown and HTML reports (each renderer
/// formats its own cells).
pub(crate) const MODEL_COLUMNS: [&str; 10] = [
    "model",
    "status",
    "backend",
    "endpoint",
    "quantisation",
    "size",
    "cold load ms",
    "licence",
    "tags",
    "error",
];

/// Columns of the resources-and-energy table, the same in the Markdown and HTML reports.
pub(crate) const RESOURCE_COLUMNS: [&str; 12] = [
    "model",
    "level",
    "peak RSS",
    "server CPU ms",
    "client CPU ms",
    "client lag p99 ms",
    "client bottleneck",
    "energy J",
    "method",
    "per 1k output tokens",
    "cost per 1k tokens",
    "token counts",
];

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The format name is not one of json, csv, md, markdown, html.
    #[error("unknown report format {0:?} (expected json, csv, md or html)")]
    UnknownFormat(String),
    /// Serializing the JSON report failed.
    #[error("JSON report: {0}")]
    Json(#[from] serde_json::Error),
    /// Writing the CSV report failed.
    #[error("CSV report: {0}")]
    Csv(#[from] ::csv::Error),
    /// Writing a report file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A report format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `report.json`: the machine-readable report (`hearth.bench.report/1`).
    Json,
    /// `report.csv`: one row per model and level.
    Csv,
    /// `report.md`: tables for a pull request or a wiki.
    Markdown,
    /// `report.html`: one self-contained page with charts.
    Html,
}

impl Format {
    /// All formats, in the order `write_all` writes them.
    pub const ALL: [Format; 4] = [Format::Json, Format::Csv, Format::Markdown, Format::Html];

    /// The file name a run folder uses for this format.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Json => "report.json",
            Format::Csv => "report.csv",
            Format::Markdown => "report.md",
            Format::Html => "report.html",
        }
    }
}

impl FromStr for Format {
    type Err = ReportError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "md" | "markdown" => Ok(Format::Markdown),
            "html" | "htm" => Ok(Format::Html),
            _ => Err(ReportError::UnknownFormat(s.to_string())),
        }
    }
}

/// Renders one report of a stored run.
pub fn render(data: &RunData, format: Format) -> Result<String, ReportError> {
    let summary = summarize(data);
    match format {
        Format::Json => json::render(&summary),
        Format::Csv => csv::render(&summary),
        Format::Markdown => Ok(markdown::render(&summary)),
        Format::Html => Ok(html::render(data, &summary)),
    }
}

/// Writes all four into dir; returns the paths.
///
/// The folder is created when missing; each file is written whole to a temporary name and
/// renamed, so a reader never sees half a report.
pub fn write_all(data: &RunData, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let summary = summarize(data);
    let mut paths = Vec::new();
    for format in Format::ALL {
        let text = match format {
            Format::Json => json::render(&summary)?,
            Format::Csv => csv::render(&summary)?,
            Format::Markdown => markdown::render(&summary),
            Format::Html => html::render(data, &summary),
        };
        let path = dir.join(format.file_name());
        let tmp = dir.join(format!(".{}.tmp", format.file_name()));
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        paths.push(path);
    }
    Ok(paths)
}

/// The comparison table printed at the end of `hearth bench` (comfy-table): one row per model
/// and level: model, level, status, ok/failed, mean e2e, p95 e2e, TTFT p50/p95, ITL p50, TPOT
/// mean, output tok/s (aggregate), per-request tok/s, share of drafted tokens accepted, peak RSS, size, licence; plus warning
/// lines (client bottleneck, failed models with errors, token-count fallbacks).
pub fn terminal_table(summary: &RunSummary) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "model",
        "level",
        "status",
        "ok/failed",
        "mean e2e ms",
        "p95 e2e ms",
        "TTFT p50 ms",
        "TTFT p95 ms",
        "ITL p50 ms",
        "TPOT mean ms",
        "out tok/s",
        "req tok/s",
        "drafts ok",
        "checks",
        "score",
        "peak RSS",
        "size",
        "licence",
    ]);
    for (m, l) in summary.rows() {
        let mut row: Vec<Cell> = vec![Cell::new(&m.model)];
        match l {
            Some(l) => {
                let lat = &l.latency;
                row.extend([
                    Cell::new(&l.level),
                    Cell::new(summary::status_str(m.status)),
                    Cell::new(format!("{}/{}", l.completed, l.failed)),
                    Cell::new(fmt_num(lat.e2el.map(|d| d.mean), 1)),
                    Cell::new(fmt_num(lat.e2el.map(|d| d.p95), 1)),
                    Cell::new(fmt_num(lat.ttft.map(|d| d.median), 1)),
                    Cell::new(fmt_num(lat.ttft.map(|d| d.p95), 1)),
                    Cell::new(fmt_num(lat.itl.map(|d| d.median), 2)),
                    Cell::new(fmt_num(lat.tpot.map(|d| d.mean), 2)),
                    Cell::new(fmt_num(l.output_throughput, 1)),
                    Cell::new(fmt_num(
                        l.per_request_output_throughput.map(|d| d.median),
                        1,
                    )),
                    Cell::new(
                        l.drafts
                            .acceptance()
                            .map_or("—".into(), |a| format!("{:.0}%", a * 100.0)),
                    ),
                    Cell::new(format!(
                        "{}/{}",
                        l.quality.checks_passed, l.quality.checks_total
                    )),
                    Cell::new(l.quality.score_label()),
                    Cell::new(fmt_bytes(l.resources.peak_rss_bytes)),
                ]);
            }
            None => {
                row.extend([
                    Cell::new("—"),
                    Cell::new(summary::status_str(m.status)),
                    Cell::new("0/0"),
                ]);
                row.extend((0..12).map(|_| Cell::new("—")));
            }
        }
        row.push(Cell::new(fmt_bytes(m.disk_bytes)));
        row.push(Cell::new(m.license.as_deref().unwrap_or("—")));
        t.add_row(row);
    }
    let mut out = t.to_string();
    out.push('\n');
    for w in summary.warnings() {
        out.push_str("! ");
        out.push_str(&w);
        out.push('\n');
    }
    out
}

/// The run's devices and GPU backends in one line, as the environment tables print them.
pub(crate) fn devices_text(e: &crate::store::record::Environment) -> String {
    let backends = if e.gpu_backends.is_empty() {
        "CPU-only build".to_string()
    } else {
        format!("GPU backends: {}", e.gpu_backends.join(", "))
    };
    if e.devices.is_empty() {
        backends
    } else {
        format!("{}; {backends}", e.devices.join("; "))
    }
}

/// A number with fixed decimals, or `—` when there is none.
pub fn fmt_num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "—".to_string(),
    }
}

/// Bytes as MiB/GiB (binary units), or `—`.
pub fn fmt_bytes(v: Option<u64>) -> String {
    match v {
        None => "—".to_string(),
        Some(b) if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        Some(b) => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
    }
}

/// A share 0..1 as a percentage, or `—`.
pub(crate) fn fmt_pct(v: Option<f64>) -> String {
    v.map_or("—".to_string(), |x| format!("{:.1}%", x * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_name_files() {
        assert_eq!("md".parse::<Format>().unwrap(), Format::Markdown);
        assert_eq!("Markdown".parse::<Format>().unwrap(), Format::Markdown);
        assert_eq!("HTML".parse::<Format>().unwrap(), Format::Html);
        assert!("pdf".parse::<Format>().is_err());
        let names: Vec<_> = Format::ALL.iter().map(|f| f.file_name()).collect();
        assert_eq!(
            names,
            ["report.json", "report.csv", "report.md", "report.html"]
        );
    }

    #[test]
    fn write_all_writes_four_files() {
        let data = testdata::sample_run();
        let dir = tempfile::tempdir().unwrap();
        let paths = write_all(&data, &dir.path().join("out")).unwrap();
        assert_eq!(paths.len(), 4);
        for p in &paths {
            assert!(std::fs::metadata(p).unwrap().len() > 100, "{p:?}");
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

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
