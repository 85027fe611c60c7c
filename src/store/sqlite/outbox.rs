//! The outbox: per-sink delivery queue, leases, retries, dead letters and replay.
//!
//! Two processes (the daemon and a `--backfill`) may deliver from the same file, so a row is
//! **leased** before delivery: [`Store::lease`] marks the oldest due rows of a sink with an
//! owner and an expiry in one IMMEDIATE transaction, so no other owner can take them until
//! the lease expires (a crashed process's rows are taken over then — the one case where a
//! delivery may repeat, G2). Every later step ([`Store::ack`], [`Store::retry_later`],
//! [`Store::dead_letter`]) only touches rows still leased by the caller, so a late answer
//! after an expired lease cannot delete or reschedule another owner's work.
//!
//! Order: within a sink, rows are offered in `seq` (acceptance) order; a row waiting for its
//! retry does not hold back the rows behind it.

use rusqlite::{Connection, params};

use super::tx::{for_each_slice, unsynced_tx, write_tx};
use super::{SOURCES, Store, StoreError};
use crate::store::record::{RecordFields, push_json_str};
use crate::store::types::stored_error;
use crate::store::{DeadLetter, Leased, Route};

/// Replay enqueues one slice of creation time per transaction, so a long range does not
/// hold the write lock (and stall push) for long.
const REPLAY_SLICE_MS: i64 = 3_600_000;

// CROSS JOIN fixes the loop order: walk the sink's outbox rows in seq order through
// `outbox_by_sink` and stop at the limit, looking up each notification by primary key.
pub(super) const LEASE_SELECT: &str = "
    SELECT o.seq, n.id, o.attempts, o.enqueued_ms,
           n.source, n.received_via, n.first_seen_ms, n.subject, n.subscription_name,
           n.created_raw, n.json
    FROM outbox AS o CROSS JOIN notifications AS n ON n.nid = o.nid
    WHERE o.sink = ?1 AND o.next_attempt_ms <= ?2
      AND (o.lease_until_ms IS NULL OR o.lease_until_ms < ?2)
    ORDER BY o.seq
    LIMIT ?3";

// The leased seqs travel as one JSON array: one statement per batch, not one per row (each
// `seq` is still found by primary key).
pub(super) const LEASE_UPDATE: &str = "
    UPDATE outbox SET lease_owner = ?1, lease_until_ms = ?2
    WHERE seq IN (SELECT value FROM json_each(?3))";

const ACK: &str = "DELETE FROM outbox WHERE seq = ?1 AND lease_owner = ?2";

pub(super) const ACK_MANY: &str = "
    DELETE FROM outbox WHERE lease_owner = ?1 AND seq IN (SELECT value FROM json_each(?2))";

const RETRY_LATER: &str = "
    UPDATE outbox
    SET attempts = attempts + 1, next_attempt_ms = ?3, last_error = ?4,
        lease_owner = NULL, lease_until_ms = NULL
    WHERE seq = ?1 AND lease_owner = ?2";

// The SELECT has a WHERE clause, which SQLite needs to parse the upsert after it.
const DEAD_LETTER_INSERT: &str = "
    INSERT INTO dead_letters (sink, nid, notification_id, attempts, first_enqueued_ms, dead_ms,
                              last_error)
    SELECT o.sink, o.nid, n.id, o.attempts + 1, o.enqueued_ms, ?3, ?4
    FROM outbox AS o JOIN notifications AS n ON n.nid = o.nid
    WHERE o.seq = ?1 AND o.lease_owner = ?2
    ON CONFLICT (sink, nid) DO UPDATE SET
        attempts = excluded.attempts, first_enqueued_ms = excluded.first_enqueued_ms,
        dead_ms = excluded.dead_ms, last_error = excluded.last_error";

const DEAD_LETTERS_LIST: &str = "
    SELECT d.sink, d.notification_id, d.attempts, d.first_enqueued_ms, d.dead_ms, d.last_error,
           n.subject, n.created_raw
    FROM dead_letters AS d LEFT JOIN notifications AS n ON n.nid = d.nid
    WHERE (?1 IS NULL OR d.sink = ?1) AND (?2 IS NULL OR d.notification_id = ?2)
    ORDER BY d.dead_ms, d.sink, d.notification_id";

