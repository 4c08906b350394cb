//! The shortest text that closes a JSON document cut off by the token budget.
//!
//! With a JSON-schema grammar (`engine::structured`) the model can only write a prefix of a
//! valid document, but `max_tokens` may stop it anywhere: mid-string, mid-number, before the
//! required properties were written. So the engine asks, at every token, for the shortest text
//! that turns what was generated so far into a complete document valid against the schema, and
//! appends it (and stops) when it would no longer fit in the budget. [`shortest_completion`]
//! computes that text.
//!
//! How: the schema is compiled into a small graph of nodes (`$ref` resolved, `allOf` merged,
//! `anyOf` and type lists turned into unions), then a recursive-descent parser reads the text
//! against it. Where the text runs out, each parser returns the minimal continuation of what it
//! was reading (close the string, finish the number, add the items and required properties the
//! schema still demands) and every enclosing parser appends its own closing. Where the text is
//! ambiguous (`anyOf` branches, a half-written key that could become several property names)
//! every reading is followed and the shortest continuation kept. Everything produced is built
//! from pieces valid for their schema, so a returned completion is valid by construction.
//!
//! Written by hand: no crate completes a JSON prefix against a schema. The `jsonschema` crate
//! validates whole documents only, and the `regex` crate cannot say how to *finish* a partial
//! match, so `pattern` strings go through the small automaton at the end of this file (the
//! subset llama.cpp's converter accepts).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use serde_json::{json, Map, Value};

use super::structured::ANNOTATIONS;

/// The shortest text that, appended to `partial`, makes a JSON document valid against `schema`.
///
/// `partial` is a prefix of some valid document as a grammar-constrained model produced it:
/// possibly empty, with whitespace between tokens, ending anywhere (mid-string, mid-escape such
/// as `\` or `\u12`, mid-number such as `-`, `1.` or `2e-`, mid-literal such as `tr`, mid-key).
/// The engine calls this at every token to know how much budget closing the answer would take,
/// so it runs in time roughly linear in the text and never panics.
///
/// Returns `Some("")` when `partial` already is a complete valid document (trailing whitespace
/// allowed), and `None` when no completion can be found: the prefix does not fit the schema, or
/// finishing it needs something this module cannot produce (a `pattern` using regex syntax
/// outside the supported subset, a required property whose schema has no instance, a recursion
/// deeper than the guards allow).
///
/// Semantics worth knowing: `oneOf` is treated like `anyOf` (as llama.cpp's grammar does);
/// keywords next to a `$ref` are ignored (as llama.cpp does); a property not declared in
/// `properties` is accepted when `additionalProperties` is absent, but only generated when the
/// schema allows extra properties explicitly or declares no properties at all (the grammar's
/// rule); a value of any type is written `null` (one token, like `0`, and it says "nothing");
/// length is counted in characters, not tokens.
pub fn shortest_completion(schema: &Value, partial: &str) -> Option<String> {
    SchemaCloser::new(schema).shortest_completion(partial)
}

/// A schema compiled once for [`shortest_completion`] calls on one answer: the engine asks at
/// every token, and compiling the schema each time would be the bulk of the work.
pub struct SchemaCloser {
    compiled: Compiled,
}

impl SchemaCloser {
    /// Compiles `schema`.
    pub fn new(schema: &Value) -> Self {
        Self {
            compiled: Compiled::new(schema),
        }
    }

    /// [`shortest_completion`] against the compiled schema.
    pub fn shortest_completion(&self, partial: &str) -> Option<String> {
        complete(&self.compiled, partial)
    }
}

fn complete(compiled: &Compiled, partial: &str) -> Option<String> {
    let text: Vec<char> = partial.chars().collect();
    let mut parser = Parser::new(compiled, &text);
    let out = parser.value(compiled.root, 0, 0);
    if out
        .complete
        .iter()
        .any(|&end| parser.skip_ws(end) == text.len())
    {
        return Some(String::new());
    }
    out.partial
}

/// Deepest document nesting (plus union hops) parsed before giving up: a stack guard only.
const MAX_DEPTH: usize = 256;
/// Longest chain of `$ref`s or nested `allOf`s followed: a reference cycle must not loop.
const MAX_SCHEMA_DEPTH: usize = 32;
/// Deepest minimal instance built. Recursion is cut exactly where a schema would nest inside
/// itself (see [`Parser::min_instance`]); this only guards the stack on huge acyclic schemas.
const MAX_INSTANCE_DEPTH: usize = 128;
/// Work budget per call (parse steps plus minimal-instance computations): a guard against
/// schemas whose alternatives multiply, far above what real answers need.
const MAX_STEPS: usize = 500_000;
/// Largest automaton built for one `pattern` or `format`.
const MAX_NFA_STATES: usize = 4_096;
/// Longest padding or item list generated to meet a `minLength`/`minItems`.
const MAX_GENERATED: usize = 100_000;

// ---------------------------------------------------------------------------------------------
// Compiled schema
// ---------------------------------------------------------------------------------------------

/// One schema, reduced to what parsing needs. Nodes refer to each other by index, so recursive
/// schemas are just cycles in the graph.
enum Node {
    /// Same as another node (a `$ref`, or a merged `allOf`).
    Alias(usize),
    /// Any JSON value (`true`, `{}`).
    Any,
    /// No value at all (`false`, contradictions, unresolvable references).
    Never,
    /// One of several schemas (`anyOf`, `oneOf`, a list of types).
    Union(Vec<usize>),
    /// One of these values (`enum`, `const`).
    Enum(Vec<Value>),
    Null,
    Bool,
    Num(NumSpec),
    Str(StrSpec),
    Arr(ArrSpec),
    Obj(ObjSpec),
}

struct NumSpec {
    integer: bool,
    /// Lower bound and whether it is exclusive.
    lo: Option<(f64, bool)>,
    hi: Option<(f64, bool)>,
}

struct StrSpec {
    min: usize,
    max: Option<usize>,
    re: StrRe,
}

