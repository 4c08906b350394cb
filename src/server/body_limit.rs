//! The request body limit, answered so that every client can read the answer.
//!
//! Rejecting an oversized body and closing the connection at once breaks clients that write the
//! whole body before reading (Python's `http.client`, `requests`, `httpx`): they see a broken
//! pipe instead of the 413. So an oversized body is read to its end and thrown away (up to
//! [`DRAIN_CAP`] bytes and [`DRAIN_TIME`]), and only then answered with a 413 in OpenAI's error
//! shape. A client that announced `Expect: 100-continue` has sent nothing yet: it gets the 413
//! at once. Bodies within the limit are buffered here and handed on unchanged.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::error::ApiError;

/// Most bytes of an oversized body read and discarded before answering.
pub const DRAIN_CAP: usize = 64 * 1024 * 1024;
/// Longest time spent discarding an oversized body.
pub const DRAIN_TIME: Duration = Duration::from_secs(30);

/// Axum middleware: enforces `limit` (bytes) on every request body.
pub async fn enforce(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    if declared.is_none_or(|n| n == 0) && !chunked {
        return next.run(request).await;
    }
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, body) = request.into_parts();
    let mut stream = body.into_data_stream();
    if declared.is_some_and(|n| n > limit as u64) {
        if expects_continue {
            return too_large(limit, declared, true);
        }
        let complete = drain(&mut stream, 0).await;
        return too_large(limit, declared, !complete);
    }
    let mut buffer: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "the request body could not be read",
            )
            .into_response();
        };
        if buffer.len() + chunk.len() > limit {
            let complete = drain(&mut stream, buffer.len() + chunk.len()).await;
            return too_large(limit, declared, !complete);
        }
        buffer.extend_from_slice(&chunk);
    }
    let request = Request::from_parts(parts, Body::from(Bytes::from(buffer)));
    next.run(request).await
}

/// Reads and discards the rest of a body; `true` when it ended within the cap and the time.
async fn drain(stream: &mut axum::body::BodyDataStream, already: usize) -> bool {
    let mut seen = already;
    let read_all = async {
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { return false };
            seen += chunk.len();
            if seen > DRAIN_CAP {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, read_all)
        .await
        .unwrap_or(false)
}

/// The 413; `close` when the body was not read to its end (the connection cannot be reused).
fn too_large(limit: usize, declared: Option<u64>, close: bool) -> Response {
    let size = declared.map_or_else(|| "more than that".to_string(), |n| format!("{n} bytes"));
    let mut response = ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request_too_large",
        format!("the request body is over the server's limit of {limit} bytes ({size})"),
    )
    .into_response();
    if close {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
