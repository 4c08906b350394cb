//! The parser: reads the text against the compiled schema and, where the text runs out, returns
//! the shortest continuation of every reading.

use super::*;

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// What reading one value from a position gave.
#[derive(Default)]
pub(super) struct Out {
    /// The text ran out inside the value: the shortest continuation closing it.
    pub(super) partial: Option<String>,
    /// The value ended before the text did: the positions just after it (several when
    /// alternatives read it differently).
    pub(super) complete: Vec<usize>,
}

impl Out {
    pub(super) fn partial(s: Option<String>) -> Out {
        Out {
            partial: s,
            complete: Vec::new(),
        }
    }

    pub(super) fn complete(end: usize) -> Out {
        Out {
            partial: None,
            complete: vec![end],
        }
    }

    pub(super) fn add(&mut self, s: Option<String>) {
        keep_shorter(&mut self.partial, s);
    }

    pub(super) fn done(&mut self, end: usize) {
        if !self.complete.contains(&end) {
            self.complete.push(end);
        }
    }

    fn is_empty(&self) -> bool {
        self.partial.is_none() && self.complete.is_empty()
    }

    pub(super) fn merge(&mut self, other: Out) {
        self.add(other.partial);
        for end in other.complete {
            self.done(end);
        }
    }
}

/// Keeps the shorter of two candidate continuations (the first on a tie).
pub(super) fn keep_shorter(best: &mut Option<String>, candidate: Option<String>) {
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
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Gap {
    /// Right after `{` or `[`: closing is allowed.
    Open,
    /// Right after `,`: a member must follow.
    Comma,
    /// Right after a member.
    Member,
}

/// An escape the text ends in the middle of.
#[derive(Clone)]
pub(super) enum Esc {
    None,
    /// Just the `\`.
    Backslash,
    /// `\u` and these hex digits.
    Unicode(String),
}

/// A string read from its opening quote.
#[derive(Clone)]
pub(super) struct Scan {
    /// Position after the closing quote, `None` when the text ended first.
    pub(super) end: Option<usize>,
    /// The characters decoded so far.
    pub(super) chars: Vec<char>,
    /// Where the characters after the opening quote start in the text.
    pub(super) raw_start: usize,
    pub(super) esc: Esc,
    /// A high surrogate (`\ud83d`) still waiting for its low half.
    pub(super) high: Option<u32>,
}

impl Scan {
    pub(super) fn empty() -> Scan {
        Scan {
            end: None,
            chars: Vec::new(),
            raw_start: 0,
            esc: Esc::None,
            high: None,
        }
    }
}

/// Where an object's reading stands after its `{` or a `,`: the position, and the keys read.
type MemberState = (usize, Vec<String>);

/// What the parses of one answer keep for the next, longer text (an answer only grows, token
/// by token): values read whole before the text ended, where each open array and object
/// stood at its last member boundary, how far each open string was scanned, and the minimal
/// instances. With it a parse redoes only the path from the root to the text's end, so the
/// work per token does not grow with the answer.
#[derive(Default)]
pub(super) struct Carry {
    /// (node, position) → the ends of a value read whole strictly before the text ended:
    /// nothing written after it can change how it reads.
    whole: HashMap<(usize, usize), Vec<usize>>,
    /// (node, position) of an open array → the positions after its last `,` (or `[`), the
    /// items read and the gap there.
    arrays: HashMap<(usize, usize), (Vec<usize>, usize, Gap)>,
    /// (node, position) of an open object → the positions after its last `,` (or `{`) with
    /// the keys read, and the gap there.
    objects: HashMap<(usize, usize), (Vec<MemberState>, Gap)>,
    /// Opening quote → where the scan of an open string stopped (before any unfinished
    /// escape) and what it had read.
    strings: HashMap<usize, (usize, Scan)>,
    /// Minimal instance of each node, once known.
    memo: Vec<Option<Option<String>>>,
}

impl Carry {
    pub(super) fn new(c: &Compiled) -> Carry {
        Carry {
            memo: (0..c.nodes.len()).map(|_| None).collect(),
            ..Carry::default()
        }
    }
}

pub(super) struct Parser<'a> {
    pub(super) c: &'a Compiled,
    pub(super) text: &'a [char],
    pub(super) steps: usize,
    /// What earlier parses of shorter texts of the same answer found.
    pub(super) carry: &'a mut Carry,
    /// Nodes whose minimal instance is being computed (a schema nested in itself).
    pub(super) busy: Vec<bool>,
    pub(super) busy_depth: usize,
    /// Whether the minimal instance being computed depended on a cut-off recursion (then it
    /// is not memoized: from elsewhere the result could differ).
    pub(super) cut: bool,
}

