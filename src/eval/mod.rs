//! Quality of answers, beside speed: automatic checks now (this module); a judge model and
//! human annotation later. Checks are declared per prompt in `prompts.json` and run on the
//! stored answers, so every stored run can be re-scored the same way.

pub mod checks;

pub use checks::{
    facet_coverage, run_check, run_checks, sentence_count, word_count, Check, CheckError,
    CheckOutcome,
};
