//! Finishing what the parser was in the middle of: keys, strings and their escapes, numbers,
//! and the smallest values a schema allows.

use super::*;

pub(super) fn array_item(spec: &ArrSpec, i: usize) -> Option<usize> {
    if spec.max.is_some_and(|m| i >= m) {
        return None;
    }
    match spec.prefix.get(i) {
        Some(&node) => Some(node),
        None => spec.rest,
    }
}

pub(super) fn key_json(name: &str) -> String {
    Value::String(name.to_string()).to_string()
}

/// `base` plus the shortest suffix making a key neither used nor declared (a declared name
/// would be validated against its own schema, not the extra-properties one).
pub(super) fn fresh_key(spec: &ObjSpec, seen: &[String], base: &str) -> String {
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
pub(super) fn compact(text: &[char]) -> String {
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

pub(super) fn simple_escape(e: char) -> Option<char> {
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

pub(super) fn combine(high: u32, low: u32) -> Option<char> {
    char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
}

/// Finishes a dangling escape with a character `accept` allows: the text to append, and the
/// character it decodes to.
pub(super) fn finish_escape(
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
pub(super) fn push_escaped(s: &mut String, c: char) {
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
pub(super) fn close_string(spec: &StrSpec, scan: &Scan) -> Option<String> {
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
pub(super) fn calendar_ok(chars: &[char]) -> bool {
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
pub(super) fn finish_number(token: &[char], spec: &NumSpec) -> Option<String> {
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
pub(super) fn allowed_number(text: &str, spec: &NumSpec) -> bool {
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

pub(super) fn exponent_ok(rest: &str) -> bool {
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
pub(super) fn extend_integer(negative: bool, digits: &str, spec: &NumSpec) -> Option<String> {
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
pub(super) fn min_number(spec: &NumSpec) -> Option<String> {
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
