//! Responses: whole answers, stream chunks, usage, llama-server's `timings`, tool calls and
//! the model list.
//!
//! One envelope ([`Response`]) carries three kinds of choice: a chat answer's `message`, a
//! chat chunk's `delta`, a text completion's `text`. Keys written as `null` (`logprobs`,
//! `finish_reason`, a message's `content` and `refusal`) are required-but-nullable in OpenAI's
//! schema; keys left out (`usage` on most chunks, `timings`, empty delta fields) are optional.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ErrorField;
use super::lenient::lenient;

/// The envelope of every completion answer and chunk; `C` is the kind of choice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "C: DeserializeOwned"))]
pub struct Response<C> {
    /// One id per answer, the same in all its chunks.
    #[serde(default, deserialize_with = "lenient")]
    pub id: String,
    /// `chat.completion`, `chat.completion.chunk` or `text_completion`.
    #[serde(default, deserialize_with = "lenient")]
    pub object: String,
    /// Unix seconds.
    #[serde(default, deserialize_with = "lenient")]
    pub created: u64,
    /// The model that answered.
    #[serde(default, deserialize_with = "lenient")]
    pub model: String,
    /// The backend build (hearth writes it; many servers do not).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub system_fingerprint: Option<String>,
    /// The choices (hearth always has one; a usage-only chunk has none).
    #[serde(default, deserialize_with = "lenient")]
    pub choices: Vec<C>,
    /// Token counts: on whole answers, and on the last chunk when asked for.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub usage: Option<Usage>,
    /// Engine-side timings (llama-server's extension): on whole answers and finish chunks.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub timings: Option<Timings>,
    /// Read only: a server that fails mid-stream sends `{"error": …}` in place of a chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorField>,
}

/// A whole chat answer (`chat.completion`).
pub type ChatCompletion = Response<ChatChoice>;
/// One server-sent chunk of a streamed chat answer (`chat.completion.chunk`).
pub type ChatCompletionChunk = Response<ChunkChoice>;
/// A text completion, whole or one chunk of a stream (`text_completion` both).
pub type TextCompletion = Response<TextChoice>;

/// A choice of a whole chat answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    /// Always 0 (hearth offers `n = 1` only).
    #[serde(default, deserialize_with = "lenient")]
    pub index: u32,
    /// The answer.
    #[serde(default, deserialize_with = "lenient")]
    pub message: ResponseMessage,
    /// Never computed: `null`.
    #[serde(default, deserialize_with = "lenient")]
    pub logprobs: Option<Value>,
    /// Why generation stopped.
    #[serde(default, deserialize_with = "lenient")]
    pub finish_reason: Option<FinishReason>,
}

/// The assistant's message in a whole chat answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    /// `assistant`.
    #[serde(default, deserialize_with = "lenient")]
    pub role: String,
    /// The text; `null` when the answer is only tool calls.
    #[serde(default, deserialize_with = "lenient")]
    pub content: Option<String>,
    /// Never set by hearth: `null`.
    #[serde(default, deserialize_with = "lenient")]
    pub refusal: Option<String>,
    /// The calls the model made, when it made any.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub tool_calls: Option<Vec<ToolCall>>,
}

impl Default for ResponseMessage {
    fn default() -> Self {
        Self {
            role: "assistant".into(),
            content: None,
            refusal: None,
            tool_calls: None,
        }
    }
}

/// A choice of a streamed chat chunk.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Always 0.
    #[serde(default, deserialize_with = "lenient")]
    pub index: u32,
    /// What this chunk adds.
    #[serde(default, deserialize_with = "lenient")]
    pub delta: Delta,
    /// Read only: some servers put a chat chunk's text where completions put it.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub text: Option<String>,
    /// Never computed: `null`.
    #[serde(default, deserialize_with = "lenient")]
    pub logprobs: Option<Value>,
    /// `null` until the finish chunk.
    #[serde(default, deserialize_with = "lenient")]
    pub finish_reason: Option<FinishReason>,
}

