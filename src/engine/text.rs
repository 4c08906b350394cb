//! Turning token bytes into text safely: whole UTF-8 characters only, and stop strings that
//! never leak (text that might be the start of a stop string is held back until it is not).

/// Accumulates token bytes and releases only complete UTF-8 characters.
#[derive(Debug, Default)]
pub struct Utf8Buffer {
    pending: Vec<u8>,
}

impl Utf8Buffer {
    /// Adds bytes; returns the longest complete UTF-8 prefix now available.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(
                        std::str::from_utf8(&self.pending[..valid]).expect("valid prefix"),
                    );
                    match e.error_len() {
                        // Incomplete sequence at the end: keep it for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Invalid bytes: replace them and go on.
                        Some(len) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + len);
                        }
                    }
                }
            }
        }
    }

    /// Whatever is left at the end of generation, lossily.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

/// Finds stop strings across token boundaries.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

/// The outcome of feeding text to a [`StopMatcher`].
#[derive(Debug, PartialEq, Eq)]
pub struct StopScan {
    /// Text safe to emit now.
    pub emit: String,
    /// A stop string was found; generation must end.
    pub stopped: bool,
}

impl StopMatcher {
    /// A matcher for the given stop strings (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    /// Feeds new text.
    pub fn push(&mut self, text: &str) -> StopScan {
        self.held.push_str(text);
        if let Some(pos) = self.stops.iter().filter_map(|s| self.held.find(s)).min() {
            let emit = self.held[..pos].to_string();
            self.held.clear();
            return StopScan {
                emit,
                stopped: true,
            };
        }
        // Hold back the longest tail that could still grow into a stop string.
        let keep = self
            .stops
            .iter()
            .map(|stop| {
                (1..stop.len())
                    .rev()
                    .find(|&n| {
                        stop.is_char_boundary(n)
                            && self.held.len() >= n
                            && self.held.is_char_boundary(self.held.len() - n)
                            && self.held.ends_with(&stop[..n])
                    })
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let emit = self.held[..cut].to_string();
        self.held.drain(..cut);
        StopScan {
            emit,
            stopped: false,
        }
    }

    /// Releases held text when generation ends for another reason.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_characters_split_across_tokens_come_out_whole() {
        let mut buf = Utf8Buffer::default();
        let bytes = "é🙂".as_bytes();
        assert_eq!(buf.push(&bytes[..1]), "");
        assert_eq!(buf.push(&bytes[1..3]), "é");
        assert_eq!(buf.push(&bytes[3..5]), "");
        assert_eq!(buf.push(&bytes[5..]), "🙂");
        assert_eq!(buf.push(&[0xff, b'a']), "\u{fffd}a");
        assert_eq!(buf.finish(), "");
    }

    #[test]
    fn stop_string_split_across_pieces_is_caught_and_never_emitted() {
        let mut m = StopMatcher::new(&["END".to_string()]);
        let mut out = String::new();
        let mut stopped = false;
        for piece in ["Hello E", "N", "D world"] {
            let scan = m.push(piece);
            out.push_str(&scan.emit);
            if scan.stopped {
                stopped = true;
                break;
            }
        }
        assert!(stopped);
        assert_eq!(out, "Hello ");
    }

    #[test]
    fn held_prefix_is_released_when_it_stops_matching() {
        let mut m = StopMatcher::new(&["\n\n".to_string(), "User:".to_string()]);
        assert_eq!(m.push("a\n").emit, "a");
        assert_eq!(m.push("b Us").emit, "\nb ");
        assert_eq!(m.finish(), "Us");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let mut m = StopMatcher::new(&["b".to_string(), "a".to_string()]);
        let scan = m.push("xxabyy");
        assert_eq!(scan.emit, "xx");
        assert!(scan.stopped);
    }
}
