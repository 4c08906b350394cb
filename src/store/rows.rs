//! Records ↔ rows: the column lists and the conversions between the shared record types and
//! the values bound to, or read from, SQL. Each table's columns are listed once here, so the
//! INSERT and the SELECT of a table can never disagree about their order.

use serde::{de::DeserializeOwned, Serialize};

use super::driver::{Kind, Row, Val};
use super::record::{LevelRecord, ModelRecord, RequestRecord, RunRecord, ScoreRecord};
use super::StoreError;

/// `runs` columns, in the order `run_values` binds and `run_from_row` reads them.
pub(crate) const RUN_COLUMNS: &[(&str, Kind)] = &[
    ("id", Kind::Text),
    ("started_unix_ms", Kind::I64),
    ("finished_unix_ms", Kind::I64),
    ("status", Kind::Text),
    ("options", Kind::Text),
    ("environment", Kind::Text),
    ("client", Kind::Text),
];

/// `models` columns after `run_id` and `ordinal`, which the store handles itself.
pub(crate) const MODEL_COLUMNS: &[(&str, Kind)] = &[
    ("model", Kind::Text),
    ("backend", Kind::Text),
    ("endpoint", Kind::Text),
    ("license", Kind::Text),
    ("tags", Kind::Text),
    ("quantization", Kind::Text),
    ("disk_bytes", Kind::I64),
    ("load_ms", Kind::F64),
    ("status", Kind::Text),
    ("error", Kind::Text),
];

/// `levels` columns after `run_id` and `ordinal`.
pub(crate) const LEVEL_COLUMNS: &[(&str, Kind)] = &[
    ("model", Kind::Text),
    ("level", Kind::Text),
    ("shape", Kind::Text),
    ("duration_ms", Kind::F64),
    ("peak_rss_bytes", Kind::I64),
    ("server_cpu_ms", Kind::F64),
    ("client_cpu_ms", Kind::F64),
    ("client_lag_p99_ms", Kind::F64),
    ("client_bottleneck", Kind::I32),
    ("energy_j", Kind::F64),
    ("energy_method", Kind::Text),
    ("samples", Kind::Text),
    ("server_metrics", Kind::Text),
    ("gpu", Kind::Text),
    ("stopped", Kind::Text),
    ("depth", Kind::I64),
];

/// `requests` columns after `run_id`.
pub(crate) const REQUEST_COLUMNS: &[(&str, Kind)] = &[
    ("model", Kind::Text),
    ("level", Kind::Text),
    ("round", Kind::I64),
    ("seq", Kind::I64),
    ("prompt_id", Kind::Text),
    ("scheduled_ms", Kind::F64),
    ("sent_ms", Kind::F64),
    ("first_byte_ms", Kind::F64),
    ("first_chunk_ms", Kind::F64),
    ("first_token_ms", Kind::F64),
    ("end_ms", Kind::F64),
    ("chunk_ms", Kind::Text),
    ("status", Kind::Text),
    ("http_status", Kind::I32),
    ("error", Kind::Text),
    ("prompt_tokens", Kind::I64),
    ("completion_tokens", Kind::I64),
    ("cached_tokens", Kind::I64),
    ("token_source", Kind::Text),
    ("counted_completion_tokens", Kind::I64),
    ("server_timings", Kind::Text),
    ("output", Kind::Text),
];

/// `scores` columns after `run_id`.
pub(crate) const SCORE_COLUMNS: &[(&str, Kind)] = &[
    ("model", Kind::Text),
    ("level", Kind::Text),
    ("round", Kind::I64),
    ("seq", Kind::I64),
    ("source", Kind::Text),
    ("scorer", Kind::Text),
    ("rubric_version", Kind::Text),
    ("score", Kind::I32),
    ("reason", Kind::Text),
    ("raw", Kind::Text),
    ("scored_unix_ms", Kind::I64),
];

