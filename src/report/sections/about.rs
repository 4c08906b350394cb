//! What the run was: the models, the requests that failed, the machine, and the pick.

use super::Col;
use crate::report::format::{devices_text, fmt_bytes, fmt_num, percent, utc};
use crate::report::run_summary::{
    status_str, Candidate, FailureReason, LevelSummary, ModelSummary, Recommendation, RunSummary,
};
use crate::report::table::{Align, Cell, Mark, Row, Table};

/// What each model is and how it fared: failed models are listed with their error.
pub fn models(s: &RunSummary) -> Table {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    let columns: [Col<&ModelSummary>; 10] = [
        Col::text("model", |m: &&ModelSummary| m.model.clone()),
        Col::text("status", |m: &&ModelSummary| {
            Cell::marked(status_str(m.status), Mark::Status(m.status))
        }),
        Col::text("backend", |m: &&ModelSummary| m.backend.clone()),
        Col::text("endpoint", |m: &&ModelSummary| m.endpoint.clone()),
        Col::text("quantisation", move |m: &&ModelSummary| {
            or_dash(&m.quantization)
        }),
        Col::figure("size", |m: &&ModelSummary| fmt_bytes(m.disk_bytes)),
        Col::figure("cold load ms", |m: &&ModelSummary| fmt_num(m.load_ms, 0)),
        Col::text("licence", move |m: &&ModelSummary| or_dash(&m.license)),
        Col::text("tags", |m: &&ModelSummary| m.tags.join(", ")),
        Col::text("error", |m: &&ModelSummary| {
            Cell::marked(m.error.clone().unwrap_or_default(), Mark::Error)
        }),
    ];
    Table::build(&columns, &s.models, |_| false)
}

/// Distinct failure messages per level; `None` when no counted request failed.
pub fn failed_requests(s: &RunSummary) -> Option<Table> {
    type Failure<'a> = (&'a LevelSummary, &'a FailureReason);
    let columns: [Col<Failure>; 4] = [
        Col::text("model", |(l, _): &Failure| l.model.clone()),
        Col::text("level", |(l, _): &Failure| l.level.clone()),
        Col::figure("count", |(_, f): &Failure| f.count.to_string()),
        Col::text("error", |(_, f): &Failure| {
            Cell::marked(f.error.clone(), Mark::Error)
        }),
    ];
    let failures = s
        .levels
        .iter()
        .flat_map(|l| l.failure_reasons.iter().map(move |f| (l, f)));
    let t = Table::build(&columns, failures, |_| false);
    (!t.rows.is_empty()).then_some(t)
}

/// The machine and software the run measured, one fact per row.
pub fn environment(s: &RunSummary) -> Table {
    let (run, e) = (&s.run, &s.run.environment);
    let mut t = Table::new(&[("", Align::Left), ("", Align::Left)]);
    for (k, v) in [
        ("host", e.hostname.clone()),
        ("OS / kernel", format!("{} / {}", e.os, e.kernel)),
        (
            "CPU",
            format!(
                "{} — {} logical, {} physical",
                e.cpu_model, e.logical_cpus, e.physical_cores
            ),
        ),
        ("CPU features", e.cpu_features.join(" ")),
        ("memory", fmt_bytes(Some(e.memory_bytes))),
        ("engine threads", e.threads.to_string()),
        ("hearth", e.hearth_version.clone()),
        ("llama.cpp", e.llama_cpp_version.clone()),
        ("git", e.git_commit.clone().unwrap_or_else(|| "—".into())),
        ("devices", devices_text(e)),
        ("run finished", run.finished_unix_ms.map_or("—".into(), utc)),
    ] {
        t.push(Row::new(vec![Cell::marked(k, Mark::Key), Cell::new(v)]));
    }
    t
}

/// Every model the recommendation considered, the pick first, with why each other was not
/// picked.
pub fn recommendation(r: &Recommendation) -> Table {
    let columns: [Col<&Candidate>; 6] = [
        Col::text("model", |c: &&Candidate| c.model.clone()),
        Col::text("p95 e2e ms", |c: &&Candidate| fmt_num(c.p95_e2el_ms, 0)),
        Col::text("score", |c: &&Candidate| match (c.score, &c.scored_by) {
            (Some(s), Some(by)) => format!("{s:.2} ({by})"),
            _ => "—".into(),
        }),
        Col::text("checks passed", |c: &&Candidate| percent(c.check_pass_rate)),
        Col::text("peak RSS", |c: &&Candidate| fmt_bytes(c.peak_rss_bytes)),
        Col::text("verdict", |c: &&Candidate| {
            c.not_picked.clone().unwrap_or_else(|| "picked".into())
        }),
    ];
    Table::build(&columns, &r.candidates, |_| false)
}