/// What the characters of a string must match.
enum StrRe {
    Free,
    /// A `pattern` or a `format`, with a preferred filler for formats (a readable date rather
    /// than `0000-01-01`).
    Regex(Box<Nfa>, Option<&'static str>),
    /// A `pattern` outside the supported regex subset: complete strings are trusted (the grammar
    /// enforced them), nothing is generated.
    Unsupported,
}

struct ArrSpec {
    /// Schemas of the first items (`prefixItems`).
    prefix: Vec<usize>,
    /// Schema of the items after them, `None` when no more are allowed.
    rest: Option<usize>,
    min: usize,
    max: Option<usize>,
}

struct ObjSpec {
    /// Declared properties, in schema order (the order missing required ones are written in).
    props: Vec<(String, usize)>,
    required: Vec<String>,
    extra: Extra,
}

/// What happens to properties not declared in `properties`.
#[derive(Clone, Copy)]
enum Extra {
    /// `additionalProperties: false`.
    Forbidden,
    /// `additionalProperties` absent next to `properties`: valid JSON Schema, so accepted when
    /// read, but never written (llama.cpp's grammar does not allow them).
    Implicit,
    /// Allowed, with this schema, and written when that is shortest.
    Allowed(usize),
}

impl ObjSpec {
    /// The schema of the value of `key`, `None` when the key is not allowed.
    fn node_for(&self, key: &str) -> Option<usize> {
        match self.props.iter().find(|(name, _)| name == key) {
            Some((_, node)) => Some(*node),
            None => match self.extra {
                Extra::Forbidden => None,
                Extra::Implicit => Some(ANY),
                Extra::Allowed(node) => Some(node),
            },
        }
    }
}

// Nodes every compiled schema has, used when the schema says nothing more.
const ANY: usize = 0;
const NEVER: usize = 1;
const ANY_OBJECT: usize = 2;
const ANY_ARRAY: usize = 3;
const ANY_STRING: usize = 4;
const ANY_NUMBER: usize = 5;
const BOOLEAN: usize = 6;
const NULL: usize = 7;

fn fixed_nodes() -> Vec<Node> {
    vec![
        Node::Any,
        Node::Never,
        Node::Obj(ObjSpec {
            props: Vec::new(),
            required: Vec::new(),
            extra: Extra::Allowed(ANY),
        }),
        Node::Arr(ArrSpec {
            prefix: Vec::new(),
            rest: Some(ANY),
            min: 0,
            max: None,
        }),
        Node::Str(StrSpec {
            min: 0,
            max: None,
            re: StrRe::Free,
        }),
        Node::Num(NumSpec {
            integer: false,
            lo: None,
            hi: None,
        }),
        Node::Bool,
        Node::Null,
    ]
}

struct Compiled {
    nodes: Vec<Node>,
    root: usize,
}

impl Compiled {
    fn new(schema: &Value) -> Compiled {
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
enum MemoKey {
    Addr(usize),
    Text(String),
}

/// A schema to merge: the value, its JSON pointer when it lies in the caller's schema (so that
/// its subschemas can be referred to instead of copied), and a keyword to leave out.
type Part<'v> = (&'v Value, Option<String>, Option<&'static str>);

struct Compiler<'r> {
    root: &'r Value,
    nodes: Vec<Node>,
    memo: HashMap<MemoKey, usize>,
}

impl Compiler<'_> {
    /// The node of schema `v`; `at` is its JSON pointer when `v` lies in the caller's schema.
    fn compile(&mut self, v: &Value, at: Option<String>, depth: usize) -> usize {
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

    fn build(&mut self, v: &Value, at: Option<String>, depth: usize) -> Node {
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
    fn typed(
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
fn resolve<'v>(root: &'v Value, reference: &str) -> Option<&'v Value> {
    match reference.strip_prefix('#')? {
        "" => Some(root),
        pointer => root.pointer(pointer),
    }
}

fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// Collects `v` and, recursively, its `allOf` parts and `$ref` targets into `out`; false when
/// one of them can never match (`false`, a bad reference, too deep).
fn flatten<'v>(
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
fn merge(parts: &[Part]) -> Option<Value> {
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
fn all_of(a: Value, b: Value) -> Value {
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
fn tighten(m: &mut Map<String, Value>, k: &str, x: &Value, larger: bool) -> Option<()> {
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

fn type_list(x: &Value) -> Option<Vec<String>> {
    match x {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(ts) => ts.iter().map(|t| t.as_str().map(String::from)).collect(),
        _ => None,
    }
}

/// The types a schema without `type` is meant to have, from its keywords (as llama.cpp
/// guesses): none means any value.
fn inferred_types(obj: &Map<String, Value>) -> Vec<&'static str> {
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

fn has_type(t: &str, v: &Value) -> bool {
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
fn json_eq(a: &Value, b: &Value) -> bool {
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

fn num_spec(obj: &Map<String, Value>, integer: bool) -> NumSpec {
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
    fn allows(&self, v: f64) -> bool {
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
    fn int_bounds(&self) -> (Option<i128>, Option<i128>) {
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
fn format_regex(format: &str) -> Option<(&'static str, &'static str)> {
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

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// What reading one value from a position gave.
#[derive(Default)]
struct Out {
    /// The text ran out inside the value: the shortest continuation closing it.
    partial: Option<String>,
    /// The value ended before the text did: the positions just after it (several when
    /// alternatives read it differently).
    complete: Vec<usize>,
}

impl Out {
    fn partial(s: Option<String>) -> Out {
        Out {
            partial: s,
            complete: Vec::new(),
        }
    }

    fn complete(end: usize) -> Out {
        Out {
            partial: None,
            complete: vec![end],
        }
    }

    fn add(&mut self, s: Option<String>) {
        keep_shorter(&mut self.partial, s);
    }

    fn done(&mut self, end: usize) {
        if !self.complete.contains(&end) {
            self.complete.push(end);
        }
    }

    fn merge(&mut self, other: Out) {
        self.add(other.partial);
        for end in other.complete {
            self.done(end);
        }
    }
}

/// Keeps the shorter of two candidate continuations (the first on a tie).
fn keep_shorter(best: &mut Option<String>, candidate: Option<String>) {
    if let Some(c) = candidate {
        if best
            .as_ref()
            .is_none_or(|b| c.chars().count() < b.chars().count())
        {
            *best = Some(c);
        }
    }
}

/// Where a container stands when the text ends between its members.
#[derive(Clone, Copy, PartialEq)]
enum Gap {
    /// Right after `{` or `[`: closing is allowed.
    Open,
    /// Right after `,`: a member must follow.
    Comma,
    /// Right after a member.
    Member,
}

/// An escape the text ends in the middle of.
enum Esc {
    None,
    /// Just the `\`.
    Backslash,
    /// `\u` and these hex digits.
    Unicode(String),
}

/// A string read from its opening quote.
struct Scan {
    /// Position after the closing quote, `None` when the text ended first.
    end: Option<usize>,
    /// The characters decoded so far.
    chars: Vec<char>,
    /// Where the characters after the opening quote start in the text.
    raw_start: usize,
    esc: Esc,
    /// A high surrogate (`\ud83d`) still waiting for its low half.
    high: Option<u32>,
}

impl Scan {
    fn empty() -> Scan {
        Scan {
            end: None,
            chars: Vec::new(),
            raw_start: 0,
            esc: Esc::None,
            high: None,
        }
    }
}

struct Parser<'a> {
    c: &'a Compiled,
    text: &'a [char],
    steps: usize,
    /// Minimal instance of each node, once known.
    memo: Vec<Option<Option<String>>>,
    /// Nodes whose minimal instance is being computed (a schema nested in itself).
    busy: Vec<bool>,
    busy_depth: usize,
    /// Whether the minimal instance being computed depended on a cut-off recursion (then it
    /// is not memoized: from elsewhere the result could differ).
    cut: bool,
}

impl<'a> Parser<'a> {
    fn new(c: &'a Compiled, text: &'a [char]) -> Parser<'a> {
        Parser {
            c,
            text,
            steps: 0,
            memo: (0..c.nodes.len()).map(|_| None).collect(),
            busy: vec![false; c.nodes.len()],
            busy_depth: 0,
            cut: false,
        }
    }

    fn skip_ws(&self, mut i: usize) -> usize {
        while matches!(self.text.get(i), Some(' ' | '\t' | '\n' | '\r')) {
            i += 1;
        }
        i
    }

    /// Follows aliases (bounded: a `$ref` to itself must not loop).
    fn target(&self, mut n: usize) -> usize {
        for _ in 0..=MAX_SCHEMA_DEPTH {
            match self.c.nodes.get(n) {
                Some(Node::Alias(t)) => n = *t,
                Some(_) => return n,
                None => return NEVER,
            }
        }
        NEVER
    }

    /// Reads a value of schema `n` starting at `pos` (whitespace allowed first).
    fn value(&mut self, n: usize, pos: usize, depth: usize) -> Out {
        let n = self.target(n);
        self.steps += 1;
        if depth > MAX_DEPTH || self.steps > MAX_STEPS {
            return Out::default();
        }
        let pos = self.skip_ws(pos);
        let Some(&first) = self.text.get(pos) else {
            return Out::partial(self.min_instance(n));
        };
        let c = self.c;
        let starts_number = first == '-' || first.is_ascii_digit();
        match &c.nodes[n] {
            Node::Alias(_) | Node::Never => Out::default(),
            Node::Any => {
                let kind = match first {
                    '{' => ANY_OBJECT,
                    '[' => ANY_ARRAY,
                    '"' => ANY_STRING,
                    't' | 'f' => BOOLEAN,
                    'n' => NULL,
                    _ if starts_number => ANY_NUMBER,
                    _ => return Out::default(),
                };
                self.value(kind, pos, depth + 1)
            }
            Node::Union(branches) => {
                let mut out = Out::default();
                for &b in branches {
                    out.merge(self.value(b, pos, depth + 1));
                }
                out
            }
            Node::Enum(values) => self.enumerated(values, pos, depth),
            Node::Null => self.literal("null", pos),
            Node::Bool if first == 'f' => self.literal("false", pos),
            Node::Bool => self.literal("true", pos),
            Node::Num(spec) if starts_number => self.number(spec, pos),
            Node::Str(spec) if first == '"' => self.string(spec, pos),
            Node::Arr(spec) if first == '[' => self.array(spec, pos, depth),
            Node::Obj(spec) if first == '{' => self.object(spec, pos, depth),
            _ => Out::default(),
        }
    }

    fn literal(&self, word: &str, pos: usize) -> Out {
        for (i, expected) in word.chars().enumerate() {
            match self.text.get(pos + i) {
                None => return Out::partial(Some(word.chars().skip(i).collect())),
                Some(&c) if c == expected => {}
                Some(_) => return Out::default(),
            }
        }
        Out::complete(pos + word.len())
    }

    /// An `enum`/`const` value: read as any JSON value and compared when complete, or matched
    /// as a prefix of the allowed values' text when cut.
    fn enumerated(&mut self, values: &[Value], pos: usize, depth: usize) -> Out {
        let read = self.value(ANY, pos, depth + 1);
        let mut out = Out::default();
        for &end in &read.complete {
            let text: String = self.text[pos..end].iter().collect();
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                if values.iter().any(|x| json_eq(x, &v)) {
                    out.done(end);
                }
            }
        }
        if read.partial.is_some() {
            // The grammar writes these values compactly; whitespace is ignored to be lenient.
            let written = compact(&self.text[pos..]);
            for x in values {
                let text = x.to_string();
                if let Some(rest) = text.strip_prefix(written.as_str()) {
                    out.add(Some(rest.to_string()));
                }
            }
        }
        out
    }

    fn number(&self, spec: &NumSpec, pos: usize) -> Out {
        let t = self.text;
        let digits = |mut i: usize| {
            while t.get(i).is_some_and(char::is_ascii_digit) {
                i += 1;
            }
            i
        };
        let mut i = pos;
        if t.get(i) == Some(&'-') {
            i += 1;
        }
        // Each part either ends before the text does, or the number is open-ended.
        match t.get(i) {
            None => return Out::partial(finish_number(&t[pos..], spec)),
            Some('0') => i += 1,
            Some(c) if c.is_ascii_digit() => i = digits(i),
            Some(_) => return Out::default(),
        }
        if t.get(i) == Some(&'.') {
            match t.get(i + 1) {
                None => return Out::partial(finish_number(&t[pos..], spec)),
                Some(c) if c.is_ascii_digit() => i = digits(i + 1),
                Some(_) => return Out::default(),
            }
        }
        if matches!(t.get(i), Some('e' | 'E')) {
            i += 1;
            if matches!(t.get(i), Some('+' | '-')) {
                i += 1;
            }
            match t.get(i) {
                None => return Out::partial(finish_number(&t[pos..], spec)),
                Some(c) if c.is_ascii_digit() => i = digits(i),
                Some(_) => return Out::default(),
            }
        }
        if i == t.len() {
            // A complete number at the very end may still grow; "" when it need not.
            return Out::partial(finish_number(&t[pos..], spec));
        }
        let text: String = t[pos..i].iter().collect();
        match text.parse::<f64>() {
            Ok(v) if spec.allows(v) => Out::complete(i),
            _ => Out::default(),
        }
    }

    fn string(&self, spec: &StrSpec, pos: usize) -> Out {
        let Some(scan) = self.scan_string(pos) else {
            return Out::default();
        };
        let Some(end) = scan.end else {
            return Out::partial(close_string(spec, &scan));
        };
        let count = scan.chars.len();
        if count < spec.min || spec.max.is_some_and(|m| count > m) {
            return Out::default();
        }
        if let StrRe::Regex(nfa, _) = &spec.re {
            if !nfa.matches(&scan.chars) {
                return Out::default();
            }
        }
        Out::complete(end)
    }

    /// Reads a string from its opening quote at `pos`; `None` when it is not valid JSON
    /// (a bad escape, a raw control character, a lone surrogate).
    fn scan_string(&self, pos: usize) -> Option<Scan> {
        let t = self.text;
        let mut scan = Scan {
            raw_start: pos + 1,
            ..Scan::empty()
        };
        let mut i = pos + 1;
        loop {
            let Some(&c) = t.get(i) else {
                return Some(scan);
            };
            if scan.high.is_some() && c != '\\' {
                return None;
            }
            match c {
                '"' => {
                    scan.end = Some(i + 1);
                    return Some(scan);
                }
                '\\' => {
                    let Some(&e) = t.get(i + 1) else {
                        scan.esc = Esc::Backslash;
                        return Some(scan);
                    };
                    if e != 'u' {
                        if scan.high.is_some() {
                            return None;
                        }
                        scan.chars.push(simple_escape(e)?);
                        i += 2;
                        continue;
                    }
                    let mut hex = String::new();
                    let mut j = i + 2;
                    while hex.len() < 4 {
                        match t.get(j) {
                            None => {
                                scan.esc = Esc::Unicode(hex);
                                return Some(scan);
                            }
                            Some(h) if h.is_ascii_hexdigit() => hex.push(*h),
                            Some(_) => return None,
                        }
                        j += 1;
                    }
                    let unit = u32::from_str_radix(&hex, 16).ok()?;
                    match (scan.high, unit) {
                        (Some(high), 0xDC00..=0xDFFF) => {
                            scan.chars.push(combine(high, unit)?);
                            scan.high = None;
                        }
                        (Some(_), _) | (None, 0xDC00..=0xDFFF) => return None,
                        (None, 0xD800..=0xDBFF) => scan.high = Some(unit),
                        (None, _) => scan.chars.push(char::from_u32(unit)?),
                    }
                    i = j;
                }
                c if (c as u32) < 0x20 => return None,
                c => {
                    scan.chars.push(c);
                    i += 1;
                }
            }
        }
    }

    fn array(&mut self, spec: &ArrSpec, pos: usize, depth: usize) -> Out {
        let mut out = Out::default();
        // Positions after `[` or a `,`; one in practice, more when alternatives disagree.
        let mut states = vec![pos + 1];
        let mut count = 0;
        let mut gap = Gap::Open;
        while !states.is_empty() {
            let mut next = Vec::new();
            for p in states {
                let p = self.skip_ws(p);
                match self.text.get(p) {
                    None => {
                        out.add(self.close_array(spec, count, gap));
                        continue;
                    }
                    Some(']') if gap == Gap::Open => {
                        if spec.min == 0 {
                            out.done(p + 1);
                        }
                        continue;
                    }
                    Some(_) => {}
                }
                let Some(item) = array_item(spec, count) else {
                    continue;
                };
                let read = self.value(item, p, depth + 1);
                if let Some(s) = read.partial {
                    out.add(
                        self.close_array(spec, count + 1, Gap::Member)
                            .map(|c| s + &c),
                    );
                }
                for end in read.complete {
                    let e = self.skip_ws(end);
                    match self.text.get(e) {
                        None => out.add(self.close_array(spec, count + 1, Gap::Member)),
                        Some(',') if !next.contains(&(e + 1)) => next.push(e + 1),
                        Some(']') if count + 1 >= spec.min => out.done(e + 1),
                        _ => {}
                    }
                }
            }
            count += 1;
            gap = Gap::Comma;
            states = next;
        }
        out
    }

    /// The shortest end of an array holding `count` items, the text having stopped at `gap`.
    fn close_array(&mut self, spec: &ArrSpec, count: usize, gap: Gap) -> Option<String> {
        if spec.min > MAX_GENERATED {
            return None;
        }
        let mut s = String::new();
        let mut i = count;
        let mut comma = gap == Gap::Member;
        if gap == Gap::Comma {
            // A `,` was written: one more item is needed whatever minItems says.
            s += &self.min_instance(array_item(spec, i)?)?;
            i += 1;
            comma = true;
        }
        while i < spec.min {
            if comma {
                s.push(',');
            }
            s += &self.min_instance(array_item(spec, i)?)?;
            comma = true;
            i += 1;
        }
        s.push(']');
        Some(s)
    }

    fn object(&mut self, spec: &ObjSpec, pos: usize, depth: usize) -> Out {
        let mut out = Out::default();
        // Positions after `{` or a `,`, with the keys read so far.
        let mut states: Vec<(usize, Vec<String>)> = vec![(pos + 1, Vec::new())];
        let mut gap = Gap::Open;
        while !states.is_empty() {
            let mut next: Vec<(usize, Vec<String>)> = Vec::new();
            for (p, seen) in states {
                let p = self.skip_ws(p);
                match self.text.get(p) {
                    None => out.add(self.close_object(spec, &seen, gap)),
                    Some('}') if gap == Gap::Open => {
                        if self.missing(spec, &seen).is_empty() {
                            out.done(p + 1);
                        }
                    }
                    Some('"') => self.member(spec, p, seen, depth, &mut out, &mut next),
                    Some(_) => {}
                }
            }
            gap = Gap::Comma;
            states = next;
        }
        out
    }

    /// Reads one `"key": value` member at `p`, then what follows it.
    fn member(
        &mut self,
        spec: &ObjSpec,
        p: usize,
        mut seen: Vec<String>,
        depth: usize,
        out: &mut Out,
        next: &mut Vec<(usize, Vec<String>)>,
    ) {
        let Some(scan) = self.scan_string(p) else {
            return;
        };
        let Some(end) = scan.end else {
            out.add(self.close_key(spec, &seen, &scan));
            return;
        };
        let key: String = scan.chars.iter().collect();
        let Some(node) = spec.node_for(&key) else {
            return;
        };
        seen.push(key);
        let q = self.skip_ws(end);
        match self.text.get(q) {
            None => out.add(
                self.value_and_close(spec, &seen, node)
                    .map(|s| format!(":{s}")),
            ),
            Some(':') => {
                let read = self.value(node, q + 1, depth + 1);
                if let Some(s) = read.partial {
                    out.add(self.close_object(spec, &seen, Gap::Member).map(|c| s + &c));
                }
                let last = read.complete.len();
                for (i, end) in read.complete.into_iter().enumerate() {
                    let e = self.skip_ws(end);
                    match self.text.get(e) {
                        None => out.add(self.close_object(spec, &seen, Gap::Member)),
                        Some(',') if !next.iter().any(|(n, _)| *n == e + 1) => {
                            let keys = if i + 1 == last {
                                std::mem::take(&mut seen)
                            } else {
                                seen.clone()
                            };
                            next.push((e + 1, keys));
                        }
                        Some('}') if self.missing(spec, &seen).is_empty() => out.done(e + 1),
                        _ => {}
                    }
                }
            }
            Some(_) => {}
        }
    }

    /// The required properties not in `seen`, in the order they are declared.
    fn missing(&self, spec: &ObjSpec, seen: &[String]) -> Vec<(String, usize)> {
        let mut list: Vec<(String, usize)> = spec
            .props
            .iter()
            .filter(|(name, _)| spec.required.contains(name) && !seen.contains(name))
            .cloned()
            .collect();
        for name in &spec.required {
            if !seen.contains(name) && !list.iter().any(|(n, _)| n == name) {
                // Required but not declared: its schema is the one for extra properties.
                let node = match spec.extra {
                    Extra::Forbidden => NEVER,
                    Extra::Implicit => ANY,
                    Extra::Allowed(node) => node,
                };
                list.push((name.clone(), node));
            }
        }
        list
    }

    /// `"a":…,"b":…` with minimal values.
    fn members(&mut self, list: &[(String, usize)]) -> Option<String> {
        let mut s = String::new();
        for (i, (name, node)) in list.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s += &key_json(name);
            s.push(':');
            s += &self.min_instance(*node)?;
        }
        Some(s)
    }

    /// The shortest end of an object holding the keys `seen`, the text having stopped at `gap`.
    fn close_object(&mut self, spec: &ObjSpec, seen: &[String], gap: Gap) -> Option<String> {
        let missing = self.missing(spec, seen);
        let mut s = String::new();
        match gap {
            Gap::Member if missing.is_empty() => {}
            Gap::Member => {
                s.push(',');
                s += &self.members(&missing)?;
            }
            Gap::Open => s += &self.members(&missing)?,
            Gap::Comma if missing.is_empty() => s += &self.optional_member(spec, seen)?,
            Gap::Comma => s += &self.members(&missing)?,
        }
        s.push('}');
        Some(s)
    }

    /// After a `,` with nothing required left, the grammar still wants a member: the shortest
    /// optional one (or an extra property where the schema allows them).
    fn optional_member(&mut self, spec: &ObjSpec, seen: &[String]) -> Option<String> {
        let mut best = None;
        for (name, node) in &spec.props {
            if !seen.contains(name) {
                let value = self.min_instance(*node);
                keep_shorter(&mut best, value.map(|v| format!("{}:{v}", key_json(name))));
            }
        }
        if let Extra::Allowed(node) = spec.extra {
            let key = fresh_key(spec, seen, "");
            let value = self.min_instance(node);
            keep_shorter(&mut best, value.map(|v| format!("{}:{v}", key_json(&key))));
        }
        best
    }

    /// The text ended inside a key: finish it as the property name that closes the object
    /// shortest.
    fn close_key(&mut self, spec: &ObjSpec, seen: &[String], scan: &Scan) -> Option<String> {
        let raw: String = self.text.get(scan.raw_start..)?.iter().collect();
        let mut best = None;
        for (name, node) in &spec.props {
            if seen.contains(name) {
                continue;
            }
            let quoted = key_json(name);
            let Some(rest) = quoted[1..].strip_prefix(raw.as_str()) else {
                continue;
            };
            let mut with = seen.to_vec();
            with.push(name.clone());
            let tail = self.value_and_close(spec, &with, *node);
            keep_shorter(&mut best, tail.map(|t| format!("{rest}:{t}")));
        }
        if let Extra::Allowed(node) = spec.extra {
            if let Some((finish, produced)) = finish_escape(&scan.esc, scan.high, |_| true) {
                let mut base: String = scan.chars.iter().collect();
                base.extend(produced);
                let key = fresh_key(spec, seen, &base);
                let added = &key[base.len()..];
                let mut with = seen.to_vec();
                with.push(key.clone());
                let tail = self.value_and_close(spec, &with, node);
                keep_shorter(&mut best, tail.map(|t| format!("{finish}{added}\":{t}")));
            }
        }
        best
    }

    /// A minimal value of `node`, then the end of the object.
    fn value_and_close(&mut self, spec: &ObjSpec, seen: &[String], node: usize) -> Option<String> {
        let value = self.min_instance(node)?;
        let close = self.close_object(spec, seen, Gap::Member)?;
        Some(value + &close)
    }

    /// The shortest JSON text valid against node `n` (`None` when there is none, or none
    /// within the guards).
    fn min_instance(&mut self, n: usize) -> Option<String> {
        let n = self.target(n);
        if let Some(known) = &self.memo[n] {
            return known.clone();
        }
        self.steps += 1;
        if self.busy[n] || self.busy_depth >= MAX_INSTANCE_DEPTH || self.steps > MAX_STEPS {
            // A minimal instance never nests a schema inside itself (the inner one alone would
            // be shorter), so this path can be dropped.
            self.cut = true;
            return None;
        }
        self.busy[n] = true;
        self.busy_depth += 1;
        let outer_cut = std::mem::replace(&mut self.cut, false);
        let result = self.compute_min(n);
        self.busy[n] = false;
        self.busy_depth -= 1;
        if !self.cut {
            self.memo[n] = Some(result.clone());
        }
        self.cut |= outer_cut;
        result
    }

    fn compute_min(&mut self, n: usize) -> Option<String> {
        let c = self.c;
        match &c.nodes[n] {
            Node::Any | Node::Null => Some("null".to_string()),
            Node::Alias(_) | Node::Never => None,
            Node::Union(branches) => {
                let mut best = None;
                for &b in branches {
                    let candidate = self.min_instance(b);
                    keep_shorter(&mut best, candidate);
                }
                best
            }
            Node::Enum(values) => {
                let mut best = None;
                for v in values {
                    keep_shorter(&mut best, Some(v.to_string()));
                }
                best
            }
            Node::Bool => Some("true".to_string()),
            Node::Num(spec) => min_number(spec),
            Node::Str(spec) => close_string(spec, &Scan::empty()).map(|s| format!("\"{s}")),
            Node::Arr(spec) => self
                .close_array(spec, 0, Gap::Open)
                .map(|s| format!("[{s}")),
            Node::Obj(spec) => self
                .close_object(spec, &[], Gap::Open)
                .map(|s| format!("{{{s}")),
        }
    }
}

fn array_item(spec: &ArrSpec, i: usize) -> Option<usize> {
    if spec.max.is_some_and(|m| i >= m) {
        return None;
    }
    match spec.prefix.get(i) {
        Some(&node) => Some(node),
        None => spec.rest,
    }
}

fn key_json(name: &str) -> String {
    Value::String(name.to_string()).to_string()
}

/// `base` plus the shortest suffix making a key neither used nor declared (a declared name
/// would be validated against its own schema, not the extra-properties one).
fn fresh_key(spec: &ObjSpec, seen: &[String], base: &str) -> String {
    let taken = |k: &str| seen.iter().any(|s| s == k) || spec.props.iter().any(|(n, _)| n == k);
    let mut i = 0usize;
    loop {
        let mut suffix = String::new();
        let mut rest = i;
        while rest > 0 {
            rest -= 1;
            suffix.insert(0, char::from(b'a' + (rest % 26) as u8));
            rest /= 26;
        }
        let key = format!("{base}{suffix}");
        if !taken(&key) {
            return key;
        }
        i += 1;
    }
}

/// The text without the whitespace between tokens.
fn compact(text: &[char]) -> String {
    let mut s = String::new();
    let (mut in_string, mut escaped) = (false, false);
    for &c in text {
        if in_string {
            s.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            s.push(c);
            in_string = c == '"';
        }
    }
    s
}

fn simple_escape(e: char) -> Option<char> {
    Some(match e {
        '"' => '"',
        '\\' => '\\',
        '/' => '/',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        _ => return None,
    })
}

fn combine(high: u32, low: u32) -> Option<char> {
    char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
}

/// Finishes a dangling escape with a character `accept` allows: the text to append, and the
/// character it decodes to.
fn finish_escape(
    esc: &Esc,
    high: Option<u32>,
    accept: impl Fn(char) -> bool,
) -> Option<(String, Option<char>)> {
    let low_half = |prefix: &str| {
        let c = combine(high?, 0xDC00)?;
        accept(c).then(|| (format!("{prefix}udc00"), Some(c)))
    };
    match (esc, high) {
        (Esc::None, None) => Some((String::new(), None)),
        (Esc::None, Some(_)) => low_half("\\"),
        (Esc::Backslash, Some(_)) => low_half(""),
        (Esc::Backslash, None) => {
            // `\n` first: a line break is the most natural thing to have been cut at.
            const ESCAPES: [(char, char); 8] = [
                ('n', '\n'),
                ('/', '/'),
                ('\\', '\\'),
                ('"', '"'),
                ('t', '\t'),
                ('r', '\r'),
                ('b', '\u{8}'),
                ('f', '\u{c}'),
            ];
            ESCAPES
                .iter()
                .find(|(_, c)| accept(*c))
                .map(|&(e, c)| (e.to_string(), Some(c)))
        }
        (Esc::Unicode(digits), _) => {
            let k = digits.len();
            // Zeros first (`\u12` → `\u1200`); a space or a line break rather than NUL.
            let fillers: &[&str] = if high.is_some() {
                &["dc00", "0000"]
            } else {
                &["0000", "0020", "000a"]
            };
            let mut best: Option<(u8, String, char)> = None;
            for filler in fillers {
                let fill = filler.get(k..)?;
                let unit = u32::from_str_radix(&format!("{digits}{fill}"), 16).ok()?;
                let (text, c) = match (high, unit) {
                    (Some(h), 0xDC00..=0xDFFF) => (fill.to_string(), combine(h, unit)),
                    (Some(_), _) | (None, 0xDC00..=0xDFFF) => continue,
                    (None, 0xD800..=0xDBFF) => (format!("{fill}\\udc00"), combine(unit, 0xDC00)),
                    (None, _) => (fill.to_string(), char::from_u32(unit)),
                };
                let Some(c) = c.filter(|&c| accept(c)) else {
                    continue;
                };
                let rank = match c {
                    '\0' => 2,
                    c if (c as u32) < 0x20 => 1,
                    _ => 0,
                };
                if best.as_ref().is_none_or(|(r, _, _)| rank < *r) {
                    best = Some((rank, text, c));
                }
            }
            best.map(|(_, text, c)| (text, Some(c)))
        }
    }
}

/// Appends `c` to JSON string text, escaped where JSON requires it.
fn push_escaped(s: &mut String, c: char) {
    match c {
        '"' => s.push_str("\\\""),
        '\\' => s.push_str("\\\\"),
        '\n' => s.push_str("\\n"),
        '\r' => s.push_str("\\r"),
        '\t' => s.push_str("\\t"),
        c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
        c => s.push(c),
    }
}

/// The end of a string whose text stopped after `scan` (which may be empty: a new string),
/// closing quote included.
fn close_string(spec: &StrSpec, scan: &Scan) -> Option<String> {
    match &spec.re {
        StrRe::Unsupported => None,
        StrRe::Free => {
            let (mut s, produced) = finish_escape(&scan.esc, scan.high, |_| true)?;
            let count = scan.chars.len() + usize::from(produced.is_some());
            if spec.max.is_some_and(|m| count > m) || spec.min.saturating_sub(count) > MAX_GENERATED
            {
                return None;
            }
            for _ in count..spec.min {
                s.push('a');
            }
            s.push('"');
            Some(s)
        }
        StrRe::Regex(nfa, filler) => {
            let mut set = nfa.start();
            for &c in &scan.chars {
                set = nfa.step(&set, c)?;
            }
            let (mut s, produced) =
                finish_escape(&scan.esc, scan.high, |c| nfa.step(&set, c).is_some())?;
            if let Some(c) = produced {
                set = nfa.step(&set, c)?;
            }
            let written = scan.chars.len() + usize::from(produced.is_some());
            // The format's filler where it fits (a readable `2024-01-01` rather than
            // `0000-01-01`) if no longer, else the automaton's shortest way to acceptance;
            // skipping one that makes an impossible calendar date (the grammar allows
            // `2024-04-31`, JSON Schema validators do not) when the other does not.
            let filler: Option<Vec<char>> = filler
                .map(|f| f.chars().skip(written).collect())
                .filter(|f: &Vec<char>| nfa.accepts_after(&set, f));
            let mut candidates: Vec<Vec<char>> =
                filler.into_iter().chain(nfa.shortest(&set)).collect();
            candidates.sort_by_key(Vec::len);
            let whole = |rest: &[char]| {
                let mut all = scan.chars.clone();
                all.extend(produced);
                all.extend_from_slice(rest);
                all
            };
            let rest = match candidates.iter().position(|c| calendar_ok(&whole(c))) {
                Some(i) => candidates.swap_remove(i),
                None => candidates.into_iter().next()?,
            };
            let count = written + rest.len();
            if count < spec.min || spec.max.is_some_and(|m| count > m) {
                return None;
            }
            for c in rest {
                push_escaped(&mut s, c);
            }
            s.push('"');
            Some(s)
        }
    }
}

/// False for text starting with a `YYYY-MM-DD` date whose day the month does not have.
fn calendar_ok(chars: &[char]) -> bool {
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = chars.get(range)?;
        if !part.iter().all(char::is_ascii_digit) {
            return None;
        }
        part.iter().collect::<String>().parse().ok()
    };
    let (Some(year), Some(month), Some(day)) = (number(0..4), number(5..7), number(8..10)) else {
        return true;
    };
    if chars.get(4) != Some(&'-') || chars.get(7) != Some(&'-') {
        return true;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    day <= days
}

/// The shortest text finishing the number `token` (a prefix of JSON number syntax reaching the
/// end of the text) within the schema's bounds; "" when it is complete and allowed.
fn finish_number(token: &[char], spec: &NumSpec) -> Option<String> {
    let token: String = token.iter().collect();
    let (negative, body) = match token.strip_prefix('-') {
        Some(body) => (true, body),
        None => (false, token.as_str()),
    };
    if body.chars().all(|c| c.is_ascii_digit()) {
        if let Some(s) = extend_integer(negative, body, spec) {
            return Some(s);
        }
        if spec.integer || body.is_empty() {
            return None;
        }
        // A bound only a fraction meets (`exclusiveMinimum: 0.5` after `0`).
        return (1..100)
            .map(|d| format!(".{d}"))
            .find(|s| allowed_number(&format!("{token}{s}"), spec));
    }
    // A fraction or exponent: one or two more digits, enough for what grammars produce.
    let one = (0..10).map(|d| d.to_string());
    let two = (0..100).map(|d| format!("{d:02}"));
    std::iter::once(String::new())
        .chain(one)
        .chain(two)
        .find(|s| allowed_number(&format!("{token}{s}"), spec))
}

/// Whether `text` is a complete JSON number the schema allows.
fn allowed_number(text: &str, spec: &NumSpec) -> bool {
    let body = text.strip_prefix('-').unwrap_or(text);
    let int_len = body.chars().take_while(char::is_ascii_digit).count();
    let rest = &body[int_len..];
    let rest_ok = match rest.strip_prefix('.') {
        Some(frac) => {
            let f = frac.chars().take_while(char::is_ascii_digit).count();
            f > 0 && exponent_ok(&frac[f..])
        }
        None => exponent_ok(rest),
    };
    int_len > 0
        && !(int_len > 1 && body.starts_with('0'))
        && rest_ok
        && text.parse::<f64>().is_ok_and(|v| spec.allows(v))
}

fn exponent_ok(rest: &str) -> bool {
    match rest.strip_prefix(['e', 'E']) {
        None => rest.is_empty(),
        Some(exp) => {
            let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit())
        }
    }
}

/// Digits to append to an integer prefix (`-`, `1`, `-12`) for the shortest integer within
/// the bounds: each extra digit widens the reachable range tenfold.
fn extend_integer(negative: bool, digits: &str, spec: &NumSpec) -> Option<String> {
    let (lo, hi) = spec.int_bounds();
    // Bounds on the magnitude `x` of the value `±x`.
    let (x_lo, x_hi) = if negative {
        (hi.map(|h| -h), lo.map(|l| -l))
    } else {
        (lo, hi)
    };
    if digits == "0" {
        return (x_lo.is_none_or(|l| l <= 0) && x_hi.is_none_or(|h| h >= 0)).then(String::new);
    }
    const MAX_DIGITS: usize = 30;
    if digits.len() > MAX_DIGITS {
        // Beyond exact integer arithmetic: accept it as it is if allowed.
        let text = if negative {
            format!("-{digits}")
        } else {
            digits.to_string()
        };
        return allowed_number(&text, spec).then(String::new);
    }
    let base: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    for extra in 0..=(MAX_DIGITS - digits.len()) {
        let scale = 10i128.pow(extra as u32);
        let (a, b) = if digits.is_empty() {
            match extra {
                0 => continue,
                1 => (0, 9),
                _ => (scale / 10, scale - 1),
            }
        } else {
            (base * scale, base * scale + scale - 1)
        };
        let from = x_lo.map_or(a, |l| l.max(a));
        let to = x_hi.map_or(b, |h| h.min(b));
        if from <= to {
            let full = from.to_string();
            let suffix = full.get(full.len() - extra..)?;
            let text = format!("{}{digits}{suffix}", if negative { "-" } else { "" });
            return allowed_number(&text, spec).then(|| suffix.to_string());
        }
    }
    None
}

/// The shortest number within the bounds: 0 when allowed, else the nearest bound.
fn min_number(spec: &NumSpec) -> Option<String> {
    let (lo, hi) = spec.int_bounds();
    let mut candidates: Vec<String> = vec!["0".to_string()];
    candidates.extend(lo.into_iter().chain(hi).map(|v| v.to_string()));
    if !spec.integer {
        if let (Some((l, _)), Some((h, _))) = (spec.lo, spec.hi) {
            if let Some(n) = serde_json::Number::from_f64((l + h) / 2.0) {
                candidates.push(n.to_string());
            }
        }
    }
    let mut best = None;
    for c in candidates {
        if allowed_number(&c, spec) {
            keep_shorter(&mut best, Some(c));
        }
    }
    best
}

// ---------------------------------------------------------------------------------------------
// Regular expressions (the subset llama.cpp turns into grammar rules), as automata that can
// both check a string and find the shortest way to finish one.
// ---------------------------------------------------------------------------------------------

/// A set of characters.
#[derive(Clone)]
struct Class {
    ranges: Vec<(char, char)>,
    negated: bool,
}

impl Class {
    fn single(c: char) -> Class {
        Class {
            ranges: vec![(c, c)],
            negated: false,
        }
    }

    fn has(&self, c: char) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= c && c <= b) != self.negated
    }

    /// The character written where this class is needed: readable, no JSON escape if possible.
    fn pick(&self) -> Option<char> {
        const PREFERRED: [char; 8] = ['a', '0', 'A', '_', '-', ' ', '.', 'x'];
        if let Some(&c) = PREFERRED.iter().find(|&&c| self.has(c)) {
            return Some(c);
        }
        let plain = |c: char| c != '"' && c != '\\' && c >= ' ';
        if self.negated {
            return (' '..='~')
                .chain('\u{a1}'..='\u{ff}')
                .find(|&c| self.has(c));
        }
        self.ranges
            .iter()
            .flat_map(|&(a, b)| (a..=b).take(64))
            .find(|&c| plain(c))
            .or_else(|| self.ranges.first().map(|r| r.0))
    }
}

fn digit_ranges() -> Vec<(char, char)> {
    vec![('0', '9')]
}

fn word_ranges() -> Vec<(char, char)> {
    vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')]
}

fn space_ranges() -> Vec<(char, char)> {
    vec![
        ('\t', '\r'),
        (' ', ' '),
        ('\u{a0}', '\u{a0}'),
        ('\u{1680}', '\u{1680}'),
        ('\u{2000}', '\u{200a}'),
        ('\u{2028}', '\u{2029}'),
        ('\u{202f}', '\u{202f}'),
        ('\u{205f}', '\u{205f}'),
        ('\u{3000}', '\u{3000}'),
        ('\u{feff}', '\u{feff}'),
    ]
}

enum Re {
    Class(Class),
    Seq(Vec<Re>),
    Alt(Vec<Re>),
    /// An expression repeated `min` to `max` (unbounded: `None`) times.
    Repeat(Box<Re>, u32, Option<u32>),
}

/// Parses the ECMA-262 subset llama.cpp supports: literals, `.`, classes, `\d\w\s` and their
/// negations, groups, alternation, `? * + {n} {n,} {n,m}`. `None` for anything else.
struct ReParser {
    s: Vec<char>,
    i: usize,
}

impl ReParser {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn alternation(&mut self) -> Option<Re> {
        let mut alternatives = vec![self.sequence()?];
        while self.eat('|') {
            alternatives.push(self.sequence()?);
        }
        Some(if alternatives.len() == 1 {
            alternatives.pop()?
        } else {
            Re::Alt(alternatives)
        })
    }

    fn sequence(&mut self) -> Option<Re> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Some(Re::Seq(items))
    }

    fn atom(&mut self) -> Option<Re> {
        match self.next()? {
            '(' => {
                if self.eat('?') && !self.eat(':') {
                    return None;
                }
                let inner = self.alternation()?;
                self.eat(')').then_some(inner)
            }
            '[' => self.class().map(Re::Class),
            '.' => Some(Re::Class(Class {
                ranges: vec![('\n', '\n'), ('\r', '\r'), ('\u{2028}', '\u{2029}')],
                negated: true,
            })),
            '\\' => self.escape(false).map(Re::Class),
            '*' | '+' | '?' | '{' | '^' | '$' => None,
            c => Some(Re::Class(Class::single(c))),
        }
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let text: String = self.s[start..self.i].iter().collect();
        text.parse().ok()
    }

    fn quantified(&mut self, atom: Re) -> Option<Re> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                self.i += 1;
                let min = if self.peek() == Some(',') {
                    Some(0)
                } else {
                    self.number()
                };
                let (min, max) = if self.eat(',') {
                    if self.peek() == Some('}') {
                        (min?, None)
                    } else {
                        (min?, Some(self.number()?))
                    }
                } else {
                    (min?, min)
                };
                if self.peek() != Some('}') || max.is_some_and(|m| m < min) {
                    return None;
                }
                (min, max)
            }
            _ => return Some(atom),
        };
        self.i += 1;
        self.eat('?'); // lazy: the same language
        Some(Re::Repeat(Box::new(atom), min, max))
    }

