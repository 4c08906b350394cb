//! Downloads against a real HTTP server on 127.0.0.1: full transfer, resume after a cut, sha256
//! mismatch, 404, refused connection, bearer token, redirects, and two concurrent downloads of
//! one alias. The server is a few lines of raw HTTP/1.1 over tokio so each test controls exactly
//! what goes on the wire (a body cut short, a `Range` header ignored).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hearth::cache::{
    download, Cache, CacheError, DownloadProgress, DownloadSpec, HubConfig, NoProgress,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MODEL_PATH: &str = "/org/repo/resolve/main/model.gguf";
const REDIRECT_PATH: &str = "/org/moved/resolve/main/model.gguf";
const PAYLOAD_LEN: usize = 3 * 1024 * 1024 + 17;

// ----- the test server -----

/// How the server misbehaves (or not).
#[derive(Clone, Default)]
struct Behaviour {
    /// Cut the first model response after this many body bytes, having announced the full length.
    cut_first_after: Option<usize>,
    /// Answer 200 with the whole file even when a `Range` is asked for.
    ignore_range: bool,
    /// Answer 401 unless `Authorization: Bearer <token>` is sent.
    require_token: Option<String>,
    /// Announce this sha256 in `X-Linked-Etag` on the redirect, as the hub does for LFS files.
    linked_etag: Option<String>,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    range: Option<String>,
    authorization: Option<String>,
}

struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    payload: Arc<Vec<u8>>,
}

impl Server {
    async fn start(behaviour: Behaviour) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let payload = Arc::new(payload(PAYLOAD_LEN));
        let model_requests = Arc::new(AtomicUsize::new(0));
        let state = (
            Arc::new(behaviour),
            seen.clone(),
            payload.clone(),
            model_requests,
        );
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (behaviour, seen, payload, count) = state.clone();
                tokio::spawn(async move {
                    serve(stream, &behaviour, &seen, &payload, &count).await;
                });
            }
        });
        Server {
            addr,
            seen,
            payload,
        }
    }

    fn hub(&self, token: Option<&str>) -> HubConfig {
        HubConfig {
            endpoint: format!("http://{}", self.addr),
            token: token.map(str::to_string),
        }
    }

    fn sha(&self) -> String {
        sha_hex(&self.payload)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn model_requests(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path == MODEL_PATH)
            .collect()
    }
}

async fn serve(
    mut stream: TcpStream,
    behaviour: &Behaviour,
    seen: &Mutex<Vec<Seen>>,
    payload: &[u8],
    model_requests: &AtomicUsize,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            return;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8(head).unwrap();
    let mut lines = head.split("\r\n");
    let path = lines.next().unwrap().split(' ').nth(1).unwrap().to_string();
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let request = Seen {
        path: path.clone(),
        range: header("range"),
        authorization: header("authorization"),
    };
    seen.lock().unwrap().push(request.clone());

    let len = payload.len();
    let mut cut = None;
    let (status, headers, body): (&str, Vec<String>, &[u8]) = if path == REDIRECT_PATH {
        let mut headers = vec![format!("Location: {MODEL_PATH}")];
        if let Some(sha) = &behaviour.linked_etag {
            headers.push(format!("X-Linked-Etag: \"{sha}\""));
        }
        ("302 Found", headers, b"")
    } else if path != MODEL_PATH {
        ("404 Not Found", vec![], b"Entry not found")
    } else if behaviour
        .require_token
        .as_ref()
        .is_some_and(|t| request.authorization != Some(format!("Bearer {t}")))
    {
        ("401 Unauthorized", vec![], b"Invalid credentials")
    } else {
        if model_requests.fetch_add(1, Ordering::SeqCst) == 0 {
            cut = behaviour.cut_first_after;
        }
        let start = request
            .range
            .as_deref()
            .filter(|_| !behaviour.ignore_range)
            .map(|r| {
                r.strip_prefix("bytes=")
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|r| r.parse::<usize>().ok())
                    .expect("the client only asks for open-ended ranges")
            });
        match start {
            Some(start) if start >= len => (
                "416 Range Not Satisfiable",
                vec![format!("Content-Range: bytes */{len}")],
                b"",
            ),
            Some(start) => (
                "206 Partial Content",
                vec![format!("Content-Range: bytes {start}-{}/{len}", len - 1)],
                &payload[start..],
            ),
            None => ("200 OK", vec![], payload),
        }
    };

    // The full length is always announced; a cut response then simply stops early.
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in headers {
        response.push_str(&h);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    let sent = &body[..cut.unwrap_or(body.len()).min(body.len())];
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.write_all(sent).await;
    let _ = stream.shutdown().await;
}

