//! Reading the whole state out in chunks, in insertion order, for moving it to another
//! backend (`store::transfer`). Read-only.

use rusqlite::params;

use super::{Store, StoreError};
use crate::store::{PendingDelivery, StoredNotification};

impl Store {
    /// Up to `limit` notifications after row `after_nid`, with their row numbers.
    pub fn export_notifications(
        &self,
        after_nid: i64,
        limit: usize,
    ) -> Result<Vec<(i64, StoredNotification)>, StoreError> {
        let read = || -> rusqlite::Result<Vec<(i64, StoredNotification)>> {
            let mut st = self.conn.prepare_cached(
                "SELECT nid, id, source, subject, subscription_name, created_ms, created_raw,
                        received_via, first_seen_ms, recovered, json
                 FROM notifications WHERE nid > ?1 ORDER BY nid LIMIT ?2",
            )?;
            let rows = st.query_map(params![after_nid, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok((
                    r.get(0)?,
                    StoredNotification {
                        id: r.get(1)?,
                        source: r.get(2)?,
                        subject: r.get(3)?,
                        subscription_name: r.get(4)?,
                        created_ms: r.get(5)?,
                        created_raw: r.get(6)?,
                        received_via: r.get(7)?,
                        first_seen_ms: r.get(8)?,
                        recovered: r.get::<_, i64>(9)? != 0,
                        json: r.get(10)?,
                    },
                ))
            })?;
            rows.collect()
        };
        read().map_err(|e| self.fail("read notifications to copy", e))
    }

    /// Up to `limit` outbox rows after `after_seq`, in delivery order, with their seqs.
    pub fn export_outbox(&self, after_seq: i64, limit: usize) -> Result<Vec<(i64, PendingDelivery)>, StoreError> {
        let read = || -> rusqlite::Result<Vec<(i64, PendingDelivery)>> {
            let mut st = self.conn.prepare_cached(
                "SELECT o.seq, o.sink, n.id, o.enqueued_ms, o.attempts, o.next_attempt_ms, o.last_error
                 FROM outbox AS o JOIN notifications AS n ON n.nid = o.nid
                 WHERE o.seq > ?1 ORDER BY o.seq LIMIT ?2",
            )?;
            let rows = st.query_map(params![after_seq, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok((
                    r.get(0)?,
                    PendingDelivery {
                        sink: r.get(1)?,
                        notification_id: r.get(2)?,
                        enqueued_ms: r.get(3)?,
                        attempts: r.get(4)?,
                        next_attempt_ms: r.get(5)?,
                        last_error: r.get(6)?,
                    },
                ))
            })?;
            rows.collect()
        };
        read().map_err(|e| self.fail("read the outbox to copy", e))
    }
}
