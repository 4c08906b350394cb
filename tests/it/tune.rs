//! `hearth tune` from the command line: a real search on the default model (two
//! configurations, the default and one slot without drafts), its JSON document, the stored
//! probes, and bad input refused in one line with nothing stored.

use crate::common::{self, hearth};

#[test]
fn a_tune_searches_confirms_or_keeps_the_default_and_prints_its_json() {
    let home = common::home_with_model();
    let _turn = common::turn();
    let out = hearth(home.path())
        .args([
            "tune",
            "--models",
            "smollm2-135m",
            "--parallel",
            "1",
            "--speculative",
            "off",
            "--concurrency",
            "1",
            "--requests",
            "2",
            // The first stage's rounds; each later stage doubles them.
            "--rounds",
            "2",
            "--max-tokens",
            "8",
            "--budget",
            "10m",
            "--json",
        ])
        .assert()
        .success();
    let doc: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    // The default (serve with no flags) and the one configuration asked for.
    let entries = doc["search"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{doc:#}");
    assert_eq!(entries[0]["config"]["parallel"], 8);
    assert_eq!(entries[1]["config"]["parallel"], 1);
    assert_eq!(entries[1]["config"]["speculative"], "off");
    // Both reach the last stage (two never halve to one), each with rounds 2 + 4 + 8.
    for e in entries {
        let rounds: usize = e["probes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["rounds"].as_array().unwrap().len())
            .sum();
        assert_eq!(rounds, 14, "{e:#}");
        assert!(e["probes"][0]["run_id"].is_string());
    }
    let winner = &doc["winner"];
    assert!(winner["goodput_rps"].as_f64().unwrap() > 0.0);
    assert!(doc["baseline"]["goodput_rps"].as_f64().unwrap() > 0.0);
    let command = winner["serve_command"].as_str().unwrap();
    assert!(command.starts_with("hearth serve --models smollm2-135m --parallel "));
    let statuses: Vec<&str> = entries
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert!(statuses.contains(&"winner"), "{statuses:?}");
    // A winner other than the default is confirmed against it, alternating, with an interval
    // around its ratio; the default winning needs no confirm run.
    if winner["config"] == doc["baseline"]["config"] {
        assert!(doc["confirm"].is_null());
    } else {
        let c = &doc["confirm"];
        let (lo, ratio, hi) = (
            c["interval"][0].as_f64().unwrap(),
            c["ratio"].as_f64().unwrap(),
            c["interval"][1].as_f64().unwrap(),
        );
        assert!(lo <= ratio && ratio <= hi, "{c}");
        assert!(c["rounds"].as_u64().unwrap() >= 4, "{c}");
    }
    // Every probe is a stored run.
    let runs = hearth(home.path())
        .args(["runs", "list"])
        .assert()
        .success();
    let listed = String::from_utf8_lossy(&runs.get_output().stdout).to_string();
    let run_id = entries[1]["probes"][0]["run_id"].as_str().unwrap();
    assert!(listed.contains(run_id), "{listed}");
}

#[test]
fn bad_tune_input_is_one_clear_line_and_stores_nothing() {
    let home = common::home_with_model();
    for (args, says) in [
        (vec!["--budget", "soon"], "expected a duration"),
        (vec!["--budget", "10s"], "too short for one probe"),
        (vec!["--concurrency", "1,4"], "one --concurrency"),
        (vec!["--parallel", "0"], "at least 1"),
    ] {
        let out = hearth(home.path())
            .arg("tune")
            .args(&args)
            .assert()
            .failure();
        let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(!home.path().join("history.db").exists());
}
