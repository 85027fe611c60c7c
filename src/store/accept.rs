//! Accepting notifications (the hot path), the poll watermark, and the per-window counts the
//! poller compares with the API's `total`.
//!
//! Invariants: a batch is accepted in one transaction (all of it or none of it); an id is
//! inserted at most once (`ON CONFLICT DO NOTHING`, then `changes()` tells new from
//! duplicate, which also catches a duplicate within the batch); only a new notification gets
//! outbox rows. Nothing here parses JSON: `json` is stored as given.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::outbox::{Leased, Route, json_array};
use super::record::{RecordFields, write_record};
use super::{SOURCES, Store, StoreError};
use crate::cen::notification::Notification;

/// The meta key of the poll watermark (epoch milliseconds).
const WATERMARK_KEY: &str = "poll_watermark_ms";

/// The path that delivered a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// Mastercard's push (or a VGS webhook).
    Push,
    /// The daemon's poll cycle.
    Pull,
    /// A one-shot `--backfill`.
    Backfill,
    /// An audit (SPEC 12) that found it after the sliding window missed it.
    Audit,
}

impl Via {
    /// The name stored in `received_via` and written in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Push => "push",
            Via::Pull => "pull",
            Via::Backfill => "backfill",
            Via::Audit => "audit",
        }
    }

    /// Whether each accept by this path is fsynced before it returns.
    ///
    /// A push is answered `200` only after its commit, and Mastercard does not send it
    /// again: that commit must survive a power loss at once (G1, G4). A page read by the
    /// poll or a backfill can be read from the API again for 7 days, and the scanner's
    /// callers make the pages durable before anything depends on them: the poll cycle's
    /// watermark commit is synced (and the WAL is a prefix log, so it syncs every page
    /// before it), and a backfill calls [`super::StoreHandle::sync`] before it reports
    /// success. A power loss in between loses only pages the poll or a rerun reads again.
    /// One fsync per window instead of one per page: in the backfill benchmark the accepts'
    /// commits held the store's lock 6.8 s of a 25 s run per million, 3.2–3.5 s without the
    /// fsync (BENCHMARKS.md, fourth round).
    pub fn synced_per_commit(self) -> bool {
        self == Via::Push
    }

    /// The inverse of [`Via::as_str`].
    pub fn parse(s: &str) -> Option<Via> {
        match s {
            "push" => Some(Via::Push),
            "pull" => Some(Via::Pull),
            "backfill" => Some(Via::Backfill),
            "audit" => Some(Via::Audit),
            _ => None,
        }
    }
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One notification to accept, borrowed from the caller's parsed form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming<'a> {
    /// The stable id (SPEC 3), or `vgs:<event id>`.
    pub id: &'a str,
    /// [`super::SOURCE_CEN`] or [`super::SOURCE_VGS`].
    pub source: &'a str,
    /// CEN `subject`, or the VGS event name.
    pub subject: &'a str,
    /// CEN `subscriptionName`, when present.
    pub subscription_name: Option<&'a str>,
    /// Creation time, UTC epoch milliseconds.
    pub created_ms: i64,
    /// Creation time exactly as sent (the record's `created_timestamp`).
    pub created_raw: &'a str,
    /// The object exactly as received; must be one JSON value (it is embedded verbatim in
    /// every record and not checked again).
    pub json: &'a str,
}

impl Incoming<'_> {
    /// The record (SPEC 6) of this notification first seen at `first_seen_ms` by `via`.
    pub fn record(&self, via: Via, first_seen_ms: i64) -> String {
        let mut record = String::new();
        write_record(
            &mut record,
            &RecordFields {
                id: self.id,
                source: self.source,
                received_via: via.as_str(),
                first_seen_ms,
                subject: self.subject,
                subscription_name: self.subscription_name,
                created_raw: self.created_raw,
                json: self.json,
            },
        );
        record
    }
}

