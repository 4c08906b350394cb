//! An in-process `hearth serve` on 127.0.0.1 with the real default model, for the tests that
//! talk to it over HTTP (server, structured output): one builder with the options they vary.

use std::sync::Arc;
use std::time::Duration;

use hearth::cache::Cache;
use hearth::catalog::{Catalog, CatalogEntry};
use hearth::engine::compute::Compute;
use hearth::engine::speculative::Speculative;
use hearth::loader::LoadOptions;
use hearth::server::{self, ApiKey, Limits, Registry, RunningServer, ServerOptions};
use serde_json::Value;

/// The alias the default model is served under.
pub const MODEL: &str = "smollm2-135m";

/// How to start a test server; `Setup::default()` and change what the test is about.
pub struct Setup {
    /// Sequences decoded together.
    pub parallel: u32,
    /// Requests waiting beyond those.
    pub queue: usize,
    /// Context tokens per sequence.
    pub ctx: u32,
    /// Bearer key required, if any.
    pub api_key: Option<String>,
    /// Largest request body.
    pub body_limit: usize,
    /// Unload a model idle this long.
    pub idle_ttl: Duration,
    /// Catalog entries beside the default model.
    pub extra: Vec<CatalogEntry>,
    /// Load the model at start (and wait for `/health`) instead of on first use.
    pub preload: bool,
    /// Host names answered beside the loopback ones.
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed beside loopback pages and the server's own.
    pub cors_origins: Vec<String>,
    /// Header timeout, header size and connection limits.
    pub limits: Limits,
    /// A memory budget to size the slots by (`parallel` is then only the wish, as when
    /// `hearth serve` runs without `--parallel`); none: unlimited, `parallel` as given.
    pub memory_budget: Option<u64>,
    /// Speculative drafting. Off unless a test is about drafts: what the drafter proposes
    /// depends on measured step costs and on earlier answers, so it changes the batch shapes
    /// between otherwise identical requests, and llama.cpp's greedy output may differ between
    /// batch shapes where the model meets a near-tie.
    pub speculative: Speculative,
    /// KV cache type, flash attention and batch sizes.
    pub compute: Compute,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            parallel: 4,
            queue: 16,
            ctx: 1024,
            api_key: None,
            body_limit: 64 * 1024,
            idle_ttl: Duration::from_secs(600),
            extra: Vec::new(),
            preload: true,
            allowed_hosts: Vec::new(),
            cors_origins: Vec::new(),
            limits: Limits::default(),
            memory_budget: None,
            speculative: Speculative::Off,
            compute: Compute::default(),
        }
    }
}

/// A running test server and a client for it.
pub struct TestServer {
    /// The server (take it to shut it down).
    pub server: RunningServer,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client for it.
    pub http: reqwest::Client,
    _home: tempfile::TempDir,
}

impl Setup {
    /// Starts the server in a fresh HEARTH_HOME; with `preload`, returns once it is healthy.
    pub async fn start(self) -> TestServer {
        let home = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::builtin();
        let mut entries = vec![CatalogEntry {
            alias: MODEL.into(),
            path: Some(super::model_path()),
            ..CatalogEntry::default()
        }];
        entries.extend(self.extra);
        catalog.overlay(entries);
        let load = LoadOptions {
            threads: 2,
            n_ctx: self.ctx,
            parallel: self.parallel,
            auto_parallel: self.memory_budget.is_some(),
            auto_ctx: false,
            queue_capacity: self.queue,
            memory_budget: self.memory_budget.unwrap_or(u64::MAX),
            offload: Default::default(),
            speculative: self.speculative,
            compute: self.compute,
            flags: Default::default(),
            profiles: Default::default(),
            prompt_cache_disk_bytes: 0,
        };
        let registry = Arc::new(Registry::new(
            catalog,
            Cache::new(home.path()),
            load,
            self.idle_ttl,
        ));
        let options = ServerOptions {
            port: 0,
            api_key: self.api_key.as_deref().map(ApiKey::new),
            allowed_hosts: self.allowed_hosts,
            cors_origins: self.cors_origins,
            limits: self.limits,
            preload: if self.preload {
                vec![MODEL.into()]
            } else {
                vec![]
            },
            body_limit: self.body_limit,
            ..ServerOptions::default()
        };
        let server = server::start(options, registry).await.unwrap();
        let base = format!("http://{}", server.addr);
        let t = TestServer {
            server,
            base,
            http: reqwest::Client::new(),
            _home: home,
        };
        if self.preload {
            t.wait_healthy().await;
        }
        t
    }
}

impl TestServer {
    /// Polls /health until the preload finished (the server says so; no fixed sleep). The
    /// deadline is only there to end a hung test: a model load on a loaded machine can take
    /// many times its usual second.
    pub async fn wait_healthy(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let r = self.http.get(self.url("/health")).send().await.unwrap();
            if r.status() == 200 {
                return;
            }
            assert_eq!(r.status(), 503);
            assert!(
                std::time::Instant::now() < deadline,
                "server not healthy after 120 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POSTs JSON; the response as soon as its headers arrive.
    pub async fn send_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs JSON; the status and the JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.send_json(path, body).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// GETs; the status and the JSON answer.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }
}
