//! The quality section: who scored, the scores and checks per level, and the failed checks.

use super::{checks_label, level_columns, score_label, Col, RANDOM_WEIGHTS};
use crate::report::format::percent;
use crate::report::run_summary::{LevelSummary, RunSummary};
use crate::report::table::Table;
use crate::store::record::ScoreSource;

/// One line per source of scores: who scored, with what rubric, how many answers; the reader
/// weighs the scores by it.
pub fn scorer_lines(s: &RunSummary) -> Vec<String> {
    s.scorers
        .iter()
        .map(|x| {
            let what = match x.source {
                ScoreSource::Judge => format!(
                    "judge {} (rubric {})",
                    x.scorer,
                    x.rubric_version.as_deref().unwrap_or("?")
                ),
                ScoreSource::Human => format!("people ({})", x.scorer),
            };
            let unscored = if x.unscored > 0 {
                format!(", {} left unscored (unreadable verdict)", x.unscored)
            } else {
                String::new()
            };
            format!("{what}: {} answers scored{unscored}", x.scored)
        })
        .collect()
}

/// A quality figure of a real model's level; a shape model's random weights have none.
fn real<'a>(f: impl Fn(&LevelSummary) -> String + 'a) -> impl Fn(&&LevelSummary) -> String + 'a {
    move |l: &&LevelSummary| {
        if crate::catalog::is_shape_alias(&l.model) {
            RANDOM_WEIGHTS.into()
        } else {
            f(l)
        }
    }
}

/// A mean score with how many answers it rests on and how many were left unscored.
fn mean_of(mean: Option<f64>, n: u64, unscored: u64) -> String {
    match mean {
        Some(m) if unscored > 0 => format!("{m:.2} ({n}; {unscored} unscored)"),
        Some(m) => format!("{m:.2} ({n})"),
        None if unscored > 0 => format!("— ({unscored} unscored)"),
        None => "—".into(),
    }
}

/// Scores and automatic checks per model and level.
pub fn quality(levels: &[LevelSummary]) -> Table {
    let mut columns = Vec::from(level_columns());
    columns.extend([
        Col::text("score (1–5)", real(score_label)),
        Col::text(
            "judge",
            real(|l| {
                let q = &l.quality;
                mean_of(q.judge_score, q.judge_scored, q.judge_unscored)
            }),
        ),
        Col::text(
            "human",
            real(|l| mean_of(l.quality.human_score, l.quality.human_scored, 0)),
        ),
        Col::text("checks passed", real(checks_label)),
        Col::text("pass rate", real(|l| percent(l.quality.pass_rate))),
        Col::text(
            "facet coverage",
            real(|l| percent(l.quality.facet_coverage)),
        ),
    ]);
    Table::build(&columns, levels, |_| false)
}

/// Every failed check, with the reason a person reads; `None` when every check passed.
pub fn check_failures(levels: &[LevelSummary]) -> Option<Table> {
    use crate::report::quality::CheckFailure;
    type Failure<'a> = (&'a LevelSummary, &'a CheckFailure);
    let columns: [Col<Failure>; 6] = [
        Col::text("model", |(l, _): &Failure| l.model.clone()),
        Col::text("level", |(l, _): &Failure| l.level.clone()),
        Col::text("prompt", |(_, f): &Failure| f.prompt_id.clone()),
        Col::text("check", |(_, f): &Failure| f.check.clone()),
        Col::text("answers", |(_, f): &Failure| f.count.to_string()),
        Col::text("reason", |(_, f): &Failure| f.reason.clone()),
    ];
    let failures = levels
        .iter()
        .flat_map(|l| l.quality.failures.iter().map(move |f| (l, f)));
    let mut t = Table::build(&columns, failures, |_| false);
    t.intro = Some("Failed checks, with the reason for the first answer that failed each:".into());
    (!t.rows.is_empty()).then_some(t)
}
