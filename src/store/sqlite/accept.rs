//! Accepting notifications (the hot path), the poll watermark, and the per-window counts the
//! poller compares with the API's `total`.
//!
//! Invariants: a batch is accepted in one transaction (all of it or none of it); an id is
//! inserted at most once (`ON CONFLICT DO NOTHING`, then `changes()` tells new from
//! duplicate, which also catches a duplicate within the batch); only a new notification gets
//! outbox rows. Nothing here parses JSON: `json` is stored as given.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::outbox::json_array;
use super::{SOURCES, Store, StoreError};
use crate::store::{Accepted, Incoming, Route, Via};

/// The meta key of the poll watermark (epoch milliseconds).
const WATERMARK_KEY: &str = "poll_watermark_ms";

const INSERT_NOTIFICATION: &str = "
    INSERT INTO notifications (id, source, subject, subscription_name, created_ms, created_raw,
                               received_via, first_seen_ms, recovered, json)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
    ON CONFLICT DO NOTHING";

// One statement per route and batch, the batch's new nids travelling as one JSON array:
// with AUTOINCREMENT every INSERT statement reads and writes the sequence counter in
// `sqlite_sequence`, and each statement pays for its bindings and reset. Measured with
// `bench/store/accept.rs` under callgrind: the accept took 43,500 instructions per
// notification with a statement per row, 40,200 with one per batch (38,900 with the
// batch-wide values of the notification insert bound once). Rows go in array order, so
// seqs follow acceptance order. ON CONFLICT only matters when one sink name is routed
// twice (one row per sink either way); the SELECT has a WHERE clause, which SQLite needs
// to parse the upsert after it.
const INSERT_OUTBOX: &str = "
    INSERT INTO outbox (sink, nid, enqueued_ms, attempts, next_attempt_ms)
    SELECT ?1, value, ?2, 0, ?2 FROM json_each(?3) WHERE true
    ON CONFLICT (nid, sink) DO NOTHING";

pub(super) const COUNT_CREATED: &str = "
    SELECT count(*) FROM notifications
    WHERE source = ?1 AND created_ms >= ?2 AND created_ms < ?3";

// The names travel as one JSON array so one cached statement serves any number of them;
// the range on (source, created_ms) still drives the index, and subscription_name is in the
// index too, so the count never touches the table.
pub(super) const COUNT_CREATED_FILTERED: &str = "
    SELECT count(*) FROM notifications
    WHERE source = ?1 AND created_ms >= ?2 AND created_ms < ?3
      AND subscription_name IN (SELECT value FROM json_each(?4))";

impl Store {
    /// Stores the new notifications of `batch` and queues each for every route whose subjects
    /// match, in one transaction; counts the rest as duplicates.
    ///
    /// `recovered` marks the new ones as missed by push (they arrived by pull or backfill
    /// while push is configured). `now_ms` becomes `first_seen_ms` and the outbox rows'
    /// `enqueued_ms`.
    pub fn accept(
        &mut self,
        batch: &[Incoming<'_>],
        via: Via,
        recovered: bool,
        routes: &[Route],
        now_ms: i64,
    ) -> Result<Accepted, StoreError> {
        if batch.is_empty() {
            return Ok(Accepted::default());
        }
        // Checked before the transaction so a caller's mistake names the culprit instead of
        // surfacing as a CHECK constraint failure.
        if let Some(bad) = batch.iter().find(|n| !SOURCES.contains(&n.source)) {
            return Err(StoreError::InvalidInput {
                op: "accept",
                detail: format!("notification {} has source {:?}; expected one of {SOURCES:?}", bad.id, bad.source),
            });
        }
        let accept = |conn: &mut Connection| accept_tx(conn, batch, via, recovered, routes, now_ms);
        if via.synced_per_commit() { accept(&mut self.conn) } else { super::unsynced(&mut self.conn, accept) }
            .map_err(|e| self.fail("accept", e))
    }

    /// The poll watermark (epoch milliseconds), or `None` on a new database.
    pub fn watermark(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut st| st.query_row([WATERMARK_KEY], |row| row.get(0)).optional())
            .map_err(|e| self.fail("read the watermark", e))
    }

