//! Requests as clients send them to hearth's server, checked and turned into engine types.
//!
//! Kept apart from the shared wire types (`crate::openai`) on purpose: the server accepts more
//! shapes than hearth ever sends (content parts, `developer` roles, a stop string or a list,
//! arguments as text or object), ignores unknown fields, and answers every invalid value with
//! a 400 that names the parameter.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use crate::engine::structured;
use crate::engine::{ChatMessage, SamplingParams, ToolCall, ToolChoice, ToolDef, ToolRequest};

/// `stop`: a string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a final chunk with token usage.
    #[serde(default)]
    pub include_usage: bool,
}

/// Sampling and streaming fields shared by both endpoints.
#[derive(Debug, Default, Deserialize)]
pub struct CommonParams {
    /// The model alias.
    pub model: Option<String>,
    /// Stream as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// Token limit.
    pub max_tokens: Option<i64>,
    /// Token limit (newer name).
    pub max_completion_tokens: Option<i64>,
    /// Temperature, 0–2.
    pub temperature: Option<f64>,
    /// Nucleus mass, (0, 1].
    pub top_p: Option<f64>,
    /// Top-k (llama.cpp extension).
    pub top_k: Option<i64>,
    /// Seed for sampling.
    pub seed: Option<i64>,
    /// Stop strings.
    pub stop: Option<Stop>,
    /// Number of choices; only 1 is offered.
    pub n: Option<i64>,
    /// Generate a fixed number of tokens (benchmarks; vLLM extension).
    #[serde(default)]
    pub ignore_eos: bool,
    /// Structured output: `{"type": "text" | "json_object" | "json_schema", …}`, and hearth's
    /// `{"type": "regex", "regex": …}` and `{"type": "grammar", "grammar": …}` (Lark).
    pub response_format: Option<Value>,
    /// vLLM's structured outputs (`{"json" | "regex" | "grammar" | "choice": …}`), accepted so
    /// scripts written for vLLM run unchanged.
    pub structured_outputs: Option<Value>,
    /// vLLM's older spelling of the same: `guided_json`.
    pub guided_json: Option<Value>,
    /// vLLM's `guided_regex`.
    pub guided_regex: Option<Value>,
    /// vLLM's `guided_grammar` (Lark here).
    pub guided_grammar: Option<Value>,
    /// vLLM's `guided_choice`: the answer is one of these strings.
    pub guided_choice: Option<Value>,
}

impl CommonParams {
    /// The model alias, required.
    pub fn model(&self) -> Result<&str, ApiError> {
        match self.model.as_deref() {
            Some(m) if !m.trim().is_empty() => Ok(m),
            _ => Err(ApiError::bad_param("model", "`model` is required")),
        }
    }

