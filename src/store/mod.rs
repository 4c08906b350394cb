//! Run history: every benchmark run, its models, levels and requests, kept in an embedded
//! SQLite file by default or in PostgreSQL when `HEARTH_DB_URL` points there.
//!
//! Reports are computed from what is stored, never from the bench's memory, so the store keeps
//! raw records and gives them back exactly as written. One schema and one set of SQL texts
//! serve both databases (see `schema` and `driver`); the choice is made once, at `Store::open`.

mod driver;
mod error;
pub mod record;
mod rows;
mod schema;
/// Hand-made runs whose every figure can be worked out by hand: the report's and the store's
/// tests (unit and integration) build their records from them. Not part of the API; public
/// only so the integration tests can share it (it needs no test-only crate).
#[doc(hidden)]
pub mod testdata;

use std::path::Path;
use std::time::Duration;

use driver::{Conn, Kind, Val};
pub use error::StoreError;
use record::{RunData, RunRecord, TuneRecord};
use rows::{kinds, marks, names};
pub use schema::SCHEMA_VERSION;

/// How long an SQLite writer or reader waits for another process's lock before giving up, so
/// `hearth runs list` can read while a bench writes.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for a PostgreSQL server that does not answer, when the URL does not say.
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The run history, in SQLite or PostgreSQL.
///
/// The PostgreSQL client is synchronous and runs its own small tokio runtime, which panics
/// when called from inside async code: use a `Store` from a plain thread (or
/// `spawn_blocking`), not from an async task. A `Store` is `Send`, so it can be moved to the
/// thread that owns it.
pub struct Store {
    conn: Conn,
    location: String,
}

/// One line of `hearth runs list`: the run and enough about it to recognise it, without
/// loading its requests.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunListing {
    /// The run.
    pub run: RunRecord,
    /// Its models, in the order they were measured.
    pub models: Vec<String>,
    /// Timed requests stored so far (warm-up round 0 not counted).
    pub requests: u64,
    /// Of those, the ones that did not end `ok` (errors and timeouts).
    pub failed_requests: u64,
}

