//! `pattern` and `format` strings as automata that can say how to finish a partial match: a
//! deterministic automaton from `regex-automata` (the `regex` crate's engine), stepped over
//! each character's UTF-8 bytes, and a breadth-first search over readable characters for the
//! shortest way from where a string stands to a match.

use regex_automata::dfa::{dense, Automaton};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::Anchored;

use super::*;

/// Characters tried first when a completion is written: readable, never a JSON escape (the
/// order decides which of several equally short completions is written).
const PREFERRED: [char; 8] = ['a', '0', 'A', '_', '-', ' ', '.', 'x'];

/// Largest automaton built for one `pattern` or `format`, in bytes.
const MAX_DFA_BYTES: usize = 1 << 20;

/// One `pattern` (or `format`) as a deterministic automaton over the string's UTF-8 bytes,
/// matching the whole string (JSON Schema's unanchored ends become "anything").
pub(super) struct Nfa {
    dfa: dense::DFA<Vec<u32>>,
    start: StateID,
    /// The characters a completion may write, in the order they are tried.
    alphabet: Vec<char>,
}

/// Where reading a string has brought the automaton.
pub(super) type States = StateID;

impl Nfa {
    /// The automaton of a JSON Schema `pattern`; unanchored ends match anything, as JSON
    /// Schema says. `None` for a pattern the engine cannot build (a syntax error, a word
    /// boundary, an automaton beyond [`MAX_DFA_BYTES`]).
    pub(super) fn from_pattern(pattern: &str) -> Option<Nfa> {
        // Matching the whole string from its start: what the pattern leaves open at either
        // end is filled by "anything".
        let mut core = pattern;
        let anchored_start = core.starts_with('^');
        if anchored_start {
            core = &core[1..];
        }
        let backslashes = core
            .strip_suffix('$')
            .map(|rest| rest.chars().rev().take_while(|&c| c == '\\').count());
        let anchored_end = backslashes.is_some_and(|n| n % 2 == 0);
        if anchored_end {
            core = &core[..core.len() - 1];
        }
        let open = |anchored: bool| if anchored { "" } else { "(?s:.*)" };
        let whole = format!("{}(?:{core}){}", open(anchored_start), open(anchored_end));
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .start_kind(regex_automata::dfa::StartKind::Anchored)
                    .match_kind(regex_automata::MatchKind::All)
                    // Minimal: every state from which no match can be reached is the dead
                    // state, so a step says at once when a string can no longer match.
                    .minimize(true)
                    .dfa_size_limit(Some(MAX_DFA_BYTES))
                    .determinize_size_limit(Some(MAX_DFA_BYTES)),
            )
            .build(&whole)
            .ok()?;
        let start = dfa
            .start_state(&start::Config::new().anchored(Anchored::Yes))
            .ok()?;
        let alphabet = PREFERRED
            .into_iter()
            .chain((' '..='~').filter(|c| !PREFERRED.contains(c)))
            .chain('\u{a1}'..='\u{ff}')
            .collect();
        Some(Nfa {
            dfa,
            start,
            alphabet,
        })
    }

    /// The state before reading anything.
    pub(super) fn start(&self) -> States {
        self.start
    }

    /// The state after reading `c`; `None` when no match can follow any more.
    pub(super) fn step(&self, state: &States, c: char) -> Option<States> {
        let mut buf = [0u8; 4];
        let mut s = *state;
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            s = self.dfa.next_state(s, b);
            if self.dfa.is_dead_state(s) || self.dfa.is_quit_state(s) {
                return None;
            }
        }
        Some(s)
    }

    /// Whether the string read so far matches.
    pub(super) fn accepts(&self, state: &States) -> bool {
        self.dfa.is_match_state(self.dfa.next_eoi_state(*state))
    }

    pub(super) fn matches(&self, chars: &[char]) -> bool {
        self.accepts_after(&self.start, chars)
    }

    /// Whether reading `chars` from `state` ends in a match.
    pub(super) fn accepts_after(&self, state: &States, chars: &[char]) -> bool {
        let mut s = *state;
        for &c in chars {
            match self.step(&s, c) {
                Some(next) => s = next,
                None => return false,
            }
        }
        self.accepts(&s)
    }

    /// The fewest characters leading from `state` to a match (a breadth-first search over the
    /// alphabet; `None` when none is within reach).
    pub(super) fn shortest(&self, state: &States) -> Option<Vec<char>> {
        let mut seen: HashMap<StateID, Option<(StateID, char)>> = HashMap::new();
        seen.insert(*state, None);
        let mut queue = VecDeque::from([*state]);
        while let Some(s) = queue.pop_front() {
            if self.accepts(&s) {
                let mut out = Vec::new();
                let mut at = s;
                while let Some(Some((from, c))) = seen.get(&at) {
                    out.push(*c);
                    at = *from;
                }
                out.reverse();
                return Some(out);
            }
            if seen.len() > MAX_GENERATED {
                return None;
            }
            for &c in &self.alphabet {
                if let Some(next) = self.step(&s, c) {
                    if let std::collections::hash_map::Entry::Vacant(e) = seen.entry(next) {
                        e.insert(Some((s, c)));
                        queue.push_back(next);
                    }
                }
            }
        }
        None
    }
}

/// Whether `s` matches the JSON Schema `pattern` (`None`: unsupported regex).
#[cfg(test)]
pub(super) fn pattern_matches(pattern: &str, s: &str) -> Option<bool> {
    let chars: Vec<char> = s.chars().collect();
    Nfa::from_pattern(pattern).map(|nfa| nfa.matches(&chars))
}
