//! Model lifecycle for the server: models load on first use (or at start), stay loaded while
//! used, and unload after an idle TTL or on request. Loading happens off the async executor, and
//! concurrent first requests for a model wait for one load instead of starting several.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cache::{Cache, NoProgress};
use crate::catalog::{Catalog, CatalogEntry, CatalogError};
use crate::engine::memory::MemoryEstimate;
use crate::engine::{Backend, ChatMessage, EngineStats, Prompt};
use crate::loader::{self, LoadOptions, ModelError};

/// Why a model could not be handed out.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The alias is not in the catalog.
    #[error(transparent)]
    Unknown(#[from] CatalogError),
    /// Loading failed.
    #[error("model `{alias}` failed to load: {source}")]
    Load {
        /// The model.
        alias: String,
        /// Why.
        source: ModelError,
    },
}

/// A loaded model and when it was last used.
struct Loaded {
    backend: Arc<dyn Backend>,
    /// The slots it was given and why (local models).
    slots: Option<crate::engine::memory::SlotPlan>,
    /// How it computes and drafts, and the profile that applied.
    serving: loader::Serving,
    loaded_at: Instant,
    last_used: Instant,
}

/// What `hearth ps` shows for one loaded model.
#[derive(Clone, Debug, Serialize)]
pub struct LoadedInfo {
    /// The alias.
    pub model: String,
    /// Seconds since it was loaded.
    pub loaded_secs: f64,
    /// Seconds since it was last used.
    pub idle_secs: f64,
    /// Load time in milliseconds.
    pub load_ms: f64,
    /// Model file size (weights, memory-mapped).
    pub file_bytes: u64,
    /// Context length per sequence.
    pub n_ctx: usize,
    /// Where its layers live: `cpu` or `gpu:N|all` (the server's offload setting; upstream
    /// models run elsewhere and say `remote`).
    pub placement: String,
    /// Why it has the slots it has (sized from the memory budget, or as asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots_why: Option<String>,
    /// Drafting, KV cache type, flash attention, batch sizes, and the serving profile that
    /// applied.
    #[serde(flatten)]
    pub serving: loader::Serving,
    /// Current load.
    #[serde(flatten)]
    pub stats: EngineStats,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("model", &self.backend.facts().alias)
            .finish_non_exhaustive()
    }
}

/// One alias: its loaded state (quick, synchronous lock, never held across an await) and a
/// load lock that makes concurrent first requests wait for a single load.
#[derive(Debug, Default)]
struct Cell {
    state: Mutex<Option<Loaded>>,
    load: tokio::sync::Mutex<()>,
}

impl Cell {
    /// The backend if loaded, marking it used.
    fn take_handle(&self) -> Option<Arc<dyn Backend>> {
        let mut state = self.state.lock().expect("cell lock");
        state.as_mut().map(|loaded| {
            loaded.last_used = Instant::now();
            Arc::clone(&loaded.backend)
        })
    }
}

/// The server's set of models.
#[derive(Debug)]
pub struct Registry {
    /// Swapped whole when the catalog files change (a variant or shape model made through the
    /// API); readers keep the one they took.
    catalog: std::sync::RwLock<Arc<Catalog>>,
    cache: Cache,
    load: LoadOptions,
    idle_ttl: Duration,
    cells: Mutex<HashMap<String, Arc<Cell>>>,
    loading: AtomicUsize,
}

impl Registry {
    /// A registry serving `catalog` entries from `cache`, sized by `load`.
    pub fn new(catalog: Catalog, cache: Cache, load: LoadOptions, idle_ttl: Duration) -> Self {
        Self {
            catalog: std::sync::RwLock::new(Arc::new(catalog)),
            cache,
            load,
            idle_ttl,
            cells: Mutex::new(HashMap::new()),
            loading: AtomicUsize::new(0),
        }
    }