/// `a, b, c` for a column list, each name prefixed with `prefix`.
pub(crate) fn names(columns: &[(&str, Kind)], prefix: &str) -> String {
    columns
        .iter()
        .map(|(name, _)| format!("{prefix}{name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `?, ?, ?` for `n` values.
pub(crate) fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The kinds of a column list, to read it back.
pub(crate) fn kinds(columns: &[(&str, Kind)]) -> Vec<Kind> {
    columns.iter().map(|(_, kind)| *kind).collect()
}

pub(crate) fn run_values(run: &RunRecord) -> Result<Vec<Val>, StoreError> {
    Ok(vec![
        text(&run.id),
        Val::I64(Some(run.started_unix_ms)),
        Val::I64(run.finished_unix_ms),
        Val::Text(Some(enum_text("runs.status", &run.status)?)),
        Val::Text(Some(json("runs.options", &run.options)?)),
        Val::Text(Some(json("runs.environment", &run.environment)?)),
        Val::Text(Some(json("runs.client", &run.client)?)),
    ])
}

pub(crate) fn run_from_row(mut row: Row) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id: row.text("runs.id")?,
        started_unix_ms: row.i64("runs.started_unix_ms")?,
        finished_unix_ms: row.opt_i64("runs.finished_unix_ms")?,
        status: from_enum_text("runs.status", row.text("runs.status")?)?,
        options: from_json("runs.options", &row.text("runs.options")?)?,
        environment: from_json("runs.environment", &row.text("runs.environment")?)?,
        client: from_json("runs.client", &row.text("runs.client")?)?,
    })
}

pub(crate) fn model_values(m: &ModelRecord) -> Result<Vec<Val>, StoreError> {
    Ok(vec![
        text(&m.model),
        text(&m.backend),
        text(&m.endpoint),
        Val::Text(m.license.clone()),
        Val::Text(Some(json("models.tags", &m.tags)?)),
        Val::Text(m.quantization.clone()),
        big("models.disk_bytes", m.disk_bytes)?,
        Val::F64(m.load_ms),
        Val::Text(Some(enum_text("models.status", &m.status)?)),
        Val::Text(m.error.clone()),
    ])
}

pub(crate) fn model_from_row(mut row: Row) -> Result<ModelRecord, StoreError> {
    Ok(ModelRecord {
        model: row.text("models.model")?,
        backend: row.text("models.backend")?,
        endpoint: row.text("models.endpoint")?,
        license: row.opt_text("models.license")?,
        tags: from_json("models.tags", &row.text("models.tags")?)?,
        quantization: row.opt_text("models.quantization")?,
        disk_bytes: row.opt_u64("models.disk_bytes")?,
        load_ms: row.opt_f64("models.load_ms")?,
        status: from_enum_text("models.status", row.text("models.status")?)?,
        error: row.opt_text("models.error")?,
    })
}

pub(crate) fn level_values(l: &LevelRecord) -> Result<Vec<Val>, StoreError> {
    Ok(vec![
        text(&l.model),
        text(&l.level),
        Val::Text(Some(json("levels.shape", &l.shape)?)),
        Val::F64(Some(l.duration_ms)),
        big("levels.peak_rss_bytes", l.peak_rss_bytes)?,
        Val::F64(l.server_cpu_ms),
        Val::F64(Some(l.client_cpu_ms)),
        Val::F64(Some(l.client_lag_p99_ms)),
        Val::I32(Some(i32::from(l.client_bottleneck))),
        Val::F64(l.energy_j),
        Val::Text(l.energy_method.clone()),
        Val::Text(Some(json("levels.samples", &l.samples)?)),
        Val::Text(opt_json(
            "levels.server_metrics",
            l.server_metrics.as_ref(),
        )?),
        Val::Text(opt_json("levels.gpu", l.gpu.as_ref())?),
        Val::Text(l.stopped.clone()),
        Val::I64(l.depth.map(i64::from)),
    ])
}

