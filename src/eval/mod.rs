//! Quality of answers, beside speed: automatic checks (`checks`), a judge model (`judge`),
//! and people's scores merged back from an annotation file (the CLI's `annotate`). Checks
//! and the rubric are declared per prompt in `prompts.json` and stored with the run, so every
//! stored run can be re-scored the same way.

pub mod annotate;
pub mod checks;
pub mod judge;
pub mod rubric;

pub use checks::{
    facet_coverage, run_check, run_checks, sentence_count, word_count, Check, CheckError,
    CheckOutcome,
};
pub use rubric::{Rubric, RubricPrompt};
