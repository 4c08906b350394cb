//! `hearth serve`: an OpenAI-compatible HTTP API over the engine.
//!
//! The HTTP layer only translates: it validates requests, asks the [`Registry`] for a backend,
//! and turns the backend's event stream into JSON or server-sent events. Batching happens in
//! the engine; this layer never waits for one request before starting another.

mod api_key;
mod body_limit;
pub mod error;
mod generation;
mod guard;
mod handlers;
mod history;
mod jobs;
mod listen;
mod manage;
pub mod prometheus;
pub mod registry;
pub mod request;
pub mod route;
mod ui;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use api_key::ApiKey;
pub use jobs::JobRunner;
pub use listen::Limits;
pub use registry::{LoadedInfo, Registry};

use error::ApiError;
use guard::BrowserPolicy;
use prometheus::Metrics;
use route::AutoRouteCache;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Listening on a non-loopback address without an API key would expose the models to the
    /// network unauthenticated.
    #[error("refusing to listen on {0} without an API key: pass --api-key-file FILE (or set HEARTH_API_KEY), or bind 127.0.0.1")]
    PublicWithoutKey(IpAddr),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How the server listens and behaves.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Address to bind.
    pub host: IpAddr,
    /// Port to bind (0 picks a free one).
    pub port: u16,
    /// Bearer key required on every endpoint but `/health`.
    pub api_key: Option<ApiKey>,
    /// Host names answered beside the loopback ones (DNS rebinding protection; see
    /// `guard`); `*` answers any.
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed beside loopback and the server's own (CORS); `*` allows any.
    pub cors_origins: Vec<String>,
    /// Header timeout, header size and connection limits.
    pub limits: Limits,
    /// Models to load at start.
    pub preload: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// The run history `auto:TAG` routes from (a `Store::open` location); `None` routes
    /// without stored results.
    pub history: Option<String>,
    /// How `POST /api/bench` starts benchmark jobs; `None` refuses them.
    pub jobs: Option<JobRunner>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 5273,
            api_key: None,
            allowed_hosts: Vec::new(),
            cors_origins: Vec::new(),
            limits: Limits::default(),
            preload: Vec::new(),
            body_limit: 8 * 1024 * 1024,
            history: None,
            jobs: None,
        }
    }
}

/// Shared by every handler.
struct AppState {
    registry: Arc<Registry>,
    auto_routes: AutoRouteCache,
    metrics: Metrics,
    api_key: Option<ApiKey>,
    started: Instant,
    endpoint: String,
    /// The run history's store location (the Runs page), when kept.
    history: Option<String>,
    /// Benchmark jobs started through the API, and how to start them.
    jobs: jobs::Jobs,
    jobs_runner: Option<JobRunner>,
}

/// A server running in the background.
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    registry: Arc<Registry>,
    state: Arc<AppState>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningServer {
    /// Stops accepting connections, lets in-flight requests finish, unloads the models.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.state.jobs.interrupt_all();
        let result = (&mut self.task).await.map_err(std::io::Error::other);
        self.registry.unload_all().await;
        result
    }
}

