//! The schema compiler: `$ref` resolved, `allOf` merged, `anyOf` and type lists turned into
//! unions, every schema one node of the graph the parser walks.

use super::*;

impl Compiled {
    pub(super) fn new(schema: &Value) -> Compiled {
        let mut compiler = Compiler {
            root: schema,
            nodes: fixed_nodes(),
            memo: HashMap::new(),
        };
        let root = compiler.compile(schema, Some("#".to_string()), 0);
        Compiled {
            nodes: compiler.nodes,
            root,
        }
    }
}

/// How a schema value is recognised when met again: values inside the caller's schema by
/// address (they live as long as the call), values built here by merging by their text (they
/// only ever contain `$ref`s to the caller's schema, so their text is short and canonical).
#[derive(Hash, PartialEq, Eq)]
pub(super) enum MemoKey {
    Addr(usize),
    Text(String),
}

/// A schema to merge: the value, its JSON pointer when it lies in the caller's schema (so that
/// its subschemas can be referred to instead of copied), and a keyword to leave out.
pub(super) type Part<'v> = (&'v Value, Option<String>, Option<&'static str>);

pub(super) struct Compiler<'r> {
    pub(super) root: &'r Value,
    pub(super) nodes: Vec<Node>,
    pub(super) memo: HashMap<MemoKey, usize>,
}