// ----- helpers -----

fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn spec(alias: &str, sha256: Option<String>) -> DownloadSpec {
    DownloadSpec {
        alias: alias.to_string(),
        repo: "org/repo".to_string(),
        file: "model.gguf".to_string(),
        revision: "main".to_string(),
        sha256,
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn partial_path(cache: &Cache, alias: &str) -> PathBuf {
    cache
        .location()
        .join(".tmp")
        .join(format!("{alias}-model.gguf.partial"))
}

/// Records what the download reported, to check resume offsets.
#[derive(Default)]
struct Recorder {
    starts: Mutex<Vec<(Option<u64>, u64)>>,
    advanced: AtomicUsize,
    finished: AtomicUsize,
}

impl DownloadProgress for Recorder {
    fn start(&self, _alias: &str, total: Option<u64>, already: u64) {
        self.starts.lock().unwrap().push((total, already));
    }
    fn advance(&self, bytes: u64) {
        self.advanced.fetch_add(bytes as usize, Ordering::SeqCst);
    }
    fn finish(&self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
}

// ----- tests -----

#[tokio::test]
async fn full_download_places_a_verified_file_and_leaves_no_temp_files() {
    let server = Server::start(Behaviour::default()).await;
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());
    let progress = Recorder::default();

    let model = download(
        &cache,
        &spec("tiny", Some(server.sha().to_uppercase())),
        &server.hub(None),
        &progress,
    )
    .await
    .unwrap();

    assert_eq!(model.path, cache.location().join("tiny").join("model.gguf"));
    assert_eq!(std::fs::read(&model.path).unwrap(), *server.payload);
    assert_eq!(model.sha256, server.sha());
    assert_eq!(model.size_bytes, PAYLOAD_LEN as u64);
    assert!(model.verified);
    assert_eq!(model.source, "hub:org/repo/model.gguf@main");
    let entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.location().join("tiny/entry.json")).unwrap())
            .unwrap();
    assert_eq!(entry["verified"], true);
    assert_eq!(entry["sha256"], server.sha());
    assert_eq!(entry["file_name"], "model.gguf");
    assert_eq!(entry["source"], "hub:org/repo/model.gguf@main");
    assert_eq!(
        files_in(&cache.location().join("tiny")),
        ["entry.json", "model.gguf"]
    );
    assert!(files_in(&cache.location().join(".tmp")).is_empty());
    assert_eq!(cache.lookup("tiny"), Some(model));
    assert_eq!(
        *progress.starts.lock().unwrap(),
        [(Some(PAYLOAD_LEN as u64), 0)]
    );
    assert_eq!(progress.advanced.load(Ordering::SeqCst), PAYLOAD_LEN);
    assert_eq!(progress.finished.load(Ordering::SeqCst), 1);
    assert!(server.model_requests()[0].range.is_none());
}

#[tokio::test]
async fn truncated_transfer_is_resumed_with_a_range_request() {
    const CUT: usize = 1_000_003;
    let server = Server::start(Behaviour {
        cut_first_after: Some(CUT),
        ..Behaviour::default()
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());
    let spec = spec("tiny", Some(server.sha()));

    let err = download(&cache, &spec, &server.hub(None), &NoProgress)
        .await
        .unwrap_err();

    match &err {
        CacheError::Truncated {
            received, total, ..
        } => {
            assert_eq!(*received, CUT as u64);
            assert_eq!(*total, PAYLOAD_LEN as u64);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("truncated"), "{message}");
    assert!(message.contains("run again to resume"), "{message}");
    assert_eq!(
        std::fs::metadata(partial_path(&cache, "tiny"))
            .unwrap()
            .len(),
        CUT as u64
    );
    assert!(!cache.location().join("tiny").exists());
    assert_eq!(cache.lookup("tiny"), None);

    let progress = Recorder::default();
    let model = download(&cache, &spec, &server.hub(None), &progress)
        .await
        .unwrap();

    let requests = server.model_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].range.as_deref(),
        Some(&*format!("bytes={CUT}-"))
    );
    assert_eq!(
        *progress.starts.lock().unwrap(),
        [(Some(PAYLOAD_LEN as u64), CUT as u64)]
    );
    assert_eq!(progress.advanced.load(Ordering::SeqCst), PAYLOAD_LEN - CUT);
    assert_eq!(model.sha256, server.sha());
    assert!(model.verified);
    assert_eq!(std::fs::read(&model.path).unwrap(), *server.payload);
    assert!(files_in(&cache.location().join(".tmp")).is_empty());
}

