//! The `hearth` binary as users run it: each test gets its own HEARTH_HOME.

use crate::common;
use crate::common::hearth;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn json_out(cmd: &mut Command) -> Value {
    let out = cmd.assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).expect("stdout is JSON")
}

#[test]
fn model_list_filters_with_wildcards_and_prints_json() {
    let home = tempfile::tempdir().unwrap();
    let all = json_out(hearth(home.path()).args(["model", "list", "--json"]));
    assert!(all.as_array().unwrap().len() >= 8);
    let qwen =
        json_out(hearth(home.path()).args(["model", "list", "--json", "--filter", "alias=qwen*"]));
    let aliases: Vec<&str> = qwen
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["alias"].as_str().unwrap())
        .collect();
    assert_eq!(aliases, ["qwen2.5-0.5b", "qwen2.5-1.5b"]);
    hearth(home.path())
        .args(["model", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("mistral-7b").and(predicate::str::contains("Apache-2.0")));
    hearth(home.path())
        .args(["model", "list", "--filter", "nonsense"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("invalid filter"));
}

#[test]
fn user_models_json_adds_and_tags_models_without_recompiling() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("bench-models.json");
    std::fs::write(
        &file,
        r#"{"smollm2-135m": {"capabilities": ["notes"]}, "tiny-remote": {"capabilities": ["chat"],
            "upstream": {"base_url": "http://127.0.0.1:9/v1", "model": "x"}}}"#,
    )
    .unwrap();
    let listed = json_out(hearth(home.path()).env("HEARTH_MODELS_FILE", &file).args([
        "model",
        "list",
        "--json",
        "--filter",
        "tag=notes",
    ]));
    assert_eq!(listed[0]["alias"], "smollm2-135m");
    let remote = json_out(hearth(home.path()).env("HEARTH_MODELS_FILE", &file).args([
        "model",
        "list",
        "--json",
        "--filter",
        "device=remote",
    ]));
    assert_eq!(remote[0]["alias"], "tiny-remote");
}

#[test]
fn model_info_shows_metadata_and_a_memory_estimate() {
    let home = common::home_with_model();
    let info = json_out(hearth(home.path()).args(["model", "info", "smollm2-135m", "--json"]));
    assert_eq!(info["gguf"]["architecture"], "llama");
    let memory = &info["memory"];
    let total = memory["total_bytes"].as_u64().unwrap();
    assert!(total > 98_362_432, "estimate includes the weights");
    assert_eq!(memory["fits"], true);
    // A long-running server's prompt cache grows to one more copy of this context's KV.
    assert_eq!(
        memory["prompt_cache_bytes"], memory["kv_cache_bytes"],
        "{memory}"
    );
    // Not downloaded: the estimate comes from the catalog.
    let mistral = json_out(hearth(home.path()).args(["model", "info", "mistral-7b", "--json"]));
    assert!(mistral["memory"]["total_bytes"].as_u64().unwrap() > 4_000_000_000);
}

#[test]
fn model_info_says_which_slots_serve_would_give_and_refuses_when_none_fit() {
    let home = common::home_with_model();
    let info = json_out(hearth(home.path()).args(["model", "info", "smollm2-135m", "--json"]));
    assert_eq!(info["serve_slots"]["parallel"], 8, "{info}");
    assert_eq!(info["serve_slots"]["n_ctx"], 4096, "{info}");
    // The prompt cache beside the slots may hold as much as their KV cache.
    assert_eq!(info["memory"]["ctx"], 4096, "{info}");
    assert_eq!(
        info["serve_slots"]["prompt_cache_bytes"].as_u64(),
        info["memory"]["kv_cache_bytes"].as_u64().map(|kv| 8 * kv),
        "{info}"
    );
    // A 7B model (4.1 GiB of Q4_K_M, 128 KiB of KV per token) in a 16 GiB budget: the half
    // share leaves room for one 4096-token slot.
    let budget = |mb: &str| {
        let mut cmd = hearth(home.path());
        cmd.env("HEARTH_MEMORY_LIMIT_MB", mb)
            .args(["model", "info", "mistral-7b", "--json"]);
        json_out(&mut cmd)["serve_slots"].clone()
    };
    let slots = budget("16384");
    assert_eq!(
        (slots["parallel"].as_u64(), slots["n_ctx"].as_u64()),
        (Some(1), Some(4096)),
        "{slots}"
    );
    assert!(slots["why"].as_str().unwrap().contains("not 8"), "{slots}");
    // Barely above the model itself: one shorter slot; below: a clear refusal.
    assert_eq!(
        slots["prompt_cache_bytes"].as_u64(),
        Some(4096 * 128 * 1024),
        "{slots}"
    );
    let slots = budget("7600");
    assert_eq!(slots["parallel"], 1, "{slots}");
    let n_ctx = slots["n_ctx"].as_u64().unwrap();
    assert!(n_ctx < 4096, "{slots}");
    // Little is left beside the model: the prompt cache gets half of it, less than the slot's KV.
    let cache = slots["prompt_cache_bytes"].as_u64().unwrap();
    assert!(cache < n_ctx * 128 * 1024, "{slots}");
    let slots = budget("7400");
    assert!(
        slots["error"]
            .as_str()
            .unwrap()
            .contains("even 1 slot(s) of 512 tokens"),
        "{slots}"
    );
}

