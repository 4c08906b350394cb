//! Fetching a model file from the Hugging Face hub (or any server with the same
//! `/{repo}/resolve/{revision}/{file}` URL scheme, e.g. a mirror set through `HF_ENDPOINT`).
//!
//! Written by hand over reqwest rather than with the `hf-hub` crate because we need, together:
//! resume of a partial file with `Range`, an exclusive per-alias lock so two processes never
//! write the same file, sha256 computed while streaming and checked before anything is placed,
//! and atomic placement into our own versioned layout (`models-v1/<alias>/…`). `hf-hub` keeps its
//! own cache layout and gives us none of the rest.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{HeaderMap, CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::error::Result;
use super::{
    hash_copy, normalize_sha, remove_if_exists, validate_alias, validate_file_name, Cache,
    CacheError, CachedModel, DownloadProgress, CHUNK,
};

/// What to download and under which alias to keep it.
///
/// It exists so the catalog (or the CLI, for an ad-hoc `repo/file`) can describe a model once and
/// hand it to [`download`] without the cache knowing about catalogs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadSpec {
    /// The name the model is cached and later loaded under.
    pub alias: String,
    /// Hub repository, e.g. `Qwen/Qwen2.5-0.5B-Instruct-GGUF`.
    pub repo: String,
    /// File inside the repository, e.g. `qwen2.5-0.5b-instruct-q4_k_m.gguf` (may contain `/`;
    /// only the last component names the cached file).
    pub file: String,
    /// Branch, tag or commit, e.g. `main`.
    pub revision: String,
    /// Lowercase or uppercase hex sha256 of the file, when known; checked before placement.
    pub sha256: Option<String>,
}

impl DownloadSpec {
    /// The provenance recorded in `entry.json`: `hub:<repo>/<file>@<revision>`.
    pub fn source(&self) -> String {
        format!("hub:{}/{}@{}", self.repo, self.file, self.revision)
    }
}

/// Where the hub is and how to authenticate to it.
///
/// It exists so the settings (`hf_endpoint`, `HF_TOKEN`) are read once, at the edge, and the
/// download code (and tests) take explicit values. Its `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// Base URL of the hub, without a trailing slash (`HF_ENDPOINT`, default
    /// `https://huggingface.co`).
    pub endpoint: String,
    /// Access token sent as `Authorization: Bearer …` (`HF_TOKEN`), needed for gated or private
    /// repositories.
    pub token: Option<String>,
}

impl std::fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConfig")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .finish()
    }
}

impl HubConfig {
    /// The public Hugging Face hub.
    pub const DEFAULT_ENDPOINT: &'static str = "https://huggingface.co";

    /// Builds a config from optional raw values: empty values count as unset, the endpoint
    /// defaults to the public hub.
    pub fn from_values(endpoint: Option<String>, token: Option<String>) -> Self {
        let endpoint = endpoint
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| Self::DEFAULT_ENDPOINT.to_string());
        let token = token
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        HubConfig { endpoint, token }
    }

    /// The URL of `spec`'s file: `{endpoint}/{repo}/resolve/{revision}/{file}`, with each path
    /// segment percent-encoded (a revision such as `refs/pr/1` becomes one segment).
    pub fn file_url(&self, spec: &DownloadSpec) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint,
            encode_path(&spec.repo, true),
            encode_path(&spec.revision, false),
            encode_path(&spec.file, true),
        )
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self::from_values(None, None)
    }
}