    /// After a `\`: a class (`\d`) or a single character. `in_class`: inside `[...]`, where
    /// negated shorthands are not supported and `\b` is a backspace.
    fn escape(&mut self, in_class: bool) -> Option<Class> {
        let c = self.next()?;
        let class = |ranges, negated| Some(Class { ranges, negated });
        match c {
            'd' => class(digit_ranges(), false),
            'w' => class(word_ranges(), false),
            's' => class(space_ranges(), false),
            'D' if !in_class => class(digit_ranges(), true),
            'W' if !in_class => class(word_ranges(), true),
            'S' if !in_class => class(space_ranges(), true),
            'b' if in_class => Some(Class::single('\u{8}')),
            'n' => Some(Class::single('\n')),
            'r' => Some(Class::single('\r')),
            't' => Some(Class::single('\t')),
            'f' => Some(Class::single('\u{c}')),
            'v' => Some(Class::single('\u{b}')),
            '0' if !self.peek().is_some_and(|c| c.is_ascii_digit()) => Some(Class::single('\0')),
            'x' | 'u' => {
                let n = if c == 'x' { 2 } else { 4 };
                let hex: String = (0..n).map(|_| self.next()).collect::<Option<_>>()?;
                let code = u32::from_str_radix(&hex, 16).ok()?;
                char::from_u32(code).map(Class::single)
            }
            c if c.is_ascii_punctuation() => Some(Class::single(c)),
            _ => None,
        }
    }

