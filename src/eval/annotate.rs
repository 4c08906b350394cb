//! Human annotation: a file people fill in a spreadsheet, merged back as scores.
//!
//! The export has one row per distinct answer (model, prompt, text), since at temperature 0 a
//! model repeats the same answer in every round and nobody should score it three times. A
//! row's `id` names the model, the prompt and a hash of the answer's text, so an import can
//! tell a row that still matches a stored answer from one that does not. Imports are
//! all-or-nothing: every bad row is reported with its line, and nothing is written unless
//! every row is good.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::judge::scorable;
use super::rubric::Rubric;
use crate::store::record::{RequestRecord, RunData, ScoreRecord, ScoreSource};

/// The format version written into the JSON export.
pub const FORMAT: &str = "hearth.annotations/1";

/// One row of the annotation file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AnnotationRow {
    /// `model|prompt_id|hash`: which answer the row scores.
    pub id: String,
    /// The run.
    #[serde(default)]
    pub run: String,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// The prompt's id.
    #[serde(default)]
    pub prompt_id: String,
    /// The prompt, for the annotator to read.
    #[serde(default)]
    pub prompt: String,
    /// Points a good answer covers, `; `-separated.
    #[serde(default)]
    pub facets: String,
    /// The answer to score.
    #[serde(default)]
    pub response: String,
    /// How many stored answers the row stands for (rounds and levels with the same text).
    /// Informational: a spreadsheet that blanks or mangles it changes nothing.
    #[serde(default, deserialize_with = "lenient_count")]
    pub answers: u64,
    /// The judge's score, when there is one, for reference.
    #[serde(default)]
    pub judge_score: String,
    /// The judge's reason.
    #[serde(default)]
    pub judge_reason: String,
    /// To fill: a whole number from 1 to 5 (blank = not scored).
    #[serde(default)]
    pub score: String,
    /// To fill, optional.
    #[serde(default)]
    pub comment: String,
}

fn lenient_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let value = serde_json::Value::deserialize(d).unwrap_or_default();
    Ok(match value {
        serde_json::Value::Number(n) => n.as_f64().unwrap_or(0.0) as u64,
        serde_json::Value::String(s) => s.trim().parse::<f64>().unwrap_or(0.0) as u64,
        _ => 0,
    })
}

/// The JSON export: the rows with the run and format named once more.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AnnotationFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// The run.
    #[serde(default)]
    pub run: String,
    /// One row per distinct answer.
    pub rows: Vec<AnnotationRow>,
}

/// A row that cannot be imported, with where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct RowError {
    /// `line 7` (CSV, counting the header as line 1) or `row 3` (JSON, from 1).
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// The id of an answer: model, prompt, and the first 12 hex digits of its text's SHA-256.
pub fn answer_id(r: &RequestRecord) -> String {
    let hash = Sha256::digest(r.output.as_bytes());
    format!("{}|{}|{}", r.model, r.prompt_id, &hex::encode(hash)[..12])
}

/// The rows to annotate: every distinct counted successful answer of the run, in stored
/// order, with the judge's score beside it when it has one.
pub fn export_rows(data: &RunData) -> Vec<AnnotationRow> {
    let rubric = Rubric::of(data);
    let judged: HashMap<(&str, &str, u32, u32), &ScoreRecord> = data
        .scores
        .iter()
        .filter(|s| s.source == ScoreSource::Judge)
        .map(|s| ((s.model.as_str(), s.level.as_str(), s.round, s.seq), s))
        .collect();
    let mut rows: Vec<AnnotationRow> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for r in scorable(data) {
        let id = answer_id(r);
        if let Some(&i) = index.get(&id) {
            rows[i].answers += 1;
            continue;
        }
        let prompt = rubric.prompt(&r.prompt_id);
        let judge = judged.get(&(r.model.as_str(), r.level.as_str(), r.round, r.seq));
        index.insert(id.clone(), rows.len());
        rows.push(AnnotationRow {
            id,
            run: data.run.id.clone(),
            model: r.model.clone(),
            prompt_id: r.prompt_id.clone(),
            prompt: prompt.map(|p| p.prompt.clone()).unwrap_or_default(),
            facets: prompt.map(|p| p.facets.join("; ")).unwrap_or_default(),
            response: r.output.clone(),
            answers: 1,
            judge_score: judge
                .and_then(|s| s.score)
                .map(|s| s.to_string())
                .unwrap_or_default(),
            judge_reason: judge.and_then(|s| s.reason.clone()).unwrap_or_default(),
            score: String::new(),
            comment: String::new(),
        });
    }
    rows
}

