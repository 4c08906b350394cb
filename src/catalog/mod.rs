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
//!
//! Rooms: the entry types, lookups and user files here; the built-in table in `builtin`;
//! `--filter` in `filter`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod builtin;
mod filter;
mod shape;

pub use builtin::{
    builtin_entries, DEFAULT_MODEL, DEFAULT_MODEL_SHA256, GEMMA3_270M, GEMMA3_270M_SHA256,
};
pub use filter::Filter;
pub use shape::{
    is_shape_alias, real_alias_of, Shape, ShapeError, SyntheticOrigin, ARCHITECTURES, SHAPE_SUFFIX,
    SHAPE_TAG,
};

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
    /// The serving process's id, so `hearth bench` can measure its memory and CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Or its process name (`llama-server`, `ollama`): the bench watches the process of that
    /// name when exactly one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
}

impl Upstream {
    /// The API key from the environment variable the entry names: none when it names none, an
    /// error naming the variable when it names one that is unset (a missing key should show up
    /// as that, not as the upstream's 401).
    pub fn api_key(&self) -> Result<Option<String>, String> {
        let Some(var) = &self.api_key_env else {
            return Ok(None);
        };
        match std::env::var(var) {
            Ok(key) if !key.trim().is_empty() => Ok(Some(key.trim().to_string())),
            _ => Err(format!(
                "the upstream's API key is read from the environment variable {var}, which is \
                 not set"
            )),
        }
    }
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
    /// The architecture's shape, from which `model synth` makes a random-weights twin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Shape>,
    /// Set on shape models (random weights, made by `model synth`): how it was made. Their
    /// speed and memory are real, their answers are noise, so nothing scores or routes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<SyntheticOrigin>,
    /// Long system prompts or documents `serve` computes once when it loads the model, so the
    /// first request that starts with one finds it ready (each is sent as a system message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warm_prompts: Vec<String>,
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

    /// True for a shape model: random weights, measured for speed and memory only.
    pub fn is_shape_model(&self) -> bool {
        self.synthetic.is_some() || is_shape_alias(&self.alias)
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
            kv_bytes_per_token,
            shape
        );
        if !other.warm_prompts.is_empty() {
            self.warm_prompts = other.warm_prompts;
        }
        for tag in other.capabilities {
            if !self.capabilities.contains(&tag) {
                self.capabilities.push(tag);
            }
        }
    }
}

/// Parses a models.json in either accepted shape (see the module docs).
pub fn parse_models_json(text: &str) -> Result<Vec<CatalogEntry>, String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        Full { models: Vec<CatalogEntry> },
        List(Vec<CatalogEntry>),
        Map(InFileOrder),
    }
    let shape: Shape = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut entries = match shape {
        Shape::Full { models } | Shape::List(models) => models,
        Shape::Map(InFileOrder(map)) => map
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

/// The simple shape's entries in the file's order: the order a user lists models in is the order
/// `bench --models-file` measures them, and a sorted map would lose it. Hand-written because
/// serde_json keeps object order only under a crate-wide feature that would reorder every other
/// JSON value hearth writes.
struct InFileOrder(Vec<(String, CatalogEntry)>);

impl<'de> Deserialize<'de> for InFileOrder {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = InFileOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of alias → entry")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<InFileOrder, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, CatalogEntry>()? {
                    entries.push(entry);
                }
                Ok(InFileOrder(entries))
            }
        }
        deserializer.deserialize_map(Entries)
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
    crate::atomic_file::write(path, text.as_bytes()).map_err(io)
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
            "gemma3-270m",
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
    fn gemma3_is_a_checksummed_base_model_not_a_chat_one() {
        let catalog = Catalog::builtin();
        let gemma = catalog.get(GEMMA3_270M).unwrap();
        assert_eq!(gemma.family.as_deref(), Some("gemma3"));
        assert_eq!(gemma.license.as_deref(), Some("Gemma"));
        assert_eq!(gemma.sha256.as_deref(), Some(GEMMA3_270M_SHA256));
        assert!(gemma.capabilities.iter().any(|t| t == "base"));
        assert!(!gemma.capabilities.iter().any(|t| t == "chat"));
        let chat = catalog.filter(&filters(&["tag=chat"]));
        assert!(chat.iter().all(|e| e.alias != GEMMA3_270M));
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
    fn simple_shape_keeps_the_file_order() {
        // Not alphabetical: the order a user lists models in is the order they are measured.
        let entries = parse_models_json(
            r#"{"smollm2-135m@q4_0": {"size_mb": 80}, "smollm2-135m": {"size_mb": 98},
                "a-model": {}}"#,
        )
        .unwrap();
        let aliases: Vec<_> = entries.iter().map(|e| e.alias.as_str()).collect();
        assert_eq!(aliases, ["smollm2-135m@q4_0", "smollm2-135m", "a-model"]);
        assert!(parse_models_json(r#"{"x": 3}"#).is_err());
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
