//! How a figure reads in every report: the one place that decides decimals, units, the dash
//! for "no value" and the printed time, so the renderers (and the CLI) cannot drift apart.

/// A number with fixed decimals, or `—` when there is none: a missing figure is shown as
/// missing, never as zero.
pub fn fmt_num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "—".to_string(),
    }
}

/// Bytes as people read them (`crate::text::human_bytes`), a hundredth of a GiB where reports
/// compare gigabyte-sized figures (`23.54 GiB`), or `—`.
pub fn fmt_bytes(v: Option<u64>) -> String {
    match v {
        None => "—".to_string(),
        Some(b) if b >= 1 << 30 => format!("{:.2}", bytesize::ByteSize(b).display().iec()),
        Some(b) => crate::text::human_bytes(b),
    }
}

/// A share 0..1 as a percentage with one decimal (noise, goodput), or `—`.
pub(crate) fn fmt_pct(v: Option<f64>) -> String {
    v.map_or("—".to_string(), |x| format!("{:.1}%", x * 100.0))
}

/// A share 0..1 as a whole percentage (`83%`: checks passed, facet coverage), or `—` when there
/// is nothing to rate.
pub fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "—".into(), |s| format!("{:.0}%", s * 100.0))
}

/// Civil UTC date and time of a Unix millisecond instant (Howard Hinnant's days-to-civil), as
/// every report and the CLI print times: `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The run's devices and GPU backends in one line, as the environment tables print them.
pub(crate) fn devices_text(e: &crate::store::record::Environment) -> String {
    let backends = if e.gpu_backends.is_empty() {
        "CPU-only build".to_string()
    } else {
        format!("GPU backends: {}", e.gpu_backends.join(", "))
    };
    if e.devices.is_empty() {
        backends
    } else {
        format!("{}; {backends}", e.devices.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_764_300_000_000), "2025-11-28 03:20:00 UTC");
    }
}
