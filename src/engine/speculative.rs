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
//! A draft is not free: each drafted token is one more row in the batch. How long a draft is
//! worth making is decided here from two measurements the engine feeds back:
//! * how often drafts are accepted, by the length of the n-gram match they came from
//!   ([`Acceptance`]; a long match, as in a repetition loop, is right far more often than a
//!   one-token match), and
//! * what a step costs with and without drafted tokens ([`StepCosts`]; on a CPU a drafted row
//!   costs nearly as much as a generated one, on a GPU almost nothing).
//!
//! A token is drafted only while its chance of being accepted, times the time a generated
//! token costs, exceeds the time a drafted row costs. Sequences whose drafts keep failing stop
//! drafting for a while ([`Drafter`]'s back-off), so text with nothing to copy pays (almost)
//! nothing.
//!
//! The lookup is written by hand: it is a few hash maps over the sequence's tokens, and no crate
//! offers prompt-lookup drafting. llama.cpp's `ngram-simple` and `ngram-mod` were the model:
//! unlike them the match length is not fixed (the longest of 1..=4 tokens, extended backwards),
//! and the draft length follows measured acceptance instead of a fixed 12/24-token match with
//! 48–64-token drafts.

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

/// How often drafted tokens are accepted, learned per match-length bucket across the engine's
/// sequences (a property of the model and the work it is given), with older evidence fading.
#[derive(Clone, Debug)]
pub struct Acceptance {
    accepted: [f64; BUCKETS],
    tried: [f64; BUCKETS],
}

/// Evidence kept per bucket: older outcomes weigh less once this many are counted.
const EVIDENCE: f64 = 400.0;

impl Default for Acceptance {
    fn default() -> Self {
        // Priors worth four outcomes each: short matches are usually wrong, long ones right.
        const PRIOR: [f64; BUCKETS] = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
        Self {
            accepted: PRIOR.map(|p| 4.0 * p),
            tried: [4.0; BUCKETS],
        }
    }
}

impl Acceptance {
    /// Chance that the next drafted token is accepted, given the current match length.
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

    /// Learns from one verified draft that started at `match_len`: positions up to the first
    /// rejection count (the match grows by one with each accepted token), later ones were never
    /// tested.
    pub fn learn(&mut self, match_len: usize, drafted: usize, accepted: usize) {
        for i in 0..accepted.min(drafted) {
            self.record(match_len + i, true);
        }
        if accepted < drafted {
            self.record(match_len + accepted, false);
        }
    }
}

/// What decode steps cost, measured by the engine, by the number of sequences in the step: a
/// step without drafts, and what one drafted row adds (less in a bigger batch, whose weights
/// are read once for more rows).
#[derive(Clone, Debug, Default)]
pub struct StepCosts {
    /// Seconds of a draft-free, prefill-free step (index = sequences - 1).
    plain: Vec<Option<f64>>,
    /// Seconds one drafted row adds to a step (index = sequences - 1).
    per_draft: Vec<Option<f64>>,
}

/// Weight of the newest measurement in the running averages.
const SMOOTHING: f64 = 0.1;

fn smooth(old: Option<f64>, new: f64) -> f64 {
    old.map_or(new, |o| o + SMOOTHING * (new - o))
}

impl StepCosts {
    /// Records a decode step (no prompt tokens in it) of `sequences` generating sequences with
    /// `drafted` drafted rows in all.
    pub fn record(&mut self, sequences: usize, drafted: usize, seconds: f64) {
        if sequences == 0 || !seconds.is_finite() {
            return;
        }
        if self.plain.len() < sequences {
            self.plain.resize(sequences, None);
            self.per_draft.resize(sequences, None);
        }
        let i = sequences - 1;
        if drafted == 0 {
            self.plain[i] = Some(smooth(self.plain[i], seconds));
        } else if let Some(base) = self.plain[i] {
            let per = ((seconds - base) / drafted as f64).max(0.0);
            self.per_draft[i] = Some(smooth(self.per_draft[i], per));
        }
    }

    /// A drafted row's cost as a share of what one generated token costs at this batch size;
    /// `None` until a draft-free step of this size was measured.
    pub fn draft_price(&self, sequences: usize) -> Option<f64> {
        let plain = (*self.plain.get(sequences.checked_sub(1)?)?)?;
        let per_token = plain / sequences as f64;
        if per_token <= 0.0 {
            return None;
        }
        // Before a draft was measured at this size, guess 0.6 of a token (near a CPU's cost for a
        // small model): dear enough that only likely drafts are made, cheap enough that some
        // are, and get measured.
        let per_draft = self.per_draft[sequences - 1].unwrap_or(per_token * 0.6);
        Some(per_draft / per_token)
    }
}

