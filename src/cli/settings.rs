//! The typed settings of one invocation, resolved once at start from the config table (default
//! → config file → environment, `hearth::config`); a command applies its flags on top with
//! [`Setting::flag`]. Every setting and environment variable hearth reads is read here and
//! nowhere else, so two commands can never disagree about a default.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use hearth::config::{Config, Setting};
use hearth::engine::compute::{FlashAttn, KvType};
use hearth::engine::devices::GpuLayers;
use hearth::engine::memory;
use hearth::engine::speculative::Speculative;

/// Every setting, typed.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where downloaded models live.
    pub cache_dir: Setting<PathBuf>,
    /// The model a command uses when it names none.
    pub default_model: Setting<String>,
    /// Engine threads.
    pub threads: Setting<u32>,
    /// `serve`'s port.
    pub port: Setting<u16>,
    /// Context per sequence, when the user set one (else hearth sizes it).
    pub ctx: Setting<Option<u32>>,
    /// How long an unused served model stays loaded.
    pub idle_ttl: Setting<Duration>,
    /// The memory budget in bytes, when the user set one (else what is available).
    pub memory_limit: Setting<Option<u64>>,
    /// Disk for the prompt cache's files of long prompts, bytes (0: none).
    pub prompt_cache_disk: Setting<u64>,
    /// GPU offload, when the user set it (else this build's and machine's default).
    pub gpu_layers: Setting<Option<GpuLayers>>,
    /// Speculative decoding.
    pub speculative: Setting<Speculative>,
    /// The KV cache's element type.
    pub kv_type: Setting<KvType>,
    /// Flash attention.
    pub flash_attn: Setting<FlashAttn>,
    /// Most tokens one decode step takes.
    pub batch: Setting<u32>,
    /// llama.cpp's micro-batch.
    pub ubatch: Setting<u32>,
    /// An extra models.json.
    pub models_file: Setting<Option<PathBuf>>,
    /// Host names `serve` answers beside the loopback ones.
    pub allowed_hosts: Setting<Vec<String>>,
    /// Browser origins allowed beside loopback pages and the server's own.
    pub cors_origins: Setting<Vec<String>>,
    /// Connections `serve` holds open at once.
    pub max_connections: Setting<usize>,
    /// How far a whole run's level drifts between runs on this machine, percent.
    pub run_drift_pct: Setting<f64>,
    /// The run history's location (a SQLite path or a postgres:// URL).
    pub db_url: Setting<String>,
    /// The Hugging Face hub endpoint, when not the public one.
    pub hf_endpoint: Setting<Option<String>>,
    /// The Hugging Face token.
    pub hf_token: Setting<Option<String>>,
    /// The API key of `serve` and its clients.
    pub api_key: Setting<Option<String>>,
    /// A file holding that key.
    pub api_key_file: Setting<Option<PathBuf>>,
    /// The judge endpoint's API key.
    pub judge_api_key: Setting<Option<String>>,
    /// The server the client commands talk to and `bench` measures.
    pub endpoint: Setting<Option<String>>,
    /// Foundry Local's endpoint, which `bench` measures when no other is given.
    pub foundry_endpoint: Setting<Option<String>>,
    /// Models `bench` measures when `--models` is not given.
    pub bench_models: Setting<Vec<String>>,
    /// Whether `bench` streams, when the user said.
    pub bench_stream: Setting<Option<bool>>,
}

/// `1/true/yes/on` or `0/false/no/off`, as the reference workflow's `BENCH_STREAM=1`.
#[derive(Clone, Copy, Debug)]
struct Switch(bool);

impl std::str::FromStr for Switch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Switch(true)),
            "0" | "false" | "no" | "off" => Ok(Switch(false)),
            other => Err(format!("`{other}` is not 1 or 0")),
        }
    }
}

/// A setting whose table row has a default: its value is always there.
fn present<T>(setting: Setting<Option<T>>, key: &str) -> Result<Setting<T>> {
    let origin = setting.origin;
    let value = setting
        .value
        .with_context(|| format!("the `{key}` setting has no value"))?;
    Ok(Setting { value, origin })
}

