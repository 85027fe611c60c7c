//! The PostgreSQL backend: several cen-poller instances sharing one database (SPEC 13).
//!
//! Invariants, beyond those of every backend (`store/backend.rs`):
//! - **Accept** is one statement (notifications `ON CONFLICT (id) DO NOTHING`, their outbox
//!   rows, and a `NOTIFY` when rows were queued), so it is one transaction; a push's commit
//!   is synchronous (`synchronous_commit` as the server has it), pull and backfill pages
//!   commit with `synchronous_commit = off` and [`Backend::sync`] (one synchronous commit)
//!   makes them durable, as the SQLite backend does with its WAL.
//! - **Leadership** is the one row of `leader`, its expiry taken from the database's clock;
//!   taking it over bumps `epoch`. The watermark is written only in a statement that holds
//!   that row `FOR SHARE` with the writer's epoch and an unexpired lease, so a takeover and a
//!   stale leader's write cannot interleave. No session state (advisory locks, prepared
//!   statements aside), so a transaction-pooling proxy does not break it.
//! - **Outbox claims** take rows `FOR UPDATE SKIP LOCKED`, so instances claiming at once get
//!   disjoint batches; every later step on a row requires the claimant's owner id.
//! - **Wake-ups**: a dedicated connection `LISTEN`s on the schema's channel and raises the
//!   commit signal for every instance's commits; it reconnects with backoff, raising the
//!   signal once more after each reconnect (commits may have passed unheard).
//! - Outbox times (`enqueued_ms`, due, claim expiry) are the instances' clocks, as with
//!   SQLite; only the leadership uses the database's clock.

mod import;
mod migrations;

pub use import::Import;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool, PoolError};

use crate::pg::{Target, pg_error};
use crate::store::backend::{Backend, Batch, Committed, Epoch, Instance, Leadership};
use crate::store::record::RecordFields;
use crate::store::types::stored_error;
use crate::store::{Accepted, CountRow, DeadLetter, LastAudit, Leased, Route, SOURCES, StoreError, Via};

/// Connections per instance: enough for the push listener's concurrent commits to share
/// the server's group commit, few enough that three instances and their sinks stay far
/// below PostgreSQL's default `max_connections` (100).
const POOL_SIZE: usize = 16;
/// Longest wait for a connection; a server that takes longer is treated as unreachable.
const POOL_WAIT: Duration = Duration::from_secs(10);
/// Rows deleted per statement when pruning.
const PRUNE_CHUNK: i64 = 2_000;

/// How to reach the shared database (`[state]` with `backend = "postgres"`).
#[derive(Clone)]
pub struct Settings {
    /// The connection string (libpq `key=value` or `postgres://` URL); may hold a password,
    /// so it is never printed.
    pub dsn: String,
    /// The schema holding cen-poller's tables (`state.schema`).
    pub schema: String,
    /// Relative `sslrootcert` paths are resolved against this directory.
    pub base_dir: Option<PathBuf>,
    /// This instance's name (`state.instance`): its connections' `application_name` is
    /// `cen-poller <instance>`, so `pg_stat_activity` tells the instances apart.
    pub instance: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings").field("schema", &self.schema).finish_non_exhaustive()
    }
}

