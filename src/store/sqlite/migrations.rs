//! The schema, as a list of versioned steps.
//!
//! `PRAGMA user_version` holds the number of steps applied. Each step runs in its own
//! IMMEDIATE transaction together with the version bump, so a crash leaves the file at a
//! whole version, and two processes opening a fresh file at once cannot both apply a step
//! (the version is re-read after taking the write lock). Steps are append-only: never edit
//! a released step, add a new one.
//!
//! Tables are plain (not `STRICT`) so that the `sqlite3` shell of older distributions can
//! still open the file for inspection.

use rusqlite::{Connection, Transaction, TransactionBehavior};

/// Version 1: the seen set, the watermark, the outbox and the dead letters.
pub(super) const V1: &str = r#"
-- Every notification ever accepted (until pruned): the seen set that makes push + pull one
-- stream, and the copy replay and sinks read from. `json` is the object exactly as first
-- received; it is last so the small columns stay on the row's first page.
CREATE TABLE notifications (
    id                TEXT    NOT NULL PRIMARY KEY,
    source            TEXT    NOT NULL CHECK (source IN ('mastercard-cen', 'vgs')),
    subject           TEXT    NOT NULL,
    subscription_name TEXT,
    created_ms        INTEGER NOT NULL,
    created_raw       TEXT    NOT NULL,
    received_via      TEXT    NOT NULL CHECK (received_via IN ('push', 'pull', 'backfill')),
    first_seen_ms     INTEGER NOT NULL,
    recovered         INTEGER NOT NULL DEFAULT 0 CHECK (recovered IN (0, 1)),
    json              TEXT    NOT NULL
);
-- Counting a poll sub-window (source, [start, end), subscription filter) reads this index
-- only; pruning, replay and status walk it by creation time.
CREATE INDEX notifications_by_created ON notifications (source, created_ms, subscription_name);

-- Small key/value state; the poll watermark lives here.
CREATE TABLE meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value
) WITHOUT ROWID;

-- One row per (sink, notification) still to deliver. `seq` is the acceptance order, the
-- order each sink is served in; AUTOINCREMENT so a seq is never reused after a delete.
CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    sink            TEXT    NOT NULL,
    notification_id TEXT    NOT NULL REFERENCES notifications (id),
    enqueued_ms     INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until_ms  INTEGER,
    last_error      TEXT
);
-- Leasing walks one sink's rows in seq order and stops after `max` due, unleased rows. The
-- due/lease columns ride along in the index so skipped rows (backing off, leased elsewhere)
-- cost no table lookup, and no sort of the whole backlog is ever needed.
CREATE INDEX outbox_by_sink ON outbox (sink, seq, next_attempt_ms, lease_until_ms);
-- At most one pending row per (notification, sink): G2 enforced by the database. Also serves
-- the foreign-key check when pruning and the "already queued" check of replay.
CREATE UNIQUE INDEX outbox_by_notification ON outbox (notification_id, sink);

-- Deliveries given up on (max_attempts or max_age); `dead-letters retry` moves them back.
CREATE TABLE dead_letters (
    sink              TEXT    NOT NULL,
    notification_id   TEXT    NOT NULL REFERENCES notifications (id),
    attempts          INTEGER NOT NULL,
    first_enqueued_ms INTEGER NOT NULL,
    dead_ms           INTEGER NOT NULL,
    last_error        TEXT,
    PRIMARY KEY (sink, notification_id)
);
CREATE INDEX dead_letters_by_notification ON dead_letters (notification_id);
"#;

