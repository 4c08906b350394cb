//! `hearth serve` and the client commands that talk to a running server: `ps`, `load`,
//! `unload`, `service status`.

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use clap::Args;
use hearth::engine::memory::DEFAULT_SLOTS;
use hearth::loader::LoadOptions;
use hearth::profiles::Profile;
use hearth::server::{self, ApiKey, Limits, Registry, ServerOptions};
use hearth::text::human_bytes;
use serde_json::Value;

use super::settings::list_or;
use super::Context;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to bind; anything but loopback requires --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port (default: the `port` setting, 5273).
    #[arg(long)]
    port: Option<u16>,
    /// Models to load at start, comma-separated.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Requests decoded together per model (continuous batching slots). Default: 8, fewer when
    /// their KV cache would take more than half the memory budget beside the model.
    #[arg(long)]
    parallel: Option<u32>,
    /// Context length per request, in tokens (default: the `ctx` setting, else 4096, shorter
    /// when even one slot of it does not fit).
    #[arg(long)]
    ctx: Option<u32>,
    /// CPU threads (default: the `threads` setting).
    #[arg(long)]
    threads: Option<u32>,
    /// Requests allowed to wait for a slot before answering 429.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Seconds an unused model stays loaded (default: the `idle_ttl_secs` setting).
    #[arg(long)]
    idle_ttl: Option<u64>,
    /// Require `Authorization: Bearer KEY` on every endpoint but /health.
    #[command(flatten)]
    api_key: super::shared::ApiKeyArgs,
    /// Host names answered beside localhost, 127.0.0.0/8 and [::1], comma-separated (`name` for
    /// any port, `name:port`, `*` for any): requests for other names get 403, against DNS
    /// rebinding (default: the `allowed_hosts` setting). Bound beyond loopback, the Host is
    /// checked only when names are given.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    allowed_hosts: Vec<String>,
    /// Browser origins allowed to call the server beside loopback pages and its own,
    /// comma-separated (`https://app.example.com`, `http://dev.box:*`, `*`); pages of other
    /// origins get 403 (default: the `cors_origins` setting).
    #[arg(long, value_delimiter = ',', value_name = "ORIGINS")]
    cors_origins: Vec<String>,
    /// Connections held open at once; more get 503 (default: the `max_connections` setting,
    /// 512).
    #[arg(long)]
    max_connections: Option<usize>,
    #[command(flatten)]
    offload: super::shared::OffloadArgs,
    /// Speculative decoding: `ngram` drafts tokens from the text's own n-grams, `off` decodes
    /// one token per step (default: the `speculative` setting, else ngram).
    #[arg(long, value_name = "off|ngram")]
    speculative: Option<hearth::engine::speculative::Speculative>,
    #[command(flatten)]
    compute: super::shared::ComputeArgs,
}

/// Where the client commands reach the server.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Server base URL (default: HEARTH_ENDPOINT, else http://127.0.0.1:<port setting>).
    #[arg(long)]
    endpoint: Option<String>,
    /// API key of the server, if it has one.
    #[command(flatten)]
    api_key: super::shared::ApiKeyArgs,
}

