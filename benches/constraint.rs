//! What structured output costs before the first token: building the vocabulary's token trie
//! (once per model) and compiling each schema of a prompt set (once per new schema; hearth
//! caches compiled ones), through the engine's own compiler (`engine::constraint`).
//!
//! Not a test: run it with `cargo bench --bench constraint`, or through `perf/structured.sh`,
//! which checks the compile p99 goal (< 50 ms) beside the decode-speed ratios.
//!
//! Environment:
//! * `HEARTH_BENCH_MODEL`  the GGUF whose vocabulary the schemas compile against (required)
//! * `BENCH_PROMPT_SET`    a hearth prompt set whose `response_format`s are compiled (default
//!   the built-in `structured` set)
//! * `BENCH_REPS`          compiles per schema (default 20)
//!
//! stdout: one JSON line `{"vocab", "trie_ms", "schemas", "samples", "compile_ms": {"p50",
//! "p99", "max", "mean"}}`; stderr: the same in words.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use hearth::bench::prompts;
use hearth::engine::constraint::Grammar;
use hearth::engine::llama::{EngineOptions, LlamaEngine};
use hearth::engine::structured::response_format_constraint;

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn run() -> Result<(), String> {
    let model = std::env::var("HEARTH_BENCH_MODEL")
        .map(PathBuf::from)
        .map_err(|_| "HEARTH_BENCH_MODEL (a GGUF path) is required".to_string())?;
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let set = match std::env::var("BENCH_PROMPT_SET") {
        Ok(path) => prompts::load(std::path::Path::new(&path)).map_err(|e| e.to_string())?,
        Err(_) => prompts::builtin("structured").expect("the built-in structured set"),
    };
    let grammars: Vec<Grammar> = set
        .iter()
        .filter_map(|p| p.response_format.as_ref())
        .map(|f| response_format_constraint(f).map_err(|e| e.0))
        .filter_map(Result::transpose)
        .collect::<Result<_, _>>()?;
    if grammars.is_empty() {
        return Err("the prompt set has no response_format to compile".into());
    }
    let options = EngineOptions {
        n_ctx: 256,
        parallel: 1,
        ..EngineOptions::default()
    };
    let engine = LlamaEngine::load(&model, "bench", options).map_err(|e| e.to_string())?;
    let compiler = engine.constraint_compiler();
    // The trie is built in the background from load; waiting for it times what is left.
    let started = Instant::now();
    compiler.ready().map_err(|e| e.0)?;
    let trie_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut samples = Vec::new();
    for _ in 0..reps {
        for grammar in &grammars {
            let started = Instant::now();
            compiler.compile_uncached(grammar).map_err(|e| e.0)?;
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let (p50, p99, max) = (
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
    );
    eprintln!(
        "constraint: {} schemas x {reps}: compile p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms; token trie ready {trie_ms:.0} ms after load returned",
        grammars.len()
    );
    println!(
        "{}",
        serde_json::json!({
            "model": model.display().to_string(),
            "trie_ms": trie_ms,
            "schemas": grammars.len(),
            "samples": samples.len(),
            "compile_ms": {"p50": p50, "p99": p99, "max": max, "mean": mean},
        })
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("constraint: {e}");
            ExitCode::FAILURE
        }
    }
}
