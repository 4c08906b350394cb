//! The load sections: where each model saturates (a sweep) and speed against context depth.

use super::{swatch, Col};
use crate::report::format::fmt_num;
use crate::report::run_summary::{LevelSummary, RunSummary, SweepPoint, SweepSummary};
use crate::report::table::{Cell, Mark, Table};

/// Where each model saturates (a sweep's answer), one row per model; `None` for runs that did
/// not judge open-loop levels for over-saturation.
pub fn sweep(s: &RunSummary) -> Option<Table> {
    if s.sweeps.is_empty() {
        return None;
    }
    let rate = |p: &SweepPoint| {
        format!(
            "{} ({} req/s done)",
            p.level,
            fmt_num(p.achieved, 2).trim_end_matches(".00")
        )
    };
    let with_slo = s.levels.iter().any(|l| l.slo.is_some());
    let columns: [Col<&SweepSummary>; 8] = [
        Col::text("model", |w: &&SweepSummary| swatch(s, &w.model)).key(),
        Col::figure("one at a time req/s", |w: &&SweepSummary| {
            fmt_num(w.synchronous_rate, 2)
        })
        .key(),
        Col::figure("most req/s (level)", |w: &&SweepSummary| {
            w.maximum_rate.as_ref().map_or("—".into(), |(r, at)| {
                if w.scales_with_concurrency == Some(false) {
                    format!("{r:.2} ({at}): does not scale, about one request at a time; rates placed around that capacity")
                } else {
                    format!("{r:.2} ({at})")
                }
            })
        })
        .key(),
        Col::figure("knee (most req/s per latency)", move |w: &&SweepSummary| {
            w.knee.as_ref().map_or("none".into(), rate)
        })
        .key(),
        Col::figure("e2e p50 at the knee ms", |w: &&SweepSummary| {
            fmt_num(w.knee.as_ref().and_then(|k| k.e2e_p50_ms), 0)
        }),
        Col::figure("highest rate kept up with", move |w: &&SweepSummary| {
            w.max_sustainable.as_ref().map_or("none".into(), rate)
        })
        .key(),
        Col::text("over-saturated at", |w: &&SweepSummary| {
            if w.over_saturated.is_empty() {
                Cell::new("none")
            } else {
                let levels: Vec<&str> = w.over_saturated.iter().map(|p| p.level.as_str()).collect();
                Cell::marked(levels.join(", "), Mark::Error)
            }
        }),
        Col::figure("highest rate meeting the SLO", move |w: &&SweepSummary| {
            if with_slo {
                w.max_rate_under_slo.as_ref().map_or("none".into(), rate)
            } else {
                "— (no --slo)".into()
            }
        })
        .key(),
    ];
    Some(Table::build(&columns, &s.sweeps, |_| false))
}

/// Speed against context depth (`--depth`), one row per model and level measured at a depth;
/// `None` when no level was.
pub fn depth(s: &RunSummary) -> Option<Table> {
    let columns: [Col<&LevelSummary>; 8] = [
        Col::text("model", |l: &&LevelSummary| swatch(s, &l.model)).key(),
        Col::text("level", |l: &&LevelSummary| l.level.clone()).key(),
        Col::figure("depth tokens", |l: &&LevelSummary| {
            l.depth.unwrap_or(0).to_string()
        })
        .key(),
        Col::figure("prompt tokens (mean)", |l: &&LevelSummary| {
            fmt_num(
                (l.completed > 0).then(|| l.total_input_tokens as f64 / l.completed as f64),
                0,
            )
        }),
        Col::figure("TTFT p50 ms", |l: &&LevelSummary| {
            fmt_num(l.latency.ttft.map(|d| d.median), 1)
        })
        .key(),
        Col::figure("prefill tok/s (p50)", |l: &&LevelSummary| {
            fmt_num(l.per_request_prefill_throughput.map(|d| d.median), 0)
        })
        .key(),
        Col::figure("decode tok/s per request (p50)", |l: &&LevelSummary| {
            fmt_num(l.per_request_decode_throughput.map(|d| d.median), 1)
        })
        .key(),
        Col::figure("cache-warm prompts", |l: &&LevelSummary| {
            let c = &l.prompt_cache;
            format!("{} of {}", c.warm, c.warm + c.cold)
        }),
    ];
    let measured = s.levels.iter().filter(|l| l.depth.is_some());
    let t = Table::build(&columns, measured, |_| false);
    (!t.rows.is_empty()).then_some(t)
}

/// How to read the depth table.
pub const DEPTH_NOTE: &str = "Each prompt was put behind the level's depth in tokens of filler \
context (counted with the server's tokenizer, distinct per request unless the prompt cache is \
warm). Prefill tok/s = prompt tokens / TTFT per request (queueing included); decode tok/s = \
tokens after the first / time after the first.";

/// One line saying how to read the sweep table.
pub const SWEEP_NOTE: &str =
    "A sweep measures one request at a time, then many at once (the most the server \
can do), then open-loop arrival rates between the two and one step past the top. A level is \
over-saturated when its queue of waiting requests and the age of the oldest grew for a whole \
window: it was stopped early, and the server cannot sustain that rate here. The knee is the \
level with the most requests/s per second of median latency: past it, latency grows faster \
than throughput.";
