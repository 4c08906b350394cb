//! Tool calls: how the tools reach the prompt, how a forced call is constrained, and how calls
//! are read back out of the generated text.
//!
//! A model whose own chat template knows tools gets them through the template (as llama-server
//! does with `--jinja`) and answers in its family's syntax: Hermes/Qwen2.5
//! `<tool_call>{json}</tool_call>`, Llama 3.x `{"name", "parameters"}`, Mistral
//! `[TOOL_CALLS][…]`. A template without tools (SmolLM2's) gets the [`ToolFormat::Generic`]
//! treatment: the tools described in a system message and calls written as
//! `{"tool_calls": [{"name", "arguments"}]}`. When a call is required (`tool_choice: required` or
//! a named function) a grammar built from the tools' parameter schemas forces one, so even the
//! 135M default model calls the tool with arguments that validate.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::constraint::Grammar;
use super::structured::SchemaError;
use super::ChatMessage;

/// A function the model may call (OpenAI's `tools[].function`).
#[derive(Clone, Debug, PartialEq)]
pub struct ToolDef {
    /// The function name.
    pub name: String,
    /// What it does, for the model.
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

impl ToolDef {
    /// OpenAI's `{"type": "function", "function": {…}}` shape, which chat templates expect.
    pub fn to_openai(&self) -> Value {
        let mut function = json!({"name": self.name, "parameters": self.parameters});
        if let Some(d) = &self.description {
            function["description"] = json!(d);
        }
        json!({"type": "function", "function": function})
    }
}

/// OpenAI's `tool_choice`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No call: answer in text.
    None,
    /// At least one call.
    Required,
    /// A call of this function.
    Function(String),
}

/// The tools offered with one request.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolRequest {
    /// The functions.
    pub tools: Vec<ToolDef>,
    /// Whether and which to call.
    pub choice: ToolChoice,
    /// Several calls in one answer allowed.
    pub parallel: bool,
}

impl ToolRequest {
    /// Whether calls may come back at all (tools offered and not switched off).
    pub fn active(&self) -> bool {
        !self.tools.is_empty() && self.choice != ToolChoice::None
    }

    /// The tools a call may name: all of them, or the one `tool_choice` names.
    fn callable(&self) -> Vec<&ToolDef> {
        match &self.choice {
            ToolChoice::Function(name) => self.tools.iter().filter(|t| &t.name == name).collect(),
            _ => self.tools.iter().collect(),
        }
    }
}

/// A call in an assistant message (a request's history, or an answer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// `call_…`, echoed by the `tool` message that answers it.
    pub id: String,
    /// The function name.
    pub name: String,
    /// The arguments, a JSON text.
    pub arguments: String,
}

/// The syntax a model writes tool calls in, decided from its chat template.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ToolFormat {
    /// Hermes / Qwen2.5: `<tool_call>{"name", "arguments"}</tool_call>`.
    Hermes,
    /// Llama 3.x: `{"name", "parameters"}`.
    Llama3,
    /// Mistral: `[TOOL_CALLS][{"name", "arguments"}]`.
    Mistral,
    /// hearth's own, for templates without tools: `{"tool_calls": [{"name", "arguments"}]}`.
    Generic,
}

impl ToolFormat {
    /// The format for a template `source` that does (`renders_tools`) or does not show tools.
    pub fn detect(source: &str, renders_tools: bool) -> Self {
        if !renders_tools {
            Self::Generic
        } else if source.contains("<tool_call>") {
            Self::Hermes
        } else if source.contains("[TOOL_CALLS]") {
            Self::Mistral
        } else if source.contains("<|python_tag|>") || source.contains("ipython") {
            Self::Llama3
        } else {
            // A template that shows tools in some other syntax: Hermes is the most common.
            Self::Hermes
        }
    }

    /// Whether tools go through the model's own template.
    pub fn native(self) -> bool {
        self != Self::Generic
    }
}

