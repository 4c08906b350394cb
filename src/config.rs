//! Settings: one config file (`$HEARTH_HOME/config.toml`) whose every key can also be set by an
//! environment variable. Precedence, lowest first: built-in default, config file, environment,
//! command-line flag (the flag is applied by the CLI layer).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::env;

/// Why a setting could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The user named a key hearth does not know.
    #[error("unknown config key `{0}` (known keys: {known})", known = known_keys())]
    UnknownKey(String),
    /// A value does not parse for its key.
    #[error("invalid value `{value}` for `{key}`: {reason}")]
    InvalidValue {
        /// The key being set.
        key: String,
        /// What the user gave.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// The config file could not be read or written.
    #[error("config file {path}: {source}")]
    Io {
        /// The config file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

/// The kind of value a key holds, so `config set` can reject nonsense early.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Text,
    Count,
}

/// One known key: its name, environment variable, default and meaning.
struct KeySpec {
    name: &'static str,
    env: &'static str,
    kind: Kind,
    default: fn() -> Option<String>,
    help: &'static str,
}

fn default_threads() -> Option<String> {
    Some(num_cpus::get_physical().max(1).to_string())
}

const KEYS: &[KeySpec] = &[
    KeySpec {
        name: "cache_dir",
        env: env::HEARTH_CACHE_DIR,
        kind: Kind::Text,
        default: || None,
        help: "where downloaded models live (default: $HEARTH_HOME)",
    },
    KeySpec {
        name: "default_model",
        env: env::HEARTH_DEFAULT_MODEL,
        kind: Kind::Text,
        default: || Some("smollm2-135m".into()),
        help: "model used when a command names none",
    },
    KeySpec {
        name: "threads",
        env: env::HEARTH_THREADS,
        kind: Kind::Count,
        default: default_threads,
        help: "CPU threads for the engine (default: physical cores)",
    },
    KeySpec {
        name: "port",
        env: env::HEARTH_PORT,
        kind: Kind::Count,
        default: || Some("5273".into()),
        help: "port of `hearth serve`",
    },
    KeySpec {
        name: "ctx",
        env: env::HEARTH_CTX,
        kind: Kind::Count,
        default: || Some("4096".into()),
        help: "context length in tokens, per sequence",
    },
    KeySpec {
        name: "idle_ttl_secs",
        env: env::HEARTH_IDLE_TTL_SECS,
        kind: Kind::Count,
        default: || Some("600".into()),
        help: "seconds before an idle served model is unloaded",
    },
    KeySpec {
        name: "memory_limit_mb",
        env: env::HEARTH_MEMORY_LIMIT_MB,
        kind: Kind::Count,
        default: || None,
        help: "memory budget a model must fit in (default: available memory)",
    },
    KeySpec {
        name: "gpu_layers",
        env: env::HEARTH_GPU_LAYERS,
        kind: Kind::Text,
        default: || None,
        help: "layers offloaded to a GPU: a number or `all` (default: all when a GPU backend is built in and a GPU is found, else 0)",
    },
    KeySpec {
        name: "speculative",
        env: env::HEARTH_SPECULATIVE,
        kind: Kind::Text,
        default: || Some("ngram".into()),
        help: "speculative decoding: `ngram` (draft from the text's own n-grams) or `off`",
    },
    KeySpec {
        name: "allowed_hosts",
        env: env::HEARTH_ALLOWED_HOSTS,
        kind: Kind::Text,
        default: || None,
        help: "Host names `serve` answers beside localhost, 127.0.0.0/8 and [::1] (comma-separated; `*` for any): against DNS rebinding",
    },
    KeySpec {
        name: "cors_origins",
        env: env::HEARTH_CORS_ORIGINS,
        kind: Kind::Text,
        default: || None,
        help: "browser origins allowed to call `serve` beside loopback pages and its own (comma-separated, e.g. https://app.example.com or http://dev.box:*)",
    },
    KeySpec {
        name: "max_connections",
        env: env::HEARTH_MAX_CONNECTIONS,
        kind: Kind::Count,
        default: || Some("512".into()),
        help: "connections `serve` holds open at once (more get 503)",
    },
    KeySpec {
        name: "models_file",
        env: env::HEARTH_MODELS_FILE,
        kind: Kind::Text,
        default: || None,
        help: "a models.json with extra catalog entries",
    },
];

fn known_keys() -> String {
    KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

fn spec(key: &str) -> Result<&'static KeySpec, ConfigError> {
    KEYS.iter()
        .find(|k| k.name == key)
        .ok_or_else(|| ConfigError::UnknownKey(key.to_string()))
}

/// Where a value came from, shown by `config list` so users see why a value is what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// hearth's built-in default.
    Default,
    /// The config file.
    File,
    /// An environment variable.
    Env,
}

