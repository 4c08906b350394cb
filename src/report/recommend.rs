//! The decision a run exists for: which model to pick. The fastest model (p95 end-to-end
//! latency at the run's first load level) among those that meet the quality bar (mean score
//! ≥ `min_score`) and fit the memory budget (peak RSS), with the reason every other model was
//! not picked. Without scores, the automatic checks stand in: a model whose pass rate is more
//! than [`CHECK_MARGIN`] below the best model's is not picked. The same rule serves the reports
//! and capability routing (`auto:TAG`).

use super::run_summary::{status_str, ModelSummary, RunSummary};
pub use super::run_summary::{Candidate, Criteria, Recommendation, DEFAULT_MIN_SCORE};
use super::{fmt_bytes, fmt_num};
use crate::store::record::ModelStatus;

impl Criteria {
    /// Reads `options.quality.{min_score, memory_budget_bytes}`; the memory budget defaults
    /// to the measured machine's memory.
    pub fn of(summary: &RunSummary) -> Criteria {
        let q = &summary.run.options.quality;
        let machine = summary.run.environment.memory_bytes;
        Criteria {
            min_score: q.min_score.unwrap_or(DEFAULT_MIN_SCORE),
            memory_budget_bytes: q.memory_budget_bytes.or((machine > 0).then_some(machine)),
        }
    }
}

/// Without scores, how far (as a share, 0.10 = 10 points) a model's automatic-check pass rate
/// may fall below the best model's and still be picked: checks are coarse (a few per prompt),
/// so small gaps are noise, but a clearly worse pass rate is the only quality signal there is.
pub const CHECK_MARGIN: f64 = 0.10;

/// Automatic checks a model needs (and the best model needs) before its pass rate can rule it
/// out: a handful of short answers says little, and speed then decides as before.
pub const MIN_CHECKS: u64 = 20;

/// What the rule reads of one model: its summary and its p95 end-to-end latency at the load it
/// is compared at. The reports take every model of one run at the run's first level; routing
/// takes each model from its own newest run, at the first level it answered there.
#[derive(Clone, Copy, Debug)]
pub struct Figures<'a> {
    /// The model as its run summarised it (status, quality, memory).
    pub model: &'a ModelSummary,
    /// p95 end-to-end latency at the compared level, ms; `None` when nothing answered there.
    pub p95_e2el_ms: Option<f64>,
}

/// p95 end-to-end latency of `model` at `level` in `summary`.
fn p95_at(summary: &RunSummary, model: &str, level: Option<&str>) -> Option<f64> {
    summary
        .levels
        .iter()
        .find(|l| l.model == model && Some(l.level.as_str()) == level)
        .and_then(|l| l.latency.e2el.map(|d| d.p95))
}

/// The first level `model` answered at in `summary`, and its figures there.
pub fn figures_of<'a>(summary: &'a RunSummary, model: &'a ModelSummary) -> Figures<'a> {
    let level = summary
        .levels
        .iter()
        .find(|l| l.model == model.model && l.completed > 0)
        .map(|l| l.level.as_str());
    Figures {
        model,
        p95_e2el_ms: p95_at(summary, &model.model, level),
    }
}

/// Picks among the models of `summary` that `include` accepts, compared at the run's first
/// level (the same load for every model).
pub fn recommend(
    summary: &RunSummary,
    criteria: Criteria,
    include: impl Fn(&ModelSummary) -> bool,
) -> Recommendation {
    let models: Vec<&ModelSummary> = summary.models.iter().filter(|m| include(m)).collect();
    let level = summary
        .levels
        .iter()
        .find(|l| models.iter().any(|m| m.model == l.model) && l.completed > 0)
        .map(|l| l.level.clone());
    let figures: Vec<Figures> = models
        .iter()
        .map(|m| Figures {
            model: m,
            p95_e2el_ms: p95_at(summary, &m.model, level.as_deref()),
        })
        .collect();
    decide(&figures, level, criteria)
}