/// The PostgreSQL backend.
pub struct Postgres {
    pool: Pool,
    /// For connections outside the pool (the listener, an import).
    target: Target,
    /// `"schema"`, quoted for SQL.
    s: String,
    /// The `NOTIFY` channel of this schema.
    channel: String,
    /// Server and schema, for messages (never the password).
    described: String,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl Postgres {
    /// Connects, brings the schema up to date (safe when instances start at once), and
    /// starts listening for other instances' commits, which raise `committed`.
    pub async fn open(settings: &Settings, committed: Committed) -> Result<Postgres, StoreError> {
        let base = settings.base_dir.clone();
        let mut target = Target::parse(&settings.dsn, |p| match &base {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        })
        .map_err(|e| StoreError::Unreachable { server: "[state] url".into(), detail: e.to_string() })?;
        if let Some(instance) = &settings.instance {
            target.name_connections(&format!("cen-poller {instance}"));
        }
        let described = format!("postgres {} schema {}", target.describe(), settings.schema);
        let server = target.describe().to_owned();
        let quoted = format!("\"{}\"", settings.schema.replace('"', "\"\""));
        let pool = target
            .pool(POOL_SIZE, POOL_WAIT)
            .map_err(|e| StoreError::Unreachable { server: server.clone(), detail: e.to_string() })?;
        let mut client = target
            .connect()
            .await
            .map_err(|e| StoreError::Unreachable { server: server.clone(), detail: e.to_string() })?;
        match migrations::migrate(&mut client, &settings.schema, &quoted).await {
            Ok(Ok(_)) => {}
            Ok(Err(found)) => {
                return Err(StoreError::SchemaTooNew { server, found, supported: migrations::CURRENT });
            }
            Err(e) => {
                return Err(StoreError::Postgres { server, op: "create or migrate the schema", detail: pg_error(&e) });
            }
        }
        drop(client);
        let channel = format!("cen_poller_{}", settings.schema);
        let listener = tokio::spawn(listen(target.clone(), channel.clone(), committed));
        Ok(Postgres { pool, target, s: quoted, channel, described, listener })
    }

    async fn conn(&self, op: &'static str) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => StoreError::Unreachable { server: self.described.clone(), detail: pg_error(&e) },
            other => StoreError::Unreachable { server: self.described.clone(), detail: format!("{op}: {other}") },
        })
    }

    fn fail(&self, op: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
        move |e| StoreError::Postgres { server: self.described.clone(), op, detail: pg_error(&e) }
    }

    /// `sql` with `{s}` replaced by the quoted schema.
    fn sql(&self, sql: &str) -> String {
        sql.replace("{s}", &self.s)
    }

    /// Runs one statement and returns the rows it affected.
    async fn execute(
        &self,
        op: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let client = self.conn(op).await?;
        let st = client.prepare_cached(&self.sql(sql)).await.map_err(self.fail(op))?;
        client.execute(&st, params).await.map_err(self.fail(op))
    }

    async fn query(
        &self,
        op: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.conn(op).await?;
        let st = client.prepare_cached(&self.sql(sql)).await.map_err(self.fail(op))?;
        client.query(&st, params).await.map_err(self.fail(op))
    }

    /// Claims up to `max` due rows of `sink` for `owner` on `client` (inside the caller's
    /// transaction or on its own).
    async fn lease_on(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        sink: &str,
        owner: &str,
        max: usize,
        lease_ms: i64,
    ) -> Result<Vec<Leased>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let until = now.saturating_add(lease_ms.max(0));
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let st = client.prepare_cached(&self.sql(LEASE)).await.map_err(self.fail("lease outbox rows"))?;
        let rows =
            client.query(&st, &[&sink, &owner, &now, &until, &limit]).await.map_err(self.fail("lease outbox rows"))?;
        rows.iter().map(leased).collect::<Result<_, _>>().map_err(self.fail("read leased rows"))
    }
}

/// Listens on `channel` for the life of the backend, raising `committed` for each
/// notification, reconnecting with backoff.
async fn listen(target: Target, channel: String, committed: Committed) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let wake = committed.clone();
        match target.connect_with(move |_| wake.notify_waiters()).await {
            Ok((client, driver)) => match client.batch_execute(&format!("LISTEN \"{channel}\"")).await {
                Ok(()) => {
                    backoff = Duration::from_millis(250);
                    // Commits made while nobody listened: let the dispatchers look.
                    committed.notify_waiters();
                    let _ = driver.await;
                    tracing::warn!(target = %target.describe(), "lost the state database's notification connection; reconnecting");
                }
                Err(e) => tracing::warn!(error = %pg_error(&e), "cannot LISTEN on the state database; retrying"),
            },
            Err(e) => {
                tracing::debug!(error = %pg_error(&e), "cannot open the state database's notification connection; retrying")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn to_u32(n: i32) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n.max(0)).unwrap_or(0)
}

/// One leased row (see [`LEASE`]) with its record.
fn leased(row: &tokio_postgres::Row) -> Result<Leased, tokio_postgres::Error> {
    Ok(Leased::new(
        row.try_get(0)?,
        to_u32(row.try_get(2)?),
        row.try_get(3)?,
        &RecordFields {
            id: row.try_get(1)?,
            source: row.try_get(4)?,
            received_via: row.try_get(5)?,
            first_seen_ms: row.try_get(6)?,
            subject: row.try_get(7)?,
            subscription_name: row.try_get(8)?,
            created_raw: row.try_get(9)?,
            json: row.try_get(10)?,
        },
    ))
}