    /// Validated sampling parameters.
    pub fn sampling(&self, default_max_tokens: Option<u32>) -> Result<SamplingParams, ApiError> {
        if let Some(n) = self.n {
            if n != 1 {
                return Err(ApiError::bad_param("n", "only n = 1 is supported"));
            }
        }
        let temperature = self.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::bad_param(
                "temperature",
                "temperature must be between 0 and 2",
            ));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::bad_param("top_p", "top_p must be in (0, 1]"));
        }
        let top_k = self.top_k.unwrap_or(0);
        if top_k < 0 {
            return Err(ApiError::bad_param("top_k", "top_k must be 0 or more"));
        }
        let max_tokens = match self.max_completion_tokens.or(self.max_tokens) {
            Some(m) if m < 1 => {
                return Err(ApiError::bad_param(
                    "max_tokens",
                    "max_tokens must be at least 1",
                ))
            }
            Some(m) => Some(m.min(u32::MAX as i64) as u32),
            None => default_max_tokens,
        };
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) if v.len() > 4 => {
                return Err(ApiError::bad_param("stop", "at most 4 stop sequences"))
            }
            Some(Stop::Many(v)) => v.clone(),
        };
        let response_format = self.response_format()?;
        Ok(SamplingParams {
            response_format,
            temperature: temperature as f32,
            top_p: top_p as f32,
            top_k: top_k.min(i32::MAX as i64) as i32,
            // Seeds are 64-bit in the API and 32-bit in llama.cpp; keep the low bits.
            seed: self.seed.map(|s| s as u32),
            max_tokens,
            stop,
            ignore_eos: self.ignore_eos,
        })
    }

    /// The `response_format` to enforce: OpenAI's field, or vLLM's structured outputs in
    /// hearth's terms (one of the two; `text` means none).
    fn response_format(&self) -> Result<Option<Value>, ApiError> {
        let vllm = self.vllm_format()?;
        let format = match &self.response_format {
            None | Some(Value::Null) => return Ok(vllm),
            Some(v) => v,
        };
        // The engine's own reading of the format: one place says what is valid.
        match structured::response_format_constraint(format) {
            Err(e) => return Err(response_format_error(e.0)),
            Ok(None) => return Ok(vllm),
            Ok(Some(_)) => {}
        }
        if vllm.is_some() {
            return Err(response_format_error(
                "give either response_format or vLLM's structured outputs (structured_outputs, guided_*), not both",
            ));
        }
        Ok(Some(format.clone()))
    }

    /// vLLM's structured outputs as a `response_format`: `structured_outputs` or one
    /// `guided_*` field, at most one constraint in all.
    fn vllm_format(&self) -> Result<Option<Value>, ApiError> {
        let mut given: Vec<(&str, String, &Value)> = Vec::new();
        if let Some(outputs) = self.structured_outputs.as_ref().filter(|v| !v.is_null()) {
            let Some(map) = outputs.as_object() else {
                return Err(ApiError::bad_param(
                    "structured_outputs",
                    "structured_outputs must be an object",
                ));
            };
            for key in ["json", "regex", "grammar", "choice"] {
                if let Some(v) = map.get(key).filter(|v| !v.is_null()) {
                    given.push((key, format!("structured_outputs.{key}"), v));
                }
            }
        }
        for (key, field) in [
            ("json", &self.guided_json),
            ("regex", &self.guided_regex),
            ("grammar", &self.guided_grammar),
            ("choice", &self.guided_choice),
        ] {
            if let Some(v) = field.as_ref().filter(|v| !v.is_null()) {
                given.push((key, format!("guided_{key}"), v));
            }
        }
        let (key, param, value) = match given.as_slice() {
            [] => return Ok(None),
            [one] => one.clone(),
            _ => {
                let names: Vec<&str> = given.iter().map(|(_, p, _)| p.as_str()).collect();
                return Err(ApiError::bad_param(
                    "structured_outputs",
                    format!(
                        "give one structured output constraint, not {}",
                        names.join(" and ")
                    ),
                ));
            }
        };
        let text = |what: &str| {
            value.as_str().map(str::to_string).ok_or_else(|| {
                ApiError::bad_param(&param, format!("`{param}` must be a string ({what})"))
            })
        };
        Ok(Some(match key {
            "json" => {
                // A schema, or (as vLLM accepts) its JSON text.
                let schema = match value {
                    Value::String(s) => serde_json::from_str(s).map_err(|e| {
                        ApiError::bad_param(&param, format!("`{param}` is not a JSON schema: {e}"))
                    })?,
                    v => v.clone(),
                };
                serde_json::json!({"type": "json_schema", "json_schema": {"name": "structured_output", "schema": schema}})
            }
            "regex" => serde_json::json!({"type": "regex", "regex": text("a regular expression")?}),
            "grammar" => serde_json::json!({"type": "grammar", "grammar": text("a Lark grammar")?}),
            _ => {
                let choices: Vec<&str> = value
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if choices.is_empty() || value.as_array().is_some_and(|a| a.len() != choices.len())
                {
                    return Err(ApiError::bad_param(
                        &param,
                        format!("`{param}` must be a non-empty list of strings"),
                    ));
                }
                let alternatives: Vec<String> = choices.iter().map(|c| regex::escape(c)).collect();
                serde_json::json!({"type": "regex", "regex": format!("({})", alternatives.join("|"))})
            }
        }))
    }

    /// Whether a usage chunk was asked for.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }
}