    fn class(&mut self) -> Option<Class> {
        let negated = self.eat('^');
        let mut ranges = Vec::new();
        loop {
            let c = self.next()?;
            if c == ']' {
                break;
            }
            let low = if c == '\\' {
                let escaped = self.escape(true)?;
                match escaped.ranges.as_slice() {
                    [(a, b)] if a == b => *a,
                    _ => {
                        ranges.extend(escaped.ranges);
                        continue;
                    }
                }
            } else {
                c
            };
            if self.peek() == Some('-') && self.s.get(self.i + 1).is_some_and(|&c| c != ']') {
                self.i += 1;
                let high = match self.next()? {
                    '\\' => match self.escape(true)?.ranges.as_slice() {
                        [(a, b)] if a == b => *a,
                        _ => return None,
                    },
                    c => c,
                };
                if high < low {
                    return None;
                }
                ranges.push((low, high));
            } else {
                ranges.push((low, low));
            }
        }
        Some(Class { ranges, negated })
    }
}

#[derive(Default)]
struct NState {
    /// Moves that read nothing.
    eps: Vec<usize>,
    /// Moves reading a character of class `.0` to state `.1`.
    edges: Vec<(usize, usize)>,
}

/// A nondeterministic automaton (Thompson's construction) for one regex.
struct Nfa {
    states: Vec<NState>,
    classes: Vec<Class>,
    /// The character each class writes, when it has one.
    picks: Vec<Option<char>>,
    /// See [`Nfa::closure`].
    closures: RefCell<Vec<Option<Rc<[usize]>>>>,
    start: usize,
    accept: usize,
}

impl Nfa {
    /// The automaton of a JSON Schema `pattern`; unanchored ends match anything, as JSON
    /// Schema says (llama.cpp only accepts anchored ones).
    fn from_pattern(pattern: &str) -> Option<Nfa> {
        let mut chars: Vec<char> = pattern.chars().collect();
        let anchored_start = chars.first() == Some(&'^');
        if anchored_start {
            chars.remove(0);
        }
        let backslashes = chars
            .iter()
            .rev()
            .skip(1)
            .take_while(|&&c| c == '\\')
            .count();
        let anchored_end = chars.last() == Some(&'$') && backslashes % 2 == 0;
        if anchored_end {
            chars.pop();
        }
        let mut parser = ReParser { s: chars, i: 0 };
        let re = parser.alternation()?;
        if parser.i != parser.s.len() {
            return None;
        }
        let anything = || {
            Re::Repeat(
                Box::new(Re::Class(Class {
                    ranges: Vec::new(),
                    negated: true,
                })),
                0,
                None,
            )
        };
        let mut items = Vec::new();
        if !anchored_start {
            items.push(anything());
        }
        items.push(re);
        if !anchored_end {
            items.push(anything());
        }
        let mut nfa = Nfa {
            states: Vec::new(),
            classes: Vec::new(),
            picks: Vec::new(),
            closures: RefCell::new(Vec::new()),
            start: 0,
            accept: 0,
        };
        let (start, accept) = nfa.build(&Re::Seq(items))?;
        nfa.start = start;
        nfa.accept = accept;
        nfa.picks = nfa.classes.iter().map(Class::pick).collect();
        nfa.closures = RefCell::new(vec![None; nfa.states.len()]);
        Some(nfa)
    }

