//! Settings as uv resolves them: every setting hearth reads is one row of [`KEYS`] (name,
//! environment variable, default, meaning), written once; a value is resolved from the default,
//! then the config file (`$HEARTH_HOME/config.toml`), then the environment, then a command-line
//! flag, and `hearth config list` says which of them each value came from.
//!
//! This module holds the table and the resolution of raw text. It knows nothing of what the
//! values mean to the engine or the server: a caller parses a value into its own type
//! ([`Config::parsed`] takes any `FromStr`), and the binary builds its typed settings from them
//! once, at start (`cli/settings.rs`).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::env;

/// Why a setting could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The user named a key hearth does not know.
    #[error("unknown config key `{0}` (known keys: {known})", known = known_keys())]
    UnknownKey(String),
    /// The key can only come from its environment variable (a secret, or a per-invocation
    /// choice such as the models a benchmark measures).
    #[error("`{key}` is not kept in the config file; set {env} instead")]
    EnvOnly {
        /// The key.
        key: String,
        /// Its environment variable.
        env: &'static str,
    },
    /// A value does not parse for its key.
    #[error("invalid value `{value}` for `{key}` (from {source_}): {reason}")]
    InvalidValue {
        /// The key being read or set.
        key: String,
        /// What the user gave.
        value: String,
        /// Where it came from: the variable, the config file, `config set`.
        source_: String,
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

/// The kind of value a key holds, so `config set` can reject nonsense before it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Count,
}

/// One known setting: its name, environment variable, default and meaning.
struct KeySpec {
    name: &'static str,
    env: &'static str,
    kind: Kind,
    /// Kept in the config file too (else only the environment variable sets it).
    in_file: bool,
    /// Never shown by `config list`/`get` (API keys).
    secret: bool,
    default: fn() -> Option<String>,
    help: &'static str,
}

fn physical_cores() -> Option<String> {
    Some(num_cpus::get_physical().max(1).to_string())
}

