//! Renders a model's chat template with minijinja, as llama-server does with `--jinja`: the
//! GGUF's own Jinja template when it carries one (llama.cpp's built-in template matcher would
//! drop details such as SmolLM2's default system prompt), else its family's template where
//! llama.cpp knows one (Gemma), else ChatML. [`TemplateChoice`] records which one and why, so
//! `model info` and later callers can say it.

use std::fmt;

use minijinja::{context, Environment};
use serde::Serialize;
use serde_json::{json, Value};

use super::tools::ToolFormat;
use super::{ChatMessage, EngineError};

/// Used when a GGUF carries no template and its family has none known: plain ChatML, which most
/// small instruct models know.
const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// Gemma's turn format, as llama.cpp's built-in `gemma` template writes it (`llama-chat.cpp`):
/// `<start_of_turn>ROLE\n…<end_of_turn>\n`, the assistant called `model`, contents trimmed, and
/// system messages (Gemma has no system role) folded into the next user turn followed by a
/// blank line. No BOS: Gemma's tokenizer adds it (`add_bos_token`), and a template that wrote
/// one too would double it.
const GEMMA: &str = r"{%- set ns = namespace(system='') -%}
{%- for m in messages -%}
{%- if m.role == 'system' -%}
{%- set ns.system = ns.system + (m.content | trim) -%}
{%- else -%}
{%- set role = 'model' if m.role == 'assistant' else m.role -%}
{{- '<start_of_turn>' + role + '
' -}}
{%- if ns.system and role != 'model' -%}
{{- ns.system + '

' -}}
{%- set ns.system = '' -%}
{%- endif -%}
{{- (m.content | trim) + '<end_of_turn>
' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<start_of_turn>model
' -}}
{%- endif -%}";

/// A chat template hearth ships, for GGUFs that carry none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateFamily {
    /// Gemma's `<start_of_turn>` turns (gemma, gemma2, gemma3, gemma3n).
    Gemma,
    /// ChatML's `<|im_start|>` turns: the fallback for everything else.
    ChatMl,
}

impl TemplateFamily {
    /// The family whose template a GGUF of `architecture` (`general.architecture`) was trained
    /// on, when llama.cpp knows it; `None` when the architecture alone does not say (a `llama`
    /// GGUF may speak any of a dozen formats).
    pub fn for_architecture(architecture: &str) -> Option<Self> {
        match architecture {
            "gemma" | "gemma2" | "gemma3" | "gemma3n" => Some(Self::Gemma),
            _ => None,
        }
    }

    /// The name llama.cpp gives this template (`llama_chat_builtin_templates`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Gemma => "gemma",
            Self::ChatMl => "chatml",
        }
    }

    /// The Jinja source hearth renders.
    fn source(self) -> &'static str {
        match self {
            Self::Gemma => GEMMA,
            Self::ChatMl => CHATML,
        }
    }

    /// The text of the special token that ends a turn: generation stops on it as on EOS, so a
    /// chat answer never runs into a next turn it writes itself.
    pub fn end_of_turn(self) -> &'static str {
        match self {
            Self::Gemma => "<end_of_turn>",
            Self::ChatMl => "<|im_end|>",
        }
    }
}

/// Which chat template a model is rendered with, and why: the answer `model info` shows and
/// that the engine decides by ([`ChatTemplate::for_model`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum TemplateChoice {
    /// The GGUF's own `tokenizer.chat_template`.
    Embedded,
    /// The GGUF has none; its architecture's family template.
    FamilyDefault {
        /// The template used.
        family: TemplateFamily,
        /// `general.architecture`, which chose it.
        architecture: String,
    },
    /// The GGUF has none and its architecture names no family: ChatML.
    Fallback {
        /// `general.architecture`, which named no family.
        architecture: String,
    },
}

impl TemplateChoice {
    /// The choice for a GGUF with this embedded template (if any) and architecture: the file's
    /// own wins, then the family's, then ChatML.
    pub fn for_model(embedded: Option<&str>, architecture: &str) -> Self {
        if embedded.is_some() {
            return Self::Embedded;
        }
        match TemplateFamily::for_architecture(architecture) {
            Some(family) => Self::FamilyDefault {
                family,
                architecture: architecture.to_string(),
            },
            None => Self::Fallback {
                architecture: architecture.to_string(),
            },
        }
    }

    /// The built-in template used, `None` for the file's own.
    pub fn family(&self) -> Option<TemplateFamily> {
        match self {
            Self::Embedded => None,
            Self::FamilyDefault { family, .. } => Some(*family),
            Self::Fallback { .. } => Some(TemplateFamily::ChatMl),
        }
    }

    /// A short name: `embedded`, `gemma`, `chatml`.
    pub fn name(&self) -> &'static str {
        self.family().map_or("embedded", TemplateFamily::name)
    }
}

impl fmt::Display for TemplateChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Embedded => write!(f, "embedded (the file's own)"),
            Self::FamilyDefault {
                family,
                architecture,
            } => write!(
                f,
                "{} (family default for {architecture}: the file has none)",
                family.name()
            ),
            Self::Fallback { architecture } => write!(
                f,
                "chatml (fallback: the file has none and {architecture} has no known family template)"
            ),
        }
    }
}

/// A compiled chat template plus the special-token texts templates refer to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    tool_format: ToolFormat,
    choice: TemplateChoice,
}

