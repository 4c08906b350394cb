use super::*;
// --- An independent validator for the supported keywords (patterns aside, which use the
// module's automaton: there is no regex crate here). ---

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_date(s: &str) -> bool {
    s.len() == 10
        && &s[4..5] == "-"
        && &s[7..8] == "-"
        && digits(&s[0..4]).is_some()
        && digits(&s[5..7]).is_some_and(|m| (1..=12).contains(&m))
        && digits(&s[8..10]).is_some_and(|d| (1..=31).contains(&d))
}

fn is_hh_mm(s: &str) -> bool {
    s.len() == 5
        && &s[2..3] == ":"
        && digits(&s[0..2]).is_some_and(|h| h <= 23)
        && digits(&s[3..5]).is_some_and(|m| m <= 59)
}

fn is_time(s: &str) -> bool {
    if !s.is_ascii() || s.len() < 9 || !is_hh_mm(&s[0..5]) || &s[5..6] != ":" {
        return false;
    }
    if digits(&s[6..8]).is_none_or(|sec| sec > 59) {
        return false;
    }
    let mut rest = &s[8..];
    if let Some(frac) = rest.strip_prefix('.') {
        if frac.len() < 3 || digits(&frac[..3]).is_none() {
            return false;
        }
        rest = &frac[3..];
    }
    rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && is_hh_mm(&rest[1..]))
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

fn valid(root: &Value, schema: &Value, v: &Value) -> bool {
    check(root, schema, v, 0)
}

fn check(root: &Value, schema: &Value, v: &Value, depth: usize) -> bool {
    assert!(depth < 200, "validator recursion");
    let s = match schema {
        Value::Bool(b) => return *b,
        Value::Object(s) => s,
        _ => panic!("bad schema {schema}"),
    };
    let sub = |schema: &Value, v: &Value| check(root, schema, v, depth + 1);
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let target = if r == "#" {
            Some(root)
        } else {
            root.pointer(&r[1..])
        };
        return sub(target.expect("resolvable $ref"), v);
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => panic!("bad type"),
        };
        let ok = types.iter().any(|t| match *t {
            "null" => v.is_null(),
            "boolean" => v.is_boolean(),
            "string" => v.is_string(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            "number" => v.is_number(),
            "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
            _ => panic!("bad type {t}"),
        });
        if !ok {
            return false;
        }
    }
    if let Some(Value::Array(e)) = s.get("enum") {
        if !e.iter().any(|x| same(x, v)) {
            return false;
        }
    }
    if let Some(c) = s.get("const") {
        if !same(c, v) {
            return false;
        }
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        if !all.iter().all(|x| sub(x, v)) {
            return false;
        }
    }
    if let Some(Value::Array(any)) = s.get("anyOf") {
        if !any.iter().any(|x| sub(x, v)) {
            return false;
        }
    }
    if let Some(Value::Array(one)) = s.get("oneOf") {
        if one.iter().filter(|x| sub(x, v)).count() != 1 {
            return false;
        }
    }
    match v {
        Value::Object(o) => {
            let props = s.get("properties").and_then(Value::as_object);
            for (k, x) in o {
                let ok = match props.and_then(|p| p.get(k)) {
                    Some(p) => sub(p, x),
                    None => s.get("additionalProperties").is_none_or(|a| sub(a, x)),
                };
                if !ok {
                    return false;
                }
            }
            if let Some(Value::Array(required)) = s.get("required") {
                if !required.iter().all(|r| o.contains_key(r.as_str().unwrap())) {
                    return false;
                }
            }
        }
        Value::Array(a) => {
            let n = a.len() as u64;
            if s.get("minItems")
                .and_then(Value::as_u64)
                .is_some_and(|m| n < m)
                || s.get("maxItems")
                    .and_then(Value::as_u64)
                    .is_some_and(|m| n > m)
            {
                return false;
            }
            let prefix = s.get("prefixItems").and_then(Value::as_array);
            for (i, x) in a.iter().enumerate() {
                let ok = match prefix.and_then(|p| p.get(i)) {
                    Some(p) => sub(p, x),
                    None => match s.get("items") {
                        Some(Value::Array(tuple)) => tuple.get(i).is_some_and(|t| sub(t, x)),
                        Some(items) => sub(items, x),
                        None => true,
                    },
                };
                if !ok {
                    return false;
                }
            }
        }
        Value::String(text) => {
            let n = text.chars().count() as u64;
            if s.get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| n < m)
                || s.get("maxLength")
                    .and_then(Value::as_u64)
                    .is_some_and(|m| n > m)
            {
                return false;
            }
            if let Some(p) = s.get("pattern").and_then(Value::as_str) {
                if pattern_matches(p, text) == Some(false) {
                    return false;
                }
            }
            let ok = match s.get("format").and_then(Value::as_str) {
                Some("date") => is_date(text),
                Some("time") => is_time(text),
                Some("date-time") => text
                    .split_once('T')
                    .is_some_and(|(d, t)| is_date(d) && is_time(t)),
                Some(f) if f.starts_with("uuid") => is_uuid(text),
                _ => true,
            };
            if !ok {
                return false;
            }
        }
        Value::Number(n) => {
            let f = n.as_f64().unwrap();
            let bound = |k: &str| s.get(k).and_then(Value::as_f64);
            if bound("minimum").is_some_and(|m| f < m)
                || bound("maximum").is_some_and(|m| f > m)
                || bound("exclusiveMinimum").is_some_and(|m| f <= m)
                || bound("exclusiveMaximum").is_some_and(|m| f >= m)
            {
                return false;
            }
        }
        _ => {}
    }
    true
}

// --- Helpers ---