    fn state(&mut self) -> Option<usize> {
        if self.states.len() >= MAX_NFA_STATES {
            return None;
        }
        self.states.push(NState::default());
        Some(self.states.len() - 1)
    }

    fn eps(&mut self, from: usize, to: usize) {
        self.states[from].eps.push(to);
    }

    /// Adds states for `re`; returns its entry and exit.
    fn build(&mut self, re: &Re) -> Option<(usize, usize)> {
        match re {
            Re::Class(class) => {
                let (s, e) = (self.state()?, self.state()?);
                self.classes.push(class.clone());
                self.states[s].edges.push((self.classes.len() - 1, e));
                Some((s, e))
            }
            Re::Seq(items) => {
                let s = self.state()?;
                let mut cur = s;
                for item in items {
                    let (a, b) = self.build(item)?;
                    self.eps(cur, a);
                    cur = b;
                }
                Some((s, cur))
            }
            Re::Alt(alternatives) => {
                let (s, e) = (self.state()?, self.state()?);
                for alternative in alternatives {
                    let (a, b) = self.build(alternative)?;
                    self.eps(s, a);
                    self.eps(b, e);
                }
                Some((s, e))
            }
            Re::Repeat(inner, min, max) => {
                let s = self.state()?;
                let mut cur = s;
                for _ in 0..*min {
                    let (a, b) = self.build(inner)?;
                    self.eps(cur, a);
                    cur = b;
                }
                match max {
                    None => {
                        let (a, b) = self.build(inner)?;
                        let hub = self.state()?;
                        self.eps(cur, hub);
                        self.eps(hub, a);
                        self.eps(b, hub);
                        Some((s, hub))
                    }
                    Some(max) => {
                        let e = self.state()?;
                        for _ in *min..*max {
                            let (a, b) = self.build(inner)?;
                            self.eps(cur, a);
                            self.eps(cur, e);
                            cur = b;
                        }
                        self.eps(cur, e);
                        Some((s, e))
                    }
                }
            }
        }
    }

