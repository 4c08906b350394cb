//! Quality of the answers in a stored run: every counted answer is run through its prompt's
//! automatic checks (from the prompt set stored with the run's options), so the report shows
//! beside latency and memory whether a model answers well enough, and why not.

use serde::{Deserialize, Serialize};

use crate::eval::checks::{self, Check};
use crate::store::record::{RequestRecord, RunData};

/// The parts of a stored prompt that quality needs.
#[derive(Clone, Debug, Default, Deserialize)]
struct StoredPrompt {
    id: String,
    #[serde(default)]
    facets: Vec<String>,
    #[serde(default)]
    checks: Vec<Check>,
}

/// The run's prompt set, as stored in its options (`options.bench.prompts`).
#[derive(Clone, Debug, Default)]
pub struct Rubric {
    prompts: Vec<StoredPrompt>,
}

impl Rubric {
    /// Reads the prompt set stored with `data`; prompts it cannot read have no checks.
    pub fn of(data: &RunData) -> Self {
        let prompts = data.run.options["bench"]["prompts"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|p| serde_json::from_value::<StoredPrompt>(p.clone()).ok())
                    .collect()
            })
            .unwrap_or_default();
        Self { prompts }
    }

    fn prompt(&self, id: &str) -> Option<&StoredPrompt> {
        self.prompts.iter().find(|p| p.id == id)
    }

    /// The checks of one answer (none when its prompt has none).
    pub fn check(&self, request: &RequestRecord) -> Vec<checks::CheckOutcome> {
        match self.prompt(&request.prompt_id) {
            Some(p) => checks::run_checks(&p.checks, &p.facets, &request.output),
            None => Vec::new(),
        }
    }

    /// Share of the prompt's facets the answer mentions, when the prompt has facets.
    pub fn facet_share(&self, request: &RequestRecord) -> Option<f64> {
        let p = self.prompt(&request.prompt_id)?;
        if p.facets.is_empty() {
            return None;
        }
        let (mentioned, _) = checks::facet_coverage(&p.facets, &request.output);
        Some(mentioned.len() as f64 / p.facets.len() as f64)
    }
}

/// A check that failed, with how often and one reason a person can read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckFailure {
    /// The prompt.
    pub prompt_id: String,
    /// The check's label.
    pub check: String,
    /// Answers that failed it.
    pub count: u64,
    /// The reason given for the first of them.
    pub reason: String,
}

/// Automatic quality of one model at one level.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Checks passed over all counted answers.
    pub checks_passed: u64,
    /// Checks run over all counted answers.
    pub checks_total: u64,
    /// `checks_passed / checks_total`, when any check ran.
    pub pass_rate: Option<f64>,
    /// Mean share of facets mentioned, over answers whose prompt has facets.
    pub facet_coverage: Option<f64>,
    /// Failed checks by prompt and check, most frequent first.
    pub failures: Vec<CheckFailure>,
}

/// Checks every successful counted answer in `answers`.
pub fn assess(rubric: &Rubric, answers: &[&RequestRecord]) -> Quality {
    let mut quality = Quality::default();
    let mut shares = Vec::new();
    for request in answers {
        for outcome in rubric.check(request) {
            quality.checks_total += 1;
            if outcome.passed {
                quality.checks_passed += 1;
                continue;
            }
            match quality
                .failures
                .iter_mut()
                .find(|f| f.prompt_id == request.prompt_id && f.check == outcome.check)
            {
                Some(f) => f.count += 1,
                None => quality.failures.push(CheckFailure {
                    prompt_id: request.prompt_id.clone(),
                    check: outcome.check,
                    count: 1,
                    reason: outcome.reason,
                }),
            }
        }
        shares.extend(rubric.facet_share(request));
    }
    quality.pass_rate = (quality.checks_total > 0)
        .then(|| quality.checks_passed as f64 / quality.checks_total as f64);
    quality.facet_coverage = crate::stats::mean(&shares);
    quality.failures.sort_by_key(|f| std::cmp::Reverse(f.count));
    quality
}

/// Column names of the per-level quality table in the Markdown and HTML reports.
pub const LEVEL_HEADER: [&str; 5] = [
    "model",
    "level",
    "checks passed",
    "pass rate",
    "facet coverage",
];

/// Column names of the failed-checks table.
pub const FAILURE_HEADER: [&str; 6] = ["model", "level", "prompt", "check", "answers", "reason"];

/// The cells of the per-level quality table (plain text; each renderer escapes them).
pub fn level_rows(levels: &[super::LevelSummary]) -> Vec<[String; 5]> {
    levels
        .iter()
        .map(|l| {
            let q = &l.quality;
            [
                l.model.clone(),
                l.level.clone(),
                format!("{}/{}", q.checks_passed, q.checks_total),
                percent(q.pass_rate),
                percent(q.facet_coverage),
            ]
        })
        .collect()
}

/// The cells of the failed-checks table, each with the reason a person reads.
pub fn failure_rows(levels: &[super::LevelSummary]) -> Vec<[String; 6]> {
    levels
        .iter()
        .flat_map(|l| {
            l.quality.failures.iter().map(move |f| {
                [
                    l.model.clone(),
                    l.level.clone(),
                    f.prompt_id.clone(),
                    f.check.clone(),
                    f.count.to_string(),
                    f.reason.clone(),
                ]
            })
        })
        .collect()
}

/// `83%`, or `—` when there is nothing to rate.
pub fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "—".into(), |s| format!("{:.0}%", s * 100.0))
}

#[cfg(test)]
mod tests {
    use super::super::{render, summarize, testdata, Format};

    #[test]
    fn stored_checks_score_the_stored_answers() {
        let mut data = testdata::sample_run();
        // The sample answers read `hello <world> & "friends"` (3 words, 1 sentence).
        data.run.options["bench"] = serde_json::json!({"prompts": [
            {"id": "p1", "prompt": "x", "facets": ["friendly greeting", "world"],
             "checks": [{"type": "contains", "text": "HELLO"}, {"type": "max_words", "n": 2},
                        {"type": "facets", "min_share": 1.0}]},
            {"id": "p2", "prompt": "y", "checks": [{"type": "json"}]},
        ]});
        let summary = summarize(&data);
        let level = summary
            .levels
            .iter()
            .find(|l| l.model == "smollm2" && l.level == "c=1")
            .unwrap();
        let q = &level.quality;
        // p1 answered once (3 checks: contains and facets pass, max_words fails), p2 once
        // (JSON fails); p3 has no checks.
        assert_eq!((q.checks_passed, q.checks_total), (2, 4));
        assert_eq!(q.pass_rate, Some(0.5));
        // "world" is mentioned, "friendly greeting" (friendly → "friends" shares 5 letters,
        // greeting does not) counts as half its words: mentioned.
        assert_eq!(q.facet_coverage, Some(1.0));
        let reasons: Vec<&str> = q.failures.iter().map(|f| f.reason.as_str()).collect();
        assert!(
            reasons.contains(&"3 words, at most 2 allowed"),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.starts_with("not JSON")),
            "{reasons:?}"
        );
        let md = render(&data, Format::Markdown).unwrap();
        assert!(
            md.contains("## Quality (automatic checks)")
                && md.contains("3 words, at most 2 allowed")
        );
        let html = render(&data, Format::Html).unwrap();
        assert!(html.contains("id=\"quality\"") && html.contains("3 words, at most 2 allowed"));
        let csv = render(&data, Format::Csv).unwrap();
        assert!(csv.lines().next().unwrap().contains("check_pass_rate"));
    }
}
