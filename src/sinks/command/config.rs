//! The keys of a `[[sinks]]` entry with `type = "command"`, and how the sink is checked and
//! built from them.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::CommandSink;
use crate::sinks::{BuildError, Files, Sink, SinkSpec};
use crate::units::Dur;

/// `type = "command"`: runs a command per notification with the record on standard input.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The sink's name: letters, digits, `-` and `_`, unique. Required.
    pub name: String,
    /// The program and its arguments. A program given as a path (with a `/`) is resolved
    /// like the other files and checked now; a bare name is looked up in `PATH` when run.
    /// Required.
    pub command: Vec<String>,
    /// A run still going after this is killed and retried. Default `30s`.
    #[serde(default = "thirty_seconds")]
    pub timeout: Dur,
    /// The subjects this sink receives. Default: empty, meaning every subject.
    #[serde(default)]
    pub subjects: Vec<String>,
}

fn thirty_seconds() -> Dur {
    Dur::secs(30)
}

impl SinkSpec for Config {
    fn name(&self) -> &str {
        &self.name
    }

    fn subjects(&self) -> &[String] {
        &self.subjects
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.command.is_empty() {
            return Err(("command", "must name a program".into()));
        }
        if self.timeout.0.is_zero() {
            return Err(("timeout", "must be more than 0s".into()));
        }
        Ok(())
    }

    fn build(&self, files: &dyn Files) -> Result<Arc<dyn Sink>, BuildError> {
        let Some(first) = self.command.first() else {
            return Err(BuildError::new("command", &self.name, super::Error::NoProgram));
        };
        let program = PathBuf::from(first);
        let program = if program.components().count() > 1 { files.resolve(&program) } else { program };
        Ok(Arc::new(CommandSink::new(&self.name, &self.command, program, self.timeout.0)?))
    }
}
