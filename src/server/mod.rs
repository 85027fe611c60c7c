//! Serving an inbound HTTP endpoint (push, VGS, admin) over TLS — with or without client
//! certificates — or plain HTTP, with the limits a public endpoint needs.
//!
//! Invariants (the numbers are [`Limits`], configured per listener):
//! - A connection must deliver a complete request head within `header_timeout` of its
//!   accept — TLS handshake, HTTP/1-or-HTTP/2 detection and the HTTP/2 preface included —
//!   and is closed after `idle_timeout` with no request; a request's body must arrive
//!   within `body_timeout` ([`BodyLimit`]). `connections` keeps these deadlines.
//! - At most `max_connections` are open; at the cap a new connection closes the one that
//!   has gone longest without progress unless every one has a request being answered, so
//!   idle or slow clients cannot keep a legitimate request out.
//! - The TLS configuration is swappable: a SIGHUP loads new certificates for new
//!   connections while open ones go on.

mod connections;
mod error;

pub use error::{ListenerError, TlsError};

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

use crate::metrics::CodeLabels;
use crate::units::Dur;

/// `[push.limits]`, `[vgs.limits]`, `[admin.limits]`: how long a client may take and how
/// many connections a listener keeps open. A client that connects and says nothing holds a
/// slot for at most `header_timeout`; at the cap a new connection takes the slot of the one
/// that has gone longest without progress (waiting, or still sending its body), so idle or
/// slow clients cannot keep a legitimate request out; only connections whose request is
/// being answered keep theirs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerLimits {
    /// Connections open at once. Default 1024: far more than Mastercard or VGS open, and
    /// few enough file descriptors for the default `LimitNOFILE`.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// From accept to a complete first request head — TLS handshake, protocol detection
    /// and HTTP/2 preface included — and from the first byte of a later HTTP/1 head to its
    /// end. Default `10s`: a sender on the other side of the world needs well under a
    /// second.
    #[serde(default = "ten_seconds")]
    pub header_timeout: Dur,
    /// A kept-alive connection with no request in flight is closed this long after its
    /// last answer. Default `30s`: long enough for a sender's connection pool to reuse it
    /// between bursts.
    #[serde(default = "thirty_seconds")]
    pub idle_timeout: Dur,
    /// A request's body must arrive within this, else `408`. Default `30s`: 10 MiB at
    /// well under 1 MiB/s.
    #[serde(default = "thirty_seconds")]
    pub body_timeout: Dur,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_connections: default_max_connections(),
            header_timeout: ten_seconds(),
            idle_timeout: thirty_seconds(),
            body_timeout: thirty_seconds(),
        }
    }
}

impl ListenerLimits {
    /// Checks the values; `section` is `push`, `vgs` or `admin`. Returns the key and message.
    pub(crate) fn check(&self, section: &str) -> Result<(), (String, String)> {
        if !(1..=65_536).contains(&self.max_connections) {
            return Err((format!("{section}.limits.max_connections"), "must be between 1 and 65536".into()));
        }
        for (key, value) in [
            ("header_timeout", &self.header_timeout),
            ("idle_timeout", &self.idle_timeout),
            ("body_timeout", &self.body_timeout),
        ] {
            if value.0.is_zero() {
                return Err((format!("{section}.limits.{key}"), "must be more than 0s".into()));
            }
        }
        Ok(())
    }
}

fn default_max_connections() -> usize {
    1024
}
fn ten_seconds() -> Dur {
    Dur::secs(10)
}
fn thirty_seconds() -> Dur {
    Dur::secs(30)
}

/// Limits of one listener (`[push.limits]`, `[vgs.limits]`, `[admin.limits]`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once. At the cap a new connection closes one that is waiting,
    /// or still sending a body, and has gone longest without progress; when every
    /// connection has a request being answered, the new one waits in the accept queue.
    pub max_connections: usize,
    /// From accept to a complete first request head (TLS handshake included), and from
    /// the first byte of a later HTTP/1 request head to its end.
    pub header_timeout: Duration,
    /// A connection with no request in flight is closed this long after its last answer.
    pub idle_timeout: Duration,
    /// A request body must arrive within this ([`BodyLimit`]); else `408`.
    pub body_timeout: Duration,
}

impl From<&ListenerLimits> for Limits {
    fn from(l: &ListenerLimits) -> Self {
        Limits {
            max_connections: l.max_connections,
            header_timeout: l.header_timeout.0,
            idle_timeout: l.idle_timeout.0,
            body_timeout: l.body_timeout.0,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from(&ListenerLimits::default())
    }
}

/// The JSON error answer of the inbound endpoints: `{"status":"error","error":…}`.
pub fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(serde_json::json!({"status": "error", "error": message.into()}))).into_response()
}