impl ChatTemplate {
    /// Compiles the template [`TemplateChoice::for_model`] picks for a GGUF with this embedded
    /// template (if any) and architecture.
    pub fn for_model(
        embedded: Option<&str>,
        architecture: &str,
        bos_token: String,
        eos_token: String,
    ) -> Result<Self, EngineError> {
        let choice = TemplateChoice::for_model(embedded, architecture);
        let source = match choice.family() {
            Some(family) => family.source(),
            None => embedded.unwrap_or(CHATML),
        };
        Self::compile(source, choice, bos_token, eos_token)
    }

    /// Compiles `source` with the helpers chat templates expect (Python string methods,
    /// `raise_exception`) and probes it for tool support.
    fn compile(
        source: &str,
        choice: TemplateChoice,
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
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| EngineError::Template(e.to_string()))?;
        let mut template = Self {
            env,
            bos_token,
            eos_token,
            tool_format: ToolFormat::Generic,
            choice,
        };
        template.tool_format = ToolFormat::detect(source, template.renders_tools());
        Ok(template)
    }

    /// Which template this is, and why it was chosen.
    pub fn choice(&self) -> &TemplateChoice {
        &self.choice
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
        let t = ChatTemplate::for_model(None, "llama", String::new(), String::new()).unwrap();
        let out = t.render(&[ChatMessage::new("user", "hi")], true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn tool_support_is_detected_by_rendering_a_probe() {
        let plain = ChatTemplate::for_model(None, "llama", String::new(), String::new()).unwrap();
        assert_eq!(plain.tool_format(), ToolFormat::Generic);
        let hermes = "{% if tools %}<tools>{% for t in tools %}{{ t.function | tojson }}{% endfor %}</tools> Use <tool_call></tool_call>{% endif %}{% for m in messages %}{{ m.role }}: {{ m.content }}{% for c in m.tool_calls or [] %}<tool_call>{{ c.function.name }} {{ c.function.arguments | tojson }}</tool_call>{% endfor %}\n{% endfor %}";
        let t =
            ChatTemplate::for_model(Some(hermes), "qwen2", String::new(), String::new()).unwrap();
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
        let t = ChatTemplate::for_model(Some(src), "llama", String::new(), String::new()).unwrap();
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

    fn gemma() -> ChatTemplate {
        ChatTemplate::for_model(None, "gemma3", "<bos>".into(), "<eos>".into()).unwrap()
    }

    #[test]
    fn a_gemma_gguf_without_a_template_gets_gemma_turns_not_chatml() {
        let t = gemma();
        assert_eq!(t.choice().name(), "gemma");
        let out = t
            .render(
                &[
                    ChatMessage::new("user", "Hi"),
                    ChatMessage::new("assistant", "Hello."),
                    ChatMessage::new("user", "Name a colour."),
                ],
                true,
            )
            .unwrap();
        assert!(!out.contains("<|im_start|>"), "{out}");
        // Every turn opens and closes; the assistant is `model`; the answer's turn is open.
        assert_eq!(out.matches("<start_of_turn>").count(), 4, "{out}");
        assert_eq!(out.matches("<end_of_turn>\n").count(), 3, "{out}");
        assert!(
            out.contains("<start_of_turn>model\nHello.<end_of_turn>"),
            "{out}"
        );
        assert!(!out.contains("assistant"), "{out}");
        assert!(out.ends_with("<start_of_turn>model\n"), "{out}");
        // The tokenizer adds the BOS; the template must not write it again.
        assert!(!out.contains("<bos>"), "{out}");
        let closed = t.render(&[ChatMessage::new("user", "Hi")], false).unwrap();
        assert!(closed.ends_with("<end_of_turn>\n"), "{closed}");
    }

    #[test]
    fn gemma_folds_the_system_prompt_into_the_first_user_turn() {
        let out = gemma()
            .render(
                &[
                    ChatMessage::new("system", " Be brief. "),
                    ChatMessage::new("user", " Why is the sky blue? "),
                    ChatMessage::new("assistant", "Scattering."),
                    ChatMessage::new("user", "More?"),
                ],
                true,
            )
            .unwrap();
        assert!(!out.contains("system"), "{out}");
        // Once, at the start of the first user turn, a blank line before the question; contents
        // are trimmed as llama.cpp's built-in gemma template trims them.
        assert_eq!(out.matches("Be brief.").count(), 1, "{out}");
        assert!(
            out.starts_with("<start_of_turn>user\nBe brief.\n\nWhy is the sky blue?<end_of_turn>"),
            "{out}"
        );
        assert!(
            out.contains("<start_of_turn>user\nMore?<end_of_turn>"),
            "{out}"
        );
    }

    #[test]
    fn the_choice_says_where_the_template_came_from() {
        let own = TemplateChoice::for_model(Some("{{ x }}"), "gemma3");
        assert_eq!(own, TemplateChoice::Embedded);
        assert!(own.to_string().contains("the file's own"));
        let family = TemplateChoice::for_model(None, "gemma3");
        assert_eq!(family.family(), Some(TemplateFamily::Gemma));
        assert!(
            family.to_string().starts_with("gemma (family default"),
            "{family}"
        );
        assert!(family.to_string().contains("the file has none"), "{family}");
        let fallback = TemplateChoice::for_model(None, "llama");
        assert_eq!(fallback.family(), Some(TemplateFamily::ChatMl));
        assert!(
            fallback.to_string().starts_with("chatml (fallback"),
            "{fallback}"
        );
        for arch in ["gemma", "gemma2", "gemma3", "gemma3n"] {
            assert_eq!(
                TemplateFamily::for_architecture(arch),
                Some(TemplateFamily::Gemma)
            );
        }
        let json = serde_json::to_value(&family).unwrap();
        assert_eq!(json["source"], "family_default");
        assert_eq!(json["family"], "gemma");
    }
}
