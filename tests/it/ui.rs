//! The web UI and the API it stands on: the page in a real browser (Debian's chromium,
//! headless, driven by selenium: `tests/ui/browser.py`), and the endpoints the page uses,
//! spoken to directly: the page's files and the key, `POST /api/pull`'s NDJSON from a
//! loopback hub, benchmark jobs with their events and cancel, and the run history.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use futures::StreamExt;
use serde_json::{json, Value};

use crate::common;

/// Serves `file` at `/org/repo/resolve/main/model.gguf` on a loopback port, in 256 KiB pieces
/// (so a pull reports progress more than once), for as many requests as come; returns the
/// hub's base URL.
fn hub(file: &Path) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let bytes = std::fs::read(file).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let bytes = bytes.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head);
                if !head.contains("/org/repo/resolve/main/model.gguf") {
                    let _ =
                        stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                    return;
                }
                let is_head = head.starts_with("HEAD");
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    bytes.len()
                );
                if !is_head {
                    for piece in bytes.chunks(256 * 1024) {
                        if stream.write_all(piece).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn sha256_hex(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// A home whose catalog has the test model as a path entry and as `pulled`, a hub download.
fn home_with_hub_entry() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let models = json!({"models": [
        {"alias": "smollm2-135m", "path": common::model_path()},
        {"alias": "pulled", "source": {"repo": "org/repo", "file": "model.gguf"},
         "sha256": sha256_hex(&common::model_path())},
        {"alias": "nowhere", "source": {"repo": "org/missing", "file": "model.gguf"}},
    ]});
    std::fs::write(home.path().join("models.json"), models.to_string()).unwrap();
    home
}

/// Starts `hearth serve` with `env` set; the child is killed when the guard drops.
struct Served {
    child: std::process::Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_with(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Served {
    let (child, addr, _) = common::spawn_serve_with(home, env, args);
    Served {
        child,
        base: format!("http://{addr}"),
    }
}

#[test]
fn the_web_ui_works_in_a_real_browser() {
    let chromium = std::env::var("HEARTH_TEST_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    let driver =
        std::env::var("HEARTH_TEST_CHROMEDRIVER").unwrap_or("/usr/bin/chromedriver".into());
    let selenium = std::process::Command::new("python3")
        .args(["-c", "import selenium"])
        .status()
        .is_ok_and(|s| s.success());
    if !(Path::new(&chromium).exists() && Path::new(&driver).exists() && selenium) {
        common::skip(
            "chromium, chromedriver or selenium is missing (scripts/setup.sh installs them)",
        );
        return;
    }
    let _turn = common::turn();
    let screens = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screens");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/browser.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(assert_cmd::cargo::cargo_bin("hearth"))
        .arg(common::model_path())
        .arg(&screens)
        .env("SE_OFFLINE", "true")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}\n(screenshots in {})",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        screens.display()
    );
    for page in ["chat", "models", "runs", "bench", "server", "key"] {
        assert!(
            screens.join(format!("{page}.png")).is_file(),
            "no {page}.png"
        );
    }
}

#[test]
fn the_page_is_served_without_the_key_the_api_is_not_and_web_pages_stay_out() {
    let home = common::home_with_model();
    let key = home.path().join("key");
    std::fs::write(&key, "k-123\n").unwrap();
    let (mut child, addr) =
        common::spawn_serve(home.path(), &["--api-key-file", key.to_str().unwrap()]);
    let page = common::http(&addr, "GET", "/", None);
    let script = common::http(&addr, "GET", "/ui/app.js", None);
    let missing = common::http(&addr, "GET", "/ui/secrets.js", None);
    let api = common::http(&addr, "GET", "/api/catalog", None);
    // A page on another site must not read even the UI's files, nor reach the API.
    let foreign = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET / HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://evil.example\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        r
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let head = page.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    assert!(head.contains("frame-ancestors 'none'"), "{head}");
    assert!(page.contains("<script type=\"module\" src=\"/ui/app.js\">"));
    assert!(script.starts_with("HTTP/1.1 200"), "{script}");
    assert!(script
        .to_ascii_lowercase()
        .contains("content-type: text/javascript"));
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(api.starts_with("HTTP/1.1 401"), "{api}");
    assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");
}

/// POST `body` to `base + path`; the status and the whole body as text.
async fn post(base: &str, path: &str, body: Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn get_json(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_streams_ndjson_progress_from_a_loopback_hub_and_the_cache_api_follows() {
    let home = home_with_hub_entry();
    let hub = hub(&common::model_path());
    let s = serve_with(home.path(), &[("HF_ENDPOINT", &hub)], &[]);
    let catalog = get_json(&s.base, "/api/catalog").await;
    let entry = |c: &Value, alias: &str| -> Value {
        c["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["alias"] == alias)
            .cloned()
            .unwrap()
    };
    assert_eq!(entry(&catalog, "pulled")["cached"], false);
    assert_eq!(entry(&catalog, "smollm2-135m")["cached"], true);

    let (status, text) = post(&s.base, "/api/pull", json!({"model": "pulled"})).await;
    assert_eq!(status, 200, "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines[0]["status"], "pulling");
    let progress: Vec<u64> = lines
        .iter()
        .filter(|l| l["status"] == "downloading")
        .map(|l| l["completed"].as_u64().unwrap())
        .collect();
    let size = std::fs::metadata(common::model_path()).unwrap().len();
    assert!(progress.len() >= 2, "{lines:?}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert_eq!(*progress.last().unwrap(), size);
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "success", "{last}");
    assert_eq!(last["sha256"], sha256_hex(&common::model_path()));

    // Pulled again: nothing to fetch; not streamed: one object.
    let (status, text) = post(
        &s.base,
        "/api/pull",
        json!({"model": "pulled", "stream": false}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["status"],
        "success"
    );
    // A source that is not there: the error is the last line, and the status says so.
    let (status, text) = post(
        &s.base,
        "/api/pull",
        json!({"model": "nowhere", "stream": false}),
    )
    .await;
    assert_eq!(status, 502, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["status"],
        "error"
    );
    let (status, _) = post(&s.base, "/api/pull", json!({"model": "no-such-model"})).await;
    assert_eq!(status, 404);

    let cache = get_json(&s.base, "/api/cache").await;
    assert_eq!(cache["models"][0]["alias"], "pulled", "{cache}");
    let (status, text) = post(&s.base, "/api/cache/verify", json!({"model": "pulled"})).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["outcome"]["status"],
        "ok"
    );
    // Loaded, it cannot be removed; unloaded, it can, and then it is gone.
    let (status, _) = post(&s.base, "/api/load", json!({"model": "pulled"})).await;
    assert_eq!(status, 200);
    let (status, text) = post(&s.base, "/api/cache/remove", json!({"model": "pulled"})).await;
    assert_eq!(status, 409, "{text}");
    let (status, _) = post(&s.base, "/api/unload", json!({"model": "pulled"})).await;
    assert_eq!(status, 200);
    let (status, text) = post(&s.base, "/api/cache/remove", json!({"model": "pulled"})).await;
    assert_eq!(status, 200, "{text}");
    let catalog = get_json(&s.base, "/api/catalog").await;
    assert_eq!(entry(&catalog, "pulled")["cached"], false);
    let (status, _) = post(&s.base, "/api/cache/remove", json!({"model": "pulled"})).await;
    assert_eq!(status, 404);
}

/// Starts a job with `body` at `path`; its id.
async fn start_job(base: &str, path: &str, body: Value) -> String {
    let (status, text) = post(base, path, body).await;
    assert_eq!(status, 202, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Reads `/api/jobs/{id}/events` until `stop(event)` says so (or the stream ends); the
/// events read.
async fn events_until(base: &str, id: &str, stop: impl Fn(&Value) -> bool) -> Vec<Value> {
    let response = reqwest::get(format!("{base}/api/jobs/{id}/events"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    while let Some(chunk) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(cut) = buffer.find("\n\n") {
            let block: String = buffer.drain(..cut + 2).collect();
            for data in block.lines().filter_map(|l| l.strip_prefix("data: ")) {
                let event: Value = serde_json::from_str(data).unwrap();
                let done = stop(&event);
                events.push(event);
                if done {
                    return events;
                }
            }
        }
    }
    events
}

#[test]
fn a_bench_job_reports_progress_and_a_cancelled_one_keeps_what_it_measured() {
    // Bench jobs run whole benchmarks: they take the machine's turn (see `common::turn`).
    let _turn = common::turn();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(bench_jobs());
}

async fn bench_jobs() {
    let home = common::home_with_model();
    let s = serve_with(home.path(), &[], &[]);
    // Refused up front, with the field named.
    for (body, status) in [
        (json!({"models": ["no-such-model"]}), 404),
        (json!({"models": []}), 400),
        (
            json!({"models": ["smollm2-135m"], "prompt_set": "poems"}),
            400,
        ),
        (json!({"models": ["smollm2-135m"], "concurrency": [0]}), 400),
        (json!({"models": ["smollm2-135m"], "colour": "red"}), 400),
    ] {
        let (got, text) = post(&s.base, "/api/bench", body.clone()).await;
        assert_eq!(got, status, "{body}: {text}");
    }

    let small = json!({"models": ["smollm2-135m"], "rounds": 1, "warmup": 0, "requests": 2,
                       "max_tokens": 8, "concurrency": [1]});
    let id = start_job(&s.base, "/api/bench", small).await;
    let events = events_until(&s.base, &id, |e| e["event"] == "end").await;
    let end = events.last().unwrap();
    assert_eq!(end["status"], "done", "{events:?}");
    let done: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "request")
        .map(|e| e["done"].as_u64().unwrap())
        .collect();
    assert_eq!(done, [1, 2], "{events:?}");
    let run = events
        .iter()
        .find(|e| e["event"] == "stored")
        .expect("the stored run is announced")["run"]
        .as_str()
        .unwrap()
        .to_string();
    // Late followers get the whole job, from its first event.
    let again = events_until(&s.base, &id, |e| e["event"] == "end").await;
    assert_eq!(again.len(), events.len());

    let long = json!({"models": ["smollm2-135m"], "rounds": 3, "warmup": 0, "requests": 40,
                      "max_tokens": 64, "concurrency": [1]});
    let cancelled = start_job(&s.base, "/api/bench", long).await;
    events_until(&s.base, &cancelled, |e| e["event"] == "request").await;
    let (status, text) = post(&s.base, &format!("/api/jobs/{cancelled}/cancel"), json!({})).await;
    assert_eq!(status, 200, "{text}");
    let events = events_until(&s.base, &cancelled, |e| e["event"] == "end").await;
    let end = events.last().unwrap();
    assert_eq!(end["status"], "cancelled", "{events:?}");
    let stored = events
        .iter()
        .find(|e| e["event"] == "stored")
        .expect("an interrupted bench still stores its run");
    assert_eq!(stored["interrupted"], true);
    let jobs = get_json(&s.base, "/api/jobs").await;
    assert_eq!(jobs["jobs"][0]["id"], cancelled.as_str());
    assert_eq!(jobs["jobs"][0]["status"], "cancelled");
    let (status, _) = post(&s.base, "/api/jobs/job-99/cancel", json!({})).await;
    assert_eq!(status, 404);

    // The history: both runs listed, the finished one's report and answers served.
    let runs = get_json(&s.base, "/api/runs").await;
    let ids: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{runs}");
    assert!(ids.contains(&run.as_str()));
    let report = reqwest::get(format!("{}/api/report?runs={run}", s.base))
        .await
        .unwrap();
    assert_eq!(report.status(), 200);
    let csp = report.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(report.text().await.unwrap().contains("hearth report"));
    let multi = reqwest::get(format!("{}/api/report?runs={}", s.base, ids.join(",")))
        .await
        .unwrap();
    assert_eq!(multi.status(), 200);
    let missing = reqwest::get(format!("{}/api/report?runs=20000101-000000-dead", s.base))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let verdict = get_json(&s.base, &format!("/api/compare?a={}&b={}", ids[1], ids[0])).await;
    assert!(
        verdict["rows"].as_array().is_some_and(|r| !r.is_empty()),
        "{verdict}"
    );
    assert!(verdict["regression"].is_boolean());

    let answers = get_json(&s.base, &format!("/api/runs/{run}/answers")).await;
    let mut rows = answers["rows"].as_array().unwrap().clone();
    assert!(!rows.is_empty());
    rows[0]["score"] = json!("5");
    rows[0]["comment"] = json!("spot on");
    let (status, text) = post(
        &s.base,
        &format!("/api/runs/{run}/annotations"),
        json!({"annotator": "ana", "rows": rows}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(serde_json::from_str::<Value>(&text).unwrap()["stored"].as_u64() >= Some(1));
    rows[0]["score"] = json!("9");
    let (status, text) = post(
        &s.base,
        &format!("/api/runs/{run}/annotations"),
        json!({"annotator": "ana", "rows": rows}),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("row 1"), "{text}");

    // Model-making jobs: a shape model, served as soon as its job ends.
    let (status, text) = post(
        &s.base,
        "/api/models/quantize",
        json!({"model": "smollm2-135m", "type": "q9_9"}),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    let id = start_job(
        &s.base,
        "/api/models/synth",
        json!({"model": "smollm2-135m"}),
    )
    .await;
    let events = events_until(&s.base, &id, |e| e["event"] == "end").await;
    assert_eq!(events.last().unwrap()["status"], "done", "{events:?}");
    let catalog = get_json(&s.base, "/api/catalog").await;
    let shape = catalog["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["alias"] == "smollm2-135m~shape")
        .unwrap_or_else(|| panic!("the shape model is not served: {catalog}"));
    assert_eq!(shape["shape_model"], true);
    assert_eq!(shape["cached"], true);

    // A tune as a job: its probes are announced, its decision stored and reported.
    let id = start_job(
        &s.base,
        "/api/tune",
        json!({"models": ["smollm2-135m"], "concurrency": [2], "requests": 4, "max_tokens": 8,
               "parallel": [1, 2], "budget": "60s"}),
    )
    .await;
    let events = events_until(&s.base, &id, |e| e["event"] == "end").await;
    assert_eq!(events.last().unwrap()["status"], "done", "{events:?}");
    assert!(events.iter().any(|e| e["event"] == "probe"), "{events:?}");
    let tune = events
        .iter()
        .find(|e| e["event"] == "stored")
        .expect("the tune is announced")["run"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(tune.starts_with("tune-"), "{tune}");
    let report = reqwest::get(format!("{}/api/report?runs={tune}", s.base))
        .await
        .unwrap();
    assert_eq!(report.status(), 200);
    let runs = get_json(&s.base, "/api/runs").await;
    assert_eq!(runs["tunes"][0]["id"], tune.as_str(), "{runs}");
}