/// What one chunk adds to the answer; unset parts are left out (the finish chunk's is `{}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// `assistant`, on the first chunk only.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub role: Option<String>,
    /// New text.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub content: Option<String>,
    /// Read only: a reasoning model's thinking (llama-server, vLLM, DeepSeek).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub reasoning_content: Option<String>,
    /// Read only: the same under Ollama's and OpenRouter's name.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub reasoning: Option<String>,
    /// Tool calls, streamed in pieces.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A choice of a text completion (whole, or one chunk).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TextChoice {
    /// Always 0.
    #[serde(default, deserialize_with = "lenient")]
    pub index: u32,
    /// The text (new text, in a chunk).
    #[serde(default, deserialize_with = "lenient")]
    pub text: String,
    /// Never computed: `null`.
    #[serde(default, deserialize_with = "lenient")]
    pub logprobs: Option<Value>,
    /// `null` until the last chunk.
    #[serde(default, deserialize_with = "lenient")]
    pub finish_reason: Option<FinishReason>,
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End of generation or a stop string.
    Stop,
    /// `max_tokens` or the context limit.
    Length,
    /// The answer is tool calls.
    ToolCalls,
    /// Read only: OpenAI's moderation.
    ContentFilter,
    /// Read only: any reason another server invents (read as a plain stop).
    #[serde(other)]
    Other,
}

/// Token counts as the server's tokenizer saw them. Each is optional because a server that
/// leaves one out must not be read as having counted zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens after templating.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub prompt_tokens: Option<u64>,
    /// Generated tokens.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub completion_tokens: Option<u64>,
    /// Their sum.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub total_tokens: Option<u64>,
    /// Prompt-cache reuse.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens whose KV was reused, not computed again.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub cached_tokens: Option<u64>,
}

/// Engine-side timings in llama-server's shape (its `timings` block, plus hearth's `ttft_ms`
/// and `queued_ms`), so a client can tell engine time from network time and read how many
/// speculative drafts were accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Prompt tokens computed by this request's prefill, as llama-server means it; the whole
    /// prompt is `prompt_n + cache_n` (= `usage.prompt_tokens`).
    #[serde(default, deserialize_with = "lenient")]
    pub prompt_n: u64,
    /// Prompt tokens reused from the prompt cache (llama-server's `cache_n`), not computed.
    #[serde(default, deserialize_with = "lenient")]
    pub cache_n: u64,
    /// Prefill time.
    #[serde(default, deserialize_with = "lenient")]
    pub prompt_ms: f64,
    /// Prefill time per computed prompt token.
    #[serde(default, deserialize_with = "lenient")]
    pub prompt_per_token_ms: f64,
    /// Prefill rate.
    #[serde(default, deserialize_with = "lenient")]
    pub prompt_per_second: f64,
    /// Generated tokens.
    #[serde(default, deserialize_with = "lenient")]
    pub predicted_n: u64,
    /// Decode time, first token to last.
    #[serde(default, deserialize_with = "lenient")]
    pub predicted_ms: f64,
    /// Decode time per generated token after the first.
    #[serde(default, deserialize_with = "lenient")]
    pub predicted_per_token_ms: f64,
    /// Decode rate.
    #[serde(default, deserialize_with = "lenient")]
    pub predicted_per_second: f64,
    /// Submission to first token (hearth).
    #[serde(default, deserialize_with = "lenient")]
    pub ttft_ms: f64,
    /// Waiting for a sequence slot (hearth).
    #[serde(default, deserialize_with = "lenient")]
    pub queued_ms: f64,
    /// Tokens drafted by speculative decoding.
    #[serde(default, deserialize_with = "lenient")]
    pub draft_n: u64,
    /// Drafted tokens the model accepted.
    #[serde(default, deserialize_with = "lenient")]
    pub draft_n_accepted: u64,
}

/// A tool call of a whole answer (or of a request's history), arguments as JSON text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// `call_…`: what the tool's answer refers to.
    #[serde(default, deserialize_with = "lenient")]
    pub id: String,
    /// `function`.
    #[serde(rename = "type", default, deserialize_with = "lenient")]
    pub kind: String,
    /// The function and its arguments.
    #[serde(default, deserialize_with = "lenient")]
    pub function: FunctionCall,
}

impl ToolCall {
    /// A call of function `name` with `arguments` (JSON text).
    pub fn function(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            kind: "function".into(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
        }
    }
}

/// The function of a [`ToolCall`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Its name.
    #[serde(default, deserialize_with = "lenient")]
    pub name: String,
    /// Its arguments, a JSON text.
    #[serde(default, deserialize_with = "lenient")]
    pub arguments: String,
}