impl Compiler<'_> {
    /// The node of schema `v`; `at` is its JSON pointer when `v` lies in the caller's schema.
    pub(super) fn compile(&mut self, v: &Value, at: Option<String>, depth: usize) -> usize {
        let key = match at {
            Some(_) => MemoKey::Addr(v as *const Value as usize),
            None => MemoKey::Text(v.to_string()),
        };
        if let Some(&index) = self.memo.get(&key) {
            return index;
        }
        if depth > MAX_DEPTH {
            return NEVER;
        }
        // Registered before building, so that a recursive reference finds it.
        let index = self.nodes.len();
        self.nodes.push(Node::Never);
        self.memo.insert(key, index);
        let node = self.build(v, at, depth);
        self.nodes[index] = node;
        index
    }

    pub(super) fn build(&mut self, v: &Value, at: Option<String>, depth: usize) -> Node {
        let obj = match v {
            Value::Bool(true) => return Node::Any,
            Value::Object(obj) => obj,
            _ => return Node::Never,
        };
        let root = self.root;
        let child = |segment: &str| at.as_ref().map(|a| format!("{a}/{segment}"));

        // llama.cpp ignores the keywords next to a `$ref`; so does this.
        if let Some(reference) = obj.get("$ref") {
            let target = reference
                .as_str()
                .and_then(|r| resolve(root, r).map(|t| (t, r)));
            return match target {
                Some((t, r)) => Node::Alias(self.compile(t, Some(r.to_string()), depth + 1)),
                None => Node::Never,
            };
        }

        // `allOf`: one schema with the constraints of all its parts.
        if obj.contains_key("allOf") {
            let mut parts = Vec::new();
            if !flatten(root, v, at.clone(), 0, &mut parts) {
                return Node::Never;
            }
            return match merge(&parts) {
                Some(merged) => Node::Alias(self.compile(&merged, None, depth + 1)),
                None => Node::Never,
            };
        }

        // `anyOf`/`oneOf`: a union, each branch carrying the keywords written next to it.
        for key in ["anyOf", "oneOf"] {
            let Some(alternatives) = obj.get(key) else {
                continue;
            };
            let Value::Array(alternatives) = alternatives else {
                return Node::Never;
            };
            let siblings = obj
                .keys()
                .any(|k| k != key && !ANNOTATIONS.contains(&k.as_str()));
            let mut branches = Vec::new();
            for (i, alternative) in alternatives.iter().enumerate() {
                let alt_at = child(&format!("{key}/{i}"));
                if !siblings {
                    branches.push(self.compile(alternative, alt_at, depth + 1));
                    continue;
                }
                let mut parts: Vec<Part> = vec![(v, at.clone(), Some(key))];
                if flatten(root, alternative, alt_at, 0, &mut parts) {
                    if let Some(merged) = merge(&parts) {
                        branches.push(self.compile(&merged, None, depth + 1));
                    }
                }
            }
            return Node::Union(branches);
        }

        let declared: Option<Vec<&str>> = match obj.get("type") {
            None => None,
            Some(Value::String(t)) => Some(vec![t.as_str()]),
            Some(Value::Array(ts)) => Some(ts.iter().filter_map(Value::as_str).collect()),
            Some(_) => return Node::Never,
        };

        // `enum`/`const` take precedence, as in llama.cpp; a `type` next to them filters.
        let mut values: Option<Vec<Value>> = None;
        if let Some(e) = obj.get("enum") {
            let Value::Array(e) = e else {
                return Node::Never;
            };
            values = Some(e.clone());
        }
        if let Some(c) = obj.get("const") {
            values = Some(match values {
                Some(vs) => vs.into_iter().filter(|x| json_eq(x, c)).collect(),
                None => vec![c.clone()],
            });
        }
        if let Some(values) = values {
            let values = values
                .into_iter()
                .filter(|x| {
                    declared
                        .as_ref()
                        .is_none_or(|ts| ts.iter().any(|t| has_type(t, x)))
                })
                .collect();
            return Node::Enum(values);
        }

        let types = match declared {
            Some(types) => types,
            None => {
                let inferred = inferred_types(obj);
                if inferred.is_empty() {
                    return Node::Any;
                }
                inferred
            }
        };
        let mut nodes: Vec<Node> = Vec::new();
        for t in types {
            if let Some(node) = self.typed(obj, t, &at, depth) {
                nodes.push(node);
            }
        }
        if nodes.len() == 1 {
            return nodes.pop().unwrap_or(Node::Never);
        }
        let mut branches = Vec::new();
        for node in nodes {
            branches.push(self.nodes.len());
            self.nodes.push(node);
        }
        if branches.is_empty() {
            Node::Never
        } else {
            Node::Union(branches)
        }
    }

    /// The node for one `type` of schema `obj`.
    pub(super) fn typed(
        &mut self,
        obj: &Map<String, Value>,
        t: &str,
        at: &Option<String>,
        depth: usize,
    ) -> Option<Node> {
        let child = |segment: &str| at.as_ref().map(|a| format!("{a}/{segment}"));
        let count = |key: &str| {
            obj.get(key)
                .and_then(Value::as_u64)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        };
        Some(match t {
            "null" => Node::Null,
            "boolean" => Node::Bool,
            "integer" | "number" => Node::Num(num_spec(obj, t == "integer")),
            "string" => {
                let re = if let Some(pattern) = obj.get("pattern") {
                    match pattern.as_str().and_then(Nfa::from_pattern) {
                        Some(nfa) => StrRe::Regex(Box::new(nfa), None),
                        None => StrRe::Unsupported,
                    }
                } else {
                    match obj
                        .get("format")
                        .and_then(Value::as_str)
                        .and_then(format_regex)
                    {
                        Some((pattern, filler)) => match Nfa::from_pattern(pattern) {
                            Some(nfa) => StrRe::Regex(Box::new(nfa), Some(filler)),
                            None => StrRe::Unsupported,
                        },
                        // Other formats are annotations in JSON Schema (and refused upstream).
                        None => StrRe::Free,
                    }
                };
                Node::Str(StrSpec {
                    min: count("minLength").unwrap_or(0),
                    max: count("maxLength"),
                    re,
                })
            }
            "array" => {
                let mut prefix = Vec::new();
                if let Some(Value::Array(items)) = obj.get("prefixItems") {
                    for (i, s) in items.iter().enumerate() {
                        prefix.push(self.compile(s, child(&format!("prefixItems/{i}")), depth + 1));
                    }
                }
                let rest = match obj.get("items") {
                    // The old tuple form: llama.cpp allows exactly these items.
                    Some(Value::Array(items)) => {
                        if prefix.is_empty() {
                            for (i, s) in items.iter().enumerate() {
                                prefix.push(self.compile(
                                    s,
                                    child(&format!("items/{i}")),
                                    depth + 1,
                                ));
                            }
                        }
                        None
                    }
                    Some(Value::Bool(false)) => None,
                    Some(s) => Some(self.compile(s, child("items"), depth + 1)),
                    None => Some(ANY),
                };
                Node::Arr(ArrSpec {
                    prefix,
                    rest,
                    min: count("minItems").unwrap_or(0),
                    max: count("maxItems"),
                })
            }
            "object" => {
                let mut props = Vec::new();
                if let Some(Value::Object(declared)) = obj.get("properties") {
                    for (name, s) in declared {
                        let at = child(&format!("properties/{}", escape_pointer(name)));
                        props.push((name.clone(), self.compile(s, at, depth + 1)));
                    }
                }
                let required = match obj.get("required") {
                    Some(Value::Array(names)) => names
                        .iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect(),
                    _ => Vec::new(),
                };
                let extra = match obj.get("additionalProperties") {
                    None if obj.contains_key("properties") => Extra::Implicit,
                    None | Some(Value::Bool(true)) => Extra::Allowed(ANY),
                    Some(Value::Bool(false)) => Extra::Forbidden,
                    Some(s) => {
                        Extra::Allowed(self.compile(s, child("additionalProperties"), depth + 1))
                    }
                };
                Node::Obj(ObjSpec {
                    props,
                    required,
                    extra,
                })
            }
            _ => return None,
        })
    }
}

