//! The prompt cache's disk tier: KV states of long prompts kept in files under
//! `$HEARTH_HOME/kv/`, so a long system prompt or document that comes back after the model
//! was unloaded (idle) or the server restarted is restored instead of prefilled again. On a
//! CPU a 3,000-token prefill takes seconds; reading its state back takes a fraction of that.
//!
//! Nothing read from disk is trusted: a file is used only when its header names the same
//! model file, llama.cpp build and KV layout ([`StateKey`]), and its tokens and state hash to
//! the checksum written with them. Anything else (truncated, corrupt, foreign, outdated) is
//! removed and logged, and the prompt is prefilled as if nothing was there. Files are written
//! to a temporary name and renamed, so a crash leaves no half file under a real name; the whole
//! folder is bounded, least recently used out.
//!
//! Written by hand: the file layout (a header, the tokens, the state) and the lookup by
//! longest token prefix are hearth's own; hashing is `sha2`'s.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::prompt_cache::reusable_prefix;

/// Prompts shorter than this are not worth a file: their prefill is quick, and the prompt cache
/// in memory already keeps them.
pub const MIN_DISK_TOKENS: usize = 256;

const MAGIC: &[u8; 8] = b"HEARTHKV";
const FORMAT: u32 = 1;
/// A header longer than this is not one hearth wrote.
const MAX_HEADER: u32 = 64 * 1024;

/// Where an engine keeps its long prompts' states, and which model file they belong to.
#[derive(Clone, Debug)]
pub struct KvDiskOptions {
    /// The kv folder (`$HEARTH_HOME/kv`).
    pub root: PathBuf,
    /// The model file's identity (see [`StateKey::model`]).
    pub model: String,
    /// Most bytes the whole folder holds.
    pub limit_bytes: u64,
}

/// What a saved state depends on. A state is restored only into an engine with the same key:
/// another model file, llama.cpp build, KV type or V layout would misread it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateKey {
    /// The model file: its sha256 when known, else its path, size and modification time.
    pub model: String,
    /// llama.cpp's build.
    pub engine: String,
    /// The KV cache's element type.
    pub kv_type: String,
    /// Flash attention's policy (without it, llama.cpp stores V transposed).
    pub flash_attn: String,
}

impl StateKey {
    /// The folder name of this key's files: a short hash of the key.
    fn folder(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(&Sha256::digest(&json)[..8])
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    key: StateKey,
    tokens: u64,
    state_bytes: u64,
    /// sha256 of the tokens (little-endian i32) followed by the state.
    sha256: String,
}

/// One file of this key's folder.
#[derive(Debug)]
struct DiskEntry {
    file: PathBuf,
    tokens: Vec<i32>,
}

/// A hit in the disk tier.
#[derive(Debug, PartialEq, Eq)]
pub struct DiskHit {
    /// Which entry.
    pub index: usize,
    /// Prompt tokens its state lets the request skip.
    pub reuse: usize,
    /// Tokens its file holds (what a restore reads).
    pub tokens: usize,
}

/// Whether reading a prompt's state back beats computing it, from what both cost on this
/// machine as the engine runs: seconds per token restored (the file read, its checksum and
/// llama.cpp's copy) and per prompt token prefilled. Until both were measured a restore is
/// taken as the cheaper (perf/prompt-cache-disk.sh: ×0.024 of the prefill on a CPU); on a
/// fast GPU with a slow disk the measurement can say otherwise.
#[derive(Clone, Debug, Default)]
pub struct RestoreOrCompute {
    restore: Option<f64>,
    compute: Option<f64>,
}

/// Weight of the newest measurement in the running means.
const COST_SMOOTHING: f64 = 0.25;

fn running(old: Option<f64>, new: f64) -> Option<f64> {
    Some(old.map_or(new, |o| o + COST_SMOOTHING * (new - o)))
}

impl RestoreOrCompute {
    /// Records a restore of `tokens` tokens that took `seconds`.
    pub fn restored(&mut self, tokens: usize, seconds: f64) {
        if tokens > 0 && seconds.is_finite() {
            self.restore = running(self.restore, seconds / tokens as f64);
        }
    }