/// A 400 about `response_format`, in the shape OpenAI uses for it (no code).
fn response_format_error(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
        param: Some("response_format".into()),
        code: None,
    }
}

/// A 400 about a tool parameter.
fn tool_error(param: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
        param: Some(param.into()),
        code: None,
    }
}

/// A message's content: a string, or a list of parts of which text parts are used.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts (`{"type": "text", "text": ...}`).
    Parts(Vec<Value>),
}

/// One incoming chat message.
#[derive(Debug, Deserialize)]
pub struct InMessage {
    /// Author role.
    pub role: String,
    /// Content (may be null for assistant messages).
    pub content: Option<Content>,
    /// Calls an assistant message made.
    pub tool_calls: Option<Vec<InToolCall>>,
    /// For a `tool` message: the call it answers.
    pub tool_call_id: Option<String>,
    /// For a `tool` message: the function name (optional in the API).
    pub name: Option<String>,
}

/// One call in an assistant message of the history.
#[derive(Debug, Deserialize)]
pub struct InToolCall {
    /// The call id.
    pub id: Option<String>,
    /// The function called.
    pub function: InFunction,
}

/// The function of a call.
#[derive(Debug, Deserialize)]
pub struct InFunction {
    /// Its name.
    pub name: String,
    /// Its arguments: a JSON text (an object is accepted too).
    #[serde(default)]
    pub arguments: Value,
}

/// `POST /v1/chat/completions` body.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Option<Vec<InMessage>>,
    /// Functions the model may call.
    pub tools: Option<Vec<Value>>,
    /// `auto`, `none`, `required` or `{"type": "function", "function": {"name"}}`.
    pub tool_choice: Option<Value>,
    /// Whether several calls may come in one answer (default true).
    pub parallel_tool_calls: Option<bool>,
    /// Everything else.
    #[serde(flatten)]
    pub common: CommonParams,
}

impl ChatRequest {
    /// Validated messages, text only.
    pub fn messages(&self) -> Result<Vec<ChatMessage>, ApiError> {
        let messages = match &self.messages {
            Some(m) if !m.is_empty() => m,
            _ => {
                return Err(ApiError::bad_param(
                    "messages",
                    "`messages` must be a non-empty array",
                ))
            }
        };
        messages
            .iter()
            .map(|m| {
                let role = match m.role.as_str() {
                    "developer" => "system",
                    r @ ("system" | "user" | "assistant" | "tool") => r,
                    other => {
                        return Err(ApiError::bad_param(
                            "messages",
                            format!("unknown role `{other}`"),
                        ))
                    }
                };
                let content = match &m.content {
                    None => String::new(),
                    Some(Content::Text(t)) => t.clone(),
                    Some(Content::Parts(parts)) => {
                        let mut text = String::new();
                        for part in parts {
                            match part.get("type").and_then(Value::as_str) {
                                Some("text") => text.push_str(
                                    part.get("text").and_then(Value::as_str).unwrap_or_default(),
                                ),
                                other => {
                                    return Err(ApiError::bad_param(
                                        "messages",
                                        format!(
                                        "content part type {other:?} is not supported (text only)"
                                    ),
                                    ))
                                }
                            }
                        }
                        text
                    }
                };
                let mut message = ChatMessage::new(role, content);
                for (i, call) in m.tool_calls.iter().flatten().enumerate() {
                    let arguments = match &call.function.arguments {
                        Value::String(s) => s.clone(),
                        Value::Null => "{}".to_string(),
                        other => other.to_string(),
                    };
                    message.tool_calls.push(ToolCall {
                        id: call.id.clone().unwrap_or_else(|| format!("call_{i}")),
                        name: call.function.name.clone(),
                        arguments,
                    });
                }
                message.tool_call_id = m.tool_call_id.clone();
                message.name = m.name.clone();
                Ok(message)
            })
            .collect::<Result<Vec<_>, ApiError>>()
            .map(name_tool_results)
    }

