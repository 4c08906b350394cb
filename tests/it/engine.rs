//! The llama.cpp engine on the real default model: determinism, limits, stop strings, token
//! counts, batch invariance, cancellation and clear errors.

use crate::common;

use std::thread;

use common::engine::{drain, run};
use hearth::engine::llama::{EngineOptions, LlamaEngine};
use hearth::engine::speculative::Speculative;
use hearth::engine::{
    Backend, ChatMessage, EngineError, Event, EventStream, FinishReason, GenerateRequest, Prompt,
    SamplingParams,
};

/// Drafting off: these tests are not about drafts, and what the drafter proposes (from
/// measured step costs and earlier answers) changes the batch shapes between otherwise
/// identical requests; `speculative.rs` turns it on where drafts are what is tested.
fn engine(parallel: u32, n_ctx: u32) -> LlamaEngine {
    common::engine::load(parallel, n_ctx, Speculative::Off)
}

fn chat(text: &str, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        prompt: Prompt::Chat(vec![ChatMessage::new("user", text)]),
        sampling: SamplingParams {
            max_tokens: Some(max_tokens),
            ..SamplingParams::default()
        },
        tools: None,
    }
}

#[test]
fn greedy_generation_is_non_empty_and_repeatable() {
    let engine = engine(1, 1024);
    let request = chat("Name three colours of the rainbow.", 48);
    // The first answer prefills the whole prompt; the later ones reuse all but its last token
    // from the prompt cache, a different batch shape (llama.cpp's numerics differ between
    // shapes). The two answers served the same way are compared.
    let (first, done) = run(&engine, request.clone());
    let (second, _) = run(&engine, request.clone());
    let (third, _) = run(&engine, request);
    assert!(!first.trim().is_empty());
    assert_eq!(second, third, "temperature 0 must give the same text");
    assert!(done.usage.completion_tokens > 0);
    assert!(
        done.usage.prompt_tokens > 10,
        "chat template adds a system prompt"
    );
    assert!(done.timings.ttft_ms > 0.0 && done.timings.decode_per_second > 0.0);
}

#[test]
fn a_repeated_prompt_prefix_is_not_computed_again() {
    let engine = engine(1, 1024);
    let (_, first) = run(&engine, chat("Name three colours of the rainbow.", 8));
    assert_eq!(
        first.usage.cached_prompt_tokens, 0,
        "a fresh engine has nothing cached"
    );
    let (_, same) = run(&engine, chat("Name three colours of the rainbow.", 8));
    // Everything but the last prompt token (whose logits pick the first answer token).
    assert_eq!(
        same.usage.cached_prompt_tokens,
        same.usage.prompt_tokens - 1
    );
    let (_, other) = run(&engine, chat("What is the capital of France?", 8));
    // A different question still shares the chat template's preamble.
    assert!(other.usage.cached_prompt_tokens > 10, "{:?}", other.usage);
    assert!(other.usage.cached_prompt_tokens < other.usage.prompt_tokens - 5);
}

#[test]
fn the_next_turn_of_a_chat_reuses_the_previous_answer_too() {
    let engine = engine(1, 1024);
    let question = ChatMessage::new("user", "Name three colours of the rainbow.");
    let (answer, first) = run(
        &engine,
        GenerateRequest {
            prompt: Prompt::Chat(vec![question.clone()]),
            ..chat("", 32)
        },
    );
    assert!(first.usage.completion_tokens >= 8, "{answer:?}");
    let history = vec![
        question,
        ChatMessage::new("assistant", answer.trim()),
        ChatMessage::new("user", "And three more?"),
    ];
    let (_, second) = run(
        &engine,
        GenerateRequest {
            prompt: Prompt::Chat(history),
            ..chat("", 8)
        },
    );
    // The previous prompt and (up to how the template re-renders it) the previous answer.
    let reused = second.usage.cached_prompt_tokens;
    assert!(
        reused > first.usage.prompt_tokens + first.usage.completion_tokens / 2,
        "reused {reused} of a history of {} prompt + {} answer tokens",
        first.usage.prompt_tokens,
        first.usage.completion_tokens
    );
    assert!(reused < second.usage.prompt_tokens);
}

