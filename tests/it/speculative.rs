//! N-gram speculative decoding on the real default model: drafts change how many tokens come
//! out of a decode step, never which tokens (greedy, and seeded sampling), alone and with eight
//! sequences batched;
//! they never run past `max_tokens`, a stop string or the context; a cancelled drafting
//! sequence leaves no KV cells; the server reports drafts in `timings` and `/metrics`.
//!
//! Prompt plus answer stay under 512 KV cells here: past that llama.cpp's CPU attention
//! takes a split-KV path for single-token decoding that a multi-token verification does not,
//! and rare near-ties in the logits can then go the other way (llama-server shows the same;
//! `perf/speculative.sh` measures how often).

use crate::common;

use std::thread;

use common::engine::{drain, run};
// Prompts whose answers the model is sure of (no near-ties in the logits), `COPYING[0]` and
// `COPYING[3]` among them.
use common::CONFIDENT;
use hearth::engine::llama::LlamaEngine;
use hearth::engine::speculative::Speculative;
use hearth::engine::{
    Backend, ChatMessage, Completion, Event, EventStream, FinishReason, GenerateRequest, Prompt,
    SamplingParams,
};
use serde_json::Value;

fn engine(parallel: u32, n_ctx: u32, speculative: Speculative) -> LlamaEngine {
    common::engine::load(parallel, n_ctx, speculative)
}

fn request(text: &str, sampling: SamplingParams) -> GenerateRequest {
    GenerateRequest {
        prompt: Prompt::Chat(vec![ChatMessage::new("user", text)]),
        sampling,
        tools: None,
    }
}

fn greedy(max_tokens: u32) -> SamplingParams {
    SamplingParams {
        max_tokens: Some(max_tokens),
        ..SamplingParams::default()
    }
}

/// Prompts whose answers copy from the prompt (names, dates, a list to repeat).
const COPYING: [&str; 4] = [
    "Repeat this list exactly, one item per line:\n- Alice Moreno, engineering lead, release 2.4.1 on 28 March\n- Bob Tanaka, design, onboarding test with 40 users on 15 March\n- Carla Singh, sales, Northwind contract worth 120,000 euros on 21 March\n- David Okafor, support, 312 tickets in February",
    "Copy this address exactly: Northwind Traders, 42 Harbour Street, Unit 7, Bristol BS1 4QA, United Kingdom, phone 0117 496 0321.",
    "Summarize, keeping the names and numbers: Alice Moreno said release 2.4.1 moves to 28 March. Bob Tanaka said 40 users finished onboarding in 3 minutes 10 seconds. Carla Singh said the Northwind contract is worth 120,000 euros per year.",
    "Write the numbers from 1 to 30, separated by commas.",
];

/// Prompts with little to copy.
const FRESH: [&str; 4] = [
    "Write a haiku about the sea.",
    "What is the capital of France?",
    "Give one tip for sleeping better.",
    "Name three colours of the rainbow.",
];

#[test]
fn confident_prompts_include_the_copying_ones_compared_below() {
    assert!(CONFIDENT.contains(&COPYING[0]) && CONFIDENT.contains(&COPYING[3]));
}

#[test]
fn greedy_output_is_the_same_with_and_without_drafts() {
    let off = engine(1, 1024, Speculative::Off);
    let on = engine(1, 1024, Speculative::Ngram);
    let mut accepted = 0;
    for prompt in COPYING.iter().chain(&FRESH) {
        let (plain, plain_done) = run(&off, request(prompt, greedy(96)));
        let (drafted, done) = run(&on, request(prompt, greedy(96)));
        // Verifying a draft decodes several rows in one batch where decoding without drafts
        // takes one: llama.cpp's numerics differ between those batch shapes, so an answer with
        // a near-tie in its logits may flip either way (see the module doc). The text is the
        // same only where the model is sure of it; elsewhere both engines saw the same prompts
        // in the same order, so the prompt side is the same.
        if CONFIDENT.contains(prompt) {
            assert_eq!(plain, drafted, "drafts changed the answer to {prompt:?}");
            assert_eq!(plain_done.usage, done.usage);
            assert_eq!(plain_done.finish_reason, done.finish_reason);
        } else {
            assert!(!plain.trim().is_empty() && !drafted.trim().is_empty());
            assert_eq!(plain_done.usage.prompt_tokens, done.usage.prompt_tokens);
            assert_eq!(
                plain_done.usage.cached_prompt_tokens,
                done.usage.cached_prompt_tokens
            );
        }
        assert_eq!(
            plain_done.timings.draft_n, 0,
            "speculation off drafts nothing"
        );
        assert!(done.timings.draft_n_accepted <= done.timings.draft_n);
        accepted += done.timings.draft_n_accepted;
    }
    assert!(
        accepted > 20,
        "copying prompts must have accepted drafts (got {accepted})"
    );
    let stats = on.stats();
    assert!(stats.draft_tokens >= stats.draft_accepted && stats.draft_accepted > 0);
}

