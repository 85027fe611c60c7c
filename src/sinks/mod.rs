//! Where notifications leave cen-poller: one file per sink kind behind the [`Sink`] trait,
//! and the [`dispatcher`] that feeds each sink from its outbox.
//!
//! A sink gets a batch of records (SPEC 6, already serialised) and says, per record,
//! whether it was delivered, should be retried, or can never be delivered (a dead letter).
//! A sink never touches the store: acknowledging is the dispatcher's job, after the sink
//! has made the records durable on its side.

pub mod command;
pub mod dispatcher;
pub mod file;
pub mod http;
pub mod nats;
pub mod postgres;

use futures::future::BoxFuture;

use crate::config::SinkConfig;
use crate::store::Leased;

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
    fn deliver<'a>(&'a self, batch: &'a [Leased]) -> BoxFuture<'a, Outcomes>;
    /// SIGHUP: reopen files (logrotate) or connections. Default: nothing.
    fn reopen(&self) {}
}

/// Checks every sink of a configuration as far as can be done without touching its
/// destination (`check-config`): connection strings, TLS files and secrets, subject
/// templates, command paths; a file sink's path must not be a directory. Nothing is
/// connected to and no file is created. The first problem, naming the sink.
pub fn check(config: &crate::config::Config) -> Result<(), String> {
    for s in &config.sinks {
        match s {
            SinkConfig::File { name, path, .. } => {
                let path = config.resolve(path);
                if path.is_dir() {
                    return Err(format!("file sink {name:?}: {} is a directory, not a file", path.display()));
                }
            }
            SinkConfig::Http { .. } => drop(http::HttpSink::from_config(config, s)?),
            SinkConfig::Command { .. } => drop(command::CommandSink::from_config(config, s)?),
            SinkConfig::Postgres { .. } => drop(postgres::PostgresSink::from_config(config, s)?),
            SinkConfig::Nats { .. } => drop(nats::NatsSink::from_config(s)?),
        }
    }
    Ok(())
}

/// Builds the sinks of a configuration.
pub fn build(config: &crate::config::Config) -> Result<Vec<std::sync::Arc<dyn Sink>>, String> {
    config
        .sinks
        .iter()
        .map(|s| -> Result<std::sync::Arc<dyn Sink>, String> {
            match s {
                SinkConfig::File { name, path, .. } => {
                    Ok(std::sync::Arc::new(file::FileSink::open(name, &config.resolve(path))?))
                }
                SinkConfig::Http { .. } => Ok(std::sync::Arc::new(http::HttpSink::from_config(config, s)?)),
                SinkConfig::Command { .. } => Ok(std::sync::Arc::new(command::CommandSink::from_config(config, s)?)),
                SinkConfig::Postgres { .. } => Ok(std::sync::Arc::new(postgres::PostgresSink::from_config(config, s)?)),
                SinkConfig::Nats { .. } => Ok(std::sync::Arc::new(nats::NatsSink::from_config(s)?)),
            }
        })
        .collect()
}

/// A leased row for the sinks' unit tests: seq 1, first attempt, record `{"id":…}`.
#[cfg(test)]
pub(crate) fn test_leased(id: &str) -> Leased {
    Leased {
        seq: 1,
        id: id.into(),
        attempts: 0,
        enqueued_ms: 0,
        subject: "CLEARING".into(),
        created_raw: "2026-11-22T10:00:00.000Z".into(),
        received_via: "pull".into(),
        record: format!("{{\"id\":\"{id}\"}}"),
    }
}
