//! Reports rendered from stored runs (never from a benchmark's memory): JSON, CSV, Markdown, a
//! self-contained HTML page with charts, the terminal table `hearth bench` prints, and
//! `compare` between two runs.
//!
//! The flow: `summary` turns a stored run into a `run_summary::RunSummary` (the latency
//! metrics of one request are in `latency`, answer quality in `quality`, the pick in
//! `recommend`); `sections` builds each table once as a `table::Table`; `markdown`, `html`,
//! `csv` and `terminal` lay tables out, `json` serializes the summary.

mod charts;
pub mod compare;
mod csv;
pub mod definitions;
pub mod export;
mod format;
mod html;
pub mod json;
pub mod latency;
mod markdown;
pub mod multi;
mod outline;
pub mod quality;
pub mod recommend;
pub mod run_summary;
mod sections;
pub mod summary;
pub mod sweep;
mod table;
mod terminal;
pub mod tune;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::store::record::RunData;

pub use compare::{
    calibrate, compare, compare_within, Calibration, CompareError, CompareOptions, CompareRow,
    Comparison, Pairing, Verdict,
};
/// `YYYY-MM-DD HH:MM:SS UTC`, as every report prints times; the CLI shares it.
pub use format::utc as format_utc;
pub use format::{fmt_bytes, fmt_num, percent};
pub use json::{ReportDocument, SCHEMA};
pub use summary::{summarize, LevelSummary, ModelSummary, RunSummary};
pub use terminal::{terminal_table, Width as TerminalWidth, FIT_COLUMNS};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The format name is not one of json, csv, md, markdown, html.
    #[error("unknown report format {0:?} (expected json, csv, md or html)")]
    UnknownFormat(String),
    /// CSV was asked for a report of several runs, which has no one table to be.
    #[error("a report of several runs is json, md or html, not csv (`hearth runs export RUN --format csv` gives each run's request records)")]
    SeveralRunsAsCsv,
    /// The export format name is not jsonl or csv.
    #[error("unknown export format {0:?} (expected jsonl or csv)")]
    UnknownExportFormat(String),
    /// Serializing the JSON report failed.
    #[error("JSON report: {0}")]
    Json(#[from] serde_json::Error),
    /// Writing the CSV report failed.
    #[error("CSV report: {0}")]
    Csv(#[from] ::csv::Error),
    /// A stored tune's document cannot be read, or was asked for as CSV.
    #[error("tune report: {0}")]
    Tune(String),
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
        crate::atomic_file::write(&path, text.as_bytes()).map_err(io(&path))?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdata;

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
}