/// The rule itself, over each model's figures; `level` names the compared load in the
/// explanation.
pub fn decide(figures: &[Figures], level: Option<String>, criteria: Criteria) -> Recommendation {
    let models: Vec<&ModelSummary> = figures.iter().map(|f| f.model).collect();
    let quality_applied = models.iter().any(|m| m.quality.score.is_some());
    // The checks' best pass rate among models that could be picked, when nothing is scored.
    let best_checks = (!quality_applied)
        .then(|| {
            models
                .iter()
                .filter(|m| {
                    m.status == ModelStatus::Ok
                        && !crate::catalog::is_shape_alias(&m.model)
                        && m.quality.checks_total >= MIN_CHECKS
                })
                .filter_map(|m| m.quality.pass_rate)
                .fold(None, |best: Option<f64>, r| {
                    Some(best.map_or(r, |b| b.max(r)))
                })
        })
        .flatten();
    let mut candidates: Vec<Candidate> = figures
        .iter()
        .map(|f| {
            let (m, p95) = (f.model, f.p95_e2el_ms);
            let not_picked = if crate::catalog::is_shape_alias(&m.model) {
                Some("shape model (random weights): speed and memory only".to_string())
            } else if m.status != ModelStatus::Ok {
                Some(format!(
                    "{}{}",
                    status_str(m.status),
                    m.error
                        .as_deref()
                        .map_or(String::new(), |e| format!(": {e}"))
                ))
            } else if p95.is_none() {
                Some(format!(
                    "no successful answers at {}",
                    level.as_deref().unwrap_or("any level")
                ))
            } else if let (Some(budget), Some(rss)) =
                (criteria.memory_budget_bytes, m.peak_rss_bytes)
            {
                (rss > budget).then(|| {
                    format!(
                        "needs {} of memory, over the {} budget",
                        fmt_bytes(Some(rss)),
                        fmt_bytes(Some(budget))
                    )
                })
            } else {
                None
            };
            let not_picked = not_picked.or_else(|| {
                if !quality_applied {
                    let (best, rate) = (best_checks?, m.quality.pass_rate?);
                    let enough = m.quality.checks_total >= MIN_CHECKS;
                    return (enough && best - rate > CHECK_MARGIN).then(|| {
                        format!(
                            "passed {:.0}% of the automatic checks, more than {:.0} points below the best model's {:.0}% (no scores: checks stand in)",
                            rate * 100.0,
                            CHECK_MARGIN * 100.0,
                            best * 100.0
                        )
                    });
                }
                match m.quality.score {
                    None => Some("not scored (no judge or human score)".into()),
                    Some(s) if s < criteria.min_score => Some(format!(
                        "mean score {s:.2} is below the bar of {:.1}",
                        criteria.min_score
                    )),
                    Some(_) => None,
                }
            });
            Candidate {
                model: m.model.clone(),
                p95_e2el_ms: p95,
                score: m.quality.score,
                scored_by: m.quality.scored_by.clone(),
                check_pass_rate: m.quality.pass_rate,
                peak_rss_bytes: m.peak_rss_bytes,
                not_picked,
            }
        })
        .collect();
    // Qualified first, fastest first; ties go to the smaller footprint.
    candidates.sort_by(|a, b| {
        (
            a.not_picked.is_some(),
            a.p95_e2el_ms.unwrap_or(f64::INFINITY),
        )
            .partial_cmp(&(
                b.not_picked.is_some(),
                b.p95_e2el_ms.unwrap_or(f64::INFINITY),
            ))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.peak_rss_bytes.cmp(&b.peak_rss_bytes))
    });
    let pick = candidates
        .first()
        .filter(|c| c.not_picked.is_none())
        .map(|c| (c.model.clone(), c.p95_e2el_ms, c.score));
    if let Some((_, fastest, _)) = &pick {
        for c in candidates.iter_mut().skip(1) {
            if c.not_picked.is_none() {
                c.not_picked = Some(format!(
                    "slower: p95 {} ms against {} ms",
                    fmt_num(c.p95_e2el_ms, 0),
                    fmt_num(*fastest, 0)
                ));
            }
        }
    }
    let level_text = level.as_deref().unwrap_or("the first level");
    let budget = criteria
        .memory_budget_bytes
        .map_or("no memory limit".to_string(), |b| {
            format!("a memory budget of {}", fmt_bytes(Some(b)))
        });
    let explanation = match (&pick, quality_applied) {
        (Some((name, p95, Some(score))), true) => format!(
            "Pick {name}: the fastest model (p95 end-to-end {} ms at {level_text}) with a mean \
             score of at least {:.1} ({score:.2}) within {budget}.",
            fmt_num(*p95, 0),
            criteria.min_score
        ),
        (Some((name, p95, _)), _) if best_checks.is_some() => format!(
            "Pick {name}: the fastest model (p95 end-to-end {} ms at {level_text}) within \
             {budget} whose automatic-check pass rate is within {:.0} points of the best \
             ({:.0}%). The checks decided the quality side: no answer has a score, so the bar of \
             {:.1} could not be applied; score the answers with hearth bench --judge MODEL or \
             hearth annotate for a stronger signal.",
            fmt_num(*p95, 0),
            CHECK_MARGIN * 100.0,
            best_checks.unwrap_or(0.0) * 100.0,
            criteria.min_score
        ),
        (Some((name, p95, _)), _) => format!(
            "Pick {name}: the fastest model (p95 end-to-end {} ms at {level_text}) within \
             {budget}. No answer has a quality score, so the quality bar of {:.1} could not be \
             applied, and there are too few automatic checks to tell the models apart (at least \
             {MIN_CHECKS} per model): speed alone decided. Score the answers with hearth bench \
             --judge MODEL or hearth annotate before relying on this pick.",
            fmt_num(*p95, 0),
            criteria.min_score
        ),
        (None, true) => format!(
            "No model qualifies: none meets the quality bar of {:.1} within {budget} at \
             {level_text}. Lower --min-score, raise the budget, or try larger models.",
            criteria.min_score
        ),
        (None, false) => format!(
            "No model qualifies: none answered successfully within {budget} at {level_text}."
        ),
    };
    let explanation = match shape_note(&models) {
        Some(note) => format!("{explanation} {note}"),
        None => explanation,
    };
    Recommendation {
        pick: pick.map(|p| p.0),
        level,
        criteria,
        quality_applied,
        explanation,
        candidates,
    }
}