    /// Records a prefill of `tokens` prompt tokens that took `seconds`.
    pub fn prefilled(&mut self, tokens: usize, seconds: f64) {
        if tokens > 0 && seconds.is_finite() {
            self.compute = running(self.compute, seconds / tokens as f64);
        }
    }

    /// Whether reading a file of `file_tokens` tokens is cheaper than prefilling the `saves`
    /// prompt tokens it spares.
    pub fn worth_restoring(&self, file_tokens: usize, saves: usize) -> bool {
        match (self.restore, self.compute) {
            (Some(restore), Some(compute)) => {
                restore * file_tokens as f64 <= compute * saves as f64
            }
            _ => true,
        }
    }
}

/// The files of one [`StateKey`] under the kv folder, indexed by their tokens. Lookups and reads
/// run on the caller's thread (a read is what a hit needs before its prefill); writes go to a
/// thread of their own, so an eviction never stalls the engine's batch. Dropping the tier
/// waits for the writes in flight.
#[derive(Debug)]
pub struct DiskTier {
    dir: PathBuf,
    key: StateKey,
    limit_bytes: u64,
    entries: Vec<DiskEntry>,
    writer: Option<(mpsc::Sender<Job>, std::thread::JoinHandle<()>)>,
    /// Bytes of states handed to the writer and not yet written (host memory they still hold).
    in_flight: Arc<AtomicUsize>,
}

/// What the writer thread is asked to do.
enum Job {
    /// Write a state, then remove the files it makes redundant.
    Write {
        tokens: Vec<i32>,
        state: Vec<u8>,
        replaces: Vec<PathBuf>,
    },
    /// Answer once everything sent before is done.
    Flush(mpsc::Sender<()>),
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Write { tokens, state, .. } => {
                write!(f, "Write({} tokens, {} bytes)", tokens.len(), state.len())
            }
            Job::Flush(_) => f.write_str("Flush"),
        }
    }
}

/// The writer thread's view: where files go and the bound of the whole folder.
struct Writer {
    root: PathBuf,
    dir: PathBuf,
    key: StateKey,
    limit_bytes: u64,
    in_flight: Arc<AtomicUsize>,
}

