//! The HTTP handlers: OpenAI endpoints under `/v1`, model lifecycle under `/api`, llama-server's
//! `/tokenize`, health and metrics. Each reads its body, does one thing, and records its
//! outcome in the metrics; generation itself is in `generation`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::error::ApiError;
use super::generation::{generate, Kind};
use super::registry::RegistryError;
use super::request::{parse_body, ChatRequest, CompletionRequest};
use super::{unix_now, AppState};
use crate::engine::Prompt;
use crate::openai::{self, TokenizeRequest, TokenizeResponse};

type Shared = State<Arc<AppState>>;

/// Reads the body, mapping an oversized one to 413 and any other failure to 400.
pub(super) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "request_too_large"
        } else {
            "invalid_body"
        };
        ApiError::new(status, code, rejection.body_text())
    })
}

/// Records the outcome of a request in the metrics and turns errors into responses.
pub(super) fn finish(
    state: &AppState,
    endpoint: &str,
    result: Result<Response, ApiError>,
) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    state.metrics.request(endpoint, response.status().as_u16());
    response
}

pub(super) async fn chat_completions(
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let request: ChatRequest = parse_body(&body_bytes(body)?)?;
        let messages = request.messages()?;
        let tools = request.tools()?;
        generate(
            &state,
            Kind::Chat,
            &request.common,
            Prompt::Chat(messages),
            tools,
            None,
        )
        .await
    }
    .await;
    finish(&state, "/v1/chat/completions", result)
}

pub(super) async fn completions(
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let request: CompletionRequest = parse_body(&body_bytes(body)?)?;
        let prompt = request.prompt()?;
        // OpenAI's legacy completions default to 16 tokens.
        generate(
            &state,
            Kind::Text,
            &request.common,
            Prompt::Text(prompt),
            None,
            Some(16),
        )
        .await
    }
    .await;
    finish(&state, "/v1/completions", result)
}

fn model_object(id: &str, loaded: bool) -> openai::Model {
    openai::Model::new(id, unix_now(), "hearth", Some(loaded))
}

pub(super) async fn list_models(State(state): Shared) -> Response {
    let loaded: Vec<String> = state
        .registry
        .loaded()
        .into_iter()
        .map(|m| m.model)
        .collect();
    let mut ids = state.registry.available();
    for id in &loaded {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    let data = ids
        .iter()
        .map(|id| model_object(id, loaded.contains(id)))
        .collect();
    finish(
        &state,
        "/v1/models",
        Ok(Json(openai::ModelList::new(data)).into_response()),
    )
}

pub(super) async fn get_model(State(state): Shared, Path(id): Path<String>) -> Response {
    let result = match state.registry.catalog().get(&id) {
        Ok(entry) => {
            let loaded = state
                .registry
                .loaded()
                .iter()
                .any(|m| m.model == entry.alias);
            Ok(Json(model_object(&entry.alias, loaded)).into_response())
        }
        Err(e) => Err(ApiError::from(RegistryError::Unknown(e))),
    };
    finish(&state, "/v1/models/{id}", result)
}

/// Body of `/api/load` and `/api/unload`.
#[derive(serde::Deserialize)]
struct ModelBody {
    model: String,
    /// `/api/load` only: the offload the caller expects. One server offloads every model the
    /// same way (`serve --gpu-layers`), so a different request is refused, not ignored.
    #[serde(default)]
    gpu_layers: Option<crate::engine::devices::GpuLayers>,
}

pub(super) async fn ps(State(state): Shared) -> Response {
    let models = state.registry.loaded();
    finish(
        &state,
        "/api/ps",
        Ok(Json(json!({"models": models})).into_response()),
    )
}

pub(super) async fn load(State(state): Shared, body: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let body: ModelBody = parse_body(&body_bytes(body)?)?;
        let serving = state.registry.offload().gpu_layers;
        if let Some(asked) = body.gpu_layers.filter(|g| *g != serving) {
            return Err(ApiError::bad_param(
                "gpu_layers",
                format!(
                    "this server offloads {serving} layers for every model; restart it with `hearth serve --gpu-layers {asked}` to load with {asked}"
                ),
            ));
        }
        let backend = state.registry.get(&body.model).await?;
        let facts = backend.facts();
        Ok(
            Json(json!({"model": facts.alias, "status": "loaded", "load_ms": facts.load_ms}))
                .into_response(),
        )
    }
    .await;
    finish(&state, "/api/load", result)
}

