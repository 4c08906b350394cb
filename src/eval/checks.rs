//! Automatic checks on an answer, declared per prompt in `prompts.json`
//! (`"checks": [{"type": "max_sentences", "n": 2}]`), each passing or failing with a reason a
//! person can read in the report.
//!
//! The text measures are **heuristics**, stated here so that reports are read with them in
//! mind; they are meant to be predictable, not linguistically perfect:
//! - **Words**: whitespace-separated tokens holding at least one letter or digit (so `—` or a
//!   lone `-` bullet is not a word, `3.14` and `1.` are).
//! - **Sentences**: a token ending in `.`, `!` or `?` (a run such as `?!` or `...` counts once;
//!   closing quotes, brackets and `*`/`_` emphasis after it are ignored) ends a sentence when
//!   the text since the previous end holds a word. Decimals (`3.14`) never end one, since the
//!   dot is inside a token. Common abbreviations do not end one: e.g., i.e., vs., cf., Dr.,
//!   Mr., Mrs., Ms., Prof., St., Fig., approx., dotted initialisms (U.S., a.m.), and `etc.`
//!   unless the next word starts with a capital. Each non-empty list item (a line starting
//!   with `-`, `*`, `+`, `•`, or a one- or two-digit `1.`/`1)`) counts as one sentence,
//!   however it is punctuated, and the line break after it ends it. A trailing fragment
//!   without terminal punctuation counts when it holds a word. Markdown headers (`# …` lines)
//!   are not counted; emphasis (`**`, `_`) does not matter.
//! - **Facets**: a facet is lowercased and split into content words (letters/digits, three
//!   characters or more, not a stop word). A facet word matches an answer word sharing its
//!   first `min(5, length)` characters, so "retrieval" matches "retrieved" and "retriever",
//!   "device" matches "devices". A facet is mentioned when at least half (rounded up) of its
//!   content words match; a facet without content words is mentioned when its whole lowercase
//!   text appears in the answer.
//! - **JSON**: the whole trimmed answer is tried, else the first fenced ```` ```json ```` block
//!   (else the first ```` ``` ```` block), else the first balanced `{…}` or `[…]` span that
//!   parses. Small models often wrap JSON in prose; the check asks "is there usable JSON".

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::text::clip;

/// One automatic check, as written in `prompts.json` (`{"type": "max_sentences", "n": 2}`):
/// the prompt set declares what a good answer looks like, so every run is scored alike.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Check {
    /// The answer contains the text (case-insensitive): a required term.
    Contains {
        /// The text looked for.
        text: String,
    },
    /// The answer does not contain the text (case-insensitive): a refusal phrase, a banned
    /// word.
    NotContains {
        /// The text that must be absent.
        text: String,
    },
    /// The regular expression matches somewhere; write `(?i)` for case-insensitive.
    Regex {
        /// The pattern, in the `regex` crate's syntax.
        pattern: String,
    },
    /// The answer holds JSON (whole, in a fenced block, or the first `{…}`/`[…]` span), valid
    /// against `schema` when one is given: structured-output prompts.
    Json {
        /// A JSON Schema the value must satisfy.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema: Option<Value>,
    },
    /// At least `n` words: catches truncated or empty answers.
    MinWords {
        /// The bound.
        n: usize,
    },
    /// At most `n` words: "answer briefly" is checkable.
    MaxWords {
        /// The bound.
        n: usize,
    },
    /// At least `n` sentences (or list items): "list 3 benefits" is checkable.
    MinSentences {
        /// The bound.
        n: usize,
    },
    /// At most `n` sentences (or list items): "in 2 sentences" is checkable.
    MaxSentences {
        /// The bound.
        n: usize,
    },
    /// At least `min_share` of the prompt's facets are mentioned (default 1.0: all of them).
    Facets {
        /// Share of facets that must be mentioned, in 0..=1.
        #[serde(default = "default_share")]
        min_share: f64,
    },
}

fn default_share() -> f64 {
    1.0
}

