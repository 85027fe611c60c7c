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
//! TLS: `sslmode=disable` connects in plain text; `prefer` (the default) and `require` use
//! TLS when the server offers it, and then always verify the server's certificate against
//! the system's roots, or against `sslrootcert=FILE` when given. libpq's `verify-ca` and
//! `verify-full` are accepted and mean the same. That is stricter than libpq, whose
//! `require` does not verify: a server with a private CA needs `sslrootcert`.
//!
//! The connection string is never logged (it may hold the password); messages name the
//! hosts, database and user instead.

mod config;

pub use config::Config;

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::{Client, NoTls, Socket, Statement};

use super::{BuildError, Outcomes, Record, Sink, SinkError};

/// Records per statement: large enough that a backlog drains at thousands per second, small
/// enough that one statement stays well under a second and a few MB.
const MAX_BATCH: usize = 500;
/// Longest wait for the connection (with the table check) or one statement; a server that
/// hangs longer is treated as down and the batch is retried.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Used when the connection string sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Inserts records into a PostgreSQL table.
pub struct PostgresSink {
    name: String,
    pg: tokio_postgres::Config,
    /// Present unless `sslmode=disable`.
    tls: Option<RustlsConnect>,
    /// `"schema"."table"` or `"table"`, quoted.
    table: String,
    /// Where and as whom, for messages: never the password.
    target: String,
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
    #[error("the connection string is not valid: {0}")]
    Dsn(DsnProblem),
    #[error("sslrootcert: cannot read {path}: {source}")]
    ReadRootCert {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("sslrootcert {path}: not a PEM certificate: {source}")]
    NotPem {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("sslrootcert {path}: unusable certificate: {source}")]
    UnusableCert {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("sslrootcert {0}: no certificate in the file")]
    NoCertificate(PathBuf),
    #[error("cannot set up TLS: {0}")]
    Tls(#[source] rustls::Error),
}

/// What is wrong with a connection string, named without quoting any of it (a malformed
/// string may cut the password anywhere).
#[derive(Debug, thiserror::Error)]
pub enum DsnProblem {
    /// tokio-postgres' "invalid value for option `…`": names the option, not the value.
    #[error("{0}")]
    InvalidValue(String),
    #[error("an option it does not know (values with spaces or quotes must be quoted: password='a b')")]
    UnknownOption,
    #[error("it is neither key=value pairs nor a postgres:// URL")]
    Unrecognised,
    #[error("a word without `=` (values with spaces must be quoted: password='a b')")]
    WordWithoutEquals,
    #[error("a quoted value lacks its closing quote")]
    UnclosedQuote,
    #[error("a query value is not valid percent-encoded UTF-8")]
    PercentEncoding,
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
        let (dsn, rootcert) = take_tls_options(dsn).map_err(|e| fail(Error::Dsn(e)))?;
        let mut pg = tokio_postgres::Config::from_str(&dsn).map_err(|e| fail(Error::Dsn(describe_parse_error(&e))))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(CONNECT_TIMEOUT);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("cen-poller");
        }
        let tls = match pg.get_ssl_mode() {
            SslMode::Disable => None,
            _ => Some(RustlsConnect::new(rootcert.map(|p| resolve(&p)).as_deref()).map_err(fail)?),
        };
        Ok(PostgresSink {
            name: name.to_owned(),
            target: describe_target(&pg),
            pg,
            tls,
            table,
            conn: tokio::sync::Mutex::new(None),
        })
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
            self.name, self.target
        ))
    }

    /// Opens a connection, creates the table unless it exists, prepares the insert.
    async fn connect(&self) -> Result<Conn, SinkError> {
        let client = match &self.tls {
            None => open(&self.pg, NoTls).await,
            Some(tls) => open(&self.pg, tls.clone()).await,
        }
        .map_err(|e| {
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
        tracing::info!(sink = %self.name, target = %self.target, "connected to PostgreSQL");
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

/// Connects and spawns the connection's I/O task; the task ends when the client is dropped.
async fn open<T>(config: &tokio_postgres::Config, tls: T) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket> + 'static,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            // The next statement fails too and is reported there, with the sink's name.
            tracing::debug!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

fn classify(e: &tokio_postgres::Error) -> Failure {
    match e.code().map(|c| c.code()) {
        Some(code) if code.starts_with("22") || code.starts_with("23") => Failure::Data(pg_error(e)),
        _ => Failure::Transient(pg_error(e)),
    }
}

/// The server's message and SQLSTATE, or the client's error. Only the primary message: the
/// detail and context of a rejected record may quote its content (G6).
fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let more = s.to_string();
                if !text.contains(&more) {
                    text.push_str(": ");
                    text.push_str(&more);
                }
                source = s.source();
            }
            text
        }
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

/// Hosts, ports, database and user, for messages.
fn describe_target(pg: &tokio_postgres::Config) -> String {
    let ports = pg.get_ports();
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match h {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() { "localhost:5432".to_owned() } else { hosts.join(",") };
    format!(
        "{hosts}/{} as {}",
        pg.get_dbname().unwrap_or("(default database)"),
        pg.get_user().unwrap_or("(default user)")
    )
}

/// The parse error without anything the string held: tokio-postgres quotes an unknown
/// option's name, which for a malformed string can be a piece of the password.
fn describe_parse_error(e: &tokio_postgres::Error) -> DsnProblem {
    let detail = std::error::Error::source(e).map(|s| s.to_string()).unwrap_or_default();
    if detail.starts_with("invalid value for option") {
        DsnProblem::InvalidValue(detail)
    } else if detail.starts_with("unknown option") {
        DsnProblem::UnknownOption
    } else {
        DsnProblem::Unrecognised
    }
}

/// Removes `sslrootcert` (which tokio-postgres does not know) and maps libpq's
/// `sslmode=verify-ca`/`verify-full` to `require` (this sink always verifies). Returns the
/// string for tokio-postgres and the root certificate file, if any.
fn take_tls_options(dsn: &str) -> Result<(String, Option<PathBuf>), DsnProblem> {
    let mut rootcert = None;
    let mut map = |key: &str, value: String| -> Option<String> {
        match (key, value.as_str()) {
            ("sslrootcert", _) => {
                rootcert = Some(PathBuf::from(value));
                None
            }
            ("sslmode", "verify-ca" | "verify-full") => Some("require".to_owned()),
            _ => Some(value),
        }
    };
    let dsn = dsn.trim();
    if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        let Some((base, query)) = dsn.split_once('?') else {
            return Ok((dsn.to_owned(), None));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = percent_decode(value).ok_or(DsnProblem::PercentEncoding)?;
            if let Some(v) = map(key, decoded.clone()) {
                kept.push(if v == decoded { pair.to_owned() } else { format!("{key}={v}") });
            }
        }
        let dsn = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        return Ok((dsn, rootcert));
    }
    let mut out = Vec::new();
    for (key, value) in parse_key_values(dsn)? {
        if let Some(v) = map(&key, value) {
            out.push(format!("{key}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")));
        }
    }
    Ok((out.join(" "), rootcert))
}

