//! Capability routing: `model: "auto:TAG"` (or plain `"auto"`, the `chat` task) names a task,
//! not a model. The router picks, among the catalog models tagged TAG that can be served
//! here, the one the stored benchmark results say is fastest (p95 end-to-end latency) while
//! meeting the quality bar and the memory budget: the same rule as the reports'
//! recommendation, applied to each candidate's newest successful stored run. With no stored
//! results it falls back to the smallest tagged model, and says so.
//!
//! Two steps: the evidence (each candidate's newest run in which it answered, from the store)
//! and the decision over each candidate's own figures (`report::recommend::decide`, the rule the
//! reports use). No run summary is spliced together: each model is compared at the first level
//! it answered in its own run.

mod cache;

pub(super) use cache::AutoRouteCache;

use std::rc::Rc;

use serde::Serialize;

use crate::catalog::{Catalog, CatalogEntry};
use crate::report::recommend::{decide as decide_over, figures_of, Criteria, DEFAULT_MIN_SCORE};
use crate::report::{summarize, ModelSummary, RunSummary};
use crate::store::record::ModelStatus;
use crate::store::{Store, StoreError};

/// The tag plain `auto` stands for.
pub const DEFAULT_TAG: &str = "chat";

/// Why a route could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No servable model carries the tag.
    #[error("no model tagged `{0}` can be served here (see `hearth model list --filter tag={0}`)")]
    NoCandidates(String),
    /// The run history could not be read.
    #[error("cannot read the run history for routing: {0}")]
    Store(#[from] StoreError),
}

/// The tag of `auto:TAG` / `auto`, or `None` when `model` names a model.
pub fn route_tag(model: &str) -> Option<String> {
    match model.trim() {
        "auto" => Some(DEFAULT_TAG.to_string()),
        m => m
            .strip_prefix("auto:")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()),
    }
}

/// One candidate as the router saw it.
#[derive(Clone, Debug, Serialize)]
pub struct RouteCandidate {
    /// The model.
    pub model: String,
    /// The stored run its figures come from, when there is one.
    pub run: Option<String>,
    /// p95 end-to-end latency at that run's first level, ms.
    pub p95_e2el_ms: Option<f64>,
    /// Mean score (1–5).
    pub score: Option<f64>,
    /// Peak RSS, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Why it was not picked; `None` for the pick.
    pub not_picked: Option<String>,
}

/// What the router decided and why.
#[derive(Clone, Debug, Serialize)]
pub struct RouteDecision {
    /// The tag asked for.
    pub tag: String,
    /// The model that answers.
    pub model: String,
    /// False when no stored result covered any candidate (the smallest model was taken).
    pub from_results: bool,
    /// One sentence.
    pub reason: String,
    /// Every candidate.
    pub candidates: Vec<RouteCandidate>,
}

impl RouteDecision {
    /// The reason as an HTTP header value (`x-hearth-route`): printable ASCII only.
    pub fn header_value(&self) -> String {
        let text = format!("{}: {}", self.model, self.reason);
        text.chars()
            .map(|c| match c {
                '≥' => ">=".to_string(),
                '–' | '—' => "-".to_string(),
                '×' => "x".to_string(),
                c if c.is_ascii() && !c.is_ascii_control() => c.to_string(),
                _ => "?".to_string(),
            })
            .collect()
    }
}