/// How much longer than a draft-free step a step with drafts may take. Every request that
/// arrives meanwhile waits for the step in flight before its prompt is even looked at, so a
/// step is its first token's toll: measured on the default model (2 CPU cores), one sequence
/// with 48 drafted rows took 295 ms against 12 ms without, and the first tokens of requests
/// arriving beside it waited 2.6× llama-server's. A drafted row costs about half a plain step
/// there and the speed-up is (1 + d) / (1 + 0.49 d) for d accepted rows: 6 rows already give
/// 1.78× of the 2.0× that 48 give, so the cap costs little speed.
pub const STEP_STRETCH: f64 = 4.0;

/// Most drafted rows one step may carry so that it takes at most [`STEP_STRETCH`] times a
/// draft-free step of `sequences` sequences, given a drafted row's `price` (a share of one
/// generated token, [`StepCosts::draft_price`]).
pub fn draft_rows_allowed(sequences: usize, price: f64) -> usize {
    if sequences == 0 || price.is_nan() {
        return 0;
    }
    let rows = (STEP_STRETCH - 1.0) * sequences as f64 / price.max(1e-3);
    rows.min(f64::from(u32::MAX)) as usize
}

/// Consecutive fruitless drafts after which a sequence pauses drafting.
const MISSES_BEFORE_PAUSE: u32 = 2;
/// Longest pause, in steps.
const MAX_PAUSE: u32 = 64;

/// One sequence's drafting state: its n-gram index and its back-off.
#[derive(Debug, Default)]
pub struct Drafter {
    index: NgramIndex,
    misses: u32,
    pause: u32,
    pauses: u32,
    /// Match length of the draft in flight (for learning once it is verified).
    pending_match: usize,
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

    /// The draft worth making now: at most `limit` tokens, as long as each token's chance of
    /// being accepted (the product of the per-position rates) stays above `price`, the cost of
    /// a drafted row relative to a generated token.
    pub fn draft(
        &mut self,
        acceptance: &Acceptance,
        history: &History,
        price: f64,
        limit: usize,
    ) -> Vec<i32> {
        self.pending_match = 0;
        if self.pause > 0 {
            self.pause -= 1;
            return Vec::new();
        }
        let limit = limit.min(MAX_DRAFT);
        if limit == 0 {
            return Vec::new();
        }
        // The longer match wins: the sequence's own text, or an earlier request's.
        let seq = &self.index.tokens;
        let own = self.index.find(seq);
        let other = history.index.find(seq);
        let (m, from_own) = match (own, other) {
            (Some(a), Some(b)) if b.len > a.len => (b, false),
            (Some(a), _) => (a, true),
            (None, Some(b)) => (b, false),
            (None, None) => return Vec::new(),
        };
        let mut chance = 1.0;
        let mut n = 0;
        while n < limit {
            chance *= acceptance.rate(m.len + n);
            if chance < price {
                break;
            }
            n += 1;
        }
        if n == 0 {
            return Vec::new();
        }
        let source = if from_own {
            &self.index
        } else {
            &history.index
        };
        let draft = source.continuation(m.next, n, from_own);
        if !draft.is_empty() {
            self.pending_match = m.len;
        }
        draft
    }

