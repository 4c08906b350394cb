//! Engine throughput in llama-bench's terms: `pp512` (prompt processing of exactly 512 tokens)
//! and `tg128` (decoding 128 tokens), in tokens per second, measured through the public engine
//! API so every cost a request pays in hearth is included.
//!
//! Not a test: run it with `cargo bench --bench engine`, or through
//! `perf/engine-vs-llama-bench.sh`, which puts the figures next to llama.cpp's own
//! `llama-bench`.
//!
//! Both tests run with speculation off (`Speculative::Off`): llama-bench decodes one token per
//! sequence and step, and n-gram drafts accepted from a text's own repetitions would time the
//! text, not the kernels (with drafts on, tg128 once read 220.5 t/s against llama-bench's 91.9).
//! A repetition that drafted anyway is refused, and the JSON says how many tokens were drafted
//! (`tg128_draft_tokens_max`, 0) so a caller can refuse the result too. With `BENCH_TG_DRAFTS=1`
//! a second engine, loaded with the default n-gram drafts, runs tg128 once more; that figure
//! (`tg128_drafts_on`) is what a request to `hearth serve` gets by default, not a kernel
//! comparison.
//!
//! Environment:
//! * `HEARTH_BENCH_MODEL`   the GGUF to load (required)
//! * `HEARTH_BENCH_THREADS` CPU threads (default 2)
//! * `BENCH_REPS`           measured repetitions per test, after one warm-up (default 5)
//! * `BENCH_TG_DRAFTS`      1 = also run tg128 with n-gram drafts on (default 0)
//!
//! stdout: one JSON line `{"pp512": {"mean", "stddev", "samples"}, "tg128": {..}, "threads",
//! "speculative": "off", "pp512_cached_tokens_max", "tg128_draft_tokens_max", "peak_rss_bytes",
//! "n_ctx", "tg128_drafts_on": null or {"mean", "stddev", "samples", "draft_tokens",
//! "draft_accepted"}}` (`peak_rss_bytes` is measured before the drafts-on engine loads);
//! stderr: the same in words.

use std::path::PathBuf;
use std::process::ExitCode;

use hearth::engine::llama::{EngineOptions, LlamaEngine};
use hearth::engine::speculative::Speculative;
use hearth::engine::{Backend, Completion, Event, GenerateRequest, Prompt, SamplingParams};

/// Tokens in the prompt-processing test (llama-bench `-p 512`).
const PP_TOKENS: usize = 512;
/// Tokens generated in the decode test (llama-bench `-n 128`).
const TG_TOKENS: u32 = 128;
/// Room for the 512-token prompt plus its one generated token. llama.cpp pads the context to
/// a multiple of 256 and attends over at least 256 cells, so for both tests the attention
/// spans exactly what llama-bench's contexts (512 and 128 tokens) span.
const N_CTX: u32 = 1024;

const FILLER: &str = "The quick brown fox jumps over the lazy dog while the sun sets behind \
the hills. A small village wakes up slowly: bakers light their ovens, children run to school, \
and the old clock in the square strikes seven. Numbers like 3.14159, 2718 and 1024 appear in \
the notebook of a curious student who studies mathematics, history and music. ";

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a valid number")),
        _ => Ok(default),
    }
}

/// Runs one request to the end and returns its summary.
fn run(engine: &LlamaEngine, prompt: &str, max_tokens: u32) -> Result<Completion, String> {
    let request = GenerateRequest {
        prompt: Prompt::Text(prompt.to_string()),
        sampling: SamplingParams {
            max_tokens: Some(max_tokens),
            ignore_eos: true,
            ..Default::default()
        },
        tools: None,
    };
    let mut stream = engine.generate(request).map_err(|e| e.to_string())?;
    while let Some(event) = stream.blocking_next() {
        match event {
            Event::Token(_) => {}
            Event::Done(completion) => return Ok(completion),
            Event::Error(e) => return Err(e.to_string()),
        }
    }
    Err("the stream ended without a summary".into())
}

/// First words of the pp512 prompts: every repetition starts differently, so the engine's
/// prompt-prefix reuse cannot serve one repetition from the KV cache of the one before (it
/// did: pp512 read 39,381 t/s, 124x llama-bench, when one prompt was repeated).
const OPENERS: [&str; 12] = [
    "Apples", "Rivers", "Engines", "Violins", "Glaciers", "Lanterns", "Meadows", "Harbors",
    "Comets", "Deserts", "Orchids", "Bridges",
];

