//! Moving one machine's state into a cluster's database (`cen-poller migrate-state`): the
//! watermark, the seen set (every stored notification, with how and when it was first
//! seen), the outbox (claims dropped: any instance may deliver), the dead letters and the
//! last audit, from a SQLite file into an empty PostgreSQL schema.
//!
//! Invariants: the copy is one PostgreSQL transaction, so a failure leaves the schema as it
//! was; a schema that already holds notifications is refused (two machines' states are not
//! merged); the SQLite file is read in chunks (memory stays bounded whatever its size) and
//! not changed, except that a file written by an older cen-poller has its schema brought up
//! to date on opening, as the daemon would. Stop the daemon that uses the file first.

use std::path::Path;

use super::postgres::{Postgres, Settings};
use super::sqlite::Store;
use super::{Committed, StoreError};

/// What [`sqlite_to_postgres`] copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    pub notifications: u64,
    pub outbox: u64,
    pub dead_letters: u64,
    pub watermark: Option<i64>,
}

/// Rows read and written per statement.
const CHUNK: usize = 1_000;

/// Copies the SQLite state at `from` into the PostgreSQL schema `to` (created if missing).
pub async fn sqlite_to_postgres(from: &Path, to: &Settings) -> Result<Copied, StoreError> {
    if !from.exists() {
        return Err(StoreError::CannotOpen { path: from.to_owned(), detail: "no such file".into() });
    }
    let source = Store::open(from)?;
    let target = Postgres::open(to, Committed::default()).await?;
    let mut import = target.import().await?;
    let mut copied = Copied::default();
    let mut after = i64::MIN;
    loop {
        let chunk = source.export_notifications(after, CHUNK)?;
        let Some(&(last, _)) = chunk.last() else { break };
        after = last;
        let rows: Vec<_> = chunk.into_iter().map(|(_, n)| n).collect();
        copied.notifications += import.notifications(&rows).await?;
    }
    let mut after = i64::MIN;
    loop {
        let chunk = source.export_outbox(after, CHUNK)?;
        let Some(&(last, _)) = chunk.last() else { break };
        after = last;
        let rows: Vec<_> = chunk.into_iter().map(|(_, d)| d).collect();
        copied.outbox += import.outbox(&rows).await?;
    }
    for chunk in source.dead_letters(None, None)?.chunks(CHUNK) {
        copied.dead_letters += import.dead_letters(chunk).await?;
    }
    copied.watermark = source.watermark()?;
    import.commit(copied.watermark, source.last_audit()?).await?;
    Ok(copied)
}