/// Why a check cannot be used: found when `prompts.json` is read, so a bad prompt set fails
/// before a run rather than scoring every answer as failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The regular expression does not compile.
    #[error("check regex: invalid pattern {pattern:?}: {source}")]
    Regex {
        /// The pattern as written.
        pattern: String,
        /// The compiler's complaint.
        #[source]
        source: regex::Error,
    },
    /// The JSON schema is not a valid (or resolvable) JSON Schema.
    #[error("check json: invalid schema: {0}")]
    Schema(String),
    /// A `contains`/`not_contains` text is empty, which always (or never) matches.
    #[error("check {0}: the text is empty")]
    EmptyText(&'static str),
    /// A word/sentence bound of 0, which always passes (min) or only passes an empty answer
    /// (max).
    #[error("check {0}: n must be at least 1")]
    ZeroBound(&'static str),
    /// `min_share` outside 0..=1 (or not a number).
    #[error("check facets: min_share must be between 0 and 1, got {0}")]
    Share(f64),
}

/// One check's verdict on one answer, as stored and shown in reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// Short label of the check (`max 2 sentences`, `contains "retrieval"`).
    pub check: String,
    /// Whether the answer passed.
    pub passed: bool,
    /// Why, in words (`3 sentences, at most 2 allowed`).
    pub reason: String,
}

impl Check {
    /// The `type` tag as written in `prompts.json`, for error messages.
    fn type_name(&self) -> &'static str {
        match self {
            Check::Contains { .. } => "contains",
            Check::NotContains { .. } => "not_contains",
            Check::Regex { .. } => "regex",
            Check::Json { .. } => "json",
            Check::MinWords { .. } => "min_words",
            Check::MaxWords { .. } => "max_words",
            Check::MinSentences { .. } => "min_sentences",
            Check::MaxSentences { .. } => "max_sentences",
            Check::Facets { .. } => "facets",
        }
    }

    /// Refuses checks that cannot work (bad regex or schema, meaningless bounds); called when
    /// `prompts.json` is read so a mistake is a clear error before any run.
    pub fn validate(&self) -> Result<(), CheckError> {
        match self {
            Check::Regex { pattern } => {
                regex::Regex::new(pattern)
                    .map(|_| ())
                    .map_err(|source| CheckError::Regex {
                        pattern: pattern.clone(),
                        source,
                    })
            }
            Check::Json { schema: Some(s) } => jsonschema::validator_for(s)
                .map(|_| ())
                .map_err(|e| CheckError::Schema(e.to_string())),
            Check::Contains { text } | Check::NotContains { text } if text.is_empty() => {
                Err(CheckError::EmptyText(self.type_name()))
            }
            Check::MinWords { n: 0 }
            | Check::MaxWords { n: 0 }
            | Check::MinSentences { n: 0 }
            | Check::MaxSentences { n: 0 } => Err(CheckError::ZeroBound(self.type_name())),
            Check::Facets { min_share } if !(0.0..=1.0).contains(min_share) => {
                Err(CheckError::Share(*min_share))
            }
            _ => Ok(()),
        }
    }

    /// A short name for report columns (`max 2 sentences`, `contains "RAG"`).
    pub fn label(&self) -> String {
        match self {
            Check::Contains { text } => format!("contains {text:?}"),
            Check::NotContains { text } => format!("does not contain {text:?}"),
            Check::Regex { pattern } => format!("matches /{pattern}/"),
            Check::Json { schema: None } => "valid JSON".into(),
            Check::Json { schema: Some(_) } => "JSON matching the schema".into(),
            Check::MinWords { n } => format!("min {n} words"),
            Check::MaxWords { n } => format!("max {n} words"),
            Check::MinSentences { n } => format!("min {n} sentences"),
            Check::MaxSentences { n } => format!("max {n} sentences"),
            Check::Facets { min_share } if *min_share >= 1.0 => "mentions every facet".into(),
            Check::Facets { min_share } => {
                format!("mentions {:.0}% of facets", min_share * 100.0)
            }
        }
    }
}

