//! The run history over HTTP, for the web UI's Runs page and scripts: the stored runs and
//! tunes, a run's report (one run, or several as the multi-run report), the compare verdict
//! of two runs, and people's scores of a run's answers (stored as `annotate import` stores
//! them). The store is opened per request, off the async threads.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::handlers::{body_bytes, finish};
use super::request::parse_body;
use super::AppState;
use crate::eval::annotate::{self, AnnotationRow};
use crate::report::{self, CompareOptions, Format};
use crate::store::{Store, StoreError};

type Shared = State<Arc<AppState>>;

/// What a report of stored runs may look like to a browser: its own inline stylesheet and
/// nothing else (a report has no scripts; model answers in it are escaped).
const REPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// Runs `work` on the history store, off the async threads.
async fn with_store<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let Some(location) = state.history.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_history",
            "this server keeps no run history",
        ));
    };
    tokio::task::spawn_blocking(move || {
        let mut store = Store::open(&location).map_err(ApiError::internal)?;
        work(&mut store)
    })
    .await
    .map_err(ApiError::internal)?
}

/// An unknown run id is the request's mistake; anything else the store's.
fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::RunNotFound(_)
        | StoreError::TuneNotFound(_)
        | StoreError::AmbiguousRun { .. }
        | StoreError::AnswerNotFound { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "run_not_found", e.to_string())
        }
        e => ApiError::internal(e),
    }
}

/// `GET /api/runs`: every run, newest first (id, start, status, models, request counts), and
/// the tunes.
pub(super) async fn runs(State(state): Shared) -> Response {
    let result = with_store(&state, |store| {
        let runs = store.list_runs().map_err(store_error)?;
        let tunes = store.list_tunes().map_err(store_error)?;
        let tunes: Vec<_> = tunes
            .iter()
            .map(|t| {
                json!({
                    "id": t.id,
                    "started_unix_ms": t.started_unix_ms,
                    "status": t.status,
                    "summary": t.summary,
                })
            })
            .collect();
        Ok(Json(json!({"runs": runs, "tunes": tunes})).into_response())
    })
    .await;
    finish(&state, "/api/runs", result)
}

#[derive(Deserialize)]
pub(super) struct ReportQuery {
    /// Comma-separated run ids (or `latest`, or unique prefixes).
    runs: String,
    /// `html` (default), `md`, `json` or `csv`.
    #[serde(default)]
    format: Option<String>,
}