#[test]
fn seeded_sampling_draws_the_same_text_with_and_without_drafts() {
    // A drafted token is kept only when the sequence's own sampler, drawing at that position
    // as it would without drafts, picks exactly it: the same seed gives the same text.
    let off = engine(1, 1024, Speculative::Off);
    let on = engine(1, 1024, Speculative::Ngram);
    let mut accepted = 0;
    for (i, prompt) in COPYING.iter().enumerate() {
        let sampling = SamplingParams {
            temperature: 0.7,
            top_p: 0.95,
            top_k: 40,
            seed: Some(7 + i as u32),
            ..greedy(96)
        };
        let (plain, _) = run(&off, request(prompt, sampling.clone()));
        let (drafted, done) = run(&on, request(prompt, sampling));
        // As with greedy decoding, only where the model is sure of its answer: a near-tie can
        // flip between the batch shapes of decoding with and without drafts.
        if CONFIDENT.contains(prompt) {
            assert_eq!(
                plain, drafted,
                "drafts changed the sampled answer to {prompt:?}"
            );
        } else {
            assert!(!plain.trim().is_empty() && !drafted.trim().is_empty());
        }
        accepted += done.timings.draft_n_accepted;
    }
    assert!(
        accepted > 0,
        "sampled copying answers must accept some drafts"
    );
}

