//! Models as the web UI and scripts manage them: the catalog with what fits here, the cache
//! (list, verify, remove) and `POST /api/pull`, a download that streams its progress as NDJSON
//! lines, as Ollama's `/api/pull` does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use super::error::ApiError;
use super::handlers::{body_bytes, finish};
use super::request::parse_body;
use super::AppState;
use crate::cache::DownloadProgress;
use crate::loader;

type Shared = State<Arc<AppState>>;

/// The context a catalog entry's memory is estimated at ("fits" in the catalog view): the
/// server's default for one sequence.
const FIT_CTX: u64 = 4096;

/// `GET /api/catalog`: every catalog entry with whether it is cached, loaded, and fits this
/// server's memory budget at [`FIT_CTX`] tokens of context.
pub(super) async fn catalog(State(state): Shared) -> Response {
    let registry = &state.registry;
    let budget = registry.memory_budget();
    let loaded: Vec<String> = registry.loaded().into_iter().map(|m| m.model).collect();
    let models: Vec<Value> = registry
        .catalog()
        .entries()
        .iter()
        .map(|e| {
            let estimate = registry.estimate(e, FIT_CTX);
            json!({
                "alias": e.alias,
                "family": e.family,
                "parameters": e.parameters,
                "quantization": e.quantization,
                "size_bytes": e.size_bytes(),
                "license": e.license,
                "tags": e.capabilities,
                "origin": e.origin,
                "upstream": e.upstream.is_some(),
                "shape_model": e.is_shape_model(),
                "has_shape": e.shape.is_some() && !e.is_shape_model(),
                "variant_of": e.lineage.as_ref().map(|l| l.source_alias.clone()),
                "downloadable": e.source.is_some(),
                "cached": loader::local_path(registry.cache(), e).is_some(),
                "loaded": loaded.contains(&e.alias),
                "memory_bytes": estimate.as_ref().map(|m| m.total_bytes()),
                "fits": estimate.map(|m| m.fits(budget)),
            })
        })
        .collect();
    let body = json!({"models": models, "memory_budget_bytes": budget, "fit_ctx": FIT_CTX});
    finish(&state, "/api/catalog", Ok(Json(body).into_response()))
}

/// `GET /api/cache`: the downloaded models (size, sha256, source).
pub(super) async fn cache(State(state): Shared) -> Response {
    let cache = state.registry.cache().clone();
    let result = tokio::task::spawn_blocking(move || cache.list())
        .await
        .map_err(ApiError::internal)
        .and_then(|listed| listed.map_err(ApiError::internal))
        .map(|models| Json(json!({"models": models})).into_response());
    finish(&state, "/api/cache", result)
}

#[derive(Deserialize)]
struct ModelName {
    model: String,
    #[serde(default = "yes")]
    stream: bool,
}

fn yes() -> bool {
    true
}

/// `POST /api/cache/verify {"model"}`: hashes the cached file again.
pub(super) async fn verify(State(state): Shared, body: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let body: ModelName = parse_body(&body_bytes(body)?)?;
        let cache = state.registry.cache().clone();
        let alias = body.model.clone();
        let found = tokio::task::spawn_blocking(move || cache.verify_one(&alias))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        let Some((model, outcome)) = found else {
            return Err(not_cached(&body.model));
        };
        Ok(Json(json!({"model": model, "outcome": outcome})).into_response())
    }
    .await;
    finish(&state, "/api/cache/verify", result)
}

/// `POST /api/cache/remove {"model"}`: deletes a cached model; refused while it is loaded.
pub(super) async fn remove(State(state): Shared, body: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let body: ModelName = parse_body(&body_bytes(body)?)?;
        if state
            .registry
            .loaded()
            .iter()
            .any(|m| m.model == body.model)
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "model_loaded",
                format!("{} is loaded: unload it first", body.model),
            ));
        }
        let cache = state.registry.cache().clone();
        let alias = body.model.clone();
        let removed = tokio::task::spawn_blocking(move || cache.remove(&alias))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        if !removed {
            return Err(not_cached(&body.model));
        }
        Ok(Json(json!({"model": body.model, "status": "removed"})).into_response())
    }
    .await;
    finish(&state, "/api/cache/remove", result)
}