pub(crate) fn level_from_row(mut row: Row) -> Result<LevelRecord, StoreError> {
    Ok(LevelRecord {
        model: row.text("levels.model")?,
        level: row.text("levels.level")?,
        shape: from_json("levels.shape", &row.text("levels.shape")?)?,
        duration_ms: row.f64("levels.duration_ms")?,
        peak_rss_bytes: row.opt_u64("levels.peak_rss_bytes")?,
        server_cpu_ms: row.opt_f64("levels.server_cpu_ms")?,
        client_cpu_ms: row.f64("levels.client_cpu_ms")?,
        client_lag_p99_ms: row.f64("levels.client_lag_p99_ms")?,
        client_bottleneck: row.opt_i32("levels.client_bottleneck")?.unwrap_or(0) != 0,
        energy_j: row.opt_f64("levels.energy_j")?,
        energy_method: row.opt_text("levels.energy_method")?,
        samples: from_json("levels.samples", &row.text("levels.samples")?)?,
        server_metrics: opt_from_json(
            "levels.server_metrics",
            row.opt_text("levels.server_metrics")?,
        )?,
        gpu: opt_from_json("levels.gpu", row.opt_text("levels.gpu")?)?,
        stopped: row.opt_text("levels.stopped")?,
        depth: row
            .opt_u64("levels.depth")?
            .map(|d| u32::try_from(d).unwrap_or(u32::MAX)),
    })
}

pub(crate) fn request_values(r: &RequestRecord) -> Result<Vec<Val>, StoreError> {
    Ok(vec![
        text(&r.model),
        text(&r.level),
        Val::I64(Some(i64::from(r.round))),
        Val::I64(Some(i64::from(r.seq))),
        text(&r.prompt_id),
        Val::F64(Some(r.scheduled_ms)),
        Val::F64(r.sent_ms),
        Val::F64(r.first_byte_ms),
        Val::F64(r.first_chunk_ms),
        Val::F64(r.first_token_ms),
        Val::F64(r.end_ms),
        Val::Text(Some(json("requests.chunk_ms", &r.chunk_ms)?)),
        Val::Text(Some(enum_text("requests.status", &r.status)?)),
        Val::I32(r.http_status.map(i32::from)),
        Val::Text(r.error.clone()),
        big("requests.prompt_tokens", r.prompt_tokens)?,
        big("requests.completion_tokens", r.completion_tokens)?,
        big("requests.cached_tokens", r.cached_tokens)?,
        Val::Text(Some(enum_text("requests.token_source", &r.token_source)?)),
        big(
            "requests.counted_completion_tokens",
            r.counted_completion_tokens,
        )?,
        Val::Text(opt_json(
            "requests.server_timings",
            r.server_timings.as_ref(),
        )?),
        text(&r.output),
    ])
}

pub(crate) fn request_from_row(mut row: Row) -> Result<RequestRecord, StoreError> {
    Ok(RequestRecord {
        model: row.text("requests.model")?,
        level: row.text("requests.level")?,
        round: row.u32("requests.round")?,
        seq: row.u32("requests.seq")?,
        prompt_id: row.text("requests.prompt_id")?,
        scheduled_ms: row.f64("requests.scheduled_ms")?,
        sent_ms: row.opt_f64("requests.sent_ms")?,
        first_byte_ms: row.opt_f64("requests.first_byte_ms")?,
        first_chunk_ms: row.opt_f64("requests.first_chunk_ms")?,
        first_token_ms: row.opt_f64("requests.first_token_ms")?,
        end_ms: row.opt_f64("requests.end_ms")?,
        chunk_ms: from_json("requests.chunk_ms", &row.text("requests.chunk_ms")?)?,
        status: from_enum_text("requests.status", row.text("requests.status")?)?,
        http_status: row
            .opt_i32("requests.http_status")?
            .map(|v| {
                u16::try_from(v).map_err(|_| StoreError::Corrupt {
                    what: "requests.http_status",
                    detail: format!("{v} is not an HTTP status"),
                })
            })
            .transpose()?,
        error: row.opt_text("requests.error")?,
        prompt_tokens: row.opt_u64("requests.prompt_tokens")?,
        completion_tokens: row.opt_u64("requests.completion_tokens")?,
        cached_tokens: row.opt_u64("requests.cached_tokens")?,
        token_source: from_enum_text("requests.token_source", row.text("requests.token_source")?)?,
        counted_completion_tokens: row.opt_u64("requests.counted_completion_tokens")?,
        server_timings: opt_from_json(
            "requests.server_timings",
            row.opt_text("requests.server_timings")?,
        )?,
        output: row.text("requests.output")?,
    })
}

