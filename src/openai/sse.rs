//! Server-sent events as OpenAI streams use them: one encoder (the server and the mock write
//! with it) and one incremental parser (the upstream backend and the benchmark client read
//! with it).
//!
//! The parser follows the event-stream format of the HTML standard where it matters here: an
//! event ends at a blank line, several `data:` lines of one event are joined with `\n`, lines
//! may end in CRLF, `:` comments and the `event`, `id` and `retry` fields are ignored. It works
//! on bytes and splits only at line ends, so network chunks may cut anywhere (inside `data:`,
//! inside a multi-byte character, between the two line ends of an event).

use serde::Serialize;

/// The last event of every OpenAI stream, also after an error.
pub const DONE_FRAME: &str = "data: [DONE]\n\n";

/// One event carrying `value` as JSON: `data: {…}\n\n`.
pub fn frame(value: &impl Serialize) -> String {
    // The wire types hold only string-keyed maps and plain values, which always serialize.
    let json = serde_json::to_string(value).expect("wire types serialize to JSON");
    format!("data: {json}\n\n")
}

/// One complete event's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SseEvent {
    /// The event's data (normally one JSON object).
    Data(String),
    /// `data: [DONE]`: the stream is over.
    Done,
}

impl SseEvent {
    fn of(data: String) -> Option<Self> {
        match data.trim() {
            // An event without content (a keep-alive) carries nothing to read.
            "" => None,
            "[DONE]" => Some(SseEvent::Done),
            _ => Some(SseEvent::Data(data)),
        }
    }
}

/// Incremental parser: bytes in, complete events out.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes after the last complete line.
    pending: Vec<u8>,
    /// `data` lines of the event being read, if any.
    data: Option<String>,
}

impl SseParser {
    /// Feeds bytes; returns every event they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + offset;
            let line = &self.pending[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if let Some(event) = self.line(&line) {
                out.push(event);
            }
        }
        self.pending.drain(..start);
        out
    }

    /// At the end of the body: the event whose closing blank line never came, if any.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            let line = String::from_utf8_lossy(&rest);
            self.line(line.trim_end_matches('\r'));
        }
        self.data.take().and_then(SseEvent::of)
    }

    /// Handles one line; returns the event when the line ends one.
    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.data.take().and_then(SseEvent::of);
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        if field == "data" {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(s: &str) -> SseEvent {
        SseEvent::Data(s.to_string())
    }

    fn feed(parser: &mut SseParser, pieces: &[&[u8]]) -> Vec<SseEvent> {
        pieces.iter().flat_map(|p| parser.push(p)).collect()
    }

    #[test]
    fn frames_are_data_lines_with_a_blank_line() {
        assert_eq!(frame(&serde_json::json!({"a": 1})), "data: {\"a\":1}\n\n");
        let mut parser = SseParser::default();
        let mut bytes = frame(&"x").into_bytes();
        bytes.extend_from_slice(DONE_FRAME.as_bytes());
        assert_eq!(parser.push(&bytes), vec![data("\"x\""), SseEvent::Done]);
    }

    #[test]
    fn a_data_line_split_across_chunks_is_reassembled() {
        let mut parser = SseParser::default();
        let events = feed(&mut parser, &[b"da", b"ta: {\"a\"", b":1}", b"\n", b"\n"]);
        assert_eq!(events, vec![data(r#"{"a":1}"#)]);
    }

    #[test]
    fn a_multibyte_character_split_across_chunks_survives() {
        let bytes = "data: {\"t\":\"é🔥\"}\n\n".as_bytes();
        // Cut inside the 4-byte emoji.
        let cut = bytes.iter().position(|&b| b == 0xF0).unwrap() + 2;
        let mut parser = SseParser::default();
        let events = feed(&mut parser, &[&bytes[..cut], &bytes[cut..]]);
        assert_eq!(events, vec![data("{\"t\":\"é🔥\"}")]);
    }

    #[test]
    fn every_cut_of_a_stream_gives_the_same_events() {
        let body = "data: {\"a\":1}\r\n\r\n: comment\n\ndata: {\"b\":\"é\"}\n\ndata: [DONE]\n\n";
        let bytes = body.as_bytes();
        for cut in 0..bytes.len() {
            let mut parser = SseParser::default();
            let events = feed(&mut parser, &[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(
                events,
                vec![data("{\"a\":1}"), data("{\"b\":\"é\"}"), SseEvent::Done],
                "cut at {cut}"
            );
            assert_eq!(parser.finish(), None);
        }
    }

    #[test]
    fn several_events_in_one_chunk_come_out_in_order() {
        let mut parser = SseParser::default();
        let events = parser.push(b"data: 1\n\ndata: 2\r\n\r\n: comment\n\ndata: [DONE]\n\ndata: 4");
        assert_eq!(events, vec![data("1"), data("2"), SseEvent::Done]);
        assert_eq!(parser.finish(), Some(data("4")));
        assert_eq!(parser.finish(), None);
    }

    #[test]
    fn a_blank_line_split_between_chunks_still_ends_the_event() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"data: x\n").is_empty());
        assert_eq!(parser.push(b"\ndata: y\n\n"), vec![data("x"), data("y")]);
    }

    #[test]
    fn multi_line_data_and_other_fields() {
        let mut parser = SseParser::default();
        let events = parser.push(b"event: message\nid: 7\ndata: a\ndata:b\nretry: 5\n\n");
        assert_eq!(events, vec![data("a\nb")]);
    }

    #[test]
    fn done_tolerates_spacing_and_empty_events_are_skipped() {
        let mut parser = SseParser::default();
        let events = parser.push(b"data:\n\ndata:   \n\ndata:[DONE] \r\n\r\n");
        assert_eq!(events, vec![SseEvent::Done]);
    }
}