/// Version 2: the seen set keyed by creation time instead of by hash.
///
/// In version 1 `notifications.id` was the primary key, and the outbox and dead letters
/// referred to notifications by it. Ids are SHA-256 hashes, so every insert landed on a
/// random page of that index (and of `outbox_by_notification`): once the index outgrew a
/// page commit, each new notification dirtied a page of its own in each of them — 8 KiB
/// written to the WAL and again to the database per index per notification, ~25 KB per
/// notification in all (measured in the backfill benchmark, BENCHMARKS.md).
///
/// Now a notification has an integer key `nid` (in insertion order) that the outbox and
/// dead letters refer to, and duplicates are caught by a unique index on
/// `(created_ms, id)`, which new notifications reach in time order. For a CEN notification
/// that is exactly the same set as unique ids: the id hashes the whole object, its
/// `createdTimestamp` included, so equal ids have equal `created_ms`. For other sources
/// (VGS, whose `created_ms` need not follow from the event id) a partial unique index on
/// `id` keeps ids unique outright; VGS volumes are small.
///
/// The copy keeps every row, rowid and outbox sequence number as they were.
const V2: &str = r#"
CREATE TABLE notifications_v2 (
    nid               INTEGER PRIMARY KEY,
    id                TEXT    NOT NULL,
    source            TEXT    NOT NULL CHECK (source IN ('mastercard-cen', 'vgs')),
    subject           TEXT    NOT NULL,
    subscription_name TEXT,
    created_ms        INTEGER NOT NULL,
    created_raw       TEXT    NOT NULL,
    received_via      TEXT    NOT NULL CHECK (received_via IN ('push', 'pull', 'backfill')),
    first_seen_ms     INTEGER NOT NULL,
    recovered         INTEGER NOT NULL DEFAULT 0 CHECK (recovered IN (0, 1)),
    json              TEXT    NOT NULL
);
INSERT INTO notifications_v2 (nid, id, source, subject, subscription_name, created_ms, created_raw,
                              received_via, first_seen_ms, recovered, json)
SELECT rowid, id, source, subject, subscription_name, created_ms, created_raw,
       received_via, first_seen_ms, recovered, json
FROM notifications ORDER BY rowid;

CREATE TABLE outbox_v2 (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    sink            TEXT    NOT NULL,
    nid             INTEGER NOT NULL REFERENCES notifications_v2 (nid),
    enqueued_ms     INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until_ms  INTEGER,
    last_error      TEXT
);
INSERT INTO outbox_v2 (seq, sink, nid, enqueued_ms, attempts, next_attempt_ms, lease_owner,
                       lease_until_ms, last_error)
SELECT o.seq, o.sink, n.rowid, o.enqueued_ms, o.attempts, o.next_attempt_ms, o.lease_owner,
       o.lease_until_ms, o.last_error
FROM outbox AS o JOIN notifications AS n ON n.id = o.notification_id ORDER BY o.seq;
-- A sequence number is never reused, even one whose row was already delivered.
UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0))
WHERE name = 'outbox_v2';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'outbox_v2', seq FROM sqlite_sequence
WHERE name = 'outbox' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'outbox_v2');

-- `notification_id` stays, for listing and for `--id`, without a join.
CREATE TABLE dead_letters_v2 (
    sink              TEXT    NOT NULL,
    nid               INTEGER NOT NULL REFERENCES notifications_v2 (nid),
    notification_id   TEXT    NOT NULL,
    attempts          INTEGER NOT NULL,
    first_enqueued_ms INTEGER NOT NULL,
    dead_ms           INTEGER NOT NULL,
    last_error        TEXT,
    PRIMARY KEY (sink, nid)
);
INSERT INTO dead_letters_v2 (sink, nid, notification_id, attempts, first_enqueued_ms, dead_ms,
                             last_error)
SELECT d.sink, n.rowid, d.notification_id, d.attempts, d.first_enqueued_ms, d.dead_ms,
       d.last_error
FROM dead_letters AS d JOIN notifications AS n ON n.id = d.notification_id;

DROP TABLE dead_letters;
DROP TABLE outbox;
DROP TABLE notifications;
ALTER TABLE notifications_v2 RENAME TO notifications;
ALTER TABLE outbox_v2 RENAME TO outbox;
ALTER TABLE dead_letters_v2 RENAME TO dead_letters;

-- The seen set (see above): duplicates of a CEN notification meet here...
CREATE UNIQUE INDEX notifications_seen ON notifications (created_ms, id);
-- ...and of anything else here.
CREATE UNIQUE INDEX notifications_seen_other ON notifications (id) WHERE source <> 'mastercard-cen';
-- As in version 1: counting a poll sub-window reads this index only.
CREATE INDEX notifications_by_created ON notifications (source, created_ms, subscription_name);
CREATE INDEX outbox_by_sink ON outbox (sink, seq, next_attempt_ms, lease_until_ms);
CREATE UNIQUE INDEX outbox_by_notification ON outbox (nid, sink);
CREATE INDEX dead_letters_by_notification ON dead_letters (nid);
"#;

