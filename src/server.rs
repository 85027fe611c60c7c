//! Serving an inbound HTTP endpoint (push, VGS) over TLS — with or without client
//! certificates — or plain HTTP, with the limits a public endpoint needs.
//!
//! Each accepted connection takes a permit (a cap on concurrent connections), gets a TLS
//! handshake deadline, and is served by hyper (HTTP/1.1 keep-alive and HTTP/2) with a
//! header-read deadline; the handler bounds the body read with [`BodyLimit`] (size and
//! deadline). The TLS configuration is swappable: a SIGHUP loads new certificates for new
//! connections while open ones go on.

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
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::metrics::CodeLabels;

/// Limits of one endpoint.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// A client must finish the TLS handshake within this.
    pub handshake_timeout: Duration,
    /// …and send a request's headers within this. hyper also applies it to a keep-alive
    /// connection waiting for its next request: one idle this long is closed, which frees
    /// its permit.
    pub header_timeout: Duration,
    /// …and its body within this ([`BodyLimit`]).
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
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
pub fn tls_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in the file", cert.display()));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|e| format!("{}: not a PEM private key: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&read(ca)?) {
                let c = c.map_err(|e| format!("{}: not a PEM certificate: {e}", ca.display()))?;
                roots.add(c).map_err(|e| format!("{}: unusable CA certificate: {e}", ca.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no CA certificate in the file", ca.display()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key_der).map_err(|e| {
        format!("{} and {} do not make a usable certificate and key: {e}", cert.display(), key.display())
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS configuration that can be replaced while serving.
pub type SharedTls = Arc<RwLock<Arc<ServerConfig>>>;

/// Serves `app` on `listener` until `shutdown`, over TLS when `tls` is given. Requests carry
/// a [`ClientIdentity`] extension (empty without client certificates). On shutdown, open
/// connections finish their requests (up to 10 s).
pub async fn serve(
    listener: TcpListener,
    tls: Option<SharedTls>,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
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
        let _ = stream.set_nodelay(true);
        let tls = tls.as_ref().map(|t| t.read().expect("tls lock").clone());
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let handshake_timeout = limits.handshake_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            tracing::info!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let names = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|leaf| certificate_names(leaf))
                        .unwrap_or_default();
                    let service = with_identity(app, ClientIdentity { names });
                    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                None => {
                    let service = with_identity(app, ClientIdentity::default());
                    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                    let _ = watcher.watch(conn.into_owned()).await;
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open 10 s after shutdown; closing them");
    }
}

fn with_identity(app: Router, identity: ClientIdentity) -> Router {
    app.layer(axum::Extension(identity))
}

/// Binds `listen`, naming the config key in the error.
pub async fn bind(listen: SocketAddr, key: &str) -> Result<TcpListener, String> {
    TcpListener::bind(listen).await.map_err(|e| format!("{key} {listen}: cannot listen: {e}"))
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