/// The completion, after checking that it parses and validates.
fn complete(schema: &Value, partial: &str) -> String {
    let Some(c) = shortest_completion(schema, partial) else {
        panic!("no completion for {partial:?} against {schema}");
    };
    let full = format!("{partial}{c}");
    let v: Value = serde_json::from_str(&full)
        .unwrap_or_else(|e| panic!("{full:?} (from {partial:?}) does not parse: {e}"));
    assert!(
        valid(schema, schema, &v),
        "{full:?} (from {partial:?}) is not valid against {schema}"
    );
    c
}

fn expect(schema: &Value, partial: &str, expected: &str) {
    assert_eq!(
        complete(schema, partial),
        expected,
        "completing {partial:?}"
    );
}

fn rejects(schema: &Value, partial: &str) {
    assert_eq!(
        shortest_completion(schema, partial),
        None,
        "completing {partial:?}"
    );
}

fn person() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "email": {"type": "string"},
            "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}},
            "address": {"$ref": "#/$defs/address"}
        },
        "required": ["name", "age"],
        "$defs": {
            "address": {
                "type": "object",
                "properties": {
                    "street": {"type": "string"},
                    "zip": {"type": "string", "pattern": "^[0-9]{5}$"}
                },
                "required": ["street"]
            }
        }
    })
}

// --- Strings ---

#[test]
fn strings_are_closed_and_escapes_finished() {
    let s = json!({"type": "string"});
    expect(&s, "", "\"\"");
    expect(&s, "\"", "\"");
    expect(&s, "\"Bo", "\"");
    expect(&s, "  \"Bo", "\"");
    expect(&s, "\"ab\\", "n\"");
    expect(&s, "\"x\\u12", "00\"");
    expect(&s, "\"x\\u", "0020\"");
    expect(&s, "\"x\\u000", "a\"");
    expect(&s, "\"quote \\\" and \\\\ and \\u00e9", "\"");
    expect(&s, "\"abc\"", "");
    expect(&s, "\"abc\"  \n", "");
    rejects(&s, "\"a\\q");
    rejects(&s, "\"abc\" x");
    rejects(&s, "1");
}

#[test]
fn surrogate_pairs_are_completed_and_lone_halves_refused() {
    let s = json!({"type": "string"});
    expect(&s, "\"\\ud83d", "\\udc00\"");
    expect(&s, "\"\\ud83d\\", "udc00\"");
    expect(&s, "\"\\ud83d\\u", "dc00\"");
    expect(&s, "\"\\ud83d\\ud", "c00\"");
    expect(&s, "\"\\ud8", "00\\udc00\"");
    expect(&s, "\"\\ud83d\\ude00", "\"");
    rejects(&s, "\"\\udc");
    rejects(&s, "\"\\udc00");
    rejects(&s, "\"\\ud83d\\u1");
    rejects(&s, "\"\\ud83dx");
}

#[test]
fn string_lengths_are_met_and_respected() {
    let s = json!({"type": "string", "minLength": 3, "maxLength": 4});
    expect(&s, "", "\"aaa\"");
    expect(&s, "\"", "aaa\"");
    expect(&s, "\"a", "aa\"");
    expect(&s, "\"ab\\", "n\"");
    expect(&s, "\"abcd", "\"");
    expect(&s, "\"abc\\", "n\"");
    rejects(&s, "\"abcd\\");
    rejects(&s, "\"abcde");
    rejects(&s, "\"ab\"");
    let long = json!({"type": "string", "minLength": 2});
    expect(&long, "\"\\u00e", "0a\"");
}

#[test]
fn long_strings_cut_mid_escape() {
    let s =
        json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]});
    let body = "Lorem ipsum \\\"dolor\\\" sit amet,\\n consectetur \\u00e9 adipiscing ".repeat(40);
    expect(&s, &format!("{{\"text\": \"{body}\\"), "n\"}");
    expect(&s, &format!("{{\"text\": \"{body}\\u00"), "20\"}");
    expect(&s, &format!("{{\"text\": \"{body}"), "\"}");
}