/// Downloads `spec` into the cache and returns the cached model.
///
/// Returns at once, without touching the network, when the alias already holds this file (same
/// source and, when given, same sha256). Otherwise it takes the alias lock (waiting for another
/// process that holds it, then checking again), resumes any partial file left by an earlier
/// attempt, streams the rest to `.tmp/` while hashing, checks size and sha256, and renames the
/// file into place. A transfer cut short keeps its partial file and returns
/// [`CacheError::Truncated`]; calling again resumes it.
pub async fn download(
    cache: &Cache,
    spec: &DownloadSpec,
    hub: &HubConfig,
    progress: &dyn DownloadProgress,
) -> Result<CachedModel> {
    validate_alias(&spec.alias)?;
    let file_name = cached_file_name(&spec.file)?;
    let expected = spec.sha256.as_deref().map(normalize_sha);
    let source = spec.source();
    let alias = spec.alias.as_str();

    if let Some(model) = already_cached(cache, alias, &source, expected.as_deref()) {
        tracing::debug!(alias, "already cached");
        return Ok(model);
    }
    cache.ensure_dirs()?;
    let _lock = {
        let (locker, alias) = (cache.clone(), alias.to_string());
        blocking(cache.location(), move || locker.lock(&alias)).await?
    };
    // Another process may have finished this very download while we waited for the lock.
    if let Some(model) = already_cached(cache, alias, &source, expected.as_deref()) {
        tracing::info!(alias, "downloaded meanwhile by another process");
        return Ok(model);
    }

    let [partial, marker] = partial_paths(cache, alias, file_name);
    discard_foreign_partial(&partial, &marker, &source)?;
    std::fs::write(&marker, &source).map_err(|e| CacheError::io(&marker, e))?;

    let url = hub.file_url(spec);
    // Without a catalog sha256, take the one the hub announces, so that no hub download is
    // placed unverified.
    let expected = match expected {
        Some(sha) => Some(sha),
        None => hub_announced_sha256(hub, &url).await,
    };
    tracing::info!(alias, %url, "downloading");
    let fetched = Fetch {
        url: &url,
        hub,
        partial: &partial,
        alias,
        progress,
    }
    .run()
    .await;
    progress.finish();
    if fetched.is_err() && partial_len(&partial)? == 0 {
        // Nothing to resume (404, refused token, …): leave no trace in `.tmp/`.
        remove_if_exists(&partial)?;
        remove_if_exists(&marker)?;
    }
    let (sha256, size) = fetched?;

    if let Some(expected) = &expected {
        if *expected != sha256 {
            remove_if_exists(&partial)?;
            remove_if_exists(&marker)?;
            return Err(CacheError::ShaMismatch {
                what: url,
                expected: expected.clone(),
                actual: sha256,
            });
        }
    }
    let model = cache.place(
        alias,
        &partial,
        file_name,
        &sha256,
        size,
        expected.is_some(),
        &source,
    )?;
    remove_if_exists(&marker)?;
    tracing::info!(alias, path = %model.path.display(), verified = model.verified, "downloaded");
    Ok(model)
}

/// The sha256 the Hugging Face hub announces for an LFS file: its `resolve` endpoint answers
/// with a redirect carrying `X-Linked-Etag: "<sha256>"` (what `huggingface_hub` verifies
/// against). `None` when the server does not say (small non-LFS files, other servers), or the
/// probe fails; the download itself then reports any real error.
async fn hub_announced_sha256(hub: &HubConfig, url: &str) -> Option<String> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(30))
        .build()
        .ok()?;
    let mut request = client.head(url);
    if let Some(token) = &hub.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.ok()?;
    let etag = response.headers().get("x-linked-etag")?.to_str().ok()?;
    let sha = etag
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_ascii_lowercase();
    (sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit())).then_some(sha)
}

/// The partial download of `file_name` for `alias`, and the marker beside it recording which
/// source the partial belongs to.
pub(crate) fn partial_paths(cache: &Cache, alias: &str, file_name: &str) -> [PathBuf; 2] {
    let tmp = cache.tmp_dir();
    [
        tmp.join(format!("{alias}-{file_name}.partial")),
        tmp.join(format!("{alias}-{file_name}.partial.source")),
    ]
}

/// The cached model for `alias` if it is the file `source` describes (and has the expected hash).
fn already_cached(
    cache: &Cache,
    alias: &str,
    source: &str,
    expected: Option<&str>,
) -> Option<CachedModel> {
    cache
        .lookup(alias)
        .filter(|m| m.source == source && expected.is_none_or(|e| e == m.sha256))
}

/// The cached file is named after the last component of the hub path.
fn cached_file_name(file: &str) -> Result<&str> {
    let name = file.rsplit('/').next().unwrap_or(file);
    validate_file_name(name)?;
    Ok(name)
}

