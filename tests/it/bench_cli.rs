//! `hearth bench` as users run it, on the real default model: a full run writes every report
//! format and they agree with the stored run (SQLite and PostgreSQL); `compare` passes two
//! honest runs and flags an injected regression; SIGINT in the middle keeps what finished.

use crate::common;
use crate::common::{hearth, hearth_std, turn};

use std::process::{Command as StdCommand, Stdio};

use assert_cmd::Command;
use serde_json::Value;

fn json_out(cmd: &mut Command) -> Value {
    let out = cmd.assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).expect("stdout is JSON")
}

/// A short but complete benchmark: two load levels, warm-up and one timed round.
const SHORT: [&str; 10] = [
    "bench",
    "--rounds",
    "1",
    "--max-tokens",
    "24",
    "--concurrency",
    "1,2",
    "--slo",
    "ttft=2s,e2e=20s",
    "--requests",
];

/// One timed round, no warm-up: the start of the shortest runs below.
const ONE_ROUND: [&str; 5] = ["bench", "--rounds", "1", "--warmup", "0"];

/// The smallest complete benchmark: one timed round of two requests, no warm-up, 8 tokens.
const TINY: [&str; 9] = [
    "bench",
    "--rounds",
    "1",
    "--warmup",
    "0",
    "--max-tokens",
    "8",
    "--requests",
    "2",
];

/// Runs a short bench into `out` and checks that every report format is there, parses, and
/// agrees with the run as re-rendered from the store.
fn full_run_agrees_with_the_store(db_url: Option<&str>) {
    let _turn = turn();
    let home = common::home_with_model();
    let out = home.path().join("out");
    let mut cmd = hearth(home.path());
    if let Some(url) = db_url {
        cmd.env("HEARTH_DB_URL", url);
    }
    let run = cmd
        .args(SHORT)
        .arg("4")
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&run.get_output().stdout).to_string();
    assert!(
        stdout.contains("smollm2-135m") && stdout.contains("c=2"),
        "{stdout}"
    );

    for name in ["report.json", "report.csv", "report.md", "report.html"] {
        assert!(out.join(name).is_file(), "{name} missing");
    }
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let mut show = hearth(home.path());
    if let Some(url) = db_url {
        show.env("HEARTH_DB_URL", url);
    }
    let stored = json_out(show.args(["runs", "show", "latest", "--json"]));
    assert_eq!(
        file, stored,
        "report.json equals the run re-rendered from the store"
    );

    let levels = file["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    for level in levels {
        assert_eq!(level["completed"], 4);
        assert_eq!(level["failed"], 0);
        assert!(level["output_throughput"].as_f64().unwrap() > 0.0);
        assert!(
            level["p99_ttft_ms"].as_f64().unwrap() >= level["median_ttft_ms"].as_f64().unwrap()
        );
        assert!(level["mean_e2el_ms"].as_f64().unwrap() > level["mean_ttft_ms"].as_f64().unwrap());
    }
    assert_eq!(file["models"][0]["status"], "ok");
    assert!(file["models"][0]["load_ms"].as_f64().unwrap() > 0.0);
    assert!(file["models"][0]["disk_bytes"].as_u64().unwrap() > 90_000_000);

    // CSV: a header and one row per model and level, with the same figures.
    let mut csv = csv::Reader::from_path(out.join("report.csv")).unwrap();
    let headers = csv.headers().unwrap().clone();
    let col = headers
        .iter()
        .position(|h| h == "output_throughput")
        .unwrap();
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    for (row, level) in rows.iter().zip(levels) {
        let value: f64 = row[col].parse().unwrap();
        let expected = level["output_throughput"].as_f64().unwrap();
        assert!(
            (value - expected).abs() <= 1e-6 * expected.max(1.0),
            "{value} vs {expected}"
        );
    }

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| smollm2-135m") && md.contains("Apache-2.0"));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg"), "charts are inline SVG");
    assert!(
        !html.contains("<script src") && !html.contains("<link"),
        "opens offline"
    );

    // The history lists the run.
    let mut list = hearth(home.path());
    if let Some(url) = db_url {
        list.env("HEARTH_DB_URL", url);
    }
    let runs = json_out(list.args(["runs", "list", "--json"]));
    let id = file["run"]["id"].as_str().unwrap();
    assert!(runs
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["run"]["id"] == id));

    // `report` re-renders any format from the store.
    let mut md2 = hearth(home.path());
    if let Some(url) = db_url {
        md2.env("HEARTH_DB_URL", url);
    }
    let rendered = md2
        .args(["report", id, "--format", "md"])
        .assert()
        .success();
    assert_eq!(String::from_utf8_lossy(&rendered.get_output().stdout), md);
}