#[test]
fn enum_strings_complete_to_the_shortest_match() {
    let s = json!({"enum": ["red", "green", "blue", "greenish"]});
    expect(&s, "", "\"red\"");
    expect(&s, "\"", "red\"");
    expect(&s, "\"gre", "en\"");
    expect(&s, "\"green", "\"");
    expect(&s, "\"blue\"", "");
    rejects(&s, "\"x");
    rejects(&s, "\"gray\"");
    let tags = json!({"type": "object", "properties": {"tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}}}});
    expect(&tags, "{\"tags\": [\"red\", \"gre", "en\"]}");
    expect(&tags, "{\"tags\": [\"red\", ", "\"red\"]}");
    expect(&tags, "{\"tags\": [\"red\"", "]}");
    expect(&tags, "{\"tags\": [", "]}");
    rejects(&tags, "{\"tags\": [\"yellow");
}

#[test]
fn const_and_enum_of_other_values() {
    let s = json!({"const": {"a": [1, 2]}});
    expect(&s, "", "{\"a\":[1,2]}");
    expect(&s, "{\"a\":[1,", "2]}");
    expect(&s, "{\"a\": [1, ", "2]}");
    expect(&s, "{\"a\":[1,2]}", "");
    rejects(&s, "{\"b");
    let e = json!({"enum": [12, 123, null, true]});
    expect(&e, "1", "2");
    expect(&e, "12", "");
    expect(&e, "n", "ull");
    expect(&e, "t", "rue");
    expect(&e, "", "12");
    rejects(&e, "2");
    rejects(&e, "f");
}

#[test]
fn formats_complete_with_valid_templates() {
    let date = json!({"type": "string", "format": "date"});
    expect(&date, "", "\"2024-01-01\"");
    expect(&date, "\"", "2024-01-01\"");
    expect(&date, "\"19", "24-01-01\"");
    complete(&date, "\"2024-1");
    // No February day starts with 3: the grammar's rule (day 01-31) is all that can be met.
    complete(&date, "\"2024-02-3");
    expect(&date, "\"2024-12-31\"", "");
    // The filler's day would be 31, which April does not have.
    expect(&date, "\"2024-04-3", "0\"");
    expect(&date, "\"2023-02-", "01\"");
    rejects(&date, "\"2024-13");
    rejects(&date, "\"2024-1x");
    let time = json!({"type": "string", "format": "time"});
    expect(&time, "", "\"00:00:00Z\"");
    complete(&time, "\"23:5");
    complete(&time, "\"12:00:00.1");
    complete(&time, "\"12:00:00+0");
    rejects(&time, "\"24");
    let dt = json!({"type": "string", "format": "date-time"});
    expect(&dt, "\"2024-05-06T", "00:00:00Z\"");
    complete(&dt, "\"2024-05-06T07:08:09.12");
    let uuid = json!({"type": "string", "format": "uuid"});
    expect(&uuid, "", "\"00000000-0000-0000-0000-000000000000\"");
    complete(&uuid, "\"123e4567-e89b-");
    rejects(&uuid, "\"123g");
}

#[test]
fn patterns_are_followed() {
    let s = json!({"type": "string", "pattern": "^[A-Z]{2}-[0-9]+$"});
    expect(&s, "", "\"AA-0\"");
    expect(&s, "\"", "AA-0\"");
    expect(&s, "\"A", "A-0\"");
    expect(&s, "\"AB", "-0\"");
    expect(&s, "\"AB-12", "\"");
    rejects(&s, "\"ab");
    rejects(&s, "\"AB-\"");
    let quote = json!({"type": "string", "pattern": "^a\"b(c|de)?$"});
    expect(&quote, "", "\"a\\\"b\"");
    expect(&quote, "\"a\\", "\"b\"");
    expect(&quote, "\"a\\\"bd", "e\"");
    let classes = json!({"type": "string", "pattern": "^\\w+@[^@\\s]+\\.(com|org)$"});
    complete(&classes, "\"bob@");
    // A regex outside the supported subset: complete strings are trusted, nothing is
    // generated.
    let unsupported = json!({"type": "string", "pattern": "^(?=a)\\w$"});
    rejects(&unsupported, "");
    rejects(&unsupported, "\"a");
    expect(&unsupported, "\"a\"", "");
    let unanchored = json!({"type": "string", "pattern": "b+"});
    expect(&unanchored, "\"a", "b\"");
    assert_eq!(pattern_matches("^[A-Z]{2}-[0-9]+$", "AB-1"), Some(true));
    assert_eq!(pattern_matches("^[A-Z]{2}-[0-9]+$", "AB-"), Some(false));
    assert_eq!(pattern_matches("^(ab|c){2,3}$", "abcab"), Some(true));
    assert_eq!(pattern_matches("^(ab|c){2,3}$", "c"), Some(false));
    assert_eq!(pattern_matches("^x{0,2}$", "xx"), Some(true));
    assert_eq!(pattern_matches("^x{0,2}$", "xxx"), Some(false));
    assert_eq!(pattern_matches("^[^a-c]\\d?$", "d5"), Some(true));
    assert_eq!(pattern_matches("^[^a-c]\\d?$", "b5"), Some(false));
    assert_eq!(pattern_matches("^a\\b$", "a"), None);
}

// --- Numbers and literals ---

#[test]
fn numbers_are_finished() {
    let s = json!({"type": "number"});
    expect(&s, "", "0");
    expect(&s, "-", "0");
    expect(&s, "1.", "0");
    expect(&s, "2e", "0");
    expect(&s, "2e-", "0");
    expect(&s, "2E+", "0");
    expect(&s, "12", "");
    expect(&s, "0", "");
    expect(&s, "-0", "");
    expect(&s, "-1.5e3", "");
    expect(&s, "1.5 ", "");
    rejects(&s, "01");
    rejects(&s, "1.e");
    rejects(&s, "-x");
    rejects(&s, "\"1\"");
}

#[test]
fn number_bounds_are_met() {
    let s = json!({"type": "integer", "minimum": 10, "maximum": 20});
    expect(&s, "", "10");
    expect(&s, "1", "0");
    expect(&s, "2", "0");
    expect(&s, "15", "");
    rejects(&s, "3");
    rejects(&s, "-");
    rejects(&s, "21 ");
    let thousand = json!({"type": "integer", "minimum": 1000});
    expect(&thousand, "1", "000");
    expect(&thousand, "12", "00");
    expect(&thousand, "9", "000");
    rejects(&thousand, "0");
    let negative = json!({"type": "integer", "exclusiveMinimum": -5, "exclusiveMaximum": -2});
    complete(&negative, "");
    expect(&negative, "-", "3");
    expect(&negative, "-4", "");
    rejects(&negative, "-2");
    rejects(&negative, "-5");
    let positive = json!({"type": "integer", "exclusiveMinimum": 0});
    expect(&positive, "", "1");
    rejects(&positive, "0");
    let fraction = json!({"type": "number", "exclusiveMinimum": 0.5, "maximum": 0.7});
    expect(&fraction, "", "0.6");
    expect(&fraction, "0", ".6");
    expect(&fraction, "0.", "6");
    let integer = json!({"type": "integer"});
    expect(&integer, "-", "0");
    expect(&integer, "7", "");
    rejects(&integer, "1.5");
}

#[test]
fn literals_are_finished() {
    let b = json!({"type": "boolean"});
    expect(&b, "", "true");
    expect(&b, "t", "rue");
    expect(&b, "f", "alse");
    expect(&b, "fals", "e");
    expect(&b, "false", "");
    rejects(&b, "tx");
    rejects(&b, "n");
    let n = json!({"type": "null"});
    expect(&n, "nul", "l");
    expect(&n, "", "null");
    let either = json!({"type": ["boolean", "null"]});
    expect(&either, "n", "ull");
    expect(&either, "", "true");
}

// --- Objects ---

#[test]
fn required_properties_are_added_in_order() {
    // "In order" is the order the schema declares them in (serde_json keeps it: llguidance
    // turns its `preserve_order` feature on), the order the constraint has the model write.
    let s = person();
    expect(&s, "", "{\"name\":\"a\",\"age\":0}");
    expect(&s, "{", "\"name\":\"a\",\"age\":0}");
    expect(&s, "{\"", "name\":\"a\",\"age\":0}");
    expect(&s, "{\"na", "me\":\"a\",\"age\":0}");
    expect(&s, "{\"name\"", ":\"a\",\"age\":0}");
    expect(&s, "{\"name\":", "\"a\",\"age\":0}");
    expect(&s, "{\"name\": \"Bo", "\",\"age\":0}");
    expect(&s, "{\"name\": \"Bo\"", ",\"age\":0}");
    expect(&s, "{\"name\": \"Bo\", ", "\"age\":0}");
    expect(&s, "{\"name\": \"Bo\", \"age\": 4", "}");
    expect(&s, "{\"age\": 4", ",\"name\":\"a\"}");
    expect(&s, "{\"name\": \"Bo\", \"age\": 42}", "");
    expect(&s, "{\"name\": \"Bo\", \"age\": 42}\n", "");
    expect(&s, "{\"name\": \"Bo\", \"age\": 42, \"e", "mail\":\"\"}");
    expect(
        &s,
        "{\"name\": \"Bo\", \"age\": 42, \"address\": {",
        "\"street\":\"\"}}",
    );
    expect(
        &s,
        "{\"name\": \"Bo\", \"age\": 42, \"address\": {\"zip\": \"12",
        "000\",\"street\":\"\"}}",
    );
    expect(
        &s,
        "{\"name\": \"Bo\", \"age\": 42, \"address\": {\"street\": \"x\", \"zip\": ",
        "\"00000\"}}",
    );
    expect(
        &s,
        "{\"name\": \"Bo\", \"age\": 42, \"tags\": [\"bl",
        "ue\"]}",
    );
}

#[test]
fn after_a_comma_a_member_is_added() {
    let s = person();
    // Nothing required is missing: the shortest optional member (`"tags":[]`).
    expect(&s, "{\"name\": \"Bo\", \"age\": 42,", "\"tags\":[]}");
    expect(
        &s,
        "{\"name\": \"Bo\", \"age\": 42, \"tags\": [], \"email\": \"\",",
        "\"address\":{\"street\":\"\"}}",
    );
    rejects(&s, "{\"name\": \"Bo\", \"age\": 42, \"tags\": [], \"email\": \"\", \"address\": {\"street\": \"\"},");
    let any = json!({"type": "object"});
    expect(&any, "{\"a\": 1,", "\"\":null}");
    expect(&any, "{\"\": 1,", "\"a\":null}");
}

#[test]
fn whitespace_between_tokens_is_accepted() {
    let s = person();
    expect(&s, "{\n  \"name\": \"Bo", "\",\"age\":0}");
    expect(&s, "{\n  \"name\" :\n\t\"Bo\" ,\n  \"age\" : 3", "}");
    expect(&s, "{\n  \"name\": \"Bo\",\n  \"age\": 3\n", "}");
    expect(&s, "\n\n{\n  \"name\": \"Bo\",\n  \"age\": 3\n}\n", "");
    expect(&s, "  ", "{\"name\":\"a\",\"age\":0}");
}

#[test]
fn prefixes_violating_the_schema_are_refused() {
    let s = person();
    rejects(&s, "[");
    rejects(&s, "{\"nope");
    rejects(&s, "{\"name\": 5");
    rejects(&s, "{\"name\": \"\"}");
    rejects(&s, "{\"name\": \"Bo\"}");
    rejects(&s, "{\"name\": \"Bo\", \"age\": -1");
    rejects(&s, "{\"name\": \"Bo\", \"age\": 4.5");
    rejects(&s, "{\"name\": \"Bo\" \"age\"");
    rejects(&s, "{\"name\": \"Bo\",,");
    rejects(&s, "{\"name\": \"Bo\", \"age\": 4}}");
    rejects(&s, "{\"tags\": [\"red\", \"pink\"");
    let closed = json!({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": false});
    rejects(&closed, "{\"b");
    rejects(&closed, "{\"b\": 1");
    expect(&closed, "{\"", "a\":0}");
    // Declared properties only is what the grammar allows, though JSON Schema accepts
    // extra ones: they are read, never written.
    let open = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
    expect(&open, "{\"b\": [1", "]}");
    rejects(&open, "{\"b");
}

#[test]
fn additional_properties_with_a_schema() {
    let s = json!({"type": "object", "properties": {"id": {"type": "integer"}},
                   "additionalProperties": {"type": "string"}, "required": ["id"]});
    expect(&s, "{\"x", "\":\"\",\"id\":0}");
    expect(&s, "{\"i", "d\":0}");
    expect(&s, "{\"id", "\":0}");
    expect(&s, "{\"id\": 1, \"id", "a\":\"\"}");
    expect(&s, "{\"id\": 1, \"x\": \"y", "\"}");
    rejects(&s, "{\"x\": 1");
}

#[test]
fn json_object_mode() {
    let s = json!({"type": "object"});
    expect(&s, "", "{}");
    expect(&s, "{", "}");
    expect(&s, "{\"a", "\":null}");
    expect(&s, "{\"a\":", "null}");
    expect(&s, "{\"a\": [1, {\"b\": tr", "ue}]}");
    expect(&s, "{\"a\": [1, {\"b\": -", "0}]}");
    expect(&s, "{\"a\": \"x\\", "n\"}");
    expect(&s, "{\"a\": {\"b\": {\"c\": [[[", "]]]}}}");
    expect(&s, "{\"a\\", "n\":null}");
    expect(&s, "{\"a\\u00", "20\":null}");
    let empty = json!({"type": "object", "properties": {}});
    expect(&empty, "{", "}");
    rejects(&empty, "{\"");
    rejects(&s, "[");
    rejects(&s, "\"");
    let any = json!(true);
    expect(&any, "", "null");
    expect(&any, "[1, \"a", "\"]");
    expect(&any, "\"x", "\"");
    expect(&any, "-1", "");
    expect(&json!({}), "[{\"a\":", "null}]");
    rejects(&json!(false), "");
}

// --- Arrays ---

#[test]
fn arrays_meet_min_items() {
    let s = json!({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3});
    expect(&s, "", "[0,0]");
    expect(&s, "[", "0,0]");
    expect(&s, "[1", ",0]");
    expect(&s, "[1,", "0]");
    expect(&s, "[1,2", "]");
    expect(&s, "[1,2,", "0]");
    expect(&s, "[1, 2, 3]", "");
    rejects(&s, "[]");
    rejects(&s, "[1]");
    rejects(&s, "[1,2,3,");
    rejects(&s, "[1,\"a\"");
}

#[test]
fn prefix_items_and_closed_arrays() {
    let s = json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}],
                   "items": false, "minItems": 2});
    expect(&s, "", "[\"\",0]");
    expect(&s, "[", "\"\",0]");
    expect(&s, "[\"a\",", "0]");
    expect(&s, "[\"a\", 1", "]");
    rejects(&s, "[1");
    rejects(&s, "[\"a\",1,");
    let open =
        json!({"type": "array", "prefixItems": [{"type": "boolean"}], "items": {"type": "null"}});
    expect(&open, "[true,", "null]");
    expect(&open, "[", "]");
    let none = json!({"type": "array", "items": false});
    expect(&none, "[", "]");
    rejects(&none, "[1");
    let tuple =
        json!({"type": "array", "items": [{"type": "integer"}, {"type": "string"}], "minItems": 2});
    expect(&tuple, "[1", ",\"\"]");
    rejects(&tuple, "[1, \"a\",");
}

#[test]
fn nested_objects_and_arrays() {
    let s = json!({
        "type": "object",
        "properties": {
            "rows": {"type": "array", "minItems": 1, "items": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "cells": {"type": "array", "items": {"type": "number"}, "minItems": 1}},
                "required": ["id", "cells"]
            }}
        },
        "required": ["rows"]
    });
    expect(&s, "", "{\"rows\":[{\"id\":0,\"cells\":[0]}]}");
    expect(&s, "{\"rows\": [{\"id\": 1, \"cells\": [1.", "0]}]}");
    expect(
        &s,
        "{\"rows\": [{\"id\": 1, \"cells\": [1.5]}, {\"cells\": [",
        "0],\"id\":0}]}",
    );
    expect(
        &s,
        "{\"rows\": [{\"id\": 1, \"cells\": [1.5]},",
        "{\"id\":0,\"cells\":[0]}]}",
    );
}