/// Rewrites the conversation for a template without tool support: assistant calls become their
/// JSON text, tool results become user messages, and (when tools are active) a system message
/// describes the tools and how to call them.
pub fn generic_messages(messages: &[ChatMessage], tools: Option<&ToolRequest>) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = messages
        .iter()
        .map(|m| match m.role.as_str() {
            "assistant" if !m.tool_calls.is_empty() => {
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| json!({"name": c.name, "arguments": arguments_value(&c.arguments)}))
                    .collect();
                let text = json!({"tool_calls": calls}).to_string();
                let content = if m.content.trim().is_empty() {
                    text
                } else {
                    format!("{}\n{text}", m.content)
                };
                ChatMessage::new("assistant", content)
            }
            "tool" => {
                let name = m.name.as_deref().unwrap_or("tool");
                ChatMessage::new("user", format!("The tool `{name}` returned: {}", m.content))
            }
            _ => ChatMessage::new(&m.role, m.content.clone()),
        })
        .collect();
    if let Some(request) = tools.filter(|t| t.active()) {
        let described: Vec<Value> = request
            .callable()
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
            .collect();
        let must = match &request.choice {
            ToolChoice::Required => "You must call a tool.".to_string(),
            ToolChoice::Function(name) => format!("You must call the tool `{name}`."),
            _ => "If a tool helps, call it; otherwise answer normally.".to_string(),
        };
        let text = format!(
            "You can call these tools:\n{}\n\nTo call a tool, answer with only a JSON object: \
             {{\"tool_calls\": [{{\"name\": \"<tool name>\", \"arguments\": {{<arguments>}}}}]}}. {must}",
            serde_json::to_string_pretty(&described).unwrap_or_default()
        );
        match out.first_mut() {
            Some(first) if first.role == "system" => {
                first.content = format!("{}\n\n{text}", first.content);
            }
            _ => out.insert(0, ChatMessage::new("system", text)),
        }
    }
    out
}

/// The arguments text as JSON (templates expect an object), or as a string when it is not JSON.
pub fn arguments_value(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| json!(arguments))
}

/// The grammar that forces a call when `tool_choice` is `required` or names a function;
/// `None` when the model may answer freely.
pub fn call_grammar(
    request: &ToolRequest,
    format: ToolFormat,
) -> Result<Option<Grammar>, SchemaError> {
    if !matches!(
        request.choice,
        ToolChoice::Required | ToolChoice::Function(_)
    ) {
        return Ok(None);
    }
    let callable = request.callable();
    if callable.is_empty() {
        return Err(SchemaError(
            "tool_choice names a function that is not in `tools`".into(),
        ));
    }
    let args_key = if format == ToolFormat::Llama3 {
        "parameters"
    } else {
        "arguments"
    };
    let calls: Vec<Value> = callable
        .iter()
        .map(|t| {
            json!({
                "type": "object",
                "properties": {"name": {"const": t.name}, args_key: parameters_schema(&t.parameters)},
                "required": ["name", args_key],
            })
        })
        .collect();
    let call = if calls.len() == 1 {
        calls[0].clone()
    } else {
        json!({"anyOf": calls})
    };
    let mut list = json!({"type": "array", "items": call, "minItems": 1});
    if !request.parallel {
        list["maxItems"] = json!(1);
    }
    let grammar = match format {
        ToolFormat::Generic => Grammar::JsonSchema(json!({
            "type": "object",
            "properties": {"tool_calls": list},
            "required": ["tool_calls"],
        })),
        ToolFormat::Mistral => Grammar::JsonSchema(list),
        ToolFormat::Llama3 => Grammar::JsonSchema(call),
        ToolFormat::Hermes => {
            // The tags as text (quoted), as the template writes them; the call a JSON Schema
            // inside the grammar.
            let one = r#""<tool_call>\n" call "\n</tool_call>""#;
            let more = if request.parallel {
                format!(" (\"\\n\" {one})*")
            } else {
                String::new()
            };
            let call = super::constraint::with_options(&call);
            Grammar::Lark(format!("start: {one}{more}\ncall: %json {call}\n"))
        }
    };
    Ok(Some(grammar))
}

/// A tool's `parameters`, defaulting to any object.
fn parameters_schema(parameters: &Value) -> Value {
    if parameters.is_null() {
        json!({"type": "object"})
    } else {
        parameters.clone()
    }
}

/// A call read from the output: the function and its arguments (compact JSON text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedCall {
    /// The function name.
    pub name: String,
    /// The arguments as a JSON text.
    pub arguments: String,
}

