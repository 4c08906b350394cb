//! Prompt sets: the fixed prompts every model answers, so runs compare like with like.
//! `prompts.json` is either a list of strings or a list of objects
//! `{id, prompt, max_tokens, facets, checks, reference}` (also accepted under a top-level
//! `"prompts"` key); `checks` are [`Check`]s such as `{"type": "max_sentences", "n": 2}`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::eval::Check;

/// Why a prompt set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The file could not be read.
    #[error("cannot read prompt set {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a prompt set.
    #[error("{path} is not a prompt set (a list of strings, or of {{\"id\", \"prompt\", \"max_tokens\", \"facets\", \"checks\"}} objects): {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// One prompt and what a good answer covers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptSpec {
    /// Stable id, used to line answers up across runs.
    pub id: String,
    /// The user message.
    pub prompt: String,
    /// Most tokens to generate for this prompt (else the run's `--max-tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Points a good answer covers (used by quality checks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub facets: Vec<String>,
    /// Automatic checks every answer to this prompt is put through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// An example of a good answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// OpenAI `response_format` sent with this prompt (structured output), as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Item {
    Text(String),
    Spec {
        id: Option<String>,
        prompt: String,
        max_tokens: Option<u32>,
        #[serde(default)]
        facets: Vec<String>,
        #[serde(default)]
        checks: Vec<Check>,
        reference: Option<String>,
        response_format: Option<serde_json::Value>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum File {
    List(Vec<Item>),
    Wrapped { prompts: Vec<Item> },
}

/// The built-in set: the meeting-notes summarizer scenario the reference workflow measures.
pub fn default_set() -> Vec<PromptSpec> {
    let p = |id: &str, prompt: &str, facets: &[&str], checks: Vec<Check>| PromptSpec {
        id: id.into(),
        prompt: prompt.into(),
        max_tokens: None,
        facets: facets.iter().map(|f| f.to_string()).collect(),
        checks,
        reference: None,
        response_format: None,
    };
    vec![
        p(
            "rag-2-sentences",
            "Explain retrieval-augmented generation (RAG) in exactly 2 sentences.",
            &["retrieval of documents", "generation conditioned on retrieved text"],
            vec![
                Check::MaxSentences { n: 2 },
                Check::Contains {
                    text: "retriev".into(),
                },
                Check::Facets { min_share: 0.5 },
            ],
        ),
        p(
            "local-privacy",
            "List 3 privacy benefits of running language model inference locally instead of in the cloud.",
            &["data stays on the device", "no third-party access", "compliance"],
            vec![
                Check::MinSentences { n: 3 },
                Check::Contains {
                    text: "privacy".into(),
                },
                Check::Facets { min_share: 0.67 },
            ],
        ),
        p(
            "size-latency",
            "Why does model size drive latency on consumer hardware? Answer briefly.",
            &["more parameters mean more computation", "memory bandwidth", "memory capacity"],
            vec![
                Check::MaxWords { n: 150 },
                Check::Contains {
                    text: "memory".into(),
                },
                Check::Facets { min_share: 0.34 },
            ],
        ),
        p(
            "slm-vs-llm",
            "Give two cases where a small language model is a better choice than a large one.",
            &["on-device or offline use", "low latency or cost"],
            vec![
                Check::MinSentences { n: 2 },
                Check::Facets { min_share: 0.5 },
            ],
        ),
    ]
}

/// Names of the built-in prompt sets, for `--prompt-set`.
pub const BUILTIN_SETS: [&str; 3] = ["default", "summarize", "structured"];

/// A built-in prompt set by name: `default` (short questions about local inference) or
/// `summarize` (eight summaries of source notes given in the prompt: meeting notes, a
/// post-mortem, a ticket thread, a sales email, a paper, a changelog, a contract, a trial
/// note), the scenario where answers copy names, dates and numbers from the prompt; or
/// `structured` (six extraction and generation tasks answered as JSON against realistic
/// schemas: nested objects, arrays of objects, enums, patterns, bounded numbers; each paired
/// with the same prompt answered freely, `ID-free`, so a run's per-prompt rows show constrained
/// decode speed beside free text).
pub fn builtin(name: &str) -> Option<Vec<PromptSpec>> {
    match name {
        "default" => Some(default_set()),
        "summarize" => Some(
            parse(include_str!("prompts/summarize.json"))
                .expect("the built-in summarize set is valid (unit-tested)"),
        ),
        "structured" => Some(
            parse(include_str!("prompts/structured.json"))
                .expect("the built-in structured set is valid (unit-tested)"),
        ),
        _ => None,
    }
}

/// Reads a prompt set from a JSON file.
pub fn load(path: &Path) -> Result<Vec<PromptSpec>, PromptError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| PromptError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&text).map_err(|reason| PromptError::Invalid {
        path: shown,
        reason,
    })
}

