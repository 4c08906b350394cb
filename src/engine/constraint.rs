//! The constraint engine: what an answer must match (a JSON Schema, a regular expression, a
//! Lark grammar), compiled by llguidance against the model's vocabulary into a [`Matcher`] that
//! says, token by token, which tokens may come next.
//!
//! llguidance instead of llama.cpp's GBNF sampler: it computes a token mask in tens of
//! microseconds on a 128k-262k vocabulary where the GBNF sampler walks every token (about 6 ms a
//! mask on Gemma's 262k), it covers far more of JSON Schema (number bounds, `multipleOf`,
//! string formats, unanchored patterns, `min/maxProperties`…), and it is what vLLM, SGLang and
//! llama.cpp's optional build use.
//!
//! Compiling happens where the request is parsed, never on the engine thread: the vocabulary's
//! token trie is built once per model (in the background, from load), compiled grammars are
//! kept by their text and reused, and a compile that takes longer than [`COMPILE_LIMIT`] is
//! refused with a 400 that says so (llguidance compiles lazily: most schemas take well under a
//! millisecond, a 2,000-branch `anyOf` ~70 ms; its fuel and grammar-size limits bound the
//! rest, so a compile that outlives its request still ends).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llguidance::api::{ParserLimits, TopLevelGrammar};
use llguidance::{Matcher, ParserFactory};
use serde_json::{json, Value};

/// What an answer must match.
#[derive(Clone, Debug, PartialEq)]
pub enum Grammar {
    /// A JSON Schema (`response_format` `json_schema` and `json_object`, a forced tool call).
    JsonSchema(Value),
    /// A regular expression the whole answer matches (hearth extension, vLLM's
    /// `guided_regex`).
    Regex(String),
    /// A grammar in llguidance's Lark dialect (hearth extension, vLLM's `guided_grammar`); it
    /// may embed JSON Schemas (`%json { … }`), which is how tool-call wrappers are written.
    Lark(String),
}

/// Whitespace a JSON answer may put between two tokens: at most a line break and some
/// indentation (llama.cpp's converter allows as much). llguidance's default is any run, which
/// lets a small model loop on blank lines until the budget ends.
const JSON_WHITESPACE: &str = r"[\x20\x09]{1,24}|\x0A{1,2}[\x20\x09]{0,24}";

impl Grammar {
    /// The JSON Schema grammar with hearth's compile options, unless the schema sets its own
    /// (`x-guidance`).
    fn top_level(&self) -> TopLevelGrammar {
        match self {
            Grammar::JsonSchema(schema) => TopLevelGrammar::from_json_schema(with_options(schema)),
            Grammar::Regex(rx) => TopLevelGrammar::from_regex(rx),
            Grammar::Lark(text) => TopLevelGrammar::from_lark(text.clone()),
        }
    }

    /// The cache key: the kind and the exact text.
    fn key(&self) -> String {
        match self {
            Grammar::JsonSchema(schema) => format!("json\0{schema}"),
            Grammar::Regex(rx) => format!("regex\0{rx}"),
            Grammar::Lark(text) => format!("lark\0{text}"),
        }
    }
}

/// The schema with hearth's JSON options (bounded whitespace) added, unless it sets its own,
/// and its property lists closed (see [`close_properties`]). A schema that is `true`
/// (anything) becomes `{}`.
pub(crate) fn with_options(schema: &Value) -> Value {
    let mut schema = match schema {
        Value::Bool(true) => json!({}),
        other => other.clone(),
    };
    close_properties(&mut schema);
    if let Value::Object(map) = &mut schema {
        map.entry("x-guidance")
            .or_insert_with(|| json!({"whitespace_pattern": JSON_WHITESPACE}));
    }
    schema
}

