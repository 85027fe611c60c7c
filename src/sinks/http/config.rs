//! The keys of a `[[sinks]]` entry with `type = "http"`, and how the sink is checked and
//! built from them.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::{Error, HttpOptions, HttpSink};
use crate::sinks::{BuildError, Files, Sink, SinkSpec};
use crate::units::Dur;

/// `type = "http"`: a POST of each record with Standard Webhooks signature headers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The sink's name: letters, digits, `-` and `_`, unique. Required.
    pub name: String,
    /// The receiver's `http://` or `https://` URL. Required.
    pub url: String,
    /// A file with the Standard Webhooks secret (`whsec_` + base64). Default: none, and
    /// requests are sent unsigned.
    pub secret_file: Option<PathBuf>,
    /// Per-request timeout. Default `10s`: a receiver slower than that is retried later.
    #[serde(default = "ten_seconds")]
    pub timeout: Dur,
    /// An extra CA (PEM) to trust besides the system roots. Default: none.
    pub ca_file: Option<PathBuf>,
    /// The subjects this sink receives. Default: empty, meaning every subject.
    #[serde(default)]
    pub subjects: Vec<String>,
}

fn ten_seconds() -> Dur {
    Dur::secs(10)
}

impl SinkSpec for Config {
    fn name(&self) -> &str {
        &self.name
    }

    fn subjects(&self) -> &[String] {
        &self.subjects
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return Err(("url", "must be an http:// or https:// URL".into()));
        }
        if self.timeout.0.is_zero() {
            return Err(("timeout", "must be more than 0s".into()));
        }
        Ok(())
    }

    fn build(&self, files: &dyn Files) -> Result<Arc<dyn Sink>, BuildError> {
        let name = &self.name;
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| BuildError::new("http", name, e);
        let secret = match &self.secret_file {
            Some(f) => Some((files.read_secret("secret_file", f).map_err(|e| fail(e.into()))?, files.resolve(f))),
            None => None,
        };
        let ca_pem = match &self.ca_file {
            Some(f) => {
                let path = files.resolve(f);
                let pem = std::fs::read(&path).map_err(|source| fail(Error::ReadCa { path: path.clone(), source }.into()))?;
                Some((pem, path))
            }
            None => None,
        };
        let options = HttpOptions { url: self.url.clone(), secret, timeout: self.timeout.0, ca_pem };
        Ok(Arc::new(HttpSink::new(name, options)?))
    }
}
