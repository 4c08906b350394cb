//! The one error type of the cache: every way adding, downloading, listing or verifying a
//! model can fail, each with a message a user can act on without reading the code.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the model cache.
///
/// It exists so that callers (the CLI, the server's model loader) can tell a missing model from a
/// refused token from a full disk, and so that each case carries the words the user needs: the
/// URL, the path, the expected and actual hash.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The alias cannot be used as a directory name in the cache.
    #[error("invalid model alias {alias:?}: {reason}")]
    InvalidAlias {
        /// The alias as given.
        alias: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// The file name (from the hub spec or a local path) cannot be used in the cache.
    #[error("invalid model file name {name:?}: {reason}")]
    InvalidFileName {
        /// The file name as given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A file-system operation failed; the path says where.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory the operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The disk (or the user's quota) ran out while writing.
    #[error(
        "disk full while writing {}: free some space and run again (a partial download is kept and resumes)",
        path.display()
    )]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },

    /// The content does not hash to the sha256 it was supposed to have.
    #[error("sha256 mismatch for {what}: expected {expected}, got {actual}")]
    ShaMismatch {
        /// What was hashed (a URL or a path).
        what: String,
        /// The sha256 we were told to expect.
        expected: String,
        /// The sha256 of the bytes we actually got.
        actual: String,
    },

    /// The hub answered 404 for the file.
    #[error("not found on the hub: {url} (check the repo, file name and revision)")]
    NotFound {
        /// The URL that was requested.
        url: String,
    },

    /// The hub refused access (401/403): a gated or private repo.
    #[error("access denied by the hub (HTTP {status}) for {url}: {}", if *token_sent {
        "HF_TOKEN is set but was refused; check that it is valid and that you accepted the model's terms on the hub"
    } else {
        "the repo may be gated or private; set HF_TOKEN to a Hugging Face access token"
    })]
    Unauthorized {
        /// The URL that was requested.
        url: String,
        /// 401 or 403.
        status: u16,
        /// Whether a bearer token was sent.
        token_sent: bool,
    },

    /// The hub endpoint could not be reached at all.
    #[error(
        "cannot connect to the hub at {endpoint}: {reason} (check the network, or HF_ENDPOINT)"
    )]
    Connect {
        /// The endpoint (HF_ENDPOINT or the default).
        endpoint: String,
        /// The underlying cause, e.g. "Connection refused".
        reason: String,
    },

    /// The hub answered with a status we do not handle.
    #[error("unexpected HTTP {status} from {url}")]
    HttpStatus {
        /// The URL that was requested.
        url: String,
        /// The status code.
        status: u16,
    },

    /// The connection failed in a way that is neither "refused" nor "cut short".
    #[error("network error while fetching {url}: {reason}")]
    Network {
        /// The URL that was requested.
        url: String,
        /// The underlying cause.
        reason: String,
    },

    /// The body ended before the announced size; the partial file is kept for a resume.
    #[error("truncated download of {alias}: {received} of {total} bytes; run again to resume")]
    Truncated {
        /// The alias being downloaded.
        alias: String,
        /// Bytes on disk now (including any resumed prefix).
        received: u64,
        /// Bytes expected in total.
        total: u64,
    },

    /// An `entry.json` sidecar exists but cannot be read as one.
    #[error("corrupt cache entry {}: {reason}", path.display())]
    CorruptEntry {
        /// The sidecar's path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl CacheError {
    /// Wraps an I/O error with the path it concerns, turning "no space left" into
    /// [`CacheError::DiskFull`] so the user is told what to do rather than an errno.
    pub fn io(path: impl AsRef<Path>, source: io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        if is_disk_full(&source) {
            CacheError::DiskFull { path }
        } else {
            CacheError::Io { path, source }
        }
    }
}

/// ENOSPC and EDQUOT both mean "no room left for this file".
fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// Shorthand for results in the cache module.
pub(crate) type Result<T, E = CacheError> = std::result::Result<T, E>;