/// Gives every object schema that lists `properties` and says nothing of other properties
/// `additionalProperties: false`, as llama.cpp's converter and OpenAI's strict mode do: JSON
/// Schema's default (anything else allowed) lets a small model wander into keys of its own
/// after the ones asked for. `additionalProperties: true` (or a schema) keeps them allowed.
/// Schemas under `allOf` are left alone: each part would forbid the others' properties.
fn close_properties(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    let lists = map.contains_key("properties");
    let open = map.contains_key("additionalProperties") || map.contains_key("patternProperties");
    if lists && !open && !map.contains_key("allOf") {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (key, value) in map.iter_mut() {
        match key.as_str() {
            "properties" | "$defs" | "definitions" | "patternProperties" => {
                if let Value::Object(subs) = value {
                    subs.values_mut().for_each(close_properties);
                }
            }
            "items" | "additionalProperties" | "additionalItems" => close_properties(value),
            "prefixItems" | "anyOf" | "oneOf" => {
                if let Value::Array(subs) = value {
                    subs.iter_mut().for_each(close_properties);
                }
            }
            _ => {}
        }
    }
}

/// Why a grammar cannot be enforced: the message names what is wrong (an unsupported keyword,
/// a bad regex, a compile that ran out of fuel).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct CompileError(pub String);

/// Compiled grammars kept per model: a chat client sends the same schema with every request.
const CACHED_GRAMMARS: usize = 64;

/// Longest a request waits for its grammar to compile.
pub const COMPILE_LIMIT: Duration = Duration::from_secs(1);

/// Compiles past their limit that may still run (each on its own thread) before new ones
/// are refused at once: a client sending pathological schemas cannot pile them up.
const OVERDUE_COMPILES: usize = 2;

/// Compiles grammars for one model and keeps the recent ones.
pub struct Compiler {
    model: Arc<LlamaModel>,
    /// The vocabulary's token trie and the parser settings, built once (the first caller, or
    /// the background thread started at load, builds it; others wait for it).
    factory: OnceLock<Result<ParserFactory, String>>,
    cache: Mutex<Cache>,
    /// Compiles still running after their request gave up on them.
    overdue: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Compiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiler").finish_non_exhaustive()
    }
}

/// Compiled matchers by grammar key, least recently used first.
#[derive(Default)]
struct Cache {
    matchers: HashMap<String, Matcher>,
    order: VecDeque<String>,
}

impl Cache {
    fn get(&mut self, key: &str) -> Option<Matcher> {
        let matcher = self.matchers.get(key)?.deep_clone();
        self.touch(key);
        Some(matcher)
    }

    fn touch(&mut self, key: &str) {
        if let Some(i) = self.order.iter().position(|k| k == key) {
            let k = self.order.remove(i).expect("position is in range");
            self.order.push_back(k);
        }
    }

    fn put(&mut self, key: String, matcher: &Matcher) {
        if self.matchers.contains_key(&key) {
            self.touch(&key);
            return;
        }
        while self.order.len() >= CACHED_GRAMMARS {
            if let Some(old) = self.order.pop_front() {
                self.matchers.remove(&old);
            }
        }
        self.matchers.insert(key.clone(), matcher.deep_clone());
        self.order.push_back(key);
    }
}