fn not_cached(alias: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "model_not_found",
        format!("{alias} is not in the cache"),
    )
}

/// Shortest interval between two progress lines (the last one always goes).
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Download progress as NDJSON lines on a channel.
struct LineProgress {
    lines: mpsc::UnboundedSender<Value>,
    total: AtomicU64,
    completed: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl LineProgress {
    fn line(&self, force: bool) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if !force && last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let total = self.total.load(Ordering::Relaxed);
        let _ = self.lines.send(json!({
            "status": "downloading",
            "total": (total > 0).then_some(total),
            "completed": self.completed.load(Ordering::Relaxed),
        }));
    }
}

impl DownloadProgress for LineProgress {
    fn start(&self, _alias: &str, total: Option<u64>, already: u64) {
        self.total.store(total.unwrap_or(0), Ordering::Relaxed);
        self.completed.store(already, Ordering::Relaxed);
        self.line(true);
    }
    fn advance(&self, bytes: u64) {
        self.completed.fetch_add(bytes, Ordering::Relaxed);
        self.line(false);
    }
    fn finish(&self) {
        self.line(true);
    }
}

/// `POST /api/pull {"model", "stream"}`: downloads a catalog model into the cache. Streamed
/// (the default) the answer is `application/x-ndjson`: `{"status":"pulling"}`, then
/// `{"status":"downloading","total","completed"}` lines, then `{"status":"success", "path",
/// "sha256", "size_bytes"}` or `{"status":"error","error"}`. With `"stream": false` only the
/// last line is sent, with an error status when it failed. The download goes on to its end if
/// the client leaves (a second pull of the same model waits for it, then finds it cached).
pub(super) async fn pull(State(state): Shared, body: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let body: ModelName = parse_body(&body_bytes(body)?)?;
        let entry = state
            .registry
            .catalog()
            .get(&body.model)
            .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "model_not_found", e.to_string()))?
            .clone();
        if entry.source.is_none() && loader::local_path(state.registry.cache(), &entry).is_none() {
            return Err(ApiError::bad_param(
                "model",
                format!("{} has no download source in the catalog", entry.alias),
            ));
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
        let _ = tx.send(json!({"status": "pulling", "model": entry.alias}));
        let cache = state.registry.cache().clone();
        let progress = LineProgress {
            lines: tx.clone(),
            total: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            last: Mutex::new(None),
        };
        tokio::spawn(async move {
            let last = match loader::ensure_local(&cache, &entry, &progress).await {
                Ok(path) => {
                    let listed = cache.lookup(&entry.alias);
                    json!({
                        "status": "success",
                        "model": entry.alias,
                        "path": path,
                        "sha256": listed.as_ref().map(|m| m.sha256.clone()),
                        "size_bytes": listed.as_ref().map(|m| m.size_bytes),
                    })
                }
                Err(e) => json!({"status": "error", "model": entry.alias, "error": e.to_string()}),
            };
            let _ = tx.send(last);
        });
        if !body.stream {
            let mut last = Value::Null;
            while let Some(line) = rx.recv().await {
                last = line;
            }
            let status = if last["status"] == "success" {
                StatusCode::OK
            } else {
                StatusCode::BAD_GATEWAY
            };
            return Ok((status, Json(last)).into_response());
        }
        let lines = tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
            .map(|line| Ok::<_, std::convert::Infallible>(Bytes::from(format!("{line}\n"))));
        Ok((
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            Body::from_stream(lines),
        )
            .into_response())
    }
    .await;
    finish(&state, "/api/pull", result)
}