    /// Learns from the verification of the last draft (`accepted` of `drafted` tokens kept).
    pub fn verified(&mut self, acceptance: &mut Acceptance, drafted: usize, accepted: usize) {
        if drafted == 0 {
            return;
        }
        acceptance.learn(self.pending_match, drafted, accepted);
        if accepted == 0 {
            self.misses += 1;
            if self.misses >= MISSES_BEFORE_PAUSE {
                self.pauses += 1;
                self.pause = (4u32 << self.pauses.min(4)).min(MAX_PAUSE);
                self.misses = 0;
            }
        } else {
            self.misses = 0;
            self.pauses = self.pauses.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_with_drafts_stays_within_its_stretch_of_a_plain_one() {
        // One sequence, a drafted row at half a token: 6 rows keep the step within 4x.
        assert_eq!(draft_rows_allowed(1, 0.49), 6);
        // Eight sequences whose drafted rows cost a whole token each: 3 per sequence.
        assert_eq!(draft_rows_allowed(8, 1.0), 24);
        // Free rows (a GPU): bounded, not infinite.
        assert!(draft_rows_allowed(1, 0.0) > 1000);
        assert_eq!(draft_rows_allowed(0, 0.5), 0);
        assert_eq!(draft_rows_allowed(4, f64::NAN), 0);
    }

    fn certain() -> Acceptance {
        Acceptance {
            accepted: [1.0; BUCKETS],
            tried: [1.0; BUCKETS],
        }
    }

    #[test]
    fn a_repeated_phrase_drafts_what_followed_it() {
        // "a b c d e" then "x a b c" → after "a b c" comes "d e".
        let mut d = Drafter::new(&[1, 2, 3, 4, 5, 9, 1, 2, 3]);
        let draft = d.draft(&certain(), &History::default(), 0.5, 2);
        assert_eq!(draft, vec![4, 5]);
        assert_eq!(d.pending_match, 3);
    }

    #[test]
    fn the_most_recent_and_longest_match_wins() {
        // "2" is followed by 7 once and by 3 later; "1 2" only by 3.
        let mut d = Drafter::new(&[2, 7, 1, 2, 3, 8, 1, 2]);
        assert_eq!(d.draft(&certain(), &History::default(), 0.5, 1), vec![3]);
        assert_eq!(d.pending_match, 2);
    }

    #[test]
    fn a_loop_continues_past_the_present() {
        // A period-2 loop: the continuation runs into the draft itself.
        let mut d = Drafter::new(&[5, 6, 5, 6, 5]);
        assert_eq!(
            d.draft(&certain(), &History::default(), 0.5, 5),
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
        assert_eq!(d.draft(&certain(), &history, 0.5, 8), vec![12, 13, 14]);
        // Its own longer match wins over the history's shorter one.
        let mut d = Drafter::new(&[1, 2, 10, 11, 5, 1, 2, 10, 11]);
        assert_eq!(d.draft(&certain(), &history, 0.5, 1), vec![5]);
    }

    #[test]
    fn nothing_to_copy_drafts_nothing() {
        let mut d = Drafter::new(&[1, 2, 3, 4]);
        assert!(d.draft(&certain(), &History::default(), 0.5, 8).is_empty());
        d.push(9);
        assert!(d.draft(&certain(), &History::default(), 0.5, 8).is_empty());
    }

    #[test]
    fn draft_length_follows_acceptance_and_price() {
        let mut acc = Acceptance::default();
        let mut d = Drafter::new(&[1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3]);
        // Prior for a 3-token match: 0.5, then 0.6 (4), 0.6 (5): 0.5, 0.3, 0.18.
        assert_eq!(d.draft(&acc, &History::default(), 0.25, 8), vec![4, 5]);
        assert!(d.draft(&acc, &History::default(), 0.6, 8).is_empty());
        // Teach it that such drafts are always right: it drafts to the limit.
        for _ in 0..2000 {
            acc.learn(3, 8, 8);
        }
        assert_eq!(d.draft(&acc, &History::default(), 0.25, 5).len(), 5);
    }

    #[test]
    fn learning_counts_up_to_the_first_rejection() {
        let mut acc = Acceptance::default();
        let before = acc.tried;
        acc.learn(1, 5, 2);
        // Accepted at match 1 and 2, rejected at match 3; positions 4 and 5 untested.
        assert_eq!(acc.tried[0] - before[0], 1.0);
        assert_eq!(acc.tried[1] - before[1], 1.0);
        assert_eq!(acc.tried[2] - before[2], 1.0);
        assert_eq!(acc.tried[3], before[3]);
        assert!(acc.rate(3) < 0.5);
    }

    #[test]
    fn failing_drafts_pause_drafting_then_resume() {
        let acc_certain = certain();
        let mut acc = Acceptance::default();
        let mut d = Drafter::new(&[1, 2, 3, 1, 2]);
        for _ in 0..MISSES_BEFORE_PAUSE {
            assert!(!d
                .draft(&acc_certain, &History::default(), 0.1, 4)
                .is_empty());
            d.verified(&mut acc, 4, 0);
        }
        let paused = (0..200)
            .take_while(|_| {
                d.draft(&acc_certain, &History::default(), 0.1, 4)
                    .is_empty()
            })
            .count();
        assert!(paused > 0 && paused <= MAX_PAUSE as usize, "{paused}");
    }

    #[test]
    fn step_costs_price_a_draft_against_a_token() {
        let mut c = StepCosts::default();
        assert_eq!(c.draft_price(1), None);
        c.record(1, 0, 0.010);
        // No drafted step yet: a guess.
        assert!((c.draft_price(1).unwrap() - 0.6).abs() < 1e-9);
        c.record(1, 4, 0.026);
        // 4 ms per drafted row against 10 ms per token.
        assert!((c.draft_price(1).unwrap() - 0.4).abs() < 1e-9);
        // At 8 sequences a token costs 40/8 = 5 ms; drafts there are priced on their own.
        c.record(8, 0, 0.040);
        assert!((c.draft_price(8).unwrap() - 0.6).abs() < 1e-9);
        c.record(8, 8, 0.068);
        assert!((c.draft_price(8).unwrap() - 0.7).abs() < 1e-9);
        assert_eq!(c.draft_price(4), None);
    }

    #[test]
    fn modes_parse_and_print() {
        assert_eq!("off".parse::<Speculative>(), Ok(Speculative::Off));
        assert_eq!("NGRAM".parse::<Speculative>(), Ok(Speculative::Ngram));
        assert!("eagle".parse::<Speculative>().is_err());
        assert_eq!(Speculative::default().to_string(), "ngram");
    }
}