    /// The states reachable from `state` without reading that matter (those that read, and
    /// the accepting one), computed once per state and call: a string in a format is read
    /// again and again through the same few states, and Thompson's construction makes long
    /// chains of free moves.
    fn closure(&self, state: usize) -> Rc<[usize]> {
        if let Some(Some(known)) = self.closures.borrow().get(state) {
            return known.clone();
        }
        let mut on = vec![false; self.states.len()];
        on[state] = true;
        let mut list = vec![state];
        let mut k = 0;
        while let Some(&i) = list.get(k) {
            k += 1;
            for &j in &self.states[i].eps {
                if !on[j] {
                    on[j] = true;
                    list.push(j);
                }
            }
        }
        list.retain(|&i| i == self.accept || !self.states[i].edges.is_empty());
        let list: Rc<[usize]> = list.into();
        if let Some(slot) = self.closures.borrow_mut().get_mut(state) {
            *slot = Some(list.clone());
        }
        list
    }

    /// The states before reading anything. Sets of states are short sorted lists: only a few
    /// states are active at a time, whatever the size of the automaton.
    fn start(&self) -> Vec<usize> {
        let mut set = self.closure(self.start).to_vec();
        set.sort_unstable();
        set
    }

    /// The states after reading `c`; `None` when there are none.
    fn step(&self, set: &[usize], c: char) -> Option<Vec<usize>> {
        let mut next = Vec::new();
        for &i in set {
            for &(class, j) in &self.states[i].edges {
                if self.classes[class].has(c) {
                    next.extend_from_slice(&self.closure(j));
                }
            }
        }
        if next.is_empty() {
            return None;
        }
        next.sort_unstable();
        next.dedup();
        Some(next)
    }