#[tokio::test]
async fn a_server_ignoring_the_range_restarts_the_file_from_zero() {
    const CUT: usize = 500_000;
    let server = Server::start(Behaviour {
        cut_first_after: Some(CUT),
        ignore_range: true,
        ..Behaviour::default()
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());
    let spec = spec("tiny", Some(server.sha()));
    let hub = server.hub(None);

    assert!(matches!(
        download(&cache, &spec, &hub, &NoProgress).await,
        Err(CacheError::Truncated { .. })
    ));
    let model = download(&cache, &spec, &hub, &NoProgress).await.unwrap();

    assert_eq!(
        server.model_requests()[1].range.as_deref(),
        Some(&*format!("bytes={CUT}-"))
    );
    assert_eq!(std::fs::read(&model.path).unwrap(), *server.payload);
    assert!(model.verified);
}

#[tokio::test]
async fn a_partial_longer_than_the_file_gets_416_and_restarts() {
    let server = Server::start(Behaviour::default()).await;
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());
    // A leftover from this very source, but longer than the real file (e.g. the file shrank).
    let partial = partial_path(&cache, "tiny");
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, vec![7u8; PAYLOAD_LEN + 10]).unwrap();
    std::fs::write(
        partial.with_extension("partial.source"),
        "hub:org/repo/model.gguf@main",
    )
    .unwrap();

    let model = download(
        &cache,
        &spec("tiny", Some(server.sha())),
        &server.hub(None),
        &NoProgress,
    )
    .await
    .unwrap();

    let requests = server.model_requests();
    assert_eq!(
        requests[0].range.as_deref(),
        Some(&*format!("bytes={}-", PAYLOAD_LEN + 10))
    );
    assert_eq!(requests[1].range, None);
    assert_eq!(std::fs::read(&model.path).unwrap(), *server.payload);
    assert!(files_in(&cache.location().join(".tmp")).is_empty());
}

#[tokio::test]
async fn sha256_mismatch_is_an_error_and_leaves_nothing_behind() {
    let server = Server::start(Behaviour::default()).await;
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());
    let wrong = "ab".repeat(32);

    let err = download(
        &cache,
        &spec("tiny", Some(wrong.clone())),
        &server.hub(None),
        &NoProgress,
    )
    .await
    .unwrap_err();

    assert!(
        matches!(&err, CacheError::ShaMismatch { expected, actual, .. }
            if *expected == wrong && *actual == server.sha()),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&wrong) && message.contains(&server.sha()),
        "{message}"
    );
    assert!(!cache.location().join("tiny").exists());
    assert!(files_in(&cache.location().join(".tmp")).is_empty());
    assert_eq!(cache.lookup("tiny"), None);
}

