//! The operator's commands on the outbox (SPEC 4): `dead-letters list|retry` and `replay`.
//!
//! Both open the state database next to a running daemon (SQLite WAL allows that) and only
//! change the outbox: a running daemon's dispatchers look at their outbox at least twice a
//! second, so what these commands queue is delivered without signalling the daemon; with no
//! daemon running it is delivered at the next start.
//!
//! Invariants:
//! - A `--sink` that is not in the configuration is refused (exit 2) before anything is
//!   changed, so a typo never queues rows no dispatcher will ever take.
//! - Without `--sink`, only sinks in the configuration are acted on.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cen::notification::format_timestamp;
use crate::config::Config;
use crate::poll::range::Range;
use crate::store::{DeadLetter, StoreHandle};

/// Why an operation failed: bad usage (exit 2) or a runtime failure (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Runtime(String),
}

/// Refuses a `--sink` that the configuration does not name.
pub fn check_sink(config: &Config, sink: Option<&str>) -> Result<(), OpError> {
    let Some(sink) = sink else { return Ok(()) };
    if config.sinks.iter().any(|s| s.name() == sink) {
        return Ok(());
    }
    let names: Vec<&str> = config.sinks.iter().map(|s| s.name()).collect();
    Err(OpError::Usage(format!(
        "--sink {sink:?}: no sink of that name in {} (configured: {})",
        config.path.display(),
        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
    )))
}

/// Opens the configuration's state, which must exist already.
pub async fn open_store(config: &Config) -> Result<StoreHandle, OpError> {
    crate::service::open_existing_store(config).await.map_err(|e| OpError::Runtime(e.to_string()))
}

/// One dead letter as `dead-letters list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeadLetterRow {
    pub sink: String,
    pub id: String,
    pub subject: Option<String>,
    /// `createdTimestamp` of the notification, as sent.
    pub created_timestamp: Option<String>,
    pub attempts: u32,
    /// When it was first queued for the sink (RFC 3339).
    pub first_queued_at: String,
    /// When the sink gave up on it (RFC 3339).
    pub dead_at: String,
    pub last_error: Option<String>,
}

impl From<DeadLetter> for DeadLetterRow {
    fn from(d: DeadLetter) -> Self {
        DeadLetterRow {
            sink: d.sink,
            id: d.notification_id,
            subject: d.subject,
            created_timestamp: d.created_raw,
            attempts: d.attempts,
            first_queued_at: ms_text(d.first_enqueued_ms),
            dead_at: ms_text(d.dead_ms),
            last_error: d.last_error,
        }
    }
}

fn ms_text(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map(format_timestamp).unwrap_or_else(|| ms.to_string())
}

/// The dead letters, optionally of one sink and/or one notification, oldest first.
pub async fn list_dead_letters(
    store: &StoreHandle,
    sink: Option<&str>,
    id: Option<&str>,
) -> Result<Vec<DeadLetterRow>, OpError> {
    let rows = store
        .dead_letters(sink.map(str::to_owned), id.map(str::to_owned))
        .await
        .map_err(|e| OpError::Runtime(e.to_string()))?;
    Ok(rows.into_iter().map(DeadLetterRow::from).collect())
}

/// Longest last error shown in the table (the JSON form has all of it).
const TABLE_ERROR: usize = 100;