pub(crate) fn score_values(s: &ScoreRecord) -> Result<Vec<Val>, StoreError> {
    Ok(vec![
        text(&s.model),
        text(&s.level),
        Val::I64(Some(i64::from(s.round))),
        Val::I64(Some(i64::from(s.seq))),
        Val::Text(Some(enum_text("scores.source", &s.source)?)),
        text(&s.scorer),
        Val::Text(s.rubric_version.clone()),
        Val::I32(s.score.map(i32::from)),
        Val::Text(s.reason.clone()),
        Val::Text(s.raw.clone()),
        Val::I64(Some(s.scored_unix_ms)),
    ])
}

pub(crate) fn score_from_row(mut row: Row) -> Result<ScoreRecord, StoreError> {
    Ok(ScoreRecord {
        model: row.text("scores.model")?,
        level: row.text("scores.level")?,
        round: row.u32("scores.round")?,
        seq: row.u32("scores.seq")?,
        source: from_enum_text("scores.source", row.text("scores.source")?)?,
        scorer: row.text("scores.scorer")?,
        rubric_version: row.opt_text("scores.rubric_version")?,
        score: row
            .opt_i32("scores.score")?
            .map(|v| match u8::try_from(v) {
                Ok(s @ 1..=5) => Ok(s),
                _ => Err(StoreError::Corrupt {
                    what: "scores.score",
                    detail: format!("{v} is not a score from 1 to 5"),
                }),
            })
            .transpose()?,
        reason: row.opt_text("scores.reason")?,
        raw: row.opt_text("scores.raw")?,
        scored_unix_ms: row.i64("scores.scored_unix_ms")?,
    })
}

fn text(s: &str) -> Val {
    Val::Text(Some(s.to_string()))
}

/// A u64 as BIGINT; values above i64::MAX cannot be stored and are refused, not wrapped.
fn big(what: &'static str, v: Option<u64>) -> Result<Val, StoreError> {
    let v = v
        .map(|v| {
            i64::try_from(v).map_err(|_| StoreError::Unstorable {
                what,
                detail: format!("{v} does not fit a BIGINT"),
            })
        })
        .transpose()?;
    Ok(Val::I64(v))
}

fn json<T: Serialize + ?Sized>(what: &'static str, v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Unstorable {
        what,
        detail: e.to_string(),
    })
}

/// An optional JSON value; `None` is SQL NULL (not the JSON text `null`).
fn opt_json<T: Serialize>(what: &'static str, v: Option<&T>) -> Result<Option<String>, StoreError> {
    v.map(|v| json(what, v)).transpose()
}

fn opt_from_json<T: DeserializeOwned>(
    what: &'static str,
    s: Option<String>,
) -> Result<Option<T>, StoreError> {
    s.map(|s| from_json(what, &s)).transpose()
}

fn from_json<T: DeserializeOwned>(what: &'static str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

/// An enum as its serde name (`complete`, `timeout`…), so the column reads well in SQL and a
/// report can filter on it (`WHERE status = 'ok'`).
fn enum_text<T: Serialize>(what: &'static str, v: &T) -> Result<String, StoreError> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        other => Err(StoreError::Unstorable {
            what,
            detail: format!("not a unit enum: {other:?}"),
        }),
    }
}

fn from_enum_text<T: DeserializeOwned>(what: &'static str, s: String) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(s)).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}
