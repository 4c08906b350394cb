//! Reading the upstream's stream: each server-sent event becomes a [`Payload`], and a [`Tally`]
//! forwards its text as token events and keeps what the summary needs (finish reason, usage,
//! first and last token instants).

use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use super::errors::quote;
use super::Endpoint;
use crate::engine::{Completion, EngineError, Event, FinishReason, Timings, Usage};
use crate::openai;
use crate::openai::sse::SseEvent;

/// What one SSE `data:` payload said.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Chunk {
    /// New text (may be empty, e.g. the first chat chunk that only carries the role).
    content: Option<String>,
    /// The upstream's reason for stopping, on the last choice chunk.
    finish_reason: Option<openai::FinishReason>,
    /// Token counts, on the final chunk when `include_usage` was honoured.
    usage: Option<Usage>,
}

/// One parsed `data:` payload.
#[derive(Debug, PartialEq)]
pub(super) enum Payload {
    /// A `chat.completion.chunk` or `text_completion` object.
    Chunk(Chunk),
    /// `[DONE]`: the stream is over.
    Done,
}

/// Running state of one relayed generation.
pub(super) struct Tally {
    submitted: Instant,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Non-empty content pieces received: the fallback token count.
    pieces: usize,
    finish_reason: Option<openai::FinishReason>,
    usage: Option<Usage>,
}

impl Tally {
    pub(super) fn new(submitted: Instant) -> Self {
        Self {
            submitted,
            first: None,
            last: None,
            pieces: 0,
            finish_reason: None,
            usage: None,
        }
    }

