//! The databases the store tests run on: a SQLite file in a temporary folder, or a fresh schema
//! in the PostgreSQL named by `HEARTH_TEST_PG_URL` (dropped afterwards), with raw SQL access for
//! what the public API must not allow.

use std::path::PathBuf;

use hearth::store::Store;

pub(crate) const PG_HELP: &str =
    "HEARTH_TEST_PG_URL is not set, and the store tests run against PostgreSQL \
as well as SQLite (they are never skipped). Run scripts/setup.sh (it installs and starts \
PostgreSQL and creates the role hearth/hearth and the database hearth_test), then \
`export HEARTH_TEST_PG_URL=postgres://hearth:hearth@127.0.0.1:5432/hearth_test`, or run the \
whole suite with scripts/test.sh, which does both.";

/// One database to test against, with raw access for what the public API must not allow.
pub(crate) enum Backend {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        /// The URL given to `Store::open`: the test URL with `search_path` set to `schema`.
        url: String,
        base_url: String,
        schema: String,
    },
}

impl Backend {
    pub(crate) fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        // A folder that does not exist yet: `open` must create it.
        let path = dir.path().join("nested/history.db");
        Backend::Sqlite { _dir: dir, path }
    }

    pub(crate) fn postgres(test: &str) -> Backend {
        let base_url = std::env::var("HEARTH_TEST_PG_URL").unwrap_or_else(|_| panic!("{PG_HELP}"));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let schema = format!("hearth_t_{test}_{}_{nanos}", std::process::id());
        let mut admin =
            ::postgres::Client::connect(&base_url, ::postgres::NoTls).unwrap_or_else(|e| {
                panic!("cannot connect to HEARTH_TEST_PG_URL={base_url}: {e}\n{PG_HELP}")
            });
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .unwrap();
        let sep = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{sep}options=-c%20search_path%3D{schema}");
        Backend::Postgres {
            url,
            base_url,
            schema,
        }
    }

    pub(crate) fn url(&self) -> String {
        match self {
            Backend::Sqlite { path, .. } => path.display().to_string(),
            Backend::Postgres { url, .. } => url.clone(),
        }
    }

    pub(crate) fn open(&self) -> Store {
        Store::open(&self.url()).unwrap_or_else(|e| panic!("open {}: {e}", self.url()))
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// Runs SQL behind the store's back.
    pub(crate) fn raw(&self, sql: &str) {
        match self {
            Backend::Sqlite { path, .. } => rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            Backend::Postgres { url, .. } => ::postgres::Client::connect(url, ::postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
        }
    }

    /// `(version, applied_unix_ms)` rows of `schema_migrations`, by version.
    pub(crate) fn migrations(&self) -> Vec<(i64, i64)> {
        let sql = "SELECT version, applied_unix_ms FROM schema_migrations ORDER BY version";
        match self {
            Backend::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                let mut stmt = conn.prepare(sql).unwrap();
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
                rows.map(Result::unwrap).collect()
            }
            Backend::Postgres { url, .. } => ::postgres::Client::connect(url, ::postgres::NoTls)
                .unwrap()
                .query(sql, &[])
                .unwrap()
                .iter()
                .map(|r| (i64::from(r.get::<_, i32>(0)), r.get(1)))
                .collect(),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Backend::Postgres {
            base_url, schema, ..
        } = self
        {
            if let Ok(mut admin) = ::postgres::Client::connect(base_url, ::postgres::NoTls) {
                let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}
