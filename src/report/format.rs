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

pub use crate::text::utc;

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
