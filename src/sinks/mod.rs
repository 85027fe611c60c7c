//! Where notifications leave cen-poller: one folder per sink kind behind the [`Sink`] trait,
//! and the [`dispatcher`] that feeds each sink from its outbox.
//!
//! Adding a kind: a folder `sinks/<kind>/` with the sink, its `Config` and its
//! [`SinkSpec`], and one line in `sink_kinds!` below. Nothing else changes: the
//! configuration, `check-config`, the daemon and SIGHUP go through [`SinkConfig`].
//!
//! A sink gets a batch of records (SPEC 6, already serialised) and says, per record,
//! whether it was delivered, should be retried, or can never be delivered (a dead letter).
//! A sink never touches the store: acknowledging is the dispatcher's job, after the sink
//! has made the records durable on its side.

pub mod dispatcher;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;

/// One record as a sink receives it: the SPEC 6 record, ready to send, and the columns some
/// sinks need beside it. The dispatcher makes it from the store's row; a sink never sees
/// the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The notification id (also inside `record`).
    pub id: String,
    /// The notification's subject (for NATS subjects and PostgreSQL columns).
    pub subject: String,
    /// `createdTimestamp` as sent.
    pub created_raw: String,
    /// `push`, `pull`, `backfill` or `audit`.
    pub received_via: String,
    /// The SPEC 6 record.
    pub record: String,
}

/// Why a record was not delivered.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SinkError {
    /// May succeed later (receiver down, timeout, disk full): retried with backoff.
    #[error("{0}")]
    Retryable(String),
    /// Will never succeed as it is (the receiver rejects the record): a dead letter now.
    #[error("{0}")]
    Permanent(String),
}

/// A secret file a `[[sinks]]` entry names that cannot be used ([`Files::read_secret`]).
/// The message names the key and the file, never the contents.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{key}: cannot read secret file {path}: {source} (check the path, or LoadCredential= in the unit)")]
    Read {
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: secret file {path} is empty")]
    Empty { key: String, path: PathBuf },
}

/// Why a `[[sinks]]` entry cannot be checked or built: the kind and name of the sink, and
/// what is wrong, from the kind's own error type (the key or file to fix).
#[derive(Debug, thiserror::Error)]
#[error("{kind} sink {sink:?}: {problem}")]
pub struct BuildError {
    /// The entry's `type`.
    pub kind: &'static str,
    /// The entry's `name`.
    pub sink: String,
    /// The kind's error ([`SecretError`], `file::OpenError`, `http::Error`, …).
    #[source]
    pub problem: Box<dyn std::error::Error + Send + Sync>,
}

impl BuildError {
    /// `problem` of the `kind` sink named `sink`.
    pub fn new(kind: &'static str, sink: &str, problem: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        BuildError { kind, sink: sink.to_owned(), problem: problem.into() }
    }
}

/// The outcome of each record of a batch, in batch order.
pub type Outcomes = Vec<Result<(), SinkError>>;

/// One destination.
pub trait Sink: Send + Sync {
    /// The sink's `name` from the configuration.
    fn name(&self) -> &str;
    /// The most records one `deliver` call takes.
    fn max_batch(&self) -> usize;
    /// Delivers `batch`; returns one outcome per record. Only `Ok` records are
    /// acknowledged, so an `Ok` must mean "durable at the destination".
    fn deliver<'a>(&'a self, batch: &'a [Record]) -> BoxFuture<'a, Outcomes>;
    /// SIGHUP: reopen files (logrotate) or connections. Default: nothing.
    fn reopen(&self) {}
}

/// How a sink reads the files its entry names. The configuration implements it: relative
/// paths are looked up in `$CREDENTIALS_DIRECTORY`, then next to the configuration file; a
/// secret file's contents are trimmed and must not be empty.
pub trait Files {
    /// The path `path` of the configuration stands for.
    fn resolve(&self, path: &Path) -> PathBuf;
    /// The trimmed contents of the secret file `path`; errors name `key` and the file.
    fn read_secret(&self, key: &str, path: &Path) -> Result<String, SecretError>;
}

/// What every sink kind's `[[sinks]]` entry provides. A kind's folder holds its `Config`
/// (serde, `deny_unknown_fields`, every key documented with its default), this
/// implementation, the sink itself and their tests; `sink_kinds!` registers it.
pub trait SinkSpec: std::fmt::Debug + Send + Sync {
    /// The entry's `name` (unique; checked by the configuration).
    fn name(&self) -> &str;
    /// The entry's `subjects` filter; empty means every subject.
    fn subjects(&self) -> &[String];
    /// Checks the entry's values alone, touching no file: the key (below `sinks[i].`) and
    /// what is wrong with it.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }
    /// `check-config`: everything that can be checked without reaching the destination or
    /// creating anything — files, secrets, connection strings, templates. Default: build the
    /// sink (which connects to nothing) and drop it.
    fn check(&self, files: &dyn Files) -> Result<(), BuildError> {
        self.build(files).map(drop)
    }
    /// Builds the sink. Connects to nothing: connections are made at the first delivery.
    fn build(&self, files: &dyn Files) -> Result<Arc<dyn Sink>, BuildError>;
}

/// The registration of the sink kinds: `Variant(folder) = "type"` declares the module and
/// makes `type = "…"` in a `[[sinks]]` entry pick that folder's `Config`.
macro_rules! sink_kinds {
    ($($variant:ident($kind:ident) = $type_name:literal,)*) => {
        $(pub mod $kind;)*

        /// One `[[sinks]]` entry: `type` picks the kind; the other keys are that kind's
        /// `Config`, where unknown keys are errors.
        #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
        #[serde(tag = "type")]
        pub enum SinkConfig {
            $(#[serde(rename = $type_name)] $variant($kind::Config),)*
        }

        impl SinkConfig {
            /// The kind's contract.
            pub fn spec(&self) -> &dyn SinkSpec {
                match self {
                    $(SinkConfig::$variant(c) => c,)*
                }
            }

            /// The `type` of the entry.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(SinkConfig::$variant(_) => $type_name,)*
                }
            }
        }
    };
}

sink_kinds! {
    File(file) = "file",
    Http(http) = "http",
    Command(command) = "command",
    Postgres(postgres) = "postgres",
    Nats(nats) = "nats",
}

impl SinkConfig {
    /// The entry's `name`.
    pub fn name(&self) -> &str {
        self.spec().name()
    }

    /// The entry's subject filter; empty means every subject.
    pub fn subjects(&self) -> &[String] {
        self.spec().subjects()
    }
}

/// Checks every sink entry as far as can be done without touching its destination
/// (`check-config`). The first problem, naming the sink.
pub fn check(entries: &[SinkConfig], files: &dyn Files) -> Result<(), BuildError> {
    entries.iter().try_for_each(|s| s.spec().check(files))
}

/// Builds the sinks of the entries, in order.
pub fn build(entries: &[SinkConfig], files: &dyn Files) -> Result<Vec<Arc<dyn Sink>>, BuildError> {
    entries.iter().map(|s| s.spec().build(files)).collect()
}

/// A record for the sinks' unit tests: record `{"id":…}`, a CLEARING pulled.
#[cfg(test)]
pub(crate) fn test_record(id: &str) -> Record {
    Record {
        id: id.into(),
        subject: "CLEARING".into(),
        created_raw: "2026-11-22T10:00:00.000Z".into(),
        received_via: "pull".into(),
        record: format!("{{\"id\":\"{id}\"}}"),
    }
}