/// A partial file left by a download of a *different* source under the same alias and file name
/// must not be resumed: its bytes belong to another file.
fn discard_foreign_partial(partial: &Path, marker: &Path, source: &str) -> Result<()> {
    if !partial.exists() {
        return Ok(());
    }
    let recorded = std::fs::read_to_string(marker).unwrap_or_default();
    if recorded != source {
        tracing::info!(partial = %partial.display(), "discarding a partial download of another source");
        remove_if_exists(partial)?;
    }
    Ok(())
}

/// One transfer into the partial file, possibly restarted once when the server refuses to resume.
struct Fetch<'a> {
    url: &'a str,
    hub: &'a HubConfig,
    partial: &'a Path,
    alias: &'a str,
    progress: &'a dyn DownloadProgress,
}

impl Fetch<'_> {
    /// Returns the sha256 and size of the complete partial file.
    async fn run(&self) -> Result<(String, u64)> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")))
            // reqwest drops the Authorization header when a redirect leaves the host (the hub
            // redirects large files to a CDN with signed URLs), so the token stays with the hub.
            .redirect(reqwest::redirect::Policy::limited(10))
            .connect_timeout(Duration::from_secs(30))
            // No total timeout (files are GBs), but a stalled body fails and can be resumed.
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| self.network_error(&e))?;

        let mut restarted = false;
        loop {
            let have = partial_len(self.partial)?;
            let mut request = client.get(self.url);
            if let Some(token) = &self.hub.token {
                request = request.bearer_auth(token);
            }
            if have > 0 {
                request = request.header(RANGE, format!("bytes={have}-"));
            }
            let response = request.send().await.map_err(|e| self.request_error(&e))?;
            let status = response.status();
            let body_len = response.content_length();
            let resume = match status {
                StatusCode::PARTIAL_CONTENT if have > 0 => {
                    match content_range(response.headers()) {
                        Some((Some(start), total)) if start == have => {
                            Some(total.or(body_len.map(|len| have + len)))
                        }
                        _ => None,
                    }
                }
                StatusCode::OK => {
                    if have > 0 {
                        tracing::info!(
                            alias = self.alias,
                            "the server ignored the range request; restarting from the beginning"
                        );
                    }
                    return self.write_body(response, 0, body_len).await;
                }
                StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => {
                    if let Some((None, Some(total))) = content_range(response.headers()) {
                        if total == have {
                            // The previous run got every byte but stopped before placing them.
                            return self.hash_partial().await;
                        }
                    }
                    None
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(CacheError::Unauthorized {
                        url: self.url.to_string(),
                        status: status.as_u16(),
                        token_sent: self.hub.token.is_some(),
                    })
                }
                StatusCode::NOT_FOUND => {
                    return Err(CacheError::NotFound {
                        url: self.url.to_string(),
                    })
                }
                _ => {
                    return Err(CacheError::HttpStatus {
                        url: self.url.to_string(),
                        status: status.as_u16(),
                    })
                }
            };
            match resume {
                Some(total) => return self.write_body(response, have, total).await,
                None if !restarted => {
                    tracing::info!(
                        alias = self.alias,
                        %status,
                        "cannot resume the partial download; restarting from the beginning"
                    );
                    remove_if_exists(self.partial)?;
                    restarted = true;
                }
                None => {
                    return Err(CacheError::HttpStatus {
                        url: self.url.to_string(),
                        status: status.as_u16(),
                    })
                }
            }
        }
    }

    /// Streams `response` into the partial file, appending after `have` bytes already there (or
    /// truncating it when `have` is 0). `total` is the full file size when known.
    async fn write_body(
        &self,
        response: reqwest::Response,
        have: u64,
        total: Option<u64>,
    ) -> Result<(String, u64)> {
        let path = self.partial;
        let io_err = |e: io::Error| CacheError::io(path, e);
        let mut hasher = if have > 0 {
            self.hash_prefix().await?
        } else {
            Sha256::new()
        };
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(have > 0)
            .truncate(have == 0)
            .open(path)
            .await
            .map_err(io_err)?;
        let mut out = tokio::io::BufWriter::with_capacity(CHUNK, file);

        self.progress.start(self.alias, total, have);
        let mut received = have;
        let mut cut = None;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => {
                    hasher.update(&bytes);
                    out.write_all(&bytes).await.map_err(io_err)?;
                    received += bytes.len() as u64;
                    self.progress.advance(bytes.len() as u64);
                }
                Err(e) => {
                    cut = Some(e);
                    break;
                }
            }
        }
        // Whatever arrived is kept, durably, so the next run can resume after it.
        out.flush().await.map_err(io_err)?;
        out.into_inner().sync_all().await.map_err(io_err)?;

        match (total, cut) {
            (Some(total), _) if received < total => Err(CacheError::Truncated {
                alias: self.alias.to_string(),
                received,
                total,
            }),
            (Some(total), _) if received > total => {
                remove_if_exists(path)?;
                Err(CacheError::Network {
                    url: self.url.to_string(),
                    reason: format!("received {received} bytes, more than the announced {total}"),
                })
            }
            (None, Some(e)) => Err(CacheError::Network {
                url: self.url.to_string(),
                reason: format!(
                    "{} after {received} bytes; run again to resume",
                    error_chain(&e)
                ),
            }),
            _ => Ok((hex::encode(hasher.finalize()), received)),
        }
    }

    /// Hashes the bytes already in the partial file, off the async threads.
    async fn hash_prefix(&self) -> Result<Sha256> {
        let path = self.partial.to_path_buf();
        blocking(self.partial, move || {
            let file = std::fs::File::open(&path).map_err(|e| CacheError::io(&path, e))?;
            let mut hasher = Sha256::new();
            let mut reader = io::BufReader::with_capacity(CHUNK, file);
            io::copy(&mut reader, &mut hasher).map_err(|e| CacheError::io(&path, e))?;
            Ok(hasher)
        })
        .await
    }

    /// The sha256 and size of a partial file that is already complete.
    async fn hash_partial(&self) -> Result<(String, u64)> {
        let path = self.partial.to_path_buf();
        blocking(self.partial, move || {
            let file = std::fs::File::open(&path).map_err(|e| CacheError::io(&path, e))?;
            hash_copy(file, &path, io::sink(), &path)
        })
        .await
    }

    fn request_error(&self, e: &reqwest::Error) -> CacheError {
        if e.is_connect() {
            CacheError::Connect {
                endpoint: self.hub.endpoint.clone(),
                reason: root_cause(e),
            }
        } else {
            self.network_error(e)
        }
    }

    fn network_error(&self, e: &reqwest::Error) -> CacheError {
        CacheError::Network {
            url: self.url.to_string(),
            reason: error_chain(e),
        }
    }
}