/// Counts tokens with the model's own tokenizer (no special tokens added), as llama-server's
/// `/tokenize` does, so clients such as `hearth bench` can count tokens a server did not report.
pub(super) async fn tokenize(
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body: TokenizeRequest = parse_body(&body_bytes(body)?)?;
        let backend = state.registry.get(&body.model).await?;
        let tokens = backend.tokenize(&body.content).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "tokenize_failed", e.to_string())
        })?;
        Ok(Json(TokenizeResponse { tokens }).into_response())
    }
    .await;
    finish(&state, "/tokenize", result)
}

/// Body of `/api/cache/warm`: the model and one of a system prompt, messages, or raw text.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WarmBody {
    model: String,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    messages: Option<Vec<crate::engine::ChatMessage>>,
    #[serde(default)]
    prompt: Option<String>,
}

/// Computes a prompt once so that later requests starting with it find it (a long system
/// prompt or document): hearth's extension, as Ollama's empty-prompt preload but for a prompt.
pub(super) async fn warm(State(state): Shared, body: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let body: WarmBody = parse_body(&body_bytes(body)?)?;
        let prompt = match (body.system, body.messages, body.prompt) {
            (Some(system), None, None) => {
                Prompt::Chat(vec![crate::engine::ChatMessage::new("system", system)])
            }
            (None, Some(messages), None) if !messages.is_empty() => Prompt::Chat(messages),
            (None, None, Some(text)) => Prompt::Text(text),
            _ => return Err(ApiError::bad_param(
                "system",
                "give exactly one of `system` (a system prompt), `messages` or `prompt` (raw text)",
            )),
        };
        let backend = state.registry.get(&body.model).await?;
        let done = crate::engine::warm(backend.as_ref(), prompt).await?;
        Ok(Json(json!({
            "model": backend.facts().alias,
            "prompt_tokens": done.usage.prompt_tokens,
            "cached_tokens": done.usage.cached_prompt_tokens,
            "prompt_ms": done.timings.prompt_ms,
        }))
        .into_response())
    }
    .await;
    finish(&state, "/api/cache/warm", result)
}

pub(super) async fn unload(State(state): Shared, body: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let body: ModelBody = parse_body(&body_bytes(body)?)?;
        if state.registry.unload(&body.model).await {
            Ok(Json(json!({"model": body.model, "status": "unloaded"})).into_response())
        } else {
            Err(ApiError {
                status: StatusCode::NOT_FOUND,
                message: format!("model `{}` is not loaded", body.model),
                param: Some("model".into()),
                code: Some("model_not_loaded"),
            })
        }
    }
    .await;
    finish(&state, "/api/unload", result)
}

pub(super) async fn status(State(state): Shared) -> Response {
    let loaded = state.registry.loaded();
    let body = json!({
        "status": if state.registry.is_loading() { "loading" } else { "ok" },
        "endpoint": state.endpoint,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs_f64(),
        "pid": std::process::id(),
        "models_loaded": loaded.len(),
        "active_requests": loaded.iter().map(|m| m.stats.active).sum::<usize>(),
        "resident_bytes": crate::engine::memory::own_resident_bytes(),
        "memory_budget_bytes": state.registry.memory_budget(),
    });
    finish(&state, "/api/status", Ok(Json(body).into_response()))
}

pub(super) async fn health(State(state): Shared) -> Response {
    if state.registry.is_loading() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "loading"})),
        )
            .into_response()
    } else {
        Json(json!({"status": "ok"})).into_response()
    }
}

pub(super) async fn metrics(State(state): Shared) -> Response {
    let loaded = state.registry.loaded();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&loaded),
    )
        .into_response()
}

pub(super) async fn not_found(State(state): Shared, uri: Uri) -> Response {
    finish(
        &state,
        "unknown",
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_url",
            format!("no route for {}", uri.path()),
        )),
    )
}
