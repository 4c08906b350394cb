//! The two database drivers behind one small surface: run a statement, run a query, run a
//! script, hold a transaction. Every SQL text in the store is written once, with `?`
//! placeholders, and this is the only place that knows PostgreSQL wants `$1, $2…` instead, or
//! that the two drivers name their types differently. Keeping the difference here is what lets
//! the schema and the queries be the same text for both.

use std::collections::HashMap;

use super::StoreError;

/// A value bound to, or read from, a statement. Typed even when NULL, because PostgreSQL's
/// client checks the Rust type against the column type (BIGINT ↔ i64, INTEGER ↔ i32,
/// DOUBLE PRECISION ↔ f64, TEXT ↔ String) and a NULL needs a type as well.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    /// BIGINT.
    I64(Option<i64>),
    /// INTEGER.
    I32(Option<i32>),
    /// DOUBLE PRECISION.
    F64(Option<f64>),
    /// TEXT.
    Text(Option<String>),
}

/// The SQL type of a result column, so both drivers read it into the same `Val`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// BIGINT (also `COUNT(*)` and `SUM` of integers).
    I64,
    /// INTEGER.
    I32,
    /// DOUBLE PRECISION.
    F64,
    /// TEXT.
    Text,
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Val::I64(v) => v.to_sql(),
            Val::I32(v) => v.to_sql(),
            Val::F64(v) => v.to_sql(),
            Val::Text(v) => v.to_sql(),
        }
    }
}

impl Val {
    /// The value as the `postgres` crate binds it.
    fn pg(&self) -> &(dyn postgres::types::ToSql + Sync) {
        match self {
            Val::I64(v) => v,
            Val::I32(v) => v,
            Val::F64(v) => v,
            Val::Text(v) => v,
        }
    }
}

/// One open database.
pub(crate) enum Conn {
    /// An SQLite file (or `:memory:`).
    Sqlite(rusqlite::Connection),
    /// A PostgreSQL connection, with the statements it has prepared (the client keeps none
    /// itself, and a run writes the same few statements thousands of times).
    Postgres {
        /// The connection.
        client: Box<postgres::Client>,
        /// Prepared statements by their translated SQL text.
        statements: HashMap<String, postgres::Statement>,
    },
}

/// Rewrites `?` placeholders as PostgreSQL's `$1, $2…`, leaving quoted text alone.
pub(crate) fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '?') => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
                continue;
            }
            (None, _) => {}
        }
        out.push(c);
    }
    out
}

impl Conn {
    /// Runs one statement and returns the rows it changed.
    pub(crate) fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64, StoreError> {
        match self {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64)
            }
            Conn::Postgres { client, statements } => {
                let stmt = pg_statement(client, statements, sql)?;
                let params: Vec<_> = params.iter().map(Val::pg).collect();
                Ok(client.execute(&stmt, &params)?)
            }
        }
    }

    /// Runs a query and reads every row, column `i` as `kinds[i]`.
    pub(crate) fn query(
        &mut self,
        sql: &str,
        params: &[Val],
        kinds: &[Kind],
    ) -> Result<Vec<Row>, StoreError> {
        match self {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    let mut vals = Vec::with_capacity(kinds.len());
                    for (i, kind) in kinds.iter().enumerate() {
                        vals.push(match kind {
                            Kind::I64 => Val::I64(row.get(i)?),
                            Kind::I32 => {
                                let v: Option<i64> = row.get(i)?;
                                Val::I32(v.map(i32::try_from).transpose().map_err(|e| {
                                    StoreError::Corrupt {
                                        what: "an INTEGER column",
                                        detail: e.to_string(),
                                    }
                                })?)
                            }
                            Kind::F64 => Val::F64(row.get(i)?),
                            Kind::Text => Val::Text(row.get(i)?),
                        });
                    }
                    out.push(Row(vals.into_iter()));
                }
                Ok(out)
            }
            Conn::Postgres { client, statements } => {
                let stmt = pg_statement(client, statements, sql)?;
                let params: Vec<_> = params.iter().map(Val::pg).collect();
                let rows = client.query(&stmt, &params)?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let mut vals = Vec::with_capacity(kinds.len());
                    for (i, kind) in kinds.iter().enumerate() {
                        vals.push(match kind {
                            Kind::I64 => Val::I64(row.try_get(i)?),
                            Kind::I32 => Val::I32(row.try_get(i)?),
                            Kind::F64 => Val::F64(row.try_get(i)?),
                            Kind::Text => Val::Text(row.try_get(i)?),
                        });
                    }
                    out.push(Row(vals.into_iter()));
                }
                Ok(out)
            }
        }
    }

    /// Runs a script of several statements without parameters (the migrations).
    pub(crate) fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres { client, .. } => Ok(client.batch_execute(sql)?),
        }
    }

    /// Runs `f` in one transaction: all of it is kept, or none of it. On SQLite the write
    /// lock is taken up front (`BEGIN IMMEDIATE`) so a reader upgrading to a writer can never
    /// deadlock with another process; the busy timeout then makes writers queue.
    pub(crate) fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let begin = match self {
            Conn::Sqlite(_) => "BEGIN IMMEDIATE",
            Conn::Postgres { .. } => "BEGIN",
        };
        self.run_in(begin, f)
    }

    /// Runs `f` on one consistent snapshot, so a report read while a bench writes never mixes
    /// two moments. Takes no write lock: SQLite (WAL) readers never block the writer.
    pub(crate) fn read_transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let begin = match self {
            Conn::Sqlite(_) => "BEGIN DEFERRED",
            Conn::Postgres { .. } => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        self.run_in(begin, f)
    }

    fn run_in<T>(
        &mut self,
        begin: &str,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.batch(begin)?;
        match f(self) {
            Ok(v) => {
                if let Err(e) = self.batch("COMMIT") {
                    let _ = self.batch("ROLLBACK");
                    return Err(e);
                }
                Ok(v)
            }
            Err(e) => {
                if let Err(rollback) = self.batch("ROLLBACK") {
                    tracing::warn!(error = %rollback, "rollback failed after {e}");
                }
                Err(e)
            }
        }
    }

    /// Inside a transaction, keeps other processes from migrating the same database at the
    /// same time. SQLite already holds its write lock (`BEGIN IMMEDIATE`); PostgreSQL takes a
    /// transaction-scoped advisory lock.
    pub(crate) fn lock_for_migration(&mut self) -> Result<(), StoreError> {
        match self {
            Conn::Sqlite(_) => Ok(()),
            // "hearth" in ASCII, as an arbitrary but recognisable lock key.
            Conn::Postgres { .. } => self.batch("SELECT pg_advisory_xact_lock(114784635876456)"),
        }
    }
}