/// The schema a `$ref` points to: only references into the same document (`#`, `#/...`).
pub(super) fn resolve<'v>(root: &'v Value, reference: &str) -> Option<&'v Value> {
    match reference.strip_prefix('#')? {
        "" => Some(root),
        pointer => root.pointer(pointer),
    }
}

pub(super) fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// Collects `v` and, recursively, its `allOf` parts and `$ref` targets into `out`; false when
/// one of them can never match (`false`, a bad reference, too deep).
pub(super) fn flatten<'v>(
    root: &'v Value,
    v: &'v Value,
    at: Option<String>,
    depth: usize,
    out: &mut Vec<Part<'v>>,
) -> bool {
    if depth > MAX_SCHEMA_DEPTH {
        return false;
    }
    match v {
        Value::Bool(b) => *b,
        Value::Object(obj) => {
            if let Some(reference) = obj.get("$ref") {
                let Some(reference) = reference.as_str() else {
                    return false;
                };
                let Some(target) = resolve(root, reference) else {
                    return false;
                };
                return flatten(root, target, Some(reference.to_string()), depth + 1, out);
            }
            out.push((v, at.clone(), None));
            match obj.get("allOf") {
                None => true,
                Some(Value::Array(all)) => all.iter().enumerate().all(|(i, s)| {
                    let at = at.as_ref().map(|a| format!("{a}/allOf/{i}"));
                    flatten(root, s, at, depth + 1, out)
                }),
                Some(_) => false,
            }
        }
        _ => false,
    }
}

