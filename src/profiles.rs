//! Serving profiles: per-model settings that `hearth tune --apply` found best on this machine,
//! kept in `$HEARTH_HOME/profiles.json`. `serve` (and so `service start`) and `model run` load a
//! model with its profile; a command-line flag still overrides any of its settings. `bench`
//! never applies one: it measures what it is told.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::compute::{Compute, FlashAttn, KvType};
use crate::engine::devices::GpuLayers;
use crate::engine::speculative::Speculative;

/// Why the profiles could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The profiles file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not the JSON hearth writes.
    #[error("{path} is not a valid profiles file: {message}")]
    Parse {
        /// The profiles file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

/// One model's serving settings. Every field is optional: what a profile leaves out comes from
/// the flags and settings as without one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Slots decoded together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<u32>,
    /// Context per slot, tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<u32>,
    /// Speculative decoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speculative: Option<Speculative>,
    /// CPU threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// Layers offloaded to the GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_layers: Option<GpuLayers>,
    /// The KV cache's element type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_type: Option<KvType>,
    /// Flash attention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flash_attn: Option<FlashAttn>,
    /// Most tokens one decode step takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// llama.cpp's micro-batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ubatch: Option<u32>,
    /// Where it came from, in words (the tune, its load and SLO, what it measured), so `ps`,
    /// `config` and `model info` can say why a model is served this way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Profile {
    /// The settings as `serve` flags, for people reading `config` or `model info`.
    pub fn flags(&self) -> String {
        let mut out = Vec::new();
        let mut push = |flag: &str, value: Option<String>| {
            if let Some(v) = value {
                out.push(format!("--{flag} {v}"));
            }
        };
        push("parallel", self.parallel.map(|v| v.to_string()));
        push("ctx", self.ctx.map(|v| v.to_string()));
        push("speculative", self.speculative.map(|v| v.to_string()));
        push("threads", self.threads.map(|v| v.to_string()));
        push("gpu-layers", self.gpu_layers.map(|v| v.to_string()));
        push("kv-type", self.kv_type.map(|v| v.to_string()));
        push("flash-attn", self.flash_attn.map(|v| v.to_string()));
        push("batch", self.batch.map(|v| v.to_string()));
        push("ubatch", self.ubatch.map(|v| v.to_string()));
        out.join(" ")
    }

    /// `compute` with this profile's settings where `flags` (what the command line set) left
    /// them open.
    pub fn compute_over(&self, compute: Compute, flags: &Profile) -> Compute {
        let compute = Compute {
            kv_type: pick(flags.kv_type, self.kv_type, compute.kv_type),
            flash_attn: pick(flags.flash_attn, self.flash_attn, compute.flash_attn),
            batch: pick(flags.batch, self.batch, compute.batch),
            ubatch: pick(flags.ubatch, self.ubatch, compute.ubatch),
        };
        // A flag `--flash-attn off` over a profile's quantised cache cannot run: the flag
        // wins and the cache falls back to f16.
        if compute.check().is_err() && flags.kv_type.is_none() {
            return Compute {
                kv_type: KvType::F16,
                ..compute
            };
        }
        compute
    }
}

/// The flag, else the profile's value, else the setting's.
fn pick<T>(flag: Option<T>, mine: Option<T>, now: T) -> T {
    flag.or(mine).unwrap_or(now)
}

/// Every model's profile, by alias.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profiles {
    by_model: BTreeMap<String, Profile>,
}

/// The profiles file under hearth's home.
pub fn path(home: &Path) -> PathBuf {
    home.join("profiles.json")
}

impl Profiles {
    /// Reads `file`; none there is no profiles.
    pub fn load(file: &Path) -> Result<Self, ProfileError> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(ProfileError::Io {
                    path: file.to_path_buf(),
                    source,
                })
            }
        };
        let by_model = serde_json::from_str(&text).map_err(|e| ProfileError::Parse {
            path: file.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Self { by_model })
    }

    /// Writes every profile to `file` atomically (a reader never sees half a file).
    pub fn save(&self, file: &Path) -> Result<(), ProfileError> {
        let text = serde_json::to_string_pretty(&self.by_model).expect("profiles serialize");
        crate::atomic_file::write(file, text.as_bytes()).map_err(|source| ProfileError::Io {
            path: file.to_path_buf(),
            source,
        })
    }

    /// The profile of `alias`, if it has one.
    pub fn get(&self, alias: &str) -> Option<&Profile> {
        self.by_model.get(alias)
    }

    /// Sets (replaces) the profile of `alias`.
    pub fn set(&mut self, alias: &str, profile: Profile) {
        self.by_model.insert(alias.to_string(), profile);
    }

    /// Removes the profile of `alias`; whether there was one.
    pub fn remove(&mut self, alias: &str) -> bool {
        self.by_model.remove(alias).is_some()
    }

    /// Every profile, by alias.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Profile)> {
        self.by_model.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_round_trip_atomically_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path());
        assert_eq!(Profiles::load(&file).unwrap(), Profiles::default());
        let mut p = Profiles::default();
        let profile = Profile {
            parallel: Some(4),
            kv_type: Some(KvType::Q8_0),
            speculative: Some(Speculative::Off),
            source: Some("tune 20261205".into()),
            ..Profile::default()
        };
        p.set("smollm2-135m@q4_0", profile.clone());
        p.save(&file).unwrap();
        let back = Profiles::load(&file).unwrap();
        assert_eq!(back.get("smollm2-135m@q4_0"), Some(&profile));
        assert_eq!(
            profile.flags(),
            "--parallel 4 --speculative off --kv-type q8_0"
        );
        std::fs::write(&file, "{not json").unwrap();
        let err = Profiles::load(&file).unwrap_err().to_string();
        assert!(err.contains("not a valid profiles file"), "{err}");
    }

    #[test]
    fn a_flag_outranks_the_profile_which_outranks_the_setting() {
        let profile = Profile {
            kv_type: Some(KvType::Q8_0),
            batch: Some(128),
            ..Profile::default()
        };
        let setting = Compute::default();
        let none = Profile::default();
        let got = profile.compute_over(setting, &none);
        assert_eq!((got.kv_type, got.batch), (KvType::Q8_0, 128));
        let flags = Profile {
            batch: Some(256),
            ..Profile::default()
        };
        assert_eq!(profile.compute_over(setting, &flags).batch, 256);
        // `--flash-attn off` over a quantised profile cache: the flag wins, the cache is f16.
        let off = Profile {
            flash_attn: Some(FlashAttn::Off),
            ..Profile::default()
        };
        let got = profile.compute_over(setting, &off);
        assert_eq!((got.kv_type, got.flash_attn), (KvType::F16, FlashAttn::Off));
    }
}