impl DiskTier {
    /// Opens `root/<key's folder>` (created when missing), reading the header and tokens of
    /// every file there; what is not a sound file of this key is removed. `limit_bytes` bounds
    /// the whole of `root`, every key's files together.
    pub fn open(root: &Path, key: StateKey, limit_bytes: u64) -> std::io::Result<Self> {
        let dir = root.join(key.folder());
        fs::create_dir_all(&dir)?;
        let mut entries = Vec::new();
        for item in fs::read_dir(&dir)? {
            let path = item?.path();
            let is_state = path.extension().is_some_and(|e| e == "kv");
            if !is_state {
                // A temporary file left by a crash mid-write.
                if path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".tmp"))
                {
                    let _ = fs::remove_file(&path);
                }
                continue;
            }
            match read_head(&path) {
                Ok((header, tokens)) if header.key == key => {
                    entries.push(DiskEntry { file: path, tokens })
                }
                Ok(_) => discard(&path, "written for another model, build or KV layout"),
                Err(why) => discard(&path, &why),
            }
        }
        let in_flight = Arc::new(AtomicUsize::new(0));
        let writer = Writer {
            root: root.to_path_buf(),
            dir: dir.clone(),
            key: key.clone(),
            limit_bytes,
            in_flight: in_flight.clone(),
        };
        let (jobs, inbox) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("hearth-kv-disk".into())
            .spawn(move || writer.run(&inbox))?;
        Ok(Self {
            dir,
            key,
            limit_bytes,
            entries,
            writer: Some((jobs, thread)),
            in_flight,
        })
    }

    /// Files indexed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no file is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The file sharing the longest reusable prefix with `prompt`, if any shares one of at
    /// least [`MIN_DISK_TOKENS`].
    pub fn best_match(&self, prompt: &[i32]) -> Option<DiskHit> {
        self.entries
            .iter()
            .enumerate()
            .map(|(index, e)| DiskHit {
                index,
                reuse: reusable_prefix(&e.tokens, prompt),
                tokens: e.tokens.len(),
            })
            .filter(|hit| hit.reuse >= MIN_DISK_TOKENS)
            .max_by_key(|hit| hit.reuse)
    }

    /// Whether a file already holds `tokens` or a longer run starting with them.
    pub fn covers(&self, tokens: &[i32]) -> bool {
        self.entries.iter().any(|e| e.tokens.starts_with(tokens))
    }

    /// The tokens and state of the hit's file, checked against its checksum; `None` when it no
    /// longer reads back sound (the file removed and the reason logged) or is gone (the bound
    /// removed it, or its write has not landed). A file read is marked as just used.
    pub fn read(&mut self, hit: &DiskHit) -> Option<(Vec<i32>, Vec<u8>)> {
        let file = self.entries.get(hit.index)?.file.clone();
        match read_whole(&file, &self.key) {
            Ok(found) => {
                let _ = File::options()
                    .write(true)
                    .open(&file)
                    .and_then(|f| f.set_modified(SystemTime::now()));
                Some(found)
            }
            Err(ReadError::Gone) => {
                self.entries.remove(hit.index);
                None
            }
            Err(ReadError::Unsound(why)) => {
                discard(&file, &why);
                self.entries.remove(hit.index);
                None
            }
        }
    }

    /// Has `state` (the KV of `tokens`) written to a new file, unless one already covers them;
    /// the files it extends go. The writer thread then removes the least recently used files
    /// of the whole kv folder until it fits the bound. A failure (a full disk) is logged and
    /// loses nothing but the file.
    pub fn write(&mut self, tokens: &[i32], state: Vec<u8>) {
        if tokens.len() < MIN_DISK_TOKENS || self.covers(tokens) {
            return;
        }
        if file_size(tokens.len(), state.len()) > self.limit_bytes {
            return;
        }
        let Some((jobs, _)) = &self.writer else {
            return;
        };
        let (gone, kept): (Vec<DiskEntry>, Vec<DiskEntry>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|e| tokens.starts_with(&e.tokens) && e.tokens.len() < tokens.len());
        self.entries = kept;
        self.entries.push(DiskEntry {
            file: self.dir.join(file_name(tokens)),
            tokens: tokens.to_vec(),
        });
        self.in_flight.fetch_add(state.len(), Ordering::SeqCst);
        let _ = jobs.send(Job::Write {
            tokens: tokens.to_vec(),
            state,
            replaces: gone.into_iter().map(|e| e.file).collect(),
        });
    }

    /// Bytes of states still waiting to be written: host memory the tier holds for now.
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Waits until every write sent so far has landed (or failed).
    pub fn flush(&self) {
        if let Some((jobs, _)) = &self.writer {
            let (done, wait) = mpsc::channel();
            if jobs.send(Job::Flush(done)).is_ok() {
                let _ = wait.recv();
            }
        }
    }
}

impl Drop for DiskTier {
    fn drop(&mut self) {
        if let Some((jobs, thread)) = self.writer.take() {
            drop(jobs);
            let _ = thread.join();
        }
    }
}