/// One schema with the constraints of all `parts` (which have no `$ref` or `allOf` left to
/// follow): properties and required names united, bounds tightened, types and enums
/// intersected. Subschemas become `$ref`s to where they lie, so merging never copies a schema
/// and recursive schemas stay finite. `None` when two parts cannot be combined here (two
/// different patterns, two `anyOf`s).
pub(super) fn merge(parts: &[Part]) -> Option<Value> {
    let mut m = Map::new();
    for (v, at, skip) in parts {
        let Value::Object(obj) = v else {
            continue;
        };
        let sub = |path: String, s: &Value| match at {
            Some(a) => json!({ "$ref": format!("{a}/{path}") }),
            None => s.clone(),
        };
        for (key, x) in obj {
            let k = key.as_str();
            if *skip == Some(k) || k == "allOf" || k == "$ref" || ANNOTATIONS.contains(&k) {
                continue;
            }
            match k {
                "properties" => {
                    let Value::Object(props) = x else {
                        return None;
                    };
                    let entry = m
                        .entry("properties")
                        .or_insert_with(|| Value::Object(Map::new()));
                    let Value::Object(target) = entry else {
                        return None;
                    };
                    for (name, s) in props {
                        let new = sub(format!("properties/{}", escape_pointer(name)), s);
                        let combined = match target.remove(name) {
                            Some(old) => all_of(old, new),
                            None => new,
                        };
                        target.insert(name.clone(), combined);
                    }
                }
                "additionalProperties" | "items" => {
                    let new = match x {
                        Value::Bool(_) => x.clone(),
                        Value::Object(_) => sub(k.to_string(), x),
                        Value::Array(items) => Value::Array(
                            items
                                .iter()
                                .enumerate()
                                .map(|(i, s)| sub(format!("{k}/{i}"), s))
                                .collect(),
                        ),
                        _ => return None,
                    };
                    let combined = match m.remove(k) {
                        None => new,
                        Some(old) => match (old, new) {
                            (Value::Bool(false), _) | (_, Value::Bool(false)) => Value::Bool(false),
                            (Value::Bool(true), x) | (x, Value::Bool(true)) => x,
                            (a @ Value::Object(_), b @ Value::Object(_)) => all_of(a, b),
                            _ => return None,
                        },
                    };
                    m.insert(k.to_string(), combined);
                }
                "prefixItems" => {
                    let Value::Array(items) = x else {
                        return None;
                    };
                    let new: Vec<Value> = items
                        .iter()
                        .enumerate()
                        .map(|(i, s)| sub(format!("prefixItems/{i}"), s))
                        .collect();
                    let combined = match m.remove(k) {
                        Some(Value::Array(old)) => {
                            let n = old.len().max(new.len());
                            let (mut old, mut new) = (old.into_iter(), new.into_iter());
                            (0..n)
                                .map(|_| match (old.next(), new.next()) {
                                    (Some(a), Some(b)) => all_of(a, b),
                                    (Some(a), None) | (None, Some(a)) => a,
                                    (None, None) => Value::Bool(true),
                                })
                                .collect()
                        }
                        _ => new,
                    };
                    m.insert(k.to_string(), Value::Array(combined));
                }
                "anyOf" | "oneOf" => {
                    let Value::Array(alternatives) = x else {
                        return None;
                    };
                    if m.contains_key(k) {
                        return None;
                    }
                    let alternatives = alternatives
                        .iter()
                        .enumerate()
                        .map(|(i, s)| sub(format!("{k}/{i}"), s))
                        .collect();
                    m.insert(k.to_string(), Value::Array(alternatives));
                }
                "required" => {
                    let Value::Array(names) = x else {
                        return None;
                    };
                    let entry = m.entry("required").or_insert_with(|| json!([]));
                    let Value::Array(target) = entry else {
                        return None;
                    };
                    for name in names {
                        if !target.contains(name) {
                            target.push(name.clone());
                        }
                    }
                }
                "type" => {
                    let new = type_list(x)?;
                    let combined: Vec<String> = match m.get("type") {
                        None => new,
                        Some(old) => type_list(old)?
                            .into_iter()
                            .filter_map(|t| {
                                if new.contains(&t) {
                                    Some(t)
                                } else if (t == "integer" && new.iter().any(|n| n == "number"))
                                    || (t == "number" && new.iter().any(|n| n == "integer"))
                                {
                                    Some("integer".to_string())
                                } else {
                                    None
                                }
                            })
                            .collect(),
                    };
                    m.insert("type".to_string(), json!(combined));
                }
                "enum" | "const" => {
                    let new: Vec<Value> = match (k, x) {
                        ("const", _) => vec![x.clone()],
                        (_, Value::Array(values)) => values.clone(),
                        _ => return None,
                    };
                    let combined = match m.get("enum") {
                        Some(Value::Array(old)) => old
                            .iter()
                            .filter(|o| new.iter().any(|n| json_eq(o, n)))
                            .cloned()
                            .collect(),
                        _ => new,
                    };
                    m.insert("enum".to_string(), Value::Array(combined));
                }
                "minimum" | "exclusiveMinimum" | "minLength" | "minItems" => {
                    tighten(&mut m, k, x, true)?
                }
                "maximum" | "exclusiveMaximum" | "maxLength" | "maxItems" => {
                    tighten(&mut m, k, x, false)?
                }
                _ => match m.get(k) {
                    Some(old) if old != x => return None,
                    Some(_) => {}
                    None => {
                        m.insert(k.to_string(), x.clone());
                    }
                },
            }
        }
    }
    Some(Value::Object(m))
}

/// Both schemas at once.
pub(super) fn all_of(a: Value, b: Value) -> Value {
    match a {
        Value::Object(mut obj)
            if obj.len() == 1 && obj.get("allOf").is_some_and(Value::is_array) =>
        {
            if let Some(Value::Array(all)) = obj.get_mut("allOf") {
                all.push(b);
            }
            Value::Object(obj)
        }
        a => json!({ "allOf": [a, b] }),
    }
}

/// Keeps the larger (`larger` true) or smaller of two numeric bounds.
pub(super) fn tighten(m: &mut Map<String, Value>, k: &str, x: &Value, larger: bool) -> Option<()> {
    let combined = match (m.get(k), x.as_f64()) {
        (None, _) => x.clone(),
        (Some(old), Some(new)) => {
            let old_value = old.as_f64()?;
            if (new > old_value) == larger {
                x.clone()
            } else {
                old.clone()
            }
        }
        (Some(old), None) if old == x => x.clone(),
        _ => return None,
    };
    m.insert(k.to_string(), combined);
    Some(())
}

