//! `model: "auto:TAG"` in the server: the decision (see the parent module) is made from the run
//! history off the async executor (the PostgreSQL client blocks) and kept for a short while,
//! so a burst of routed requests does not read the history once per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use super::{RouteDecision, RouteError};
use crate::server::error::ApiError;
use crate::server::registry::Registry;
use crate::store::Store;

/// How long a routing decision is reused.
const DECISION_TTL: Duration = Duration::from_secs(30);

/// Routes `auto:TAG` requests from the run history at `history` (a `Store::open` location).
#[derive(Debug)]
pub struct AutoRouteCache {
    history: Option<String>,
    decisions: Mutex<HashMap<String, (Instant, RouteDecision)>>,
}

impl AutoRouteCache {
    /// A router reading the run history at `history`; `None` routes without stored results
    /// (always the smallest tagged model, and it says so).
    pub fn new(history: Option<String>) -> Self {
        Self {
            history,
            decisions: Mutex::new(HashMap::new()),
        }
    }

    /// The model that answers for `tag`, and why.
    pub async fn decide(
        &self,
        registry: &std::sync::Arc<Registry>,
        tag: &str,
    ) -> Result<RouteDecision, ApiError> {
        if let Some((at, d)) = self.decisions.lock().expect("routes").get(tag) {
            if at.elapsed() < DECISION_TTL {
                return Ok(d.clone());
            }
        }
        let (registry, history, tag_owned) = (
            std::sync::Arc::clone(registry),
            self.history.clone(),
            tag.to_string(),
        );
        let decision = tokio::task::spawn_blocking(move || {
            let mut store = match history {
                Some(url) => Store::open(&url)?,
                None => Store::open_sqlite(std::path::Path::new(":memory:"))?,
            };
            let servable = registry.available();
            super::decide(
                &registry.catalog(),
                |e| servable.contains(&e.alias),
                &mut store,
                &tag_owned,
                super::default_criteria(registry.memory_budget()),
            )
        })
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                e.to_string(),
            )
        })?
        .map_err(|e| match e {
            RouteError::NoCandidates(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "model_not_found", e.to_string())
            }
            RouteError::Store(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "route_unavailable",
                e.to_string(),
            ),
        })?;
        tracing::info!(tag, model = %decision.model, reason = %decision.reason, "routed");
        self.decisions
            .lock()
            .expect("routes")
            .insert(tag.to_string(), (Instant::now(), decision.clone()));
        Ok(decision)
    }
}