/// Reads tool calls out of a whole answer in any of the supported syntaxes. Returns the text
/// outside the calls (trimmed, `None` when empty) and the calls; `None` when the answer holds no
/// well-formed call of an offered tool (it is then plain content).
pub fn parse_calls(text: &str, tools: &[ToolDef]) -> Option<(Option<String>, Vec<ParsedCall>)> {
    let known = |name: &str| tools.iter().any(|t| t.name == name);
    if let Some(start) = text.find("<tool_call>") {
        let mut calls = Vec::new();
        let mut rest = &text[start..];
        while let Some(open) = rest.find("<tool_call>") {
            let body = &rest[open + "<tool_call>".len()..];
            let (inner, after) = match body.find("</tool_call>") {
                Some(end) => (&body[..end], &body[end + "</tool_call>".len()..]),
                None => (body, ""),
            };
            calls.extend(calls_in(&serde_json::from_str(inner.trim()).ok()?)?);
            rest = after;
        }
        let before = text[..start].trim();
        let content = (!before.is_empty()).then(|| before.to_string());
        return check(calls, known).map(|c| (content, c));
    }
    let trimmed = text.trim();
    let trimmed = trimmed
        .strip_prefix("[TOOL_CALLS]")
        .or_else(|| trimmed.strip_prefix("<|python_tag|>"))
        .unwrap_or(trimmed)
        .trim();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return None;
    }
    let value: Value = serde_json::from_str(trimmed).ok()?;
    check(calls_in(&value)?, known).map(|c| (None, c))
}

fn check(calls: Vec<ParsedCall>, known: impl Fn(&str) -> bool) -> Option<Vec<ParsedCall>> {
    (!calls.is_empty() && calls.iter().all(|c| known(&c.name))).then_some(calls)
}

/// The calls in one JSON value: a call, a list of calls, or `{"tool_calls": [...]}`.
fn calls_in(value: &Value) -> Option<Vec<ParsedCall>> {
    match value {
        Value::Array(items) => items.iter().map(one_call).collect(),
        Value::Object(map) => match map.get("tool_calls") {
            Some(Value::Array(items)) => items.iter().map(one_call).collect(),
            Some(_) => None,
            None => one_call(value).map(|c| vec![c]),
        },
        _ => None,
    }
}