impl<'a> From<&'a Notification> for Incoming<'a> {
    fn from(n: &'a Notification) -> Self {
        Incoming {
            id: &n.id,
            source: super::SOURCE_CEN,
            subject: &n.subject,
            subscription_name: n.subscription_name.as_deref(),
            created_ms: n.created.timestamp_millis(),
            created_raw: &n.created_raw,
            json: &n.json,
        }
    }
}

/// What [`Store::accept`] did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Notifications seen for the first time (now stored and queued).
    pub new: usize,
    /// Notifications already stored, or repeated earlier in the same batch.
    pub duplicates: usize,
    /// The new ids, in batch order.
    pub new_ids: Vec<String>,
    /// New notifications per subject, in order of first appearance in the batch.
    pub new_by_subject: Vec<(String, usize)>,
    /// New notifications that arrived by pull or backfill while push is configured: push
    /// missed them. A batch has one path, so when this is non-zero it equals `new`, and
    /// `new_by_subject` is also the per-subject breakdown of the recovered ones.
    pub recovered: usize,
    /// Outbox rows created (new notifications × matching sinks).
    pub enqueued: usize,
}

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
// to parse the upsert after it. The lease columns are NULL unless the rows are handed to a
// waiting dispatcher at once. RETURNING gives the seqs of the rows inserted.
const INSERT_OUTBOX: &str = "
    INSERT INTO outbox (sink, nid, enqueued_ms, attempts, next_attempt_ms, lease_owner, lease_until_ms)
    SELECT ?1, value, ?2, 0, ?2, ?3, ?4 FROM json_each(?5) WHERE true
    ON CONFLICT (nid, sink) DO NOTHING
    RETURNING seq, nid";

/// A route whose new outbox rows are leased as they are inserted, to a dispatcher of this
/// process that has caught up with its queue and waits for them (see `store::handoff`): it
/// gets them with their records straight from the accepting call, so it need not read them
/// back, nor mark them leased in a second write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTo<'a> {
    /// The lease owner (the process's owner id).
    pub owner: &'a str,
    /// The lease's expiry, epoch ms.
    pub until_ms: i64,
}

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
    /// `push_configured` says whether a push endpoint is configured: then a notification
    /// first seen by pull or backfill is marked `recovered`. `now_ms` becomes `first_seen_ms`
    /// and the outbox rows' `enqueued_ms`.
    pub fn accept(
        &mut self,
        batch: &[Incoming<'_>],
        via: Via,
        push_configured: bool,
        routes: &[Route],
        now_ms: i64,
    ) -> Result<Accepted, StoreError> {
        self.accept_leasing(batch, via, push_configured, routes, &[], now_ms, Vec::new()).map(|(accepted, _)| accepted)
    }

    /// [`Store::accept`], and for each route `i` with `lease_to[i]` set, the route's new
    /// rows are inserted already leased and returned (in seq order, records written) in
    /// the second value's `i`th list. A missing `lease_to[i]` means "not leased".
    ///
    /// `records[i]`, when not empty, is `batch[i].record(via, now_ms)` written beforehand,
    /// outside the store's lock; a leased row whose record is missing gets it written here.
    #[allow(clippy::too_many_arguments)]
    pub fn accept_leasing(
        &mut self,
        batch: &[Incoming<'_>],
        via: Via,
        push_configured: bool,
        routes: &[Route],
        lease_to: &[Option<LeaseTo<'_>>],
        now_ms: i64,
        records: Vec<String>,
    ) -> Result<(Accepted, Vec<Vec<Leased>>), StoreError> {
        if batch.is_empty() {
            return Ok((Accepted::default(), vec![Vec::new(); routes.len()]));
        }
        // Checked before the transaction so a caller's mistake names the culprit instead of
        // surfacing as a CHECK constraint failure.
        if let Some(bad) = batch.iter().find(|n| !SOURCES.contains(&n.source)) {
            return Err(StoreError::InvalidInput {
                op: "accept",
                detail: format!("notification {} has source {:?}; expected one of {SOURCES:?}", bad.id, bad.source),
            });
        }
        let recovered = push_configured && via != Via::Push;
        let accept = |conn: &mut Connection| accept_tx(conn, batch, via, recovered, routes, lease_to, now_ms, records);
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
                super::record::push_json_str(&mut names, name);
            }
            names.push(']');
            self.conn
                .prepare_cached(COUNT_CREATED_FILTERED)
                .and_then(|mut st| st.query_row(params![source, start_ms, end_ms, names], |row| row.get::<_, i64>(0)))
        };
        result.map(|n| u64::try_from(n).unwrap_or(0)).map_err(|e| self.fail("count stored notifications", e))
    }
}

