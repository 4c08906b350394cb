//! Workloads with controlled lengths, as vLLM bench, GuideLLM and LLMPerf generate them:
//! prompts of a chosen token length (a mean and a spread, seeded) made of filler text fitted
//! to the length with the server's own tokenizer, answers of a chosen length (sent as
//! `max_tokens` with end-of-sequence ignored), and conversation files in the ShareGPT shape.

use std::path::Path;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::client::{self, Endpoint};
use super::prompts::PromptSpec;

/// A length in tokens: a mean and a spread (standard deviation of a normal distribution,
/// drawn per request and kept at 1 or more); written `512` or `512:128`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenLengths {
    /// Mean length, tokens.
    pub mean: u32,
    /// Standard deviation, tokens (0: every request the same length).
    pub spread: u32,
}

/// Why a length or a conversation file was refused.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// Not `N` or `N:SPREAD` with a positive `N`.
    #[error("{0:?} is not a token length: write MEAN or MEAN:SPREAD in tokens, e.g. 512:128")]
    BadLength(String),
    /// The file could not be read.
    #[error("cannot read the dataset {path}")]
    Read {
        /// The file.
        path: String,
        /// Why (printed by the error chain).
        #[source]
        source: std::io::Error,
    },
    /// The file is not a list of conversations.
    #[error("the dataset {path} is not a ShareGPT-style JSON list of conversations: {reason}")]
    Shape {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl FromStr for TokenLengths {
    type Err = WorkloadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || WorkloadError::BadLength(s.to_string());
        let (mean, spread) = match s.trim().split_once(':') {
            Some((m, d)) => (m.trim(), d.trim()),
            None => (s.trim(), "0"),
        };
        let mean: u32 = mean.parse().map_err(|_| bad())?;
        let spread: u32 = spread.parse().map_err(|_| bad())?;
        if mean == 0 {
            return Err(bad());
        }
        Ok(TokenLengths { mean, spread })
    }
}

impl TokenLengths {
    /// The length of the request numbered `seq`, the same for the same seed whatever else
    /// the run does.
    pub fn draw(&self, seed: u64, seq: u64) -> u32 {
        if self.spread == 0 {
            return self.mean;
        }
        let mut rng =
            rand::rngs::StdRng::seed_from_u64(seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let normal = Normal::new(f64::from(self.mean), f64::from(self.spread))
            .expect("finite mean and spread");
        normal.sample(&mut rng).round().max(1.0) as u32
    }
}

/// Short, common words that most tokenizers keep as one token each (with their leading
/// space), so a prompt of N words is close to N tokens before it is fitted.
const FILLER: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "it", "for", "on", "with", "as", "was", "at",
    "by", "be", "this", "from", "or", "are", "an", "but", "not", "have", "had", "one", "all",
    "were", "they", "we", "there", "their", "which", "when", "more", "time", "about", "into",
    "some", "other", "than", "then", "them", "these", "would", "like", "over", "only", "new",
    "year", "people", "way", "day", "man", "work", "life", "world", "hand", "part", "place",
    "case", "week", "point", "number", "group", "fact", "water", "room", "book", "door",
];

/// `words` filler words drawn from `seed`: a longer text starts with a shorter one, so a
/// fit only moves its end.
fn filler(seed: u64, words: usize) -> String {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = String::with_capacity(words * 6);
    for i in 0..words {
        if i > 0 {
            out.push(if rng.gen_ratio(1, 12) { '.' } else { ' ' });
            if out.ends_with('.') {
                out.push(' ');
            }
        }
        out.push_str(FILLER[rng.gen_range(0..FILLER.len())]);
    }
    out
}

/// Filler that makes a prompt of `tokens` tokens by the server's tokenizer (`/tokenize`) once
/// sent behind `prefix` (the request's nonce, so no two requests share more than it): drawn
/// from `seed`, lengthened or shortened until prefix and filler count right. The filler alone
/// is returned. Without a tokenizer, or when a fit does not settle, the closest text is kept and
/// the second value says it was not exact.
pub async fn fitted_prompt(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    tokenizer: bool,
    prefix: &str,
    tokens: u32,
    seed: u64,
) -> (String, bool) {
    let text = |words: usize| format!("{prefix}{}", filler(seed, words));
    let target = i64::from(tokens);
    let mut words = tokens as usize;
    if !tokenizer {
        return (filler(seed, words), false);
    }
    let mut best: Option<(i64, usize)> = None;
    for _ in 0..12 {
        let Some(count) = client::tokenizer_count(http, endpoint, &text(words)).await else {
            return (filler(seed, words), false);
        };
        let off = count as i64 - target;
        if best.is_none_or(|(b, _)| off.abs() < b.abs()) {
            best = Some((off, words));
        }
        if off == 0 {
            return (filler(seed, words), true);
        }
        // Words are about a token each: move by the difference, at least one word.
        let step = off.unsigned_abs().max(1) as usize;
        words = if off > 0 {
            words.saturating_sub(step).max(1)
        } else {
            words + step
        };
    }
    let (_, words) = best.expect("at least one count");
    (filler(seed, words), false)
}

