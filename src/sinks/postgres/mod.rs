//! The `postgres` sink: each record inserted into one table, ids already there ignored.
//!
//! A batch is one `INSERT … SELECT … FROM unnest(…) ON CONFLICT (id) DO NOTHING` statement,
//! so it commits whole or not at all, and a repeated delivery (a batch in flight when the
//! daemon was killed, G2) changes nothing: the table holds each id once.
//!
//! The connection is opened at the first delivery, not at start, so a database that is
//! down when the daemon starts only delays this sink. Opening it creates the table when it
//! is missing (the DDL is in the README) and prepares the insert. Any failure that may pass
//! (connection refused or lost, timeout, serialization failure, admin shutdown, disk full,
//! missing privileges) makes the whole batch retryable and drops the connection; the next
//! batch opens a new one. When the database rejects the batch as data (SQLSTATE classes 22
//! and 23: a record that is not valid `jsonb`, a timestamp it cannot read), the batch is
//! inserted again record by record to find the culprits, which become dead letters; the
//! others are delivered.
//!
//! Connecting (the connection string, TLS verified as libpq's `verify-full` would, messages
//! that never show the password) is `crate::pg`'s, shared with the state backend.

mod config;

pub use config::Config;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_postgres::{Client, Statement};

use crate::pg::{Target, pg_error};

use super::{BuildError, Outcomes, Record, Sink, SinkError};

/// Records per statement: large enough that a backlog drains at thousands per second, small
/// enough that one statement stays well under a second and a few MB.
const MAX_BATCH: usize = 500;
/// Longest wait for the connection (with the table check) or one statement; a server that
/// hangs longer is treated as down and the batch is retried.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Inserts records into a PostgreSQL table.
pub struct PostgresSink {
    name: String,
    /// The server, its TLS settings, and how to name it in messages (never the password).
    target: Target,
    /// `"schema"."table"` or `"table"`, quoted.
    table: String,
    conn: tokio::sync::Mutex<Option<Conn>>,
}

/// An open connection with the insert prepared on it.
struct Conn {
    client: Client,
    insert: Statement,
}

/// Why a statement failed, as far as retrying is concerned.
enum Failure {
    /// The database rejects what was sent (SQLSTATE class 22 or 23): retrying the same
    /// records cannot help, but the other records of the batch may be fine.
    Data(String),
    /// Anything else: the connection, the server or its configuration; may pass.
    Transient(String),
}

/// Why a postgres sink cannot be built from its entry. Never shows the connection string:
/// it holds the password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("give url_file (or url)")]
    NoUrl,
    #[error("table {0:?}: write `name` or `schema.name`, each of letters, digits and _, at most 63 characters")]
    Table(String),
    #[error(transparent)]
    Target(#[from] crate::pg::TargetError),
}

impl PostgresSink {

    /// A sink for connection string `dsn` (key=value or `postgres://` URL) and `table`
    /// (`name` or `schema.name`); relative `sslrootcert` paths go through `resolve`.
    pub fn new(
        name: &str,
        dsn: &str,
        table: &str,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<PostgresSink, BuildError> {
        let fail = |e: Error| BuildError::new("postgres", name, e);
        let table = quote_table(table).map_err(fail)?;
        let target = Target::parse(dsn, resolve).map_err(|e| fail(e.into()))?;
        Ok(PostgresSink { name: name.to_owned(), target, table, conn: tokio::sync::Mutex::new(None) })
    }

    /// The table's name as used in SQL (quoted).
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The statement that creates the table when it is missing (the README shows it).
    pub fn create_table_sql(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (
    id text PRIMARY KEY,
    source text NOT NULL,
    subject text NOT NULL,
    created_timestamp timestamptz NOT NULL,
    received_via text NOT NULL,
    record jsonb NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT now()
)",
            self.table
        )
    }

