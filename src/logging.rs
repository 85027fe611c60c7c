//! Log output: text or one JSON object per line, to standard error (journald reads it).
//!
//! SPEC G6: nothing logged at `info` and above carries secrets, Authorization headers or
//! notification content; modules log ids, subjects and counts, never records.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `level` is `info`, `debug`, … or a filter directive;
/// `RUST_LOG`, when set, wins (for a one-off debugging session).
pub fn init(format: LogFormat, level: &str) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directive) if !directive.is_empty() => EnvFilter::try_new(directive),
        _ => EnvFilter::try_new(level),
    }
    .map_err(|e| format!("log.level {level:?} is not a level or filter: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    // A second init (tests, `demo` starting the daemon in-process) keeps the first.
    let _ = result;
    Ok(())
}