/// The annotation file as CSV (header first; every field quoted where needed).
pub fn to_csv(rows: &[AnnotationRow]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if rows.is_empty() {
        w.write_record(CSV_HEADER)?;
    }
    for row in rows {
        w.serialize(row)?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

const CSV_HEADER: [&str; 12] = [
    "id",
    "run",
    "model",
    "prompt_id",
    "prompt",
    "facets",
    "response",
    "answers",
    "judge_score",
    "judge_reason",
    "score",
    "comment",
];

/// Reads a filled annotation file: JSON when it starts with `{` or `[`, CSV otherwise. Rows
/// are returned with their location; a file that cannot be parsed at all is one error.
pub fn parse(text: &str) -> Result<Vec<(String, AnnotationRow)>, RowError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let rows: Vec<AnnotationRow> = match serde_json::from_str::<AnnotationFile>(trimmed) {
            Ok(file) => file.rows,
            Err(_) => serde_json::from_str(trimmed).map_err(|e| RowError {
                location: format!("line {}", e.line()),
                message: format!("not an annotation file: {e}"),
            })?,
        };
        return Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, r)| (format!("row {}", i + 1), r))
            .collect());
    }
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(trimmed.as_bytes());
    let headers = reader.headers().map_err(|e| RowError {
        location: "line 1".into(),
        message: format!("unreadable header: {e}"),
    })?;
    for needed in ["id", "score"] {
        if !headers.iter().any(|h| h.trim() == needed) {
            return Err(RowError {
                location: "line 1".into(),
                message: format!(
                    "no `{needed}` column (export a fresh file with `hearth annotate export`)"
                ),
            });
        }
    }
    let headers = headers.clone();
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        // A quoted answer may span several lines: the record's own position names its line.
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Err(RowError {
                    location: format!("line {line}"),
                    message: format!("unreadable row: {e}"),
                });
            }
        }
        let location = format!("line {}", record.position().map_or(0, |p| p.line()));
        let row = record
            .deserialize::<AnnotationRow>(Some(&headers))
            .map_err(|e| RowError {
                location: location.clone(),
                message: format!("unreadable row: {e}"),
            })?;
        rows.push((location, row));
    }
    Ok(rows)
}

/// Turns filled rows into human scores for `data`: every row must name a stored answer of
/// this run and carry a whole-number score from 1 to 5, or a blank score (skipped). Returns
/// the scores, or every bad row.
pub fn import_scores(
    data: &RunData,
    rows: &[(String, AnnotationRow)],
    annotator: &str,
    now_unix_ms: i64,
) -> Result<Vec<ScoreRecord>, Vec<RowError>> {
    let mut by_id: HashMap<String, Vec<&RequestRecord>> = HashMap::new();
    for r in scorable(data) {
        by_id.entry(answer_id(r)).or_default().push(r);
    }
    let mut errors = Vec::new();
    let mut scores = Vec::new();
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (location, row) in rows {
        let fail = |message: String| RowError {
            location: location.clone(),
            message,
        };
        if !row.run.trim().is_empty() && row.run.trim() != data.run.id {
            errors.push(fail(format!(
                "belongs to run {}, not {}",
                row.run.trim(),
                data.run.id
            )));
            continue;
        }
        let id = row.id.trim();
        let Some(answers) = by_id.get(id) else {
            errors.push(fail(format!(
                "unknown id `{id}`: no such answer in run {}",
                data.run.id
            )));
            continue;
        };
        let text = row.score.trim();
        if text.is_empty() {
            continue;
        }
        let score = match text.parse::<f64>() {
            Ok(v) if v.fract() == 0.0 && (1.0..=5.0).contains(&v) => v as u8,
            _ => {
                errors.push(fail(format!(
                    "score `{text}` is not a whole number from 1 to 5"
                )));
                continue;
            }
        };
        if let Some(earlier) = seen.insert(id, location) {
            errors.push(fail(format!("id `{id}` is scored twice (also {earlier})")));
            continue;
        }
        let comment = Some(row.comment.trim().to_string()).filter(|c| !c.is_empty());
        scores.extend(answers.iter().map(|r| ScoreRecord {
            model: r.model.clone(),
            level: r.level.clone(),
            round: r.round,
            seq: r.seq,
            source: ScoreSource::Human,
            scorer: annotator.to_string(),
            rubric_version: None,
            score: Some(score),
            reason: comment.clone(),
            raw: None,
            scored_unix_ms: now_unix_ms,
        }));
    }
    if errors.is_empty() {
        Ok(scores)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdata::sample_run;

    #[test]
    fn export_then_fill_then_import() {
        let data = sample_run();
        let rows = export_rows(&data);
        assert!(!rows.is_empty());
        let answers: u64 = rows.iter().map(|r| r.answers).sum();
        assert_eq!(answers as usize, scorable(&data).len());
        let mut filled = rows.clone();
        filled[0].score = "4".into();
        filled[0].comment = "clear, but long".into();
        let csv = to_csv(&filled).unwrap();
        let parsed = parse(&csv).unwrap();
        assert_eq!(parsed.len(), rows.len());
        assert_eq!(parsed[0].0, "line 2");
        let scores = import_scores(&data, &parsed, "ana", 1).unwrap();
        assert_eq!(scores.len() as u64, rows[0].answers);
        assert!(scores.iter().all(|s| s.score == Some(4)
            && s.source == ScoreSource::Human
            && s.reason.as_deref() == Some("clear, but long")));

        let json = serde_json::to_string(&AnnotationFile {
            format: FORMAT.into(),
            run: data.run.id.clone(),
            rows: filled,
        })
        .unwrap();
        assert_eq!(
            import_scores(&data, &parse(&json).unwrap(), "ana", 1).unwrap(),
            scores
        );
    }

    #[test]
    fn bad_rows_are_all_reported_by_line() {
        let data = sample_run();
        let mut rows = export_rows(&data);
        rows[0].score = "7".into();
        rows.push(AnnotationRow {
            id: "nobody|p1|000000000000".into(),
            score: "3".into(),
            ..Default::default()
        });
        let parsed = parse(&to_csv(&rows).unwrap()).unwrap();
        let errors = import_scores(&data, &parsed, "ana", 1).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].location, "line 2");
        assert!(errors[0].message.contains("`7`"));
        assert!(errors[1].message.contains("unknown id"));
        assert!(
            parse("id,run\nx,y\n").is_err(),
            "a file without a score column"
        );
    }
}
