//! Shared helpers for the integration tests: where the real default model is.

#![allow(dead_code)]

pub mod bench;
pub mod engine;
pub mod openapi;
pub mod server;

use std::path::PathBuf;

/// Prompts whose answers the default model is sure of, token by token (no near-ties in the
/// logits): lists, counts and copies. llama.cpp's greedy output can differ between batch shapes
/// (a request alone or batched with others, a cold prompt or one from the prompt cache, drafts
/// on or off) where the model meets a near-tie; tests that compare texts across batch shapes
/// use these.
pub const CONFIDENT: [&str; 8] = [
    "Repeat this list exactly, one item per line:\n- Alice Moreno, engineering lead, release 2.4.1 on 28 March\n- Bob Tanaka, design, onboarding test with 40 users on 15 March\n- Carla Singh, sales, Northwind contract worth 120,000 euros on 21 March\n- David Okafor, support, 312 tickets in February",
    "Write the numbers from 1 to 30, separated by commas.",
    "Write the numbers from 31 to 60, separated by commas.",
    "Write the letters of the alphabet from A to Z, separated by spaces.",
    "Repeat exactly: red, orange, yellow, green, blue, indigo, violet, red, orange, yellow, green, blue, indigo, violet.",
    "Write the days of the week, Monday to Sunday, one per line, twice.",
    "Write the months of the year, January to December, separated by commas.",
    "Count down from 40 to 10, separated by commas.",
];

/// The default model's GGUF (SmolLM2-135M-Instruct Q4_1), placed by `scripts/setup.sh`.
/// Tests need the real model; without it they fail loudly instead of skipping.
pub fn model_path() -> PathBuf {
    let path = std::env::var_os("HEARTH_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/default-model/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.is_file(),
        "the default model is missing at {}; run scripts/setup.sh (or scripts/test.sh)",
        path.display()
    );
    path
}

/// The second family's GGUF (Gemma 3 270M Q4_K_M, a base model with sliding-window
/// attention), placed by `scripts/setup.sh` next to the default model; `scripts/test.sh` names
/// it in `HEARTH_TEST_GEMMA`. A named file must exist (the test fails loudly); with the variable
/// unset the file is looked for next to the default model, and the caller skips, saying so,
/// when it is not there either.
pub fn gemma_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HEARTH_TEST_GEMMA").map(PathBuf::from) {
        assert!(
            path.is_file(),
            "HEARTH_TEST_GEMMA names {}, which is missing; run scripts/setup.sh",
            path.display()
        );
        return Some(path);
    }
    let next_to_default = model_path().with_file_name("gemma-3-270m-q4_k_m.gguf");
    if next_to_default.is_file() {
        return Some(next_to_default);
    }
    skip(&format!(
        "HEARTH_TEST_GEMMA is not set and {} is missing (scripts/setup.sh places it)",
        next_to_default.display()
    ));
    None
}

/// Says that the calling test skips, and why: "skipped: REASON" straight to the process's
/// stderr (libtest captures `eprintln!`, so a passing test's message would never be seen; a
/// direct write is not captured). With `HEARTH_TEST_REQUIRE_ALL` set (a run that must cover
/// everything), panics with the reason instead. The caller returns after it.
pub fn skip(reason: &str) {
    if std::env::var_os("HEARTH_TEST_REQUIRE_ALL").is_some() {
        panic!("HEARTH_TEST_REQUIRE_ALL is set, and this test would skip: {reason}");
    }
    let line = format!("skipped: {reason}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

/// A HEARTH_HOME whose catalog points `smollm2-135m` at the test model file, without copying it.
pub fn home_with_model() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let models = serde_json::json!({"smollm2-135m": {"path": model_path()}});
    std::fs::write(home.path().join("models.json"), models.to_string()).unwrap();
    home
}

/// Whole benchmarks (`hearth bench`, the GPU kit's rehearsal) each run a real engine with two
/// threads; run side by side on a two-core machine their spinning threads starve each other
/// (and a budgeted run is cut short), so they take turns through this lock.
static ONE_BENCH_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Waits for the machine's turn (see [`ONE_BENCH_AT_A_TIME`]); held until dropped.
pub fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_BENCH_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// `hearth` as a user with none of hearth's settings runs it: every variable `hearth::env`
/// declares is cleared, HEARTH_HOME is `home`, and the engine gets two threads.
pub fn hearth_std(home: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("hearth"));
    clean_env(&mut cmd);
    cmd.env(hearth::env::HEARTH_HOME, home)
        .env(hearth::env::HEARTH_THREADS, "2");
    cmd
}

/// Clears, for `cmd`, every variable `hearth::env` declares (the user's HEARTH_HOME, API key,
/// thread count, drafting, …), so that what runs sees none of the settings of whoever runs the
/// tests; the caller sets the ones it means.
pub fn clean_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for var in hearth::env::ALL {
        cmd.env_remove(var);
    }
    cmd
}

/// [`hearth_std`] with assert_cmd's assertions.
pub fn hearth(home: &std::path::Path) -> assert_cmd::Command {
    assert_cmd::Command::from_std(hearth_std(home))
}

/// Starts `hearth serve --port 0 ARGS` with `home` as HEARTH_HOME and waits for the address it
/// prints; returns the child (the caller stops it) and `host:port`.
pub fn spawn_serve(home: &std::path::Path, args: &[&str]) -> (std::process::Child, String) {
    let (child, addr, _) = spawn_serve_logged(home, args);
    (child, addr)
}

/// [`spawn_serve`], also returning what the server printed before its address.
pub fn spawn_serve_logged(
    home: &std::path::Path,
    args: &[&str],
) -> (std::process::Child, String, String) {
    spawn_serve_with(home, &[], args)
}

/// [`spawn_serve_logged`] with variables `env` set for the server (a hub's `HF_ENDPOINT`).
pub fn spawn_serve_with(
    home: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> (std::process::Child, String, String) {
    use std::io::BufRead;
    let mut cmd = hearth_std(home);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let mut child = cmd
        .args(["serve", "--port", "0"])
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut log = String::new();
    let addr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "server exited early: {log}"
        );
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split('/').next().unwrap().trim().to_string();
        }
        log.push_str(&line);
    };
    // Keep reading what the server prints, so its later writes never meet a closed pipe.
    std::thread::spawn(move || for _ in stderr.lines() {});
    (child, addr, log)
}

/// Sends one raw HTTP/1.1 request (`Connection: close`) to `addr` and returns the whole
/// response, head and body; with a body it is sent as JSON.
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or(""));
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
