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
//! validates whole documents only; `pattern` strings go through a `regex-automata` DFA, which
//! can be stepped character by character and searched for the shortest way to a match
//! (`pattern.rs`).

use std::collections::{HashMap, VecDeque};

use serde_json::{json, Map, Value};

use super::structured::ANNOTATIONS;

mod compile;
mod parse;
mod pattern;
mod scalars;
#[cfg(test)]
mod tests;

use compile::*;
use parse::*;
use pattern::*;
use scalars::*;

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
    let compiled = Compiled::new(schema);
    let text: Vec<char> = partial.chars().collect();
    complete(&compiled, &text, &mut Carry::new(&compiled)).0
}

/// The closer of one answer as it grows: the engine pushes each token's text and asks for
/// the shortest completion of everything so far. What each parse found is carried to the
/// next ([`Carry`]), so the work per token stays flat however long the answer gets (a fresh
/// parse per token would cost the whole answer every time: quadratic).
pub struct AnswerCloser {
    compiled: Compiled,
    text: Vec<char>,
    /// Bytes of a character the last token did not finish.
    pending: Vec<u8>,
    carry: Carry,
    /// Parse steps of the last [`AnswerCloser::push`] (what the tests bound).
    last_steps: usize,
}

impl AnswerCloser {
    /// A closer for answers valid against `schema`, before any text.
    pub fn new(schema: &Value) -> Self {
        let compiled = Compiled::new(schema);
        let carry = Carry::new(&compiled);
        Self {
            compiled,
            text: Vec::new(),
            pending: Vec::new(),
            carry,
            last_steps: 0,
        }
    }

    /// Appends `bytes` (a token's text, which may end inside a character: those bytes wait
    /// for the next token) and returns [`shortest_completion`] of the whole text so far.
    pub fn push(&mut self, bytes: &[u8]) -> Option<String> {
        self.pending.extend_from_slice(bytes);
        let mut rest = std::mem::take(&mut self.pending);
        loop {
            match std::str::from_utf8(&rest) {
                Ok(s) => {
                    self.text.extend(s.chars());
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    self.text
                        .extend(std::str::from_utf8(good).unwrap_or_default().chars());
                    match e.error_len() {
                        // Not UTF-8 at all: read as the replacement character, as a client would.
                        Some(n) => {
                            self.text.push(char::REPLACEMENT_CHARACTER);
                            rest = bad[n..].to_vec();
                        }
                        None => {
                            self.pending = bad.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        let (completion, steps) = complete(&self.compiled, &self.text, &mut self.carry);
        self.last_steps = steps;
        completion
    }

    /// Parse steps the last push took.
    pub fn last_steps(&self) -> usize {
        self.last_steps
    }
}

/// The shortest completion of `text` (see [`shortest_completion`]), and the parse steps it
/// took: none needed when a reading ends the document (trailing whitespace allowed), else the
/// shortest continuation.
fn complete(compiled: &Compiled, text: &[char], carry: &mut Carry) -> (Option<String>, usize) {
    let mut parser = Parser::new(compiled, text, carry);
    let out = parser.value(compiled.root, 0, 0);
    let done = out
        .complete
        .iter()
        .any(|&end| parser.skip_ws(end) == text.len());
    let completion = if done {
        Some(String::new())
    } else {
        out.partial
    };
    (completion, parser.steps)
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
