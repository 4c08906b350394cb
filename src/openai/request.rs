//! Requests as hearth sends them (upstream backend, benchmark client, judge) and as the mock
//! reads them. The server parses incoming requests itself (`server::request`), stricter about
//! values and looser about shapes than these types need to be.
//!
//! Optional fields are omitted when unset, so the receiving server's own defaults apply.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lenient::lenient;
use super::response::ToolCall;

/// `POST /v1/chat/completions`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// The model name the server knows.
    #[serde(default, deserialize_with = "lenient")]
    pub model: String,
    /// The conversation.
    #[serde(default, deserialize_with = "lenient")]
    pub messages: Vec<RequestMessage>,
    /// Everything but the prompt, shared with [`CompletionRequest`].
    #[serde(flatten)]
    pub params: RequestParams,
}

/// `POST /v1/completions`: raw text continued as is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// The model name the server knows.
    #[serde(default, deserialize_with = "lenient")]
    pub model: String,
    /// The text to continue.
    #[serde(default, deserialize_with = "lenient")]
    pub prompt: String,
    /// Everything but the prompt, shared with [`ChatCompletionRequest`].
    #[serde(flatten)]
    pub params: RequestParams,
}

/// Sampling and streaming fields of both requests; each sender sets what it controls.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestParams {
    /// Token limit.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_tokens: Option<u64>,
    /// Sampling temperature.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub temperature: Option<f32>,
    /// Nucleus mass.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub top_p: Option<f32>,
    /// Top-k: not in OpenAI's API, but vLLM, Ollama and llama-server accept it.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub top_k: Option<i32>,
    /// Sampling seed.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub seed: Option<u64>,
    /// Strings that end generation.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub stop: Option<Vec<String>>,
    /// Stream as server-sent events (always written: servers differ in their default).
    #[serde(default, deserialize_with = "lenient")]
    pub stream: bool,
    /// Streaming options (a final usage chunk).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_options: Option<StreamOptions>,
    /// Generate exactly `max_tokens` (vLLM and llama-server extension; fixed-length
    /// benchmarks). Written only when set, for servers that refuse unknown fields.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub ignore_eos: bool,
    /// Structured output, passed on unchanged: each server enforces it its own way.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_format: Option<Value>,
    /// vLLM's structured outputs (`{"regex": …}`, `{"grammar": …}`): how hearth's `regex` and
    /// `grammar` response formats reach a vLLM upstream, which has no such `response_format`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub structured_outputs: Option<Value>,
}

/// `stream_options`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Ask for a last chunk with token usage: counts from the server's tokenizer instead of
    /// counting chunks.
    #[serde(default, deserialize_with = "lenient")]
    pub include_usage: bool,
}

/// One message of a request's conversation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestMessage {
    /// `system`, `user`, `assistant` or `tool`.
    #[serde(default, deserialize_with = "lenient")]
    pub role: String,
    /// The text (a string; content parts are not sent).
    #[serde(default, deserialize_with = "lenient")]
    pub content: String,
    /// Calls an assistant message made, their arguments as JSON text.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message: the call it answers.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub tool_call_id: Option<String>,
    /// For a `tool` message: the function that answered.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
}

impl RequestMessage {
    /// A plain text message.
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            ..Self::default()
        }
    }
}

/// `POST /tokenize` (llama-server's, which hearth's server offers too, with the model since
/// it serves several): how clients count tokens a server did not report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizeRequest {
    /// The model whose tokenizer counts.
    pub model: String,
    /// The text to tokenize.
    pub content: String,
    /// Add BOS and the like (llama-server); hearth never does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_special: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unset_options_are_left_out() {
        let request = ChatCompletionRequest {
            model: "m".into(),
            messages: vec![RequestMessage::new("user", "hi")],
            params: RequestParams {
                temperature: Some(0.0),
                ..RequestParams::default()
            },
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                   "temperature": 0.0, "stream": false})
        );
    }

    #[test]
    fn odd_fields_read_as_absent() {
        let request: ChatCompletionRequest = super::super::read(
            r#"{"model":"m","max_tokens":"many","stream":true,"stream_options":{"include_usage":1},
                "messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}"#,
        )
        .unwrap();
        assert_eq!(request.params.max_tokens, None);
        assert!(request.params.stream);
        assert!(!request.params.stream_options.unwrap().include_usage);
        assert_eq!(request.messages[0].content, "");
    }
}