#[test]
fn a_prompt_finds_its_prefix_after_its_sequence_served_another() {
    let engine = engine(2, 1024);
    // A prompt the model is sure of: its answer is computed from a whole-prompt prefill at
    // first and from a restored prefix plus a one-token batch later, and llama.cpp's numerics
    // differ between those batch shapes (an answer with a near-tie could flip).
    let a = chat(common::CONFIDENT[1], 16);
    let b = chat(
        "List three yellow fruits and say why each one is yellow.",
        16,
    );
    // One at a time, everything runs on the lowest sequence: B replaces A there, so A's
    // state comes back from the prompt cache.
    let (a_text, a_first) = run(&engine, a.clone());
    run(&engine, b.clone());
    let (again_text, again) = run(&engine, a.clone());
    assert_eq!(
        again.usage.cached_prompt_tokens,
        again.usage.prompt_tokens - 1
    );
    assert!(a_first.usage.cached_prompt_tokens < a_first.usage.prompt_tokens / 2);
    assert_eq!(
        again_text, a_text,
        "a restored prefix answers as a computed one"
    );
    // Two at once: B runs on the second sequence and stays there; alone again, B starts on
    // the first sequence and finds its prefix on the second.
    let streams = [
        engine.generate(a).unwrap(),
        engine.generate(b.clone()).unwrap(),
    ];
    for stream in streams {
        drain(stream).unwrap();
    }
    let (_, b_again) = run(&engine, b);
    assert_eq!(
        b_again.usage.cached_prompt_tokens,
        b_again.usage.prompt_tokens - 1
    );
}

#[test]
fn seeded_sampling_is_repeatable_and_differs_from_greedy_somewhere() {
    let engine = engine(1, 1024);
    let sampled = |seed| {
        let mut r = chat("Tell me a story about a fox.", 40);
        r.sampling.temperature = 1.2;
        r.sampling.top_p = 0.95;
        r.sampling.seed = Some(seed);
        run(&engine, r).0
    };
    // A warm-up first: the first request prefills the whole prompt, later ones reuse it from
    // the prompt cache (another batch shape); the two compared are served the same way.
    sampled(7);
    assert_eq!(sampled(7), sampled(7), "same seed, same text");
    let greedy = run(&engine, chat("Tell me a story about a fox.", 40)).0;
    assert!(
        [7, 8, 9].iter().any(|&s| sampled(s) != greedy),
        "temperature 1.2 never left the greedy path"
    );
}

#[test]
fn max_tokens_is_respected_and_counts_match_the_text() {
    let engine = engine(1, 1024);
    let (text, done) = run(&engine, chat("Write a long story about a dragon.", 7));
    assert_eq!(done.usage.completion_tokens, 7);
    assert_eq!(done.finish_reason, FinishReason::Length);
    let retokenized = engine.tokenize(&text).unwrap().len();
    assert!(
        retokenized.abs_diff(7) <= 1,
        "7 generated tokens re-tokenize to {retokenized}: {text:?}"
    );
    let prompt = engine
        .prompt_tokens(&Prompt::Chat(vec![ChatMessage::new(
            "user",
            "Write a long story about a dragon.",
        )]))
        .unwrap();
    assert_eq!(done.usage.prompt_tokens, prompt.len());
}

#[test]
fn stop_string_ends_generation_before_it() {
    let engine = engine(1, 1024);
    let request = chat("Write a long story about a dragon.", 64);
    // A warm-up first, so that both answers compared reuse the prompt from the prompt cache
    // (a cold prefill is another batch shape, whose greedy text may differ).
    run(&engine, request.clone());
    let (full, _) = run(&engine, request.clone());
    // Pick a word from the middle of the greedy answer as the stop string.
    let words: Vec<&str> = full.split_whitespace().collect();
    assert!(words.len() > 6, "answer too short: {full:?}");
    let stop = words[words.len() / 2].to_string();
    let cut = full.find(&stop).unwrap();
    let mut with_stop = request;
    with_stop.sampling.stop = vec![stop.clone()];
    let (text, done) = run(&engine, with_stop);
    assert_eq!(text, full[..cut], "stop {stop:?}");
    assert_eq!(done.finish_reason, FinishReason::Stop);
    assert!(!text.contains(&stop));
}