impl<'a> Parser<'a> {
    pub(super) fn new(c: &'a Compiled, text: &'a [char], carry: &'a mut Carry) -> Parser<'a> {
        Parser {
            c,
            text,
            steps: 0,
            carry,
            busy: vec![false; c.nodes.len()],
            busy_depth: 0,
            cut: false,
        }
    }

    pub(super) fn skip_ws(&self, mut i: usize) -> usize {
        while matches!(self.text.get(i), Some(' ' | '\t' | '\n' | '\r')) {
            i += 1;
        }
        i
    }

    /// Follows aliases (bounded: a `$ref` to itself must not loop).
    pub(super) fn target(&self, mut n: usize) -> usize {
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
    pub(super) fn value(&mut self, n: usize, pos: usize, depth: usize) -> Out {
        let n = self.target(n);
        self.steps += 1;
        if depth > MAX_DEPTH || self.steps > MAX_STEPS {
            return Out::default();
        }
        let pos = self.skip_ws(pos);
        let Some(&first) = self.text.get(pos) else {
            return Out::partial(self.min_instance(n));
        };
        if let Some(ends) = self.carry.whole.get(&(n, pos)) {
            return Out {
                partial: None,
                complete: ends.clone(),
            };
        }
        let out = self.read(n, pos, first, depth);
        let settled = out.partial.is_none()
            && !out.complete.is_empty()
            && out.complete.iter().all(|&end| end < self.text.len())
            && self.steps <= MAX_STEPS;
        if settled {
            self.carry.whole.insert((n, pos), out.complete.clone());
            self.carry.arrays.remove(&(n, pos));
            self.carry.objects.remove(&(n, pos));
        }
        out
    }

    /// [`Parser::value`] once the cache had nothing: reads node `n` at `pos`, whose first
    /// character is `first`.
    fn read(&mut self, n: usize, pos: usize, first: char, depth: usize) -> Out {
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
            Node::Arr(spec) if first == '[' => self.array(spec, (n, pos), depth),
            Node::Obj(spec) if first == '{' => self.object(spec, (n, pos), depth),
            _ => Out::default(),
        }
    }

    pub(super) fn literal(&self, word: &str, pos: usize) -> Out {
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
    pub(super) fn enumerated(&mut self, values: &[Value], pos: usize, depth: usize) -> Out {
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

    pub(super) fn number(&self, spec: &NumSpec, pos: usize) -> Out {
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

    pub(super) fn string(&mut self, spec: &StrSpec, pos: usize) -> Out {
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
    pub(super) fn scan_string(&mut self, pos: usize) -> Option<Scan> {
        let t = self.text;
        // Resumed where the last parse of this answer stopped, when the string was open then.
        let (mut i, mut scan) = match self.carry.strings.get(&pos) {
            Some((i, scan)) => (*i, scan.clone()),
            None => (
                pos + 1,
                Scan {
                    raw_start: pos + 1,
                    ..Scan::empty()
                },
            ),
        };
        loop {
            let Some(&c) = t.get(i) else {
                self.carry.strings.insert(pos, (i, scan.clone()));
                return Some(scan);
            };
            if scan.high.is_some() && c != '\\' {
                return None;
            }
            match c {
                '"' => {
                    self.carry.strings.remove(&pos);
                    scan.end = Some(i + 1);
                    return Some(scan);
                }
                '\\' => {
                    let Some(&e) = t.get(i + 1) else {
                        self.carry.strings.insert(pos, (i, scan.clone()));
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
                                self.carry.strings.insert(pos, (i, scan.clone()));
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

    /// Reads an array of node and position `at` (resumed at its last member boundary when an
    /// earlier parse of this answer reached it).
    pub(super) fn array(&mut self, spec: &ArrSpec, at: (usize, usize), depth: usize) -> Out {
        let mut out = Out::default();
        // Positions after `[` or a `,`; one in practice, more when alternatives disagree.
        let (mut states, mut count, mut gap) = match self.carry.arrays.get(&at) {
            Some(resume) => resume.clone(),
            None => (vec![at.1 + 1], 0, Gap::Open),
        };
        while !states.is_empty() {
            if out.is_empty() && states.iter().all(|&p| self.skip_ws(p) < self.text.len()) {
                // Everything before these positions is read for good.
                self.carry.arrays.insert(at, (states.clone(), count, gap));
            }
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
    pub(super) fn close_array(&mut self, spec: &ArrSpec, count: usize, gap: Gap) -> Option<String> {
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

    /// Reads an object of node and position `at` (resumed at its last member boundary when
    /// an earlier parse of this answer reached it).
    pub(super) fn object(&mut self, spec: &ObjSpec, at: (usize, usize), depth: usize) -> Out {
        let mut out = Out::default();
        // Positions after `{` or a `,`, with the keys read so far.
        let (mut states, mut gap) = match self.carry.objects.get(&at) {
            Some(resume) => resume.clone(),
            None => (vec![(at.1 + 1, Vec::new())], Gap::Open),
        };
        while !states.is_empty() {
            if out.is_empty()
                && states
                    .iter()
                    .all(|(p, _)| self.skip_ws(*p) < self.text.len())
            {
                self.carry.objects.insert(at, (states.clone(), gap));
            }
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
    pub(super) fn member(
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
    pub(super) fn missing(&self, spec: &ObjSpec, seen: &[String]) -> Vec<(String, usize)> {
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
    pub(super) fn members(&mut self, list: &[(String, usize)]) -> Option<String> {
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
    pub(super) fn close_object(
        &mut self,
        spec: &ObjSpec,
        seen: &[String],
        gap: Gap,
    ) -> Option<String> {
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
    pub(super) fn optional_member(&mut self, spec: &ObjSpec, seen: &[String]) -> Option<String> {
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
    pub(super) fn close_key(
        &mut self,
        spec: &ObjSpec,
        seen: &[String],
        scan: &Scan,
    ) -> Option<String> {
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
    pub(super) fn value_and_close(
        &mut self,
        spec: &ObjSpec,
        seen: &[String],
        node: usize,
    ) -> Option<String> {
        let value = self.min_instance(node)?;
        let close = self.close_object(spec, seen, Gap::Member)?;
        Some(value + &close)
    }

    /// The shortest JSON text valid against node `n` (`None` when there is none, or none
    /// within the guards).
    pub(super) fn min_instance(&mut self, n: usize) -> Option<String> {
        let n = self.target(n);
        if let Some(known) = &self.carry.memo[n] {
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
            self.carry.memo[n] = Some(result.clone());
        }
        self.cut |= outer_cut;
        result
    }

    pub(super) fn compute_min(&mut self, n: usize) -> Option<String> {
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
