//! Why `cen-poller demo` could not start or go on (exit status 1). Every part of the demo
//! runs on this machine, so each message names the file, port or part that failed.

use std::path::PathBuf;

/// A failed demo step.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot generate a signing key: {0}")]
    Key(aws_lc_rs::error::Unspecified),
    #[error("cannot make the demo's certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create a temporary directory: {0}")]
    TempDir(#[source] std::io::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind a local port for the simulator: {0}")]
    Bind(#[source] std::io::Error),
    #[error("cannot read the simulator's local address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// The configuration the demo wrote does not load (a bug in the demo).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The daemon could not start, or its state cannot be read for the summary.
    #[error(transparent)]
    Daemon(#[from] crate::service::Error),
    #[error("the demo's daemon has no push endpoint")]
    NoPush,
    #[error(transparent)]
    Simulator(#[from] crate::simulate::SimError),
    #[error(transparent)]
    Api(#[from] crate::config::ApiClientError),
    #[error("GET /subscriptions: {0}")]
    Subscriptions(#[source] crate::cen::client::ApiError),
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
}

impl DemoError {
    /// `path` could not be written.
    pub fn write(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
        move |source| DemoError::Write { path: path.to_owned(), source }
    }
}
