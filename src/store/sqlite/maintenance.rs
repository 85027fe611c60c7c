//! Pruning old notifications and the status counts.
//!
//! Invariants: pruning deletes only notifications older than the cut-off by both creation
//! and first-seen time that have no outbox row and no dead letter (undelivered data is never
//! lost), and does so in short transactions so a push or a page commit waiting for the lock
//! is never held up for long. Everything that scans by time walks the
//! `(source, created_ms, …)` index one source at a time, never the whole table.

use rusqlite::params;

use super::tx::{for_each_slice, write_tx};
use super::{SOURCES, Store, StoreError};
use crate::store::CountRow;

/// Prune works through creation time in slices of this span…
const PRUNE_SLICE_MS: i64 = 3_600_000;
/// …deleting at most this many notifications per transaction.
pub(super) const PRUNE_CHUNK: i64 = 2_000;

pub(super) const PRUNE_CHUNK_DELETE: &str = "
    DELETE FROM notifications WHERE nid IN (
        SELECT n.nid FROM notifications AS n
        WHERE n.source = ?1 AND n.created_ms >= ?2 AND n.created_ms < ?3
          AND n.first_seen_ms < ?4
          AND NOT EXISTS (SELECT 1 FROM outbox AS o WHERE o.nid = n.nid)
          AND NOT EXISTS (SELECT 1 FROM dead_letters AS d WHERE d.nid = n.nid)
        LIMIT ?5)";

const COUNTS_SINCE: &str = "
    SELECT subject, received_via, sum(recovered), count(*) FROM notifications
    WHERE source = ?1 AND created_ms >= ?2
    GROUP BY subject, received_via
    ORDER BY subject, received_via";

impl Store {
    /// Deletes notifications whose `created_ms` and `first_seen_ms` are both before
    /// `before_ms` and that have nothing left to deliver (no outbox row, no dead letter).
    /// Returns how many were deleted.
    ///
    /// Their ids leave the seen set, so `before_ms` must stay older than anything the poller
    /// can still fetch (API retention plus lookback); `[state] keep` (14 days) is.
    pub fn prune(&mut self, before_ms: i64) -> Result<usize, StoreError> {
        let mut deleted = 0;
        for source in SOURCES {
            for_each_slice(&mut self.conn, source, i64::MIN, before_ms, PRUNE_SLICE_MS, |conn, lo, hi| {
                loop {
                    let n = write_tx(conn, |tx| {
                        tx.prepare_cached(PRUNE_CHUNK_DELETE)?.execute(params![source, lo, hi, before_ms, PRUNE_CHUNK])
                    })?;
                    deleted += n;
                    if i64::try_from(n).unwrap_or(i64::MAX) < PRUNE_CHUNK {
                        return Ok(());
                    }
                }
            })
            .map_err(|e| self.fail("prune old notifications", e))?;
        }
        Ok(deleted)
    }

    /// Notifications created at or after `since_ms`, per source, subject and path, sorted
    /// by those.
    pub fn counts_since(&self, since_ms: i64) -> Result<Vec<CountRow>, StoreError> {
        let read = || -> rusqlite::Result<Vec<CountRow>> {
            let mut out = Vec::new();
            let mut st = self.conn.prepare_cached(COUNTS_SINCE)?;
            for source in SOURCES {
                let mut rows = st.query(params![source, since_ms])?;
                while let Some(row) = rows.next()? {
                    out.push(CountRow {
                        source: source.to_owned(),
                        subject: row.get(0)?,
                        received_via: row.get(1)?,
                        recovered: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                        n: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                    });
                }
            }
            Ok(out)
        };
        read().map_err(|e| self.fail("count notifications", e))
    }
}