/// Counts every answer of an endpoint by status code, wrong paths and methods included:
/// `Router::layer(axum::middleware::from_fn_with_state(family, server::count_status))`.
pub async fn count_status(
    axum::extract::State(counts): axum::extract::State<Family<CodeLabels, Counter>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    counts.get_or_create(&CodeLabels { code: response.status().as_u16().to_string() }).inc();
    response
}

/// How much of a request body a handler reads, and how long it waits for it: a client
/// that sends slowly cannot hold a connection (and its permit) for ever.
#[derive(Debug, Clone)]
pub struct BodyLimit {
    /// Bytes; more is `413`.
    pub max: usize,
    /// The whole body must arrive within this; else `408`.
    pub timeout: Duration,
    /// The config key of `max`, named in the `413` answer (e.g. `push.max_body`).
    pub key: &'static str,
}

impl BodyLimit {
    /// Reads the whole body, or answers `413` (over `max`), `408` (not sent within
    /// `timeout`) or `400` (the client broke off).
    pub async fn read(&self, body: Body) -> Result<Bytes, Response> {
        match tokio::time::timeout(self.timeout, axum::body::to_bytes(body, self.max)).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) => {
                let too_big = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                    || e.to_string().contains("length limit");
                Err(if too_big {
                    error_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("body over {} ({} bytes)", self.key, self.max),
                    )
                } else {
                    error_response(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}"))
                })
            }
            Err(_) => Err(error_response(StatusCode::REQUEST_TIMEOUT, "the body was not sent in time")),
        }
    }
}

/// The client certificate a request came with (push endpoint).
#[derive(Debug, Clone, Default)]
pub struct ClientIdentity {
    /// Subject common names and DNS subject alternative names of the leaf certificate.
    pub names: Vec<String>,
}

/// The names of a DER certificate: subject CNs and DNS SANs.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else { return Vec::new() };
    let mut names: Vec<String> =
        cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok().map(str::to_owned)).collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    names
}

/// Whether any of `names` is allowed by `allowed`: exact (ASCII case-insensitive), or a
/// `*.example.com` entry matching exactly one more label.
pub fn name_allowed(names: &[String], allowed: &[String]) -> bool {
    names.iter().any(|name| {
        allowed.iter().any(|pattern| match pattern.strip_prefix("*.") {
            Some(suffix) => {
                name.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix))
            }
            None => name.eq_ignore_ascii_case(pattern),
        })
    })
}