// Back in their original queue order; attempts start again so max_attempts applies afresh,
// and enqueued_ms is now so max_age does too. A row already queued again (e.g. by replay)
// is not duplicated.
const DEAD_LETTERS_REQUEUE: &str = "
    INSERT INTO outbox (sink, nid, enqueued_ms, attempts, next_attempt_ms, last_error)
    SELECT d.sink, d.nid, ?3, 0, ?3, d.last_error
    FROM dead_letters AS d
    WHERE (?1 IS NULL OR d.sink = ?1) AND (?2 IS NULL OR d.notification_id = ?2)
      AND EXISTS (SELECT 1 FROM notifications AS n WHERE n.nid = d.nid)
      AND NOT EXISTS (SELECT 1 FROM outbox AS o WHERE o.nid = d.nid AND o.sink = d.sink)
    ORDER BY d.first_enqueued_ms, d.notification_id";

// Only those now queued leave the dead letters (all of them, unless the notification row
// is missing, which the schema prevents).
const DEAD_LETTERS_DELETE: &str = "
    DELETE FROM dead_letters
    WHERE (?1 IS NULL OR sink = ?1) AND (?2 IS NULL OR notification_id = ?2)
      AND EXISTS (SELECT 1 FROM outbox AS o
                  WHERE o.nid = dead_letters.nid AND o.sink = dead_letters.sink)";

// ?6 is NULL for a sink that takes every subject, else a JSON array of its subjects.
const REPLAY_INSERT: &str = "
    INSERT INTO outbox (sink, nid, enqueued_ms, attempts, next_attempt_ms)
    SELECT ?1, n.nid, ?5, 0, ?5
    FROM notifications AS n
    WHERE n.source = ?2 AND n.created_ms >= ?3 AND n.created_ms < ?4
      AND (?6 IS NULL OR n.subject IN (SELECT value FROM json_each(?6)))
      AND NOT EXISTS (SELECT 1 FROM outbox AS o WHERE o.nid = n.nid AND o.sink = ?1)
    ORDER BY n.created_ms";

impl Store {
    /// Leases up to `max` of `sink`'s oldest due rows (by `seq`) to `owner` until
    /// `now_ms + lease_ms`, and returns them with their records. A row is due when its
    /// `next_attempt_ms <= now_ms` and it is unleased or its lease has expired.
    ///
    /// `owner` must be unique per process (e.g. host, pid and start time), so that two
    /// processes never mistake each other's leases for their own.
    pub fn lease(
        &mut self,
        sink: &str,
        owner: &str,
        max: usize,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Leased>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let until = now_ms.saturating_add(lease_ms.max(0));
        lease_tx(&mut self.conn, sink, owner, max, until, now_ms).map_err(|e| self.fail("lease outbox rows", e))
    }