    /// Records a payload and forwards its text; `true` once the stream is over.
    pub(super) fn apply(&mut self, payload: Payload, events: &UnboundedSender<Event>) -> bool {
        let chunk = match payload {
            Payload::Done => return true,
            Payload::Chunk(chunk) => chunk,
        };
        if let Some(text) = chunk.content.filter(|t| !t.is_empty()) {
            let now = Instant::now();
            self.first.get_or_insert(now);
            self.last = Some(now);
            self.pieces += 1;
            let _ = events.send(Event::Token(text));
        }
        if chunk.finish_reason.is_some() {
            self.finish_reason = chunk.finish_reason;
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        false
    }

    /// Whether the upstream said why it stopped (a stream that ends without saying is cut).
    pub(super) fn finished(&self) -> bool {
        self.finish_reason.is_some()
    }

    /// The summary: the upstream's counts when it sent them, local timings always.
    pub(super) fn completion(&self, alias: &str) -> Completion {
        let usage = self.usage.unwrap_or_else(|| {
            tracing::warn!(
                alias,
                pieces = self.pieces,
                "the upstream sent no usage; counting content chunks as tokens and 0 prompt tokens"
            );
            Usage {
                prompt_tokens: 0,
                completion_tokens: self.pieces,
                ..Usage::default()
            }
        });
        let ms = |from: Instant, to: Instant| to.duration_since(from).as_secs_f64() * 1000.0;
        let first = self.first.unwrap_or_else(Instant::now);
        let ttft_ms = ms(self.submitted, first);
        let timings = Timings {
            queued_ms: 0.0,
            prompt_ms: ttft_ms,
            ttft_ms,
            decode_ms: self.last.map_or(0.0, |last| ms(first, last)),
            ..Timings::default()
        }
        .with_rates(usage);
        let finish_reason = match self.finish_reason {
            Some(openai::FinishReason::Length) => FinishReason::Length,
            _ => FinishReason::Stop,
        };
        Completion {
            usage,
            timings,
            finish_reason,
        }
    }
}

/// Interprets one event of an OpenAI stream. Chat and text chunks differ only in where the
/// text sits, so both are read through the chat chunk's shape plus its `text` fallback.
pub(super) fn parse_payload(event: SseEvent, endpoint: Endpoint) -> Result<Payload, EngineError> {
    let data = match event {
        SseEvent::Done => return Ok(Payload::Done),
        SseEvent::Data(data) => data,
    };
    let chunk: openai::ChatCompletionChunk = openai::read(data.trim()).map_err(|e| {
        EngineError::Upstream(format!(
            "the upstream sent an event that is not JSON ({e}): {}",
            quote(data.trim())
        ))
    })?;
    if let Some(error) = chunk.error {
        return Err(EngineError::Upstream(format!(
            "the upstream failed mid-stream: {}",
            error.text()
        )));
    }
    let choice = chunk.choices.into_iter().next();
    let content = choice.as_ref().and_then(|c| match endpoint {
        Endpoint::Chat => c.delta.content.clone(),
        Endpoint::Completions => c.text.clone(),
    });
    let finish_reason = choice.and_then(|c| c.finish_reason);
    let count = |n: Option<u64>| n.unwrap_or(0) as usize;
    let usage = chunk.usage.map(|u| Usage {
        prompt_tokens: count(u.prompt_tokens),
        completion_tokens: count(u.completion_tokens),
        cached_prompt_tokens: count(u.prompt_tokens_details.and_then(|d| d.cached_tokens)),
    });
    Ok(Payload::Chunk(Chunk {
        content,
        finish_reason,
        usage,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EventStream;
    use crate::openai::sse::SseParser;

    /// One event's data through the shared SSE parser, then read as this backend does.
    fn parse(data: &str, endpoint: Endpoint) -> Result<Payload, EngineError> {
        let mut events = SseParser::default().push(format!("data: {data}\n\n").as_bytes());
        parse_payload(events.remove(0), endpoint)
    }

    #[test]
    fn done_marker() {
        assert_eq!(parse("[DONE]", Endpoint::Chat).unwrap(), Payload::Done);
    }

    #[test]
    fn chat_chunks_carry_content_finish_and_usage() {
        let chunk = r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}"#;
        assert_eq!(
            parse(chunk, Endpoint::Chat).unwrap(),
            Payload::Chunk(Chunk {
                content: Some("Hi".into()),
                ..Chunk::default()
            })
        );
        let last = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#;
        assert_eq!(
            parse(last, Endpoint::Chat).unwrap(),
            Payload::Chunk(Chunk {
                finish_reason: Some(openai::FinishReason::Length),
                ..Chunk::default()
            })
        );
        let usage =
            r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#;
        assert_eq!(
            parse(usage, Endpoint::Chat).unwrap(),
            Payload::Chunk(Chunk {
                usage: Some(Usage {
                    prompt_tokens: 9,
                    completion_tokens: 3,
                    ..Usage::default()
                }),
                ..Chunk::default()
            })
        );
    }

    #[test]
    fn completion_chunks_carry_text() {
        let chunk = r#"{"object":"text_completion","choices":[{"index":0,"text":" world","finish_reason":"stop"}]}"#;
        assert_eq!(
            parse(chunk, Endpoint::Completions).unwrap(),
            Payload::Chunk(Chunk {
                content: Some(" world".into()),
                finish_reason: Some(openai::FinishReason::Stop),
                usage: None,
            })
        );
    }

    #[test]
    fn error_payloads_become_upstream_errors() {
        let shaped = r#"{"error":{"message":"out of memory","type":"server_error","code":null}}"#;
        match parse(shaped, Endpoint::Chat) {
            Err(EngineError::Upstream(m)) => assert!(m.contains("out of memory"), "{m}"),
            other => panic!("expected an upstream error, got {other:?}"),
        }
        match parse(r#"{"error":"boom"}"#, Endpoint::Completions) {
            Err(EngineError::Upstream(m)) => assert!(m.contains("boom"), "{m}"),
            other => panic!("expected an upstream error, got {other:?}"),
        }
        match parse("not json", Endpoint::Chat) {
            Err(EngineError::Upstream(m)) => assert!(m.contains("not json"), "{m}"),
            other => panic!("expected an upstream error, got {other:?}"),
        }
    }

    #[test]
    fn completion_falls_back_to_counting_chunks() {
        let (tx, _stream) = EventStream::channel();
        let mut tally = Tally::new(Instant::now());
        for piece in ["a", "", "b", "c"] {
            tally.apply(
                Payload::Chunk(Chunk {
                    content: Some(piece.into()),
                    ..Chunk::default()
                }),
                &tx,
            );
        }
        let done = tally.completion("t");
        assert_eq!(
            done.usage,
            Usage {
                prompt_tokens: 0,
                completion_tokens: 3,
                ..Usage::default()
            }
        );
        assert_eq!(done.finish_reason, FinishReason::Stop);
        assert_eq!(done.timings.prompt_ms, done.timings.ttft_ms);
    }
}