/// Which real models to download to confirm the quality of the shape models in the run (their
/// speed is measured; their quality cannot be).
fn shape_note(models: &[&ModelSummary]) -> Option<String> {
    let mut real: Vec<&str> = models
        .iter()
        .filter_map(|m| crate::catalog::real_alias_of(&m.model))
        .collect();
    real.dedup();
    if real.is_empty() {
        return None;
    }
    Some(format!(
        "Shape models (random weights) were measured for speed and memory only and are never \
         picked; to confirm quality, download the real model{}: hearth model download {}.",
        if real.len() == 1 { "" } else { "s" },
        real.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::summarize;
    use crate::store::testdata::sample_run;

    /// The sample run's two models, the faster (lower p95 at c=1) first.
    fn fast_and_slow(s: &RunSummary) -> (&'static str, &'static str) {
        let p95 = |m: &str| {
            s.levels
                .iter()
                .find(|l| l.model == m && l.level == "c=1")
                .and_then(|l| l.latency.e2el.map(|d| d.p95))
                .unwrap()
        };
        if p95("smollm2") < p95("qwen2.5-0.5b") {
            ("smollm2", "qwen2.5-0.5b")
        } else {
            ("qwen2.5-0.5b", "smollm2")
        }
    }

    #[test]
    fn the_fastest_model_meeting_the_bar_and_budget_is_picked() {
        let mut s = summarize(&sample_run());
        let (fast, slow) = fast_and_slow(&s);
        let set = |s: &mut RunSummary, m: &str, score: f64, rss: u64| {
            let m = s.models.iter_mut().find(|x| x.model == m).unwrap();
            m.quality.score = Some(score);
            m.quality.scored_by = Some("judge".into());
            m.peak_rss_bytes = Some(rss);
        };
        let criteria = Criteria {
            min_score: 3.5,
            memory_budget_bytes: Some(1 << 30),
        };
        // Both good and small: the faster wins, the slower is told why.
        set(&mut s, fast, 4.0, 100 << 20);
        set(&mut s, slow, 4.5, 100 << 20);
        let r = recommend(&s, criteria, |_| true);
        assert_eq!(r.pick.as_deref(), Some(fast), "{r:?}");
        assert!(r.quality_applied);
        let why = |r: &Recommendation, m: &str| {
            r.candidates
                .iter()
                .find(|c| c.model == m)
                .unwrap()
                .not_picked
                .clone()
                .unwrap_or_default()
        };
        assert!(why(&r, slow).starts_with("slower"), "{r:?}");
        assert!(why(&r, "broken-model").starts_with("failed"), "{r:?}");
        // The faster one below the bar: the slower one is picked.
        set(&mut s, fast, 3.0, 100 << 20);
        let r = recommend(&s, criteria, |_| true);
        assert_eq!(r.pick.as_deref(), Some(slow));
        assert!(why(&r, fast).contains("below the bar"), "{r:?}");
        // The slower one over the memory budget: nobody qualifies, and it says so.
        set(&mut s, slow, 4.5, 2 << 30);
        let r = recommend(&s, criteria, |_| true);
        assert_eq!(r.pick, None);
        assert!(why(&r, slow).contains("over the"), "{r:?}");
        assert!(r.explanation.starts_with("No model qualifies"));
        // A filter (routing by tag) only considers what it lets through.
        let r = recommend(&s, criteria, |m| m.model == fast);
        assert_eq!(r.candidates.len(), 1);
    }

    #[test]
    fn without_scores_a_clearly_worse_check_pass_rate_is_not_picked() {
        let mut s = summarize(&sample_run());
        let (fast, slow) = fast_and_slow(&s);
        let checks = |s: &mut RunSummary, m: &str, rate: f64, total: u64| {
            let m = s.models.iter_mut().find(|x| x.model == m).unwrap();
            m.quality.score = None;
            m.quality.pass_rate = Some(rate);
            m.quality.checks_total = total;
        };
        let criteria = Criteria {
            min_score: 3.5,
            memory_budget_bytes: None,
        };
        // The faster model passed 27 % of the checks, the slower 42 %: the slower is picked,
        // and the text says the checks decided.
        checks(&mut s, fast, 0.27, 60);
        checks(&mut s, slow, 0.42, 60);
        let r = recommend(&s, criteria, |_| true);
        assert_eq!(r.pick.as_deref(), Some(slow), "{r:?}");
        assert!(!r.quality_applied);
        assert!(
            r.explanation.contains("checks decided"),
            "{}",
            r.explanation
        );
        let fast_reason = r
            .candidates
            .iter()
            .find(|c| c.model == fast)
            .and_then(|c| c.not_picked.clone())
            .unwrap();
        assert!(
            fast_reason.contains("27%") && fast_reason.contains("42%"),
            "{fast_reason}"
        );
        // Within the margin, speed decides again.
        checks(&mut s, fast, 0.38, 60);
        let r = recommend(&s, criteria, |_| true);
        assert_eq!(r.pick.as_deref(), Some(fast), "{r:?}");
        // Too few checks to tell (a handful of short answers): speed decides.
        checks(&mut s, fast, 0.0, 4);
        checks(&mut s, slow, 1.0, 4);
        let r = recommend(&s, criteria, |_| true);
        assert_eq!(r.pick.as_deref(), Some(fast), "{r:?}");
    }
}

#[cfg(test)]
mod shape_model_tests {
    use super::*;
    use crate::report::{sections, summarize, terminal, Format};
    use crate::store::testdata::sample_run;

    /// The sample run with its second model renamed as the shape twin of `qwen2.5-0.5b`.
    fn with_shape_model() -> crate::store::record::RunData {
        let mut data = sample_run();
        let rename = |m: &mut String| {
            if m == "qwen2.5-0.5b" {
                *m = "qwen2.5-0.5b~shape".into();
            }
        };
        data.models.iter_mut().for_each(|m| rename(&mut m.model));
        data.levels.iter_mut().for_each(|l| rename(&mut l.model));
        data.requests.iter_mut().for_each(|r| rename(&mut r.model));
        data
    }

    #[test]
    fn shape_models_are_never_scored_or_picked_and_the_report_says_so() {
        let data = with_shape_model();
        assert!(crate::eval::judge::scorable(&data)
            .iter()
            .all(|r| r.model != "qwen2.5-0.5b~shape"));
        let s = summarize(&data);
        let shape = s
            .models
            .iter()
            .find(|m| m.model == "qwen2.5-0.5b~shape")
            .unwrap();
        assert_eq!(shape.quality.checks_total, 0);
        let criteria = Criteria {
            min_score: 3.0,
            memory_budget_bytes: None,
        };
        // Even when it is the only model that answered, it is not picked.
        let r = recommend(&s, criteria, |m| m.model == "qwen2.5-0.5b~shape");
        assert_eq!(r.pick, None, "{r:?}");
        assert!(r.candidates[0]
            .not_picked
            .as_deref()
            .unwrap()
            .contains("random weights"));
        assert!(
            r.explanation
                .contains("hearth model download qwen2.5-0.5b."),
            "{}",
            r.explanation
        );
        let table = terminal::terminal_table(&s, terminal::Width::Wide);
        assert!(table.contains(sections::RANDOM_WEIGHTS), "{table}");
        assert!(table.contains("SPEED ONLY: qwen2.5-0.5b~shape"), "{table}");
        for format in [Format::Markdown, Format::Html, Format::Json] {
            let text = crate::report::render(&data, format).unwrap();
            assert!(text.contains("SPEED ONLY"), "{format:?}");
            assert!(
                text.contains("hearth model download qwen2.5-0.5b"),
                "{format:?}"
            );
        }
        let csv = crate::report::render(&data, Format::Csv).unwrap();
        assert!(
            csv.contains("qwen2.5-0.5b~shape,random (speed only)"),
            "{csv}"
        );
        let html = crate::report::render(&data, Format::Html).unwrap();
        assert!(html.contains(sections::RANDOM_WEIGHTS));
    }
}