    /// Removes delivered rows. Only rows still leased by `owner` are removed; returns how
    /// many were.
    pub fn ack(&mut self, owner: &str, seqs: &[i64]) -> Result<usize, StoreError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        ack_tx(&mut self.conn, owner, seqs).map_err(|e| self.fail("acknowledge deliveries", e))
    }

    /// [`Store::ack`] and then [`Store::lease`], in one transaction: a dispatcher going
    /// through a backlog commits once per batch instead of twice.
    pub fn ack_and_lease(
        &mut self,
        owner: &str,
        seqs: &[i64],
        sink: &str,
        max: usize,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<(usize, Vec<Leased>), StoreError> {
        let until = now_ms.saturating_add(lease_ms.max(0));
        unsynced_tx(&mut self.conn, |tx| {
            let acked = if seqs.is_empty() { 0 } else { ack_in(tx, owner, seqs)? };
            let leased = if max == 0 { Vec::new() } else { lease_in(tx, sink, owner, max, until, now_ms)? };
            Ok((acked, leased))
        })
        .map_err(|e| self.fail("acknowledge deliveries and lease more", e))
    }

    /// Records a failed attempt: `attempts + 1`, `last_error`, due again at
    /// `next_attempt_ms`, lease cleared. Returns false when the row is no longer leased by
    /// `owner` (its lease expired and someone else took it, or it is gone).
    pub fn retry_later(
        &mut self,
        seq: i64,
        owner: &str,
        error: &str,
        next_attempt_ms: i64,
    ) -> Result<bool, StoreError> {
        let error = stored_error(error);
        write_tx(&mut self.conn, |tx| {
            tx.prepare_cached(RETRY_LATER)?.execute(params![seq, owner, next_attempt_ms, error])
        })
        .map(|n| n > 0)
        .map_err(|e| self.fail("reschedule a delivery", e))
    }

    /// Gives up on a leased row after a failed attempt: moves it to `dead_letters` (with
    /// `attempts + 1`, `error` and `dead_ms = now_ms`), in one transaction. Returns false
    /// when the row is no longer leased by `owner`.
    pub fn dead_letter(&mut self, seq: i64, owner: &str, error: &str, now_ms: i64) -> Result<bool, StoreError> {
        let error = stored_error(error);
        write_tx(&mut self.conn, |tx| {
            let moved = tx.prepare_cached(DEAD_LETTER_INSERT)?.execute(params![seq, owner, now_ms, error])?;
            if moved == 0 {
                return Ok(false);
            }
            tx.prepare_cached(ACK)?.execute(params![seq, owner])?;
            Ok(true)
        })
        .map_err(|e| self.fail("move a delivery to the dead letters", e))
    }

    /// Clears every lease held by `owner` (clean shutdown), so another process need not wait
    /// for them to expire. Returns how many rows were released.
    pub fn release(&mut self, owner: &str) -> Result<usize, StoreError> {
        write_tx(&mut self.conn, |tx| {
            tx.prepare_cached(
                "UPDATE outbox SET lease_owner = NULL, lease_until_ms = NULL
                 WHERE lease_owner = ?1",
            )?
            .execute([owner])
        })
        .map_err(|e| self.fail("release leases", e))
    }

    /// Releases `owner`'s leases on the rows `seqs` (a dispatcher stopping with rows it
    /// did not deliver). Returns how many rows were released.
    pub fn release_seqs(&mut self, owner: &str, seqs: &[i64]) -> Result<usize, StoreError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        write_tx(&mut self.conn, |tx| {
            tx.prepare_cached(
                "UPDATE outbox SET lease_owner = NULL, lease_until_ms = NULL
                 WHERE lease_owner = ?1 AND seq IN (SELECT value FROM json_each(?2))",
            )?
            .execute(params![owner, json_array(seqs.iter().copied())])
        })
        .map_err(|e| self.fail("release leases", e))
    }

    /// The distinct owners holding leases, so a starting process can release those of
    /// processes that died (`kill -9`) instead of waiting for the leases to expire.
    pub fn lease_owners(&self) -> Result<Vec<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT DISTINCT lease_owner FROM outbox WHERE lease_owner IS NOT NULL")
            .and_then(|mut st| st.query_map([], |row| row.get(0))?.collect())
            .map_err(|e| self.fail("list lease owners", e))
    }

    /// The dead letters, optionally only one sink's and/or one notification's, oldest first.
    pub fn dead_letters(&self, sink: Option<&str>, id: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        let read = || -> rusqlite::Result<Vec<DeadLetter>> {
            let mut st = self.conn.prepare_cached(DEAD_LETTERS_LIST)?;
            let rows = st.query_map(params![sink, id], |row| {
                Ok(DeadLetter {
                    sink: row.get(0)?,
                    notification_id: row.get(1)?,
                    attempts: to_u32(row.get(2)?),
                    first_enqueued_ms: row.get(3)?,
                    dead_ms: row.get(4)?,
                    last_error: row.get(5)?,
                    subject: row.get(6)?,
                    created_raw: row.get(7)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(|e| self.fail("list dead letters", e))
    }

    /// Moves the matching dead letters back to the outbox, due at `now_ms` with attempts
    /// reset. Returns how many dead letters were cleared.
    pub fn retry_dead_letters(
        &mut self,
        sink: Option<&str>,
        id: Option<&str>,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        write_tx(&mut self.conn, |tx| {
            tx.prepare_cached(DEAD_LETTERS_REQUEUE)?.execute(params![sink, id, now_ms])?;
            tx.prepare_cached(DEAD_LETTERS_DELETE)?.execute(params![sink, id])
        })
        .map_err(|e| self.fail("retry dead letters", e))
    }

    /// Queues every stored notification created in `[start_ms, end_ms)` whose subject
    /// `route` takes, for `route.sink`, unless it is already queued for it. Works through the
    /// range in slices of creation time, one transaction each; returns the rows queued.
    pub fn enqueue_replay(
        &mut self,
        route: &Route,
        start_ms: i64,
        end_ms: i64,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        let subjects = if route.subjects.is_empty() {
            None
        } else {
            let mut json = String::from("[");
            for (i, s) in route.subjects.iter().enumerate() {
                if i > 0 {
                    json.push(',');
                }
                push_json_str(&mut json, s);
            }
            json.push(']');
            Some(json)
        };
        let mut queued = 0;
        for source in SOURCES {
            for_each_slice(&mut self.conn, source, start_ms, end_ms, REPLAY_SLICE_MS, |conn, lo, hi| {
                queued += write_tx(conn, |tx| {
                    tx.prepare_cached(REPLAY_INSERT)?.execute(params![route.sink, source, lo, hi, now_ms, subjects])
                })?;
                Ok(())
            })
            .map_err(|e| self.fail("queue a replay", e))?;
        }
        Ok(queued)
    }

    /// Rows waiting in the outbox, per sink (sinks with none are absent), by sink name.
    pub fn backlog(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.per_sink_counts("SELECT sink, count(*) FROM outbox GROUP BY sink ORDER BY sink")
            .map_err(|e| self.fail("count the outbox", e))
    }

    /// Dead letters per sink (sinks with none are absent), by sink name.
    pub fn dead_letter_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.per_sink_counts("SELECT sink, count(*) FROM dead_letters GROUP BY sink ORDER BY sink")
            .map_err(|e| self.fail("count dead letters", e))
    }

    /// When the oldest row still waiting for `sink` was queued (epoch ms), or `None` when
    /// its queue is empty. Rows are queued with the current time, so the first by `seq` is
    /// the oldest; this reads one index entry.
    pub fn oldest_pending_ms(&self, sink: &str) -> Result<Option<i64>, StoreError> {
        use rusqlite::OptionalExtension;
        self.conn
            .prepare_cached("SELECT enqueued_ms FROM outbox WHERE sink = ?1 ORDER BY seq LIMIT 1")
            .and_then(|mut st| st.query_row([sink], |row| row.get(0)).optional())
            .map_err(|e| self.fail("read the oldest pending delivery", e))
    }

    fn per_sink_counts(&self, sql: &str) -> rusqlite::Result<Vec<(String, u64)>> {
        let mut st = self.conn.prepare_cached(sql)?;
        let rows = st.query_map([], |row| Ok((row.get(0)?, u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0))))?;
        rows.collect()
    }
}

fn lease_tx(
    conn: &mut Connection,
    sink: &str,
    owner: &str,
    max: usize,
    until: i64,
    now_ms: i64,
) -> rusqlite::Result<Vec<Leased>> {
    unsynced_tx(conn, |tx| lease_in(tx, sink, owner, max, until, now_ms))
}

fn lease_in(
    tx: &rusqlite::Transaction<'_>,
    sink: &str,
    owner: &str,
    max: usize,
    until: i64,
    now_ms: i64,
) -> rusqlite::Result<Vec<Leased>> {
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    let mut leased = Vec::new();
    {
        let mut select = tx.prepare_cached(LEASE_SELECT)?;
        let mut rows = select.query(params![sink, now_ms, limit])?;
        while let Some(row) = rows.next()? {
            leased.push(Leased::new(
                row.get(0)?,
                to_u32(row.get(2)?),
                row.get(3)?,
                &RecordFields {
                    id: row.get_ref(1)?.as_str()?,
                    source: row.get_ref(4)?.as_str()?,
                    received_via: row.get_ref(5)?.as_str()?,
                    first_seen_ms: row.get(6)?,
                    subject: row.get_ref(7)?.as_str()?,
                    subscription_name: row.get_ref(8)?.as_str_or_null()?,
                    created_raw: row.get_ref(9)?.as_str()?,
                    json: row.get_ref(10)?.as_str()?,
                },
            ));
        }
    }
    // Marked after reading, not while the SELECT is stepping over the same index.
    if !leased.is_empty() {
        tx.prepare_cached(LEASE_UPDATE)?.execute(params![owner, until, json_array(leased.iter().map(|l| l.seq))])?;
    }
    Ok(leased)
}

fn ack_tx(conn: &mut Connection, owner: &str, seqs: &[i64]) -> rusqlite::Result<usize> {
    unsynced_tx(conn, |tx| ack_in(tx, owner, seqs))
}

fn ack_in(tx: &rusqlite::Transaction<'_>, owner: &str, seqs: &[i64]) -> rusqlite::Result<usize> {
    tx.prepare_cached(ACK_MANY)?.execute(params![owner, json_array(seqs.iter().copied())])
}

/// `[1,2,3]`: a list of numbers as one bound parameter, read back with `json_each`.
pub(super) fn json_array(numbers: impl Iterator<Item = i64>) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("[");
    for (i, n) in numbers.enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{n}");
    }
    out.push(']');
    out
}

fn to_u32(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}