/// Parses a prompt set; ids default to `p1`, `p2`… and must be unique.
pub fn parse(text: &str) -> Result<Vec<PromptSpec>, String> {
    let file: File = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let items = match file {
        File::List(items) | File::Wrapped { prompts: items } => items,
    };
    if items.is_empty() {
        return Err("it holds no prompts".into());
    }
    let mut specs = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let default_id = format!("p{}", i + 1);
        let spec = match item {
            Item::Text(prompt) => PromptSpec {
                id: default_id,
                prompt,
                max_tokens: None,
                facets: Vec::new(),
                checks: Vec::new(),
                reference: None,
                response_format: None,
            },
            Item::Spec {
                id,
                prompt,
                max_tokens,
                facets,
                checks,
                reference,
                response_format,
            } => PromptSpec {
                id: id.unwrap_or(default_id),
                prompt,
                max_tokens,
                facets,
                checks,
                reference,
                response_format,
            },
        };
        for check in &spec.checks {
            check
                .validate()
                .map_err(|e| format!("prompt {}: {e}", spec.id))?;
        }
        if spec.prompt.trim().is_empty() {
            return Err(format!("prompt {} is empty", spec.id));
        }
        if spec
            .response_format
            .as_ref()
            .is_some_and(|f| !f.get("type").is_some_and(serde_json::Value::is_string))
        {
            return Err(format!(
                "prompt {}: response_format must be an object with a `type`",
                spec.id
            ));
        }
        if spec.max_tokens == Some(0) {
            return Err(format!("prompt {} asks for max_tokens 0", spec.id));
        }
        if specs.iter().any(|s: &PromptSpec| s.id == spec.id) {
            return Err(format!("prompt id {} appears twice", spec.id));
        }
        specs.push(spec);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_sets_parse_and_their_checks_can_pass() {
        for name in BUILTIN_SETS {
            assert!(!builtin(name).unwrap().is_empty(), "{name}");
        }
        assert!(builtin("nope").is_none());
        let sum = builtin("summarize").unwrap();
        assert_eq!(sum.len(), 8);
        for p in &sum {
            // Source notes are in the prompt, and every required term comes from them.
            assert!(p.prompt.split_whitespace().count() > 150, "{}", p.id);
            for c in &p.checks {
                if let Check::Contains { text } = c {
                    assert!(
                        p.prompt.to_lowercase().contains(&text.to_lowercase()),
                        "{}",
                        p.id
                    );
                }
            }
            let reference = p.reference.as_deref().expect("a reference summary");
            assert!(!reference.is_empty() && p.facets.len() >= 3, "{}", p.id);
        }
    }

    #[test]
    fn the_structured_set_pairs_each_schema_with_a_free_answer_to_the_same_prompt() {
        let set = builtin("structured").unwrap();
        let constrained: Vec<&PromptSpec> =
            set.iter().filter(|p| p.response_format.is_some()).collect();
        assert!(constrained.len() >= 6);
        for p in constrained {
            let format = p.response_format.as_ref().unwrap();
            let schema = &format["json_schema"]["schema"];
            assert_eq!(format["type"], "json_schema", "{}", p.id);
            // The answer is checked against the very schema it was constrained by.
            assert!(
                p.checks
                    .iter()
                    .any(|c| matches!(c, Check::Json { schema: Some(s) } if s == schema)),
                "{}",
                p.id
            );
            assert!(jsonschema::validator_for(schema).is_ok(), "{}", p.id);
            let free = set
                .iter()
                .find(|f| f.id == format!("{}-free", p.id))
                .expect("a free twin");
            assert_eq!(
                (&free.prompt, free.response_format.as_ref()),
                (&p.prompt, None)
            );
            assert_eq!(free.max_tokens, p.max_tokens);
        }
    }

    #[test]
    fn strings_objects_and_wrapped() {
        let a = parse(r#"["one", "two"]"#).unwrap();
        assert_eq!((a[0].id.as_str(), a[1].prompt.as_str()), ("p1", "two"));
        let b = parse(
            r#"{"prompts": [{"id": "x", "prompt": "hi", "max_tokens": 9, "facets": ["f"]}, "y"]}"#,
        )
        .unwrap();
        assert_eq!(b[0].max_tokens, Some(9));
        assert_eq!(b[0].facets, vec!["f".to_string()]);
        assert_eq!(b[1].id, "p2");
        assert!(parse("[]").is_err());
        assert!(parse(r#"[{"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"}]"#).is_err());
        assert!(parse(r#"[{"prompt": ""}]"#).is_err());
        assert!(parse("{").is_err());
        let checked = parse(
            r#"[{"prompt": "x", "checks": [{"type": "max_words", "n": 5}], "reference": "y"}]"#,
        )
        .unwrap();
        assert_eq!(checked[0].checks, vec![Check::MaxWords { n: 5 }]);
        let bad =
            parse(r#"[{"id": "q", "prompt": "x", "checks": [{"type": "regex", "pattern": "("}]}]"#);
        assert!(bad.unwrap_err().starts_with("prompt q: check regex"));
        assert!(default_set().iter().all(|p| !p.checks.is_empty()));
        assert_eq!(default_set().len(), 4);
    }

    #[test]
    fn a_prompt_may_carry_a_response_format() {
        let specs =
            parse(r#"[{"prompt": "x", "response_format": {"type": "json_object"}}, "y"]"#).unwrap();
        assert_eq!(
            specs[0].response_format,
            Some(serde_json::json!({"type": "json_object"}))
        );
        assert_eq!(specs[1].response_format, None);
        let bad = parse(r#"[{"prompt": "x", "response_format": "json"}]"#);
        assert!(bad.unwrap_err().contains("response_format"));
    }
}
