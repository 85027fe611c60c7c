//! Connecting to PostgreSQL, for the state backend (`store::postgres`) and the `postgres`
//! sink alike: the connection string, TLS, and messages that never show the password.
//!
//! TLS: `sslmode=disable` connects in plain text; `prefer` (the default) and `require` use
//! TLS when the server offers it, and then always verify the server's certificate against
//! the system's roots, or against `sslrootcert=FILE` when given. libpq's `verify-ca` and
//! `verify-full` are accepted and mean the same. That is stricter than libpq, whose
//! `require` does not verify: a server with a private CA needs `sslrootcert`.
//!
//! The connection string is never logged (it may hold the password); [`Target::describe`]
//! names the hosts, database and user instead.

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
use tokio_postgres::{AsyncMessage, Client, NoTls, Socket};

/// Used when the connection string sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A server to connect to: the parsed connection string and its TLS settings.
#[derive(Clone)]
pub struct Target {
    config: tokio_postgres::Config,
    /// Present unless `sslmode=disable`.
    tls: Option<RustlsConnect>,
    /// Where and as whom, for messages: never the password.
    described: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.described)
    }
}

impl Target {
    /// Parses `dsn` (libpq `key=value` pairs or a `postgres://` URL); a relative
    /// `sslrootcert` goes through `resolve`. The error never quotes the string.
    pub fn parse(dsn: &str, resolve: impl Fn(&Path) -> PathBuf) -> Result<Target, TargetError> {
        let (dsn, rootcert) = take_tls_options(dsn).map_err(TargetError::Dsn)?;
        let mut config =
            tokio_postgres::Config::from_str(&dsn).map_err(|e| TargetError::Dsn(describe_parse_error(&e)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("cen-poller");
        }
        let tls = match config.get_ssl_mode() {
            SslMode::Disable => None,
            _ => Some(RustlsConnect::new(rootcert.map(|p| resolve(&p)).as_deref())?),
        };
        Ok(Target { described: describe_target(&config), config, tls })
    }

    /// Names the connections `name` in `pg_stat_activity`, unless the connection string
    /// names them already.
    pub fn name_connections(&mut self, name: &str) {
        if self.config.get_application_name().is_none_or(|n| n == "cen-poller") {
            self.config.application_name(name);
        }
    }

    /// Hosts, ports, database and user (`db:5432/cen as app`).
    pub fn describe(&self) -> &str {
        &self.described
    }

    /// Whether TLS may be used (`sslmode` is not `disable`).
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens a connection; its driver runs on the returned task, which ends when the
    /// connection does. Server messages that are not answers (`NOTIFY`) go to `on_notify`
    /// with their channel name.
    pub async fn connect_with(
        &self,
        on_notify: impl Fn(&str) + Send + 'static,
    ) -> Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
        match &self.tls {
            None => open(&self.config, NoTls, on_notify).await,
            Some(tls) => open(&self.config, tls.clone(), on_notify).await,
        }
    }

    /// Opens a connection whose driver runs on a task of its own.
    pub async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        self.connect_with(|_| {}).await.map(|(client, _)| client)
    }

    /// A pool of at most `max` connections, opened as needed; a connection found closed is
    /// replaced. `wait` bounds how long a caller waits for a connection (a free one, or a
    /// new one being opened).
    pub fn pool(&self, max: usize, wait: Duration) -> Result<deadpool_postgres::Pool, TargetError> {
        // With `sslmode=disable` tokio-postgres never calls the TLS hook; one type serves both.
        let tls = match &self.tls {
            Some(tls) => tls.clone(),
            None => RustlsConnect::new(None)?,
        };
        let manager = deadpool_postgres::Manager::from_config(
            self.config.clone(),
            tls,
            deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast },
        );
        deadpool_postgres::Pool::builder(manager)
            .max_size(max)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(wait))
            .create_timeout(Some(wait))
            .build()
            .map_err(|e| TargetError::Pool(e.to_string()))
    }
}

async fn open<T>(
    config: &tokio_postgres::Config,
    tls: T,
    on_notify: impl Fn(&str) + Send + 'static,
) -> Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket> + 'static,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await?;
    let driver = tokio::spawn(async move {
        let messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        futures::pin_mut!(messages);
        while let Some(message) = futures::StreamExt::next(&mut messages).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => on_notify(n.channel()),
                Ok(_) => {}
                Err(e) => {
                    // The next statement fails too and is reported there, by its caller.
                    tracing::debug!(error = %e, "PostgreSQL connection closed");
                    return;
                }
            }
        }
    });
    Ok((client, driver))
}

/// Why a connection string cannot be used. Never shows the string: it holds the password.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
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
    #[error("cannot set up the connection pool: {0}")]
    Pool(String),
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

/// The server's message and SQLSTATE, or the client's error. Only the primary message: the
/// detail and context of a rejected record may quote its content (G6).
pub fn pg_error(e: &tokio_postgres::Error) -> String {
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
pub fn take_tls_options(dsn: &str) -> Result<(String, Option<PathBuf>), DsnProblem> {
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
pub struct RustlsConnect(Arc<rustls::ClientConfig>);

impl RustlsConnect {
    pub fn new(rootcert: Option<&Path>) -> Result<RustlsConnect, TargetError> {
        let mut roots = rustls::RootCertStore::empty();
        match rootcert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|source| TargetError::ReadRootCert { path: path.to_owned(), source })?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|source| TargetError::NotPem { path: path.to_owned(), source })?;
                    roots.add(cert).map_err(|source| TargetError::UnusableCert { path: path.to_owned(), source })?;
                }
                if roots.is_empty() {
                    return Err(TargetError::NoCertificate(path.to_owned()));
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
            .map_err(TargetError::Tls)?
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
pub struct RustlsConnectTo {
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
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

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
    fn the_description_never_shows_the_password() {
        let target =
            Target::parse("host=db user=app password=hunter2 dbname=cen sslmode=disable", Path::to_path_buf).unwrap();
        assert_eq!(target.describe(), "db:5432/cen as app");
        assert!(!target.uses_tls());
        // A malformed string whose unquoted password has a space: tokio-postgres would call
        // the second half an unknown option and quote it.
        let e = Target::parse("host=db password=hunter2 secret", Path::to_path_buf).unwrap_err().to_string();
        assert!(!e.contains("secret") && !e.contains("hunter2"), "{e}");
        let e = Target::parse("host=db port=x", Path::to_path_buf).unwrap_err().to_string();
        assert!(e.contains("`port`"), "{e}");
        let e = Target::parse("host=db sslrootcert=/nonexistent/ca.pem", Path::to_path_buf).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