    /// One statement for a whole batch: six parallel text arrays, one element per record.
    /// The record is cast to jsonb once, in the inner query; `source` is read from it.
    fn insert_sql(&self) -> String {
        format!(
            "INSERT INTO {} (id, source, subject, created_timestamp, received_via, record)
             SELECT t.id, t.record ->> 'source', t.subject, t.created::timestamptz, t.via, t.record
             FROM (SELECT u.id, u.subject, u.created, u.via, u.record::jsonb AS record
                   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                        AS u(id, subject, created, via, record)
                   OFFSET 0) AS t
             ON CONFLICT (id) DO NOTHING",
            self.table
        )
    }

    fn retryable(&self, what: &str, error: &str) -> SinkError {
        SinkError::Retryable(format!(
            "postgres sink {}: {what} ({}): {error}; retrying with backoff",
            self.name,
            self.target.describe()
        ))
    }

    /// Opens a connection, creates the table unless it exists, prepares the insert.
    async fn connect(&self) -> Result<Conn, SinkError> {
        let client = self.target.connect().await.map_err(|e| {
            self.retryable("cannot connect (is the server up and the connection string in url_file right?)", &pg_error(&e))
        })?;
        // Only create when missing: CREATE TABLE IF NOT EXISTS needs the CREATE privilege
        // even when the table is there, and a least-privilege role may have only INSERT.
        let exists: Option<String> = client
            .query_one("SELECT to_regclass($1)::text", &[&self.table])
            .await
            .map_err(|e| self.retryable("cannot look up the table", &pg_error(&e)))?
            .get(0);
        if exists.is_none() {
            client.batch_execute(&self.create_table_sql()).await.map_err(|e| {
                self.retryable(
                    &format!("cannot create table {} (create it as the README shows, or grant CREATE)", self.table),
                    &pg_error(&e),
                )
            })?;
            tracing::info!(sink = %self.name, table = %self.table, "created the PostgreSQL table");
        }
        let insert = client.prepare(&self.insert_sql()).await.map_err(|e| {
            self.retryable(
                &format!("cannot prepare the insert into {} (does it have the README's columns?)", self.table),
                &pg_error(&e),
            )
        })?;
        tracing::info!(sink = %self.name, target = %self.target.describe(), "connected to PostgreSQL");
        Ok(Conn { client, insert })
    }

    /// Inserts `batch` in one statement.
    async fn insert(&self, conn: &Conn, batch: &[Record]) -> Result<(), Failure> {
        let ids: Vec<&str> = batch.iter().map(|l| l.id.as_str()).collect();
        let subjects: Vec<&str> = batch.iter().map(|l| l.subject.as_str()).collect();
        let created: Vec<&str> = batch.iter().map(|l| l.created_raw.as_str()).collect();
        let via: Vec<&str> = batch.iter().map(|l| l.received_via.as_str()).collect();
        let records: Vec<&str> = batch.iter().map(|l| l.record.as_str()).collect();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [&ids, &subjects, &created, &via, &records];
        let run = conn.client.execute(&conn.insert, &params);
        match tokio::time::timeout(TIMEOUT, run).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(Failure::Transient(format!("no answer within {}s", TIMEOUT.as_secs()))),
        }
    }

    async fn deliver_batch(&self, batch: &[Record]) -> Outcomes {
        let mut slot = self.conn.lock().await;
        if slot.as_ref().is_some_and(|c| c.client.is_closed()) {
            *slot = None;
        }
        if slot.is_none() {
            match tokio::time::timeout(TIMEOUT, self.connect()).await {
                Ok(Ok(conn)) => *slot = Some(conn),
                Ok(Err(e)) => return vec![Err(e); batch.len()],
                Err(_) => {
                    let e = self.retryable("cannot connect", &format!("no answer within {}s", TIMEOUT.as_secs()));
                    return vec![Err(e); batch.len()];
                }
            }
        }
        let Some(conn) = slot.as_ref() else {
            return vec![Err(self.retryable("cannot connect", "no connection")); batch.len()];
        };
        match self.insert(conn, batch).await {
            Ok(()) => vec![Ok(()); batch.len()],
            Err(Failure::Transient(e)) => {
                *slot = None;
                vec![Err(self.retryable("cannot insert", &e)); batch.len()]
            }
            Err(Failure::Data(e)) if batch.len() == 1 => vec![Err(self.rejected(&e))],
            Err(Failure::Data(e)) => {
                tracing::debug!(sink = %self.name, error = %e, "the batch has a record the database rejects; inserting one by one");
                let mut outcomes = Vec::with_capacity(batch.len());
                for (i, item) in batch.iter().enumerate() {
                    match self.insert(conn, std::slice::from_ref(item)).await {
                        Ok(()) => outcomes.push(Ok(())),
                        Err(Failure::Data(e)) => outcomes.push(Err(self.rejected(&e))),
                        Err(Failure::Transient(e)) => {
                            let e = self.retryable("cannot insert", &e);
                            outcomes.extend(std::iter::repeat_n(Err(e), batch.len() - i));
                            *slot = None;
                            break;
                        }
                    }
                }
                outcomes
            }
        }
    }

    fn rejected(&self, error: &str) -> SinkError {
        SinkError::Permanent(format!(
            "postgres sink {}: table {} rejects this record: {error} (fix the table or the record, then `cen-poller dead-letters retry`)",
            self.name, self.table
        ))
    }
}