/// Binds and starts serving in the background; returns once the socket listens.
pub async fn start(
    options: ServerOptions,
    registry: Arc<Registry>,
) -> Result<RunningServer, ServerError> {
    if !options.host.is_loopback() && options.api_key.is_none() {
        return Err(ServerError::PublicWithoutKey(options.host));
    }
    let addr = SocketAddr::new(options.host, options.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    let state = Arc::new(AppState {
        registry: Arc::clone(&registry),
        auto_routes: AutoRouteCache::new(options.history.clone()),
        metrics: Metrics::new(),
        api_key: options.api_key.clone(),
        started: Instant::now(),
        endpoint: format!("http://{addr}/v1"),
        history: options.history.clone(),
        jobs: jobs::Jobs::default(),
        jobs_runner: options.jobs.clone(),
    });
    let policy = Arc::new(BrowserPolicy::new(
        options.host,
        &options.allowed_hosts,
        &options.cors_origins,
    ));
    let app = router(Arc::clone(&state), policy, options.body_limit);

    // Preload in the background: /health answers 503 until it is done.
    for alias in options.preload {
        let registry = Arc::clone(&registry);
        registry.begin_preload();
        tokio::spawn(async move {
            if let Err(e) = registry.get(&alias).await {
                tracing::error!("preloading {alias}: {e}");
            }
            registry.end_preload();
        });
    }
    // Idle reaper.
    {
        let registry = Arc::downgrade(&registry);
        tokio::spawn(async move {
            loop {
                let Some(r) = registry.upgrade() else { break };
                let interval = r.reap_interval();
                r.reap_idle().await;
                drop(r);
                tokio::time::sleep(interval).await;
            }
        });
    }
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(listen::serve(listener, app, options.limits, rx));
    tracing::info!(%addr, "listening");
    Ok(RunningServer {
        addr,
        shutdown: Some(tx),
        task,
        registry,
        state,
    })
}

/// The routes and, around them from the inside out: the body limit's extractor, the API key,
/// the 413 for oversized bodies, JSON-only POST bodies, CORS headers, and outermost the Host
/// and Origin checks (so a refused request reaches nothing and carries no CORS headers, while
/// every answer to an allowed page, a 401 or 415 included, carries them).
fn router(state: Arc<AppState>, policy: Arc<BrowserPolicy>, body_limit: usize) -> Router {
    Router::new()
        .route("/v1/models", get(handlers::list_models))
        .route("/v1/models/{*id}", get(handlers::get_model))
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .route("/v1/completions", post(handlers::completions))
        .route("/api/ps", get(handlers::ps))
        .route("/api/load", post(handlers::load))
        .route("/api/unload", post(handlers::unload))
        .route("/api/cache/warm", post(handlers::warm))
        .route("/api/status", get(handlers::status))
        .route("/api/catalog", get(manage::catalog))
        .route("/api/cache", get(manage::cache))
        .route("/api/cache/verify", post(manage::verify))
        .route("/api/cache/remove", post(manage::remove))
        .route("/api/pull", post(manage::pull))
        .route("/api/runs", get(history::runs))
        .route("/api/runs/{id}/answers", get(history::answers))
        .route("/api/runs/{id}/annotations", post(history::annotate))
        .route("/api/report", get(history::report_of))
        .route("/api/compare", get(history::compare))
        .route("/api/bench", post(jobs::start::<jobs::BenchRequest>))
        .route("/api/tune", post(jobs::start::<jobs::TuneRequest>))
        .route(
            "/api/models/quantize",
            post(jobs::start::<jobs::QuantizeRequest>),
        )
        .route("/api/models/synth", post(jobs::start::<jobs::SynthRequest>))
        .route("/api/jobs", get(jobs::list))
        .route("/api/jobs/{id}/events", get(jobs::events))
        .route("/api/jobs/{id}/cancel", post(jobs::cancel))
        .route("/", get(ui::index))
        .route("/ui/{name}", get(ui::file))
        .route("/tokenize", post(handlers::tokenize))
        .route("/metrics", get(handlers::metrics))
        .route("/health", get(handlers::health))
        .fallback(handlers::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authorize,
        ))
        // An oversized body is read to its end before the 413, whoever sent it.
        .layer(middleware::from_fn_with_state(
            body_limit,
            body_limit::enforce,
        ))
        .layer(middleware::from_fn(guard::require_json))
        .layer(guard::cors(Arc::clone(&policy)))
        .layer(middleware::from_fn_with_state(policy, guard::screen))
        .with_state(state)
}

/// Requires `Authorization: Bearer KEY` when a key is set (except for `/health` and the web
/// UI's files, which hold no data: the page asks for the key and sends it like any client).
async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key {
        let path = request.uri().path();
        if path != "/health" && !ui::is_ui_path(path) {
            let given = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, key)| key.trim());
            if !given.is_some_and(|given| key.matches(given)) {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_api_key",
                    "missing or wrong API key (send Authorization: Bearer KEY)",
                )
                .into_response();
            }
        }
    }
    next.run(request).await
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Seconds since the Unix epoch, for `created` fields.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}