#[allow(clippy::too_many_arguments)]
fn accept_tx(
    conn: &mut Connection,
    batch: &[Incoming<'_>],
    via: Via,
    recovered: bool,
    routes: &[Route],
    lease_to: &[Option<LeaseTo<'_>>],
    now_ms: i64,
    mut records: Vec<String>,
) -> rusqlite::Result<(Accepted, Vec<Vec<Leased>>)> {
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
    // Outbox rows inserted leased: (index in `batch`, route index, seq).
    let mut handed: Vec<(usize, usize, i64)> = Vec::new();
    if !new.is_empty() {
        let mut enqueue = tx.prepare_cached(INSERT_OUTBOX)?;
        for (r, route) in routes.iter().enumerate() {
            let mut nids =
                new.iter().filter(|&&(_, i)| route.matches(batch[i].subject)).map(|&(nid, _)| nid).peekable();
            if nids.peek().is_none() {
                continue;
            }
            let nids = json_array(nids);
            let lease = lease_to.get(r).copied().flatten();
            let mut rows =
                enqueue.query(params![route.sink, now_ms, lease.map(|l| l.owner), lease.map(|l| l.until_ms), nids])?;
            while let Some(row) = rows.next()? {
                out.enqueued += 1;
                if lease.is_some() {
                    let (seq, nid): (i64, i64) = (row.get(0)?, row.get(1)?);
                    // `new` is in nid order; every returned nid is one of them.
                    if let Ok(k) = new.binary_search_by_key(&nid, |&(nid, _)| nid) {
                        handed.push((new[k].1, r, seq));
                    }
                }
            }
        }
    }
    if recovered {
        out.recovered = out.new;
    }
    tx.commit()?;
    Ok((out, hand_over(batch, via, now_ms, routes.len(), handed, &mut records)))
}

/// The leased rows of each route, in seq order, with their records. The record is written
/// once per notification, however many routes took it leased; the last of them gets it
/// without a copy. `records[i]`, when not empty, is `batch[i]`'s record written beforehand.
fn hand_over(
    batch: &[Incoming<'_>],
    via: Via,
    now_ms: i64,
    routes: usize,
    mut handed: Vec<(usize, usize, i64)>,
    records: &mut [String],
) -> Vec<Vec<Leased>> {
    let mut leased: Vec<Vec<Leased>> = vec![Vec::new(); routes];
    // By notification, then seq: a notification's rows are next to each other.
    handed.sort_unstable_by_key(|&(i, _, seq)| (i, seq));
    let mut rest = handed.as_slice();
    while let Some(&(i, _, _)) = rest.first() {
        let same = rest.iter().take_while(|h| h.0 == i).count();
        let (rows, after) = rest.split_at(same);
        rest = after;
        let n = &batch[i];
        let mut record = match records.get_mut(i).map(std::mem::take) {
            Some(record) if !record.is_empty() => record,
            _ => n.record(via, now_ms),
        };
        for (k, &(_, route, seq)) in rows.iter().enumerate() {
            let record = if k + 1 == rows.len() { std::mem::take(&mut record) } else { record.clone() };
            leased[route].push(Leased {
                seq,
                id: n.id.to_owned(),
                attempts: 0,
                enqueued_ms: now_ms,
                subject: n.subject.to_owned(),
                created_raw: n.created_raw.to_owned(),
                received_via: via.as_str().to_owned(),
                record,
            });
        }
    }
    for rows in &mut leased {
        rows.sort_unstable_by_key(|row| row.seq);
    }
    leased
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