/// `GET /api/report?runs=A[,B…]&format=html`: the report of one run (a tune's for a
/// `tune-…` id), or the multi-run report of several.
pub(super) async fn report_of(State(state): Shared, Query(q): Query<ReportQuery>) -> Response {
    let result =
        async {
            let format: Format =
                q.format.as_deref().unwrap_or("html").parse().map_err(
                    |e: report::ReportError| ApiError::bad_param("format", e.to_string()),
                )?;
            let ids: Vec<String> = q
                .runs
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if ids.is_empty() {
                return Err(ApiError::bad_param("runs", "name at least one run"));
            }
            let text = with_store(&state, move |store| {
                if let [one] = ids.as_slice() {
                    if one.starts_with("tune") {
                        let tune = store.load_tune(one).map_err(store_error)?;
                        return report::tune::render(&tune, format).map_err(ApiError::internal);
                    }
                }
                let mut runs = Vec::with_capacity(ids.len());
                for id in &ids {
                    let id = store.resolve(id).map_err(store_error)?;
                    runs.push(store.load_run(&id).map_err(store_error)?);
                }
                match runs.as_slice() {
                    [one] => report::render(one, format),
                    many => report::multi::render_many(many, format),
                }
                .map_err(ApiError::internal)
            })
            .await?;
            let media = match format {
                Format::Html => "text/html; charset=utf-8",
                Format::Json => "application/json",
                Format::Csv => "text/csv; charset=utf-8",
                _ => "text/markdown; charset=utf-8",
            };
            Ok((
                [
                    (header::CONTENT_TYPE, media),
                    (header::CONTENT_SECURITY_POLICY, REPORT_CSP),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                text,
            )
                .into_response())
        }
        .await;
    finish(&state, "/api/report", result)
}

#[derive(Deserialize)]
pub(super) struct CompareQuery {
    /// The baseline run.
    a: String,
    /// The candidate run; without it, the configurations of `a` against its first.
    #[serde(default)]
    b: Option<String>,
    /// Smallest change (percent) that can count (default 5).
    #[serde(default)]
    threshold: Option<f64>,
}

/// `GET /api/compare?a=RUN&b=RUN`: `hearth compare`'s verdict as JSON.
pub(super) async fn compare(State(state): Shared, Query(q): Query<CompareQuery>) -> Response {
    let result = async {
        let mut options = CompareOptions::default();
        if let Some(t) = q.threshold {
            if !t.is_finite() || t < 0.0 {
                return Err(ApiError::bad_param(
                    "threshold",
                    "a percentage of at least 0",
                ));
            }
            options.threshold_pct = t;
        }
        let comparison = with_store(&state, move |store| {
            let a = store.resolve(&q.a).map_err(store_error)?;
            let a = store.load_run(&a).map_err(store_error)?;
            match q.b {
                Some(b) => {
                    let b = store.resolve(&b).map_err(store_error)?;
                    let b = store.load_run(&b).map_err(store_error)?;
                    Ok(report::compare(&a, &b, &options))
                }
                None => report::compare_within(&a, &options)
                    .map_err(|e| ApiError::bad_param("b", e.to_string())),
            }
        })
        .await?;
        let mut body = serde_json::to_value(&comparison).map_err(ApiError::internal)?;
        body["regression"] = json!(comparison.has_regression());
        Ok(Json(body).into_response())
    }
    .await;
    finish(&state, "/api/compare", result)
}

/// `GET /api/runs/{id}/answers`: the run's distinct answers, as `annotate export` writes them
/// (with the judge's score and any earlier human score left blank to fill).
pub(super) async fn answers(State(state): Shared, Path(id): Path<String>) -> Response {
    let result = with_store(&state, move |store| {
        let id = store.resolve(&id).map_err(store_error)?;
        let data = store.load_run(&id).map_err(store_error)?;
        let rows = annotate::export_rows(&data);
        Ok(Json(json!({"run": id, "rows": rows})).into_response())
    })
    .await;
    finish(&state, "/api/runs/answers", result)
}

#[derive(Deserialize)]
struct Annotations {
    /// Who scored.
    annotator: String,
    /// Rows of [`answers`] with `score` (1–5, or blank) and `comment` filled.
    rows: Vec<AnnotationRow>,
}

/// `POST /api/runs/{id}/annotations {"annotator", "rows"}`: stores people's scores as
/// `hearth annotate import` does: all rows or none, each bad row named.
pub(super) async fn annotate(
    State(state): Shared,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body: Annotations = parse_body(&body_bytes(body)?)?;
        let annotator = body.annotator.trim().to_string();
        if annotator.is_empty() {
            return Err(ApiError::bad_param("annotator", "say who scored"));
        }
        with_store(&state, move |store| {
            let id = store.resolve(&id).map_err(store_error)?;
            let data = store.load_run(&id).map_err(store_error)?;
            let rows: Vec<(String, AnnotationRow)> = body
                .rows
                .into_iter()
                .enumerate()
                .map(|(i, r)| (format!("row {}", i + 1), r))
                .collect();
            let scores = annotate::import_scores(&data, &rows, &annotator, crate::store::unix_ms())
                .map_err(|errors| {
                    let listed: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                    ApiError::bad_param("rows", listed.join("; "))
                })?;
            store.upsert_scores(&id, &scores).map_err(store_error)?;
            let by_model = scores.iter().fold(HashMap::new(), |mut m, s| {
                *m.entry(s.model.clone()).or_insert(0u32) += 1;
                m
            });
            Ok(
                Json(json!({"run": id, "stored": scores.len(), "by_model": by_model}))
                    .into_response(),
            )
        })
        .await
    }
    .await;
    finish(&state, "/api/runs/annotations", result)
}
