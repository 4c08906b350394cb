//! Errors as OpenAI clients expect them: an HTTP status and the wire error body
//! (`crate::openai::ErrorBody`), mapped from engine and registry failures in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::registry::RegistryError;
use crate::catalog::CatalogError;
use crate::engine::EngineError;
use crate::openai::{ErrorBody, ErrorDetail};

/// An error as OpenAI clients expect it.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message.
    pub message: String,
    /// The offending request parameter, if any.
    pub param: Option<String>,
    /// Machine-readable code, if any.
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 about `param`.
    pub fn bad_param(param: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param: Some(param.to_string()),
            code: Some("invalid_value"),
        }
    }

    /// Any status with a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            param: None,
            code: Some(code),
        }
    }

    /// A 500 carrying what went wrong inside the server (an I/O or store error, a task that
    /// panicked), for endpoints whose failures are the server's, not the request's.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            error.to_string(),
        )
    }

    fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            s if s.is_server_error() => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// The wire body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody::from(ErrorDetail {
            message: self.message.clone(),
            kind: self.kind().to_string(),
            param: self.param.clone(),
            code: self.code.map(str::to_string),
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        match e {
            EngineError::ContextOverflow { .. } => Self {
                status: StatusCode::BAD_REQUEST,
                message,
                param: Some("messages".into()),
                code: Some("context_length_exceeded"),
            },
            EngineError::InvalidParam { param, .. } => Self {
                status: StatusCode::BAD_REQUEST,
                message,
                param: Some(param.to_string()),
                code: None,
            },
            EngineError::InvalidRequest(_) | EngineError::Template(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
            }
            EngineError::QueueFull(_) => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", message)
            }
            EngineError::Shutdown => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
            EngineError::Load(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "model_load_failed",
                message,
            ),
            EngineError::Upstream(_) => {
                Self::new(StatusCode::BAD_GATEWAY, "upstream_error", message)
            }
            EngineError::Unsupported(_) => {
                Self::new(StatusCode::BAD_REQUEST, "unsupported", message)
            }
            EngineError::Decode(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "decode_failed", message)
            }
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match &e {
            RegistryError::Unknown(CatalogError::UnknownModel { .. }) => ApiError {
                status: StatusCode::NOT_FOUND,
                message: format!("{e}"),
                param: Some("model".into()),
                code: Some("model_not_found"),
            },
            _ => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "model_load_failed",
                e.to_string(),
            ),
        }
    }
}