impl Store {
    /// Opens (creating and migrating when needed) the history at `url`, so one setting
    /// (`HEARTH_DB_URL`) can choose the database: `postgres://…` or `postgresql://…` is
    /// PostgreSQL; `sqlite://PATH`, `sqlite:PATH` or a plain path is an SQLite file, whose
    /// parent folders are created.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Store::open_postgres(url);
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || (path == url && url.contains("://")) {
            return Err(StoreError::BadUrl(redact(url)));
        }
        Store::open_sqlite(Path::new(path))
    }

    /// Opens (creating and migrating when needed) an SQLite history file. WAL mode with
    /// `synchronous=NORMAL`: a crash loses at most the last transactions, never corrupts, and
    /// readers do not block the bench that writes.
    pub fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        let location = path.display().to_string();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let open_err = |e: rusqlite::Error| StoreError::Open {
            location: location.clone(),
            source: Box::new(e),
        };
        let conn = rusqlite::Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(SQLITE_BUSY_TIMEOUT).map_err(open_err)?;
        let mode = switch_to_wal(&conn).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            // In-memory databases and some file systems cannot do WAL; still usable.
            tracing::debug!(%location, %mode, "SQLite journal mode is not WAL");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        let mut store = Store {
            conn: Conn::Sqlite(conn),
            location,
        };
        schema::migrate(&mut store.conn, &store.location)?;
        tracing::debug!(location = %store.location, "opened SQLite run history");
        Ok(store)
    }

    /// Connects to PostgreSQL (no TLS) and migrates. Kept apart from `open` so the URL is
    /// parsed by the driver, which knows every connection-string option (`options=-c
    /// search_path%3D…` picks a schema).
    fn open_postgres(url: &str) -> Result<Store, StoreError> {
        let location = redact(url);
        let open_err = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            location: location.clone(),
            source: e,
        };
        let mut config: postgres::Config = url.parse().map_err(|e| open_err(Box::new(e)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(PG_CONNECT_TIMEOUT);
        }
        let client = config
            .connect(postgres::NoTls)
            .map_err(|e| open_err(Box::new(e)))?;
        let mut store = Store {
            conn: Conn::Postgres {
                client: Box::new(client),
                statements: Default::default(),
            },
            location,
        };
        schema::migrate(&mut store.conn, &store.location)?;
        tracing::debug!(location = %store.location, "opened PostgreSQL run history");
        Ok(store)
    }

    /// `"sqlite"` or `"postgres"`, for messages and for `hearth env`.
    pub fn kind(&self) -> &'static str {
        match self.conn {
            Conn::Sqlite(_) => "sqlite",
            Conn::Postgres { .. } => "postgres",
        }
    }

    /// Where the history is, for messages: the file path, or the URL with its password hidden.
    pub fn location(&self) -> String {
        self.location.clone()
    }

    /// Records a new run, before its first request, so even a run that dies early is listed.
    pub fn insert_run(&mut self, run: &RunRecord) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO runs ({}) VALUES ({})",
            names(rows::RUN_COLUMNS, ""),
            marks(rows::RUN_COLUMNS.len())
        );
        self.conn.execute(&sql, &rows::run_values(run)?)?;
        tracing::debug!(run = %run.id, "run recorded");
        Ok(())
    }

    /// Updates status, finished time, options, client (everything but the id), so the bench
    /// can say how the run ended and what the client measured about itself.
    pub fn update_run(&mut self, run: &RunRecord) -> Result<(), StoreError> {
        let sets = rows::RUN_COLUMNS[1..]
            .iter()
            .map(|(name, _)| format!("{name} = ?"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut values = rows::run_values(run)?;
        let id = values.remove(0);
        values.push(id);
        let sql = format!("UPDATE runs SET {sets} WHERE id = ?");
        if self.conn.execute(&sql, &values)? == 0 {
            return Err(StoreError::RunNotFound(run.id.clone()));
        }
        Ok(())
    }

    /// Records a model of a run, or replaces what was recorded (its status changes as it is
    /// measured). The first write fixes its place in the run's order.
    pub fn upsert_model(
        &mut self,
        run_id: &str,
        model: &record::ModelRecord,
    ) -> Result<(), StoreError> {
        let sql = upsert_sql("models", rows::MODEL_COLUMNS, &["model"]);
        let mut values = vec![text(run_id), text(run_id)];
        values.extend(rows::model_values(model)?);
        self.conn.execute(&sql, &values)?;
        Ok(())
    }

    /// Records a level of a model, or replaces it (samples grow while it runs). The first
    /// write fixes its place in the run's order.
    pub fn upsert_level(
        &mut self,
        run_id: &str,
        level: &record::LevelRecord,
    ) -> Result<(), StoreError> {
        let sql = upsert_sql("levels", rows::LEVEL_COLUMNS, &["model", "level"]);
        let mut values = vec![text(run_id), text(run_id)];
        values.extend(rows::level_values(level)?);
        self.conn.execute(&sql, &values)?;
        Ok(())
    }

    /// Requests are written as they finish, so a crash loses at most those in flight; several
    /// at once go in one transaction (all or none, and one sync instead of one per request).
    pub fn insert_requests(
        &mut self,
        run_id: &str,
        requests: &[record::RequestRecord],
    ) -> Result<(), StoreError> {
        if requests.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO requests (run_id, {}) VALUES (?, {})",
            names(rows::REQUEST_COLUMNS, ""),
            marks(rows::REQUEST_COLUMNS.len())
        );
        let mut batch = Vec::with_capacity(requests.len());
        for r in requests {
            let mut values = vec![text(run_id)];
            values.extend(rows::request_values(r)?);
            batch.push(values);
        }
        self.conn.transaction(|conn| {
            for values in &batch {
                conn.execute(&sql, values)?;
            }
            Ok(())
        })
    }

    /// Records scores of a run's answers, replacing any earlier score from the same source
    /// for the same answer, all in one transaction: an import or a judging pass lands whole
    /// or not at all. Every score must name a stored answer of the run, else nothing is
    /// written and the first stray one is named.
    pub fn upsert_scores(
        &mut self,
        run_id: &str,
        scores: &[record::ScoreRecord],
    ) -> Result<(), StoreError> {
        if scores.is_empty() {
            return Ok(());
        }
        let updates = rows::SCORE_COLUMNS[5..]
            .iter()
            .map(|(name, _)| format!("{name} = excluded.{name}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO scores (run_id, {}) VALUES (?, {}) \
             ON CONFLICT (run_id, model, level, round, seq, source) DO UPDATE SET {updates}",
            names(rows::SCORE_COLUMNS, ""),
            marks(rows::SCORE_COLUMNS.len())
        );
        let mut batch = Vec::with_capacity(scores.len());
        for s in scores {
            let mut values = vec![text(run_id)];
            values.extend(rows::score_values(s)?);
            batch.push((s, values));
        }
        self.conn.transaction(|conn| {
            for (score, values) in &batch {
                let found = conn.query(
                    "SELECT COUNT(*) FROM requests \
                     WHERE run_id = ? AND model = ? AND level = ? AND round = ? AND seq = ?",
                    &values[..5],
                    &[Kind::I64],
                )?;
                let count = match found.into_iter().next() {
                    Some(mut row) => row.u64("COUNT(requests)")?,
                    None => 0,
                };
                if count == 0 {
                    return Err(StoreError::AnswerNotFound {
                        run: run_id.to_string(),
                        answer: format!(
                            "{} {} round {} seq {}",
                            score.model, score.level, score.round, score.seq
                        ),
                    });
                }
                conn.execute(&sql, values)?;
            }
            Ok(())
        })
    }

    /// Every run, newest first, with its models and request counts: what `hearth runs list`
    /// prints and what `latest` resolves against.
    pub fn list_runs(&mut self) -> Result<Vec<RunListing>, StoreError> {
        self.conn.read_transaction(|conn| {
            let sql = format!(
                "SELECT {} FROM runs ORDER BY started_unix_ms DESC, id DESC",
                names(rows::RUN_COLUMNS, "")
            );
            let mut listings = Vec::new();
            for row in conn.query(&sql, &[], &kinds(rows::RUN_COLUMNS))? {
                listings.push(RunListing {
                    run: rows::run_from_row(row)?,
                    models: Vec::new(),
                    requests: 0,
                    failed_requests: 0,
                });
            }
            let index: std::collections::HashMap<String, usize> = listings
                .iter()
                .enumerate()
                .map(|(i, l)| (l.run.id.clone(), i))
                .collect();
            let models = conn.query(
                "SELECT run_id, model FROM models ORDER BY run_id, ordinal",
                &[],
                &[Kind::Text, Kind::Text],
            )?;
            for mut row in models {
                let run_id = row.text("models.run_id")?;
                let model = row.text("models.model")?;
                if let Some(&i) = index.get(&run_id) {
                    listings[i].models.push(model);
                }
            }
            let counts = conn.query(
                "SELECT run_id, COUNT(*), SUM(CASE WHEN status = 'ok' THEN 0 ELSE 1 END) \
                 FROM requests WHERE round > 0 GROUP BY run_id",
                &[],
                &[Kind::Text, Kind::I64, Kind::I64],
            )?;
            for mut row in counts {
                let run_id = row.text("requests.run_id")?;
                let requests = row.u64("COUNT(requests)")?;
                let failed = row.u64("failed requests")?;
                if let Some(&i) = index.get(&run_id) {
                    listings[i].requests = requests;
                    listings[i].failed_requests = failed;
                }
            }
            Ok(listings)
        })
    }

    /// Everything stored about one run (an exact id; see `resolve` for what users type), read
    /// from one snapshot: models and levels in the order they were first written, requests by
    /// model, level, round and seq.
    pub fn load_run(&mut self, id: &str) -> Result<RunData, StoreError> {
        let id_val = [text(id)];
        self.conn.read_transaction(|conn| {
            let sql = format!(
                "SELECT {} FROM runs WHERE id = ?",
                names(rows::RUN_COLUMNS, "")
            );
            let run = match conn
                .query(&sql, &id_val, &kinds(rows::RUN_COLUMNS))?
                .into_iter()
                .next()
            {
                Some(row) => rows::run_from_row(row)?,
                None => return Err(StoreError::RunNotFound(id.to_string())),
            };
            let models = select_all(
                conn,
                "SELECT {} FROM models WHERE run_id = ? ORDER BY ordinal, model",
                "",
                &id_val,
                rows::MODEL_COLUMNS,
                rows::model_from_row,
            )?;
            let levels = select_all(
                conn,
                "SELECT {} FROM levels WHERE run_id = ? ORDER BY ordinal, model, level",
                "",
                &id_val,
                rows::LEVEL_COLUMNS,
                rows::level_from_row,
            )?;
            // Requests whose model or level was never written (a crash between the two) sort
            // after the known ones instead of being lost.
            let requests = select_all(
                conn,
                "SELECT {} FROM requests r \
                 LEFT JOIN models m ON m.run_id = r.run_id AND m.model = r.model \
                 LEFT JOIN levels l ON l.run_id = r.run_id AND l.model = r.model \
                     AND l.level = r.level \
                 WHERE r.run_id = ? \
                 ORDER BY COALESCE(m.ordinal, 2147483647), r.model, \
                     COALESCE(l.ordinal, 2147483647), r.level, r.round, r.seq",
                "r.",
                &id_val,
                rows::REQUEST_COLUMNS,
                rows::request_from_row,
            )?;
            let scores = select_all(
                conn,
                "SELECT {} FROM scores WHERE run_id = ? ORDER BY model, level, round, seq, source",
                "",
                &id_val,
                rows::SCORE_COLUMNS,
                rows::score_from_row,
            )?;
            Ok(RunData {
                run,
                models,
                levels,
                requests,
                scores,
            })
        })
    }

    /// Turns what a user typed into a run id: a full id, a unique prefix, `latest`, or
    /// `latest~N` (N runs before the latest). Unknown or ambiguous input is an error that
    /// says so, never a guess.
    pub fn resolve(&mut self, id: &str) -> Result<String, StoreError> {
        let id = id.trim();
        if id.is_empty() {
            return Err(StoreError::RunNotFound(id.to_string()));
        }
        let ids: Vec<String> = self
            .conn
            .query(
                "SELECT id FROM runs ORDER BY started_unix_ms DESC, id DESC",
                &[],
                &[Kind::Text],
            )?
            .into_iter()
            .map(|mut row| row.text("runs.id"))
            .collect::<Result<_, _>>()?;
        if ids.iter().any(|i| i == id) {
            return Ok(id.to_string());
        }
        if let Some(back) = latest_offset(id) {
            return ids
                .get(back)
                .cloned()
                .ok_or_else(|| StoreError::RunNotFound(id.to_string()));
        }
        let matches: Vec<&String> = ids.iter().filter(|i| i.starts_with(id)).collect();
        match matches.as_slice() {
            [] => Err(StoreError::RunNotFound(id.to_string())),
            [one] => Ok((*one).clone()),
            many => Err(StoreError::AmbiguousRun {
                prefix: id.to_string(),
                candidates: many.iter().take(5).map(|s| (*s).clone()).collect(),
            }),
        }
    }
}

impl Store {
    /// Records a finished (or stopped) tune.
    pub fn insert_tune(&mut self, tune: &TuneRecord) -> Result<(), StoreError> {
        let document =
            serde_json::to_string(&tune.document).map_err(|e| StoreError::Unstorable {
                what: "tune document",
                detail: e.to_string(),
            })?;
        self.conn.execute(
            "INSERT INTO tunes (id, started_unix_ms, finished_unix_ms, status, summary, document) \
             VALUES (?, ?, ?, ?, ?, ?)",
            &[
                text(&tune.id),
                Val::I64(Some(tune.started_unix_ms)),
                Val::I64(Some(tune.finished_unix_ms)),
                text(&tune.status),
                text(&tune.summary),
                text(&document),
            ],
        )?;
        Ok(())
    }

    /// One tune by id, unique prefix, `latest` or `latest~N` (among tunes).
    pub fn load_tune(&mut self, id: &str) -> Result<TuneRecord, StoreError> {
        let id = id.trim();
        let all = self.list_tunes()?;
        if let Some(back) = latest_offset(id) {
            return all
                .into_iter()
                .nth(back)
                .ok_or_else(|| StoreError::TuneNotFound(id.to_string()));
        }
        if let Some(exact) = all.iter().find(|t| t.id == id) {
            return Ok(exact.clone());
        }
        let mut matches: Vec<TuneRecord> =
            all.into_iter().filter(|t| t.id.starts_with(id)).collect();
        match matches.len() {
            1 => Ok(matches.remove(0)),
            0 => Err(StoreError::TuneNotFound(id.to_string())),
            _ => Err(StoreError::AmbiguousRun {
                prefix: id.to_string(),
                candidates: matches.iter().take(5).map(|t| t.id.clone()).collect(),
            }),
        }
    }

    /// Every tune, newest first.
    pub fn list_tunes(&mut self) -> Result<Vec<TuneRecord>, StoreError> {
        let rows = self.conn.query(
            "SELECT id, started_unix_ms, finished_unix_ms, status, summary, document FROM tunes \
             ORDER BY started_unix_ms DESC, id DESC",
            &[],
            &[
                Kind::Text,
                Kind::I64,
                Kind::I64,
                Kind::Text,
                Kind::Text,
                Kind::Text,
            ],
        )?;
        rows.into_iter()
            .map(|mut row| {
                let id = row.text("tunes.id")?;
                let started_unix_ms = row.i64("tunes.started_unix_ms")?;
                let finished_unix_ms = row.i64("tunes.finished_unix_ms")?;
                let status = row.text("tunes.status")?;
                let summary = row.text("tunes.summary")?;
                let document = row.text("tunes.document")?;
                Ok(TuneRecord {
                    document: serde_json::from_str(&document).map_err(|e| StoreError::Corrupt {
                        what: "tunes.document",
                        detail: e.to_string(),
                    })?,
                    id,
                    started_unix_ms,
                    finished_unix_ms,
                    status,
                    summary,
                })
            })
            .collect()
    }
}

/// `latest` → 0, `latest~N` → N; anything else is not a relative reference.
fn latest_offset(id: &str) -> Option<usize> {
    match id.strip_prefix("latest")? {
        "" => Some(0),
        rest => rest.strip_prefix('~')?.parse().ok(),
    }
}

/// `INSERT … ON CONFLICT … DO UPDATE` for a child table of `runs` whose `ordinal` is set on
/// first insert (one more than the run's last) and kept by later updates. Binds: run id,
/// run id again (for the ordinal), then `columns`.
fn upsert_sql(table: &str, columns: &[(&str, Kind)], key: &[&str]) -> String {
    let updates = columns
        .iter()
        .filter(|(name, _)| !key.contains(name))
        .map(|(name, _)| format!("{name} = excluded.{name}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {table} (run_id, ordinal, {cols}) VALUES (?, \
         (SELECT COALESCE(MAX(ordinal) + 1, 0) FROM {table} WHERE run_id = ?), {marks}) \
         ON CONFLICT (run_id, {key}) DO UPDATE SET {updates}",
        cols = names(columns, ""),
        marks = marks(columns.len()),
        key = key.join(", "),
    )
}

fn text(s: &str) -> Val {
    Val::Text(Some(s.to_string()))
}

/// The URL with its password (in the user part or a `password=` parameter) replaced by
/// `***`, so it can be printed and logged.
fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match (base.split_once("://"), base.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let at = rest.rfind('@').unwrap_or(0);
            let (userinfo, host) = rest.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***{host}"),
                None => base.to_string(),
            }
        }
        _ => base.to_string(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Now, in Unix milliseconds: the wall-clock stamp every stored record carries (run start and
/// end, scores, schema migrations).
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Every row `sql` selects, read into records by `from_row`: `sql` holds `{}` where the
/// `columns` go, each with `prefix` (a table alias such as `r.`).
fn select_all<T>(
    conn: &mut Conn,
    sql: &str,
    prefix: &str,
    params: &[Val],
    columns: &[(&str, Kind)],
    from_row: fn(driver::Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let sql = sql.replacen("{}", &names(columns, prefix), 1);
    conn.query(&sql, params, &kinds(columns))?
        .into_iter()
        .map(from_row)
        .collect()
}

/// Switches a connection to WAL and returns the journal mode it ended in. The switch needs an
/// exclusive lock, and SQLite answers `SQLITE_BUSY` at once (without its busy handler) when
/// another process is opening the same new file at that moment: two `hearth` commands started
/// together on a fresh home. So the switch is retried, with short pauses, for as long as any
/// other statement would wait on a lock.
fn switch_to_wal(conn: &rusqlite::Connection) -> Result<String, rusqlite::Error> {
    let deadline = std::time::Instant::now() + SQLITE_BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(2);
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{latest_offset, redact};

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("postgres://hearth:s3cr/et@db:5432/h?sslmode=disable&password=x"),
            "postgres://hearth:***@db:5432/h?sslmode=disable&password=***"
        );
        assert_eq!(redact("postgres://db/h"), "postgres://db/h");
        assert_eq!(redact("postgres://u@db/h"), "postgres://u@db/h");
    }

    #[test]
    fn latest_references() {
        assert_eq!(latest_offset("latest"), Some(0));
        assert_eq!(latest_offset("latest~3"), Some(3));
        assert_eq!(latest_offset("latest~x"), None);
        assert_eq!(latest_offset("latestx"), None);
        assert_eq!(latest_offset("20261128"), None);
    }
}