    /// Sets the poll watermark. Call only after the whole window before it is committed (G1);
    /// the store does not force it to move forward.
    pub fn set_watermark(&mut self, ms: i64) -> Result<(), StoreError> {
        set_watermark_tx(&mut self.conn, ms).map_err(|e| self.fail("set the watermark", e))
    }

    /// The number of stored notifications of `source` created in `[start_ms, end_ms)`, and
    /// when `subscription_names` is not empty, whose `subscription_name` is one of them (the
    /// API's filter). Reads the index only.
    pub fn count_created(
        &self,
        source: &str,
        start_ms: i64,
        end_ms: i64,
        subscription_names: &[String],
    ) -> Result<u64, StoreError> {
        let result = if subscription_names.is_empty() {
            self.conn
                .prepare_cached(COUNT_CREATED)
                .and_then(|mut st| st.query_row(params![source, start_ms, end_ms], |row| row.get::<_, i64>(0)))
        } else {
            let mut names = String::from("[");
            for (i, name) in subscription_names.iter().enumerate() {
                if i > 0 {
                    names.push(',');
                }
                crate::store::record::push_json_str(&mut names, name);
            }
            names.push(']');
            self.conn
                .prepare_cached(COUNT_CREATED_FILTERED)
                .and_then(|mut st| st.query_row(params![source, start_ms, end_ms, names], |row| row.get::<_, i64>(0)))
        };
        result.map(|n| u64::try_from(n).unwrap_or(0)).map_err(|e| self.fail("count stored notifications", e))
    }
}

fn accept_tx(
    conn: &mut Connection,
    batch: &[Incoming<'_>],
    via: Via,
    recovered: bool,
    routes: &[Route],
    now_ms: i64,
) -> rusqlite::Result<Accepted> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = Accepted { new_ids: Vec::with_capacity(batch.len()), ..Accepted::default() };
    // The new notifications: (nid, index in `batch`), in batch order, so in nid order.
    let mut new: Vec<(i64, usize)> = Vec::with_capacity(batch.len());
    {
        let mut insert = tx.prepare_cached(INSERT_NOTIFICATION)?;
        // What is the same for the whole batch is bound once: SQLite keeps a statement's
        // bindings from one execution to the next.
        insert.raw_bind_parameter(7, via.as_str())?;
        insert.raw_bind_parameter(8, now_ms)?;
        insert.raw_bind_parameter(9, i64::from(recovered))?;
        let mut source = None;
        for (i, n) in batch.iter().enumerate() {
            if source != Some(n.source) {
                insert.raw_bind_parameter(2, n.source)?;
                source = Some(n.source);
            }
            insert.raw_bind_parameter(1, n.id)?;
            insert.raw_bind_parameter(3, n.subject)?;
            insert.raw_bind_parameter(4, n.subscription_name)?;
            insert.raw_bind_parameter(5, n.created_ms)?;
            insert.raw_bind_parameter(6, n.created_raw)?;
            insert.raw_bind_parameter(10, n.json)?;
            let inserted = insert.raw_execute()?;
            if inserted == 0 {
                out.duplicates += 1;
                continue;
            }
            new.push((tx.last_insert_rowid(), i));
            out.new += 1;
            out.new_ids.push(n.id.to_owned());
            match out.new_by_subject.iter_mut().find(|(s, _)| s == n.subject) {
                Some((_, count)) => *count += 1,
                None => out.new_by_subject.push((n.subject.to_owned(), 1)),
            }
        }
    }
    if !new.is_empty() {
        let mut enqueue = tx.prepare_cached(INSERT_OUTBOX)?;
        for route in routes {
            let mut nids =
                new.iter().filter(|&&(_, i)| route.matches(batch[i].subject)).map(|&(nid, _)| nid).peekable();
            if nids.peek().is_none() {
                continue;
            }
            let nids = json_array(nids);
            out.enqueued += enqueue.execute(params![route.sink, now_ms, nids])?;
        }
    }
    if recovered {
        out.recovered = out.new;
    }
    tx.commit()?;
    Ok(out)
}

fn set_watermark_tx(conn: &mut Connection, ms: i64) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![WATERMARK_KEY, ms])?;
    tx.commit()
}