#[tokio::test]
async fn missing_file_is_a_clear_not_found_error() {
    let server = Server::start(Behaviour::default()).await;
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());
    let mut spec = spec("tiny", None);
    spec.file = "nope.gguf".to_string();

    let err = download(&cache, &spec, &server.hub(None), &NoProgress)
        .await
        .unwrap_err();

    assert!(matches!(err, CacheError::NotFound { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("not found"), "{message}");
    assert!(
        message.contains(&format!(
            "http://{}/org/repo/resolve/main/nope.gguf",
            server.addr
        )),
        "{message}"
    );
    assert!(!cache.location().join("tiny").exists());
    assert!(files_in(&cache.location().join(".tmp")).is_empty());
}

#[tokio::test]
async fn connection_refused_names_the_endpoint() {
    // Bind then drop: nothing listens on this port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hub = HubConfig {
        endpoint: format!("http://127.0.0.1:{port}"),
        token: None,
    };
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());

    let err = download(&cache, &spec("tiny", None), &hub, &NoProgress)
        .await
        .unwrap_err();

    assert!(matches!(err, CacheError::Connect { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&hub.endpoint), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");
}

#[tokio::test]
async fn hf_token_is_sent_as_a_bearer_token() {
    let server = Server::start(Behaviour {
        require_token: Some("hf_secret".to_string()),
        ..Behaviour::default()
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());

    let model = download(
        &cache,
        &spec("tiny", Some(server.sha())),
        &server.hub(Some("hf_secret")),
        &NoProgress,
    )
    .await
    .unwrap();

    assert_eq!(
        server.model_requests()[0].authorization.as_deref(),
        Some("Bearer hf_secret")
    );
    assert!(model.verified);
}

#[tokio::test]
async fn a_refused_or_missing_token_points_at_hf_token() {
    let server = Server::start(Behaviour {
        require_token: Some("hf_secret".to_string()),
        ..Behaviour::default()
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());

    for token in [None, Some("hf_wrong")] {
        let err = download(&cache, &spec("tiny", None), &server.hub(token), &NoProgress)
            .await
            .unwrap_err();
        assert!(
            matches!(err, CacheError::Unauthorized { status: 401, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("HF_TOKEN"), "{err}");
    }
    assert!(server.seen()[0].authorization.is_none());
    assert!(!cache.location().join("tiny").exists());
    assert!(files_in(&cache.location().join(".tmp")).is_empty());
}

#[tokio::test]
async fn redirects_are_followed() {
    let server = Server::start(Behaviour::default()).await;
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());
    let mut spec = spec("tiny", Some(server.sha()));
    spec.repo = "org/moved".to_string();

    let model = download(&cache, &spec, &server.hub(None), &NoProgress)
        .await
        .unwrap();

    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, [REDIRECT_PATH, MODEL_PATH]);
    assert_eq!(model.source, "hub:org/moved/model.gguf@main");
    assert_eq!(std::fs::read(&model.path).unwrap(), *server.payload);
}

#[tokio::test]
async fn the_hub_announced_sha256_verifies_a_download_without_a_catalog_hash() {
    let payload_sha = sha_hex(&payload(PAYLOAD_LEN));
    let server = Server::start(Behaviour {
        linked_etag: Some(payload_sha.clone()),
        ..Behaviour::default()
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());
    let mut spec = spec("tiny", None);
    spec.repo = "org/moved".to_string();
    let model = download(&cache, &spec, &server.hub(None), &NoProgress)
        .await
        .unwrap();
    assert!(model.verified, "verified against X-Linked-Etag");
    assert_eq!(model.sha256, payload_sha);

    // A hub that announces another hash: rejected, nothing placed.
    let lying = Server::start(Behaviour {
        linked_etag: Some("ab".repeat(32)),
        ..Behaviour::default()
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());
    let err = download(&cache, &spec, &lying.hub(None), &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, CacheError::ShaMismatch { .. }), "{err}");
    assert!(!cache.location().join("tiny").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_downloads_of_one_alias_write_one_file() {
    let server = Server::start(Behaviour::default()).await;
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());
    let spec = spec("tiny", Some(server.sha()));
    let hub = server.hub(None);
    // A second handle, as another process would have.
    let other = Cache::new(home.path());

    let (a, b) = tokio::join!(
        download(&cache, &spec, &hub, &NoProgress),
        download(&other, &spec, &hub, &NoProgress),
    );
    let (a, b) = (a.unwrap(), b.unwrap());

    assert_eq!(a, b);
    // The lock made the second wait and then find the finished file, not fetch it again.
    assert_eq!(server.model_requests().len(), 1);
    assert_eq!(std::fs::read(&a.path).unwrap(), *server.payload);
    assert_eq!(
        files_in(&cache.location().join("tiny")),
        ["entry.json", "model.gguf"]
    );
    assert!(files_in(&cache.location().join(".tmp")).is_empty());

    // And once cached, a download does not touch the network at all.
    download(&cache, &spec, &hub, &NoProgress).await.unwrap();
    assert_eq!(server.model_requests().len(), 1);
}
