//! `hearth model run`: one prompt streamed to stdout (or one JSON object), or an interactive
//! chat that keeps the conversation, with the engine's timings after each answer.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::Args;
use hearth::cache::BarProgress;
use hearth::engine::speculative::Speculative;
use hearth::engine::{
    Backend, ChatMessage, Completion, Event, EventStream, GenerateRequest, Prompt, SamplingParams,
};
use hearth::loader::{self, LoadOptions};
use hearth::profiles::Profile;

use super::shared::{runtime, OffloadArgs};
use super::Context;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Model alias (default: the `default_model` setting).
    alias: Option<String>,
    /// The prompt; without it, start an interactive chat.
    #[arg(long, short)]
    prompt: Option<String>,
    /// System message placed before the conversation.
    #[arg(long)]
    system: Option<String>,
    /// Sampling temperature; 0 is greedy and deterministic.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Top-k cut-off (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: i32,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 512)]
    max_tokens: u32,
    /// Random seed for sampling.
    #[arg(long)]
    seed: Option<u32>,
    /// Stop when this string appears (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// CPU threads (default: the `threads` setting).
    #[arg(long)]
    threads: Option<u32>,
    /// Context length in tokens (default: the `ctx` setting, capped at the model's).
    #[arg(long)]
    ctx: Option<u32>,
    /// Print one JSON object (text, usage, timings) instead of streaming.
    #[arg(long)]
    json: bool,
    /// Constrain the answer to JSON valid against the JSON Schema in FILE (the same grammar
    /// path as the server's `response_format`).
    #[arg(long, value_name = "FILE")]
    json_schema: Option<PathBuf>,
    #[command(flatten)]
    offload: OffloadArgs,
    /// Speculative decoding: `ngram` drafts tokens from the text's own n-grams, `off` decodes
    /// one token per step (default: the `speculative` setting, else ngram).
    #[arg(long, value_name = "off|ngram")]
    speculative: Option<Speculative>,
    #[command(flatten)]
    compute: super::shared::ComputeArgs,
}

pub fn run_model(ctx: &Context, args: RunArgs) -> Result<ExitCode> {
    let catalog = ctx.catalog()?;
    let alias = args
        .alias
        .clone()
        .unwrap_or_else(|| ctx.settings.default_model.value.clone());
    let entry = catalog.get(&alias)?;
    let rt = runtime()?;
    if loader::local_path(&ctx.cache, entry).is_none() && entry.upstream.is_none() {
        eprintln!("{alias} is not cached; downloading");
        rt.block_on(loader::ensure_local(&ctx.cache, entry, &BarProgress::new()))?;
    }
    let (n_ctx, auto_ctx) = ctx.settings.context(args.ctx);
    let options = LoadOptions {
        threads: ctx.settings.threads.or_flag(args.threads),
        n_ctx,
        parallel: 1,
        auto_parallel: false,
        auto_ctx,
        queue_capacity: 4,
        memory_budget: ctx.memory_budget(),
        offload: args.offload.resolve(ctx)?,
        speculative: ctx.settings.speculative.or_flag(args.speculative),
        compute: args.compute.resolve(&ctx.settings)?,
        // One conversation: one slot, whatever a profile says.
        flags: Profile {
            parallel: Some(1),
            ctx: args.ctx,
            speculative: args.speculative,
            threads: args.threads,
            gpu_layers: args.offload.given(),
            ..args.compute.as_profile()
        },
        profiles: ctx.profiles()?,
        prompt_cache_disk_bytes: ctx.settings.prompt_cache_disk.value,
    };
    let engine = loader::open(&catalog, &ctx.cache, entry, &options, rt.handle().clone())?.backend;
    let engine = engine.as_ref();
    let response_format = match &args.json_schema {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the JSON schema {}", path.display()))?;
            let schema: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            let name = path
                .file_stem()
                .map_or("schema".into(), |s| s.to_string_lossy().into_owned());
            Some(serde_json::json!({"type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": true}}))
        }
    };
    let sampling = SamplingParams {
        response_format,
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        seed: args.seed,
        max_tokens: Some(args.max_tokens),
        stop: args.stop.clone(),
        ignore_eos: false,
    };
    let mut history: Vec<ChatMessage> = args
        .system
        .iter()
        .map(|s| ChatMessage::new("system", s.clone()))
        .collect();
    if let Some(prompt) = &args.prompt {
        history.push(ChatMessage::new("user", prompt.clone()));
        let stream = engine.generate(GenerateRequest {
            prompt: Prompt::Chat(history),
            sampling,
            tools: None,
        })?;
        if args.json {
            let (text, done) = rt.block_on(stream.collect_text())?;
            let value = serde_json::json!({
                "model": entry.alias,
                "text": text,
                "usage": done.usage,
                "timings": done.timings,
                "finish_reason": done.finish_reason,
                "load_ms": engine.facts().load_ms,
            });
            outln!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            let (_, done) = rt.block_on(print_stream(stream))?;
            eprintln!("{}", timings_line(&done, engine.facts().load_ms));
        }
        return Ok(ExitCode::SUCCESS);
    }
    chat(&rt, engine, history, sampling)
}

