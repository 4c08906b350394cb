//! What several commands share, in one place instead of commands calling each other: the
//! resolved [`Context`] (settings, cache, catalog, history, memory budget), the offload flags
//! of `model run` and `serve`, the tokio runtime and the terminal table style.

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use clap::Args;

use hearth::cache::{Cache, HubConfig};
use hearth::catalog::Catalog;
use hearth::config::{self, Config};
use hearth::engine::compute::{Compute, FlashAttn, KvType};
use hearth::engine::devices::{self, GpuLayers, Offload};
use hearth::engine::memory;
use hearth::env;
use hearth::profiles::{self, Profile, Profiles};
use hearth::store::Store;

use super::settings::Settings;

/// Settings and shared objects every command needs, resolved once.
pub struct Context {
    pub config: Config,
    pub settings: Settings,
    pub cache: Cache,
}

impl Context {
    pub fn load() -> Result<Self> {
        let config = Config::load(&config::home_dir())?;
        let settings = Settings::resolve(&config)?;
        let hub = HubConfig::from_values(
            settings.hf_endpoint.value.clone(),
            settings.hf_token.value.clone(),
        );
        let cache = Cache::new(&settings.cache_dir.value).with_hub(hub);
        Ok(Self {
            config,
            settings,
            cache,
        })
    }

    /// The user catalog file written by `model add` and `model quantize`.
    pub fn user_models_file(&self) -> PathBuf {
        self.config.home().join("models.json")
    }

    /// The catalog files: the user's own, then the `models_file` setting's.
    pub fn catalog_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.user_models_file()];
        files.extend(self.settings.models_file.value.clone());
        files
    }

    /// The serving profiles file (`hearth tune --apply` writes it).
    pub fn profiles_file(&self) -> PathBuf {
        profiles::path(self.config.home())
    }

    /// The serving profiles `serve` and `model run` load models with.
    pub fn profiles(&self) -> Result<Profiles> {
        Ok(Profiles::load(&self.profiles_file())?)
    }

    /// Built-ins plus the user's `models.json` files.
    pub fn catalog(&self) -> Result<Catalog> {
        Ok(Catalog::load(&self.catalog_files())?)
    }

    /// Where runs are kept: the `db_url` setting (HEARTH_DB_URL), else `history.db` in hearth's
    /// home.
    pub fn history_url(&self) -> String {
        self.settings.db_url.value.clone()
    }

    /// The run history.
    pub fn open_store(&self) -> Result<Store> {
        Store::open(&self.history_url()).context("cannot open the run history")
    }

    /// Memory a model must fit in: the `memory_limit_mb` setting, else what is available.
    pub fn memory_budget(&self) -> u64 {
        self.settings
            .memory_limit
            .value
            .unwrap_or_else(memory::available_bytes)
    }

    /// The offload setting, else this build's and machine's default.
    pub fn default_gpu_layers(&self) -> GpuLayers {
        self.settings
            .gpu_layers
            .value
            .unwrap_or_else(devices::default_gpu_layers)
    }
}

/// GPU offload flags shared by `model run` and `serve`.
#[derive(Debug, Args)]
pub struct OffloadArgs {
    /// Layers to offload to a GPU: a number or `all` (default: the `gpu_layers` setting,
    /// else all when a GPU backend is built in and a GPU is found, else 0).
    #[arg(long, value_name = "N|all")]
    gpu_layers: Option<GpuLayers>,
    /// The GPU to use, by index from `hearth devices` (default: llama.cpp's choice).
    #[arg(long)]
    device: Option<usize>,
}

impl OffloadArgs {
    /// The layers the command line asked for, if it did (a serving profile's yield to it).
    pub fn given(&self) -> Option<GpuLayers> {
        self.gpu_layers
    }

    /// The offload to load models with: the flag, else the setting, else this build's and
    /// machine's default.
    pub fn resolve(&self, ctx: &Context) -> Result<Offload> {
        let gpu_layers = self.gpu_layers.unwrap_or_else(|| ctx.default_gpu_layers());
        if let Some(why) = devices::offload_problem(gpu_layers, self.device) {
            bail!("--gpu-layers {gpu_layers}: {why}");
        }
        Ok(Offload {
            gpu_layers,
            device: self.device,
        })
    }
}