    /// The catalog being served.
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Serves `catalog` from now on (models already loaded stay loaded).
    pub fn replace_catalog(&self, catalog: Catalog) {
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(catalog);
    }

    /// The memory budget models must fit in, bytes (routing applies it too).
    pub fn memory_budget(&self) -> u64 {
        self.load.memory_budget
    }

    /// Where this server puts every model's layers.
    pub fn offload(&self) -> crate::engine::devices::Offload {
        self.load.offload
    }

    /// Whether a model is being loaded right now (health reports 503 meanwhile).
    pub fn is_loading(&self) -> bool {
        self.loading.load(Ordering::SeqCst) > 0
    }

    /// Counts a start-up preload as loading from the moment it is scheduled, so `/health`
    /// cannot answer 200 before the preload task has even begun.
    pub fn begin_preload(&self) {
        self.loading.fetch_add(1, Ordering::SeqCst);
    }

    /// Ends what [`Self::begin_preload`] began.
    pub fn end_preload(&self) {
        self.loading.fetch_sub(1, Ordering::SeqCst);
    }

    /// The model cache this server loads from (and pulls into).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Estimated memory of `entry` at `n_ctx` with this server's KV type (before download
    /// when the catalog knows its size), to say whether it fits the budget.
    pub fn estimate(&self, entry: &CatalogEntry, n_ctx: u64) -> Option<MemoryEstimate> {
        let kv_type = self.load.flags.kv_type.unwrap_or(self.load.compute.kv_type);
        loader::estimate(entry, None, kv_type, n_ctx)
    }

    /// Aliases that can be served without a download: cached, local-path and upstream entries.
    pub fn available(&self) -> Vec<String> {
        self.catalog()
            .entries()
            .iter()
            .filter(|e| e.upstream.is_some() || loader::local_path(&self.cache, e).is_some())
            .map(|e| e.alias.clone())
            .collect()
    }

    fn cell(&self, alias: &str) -> Arc<Cell> {
        let mut cells = self.cells.lock().expect("registry lock");
        Arc::clone(cells.entry(alias.to_string()).or_default())
    }

    fn all_cells(&self) -> Vec<(String, Arc<Cell>)> {
        let cells = self.cells.lock().expect("registry lock");
        cells
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }

    /// The backend for `alias`, loading it first if needed.
    pub async fn get(&self, alias: &str) -> Result<Arc<dyn Backend>, RegistryError> {
        let entry = self.catalog().get(alias)?.clone();
        let cell = self.cell(&entry.alias);
        if let Some(backend) = cell.take_handle() {
            return Ok(backend);
        }
        let _loading = cell.load.lock().await;
        if let Some(backend) = cell.take_handle() {
            return Ok(backend);
        }
        self.loading.fetch_add(1, Ordering::SeqCst);
        let result = self.load(&entry).await;
        self.loading.fetch_sub(1, Ordering::SeqCst);
        let opened = result.map_err(|source| RegistryError::Load {
            alias: entry.alias.clone(),
            source,
        })?;
        let backend = opened.backend;
        // Warm prompts before the model counts as loaded: the first request finds them.
        for text in &entry.warm_prompts {
            let prompt = Prompt::Chat(vec![ChatMessage::new("system", text.as_str())]);
            match crate::engine::warm(backend.as_ref(), prompt).await {
                Ok(c) => tracing::info!(
                    model = %entry.alias,
                    tokens = c.usage.prompt_tokens,
                    cached = c.usage.cached_prompt_tokens,
                    "warm prompt computed"
                ),
                Err(e) => tracing::warn!(model = %entry.alias, error = %e, "a warm prompt failed"),
            }
        }
        let now = Instant::now();
        *cell.state.lock().expect("cell lock") = Some(Loaded {
            backend: Arc::clone(&backend),
            slots: opened.slots,
            serving: opened.serving,
            loaded_at: now,
            last_used: now,
        });
        tracing::info!(model = %entry.alias, "loaded");
        Ok(backend)
    }