// --- References and combinators ---

#[test]
fn refs_to_defs_and_definitions() {
    let s = json!({
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/point"}, "b": {"$ref": "#/definitions/flag"}},
        "required": ["a", "b"],
        "$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"]}},
        "definitions": {"flag": {"type": "boolean"}}
    });
    expect(&s, "", "{\"a\":{\"x\":0,\"y\":0},\"b\":true}");
    expect(&s, "{\"a\": {\"x\": 1", ",\"y\":0},\"b\":true}");
    expect(&s, "{\"b\": f", "alse,\"a\":{\"x\":0,\"y\":0}}");
}

#[test]
fn recursive_schemas() {
    let tree = json!({
        "$ref": "#/$defs/node",
        "$defs": {"node": {"type": "object", "properties": {
            "v": {"type": "integer"},
            "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}
        }, "required": ["v"]}}
    });
    expect(&tree, "", "{\"v\":0}");
    expect(
        &tree,
        "{\"v\":1,\"kids\":[{\"kids\":[{",
        "\"v\":0}],\"v\":0}]}",
    );
    // Every instance would be infinite.
    let endless = json!({
        "$ref": "#/$defs/a",
        "$defs": {"a": {"type": "object", "properties": {"x": {"$ref": "#/$defs/a"}}, "required": ["x"]}}
    });
    rejects(&endless, "");
    rejects(&endless, "{\"x\": {\"x\": ");
    rejects(&json!({"$ref": "#"}), "");
    rejects(&json!({"$ref": "#/$defs/missing"}), "");
    rejects(&json!({"allOf": [{"$ref": "#"}]}), "{");
    // Recursion through a nullable branch ends at the null.
    let nullable = json!({
        "$ref": "#/$defs/x",
        "$defs": {"x": {"type": "object", "properties": {"y": {"anyOf": [{"$ref": "#/$defs/x"}, {"type": "null"}]}}, "required": ["y"]}}
    });
    expect(&nullable, "", "{\"y\":null}");
    expect(&nullable, "{\"y\": {\"y\": {", "\"y\":null}}}");
    // A wide recursive schema stays fast (memoized, cut at the first repeat).
    let wide = json!({
        "$ref": "#/$defs/n",
        "$defs": {"n": {"type": "object", "properties": {
            "a": {"anyOf": [{"$ref": "#/$defs/n"}, {"type": "null"}]},
            "b": {"anyOf": [{"$ref": "#/$defs/n"}, {"type": "null"}]},
            "c": {"anyOf": [{"$ref": "#/$defs/n"}, {"type": "null"}]}
        }, "required": ["a", "b", "c"]}}
    });
    expect(&wide, "", "{\"a\":null,\"b\":null,\"c\":null}");
}