/// Builds a TLS 1.2/1.3 server configuration from PEM files; with `client_ca`, a client
/// certificate chaining to it is required. Errors name the file.
pub fn tls_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |p: &Path| std::fs::read(p).map_err(|source| TlsError::Read { path: p.to_owned(), source });
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Chain { path: cert.to_owned(), source })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let key_der =
        PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|source| TlsError::Key { path: key.to_owned(), source })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Protocols)?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&read(ca)?) {
                let c = c.map_err(|source| TlsError::CaPem { path: ca.to_owned(), source })?;
                roots.add(c).map_err(|source| TlsError::CaUnusable { path: ca.to_owned(), source })?;
            }
            if roots.is_empty() {
                return Err(TlsError::NoCa(ca.to_owned()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|source| TlsError::Verifier { path: ca.to_owned(), source })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key_der).map_err(|source| TlsError::Pair {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS configuration that can be replaced while serving.
pub type SharedTls = Arc<RwLock<Arc<ServerConfig>>>;

/// How long a connection closed for its deadline may take to say goodbye (HTTP/2 GOAWAY).
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long open connections may take to finish their requests after a shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown`, over TLS when `tls` is given, within
/// `limits`. Requests carry a [`ClientIdentity`] extension (empty without client
/// certificates). On shutdown, open connections finish their requests (up to 10 s).
pub async fn serve(
    listener: TcpListener,
    tls: Option<SharedTls>,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(max));
    let registry = Arc::new(connections::Registry::default());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The head deadline is the connections module's, from the accept; hyper's own would
    // start only after protocol detection and would also close idle keep-alive
    // connections at header_timeout.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None).keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(128);
    let builder = Arc::new(builder);
    let limits = Arc::new(limits);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => match make_room(&registry, &permits, &shutdown).await {
                Some(permit) => permit,
                None => break,
            },
        };
        let _ = stream.set_nodelay(true);
        let registered = registry.register(permit);
        let tls = tls.as_ref().map(|t| t.read().expect("tls lock").clone());
        let (app, builder, limits, shutdown) = (app.clone(), builder.clone(), limits.clone(), shutdown.clone());
        tokio::spawn(async move {
            connection(stream, peer, tls, app, &builder, &limits, registered, shutdown).await;
        });
    }
    drop(listener);
    // Every slot back means every connection has closed.
    if tokio::time::timeout(SHUTDOWN_GRACE, permits.acquire_many(max as u32)).await.is_err() {
        tracing::warn!("connections still open 10 s after shutdown; closing them");
    }
}

/// At the cap: asks the connection that has gone longest without progress to give way,
/// and waits for its slot (or, while every connection is busy, for one that can go).
async fn make_room(
    registry: &connections::Registry,
    permits: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    loop {
        let evictable = registry.evictable();
        registry.evict_one();
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            permit = permits.clone().acquire_owned() => return Some(permit.expect("the semaphore is never closed")),
            _ = evictable => {}
        }
    }
}

/// Serves one connection until the client closes it, its deadline passes, it gives way
/// at the cap, or the listener shuts down.
#[allow(clippy::too_many_arguments)]
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
    app: Router,
    builder: &auto::Builder<TokioExecutor>,
    limits: &Limits,
    registered: connections::Registered,
    shutdown: CancellationToken,
) {
    let (io, identity) = match tls {
        Some(config) => {
            let handshake = tokio_rustls::TlsAcceptor::from(config).accept(stream);
            let stream = tokio::select! {
                accepted = handshake => match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::info!(%peer, error = %e, "TLS handshake refused");
                        return;
                    }
                },
                why = registered.closing(limits) => {
                    tracing::debug!(%peer, ?why, "closed during the TLS handshake");
                    return;
                }
                _ = shutdown.cancelled() => return,
            };
            let names = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|leaf| certificate_names(leaf))
                .unwrap_or_default();
            (Either::Left(stream), ClientIdentity { names })
        }
        None => (Either::Right(stream), ClientIdentity::default()),
    };
    let registered = Arc::new(registered);
    let service = {
        let registered = registered.clone();
        hyper::service::service_fn(move |request: axum::http::Request<hyper::body::Incoming>| {
            let (parts, body) = request.into_parts();
            let (guard, body) = registered.start_request(parts.version, body);
            let mut request = axum::http::Request::from_parts(parts, Body::new(body));
            request.extensions_mut().insert(identity.clone());
            let app = app.clone();
            async move {
                let answer = tower::ServiceExt::oneshot(app, request).await;
                drop(guard);
                answer
            }
        })
    };
    let io = TokioIo::new(connections::Watched::new(io, &registered));
    let http = builder.serve_connection(io, service);
    tokio::pin!(http);
    let mut draining = false;
    loop {
        tokio::select! {
            // First: a request that has fully arrived starts (and protects the connection)
            // before its deadline or eviction is looked at.
            biased;
            _ = &mut http => return,
            why = registered.closing(limits) => {
                tracing::debug!(%peer, ?why, "connection closed");
                if why == connections::Close::Deadline {
                    http.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(CLOSE_GRACE, &mut http).await;
                }
                return;
            }
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                http.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Binds `listen`, naming the config key in the error.
pub async fn bind(listen: SocketAddr, key: &str) -> Result<TcpListener, ListenerError> {
    TcpListener::bind(listen).await.map_err(|source| ListenerError::Bind { key: key.to_owned(), listen, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_exactly_or_by_one_label_wildcard() {
        let names = vec!["push.mastercard.example".to_string(), "other".to_string()];
        assert!(name_allowed(&names, &["push.mastercard.example".into()]));
        assert!(name_allowed(&names, &["PUSH.Mastercard.Example".into()]));
        assert!(name_allowed(&names, &["*.mastercard.example".into()]));
        assert!(!name_allowed(&names, &["*.example".into()]), "a wildcard covers one label only");
        assert!(!name_allowed(&names, &["mastercard.example".into()]));
        assert!(!name_allowed(&[], &["*.mastercard.example".into()]));
        assert!(!name_allowed(&[".mastercard.example".into()], &["*.mastercard.example".into()]));
    }

    #[test]
    fn certificate_names_are_cn_and_dns_sans() {
        let mut params = rcgen::CertificateParams::new(vec!["a.example".into(), "b.example".into()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "client-cn");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(certificate_names(cert.der()), ["client-cn", "a.example", "b.example"]);
        assert!(certificate_names(b"garbage").is_empty());
    }
}
