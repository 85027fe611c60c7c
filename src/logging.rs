//! Log output: text or one JSON object per line, to standard error (journald reads it).
//!
//! SPEC G6: nothing logged at `info` and above carries secrets, Authorization headers or
//! notification content; modules log ids, subjects and counts, never records.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `log.format`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global subscriber. `level` is `info`, `debug`, … or a filter directive;
/// `RUST_LOG`, when set, wins (for a one-off debugging session).
pub fn init(format: LogFormat, level: &str) -> Result<(), LevelError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directive) if !directive.is_empty() => EnvFilter::try_new(directive),
        _ => EnvFilter::try_new(directive_for(level)),
    }
    .map_err(|source| LevelError { level: level.to_owned(), source })?;
    // Colour only for a person at a terminal: journald and log files would store the escape
    // sequences as text.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    // A second init (tests, `demo` starting the daemon in-process) keeps the first.
    let _ = result;
    Ok(())
}

/// `log.level` (or `RUST_LOG`, which wins) is neither a level nor a filter directive;
/// exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("log.level {level:?} is not a level or filter: {source}")]
pub struct LevelError {
    /// `log.level` as written.
    pub level: String,
    #[source]
    pub source: tracing_subscriber::filter::ParseError,
}

/// A plain level applies to cen-poller's own logs; libraries (HTTP, TLS, SQL) stay at
/// `warn`, because at `debug` they log connection details and headers that have no place
/// in an operator's log (SPEC G6). A full filter directive (`info,hyper=debug`) is used as
/// written.
fn directive_for(level: &str) -> String {
    match level.trim().to_ascii_lowercase().as_str() {
        l @ ("error" | "warn") => l.to_owned(),
        l @ ("info" | "debug" | "trace") => format!("warn,cen_poller={l}"),
        _ => level.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_levels_keep_libraries_at_warn() {
        assert_eq!(super::directive_for("debug"), "warn,cen_poller=debug");
        assert_eq!(super::directive_for("INFO"), "warn,cen_poller=info");
        assert_eq!(super::directive_for("error"), "error");
        assert_eq!(super::directive_for("info,hyper=debug"), "info,hyper=debug");
    }
}