/// One resolved setting, for listing.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Setting {
    /// Key name as used by `config get/set`.
    pub key: &'static str,
    /// Resolved value, if any.
    pub value: Option<String>,
    /// Where the value came from.
    pub origin: Origin,
    /// The environment variable that overrides it.
    pub env: &'static str,
    /// What the key means.
    pub help: &'static str,
}

/// Resolved settings: the config file merged with the environment.
#[derive(Clone, Debug)]
pub struct Config {
    home: PathBuf,
    file: BTreeMap<String, String>,
}

/// hearth's data root: `$HEARTH_HOME`, else the XDG data dir, else `~/.hearth`.
pub fn home_dir() -> PathBuf {
    if let Some(home) = std::env::var_os(env::HEARTH_HOME).filter(|v| !v.is_empty()) {
        return PathBuf::from(home);
    }
    dirs::data_dir()
        .map(|d| d.join("hearth"))
        .or_else(|| dirs::home_dir().map(|h| h.join(".hearth")))
        .unwrap_or_else(|| PathBuf::from(".hearth"))
}

impl Config {
    /// Loads the config file under `home` (a missing file means all defaults).
    pub fn load(home: &Path) -> Result<Self, ConfigError> {
        let path = home.join("config.toml");
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let table: toml::Table =
                    text.parse()
                        .map_err(|e: toml::de::Error| ConfigError::Parse {
                            path: path.clone(),
                            message: e.message().to_string(),
                        })?;
                table
                    .into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            toml::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        (k, v)
                    })
                    .collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(ConfigError::Io { path, source }),
        };
        Ok(Self {
            home: home.to_path_buf(),
            file,
        })
    }

    /// The data root this config belongs to.
    pub fn home(&self) -> &Path {
        &self.home
    }

    fn path(&self) -> PathBuf {
        self.home.join("config.toml")
    }

    fn resolve(&self, spec: &KeySpec) -> (Option<String>, Origin) {
        if let Ok(v) = std::env::var(spec.env) {
            if !v.is_empty() {
                return (Some(v), Origin::Env);
            }
        }
        if let Some(v) = self.file.get(spec.name) {
            return (Some(v.clone()), Origin::File);
        }
        ((spec.default)(), Origin::Default)
    }

    /// The resolved value of `key`.
    pub fn get(&self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.resolve(spec(key)?).0)
    }

    /// Every known key with its resolved value and origin.
    pub fn list(&self) -> Vec<Setting> {
        KEYS.iter()
            .map(|k| {
                let (value, origin) = self.resolve(k);
                Setting {
                    key: k.name,
                    value,
                    origin,
                    env: k.env,
                    help: k.help,
                }
            })
            .collect()
    }

    /// Validates and writes `key = value` to the config file.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let spec = spec(key)?;
        if let Kind::Count = spec.kind {
            value
                .parse::<u64>()
                .map_err(|e| ConfigError::InvalidValue {
                    key: key.into(),
                    value: value.into(),
                    reason: format!("expected a whole number ({e})"),
                })?;
        }
        self.file.insert(key.to_string(), value.to_string());
        let mut table = toml::Table::new();
        for (k, v) in &self.file {
            let v = match spec_kind(k) {
                Some(Kind::Count) => v
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .unwrap_or_else(|_| toml::Value::String(v.clone())),
                _ => toml::Value::String(v.clone()),
            };
            table.insert(k.clone(), v);
        }
        let path = self.path();
        let io = |source| ConfigError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.home).map_err(io)?;
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, table.to_string()).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(())
    }

    fn count(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|e| ConfigError::InvalidValue {
                    key: key.into(),
                    value: v,
                    reason: format!("expected a whole number ({e})"),
                }),
        }
    }

    /// Directory under which the model cache lives.
    pub fn cache_dir(&self) -> PathBuf {
        self.get("cache_dir")
            .ok()
            .flatten()
            .map(PathBuf::from)
            .unwrap_or_else(|| self.home.clone())
    }

    /// Alias used when a command names no model.
    pub fn default_model(&self) -> String {
        self.get("default_model")
            .ok()
            .flatten()
            .unwrap_or_else(|| "smollm2-135m".into())
    }

    /// Engine threads.
    pub fn threads(&self) -> Result<u32, ConfigError> {
        Ok(self.count("threads")?.unwrap_or(1).clamp(1, 1024) as u32)
    }

    /// Server port.
    pub fn port(&self) -> Result<u16, ConfigError> {
        let port = self.count("port")?.unwrap_or(5273);
        u16::try_from(port).map_err(|_| ConfigError::InvalidValue {
            key: "port".into(),
            value: port.to_string(),
            reason: "a port is at most 65535".into(),
        })
    }

    /// Context length per sequence.
    pub fn ctx(&self) -> Result<u32, ConfigError> {
        Ok(self.count("ctx")?.unwrap_or(4096).clamp(16, 1 << 20) as u32)
    }

    /// The `ctx` setting, when the user made one (file or environment); `None` leaves hearth
    /// free to size the context itself.
    pub fn ctx_setting(&self) -> Result<Option<u32>, ConfigError> {
        match self.resolve(spec("ctx")?).1 {
            Origin::Default => Ok(None),
            Origin::File | Origin::Env => self.ctx().map(Some),
        }
    }

    /// Idle time before a served model unloads.
    pub fn idle_ttl(&self) -> Result<std::time::Duration, ConfigError> {
        Ok(std::time::Duration::from_secs(
            self.count("idle_ttl_secs")?.unwrap_or(600),
        ))
    }

    /// Memory budget in bytes, when the user set one.
    pub fn memory_limit_bytes(&self) -> Result<Option<u64>, ConfigError> {
        Ok(self.count("memory_limit_mb")?.map(|mb| mb * 1024 * 1024))
    }

    /// Layers to offload to a GPU, when the user set it (else the caller picks the default
    /// for this build and machine).
    pub fn gpu_layers(&self) -> Result<Option<crate::engine::devices::GpuLayers>, ConfigError> {
        match self.get("gpu_layers")? {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|reason| ConfigError::InvalidValue {
                    key: "gpu_layers".into(),
                    value: v,
                    reason,
                }),
        }
    }

    /// Whether the engine drafts tokens from n-grams (speculative decoding).
    pub fn speculative(&self) -> Result<crate::engine::speculative::Speculative, ConfigError> {
        let v = self.get("speculative")?.unwrap_or_else(|| "ngram".into());
        v.parse().map_err(|reason| ConfigError::InvalidValue {
            key: "speculative".into(),
            value: v,
            reason,
        })
    }

    /// A comma-separated setting as its items (none when unset).
    fn items(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        Ok(self
            .get(key)?
            .map(|v| {
                v.split(',')
                    .map(|item| item.trim().to_string())
                    .filter(|item| !item.is_empty())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Host names the server answers beside the loopback ones.
    pub fn allowed_hosts(&self) -> Result<Vec<String>, ConfigError> {
        self.items("allowed_hosts")
    }

    /// Browser origins allowed to call the server beside loopback pages and its own.
    pub fn cors_origins(&self) -> Result<Vec<String>, ConfigError> {
        self.items("cors_origins")
    }

    /// Connections the server holds open at once.
    pub fn max_connections(&self) -> Result<usize, ConfigError> {
        Ok(self.count("max_connections")?.unwrap_or(512).max(1) as usize)
    }

    /// Extra `models.json`, when set.
    pub fn models_file(&self) -> Option<PathBuf> {
        self.get("models_file").ok().flatten().map(PathBuf::from)
    }
}

fn spec_kind(key: &str) -> Option<Kind> {
    KEYS.iter().find(|k| k.name == key).map(|k| k.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_then_get_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::load(dir.path()).unwrap();
        config.set("ctx", "2048").unwrap();
        config.set("default_model", "qwen2.5-0.5b").unwrap();
        let again = Config::load(dir.path()).unwrap();
        assert_eq!(again.ctx().unwrap(), 2048);
        assert_eq!(again.get("default_model").unwrap().unwrap(), "qwen2.5-0.5b");
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::load(dir.path()).unwrap();
        assert!(matches!(
            config.set("threads", "many"),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert!(matches!(
            config.set("colour", "blue"),
            Err(ConfigError::UnknownKey(_))
        ));
        assert!(!dir.path().join("config.toml").exists());
    }
}
