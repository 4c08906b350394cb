//! Accepting connections with limits: `axum::serve` offers no header read timeout, no header
//! size limit and no connection limit, so this is its accept loop (the same hyper-util builder
//! and graceful shutdown) with those three added.
//!
//! - **Header read timeout**: a client that drips its request headers (slowloris) or connects
//!   and says nothing is cut off after [`Limits::header_timeout`]; hyper's timer runs while a
//!   head is awaited, so an idle keep-alive connection is closed after the same time.
//! - **Header size**: a head over [`Limits::max_header_bytes`] gets hyper's `431 Request Header
//!   Fields Too Large` and the connection is closed.
//! - **Open connections**: beyond [`Limits::max_connections`] a new connection gets one `503` in
//!   OpenAI's error shape and is closed, and the log says so once until the load falls back.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Semaphore};

use super::error::ApiError;

/// How long a refused connection may take to send the head of its request.
const REFUSAL_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// What one client may hold of the server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest wait for a request's headers (also the idle keep-alive time).
    pub header_timeout: Duration,
    /// Largest request head (request line and headers), in bytes; at least 8 KiB.
    pub max_header_bytes: usize,
    /// Most connections open at once (`usize::MAX`: no limit).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            max_connections: 512,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` fires, then waits for open connections to finish
/// what they are doing (a connection between requests closes at once).
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: oneshot::Receiver<()>,
) {
    // The same signalling as axum::serve: dropping `signal_rx` tells every connection to shut
    // down gracefully; each holds a `close_rx` clone until it has ended.
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        let _ = shutdown.await;
        drop(signal_rx);
    });
    let (close_tx, close_rx) = watch::channel(());
    let permits = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let mut saturated = false;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = signal_tx.closed() => break,
        };
        // Streamed chunks are small writes: without TCP_NODELAY, Nagle's algorithm holds each
        // one back until the client acknowledges the last (up to 40 ms with delayed ACKs),
        // which the benchmark measured as a 47 ms gap before the first chunk.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY: {e}");
        }
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            if !saturated {
                tracing::warn!(
                    limit = limits.max_connections,
                    "connection limit reached: new connections get 503 until some close \
                     (raise it with --max-connections)"
                );
                saturated = true;
            }
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        };
        if saturated && permits.available_permits() > limits.max_connections / 10 {
            tracing::info!("open connections back under the limit");
            saturated = false;
        }
        tracing::trace!(%peer, "connection accepted");
        let app = app.clone();
        let signal_tx = signal_tx.clone();
        let close_rx = close_rx.clone();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192));
            builder.http2().timer(TokioTimer::new());
            let service = TowerToHyperService::new(app);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            let mut signal = std::pin::pin!(signal_tx.closed());
            let mut shutting_down = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, "connection ended: {e}");
                        }
                        break;
                    }
                    _ = &mut signal, if !shutting_down => {
                        conn.as_mut().graceful_shutdown();
                        shutting_down = true;
                    }
                }
            }
            drop(permit);
            drop(close_rx);
        });
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
}

/// Answers a connection over the limit with one 503 and closes it.
async fn refuse(stream: TcpStream, limit: usize) {
    let service = hyper::service::service_fn(move |_request| async move {
        let mut response = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            format!(
                "the server has {limit} connections open, its limit (--max-connections); \
                 retry when some have closed"
            ),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        Ok::<_, Infallible>(response)
    });
    let result = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(REFUSAL_HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = result {
        tracing::debug!("refused connection ended: {e}");
    }
}

/// An accept error: a connection that failed before it was accepted is skipped; anything else
/// (out of file descriptors) is logged and retried after a pause, as axum::serve does.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accepting a connection failed: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