#[test]
fn full_run_writes_every_report_and_they_agree_with_sqlite() {
    full_run_agrees_with_the_store(None);
}

#[test]
fn full_run_writes_every_report_and_they_agree_with_postgres() {
    let url = std::env::var("HEARTH_TEST_PG_URL").expect(
        "HEARTH_TEST_PG_URL is not set: the store tests need PostgreSQL (scripts/test.sh sets it up)",
    );
    full_run_agrees_with_the_store(Some(&url));
}

#[test]
fn compare_passes_a_run_against_itself_and_flags_an_injected_regression() {
    let _turn = turn();
    let home = common::home_with_model();
    let run = |args: &[&str]| {
        hearth(home.path())
            .args([
                "bench",
                "--rounds",
                "4",
                "--max-tokens",
                "16",
                "--requests",
                "4",
                "--speculative",
                "off",
            ])
            .args(args)
            .assert()
            .success();
    };
    run(&[]);
    run(&[]);
    let runs = json_out(hearth(home.path()).args(["runs", "list", "--json"]));
    let b = runs[0]["run"]["id"].as_str().unwrap().to_string();
    let a = runs[1]["run"]["id"].as_str().unwrap().to_string();

    // A run against itself: nothing to flag (two honest runs may differ by real noise, so
    // only the identical pair is a deterministic check).
    let same = json_out(hearth(home.path()).args(["compare", &a, &a, "--json"]));
    let verdicts: Vec<&str> = same["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["verdict"].as_str().unwrap())
        .collect();
    assert!(!verdicts.is_empty());
    assert!(!verdicts.contains(&"regression"), "{verdicts:?}");
    // What cannot be compared is exit 2, never the regression's 1.
    hearth(home.path())
        .args(["compare", &a, "no-such-run"])
        .assert()
        .code(2);
    hearth(home.path())
        .args(["compare", &a, &b, "--confidence", "2"])
        .assert()
        .code(2);

    // Inject a regression into B: every request took ten times as long end to end. Separate
    // runs carry their minute's noise (the rounds of a loaded machine can differ by half), so
    // the change must stand far above it to be called with four rounds a side.
    let db = rusqlite::Connection::open(home.path().join("history.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE requests SET end_ms = scheduled_ms + (end_ms - scheduled_ms) * 10 WHERE run_id = ?1",
            [&b],
        )
        .unwrap();
    assert!(changed >= 8);
    drop(db);
    let verdict = hearth(home.path())
        .args(["compare", &a, &b])
        .assert()
        .code(1);
    let text = String::from_utf8_lossy(&verdict.get_output().stdout).to_lowercase();
    assert!(text.contains("regression"), "{text}");
    let json = hearth(home.path())
        .args(["compare", &a, &b, "--json"])
        .assert()
        .code(1);
    let rows: Value = serde_json::from_slice(&json.get_output().stdout).unwrap();
    let e2e = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == "e2el_ms")
        .unwrap();
    assert!(e2e["change_pct"].as_f64().unwrap() > 300.0, "{text}");
    assert!(
        rows["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["verdict"] == "regression"),
        "{text}"
    );
}

/// The seeds' models.json shape (alias → description), naming a variant before the built-in
/// model it comes from: both are measured, in the file's order, and the variant is made first.
#[test]
fn models_file_in_the_seeds_shape_measures_every_model_in_order() {
    let _turn = turn();
    let home = common::home_with_model();
    let file = home.path().join("seeds-models.json");
    std::fs::write(
        &file,
        r#"{"smollm2-135m@q4_0": {"capabilities": ["chat", "tiny"], "size_mb": 80},
            "smollm2-135m": {"capabilities": ["chat", "summarize"], "size_mb": 98}}"#,
    )
    .unwrap();
    let out = home.path().join("out");
    hearth(home.path())
        .args(TINY)
        .arg("--models-file")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let models: Vec<(&str, &str)> = report["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["model"].as_str().unwrap(), m["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        models,
        [("smollm2-135m@q4_0", "ok"), ("smollm2-135m", "ok")],
        "{report:#}"
    );
    for level in report["levels"].as_array().unwrap() {
        assert_eq!(level["completed"], 2, "{level}");
    }
}

/// A server killed in the middle of a run: the requests after it fail, the model is `degraded`
/// with its failure share, and the exit code says so (a CI job must not pass on lost answers).
#[test]
fn a_server_killed_mid_run_degrades_the_model_and_fails_the_exit_code() {
    let _turn = turn();
    let home = common::home_with_model();
    let (mut server, addr) = common::spawn_serve(home.path(), &[]);
    let bench_home = tempfile::tempdir().unwrap();
    let out = bench_home.path().join("out");
    let mut bench = hearth_std(bench_home.path())
        .args([
            "bench",
            "--endpoint",
            &format!("http://{addr}/v1"),
            "--models",
            "smollm2-135m",
            "--rounds",
            "40",
            "--warmup",
            "0",
            "--requests",
            "2",
            "--max-tokens",
            "8",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Only there to end a hung test: four answers take seconds even on a loaded machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if std::time::Instant::now() > deadline {
            let _ = bench.kill();
            let _ = server.kill();
            panic!("the benchmark stored no 4 requests in 120 s");
        }
        let runs = json_out(hearth(bench_home.path()).args(["runs", "list", "--json"]));
        let n = runs
            .as_array()
            .and_then(|r| r.first())
            .map_or(0, |r| r["requests"].as_u64().unwrap());
        if n >= 4 {
            break;
        }
        if bench.try_wait().unwrap().is_some() {
            let output = bench.wait_with_output().unwrap();
            panic!(
                "the benchmark ended ({}) before the server could be killed:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let output = bench.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("degraded"), "{stderr}");

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let model = &report["models"][0];
    assert_eq!(model["status"], "degraded", "{model}");
    assert!(model["error"]
        .as_str()
        .unwrap()
        .contains("counted requests failed"));
    let level = &report["levels"][0];
    assert!(level["completed"].as_u64().unwrap() >= 4);
    assert!(level["failed"].as_u64().unwrap() > 0);
    assert!(report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().starts_with("MODEL DEGRADED")));
}

/// Upstream entries of a models file are measured with their server's process: the entry's
/// own `pid`, or `--pid` for one that names none.
#[test]
fn upstream_entries_are_measured_with_their_servers_process() {
    let _turn = turn();
    let home = common::home_with_model();
    let (mut server, addr) = common::spawn_serve(home.path(), &[]);
    let bench_home = tempfile::tempdir().unwrap();
    let file = bench_home.path().join("remote.json");
    let upstream = |pid: Option<u32>| serde_json::json!({"base_url": format!("http://{addr}/v1"), "model": "smollm2-135m", "pid": pid});
    // Written by hand: serde_json's objects would sort the two entries.
    std::fs::write(
        &file,
        format!(
            r#"{{"own-pid": {{"upstream": {}}}, "flag-pid": {{"upstream": {}}}}}"#,
            upstream(Some(server.id())),
            upstream(None)
        ),
    )
    .unwrap();
    let out = bench_home.path().join("out");
    hearth(bench_home.path())
        .args(TINY)
        .args(["--pid", &server.id().to_string()])
        .arg("--models-file")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    server.kill().unwrap();
    server.wait().unwrap();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let levels = report["levels"].as_array().unwrap();
    let names: Vec<&str> = levels
        .iter()
        .map(|l| l["model"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["own-pid", "flag-pid"]);
    for l in levels {
        // The server process holds the model: far more than the bench client's own memory.
        let rss = l["resources"]["peak_rss_bytes"].as_u64();
        assert!(rss.is_some_and(|b| b > 50 << 20), "{l}");
        assert!(l["resources"]["server_cpu_ms"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn sigint_in_the_middle_keeps_finished_requests() {
    let _turn = turn();
    let home = common::home_with_model();
    let mut child = hearth_std(home.path())
        .args([
            "bench",
            "--rounds",
            "200",
            "--max-tokens",
            "16",
            "--requests",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until requests are in the store, then interrupt. The deadline only ends a hung test.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let finished_before = loop {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the benchmark stored no 6 requests in 120 s");
        }
        let runs = json_out(hearth(home.path()).args(["runs", "list", "--json"]));
        let n = runs
            .as_array()
            .and_then(|r| r.first())
            .map_or(0, |r| r["requests"].as_u64().unwrap());
        if n >= 6 {
            break n;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the benchmark ended ({status}) before it could be interrupted");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let status = StdCommand::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("interrupted"), "{stderr}");

    let runs = json_out(hearth(home.path()).args(["runs", "list", "--json"]));
    let run = &runs[0];
    assert_eq!(run["run"]["status"], "interrupted");
    assert!(run["requests"].as_u64().unwrap() >= finished_before);
    let id = run["run"]["id"].as_str().unwrap();
    let report = json_out(hearth(home.path()).args(["runs", "show", id, "--json"]));
    assert_eq!(report["models"][0]["status"], "interrupted");
    assert!(home
        .path()
        .join("runs")
        .join(id)
        .join("report.html")
        .is_file());
}

/// The default model judges its own answers after the timed part (each answer scored 1–5 or
/// recorded unscored, never guessed); then people score them through `annotate export` and
/// `import`, which changes the stored scores and the reports, while a bad file changes nothing.
#[test]
fn judge_then_annotate_round_trip() {
    let _turn = turn();
    let home = common::home_with_model();
    let out = home.path().join("out");
    let run = hearth(home.path())
        .args([
            "bench",
            "--rounds",
            "1",
            "--max-tokens",
            "24",
            "--requests",
            "2",
            "--judge",
            "smollm2-135m",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).to_string();
    assert!(
        stderr.contains("judge smollm2-135m @ http://127.0.0.1:"),
        "{stderr}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let scorers = report["scorers"].as_array().unwrap();
    assert_eq!(scorers.len(), 1, "{scorers:?}");
    assert_eq!(scorers[0]["rubric_version"], "hearth-judge/1");
    let judged = scorers[0]["scored"].as_u64().unwrap() + scorers[0]["unscored"].as_u64().unwrap();
    assert_eq!(judged, 2, "both timed answers judged");
    let q = &report["models"][0]["quality"];
    if let Some(score) = q["judge_score"].as_f64() {
        assert!((1.0..=5.0).contains(&score), "{q}");
    }
    // The recommendation follows the judge: picked at 3.5 or above, else told why not.
    let rec = &report["recommendation"];
    match q["score"].as_f64() {
        Some(s) if s >= 3.5 => assert_eq!(rec["pick"], "smollm2-135m", "{rec}"),
        Some(_) => assert!(
            rec["candidates"][0]["not_picked"]
                .as_str()
                .unwrap()
                .contains("below the bar"),
            "{rec}"
        ),
        None => assert!(
            rec["explanation"]
                .as_str()
                .unwrap()
                .contains("could not be applied"),
            "{rec}"
        ),
    }

    // Export, fill every row with 5, import.
    let exported = hearth(home.path())
        .args(["annotate", "export", "latest", "--out"])
        .arg(home.path())
        .assert()
        .success();
    let paths = String::from_utf8_lossy(&exported.get_output().stdout).to_string();
    let csv_path = paths
        .lines()
        .find(|l| l.ends_with(".csv"))
        .unwrap()
        .to_string();
    assert!(paths.lines().any(|l| l.ends_with(".json")));
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let score_col = headers.iter().position(|h| h == "score").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert!(!rows.is_empty());
    let write = |score: &str| {
        let mut w = csv::Writer::from_path(&csv_path).unwrap();
        w.write_record(&headers).unwrap();
        for row in &rows {
            let cells: Vec<&str> = row
                .iter()
                .enumerate()
                .map(|(i, c)| if i == score_col { score } else { c })
                .collect();
            w.write_record(cells).unwrap();
        }
        w.flush().unwrap();
    };
    write("5");
    hearth(home.path())
        .args(["annotate", "import", &csv_path, "--annotator", "ana"])
        .assert()
        .success();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let q = &report["models"][0]["quality"];
    assert_eq!(q["score"], 5.0, "{q}");
    assert_eq!(q["scored_by"], "human");
    assert_eq!(report["recommendation"]["pick"], "smollm2-135m");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("people (ana)"), "reports refreshed on import");

    // A bad file: reported by line, exit 1, nothing changes.
    write("6");
    let bad = hearth(home.path())
        .args(["annotate", "import", &csv_path])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&bad.get_output().stderr).to_string();
    assert!(
        stderr.contains("line 2") && stderr.contains("nothing imported"),
        "{stderr}"
    );
    let stored = json_out(hearth(home.path()).args(["runs", "show", "latest", "--json"]));
    assert_eq!(stored["models"][0]["quality"]["score"], 5.0);
}

/// `--sweep` from the command line: the two bounds, then the rates between them, every report
/// carries the sweep, and a sweep with fixed levels is refused before anything runs.
#[test]
fn a_sweep_from_the_command_line_measures_its_bounds_then_rates() {
    let _turn = turn();
    let home = common::home_with_model();
    let out = home.path().join("out");
    // Four requests per level (TINY has two): with two, c=4 runs only two at once and its lead
    // over c=1 (~1.2x here) is within what a busy CI machine's noise can flip.
    let assert = hearth(home.path())
        .args(&TINY[..TINY.len() - 1])
        .args(["4", "--sweep", "2", "--sweep-max-concurrency", "4", "--out"])
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    assert!(stdout.contains("knee"), "{stdout}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let labels: Vec<&str> = report["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["level"].as_str().unwrap())
        .collect();
    assert_eq!(labels.len(), 4, "{labels:?}");
    assert_eq!(&labels[..2], ["c=1", "c=4"]);
    assert!(
        labels[2..].iter().all(|l| l.starts_with("r=")),
        "{labels:?}"
    );
    let sweep = &report["sweeps"][0];
    assert_eq!(sweep["model"], "smollm2-135m");
    assert!(sweep["synchronous_rate"].as_f64().unwrap() > 0.0, "{sweep}");
    // The maximum is the best closed-loop level, named: usually c=4, but which of the two wins
    // on this machine under its load is not what is tested (a fixed margin for c=4 would be a
    // speed assumption a loaded machine can break).
    let max = sweep["maximum_rate"][0].as_f64().unwrap();
    let c1 = report["levels"][0]["request_throughput"].as_f64().unwrap();
    let c4 = report["levels"][1]["request_throughput"].as_f64().unwrap();
    assert_eq!(max, c1.max(c4), "{sweep}");
    let best = if c4 >= c1 { "c=4" } else { "c=1" };
    assert_eq!(sweep["maximum_rate"][1], best, "{sweep}");
    assert!(
        max >= sweep["synchronous_rate"].as_f64().unwrap(),
        "{sweep}"
    );
    assert_eq!(report["options"]["bench"]["stop_over_saturated_secs"], 10.0);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Sweep"), "{md}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Latency against throughput"));

    let refused = hearth(home.path())
        .args(["bench", "--sweep", "--concurrency", "2"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).to_string();
    assert!(stderr.contains("--sweep"), "{stderr}");
}

/// Every counted request record of the newest run in `home`, through `runs export`.
fn exported_requests(home: &std::path::Path) -> Vec<Value> {
    let out = hearth(home)
        .args(["runs", "export", "latest", "--format", "jsonl"])
        .assert()
        .success();
    String::from_utf8_lossy(&out.get_output().stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["round"].as_u64() > Some(0))
        .collect()
}

/// `--input-tokens` and `--output-tokens` on the real model: every prompt has the asked
/// length by the model's own tokenizer (plus the chat template's fixed tokens, the same for
/// all), every answer the asked length, and no prompt is served from the cache.
#[test]
fn generated_prompts_and_answers_have_the_asked_token_lengths() {
    let _turn = turn();
    let home = common::home_with_model();
    hearth(home.path())
        .args(ONE_ROUND)
        .args([
            "--requests",
            "3",
            "--input-tokens",
            "48",
            "--output-tokens",
            "12",
            "--out",
        ])
        .arg(home.path().join("out"))
        .assert()
        .success();
    let records = exported_requests(home.path());
    assert_eq!(records.len(), 3);
    let prompt_tokens: Vec<u64> = records
        .iter()
        .map(|r| r["prompt_tokens"].as_u64().unwrap())
        .collect();
    assert!(
        prompt_tokens.iter().all(|&t| t == prompt_tokens[0]),
        "{prompt_tokens:?}"
    );
    assert!(
        (48..48 + 64).contains(&prompt_tokens[0]),
        "{prompt_tokens:?}"
    );
    for r in &records {
        assert_eq!(r["completion_tokens"], 12, "{r}");
        assert!(r["cached_tokens"].as_u64().unwrap_or(0) < 40, "{r}");
    }
}

/// `--dataset` with the project's own ShareGPT sample: each conversation's first question is
/// asked and answered at the recorded answer's length (four characters a token).
#[test]
fn a_sharegpt_dataset_runs_at_the_recorded_answer_lengths() {
    let _turn = turn();
    let home = common::home_with_model();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample-sharegpt.json");
    hearth(home.path())
        .args(ONE_ROUND)
        .args(["--requests", "2", "--dataset"])
        .arg(&file)
        .arg("--out")
        .arg(home.path().join("out"))
        .assert()
        .success();
    let dataset: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let expected = |id: &str| {
        let c = dataset
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap();
        (c["conversations"][1]["value"]
            .as_str()
            .unwrap()
            .chars()
            .count() as u64)
            .div_ceil(4)
    };
    let records = exported_requests(home.path());
    assert_eq!(records.len(), 2);
    for r in &records {
        let id = r["prompt_id"].as_str().unwrap();
        assert!(id.starts_with("hearth-sample-"), "{r}");
        assert_eq!(
            r["completion_tokens"].as_u64().unwrap(),
            expected(id),
            "{r}"
        );
    }
    // A file that is not a conversation list is refused with what is wrong.
    let bad = home.path().join("bad.json");
    std::fs::write(&bad, r#"{"not": "a list"}"#).unwrap();
    let refused = hearth(home.path())
        .args(["bench", "--dataset"])
        .arg(&bad)
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).to_string();
    assert!(stderr.contains("ShareGPT"), "{stderr}");
}

/// `hearth report A B C`: three stored runs in one report, in every format it offers; each
/// run's figures in it are those of the run's own report, and the later runs are judged
/// against the first.
#[test]
fn a_report_of_three_runs_shows_each_runs_own_figures() {
    let _turn = turn();
    let home = common::home_with_model();
    for levels in ["1", "1,2", "2"] {
        hearth(home.path())
            .args(TINY)
            .args(["--concurrency", levels, "--out"])
            .arg(home.path().join(format!("out-{levels}")))
            .assert()
            .success();
    }
    let ids: Vec<String> = json_out(hearth(home.path()).args(["runs", "list", "--json"]))
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run"]["id"].as_str().unwrap().to_string())
        .rev()
        .collect();
    assert_eq!(ids.len(), 3);
    let render = |format: &str| {
        let out = hearth(home.path())
            .arg("report")
            .args(&ids)
            .args(["--format", format])
            .assert()
            .success();
        String::from_utf8_lossy(&out.get_output().stdout).to_string()
    };
    let multi: Value = serde_json::from_str(&render("json")).unwrap();
    assert_eq!(multi["schema"], "hearth.bench.multi/1");
    for (i, id) in ids.iter().enumerate() {
        let own = json_out(hearth(home.path()).args(["report", id, "--format", "json"]));
        let there = &multi["runs"][i];
        assert_eq!(there["run"]["id"], own["run"]["id"]);
        assert_eq!(there["levels"], own["levels"], "run {id}");
        assert_eq!(there["models"], own["models"], "run {id}");
    }
    let comparisons = multi["comparisons"].as_array().unwrap();
    assert_eq!(comparisons.len(), 2);
    assert_eq!(comparisons[0]["a_run"], ids[0].as_str());
    assert_eq!(comparisons[1]["b_run"], ids[2].as_str());

    let md = render("md");
    assert!(ids.iter().all(|id| md.contains(id.as_str())), "{md}");
    assert!(md.contains("## Side by side"));
    let html = render("html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.matches("<svg").count() >= 2, "overlaid charts");
    let refused = hearth(home.path())
        .arg("report")
        .args(&ids)
        .args(["--format", "csv"])
        .assert()
        .failure();
    assert!(String::from_utf8_lossy(&refused.get_output().stderr).contains("runs export"));
}

/// `--depth 0,256`: each level is measured at both depths, the deep prompts carry 256 more
/// tokens by the model's tokenizer (± the joint), none of them is served from the prompt
/// cache beyond the chat template, and the report shows speed against depth.
#[test]
fn depth_levels_put_each_prompt_behind_distinct_context_of_that_length() {
    let _turn = turn();
    let home = common::home_with_model();
    let out = home.path().join("out");
    hearth(home.path())
        .args(TINY)
        .args(["--depth", "0,256", "--out"])
        .arg(&out)
        .assert()
        .success();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let levels: Vec<(&str, u64)> = report["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["level"].as_str().unwrap(), l["depth"].as_u64().unwrap()))
        .collect();
    assert_eq!(levels, [("c=1 d=0", 0), ("c=1 d=256", 256)]);
    let records = exported_requests(home.path());
    let tokens = |level: &str| -> Vec<u64> {
        records
            .iter()
            .filter(|r| r["level"] == level)
            .map(|r| r["prompt_tokens"].as_u64().unwrap())
            .collect()
    };
    let (shallow, deep) = (tokens("c=1 d=0"), tokens("c=1 d=256"));
    assert_eq!((shallow.len(), deep.len()), (2, 2));
    for (s, d) in shallow.iter().zip(&deep) {
        assert!(
            (256 - 4..=256 + 6).contains(&(d - s)),
            "{shallow:?} → {deep:?}"
        );
    }
    for r in records.iter().filter(|r| r["level"] == "c=1 d=256") {
        assert!(r["cached_tokens"].as_u64().unwrap_or(0) < 64, "{r}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Speed against context depth"), "{md}");
}
