//! The request hearth sends upstream: one streaming chat or text completion with usage, the
//! sampling fields only where set, so the upstream's own defaults apply.

use serde::Serialize;

use super::Endpoint;
use crate::engine::{ChatMessage, GenerateRequest, Prompt, SamplingParams};
use crate::openai;

/// The OpenAI request body for `request`, and the endpoint it goes to.
pub(super) fn request_body(model: &str, request: &GenerateRequest) -> (Endpoint, RequestBody) {
    let params = request_params(&request.sampling);
    match &request.prompt {
        Prompt::Chat(messages) => (
            Endpoint::Chat,
            RequestBody::Chat(openai::ChatCompletionRequest {
                model: model.to_string(),
                messages: messages.iter().map(wire_message).collect(),
                params,
            }),
        ),
        Prompt::Text(text) => (
            Endpoint::Completions,
            RequestBody::Text(openai::CompletionRequest {
                model: model.to_string(),
                prompt: text.clone(),
                params,
            }),
        ),
    }
}

/// The body of either endpoint.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum RequestBody {
    Chat(openai::ChatCompletionRequest),
    Text(openai::CompletionRequest),
}

/// A message of the history as the API sends it (arguments as JSON text).
fn wire_message(m: &ChatMessage) -> openai::RequestMessage {
    openai::RequestMessage {
        role: m.role.clone(),
        content: m.content.clone(),
        tool_calls: m
            .tool_calls
            .iter()
            .map(|c| openai::ToolCall::function(&c.id, &c.name, &c.arguments))
            .collect(),
        tool_call_id: m.tool_call_id.clone(),
        name: m.name.clone(),
    }
}

/// Streaming with usage, and the sampling fields; optional ones only when set, so the
/// upstream's defaults apply.
fn request_params(sampling: &SamplingParams) -> openai::RequestParams {
    openai::RequestParams {
        stream: true,
        stream_options: Some(openai::StreamOptions {
            include_usage: true,
        }),
        temperature: Some(sampling.temperature),
        top_p: Some(sampling.top_p),
        top_k: (sampling.top_k > 0).then_some(sampling.top_k),
        seed: sampling.seed.map(u64::from),
        max_tokens: sampling.max_tokens.map(u64::from),
        stop: (!sampling.stop.is_empty()).then(|| sampling.stop.clone()),
        // Only sent when asked for (fixed-length benchmarks); vLLM and llama-server honour it.
        ignore_eos: sampling.ignore_eos,
        // OpenAI's formats passed on unchanged (the upstream enforces them its own way);
        // hearth's regex and grammar in vLLM's terms.
        response_format: sampling
            .response_format
            .clone()
            .filter(|f| hearth_extension(f).is_none()),
        structured_outputs: sampling
            .response_format
            .as_ref()
            .and_then(hearth_extension)
            .map(|(kind, text)| serde_json::json!({ kind: text })),
    }
}

/// A `response_format` of hearth's own types (`regex`, `grammar`): the type and its text.
fn hearth_extension(format: &serde_json::Value) -> Option<(&str, &serde_json::Value)> {
    let kind = format.get("type")?.as_str()?;
    matches!(kind, "regex" | "grammar").then_some(())?;
    Some((kind, format.get(kind)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_bodies_follow_the_openai_api() {
        let request = GenerateRequest {
            prompt: Prompt::Chat(vec![crate::engine::ChatMessage::new("user", "hi")]),
            sampling: SamplingParams::default(),
            tools: None,
        };
        let (endpoint, body) = request_body("m", &request);
        let body = serde_json::to_value(body).unwrap();
        assert_eq!(endpoint, Endpoint::Chat);
        assert_eq!(
            body,
            json!({
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": true,
                "stream_options": {"include_usage": true},
                "temperature": 0.0,
                "top_p": 1.0,
            })
        );
        let request = GenerateRequest {
            prompt: Prompt::Text("once".into()),
            sampling: SamplingParams {
                top_k: 40,
                seed: Some(7),
                max_tokens: Some(16),
                stop: vec!["\n".into()],
                ignore_eos: true,
                response_format: Some(json!({"type": "json_object"})),
                ..SamplingParams::default()
            },
            tools: None,
        };
        let (endpoint, body) = request_body("m", &request);
        let body = serde_json::to_value(body).unwrap();
        assert_eq!(endpoint, Endpoint::Completions);
        assert_eq!(body["prompt"], "once");
        assert_eq!(body["top_k"], 40);
        assert_eq!(body["seed"], 7);
        assert_eq!(body["max_tokens"], 16);
        assert_eq!(body["stop"], json!(["\n"]));
        assert_eq!(body["ignore_eos"], true);
        assert_eq!(body["response_format"], json!({"type": "json_object"}));
    }
}