#[test]
fn any_of_tries_every_branch() {
    let s = json!({"anyOf": [
        {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
        {"type": "string"}
    ]});
    expect(&s, "", "\"\"");
    expect(&s, "{", "\"a\":0}");
    expect(&s, "{\"a\": 1", "}");
    expect(&s, "\"x", "\"");
    rejects(&s, "1");
    let one_of = json!({"oneOf": [{"type": "integer", "minimum": 5}, {"type": "array", "items": {"type": "integer"}}]});
    expect(&one_of, "", "5");
    expect(&one_of, "[", "]");
    let nullable = json!({"type": "object", "properties": {"n": {"type": ["string", "null"], "maxLength": 2}}, "required": ["n"]});
    expect(&nullable, "{\"n\": ", "\"\"}");
    expect(&nullable, "{\"n\": n", "ull}");
    expect(&nullable, "{\"n\": \"ab", "\"}");
    rejects(&nullable, "{\"n\": \"abc");
    // Branches that both read the text: the shortest continuation wins.
    let both = json!({"anyOf": [
        {"type": "object", "properties": {"k": {"type": "string"}, "x": {"type": "string"}}, "required": ["k", "x"]},
        {"type": "object", "properties": {"k": {"type": "string"}}, "required": ["k"]}
    ]});
    expect(&both, "{\"k\": \"v", "\"}");
    // Keywords next to anyOf apply to every branch.
    let siblings = json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                          "anyOf": [{"required": ["a"]}, {"required": ["b"]}]});
    expect(&siblings, "{", "\"a\":0}");
    expect(&siblings, "{\"b\": 1", "}");
}