/// One conversation of a ShareGPT-style file: `conversations` of `{from, value}` turns, or
/// OpenAI-style `messages` of `{role, content}`.
#[derive(Deserialize)]
struct Conversation {
    id: Option<serde_json::Value>,
    #[serde(default, alias = "messages")]
    conversations: Vec<Turn>,
}

#[derive(Deserialize)]
struct Turn {
    #[serde(alias = "role")]
    from: String,
    #[serde(alias = "content")]
    value: String,
}

/// The prompts of a conversation file: each conversation's first user turn, answered with as
/// many tokens as its recorded answer has (estimated at four characters a token, OpenAI's
/// rule of thumb, since each model's tokenizer counts differently). Conversations without a
/// user turn followed by an answer are skipped.
pub fn dataset_prompts(path: &Path) -> Result<Vec<PromptSpec>, WorkloadError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| WorkloadError::Read {
        path: name.clone(),
        source,
    })?;
    let shape = |reason: String| WorkloadError::Shape {
        path: name.clone(),
        reason,
    };
    let conversations: Vec<Conversation> =
        serde_json::from_str(&text).map_err(|e| shape(e.to_string()))?;
    let mut prompts = Vec::new();
    for (i, c) in conversations.iter().enumerate() {
        let is_user = |t: &&Turn| matches!(t.from.as_str(), "human" | "user");
        let Some(ask) = c.conversations.iter().position(|t| is_user(&t)) else {
            continue;
        };
        let Some(answer) = c.conversations.get(ask + 1).filter(|t| !is_user(t)) else {
            continue;
        };
        let prompt = c.conversations[ask].value.trim();
        if prompt.is_empty() {
            continue;
        }
        let id = match &c.id {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => format!("conversation-{}", i + 1),
        };
        prompts.push(PromptSpec {
            id,
            prompt: prompt.to_string(),
            max_tokens: Some((answer.value.chars().count() as u32).div_ceil(4).max(1)),
            facets: Vec::new(),
            checks: Vec::new(),
            reference: None,
            response_format: None,
        });
    }
    if prompts.is_empty() {
        return Err(shape(
            "no conversation has a user turn followed by an answer".into(),
        ));
    }
    Ok(prompts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_parse_and_draw_reproducibly() {
        assert_eq!(
            "512:128".parse::<TokenLengths>().unwrap(),
            TokenLengths {
                mean: 512,
                spread: 128
            }
        );
        assert_eq!("64".parse::<TokenLengths>().unwrap().spread, 0);
        for bad in ["0", "x", "5:y", "-3", ""] {
            assert!(bad.parse::<TokenLengths>().is_err(), "{bad}");
        }
        let l = TokenLengths {
            mean: 100,
            spread: 20,
        };
        let draws: Vec<u32> = (0..4000).map(|i| l.draw(7, i)).collect();
        assert_eq!(draws, (0..4000).map(|i| l.draw(7, i)).collect::<Vec<_>>());
        let mean = draws.iter().map(|&d| f64::from(d)).sum::<f64>() / 4000.0;
        let sd = (draws
            .iter()
            .map(|&d| (f64::from(d) - mean).powi(2))
            .sum::<f64>()
            / 4000.0)
            .sqrt();
        assert!((mean - 100.0).abs() < 1.5, "mean {mean}");
        assert!((sd - 20.0).abs() < 1.5, "sd {sd}");
        assert!(draws.iter().all(|&d| d >= 1));
    }

    #[test]
    fn longer_filler_extends_shorter() {
        let short = filler(3, 10);
        let long = filler(3, 40);
        assert!(long.starts_with(&short));
        assert_eq!(short.split_whitespace().count(), 10);
        assert_ne!(filler(4, 10), short);
    }
}
