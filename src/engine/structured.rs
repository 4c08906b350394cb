//! Structured output: OpenAI's `response_format` (and hearth's `regex` and `grammar`
//! extensions) turned into the [`Grammar`] the constraint engine enforces while decoding
//! ([`super::constraint`]), so even a tiny model answers JSON that parses and validates.
//!
//! What the schema asks is enforced or refused by name, never silently weakened: llguidance
//! compiles JSON Schema strictly (an unknown keyword is an error, not an annotation).

use serde_json::{json, Value};

use super::constraint::Grammar;

/// Why a `response_format` or a tool schema cannot be enforced.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct SchemaError(pub String);

/// Keywords that only annotate a schema: nothing to enforce (nor to complete, `json_close`).
pub(crate) const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "$schema",
    "$id",
    "$comment",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$defs",
    "definitions",
];

/// The constraint for an OpenAI `response_format` object: `None` for `{"type": "text"}`.
///
/// Besides OpenAI's `text`, `json_object` and `json_schema`, two hearth extensions (vLLM's
/// `guided_regex` and `guided_grammar`, which the server maps here too):
/// `{"type": "regex", "regex": "…"}` (the whole answer matches) and
/// `{"type": "grammar", "grammar": "…"}` (llguidance's Lark dialect).
pub fn response_format_constraint(format: &Value) -> Result<Option<Grammar>, SchemaError> {
    let kind = format.get("type").and_then(Value::as_str).ok_or_else(|| {
        SchemaError("response_format must be an object with a string `type`".into())
    })?;
    let text_of = |field: &str| {
        format
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                SchemaError(format!(
                    "response_format of type {kind} needs a string `{field}`"
                ))
            })
    };
    match kind {
        "text" => Ok(None),
        "json_object" | "json_schema" => response_format_schema(format)
            .map(|schema| Some(Grammar::JsonSchema(schema)))
            .ok_or_else(|| {
                SchemaError(
                    "response_format of type json_schema needs json_schema.schema (a `json_schema` object with `name` and `schema`)"
                        .into(),
                )
            }),
        "regex" => Ok(Some(Grammar::Regex(text_of("regex")?))),
        "grammar" => Ok(Some(Grammar::Lark(text_of("grammar")?))),
        other => Err(SchemaError(format!(
            "response_format type `{other}` is not supported (text, json_object, json_schema; hearth: regex, grammar)"
        ))),
    }
}

/// The JSON Schema a `response_format` asks for (any object for `json_object`), if any: what
/// the answer is closed against when the budget would cut it.
pub fn response_format_schema(format: &Value) -> Option<Value> {
    match format.get("type").and_then(Value::as_str)? {
        "json_object" => Some(json!({"type": "object"})),
        "json_schema" => format.get("json_schema")?.get("schema").cloned(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_response_format_type_gives_its_constraint() {
        assert_eq!(
            response_format_constraint(&json!({"type": "text"})),
            Ok(None)
        );
        assert_eq!(
            response_format_constraint(&json!({"type": "json_object"})),
            Ok(Some(Grammar::JsonSchema(json!({"type": "object"}))))
        );
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let format = json!({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}});
        assert_eq!(
            response_format_constraint(&format),
            Ok(Some(Grammar::JsonSchema(schema)))
        );
        assert_eq!(
            response_format_constraint(&json!({"type": "regex", "regex": "[0-9]+"})),
            Ok(Some(Grammar::Regex("[0-9]+".into())))
        );
        assert_eq!(
            response_format_constraint(&json!({"type": "grammar", "grammar": "start: \"a\""})),
            Ok(Some(Grammar::Lark("start: \"a\"".into())))
        );
    }

    #[test]
    fn a_missing_field_or_type_is_named() {
        for (format, needle) in [
            (
                json!({"type": "json_schema", "json_schema": {"name": "x"}}),
                "json_schema.schema",
            ),
            (json!({"type": "regex"}), "`regex`"),
            (json!({"type": "grammar", "grammar": 3}), "`grammar`"),
            (json!({"type": "yaml"}), "`yaml`"),
            (json!({}), "`type`"),
        ] {
            let err = response_format_constraint(&format).unwrap_err().0;
            assert!(err.contains(needle), "{format}: {err}");
        }
    }
}
