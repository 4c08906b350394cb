//! Structured output: OpenAI's `response_format` (and the tool-call constraints of
//! [`super::tools`]) turned into a llama.cpp grammar (GBNF), enforced while decoding by a grammar
//! sampler in the sequence's own sampler chain, so even a tiny model answers JSON that parses and
//! validates.
//!
//! llama.cpp's JSON-schema converter silently drops keywords it cannot express (a `multipleOf`, a
//! `format: email`, an unanchored `pattern`…), which would turn a schema the client relies on
//! into a weaker one. Every schema is therefore checked here first, and anything the grammar
//! would not enforce is refused by name instead of answered free-form.

use serde_json::{json, Value};

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

/// Keywords llama.cpp's converter turns into grammar rules (with the limits checked below).
const ENFORCED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "pattern",
    "minLength",
    "maxLength",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
];

/// String formats the converter has rules for.
const FORMATS: &[&str] = &[
    "date",
    "time",
    "date-time",
    "uuid",
    "uuid1",
    "uuid2",
    "uuid3",
    "uuid4",
    "uuid5",
];

/// The grammar for an OpenAI `response_format` object: `None` for `{"type": "text"}`.
pub fn response_format_grammar(format: &Value) -> Result<Option<String>, SchemaError> {
    let kind = format.get("type").and_then(Value::as_str).ok_or_else(|| {
        SchemaError("response_format must be an object with a string `type`".into())
    })?;
    match kind {
        "text" => Ok(None),
        // Any JSON object, as OpenAI's JSON mode promises.
        "json_object" => schema_grammar(&json!({"type": "object"})).map(Some),
        "json_schema" => {
            let schema = format
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .ok_or_else(|| {
                    SchemaError(
                        "response_format of type json_schema needs json_schema.schema".into(),
                    )
                })?;
            schema_grammar(schema).map(Some)
        }
        other => Err(SchemaError(format!(
            "response_format type `{other}` is not supported (text, json_object, json_schema)"
        ))),
    }
}

/// The schema a `response_format` holds the answer to (`{"type": "object"}` for JSON mode),
/// for closing an answer the token budget would cut ([`super::json_close`]); `None` for text.
pub fn response_format_schema(format: &Value) -> Option<Value> {
    match format.get("type").and_then(Value::as_str)? {
        "json_object" => Some(json!({"type": "object"})),
        "json_schema" => format.get("json_schema")?.get("schema").cloned(),
        _ => None,
    }
}

/// Checks that every keyword of `schema` is enforced, then converts it to GBNF (root `root`).
pub fn schema_grammar(schema: &Value) -> Result<String, SchemaError> {
    check_supported(schema, "#")?;
    let text = schema.to_string();
    llama_cpp_2::json_schema_to_grammar(&text).map_err(|e| {
        SchemaError(format!(
            "the JSON schema cannot be turned into a grammar ({e})"
        ))
    })
}

/// Walks a schema and names the first keyword the grammar would not enforce.
pub fn check_supported(schema: &Value, path: &str) -> Result<(), SchemaError> {
    let map = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Object(map) => map,
        _ => {
            return Err(SchemaError(format!(
                "the schema at {path} must be an object"
            )))
        }
    };
    for (key, value) in map {
        if ANNOTATIONS.contains(&key.as_str()) {
            if key == "$defs" || key == "definitions" {
                for (name, sub) in value.as_object().into_iter().flatten() {
                    check_supported(sub, &format!("{path}/{key}/{name}"))?;
                }
            }
            continue;
        }
        if !ENFORCED.contains(&key.as_str()) {
            return Err(SchemaError(format!(
                "JSON schema keyword `{key}` (at {path}) is not supported by constrained decoding"
            )));
        }
    }
    let types: Vec<&str> = match map.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let bounded = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]
        .iter()
        .find(|k| map.contains_key(**k));
    if let Some(bound) = bounded {
        // Only integer bounds become grammar rules; number bounds are dropped by llama.cpp.
        if types != ["integer"] {
            return Err(SchemaError(format!(
                "JSON schema keyword `{bound}` (at {path}) is only supported on `\"type\": \"integer\"`"
            )));
        }
    }
    if let Some(format) = map.get("format") {
        let name = format.as_str().unwrap_or_default();
        if !FORMATS.contains(&name) {
            return Err(SchemaError(format!(
                "JSON schema `format: {format}` (at {path}) is not supported by constrained decoding (date, time, date-time, uuid)"
            )));
        }
    }
    if let Some(pattern) = map.get("pattern") {
        check_pattern(pattern, path)?;
    }
    if let Some(Value::Array(required)) = map.get("required") {
        let declared = map.get("properties").and_then(Value::as_object);
        for name in required.iter().filter_map(Value::as_str) {
            if !declared.is_some_and(|p| p.contains_key(name)) {
                return Err(SchemaError(format!(
                    "required property `{name}` (at {path}) is not declared in `properties`"
                )));
            }
        }
    }
    if let Some(Value::Object(props)) = map.get("properties") {
        for (name, sub) in props {
            check_supported(sub, &format!("{path}/properties/{name}"))?;
        }
    }
    if let Some(sub @ Value::Object(_)) = map.get("additionalProperties") {
        check_supported(sub, &format!("{path}/additionalProperties"))?;
    }
    for key in ["items", "prefixItems"] {
        match map.get(key) {
            Some(Value::Array(items)) => {
                for (i, sub) in items.iter().enumerate() {
                    check_supported(sub, &format!("{path}/{key}/{i}"))?;
                }
            }
            Some(sub) => check_supported(sub, &format!("{path}/{key}"))?,
            None => {}
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(alts)) = map.get(key) {
            for (i, sub) in alts.iter().enumerate() {
                check_supported(sub, &format!("{path}/{key}/{i}"))?;
            }
        }
    }
    if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
        if !reference.starts_with("#/") && reference != "#" {
            return Err(SchemaError(format!(
                "`$ref: {reference}` (at {path}) is not supported: only references into the same schema (#/…)"
            )));
        }
    }
    Ok(())
}

