//! Shape models as llama.cpp meets them: the default model's twin and small shapes of every
//! architecture hearth writes (from checked-in config.json samples) load in llama.cpp and
//! decode, the same way twice; and the CLI marks them as random weights everywhere.

use crate::common;
use crate::common::hearth;

use std::path::{Path, PathBuf};

use hearth::cache::Cache;
use hearth::cache::MakeObserver;
use hearth::catalog::Catalog;
use hearth::engine::llama::{EngineOptions, LlamaEngine};
use hearth::engine::speculative::Speculative;
use hearth::engine::{ChatMessage, FinishReason, GenerateRequest, Prompt, SamplingParams};
use hearth::synth::{self, ShapeSource, SynthRequest};

struct Quiet;

impl MakeObserver for Quiet {
    fn notice(&self, _line: &str) {}
    fn writing(&self, _variant: &str, _written: u64, _expected: u64) {}
    fn written(&self) {}
}

fn make(home: &Path, source: ShapeSource, ty: Option<&str>) -> PathBuf {
    let cache = Cache::new(home);
    let alias = synth::make(
        &Catalog::builtin(),
        &cache,
        &home.join("models.json"),
        &SynthRequest {
            source,
            ty: ty.map(Into::into),
            seed: synth::DEFAULT_SEED,
            memory: None,
        },
        &Quiet,
    )
    .unwrap();
    cache.lookup(&alias).unwrap().path
}

fn sample(name: &str) -> ShapeSource {
    ShapeSource::Config {
        path: Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/shapes/{name}.json")),
        name: format!("tiny-{name}"),
    }
}

/// Loads `path` and greedily decodes `n` tokens (no stop at EOS) from a chat prompt and a raw
/// prompt; returns the texts.
fn decode(path: &Path, n: u32) -> Vec<String> {
    let engine = LlamaEngine::load(
        path,
        "shape",
        EngineOptions {
            threads: 2,
            n_ctx: 512,
            parallel: 1,
            speculative: Speculative::Off,
            ..EngineOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
    let prompts = [
        Prompt::Chat(vec![ChatMessage::new(
            "user",
            "Summarise the plot of Hamlet.",
        )]),
        Prompt::Text("The quick brown fox jumps over the lazy dog, and then".into()),
    ];
    prompts
        .into_iter()
        .map(|prompt| {
            let (text, done) = common::engine::run(
                &engine,
                GenerateRequest {
                    prompt,
                    sampling: SamplingParams {
                        max_tokens: Some(n),
                        ignore_eos: true,
                        ..SamplingParams::default()
                    },
                    tools: None,
                },
            );
            assert_eq!(done.usage.completion_tokens, n as usize);
            assert_eq!(done.finish_reason, FinishReason::Length);
            assert!(done.usage.prompt_tokens > 5);
            text
        })
        .collect()
}

#[test]
fn the_default_models_twin_loads_and_decodes_repeatably() {
    let home = tempfile::tempdir().unwrap();
    let path = make(
        home.path(),
        ShapeSource::Catalog("smollm2-135m".into()),
        None,
    );
    let first = decode(&path, 16);
    assert_eq!(first, decode(&path, 16), "greedy decoding is deterministic");
}

#[test]
fn every_architecture_loads_and_decodes() {
    let home = tempfile::tempdir().unwrap();
    for (name, ty) in [
        ("phi3", "Q4_K_M"),
        ("qwen2", "Q4_K_M"),
        ("qwen3", "Q8_0"),
        ("gemma2", "Q4_K_M"),
        ("gemma3", "Q5_K_M"),
        ("mixtral", "Q4_0"),
    ] {
        let path = make(home.path(), sample(name), Some(ty));
        let info = hearth::gguf::read(&path).unwrap();
        assert_eq!(info.quantization.as_deref(), Some(ty), "{name}");
        let texts = decode(&path, 8);
        assert_eq!(texts, decode(&path, 8), "{name} decodes the same twice");
    }
}

#[test]
fn the_cli_makes_shape_models_and_refuses_bad_input_in_one_line() {
    let home = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/smollm2-135m-config.json");
    let out = hearth(home.path())
        .args(["model", "synth", "--from-config"])
        .arg(&config)
        .args(["--name", "my-smollm", "--type", "q8_0"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(String::from_utf8_lossy(&out).trim(), "my-smollm~shape");
    let fails = |args: &[&str], needle: &str| {
        let out = hearth(home.path()).args(args).assert().failure();
        let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(err.trim().lines().count() <= 2, "{args:?}: {err}");
    };
    fails(&["model", "synth", "no-such-model"], "unknown model");
    fails(
        &["model", "synth", "smollm2-135m", "--type", "q7"],
        "not a quantisation hearth can synthesise",
    );
    let broken = home.path().join("broken.json");
    std::fs::write(&broken, "{\"model_type\": \"llama\"").unwrap();
    fails(
        &[
            "model",
            "synth",
            "--from-config",
            broken.to_str().unwrap(),
            "--name",
            "b",
        ],
        "not a usable config.json",
    );
    let out = hearth(home.path())
        .env("HEARTH_MEMORY_LIMIT_MB", "1000")
        .args(["model", "synth", "mistral-7b"])
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("would need about"), "{err}");
    let listed = Cache::new(home.path()).list().unwrap();
    assert_eq!(listed.len(), 1, "only the good one is cached: {listed:?}");
}

#[test]
fn a_bench_makes_a_named_shape_model_and_reports_it_as_speed_only() {
    let home = common::home_with_model();
    let out = home.path().join("out");
    let run = hearth(home.path())
        .args([
            "bench",
            "--models",
            "smollm2-135m,smollm2-135m~shape",
            "--rounds",
            "1",
            "--warmup",
            "0",
            "--max-tokens",
            "8",
            "--requests",
            "3",
            // Every column: the fitted table wraps the quality cells.
            "--wide",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&run.get_output().stdout).to_string();
    assert!(stdout.contains("n/a — random weights"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let level = report["levels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["model"] == "smollm2-135m~shape")
        .expect("the shape model was made and measured");
    // Every request ran to max_tokens (end-of-text ignored), without drafts.
    assert_eq!(level["completed"], 3);
    assert_eq!(level["total_output_tokens"], 24);
    assert_eq!(level["quality"]["checks_total"], 0);
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("SPEED ONLY: smollm2-135m~shape"),
        "{warnings}"
    );
    assert_ne!(report["recommendation"]["pick"], "smollm2-135m~shape");
    assert!(report["recommendation"]["explanation"]
        .as_str()
        .unwrap()
        .contains("hearth model download smollm2-135m"));
}