impl Sink for PostgresSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn deliver<'a>(&'a self, batch: &'a [Record]) -> BoxFuture<'a, Outcomes> {
        Box::pin(self.deliver_batch(batch))
    }

    /// SIGHUP: the next batch opens a new connection (e.g. after a failover behind DNS).
    fn reopen(&self) {
        if let Ok(mut slot) = self.conn.try_lock() {
            *slot = None;
        }
    }
}

fn classify(e: &tokio_postgres::Error) -> Failure {
    match e.code().map(|c| c.code()) {
        Some(code) if code.starts_with("22") || code.starts_with("23") => Failure::Data(pg_error(e)),
        _ => Failure::Transient(pg_error(e)),
    }
}

/// `name` or `schema.name` as a quoted identifier. Quoting keeps the case as written and
/// allows names that are SQL keywords.
pub fn quote_table(table: &str) -> Result<String, Error> {
    let parts: Vec<&str> = table.split('.').collect();
    let plain = |p: &&str| !p.is_empty() && p.len() <= 63 && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if parts.len() > 2 || !parts.iter().all(plain) {
        return Err(Error::Table(table.to_owned()));
    }
    Ok(parts.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_quoted_and_checked() {
        assert_eq!(quote_table("cen_notifications").unwrap(), "\"cen_notifications\"");
        assert_eq!(quote_table("ops.CEN").unwrap(), "\"ops\".\"CEN\"");
        for bad in ["", ".x", "x.", "a.b.c", "a-b", "x\"y", &"t".repeat(64)] {
            assert!(quote_table(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn messages_never_show_the_password() {
        let sink = PostgresSink::new("ledger", "host=db user=app password=hunter2 dbname=cen", "t", Path::to_path_buf)
            .unwrap();
        assert_eq!(sink.target.describe(), "db:5432/cen as app");
        // A malformed string whose unquoted password has a space: tokio-postgres would call
        // the second half an unknown option and quote it.
        let Err(e) = PostgresSink::new("ledger", "host=db password=hunter2 secret", "t", Path::to_path_buf) else {
            panic!("accepted");
        };
        let e = e.to_string();
        assert!(!e.contains("secret") && !e.contains("hunter2"), "{e}");
        assert!(e.contains("ledger"), "{e}");
        let Err(e) = PostgresSink::new("ledger", "host=db port=x", "t", Path::to_path_buf) else { panic!("accepted") };
        let e = e.to_string();
        assert!(e.contains("`port`"), "{e}");
    }

    #[test]
    fn sslmode_disable_needs_no_tls_and_a_missing_root_file_is_named() {
        let sink = PostgresSink::new("ledger", "host=db sslmode=disable", "t", Path::to_path_buf).unwrap();
        assert!(!sink.target.uses_tls());
        let Err(e) = PostgresSink::new("ledger", "host=db sslrootcert=/nonexistent/ca.pem", "t", Path::to_path_buf)
        else {
            panic!("accepted");
        };
        let e = e.to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
