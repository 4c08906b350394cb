//! Capability routing as users meet it, on the real default model: `auto:TAG` answers with
//! the smallest tagged model (and says so) before any benchmark, then with the model the
//! stored results pick, which `hearth route explain` shows with its table.

use crate::common;
use crate::common::hearth;

use std::path::Path;

use serde_json::Value;

/// Starts `hearth serve` on a free port, sends one routed chat request, stops the server and
/// returns the response's `x-hearth-route` header and body.
fn routed_request(home: &Path, model: &str) -> (String, Value) {
    let (mut child, addr) = common::spawn_serve(home, &["--parallel", "1", "--ctx", "512"]);
    let body = format!(
        r#"{{"model":"{model}","messages":[{{"role":"user","content":"Say hi"}}],"max_tokens":4}}"#
    );
    let response = common::http(&addr, "POST", "/v1/chat/completions", Some(&body));
    let _ = child.kill();
    let _ = child.wait();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let route = head
        .lines()
        .find_map(|l| l.strip_prefix("x-hearth-route: "))
        .unwrap_or_default()
        .to_string();
    (route, serde_json::from_str(body).expect("JSON body"))
}

#[test]
fn auto_routes_by_stored_results_explains_itself_and_falls_back_without_them() {
    let home = common::home_with_model();
    // No stored results: the smallest tagged model, and the header says why.
    let (route, body) = routed_request(home.path(), "auto:summarize");
    assert_eq!(body["model"], "smollm2-135m");
    assert!(route.contains("no stored benchmark results"), "{route}");

    // Measure the model and its q4_0 variant (both tagged `summarize`).
    hearth(home.path())
        .args(["model", "quantize", "smollm2-135m", "--type", "q4_0"])
        .assert()
        .success();
    hearth(home.path())
        .args([
            "bench",
            "--models",
            "smollm2-135m,smollm2-135m@q4_0",
            "--rounds",
            "1",
            "--warmup",
            "0",
            "--requests",
            "2",
            "--max-tokens",
            "8",
        ])
        .assert()
        .success();
    let out = hearth(home.path())
        .args(["route", "explain", "auto:summarize", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let decision: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(decision["from_results"], true, "{decision}");
    let candidates = decision["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2, "{decision}");
    assert!(candidates
        .iter()
        .all(|c| c["run"].is_string() && c["p95_e2el_ms"].is_number()));
    // The pick is the measured fastest; the other says why not.
    let pick = decision["model"].as_str().unwrap().to_string();
    let p95 = |m: &str| {
        candidates.iter().find(|c| c["model"] == m).unwrap()["p95_e2el_ms"]
            .as_f64()
            .unwrap()
    };
    let other = if pick == "smollm2-135m" {
        "smollm2-135m@q4_0"
    } else {
        "smollm2-135m"
    };
    assert!(p95(&pick) <= p95(other));
    let table = hearth(home.path())
        .args(["route", "explain", "auto:summarize"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8_lossy(&table);
    assert!(
        table.contains("slower") && table.contains(&format!("auto:summarize → {pick}")),
        "{table}"
    );

    // The server answers with the pick, names it in `model`, and says why.
    let (route, body) = routed_request(home.path(), "auto:summarize");
    assert_eq!(body["model"], pick.as_str());
    assert!(
        route.starts_with(&pick) && route.contains("stored results"),
        "{route}"
    );
    // An unknown tag is an error, not a guess.
    hearth(home.path())
        .args(["route", "explain", "auto:nothing-has-this"])
        .assert()
        .failure();
}