/// libpq's `key = value` list: values may be single-quoted, with `\'` and `\\` inside.
fn parse_key_values(s: &str) -> Result<Vec<(String, String)>, DsnProblem> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            // Not naming the word: in a malformed string it may be a piece of the password.
            return Err(DsnProblem::WordWithoutEquals);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => {
                        return Err(DsnProblem::UnclosedQuote);
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// tokio-postgres' TLS hook on rustls (the crate's own TLS stack): verifies the server's
/// certificate against the system's roots or the given file.
#[derive(Clone)]
struct RustlsConnect(Arc<rustls::ClientConfig>);

impl RustlsConnect {
    fn new(rootcert: Option<&Path>) -> Result<RustlsConnect, Error> {
        let mut roots = rustls::RootCertStore::empty();
        match rootcert {
            Some(path) => {
                let pem =
                    std::fs::read(path).map_err(|source| Error::ReadRootCert { path: path.to_owned(), source })?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|source| Error::NotPem { path: path.to_owned(), source })?;
                    roots.add(cert).map_err(|source| Error::UnusableCert { path: path.to_owned(), source })?;
                }
                if roots.is_empty() {
                    return Err(Error::NoCertificate(path.to_owned()));
                }
            }
            None => {
                // Unreadable system certificates only matter if the server offers TLS; the
                // handshake then fails with a message of its own.
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(Error::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // PostgreSQL 17 checks the ALPN name when a client offers one.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(RustlsConnect(Arc::new(config)))
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnectTo;
    type Error = rustls_pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnectTo, Self::Error> {
        Ok(RustlsConnectTo { config: self.0.clone(), name: ServerName::try_from(domain.to_owned())? })
    }
}

/// [`RustlsConnect`] for one server name.
struct RustlsConnectTo {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnectTo
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<RustlsStream<S>>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config).connect(self.name, stream).await?;
            Ok(RustlsStream(tls))
        })
    }
}

/// A TLS connection to the server.
struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    /// No channel binding: SCRAM authenticates without it (`channel_binding=prefer`).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
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
    fn tls_options_are_taken_out_of_key_value_strings() {
        let (dsn, root) =
            take_tls_options("host=db port = 5433 password='a \\'b' sslmode=verify-full sslrootcert=/etc/ca.pem")
                .unwrap();
        assert_eq!(root, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(dsn, "host='db' port='5433' password='a \\'b' sslmode='require'");
        let pg = tokio_postgres::Config::from_str(&dsn).unwrap();
        assert_eq!(pg.get_password(), Some(&b"a 'b"[..]));
        assert_eq!(pg.get_ssl_mode(), SslMode::Require);
        assert!(take_tls_options("host=db password='open").is_err());
        assert!(take_tls_options("host").is_err());
    }

    #[test]
    fn tls_options_are_taken_out_of_urls() {
        let (dsn, root) = take_tls_options(
            "postgresql://u:p%40ss@db:5433/ledger?sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(root, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(dsn, "postgresql://u:p%40ss@db:5433/ledger?sslmode=require&application_name=x");
        let pg = tokio_postgres::Config::from_str(&dsn).unwrap();
        assert_eq!(pg.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(take_tls_options("postgres://db/x").unwrap(), ("postgres://db/x".to_owned(), None));
        assert_eq!(take_tls_options("postgres://db/x?sslrootcert=a").unwrap().0, "postgres://db/x");
    }

    #[test]
    fn messages_never_show_the_password() {
        let sink = PostgresSink::new("ledger", "host=db user=app password=hunter2 dbname=cen", "t", Path::to_path_buf)
            .unwrap();
        assert_eq!(sink.target, "db:5432/cen as app");
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
        assert!(sink.tls.is_none());
        let Err(e) = PostgresSink::new("ledger", "host=db sslrootcert=/nonexistent/ca.pem", "t", Path::to_path_buf)
        else {
            panic!("accepted");
        };
        let e = e.to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
