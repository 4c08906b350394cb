//! The model cache: where GGUF files live on disk, how they get there, and how we know they are
//! intact.
//!
//! The layout is versioned (like uv's `wheels-v6`), so a future change of layout can live next to
//! this one instead of misreading it:
//!
//! ```text
//! <home>/models-v1/
//!   <alias>/<file_name>        the model, complete and (when a sha256 was known) verified
//!   <alias>/entry.json         sidecar: alias, file_name, size_bytes, sha256, verified, source, added_at
//!   .tmp/                      partial downloads and copies in progress (same file system, so
//!                              placing a file is an atomic rename)
//!   .locks/<alias>.lock        exclusive lock held while an alias is written or removed
//! ```
//!
//! The rule that everything here serves: nothing half-written or unverified ever appears under
//! `<alias>/`. Bytes are written and hashed in `.tmp/`, fsynced, renamed into place, and only then
//! described by a fresh `entry.json`.

mod download;
mod error;
mod progress;

pub use download::{download, DownloadSpec, HubConfig};
pub use error::CacheError;
pub use progress::{BarProgress, DownloadProgress, MakeObserver, NoProgress};

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use error::Result;

/// Name of the versioned layout directory under the hearth home.
const LAYOUT_DIR: &str = "models-v1";
/// Name of the sidecar describing a cached model.
const ENTRY_FILE: &str = "entry.json";
/// Read size when hashing or copying: large enough that a multi-GB model is not hashed in
/// millions of tiny syscalls.
pub(crate) const CHUNK: usize = 1 << 20;

/// A handle on the cache directory.
///
/// It exists so that every command (pull, add, run, serve, cache list/remove/verify) agrees on one
/// layout and one set of rules for writing into it. Cheap to clone: it is only a path.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    hub: HubConfig,
}

/// A model that is in the cache and ready to load.
///
/// It exists so callers get the path to hand to the engine together with what we know about the
/// file (size, hash, provenance) without reading the sidecar themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CachedModel {
    /// The name the user refers to the model by.
    pub alias: String,
    /// Absolute path of the model file.
    pub path: PathBuf,
    /// Size of the file in bytes.
    pub size_bytes: u64,
    /// Lowercase hex sha256 of the file, computed while it was written.
    pub sha256: String,
    /// True when the hash was checked against one given in advance (catalog or `--sha256`).
    pub verified: bool,
    /// Where it came from: `hub:<repo>/<file>@<rev>` or `local:<original path>`.
    pub source: String,
}

/// The result of re-hashing one cached model.
///
/// It exists so `hearth cache verify` can report each model separately instead of stopping at the
/// first bad one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum VerifyOutcome {
    /// The file hashes to the sha256 recorded in `entry.json`.
    Ok,
    /// The file is there but its content changed.
    Mismatch {
        /// The sha256 the file has now.
        actual: String,
    },
    /// `entry.json` names a file that is gone.
    Missing,
}

/// The on-disk form of `<alias>/entry.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    alias: String,
    file_name: String,
    size_bytes: u64,
    sha256: String,
    verified: bool,
    source: String,
    added_at: u64,
}

/// Held while an alias is being written or removed; dropping it closes the lock file, which
/// releases the lock.
#[derive(Debug)]
pub(crate) struct AliasLock {
    _file: File,
}

impl Cache {
    /// A cache rooted at `home/models-v1`. Nothing is created until something is written.
    pub fn new(home: &Path) -> Cache {
        Cache {
            root: home.join(LAYOUT_DIR),
            hub: HubConfig::default(),
        }
    }

    /// This cache, filled from `hub` when a model is missing (the public hub by default).
    pub fn with_hub(self, hub: HubConfig) -> Cache {
        Cache { hub, ..self }
    }

    /// Where missing models are downloaded from.
    pub fn hub(&self) -> &HubConfig {
        &self.hub
    }

    /// The directory holding all cached models (for `hearth cache location`).
    pub fn location(&self) -> &Path {
        &self.root
    }

