//! N-gram speculative decoding: guesses of a sequence's next tokens, taken from its own text.
//!
//! Summaries repeat names, phrases and numbers of their source, and small models repeat
//! themselves. When the last few tokens of a sequence already occurred earlier in it (in the
//! prompt or in what it generated), the tokens that followed back then are a cheap guess
//! (a *draft*) of what comes next. The engine decodes the draft in the same batch as the
//! sequence's next token and keeps the longest prefix the model itself would have picked, so
//! several tokens can come out of one decode step. The output is exactly what decoding without
//! drafts gives; only the number of steps changes.
//!
//! A draft is not free: each drafted token is one more row in the batch, and on a batch of
//! several sequences often one more forward pass. How long a draft is worth making is decided
//! from three measurements the engine feeds back:
//! * how often drafts are accepted, by the length of the n-gram match they came from
//!   ([`Acceptance`]; a long match, as in a repetition loop, is right far more often than a
//!   one-token match), corrected per sequence by how its own drafts fared ([`Drafter`]: a
//!   copy is right far more often than the engine's average, free text less);
//! * what a step costs, by its passes and rows ([`plan::StepCosts`]; on a CPU a drafted row
//!   costs nearly as much as a generated one, on a GPU almost nothing but its pass), from
//!   which [`plan::choose`] takes the drafts whose expected saving exceeds what they add;
//! * what drafting returned at each batch size ([`plan::Payoff`]), which pauses it where it
//!   did not pay, so distinct text drafts (almost) nothing and costs no throughput.
//!
//! The lookup is written by hand: it is a few hash maps over the sequence's tokens, and no crate
//! offers prompt-lookup drafting. llama.cpp's `ngram-simple` and `ngram-mod` were the model:
//! unlike them the match length is not fixed (the longest of 1..=4 tokens, extended backwards),
//! and the draft length follows measured acceptance instead of a fixed 12/24-token match with
//! 48–64-token drafts.

pub mod plan;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Whether the engine drafts tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speculative {
    /// Decode one token per sequence and step.
    Off,
    /// Draft from n-grams of the sequence's own text (the default).
    #[default]
    Ngram,
}

impl FromStr for Speculative {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" | "false" | "0" => Ok(Self::Off),
            "ngram" | "on" | "true" | "1" => Ok(Self::Ngram),
            other => Err(format!(
                "`{other}` is not a speculation mode; use off or ngram"
            )),
        }
    }
}

impl fmt::Display for Speculative {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::Ngram => "ngram",
        })
    }
}

/// Longest n-gram looked up directly; matches are then extended backwards up to
/// [`MAX_MATCH`].
const MAX_N: usize = 4;
/// Longest match length told apart (longer ones are in the last bucket anyway).
const MAX_MATCH: usize = 32;
/// Most tokens drafted for one sequence in one step.
pub const MAX_DRAFT: usize = 48;

/// Match-length buckets the acceptance is learned for: 1, 2, 3, 4–5, 6–9, 10–15, 16+.
const BUCKETS: usize = 7;

fn bucket(match_len: usize) -> usize {
    match match_len {
        0 | 1 => 0,
        2 => 1,
        3 => 2,
        4..=5 => 3,
        6..=9 => 4,
        10..=15 => 5,
        _ => 6,
    }
}

/// Where a sequence's tail occurred before: the position right after that occurrence and how
/// many tokens match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Match {
    next: usize,
    len: usize,
}

/// All n-grams (n = 1..=4) of one sequence, each mapped to the position after its most recent
/// occurrence that has a successor.
#[derive(Debug, Default)]
struct NgramIndex {
    tokens: Vec<i32>,
    maps: [HashMap<u64, u32>; MAX_N],
}