/// Runs one check on `answer`; `facets` are the prompt's (used by [`Check::Facets`]). Never
/// panics: a check that [`Check::validate`] would refuse fails with the reason instead.
pub fn run_check(check: &Check, facets: &[String], answer: &str) -> CheckOutcome {
    let (passed, reason) = match check {
        Check::Contains { text } => match find_ci(answer, text) {
            Some(at) => (true, format!("found: {}", snippet(answer, at))),
            None => (false, format!("{text:?} not found")),
        },
        Check::NotContains { text } => match find_ci(answer, text) {
            Some(at) => (false, format!("found: {}", snippet(answer, at))),
            None => (true, format!("{text:?} absent")),
        },
        Check::Regex { pattern } => match regex::Regex::new(pattern) {
            Ok(re) => match re.find(answer) {
                Some(m) => (true, format!("matched {:?}", clip(m.as_str(), 60))),
                None => (false, "no match".into()),
            },
            Err(e) => (false, format!("invalid pattern: {e}")),
        },
        Check::Json { schema } => json_check(schema.as_ref(), answer),
        Check::MinWords { n } => bound(word_count(answer), *n, true, "word"),
        Check::MaxWords { n } => bound(word_count(answer), *n, false, "word"),
        Check::MinSentences { n } => bound(sentence_count(answer), *n, true, "sentence"),
        Check::MaxSentences { n } => bound(sentence_count(answer), *n, false, "sentence"),
        Check::Facets { min_share } => facets_check(facets, *min_share, answer),
    };
    CheckOutcome {
        check: check.label(),
        passed,
        reason,
    }
}

/// Runs every check on `answer`, in the order declared, so reports list them alike.
pub fn run_checks(checks: &[Check], facets: &[String], answer: &str) -> Vec<CheckOutcome> {
    checks
        .iter()
        .map(|c| run_check(c, facets, answer))
        .collect()
}

fn plural(count: usize, unit: &str) -> String {
    if count == 1 {
        format!("1 {unit}")
    } else {
        format!("{count} {unit}s")
    }
}

fn bound(count: usize, n: usize, at_least: bool, unit: &str) -> (bool, String) {
    if at_least {
        (
            count >= n,
            format!("{}, at least {n} required", plural(count, unit)),
        )
    } else {
        (
            count <= n,
            format!("{}, at most {n} allowed", plural(count, unit)),
        )
    }
}

/// Byte range of the first case-insensitive occurrence of `needle` in `hay`. A regex on the
/// escaped text keeps offsets in `hay` itself (lowercasing can change byte lengths).
fn find_ci(hay: &str, needle: &str) -> Option<(usize, usize)> {
    if needle.is_empty() {
        return Some((0, 0));
    }
    let re = regex::RegexBuilder::new(&regex::escape(needle))
        .case_insensitive(true)
        .build()
        .ok()?;
    re.find(hay).map(|m| (m.start(), m.end()))
}