#[test]
fn all_of_merges_objects() {
    let s = json!({"allOf": [
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
        {"properties": {"b": {"type": "integer", "exclusiveMinimum": 5}}, "required": ["b"]}
    ]});
    expect(&s, "", "{\"a\":\"\",\"b\":6}");
    expect(&s, "{\"b\":", "6,\"a\":\"\"}");
    rejects(&s, "{\"b\": 5}");
    let refs = json!({
        "allOf": [{"$ref": "#/$defs/base"}, {"properties": {"extra": {"type": "boolean"}}, "required": ["extra"]}],
        "$defs": {"base": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 3}}, "required": ["id"]}}
    });
    expect(&refs, "", "{\"id\":3,\"extra\":true}");
    expect(&refs, "{\"id\": ", "3,\"extra\":true}");
    let bounds = json!({"allOf": [{"type": "integer", "minimum": 3}, {"type": "number", "minimum": 7, "maximum": 9}]});
    expect(&bounds, "", "7");
    rejects(&bounds, "6 ");
    let contradiction = json!({"allOf": [{"type": "string"}, {"type": "integer"}]});
    rejects(&contradiction, "");
}

// --- Whole documents, every prefix ---

/// Every prefix of each (valid) document must complete to a valid document.
fn every_prefix(schema: &Value, documents: &[&str]) {
    for doc in documents {
        let v: Value = serde_json::from_str(doc).expect("test document parses");
        assert!(
            valid(schema, schema, &v),
            "test document {doc} is not valid"
        );
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        let compact = v.to_string();
        for text in [doc.to_string(), pretty, compact] {
            for (i, _) in text.char_indices().chain([(text.len(), ' ')]) {
                complete(schema, &text[..i]);
            }
            assert_eq!(complete(schema, &text), "", "{text}");
        }
    }
}

#[test]
fn every_prefix_of_person_documents() {
    every_prefix(
        &person(),
        &[
            r#"{"name":"Bo","age":42,"tags":["red","green"],"address":{"street":"Main \"St\" \u00e9\n\ud83d\ude00","zip":"12345"}}"#,
            "{ \"age\" : 0 , \"name\" : \"x\\\\y\" , \"email\" : \"\" }",
            "{\n  \"name\": \"Élodie\",\n  \"age\": 150,\n  \"tags\": []\n}",
        ],
    );
}

#[test]
fn every_prefix_of_union_and_tuple_documents() {
    let s = json!({
        "type": "object",
        "properties": {
            "result": {"anyOf": [
                {"type": "object", "properties": {"ok": {"type": "boolean"}, "value": {"type": "number"}}, "required": ["ok"]},
                {"type": "string", "maxLength": 10},
                {"type": "null"}
            ]},
            "items": {"type": "array", "minItems": 2, "items": {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "string", "format": "date"}],
                "items": false
            }}
        },
        "required": ["result", "items"],
        "additionalProperties": false
    });
    every_prefix(
        &s,
        &[
            r#"{"result":{"ok":true,"value":-1.5e-3},"items":[[1,"2024-02-29"],[ -7 , "1999-12-31"]]}"#,
            r#"{"result":null,"items":[[],[0]]}"#,
            r#"{"items":[[1],[2,"2000-01-01"]],"result":"hello"}"#,
            r#"{"result":{"value":10E+2,"ok":false},"items":[[],[]]}"#,
        ],
    );
}