fn ngram_key(tokens: &[i32]) -> u64 {
    // FNV-1a over the token ids: collisions are possible and checked on lookup.
    tokens.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &t| {
        (h ^ u64::from(t as u32)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl NgramIndex {
    fn push(&mut self, token: i32) {
        self.tokens.push(token);
        let len = self.tokens.len();
        // The n-grams ending just before the new token now have a successor.
        let end = len - 1;
        for n in 1..=MAX_N.min(end) {
            let key = ngram_key(&self.tokens[end - n..end]);
            self.maps[n - 1].insert(key, end as u32);
        }
    }

    /// The most recent occurrence in this index of the tail of `seq` (this index's own tokens,
    /// or another sequence's), longest n first.
    fn find(&self, seq: &[i32]) -> Option<Match> {
        let len = seq.len();
        for n in (1..=MAX_N.min(len)).rev() {
            let tail = &seq[len - n..];
            let Some(&next) = self.maps[n - 1].get(&ngram_key(tail)) else {
                continue;
            };
            let next = next as usize;
            if next < n || self.tokens[next - n..next] != *tail {
                continue; // a hash collision
            }
            let mut m = n;
            while m < MAX_MATCH
                && m < next
                && m < len
                && self.tokens[next - 1 - m] == seq[len - 1 - m]
            {
                m += 1;
            }
            return Some(Match { next, len: m });
        }
        None
    }

    /// The tokens that followed the earlier occurrence. In the sequence's own index they run
    /// into the present and go on with the draft itself (a repetition loop repeats); in the
    /// shared history they stop where the remembered request ended.
    fn continuation(&self, from: usize, n: usize, own: bool) -> Vec<i32> {
        let len = self.tokens.len();
        let mut draft = Vec::with_capacity(n);
        for i in 0..n {
            let pos = from + i;
            let token = match self.tokens.get(pos) {
                Some(&t) => t,
                None if own => draft[pos - len],
                None => break,
            };
            if token == SEPARATOR {
                break;
            }
            draft.push(token);
        }
        draft
    }
}

/// Marks where one remembered request ends in the shared history (never a real token id).
const SEPARATOR: i32 = -1;

/// Most tokens the shared history keeps before it starts over.
const HISTORY_CAPACITY: usize = 1 << 17;

/// The text (prompt and answer) of the engine's recent requests, for drafting across requests:
/// a question asked again, or a document summarised again, is answered with the same tokens,
/// which a sequence's own text cannot predict on its first pass. llama.cpp's `ngram-mod` and
/// `ngram-cache` keep such a memory too.
#[derive(Debug, Default)]
pub struct History {
    index: NgramIndex,
}

impl History {
    /// Remembers a finished sequence (its prompt and answer, as its drafter saw them).
    pub fn remember(&mut self, drafter: &Drafter) {
        let tokens = &drafter.index.tokens;
        if self.index.tokens.len() + tokens.len() + 1 > HISTORY_CAPACITY {
            *self = Self::default();
        }
        if tokens.len() + 1 > HISTORY_CAPACITY {
            return;
        }
        for &t in tokens {
            self.index.push(t);
        }
        self.index.push(SEPARATOR);
    }
}

/// Where a draft was found: the sequence's own text, or an earlier request's
/// ([`History`]). They are right at very different rates: a sequence copying its prompt, or
/// looping, repeats itself; another request's answer is only repeated when the question
/// repeats, and otherwise shares a phrase at most.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Source {
    /// The sequence's prompt and answer so far.
    #[default]
    Own,
    /// The engine's recent requests.
    History,
}

/// How often drafted tokens are accepted, learned per source and match-length bucket across
/// the engine's sequences (a property of the model and the work it is given), with older
/// evidence fading.
#[derive(Clone, Debug)]
pub struct Acceptance {
    own: Rates,
    history: Rates,
}

/// Accepted and tried drafted tokens per match-length bucket.
#[derive(Clone, Debug)]
struct Rates {
    accepted: [f64; BUCKETS],
    tried: [f64; BUCKETS],
}

/// Evidence kept per bucket: older outcomes weigh less once this many are counted (about a
/// dozen requests' drafts, so a change of work shows within a minute).
const EVIDENCE: f64 = 200.0;

/// Prior acceptance of drafts from the sequence's own text, per bucket: short matches are
/// usually wrong, long ones right (a sequence copying or looping).
const OWN_PRIOR: [f64; BUCKETS] = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
/// Prior acceptance of drafts from earlier requests: until the engine has seen how its work
/// repeats, only a long shared stretch is trusted. Distinct prompts share short phrases with
/// other answers all the time, and drafts made on the own-text prior there cost a few percent
/// of a short run before the evidence (and the payoff check) stop them; a repeated question
/// matches at full length from its first token, so it still drafts at once.
const HISTORY_PRIOR: [f64; BUCKETS] = [0.05, 0.1, 0.15, 0.25, 0.4, 0.6, 0.85];

/// Weight of a prior, in outcomes.
const PRIOR_WEIGHT: f64 = 4.0;

impl Default for Acceptance {
    fn default() -> Self {
        Self {
            own: Rates::with_prior(OWN_PRIOR),
            history: Rates::with_prior(HISTORY_PRIOR),
        }
    }
}

impl Rates {
    fn with_prior(prior: [f64; BUCKETS]) -> Self {
        Self {
            accepted: prior.map(|p| PRIOR_WEIGHT * p),
            tried: [PRIOR_WEIGHT; BUCKETS],
        }
    }
}

impl Rates {
    fn rate(&self, match_len: usize) -> f64 {
        let b = bucket(match_len);
        self.accepted[b] / self.tried[b]
    }

    fn record(&mut self, match_len: usize, accepted: bool) {
        let b = bucket(match_len);
        if self.tried[b] >= EVIDENCE {
            let keep = (EVIDENCE - 1.0) / EVIDENCE;
            self.accepted[b] *= keep;
            self.tried[b] *= keep;
        }
        self.tried[b] += 1.0;
        if accepted {
            self.accepted[b] += 1.0;
        }
    }
}

impl Acceptance {
    fn rates(&self, source: Source) -> &Rates {
        match source {
            Source::Own => &self.own,
            Source::History => &self.history,
        }
    }

    /// Chance that the next drafted token is accepted, given where the draft comes from and
    /// the current match length.
    fn rate(&self, source: Source, match_len: usize) -> f64 {
        self.rates(source).rate(match_len)
    }

    /// Learns from one verified draft from `source` that started at `match_len`: positions up
    /// to the first rejection count (the match grows by one with each accepted token), later
    /// ones were never tested.
    pub fn learn(&mut self, source: Source, match_len: usize, drafted: usize, accepted: usize) {
        let rates = match source {
            Source::Own => &mut self.own,
            Source::History => &mut self.history,
        };
        for i in 0..accepted.min(drafted) {
            rates.record(match_len + i, true);
        }
        if accepted < drafted {
            rates.record(match_len + accepted, false);
        }
    }
}

/// How much a sequence's own record weighs against the engine's acceptance, in drafted
/// tokens' worth of evidence.
const OWN_RECORD_PRIOR: f64 = 1.0;
/// Per step, a sequence's record fades by this factor: a sequence that stopped copying (or
/// started) is judged by what it does now.
const OWN_RECORD_FADE: f64 = 0.98;
/// Highest chance any drafted token is given: none is certain.
const MOST_LIKELY: f64 = 0.99;
/// A candidate draft stops where the chance that all its tokens are accepted falls below this.
const LEAST_LIKELY: f64 = 0.02;

/// What a sequence could draft this step: the tokens, and the chance that the first 1, 2, …
/// of them are all accepted (non-increasing).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Candidate {
    /// The guessed tokens.
    pub tokens: Vec<i32>,
    /// `chances[i]`: that tokens `0..=i` are all accepted.
    pub chances: Vec<f64>,
}

/// One sequence's drafting state: its n-gram index, and its own record (accepted drafted
/// tokens against what the engine's acceptance expected of them), which scales the engine's
/// rates for this sequence: a sequence copying its prompt verbatim soon drafts long, one whose
/// drafts keep failing soon drafts nothing.
#[derive(Debug, Default)]
pub struct Drafter {
    index: NgramIndex,
    /// Accepted drafted tokens, and the sum of their expected acceptance, both fading.
    observed: f64,
    expected: f64,
    /// Source, match length and chances of the draft in flight (for learning once it is
    /// verified).
    pending_source: Source,
    pending_match: usize,
    pending_chances: Vec<f64>,
}

impl Drafter {
    /// A drafter that knows the prompt.
    pub fn new(prompt: &[i32]) -> Self {
        let mut d = Self::default();
        for &t in prompt {
            d.index.push(t);
        }
        d
    }

    /// Adds a token the sequence produced (the sampled one, not a guess).
    pub fn push(&mut self, token: i32) {
        self.index.push(token);
    }

    /// How this sequence's drafts fare against the engine's expectation (1 = as expected).
    fn own_factor(&self) -> f64 {
        (self.observed + OWN_RECORD_PRIOR) / (self.expected + OWN_RECORD_PRIOR)
    }

    /// What this sequence could draft now: at most `limit` tokens, while the chance that all
    /// are accepted stays above [`LEAST_LIKELY`]. Which of them are worth their rows is the
    /// step's decision ([`plan::choose`]); [`Drafter::drafting`] then says how many went.
    pub fn candidate(
        &mut self,
        acceptance: &Acceptance,
        history: &History,
        limit: usize,
    ) -> Candidate {
        self.pending_match = 0;
        self.pending_chances.clear();
        self.observed *= OWN_RECORD_FADE;
        self.expected *= OWN_RECORD_FADE;
        let limit = limit.min(MAX_DRAFT);
        if limit == 0 {
            return Candidate::default();
        }
        // The longer match wins: the sequence's own text, or an earlier request's.
        let seq = &self.index.tokens;
        let own = self.index.find(seq);
        let other = history.index.find(seq);
        let (m, from_own) = match (own, other) {
            (Some(a), Some(b)) if b.len > a.len => (b, false),
            (Some(a), _) => (a, true),
            (None, Some(b)) => (b, false),
            (None, None) => return Candidate::default(),
        };
        let factor = self.own_factor();
        let from = if from_own {
            Source::Own
        } else {
            Source::History
        };
        let mut chances = Vec::new();
        let mut chance = 1.0;
        while chances.len() < limit {
            chance *= (acceptance.rate(from, m.len + chances.len()) * factor).min(MOST_LIKELY);
            if chance < LEAST_LIKELY {
                break;
            }
            chances.push(chance);
        }
        if chances.is_empty() {
            return Candidate::default();
        }
        let source = if from_own {
            &self.index
        } else {
            &history.index
        };
        let tokens = source.continuation(m.next, chances.len(), from_own);
        chances.truncate(tokens.len());
        self.pending_source = from;
        self.pending_match = m.len;
        Candidate { tokens, chances }
    }

    /// Notes that the first `n` tokens of the last candidate (whose chances are `chances`)
    /// are decoded this step.
    pub fn drafting(&mut self, chances: &[f64], n: usize) {
        self.pending_chances.clear();
        self.pending_chances
            .extend_from_slice(&chances[..n.min(chances.len())]);
    }

    /// Learns from the verification of the last draft (`accepted` of `drafted` tokens kept).
    pub fn verified(&mut self, acceptance: &mut Acceptance, drafted: usize, accepted: usize) {
        if drafted == 0 {
            return;
        }
        acceptance.learn(self.pending_source, self.pending_match, drafted, accepted);
        // Expected accepted tokens over the tested positions: the chance of each prefix.
        let expected: f64 = self.pending_chances.iter().take(drafted).sum();
        self.observed += accepted as f64;
        self.expected += expected;
        self.pending_chances.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certain() -> Acceptance {
        let sure = Rates {
            accepted: [1.0; BUCKETS],
            tried: [1.0; BUCKETS],
        };
        Acceptance {
            own: sure.clone(),
            history: sure,
        }
    }

    #[test]
    fn a_repeated_phrase_drafts_what_followed_it() {
        // "a b c d e" then "x a b c" → after "a b c" comes "d e".
        let mut d = Drafter::new(&[1, 2, 3, 4, 5, 9, 1, 2, 3]);
        let draft = d.candidate(&certain(), &History::default(), 2).tokens;
        assert_eq!(draft, vec![4, 5]);
        assert_eq!(d.pending_match, 3);
    }

    #[test]
    fn the_most_recent_and_longest_match_wins() {
        // "2" is followed by 7 once and by 3 later; "1 2" only by 3.
        let mut d = Drafter::new(&[2, 7, 1, 2, 3, 8, 1, 2]);
        assert_eq!(
            d.candidate(&certain(), &History::default(), 1).tokens,
            vec![3]
        );
        assert_eq!(d.pending_match, 2);
    }

    #[test]
    fn a_loop_continues_past_the_present() {
        // A period-2 loop: the continuation runs into the draft itself.
        let mut d = Drafter::new(&[5, 6, 5, 6, 5]);
        assert_eq!(
            d.candidate(&certain(), &History::default(), 5).tokens,
            vec![6, 5, 6, 5, 6]
        );
    }

    #[test]
    fn an_earlier_request_is_drafted_from_and_stops_where_it_ended() {
        let mut history = History::default();
        let earlier = Drafter::new(&[10, 11, 12, 13, 14]);
        history.remember(&earlier);
        // A new request on the same words: its own text has no match, the history has.
        let mut d = Drafter::new(&[7, 10, 11]);
        assert_eq!(
            d.candidate(&certain(), &history, 8).tokens,
            vec![12, 13, 14]
        );
        // Its own longer match wins over the history's shorter one.
        let mut d = Drafter::new(&[1, 2, 10, 11, 5, 1, 2, 10, 11]);
        assert_eq!(d.candidate(&certain(), &history, 1).tokens, vec![5]);
    }

    #[test]
    fn nothing_to_copy_drafts_nothing() {
        let mut d = Drafter::new(&[1, 2, 3, 4]);
        assert!(d
            .candidate(&certain(), &History::default(), 8)
            .tokens
            .is_empty());
        d.push(9);
        assert!(d
            .candidate(&certain(), &History::default(), 8)
            .tokens
            .is_empty());
    }

    #[test]
    fn chances_follow_acceptance_by_match_length() {
        let mut acc = Acceptance::default();
        let mut d = Drafter::new(&[1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3]);
        // Prior for a 3-token match: 0.5, then 0.6 (4), 0.6 (5): 0.5, 0.3, 0.18, ...
        let c = d.candidate(&acc, &History::default(), 8);
        assert_eq!(&c.tokens[..5], &[4, 5, 6, 7, 8]);
        assert!((c.chances[0] - 0.5).abs() < 1e-9 && (c.chances[1] - 0.3).abs() < 1e-9);
        assert!(c.chances.windows(2).all(|w| w[1] <= w[0]));
        // Taught that such drafts are always right: every token nearly certain.
        for _ in 0..2000 {
            acc.learn(Source::Own, 3, 8, 8);
        }
        let c = d.candidate(&acc, &History::default(), 5);
        assert_eq!(c.tokens.len(), 5);
        assert!(c.chances[4] > 0.9, "{c:?}");
    }

    #[test]
    fn before_evidence_a_short_match_in_history_is_trusted_less_than_a_long_one() {
        let acc = Acceptance::default();
        let mut history = History::default();
        let earlier: Vec<i32> = (10..40).collect();
        history.remember(&Drafter::new(&earlier));
        // Two tokens shared with another request's text: a phrase, barely worth a guess.
        let short = Drafter::new(&[7, 10, 11]).candidate(&acc, &history, 8);
        // The same two tokens in the sequence's own text are given far better odds.
        let own = Drafter::new(&[10, 11, 12, 5, 10, 11]).candidate(&acc, &History::default(), 8);
        assert!(
            short.chances[0] < 0.5 * own.chances[0],
            "{short:?} vs {own:?}"
        );
        // The whole question asked again: drafted long at once.
        let again = Drafter::new(&earlier[..20]).candidate(&acc, &history, 8);
        assert_eq!(again.tokens, (30..38).collect::<Vec<_>>());
        assert!(again.chances[0] > 0.8, "{again:?}");
    }

    #[test]
    fn learning_counts_up_to_the_first_rejection() {
        let mut acc = Acceptance::default();
        let before = acc.own.tried;
        acc.learn(Source::Own, 1, 5, 2);
        // Accepted at match 1 and 2, rejected at match 3; positions 4 and 5 untested.
        assert_eq!(acc.own.tried[0] - before[0], 1.0);
        assert_eq!(acc.own.tried[1] - before[1], 1.0);
        assert_eq!(acc.own.tried[2] - before[2], 1.0);
        assert_eq!(acc.own.tried[3], before[3]);
        assert!(acc.rate(Source::Own, 3) < 0.5);
        // The other source learned nothing.
        assert_eq!(acc.history.tried, Rates::with_prior(HISTORY_PRIOR).tried);
    }

    #[test]
    fn a_sequence_is_judged_by_its_own_record_which_fades() {
        let acc = Acceptance::default();
        let mut scratch = Acceptance::default();
        let prompt = [1, 2, 3, 4, 5, 6, 1, 2, 3];
        let first = Drafter::new(&prompt)
            .candidate(&acc, &History::default(), 3)
            .chances;
        // Drafts that keep failing: this sequence's chances fall.
        let mut failing = Drafter::new(&prompt);
        let mut copying = Drafter::new(&prompt);
        for _ in 0..6 {
            let c = failing.candidate(&acc, &History::default(), 3);
            failing.drafting(&c.chances, 3);
            failing.verified(&mut scratch, 3, 0);
            let c = copying.candidate(&acc, &History::default(), 3);
            copying.drafting(&c.chances, 3);
            copying.verified(&mut scratch, 3, 3);
        }
        let low = failing.candidate(&acc, &History::default(), 3).chances;
        let high = copying.candidate(&acc, &History::default(), 3).chances;
        assert!(low[0] < 0.5 * first[0], "{low:?} vs {first:?}");
        assert!(high[0] > first[0], "{high:?} vs {first:?}");
        // Its record fades: without drafting for a while it is back near the engine's rates.
        for _ in 0..300 {
            failing.candidate(&acc, &History::default(), 0);
        }
        let back = failing.candidate(&acc, &History::default(), 3).chances;
        assert!(back[0] > 0.9 * first[0], "{back:?} vs {first:?}");
    }

    #[test]
    fn modes_parse_and_print() {
        assert_eq!("off".parse::<Speculative>(), Ok(Speculative::Off));
        assert_eq!("NGRAM".parse::<Speculative>(), Ok(Speculative::Ngram));
        assert!("eagle".parse::<Speculative>().is_err());
        assert_eq!(Speculative::default().to_string(), "ngram");
    }
}