impl Writer {
    fn run(&self, inbox: &mpsc::Receiver<Job>) {
        for job in inbox {
            match job {
                Job::Write {
                    tokens,
                    state,
                    replaces,
                } => {
                    for file in replaces {
                        let _ = fs::remove_file(file);
                    }
                    if let Err(e) = self.write_file(&tokens, &state) {
                        tracing::warn!(
                            dir = %self.dir.display(),
                            error = %e,
                            "cannot keep a prompt's KV state on disk"
                        );
                    }
                    self.in_flight.fetch_sub(state.len(), Ordering::SeqCst);
                }
                Job::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    fn write_file(&self, tokens: &[i32], state: &[u8]) -> std::io::Result<()> {
        let token_bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
        let mut hasher = Sha256::new();
        hasher.update(&token_bytes);
        hasher.update(state);
        let header = serde_json::to_vec(&Header {
            key: self.key.clone(),
            tokens: tokens.len() as u64,
            state_bytes: state.len() as u64,
            sha256: hex::encode(hasher.finalize()),
        })?;
        // Room first, so the folder never holds more than the bound, not even while the new
        // file is being written.
        self.enforce_bound(file_size(tokens.len(), state.len()) + header.len() as u64);
        let tmp = self
            .dir
            .join(format!(".tmp-{}-{}", std::process::id(), file_name(tokens)));
        let result = (|| {
            let mut f = std::io::BufWriter::new(File::create(&tmp)?);
            f.write_all(MAGIC)?;
            f.write_all(&FORMAT.to_le_bytes())?;
            f.write_all(&(header.len() as u32).to_le_bytes())?;
            f.write_all(&header)?;
            f.write_all(&token_bytes)?;
            f.write_all(state)?;
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            fs::rename(&tmp, self.dir.join(file_name(tokens)))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Removes the least recently used files of the whole kv folder (every key's) until it
    /// fits `limit_bytes` with `room` to spare. The index learns of a removed file when a hit
    /// finds it gone.
    fn enforce_bound(&self, room: u64) {
        let mut files: Vec<(PathBuf, u64, SystemTime)> = files_under(&self.root)
            .into_iter()
            .map(|(path, meta)| {
                let when = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                (path, meta.len(), when)
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort_by_key(|f| f.2);
        for (path, len, _) in files {
            if total + room <= self.limit_bytes {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}

/// Files and bytes under the kv folder `root`, every model's together.
pub fn usage(root: &Path) -> (usize, u64) {
    let files = files_under(root);
    (files.len(), files.iter().map(|(_, meta)| meta.len()).sum())
}

/// Every file of every key's folder under the kv folder `root`, with its metadata.
fn files_under(root: &Path) -> Vec<(PathBuf, fs::Metadata)> {
    let folders = fs::read_dir(root).into_iter().flatten().flatten();
    folders
        .flat_map(|folder| fs::read_dir(folder.path()).into_iter().flatten().flatten())
        .filter_map(|file| Some((file.path(), file.metadata().ok()?)))
        .filter(|(_, meta)| meta.is_file())
        .collect()
}

/// Removes every file under the kv folder `root` (`hearth cache remove --kv`); what it freed.
pub fn clear(root: &Path) -> std::io::Result<(usize, u64)> {
    let freed = usage(root);
    match fs::remove_dir_all(root) {
        Ok(()) => Ok(freed),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((0, 0)),
        Err(e) => Err(e),
    }
}

/// The file of `tokens`: a hash of them, so the same prompt maps to the same file.
fn file_name(tokens: &[i32]) -> String {
    let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
    format!("{}.kv", hex::encode(&Sha256::digest(&bytes)[..12]))
}

/// Bytes a file of `tokens` tokens and a `state` of this size takes (the header aside).
fn file_size(tokens: usize, state: usize) -> u64 {
    (MAGIC.len() + 8 + 4 * tokens + state) as u64
}

fn discard(path: &Path, why: &str) {
    tracing::warn!(file = %path.display(), why, "prompt cache file ignored and removed");
    let _ = fs::remove_file(path);
}

/// The header and tokens of a file, without its state.
fn read_head(path: &Path) -> Result<(Header, Vec<i32>), String> {
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let (header, tokens, header_len) = head_of(&mut f)?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    // The whole file must be there: a truncated one is caught before it is ever chosen.
    let expected = file_size(tokens.len(), header.state_bytes as usize) + u64::from(header_len);
    if len != expected {
        return Err(format!("{len} bytes where {expected} were written"));
    }
    Ok((header, tokens))
}

/// The header, the tokens and the header's length in bytes.
fn head_of(f: &mut File) -> Result<(Header, Vec<i32>, u32), String> {
    let mut magic = [0u8; 8];
    let mut word = [0u8; 4];
    f.read_exact(&mut magic)
        .map_err(|_| "too short for a header")?;
    if &magic != MAGIC {
        return Err("not a hearth KV file".into());
    }
    f.read_exact(&mut word)
        .map_err(|_| "too short for a header")?;
    if u32::from_le_bytes(word) != FORMAT {
        return Err("another format version".into());
    }
    f.read_exact(&mut word)
        .map_err(|_| "too short for a header")?;
    let header_len = u32::from_le_bytes(word);
    if header_len > MAX_HEADER {
        return Err("header too long".into());
    }
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header).map_err(|_| "truncated header")?;
    let header: Header =
        serde_json::from_slice(&header).map_err(|e| format!("unreadable header: {e}"))?;
    let mut token_bytes = vec![0u8; header.tokens as usize * 4];
    f.read_exact(&mut token_bytes)
        .map_err(|_| "truncated tokens")?;
    let tokens = token_bytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((header, tokens, header_len))
}

/// Why a file did not read back.
enum ReadError {
    /// It is not there (removed by the bound, or its write has not landed yet).
    Gone,
    /// It is there but not sound: why.
    Unsound(String),
}

impl From<String> for ReadError {
    fn from(why: String) -> Self {
        ReadError::Unsound(why)
    }
}

/// Tokens and state of a file of `key`, checked against its checksum.
fn read_whole(path: &Path, key: &StateKey) -> Result<(Vec<i32>, Vec<u8>), ReadError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Gone),
        Err(e) => return Err(ReadError::Unsound(e.to_string())),
    };
    let (header, tokens, _) = head_of(&mut f)?;
    if &header.key != key {
        return Err("written for another model, build or KV layout"
            .to_string()
            .into());
    }
    let mut state = Vec::with_capacity(header.state_bytes as usize);
    f.read_to_end(&mut state).map_err(|e| e.to_string())?;
    if state.len() as u64 != header.state_bytes {
        return Err(format!(
            "{} bytes of state where the header says {}",
            state.len(),
            header.state_bytes
        )
        .into());
    }
    let mut hasher = Sha256::new();
    for t in &tokens {
        hasher.update(t.to_le_bytes());
    }
    hasher.update(&state);
    if hex::encode(hasher.finalize()) != header.sha256 {
        return Err("checksum mismatch".to_string().into());
    }
    Ok((tokens, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(model: &str) -> StateKey {
        StateKey {
            model: model.into(),
            engine: "test".into(),
            kv_type: "f16".into(),
            flash_attn: "auto".into(),
        }
    }

    fn prompt(start: i32, len: usize) -> Vec<i32> {
        (start..start + len as i32).collect()
    }

    #[test]
    fn a_state_written_is_found_by_prefix_after_reopening_and_reads_back_whole() {
        let root = tempfile::tempdir().unwrap();
        let mut tier = DiskTier::open(root.path(), key("a"), 1 << 20).unwrap();
        let tokens = prompt(0, 300);
        tier.write(&tokens, vec![7u8; 1000]);
        // Short prompts are not kept.
        tier.write(&prompt(5000, 10), vec![1u8; 10]);
        assert_eq!(tier.len(), 1);
        tier.flush();
        let mut again = DiskTier::open(root.path(), key("a"), 1 << 20).unwrap();
        let mut asked = tokens.clone();
        asked.extend([9, 9, 9]);
        let hit = again.best_match(&asked).unwrap();
        assert_eq!(hit.reuse, 300);
        let (got_tokens, state) = again.read(&hit).unwrap();
        assert_eq!((got_tokens, state), (tokens.clone(), vec![7u8; 1000]));
        // Too short a shared prefix is no hit.
        assert!(again.best_match(&prompt(0, 100)).is_none());
        // Another model's tier sees nothing of it.
        let other = DiskTier::open(root.path(), key("b"), 1 << 20).unwrap();
        assert!(other.is_empty());
    }

    #[test]
    fn a_corrupt_truncated_or_foreign_file_is_removed_and_never_read() {
        let root = tempfile::tempdir().unwrap();
        let mut tier = DiskTier::open(root.path(), key("a"), 1 << 20).unwrap();
        for start in [0, 1000, 2000] {
            tier.write(&prompt(start, 300), vec![start as u8; 500]);
        }
        tier.flush();
        tier.flush();
        let files: Vec<PathBuf> = tier.entries.iter().map(|e| e.file.clone()).collect();
        // Truncated: caught when the folder is opened.
        let f = File::options().write(true).open(&files[0]).unwrap();
        f.set_len(f.metadata().unwrap().len() - 10).unwrap();
        // A flipped byte of the state: caught when read.
        let mut bytes = fs::read(&files[1]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&files[1], bytes).unwrap();
        // Not a hearth file at all, under a .kv name.
        fs::write(tier.dir.join("junk.kv"), b"junk").unwrap();
        let mut again = DiskTier::open(root.path(), key("a"), 1 << 20).unwrap();
        assert_eq!(again.len(), 2, "{:?}", again.entries);
        assert!(!files[0].exists() && !tier.dir.join("junk.kv").exists());
        let hit = again.best_match(&prompt(1000, 301)).unwrap();
        assert_eq!(again.read(&hit), None);
        assert!(!files[1].exists());
        assert_eq!(again.len(), 1);
        let hit = again.best_match(&prompt(2000, 301)).unwrap();
        assert_eq!(again.read(&hit).unwrap().1, vec![2000u16 as u8; 500]);
        // A file of another key copied into this key's folder is removed.
        let mut b = DiskTier::open(root.path(), key("b"), 1 << 20).unwrap();
        b.write(&prompt(0, 300), vec![1u8; 100]);
        b.flush();
        let foreign = b.entries[0].file.clone();
        fs::copy(&foreign, again.dir.join("foreign.kv")).unwrap();
        let third = DiskTier::open(root.path(), key("a"), 1 << 20).unwrap();
        assert_eq!(third.len(), 1);
        assert!(!third.dir.join("foreign.kv").exists());
    }

    #[test]
    fn the_bound_holds_over_every_key_and_the_least_recently_used_go_first() {
        let root = tempfile::tempdir().unwrap();
        let state = vec![0u8; 10_000];
        let one = file_size(300, state.len()) + 200;
        let limit = 3 * one;
        let mut a = DiskTier::open(root.path(), key("a"), limit).unwrap();
        let mut b = DiskTier::open(root.path(), key("b"), limit).unwrap();
        a.write(&prompt(0, 300), state.clone());
        b.write(&prompt(1000, 300), state.clone());
        a.write(&prompt(2000, 300), state.clone());
        a.flush();
        b.flush();
        // Reading the first makes the second the oldest.
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        for e in a.entries.iter().chain(&b.entries) {
            File::options()
                .write(true)
                .open(&e.file)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let hit = a.best_match(&prompt(0, 301)).unwrap();
        a.read(&hit).unwrap();
        a.write(&prompt(3000, 300), state.clone());
        a.flush();
        let total: u64 = fs::read_dir(root.path())
            .unwrap()
            .flatten()
            .flat_map(|d| fs::read_dir(d.path()).unwrap().flatten())
            .map(|f| f.metadata().unwrap().len())
            .sum();
        assert!(total <= limit, "{total} > {limit}");
        let a = DiskTier::open(root.path(), key("a"), limit).unwrap();
        let b = DiskTier::open(root.path(), key("b"), limit).unwrap();
        assert!(a.covers(&prompt(0, 300)) && a.covers(&prompt(3000, 300)));
        assert_eq!(a.len() + b.len(), 3);
        // A longer prompt replaces the file it extends.
        let mut a = a;
        a.write(&prompt(0, 400), state.clone());
        assert!(a.covers(&prompt(0, 400)));
        assert_eq!(
            a.entries
                .iter()
                .filter(|e| e.tokens.starts_with(&[0]))
                .count(),
            1
        );
    }

    #[test]
    fn a_restore_is_chosen_only_while_it_is_measured_cheaper_than_the_prefill() {
        let mut r = RestoreOrCompute::default();
        // Nothing measured: restore.
        assert!(r.worth_restoring(3000, 100));
        r.prefilled(512, 2.5);
        assert!(r.worth_restoring(3000, 100));
        // A restore at 0.1 ms a token against a prefill at ~4.9 ms.
        r.restored(3000, 0.3);
        assert!(r.worth_restoring(3000, 2900));
        // A long file for a short gain: 3000 x 0.1 ms > 50 x 4.9 ms.
        assert!(!r.worth_restoring(3000, 50));
        // A slow disk: restores now cost more than the prefill.
        for _ in 0..20 {
            r.restored(3000, 30.0);
        }
        assert!(!r.worth_restoring(3000, 2900));
    }

    #[test]
    fn a_full_disk_loses_only_the_file_and_the_next_write_lands() {
        let full = Path::new("/dev/full");
        assert!(
            full.exists(),
            "this test needs /dev/full, the kernel's always-full device"
        );
        let root = tempfile::tempdir().unwrap();
        let mut tier = DiskTier::open(root.path(), key("a"), 1 << 20).unwrap();
        let tokens = prompt(0, 300);
        // The writer's temporary file for these tokens is the full device: writing to it
        // fails with ENOSPC from the kernel, as on a full disk.
        let tmp = tier.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            file_name(&tokens)
        ));
        std::os::unix::fs::symlink(full, &tmp).unwrap();
        tier.write(&tokens, vec![7u8; 100]);
        tier.flush();
        assert!(!tier.dir.join(file_name(&tokens)).exists());
        assert!(
            fs::symlink_metadata(&tmp).is_err(),
            "the temporary file stays behind"
        );
        // A hit on it finds nothing and forgets it; the prompt is prefilled.
        let hit = tier.best_match(&prompt(0, 301)).unwrap();
        assert_eq!(tier.read(&hit), None);
        assert!(tier.is_empty());
        // Room again: the same state lands, and reads back whole.
        tier.write(&tokens, vec![7u8; 100]);
        tier.flush();
        let hit = tier.best_match(&prompt(0, 301)).unwrap();
        assert_eq!(tier.read(&hit), Some((tokens, vec![7u8; 100])));
    }

    #[test]
    fn a_failed_write_loses_only_the_file() {
        let root = tempfile::tempdir().unwrap();
        let mut tier = DiskTier::open(root.path(), key("a"), 1 << 20).unwrap();
        // The folder gone (as a full or vanished disk would fail the write).
        fs::remove_dir_all(&tier.dir).unwrap();
        tier.write(&prompt(0, 300), vec![1u8; 100]);
        tier.flush();
        assert!(!tier.dir.exists());
        // A hit on it finds nothing and forgets it; the prompt is prefilled.
        let hit = tier.best_match(&prompt(0, 301)).unwrap();
        assert_eq!(tier.read(&hit), None);
        assert!(tier.is_empty());
    }
}
