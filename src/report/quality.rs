//! Quality of the answers in a stored run: every counted answer is run through its prompt's
//! automatic checks (from the prompt set stored with the run's options), so the report shows
//! beside latency and memory whether a model answers well enough, and why not.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use crate::eval::Rubric;
use crate::store::record::{RequestRecord, RunData, ScoreRecord, ScoreSource};

/// The scores of a run's answers, by answer: what the judge said and what a person said.
#[derive(Debug, Default)]
pub struct Scores<'a> {
    by_answer: HashMap<(&'a str, &'a str, u32, u32), [Option<&'a ScoreRecord>; 2]>,
}

impl<'a> Scores<'a> {
    /// Indexes the scores stored with `data`.
    pub fn of(data: &'a RunData) -> Self {
        let mut by_answer: HashMap<_, [Option<&ScoreRecord>; 2]> = HashMap::new();
        for s in &data.scores {
            let slot = match s.source {
                ScoreSource::Judge => 0,
                ScoreSource::Human => 1,
            };
            by_answer
                .entry((s.model.as_str(), s.level.as_str(), s.round, s.seq))
                .or_default()[slot] = Some(s);
        }
        Self { by_answer }
    }

    /// The judge's and the person's score records of one answer.
    pub fn of_answer(
        &self,
        r: &RequestRecord,
    ) -> (Option<&'a ScoreRecord>, Option<&'a ScoreRecord>) {
        match self
            .by_answer
            .get(&(r.model.as_str(), r.level.as_str(), r.round, r.seq))
        {
            Some([judge, human]) => (*judge, *human),
            None => (None, None),
        }
    }

    /// The score that counts for one answer: a person's where there is one, else the judge's.
    pub fn effective(&self, r: &RequestRecord) -> Option<f64> {
        let (judge, human) = self.of_answer(r);
        human
            .and_then(|s| s.score)
            .or(judge.and_then(|s| s.score))
            .map(f64::from)
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
    /// Distinct prompts at least one check ran on: the sample size of `pass_rate`. A prompt's
    /// answers repeat across rounds at temperature 0 and its checks pass or fail together, so
    /// `compare` counts prompts, not checks or answers.
    #[serde(default)]
    pub checked_prompts: u64,
    /// Mean share of facets mentioned, over answers whose prompt has facets.
    pub facet_coverage: Option<f64>,
    /// Failed checks by prompt and check, most frequent first.
    pub failures: Vec<CheckFailure>,
    /// Mean quality score (1–5) over the answers that have one: a person's score where there
    /// is one, else the judge's.
    pub score: Option<f64>,
    /// Answers that have a score.
    pub scored: u64,
    /// Who gave the scores in `score`: `human`, `judge` or `human+judge`.
    pub scored_by: Option<String>,
    /// Mean of the judge's scores alone.
    pub judge_score: Option<f64>,
    /// Answers the judge scored.
    pub judge_scored: u64,
    /// Answers the judge was asked about but gave no readable score for.
    pub judge_unscored: u64,
    /// Mean of people's scores alone.
    pub human_score: Option<f64>,
    /// Answers people scored.
    pub human_scored: u64,
}

impl Quality {
    /// `4.2 (judge)`, or `—` when nothing is scored.
    pub fn score_label(&self) -> String {
        match (self.score, &self.scored_by) {
            (Some(s), Some(by)) => format!("{s:.1} ({by})"),
            (Some(s), None) => format!("{s:.1}"),
            _ => "—".into(),
        }
    }
}

/// Checks every successful counted answer in `answers` and gathers their scores.
pub fn assess(rubric: &Rubric, scores: &Scores, answers: &[&RequestRecord]) -> Quality {
    let mut quality = Quality::default();
    let mut shares = Vec::new();
    let (mut judged, mut human, mut effective) = (Vec::new(), Vec::new(), Vec::new());
    let mut checked: Vec<&str> = Vec::new();
    for request in answers {
        let (j, h) = scores.of_answer(request);
        let judge_score = j.and_then(|s| s.score).map(f64::from);
        let human_score = h.and_then(|s| s.score).map(f64::from);
        if j.is_some() && judge_score.is_none() {
            quality.judge_unscored += 1;
        }
        judged.extend(judge_score);
        human.extend(human_score);
        effective.extend(scores.effective(request));
        let outcomes = rubric.check(request);
        if !outcomes.is_empty() && !checked.contains(&request.prompt_id.as_str()) {
            checked.push(request.prompt_id.as_str());
        }
        for outcome in outcomes {
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
    quality.checked_prompts = checked.len() as u64;
    quality.pass_rate = (quality.checks_total > 0)
        .then(|| quality.checks_passed as f64 / quality.checks_total as f64);
    quality.facet_coverage = crate::stats::mean(&shares);
    quality.judge_scored = judged.len() as u64;
    quality.judge_score = crate::stats::mean(&judged);
    quality.human_scored = human.len() as u64;
    quality.human_score = crate::stats::mean(&human);
    quality.scored = effective.len() as u64;
    quality.score = crate::stats::mean(&effective);
    // A person's score wins per answer, so the judge contributes only where nobody scored.
    let judge_used = effective.len() > human.len();
    quality.scored_by = match (!human.is_empty(), judge_used) {
        (true, true) => Some("human+judge".into()),
        (true, false) => Some("human".into()),
        (false, true) => Some("judge".into()),
        (false, false) => None,
    };
    quality.failures.sort_by_key(|f| std::cmp::Reverse(f.count));
    quality
}

#[cfg(test)]
mod tests {
    use super::super::{render, summarize, Format};
    use crate::store::testdata;

    #[test]
    fn stored_checks_score_the_stored_answers() {
        let mut data = testdata::sample_run();
        // The sample answers read `hello <world> & "friends"` (3 words, 1 sentence).
        data.run.options.bench = serde_json::json!({"prompts": [
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
        assert!(md.contains("## Quality\n") && md.contains("3 words, at most 2 allowed"));
        let html = render(&data, Format::Html).unwrap();
        assert!(html.contains("id=\"quality\"") && html.contains("3 words, at most 2 allowed"));
        let csv = render(&data, Format::Csv).unwrap();
        assert!(csv.lines().next().unwrap().contains("check_pass_rate"));
    }
}