/// Streams text to stdout as it arrives; returns the whole text and the summary.
async fn print_stream(mut stream: EventStream) -> Result<(String, Completion)> {
    let mut out = std::io::stdout().lock();
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        match event {
            Event::Token(piece) => {
                out.write_all(piece.as_bytes())?;
                out.flush()?;
                text.push_str(&piece);
            }
            Event::Done(done) => {
                writeln!(out)?;
                return Ok((text, done));
            }
            Event::Error(e) => return Err(e.into()),
        }
    }
    bail!("the engine stopped without finishing the answer")
}

fn timings_line(done: &Completion, load_ms: f64) -> String {
    let t = &done.timings;
    let drafts = if t.draft_n > 0 {
        format!(
            " | drafted {} tok, {} accepted ({:.0}%)",
            t.draft_n,
            t.draft_n_accepted,
            100.0 * t.draft_n_accepted as f64 / t.draft_n as f64
        )
    } else {
        String::new()
    };
    format!(
        "[prompt {} tok{} at {:.1} tok/s | first token {:.0} ms | output {} tok at {:.1} tok/s{drafts} | load {:.0} ms | {:?}]",
        done.usage.prompt_tokens,
        match done.usage.cached_prompt_tokens {
            0 => String::new(),
            cached => format!(" ({cached} from the cache)"),
        },
        t.prompt_per_second,
        t.ttft_ms,
        done.usage.completion_tokens,
        t.decode_per_second,
        load_ms,
        done.finish_reason
    )
}

/// Interactive chat that keeps the conversation; `/bye` or end of input leaves, `/clear` forgets.
fn chat(
    rt: &tokio::runtime::Runtime,
    engine: &dyn Backend,
    mut history: Vec<ChatMessage>,
    sampling: SamplingParams,
) -> Result<ExitCode> {
    let base = history.clone();
    eprintln!(
        "chatting with {} (/bye to leave, /clear to forget the conversation)",
        engine.facts().alias
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        eprint!(">>> ");
        std::io::stderr().flush()?;
        let Some(line) = lines.next() else { break };
        let line = line?;
        let line = line.trim();
        match line {
            "" => continue,
            "/bye" | "/exit" | "/quit" => break,
            "/clear" => {
                history = base.clone();
                continue;
            }
            _ => {}
        }
        history.push(ChatMessage::new("user", line));
        let stream = match engine.generate(GenerateRequest {
            prompt: Prompt::Chat(history.clone()),
            sampling: sampling.clone(),
            tools: None,
        }) {
            Ok(s) => s,
            Err(e) => {
                // Keep the session alive: an over-long conversation can be cleared.
                eprintln!("error: {e}");
                history.pop();
                continue;
            }
        };
        let (text, done) = rt.block_on(print_stream(stream))?;
        eprintln!("{}", timings_line(&done, engine.facts().load_ms));
        history.push(ChatMessage::new("assistant", text));
    }
    Ok(ExitCode::SUCCESS)
}