/// The match with a little context, on one line: `…finds relevant [documents] with a…`.
fn snippet(text: &str, (start, end): (usize, usize)) -> String {
    const SIDE: usize = 30;
    let from = text[..start]
        .char_indices()
        .rev()
        .nth(SIDE - 1)
        .map_or(0, |(i, _)| i);
    let before = &text[from..start];
    let after: String = text[end..].chars().take(SIDE).collect();
    let lead = if from > 0 { "…" } else { "" };
    let tail = if after.len() < text.len() - end {
        "…"
    } else {
        ""
    };
    let s = format!("{lead}{before}[{}]{after}{tail}", &text[start..end]);
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn facets_check(facets: &[String], min_share: f64, answer: &str) -> (bool, String) {
    if facets.is_empty() {
        return (true, "the prompt lists no facets".into());
    }
    let (mentioned, missing) = facet_coverage(facets, answer);
    let share = mentioned.len() as f64 / facets.len() as f64;
    let mut reason = format!("mentions {} of {} facets", mentioned.len(), facets.len());
    if !missing.is_empty() {
        reason.push_str("; missing: ");
        reason.push_str(&missing.join(", "));
    }
    (share + 1e-9 >= min_share, reason)
}

fn json_check(schema: Option<&Value>, answer: &str) -> (bool, String) {
    let value = match find_json(answer) {
        Ok(v) => v,
        Err(reason) => return (false, reason),
    };
    let Some(schema) = schema else {
        return (true, "parses as JSON".into());
    };
    let validator = match jsonschema::validator_for(schema) {
        Ok(v) => v,
        Err(e) => return (false, format!("invalid schema: {e}")),
    };
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| {
            let at = match e.instance_path.as_str() {
                "" => "(root)".to_string(),
                path => path.to_string(),
            };
            format!("at {at}: {}", clip(&e.to_string(), 120))
        })
        .collect();
    match errors.len() {
        0 => (true, "parses as JSON and matches the schema".into()),
        n => {
            let shown = errors[..n.min(3)].join("; ");
            let more = if n > 3 {
                format!("; and {} more", n - 3)
            } else {
                String::new()
            };
            (
                false,
                format!("{}: {shown}{more}", plural(n, "schema violation")),
            )
        }
    }
}

/// The JSON in an answer: all of it, else a fenced block, else the first balanced span that
/// parses. The error names serde_json's complaint (with line and column) about the fenced
/// block when there is one, else about the whole answer.
fn find_json(answer: &str) -> Result<Value, String> {
    let trimmed = answer.trim();
    if trimmed.is_empty() {
        return Err("empty answer, no JSON".into());
    }
    let whole = match serde_json::from_str::<Value>(trimmed) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let fenced = fenced_block(trimmed).map(|body| serde_json::from_str::<Value>(body.trim()));
    if let Some(Ok(v)) = fenced {
        return Ok(v);
    }
    let mut from = 0;
    for _ in 0..32 {
        let Some((start, span)) = balanced_span(&trimmed[from..]) else {
            break;
        };
        if let Ok(v) = serde_json::from_str(span) {
            return Ok(v);
        }
        from += start + 1;
    }
    Err(match fenced {
        Some(Err(e)) => format!("the fenced block is not JSON: {e}"),
        _ => format!("not JSON ({whole}), and no {{…}} or […] span in it parses"),
    })
}

/// Body of the first ```` ```json ```` block, else of the first ```` ``` ```` block.
fn fenced_block(text: &str) -> Option<&str> {
    let lower = text.to_ascii_lowercase();
    let open = lower.find("```json").or_else(|| lower.find("```"))?;
    let after = &text[open + 3..];
    // The info string (`json`, `JSON`, ...) runs to the end of the opening line.
    let body = match after.find('\n') {
        Some(nl) if !after[..nl].contains('`') => &after[nl + 1..],
        _ => after.strip_prefix("json").unwrap_or(after),
    };
    body.find("```").map(|end| &body[..end])
}

/// The first `{…}` or `[…]` span whose brackets balance (string contents respected), with its
/// byte offset.
fn balanced_span(text: &str) -> Option<(usize, &str)> {
    let start = text.find(['{', '['])?;
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, c) in text[start..].char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some((start, &text[start..start + i + 1]));
                }
            }
            _ => {}
        }
    }
    None
}

/// Words: whitespace-separated tokens holding a letter or digit (see the module docs).
pub fn word_count(text: &str) -> usize {
    text.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count()
}

/// Abbreviations whose final dot does not end a sentence (lowercase, without that dot).
const ABBREVIATIONS: [&str; 12] = [
    "e.g", "i.e", "vs", "cf", "dr", "mr", "mrs", "ms", "prof", "st", "fig", "approx",
];

