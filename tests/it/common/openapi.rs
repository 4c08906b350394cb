//! Validates JSON against OpenAI's own schemas (tests/data/openai-openapi-subset.json).
//! OpenAPI 3.0's `nullable: true` is rewritten into JSON Schema's explicit `null` first.

use serde_json::{json, Map, Value};

fn denull(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for v in map.values_mut() {
                denull(v);
            }
            if map.remove("nullable") == Some(Value::Bool(true)) {
                let inner = Value::Object(std::mem::take(map));
                let mut wrapped = Map::new();
                wrapped.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                *map = wrapped;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(denull),
        _ => {}
    }
}

/// Panics with every violation when `instance` does not match the named component schema.
pub fn assert_matches(schema_name: &str, instance: &Value) {
    let text = include_str!("../../data/openai-openapi-subset.json");
    let mut spec: Value = serde_json::from_str(text).unwrap();
    denull(&mut spec);
    let root = json!({
        "$ref": format!("#/components/schemas/{schema_name}"),
        "components": spec["components"],
    });
    let validator = jsonschema::validator_for(&root).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{schema_name} violations: {errors:#?}\ninstance: {instance:#}"
    );
}
