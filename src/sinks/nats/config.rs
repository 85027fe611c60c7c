//! The keys of a `[[sinks]]` entry with `type = "nats"`, and how the sink is checked and
//! built from them.

use std::sync::Arc;

use serde::Deserialize;

use super::NatsSink;
use crate::sinks::{BuildError, Files, Sink, SinkSpec};

/// `type = "nats"`: publishes each record to a JetStream stream with `Nats-Msg-Id` = id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The sink's name: letters, digits, `-` and `_`, unique. Required.
    pub name: String,
    /// `nats://` or `tls://` server URL(s), comma-separated; credentials may be in the URL.
    /// Required.
    pub url: String,
    /// The JetStream stream, created (with a 1-hour duplicate window) when missing. Default
    /// `CEN`.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// The subject template; `{subject}` becomes the notification's subject. Default
    /// `cen.{subject}`.
    #[serde(default = "default_subject")]
    pub subject: String,
    /// The subjects this sink receives. Default: empty, meaning every subject.
    #[serde(default)]
    pub subjects: Vec<String>,
}

fn default_stream() -> String {
    "CEN".into()
}

fn default_subject() -> String {
    "cen.{subject}".into()
}

impl SinkSpec for Config {
    fn name(&self) -> &str {
        &self.name
    }

    fn subjects(&self) -> &[String] {
        &self.subjects
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.url.starts_with("nats://") && !self.url.starts_with("tls://") {
            return Err(("url", "must be a nats:// or tls:// URL".into()));
        }
        Ok(())
    }

    fn build(&self, _files: &dyn Files) -> Result<Arc<dyn Sink>, BuildError> {
        Ok(Arc::new(NatsSink::new(&self.name, &self.url, &self.stream, &self.subject)?))
    }
}
