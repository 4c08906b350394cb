//! Capability routing: `model: "auto:TAG"` (or plain `"auto"`, the `chat` task) names a task,
//! not a model. The router picks, among the catalog models tagged TAG that can be served
//! here, the one the stored benchmark results say is fastest (p95 end-to-end latency) while
//! meeting the quality bar and the memory budget: the same rule as the reports'
//! recommendation, applied to each candidate's newest successful stored run. With no stored
//! results it falls back to the smallest tagged model, and says so.

use serde::Serialize;

use crate::catalog::{Catalog, CatalogEntry};
use crate::report::recommend::{recommend, Criteria, DEFAULT_MIN_SCORE};
use crate::report::{summarize, RunSummary};
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
    // Each candidate's newest run in which it answered.
    let mut combined: Option<RunSummary> = None;
    let mut source_run: Vec<(String, String)> = Vec::new();
    for listing in store.list_runs()? {
        let wanted: Vec<&str> = listing
            .models
            .iter()
            .map(String::as_str)
            .filter(|m| tagged.iter().any(|e| e.alias == *m))
            .filter(|m| !source_run.iter().any(|(done, _)| done == m))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let summary = summarize(&store.load_run(&listing.run.id)?);
        for name in wanted {
            let Some(model) = summary
                .models
                .iter()
                .find(|m| m.model == name && m.status == ModelStatus::Ok)
            else {
                continue;
            };
            source_run.push((name.to_string(), listing.run.id.clone()));
            let levels = summary.levels.iter().filter(|l| l.model == name).cloned();
            match combined.as_mut() {
                None => {
                    let mut first = summary.clone();
                    first.models = vec![model.clone()];
                    first.levels = levels.collect();
                    combined = Some(first);
                }
                Some(c) => {
                    c.models.push(model.clone());
                    c.levels.extend(levels);
                }
            }
        }
        if source_run.len() == tagged.len() {
            break;
        }
    }
    let run_of = |m: &str| {
        source_run
            .iter()
            .find(|(name, _)| name == m)
            .map(|(_, run)| run.clone())
    };
    if let Some(summary) = &combined {
        // Figures from different runs are compared at the same level label (the first run's
        // first level); runs of one machine with the same options compare like with like.
        let r = recommend(summary, criteria, |_| true);
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

    #[test]
    fn auto_names_a_tag() {
        assert_eq!(route_tag("auto").as_deref(), Some("chat"));
        assert_eq!(route_tag("auto:summarize").as_deref(), Some("summarize"));
        assert_eq!(route_tag("auto:"), None);
        assert_eq!(route_tag("smollm2-135m"), None);
    }
}