/// How llama.cpp computes a step, shared by `serve`, `model run`, `bench` and `tune`: each flag
/// over its setting.
#[derive(Clone, Debug, Default, Args)]
pub struct ComputeArgs {
    /// The KV cache's element type: f16, q8_0 (about half the memory) or q4_0 (a quarter;
    /// quantised types need flash attention) (default: the `kv_type` setting, f16).
    #[arg(long, value_name = "f16|q8_0|q4_0")]
    pub kv_type: Option<KvType>,
    /// Flash attention: auto lets llama.cpp decide per device (default: the `flash_attn`
    /// setting, auto).
    #[arg(long, value_name = "auto|on|off")]
    pub flash_attn: Option<FlashAttn>,
    /// Most tokens one decode step takes; a smaller batch cuts a long prompt into more
    /// chunks, so other sequences wait less behind it (default: the `batch` setting, 512).
    #[arg(long, value_name = "TOKENS")]
    pub batch: Option<u32>,
    /// llama.cpp's micro-batch, at most --batch (default: the `ubatch` setting, 512).
    #[arg(long, value_name = "TOKENS")]
    pub ubatch: Option<u32>,
}

impl ComputeArgs {
    /// The flags the user gave, as the part of a profile they override.
    pub fn as_profile(&self) -> Profile {
        Profile {
            kv_type: self.kv_type,
            flash_attn: self.flash_attn,
            batch: self.batch,
            ubatch: self.ubatch,
            ..Profile::default()
        }
    }

    /// The flags over the settings, checked as llama.cpp would check them.
    pub fn resolve(&self, settings: &Settings) -> Result<Compute> {
        let compute = Compute {
            kv_type: settings.kv_type.or_flag(self.kv_type),
            flash_attn: settings.flash_attn.or_flag(self.flash_attn),
            batch: settings.batch.or_flag(self.batch),
            ubatch: settings.ubatch.or_flag(self.ubatch),
        };
        if let Err(why) = compute.check() {
            bail!("{why}");
        }
        Ok(compute)
    }
}

/// The API key of `serve` (the key it requires) and of the client commands (the key they
/// send): from a file, the environment, or, least safely, the command line.
#[derive(Debug, Args)]
pub struct ApiKeyArgs {
    /// The API key itself. Prefer --api-key-file or HEARTH_API_KEY: a command line can be
    /// read by every user of this machine (`ps`).
    #[arg(long, conflicts_with = "api_key_file")]
    api_key: Option<String>,
    /// A file whose first line is the API key (default: HEARTH_API_KEY_FILE, else the
    /// HEARTH_API_KEY variable).
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
}

impl ApiKeyArgs {
    /// The key: `--api-key` (with a warning), else the key file (flag or HEARTH_API_KEY_FILE),
    /// else HEARTH_API_KEY.
    pub fn resolve(&self, settings: &Settings) -> Result<Option<String>> {
        if let Some(key) = &self.api_key {
            eprintln!(
                "warning: --api-key on the command line can be read by other users of this                  machine (`ps`); use --api-key-file FILE or HEARTH_API_KEY instead"
            );
            return non_empty(key.clone(), "--api-key").map(Some);
        }
        let file = self
            .api_key_file
            .as_ref()
            .or(settings.api_key_file.value.as_ref());
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the API key file {}", path.display()))?;
            warn_if_others_can_read(path);
            let first = text.lines().next().unwrap_or_default().trim().to_string();
            return non_empty(first, &format!("the API key file {}", path.display())).map(Some);
        }
        match &settings.api_key.value {
            Some(key) => non_empty(key.clone(), env::HEARTH_API_KEY).map(Some),
            None => Ok(None),
        }
    }
}

/// A key of blanks only would be a key anyone guesses.
fn non_empty(key: String, source: &str) -> Result<String> {
    if key.trim().is_empty() {
        bail!("{source} gives an empty API key");
    }
    Ok(key.trim().to_string())
}

/// A key file that other users may read protects nothing from them (as ssh warns of keys).
fn warn_if_others_can_read(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                eprintln!(
                    "warning: the API key file {} can be read by other users of this machine                      (chmod 600 it)",
                    path.display()
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// A multi-threaded runtime for commands that talk HTTP or download.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// A table styled the same way everywhere.
pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(header);
    table
}