/// A piece of a streamed tool call: the first piece opens it (id, type, name, empty
/// arguments), later pieces add arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which call of the answer this piece belongs to.
    #[serde(default, deserialize_with = "lenient")]
    pub index: u32,
    /// The call's id, on its first piece.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// `function`, on its first piece.
    #[serde(
        rename = "type",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub kind: Option<String>,
    /// Name and/or arguments.
    #[serde(default, deserialize_with = "lenient")]
    pub function: FunctionCallDelta,
}

/// The function part of a [`ToolCallDelta`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    /// The name, on the first piece.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// More of the arguments' JSON text.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub arguments: Option<String>,
}

/// One entry of `GET /v1/models`, or the answer of `GET /v1/models/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    /// The name to put in requests.
    #[serde(default, deserialize_with = "lenient")]
    pub id: String,
    /// `model`.
    #[serde(default, deserialize_with = "lenient")]
    pub object: String,
    /// Unix seconds.
    #[serde(default, deserialize_with = "lenient")]
    pub created: u64,
    /// Who serves it.
    #[serde(default, deserialize_with = "lenient")]
    pub owned_by: String,
    /// hearth's extension: whether it is in memory now (no load wait).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub loaded: Option<bool>,
}

impl Model {
    /// A model entry; `loaded` is hearth's extension, `None` leaves it out.
    pub fn new(id: impl Into<String>, created: u64, owned_by: &str, loaded: Option<bool>) -> Self {
        Self {
            id: id.into(),
            object: "model".into(),
            created,
            owned_by: owned_by.into(),
            loaded,
        }
    }
}

/// `GET /v1/models`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    /// `list`.
    #[serde(default, deserialize_with = "lenient")]
    pub object: String,
    /// The models.
    #[serde(default, deserialize_with = "lenient")]
    pub data: Vec<Model>,
}

impl ModelList {
    /// The list of `data`.
    pub fn new(data: Vec<Model>) -> Self {
        Self {
            object: "list".into(),
            data,
        }
    }
}

/// The answer of `POST /tokenize`. `T` is `i32` for token ids; a client that only counts
/// reads `serde::de::IgnoredAny`, since llama-server may send `{"id", "piece"}` objects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizeResponse<T = i32> {
    /// One entry per token.
    pub tokens: Vec<T>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nullable_keys_are_written_and_optional_ones_left_out() {
        let chunk = ChatCompletionChunk {
            id: "c".into(),
            object: "chat.completion.chunk".into(),
            choices: vec![ChunkChoice {
                delta: Delta {
                    content: Some("Hi".into()),
                    ..Delta::default()
                },
                ..ChunkChoice::default()
            }],
            ..ChatCompletionChunk::default()
        };
        assert_eq!(
            serde_json::to_value(&chunk).unwrap(),
            json!({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "",
                   "choices": [{"index": 0, "delta": {"content": "Hi"}, "logprobs": null,
                                "finish_reason": null}]})
        );
        let answer = ChatCompletion {
            choices: vec![ChatChoice {
                finish_reason: Some(FinishReason::ToolCalls),
                ..ChatChoice::default()
            }],
            ..ChatCompletion::default()
        };
        assert_eq!(
            serde_json::to_value(&answer).unwrap()["choices"][0],
            json!({"index": 0, "message": {"role": "assistant", "content": null, "refusal": null},
                   "logprobs": null, "finish_reason": "tool_calls"})
        );
    }

    #[test]
    fn a_foreign_chunk_with_odd_fields_still_reads() {
        let text = r#"{"id": 5, "created": "now", "choices": [{"delta": {"content": "a",
            "tool_calls": "?"}, "finish_reason": "eos"}],
            "usage": {"prompt_tokens": "n", "completion_tokens": 3}, "timings": "soon"}"#;
        let chunk: ChatCompletionChunk = crate::openai::read(text).unwrap();
        assert_eq!((chunk.id.as_str(), chunk.created), ("", 0));
        let choice = &chunk.choices[0];
        assert_eq!(choice.delta.content.as_deref(), Some("a"));
        assert_eq!(choice.delta.tool_calls, None);
        assert_eq!(choice.finish_reason, Some(FinishReason::Other));
        let usage = chunk.usage.unwrap();
        assert_eq!(
            (usage.prompt_tokens, usage.completion_tokens),
            (None, Some(3))
        );
        assert_eq!(chunk.timings, None);
        assert!(crate::openai::read::<ChatCompletionChunk>("not json").is_err());
        assert_eq!(
            crate::openai::read::<ChatCompletionChunk>("[1]").unwrap(),
            ChatCompletionChunk::default()
        );
    }
}
