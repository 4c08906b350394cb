//! `hearth bench`: measures candidate models (and runtimes) on this machine.
//!
//! Every target is an OpenAI-compatible endpoint measured over HTTP by the same client: local
//! aliases are served for the run by hearth's own server on a loopback port, external servers
//! (llama-server, Ollama, vLLM, Foundry Local, another hearth) are named by URL. For each model
//! and load level: warm-up rounds (recorded, never counted), timed rounds, resources and the
//! server's own metrics sampled on the same clock. Every record goes to the store as soon as it
//! exists; reports are rendered from the store afterwards.
//!
//! Rooms: `options` (what to measure), `runner` (the targets, one after another or
//! interleaved), `level` (one level's rounds), `jobs` (what each round sends), [`load`]
//! (arrival schedules, running a round), [`client`] (one request, raw instants), [`resources`] and [`scrape`] (what serving costs, the server's view) with the
//! per-level accounting in `measure`, [`recorder`] (writes to the store), [`mock`] (a
//! scripted server) and [`calibrate`] (the client's own floor against it).

pub mod calibrate;
pub mod client;
pub mod environment;
pub mod gpu;
mod jobs;
mod level;
pub mod load;
mod measure;
pub mod mock;
mod options;
pub mod prompts;
pub mod recorder;
pub mod resources;
mod runner;
pub mod scrape;
pub mod session;
pub mod workload;

pub use calibrate::{calibrate, Calibration};
pub use options::{planned_requests, requests_per_round, BenchOptions, PromptCache, Sweep};
pub use runner::run_targets;

use client::Endpoint;
use resources::ProcessProbe;

use crate::store::record::{ModelRecord, ModelStatus};
use crate::store::StoreError;

/// Why a benchmark could not run (one model failing is not this: it is recorded and the run
/// goes on).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The history store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A helper thread could not start or died.
    #[error("benchmark thread: {0}")]
    Thread(std::io::Error),
}

/// One thing to measure.
#[derive(Clone, Debug)]
pub struct Target {
    /// The model record as known before measuring (name, backend, licence, size…).
    pub model: ModelRecord,
    /// Where requests go.
    pub endpoint: Endpoint,
    /// The serving process, when it can be watched (hearth's own, or `--pid`).
    pub probe: Option<ProcessProbe>,
    /// Served by hearth for this run: loaded before and unloaded after through the lifecycle
    /// API, and its cold load timed.
    pub managed: bool,
}

/// Live progress, so a long run shows where it is.
pub trait Progress: Send + Sync {
    /// A model starts; `planned` requests will be sent for it.
    fn model_started(&self, model: &str, planned: u64);
    /// A level or round starts.
    fn stage(&self, model: &str, stage: &str);
    /// A request finished.
    fn request_done(&self, model: &str, ok: bool);
    /// A model is done.
    fn model_finished(&self, model: &str, status: ModelStatus, error: Option<&str>);
}

/// Share of one core above which the client counts as the bottleneck.
pub const CLIENT_CPU_LIMIT: f64 = 0.8;
/// Timer lag (p99, ms) above which the client's instants are no longer trusted to the ms.
pub const CLIENT_LAG_LIMIT_MS: f64 = 5.0;