/// Every setting, each written once. Keys kept in the file first, then those only the
/// environment sets.
const KEYS: &[KeySpec] = &[
    KeySpec {
        name: "cache_dir",
        env: env::HEARTH_CACHE_DIR,
        kind: Kind::Text,
        in_file: true,
        secret: false,
        default: || None,
        help: "where downloaded models live (default: $HEARTH_HOME)",
    },
    KeySpec {
        name: "default_model",
        env: env::HEARTH_DEFAULT_MODEL,
        kind: Kind::Text,
        in_file: true,
        secret: false,
        default: || Some("smollm2-135m".into()),
        help: "model used when a command names none",
    },
    KeySpec {
        name: "threads",
        env: env::HEARTH_THREADS,
        kind: Kind::Count,
        in_file: true,
        secret: false,
        default: physical_cores,
        help: "CPU threads for the engine (default: physical cores)",
    },
    KeySpec {
        name: "port",
        env: env::HEARTH_PORT,
        kind: Kind::Count,
        in_file: true,
        secret: false,
        default: || Some("5273".into()),
        help: "port of `hearth serve`",
    },
    KeySpec {
        name: "ctx",
        env: env::HEARTH_CTX,
        kind: Kind::Count,
        in_file: true,
        secret: false,
        default: || None,
        help: "context length in tokens, per sequence (default: 4096, shortened to fit the memory budget)",
    },
    KeySpec {
        name: "idle_ttl_secs",
        env: env::HEARTH_IDLE_TTL_SECS,
        kind: Kind::Count,
        in_file: true,
        secret: false,
        default: || Some("600".into()),
        help: "seconds before an idle served model is unloaded",
    },
    KeySpec {
        name: "prompt_cache_disk_mb",
        env: env::HEARTH_PROMPT_CACHE_DISK_MB,
        kind: Kind::Count,
        in_file: true,
        secret: false,
        default: || Some("2048".into()),
        help: "MiB of disk under $HEARTH_HOME/kv for long prompts' KV states that survive unloads and restarts (0: none)",
    },
    KeySpec {
        name: "memory_limit_mb",
        env: env::HEARTH_MEMORY_LIMIT_MB,
        kind: Kind::Count,
        in_file: true,
        secret: false,
        default: || None,
        help: "memory budget a model must fit in (default: available memory)",
    },
    KeySpec {
        name: "gpu_layers",
        env: env::HEARTH_GPU_LAYERS,
        kind: Kind::Text,
        in_file: true,
        secret: false,
        default: || None,
        help: "layers offloaded to a GPU: a number or `all` (default: all when a GPU backend is built in and a GPU is found, else 0)",
    },
    KeySpec {
        name: "speculative",
        env: env::HEARTH_SPECULATIVE,
        kind: Kind::Text,
        in_file: true,
        secret: false,
        default: || Some("ngram".into()),
        help: "speculative decoding: `ngram` (draft from the text's own n-grams) or `off`",
    },
    KeySpec {
        name: "kv_type",
        env: env::HEARTH_KV_TYPE,
        kind: Kind::Text,
        in_file: true,
        secret: false,
        default: || Some("f16".into()),
        help: "the KV cache's element type: `f16`, `q8_0` (about half the memory) or `q4_0` (a quarter); quantised types need flash attention",
    },
    KeySpec {
        name: "flash_attn",
        env: env::HEARTH_FLASH_ATTN,
        kind: Kind::Text,
        in_file: true,
        secret: false,
        default: || Some("auto".into()),
        help: "flash attention: `auto` (llama.cpp decides per device), `on` or `off`",
    },
    KeySpec {
        name: "batch",
        env: env::HEARTH_BATCH,
        kind: Kind::Count,
        in_file: true,
        secret: false,
        default: || Some("512".into()),
        help: "most tokens one decode step takes: bounds a prefill chunk, so how long other sequences wait behind a long prompt",
    },
    KeySpec {
        name: "ubatch",
        env: env::HEARTH_UBATCH,
        kind: Kind::Count,
        in_file: true,
        secret: false,
        default: || Some("512".into()),
        help: "llama.cpp's micro-batch: tokens computed at once inside a step (at most `batch`)",
    },
    KeySpec {
        name: "models_file",
        env: env::HEARTH_MODELS_FILE,
        kind: Kind::Text,
        in_file: true,
        secret: false,
        default: || None,
        help: "a models.json with extra catalog entries",
    },
    KeySpec {
        name: "allowed_hosts",
        env: env::HEARTH_ALLOWED_HOSTS,
        kind: Kind::Text,
        in_file: true,
        secret: false,
        default: || None,
        help: "Host names `serve` answers beside localhost, 127.0.0.0/8 and [::1] (comma-separated; `*` for any): against DNS rebinding",
    },
    KeySpec {
        name: "cors_origins",
        env: env::HEARTH_CORS_ORIGINS,
        kind: Kind::Text,
        in_file: true,
        secret: false,
        default: || None,
        help: "browser origins allowed to call `serve` beside loopback pages and its own (comma-separated, e.g. https://app.example.com or http://dev.box:*)",
    },
    KeySpec {
        name: "max_connections",
        env: env::HEARTH_MAX_CONNECTIONS,
        kind: Kind::Count,
        in_file: true,
        secret: false,
        default: || Some("512".into()),
        help: "connections `serve` holds open at once (more get 503)",
    },
    KeySpec {
        name: "run_drift_pct",
        env: env::HEARTH_RUN_DRIFT_PCT,
        kind: Kind::Text,
        in_file: true,
        secret: false,
        default: || Some("5".into()),
        help: "run-to-run drift (%) `compare` allows between separate runs; `compare --aa` measures it",
    },
    KeySpec {
        name: "db_url",
        env: env::HEARTH_DB_URL,
        kind: Kind::Text,
        in_file: true,
        secret: false,
        default: || None,
        help: "the run history: a postgres:// URL, or a SQLite path (default: $HEARTH_HOME/history.db)",
    },
    KeySpec {
        name: "hf_endpoint",
        env: env::HF_ENDPOINT,
        kind: Kind::Text,
        in_file: true,
        secret: false,
        default: || None,
        help: "Hugging Face hub endpoint: a mirror or proxy (default: the public hub)",
    },
    KeySpec {
        name: "hf_token",
        env: env::HF_TOKEN,
        kind: Kind::Text,
        in_file: false,
        secret: true,
        default: || None,
        help: "Hugging Face access token, for gated or private repositories",
    },
    KeySpec {
        name: "api_key",
        env: env::HEARTH_API_KEY,
        kind: Kind::Text,
        in_file: false,
        secret: true,
        default: || None,
        help: "API key `serve` requires and the client commands and `bench --endpoint` send",
    },
    KeySpec {
        name: "api_key_file",
        env: env::HEARTH_API_KEY_FILE,
        kind: Kind::Text,
        in_file: false,
        secret: false,
        default: || None,
        help: "a file whose first line is that API key (outranks api_key)",
    },
    KeySpec {
        name: "judge_api_key",
        env: env::HEARTH_JUDGE_API_KEY,
        kind: Kind::Text,
        in_file: false,
        secret: true,
        default: || None,
        help: "API key of `bench --judge-endpoint`",
    },
    KeySpec {
        name: "endpoint",
        env: env::HEARTH_ENDPOINT,
        kind: Kind::Text,
        in_file: false,
        secret: false,
        default: || None,
        help: "a server the client commands talk to and `bench` measures (default: hearth's own)",
    },
    KeySpec {
        name: "foundry_endpoint",
        env: env::FOUNDRY_LOCAL_ENDPOINT,
        kind: Kind::Text,
        in_file: false,
        secret: false,
        default: || None,
        help: "Foundry Local's endpoint: `bench` measures it when no other endpoint is given",
    },
    KeySpec {
        name: "bench_models",
        env: env::BENCH_MODELS,
        kind: Kind::Text,
        in_file: false,
        secret: false,
        default: || None,
        help: "models `bench` measures when --models is not given (comma-separated)",
    },
    KeySpec {
        name: "bench_stream",
        env: env::BENCH_STREAM,
        kind: Kind::Text,
        in_file: false,
        secret: false,
        default: || None,
        help: "`1` streams answers in `bench` (the default), `0` measures whole responses",
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

impl Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Default => "the default",
            Origin::File => "the config file",
            Origin::Env => "the environment",
        })
    }
}

