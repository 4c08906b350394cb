//! The local server against the browser (SECURITY.md): foreign Host headers (DNS rebinding),
//! cross-site simple requests, unknown origins, CORS for allowed ones, slow and oversized
//! headers, the connection limit, and the API key from a file. Raw HTTP over TCP, so every
//! header is exactly what a browser or an attacker would send.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use hearth::server::Limits;
use serde_json::{json, Value};

use crate::common::openapi::assert_matches;
use crate::common::server::{Setup, TestServer, MODEL};
use crate::common::{hearth, home_with_model, spawn_serve_logged};

/// One parsed HTTP/1.1 response.
struct Reply {
    status: u16,
    /// Header names in lowercase, in order.
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// Every `access-control-*` header: a refused page must get none.
    fn cors_headers(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.starts_with("access-control-"))
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// Sends `head` (request line and header lines, `\r\n`-separated, without the blank line) and
/// `body` on a fresh connection with `Connection: close`; the whole answer, parsed.
fn exchange(addr: &str, head: &str, body: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut request = format!("{head}\r\nConnection: close\r\n");
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    parse(&raw)
}

fn parse(raw: &str) -> Reply {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {raw:?}"));
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    Reply {
        status: status.parse().unwrap(),
        headers,
        body: body.to_string(),
    }
}

fn addr(s: &TestServer) -> String {
    s.server.addr.to_string()
}

fn chat_json(stream: bool) -> String {
    json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hi."}],
        "max_tokens": 4,
        "temperature": 0,
        "stream": stream,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_foreign_host_is_refused_and_loopback_names_are_answered() {
    let s = Setup {
        preload: false,
        ..Setup::default()
    }
    .start()
    .await;
    let a = addr(&s);
    let port = s.server.addr.port();
    // DNS rebinding: a page on evil.example.com whose name now points at 127.0.0.1.
    let models = exchange(&a, "GET /v1/models HTTP/1.1\r\nHost: evil.example.com", "");
    assert_eq!(models.status, 403, "{}", models.body);
    assert_matches("ErrorResponse", &models.json());
    assert_eq!(models.json()["error"]["code"], "host_not_allowed");
    assert!(models.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("allowed_hosts"));
    let unload = exchange(
        &a,
        &format!("POST /api/unload HTTP/1.1\r\nHost: evil.example.com:{port}\r\nContent-Type: application/json"),
        &json!({"model": MODEL}).to_string(),
    );
    assert_eq!(unload.status, 403, "{}", unload.body);
    assert!(unload.cors_headers().is_empty());
    // Loopback names on any port, and no Host at all (HTTP/1.0: not a browser).
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "LocalHost".to_string(),
        format!("[::1]:{port}"),
        "127.0.0.2:1".to_string(),
    ] {
        let r = exchange(&a, &format!("GET /v1/models HTTP/1.1\r\nHost: {host}"), "");
        assert_eq!(r.status, 200, "Host: {host}: {}", r.body);
    }
    let r = exchange(&a, "GET /v1/models HTTP/1.0", "");
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_listed_host_is_answered_and_others_still_are_not() {
    let s = Setup {
        preload: false,
        allowed_hosts: vec!["hearth.lan".into()],
        ..Setup::default()
    }
    .start()
    .await;
    let a = addr(&s);
    let ok = exchange(&a, "GET /v1/models HTTP/1.1\r\nHost: hearth.lan:5273", "");
    assert_eq!(ok.status, 200, "{}", ok.body);
    let no = exchange(&a, "GET /v1/models HTTP/1.1\r\nHost: other.lan:5273", "");
    assert_eq!(no.status, 403, "{}", no.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn post_bodies_must_be_json() {
    let s = Setup::default().start().await;
    let a = addr(&s);
    let host = format!("Host: {a}");
    let body = chat_json(false);
    // What any page can send without a preflight, and a body with no type at all.
    for content_type in [
        "Content-Type: text/plain",
        "Content-Type: text/plain;charset=UTF-8",
        "Content-Type: application/x-www-form-urlencoded",
        "Content-Type: multipart/form-data; boundary=x",
        "",
    ] {
        let head = format!("POST /v1/chat/completions HTTP/1.1\r\n{host}\r\n{content_type}");
        let r = exchange(&a, head.trim_end(), &body);
        assert_eq!(r.status, 415, "{content_type}: {}", r.body);
        assert_matches("ErrorResponse", &r.json());
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{}",
            r.body
        );
    }
    // JSON with a charset, as some clients send it, is served.
    let r = exchange(
        &a,
        &format!(
            "POST /v1/chat/completions HTTP/1.1\r\n{host}\r\nContent-Type: application/json; charset=utf-8"
        ),
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_matches("CreateChatCompletionResponse", &r.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_foreign_origin_is_refused_on_every_endpoint_without_cors_headers() {
    let s = Setup {
        preload: false,
        cors_origins: vec!["https://app.example.com".into()],
        ..Setup::default()
    }
    .start()
    .await;
    let a = addr(&s);
    let host = format!("Host: {a}");
    for origin in [
        "https://evil.example.com",
        "null",
        "https://app.example.com:8443",
    ] {
        for (method, path) in [
            ("GET", "/v1/models"),
            ("GET", "/health"),
            ("GET", "/metrics"),
        ] {
            let r = exchange(
                &a,
                &format!("{method} {path} HTTP/1.1\r\n{host}\r\nOrigin: {origin}"),
                "",
            );
            assert_eq!(r.status, 403, "{origin} {path}: {}", r.body);
            assert_eq!(r.json()["error"]["code"], "origin_not_allowed");
            assert!(r.cors_headers().is_empty(), "{:?}", r.headers);
        }
        let preflight = exchange(
            &a,
            &format!(
                "OPTIONS /v1/chat/completions HTTP/1.1\r\n{host}\r\nOrigin: {origin}\r\n\
                 Access-Control-Request-Method: POST\r\n\
                 Access-Control-Request-Headers: content-type"
            ),
            "",
        );
        assert_eq!(preflight.status, 403, "{origin}: {}", preflight.body);
        assert!(
            preflight.cors_headers().is_empty(),
            "{:?}",
            preflight.headers
        );
    }
}

/// The CORS headers an allowed page must get on an actual (not preflight) request.
fn assert_cors_echo(r: &Reply, origin: &str) {
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    assert!(
        r.header("vary")
            .is_some_and(|v| v.to_ascii_lowercase().contains("origin")),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("access-control-allow-credentials"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_allowed_origin_gets_exact_cors_headers_on_preflight_and_on_requests() {
    let s = Setup {
        api_key: Some("s3cret".into()),
        cors_origins: vec!["https://app.example.com".into()],
        ..Setup::default()
    }
    .start()
    .await;
    let a = addr(&s);
    let host = format!("Host: {a}");
    for origin in ["http://localhost:3000", "https://app.example.com"] {
        // The preflight a browser sends before a JSON POST with a bearer key.
        let preflight = exchange(
            &a,
            &format!(
                "OPTIONS /v1/chat/completions HTTP/1.1\r\n{host}\r\nOrigin: {origin}\r\n\
                 Access-Control-Request-Method: POST\r\n\
                 Access-Control-Request-Headers: authorization, content-type"
            ),
            "",
        );
        assert!(
            preflight.status == 200 || preflight.status == 204,
            "{}",
            preflight.body
        );
        assert_cors_echo(&preflight, origin);
        let methods = preflight.header("access-control-allow-methods").unwrap();
        assert!(
            methods.contains("POST") && methods.contains("GET"),
            "{methods}"
        );
        let headers = preflight
            .header("access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            headers.contains("authorization") && headers.contains("content-type"),
            "{headers}"
        );
        let max_age: u64 = preflight
            .header("access-control-max-age")
            .unwrap()
            .parse()
            .unwrap();
        assert!(max_age > 0);

        let auth = "Authorization: Bearer s3cret\r\nContent-Type: application/json";
        for stream in [false, true] {
            let r = exchange(
                &a,
                &format!(
                    "POST /v1/chat/completions HTTP/1.1\r\n{host}\r\nOrigin: {origin}\r\n{auth}"
                ),
                &chat_json(stream),
            );
            assert_eq!(r.status, 200, "{origin} stream={stream}: {}", r.body);
            assert_cors_echo(&r, origin);
            if stream {
                assert_eq!(r.header("content-type"), Some("text/event-stream"));
                assert!(r.body.contains("data: [DONE]"), "{}", r.body);
            } else {
                assert_matches("CreateChatCompletionResponse", &r.json());
            }
        }
        // An allowed page may read why it was refused.
        let unauthorized = exchange(
            &a,
            &format!("GET /v1/models HTTP/1.1\r\n{host}\r\nOrigin: {origin}"),
            "",
        );
        assert_eq!(unauthorized.status, 401);
        assert_cors_echo(&unauthorized, origin);
    }
    // A page served by hearth itself (its own origin) is allowed.
    let own = exchange(
        &a,
        &format!("GET /health HTTP/1.1\r\n{host}\r\nOrigin: http://{a}"),
        "",
    );
    assert_eq!(own.status, 200, "{}", own.body);
    assert_cors_echo(&own, &format!("http://{a}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_drips_its_headers_is_cut_off() {
    let s = Setup {
        preload: false,
        limits: Limits {
            header_timeout: Duration::from_millis(500),
            ..Limits::default()
        },
        ..Setup::default()
    }
    .start()
    .await;
    let a = addr(&s);
    let mut stream = TcpStream::connect(&a).unwrap();
    stream
        .write_all(format!("GET /v1/models HTTP/1.1\r\nHost: {a}\r\n").as_bytes())
        .unwrap();
    // One header line every 50 ms, for up to 40 times the timeout: the server must close the
    // connection long before the head would be complete, without answering.
    let mut cut_off = false;
    for i in 0..400 {
        if stream
            .write_all(format!("X-Drip-{i}: a\r\n").as_bytes())
            .is_err()
        {
            cut_off = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        stream.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        match stream.read(&mut buf) {
            Ok(0) => {
                cut_off = true;
                break;
            }
            Ok(n) => panic!(
                "answered a head that never ended: {}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => {
                cut_off = true;
                break;
            }
        }
        stream.set_nonblocking(false).unwrap();
    }
    assert!(cut_off, "a dripping client was never cut off");
    // The server still answers everyone else.
    let r = exchange(&a, &format!("GET /v1/models HTTP/1.1\r\nHost: {a}"), "");
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_head_gets_431() {
    let s = Setup {
        preload: false,
        ..Setup::default()
    }
    .start()
    .await;
    let a = addr(&s);
    let big = "a".repeat(Limits::default().max_header_bytes + 1024);
    let r = exchange(
        &a,
        &format!("GET /v1/models HTTP/1.1\r\nHost: {a}\r\nX-Big: {big}"),
        "",
    );
    assert_eq!(r.status, 431);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_beyond_the_limit_get_503_until_one_closes() {
    let s = Setup {
        preload: false,
        limits: Limits {
            max_connections: 2,
            ..Limits::default()
        },
        ..Setup::default()
    }
    .start()
    .await;
    let a = addr(&s);
    // Two keep-alive connections, each answered once (so the server holds both).
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut c = TcpStream::connect(&a).unwrap();
            c.write_all(format!("GET /health HTTP/1.1\r\nHost: {a}\r\n\r\n").as_bytes())
                .unwrap();
            let mut buf = [0u8; 1024];
            let n = c.read(&mut buf).unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
            c
        })
        .collect();
    let refused = exchange(&a, &format!("GET /v1/models HTTP/1.1\r\nHost: {a}"), "");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_matches("ErrorResponse", &refused.json());
    assert_eq!(refused.json()["error"]["code"], "too_many_connections");
    assert!(refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--max-connections"));
    // Once one closes, new connections are served again (the server notices the close
    // asynchronously: poll, bounded).
    drop(held);
    let mut served = false;
    for _ in 0..200 {
        if exchange(&a, &format!("GET /v1/models HTTP/1.1\r\nHost: {a}"), "").status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        served,
        "the server never served again after connections closed"
    );
}

#[test]
fn the_key_comes_from_a_file_a_wrong_key_is_401_and_a_key_on_the_command_line_warns() {
    let home = home_with_model();
    let key_file = home.path().join("key");
    std::fs::write(&key_file, "f1le-key\n").unwrap();
    let (mut child, a, log) =
        spawn_serve_logged(home.path(), &["--api-key-file", key_file.to_str().unwrap()]);
    let ask = |key: Option<&str>| {
        let auth = key.map_or(String::new(), |k| format!("\r\nAuthorization: Bearer {k}"));
        exchange(
            &a,
            &format!("GET /v1/models HTTP/1.1\r\nHost: {a}{auth}"),
            "",
        )
    };
    assert_eq!(ask(Some("f1le-key")).status, 200);
    let wrong = ask(Some("f1le-kez"));
    assert_eq!(wrong.status, 401);
    assert_matches("ErrorResponse", &wrong.json());
    assert_eq!(
        ask(Some("f1le-key\n")).status,
        200,
        "the key file's newline is not the key"
    );
    assert_eq!(ask(None).status, 401);
    // A key file others can read is worth a warning (the test wrote it 0644).
    #[cfg(unix)]
    assert!(log.contains("can be read by other users"), "{log}");
    // The lifecycle commands take the key the same way.
    let ps = hearth(home.path())
        .args(["ps", "--endpoint", &format!("http://{a}")])
        .args(["--api-key-file", key_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        ps.status.success(),
        "{}",
        String::from_utf8_lossy(&ps.stderr)
    );
    let ps_wrong = hearth(home.path())
        .env("HEARTH_API_KEY", "nope")
        .args(["ps", "--endpoint", &format!("http://{a}")])
        .output()
        .unwrap();
    assert!(!ps_wrong.status.success());
    assert!(String::from_utf8_lossy(&ps_wrong.stderr).contains("401"));
    child.kill().unwrap();
    child.wait().unwrap();

    // On the command line: it works, with a warning, and the key never reaches the log.
    let (mut child, a, log) = spawn_serve_logged(home.path(), &["--api-key", "cl1-key"]);
    assert!(log.contains("warning: --api-key"), "{log}");
    assert!(!log.contains("cl1-key"), "{log}");
    let r = exchange(
        &a,
        &format!("GET /v1/models HTTP/1.1\r\nHost: {a}\r\nAuthorization: Bearer cl1-key"),
        "",
    );
    assert_eq!(r.status, 200);
    child.kill().unwrap();
    child.wait().unwrap();
}
