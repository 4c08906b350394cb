//! The one schema, for SQLite and PostgreSQL alike, as an ordered list of migrations.
//!
//! A history outlives the hearth that wrote it, so the schema is versioned: each migration is
//! applied once, in order, in one transaction with its `schema_migrations` row, and a database
//! that a newer hearth migrated further is refused rather than half understood. To change the
//! schema, append a migration; never edit one that has shipped.
//!
//! Types are the portable subset: TEXT, BIGINT (u64 and u32 values, milliseconds since the
//! epoch), DOUBLE PRECISION, INTEGER (booleans 0/1, ordinals, HTTP status). Ids are TEXT made
//! by the caller. Nested or variable-size values are JSON in TEXT columns; what reports filter
//! or aggregate on is a real column.

use super::driver::{Conn, Kind, Val};
use super::StoreError;

/// The migrations, oldest first; migration `i` brings the schema to version `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: runs, their models, levels and requests.
    r#"
CREATE TABLE runs (
    id TEXT NOT NULL PRIMARY KEY,
    started_unix_ms BIGINT NOT NULL,
    finished_unix_ms BIGINT,
    status TEXT NOT NULL,
    options TEXT NOT NULL,
    environment TEXT NOT NULL,
    client TEXT NOT NULL
);
CREATE INDEX runs_started ON runs (started_unix_ms);

CREATE TABLE models (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    backend TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    license TEXT,
    tags TEXT NOT NULL,
    quantization TEXT,
    disk_bytes BIGINT,
    load_ms DOUBLE PRECISION,
    status TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (run_id, model)
);

CREATE TABLE levels (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    level TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    shape TEXT NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL,
    peak_rss_bytes BIGINT,
    server_cpu_ms DOUBLE PRECISION,
    client_cpu_ms DOUBLE PRECISION NOT NULL,
    client_lag_p99_ms DOUBLE PRECISION NOT NULL,
    client_bottleneck INTEGER NOT NULL,
    energy_j DOUBLE PRECISION,
    energy_method TEXT,
    samples TEXT NOT NULL,
    server_metrics TEXT,
    PRIMARY KEY (run_id, model, level)
);

CREATE TABLE requests (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    level TEXT NOT NULL,
    round BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    prompt_id TEXT NOT NULL,
    scheduled_ms DOUBLE PRECISION NOT NULL,
    sent_ms DOUBLE PRECISION,
    first_byte_ms DOUBLE PRECISION,
    first_chunk_ms DOUBLE PRECISION,
    first_token_ms DOUBLE PRECISION,
    end_ms DOUBLE PRECISION,
    chunk_ms TEXT NOT NULL,
    status TEXT NOT NULL,
    http_status INTEGER,
    error TEXT,
    prompt_tokens BIGINT,
    completion_tokens BIGINT,
    cached_tokens BIGINT,
    token_source TEXT NOT NULL,
    counted_completion_tokens BIGINT,
    server_timings TEXT,
    output TEXT NOT NULL,
    PRIMARY KEY (run_id, model, level, round, seq)
);
"#,
    // 2: quality scores of answers, by a judge model or a person.
    r#"
CREATE TABLE scores (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    level TEXT NOT NULL,
    round BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    source TEXT NOT NULL,
    scorer TEXT NOT NULL,
    rubric_version TEXT,
    score INTEGER,
    reason TEXT,
    raw TEXT,
    scored_unix_ms BIGINT NOT NULL,
    PRIMARY KEY (run_id, model, level, round, seq, source)
);
"#,
    // 3: a level's GPU figures (NVML), JSON; NULL on machines without a GPU.
    r#"
ALTER TABLE levels ADD COLUMN gpu TEXT;
"#,
    // 4: why a level ended before its planned requests (over-saturated); NULL when it ran out.
    r#"
ALTER TABLE levels ADD COLUMN stopped TEXT;
"#,
    // 5: the context depth a level was measured at (`--depth`); NULL without one.
    r#"
ALTER TABLE levels ADD COLUMN depth BIGINT;
"#,
    // 6: `hearth tune` searches: the decision in one line and the whole document (JSON, as
    // `tune --json` prints it); their probes are ordinary runs.
    r#"
CREATE TABLE tunes (
    id TEXT NOT NULL PRIMARY KEY,
    started_unix_ms BIGINT NOT NULL,
    finished_unix_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    summary TEXT NOT NULL,
    document TEXT NOT NULL
);
"#,
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to `SCHEMA_VERSION`, or refuses one that is newer. Idempotent:
/// a migration already recorded in `schema_migrations` is never applied again.
pub(crate) fn migrate(conn: &mut Conn, location: &str) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        conn.lock_for_migration()?;
        conn.batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER NOT NULL PRIMARY KEY,
                applied_unix_ms BIGINT NOT NULL
            )",
        )?;
        let rows = conn.query(
            "SELECT MAX(version) FROM schema_migrations",
            &[],
            &[Kind::I32],
        )?;
        let current = match rows.into_iter().next() {
            Some(mut row) => row.opt_i32("schema_migrations.version")?.unwrap_or(0),
            None => 0,
        };
        let current = i64::from(current);
        if current > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                location: location.to_string(),
                found: current,
                known: SCHEMA_VERSION,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let version = i as i32 + 1;
            tracing::info!(version, %location, "applying run-history migration");
            conn.batch(sql)?;
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_unix_ms) VALUES (?, ?)",
                &[Val::I32(Some(version)), Val::I64(Some(super::unix_ms()))],
            )?;
        }
        Ok(())
    })
}
