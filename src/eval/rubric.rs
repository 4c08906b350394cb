//! A run's rubric: the prompt set as stored with the run (`options.bench.prompts`), read back
//! for scoring. Reading it from the stored run, not from today's prompts.json, is what lets a
//! run be re-scored (checks, judge, annotations) exactly against what its models were asked.

use serde::Deserialize;

use super::checks::{self, Check, CheckOutcome};
use crate::store::record::{RequestRecord, RunData};

/// One stored prompt with what a good answer to it looks like.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RubricPrompt {
    /// The prompt's id in the set.
    pub id: String,
    /// The user message as written in the set (without the cold-cache nonce).
    #[serde(default)]
    pub prompt: String,
    /// Points a good answer covers.
    #[serde(default)]
    pub facets: Vec<String>,
    /// Automatic checks.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// An example of a good answer.
    #[serde(default)]
    pub reference: Option<String>,
}

/// The run's prompt set, as stored in its options.
#[derive(Clone, Debug, Default)]
pub struct Rubric {
    prompts: Vec<RubricPrompt>,
}

impl Rubric {
    /// Reads the prompt set stored with `data`; prompts it cannot read are left out (their
    /// answers then have no checks and cannot be judged).
    pub fn of(data: &RunData) -> Self {
        let prompts = data
            .run
            .options
            .prompts()
            .iter()
            .filter_map(|p| serde_json::from_value::<RubricPrompt>(p.clone()).ok())
            .collect();
        Self { prompts }
    }

    /// The prompt with this id.
    pub fn prompt(&self, id: &str) -> Option<&RubricPrompt> {
        self.prompts.iter().find(|p| p.id == id)
    }

    /// The checks of one answer (none when its prompt has none).
    pub fn check(&self, request: &RequestRecord) -> Vec<CheckOutcome> {
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