fn one_call(value: &Value) -> Option<ParsedCall> {
    // OpenAI's own shape may come back too: {"function": {"name", "arguments"}}.
    let value = value.get("function").unwrap_or(value);
    let name = value.get("name")?.as_str()?.to_string();
    let args = value
        .get("arguments")
        .or_else(|| value.get("parameters"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let arguments = match args {
        // Arguments already encoded as a JSON text: keep them if they parse.
        Value::String(s) => serde_json::from_str::<Value>(&s).ok()?.to_string(),
        other => other.to_string(),
    };
    Some(ParsedCall { name, arguments })
}

/// Markers whose presence at the start of an answer means it may be a call.
const LEADS: &[&str] = &["<tool_call>", "[TOOL_CALLS]", "<|python_tag|>", "{", "["];
/// The marker that may open a call after some text (Hermes models write prose first).
const INLINE: &str = "<tool_call>";

/// Splits a streamed answer into content that can go out at once and a possible tool call held
/// back until the end: an answer that starts like a call is held whole; prose streams, except
/// from an inline `<tool_call>` on.
#[derive(Debug, Default)]
pub struct ToolStream {
    /// Held text: the undecided start, or the captured call.
    held: String,
    state: StreamState,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum StreamState {
    #[default]
    Undecided,
    Content,
    Capturing,
}

impl ToolStream {
    /// Adds generated text; returns the content that can be sent now.
    pub fn push(&mut self, piece: &str) -> String {
        self.held.push_str(piece);
        loop {
            match self.state {
                StreamState::Capturing => return String::new(),
                StreamState::Undecided => {
                    let t = self.held.trim_start();
                    if t.is_empty() || LEADS.iter().any(|m| m.starts_with(t) && m.len() > t.len()) {
                        return String::new();
                    }
                    self.state = if LEADS.iter().any(|m| t.starts_with(m)) {
                        StreamState::Capturing
                    } else {
                        StreamState::Content
                    };
                }
                StreamState::Content => {
                    if let Some(at) = self.held.find(INLINE) {
                        let out: String = self.held.drain(..at).collect();
                        self.state = StreamState::Capturing;
                        return out;
                    }
                    // Hold back a tail that may be the start of the inline marker.
                    let keep = (1..INLINE.len())
                        .rev()
                        .find(|&n| self.held.ends_with(&INLINE[..n]))
                        .unwrap_or(0);
                    let cut = self.held.len() - keep;
                    return self.held.drain(..cut).collect();
                }
            }
        }
    }

    /// Ends the answer: the content still to send and the calls found (empty when none).
    pub fn finish(self, tools: &[ToolDef]) -> (String, Vec<ParsedCall>) {
        if self.state == StreamState::Capturing {
            if let Some((content, calls)) = parse_calls(&self.held, tools) {
                return (content.unwrap_or_default(), calls);
            }
        }
        (self.held, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<ToolDef> {
        vec![ToolDef {
            name: "get_weather".into(),
            description: Some("Weather for a city".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        }]
    }

    #[test]
    fn every_family_syntax_parses() {
        let t = tools();
        let want = vec![ParsedCall {
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        }];
        for text in [
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
            "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
            "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
            "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]",
            " {\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}]}",
        ] {
            let (content, calls) = parse_calls(text, &t).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(content, None, "{text}");
            assert_eq!(calls, want, "{text}");
        }
    }

    #[test]
    fn prose_unknown_tools_and_broken_json_are_content() {
        let t = tools();
        assert_eq!(parse_calls("Paris is sunny.", &t), None);
        assert_eq!(
            parse_calls("{\"name\": \"other\", \"arguments\": {}}", &t),
            None
        );
        assert_eq!(parse_calls("<tool_call>{\"name\": </tool_call>", &t), None);
        let (content, calls) = parse_calls(
            "Let me check. <tool_call>{\"name\": \"get_weather\", \"arguments\": {}}</tool_call>",
            &t,
        )
        .unwrap();
        assert_eq!(content.as_deref(), Some("Let me check."));
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn streaming_holds_back_calls_and_passes_prose() {
        let t = tools();
        let mut s = ToolStream::default();
        let mut out = String::new();
        for piece in [
            "Hel",
            "lo <tool",
            "_call>{\"name\": \"get_weather\", ",
            "\"arguments\": {}}</tool_call>",
        ] {
            out.push_str(&s.push(piece));
        }
        assert_eq!(out, "Hello ");
        let (rest, calls) = s.finish(&t);
        assert_eq!(rest, "");
        assert_eq!(calls.len(), 1);

        let mut s = ToolStream::default();
        assert_eq!(s.push(" {\"a\""), "");
        let (rest, calls) = s.finish(&t);
        assert_eq!((rest.as_str(), calls.len()), (" {\"a\"", 0));

        let mut s = ToolStream::default();
        assert_eq!(s.push("Hi <"), "Hi ");
        assert_eq!(s.push("b>"), "<b>");
    }

    #[test]
    fn forced_calls_have_a_grammar_per_format() {
        let mut request = ToolRequest {
            tools: tools(),
            choice: ToolChoice::Auto,
            parallel: false,
        };
        assert_eq!(call_grammar(&request, ToolFormat::Generic), Ok(None));
        request.choice = ToolChoice::Required;
        for format in [
            ToolFormat::Generic,
            ToolFormat::Hermes,
            ToolFormat::Llama3,
            ToolFormat::Mistral,
        ] {
            match call_grammar(&request, format).unwrap().unwrap() {
                Grammar::Lark(g) => {
                    assert_eq!(format, ToolFormat::Hermes);
                    assert!(g.starts_with("start: \"<tool_call>\\n\" call"), "{g}");
                    assert!(g.contains("call: %json {"), "{g}");
                }
                Grammar::JsonSchema(schema) => {
                    assert_ne!(format, ToolFormat::Hermes);
                    assert!(schema.to_string().contains("get_weather"), "{schema}");
                }
                Grammar::Regex(rx) => panic!("{format:?}: a regex {rx}"),
            }
        }
        request.choice = ToolChoice::Function("nope".into());
        assert!(call_grammar(&request, ToolFormat::Generic).is_err());
    }

    #[test]
    fn generic_history_turns_calls_and_results_into_text() {
        let mut call = ChatMessage::new("assistant", "");
        call.tool_calls = vec![ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: "{\"city\":\"Paris\"}".into(),
        }];
        let mut result = ChatMessage::new("tool", "sunny");
        result.name = Some("get_weather".into());
        let request = ToolRequest {
            tools: tools(),
            choice: ToolChoice::Auto,
            parallel: true,
        };
        let out = generic_messages(
            &[ChatMessage::new("user", "Weather?"), call, result],
            Some(&request),
        );
        assert_eq!(out[0].role, "system");
        assert!(out[0].content.contains("get_weather"));
        assert!(out[2].content.contains("\"tool_calls\""));
        assert_eq!(out[3].role, "user");
        assert!(out[3].content.contains("sunny"));
    }
}