pub fn serve(ctx: &Context, args: ServeArgs) -> Result<ExitCode> {
    let catalog = ctx.catalog()?;
    for alias in &args.models {
        catalog.get(alias)?;
    }
    let settings = &ctx.settings;
    let (n_ctx, auto_ctx) = settings.context(args.ctx);
    let load = LoadOptions {
        threads: settings.threads.or_flag(args.threads),
        n_ctx,
        parallel: args.parallel.unwrap_or(DEFAULT_SLOTS).max(1),
        auto_parallel: args.parallel.is_none(),
        auto_ctx,
        queue_capacity: args.queue,
        memory_budget: ctx.memory_budget(),
        offload: args.offload.resolve(ctx)?,
        speculative: settings.speculative.or_flag(args.speculative),
        compute: args.compute.resolve(settings)?,
        flags: Profile {
            parallel: args.parallel,
            ctx: args.ctx,
            speculative: args.speculative,
            threads: args.threads,
            gpu_layers: args.offload.given(),
            ..args.compute.as_profile()
        },
        profiles: ctx.profiles()?,
        prompt_cache_disk_bytes: settings.prompt_cache_disk.value,
    };
    let idle_ttl = settings
        .idle_ttl
        .or_flag(args.idle_ttl.map(std::time::Duration::from_secs));
    let registry = Arc::new(Registry::new(catalog, ctx.cache.clone(), load, idle_ttl));
    let options = ServerOptions {
        host: args.host,
        port: settings.port.or_flag(args.port),
        api_key: args.api_key.resolve(settings)?.as_deref().map(ApiKey::new),
        allowed_hosts: list_or(args.allowed_hosts, &settings.allowed_hosts),
        cors_origins: list_or(args.cors_origins, &settings.cors_origins),
        limits: Limits {
            max_connections: settings.max_connections.or_flag(args.max_connections),
            ..Limits::default()
        },
        preload: args.models,
        history: Some(ctx.history_url()),
        jobs: std::env::current_exe().ok().map(|exe| server::JobRunner {
            exe,
            home: ctx.config.home().to_path_buf(),
            catalog_files: ctx.catalog_files(),
        }),
        ..ServerOptions::default()
    };
    let rt = super::shared::runtime()?;
    rt.block_on(async move {
        let running = server::start(options, registry).await?;
        eprintln!(
            "hearth serving an OpenAI-compatible API on http://{}/v1 (Ctrl-C to stop)",
            running.addr
        );
        eprintln!("web UI: http://{}/", running.addr);
        server::shutdown_signal().await;
        eprintln!("shutting down: finishing requests in flight");
        running.shutdown().await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A tiny blocking client for the lifecycle API.
struct Client {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl ClientArgs {
    /// Whether no endpoint was named on the command line.
    pub fn is_default(&self) -> bool {
        self.endpoint.is_none()
    }

    /// These arguments aimed at `endpoint`.
    pub fn with_endpoint(self, endpoint: String) -> Self {
        Self {
            endpoint: Some(endpoint),
            ..self
        }
    }
}

impl Client {
    fn new(ctx: &Context, args: ClientArgs) -> Result<Self> {
        let settings = &ctx.settings;
        let base = match args.endpoint.or(settings.endpoint.value.clone()) {
            Some(e) => hearth::openai::server_root(&e).to_string(),
            None => format!("http://127.0.0.1:{}", settings.port.value),
        };
        Ok(Self {
            base,
            key: args.api_key.resolve(settings)?,
            http: reqwest::Client::new(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{}", self.base, path);
        let mut request = self.http.request(method, &url);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.rt.block_on(async {
            let response = request.send().await.with_context(|| {
                format!(
                    "no hearth server at {} (start one with `hearth serve`)",
                    self.base
                )
            })?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                let message = hearth::openai::ErrorBody::read(&text)
                    .map_or_else(|| "no details".to_string(), |e| e.text());
                bail!("{url}: {status}: {message}");
            }
            Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }
}

pub fn ps(ctx: &Context, client: ClientArgs, json: bool) -> Result<ExitCode> {
    let client = Client::new(ctx, client)?;
    let value = client.call(reqwest::Method::GET, "/api/ps", None)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = super::shared::table(&[
        "model",
        "weights",
        "layers on",
        "ctx",
        "active",
        "queued",
        "slots",
        "kv used",
        "idle",
        "loaded",
    ]);
    let mut shapes = false;
    for m in value["models"].as_array().into_iter().flatten() {
        let n = |k: &str| m[k].as_u64().unwrap_or(0);
        let name = m["model"].as_str().unwrap_or_default();
        let shape = hearth::catalog::is_shape_alias(name);
        shapes |= shape;
        table.add_row(vec![
            name.to_string(),
            human_bytes(n("file_bytes")) + if shape { " (random)" } else { "" },
            m["placement"].as_str().unwrap_or("?").to_string(),
            n("n_ctx").to_string(),
            n("active").to_string(),
            n("queued").to_string(),
            n("slots").to_string(),
            format!("{}/{}", n("kv_used"), n("kv_capacity")),
            format!("{:.0}s", m["idle_secs"].as_f64().unwrap_or(0.0)),
            format!("{:.0}s ago", m["loaded_secs"].as_f64().unwrap_or(0.0)),
        ]);
    }
    outln!("{table}");
    for m in value["models"].as_array().into_iter().flatten() {
        let name = m["model"].as_str().unwrap_or_default();
        if let Some(why) = m["slots_why"].as_str() {
            outln!(
                "{name}: {} slots × {} tokens: {why}",
                m["slots"].as_u64().unwrap_or(0),
                m["n_ctx"].as_u64().unwrap_or(0)
            );
        }
        let text = |k: &str| m[k].as_str().unwrap_or("?").to_string();
        if m.get("kv_type").is_some() {
            outln!(
                "{name}: drafts {}, KV cache {}, flash attention {}, batch {}/{}{}",
                text("speculative"),
                text("kv_type"),
                text("flash_attn"),
                m["batch"],
                m["ubatch"],
                match m["profile"].as_object() {
                    Some(p) => format!(
                        "; serving profile{}",
                        p.get("source")
                            .and_then(|s| s.as_str())
                            .map(|s| format!(" ({s})"))
                            .unwrap_or_default()
                    ),
                    None => String::new(),
                }
            );
        }
    }
    if shapes {
        outln!("~shape: shape models, speed only: random weights (their answers are noise)");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn load(
    ctx: &Context,
    client: ClientArgs,
    alias: &str,
    gpu_layers: Option<hearth::engine::devices::GpuLayers>,
) -> Result<ExitCode> {
    let client = Client::new(ctx, client)?;
    let mut body = serde_json::json!({"model": alias});
    if let Some(g) = gpu_layers {
        body["gpu_layers"] = serde_json::json!(g);
    }
    let value = client.call(reqwest::Method::POST, "/api/load", Some(body))?;
    outln!(
        "loaded {} ({:.0} ms)",
        value["model"].as_str().unwrap_or(alias),
        value["load_ms"].as_f64().unwrap_or(0.0)
    );
    Ok(ExitCode::SUCCESS)
}

pub fn unload(ctx: &Context, client: ClientArgs, alias: &str) -> Result<ExitCode> {
    let client = Client::new(ctx, client)?;
    client.call(
        reqwest::Method::POST,
        "/api/unload",
        Some(serde_json::json!({"model": alias})),
    )?;
    outln!("unloaded {alias}");
    Ok(ExitCode::SUCCESS)
}

/// `hearth service status`: is the server at `client`'s endpoint up, and with what.
pub fn status(ctx: &Context, client: ClientArgs) -> Result<ExitCode> {
    let client = Client::new(ctx, client)?;
    let value = client.call(reqwest::Method::GET, "/api/status", None)?;
    outln!(
        "hearth {} is {} at {} (pid {}, up {:.0}s, {} model(s) loaded, {} active request(s))",
        value["version"].as_str().unwrap_or("?"),
        value["status"].as_str().unwrap_or("?"),
        value["endpoint"].as_str().unwrap_or("?"),
        value["pid"],
        value["uptime_secs"].as_f64().unwrap_or(0.0),
        value["models_loaded"],
        value["active_requests"],
    );
    Ok(ExitCode::SUCCESS)
}
