//! Renders a model's own Jinja chat template (stored in its GGUF) with minijinja, as
//! llama-server does with `--jinja`. llama.cpp's built-in template matcher would drop details
//! such as SmolLM2's default system prompt, so hearth does not use it.

use minijinja::{context, Environment};
use serde_json::{json, Value};

use super::tools::ToolFormat;
use super::{ChatMessage, EngineError};

/// Used when a GGUF carries no template: plain ChatML, which most small instruct models know.
const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// A compiled chat template plus the special-token texts templates refer to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    tool_format: ToolFormat,
}

impl ChatTemplate {
    /// Compiles `source` (or ChatML when `None`).
    pub fn new(
        source: Option<&str>,
        bos_token: String,
        eos_token: String,
    ) -> Result<Self, EngineError> {
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    message,
                ))
            },
        );
        let source = source.unwrap_or(CHATML);
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| EngineError::Template(e.to_string()))?;
        let mut template = Self {
            env,
            bos_token,
            eos_token,
            tool_format: ToolFormat::Generic,
        };
        template.tool_format = ToolFormat::detect(source, template.renders_tools());
        Ok(template)
    }

    /// The syntax this model writes tool calls in.
    pub fn tool_format(&self) -> ToolFormat {
        self.tool_format
    }

    /// Whether the template shows the model the tools it is given: render a probe tool and
    /// look for its name, as llama.cpp's template capability check does.
    fn renders_tools(&self) -> bool {
        const PROBE: &str = "hearth_probe_function";
        let tools = json!([{"type": "function", "function": {
            "name": PROBE, "description": "probe",
            "parameters": {"type": "object", "properties": {}}}}]);
        self.render_with_tools(&[ChatMessage::new("user", "hi")], Some(&tools), true)
            .is_ok_and(|text| text.contains(PROBE))
    }

    /// Renders the conversation, ending with the assistant's turn opened when
    /// `add_generation_prompt` is set.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, EngineError> {
        self.render_with_tools(messages, None, add_generation_prompt)
    }

    /// Renders with `tools` (OpenAI's `tools` array) in the template context, as llama-server
    /// passes them; messages carry their tool calls with arguments as objects.
    pub fn render_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&Value>,
        add_generation_prompt: bool,
    ) -> Result<String, EngineError> {
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| EngineError::Template(e.to_string()))?;
        let messages: Vec<Value> = messages.iter().map(|m| m.to_template_value()).collect();
        template
            .render(context! {
                messages => messages,
                tools => tools,
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos_token,
                eos_token => self.eos_token,
            })
            .map_err(|e| EngineError::Template(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_fallback_renders_roles_and_generation_prompt() {
        let t = ChatTemplate::new(None, String::new(), String::new()).unwrap();
        let out = t.render(&[ChatMessage::new("user", "hi")], true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn tool_support_is_detected_by_rendering_a_probe() {
        let plain = ChatTemplate::new(None, String::new(), String::new()).unwrap();
        assert_eq!(plain.tool_format(), ToolFormat::Generic);
        let hermes = "{% if tools %}<tools>{% for t in tools %}{{ t.function | tojson }}{% endfor %}</tools> Use <tool_call></tool_call>{% endif %}{% for m in messages %}{{ m.role }}: {{ m.content }}{% for c in m.tool_calls or [] %}<tool_call>{{ c.function.name }} {{ c.function.arguments | tojson }}</tool_call>{% endfor %}\n{% endfor %}";
        let t = ChatTemplate::new(Some(hermes), String::new(), String::new()).unwrap();
        assert_eq!(t.tool_format(), ToolFormat::Hermes);
        let mut call = ChatMessage::new("assistant", "");
        call.tool_calls = vec![crate::engine::ToolCall {
            id: "call_1".into(),
            name: "f".into(),
            arguments: "{\"x\":1}".into(),
        }];
        let out = t.render(&[call], false).unwrap();
        assert!(out.contains(r#"<tool_call>f {"x":1}</tool_call>"#), "{out}");
    }

    #[test]
    fn python_style_methods_and_raise_exception_work() {
        let src = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}{% endif %}{{ messages[0]['content'].strip() }}";
        let t = ChatTemplate::new(Some(src), String::new(), String::new()).unwrap();
        assert_eq!(
            t.render(&[ChatMessage::new("user", "  x ")], false)
                .unwrap(),
            "x"
        );
        let err = t
            .render(&[ChatMessage::new("system", "x")], false)
            .unwrap_err();
        assert!(err.to_string().contains("first must be user"));
    }
}