/// `hearth cache list --json | grep -q …` and `| head`: a reader that has gone away ends the
/// command quietly and successfully, not with a panic (which `set -o pipefail` scripts would
/// read as a failure). The pipe's read end is closed before hearth starts, so every write fails.
#[test]
fn a_closed_pipe_on_stdout_ends_quietly() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["model", "list", "--json"][..],
        &["cache", "list"],
        &["config", "list"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = crate::common::hearth_std(home.path())
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn unknown_model_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    hearth(home.path())
        .args(["model", "run", "qwen", "--prompt", "hi"])
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("unknown model `qwen`")
                .and(predicate::str::contains("qwen2.5-0.5b")),
        );
}

#[test]
fn model_add_places_a_verified_copy_in_the_cache() {
    let home = tempfile::tempdir().unwrap();
    hearth(home.path())
        .args(["model", "add"])
        .arg(common::model_path())
        .args(["--alias", "smollm2-135m"])
        .assert()
        .success()
        .stdout(predicate::str::contains("verified"));
    let cached = json_out(hearth(home.path()).args(["cache", "list", "--json"]));
    assert_eq!(cached[0]["alias"], "smollm2-135m");
    assert_eq!(cached[0]["verified"], true);
    assert_eq!(cached[0]["size_bytes"], 98_362_432);
    hearth(home.path())
        .args(["cache", "verify"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ok"));
    // A new alias becomes a user catalog entry.
    hearth(home.path())
        .args(["model", "add"])
        .arg(common::model_path())
        .args(["--alias", "my-smol"])
        .assert()
        .success();
    let mine =
        json_out(hearth(home.path()).args(["model", "list", "--json", "--filter", "origin=user"]));
    assert_eq!(mine[0]["alias"], "my-smol");
    assert_eq!(mine[0]["family"], "llama");
    hearth(home.path())
        .args(["cache", "remove", "my-smol"])
        .assert()
        .success();
    hearth(home.path())
        .args(["cache", "remove", "my-smol"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("not in the cache"));
}

#[test]
fn model_add_rejects_a_truncated_gguf_and_caches_nothing() {
    let home = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(common::model_path()).unwrap();
    let broken = home.path().join("broken.gguf");
    std::fs::write(&broken, &bytes[..bytes.len() / 3]).unwrap();
    hearth(home.path())
        .args(["model", "add"])
        .arg(&broken)
        .args(["--alias", "broken"])
        .assert()
        .failure()
        .code(1)
        .stderr(predicate::str::contains("truncated"));
    let cached = json_out(hearth(home.path()).args(["cache", "list", "--json"]));
    assert_eq!(cached.as_array().unwrap().len(), 0);
}

#[test]
fn model_run_answers_with_usage_and_timings() {
    let home = common::home_with_model();
    let run = |extra: &[&str]| {
        json_out(
            hearth(home.path())
                .args([
                    "model",
                    "run",
                    "smollm2-135m",
                    "--json",
                    "--max-tokens",
                    "24",
                    // Two runs are compared below: drafts (the default) follow measured step
                    // costs, so they would change the batch shapes from one run to the next.
                    "--speculative",
                    "off",
                ])
                .args(["--prompt", "What is the capital of France?"])
                .args(extra),
        )
    };
    let first = run(&[]);
    let text = first["text"].as_str().unwrap();
    assert!(!text.trim().is_empty());
    assert!(first["usage"]["completion_tokens"].as_u64().unwrap() <= 24);
    assert!(first["timings"]["decode_per_second"].as_f64().unwrap() > 0.0);
    assert!(first["load_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(run(&[])["text"], first["text"], "greedy is deterministic");
    // Streaming mode prints the text and a timings line.
    hearth(home.path())
        .args(["model", "run", "--max-tokens", "8", "--prompt", "Hello"])
        .assert()
        .success()
        .stderr(predicate::str::contains("tok/s").and(predicate::str::contains("first token")));
}

#[test]
fn interactive_chat_keeps_history_until_bye() {
    let home = common::home_with_model();
    let out = hearth(home.path())
        .args(["model", "run", "smollm2-135m", "--max-tokens", "16"])
        .write_stdin("My name is Ada.\nWhat is my name?\n/bye\n")
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("[prompt ").count(),
        2,
        "two answers: {stderr}"
    );
    // The second turn's prompt includes the first exchange, so it is longer.
    let prompts: Vec<u64> = stderr
        .lines()
        .filter_map(|l| l.split("[prompt ").nth(1))
        .map(|r| r.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(prompts[1] > prompts[0] + 5, "history kept: {prompts:?}");
}

#[test]
fn a_model_too_big_for_the_memory_budget_is_refused_with_a_smaller_suggestion() {
    let home = common::home_with_model();
    hearth(home.path())
        .env("HEARTH_MEMORY_LIMIT_MB", "150")
        .args([
            "model",
            "run",
            "smollm2-135m",
            "--prompt",
            "hi",
            "--ctx",
            "8192",
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("needs about").and(predicate::str::contains("available")));
    // With a small context it fits the same budget.
    hearth(home.path())
        .env("HEARTH_MEMORY_LIMIT_MB", "250")
        .args([
            "model",
            "run",
            "smollm2-135m",
            "--prompt",
            "hi",
            "--ctx",
            "512",
            "--max-tokens",
            "4",
        ])
        .assert()
        .success();
}

#[test]
fn config_set_get_list_and_env_override() {
    let home = tempfile::tempdir().unwrap();
    hearth(home.path())
        .args(["config", "set", "ctx", "2048"])
        .assert()
        .success();
    hearth(home.path())
        .args(["config", "get", "ctx"])
        .assert()
        .success()
        .stdout("2048\n");
    hearth(home.path())
        .env("HEARTH_CTX", "1024")
        .args(["config", "get", "ctx"])
        .assert()
        .success()
        .stdout("1024\n");
    let list = json_out(hearth(home.path()).args(["config", "list", "--json"]));
    let ctx = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "ctx")
        .unwrap();
    assert_eq!(ctx["origin"], "file");
    hearth(home.path())
        .args(["config", "set", "threads", "lots"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("invalid value"));
}

#[test]
fn cache_location_is_under_hearth_home() {
    let home = tempfile::tempdir().unwrap();
    hearth(home.path())
        .args(["cache", "location"])
        .assert()
        .success()
        .stdout(predicate::str::contains(home.path().to_str().unwrap()));
}

#[test]
fn serve_refuses_a_public_address_without_an_api_key() {
    let home = tempfile::tempdir().unwrap();
    // `hearth` clears every hearth variable, HEARTH_API_KEY among them.
    hearth(home.path())
        .args(["serve", "--host", "0.0.0.0", "--port", "0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("API key"));
}

#[test]
fn serve_answers_then_exits_cleanly_on_sigterm() {
    let home = common::home_with_model();
    let (mut child, addr) = common::spawn_serve(home.path(), &["--parallel", "2", "--ctx", "512"]);
    let body = r#"{"model":"smollm2-135m","messages":[{"role":"user","content":"Say hi"}],"max_tokens":4}"#;
    let response = common::http(&addr, "POST", "/v1/chat/completions", Some(body));
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("chat.completion"));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}