impl Compiler {
    /// A compiler for `model`; the token trie is built on first use (see [`Compiler::warm`]).
    pub fn new(model: Arc<LlamaModel>) -> Arc<Self> {
        Arc::new(Self {
            model,
            factory: OnceLock::new(),
            cache: Mutex::new(Cache::default()),
            overdue: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Builds the token trie on a background thread, so the first constrained request of a
    /// large vocabulary does not wait for it (it walks every token: measured ready ~0.1 s
    /// after load at 49k tokens, ~0.8 s at 262k).
    pub fn warm(self: &Arc<Self>) {
        let this = Arc::clone(self);
        let _ = std::thread::Builder::new()
            .name("hearth-grammar".into())
            .spawn(move || {
                if let Err(e) = this.factory() {
                    tracing::warn!(error = %e, "structured output will be refused");
                }
            });
    }

    fn factory(&self) -> Result<&ParserFactory, CompileError> {
        self.factory
            .get_or_init(|| {
                let started = Instant::now();
                let env = LlamaSampler::llguidance_tok_env(&self.model);
                let mut factory = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
                factory.quiet();
                *factory.limits_mut() = limits();
                tracing::debug!(
                    ms = started.elapsed().as_secs_f64() * 1000.0,
                    "grammar compiler ready"
                );
                Ok(factory)
            })
            .as_ref()
            .map_err(|e| CompileError(format!("the constraint engine cannot start: {e}")))
    }

    /// A fresh matcher for `grammar`: compiled (within [`COMPILE_LIMIT`]), or cloned from the
    /// cache.
    pub fn compile(self: &Arc<Self>, grammar: &Grammar) -> Result<Matcher, CompileError> {
        self.compile_within(grammar, COMPILE_LIMIT)
    }

    /// [`Compiler::compile`] with another limit. The compile runs on a thread of its own; past
    /// `limit` the caller gets an error and the thread's result is dropped when it ends.
    pub fn compile_within(
        self: &Arc<Self>,
        grammar: &Grammar,
        limit: Duration,
    ) -> Result<Matcher, CompileError> {
        let key = grammar.key();
        if let Some(matcher) = self.lock().get(&key) {
            return Ok(matcher);
        }
        if self.overdue.load(Ordering::SeqCst) >= OVERDUE_COMPILES {
            return Err(CompileError(
                "other grammars are still compiling past hearth's limit; try again later".into(),
            ));
        }
        let (tx, rx) = mpsc::channel();
        // (finished, abandoned): whichever side comes second settles the overdue count.
        let fate = Arc::new(Mutex::new((false, false)));
        let this = Arc::clone(self);
        let work = grammar.clone();
        let thread_fate = Arc::clone(&fate);
        std::thread::Builder::new()
            .name("hearth-compile".into())
            .spawn(move || {
                let result = this.compile_uncached(&work);
                let mut fate = thread_fate.lock().unwrap_or_else(|e| e.into_inner());
                fate.0 = true;
                if fate.1 {
                    this.overdue.fetch_sub(1, Ordering::SeqCst);
                }
                let _ = tx.send(result);
            })
            .map_err(|e| CompileError(format!("cannot start a compile: {e}")))?;
        let result = match rx.recv_timeout(limit) {
            Ok(result) => result,
            Err(_) => {
                let mut fate = fate.lock().unwrap_or_else(|e| e.into_inner());
                if fate.0 {
                    // It finished just now.
                    drop(fate);
                    rx.recv().map_err(|e| CompileError(e.to_string()))?
                } else {
                    fate.1 = true;
                    self.overdue.fetch_add(1, Ordering::SeqCst);
                    return Err(CompileError(format!(
                        "the grammar took longer than {} ms to compile (hearth's limit); simplify it (fewer alternatives, shorter bounded repetitions)",
                        limit.as_millis()
                    )));
                }
            }
        };
        let matcher = result?;
        self.lock().put(key, &matcher);
        Ok(matcher)
    }

    /// Compiles `grammar` whether or not the cache holds it: what a new schema costs (the
    /// constraint benchmark times this), once the token trie is built.
    pub fn compile_uncached(&self, grammar: &Grammar) -> Result<Matcher, CompileError> {
        let factory = self.factory()?;
        let started = Instant::now();
        let parser = factory
            .create_parser(grammar.top_level())
            .map_err(|e| CompileError(explain(&e.to_string())))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(CompileError(explain(&e)));
        }
        tracing::debug!(
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "grammar compiled"
        );
        Ok(matcher)
    }

    /// Waits for the token trie (built at most once); what a first request would wait.
    pub fn ready(&self) -> Result<(), CompileError> {
        self.factory().map(|_| ())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// llguidance's limits, with its defaults: a grammar may have 500k symbols (beyond: refused at
/// compile), the lexer's construction may spend 1M fuel and one mask 200k (documented at ~50k
/// and ~14k a millisecond). They are counted in work, not time, so they hold the same on every
/// machine; a mask beyond them fails, and the answer then ends (`llama::slot`).
fn limits() -> ParserLimits {
    ParserLimits {
        verbose_errors: false,
        ..ParserLimits::default()
    }
}

/// llguidance's message, first line only (the rest is its internal trace), with a word on
/// what to do when the limit was the fuel.
fn explain(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message).trim();
    if first.contains("fuel") || first.contains("too large") || first.contains("limit") {
        format!("the grammar is too complex to compile within hearth's limits ({first}); simplify it (fewer alternatives, shorter bounded repetitions)")
    } else {
        first.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_schemas_get_bounded_whitespace_unless_they_set_their_own() {
        let plain = with_options(&json!({"type": "object"}));
        assert_eq!(
            plain["x-guidance"]["whitespace_pattern"],
            json!(JSON_WHITESPACE)
        );
        let own = with_options(&json!({"type": "object", "x-guidance": {"lenient": true}}));
        assert_eq!(own["x-guidance"], json!({"lenient": true}));
        assert!(with_options(&json!(true))["x-guidance"].is_object());
    }

    #[test]
    fn listed_properties_are_the_only_ones_unless_the_schema_opens_them() {
        let schema = with_options(&json!({
            "type": "object",
            "properties": {
                "a": {"type": "object", "properties": {"x": {"type": "integer"}}},
                "b": {"type": "object", "properties": {}, "additionalProperties": true},
                "c": {"type": "array", "items": {"properties": {"y": {}}}},
                "d": {"allOf": [{"properties": {"p": {}}}, {"properties": {"q": {}}}]}
            },
            "$defs": {"e": {"anyOf": [{"properties": {"z": {}}}]}}
        }));
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(
            schema["properties"]["a"]["additionalProperties"],
            json!(false)
        );
        assert_eq!(
            schema["properties"]["b"]["additionalProperties"],
            json!(true)
        );
        assert_eq!(
            schema["properties"]["c"]["items"]["additionalProperties"],
            json!(false)
        );
        assert!(schema["properties"]["d"]["allOf"][0]
            .get("additionalProperties")
            .is_none());
        assert_eq!(
            schema["$defs"]["e"]["anyOf"][0]["additionalProperties"],
            json!(false)
        );
    }

    #[test]
    fn grammars_of_different_kinds_never_share_a_key() {
        let a = Grammar::Regex("a".into()).key();
        let b = Grammar::Lark("a".into()).key();
        assert_ne!(a, b);
    }
}