#[test]
fn sequences_batched_together_give_the_same_greedy_text_as_alone() {
    let engine = engine(4, 512);
    // Prompts the model is sure of: a row decoded alone and the same row in a batch of four get
    // slightly different logits from llama.cpp's kernels, so an answer with a near-tie could
    // flip whatever the scheduler does. What is tested is that batched sequences do not disturb
    // each other (a wrong cell, position or sampler would change these answers too).
    let prompts = &common::CONFIDENT[2..6];
    let alone: Vec<String> = prompts
        .iter()
        .map(|p| run(&engine, chat(p, 40)).0)
        .collect();
    // Submit all four before reading any, so they share decode steps.
    let streams: Vec<EventStream> = prompts
        .iter()
        .map(|p| engine.generate(chat(p, 40)).unwrap())
        .collect();
    let together: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = streams
            .into_iter()
            .map(|st| s.spawn(move || drain(st).unwrap().0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(a, t, "prompt {i} changed when batched");
    }
    let stats = engine.stats();
    assert_eq!((stats.active, stats.queued, stats.kv_used), (0, 0, 0));
}

#[test]
fn a_prompt_longer_than_one_batch_is_prefilled_in_chunks() {
    // n_batch is 512: a ~900-token prompt takes two prefill steps.
    let engine = engine(2, 2048);
    let notes = "The team met on Monday and discussed the roadmap for the offline notes feature. ";
    let prompt = format!(
        "{}\nSummarize the notes above in one sentence.",
        notes.repeat(55)
    );
    let (text, done) = run(&engine, chat(&prompt, 24));
    assert!(
        done.usage.prompt_tokens > 512,
        "{}",
        done.usage.prompt_tokens
    );
    assert!(!text.trim().is_empty());
    // Repeatable: a fresh engine prefills in the same chunks (the same engine would reuse the
    // prompt from its cache, another batch shape).
    let (again, cold) = run(&self::engine(2, 2048), chat(&prompt, 24));
    assert_eq!(cold.usage.cached_prompt_tokens, 0);
    assert_eq!(again, text);
}

#[test]
fn a_prompt_longer_than_the_context_is_refused_clearly() {
    let engine = engine(1, 64);
    let long = "word ".repeat(200);
    let err = engine.generate(chat(&long, 8)).unwrap_err();
    match &err {
        EngineError::ContextOverflow {
            prompt_tokens,
            n_ctx,
        } => {
            assert!(*prompt_tokens > 64);
            assert_eq!(*n_ctx, 64);
        }
        other => panic!("expected ContextOverflow, got {other:?}"),
    }
    assert!(err.to_string().contains("context"));
    // The engine is still usable.
    assert!(!run(&engine, chat("Hi", 4)).0.is_empty());
}

#[test]
fn generation_stops_at_the_context_limit() {
    let engine = engine(1, 96);
    let (_, done) = run(&engine, chat("Write a long story about a dragon.", 1000));
    assert_eq!(done.finish_reason, FinishReason::Length);
    assert!(done.usage.prompt_tokens + done.usage.completion_tokens <= 96);
}

#[test]
fn dropping_a_stream_cancels_and_frees_the_slot() {
    let engine = engine(1, 1024);
    let mut stream = engine
        .generate(chat("Write a long story about a dragon.", 500))
        .unwrap();
    // Wait for real progress, then walk away.
    assert!(matches!(stream.blocking_next(), Some(Event::Token(_))));
    drop(stream);
    // With a single slot, this only completes if the cancelled sequence was released.
    let (text, _) = run(&engine, chat("Say hello.", 8));
    assert!(!text.is_empty());
    assert_eq!(engine.stats().active, 0);
}

#[test]
fn empty_chat_and_zero_max_tokens_are_invalid_requests() {
    let engine = engine(1, 256);
    let empty = GenerateRequest {
        prompt: Prompt::Chat(vec![]),
        sampling: SamplingParams::default(),
        tools: None,
    };
    assert!(matches!(
        engine.generate(empty),
        Err(EngineError::InvalidRequest(_))
    ));
    assert!(matches!(
        engine.generate(chat("hi", 0)),
        Err(EngineError::InvalidRequest(_))
    ));
}

#[test]
fn metadata_is_read_without_loading() {
    let info = hearth::gguf::read(&common::model_path()).unwrap();
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.block_count, Some(30));
    // SmolLM2-135M: about 135 million parameters.
    assert!(
        (130_000_000..140_000_000).contains(&info.n_params),
        "{}",
        info.n_params
    );
    assert_eq!(hearth::gguf::human_params(info.n_params), "135M");
    assert_eq!(info.quantization.as_deref(), Some("Q4_1"));
    assert!(info.chat_template.as_deref().unwrap().contains("SmolLM"));
    // The catalog's pre-download estimate must agree with the file.
    let catalog = hearth::catalog::Catalog::builtin();
    let entry = catalog.get("smollm2-135m").unwrap();
    assert_eq!(info.kv_bytes_per_token(), entry.kv_bytes_per_token);
}