/// Sentences, counting each list item as one (see the module docs for the rules).
pub fn sentence_count(text: &str) -> usize {
    let mut count = 0;
    let mut prose = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if is_header(trimmed) {
            count += prose_sentences(&prose);
            prose.clear();
        } else if let Some(item) = list_item(trimmed) {
            count += prose_sentences(&prose);
            prose.clear();
            count += usize::from(word_count(item) > 0);
        } else {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    count + prose_sentences(&prose)
}

/// A Markdown ATX header line (`# Title`, `### Step`), not `#1 priority`.
fn is_header(line: &str) -> bool {
    let rest = line.trim_start_matches('#');
    rest.len() < line.len() && (rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// The body of a list item line (`- x`, `* x`, `+ x`, `• x`, `1. x`, `12) x`), if it is one;
/// numbers of three digits or more are taken for prose (`2024. It was…`).
fn list_item(line: &str) -> Option<&str> {
    if let Some(rest) = line.strip_prefix(['-', '*', '+', '•']) {
        return rest.starts_with([' ', '\t']).then_some(rest);
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    let rest = line[digits..].strip_prefix(['.', ')'])?;
    ((1..=2).contains(&digits) && (rest.is_empty() || rest.starts_with([' ', '\t'])))
        .then_some(rest)
}

fn prose_sentences(text: &str) -> usize {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let (mut count, mut words_since) = (0, false);
    for (i, token) in tokens.iter().enumerate() {
        words_since |= token.chars().any(char::is_alphanumeric);
        let core = token.trim_end_matches(['"', '\'', ')', ']', '”', '’', '*', '_', '`']);
        if !core.ends_with(['.', '!', '?']) || !words_since {
            continue;
        }
        let stem = core.trim_end_matches(['.', '!', '?']);
        let only_dots = core[stem.len()..].chars().all(|c| c == '.');
        let next_capital = tokens
            .get(i + 1)
            .and_then(|t| {
                t.trim_start_matches(|c: char| !c.is_alphanumeric())
                    .chars()
                    .next()
            })
            .is_some_and(char::is_uppercase);
        if only_dots && core[stem.len()..].len() == 1 && is_abbreviation(stem, next_capital) {
            continue;
        }
        count += 1;
        words_since = false;
    }
    count + usize::from(words_since)
}

/// Whether `stem.` (the token before its final dot) is an abbreviation, not a sentence end.
fn is_abbreviation(stem: &str, next_capital: bool) -> bool {
    let w = stem
        .trim_start_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase();
    if w == "etc" {
        return !next_capital;
    }
    // Dotted initialisms: u.s, a.m, p.m (every piece one letter).
    let dotted = w.contains('.') && w.split('.').all(|p| p.chars().count() == 1);
    ABBREVIATIONS.contains(&w.as_str()) || dotted
}

/// Words that say nothing about a facet's topic (only those of 3+ characters matter, shorter
/// ones are dropped anyway).
const STOP_WORDS: [&str; 36] = [
    "the", "and", "for", "with", "are", "that", "this", "from", "into", "more", "less", "than",
    "its", "can", "not", "you", "your", "our", "was", "were", "has", "have", "had", "but", "any",
    "all", "how", "what", "why", "when", "which", "who", "about", "such", "their", "they",
];

fn content_words(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut words: Vec<String> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3 && !STOP_WORDS.contains(w))
        .map(str::to_string)
        .collect();
    words.dedup();
    words
}

/// Whether an answer word carries the facet word's first `min(5, len)` characters.
fn stem_matches(facet_word: &str, answer_word: &str) -> bool {
    let n = facet_word.chars().count().min(5);
    answer_word.chars().count() >= n && facet_word.chars().take(n).eq(answer_word.chars().take(n))
}

/// Which facets an answer mentions: (mentioned, missing), each in the facets' order.
pub fn facet_coverage(facets: &[String], answer: &str) -> (Vec<String>, Vec<String>) {
    let lower = answer.to_lowercase();
    let mut words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .collect();
    words.sort_unstable();
    words.dedup();
    facets.iter().cloned().partition(|facet| {
        let wanted = content_words(facet);
        if wanted.is_empty() {
            return lower.contains(&facet.to_lowercase());
        }
        let found = wanted
            .iter()
            .filter(|w| words.iter().any(|a| stem_matches(w, a)))
            .count();
        found * 2 >= wanted.len()
    })
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