    fn accepts(&self, set: &[usize]) -> bool {
        set.contains(&self.accept)
    }

    fn matches(&self, chars: &[char]) -> bool {
        let mut set = self.start();
        for &c in chars {
            match self.step(&set, c) {
                Some(next) => set = next,
                None => return false,
            }
        }
        self.accepts(&set)
    }

    /// Whether reading `chars` from `set` ends in acceptance.
    fn accepts_after(&self, set: &[usize], chars: &[char]) -> bool {
        let mut cur = set.to_vec();
        for &c in chars {
            match self.step(&cur, c) {
                Some(next) => cur = next,
                None => return false,
            }
        }
        self.accepts(&cur)
    }

    /// The fewest characters leading from `set` to acceptance (a breadth-first search where
    /// reading costs 1 and free moves 0).
    fn shortest(&self, set: &[usize]) -> Option<Vec<char>> {
        let n = self.states.len();
        let mut dist = vec![usize::MAX; n];
        let mut prev: Vec<Option<(usize, Option<char>)>> = vec![None; n];
        let mut queue = VecDeque::new();
        for &i in set {
            dist[i] = 0;
            queue.push_back(i);
        }
        while let Some(i) = queue.pop_front() {
            for &j in &self.states[i].eps {
                if dist[i] < dist[j] {
                    dist[j] = dist[i];
                    prev[j] = Some((i, None));
                    queue.push_front(j);
                }
            }
            for &(class, j) in &self.states[i].edges {
                if let Some(c) = self.picks[class] {
                    if dist[i] + 1 < dist[j] {
                        dist[j] = dist[i] + 1;
                        prev[j] = Some((i, Some(c)));
                        queue.push_back(j);
                    }
                }
            }
        }
        if dist[self.accept] == usize::MAX {
            return None;
        }
        let mut out = Vec::new();
        let mut at = self.accept;
        for _ in 0..=n {
            let Some((from, c)) = prev[at] else {
                out.reverse();
                return Some(out);
            };
            out.extend(c);
            at = from;
        }
        None
    }
}

/// Whether `s` matches the JSON Schema `pattern` (`None`: unsupported regex).
#[cfg(test)]
fn pattern_matches(pattern: &str, s: &str) -> Option<bool> {
    let chars: Vec<char> = s.chars().collect();
    Nfa::from_pattern(pattern).map(|nfa| nfa.matches(&chars))
}

#[cfg(test)]
mod tests {
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
        let s = json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]});
        let body =
            "Lorem ipsum \\\"dolor\\\" sit amet,\\n consectetur \\u00e9 adipiscing ".repeat(40);
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
        assert_eq!(pattern_matches("^x{,2}$", "xx"), Some(true));
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
        // "In order" is the order of the schema's map, the one llama.cpp sees too: serde_json
        // sorts keys unless its `preserve_order` feature is on.
        let s = person();
        expect(&s, "", "{\"age\":0,\"name\":\"a\"}");
        expect(&s, "{", "\"age\":0,\"name\":\"a\"}");
        expect(&s, "{\"", "age\":0,\"name\":\"a\"}");
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
        expect(&s, "  ", "{\"age\":0,\"name\":\"a\"}");
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
        let s =
            json!({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3});
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
        let open = json!({"type": "array", "prefixItems": [{"type": "boolean"}], "items": {"type": "null"}});
        expect(&open, "[true,", "null]");
        expect(&open, "[", "]");
        let none = json!({"type": "array", "items": false});
        expect(&none, "[", "]");
        rejects(&none, "[1");
        let tuple = json!({"type": "array", "items": [{"type": "integer"}, {"type": "string"}], "minItems": 2});
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
        expect(&s, "", "{\"rows\":[{\"cells\":[0],\"id\":0}]}");
        expect(&s, "{\"rows\": [{\"id\": 1, \"cells\": [1.", "0]}]}");
        expect(
            &s,
            "{\"rows\": [{\"id\": 1, \"cells\": [1.5]}, {\"cells\": [",
            "0],\"id\":0}]}",
        );
        expect(
            &s,
            "{\"rows\": [{\"id\": 1, \"cells\": [1.5]},",
            "{\"cells\":[0],\"id\":0}]}",
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
        expect(&refs, "", "{\"extra\":true,\"id\":3}");
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
            &[
                r#"{"a":[1,2.5,{"b":null}],"c":"x\\y","d":true,"e":false,"f":{},"g":[],"h":-0.0e-0}"#,
            ],
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

    #[test]
    fn long_answers_stay_fast() {
        let s = json!({"type": "object", "properties": {"rows": {"type": "array", "items": {
            "type": "object",
            "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "tags": {"type": "array", "items": {"enum": ["a", "b"]}}},
            "required": ["id", "name"]
        }}}, "required": ["rows"]});
        let rows: Vec<String> = (0..150)
            .map(|i| {
                format!("{{\"id\": {i}, \"name\": \"row number {i}\", \"tags\": [\"a\", \"b\"]}}")
            })
            .collect();
        let doc = format!("{{\"rows\": [{}]}}", rows.join(", "));
        assert!(doc.len() > 8000);
        // The work a call does (parse steps plus minimal-instance computations, what the
        // MAX_STEPS guard counts), not its time: the engine asks at every token, so the work
        // must stay linear in the text; a clock would measure the machine's load as well.
        let compiled = Compiled::new(&s);
        let steps = |partial: &str| {
            let text: Vec<char> = partial.chars().collect();
            let mut parser = Parser::new(&compiled, &text);
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
}
