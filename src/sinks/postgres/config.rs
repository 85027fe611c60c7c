//! The keys of a `[[sinks]]` entry with `type = "postgres"`, and how the sink is checked and
//! built from them.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::PostgresSink;
use crate::sinks::{BuildError, Files, Sink, SinkSpec};

/// `type = "postgres"`: inserts each record into a table, ignoring ids already there.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The sink's name: letters, digits, `-` and `_`, unique. Required.
    pub name: String,
    /// The connection string (libpq `key=value` or `postgres://` URL). Prefer `url_file`:
    /// it usually holds a password. Exactly one of the two.
    pub url: Option<String>,
    /// A file holding the connection string.
    pub url_file: Option<PathBuf>,
    /// The table (`name` or `schema.name`), created when missing. Default
    /// `cen_notifications`.
    #[serde(default = "default_table")]
    pub table: String,
    /// The subjects this sink receives. Default: empty, meaning every subject.
    #[serde(default)]
    pub subjects: Vec<String>,
}

fn default_table() -> String {
    "cen_notifications".into()
}

impl SinkSpec for Config {
    fn name(&self) -> &str {
        &self.name
    }

    fn subjects(&self) -> &[String] {
        &self.subjects
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.url.is_some() == self.url_file.is_some() {
            return Err(("url_file", "give exactly one of url_file and url".into()));
        }
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
        if self.table.is_empty() || !self.table.chars().all(plain) {
            return Err(("table", format!("{:?} is not a plain table name", self.table)));
        }
        Ok(())
    }

    fn build(&self, files: &dyn Files) -> Result<Arc<dyn Sink>, BuildError> {
        let name = &self.name;
        let dsn = match (&self.url, &self.url_file) {
            (Some(url), _) => url.clone(),
            (None, Some(file)) => {
                files.read_secret("url_file", file).map_err(|e| BuildError::new("postgres", name, e))?
            }
            (None, None) => return Err(BuildError::new("postgres", name, super::Error::NoUrl)),
        };
        Ok(Arc::new(PostgresSink::new(name, &dsn, &self.table, |p| files.resolve(p))?))
    }
}