#[test]
fn truncated_and_foreign_files_are_clear_errors_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(common::model_path()).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = LlamaEngine::load(&truncated, "t", EngineOptions::default()).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");

    let header_only = dir.path().join("header.gguf");
    std::fs::write(&header_only, &bytes[..64]).unwrap();
    let err = LlamaEngine::load(&header_only, "h", EngineOptions::default()).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");

    let foreign = dir.path().join("foreign.gguf");
    std::fs::write(&foreign, b"definitely not a model").unwrap();
    let err = LlamaEngine::load(&foreign, "f", EngineOptions::default()).unwrap_err();
    assert!(err.to_string().contains("not a GGUF"), "{err}");
}

#[test]
fn every_tool_call_syntax_compiles_and_takes_its_own_call_and_nothing_else() {
    use hearth::engine::tools::{call_grammar, ToolChoice, ToolDef, ToolFormat, ToolRequest};
    use serde_json::json;

    let engine = engine(1, 256);
    let compiler = engine.constraint_compiler();
    let request = ToolRequest {
        tools: vec![ToolDef {
            name: "get_weather".into(),
            description: None,
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        }],
        choice: ToolChoice::Required,
        parallel: true,
    };
    let args = r#"{"city": "Paris"}"#;
    let cases = [
        (
            ToolFormat::Generic,
            format!(r#"{{"tool_calls": [{{"name": "get_weather", "arguments": {args}}}]}}"#),
        ),
        (
            ToolFormat::Hermes,
            format!(
                "<tool_call>\n{{\"name\": \"get_weather\", \"arguments\": {args}}}\n</tool_call>\n<tool_call>\n{{\"name\": \"get_weather\", \"arguments\": {args}}}\n</tool_call>"
            ),
        ),
        (
            ToolFormat::Llama3,
            format!(r#"{{"name": "get_weather", "parameters": {args}}}"#),
        ),
        (
            ToolFormat::Mistral,
            format!(r#"[{{"name": "get_weather", "arguments": {args}}}]"#),
        ),
    ];
    for (format, text) in cases {
        let grammar = call_grammar(&request, format).unwrap().unwrap();
        let walk = |text: &str| {
            let mut matcher = compiler.compile(&grammar).unwrap();
            let tokens: Vec<u32> = engine
                .tokenize(text)
                .unwrap()
                .into_iter()
                .map(|t| t as u32)
                .collect();
            let taken = matcher.validate_tokens(&tokens).unwrap();
            matcher.consume_tokens(&tokens[..taken]).unwrap();
            (taken == tokens.len(), matcher.is_accepting().unwrap())
        };
        assert_eq!(walk(&text), (true, true), "{format:?}: {text}");
        // Another function's name, or a call cut short, is not a call.
        let other = text.replace("get_weather", "get_time");
        assert!(!walk(&other).0, "{format:?}: {other}");
        let cut = &text[..text.len() - 2];
        assert_eq!(walk(cut), (true, false), "{format:?}: {cut}");
    }
}

#[test]
fn a_grammar_that_compiles_past_its_limit_is_refused_and_a_small_one_is_cached() {
    use hearth::engine::constraint::Grammar;
    use serde_json::json;
    use std::time::Duration;

    let engine = engine(1, 256);
    let compiler = engine.constraint_compiler();
    compiler.ready().unwrap();
    // 2,000 alternatives, each with a pattern of its own: tens of milliseconds on this
    // machine, so a 1 ms limit is exceeded on any machine.
    let branches: Vec<_> = (0..2000)
        .map(|i| json!({"type": "object", "properties": {format!("k{i}"): {"type": "string", "pattern": format!("^v{i}[a-z]*$")}}, "required": [format!("k{i}")]}))
        .collect();
    let huge = Grammar::JsonSchema(json!({"anyOf": branches}));
    let Err(err) = compiler.compile_within(&huge, Duration::from_millis(1)) else {
        panic!("2,000 alternatives compiled within 1 ms");
    };
    assert!(err.0.contains("longer than 1 ms"), "{err}");
    // With time enough it compiles, and then it is kept: within 1 ms now, from the cache.
    compiler
        .compile_within(&huge, Duration::from_secs(600))
        .unwrap();
    let mut again = compiler
        .compile_within(&huge, Duration::from_millis(1))
        .unwrap();
    assert!(again.compute_mask().is_ok());
}