/// A batch's new notifications, their outbox rows and (when rows were queued) a `NOTIFY`,
/// in one statement. `$11`/`$12` pair each item with each sink that takes it; only the
/// pairs of items this statement inserted are queued.
const ACCEPT: &str = "
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::text[])
        WITH ORDINALITY AS u(id, source, subject, sub, created_ms, created_raw, json, ord)
), ins AS (
    INSERT INTO {s}.notifications (id, source, subject, subscription_name, created_ms, created_raw,
                                   received_via, first_seen_ms, recovered, json)
    SELECT id, source, subject, sub, created_ms, created_raw, $8, $9, $10, json FROM input ORDER BY ord
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), queued AS (
    INSERT INTO {s}.outbox (sink, notification_id, enqueued_ms, next_attempt_ms)
    SELECT p.sink, p.id, $9, $9
    FROM unnest($11::text[], $12::text[]) WITH ORDINALITY AS p(sink, id, ord)
    WHERE p.id IN (SELECT id FROM ins)
    ORDER BY p.ord
    ON CONFLICT (notification_id, sink) DO NOTHING
    RETURNING 1
), woke AS (
    SELECT pg_notify($13, '') FROM (SELECT 1 FROM queued LIMIT 1) AS any_row
)
SELECT id, (SELECT count(*) FROM queued), (SELECT count(*) FROM woke) FROM ins";

const LEASE: &str = "
WITH picked AS (
    SELECT seq FROM {s}.outbox
    WHERE sink = $1 AND next_attempt_ms <= $3 AND (lease_until_ms IS NULL OR lease_until_ms < $3)
    ORDER BY seq
    LIMIT $5
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE {s}.outbox AS o SET lease_owner = $2, lease_until_ms = $4
    FROM picked WHERE o.seq = picked.seq
    RETURNING o.seq, o.notification_id, o.attempts, o.enqueued_ms
)
SELECT c.seq, n.id, c.attempts, c.enqueued_ms, n.source, n.received_via, n.first_seen_ms,
       n.subject, n.subscription_name, n.created_raw, n.json
FROM claimed AS c JOIN {s}.notifications AS n ON n.id = c.notification_id
ORDER BY c.seq";

const ACK: &str = "DELETE FROM {s}.outbox WHERE lease_owner = $1 AND seq = ANY($2)";

#[async_trait]
impl Backend for Postgres {
    fn describe(&self) -> String {
        self.described.clone()
    }

