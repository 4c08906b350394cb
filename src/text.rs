//! Text for people, one rule each for every room: a byte count as people read memory and
//! disk sizes, an instant as every report and message prints it, and a long text cut to fit a
//! message, a table cell or a chart label.

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

/// The UTC date and time of a Unix millisecond instant, as every report and the CLI print
/// times: `YYYY-MM-DD HH:MM:SS UTC` (out of `time`'s range: the milliseconds as they are).
pub fn utc(ms: i64) -> String {
    utc_as(
        ms,
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC"),
    )
}

/// The UTC instant as `YYYYMMDD-HHMMSS`, the time part of a run id: sorts by time.
pub fn utc_stamp(ms: i64) -> String {
    utc_as(
        ms,
        time::macros::format_description!("[year][month][day]-[hour][minute][second]"),
    )
}

fn utc_as(ms: i64, format: &[time::format_description::BorrowedFormatItem<'_>]) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
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
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_764_300_000_000), "2025-11-28 03:20:00 UTC");
        assert_eq!(utc_stamp(1_764_300_000_000), "20251128-032000");
    }

    #[test]
    fn clip_keeps_short_text_and_marks_a_cut() {
        assert_eq!(clip("Q4_1", 8), "Q4_1");
        assert_eq!(clip("abcdefgh", 8), "abcdefgh");
        assert_eq!(clip("abcdefghi", 8), "abcdefg…");
        assert_eq!(clip("ééééé", 3).chars().count(), 3);
    }
}
