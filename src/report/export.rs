//! Every request record of a run, for people who analyse in pandas, a notebook or a
//! spreadsheet (`hearth runs export`). JSON Lines round-trips the stored records exactly; CSV
//! flattens them (lists and the server's timings as JSON text in their cell) and adds the two
//! latencies people look for first.

use std::str::FromStr;

use super::latency;
use super::ReportError;
use crate::store::record::{RequestRecord, RunData};

/// How the records are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line: the stored record plus `run_id`.
    JsonLines,
    /// A header and one row per request.
    Csv,
}

impl FromStr for ExportFormat {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Ok(Self::JsonLines),
            "csv" => Ok(Self::Csv),
            _ => Err(ReportError::UnknownExportFormat(s.to_string())),
        }
    }
}

/// The CSV columns, in order (docs/report.md lists them).
pub const CSV_COLUMNS: &[&str] = &[
    "run_id",
    "model",
    "level",
    "round",
    "seq",
    "prompt_id",
    "status",
    "http_status",
    "error",
    "scheduled_ms",
    "sent_ms",
    "first_byte_ms",
    "first_chunk_ms",
    "first_token_ms",
    "end_ms",
    "ttft_ms",
    "e2el_ms",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "token_source",
    "counted_completion_tokens",
    "chunk_ms",
    "server_timings",
    "output",
];

/// The run's request records in `format`, in stored order (model, level, round, seq).
pub fn export_requests(data: &RunData, format: ExportFormat) -> Result<String, ReportError> {
    match format {
        ExportFormat::JsonLines => {
            let mut out = String::new();
            for r in &data.requests {
                let mut value = serde_json::to_value(r)?;
                if let serde_json::Value::Object(map) = &mut value {
                    map.insert("run_id".into(), data.run.id.clone().into());
                }
                out.push_str(&serde_json::to_string(&value)?);
                out.push('\n');
            }
            Ok(out)
        }
        ExportFormat::Csv => {
            let mut w = ::csv::Writer::from_writer(Vec::new());
            w.write_record(CSV_COLUMNS)?;
            for r in &data.requests {
                w.write_record(csv_row(&data.run.id, r)?)?;
            }
            let bytes = w.into_inner().map_err(|e| ReportError::Io {
                path: "export.csv".into(),
                source: e.into_error(),
            })?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
    }
}

fn csv_row(run_id: &str, r: &RequestRecord) -> Result<Vec<String>, ReportError> {
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    let int = |v: Option<u64>| v.map_or(String::new(), |x| x.to_string());
    Ok(vec![
        run_id.to_string(),
        r.model.clone(),
        r.level.clone(),
        r.round.to_string(),
        r.seq.to_string(),
        r.prompt_id.clone(),
        enum_text(&r.status)?,
        r.http_status.map_or(String::new(), |s| s.to_string()),
        r.error.clone().unwrap_or_default(),
        r.scheduled_ms.to_string(),
        opt(r.sent_ms),
        opt(r.first_byte_ms),
        opt(r.first_chunk_ms),
        opt(r.first_token_ms),
        opt(r.end_ms),
        opt(latency::ttft_ms(r)),
        opt(latency::e2el_ms(r)),
        int(r.prompt_tokens),
        int(r.completion_tokens),
        int(r.cached_tokens),
        enum_text(&r.token_source)?,
        int(r.counted_completion_tokens),
        serde_json::to_string(&r.chunk_ms)?,
        r.server_timings
            .as_ref()
            .map_or(Ok(String::new()), serde_json::to_string)?,
        r.output.clone(),
    ])
}

/// A unit enum as its stored name (`ok`, `usage`).
fn enum_text(v: &impl serde::Serialize) -> Result<String, ReportError> {
    Ok(serde_json::to_value(v)?
        .as_str()
        .map(str::to_string)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdata::sample_run;

    #[test]
    fn json_lines_round_trip_the_stored_records() {
        let data = sample_run();
        let text = export_requests(&data, ExportFormat::JsonLines).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), data.requests.len());
        for (line, stored) in lines.iter().zip(&data.requests) {
            let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["run_id"], data.run.id.as_str());
            value.as_object_mut().unwrap().remove("run_id");
            let back: RequestRecord = serde_json::from_value(value).unwrap();
            assert_eq!(&back, stored);
        }
    }

    #[test]
    fn csv_has_a_row_per_request_with_its_figures() {
        let data = sample_run();
        let text = export_requests(&data, ExportFormat::Csv).unwrap();
        let mut reader = ::csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            CSV_COLUMNS
        );
        let col = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
        let rows: Vec<::csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), data.requests.len());
        for (row, r) in rows.iter().zip(&data.requests) {
            assert_eq!(&row[col("model")], r.model);
            assert_eq!(row[col("seq")].parse::<u32>().unwrap(), r.seq);
            assert_eq!(
                row[col("scheduled_ms")].parse::<f64>().unwrap(),
                r.scheduled_ms
            );
            let chunks: Vec<f64> = serde_json::from_str(&row[col("chunk_ms")]).unwrap();
            assert_eq!(chunks, r.chunk_ms);
            assert_eq!(&row[col("output")], r.output);
            match latency::ttft_ms(r) {
                Some(t) => assert_eq!(row[col("ttft_ms")].parse::<f64>().unwrap(), t),
                None => assert_eq!(&row[col("ttft_ms")], ""),
            }
        }
        assert!(rows.iter().any(|r| &r[col("status")] == "error"));
        assert!("xml".parse::<ExportFormat>().is_err());
    }
}