    /// The cached model for `alias`, if its sidecar and file both exist and agree on the size.
    ///
    /// It does not hash the file (that is [`Cache::verify`]'s job); it is cheap enough to call
    /// before every load.
    pub fn lookup(&self, alias: &str) -> Option<CachedModel> {
        validate_alias(alias).ok()?;
        let entry = match self.read_entry(alias) {
            Ok(Some(entry)) => entry,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!("{e}");
                return None;
            }
        };
        let model = self.model_of(entry);
        let meta = fs::metadata(&model.path).ok()?;
        (meta.is_file() && meta.len() == model.size_bytes).then_some(model)
    }

    /// All usable cached models, sorted by alias.
    pub fn list(&self) -> Result<Vec<CachedModel>> {
        let mut models: Vec<CachedModel> = self
            .aliases()?
            .iter()
            .filter_map(|alias| self.lookup(alias))
            .collect();
        models.sort_by(|a, b| a.alias.cmp(&b.alias));
        Ok(models)
    }

    /// Deletes the model stored under `alias` (and its partial download, if any).
    ///
    /// Returns whether there was anything to delete. Waits for a download of the same alias in
    /// another process to finish first, so it never pulls a file from under a writer.
    pub fn remove(&self, alias: &str) -> Result<bool> {
        validate_alias(alias)?;
        self.ensure_dirs()?;
        let _lock = self.lock(alias)?;
        let entry = self.read_entry(alias).ok().flatten();
        let dir = self.model_dir(alias);
        let existed = dir.exists();
        if existed {
            fs::remove_dir_all(&dir).map_err(|e| CacheError::io(&dir, e))?;
        }
        if let Some(entry) = entry {
            for path in download::partial_paths(self, alias, &entry.file_name) {
                remove_if_exists(&path)?;
            }
        }
        tracing::info!(alias, existed, "removed from cache");
        Ok(existed)
    }

    /// Re-hashes every cached model and compares with the sha256 recorded when it was written.
    ///
    /// Entries whose sidecar cannot be read are skipped with a warning.
    pub fn verify(&self) -> Result<Vec<(CachedModel, VerifyOutcome)>> {
        let mut results = Vec::new();
        for alias in self.aliases()? {
            let entry = match self.read_entry(&alias) {
                Ok(Some(entry)) => entry,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("skipping: {e}");
                    continue;
                }
            };
            results.push(self.verify_entry(entry)?);
        }
        results.sort_by(|a, b| a.0.alias.cmp(&b.0.alias));
        Ok(results)
    }

    /// [`Cache::verify`] for one alias (the web UI's button); `None` when it is not cached.
    pub fn verify_one(&self, alias: &str) -> Result<Option<(CachedModel, VerifyOutcome)>> {
        match self.read_entry(alias)? {
            Some(entry) => Ok(Some(self.verify_entry(entry)?)),
            None => Ok(None),
        }
    }

    fn verify_entry(&self, entry: Entry) -> Result<(CachedModel, VerifyOutcome)> {
        let model = self.model_of(entry);
        let outcome = match File::open(&model.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => VerifyOutcome::Missing,
            Err(e) => return Err(CacheError::io(&model.path, e)),
            Ok(file) => {
                let (actual, _) = hash_copy(file, &model.path, io::sink(), &model.path)?;
                if actual == model.sha256 {
                    VerifyOutcome::Ok
                } else {
                    VerifyOutcome::Mismatch { actual }
                }
            }
        };
        tracing::debug!(alias = %model.alias, ?outcome, "verified");
        Ok((model, outcome))
    }

    /// Copies a local GGUF file into the cache under `alias` (bring-your-own model).
    ///
    /// The copy is hashed as it is written into `.tmp/`; when `expected_sha256` is given and does
    /// not match, the copy is deleted and an error returned. Otherwise the copy is fsynced and
    /// renamed into place, replacing whatever the alias held before.
    pub fn add_file(
        &self,
        alias: &str,
        src: &Path,
        expected_sha256: Option<&str>,
    ) -> Result<CachedModel> {
        validate_alias(alias)?;
        let file_name = src.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            CacheError::InvalidFileName {
                name: src.display().to_string(),
                reason: "the path has no UTF-8 file name",
            }
        })?;
        validate_file_name(file_name)?;
        let expected = expected_sha256.map(normalize_sha);
        let src_abs = fs::canonicalize(src).map_err(|e| CacheError::io(src, e))?;
        if !src_abs.is_file() {
            return Err(CacheError::io(
                &src_abs,
                io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }

        self.ensure_dirs()?;
        let _lock = self.lock(alias)?;
        let tmp = self.tmp_dir().join(format!("{alias}-{file_name}.adding"));
        let copied: Result<(String, u64)> = (|| {
            let input = File::open(&src_abs).map_err(|e| CacheError::io(&src_abs, e))?;
            let output = File::create(&tmp).map_err(|e| CacheError::io(&tmp, e))?;
            let (sha, size) = hash_copy(input, &src_abs, &output, &tmp)?;
            output.sync_all().map_err(|e| CacheError::io(&tmp, e))?;
            Ok((sha, size))
        })();
        let (sha, size) = match copied {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if let Some(expected) = &expected {
            if *expected != sha {
                remove_if_exists(&tmp)?;
                return Err(CacheError::ShaMismatch {
                    what: src_abs.display().to_string(),
                    expected: expected.clone(),
                    actual: sha,
                });
            }
        }
        let source = format!("local:{}", src_abs.display());
        let model = self.place(
            alias,
            &tmp,
            file_name,
            &sha,
            size,
            expected.is_some(),
            &source,
        )?;
        tracing::info!(alias, path = %model.path.display(), "added local model");
        Ok(model)
    }

    /// The sha256 of any file, read in the cache's chunk size (for lineage of files the cache
    /// did not place itself).
    pub fn sha256_of(path: &Path) -> Result<String> {
        let file = File::open(path).map_err(|e| CacheError::io(path, e))?;
        Ok(hash_copy(file, path, io::sink(), path)?.0)
    }

    /// A path in the cache's scratch folder for a file hearth makes itself (a quantized
    /// variant): on the cache's file system, so [`Cache::adopt_file`] can move it in at once.
    /// Any file left there by an earlier attempt is removed.
    pub fn scratch_path(&self, name: &str) -> Result<PathBuf> {
        validate_file_name(name)?;
        self.ensure_dirs()?;
        let path = self.tmp_dir().join(name);
        remove_if_exists(&path)?;
        Ok(path)
    }

    /// Moves a file hearth made in the scratch folder (see [`Cache::scratch_path`]) into the
    /// cache under `alias`, hashing it on the way; `source` records its lineage
    /// (`quantize:…`). On any error the scratch file is removed, so nothing partial remains.
    pub fn adopt_file(
        &self,
        alias: &str,
        made: &Path,
        file_name: &str,
        source: &str,
    ) -> Result<CachedModel> {
        let adopted = (|| {
            validate_alias(alias)?;
            validate_file_name(file_name)?;
            let _lock = self.lock(alias)?;
            let file = File::open(made).map_err(|e| CacheError::io(made, e))?;
            let (sha, size) = hash_copy(file, made, io::sink(), made)?;
            File::open(made)
                .and_then(|f| f.sync_all())
                .map_err(|e| CacheError::io(made, e))?;
            self.place(alias, made, file_name, &sha, size, false, source)
        })();
        if adopted.is_err() {
            let _ = fs::remove_file(made);
        }
        adopted
    }

    // ----- layout -----

    fn model_dir(&self, alias: &str) -> PathBuf {
        self.root.join(alias)
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join(".tmp")
    }

    fn locks_dir(&self) -> PathBuf {
        self.root.join(".locks")
    }

    pub(crate) fn ensure_dirs(&self) -> Result<()> {
        for dir in [self.tmp_dir(), self.locks_dir()] {
            fs::create_dir_all(&dir).map_err(|e| CacheError::io(&dir, e))?;
        }
        Ok(())
    }

    /// Names of the alias directories (hidden `.tmp` and `.locks` excluded), unsorted.
    fn aliases(&self) -> Result<Vec<String>> {
        let read = match fs::read_dir(&self.root) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(CacheError::io(&self.root, e)),
        };
        let mut aliases = Vec::new();
        for item in read {
            let item = item.map_err(|e| CacheError::io(&self.root, e))?;
            let is_dir = item.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if let Some(name) = item.file_name().to_str() {
                if is_dir && validate_alias(name).is_ok() {
                    aliases.push(name.to_string());
                }
            }
        }
        Ok(aliases)
    }

    fn read_entry(&self, alias: &str) -> Result<Option<Entry>> {
        let path = self.model_dir(alias).join(ENTRY_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CacheError::io(&path, e)),
        };
        let entry: Entry =
            serde_json::from_slice(&bytes).map_err(|e| CacheError::CorruptEntry {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if entry.alias != alias || validate_file_name(&entry.file_name).is_err() {
            return Err(CacheError::CorruptEntry {
                path,
                reason: format!(
                    "it describes alias {:?}, file {:?}",
                    entry.alias, entry.file_name
                ),
            });
        }
        Ok(Some(entry))
    }

    fn model_of(&self, entry: Entry) -> CachedModel {
        CachedModel {
            path: self.model_dir(&entry.alias).join(&entry.file_name),
            alias: entry.alias,
            size_bytes: entry.size_bytes,
            sha256: entry.sha256,
            verified: entry.verified,
            source: entry.source,
        }
    }

    // ----- writing -----

    /// Takes the exclusive lock for `alias`, blocking until any other holder (another process, or
    /// another task of this one) lets go. Call [`Cache::ensure_dirs`] first.
    pub(crate) fn lock(&self, alias: &str) -> Result<AliasLock> {
        let path = self.locks_dir().join(format!("{alias}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| CacheError::io(&path, e))?;
        let acquired = file
            .try_lock_exclusive()
            .map_err(|e| CacheError::io(&path, e))?;
        if !acquired {
            tracing::info!(
                alias,
                "another hearth process is writing this model; waiting"
            );
            file.lock_exclusive()
                .map_err(|e| CacheError::io(&path, e))?;
        }
        Ok(AliasLock { _file: file })
    }

    /// Moves a complete, fsynced file from `.tmp/` to `<alias>/<file_name>` and describes it with
    /// a fresh `entry.json`. The caller holds the alias lock.
    ///
    /// Order matters: the old sidecar goes first, so no reader ever sees new bytes described by
    /// old metadata (it sees "not cached" for an instant instead).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn place(
        &self,
        alias: &str,
        tmp: &Path,
        file_name: &str,
        sha256: &str,
        size_bytes: u64,
        verified: bool,
        source: &str,
    ) -> Result<CachedModel> {
        let dir = self.model_dir(alias);
        fs::create_dir_all(&dir).map_err(|e| CacheError::io(&dir, e))?;
        let old = self.read_entry(alias).ok().flatten();
        remove_if_exists(&dir.join(ENTRY_FILE))?;

        let final_path = dir.join(file_name);
        fs::rename(tmp, &final_path).map_err(|e| CacheError::io(&final_path, e))?;
        if let Some(old) = old.filter(|old| old.file_name != file_name) {
            remove_if_exists(&dir.join(old.file_name))?;
        }

        let entry = Entry {
            alias: alias.to_string(),
            file_name: file_name.to_string(),
            size_bytes,
            sha256: sha256.to_string(),
            verified,
            source: source.to_string(),
            added_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let json = serde_json::to_vec_pretty(&entry).expect("an Entry always serializes");
        let entry_path = dir.join(ENTRY_FILE);
        crate::atomic_file::write(&entry_path, &json)
            .map_err(|e| CacheError::io(&entry_path, e))?;
        sync_dir(&dir)?;
        Ok(self.model_of(entry))
    }
}

/// Refuses aliases that would escape the cache directory or collide with its hidden
/// bookkeeping directories.
fn validate_alias(alias: &str) -> Result<()> {
    let reason = if alias.is_empty() {
        Some("it is empty")
    } else if alias.len() > 200 {
        Some("it is longer than 200 bytes")
    } else if alias.starts_with('.') {
        Some("it starts with '.'")
    } else if alias.contains(['/', '\\']) {
        Some("it contains a path separator")
    } else if alias.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CacheError::InvalidAlias {
            alias: alias.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Refuses file names that are not a single plain path component, or that would be confused
/// with the sidecar.
pub(crate) fn validate_file_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.starts_with('.') {
        Some("it starts with '.'")
    } else if name.contains(['/', '\\']) {
        Some("it contains a path separator")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if name == ENTRY_FILE {
        Some("it is the name of the cache's own sidecar file")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CacheError::InvalidFileName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Hex sha256 as we store it: trimmed, lowercase.
pub(crate) fn normalize_sha(sha: &str) -> String {
    sha.trim().to_ascii_lowercase()
}

/// Copies `input` to `output` in [`CHUNK`]-sized reads, hashing on the way; returns the hex
/// sha256 and the byte count. The paths only name the culprit in errors.
pub(crate) fn hash_copy(
    mut input: impl Read,
    input_path: &Path,
    mut output: impl Write,
    output_path: &Path,
) -> Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CacheError::io(input_path, e)),
        };
        hasher.update(&buf[..n]);
        output
            .write_all(&buf[..n])
            .map_err(|e| CacheError::io(output_path, e))?;
        total += n as u64;
    }
    output.flush().map_err(|e| CacheError::io(output_path, e))?;
    Ok((hex::encode(hasher.finalize()), total))
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(CacheError::io(path, e)),
        _ => Ok(()),
    }
}

/// Makes renames into `dir` durable across a power cut (POSIX needs the directory fsynced too).
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CacheError::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests;
