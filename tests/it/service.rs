//! `hearth service`: the server in the background, started, found again, asked, stopped and
//! restarted through the real binary, with a real model and real HTTP; a stale record is
//! recognised and cleared.

use std::io::{BufRead, Read, Write};

use crate::common::{self, hearth};

fn run(home: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = hearth(home).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `host:port` of the API URL a start printed.
fn addr_of(started: &str) -> String {
    let url = started
        .split_whitespace()
        .find(|w| w.starts_with("http://") && w.ends_with("/v1"))
        .unwrap_or_else(|| panic!("no API URL in: {started}"));
    url.trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_string()
}

fn pid_of(started: &str) -> u32 {
    started
        .split("(pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in: {started}"))
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_service_starts_in_the_background_answers_and_stops_after_draining() {
    let home = common::home_with_model();
    let h = home.path();
    let (ok, started, err) = run(
        h,
        &[
            "service",
            "start",
            "--port",
            "0",
            "--models",
            "smollm2-135m",
        ],
    );
    assert!(ok, "{started}{err}");
    assert!(started.contains("running in the background"), "{started}");
    let (addr, pid) = (addr_of(&started), pid_of(&started));
    assert!(alive(pid));
    let record = h.join("run").join("service.json");
    assert!(record.exists());

    // A second start finds it, says where, and succeeds without starting another.
    let (ok, again, _) = run(h, &["service", "start", "--port", "0"]);
    assert!(ok && again.contains("already running"), "{again}");
    assert_eq!(pid_of(&again), pid);

    // Status and the API answer at the recorded address; the log has the start.
    let (ok, status, err) = run(h, &["service", "status"]);
    assert!(ok, "{status}{err}");
    assert!(status.contains(&addr), "{status}");
    let answer = common::http(
        &addr,
        "POST",
        "/v1/chat/completions",
        Some(
            r#"{"model":"smollm2-135m","messages":[{"role":"user","content":"Say hi."}],"max_tokens":4}"#,
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (ok, log, _) = run(h, &["service", "logs", "-n", "200"]);
    assert!(
        ok && log.contains("OpenAI-compatible API on http://"),
        "{log}"
    );

    // Restart keeps the flags it was started with: a new process, the model preloaded again.
    let (ok, restarted, err) = run(h, &["service", "restart"]);
    assert!(ok, "{restarted}{err}");
    assert!(restarted.contains("stopped hearth"), "{restarted}");
    let new_pid = pid_of(restarted.lines().last().unwrap());
    assert_ne!(new_pid, pid);
    assert!(!alive(pid));
    // The previous log is kept beside the new one.
    assert!(h.join("logs").join("hearth.log.1").exists());

    // Stopped with a request in flight: the answer is finished, then the server goes.
    let new_addr = addr_of(restarted.lines().last().unwrap());
    let mut stream = std::net::TcpStream::connect(&new_addr).unwrap();
    let body = r#"{"model":"smollm2-135m","messages":[{"role":"user","content":"Count to 500."}],"max_tokens":300,"ignore_eos":true,"stream":true}"#;
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {new_addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let mut first = String::new();
    // The answer has started: its first event is here.
    while !first.starts_with("data: ") {
        first.clear();
        assert!(reader.read_line(&mut first).unwrap() > 0, "no answer");
    }
    let (ok, stopped, _) = run(h, &["service", "stop"]);
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert!(ok && stopped.contains("stopped hearth"), "{stopped}");
    assert!(
        rest.contains("data: [DONE]"),
        "the answer in flight was cut: {rest}"
    );
    assert!(rest.contains("\"finish_reason\":\"length\""), "{rest}");
    assert!(!alive(new_pid));
    assert!(!record.exists());
    let (ok, none, _) = run(h, &["service", "stop"]);
    assert!(
        ok && none.contains("no hearth service is running"),
        "{none}"
    );
}

#[test]
fn a_stale_record_is_recognised_and_cleared() {
    let home = common::home_with_model();
    let h = home.path();
    std::fs::create_dir_all(h.join("run")).unwrap();
    // A pid no process has (Linux's pid_max is at most 2^22).
    std::fs::write(
        h.join("run").join("service.json"),
        r#"{"pid":4194305,"api":"http://127.0.0.1:9/v1","root":"http://127.0.0.1:9/","log":"/nonexistent","started_unix_ms":0,"args":[]}"#,
    )
    .unwrap();
    let (ok, out, err) = run(h, &["service", "stop"]);
    assert!(ok, "{out}{err}");
    assert!(err.contains("stale service record"), "{err}");
    assert!(out.contains("no hearth service is running"), "{out}");
    assert!(!h.join("run").join("service.json").exists());
    // A start that cannot listen (a flag serve refuses) says why, from the log.
    let (ok, _, err) = run(h, &["service", "start", "--parallel", "zero"]);
    assert!(!ok);
    assert!(
        err.contains("exited") && err.contains("--parallel"),
        "{err}"
    );
}
