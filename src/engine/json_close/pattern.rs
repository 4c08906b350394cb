//! `pattern` and `format` strings as automata that can say how to finish a partial match.

use super::*;

// ---------------------------------------------------------------------------------------------
// Regular expressions (the subset llama.cpp turns into grammar rules), as automata that can
// both check a string and find the shortest way to finish one.
// ---------------------------------------------------------------------------------------------

/// A set of characters.
#[derive(Clone)]
pub(super) struct Class {
    pub(super) ranges: Vec<(char, char)>,
    pub(super) negated: bool,
}

impl Class {
    pub(super) fn single(c: char) -> Class {
        Class {
            ranges: vec![(c, c)],
            negated: false,
        }
    }

    pub(super) fn has(&self, c: char) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= c && c <= b) != self.negated
    }

    /// The character written where this class is needed: readable, no JSON escape if possible.
    pub(super) fn pick(&self) -> Option<char> {
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

pub(super) fn digit_ranges() -> Vec<(char, char)> {
    vec![('0', '9')]
}

pub(super) fn word_ranges() -> Vec<(char, char)> {
    vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')]
}

pub(super) fn space_ranges() -> Vec<(char, char)> {
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

pub(super) enum Re {
    Class(Class),
    Seq(Vec<Re>),
    Alt(Vec<Re>),
    /// An expression repeated `min` to `max` (unbounded: `None`) times.
    Repeat(Box<Re>, u32, Option<u32>),
}

/// Parses the ECMA-262 subset llama.cpp supports: literals, `.`, classes, `\d\w\s` and their
/// negations, groups, alternation, `? * + {n} {n,} {n,m}`. `None` for anything else.
pub(super) struct ReParser {
    pub(super) s: Vec<char>,
    pub(super) i: usize,
}

impl ReParser {
    pub(super) fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    pub(super) fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    pub(super) fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn alternation(&mut self) -> Option<Re> {
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

    pub(super) fn sequence(&mut self) -> Option<Re> {
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

    pub(super) fn atom(&mut self) -> Option<Re> {
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

    pub(super) fn number(&mut self) -> Option<u32> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let text: String = self.s[start..self.i].iter().collect();
        text.parse().ok()
    }

    pub(super) fn quantified(&mut self, atom: Re) -> Option<Re> {
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
    pub(super) fn escape(&mut self, in_class: bool) -> Option<Class> {
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

    pub(super) fn class(&mut self) -> Option<Class> {
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
pub(super) struct NState {
    /// Moves that read nothing.
    pub(super) eps: Vec<usize>,
    /// Moves reading a character of class `.0` to state `.1`.
    pub(super) edges: Vec<(usize, usize)>,
}

/// A nondeterministic automaton (Thompson's construction) for one regex.
pub(super) struct Nfa {
    pub(super) states: Vec<NState>,
    pub(super) classes: Vec<Class>,
    /// The character each class writes, when it has one.
    pub(super) picks: Vec<Option<char>>,
    /// See [`Nfa::closure`].
    pub(super) closures: RefCell<Vec<Option<Arc<[usize]>>>>,
    pub(super) start: usize,
    pub(super) accept: usize,
}

impl Nfa {
    /// The automaton of a JSON Schema `pattern`; unanchored ends match anything, as JSON
    /// Schema says (llama.cpp only accepts anchored ones).
    pub(super) fn from_pattern(pattern: &str) -> Option<Nfa> {
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

    pub(super) fn state(&mut self) -> Option<usize> {
        if self.states.len() >= MAX_NFA_STATES {
            return None;
        }
        self.states.push(NState::default());
        Some(self.states.len() - 1)
    }

    pub(super) fn eps(&mut self, from: usize, to: usize) {
        self.states[from].eps.push(to);
    }

    /// Adds states for `re`; returns its entry and exit.
    pub(super) fn build(&mut self, re: &Re) -> Option<(usize, usize)> {
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
    pub(super) fn closure(&self, state: usize) -> Arc<[usize]> {
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
        let list: Arc<[usize]> = list.into();
        if let Some(slot) = self.closures.borrow_mut().get_mut(state) {
            *slot = Some(list.clone());
        }
        list
    }

    /// The states before reading anything. Sets of states are short sorted lists: only a few
    /// states are active at a time, whatever the size of the automaton.
    pub(super) fn start(&self) -> Vec<usize> {
        let mut set = self.closure(self.start).to_vec();
        set.sort_unstable();
        set
    }

    /// The states after reading `c`; `None` when there are none.
    pub(super) fn step(&self, set: &[usize], c: char) -> Option<Vec<usize>> {
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

    pub(super) fn accepts(&self, set: &[usize]) -> bool {
        set.contains(&self.accept)
    }

    pub(super) fn matches(&self, chars: &[char]) -> bool {
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
    pub(super) fn accepts_after(&self, set: &[usize], chars: &[char]) -> bool {
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
    pub(super) fn shortest(&self, set: &[usize]) -> Option<Vec<char>> {
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
pub(super) fn pattern_matches(pattern: &str, s: &str) -> Option<bool> {
    let chars: Vec<char> = s.chars().collect();
    Nfa::from_pattern(pattern).map(|nfa| nfa.matches(&chars))
}
