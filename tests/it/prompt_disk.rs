//! The prompt cache's disk tier through the real server: a long system prompt computed once
//! comes back from `$HEARTH_HOME/kv` after a restart and after an idle unload, with the answer
//! a warm repeat gives; a damaged file is ignored and removed without the client noticing;
//! `hearth cache list` shows the files and `cache remove --kv` clears them.

use crate::common::{self, hearth};

/// A document of about 700 tokens: long enough for the disk tier (256 tokens at least).
fn document() -> String {
    let rivers = ["Alder", "Birch", "Cedar", "Dogwood", "Elm", "Fir", "Gum"];
    (0..45)
        .map(|i| {
            format!(
                "Fact {i}: the river {} near town {} is {} km long. ",
                rivers[i % rivers.len()],
                i * 7 + 3,
                i * 13 + 5
            )
        })
        .collect()
}

/// One greedy answer about the document: its text, prompt tokens and cached prompt tokens.
fn ask(addr: &str) -> (String, u64, u64) {
    let body = serde_json::json!({
        "model": "smollm2-135m",
        "messages": [
            {"role": "system", "content": document()},
            {"role": "user", "content": "Which river is 18 km long?"}
        ],
        "max_tokens": 12,
        "temperature": 0
    })
    .to_string();
    let response = common::http(addr, "POST", "/v1/chat/completions", Some(&body));
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let json: serde_json::Value =
        serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let usage = &json["usage"];
    (
        json["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string(),
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0),
    )
}

fn stop(mut child: std::process::Child) {
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success());
}

/// Unloads the model (as the idle timer does): its engine stops and keeps its prompts on disk.
fn unload(addr: &str) {
    let unloaded = common::http(
        addr,
        "POST",
        "/api/unload",
        Some(r#"{"model":"smollm2-135m"}"#),
    );
    assert!(unloaded.starts_with("HTTP/1.1 200"), "{unloaded}");
}

fn kv_files(home: &std::path::Path) -> Vec<std::path::PathBuf> {
    let root = home.join("kv");
    std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|f| f.path())
        .filter(|p| p.extension().is_some_and(|e| e == "kv"))
        .collect()
}

#[test]
fn a_long_prompt_comes_back_from_disk_after_a_restart_and_an_unload() {
    let home = common::home_with_model();
    let _turn = common::turn();
    // Drafts off: a repeated answer would be drafted from the server's history, a restored one
    // (history gone with the restart) would not, and the two batch shapes can part at a
    // near-tie. What is compared here is the restored state, under one batch shape.
    let args = ["--parallel", "1", "--ctx", "2048", "--speculative", "off"];
    let (child, addr) = common::spawn_serve(home.path(), &args);
    let (_, prompt_tokens, cold) = ask(&addr);
    assert!(prompt_tokens > 400, "{prompt_tokens}");
    assert!(cold < 64, "a fresh server reused {cold} tokens");
    // A warm repeat reuses the prompt held by the slot: the batch shape a restore gives too.
    let (warm_text, _, warm) = ask(&addr);
    assert!(warm + 16 >= prompt_tokens, "{warm} of {prompt_tokens}");
    stop(child);
    let files = kv_files(home.path());
    assert_eq!(files.len(), 1, "{files:?}");

    // After a restart: restored from disk, the same answer as the warm repeat.
    let (child, addr) = common::spawn_serve(home.path(), &args);
    let (text, _, cached) = ask(&addr);
    assert!(cached + 16 >= prompt_tokens, "{cached} of {prompt_tokens}");
    assert_eq!(text, warm_text);

    // After an unload (what the idle timer does): restored again.
    unload(&addr);
    let (text, _, cached) = ask(&addr);
    assert!(cached + 16 >= prompt_tokens, "{cached} of {prompt_tokens}");
    assert_eq!(text, warm_text);

    // A damaged file (one byte of its state flipped, then the file cut short) is ignored and
    // removed: the client gets its answer from a fresh prefill.
    unload(&addr);
    let files = kv_files(home.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&files[0], &bytes).unwrap();
    let (_, _, cached) = ask(&addr);
    assert!(
        cached < 64,
        "a corrupt file was trusted: {cached} tokens reused"
    );
    assert!(!files[0].exists() || std::fs::read(&files[0]).unwrap() != bytes);
    stop(child);

    // The file the last server wrote, listed and removed.
    let listed = hearth(home.path())
        .args(["cache", "list"])
        .assert()
        .success();
    let listed = String::from_utf8_lossy(&listed.get_output().stdout).to_string();
    assert!(
        listed.contains("prompt states on disk: 1 files"),
        "{listed}"
    );
    hearth(home.path())
        .args(["cache", "remove", "--kv"])
        .assert()
        .success()
        .stdout(predicates::str::contains("removed 1 prompt states"));
    assert!(kv_files(home.path()).is_empty());
}

#[test]
fn warm_prompts_are_computed_at_load_and_on_request() {
    let home = common::home_with_model();
    let _turn = common::turn();
    // The catalog entry's warm prompt: computed while the model loads, before any request.
    let models = serde_json::json!({"smollm2-135m": {
        "path": common::model_path(),
        "warm_prompts": [document()],
    }});
    std::fs::write(home.path().join("models.json"), models.to_string()).unwrap();
    let args = [
        "--parallel",
        "1",
        "--ctx",
        "2048",
        "--models",
        "smollm2-135m",
    ];
    let (child, addr) = common::spawn_serve(home.path(), &args);
    let (_, prompt_tokens, cached) = ask(&addr);
    assert!(cached > 400, "{cached} of {prompt_tokens} found ready");
    stop(child);

    // `POST /api/cache/warm` on a model without warm prompts, and its refusals.
    let models = serde_json::json!({"smollm2-135m": {"path": common::model_path()}});
    std::fs::write(home.path().join("models.json"), models.to_string()).unwrap();
    hearth(home.path())
        .args(["cache", "remove", "--kv"])
        .assert()
        .success();
    let (child, addr) = common::spawn_serve(home.path(), &args);
    let body = serde_json::json!({"model": "smollm2-135m", "system": document()}).to_string();
    let warmed = common::http(&addr, "POST", "/api/cache/warm", Some(&body));
    assert!(warmed.starts_with("HTTP/1.1 200"), "{warmed}");
    let warmed: serde_json::Value =
        serde_json::from_str(warmed.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let computed = warmed["prompt_tokens"].as_u64().unwrap();
    assert!(computed > 400, "{warmed}");
    let (_, _, cached) = ask(&addr);
    assert!(cached + 16 >= computed, "{cached} of the {computed} warmed");
    for bad in [
        serde_json::json!({"model": "smollm2-135m"}),
        serde_json::json!({"model": "smollm2-135m", "system": "a", "prompt": "b"}),
    ] {
        let answer = common::http(&addr, "POST", "/api/cache/warm", Some(&bad.to_string()));
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    let unknown = serde_json::json!({"model": "no-such-model", "system": "a"}).to_string();
    let answer = common::http(&addr, "POST", "/api/cache/warm", Some(&unknown));
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    stop(child);
}
