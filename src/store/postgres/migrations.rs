//! The PostgreSQL schema, as a list of versioned steps, in the schema `state.schema`.
//!
//! `schema_version` holds the number of steps applied. Instances that start at the same
//! moment on an empty database apply each step once: the whole migration runs in one
//! transaction that first takes a transaction-level advisory lock on the schema's name
//! (`pg_advisory_xact_lock`, released by the commit: no session state, so a transaction-
//! pooling proxy is fine), and re-reads the version under it. DDL is transactional in
//! PostgreSQL, so a crash leaves a whole version. Steps are append-only.

/// Version 1: the seen set, the watermark, the outbox, the dead letters, the leadership and
/// the instances. `{s}` is the quoted schema name.
const V1: &str = r#"
-- Every notification accepted (until pruned): the seen set of every instance. A notification
-- (~2 KB of JSON) stays in its row uncompressed: with the default toast_tuple_target most
-- rows were compressed on insert, server CPU the backfill waited for.
CREATE TABLE {s}.notifications (
    id                text    NOT NULL PRIMARY KEY,
    source            text    NOT NULL CHECK (source IN ('mastercard-cen', 'vgs')),
    subject           text    NOT NULL,
    subscription_name text,
    created_ms        bigint  NOT NULL,
    created_raw       text    NOT NULL,
    received_via      text    NOT NULL CHECK (received_via IN ('push', 'pull', 'backfill', 'audit')),
    first_seen_ms     bigint  NOT NULL,
    recovered         boolean NOT NULL DEFAULT false,
    json              text    NOT NULL
) WITH (toast_tuple_target = 8160);
CREATE INDEX notifications_by_created ON {s}.notifications (source, created_ms, subscription_name);

-- Small key/value state (the last audit, the writability probe).
CREATE TABLE {s}.meta (
    key   text NOT NULL PRIMARY KEY,
    value text NOT NULL
);

-- The poll watermark: one row, moved only under the current leadership epoch.
CREATE TABLE {s}.poll (
    one          boolean PRIMARY KEY DEFAULT true CHECK (one),
    watermark_ms bigint
);
INSERT INTO {s}.poll (one) VALUES (true);

-- The poller's leadership: one row; `expires_at` by the database's clock; `epoch` grows
-- with each new leader (fencing).
CREATE TABLE {s}.leader (
    one        boolean     PRIMARY KEY DEFAULT true CHECK (one),
    holder     text        NOT NULL,
    epoch      bigint      NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Every instance that tried to lead recently (`status`).
CREATE TABLE {s}.instances (
    name      text        NOT NULL PRIMARY KEY,
    last_seen timestamptz NOT NULL
);

-- One row per (sink, notification) still to deliver, claimed by one instance at a time.
-- Half of each page is left free so that claiming a row (lease_owner and lease_until_ms,
-- in no index) is a HOT update in place instead of a new row version in every index.
-- No foreign key to notifications (a per-row check on every insert): rows are inserted
-- with their notification in one statement, and pruning keeps every notification that an
-- outbox row or a dead letter refers to.
CREATE TABLE {s}.outbox (
    seq             bigserial PRIMARY KEY,
    sink            text      NOT NULL,
    notification_id text      NOT NULL,
    enqueued_ms     bigint    NOT NULL,
    attempts        integer   NOT NULL DEFAULT 0,
    next_attempt_ms bigint    NOT NULL,
    lease_owner     text,
    lease_until_ms  bigint,
    last_error      text,
    UNIQUE (notification_id, sink)
) WITH (fillfactor = 50);
CREATE INDEX outbox_by_sink ON {s}.outbox (sink, seq);

-- Deliveries given up on; `dead-letters retry` moves them back.
CREATE TABLE {s}.dead_letters (
    sink              text    NOT NULL,
    notification_id   text    NOT NULL,
    attempts          integer NOT NULL,
    first_enqueued_ms bigint  NOT NULL,
    dead_ms           bigint  NOT NULL,
    last_error        text,
    PRIMARY KEY (sink, notification_id)
);
CREATE INDEX dead_letters_by_notification ON {s}.dead_letters (notification_id);
"#;

/// The steps, in order.
pub(super) const STEPS: &[&str] = &[V1];

/// The version this binary brings a schema to.
pub(super) const CURRENT: i64 = STEPS.len() as i64;

/// Brings `schema` (quoted: `quoted`) up to [`CURRENT`], once however many instances run
/// this at the same moment. Returns the version found before.
pub(super) async fn migrate(
    client: &mut tokio_postgres::Client,
    schema: &str,
    quoted: &str,
) -> Result<Result<i64, i64>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('cen-poller migrate ' || $1::text))", &[&schema]).await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {quoted};
         CREATE TABLE IF NOT EXISTS {quoted}.schema_version (
             one     boolean PRIMARY KEY DEFAULT true CHECK (one),
             version bigint  NOT NULL
         );
         INSERT INTO {quoted}.schema_version (one, version) VALUES (true, 0) ON CONFLICT DO NOTHING;"
    ))
    .await?;
    let found: i64 = tx.query_one(&format!("SELECT version FROM {quoted}.schema_version"), &[]).await?.get(0);
    if found > CURRENT {
        return Ok(Err(found));
    }
    for (i, step) in STEPS.iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
        tx.batch_execute(&step.replace("{s}", quoted)).await?;
        let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
        tx.execute(&format!("UPDATE {quoted}.schema_version SET version = $1"), &[&version]).await?;
    }
    tx.commit().await?;
    Ok(Ok(found))
}