/// A resolved value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting<T> {
    /// The value.
    pub value: T,
    /// Its source.
    pub origin: Origin,
}

impl<T: Clone> Setting<T> {
    /// The flag's value when the user gave one (a flag outranks every other source), else
    /// this setting's.
    pub fn or_flag(&self, flag: Option<T>) -> T {
        flag.unwrap_or_else(|| self.value.clone())
    }
}

impl<T> Setting<T> {
    /// The same origin with the value mapped.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Setting<U> {
        Setting {
            value: f(self.value),
            origin: self.origin,
        }
    }
}

/// One setting as `config list` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Listed {
    /// Key name as used by `config get/set`.
    pub key: &'static str,
    /// Resolved value, if any (a secret shows as `(set)`).
    pub value: Option<String>,
    /// Where the value came from.
    pub origin: Origin,
    /// The environment variable that sets it.
    pub env: &'static str,
    /// Whether the config file may hold it.
    pub in_file: bool,
    /// What the key means.
    pub help: &'static str,
}

/// The config file merged with the environment (read once, when loaded).
#[derive(Clone, Debug)]
pub struct Config {
    home: PathBuf,
    file: BTreeMap<String, String>,
    env: BTreeMap<&'static str, String>,
}

/// hearth's data root: `$HEARTH_HOME`, else the XDG data dir, else `~/.hearth`. The one value
/// no config file can set, since the file lives there.
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
    /// Loads the config file under `home` (a missing file means all defaults) and reads each
    /// key's environment variable.
    pub fn load(home: &Path) -> Result<Self, ConfigError> {
        Self::with_env(home, |var| std::env::var(var).ok())
    }

    /// [`Config::load`] with the environment given by `env` (tests).
    pub fn with_env(
        home: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
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
        let env = KEYS
            .iter()
            .filter_map(|k| Some((k.env, env(k.env).filter(|v| !v.is_empty())?)))
            .collect();
        Ok(Self {
            home: home.to_path_buf(),
            file,
            env,
        })
    }

    /// The data root this config belongs to.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The config file.
    pub fn path(&self) -> PathBuf {
        self.home.join("config.toml")
    }

    fn resolve(&self, spec: &KeySpec) -> Setting<Option<String>> {
        if let Some(v) = self.env.get(spec.env) {
            return Setting {
                value: Some(v.clone()),
                origin: Origin::Env,
            };
        }
        if let Some(v) = self.file.get(spec.name).filter(|_| spec.in_file) {
            return Setting {
                value: Some(v.clone()),
                origin: Origin::File,
            };
        }
        Setting {
            value: (spec.default)(),
            origin: Origin::Default,
        }
    }

    /// The resolved text of `key`.
    pub fn raw(&self, key: &str) -> Result<Setting<Option<String>>, ConfigError> {
        Ok(self.resolve(spec(key)?))
    }

    /// `key` parsed as a `T`; a value that does not parse is an error naming the key, the value
    /// and where it came from.
    pub fn parsed<T>(&self, key: &str) -> Result<Setting<Option<T>>, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        let raw = self.raw(key)?;
        let value = match &raw.value {
            None => None,
            Some(text) => {
                Some(
                    text.trim()
                        .parse::<T>()
                        .map_err(|e| ConfigError::InvalidValue {
                            key: key.to_string(),
                            value: text.clone(),
                            source_: match raw.origin {
                                Origin::Env => {
                                    spec(key).map_or("the environment", |s| s.env).to_string()
                                }
                                other => other.to_string(),
                            },
                            reason: e.to_string(),
                        })?,
                )
            }
        };
        Ok(Setting {
            value,
            origin: raw.origin,
        })
    }

    /// A comma-separated `key` as its items (none when unset).
    pub fn items(&self, key: &str) -> Result<Setting<Vec<String>>, ConfigError> {
        Ok(self.raw(key)?.map(|v| {
            v.unwrap_or_default()
                .split(',')
                .map(|item| item.trim().to_string())
                .filter(|item| !item.is_empty())
                .collect()
        }))
    }

    /// The value `config get` prints (nothing for a secret).
    pub fn get(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let spec = spec(key)?;
        Ok(self.resolve(spec).value.filter(|_| !spec.secret))
    }

    /// Every known key with its resolved value and origin.
    pub fn list(&self) -> Vec<Listed> {
        KEYS.iter()
            .map(|k| {
                let Setting { value, origin } = self.resolve(k);
                Listed {
                    key: k.name,
                    value: if k.secret {
                        value.map(|_| "(set)".to_string())
                    } else {
                        value
                    },
                    origin,
                    env: k.env,
                    in_file: k.in_file,
                    help: k.help,
                }
            })
            .collect()
    }

    /// Sets `key = value` in this config, as the file would hold it, without writing it (the
    /// caller checks the whole configuration first, then [`Config::save`]s).
    pub fn stage(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let spec = spec(key)?;
        if !spec.in_file {
            return Err(ConfigError::EnvOnly {
                key: key.to_string(),
                env: spec.env,
            });
        }
        if spec.kind == Kind::Count {
            value
                .trim()
                .parse::<u64>()
                .map_err(|e| ConfigError::InvalidValue {
                    key: key.into(),
                    value: value.into(),
                    source_: "`config set`".into(),
                    reason: format!("expected a whole number ({e})"),
                })?;
        }
        self.file.insert(key.to_string(), value.trim().to_string());
        Ok(())
    }

    /// Writes the file keys to the config file, atomically (a temporary file in the same
    /// folder, renamed over the old one: a reader never sees half a file, and two writers never
    /// share a temporary name).
    pub fn save(&self) -> Result<(), ConfigError> {
        let mut table = toml::Table::new();
        for (k, v) in &self.file {
            let count = KEYS
                .iter()
                .any(|spec| spec.name == k && spec.kind == Kind::Count);
            let v = match v.parse::<i64>() {
                Ok(n) if count => toml::Value::Integer(n),
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
        crate::atomic_file::write(&path, table.to_string().as_bytes()).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(home: &Path) -> Config {
        Config::with_env(home, |_| None).unwrap()
    }

    #[test]
    fn set_then_get_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = no_env(dir.path());
        config.stage("ctx", "2048").unwrap();
        config.stage("default_model", "qwen2.5-0.5b").unwrap();
        config.save().unwrap();
        let again = no_env(dir.path());
        let ctx = again.parsed::<u32>("ctx").unwrap();
        assert_eq!(ctx.value, Some(2048));
        assert_eq!(ctx.origin, Origin::File);
        assert_eq!(again.get("default_model").unwrap().unwrap(), "qwen2.5-0.5b");
    }

    #[test]
    fn precedence_is_default_file_environment_flag() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = no_env(dir.path());
        let port = |c: &Config| c.parsed::<u16>("port").unwrap();
        assert_eq!(
            port(&config),
            Setting {
                value: Some(5273),
                origin: Origin::Default
            }
        );
        config.stage("port", "6000").unwrap();
        config.save().unwrap();
        assert_eq!(port(&no_env(dir.path())).value, Some(6000));
        let env = Config::with_env(dir.path(), |v| {
            (v == env::HEARTH_PORT).then(|| "7000".into())
        })
        .unwrap();
        assert_eq!(port(&env).origin, Origin::Env);
        assert_eq!(port(&env).or_flag(Some(Some(8000))), Some(8000));
        assert_eq!(port(&env).or_flag(None), Some(7000));
    }

    #[test]
    fn bad_values_unknown_keys_and_environment_only_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = no_env(dir.path());
        assert!(matches!(
            config.stage("threads", "many"),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert!(matches!(
            config.stage("colour", "blue"),
            Err(ConfigError::UnknownKey(_))
        ));
        assert!(matches!(
            config.stage("api_key", "s3cret"),
            Err(ConfigError::EnvOnly { .. })
        ));
        assert!(!dir.path().join("config.toml").exists());
        let env = Config::with_env(dir.path(), |v| {
            (v == env::HEARTH_PORT).then(|| "http".into())
        })
        .unwrap();
        let err = env.parsed::<u16>("port").unwrap_err().to_string();
        assert!(err.contains("HEARTH_PORT"), "{err}");
    }

    #[test]
    fn secrets_are_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::with_env(dir.path(), |v| {
            (v == env::HEARTH_API_KEY).then(|| "s3cret".into())
        })
        .unwrap();
        assert_eq!(config.get("api_key").unwrap(), None);
        let listed = config.list();
        let key = listed.iter().find(|l| l.key == "api_key").unwrap();
        assert_eq!(key.value.as_deref(), Some("(set)"));
        assert_eq!(key.origin, Origin::Env);
        assert!(!format!("{listed:?}").contains("s3cret"));
    }

    #[test]
    fn two_writers_of_the_config_file_never_leave_half_a_file() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|scope| {
            for t in 0..4 {
                let home = dir.path();
                scope.spawn(move || {
                    for i in 0..25 {
                        let mut config = no_env(home);
                        config
                            .stage("default_model", &format!("writer-{t}-{i}"))
                            .unwrap();
                        config.save().unwrap();
                        // Whatever is there now parses.
                        no_env(home);
                    }
                });
            }
        });
        let last = no_env(dir.path()).get("default_model").unwrap().unwrap();
        assert!(last.starts_with("writer-"), "{last}");
    }
}