    async fn accept(
        &self,
        batch: Batch,
        via: Via,
        recovered: bool,
        routes: Arc<Vec<Route>>,
        now_ms: i64,
    ) -> Result<Accepted, StoreError> {
        let items = batch.incoming();
        if items.is_empty() {
            return Ok(Accepted::default());
        }
        if let Some(bad) = items.iter().find(|n| !SOURCES.contains(&n.source)) {
            return Err(StoreError::InvalidInput {
                op: "accept",
                detail: format!("notification {} has source {:?}; expected one of {SOURCES:?}", bad.id, bad.source),
            });
        }
        let ids: Vec<&str> = items.iter().map(|n| n.id).collect();
        let sources: Vec<&str> = items.iter().map(|n| n.source).collect();
        let subjects: Vec<&str> = items.iter().map(|n| n.subject).collect();
        let subs: Vec<Option<&str>> = items.iter().map(|n| n.subscription_name).collect();
        let created: Vec<i64> = items.iter().map(|n| n.created_ms).collect();
        let raws: Vec<&str> = items.iter().map(|n| n.created_raw).collect();
        let jsons: Vec<&str> = items.iter().map(|n| n.json).collect();
        // Each item paired with each sink that takes it; a sink named by several routes
        // gets one row per notification.
        let (mut pair_sinks, mut pair_ids) = (Vec::new(), Vec::new());
        for n in &items {
            let mut taken: Vec<&str> = Vec::new();
            for route in routes.iter().filter(|r| r.matches(n.subject)) {
                if !taken.contains(&route.sink.as_str()) {
                    taken.push(&route.sink);
                    pair_sinks.push(route.sink.as_str());
                    pair_ids.push(n.id);
                }
            }
        }
        let via_name = via.as_str();
        let op = "accept";
        let mut client = self.conn(op).await?;
        let sql = self.sql(ACCEPT);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 13] = [
            &ids,
            &sources,
            &subjects,
            &subs,
            &created,
            &raws,
            &jsons,
            &via_name,
            &now_ms,
            &recovered,
            &pair_sinks,
            &pair_ids,
            &self.channel,
        ];
        let rows = if via.synced_per_commit() {
            let st = client.prepare_cached(&sql).await.map_err(self.fail(op))?;
            client.query(&st, &params).await.map_err(self.fail(op))?
        } else {
            let tx = client.transaction().await.map_err(self.fail(op))?;
            tx.batch_execute("SET LOCAL synchronous_commit = off").await.map_err(self.fail(op))?;
            let st = tx.prepare_cached(&sql).await.map_err(self.fail(op))?;
            let rows = tx.query(&st, &params).await.map_err(self.fail(op))?;
            tx.commit().await.map_err(self.fail(op))?;
            rows
        };
        let mut inserted: HashSet<String> = HashSet::with_capacity(rows.len());
        let mut enqueued = 0;
        for row in &rows {
            inserted.insert(row.get(0));
            enqueued = row.get::<_, i64>(1);
        }
        let mut out = Accepted::default();
        for n in &items {
            if inserted.remove(n.id) {
                out.new += 1;
                out.new_ids.push(n.id.to_owned());
                match out.new_by_subject.iter_mut().find(|(s, _)| s == n.subject) {
                    Some((_, count)) => *count += 1,
                    None => out.new_by_subject.push((n.subject.to_owned(), 1)),
                }
            } else {
                out.duplicates += 1;
            }
        }
        out.enqueued = usize::try_from(enqueued).unwrap_or(0);
        if recovered {
            out.recovered = out.new;
        }
        Ok(out)
    }

    async fn watermark(&self) -> Result<Option<i64>, StoreError> {
        let rows = self.query("read the watermark", "SELECT watermark_ms FROM {s}.poll", &[]).await?;
        Ok(rows.first().and_then(|r| r.get(0)))
    }

    async fn set_watermark(&self, ms: i64, epoch: Epoch) -> Result<(), StoreError> {
        let moved = self
            .execute(
                "set the watermark",
                "WITH l AS (SELECT 1 FROM {s}.leader
                            WHERE one AND epoch = $2 AND expires_at > clock_timestamp() FOR SHARE)
                 UPDATE {s}.poll SET watermark_ms = $1 WHERE one AND EXISTS (SELECT 1 FROM l)",
                &[&ms, &epoch],
            )
            .await?;
        if moved == 0 { Err(StoreError::Fenced { epoch }) } else { Ok(()) }
    }

    async fn count_created(
        &self,
        source: &'static str,
        start_ms: i64,
        end_ms: i64,
        subscriptions: Vec<String>,
    ) -> Result<u64, StoreError> {
        let rows = self
            .query(
                "count stored notifications",
                "SELECT count(*) FROM {s}.notifications
                 WHERE source = $1 AND created_ms >= $2 AND created_ms < $3
                   AND (cardinality($4::text[]) = 0 OR subscription_name = ANY($4))",
                &[&source, &start_ms, &end_ms, &subscriptions],
            )
            .await?;
        Ok(rows.first().map_or(0, |r| to_u64(r.get(0))))
    }

    async fn absent(&self, keys: Vec<(i64, String)>) -> Result<Vec<String>, StoreError> {
        let created: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let ids: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
        let rows = self
            .query(
                "look up notifications",
                "SELECT k.id FROM unnest($1::int8[], $2::text[]) WITH ORDINALITY AS k(created_ms, id, ord)
                 WHERE NOT EXISTS (SELECT 1 FROM {s}.notifications AS n
                                   WHERE n.id = k.id AND n.created_ms = k.created_ms
                                     AND n.source = 'mastercard-cen')
                 ORDER BY k.ord",
                &[&created, &ids],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn lead(&self, instance: &str, lease: Duration) -> Result<Leadership, StoreError> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let rows = self
            .query(
                "take or renew the poll leadership",
                "WITH seen AS (
                     INSERT INTO {s}.instances (name, last_seen) VALUES ($1, clock_timestamp())
                     ON CONFLICT (name) DO UPDATE SET last_seen = EXCLUDED.last_seen
                     RETURNING 1
                 ), took AS (
                     INSERT INTO {s}.leader AS l (one, holder, epoch, expires_at)
                     VALUES (true, $1, 1, clock_timestamp() + $2::int8 * interval '1 millisecond')
                     ON CONFLICT (one) DO UPDATE SET
                         holder = EXCLUDED.holder,
                         epoch = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp()
                                      THEN l.epoch ELSE l.epoch + 1 END,
                         expires_at = EXCLUDED.expires_at
                     WHERE l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp()
                     RETURNING epoch
                 )
                 SELECT (SELECT epoch FROM took), (SELECT count(*) FROM seen),
                        l.holder,
                        greatest(0, (extract(epoch FROM l.expires_at - clock_timestamp()) * 1000)::int8)
                 FROM (SELECT 1) AS one LEFT JOIN {s}.leader AS l ON l.one",
                &[&instance, &lease_ms],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(Leadership { epoch: None, leader: None, remaining: Duration::ZERO });
        };
        let epoch: Option<i64> = row.get(0);
        if epoch.is_some() {
            return Ok(Leadership { epoch, leader: Some(instance.to_owned()), remaining: lease });
        }
        // The statement's snapshot predates its own insert: the holder and expiry read here
        // are those before this attempt, which failed, so another instance holds the lease.
        let remaining: Option<i64> = row.get(3);
        Ok(Leadership {
            epoch: None,
            leader: row.get(2),
            remaining: Duration::from_millis(to_u64(remaining.unwrap_or(0))),
        })
    }

    async fn resign(&self, instance: &str) -> Result<(), StoreError> {
        self.execute(
            "give up the poll leadership",
            "UPDATE {s}.leader SET expires_at = clock_timestamp() WHERE one AND holder = $1",
            &[&instance],
        )
        .await
        .map(drop)
    }

    async fn instances(&self, recent: Duration) -> Result<Vec<Instance>, StoreError> {
        let recent_ms = i64::try_from(recent.as_millis()).unwrap_or(i64::MAX);
        let rows = self
            .query(
                "list the instances",
                "SELECT i.name, (extract(epoch FROM i.last_seen) * 1000)::int8,
                        coalesce(l.holder = i.name AND l.expires_at > clock_timestamp(), false) AS leads
                 FROM {s}.instances AS i LEFT JOIN {s}.leader AS l ON l.one
                 WHERE i.last_seen > clock_timestamp() - $1::int8 * interval '1 millisecond'
                 ORDER BY leads DESC, i.name",
                &[&recent_ms],
            )
            .await?;
        Ok(rows.iter().map(|r| Instance { name: r.get(0), last_seen_ms: r.get(1), leader: r.get(2) }).collect())
    }

    async fn lease(&self, sink: &str, owner: &str, max: usize, lease_ms: i64) -> Result<Vec<Leased>, StoreError> {
        let client = self.conn("lease outbox rows").await?;
        self.lease_on(&client, sink, owner, max, lease_ms).await
    }

    async fn ack_and_lease(
        &self,
        owner: &str,
        seqs: Vec<i64>,
        sink: &str,
        max: usize,
        lease_ms: i64,
    ) -> Result<(usize, Vec<Leased>), StoreError> {
        let op = "acknowledge deliveries and lease more";
        let mut client = self.conn(op).await?;
        let tx = client.transaction().await.map_err(self.fail(op))?;
        // A lost acknowledgement is a repeated delivery (the sinks are idempotent), never a
        // lost one: no need to wait for the disk.
        tx.batch_execute("SET LOCAL synchronous_commit = off").await.map_err(self.fail(op))?;
        let acked = if seqs.is_empty() {
            0
        } else {
            let st = tx.prepare_cached(&self.sql(ACK)).await.map_err(self.fail(op))?;
            tx.execute(&st, &[&owner, &seqs]).await.map_err(self.fail(op))?
        };
        let leased = self.lease_on(&tx, sink, owner, max, lease_ms).await?;
        tx.commit().await.map_err(self.fail(op))?;
        Ok((usize::try_from(acked).unwrap_or(0), leased))
    }

    async fn retry_later(&self, seq: i64, owner: &str, error: &str, next_attempt_ms: i64) -> Result<(), StoreError> {
        let error = stored_error(error);
        self.execute(
            "reschedule a delivery",
            "UPDATE {s}.outbox
             SET attempts = attempts + 1, next_attempt_ms = $3, last_error = $4,
                 lease_owner = NULL, lease_until_ms = NULL
             WHERE seq = $1 AND lease_owner = $2",
            &[&seq, &owner, &next_attempt_ms, &error],
        )
        .await
        .map(drop)
    }

    async fn dead_letter(&self, seq: i64, owner: &str, error: &str, now_ms: i64) -> Result<(), StoreError> {
        let error = stored_error(error);
        self.execute(
            "move a delivery to the dead letters",
            "WITH gone AS (
                 DELETE FROM {s}.outbox WHERE seq = $1 AND lease_owner = $2
                 RETURNING sink, notification_id, attempts, enqueued_ms
             )
             INSERT INTO {s}.dead_letters (sink, notification_id, attempts, first_enqueued_ms, dead_ms, last_error)
             SELECT sink, notification_id, attempts + 1, enqueued_ms, $3, $4 FROM gone
             ON CONFLICT (sink, notification_id) DO UPDATE SET
                 attempts = EXCLUDED.attempts, first_enqueued_ms = EXCLUDED.first_enqueued_ms,
                 dead_ms = EXCLUDED.dead_ms, last_error = EXCLUDED.last_error",
            &[&seq, &owner, &now_ms, &error],
        )
        .await
        .map(drop)
    }

    async fn release(&self, owner: &str) -> Result<usize, StoreError> {
        let n = self
            .execute(
                "release leases",
                "UPDATE {s}.outbox SET lease_owner = NULL, lease_until_ms = NULL WHERE lease_owner = $1",
                &[&owner],
            )
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn release_seqs(&self, owner: &str, seqs: Vec<i64>) -> Result<usize, StoreError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let n = self
            .execute(
                "release leases",
                "UPDATE {s}.outbox SET lease_owner = NULL, lease_until_ms = NULL
                 WHERE lease_owner = $1 AND seq = ANY($2)",
                &[&owner, &seqs],
            )
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn lease_owners(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .query(
                "list lease owners",
                "SELECT DISTINCT lease_owner FROM {s}.outbox WHERE lease_owner IS NOT NULL",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn backlog(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = self
            .query("count the outbox", "SELECT sink, count(*) FROM {s}.outbox GROUP BY sink ORDER BY sink", &[])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), to_u64(r.get(1)))).collect())
    }

    async fn oldest_pending_ms(&self, sink: &str) -> Result<Option<i64>, StoreError> {
        let rows = self
            .query(
                "read the oldest pending delivery",
                "SELECT enqueued_ms FROM {s}.outbox WHERE sink = $1 ORDER BY seq LIMIT 1",
                &[&sink],
            )
            .await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    async fn dead_letters(&self, sink: Option<String>, id: Option<String>) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = self
            .query(
                "list dead letters",
                "SELECT d.sink, d.notification_id, d.attempts, d.first_enqueued_ms, d.dead_ms, d.last_error,
                        n.subject, n.created_raw
                 FROM {s}.dead_letters AS d LEFT JOIN {s}.notifications AS n ON n.id = d.notification_id
                 WHERE ($1::text IS NULL OR d.sink = $1) AND ($2::text IS NULL OR d.notification_id = $2)
                 ORDER BY d.dead_ms, d.sink, d.notification_id",
                &[&sink, &id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| DeadLetter {
                sink: r.get(0),
                notification_id: r.get(1),
                attempts: to_u32(r.get(2)),
                first_enqueued_ms: r.get(3),
                dead_ms: r.get(4),
                last_error: r.get(5),
                subject: r.get(6),
                created_raw: r.get(7),
            })
            .collect())
    }

    async fn dead_letter_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = self
            .query("count dead letters", "SELECT sink, count(*) FROM {s}.dead_letters GROUP BY sink ORDER BY sink", &[])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), to_u64(r.get(1)))).collect())
    }

    async fn retry_dead_letters(
        &self,
        sink: Option<String>,
        id: Option<String>,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        let rows = self
            .query(
                "retry dead letters",
                "WITH back AS (
                     DELETE FROM {s}.dead_letters AS d
                     WHERE ($1::text IS NULL OR d.sink = $1) AND ($2::text IS NULL OR d.notification_id = $2)
                       AND NOT EXISTS (SELECT 1 FROM {s}.outbox AS o
                                       WHERE o.notification_id = d.notification_id AND o.sink = d.sink)
                     RETURNING d.sink, d.notification_id, d.first_enqueued_ms, d.last_error
                 ), queued AS (
                     INSERT INTO {s}.outbox (sink, notification_id, enqueued_ms, attempts, next_attempt_ms, last_error)
                     SELECT sink, notification_id, $3, 0, $3, last_error FROM back
                     ORDER BY first_enqueued_ms, notification_id
                     RETURNING 1
                 ), woke AS (
                     SELECT pg_notify($4, '') FROM (SELECT 1 FROM queued LIMIT 1) AS any_row
                 )
                 SELECT (SELECT count(*) FROM queued), (SELECT count(*) FROM woke)",
                &[&sink, &id, &now_ms, &self.channel],
            )
            .await?;
        Ok(rows.first().map_or(0, |r| usize::try_from(to_u64(r.get(0))).unwrap_or(0)))
    }

    async fn enqueue_replay(&self, route: Route, start_ms: i64, end_ms: i64, now_ms: i64) -> Result<usize, StoreError> {
        let n = self
            .execute(
                "queue a replay",
                "INSERT INTO {s}.outbox (sink, notification_id, enqueued_ms, attempts, next_attempt_ms)
                 SELECT $1, n.id, $4, 0, $4
                 FROM {s}.notifications AS n
                 WHERE n.created_ms >= $2 AND n.created_ms < $3
                   AND (cardinality($5::text[]) = 0 OR n.subject = ANY($5))
                 ORDER BY n.created_ms, n.id
                 ON CONFLICT (notification_id, sink) DO NOTHING",
                &[&route.sink, &start_ms, &end_ms, &now_ms, &route.subjects],
            )
            .await?;
        if n > 0 {
            self.execute("wake the dispatchers", "SELECT pg_notify($1, '')", &[&self.channel]).await?;
        }
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn counts_since(&self, since_ms: i64) -> Result<Vec<CountRow>, StoreError> {
        let rows = self
            .query(
                "count notifications",
                "SELECT source, subject, received_via, count(*) FILTER (WHERE recovered), count(*)
                 FROM {s}.notifications WHERE created_ms >= $1
                 GROUP BY source, subject, received_via
                 ORDER BY source, subject, received_via",
                &[&since_ms],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| CountRow {
                source: r.get(0),
                subject: r.get(1),
                received_via: r.get(2),
                recovered: to_u64(r.get(3)),
                n: to_u64(r.get(4)),
            })
            .collect())
    }

    async fn prune(&self, before_ms: i64) -> Result<usize, StoreError> {
        let mut deleted = 0;
        loop {
            let n = self
                .execute(
                    "prune old notifications",
                    "DELETE FROM {s}.notifications WHERE id IN (
                         SELECT n.id FROM {s}.notifications AS n
                         WHERE n.created_ms < $1 AND n.first_seen_ms < $1
                           AND NOT EXISTS (SELECT 1 FROM {s}.outbox AS o WHERE o.notification_id = n.id)
                           AND NOT EXISTS (SELECT 1 FROM {s}.dead_letters AS d WHERE d.notification_id = n.id)
                         LIMIT $2)",
                    &[&before_ms, &PRUNE_CHUNK],
                )
                .await?;
            deleted += usize::try_from(n).unwrap_or(0);
            if i64::try_from(n).unwrap_or(i64::MAX) < PRUNE_CHUNK {
                return Ok(deleted);
            }
        }
    }

    async fn check_writable(&self, now_ms: i64) -> Result<(), StoreError> {
        let value = now_ms.to_string();
        self.execute(
            "write a probe",
            "INSERT INTO {s}.meta (key, value) VALUES ('writable', $1)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&value],
        )
        .await
        .map(drop)
    }

    async fn last_audit(&self) -> Result<Option<LastAudit>, StoreError> {
        let rows =
            self.query("read the last audit", "SELECT value FROM {s}.meta WHERE key = 'last_audit'", &[]).await?;
        // A record this version cannot read is as good as none.
        Ok(rows.first().and_then(|r| serde_json::from_str(r.get::<_, &str>(0)).ok()))
    }

    async fn set_last_audit(&self, audit: LastAudit) -> Result<(), StoreError> {
        let text = serde_json::to_string(&audit)
            .map_err(|e| StoreError::InvalidInput { op: "record the audit", detail: e.to_string() })?;
        self.execute(
            "record the audit",
            "INSERT INTO {s}.meta (key, value) VALUES ('last_audit', $1)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&text],
        )
        .await
        .map(drop)
    }

    /// One synchronous commit: PostgreSQL's WAL is written in order, so flushing it to this
    /// commit's record flushes every earlier asynchronous commit too.
    async fn sync(&self) -> Result<(), StoreError> {
        self.check_writable(now_ms()).await
    }
}