/// Runs blocking file work (a lock wait, hashing GBs) off the async worker threads.
async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(CacheError::io(path, io::Error::other(e))))
}

fn partial_len(path: &Path) -> Result<u64> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(meta.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(CacheError::io(path, e)),
    }
}

/// Parses `Content-Range: bytes START-END/TOTAL` (or `bytes */TOTAL` on a 416) into the start
/// offset and the total size; `*` parts become `None`.
fn content_range(headers: &HeaderMap) -> Option<(Option<u64>, Option<u64>)> {
    let value = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    let (range, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
    let start = match range.trim() {
        "*" => None,
        range => Some(range.split_once('-')?.0.trim().parse().ok()?),
    };
    let total = match total.trim() {
        "*" => None,
        total => Some(total.parse().ok()?),
    };
    Some((start, total))
}

/// The messages of an error's sources, outermost first, which is where reqwest keeps the useful
/// part ("tcp connect error: Connection refused"); its own outermost message only repeats the
/// URL the [`CacheError::Network`] names already.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    crate::error_chain::error_chain(e.source().unwrap_or(e))
}

/// The innermost error message ("Connection refused (os error 111)"), which is the one a user
/// can act on when a connection fails.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Percent-encodes a URL path; with `keep_slash` a `/` separates segments, otherwise it is
/// encoded too.
fn encode_path(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests;