/// Decides which model answers for `tag`, among the entries of `catalog` that carry it and
/// that `servable` accepts (cached, local path or upstream), from the runs in `store`.
pub fn decide(
    catalog: &Catalog,
    servable: impl Fn(&CatalogEntry) -> bool,
    store: &mut Store,
    tag: &str,
    criteria: Criteria,
) -> Result<RouteDecision, RouteError> {
    let tagged: Vec<&CatalogEntry> = catalog
        .entries()
        .iter()
        .filter(|e| e.capabilities.iter().any(|c| c.eq_ignore_ascii_case(tag)) && servable(e))
        // A shape model's answers are noise: never a route, whatever its tags and speed.
        .filter(|e| !e.is_shape_model())
        .collect();
    if tagged.is_empty() {
        return Err(RouteError::NoCandidates(tag.to_string()));
    }
    let evidence = newest_runs(store, &tagged)?;
    let run_of = |m: &str| {
        evidence
            .iter()
            .find(|e| e.model().model == m)
            .map(|e| e.run_id.clone())
    };
    if !evidence.is_empty() {
        let figures: Vec<_> = evidence
            .iter()
            .map(|e| figures_of(&e.summary, e.model()))
            .collect();
        let r = decide_over(
            &figures,
            Some("each model's first level in its newest run".into()),
            criteria,
        );
        let mut candidates: Vec<RouteCandidate> = r
            .candidates
            .iter()
            .map(|c| RouteCandidate {
                model: c.model.clone(),
                run: run_of(&c.model),
                p95_e2el_ms: c.p95_e2el_ms,
                score: c.score,
                peak_rss_bytes: c.peak_rss_bytes,
                not_picked: c.not_picked.clone(),
            })
            .collect();
        for e in &tagged {
            if !candidates.iter().any(|c| c.model == e.alias) {
                candidates.push(RouteCandidate {
                    model: e.alias.clone(),
                    run: None,
                    p95_e2el_ms: None,
                    score: None,
                    peak_rss_bytes: None,
                    not_picked: Some("no stored benchmark result".into()),
                });
            }
        }
        if let Some(pick) = r.pick {
            return Ok(RouteDecision {
                tag: tag.to_string(),
                reason: format!(
                    "stored results (run {}): {}",
                    run_of(&pick).unwrap_or_default(),
                    r.explanation
                ),
                model: pick,
                from_results: true,
                candidates,
            });
        }
        // Results exist but nothing qualifies: still answer, with the fastest measured model,
        // and say that the bar was not met.
        if let Some(first) = candidates.iter().find(|c| c.p95_e2el_ms.is_some()) {
            return Ok(RouteDecision {
                tag: tag.to_string(),
                model: first.model.clone(),
                from_results: true,
                reason: format!(
                    "no tagged model meets the bar in the stored results ({}); answering with the fastest measured one",
                    r.explanation
                ),
                candidates,
            });
        }
    }
    let smallest = tagged
        .iter()
        .min_by(|a, b| {
            a.size_bytes()
                .unwrap_or(u64::MAX)
                .cmp(&b.size_bytes().unwrap_or(u64::MAX))
                .then(a.alias.cmp(&b.alias))
        })
        .expect("not empty");
    Ok(RouteDecision {
        tag: tag.to_string(),
        model: smallest.alias.clone(),
        from_results: false,
        reason: format!(
            "no stored benchmark results for models tagged `{tag}`: fell back to the smallest, {} (run `hearth bench --models ...` to route by measurement)",
            smallest.alias
        ),
        candidates: tagged
            .iter()
            .map(|e| RouteCandidate {
                model: e.alias.clone(),
                run: None,
                p95_e2el_ms: None,
                score: None,
                peak_rss_bytes: None,
                not_picked: (e.alias != smallest.alias).then(|| "larger".to_string()),
            })
            .collect(),
    })
}

/// One candidate's evidence: its newest run in which it answered, summarised (shared by the
/// candidates that run holds).
struct Evidence {
    run_id: String,
    summary: Rc<RunSummary>,
    /// The candidate's index in `summary.models`.
    model: usize,
}

impl Evidence {
    fn model(&self) -> &ModelSummary {
        &self.summary.models[self.model]
    }
}