impl Settings {
    /// Resolves and checks every setting of `config`: a value that does not parse is an error
    /// that names the key, the value and where it came from.
    pub fn resolve(config: &Config) -> Result<Self> {
        let home = config.home().to_path_buf();
        let text = |key: &str| -> Result<Setting<Option<String>>> {
            Ok(config
                .raw(key)?
                .map(|v| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())))
        };
        let path = |key: &str| -> Result<Setting<Option<PathBuf>>> {
            Ok(text(key)?.map(|v| v.map(PathBuf::from)))
        };
        let count = |key: &str| -> Result<Setting<Option<u64>>> { Ok(config.parsed(key)?) };
        Ok(Self {
            cache_dir: path("cache_dir")?.map(|dir| dir.unwrap_or_else(|| home.clone())),
            default_model: present(text("default_model")?, "default_model")?,
            threads: present(count("threads")?, "threads")?.map(|n| n.clamp(1, 1024) as u32),
            port: present(config.parsed("port")?, "port")?,
            ctx: count("ctx")?.map(|n| n.map(|n| n.clamp(16, 1 << 20) as u32)),
            idle_ttl: present(count("idle_ttl_secs")?, "idle_ttl_secs")?.map(Duration::from_secs),
            memory_limit: count("memory_limit_mb")?.map(|mb| mb.map(|mb| mb * 1024 * 1024)),
            prompt_cache_disk: present(count("prompt_cache_disk_mb")?, "prompt_cache_disk_mb")?
                .map(|mb| mb.saturating_mul(1024 * 1024)),
            gpu_layers: config.parsed("gpu_layers")?,
            speculative: present(config.parsed("speculative")?, "speculative")?,
            kv_type: present(config.parsed("kv_type")?, "kv_type")?,
            flash_attn: present(config.parsed("flash_attn")?, "flash_attn")?,
            batch: present(count("batch")?, "batch")?.map(|n| n.clamp(1, 1 << 20) as u32),
            ubatch: present(count("ubatch")?, "ubatch")?.map(|n| n.clamp(1, 1 << 20) as u32),
            models_file: path("models_file")?,
            allowed_hosts: config.items("allowed_hosts")?,
            cors_origins: config.items("cors_origins")?,
            max_connections: present(count("max_connections")?, "max_connections")?
                .map(|n| n.max(1) as usize),
            run_drift_pct: present(config.parsed("run_drift_pct")?, "run_drift_pct")?
                .map(|p: f64| p.clamp(0.0, 100.0)),
            db_url: text("db_url")?
                .map(|url| url.unwrap_or_else(|| home.join("history.db").display().to_string())),
            hf_endpoint: text("hf_endpoint")?,
            hf_token: text("hf_token")?,
            api_key: text("api_key")?,
            api_key_file: path("api_key_file")?,
            judge_api_key: text("judge_api_key")?,
            endpoint: text("endpoint")?,
            foundry_endpoint: text("foundry_endpoint")?,
            bench_models: config.items("bench_models")?,
            bench_stream: config
                .parsed::<Switch>("bench_stream")?
                .map(|s| s.map(|Switch(on)| on)),
        })
    }
}

/// A list flag (empty when not given) over its setting.
pub fn list_or(given: Vec<String>, setting: &Setting<Vec<String>>) -> Vec<String> {
    if given.is_empty() {
        setting.value.clone()
    } else {
        given
    }
}

impl Settings {
    /// The context per sequence to ask for (`--ctx`, else the setting, else where the sizing
    /// starts) and whether hearth may shorten it to fit: only when the user set none.
    pub fn context(&self, flag: Option<u32>) -> (u32, bool) {
        match flag.or(self.ctx.value) {
            Some(n) => (n, false),
            None => (memory::DEFAULT_CTX, true),
        }
    }
}
