//! Text for people, one rule each for every room: a byte count as people read memory and
//! disk sizes, and a long text cut to fit a message, a table cell or a chart label.

/// A byte count in binary units (`512 B`, `93.8 MiB`, `5.0 GiB`), as memory is sold and
/// reported by the OS; `bytesize` picks the unit.
pub fn human_bytes(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

/// At most `max` characters of `text`, the last one `…` when it was cut, so a reader knows
/// there is more (an error body in a message, a model name on a chart).
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_picks_a_readable_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(98_362_432), "93.8 MiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn clip_keeps_short_text_and_marks_a_cut() {
        assert_eq!(clip("Q4_1", 8), "Q4_1");
        assert_eq!(clip("abcdefgh", 8), "abcdefgh");
        assert_eq!(clip("abcdefghi", 8), "abcdefg…");
        assert_eq!(clip("ééééé", 3).chars().count(), 3);
    }
}