    async fn load(
        &self,
        entry: &crate::catalog::CatalogEntry,
    ) -> Result<loader::Opened, ModelError> {
        if entry.upstream.is_none() {
            loader::ensure_local(&self.cache, entry, &NoProgress).await?;
        }
        let runtime = tokio::runtime::Handle::current();
        let (catalog, cache, entry, options) = (
            Catalog::clone(&self.catalog()),
            self.cache.clone(),
            entry.clone(),
            self.load.clone(),
        );
        tokio::task::spawn_blocking(move || {
            loader::open(&catalog, &cache, &entry, &options, runtime)
        })
        .await
        .map_err(|e| ModelError::Engine(crate::engine::EngineError::Load(e.to_string())))?
    }

    /// Marks a model as used now (called when a request ends, so the TTL counts from there).
    pub fn touch(&self, alias: &str) {
        self.cell(alias).take_handle();
    }

    /// Unloads a model; returns whether it was loaded. Requests in flight finish first (they
    /// hold their own handle); new ones would load it again.
    pub async fn unload(&self, alias: &str) -> bool {
        let taken = self.cell(alias).state.lock().expect("cell lock").take();
        match taken {
            Some(loaded) => {
                drop_off_executor(loaded.backend).await;
                tracing::info!(model = alias, "unloaded");
                true
            }
            None => false,
        }
    }

    /// Loaded models with their load. Never waits for a model that is loading.
    pub fn loaded(&self) -> Vec<LoadedInfo> {
        let catalog = self.catalog();
        let mut out: Vec<LoadedInfo> = self
            .all_cells()
            .into_iter()
            .filter_map(|(alias, cell)| {
                let state = cell.state.lock().expect("cell lock");
                let l = state.as_ref()?;
                let facts = l.backend.facts();
                let remote = catalog.get(&alias).is_ok_and(|e| e.upstream.is_some());
                Some(LoadedInfo {
                    model: alias,
                    loaded_secs: l.loaded_at.elapsed().as_secs_f64(),
                    idle_secs: l.last_used.elapsed().as_secs_f64(),
                    load_ms: facts.load_ms,
                    file_bytes: facts.file_bytes,
                    n_ctx: facts.n_ctx,
                    placement: if remote {
                        "remote".into()
                    } else if self.load.offload.gpu_layers.is_cpu() {
                        "cpu".into()
                    } else {
                        format!("gpu:{}", self.load.offload.gpu_layers)
                    },
                    slots_why: l.slots.as_ref().map(|p| p.why.clone()),
                    serving: l.serving.clone(),
                    stats: l.backend.stats(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.model.cmp(&b.model));
        out
    }

    /// Unloads every model idle for longer than the TTL with nothing in flight.
    pub async fn reap_idle(&self) {
        for (alias, cell) in self.all_cells() {
            let idle = {
                let mut state = cell.state.lock().expect("cell lock");
                let expired = state.as_ref().is_some_and(|l| {
                    let stats = l.backend.stats();
                    stats.active == 0 && stats.queued == 0 && l.last_used.elapsed() >= self.idle_ttl
                });
                if expired {
                    state.take()
                } else {
                    None
                }
            };
            if let Some(loaded) = idle {
                drop_off_executor(loaded.backend).await;
                tracing::info!(model = %alias, "unloaded after idle TTL");
            }
        }
    }

    /// How often the idle reaper should look.
    pub fn reap_interval(&self) -> Duration {
        (self.idle_ttl / 4).clamp(Duration::from_millis(20), Duration::from_secs(30))
    }

    /// Unloads everything (shutdown).
    pub async fn unload_all(&self) {
        for (alias, _) in self.all_cells() {
            self.unload(&alias).await;
        }
    }
}

/// Dropping the last handle joins the engine thread; do it where blocking is allowed.
async fn drop_off_executor(backend: Arc<dyn Backend>) {
    let _ = tokio::task::spawn_blocking(move || drop(backend)).await;
}