/// Each of `tagged`'s newest successful run, newest runs first, stopping once all are found.
fn newest_runs(store: &mut Store, tagged: &[&CatalogEntry]) -> Result<Vec<Evidence>, RouteError> {
    let mut found: Vec<Evidence> = Vec::new();
    for listing in store.list_runs()? {
        let wanted: Vec<&str> = listing
            .models
            .iter()
            .map(String::as_str)
            .filter(|m| tagged.iter().any(|e| e.alias == *m))
            .filter(|m| !found.iter().any(|f| f.model().model == *m))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let summary = Rc::new(summarize(&store.load_run(&listing.run.id)?));
        for name in wanted {
            if let Some(model) = summary
                .models
                .iter()
                .position(|m| m.model == name && m.status == ModelStatus::Ok)
            {
                found.push(Evidence {
                    run_id: listing.run.id.clone(),
                    summary: Rc::clone(&summary),
                    model,
                });
            }
        }
        if found.len() == tagged.len() {
            break;
        }
    }
    Ok(found)
}

/// The routing criteria when nothing else is said: the default bar, and a memory budget.
pub fn default_criteria(memory_budget_bytes: u64) -> Criteria {
    Criteria {
        min_score: DEFAULT_MIN_SCORE,
        memory_budget_bytes: Some(memory_budget_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::record::RunData;
    use crate::store::testdata::sample_run;

    fn stored(data: &RunData, dir: &std::path::Path) -> Store {
        let mut store = Store::open_sqlite(&dir.join("history.db")).unwrap();
        store.insert_run(&data.run).unwrap();
        for m in &data.models {
            store.upsert_model(&data.run.id, m).unwrap();
        }
        for l in &data.levels {
            store.upsert_level(&data.run.id, l).unwrap();
        }
        store.insert_requests(&data.run.id, &data.requests).unwrap();
        store
    }

    fn catalog() -> Catalog {
        let mut c = Catalog::builtin();
        c.overlay(
            ["smollm2", "qwen2.5-0.5b", "broken-model", "unmeasured"]
                .iter()
                .map(|a| CatalogEntry {
                    alias: a.to_string(),
                    capabilities: vec!["notes".into()],
                    size_mb: Some(if *a == "unmeasured" { 10.0 } else { 500.0 }),
                    ..CatalogEntry::default()
                })
                .collect(),
        );
        c
    }

    #[test]
    fn routes_by_stored_results_and_falls_back_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample_run();
        let summary = summarize(&data);
        let p95 = |m: &str| {
            summary
                .levels
                .iter()
                .find(|l| l.model == m && l.level == "c=1")
                .and_then(|l| l.latency.e2el.map(|d| d.p95))
                .unwrap()
        };
        let fastest = if p95("smollm2") < p95("qwen2.5-0.5b") {
            "smollm2"
        } else {
            "qwen2.5-0.5b"
        };
        let catalog = catalog();
        let criteria = default_criteria(64 << 30);

        // No runs yet: the smallest tagged model, and the reason says so.
        let mut empty = Store::open_sqlite(&dir.path().join("empty.db")).unwrap();
        let d = decide(&catalog, |_| true, &mut empty, "notes", criteria).unwrap();
        assert_eq!(d.model, "unmeasured");
        assert!(!d.from_results);
        assert!(
            d.reason.contains("no stored benchmark results"),
            "{}",
            d.reason
        );

        // With the run: the fastest measured model; the failed one and the unmeasured one
        // are listed with their reasons.
        let mut store = stored(&data, dir.path());
        let d = decide(&catalog, |_| true, &mut store, "notes", criteria).unwrap();
        assert_eq!(d.model, fastest, "{d:?}");
        assert!(d.from_results);
        let why = |m: &str| {
            d.candidates
                .iter()
                .find(|c| c.model == m)
                .and_then(|c| c.not_picked.clone())
                .unwrap_or_default()
        };
        assert_eq!(why("unmeasured"), "no stored benchmark result");
        assert!(d.header_value().is_ascii() && d.header_value().starts_with(fastest));
        // Only servable models are candidates; an unknown tag is an error.
        let d = decide(
            &catalog,
            |e| e.alias != fastest,
            &mut store,
            "notes",
            criteria,
        )
        .unwrap();
        assert_ne!(d.model, fastest);
        assert!(decide(&catalog, |_| true, &mut store, "nope", criteria).is_err());
    }

    #[test]
    fn shape_models_are_never_routed_to() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = catalog();
        // The smallest model tagged `notes`, and a shape model: the fallback would pick it.
        catalog.overlay(vec![CatalogEntry {
            alias: "tiny~shape".into(),
            capabilities: vec!["notes".into(), crate::catalog::SHAPE_TAG.into()],
            size_mb: Some(1.0),
            ..CatalogEntry::default()
        }]);
        let mut empty = Store::open_sqlite(&dir.path().join("empty.db")).unwrap();
        let d = decide(
            &catalog,
            |_| true,
            &mut empty,
            "notes",
            default_criteria(64 << 30),
        )
        .unwrap();
        assert_eq!(d.model, "unmeasured");
        assert!(d.candidates.iter().all(|c| c.model != "tiny~shape"));
        let only_shape = {
            let mut c = Catalog::builtin();
            c.overlay(vec![CatalogEntry {
                alias: "tiny~shape".into(),
                capabilities: vec!["shapes-only".into()],
                ..CatalogEntry::default()
            }]);
            c
        };
        let err = decide(
            &only_shape,
            |_| true,
            &mut empty,
            "shapes-only",
            default_criteria(64 << 30),
        );
        assert!(err.is_err());
    }

    /// #32's bug: each candidate's newest run may have measured another level. The router once
    /// spliced the runs into one summary and compared at the first run's first level, so a
    /// model measured only at `c=4` was dropped as "no successful answers at c=1".
    #[test]
    fn candidates_from_runs_of_different_levels_are_all_compared() {
        use crate::store::testdata::{level, model, request, run_record};
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open_sqlite(&dir.path().join("history.db")).unwrap();
        // The older run: "slow" at c=1; the newer: "fast" at c=4 only.
        for (id, started, name, concurrency, e2e) in [
            ("run-old", 1, "slow", 1, 900.0),
            ("run-new", 2, "fast", 4, 300.0),
        ] {
            let mut run = run_record(id);
            run.started_unix_ms = started;
            store.insert_run(&run).unwrap();
            store.upsert_model(id, &model(name)).unwrap();
            store.upsert_level(id, &level(name, concurrency)).unwrap();
            let label = format!("c={concurrency}");
            let requests: Vec<_> = (0..4)
                .map(|i| {
                    request(
                        name,
                        &label,
                        1,
                        i,
                        f64::from(i) * 1e4,
                        e2e / 5.0,
                        e2e / 45.0,
                        10,
                    )
                })
                .collect();
            store.insert_requests(id, &requests).unwrap();
        }
        let mut catalog = Catalog::builtin();
        catalog.overlay(
            ["slow", "fast"]
                .iter()
                .map(|a| CatalogEntry {
                    alias: a.to_string(),
                    capabilities: vec!["notes".into()],
                    ..CatalogEntry::default()
                })
                .collect(),
        );
        let criteria = Criteria {
            min_score: 1.0,
            memory_budget_bytes: None,
        };
        let d = decide(&catalog, |_| true, &mut store, "notes", criteria).unwrap();
        assert!(d.from_results, "{d:?}");
        for c in &d.candidates {
            assert!(c.p95_e2el_ms.is_some(), "{c:?}");
        }
        let fast = d.candidates.iter().find(|c| c.model == "fast").unwrap();
        assert_eq!(fast.run.as_deref(), Some("run-new"));
        let slow = d.candidates.iter().find(|c| c.model == "slow").unwrap();
        assert_eq!(slow.run.as_deref(), Some("run-old"));
        assert!(
            fast.p95_e2el_ms < slow.p95_e2el_ms,
            "{:?} vs {:?}",
            fast.p95_e2el_ms,
            slow.p95_e2el_ms
        );
    }

    #[test]
    fn auto_names_a_tag() {
        assert_eq!(route_tag("auto").as_deref(), Some("chat"));
        assert_eq!(route_tag("auto:summarize").as_deref(), Some("summarize"));
        assert_eq!(route_tag("auto:"), None);
        assert_eq!(route_tag("smollm2-135m"), None);
    }
}
