//! Why a listener (push, VGS, admin) cannot start or take a SIGHUP's new settings. Each
//! message names the section or key and the file, so the operator knows what to fix; none
//! quotes a key file's contents.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A TLS server configuration cannot be made from its PEM files ([`super::tls_config`]).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a PEM certificate chain: {source}")]
    Chain {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{0}: no certificate in the file")]
    NoCertificate(PathBuf),
    #[error("{path}: not a PEM private key: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{0}")]
    Protocols(#[source] rustls::Error),
    #[error("{path}: not a PEM certificate: {source}")]
    CaPem {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path}: unusable CA certificate: {source}")]
    CaUnusable {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("{0}: no CA certificate in the file")]
    NoCa(PathBuf),
    #[error("{path}: {source}")]
    Verifier {
        path: PathBuf,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    #[error("{cert} and {key} do not make a usable certificate and key: {source}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// Why a listener could not start, or a SIGHUP left it as it was.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The address of `key` (`push.listen`, …) cannot be bound: in use, or not ours.
    #[error("{key} {listen}: cannot listen: {source}")]
    Bind {
        key: String,
        listen: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The bound socket's own address cannot be read (the OS refused).
    #[error("{key}: cannot read the bound address: {source}")]
    LocalAddr {
        key: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The certificate, key or client CA of `[section]` (boxed: rustls' errors are large).
    #[error("[{section}]: {source}")]
    Tls {
        section: &'static str,
        #[source]
        source: Box<TlsError>,
    },
    /// A secret file of the section cannot be used (the configuration's error, naming the
    /// key and the file; boxed because the configuration layer sits above this one).
    #[error(transparent)]
    Secret(Box<dyn std::error::Error + Send + Sync>),
    /// Started without its section (a caller's mistake; the daemon starts only configured
    /// listeners).
    #[error("no [{0}] section")]
    NoSection(&'static str),
    /// A SIGHUP's file dropped the section: removing a listener needs a restart.
    #[error("the new configuration has no [{0}] section; restart to remove it")]
    Removed(&'static str),
    /// A SIGHUP's file switches `[vgs]` between TLS and plain HTTP: needs a restart.
    #[error("[{0}]: switching between TLS and plain HTTP needs a restart")]
    TlsSwitch(&'static str),
}
