//! The GPU kit's rehearsal (perf/gpu/): the kit packed from this CPU build by
//! `build-cuda.sh --rehearsal` (hearth, and llama-bench linked against the same llama.cpp
//! build), then `device.sh --rehearsal` — the very script the GPU machine runs, with its
//! budget logic — end to end. A change that breaks the device run breaks this test here,
//! not in the few GPU minutes a session may get.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn run_script(script: &str, args: &[&str], env: &[(&str, &Path)]) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(root.join(script));
    // The scripts run hearth: none of the user's hearth settings may reach it, only `env`.
    crate::common::clean_env(&mut cmd);
    cmd.args(args).current_dir(root);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the script");
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn device_script_rehearsal_returns_every_file_with_figures() {
    let _turn = crate::common::turn();
    let hearth = Path::new(env!("CARGO_BIN_EXE_hearth"));
    // The user's own hearth home must stay untouched: the script works under /tmp.
    let home = tempfile::tempdir().unwrap();
    // A kit of its own: one built for the GPU in target/gpu-kit stays as it is.
    let work = tempfile::tempdir().unwrap();
    let kit = work.path().join("kit");
    run_script(
        "perf/gpu/build-cuda.sh",
        &["--rehearsal"],
        &[
            ("HEARTH_BIN", hearth),
            ("HEARTH_HOME", home.path()),
            ("HEARTH_GPU_KIT", &kit),
        ],
    );
    assert!(kit.join("kit.tar.xz").is_file());
    let out_dir = work.path().join("device-out");
    run_script(
        "perf/gpu/device.sh",
        &[out_dir.to_str().unwrap(), "--rehearsal"],
        &[
            ("HEARTH_HOME", home.path()),
            ("HEARTH_GPU_KIT", &kit),
            // The device's budget logic runs as on the GPU, but a loaded CI machine (other
            // tests beside this one) must not cut a level short: what is tested is that every
            // file comes back with figures, not how fast this machine is.
            ("HEARTH_GPU_BUDGET_S", Path::new("1800")),
        ],
    );

    // What comes back from the device: eight flat files.
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "llama-bench.jsonl",
            "log.txt",
            "report.csv",
            "report.html",
            "report.json",
            "report.md",
            "runs.json",
            "summary.md"
        ]
    );
    assert_eq!(
        std::fs::read_dir(home.path()).unwrap().count(),
        0,
        "device.sh wrote into HEARTH_HOME"
    );

    // hearth's figures: the twin at c=1, 8 and 32, every request answered, on the CPU.
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    let levels = report["levels"].as_array().unwrap();
    let labels: Vec<&str> = levels
        .iter()
        .map(|l| l["level"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["c=1", "c=8", "c=32"]);
    for l in levels {
        assert_eq!(l["model"], "smollm2-135m~shape");
        assert_eq!(l["failed"], 0, "{l}");
        assert!(l["completed"].as_u64().unwrap() > 0);
        assert!(l["output_throughput"].as_f64().unwrap() > 0.0);
        assert!(
            l["resources"].get("gpu").is_none(),
            "no GPU here, so no GPU figures"
        );
    }
    let runs: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("runs.json")).unwrap()).unwrap();
    assert_eq!(runs["run"]["id"], report["run"]["id"]);

    // llama-bench's anchor: prompt and generation tests on the same file, with rates.
    let anchors: Vec<Value> = std::fs::read_to_string(out_dir.join("llama-bench.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(anchors.len(), 2, "{anchors:?}");
    assert!(anchors.iter().all(|a| a["avg_ts"].as_f64().unwrap() > 0.0
        && a["hearth_alias"] == "smollm2-135m~shape"
        && a["n_gpu_layers"] == 0));

    // The summary puts both side by side, with a ratio at c=1.
    let summary = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    let row = summary
        .lines()
        .find(|l| l.starts_with("| smollm2-135m~shape | CPU | c=1 |"))
        .unwrap_or_else(|| panic!("no c=1 row in:\n{summary}"));
    let ratio: f64 = row.split('|').nth(8).unwrap().trim().parse().unwrap();
    assert!(ratio > 0.0, "{row}");
}
