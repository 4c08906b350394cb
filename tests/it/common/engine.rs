//! The in-process llama.cpp engine on the default model, for tests that drive it directly.

use hearth::engine::llama::{EngineOptions, LlamaEngine};
use hearth::engine::speculative::Speculative;
use hearth::engine::{Backend, Completion, EngineError, Event, EventStream, GenerateRequest};

/// The default model on 2 threads with `parallel` sequences of `n_ctx` tokens. Tests that are
/// not about drafting pass [`Speculative::Off`] (the engine's own default is `Ngram`): drafts
/// change the batch shapes between otherwise identical requests (see [`super::server::Setup`]).
pub fn load(parallel: u32, n_ctx: u32, speculative: Speculative) -> LlamaEngine {
    load_file(
        &super::model_path(),
        "smollm2-135m",
        parallel,
        n_ctx,
        speculative,
    )
}

/// The GGUF at `path` under `alias`, on 2 threads with `parallel` sequences of `n_ctx` tokens.
pub fn load_file(
    path: &std::path::Path,
    alias: &str,
    parallel: u32,
    n_ctx: u32,
    speculative: Speculative,
) -> LlamaEngine {
    LlamaEngine::load(
        path,
        alias,
        EngineOptions {
            threads: 2,
            n_ctx,
            parallel,
            speculative,
            ..EngineOptions::default()
        },
    )
    .expect("the model loads")
}

/// Reads a stream to its end: the whole text and the summary, or the error.
pub fn drain(mut stream: EventStream) -> Result<(String, Completion), EngineError> {
    let mut text = String::new();
    while let Some(event) = stream.blocking_next() {
        match event {
            Event::Token(t) => text.push_str(&t),
            Event::Done(c) => return Ok((text, c)),
            Event::Error(e) => return Err(e),
        }
    }
    panic!("stream ended without Done or Error");
}

/// Generates and waits for a successful answer.
pub fn run(engine: &LlamaEngine, request: GenerateRequest) -> (String, Completion) {
    drain(engine.generate(request).unwrap()).unwrap()
}