/// A text prompt that tokenizes (BOS included) to exactly `n` tokens, starting with `opener`.
fn exact_prompt(engine: &LlamaEngine, n: usize, opener: &str) -> Result<String, String> {
    let count = |text: &str| {
        engine
            .prompt_tokens(&Prompt::Text(text.to_string()))
            .map(|t| t.len())
            .map_err(|e| e.to_string())
    };
    let mut text = format!("{opener} ");
    while count(&text).unwrap_or(0) <= n {
        text.push_str(FILLER);
    }
    // Trim from the end, one character at a time, until the count is exact. Dropping the last
    // character shortens or removes only the last token for plain text like the filler, so
    // the count falls one step at a time and meets `n` on the way down.
    let mut cut = text.len();
    loop {
        let tokens = count(&text[..cut])?;
        if tokens == n {
            return Ok(text[..cut].to_string());
        }
        if tokens < n || cut == 0 {
            return Err(format!(
                "could not build a prompt of exactly {n} tokens (got {tokens} at {cut} bytes)"
            ));
        }
        cut = text[..cut].char_indices().last().map_or(0, |(i, _)| i);
    }
}

struct Summary {
    mean: f64,
    stddev: f64,
    samples: Vec<f64>,
}

/// Mean and sample standard deviation, as llama-bench reports them.
fn summarize(samples: Vec<f64>) -> Summary {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let stddev = if samples.len() > 1 {
        (samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Summary {
        mean,
        stddev,
        samples,
    }
}

fn bench() -> Result<(), String> {
    let model = std::env::var_os("HEARTH_BENCH_MODEL")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or(
            "HEARTH_BENCH_MODEL is not set; point it at a GGUF file \
             (the default model: HEARTH_BENCH_MODEL=$(scripts/setup.sh | tail -n1))",
        )?;
    if !model.is_file() {
        return Err(format!(
            "HEARTH_BENCH_MODEL={} is not a file",
            model.display()
        ));
    }
    let threads: u32 = env_number("HEARTH_BENCH_THREADS", 2)?;
    let reps: usize = env_number("BENCH_REPS", 5)?;
    if threads == 0 || reps == 0 {
        return Err("HEARTH_BENCH_THREADS and BENCH_REPS must be at least 1".into());
    }
    let drafts_on = match env_number::<u8>("BENCH_TG_DRAFTS", 0)? {
        0 => false,
        1 => true,
        n => return Err(format!("BENCH_TG_DRAFTS={n}: use 0 or 1")),
    };

    // Speculation off: tg128 is llama-bench's one token per step, and drafts accepted from
    // a text's own n-grams would time the text, not the model (a shape model's noise loops).
    let options = EngineOptions {
        threads,
        n_ctx: N_CTX,
        parallel: 1,
        speculative: Speculative::Off,
        ..Default::default()
    };
    let engine = LlamaEngine::load(&model, "bench", options.clone()).map_err(|e| e.to_string())?;
    eprintln!(
        "engine: {} loaded in {:.0} ms, {threads} threads, {reps} reps after one warm-up",
        model.display(),
        engine.facts().load_ms
    );

    // pp512: one request whose prompt is exactly 512 tokens, generating one token; the rate is
    // prompt tokens over the prefill time (admission to first sampled token). Each repetition
    // has a prompt of its own; a prompt served from the cache is refused, not measured.
    let mut pp = Vec::with_capacity(reps);
    let mut cached_max = 0;
    for rep in 0..=reps {
        let pp_prompt = exact_prompt(&engine, PP_TOKENS, OPENERS[rep % OPENERS.len()])?;
        let c = run(&engine, &pp_prompt, 1)?;
        if c.usage.prompt_tokens != PP_TOKENS {
            return Err(format!("pp512 prompt had {} tokens", c.usage.prompt_tokens));
        }
        // Only the BOS token may be shared with the previous prompt.
        cached_max = cached_max.max(c.usage.cached_prompt_tokens);
        if c.usage.cached_prompt_tokens > 1 {
            return Err(format!(
                "pp512 repetition {rep} took {} prompt tokens from the cache; that would time a cache hit, not prefill",
                c.usage.cached_prompt_tokens
            ));
        }
        let processed = c.usage.prompt_tokens - c.usage.cached_prompt_tokens;
        let rate = processed as f64 * 1000.0 / c.timings.prompt_ms;
        if rep > 0 {
            pp.push(rate);
        }
    }

    let tg = tg128(&engine, reps, false)?;
    let tg_draft_max = tg.draft_max;
    let tg = summarize(tg.rates);
    let pp = summarize(pp);
    let peak_rss = peak_rss_bytes();
    eprintln!("pp512: {:8.1} ± {:6.1} tokens/s", pp.mean, pp.stddev);
    eprintln!("tg128: {:8.1} ± {:6.1} tokens/s", tg.mean, tg.stddev);
    drop(engine);

    // The same decode test with the default n-gram drafts: what `hearth serve` gives such a
    // request, reported apart from the kernel comparison.
    let drafted = if drafts_on {
        let options = EngineOptions {
            speculative: Speculative::Ngram,
            ..options
        };
        let engine = LlamaEngine::load(&model, "bench", options).map_err(|e| e.to_string())?;
        let t = tg128(&engine, reps, true)?;
        let s = summarize(t.rates);
        eprintln!(
            "tg128, n-gram drafts on (not a kernel comparison): {:8.1} ± {:6.1} tokens/s, \
             {} drafted, {} accepted",
            s.mean, s.stddev, t.drafted, t.accepted
        );
        Some(serde_json::json!({
            "mean": s.mean, "stddev": s.stddev, "samples": s.samples,
            "draft_tokens": t.drafted, "draft_accepted": t.accepted,
        }))
    } else {
        None
    };

    let json = |s: &Summary| serde_json::json!({ "mean": s.mean, "stddev": s.stddev, "samples": s.samples });
    println!(
        "{}",
        serde_json::json!({
            "pp512": json(&pp), "tg128": json(&tg), "threads": threads,
            "speculative": Speculative::Off.to_string(),
            "pp512_cached_tokens_max": cached_max,
            "tg128_draft_tokens_max": tg_draft_max,
            "peak_rss_bytes": peak_rss,
            "n_ctx": N_CTX,
            "tg128_drafts_on": drafted,
        })
    );
    Ok(())
}

/// What the tg128 repetitions measured.
struct Decode {
    /// Decode tokens per second of each measured repetition.
    rates: Vec<f64>,
    /// Most tokens one repetition drafted (warm-up included).
    draft_max: usize,
    /// Drafted and accepted tokens of the measured repetitions.
    drafted: usize,
    accepted: usize,
}

/// tg128: a short prompt, 128 tokens with end-of-generation ignored; the rate is the 127
/// tokens after the first over the time from first to last (prefill excluded). Unless
/// `allow_drafts`, a repetition that drafted a token is refused.
fn tg128(engine: &LlamaEngine, reps: usize, allow_drafts: bool) -> Result<Decode, String> {
    let mut d = Decode {
        rates: Vec::with_capacity(reps),
        draft_max: 0,
        drafted: 0,
        accepted: 0,
    };
    for rep in 0..=reps {
        let c = run(engine, "Once upon a time", TG_TOKENS)?;
        if c.usage.completion_tokens != TG_TOKENS as usize {
            return Err(format!(
                "tg128 generated {} tokens, not {TG_TOKENS}",
                c.usage.completion_tokens
            ));
        }
        d.draft_max = d.draft_max.max(c.timings.draft_n);
        if !allow_drafts && c.timings.draft_n > 0 {
            return Err(format!(
                "tg128 repetition {rep} decoded {} drafted tokens; that would time speculation, not decoding",
                c.timings.draft_n
            ));
        }
        if rep > 0 {
            d.rates.push(c.timings.decode_per_second);
            d.drafted += c.timings.draft_n;
            d.accepted += c.timings.draft_n_accepted;
        }
    }
    Ok(d)
}

/// This process's peak resident memory (`VmHWM`, Linux): the model's weights, KV cache and
/// buffers after both tests; `None` where /proc is not there.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn main() -> ExitCode {
    match bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}