    /// The tools offered and how to use them; `None` when the request has no tools.
    pub fn tools(&self) -> Result<Option<ToolRequest>, ApiError> {
        let Some(list) = &self.tools else {
            if self
                .tool_choice
                .as_ref()
                .is_some_and(|c| c != "none" && c != "auto")
            {
                return Err(tool_error(
                    "tool_choice",
                    "tool_choice needs `tools` to choose from",
                ));
            }
            return Ok(None);
        };
        let mut tools = Vec::new();
        for (i, tool) in list.iter().enumerate() {
            let kind = tool
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("function");
            if kind != "function" {
                return Err(tool_error(
                    "tools",
                    format!("tools[{i}] has type `{kind}`; only `function` tools are supported"),
                ));
            }
            let function = tool.get("function").unwrap_or(&Value::Null);
            let Some(name) = function.get("name").and_then(Value::as_str) else {
                return Err(tool_error(
                    "tools",
                    format!("tools[{i}].function.name is required"),
                ));
            };
            tools.push(ToolDef {
                name: name.to_string(),
                description: function
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                parameters: function.get("parameters").cloned().unwrap_or(Value::Null),
            });
        }
        let choice = match &self.tool_choice {
            None => ToolChoice::Auto,
            Some(Value::String(s)) => match s.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                other => {
                    return Err(tool_error(
                        "tool_choice",
                        format!("tool_choice `{other}` is not one of auto, none, required"),
                    ))
                }
            },
            Some(v) => {
                let name = v
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        tool_error(
                            "tool_choice",
                            "tool_choice must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": …}}",
                        )
                    })?;
                if !tools.iter().any(|t| t.name == name) {
                    return Err(tool_error(
                        "tool_choice",
                        format!("tool_choice names `{name}`, which is not in `tools`"),
                    ));
                }
                ToolChoice::Function(name.to_string())
            }
        };
        Ok(Some(ToolRequest {
            tools,
            choice,
            parallel: self.parallel_tool_calls.unwrap_or(true),
        }))
    }
}

/// Gives each `tool` message the name of the function whose call it answers (templates and the
/// generic tool prompt show it; the API only carries the call id).
fn name_tool_results(mut messages: Vec<ChatMessage>) -> Vec<ChatMessage> {
    let mut names = std::collections::HashMap::new();
    for m in &mut messages {
        for call in &m.tool_calls {
            names.insert(call.id.clone(), call.name.clone());
        }
        if m.role == "tool" && m.name.is_none() {
            m.name = m
                .tool_call_id
                .as_ref()
                .and_then(|id| names.get(id))
                .cloned();
        }
    }
    messages
}

/// `prompt`: a string or a list holding one string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PromptField {
    /// One prompt.
    One(String),
    /// A batch of prompts (only one supported).
    Many(Vec<String>),
}

/// `POST /v1/completions` body.
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    /// The prompt.
    pub prompt: Option<PromptField>,
    /// Everything else.
    #[serde(flatten)]
    pub common: CommonParams,
}

impl CompletionRequest {
    /// The one prompt string.
    pub fn prompt(&self) -> Result<String, ApiError> {
        match &self.prompt {
            Some(PromptField::One(p)) => Ok(p.clone()),
            Some(PromptField::Many(v)) if v.len() == 1 => Ok(v[0].clone()),
            Some(PromptField::Many(_)) => Err(ApiError::bad_param(
                "prompt",
                "exactly one prompt per request is supported",
            )),
            None => Err(ApiError::bad_param("prompt", "`prompt` is required")),
        }
    }
}

/// Parses a JSON body into `T`, turning any failure into an OpenAI-shaped 400.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the request body is not valid JSON for this endpoint: {e}"),
        )
    })
}
