//! Unit tests of the download helpers: partial files, content ranges, path encoding.

use super::*;
use reqwest::header::HeaderValue;

fn spec(repo: &str, revision: &str, file: &str) -> DownloadSpec {
    DownloadSpec {
        alias: "a".into(),
        repo: repo.into(),
        file: file.into(),
        revision: revision.into(),
        sha256: None,
    }
}

#[test]
fn hub_config_defaults_and_trims() {
    assert_eq!(
        HubConfig::from_values(None, Some("  ".into())),
        HubConfig {
            endpoint: "https://huggingface.co".into(),
            token: None
        }
    );
    let hub = HubConfig::from_values(Some("http://mirror:8080/".into()), Some("hf_x\n".into()));
    assert_eq!(hub.endpoint, "http://mirror:8080");
    assert_eq!(hub.token.as_deref(), Some("hf_x"));
}

#[test]
fn file_url_encodes_revision_as_one_segment() {
    let hub = HubConfig::default();
    assert_eq!(
        hub.file_url(&spec("org/repo", "refs/pr/1", "sub dir/m.gguf")),
        "https://huggingface.co/org/repo/resolve/refs%2Fpr%2F1/sub%20dir/m.gguf"
    );
}

#[test]
fn cached_file_name_is_the_last_component() {
    assert_eq!(cached_file_name("q4/m.gguf").unwrap(), "m.gguf");
    assert!(cached_file_name("q4/").is_err());
    assert!(cached_file_name("../entry.json").is_err());
}

#[test]
fn content_range_forms() {
    let mut h = HeaderMap::new();
    h.insert(
        CONTENT_RANGE,
        HeaderValue::from_static("bytes 100-999/1000"),
    );
    assert_eq!(content_range(&h), Some((Some(100), Some(1000))));
    h.insert(CONTENT_RANGE, HeaderValue::from_static("bytes */1000"));
    assert_eq!(content_range(&h), Some((None, Some(1000))));
    h.insert(CONTENT_RANGE, HeaderValue::from_static("bytes 5-9/*"));
    assert_eq!(content_range(&h), Some((Some(5), None)));
    h.insert(CONTENT_RANGE, HeaderValue::from_static("items 1-2/3"));
    assert_eq!(content_range(&h), None);
}
