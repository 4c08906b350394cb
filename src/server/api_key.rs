//! The server's API key, held so that it cannot leak: only its SHA-256 digest is kept (a `Debug`
//! of the server's options, a log line or a core dump shows no key), and a presented key is
//! compared digest to digest in constant time (`subtle`), so the time of a wrong answer says
//! nothing about how much of the key was right, not even its length.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A bearer key the server requires.
#[derive(Clone)]
pub struct ApiKey {
    digest: [u8; 32],
}

impl ApiKey {
    /// Holds `key` (as its digest).
    pub fn new(key: &str) -> Self {
        Self {
            digest: Sha256::digest(key.as_bytes()).into(),
        }
    }

    /// Whether `given` is the key, in time independent of where it differs.
    pub fn matches(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        self.digest.ct_eq(&given).into()
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_key_itself_matches_and_debug_shows_nothing_of_it() {
        let key = ApiKey::new("s3cret-key");
        assert!(key.matches("s3cret-key"));
        for wrong in ["", "s3cret-ke", "s3cret-key ", "S3cret-key", "s3cret-keyy"] {
            assert!(!key.matches(wrong), "{wrong}");
        }
        assert_eq!(format!("{key:?}"), "ApiKey(redacted)");
    }
}