/// Answers of `prompts` submitted together to `engine`.
fn batched(engine: &LlamaEngine, prompts: &[&str], max_tokens: u32) -> Vec<(String, Completion)> {
    // Submit all before reading any, so they share decode steps.
    let streams: Vec<EventStream> = prompts
        .iter()
        .map(|p| engine.generate(request(p, greedy(max_tokens))).unwrap())
        .collect();
    thread::scope(|s| {
        let handles: Vec<_> = streams
            .into_iter()
            .map(|st| s.spawn(move || drain(st).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Eight sequences decoded together, with and without drafts. Which rows share a decode step
/// depends on when each request arrives, and llama.cpp's CPU kernels give a batch of rows
/// slightly different logits than one row, so answers with near-ties can flip between runs
/// whether drafts are on or off (measured: six of the eight `COPYING` + `FRESH` answers differ
/// between decoding alone and eight at once, with or without drafts). That is batching, not
/// speculation; the prompts here are ones the model is sure of.
#[test]
fn eight_batched_sequences_answer_the_same_with_and_without_drafts() {
    let prompts = CONFIDENT;
    let off = engine(8, 1024, Speculative::Off);
    let reference = batched(&off, &prompts, 80);
    drop(off);
    let on = engine(8, 1024, Speculative::Ngram);
    // Twice: the second pass also drafts from the first pass's answers (the shared history).
    for pass in 0..2 {
        let answers = batched(&on, &prompts, 80);
        for (i, ((a, _), (t, _))) in reference.iter().zip(&answers).enumerate() {
            assert_eq!(a, t, "pass {pass}: drafts changed the answer to prompt {i}");
        }
        let accepted: usize = answers
            .iter()
            .map(|(_, c)| c.timings.draft_n_accepted)
            .sum();
        assert!(
            accepted > 0,
            "pass {pass}: nothing was drafted and accepted"
        );
    }
    let stats = on.stats();
    assert_eq!((stats.active, stats.queued, stats.kv_used), (0, 0, 0));
}

#[test]
fn drafts_never_run_past_max_tokens_a_stop_string_or_the_context() {
    let off = engine(1, 256, Speculative::Off);
    let on = engine(1, 256, Speculative::Ngram);
    let counting = COPYING[3];
    // max_tokens: exactly that many tokens, whatever was drafted beyond.
    for max in [1, 2, 7, 33] {
        let (plain, _) = run(&off, request(counting, greedy(max)));
        let (text, done) = run(&on, request(counting, greedy(max)));
        assert_eq!(done.usage.completion_tokens, max as usize);
        assert_eq!(done.finish_reason, FinishReason::Length);
        assert_eq!(plain, text);
    }
    // A stop string inside copied text: the answer ends before it, as without drafts.
    let stop = SamplingParams {
        stop: vec!["15".into()],
        ..greedy(120)
    };
    let (plain, _) = run(&off, request(counting, stop.clone()));
    let (text, done) = run(&on, request(counting, stop));
    assert_eq!(plain, text);
    assert!(!text.contains("15") && text.contains("14"), "{text}");
    assert_eq!(done.finish_reason, FinishReason::Stop);
    // The context: a 256-cell window fills up exactly.
    let unbounded = SamplingParams {
        max_tokens: None,
        ignore_eos: true,
        ..SamplingParams::default()
    };
    let (plain, plain_done) = run(&off, request(counting, unbounded.clone()));
    let (text, done) = run(&on, request(counting, unbounded));
    assert_eq!(done.finish_reason, FinishReason::Length);
    assert_eq!(
        done.usage.prompt_tokens + done.usage.completion_tokens,
        256,
        "prompt and answer fill the context, no more"
    );
    assert_eq!((plain, plain_done.usage), (text, done.usage));
}

#[test]
fn a_sequence_cancelled_while_drafting_leaves_no_kv_cells() {
    let on = engine(1, 1024, Speculative::Ngram);
    let long = SamplingParams {
        max_tokens: Some(600),
        ignore_eos: true,
        ..SamplingParams::default()
    };
    let mut stream = on.generate(request(COPYING[0], long)).unwrap();
    // Read until the engine has drafted for this sequence, then hang up mid-answer.
    let mut pieces = 0;
    while on.stats().draft_tokens == 0 || pieces < 8 {
        match stream.blocking_next() {
            Some(Event::Token(_)) => pieces += 1,
            other => panic!("the answer ended before drafting: {other:?}"),
        }
    }
    drop(stream);
    // One slot: this request starts only once the cancelled one has left.
    let (text, _) = run(&on, request(FRESH[1], greedy(8)));
    assert!(!text.is_empty());
    let stats = on.stats();
    assert_eq!((stats.active, stats.kv_used), (0, 0), "cells left behind");
}

/// One chat request to a `hearth serve` at `addr`; returns the parsed body.
fn post_chat(addr: &str, prompt: &str) -> Value {
    let body = serde_json::json!({
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 80,
        "temperature": 0,
    })
    .to_string();
    let response = common::http(addr, "POST", "/v1/chat/completions", Some(&body));
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).expect("JSON body")
}

fn metric(addr: &str, name: &str) -> f64 {
    let text = common::http(addr, "GET", "/metrics", None);
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

#[test]
fn the_server_reports_drafts_in_timings_and_metrics_and_can_turn_them_off() {
    // Drafting is priced from step times: no whole benchmark beside it (see `common::turn`).
    let _turn = common::turn();
    let home = common::home_with_model();
    let (mut child, addr) = common::spawn_serve(home.path(), &["--parallel", "2"]);
    // Whether a draft is worth its rows is priced from step times measured on this machine,
    // so a step slowed by a neighbour (tests run in parallel) can talk the engine out of
    // drafting for one answer. The copy is asked again until an answer carried an accepted
    // draft; the second ask also finds the first answer in the server's history.
    let (mut n, mut accepted) = (0, 0);
    let mut answers = Vec::new();
    for _ in 0..4 {
        let answer = post_chat(&addr, COPYING[0]);
        let timings = &answer["timings"];
        let (drafted, kept) = (
            timings["draft_n"].as_u64().unwrap(),
            timings["draft_n_accepted"].as_u64().unwrap(),
        );
        assert!(kept <= drafted, "{timings}");
        (n, accepted) = (n + drafted, accepted + kept);
        answers.push(answer);
        if kept > 0 {
            break;
        }
    }
    let ratio = metric(&addr, "hearth_draft_acceptance_ratio");
    let drafted = metric(&addr, "hearth_draft_tokens");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        accepted > 0,
        "no draft accepted in {} answers",
        answers.len()
    );
    assert_eq!(drafted, n as f64);
    assert!((ratio - accepted as f64 / n as f64).abs() < 1e-9, "{ratio}");
    // Drafts never change a greedy answer.
    for answer in &answers[1..] {
        assert_eq!(
            answer["choices"][0]["message"]["content"],
            answers[0]["choices"][0]["message"]["content"]
        );
    }
    let on = &answers[0];

    // The same --parallel as the server above: the answers are compared, and the number of
    // slots must not be a second difference beside the drafts.
    let (mut child, addr) =
        common::spawn_serve(home.path(), &["--parallel", "2", "--speculative", "off"]);
    let off = post_chat(&addr, COPYING[0]);
    let drafted = metric(&addr, "hearth_draft_tokens");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(off["timings"]["draft_n"], 0);
    assert_eq!(drafted, 0.0);
    // COPYING[0] is one of the CONFIDENT prompts: the text does not depend on the batch shape.
    assert_eq!(
        off["choices"][0]["message"]["content"],
        on["choices"][0]["message"]["content"]
    );
}
