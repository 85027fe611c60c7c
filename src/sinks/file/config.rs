//! The keys of a `[[sinks]]` entry with `type = "file"`, and how the sink is checked and
//! built from them.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::{FileSink, OpenError};
use crate::sinks::{BuildError, Files, Sink, SinkSpec};

/// `type = "file"`: JSON Lines appended to a file, fsynced before a batch is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The sink's name: letters, digits, `-` and `_`, unique. Required.
    pub name: String,
    /// The file to append to (created with its directory). Required.
    pub path: PathBuf,
    /// The subjects this sink receives. Default: empty, meaning every subject.
    #[serde(default)]
    pub subjects: Vec<String>,
}

impl SinkSpec for Config {
    fn name(&self) -> &str {
        &self.name
    }

    fn subjects(&self) -> &[String] {
        &self.subjects
    }

    /// The path must not be a directory; nothing is created.
    fn check(&self, files: &dyn Files) -> Result<(), BuildError> {
        let path = files.resolve(&self.path);
        if path.is_dir() {
            return Err(BuildError::new("file", &self.name, OpenError::Directory(path)));
        }
        Ok(())
    }

    fn build(&self, files: &dyn Files) -> Result<Arc<dyn Sink>, BuildError> {
        Ok(Arc::new(FileSink::open(&self.name, &files.resolve(&self.path))?))
    }
}