/// llama.cpp accepts only anchored patterns in a regex subset, and falls back to "any string"
/// (with a warning on stderr) otherwise: convert the pattern alone and look at what came out.
fn check_pattern(pattern: &Value, path: &str) -> Result<(), SchemaError> {
    let Some(text) = pattern.as_str() else {
        return Err(SchemaError(format!(
            "`pattern` (at {path}) must be a string"
        )));
    };
    if !(text.len() >= 2 && text.starts_with('^') && text.ends_with('$')) {
        return Err(SchemaError(format!(
            "`pattern: {text}` (at {path}) is not supported: constrained decoding needs a pattern anchored with ^ and $"
        )));
    }
    let alone = json!({"type": "string", "pattern": text}).to_string();
    let grammar = llama_cpp_2::json_schema_to_grammar(&alone).map_err(|_| {
        SchemaError(format!(
            "`pattern: {text}` (at {path}) is not a valid regex"
        ))
    })?;
    let fell_back = grammar.lines().any(|line| line.trim() == "root ::= string");
    if fell_back {
        return Err(SchemaError(format!(
            "`pattern: {text}` (at {path}) uses regex syntax constrained decoding does not support"
        )));
    }
    Ok(())
}

/// Renames the converter's `root` rule so that the grammar can be embedded in a larger one
/// (a tool call wrapped in `<tool_call>` tags, say).
pub fn rename_root(grammar: &str, name: &str) -> String {
    grammar
        .lines()
        .map(|line| match line.strip_prefix("root ::=") {
            Some(rest) => format!("{name} ::={rest}"),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_means_no_grammar_and_json_modes_give_one() {
        assert_eq!(response_format_grammar(&json!({"type": "text"})), Ok(None));
        let g = response_format_grammar(&json!({"type": "json_object"}))
            .unwrap()
            .unwrap();
        assert!(g.contains("root ::="), "{g}");
        let schema = json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {
            "type": "object", "properties": {"a": {"type": "integer", "minimum": 1}}, "required": ["a"]}}});
        assert!(response_format_grammar(&schema).unwrap().is_some());
    }

    #[test]
    fn unsupported_keywords_are_named() {
        let cases = [
            (json!({"type": "integer", "multipleOf": 3}), "multipleOf"),
            (json!({"type": "string", "format": "email"}), "email"),
            (json!({"type": "number", "minimum": 0.5}), "minimum"),
            (json!({"type": "array", "uniqueItems": true}), "uniqueItems"),
            (json!({"type": "string", "pattern": "abc"}), "abc"),
            (json!({"type": "string", "pattern": "^(?=a)b$"}), "(?=a)b"),
            (
                json!({"type": "object", "properties": {"a": {"not": {}}}}),
                "#/properties/a",
            ),
            (
                json!({"type": "object", "properties": {}, "required": ["z"]}),
                "`z`",
            ),
        ];
        for (schema, needle) in cases {
            let err = schema_grammar(&schema).unwrap_err().0;
            assert!(err.contains(needle), "{schema}: {err}");
        }
    }

    #[test]
    fn supported_patterns_pass() {
        let schema = json!({"type": "string", "pattern": "^[A-Z]{2}-[0-9]+$"});
        assert!(schema_grammar(&schema).is_ok());
    }

    #[test]
    fn renaming_root_keeps_other_rules() {
        let g = rename_root("root ::= a\na ::= \"x\"\n", "call");
        assert_eq!(g, "call ::= a\na ::= \"x\"\n");
    }
}