pub(super) fn type_list(x: &Value) -> Option<Vec<String>> {
    match x {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(ts) => ts.iter().map(|t| t.as_str().map(String::from)).collect(),
        _ => None,
    }
}

/// The types a schema without `type` is meant to have, from its keywords (as llama.cpp
/// guesses): none means any value.
pub(super) fn inferred_types(obj: &Map<String, Value>) -> Vec<&'static str> {
    let has = |keys: &[&str]| keys.iter().any(|k| obj.contains_key(*k));
    let mut types = Vec::new();
    if has(&["properties", "required", "additionalProperties"]) {
        types.push("object");
    }
    if has(&["items", "prefixItems", "minItems", "maxItems"]) {
        types.push("array");
    }
    if has(&["pattern", "format", "minLength", "maxLength"]) {
        types.push("string");
    }
    if has(&["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]) {
        types.push("number");
    }
    types
}

pub(super) fn has_type(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

/// Equality as JSON Schema means it: numbers by value (`1` equals `1.0`).
pub(super) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

pub(super) fn num_spec(obj: &Map<String, Value>, integer: bool) -> NumSpec {
    // Draft-04 wrote exclusive bounds as booleans next to minimum/maximum.
    let flag = |k: &str| obj.get(k).and_then(Value::as_bool) == Some(true);
    let bound = |k: &str| obj.get(k).and_then(Value::as_f64);
    let mut lo: Option<(f64, bool)> = None;
    let mut hi: Option<(f64, bool)> = None;
    let candidates_lo = [
        bound("minimum").map(|m| (m, flag("exclusiveMinimum"))),
        bound("exclusiveMinimum").map(|m| (m, true)),
    ];
    for (m, exclusive) in candidates_lo.into_iter().flatten() {
        if lo.is_none_or(|(l, e)| m > l || (m == l && exclusive && !e)) {
            lo = Some((m, exclusive));
        }
    }
    let candidates_hi = [
        bound("maximum").map(|m| (m, flag("exclusiveMaximum"))),
        bound("exclusiveMaximum").map(|m| (m, true)),
    ];
    for (m, exclusive) in candidates_hi.into_iter().flatten() {
        if hi.is_none_or(|(h, e)| m < h || (m == h && exclusive && !e)) {
            hi = Some((m, exclusive));
        }
    }
    NumSpec { integer, lo, hi }
}

impl NumSpec {
    pub(super) fn allows(&self, v: f64) -> bool {
        v.is_finite()
            && (!self.integer || v.fract() == 0.0)
            && self
                .lo
                .is_none_or(|(m, ex)| if ex { v > m } else { v >= m })
            && self
                .hi
                .is_none_or(|(m, ex)| if ex { v < m } else { v <= m })
    }

    /// The bounds an integer must lie within, inclusive (clamped far inside `i128`, so that
    /// negating them cannot overflow).
    pub(super) fn int_bounds(&self) -> (Option<i128>, Option<i128>) {
        const LIMIT: f64 = 1e36;
        let lo = self.lo.map(|(m, ex)| {
            (if ex { m.floor() + 1.0 } else { m.ceil() }).clamp(-LIMIT, LIMIT) as i128
        });
        let hi = self.hi.map(|(m, ex)| {
            (if ex { m.ceil() - 1.0 } else { m.floor() }).clamp(-LIMIT, LIMIT) as i128
        });
        (lo, hi)
    }
}

/// Regexes for the string formats the grammar enforces (the same rules as llama.cpp's), with
/// a readable filler of the same shape.
pub(super) fn format_regex(format: &str) -> Option<(&'static str, &'static str)> {
    const DATE: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";
    const TIME: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{3})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";
    const DATE_TIME: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{3})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";
    const UUID: &str =
        "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
    match format {
        "date" => Some((DATE, "2024-01-01")),
        "time" => Some((TIME, "00:00:00Z")),
        "date-time" => Some((DATE_TIME, "2024-01-01T00:00:00Z")),
        "uuid" | "uuid1" | "uuid2" | "uuid3" | "uuid4" | "uuid5" => {
            Some((UUID, "00000000-0000-0000-0000-000000000000"))
        }
        _ => None,
    }
}