/// The prepared statement for `sql`, preparing it on first use.
fn pg_statement(
    client: &mut postgres::Client,
    statements: &mut HashMap<String, postgres::Statement>,
    sql: &str,
) -> Result<postgres::Statement, StoreError> {
    if let Some(stmt) = statements.get(sql) {
        return Ok(stmt.clone());
    }
    let stmt = client.prepare(&dollar_placeholders(sql))?;
    statements.insert(sql.to_string(), stmt.clone());
    Ok(stmt)
}

/// One result row, read left to right in the order of the SELECT list.
pub(crate) struct Row(std::vec::IntoIter<Val>);

impl Row {
    fn next(&mut self, what: &'static str) -> Result<Val, StoreError> {
        self.0.next().ok_or(StoreError::Corrupt {
            what,
            detail: "missing column".into(),
        })
    }

    /// A nullable BIGINT.
    pub(crate) fn opt_i64(&mut self, what: &'static str) -> Result<Option<i64>, StoreError> {
        match self.next(what)? {
            Val::I64(v) => Ok(v),
            Val::I32(v) => Ok(v.map(i64::from)),
            other => Err(wrong_kind(what, &other)),
        }
    }

    /// A BIGINT that must be there.
    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, StoreError> {
        self.opt_i64(what)?.ok_or_else(|| null(what))
    }

    /// A nullable BIGINT holding a u64.
    pub(crate) fn opt_u64(&mut self, what: &'static str) -> Result<Option<u64>, StoreError> {
        self.opt_i64(what)?
            .map(|v| {
                u64::try_from(v).map_err(|_| StoreError::Corrupt {
                    what,
                    detail: format!("{v} is negative"),
                })
            })
            .transpose()
    }

    /// A BIGINT holding a u64.
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, StoreError> {
        self.opt_u64(what)?.ok_or_else(|| null(what))
    }

    /// A BIGINT holding a u32.
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, StoreError> {
        let v = self.i64(what)?;
        u32::try_from(v).map_err(|_| StoreError::Corrupt {
            what,
            detail: format!("{v} is out of range"),
        })
    }

    /// A nullable INTEGER.
    pub(crate) fn opt_i32(&mut self, what: &'static str) -> Result<Option<i32>, StoreError> {
        match self.next(what)? {
            Val::I32(v) => Ok(v),
            other => Err(wrong_kind(what, &other)),
        }
    }

    /// A nullable DOUBLE PRECISION.
    pub(crate) fn opt_f64(&mut self, what: &'static str) -> Result<Option<f64>, StoreError> {
        match self.next(what)? {
            Val::F64(v) => Ok(v),
            other => Err(wrong_kind(what, &other)),
        }
    }

    /// A DOUBLE PRECISION that must be there.
    pub(crate) fn f64(&mut self, what: &'static str) -> Result<f64, StoreError> {
        self.opt_f64(what)?.ok_or_else(|| null(what))
    }

    /// A nullable TEXT.
    pub(crate) fn opt_text(&mut self, what: &'static str) -> Result<Option<String>, StoreError> {
        match self.next(what)? {
            Val::Text(v) => Ok(v),
            other => Err(wrong_kind(what, &other)),
        }
    }

    /// A TEXT that must be there.
    pub(crate) fn text(&mut self, what: &'static str) -> Result<String, StoreError> {
        self.opt_text(what)?.ok_or_else(|| null(what))
    }
}

fn null(what: &'static str) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: "NULL where a value is required".into(),
    }
}

fn wrong_kind(what: &'static str, v: &Val) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: format!("unexpected value {v:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::dollar_placeholders;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            dollar_placeholders("SELECT a FROM t WHERE b = ? AND c = '?' AND d = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2"
        );
        assert_eq!(dollar_placeholders("SELECT 1"), "SELECT 1");
    }
}