#[test]
fn every_prefix_of_recursive_documents() {
    let tree = json!({
        "$ref": "#/$defs/node",
        "$defs": {"node": {"type": "object", "properties": {
            "v": {"type": "integer", "minimum": -100, "maximum": 100},
            "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}
        }, "required": ["v"]}}
    });
    every_prefix(
        &tree,
        &[r#"{"v":1,"kids":[{"v":-20},{"kids":[{"v":100,"kids":[]}],"v":3}]}"#],
    );
}

#[test]
fn every_prefix_of_free_form_documents() {
    every_prefix(
        &json!({"type": "object"}),
        &[r#"{"a":[1,2.5,{"b":null}],"c":"x\\y","d":true,"e":false,"f":{},"g":[],"h":-0.0e-0}"#],
    );
    every_prefix(
        &json!(true),
        &[
            r#"[1, "two", {"three": [3]}, null]"#,
            r#""str\u0041""#,
            "-12.5e+3",
            "false",
        ],
    );
}

#[test]
fn every_prefix_of_enum_const_and_format_documents() {
    let s = json!({
        "type": "object",
        "properties": {
            "kind": {"const": "circle"},
            "unit": {"enum": ["cm", "mm", "m", null, 1, [1, 2]]},
            "when": {"type": "string", "format": "date-time"},
            "id": {"type": "string", "format": "uuid"},
            "at": {"type": "string", "format": "time"},
            "code": {"type": "string", "pattern": "^[A-Z]{2}-\\d{1,3}$"},
            "n": {"type": "integer", "minimum": 10, "maximum": 20},
            "m": {"type": "integer", "exclusiveMinimum": -5, "exclusiveMaximum": -2},
            "s": {"type": "string", "minLength": 3, "maxLength": 5}
        },
        "required": ["kind", "when", "n", "s"]
    });
    every_prefix(
        &s,
        &[
            r#"{"kind":"circle","unit":[1,2],"when":"2024-05-06T07:08:09.123+02:00","id":"123e4567-e89b-12d3-a456-426614174000","at":"23:59:59Z","code":"AB-123","n":15,"m":-3,"s":"a\"b"}"#,
            r#"{"s":"abcde","n":20,"when":"1999-12-31T23:59:59Z","kind":"circle","unit":null}"#,
        ],
    );
}

#[test]
fn every_prefix_of_all_of_documents() {
    let s = json!({"allOf": [
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
        {"properties": {"b": {"type": "integer", "exclusiveMinimum": 5}, "c": {"type": "array", "items": {"type": "string", "minLength": 2}}}, "required": ["b"]}
    ]});
    every_prefix(&s, &[r#"{"a":"x","b":6,"c":["ab","cde"]}"#]);
}

// --- Robustness ---

/// A small deterministic generator (no rand crate).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn mangled_text_never_panics_and_completions_stay_valid() {
    let schemas = [
        person(),
        json!({"type": "object"}),
        json!(true),
        json!({"type": "array", "items": {"type": "string", "format": "date"}, "minItems": 1}),
        json!({"anyOf": [{"type": "integer", "minimum": 100}, {"type": "string", "pattern": "^a+b$"}]}),
    ];
    let alphabet: Vec<char> = "{}[]\":,\\u0123456789abcdefnrtxz.-+eE \n\tdéo😀"
        .chars()
        .collect();
    let doc = r#"{"name":"Bo","age":42,"tags":["red","green"],"address":{"street":"M\"\u00e9","zip":"12345"},"x":[1.5e-3,true,null]}"#;
    let mut rng = Lcg(7);
    for round in 0..3000 {
        let mut text: Vec<char> = if round % 2 == 0 {
            doc.chars().collect()
        } else {
            (0..rng.next() % 40)
                .map(|_| alphabet[rng.next() as usize % alphabet.len()])
                .collect()
        };
        for _ in 0..rng.next() % 3 {
            if text.is_empty() {
                break;
            }
            let at = rng.next() as usize % text.len();
            text[at] = alphabet[rng.next() as usize % alphabet.len()];
        }
        let cut = rng.next() as usize % (text.len() + 1);
        let partial: String = text[..cut].iter().collect();
        for schema in &schemas {
            if let Some(c) = shortest_completion(schema, &partial) {
                let full = format!("{partial}{c}");
                let v: Value = serde_json::from_str(&full)
                    .unwrap_or_else(|e| panic!("{full:?} does not parse: {e}"));
                assert!(
                    valid(schema, schema, &v),
                    "{full:?} is not valid against {schema}"
                );
            }
        }
    }
}

#[test]
fn deep_nesting_is_bounded() {
    let any = json!(true);
    expect(&any, &"[".repeat(100), &"]".repeat(100));
    rejects(&any, &"[".repeat(5000));
    rejects(&any, &"{\"a\":".repeat(5000));
    let mut deep = json!({"type": "integer"});
    for _ in 0..100 {
        deep = json!({"type": "array", "items": deep, "minItems": 1});
    }
    expect(
        &deep,
        "",
        &format!("{}0{}", "[".repeat(100), "]".repeat(100)),
    );
    expect(
        &deep,
        &"[".repeat(50),
        &format!("{}0{}", "[".repeat(50), "]".repeat(100)),
    );
    for _ in 0..300 {
        deep = json!({"type": "array", "items": deep});
    }
    expect(&deep, "", "[]");
    let _ = shortest_completion(&deep, &"[".repeat(500));
    let huge = json!({"type": "integer", "minimum": -1e300, "maximum": -1e299});
    let _ = shortest_completion(&huge, "-");
    let _ = shortest_completion(&huge, "");
    rejects(&json!({"type": "integer", "minimum": 1e300}), "1");
}

/// A long answer's schema: rows of objects, and a free-text note.
fn rows_schema() -> Value {
    json!({"type": "object", "properties": {"rows": {"type": "array", "items": {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "tags": {"type": "array", "items": {"enum": ["a", "b"]}}},
        "required": ["id", "name"]
    }}, "note": {"type": "string"}}, "required": ["rows"]})
}

#[test]
fn long_answers_stay_fast() {
    let s = rows_schema();
    let rows: Vec<String> = (0..150)
        .map(|i| format!("{{\"id\": {i}, \"name\": \"row number {i}\", \"tags\": [\"a\", \"b\"]}}"))
        .collect();
    let doc = format!("{{\"rows\": [{}]}}", rows.join(", "));
    assert!(doc.len() > 8000);
    // The work a call does (parse steps plus minimal-instance computations, what the
    // MAX_STEPS guard counts), not its time: the engine asks at every token, so the work
    // must stay linear in the text; a clock would measure the machine's load as well.
    let compiled = Compiled::new(&s);
    let steps = |partial: &str| {
        let text: Vec<char> = partial.chars().collect();
        let mut carry = Carry::new(&compiled);
        let mut parser = Parser::new(&compiled, &text, &mut carry);
        parser.value(compiled.root, 0, 0);
        parser.steps
    };
    let mut most_per_char = 0.0f64;
    for i in (0..doc.len()).step_by(7) {
        // Every prefix still closes into a valid document.
        complete(&s, &doc[..i]);
        let n = steps(&doc[..i]);
        assert!(n < MAX_STEPS / 10, "{n} steps at {i} characters");
        most_per_char = most_per_char.max(n as f64 / (i.max(100) as f64));
    }
    // Linear: a bounded number of steps per character at every length (about 0.2 here;
    // work redone per row or per alternative would grow with the text instead).
    assert!(
        most_per_char < 1.0,
        "{most_per_char:.2} steps per character"
    );
}

/// SplitMix64: the property tests' chunkings and whitespace, the same on every run.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Schemas with documents valid against them (checked by the `jsonschema` crate first).
fn corpus() -> Vec<(Value, Vec<&'static str>)> {
    vec![
        (
            json!({"type": "object", "properties": {
                "customer": {"type": "object", "properties": {
                    "id": {"type": "string", "pattern": "^C-[0-9]{5}$"},
                    "name": {"type": "string", "maxLength": 40}}, "required": ["id", "name"]},
                "items": {"type": "array", "minItems": 1, "items": {"type": "object", "properties": {
                    "sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1},
                    "price": {"type": "number", "minimum": 0}}, "required": ["sku", "qty"]}},
                "status": {"enum": ["paid", "pending"]},
                "note": {"type": ["string", "null"]}},
              "required": ["customer", "items", "status"], "additionalProperties": false}),
            vec![
                r#"{"customer": {"id": "C-10442", "name": "Ana \"Lopez\" \u00e9\ud83d\ude00"}, "items": [{"sku": "mug", "qty": 2, "price": 8.5}, {"sku": "board", "qty": 1, "price": 3.4e1}], "status": "paid", "note": null}"#,
                "{\n  \"customer\": {\"name\": \"Bo\", \"id\": \"C-00001\"},\n  \"status\": \"pending\",\n  \"items\": [ {\"qty\": 10, \"sku\": \"x\"} ]\n}",
            ],
        ),
        (
            json!({"type": "array", "items": {"anyOf": [
                {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"type": "object", "properties": {"b": {"type": "array", "items": {"type": "boolean"}}}, "required": ["b"]},
                {"type": "string", "format": "date"}]}}),
            vec![
                r#"[{"a": -12}, {"b": [true, false]}, "2024-02-29", {"a": 0, "b": []}]"#,
                r#"[]"#,
            ],
        ),
        (
            json!({"$defs": {"node": {"type": "object", "properties": {
                "name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                "required": ["name"]}}, "$ref": "#/$defs/node"}),
            vec![r#"{"name": "root", "children": [{"name": "a", "children": [{"name": "a1"}]}, {"name": "b"}]}"#],
        ),
    ]
}

#[test]
fn an_answer_closed_token_by_token_closes_as_a_fresh_parse_of_each_prefix_would() {
    for (schema, docs) in corpus() {
        let oracle = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap();
        for (d, doc) in docs.iter().enumerate() {
            let value: Value = serde_json::from_str(doc).unwrap();
            assert!(oracle.is_valid(&value), "{doc}");
            for seed in 0..6u64 {
                // Tokens of 1 to 6 bytes, cut anywhere, even inside a character.
                let bytes = doc.as_bytes();
                let mut closer = AnswerCloser::new(&schema);
                let mut at = 0;
                let mut step = 0u64;
                while at < bytes.len() {
                    step += 1;
                    let len = 1 + (mix(seed * 1_000_003 + d as u64 * 7919 + step) % 6) as usize;
                    let end = (at + len).min(bytes.len());
                    let got = closer.push(&bytes[at..end]);
                    at = end;
                    // Only whole characters count as text (a cut one waits for its bytes).
                    let mut whole = at;
                    while std::str::from_utf8(&bytes[..whole]).is_err() {
                        whole -= 1;
                    }
                    let prefix = std::str::from_utf8(&bytes[..whole]).unwrap();
                    assert_eq!(
                        got,
                        shortest_completion(&schema, prefix),
                        "{schema}: {prefix:?}"
                    );
                    let tail = got.unwrap_or_else(|| panic!("no completion for {prefix:?}"));
                    let closed: Value = serde_json::from_str(&format!("{prefix}{tail}"))
                        .unwrap_or_else(|e| panic!("{prefix}{tail}: {e}"));
                    assert!(oracle.is_valid(&closed), "{prefix}{tail}");
                }
            }
        }
    }
}

#[test]
fn the_work_per_token_stays_flat_however_long_the_answer() {
    let s = rows_schema();
    // A long string too: the closer must not rescan it per token.
    let rows: Vec<String> = (0..300)
        .map(|i| {
            format!(
                "{{\"id\": {i}, \"name\": \"row number {i} {}\", \"tags\": [\"a\", \"b\"]}}",
                "x".repeat(i % 40)
            )
        })
        .collect();
    let doc = format!(
        "{{\"rows\": [{}], \"note\": \"{}\"}}",
        rows.join(", "),
        "long text ".repeat(400)
    );
    assert!(doc.len() > 20_000);
    let mut closer = AnswerCloser::new(&s);
    let mut steps = Vec::new();
    let mut at = 0;
    for chunk in doc.as_bytes().chunks(4) {
        at += chunk.len();
        assert!(closer.push(chunk).is_some(), "{}", &doc[..at]);
        steps.push(closer.last_steps());
    }
    let tenth = steps.len() / 10;
    let early = *steps[..tenth].iter().max().unwrap();
    let late = *steps[steps.len() - tenth..].iter().max().unwrap();
    // The same bounded work at the end as at the start (a fresh parse does ~0.2 steps per
    // character: thousands here).
    assert!(
        late <= early.max(20),
        "{early} steps per token early, {late} late"
    );
}
