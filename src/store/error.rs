//! What can go wrong with the run history, worded for the person who has to fix it.

use thiserror::Error;

/// Every failure of the run history. Callers (the CLI, the bench) turn these into messages, so
/// each variant says what happened and, where there is one, what to do about it.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The URL names no database kind hearth can use, so nothing was opened.
    #[error(
        "`{0}` is not a run-history location hearth understands: use a file path, \
         `sqlite:PATH`, `sqlite://PATH`, or `postgres://USER:PASSWORD@HOST:PORT/DB`"
    )]
    BadUrl(String),

    /// The folder for the SQLite file could not be made.
    #[error("could not create the folder {path} for the run history: {source}")]
    CreateDir {
        /// The folder.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The database could not be reached or opened at all.
    #[error("could not open the run history at {location}: {source}")]
    Open {
        /// Where (password hidden).
        location: String,
        /// The driver's reason.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A newer hearth wrote this database; reading it with an older schema could lose data.
    #[error(
        "the run history at {location} was written by a newer hearth (schema version {found}, \
         this hearth knows up to {known}); upgrade hearth, or point HEARTH_DB_URL elsewhere"
    )]
    SchemaTooNew {
        /// Where (password hidden).
        location: String,
        /// The version found in the database.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },

    /// No run has this id (or the history has fewer runs than `latest~N` asks for).
    #[error("no run `{0}` in the run history (see `hearth runs list`)")]
    RunNotFound(String),

    /// No tune has this id (or prefix).
    #[error("no tune `{0}` in the run history (see `hearth runs list`)")]
    TuneNotFound(String),

    /// A score names an answer the run does not have; nothing of its batch was written.
    #[error("run {run} has no answer {answer}; no score was written")]
    AnswerNotFound {
        /// The run.
        run: String,
        /// The answer named.
        answer: String,
    },

    /// A prefix matched several runs, so picking one would be a guess.
    #[error("`{prefix}` matches several runs ({}); give more of the id", candidates.join(", "))]
    AmbiguousRun {
        /// What was asked for.
        prefix: String,
        /// The ids it matches (newest first, a few at most).
        candidates: Vec<String>,
    },

    /// A value cannot be stored as is (e.g. a u64 above i64::MAX).
    #[error("cannot store {what}: {detail}")]
    Unstorable {
        /// The field.
        what: &'static str,
        /// Why.
        detail: String,
    },

    /// A stored value does not decode (hand-edited database, or a bug in hearth).
    #[error("the run history holds a value hearth cannot read in {what}: {detail}")]
    Corrupt {
        /// The field.
        what: &'static str,
        /// Why.
        detail: String,
    },

    /// SQLite said no.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// PostgreSQL said no.
    #[error("PostgreSQL: {}", pg_detail(.0))]
    Postgres(#[from] postgres::Error),
}

/// `postgres::Error`'s own text is often just "db error"; the server's message is in the
/// `DbError` behind it, and that is what a person needs to read.
fn pg_detail(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                s.push_str(&format!(" ({detail})"));
            }
            s
        }
        None => e.to_string(),
    }
}