/// Version 3: the `received_via` CHECK of `notifications` written as equalities.
///
/// `x IN (...)` with three or more constants compiles, in a CHECK, to a temporary b-tree
/// of the constants built on every INSERT (`OpenEphemeral` in `EXPLAIN`): 13% of the
/// accept's statement time in the backfill benchmark, with the store's lock held. Three
/// `=` tests mean the same, so every stored row satisfies the new CHECK, and SQLite's
/// documented procedure for changing a CHECK without rewriting data applies
/// (<https://www.sqlite.org/lang_altertable.html#otheralter>): edit the table's SQL in
/// `sqlite_schema` and bump the schema cookie so other connections reload it. A file whose
/// SQL does not read as expected keeps its CHECK: only slower.
fn v3(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    const OLD: &str = "CHECK (received_via IN ('push', 'pull', 'backfill'))";
    const NEW: &str = "CHECK (received_via = 'push' OR received_via = 'pull' OR received_via = 'backfill')";
    let cookie: i64 = tx.pragma_query_value(None, "schema_version", |row| row.get(0))?;
    tx.pragma_update(None, "writable_schema", true)?;
    let edited = tx.execute(
        "UPDATE sqlite_schema SET sql = replace(sql, ?1, ?2) WHERE type = 'table' AND name = 'notifications'",
        [OLD, NEW],
    );
    // Off again whatever happened: the connection is used on.
    let off = tx.pragma_update(None, "writable_schema", false);
    edited?;
    off?;
    tx.pragma_update(None, "schema_version", cookie + 1)
}

/// Version 4: `received_via` may be `audit` (SPEC 6, 12), by the same documented procedure
/// as version 3: the CHECK only grows, so every stored row satisfies the new one. The
/// CHECK of a file that did not take version 3's edit is rewritten too. A file whose CHECK
/// reads neither way is refused rather than left unable to store an audit's findings.
fn v4(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    const FROM: [&str; 2] = [
        "CHECK (received_via = 'push' OR received_via = 'pull' OR received_via = 'backfill')",
        "CHECK (received_via IN ('push', 'pull', 'backfill'))",
    ];
    const TO: &str =
        "CHECK (received_via = 'push' OR received_via = 'pull' OR received_via = 'backfill' OR received_via = 'audit')";
    let cookie: i64 = tx.pragma_query_value(None, "schema_version", |row| row.get(0))?;
    tx.pragma_update(None, "writable_schema", true)?;
    let mut edited = Ok(0);
    for from in FROM {
        edited = edited.and_then(|n| {
            tx.execute(
                "UPDATE sqlite_schema SET sql = replace(sql, ?1, ?2) WHERE type = 'table' AND name = 'notifications'",
                [from, TO],
            )
            .map(|m| n + m)
        });
    }
    let off = tx.pragma_update(None, "writable_schema", false);
    edited?;
    off?;
    let sql: String =
        tx.query_row("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'notifications'", [], |r| {
            r.get(0)
        })?;
    if !sql.contains(TO) {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(
                "the notifications table's received_via CHECK is not one this version knows; it cannot be extended to 'audit'"
                    .into(),
            ),
        ));
    }
    tx.pragma_update(None, "schema_version", cookie + 1)
}

/// One step of the schema's history.
pub(super) enum Step {
    /// SQL run as one batch.
    Sql(&'static str),
    /// Code, for what SQL alone cannot say.
    Code(fn(&Transaction<'_>) -> rusqlite::Result<()>),
}

/// The steps, in order; step `i` takes the file from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[Step] = &[Step::Sql(V1), Step::Sql(V2), Step::Code(v3), Step::Code(v4)];

/// The schema version this binary writes.
pub(super) const CURRENT: i64 = MIGRATIONS.len() as i64;

/// What [`migrate`] found.
pub(super) enum Outcome {
    /// The file is at [`CURRENT`].
    UpToDate,
    /// The file is at a version this binary does not know.
    TooNew(i64),
}

/// Applies the missing steps, one transaction each.
pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<Outcome> {
    loop {
        let version = user_version(conn)?;
        if version > CURRENT {
            return Ok(Outcome::TooNew(version));
        }
        if version == CURRENT {
            return Ok(Outcome::UpToDate);
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let locked_version = user_version(&tx)?;
        if locked_version == version {
            // `version` is in 0..CURRENT here, so the step exists.
            match MIGRATIONS.get(version as usize) {
                Some(Step::Sql(sql)) => tx.execute_batch(sql)?,
                Some(Step::Code(step)) => step(&tx)?,
                None => {}
            }
            tx.pragma_update(None, "user_version", version + 1)?;
        }
        tx.commit()?;
    }
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}