/// The terminal form of `dead-letters list`: one line per dead letter, aligned columns.
pub fn dead_letters_table(rows: &[DeadLetterRow]) -> String {
    if rows.is_empty() {
        return "no dead letters\n".to_owned();
    }
    let header = ["SINK", "ID", "SUBJECT", "ATTEMPTS", "DIED", "LAST ERROR"].map(str::to_owned);
    let lines: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let error = r.last_error.as_deref().unwrap_or("-").split_whitespace().collect::<Vec<_>>().join(" ");
            let error = if error.chars().count() > TABLE_ERROR {
                format!("{}…", error.chars().take(TABLE_ERROR - 1).collect::<String>())
            } else {
                error
            };
            [
                r.sink.clone(),
                r.id.clone(),
                r.subject.clone().unwrap_or_else(|| "-".into()),
                r.attempts.to_string(),
                r.dead_at.clone(),
                error,
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(&header).chain(&lines) {
        for (i, (cell, w)) in line.iter().zip(widths).enumerate() {
            if i + 1 == line.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push('\n');
    }
    out.push_str(&format!("{} dead letter{}\n", rows.len(), if rows.len() == 1 { "" } else { "s" }));
    out
}

/// What `dead-letters retry` did, per configured sink it looked at.
#[derive(Debug, Default)]
pub struct RetryReport {
    /// Sink name and dead letters put back in its queue.
    pub requeued: Vec<(String, usize)>,
    /// Dead letters of sinks no longer in the configuration, left alone.
    pub unconfigured: usize,
}

impl RetryReport {
    pub fn total(&self) -> usize {
        self.requeued.iter().map(|(_, n)| n).sum()
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for (sink, n) in self.requeued.iter().filter(|(_, n)| *n > 0) {
            out.push_str(&format!("sink {sink}: {n} dead letter{} back in the queue\n", plural(*n)));
        }
        let total = self.total();
        if total == 0 {
            out.push_str("no dead letters matched; nothing queued\n");
        } else {
            out.push_str(&format!(
                "{total} queued again; a running daemon delivers them within a second, otherwise its next start does\n"
            ));
        }
        if self.unconfigured > 0 {
            out.push_str(&format!(
                "{} dead letter{} of sinks no longer configured left as they are\n",
                self.unconfigured,
                plural(self.unconfigured)
            ));
        }
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Moves dead letters back to the outbox — of `sink`, or of every configured sink — with
/// their attempts reset.
pub async fn retry_dead_letters(
    config: &Config,
    store: &StoreHandle,
    sink: Option<&str>,
    id: Option<&str>,
) -> Result<RetryReport, OpError> {
    check_sink(config, sink)?;
    let runtime = |e: crate::store::StoreError| OpError::Runtime(e.to_string());
    let mut report = RetryReport::default();
    let names: Vec<&str> = match sink {
        Some(s) => vec![s],
        None => config.sinks.iter().map(|s| s.name()).collect(),
    };
    for name in names {
        let n = store.retry_dead_letters(Some(name.to_owned()), id.map(str::to_owned)).await.map_err(runtime)?;
        report.requeued.push((name.to_owned(), n));
    }
    if sink.is_none() {
        report.unconfigured = store
            .dead_letters(None, id.map(str::to_owned))
            .await
            .map_err(runtime)?
            .iter()
            .filter(|d| !config.sinks.iter().any(|s| s.name() == d.sink))
            .count();
    }
    Ok(report)
}

/// What `replay` queued.
#[derive(Debug)]
pub struct ReplayReport {
    pub range: Range,
    /// Sink name and rows queued for it.
    pub queued: Vec<(String, usize)>,
    /// Set when the range starts before the oldest notification still kept (`state.keep`).
    pub kept_from: Option<DateTime<Utc>>,
}

impl ReplayReport {
    pub fn text(&self) -> String {
        let mut out = format!("replay {}:\n", self.range);
        let width = self.queued.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
        for (sink, n) in &self.queued {
            out.push_str(&format!("  {sink:<width$}  {n} queued\n"));
        }
        if let Some(from) = self.kept_from {
            out.push_str(&format!(
                "note: notifications created before {} may be gone already (state.keep); only what is stored is replayed\n",
                format_timestamp(from)
            ));
        }
        out.push_str(
            "a running daemon delivers them within a second, otherwise its next start does; notifications already waiting for a sink are not queued twice\n",
        );
        out
    }
}

/// Queues every stored notification created in `range` again — for `sink`, or for every
/// configured sink whose subjects filter takes it.
pub async fn replay(
    config: &Config,
    store: &StoreHandle,
    range: Range,
    sink: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ReplayReport, OpError> {
    check_sink(config, sink)?;
    if config.sinks.is_empty() {
        return Err(OpError::Usage(format!("{} configures no sinks: nothing to replay to", config.path.display())));
    }
    let oldest_kept = now - config.state.keep.delta();
    let mut report =
        ReplayReport { range, queued: Vec::new(), kept_from: (range.from < oldest_kept).then_some(oldest_kept) };
    let (from_ms, to_ms) = (range.from.timestamp_millis(), range.to.timestamp_millis());
    for route in crate::service::routes(config).into_iter().filter(|r| sink.is_none_or(|s| r.sink == s)) {
        let name = route.sink.clone();
        let n = store
            .enqueue_replay(route, from_ms, to_ms)
            .await
            .map_err(|e| OpError::Runtime(format!("sink {name}: {e}")))?;
        report.queued.push((name, n));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sink: &str, error: &str) -> DeadLetterRow {
        DeadLetterRow {
            sink: sink.into(),
            id: "ab".repeat(32),
            subject: Some("CLEARING".into()),
            created_timestamp: Some("2026-11-22T10:00:00.000Z".into()),
            attempts: 3,
            first_queued_at: "2026-11-22T10:00:01.000Z".into(),
            dead_at: "2026-11-22T10:05:00.000Z".into(),
            last_error: Some(error.into()),
        }
    }

    #[test]
    fn the_table_aligns_columns_and_keeps_errors_on_one_line() {
        let long = format!("http://erp answered HTTP 400\n{}", "x".repeat(300));
        let table = dead_letters_table(&[row("erp", &long), row("archive-2", "disk full")]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("SINK       ID "), "{table}");
        let column = lines[0].find("SUBJECT").unwrap();
        assert_eq!(lines[1].find("CLEARING"), Some(column), "{table}");
        assert_eq!(lines[2].find("CLEARING"), Some(column), "{table}");
        assert!(lines[1].ends_with('…') && lines[1].contains("HTTP 400 xxx"), "{table}");
        assert_eq!(lines[3], "2 dead letters");
        assert_eq!(dead_letters_table(&[]), "no dead letters\n");
    }
}
