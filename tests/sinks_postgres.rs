//! The `postgres` sink against a real PostgreSQL server started for each test (see
//! `common/servers.rs`): the table and its columns, a record the database rejects, a
//! database that is down or goes away, and the daemon killed with SIGKILL in the middle of
//! delivering. Waits poll for an outcome with a deadline.

mod common;
#[path = "common/servers.rs"]
mod servers;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use cen_poller::cen::notification::format_timestamp;
use cen_poller::simulate::SimConfig;
use cen_poller::sinks::postgres::PostgresSink;
use cen_poller::sinks::{Record, Sink, SinkError};
use chrono::{TimeDelta, Utc};
use common::{Env, wait_for};
use servers::PgServer;

/// `[poll]` for a daemon that starts `first_start_ago` back and polls every second.
fn poll_settings(first_start_ago: TimeDelta) -> String {
    let start = format_timestamp(Utc::now() - first_start_ago);
    format!("interval = \"1s\"\nsettle = \"5s\"\nfirst_start = \"{start}\"")
}

/// A postgres sink `ledger` whose connection string is in the file `ledger-dsn`, and quick
/// retries so a database coming back is noticed within a second or two.
fn ledger_sink(env_dir: &Path, pg: &PgServer) -> String {
    std::fs::write(env_dir.join("ledger-dsn"), format!("{}\n", pg.dsn())).unwrap();
    "[delivery]\nbackoff_initial = \"200ms\"\nbackoff_max = \"1s\"\n\n\
     [[sinks]]\nname = \"ledger\"\ntype = \"postgres\"\nurl_file = \"ledger-dsn\"\ntable = \"cen_notifications\"\n"
        .to_owned()
}

/// Starts an [`Env`] whose configuration has the `ledger` sink for `pg`.
async fn env_with_ledger(sim: SimConfig, poll: &str, pg: &PgServer) -> Env {
    // The DSN file lives next to the configuration; the directory exists only once the
    // env does, so write the configuration's extra part after creating it.
    let env = Env::start_with(sim, poll, "").await;
    let extra = ledger_sink(env.dir.path(), pg);
    let mut config = std::fs::read_to_string(&env.config_path).unwrap();
    config.push_str(&extra);
    std::fs::write(&env.config_path, config).unwrap();
    env
}

/// Ids in the table, with how often each occurs (the primary key makes it once; counted
/// anyway so the assertion does not rest on the schema).
async fn table_ids(client: &tokio_postgres::Client, table: &str) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for row in client.query(&format!("SELECT id FROM {table}"), &[]).await.unwrap() {
        *ids.entry(row.get::<_, String>(0)).or_default() += 1;
    }
    ids
}

async fn table_count(client: &tokio_postgres::Client) -> i64 {
    match client.query_one("SELECT count(*) FROM cen_notifications", &[]).await {
        Ok(row) => row.get(0),
        // Not created yet.
        Err(_) => 0,
    }
}

/// Outbox rows still waiting for `sink`.
fn queued_for(env: &Env, sink: &str) -> i64 {
    let Ok(db) = rusqlite::Connection::open(env.dir.path().join("state.db")) else {
        return 0;
    };
    db.query_row("SELECT count(*) FROM outbox WHERE sink = ?1", [sink], |r| r.get(0)).unwrap_or(0)
}

fn leased(_seq: i64, id: &str, created: &str, record: &str) -> Record {
    Record {
        id: id.into(),
        subject: "CLEARING".into(),
        created_raw: created.into(),
        received_via: "push".into(),
        record: record.into(),
    }
}

fn record(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","source":"mastercard-cen","received_via":"push","subject":"CLEARING","created_timestamp":"2026-11-22T10:00:00.640Z","notification":{{"amount":1.5}}}}"#
    )
}

/// Run in a blocking section: the server programs take a second or so.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// A `--backfill` fills the table (created by the sink, with the README's columns) with
/// every notification once, each column right; running it again adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_the_table_once_with_the_right_columns() {
    let pg = blocking(PgServer::start);
    let now = Utc::now();
    let sim = SimConfig::bounded(51, now - TimeDelta::minutes(30), 0.5, 400);
    let env = env_with_ledger(sim, &poll_settings(TimeDelta::minutes(15)), &pg).await;
    let items = env.sim.items(now - TimeDelta::hours(1), Utc::now());
    assert_eq!(items.len(), 400);

    let out = env.run(&["--backfill", "1h"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    let client = pg.client().await;
    let columns: Vec<(String, String, String)> = client
        .query(
            "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns
             WHERE table_name = 'cen_notifications' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected_columns = [
        ("id", "text", "NO"),
        ("source", "text", "NO"),
        ("subject", "text", "NO"),
        ("created_timestamp", "timestamp with time zone", "NO"),
        ("received_via", "text", "NO"),
        ("record", "jsonb", "NO"),
        ("inserted_at", "timestamp with time zone", "NO"),
    ];
    assert_eq!(
        columns.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())).collect::<Vec<_>>(),
        expected_columns
    );
    let primary_key: String = client
        .query_one(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
             WHERE i.indrelid = 'cen_notifications'::regclass AND i.indisprimary",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(primary_key, "id");

    let rows = client
        .query(
            "SELECT id, source, subject, (extract(epoch FROM created_timestamp) * 1000)::bigint, received_via,
                    record ->> 'id', record ->> 'subject', jsonb_typeof(record -> 'notification'),
                    record -> 'notification' ->> 'subject'
             FROM cen_notifications",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), items.len());
    let by_id: BTreeMap<&str, _> = items.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut seen = BTreeSet::new();
    for row in &rows {
        let id: String = row.get(0);
        let item = by_id.get(id.as_str()).unwrap_or_else(|| panic!("{id} is not a notification of the simulator"));
        assert!(seen.insert(id.clone()), "{id} twice");
        assert_eq!(row.get::<_, String>(1), "mastercard-cen");
        assert_eq!(row.get::<_, String>(2), item.subject);
        assert_eq!(row.get::<_, i64>(3), item.created.timestamp_millis(), "{id}");
        assert_eq!(row.get::<_, String>(4), "backfill");
        assert_eq!(row.get::<_, String>(5), id);
        assert_eq!(row.get::<_, String>(6), item.subject);
        assert_eq!(row.get::<_, String>(7), "object");
        assert_eq!(row.get::<_, String>(8), item.subject, "the notification as received is in the record");
    }

    // Again: nothing new (the store's seen set) and nothing twice.
    let out = env.run(&["--backfill", "1h"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let ids = table_ids(&client, "cen_notifications").await;
    assert_eq!(ids.len(), items.len());
    assert!(ids.values().all(|&n| n == 1));
}

/// The sink itself: lazy connection to a database that is down (retryable), the table
/// created in a schema with its name's case kept, a batch with records the database rejects
/// (those become dead letters, the rest is inserted), and a repeated batch inserting nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_records_are_dead_letters_and_repeats_are_ignored() {
    let mut pg = blocking(PgServer::init);
    let sink = PostgresSink::new("ledger", &pg.dsn(), "ops.Ledger", Path::to_path_buf).unwrap();
    let good: Vec<Record> = (0..3)
        .map(|i| leased(i, &format!("id-{i}"), "2026-11-22T10:00:00.640Z", &record(&format!("id-{i}"))))
        .collect();

    // Down: every record retryable, and the message says what to check, not the DSN.
    let outcomes = sink.deliver(&good).await;
    assert_eq!(outcomes.len(), 3);
    for o in &outcomes {
        let Err(SinkError::Retryable(e)) = o else { panic!("{o:?}") };
        assert!(e.contains("postgres sink ledger") && e.contains("cannot connect"), "{e}");
        assert!(e.contains(&format!("127.0.0.1:{}/postgres as postgres", pg.port)), "{e}");
    }

    blocking(|| pg.start_again());
    let client = pg.client().await;
    client.batch_execute("CREATE SCHEMA ops").await.unwrap();
    let outcomes = sink.deliver(&good).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(table_ids(&client, "ops.\"Ledger\"").await.len(), 3);

    // One batch: a good record, a record jsonb cannot hold (\u0000), another good one, a
    // creation time PostgreSQL cannot read, and a repeat of an earlier one.
    let batch = vec![
        leased(10, "id-10", "2026-11-22T10:00:01.000Z", &record("id-10")),
        leased(11, "id-11", "2026-11-22T10:00:02.000Z", r#"{"id":"id-11","source":"vgs","note":"a\u0000b"}"#),
        leased(12, "id-12", "2026-11-22T10:00:03.000Z", &record("id-12")),
        leased(13, "id-13", "yesterday-ish", &record("id-13")),
        good[1].clone(),
    ];
    let outcomes = sink.deliver(&batch).await;
    assert_eq!(outcomes.len(), 5);
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok() && outcomes[4].is_ok(), "{outcomes:?}");
    for i in [1, 3] {
        let Err(SinkError::Permanent(e)) = &outcomes[i] else { panic!("record {i}: {:?}", outcomes[i]) };
        assert!(e.contains("postgres sink ledger") && e.contains("SQLSTATE 22"), "{e}");
        assert!(e.contains("dead-letters retry"), "says what to do: {e}");
    }
    let ids = table_ids(&client, "ops.\"Ledger\"").await;
    assert_eq!(ids.keys().map(String::as_str).collect::<Vec<_>>(), ["id-0", "id-1", "id-10", "id-12", "id-2"]);

    // The whole first batch again: delivered, nothing added.
    let outcomes = sink.deliver(&good).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(table_ids(&client, "ops.\"Ledger\"").await.len(), 5);

    // A role that may only insert (and read ids, which ON CONFLICT (id) needs), into a
    // table the operator made: no CREATE privilege needed.
    client
        .batch_execute(
            "CREATE ROLE writer LOGIN;
             CREATE TABLE audit (LIKE ops.\"Ledger\" INCLUDING ALL);
             GRANT SELECT (id), INSERT ON audit TO writer",
        )
        .await
        .unwrap();
    let dsn = pg.dsn().replace("user=postgres", "user=writer");
    let sink = PostgresSink::new("audit", &dsn, "audit", Path::to_path_buf).unwrap();
    let outcomes = sink.deliver(&good).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let outcomes = sink.deliver(&good).await;
    assert!(outcomes.iter().all(Result::is_ok), "a repeat needs no more than INSERT either: {outcomes:?}");
    assert_eq!(table_ids(&client, "audit").await.len(), 3);
}

/// The database is down when the daemon starts (notifications queue up), comes up (the
/// backlog drains), goes down while the daemon runs (the connection is lost; new
/// notifications queue up) and comes back: in the end the table holds every notification
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_down_for_a_while_loses_nothing() {
    let mut pg = blocking(PgServer::init);
    let now = Utc::now();
    // 3000 notifications: most already there, the last ~150 appearing over the next 30 s,
    // so some arrive while the database is down the second time.
    let sim = SimConfig::spread(52, 3000, now - TimeDelta::minutes(10), now + TimeDelta::seconds(30));
    let env = env_with_ledger(sim, &poll_settings(TimeDelta::minutes(20)), &pg).await;
    let daemon = env.spawn_daemon();

    let queued = wait_for(Duration::from_secs(60), || queued_for(&env, "ledger") >= 2000).await;
    assert!(queued, "the notifications were not queued for the sink:\n{}", env.log_tail(30));

    blocking(|| pg.start_again());
    let client = pg.client().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while table_count(&client).await < 2000 {
        assert!(std::time::Instant::now() < deadline, "the backlog did not drain:\n{}", env.log_tail(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before_outage = table_count(&client).await;

    drop(client);
    blocking(|| pg.stop());
    let queued = wait_for(Duration::from_secs(60), || queued_for(&env, "ledger") >= 10).await;
    assert!(queued, "no notification arrived during the outage:\n{}", env.log_tail(30));

    blocking(|| pg.start_again());
    let client = pg.client().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while table_count(&client).await < 3000 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of 3000 in the table:\n{}",
            table_count(&client).await,
            env.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = daemon.stop("TERM", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    println!("{before_outage} delivered before the outage, the rest after");
    // All 3000 exist by now (the table has that many); the simulator lists only those
    // already created.
    let expected = env.sim.expected_ids(now - TimeDelta::hours(1), Utc::now());
    assert_eq!(expected.len(), 3000);
    let ids = table_ids(&client, "cen_notifications").await;
    common::assert_exactly_once(&ids, &expected);
    assert_eq!(queued_for(&env, "ledger"), 0);
}

/// SIGKILL while batches are being inserted (the kill comes as soon as the table has grown
/// past a mark), three times, then a restart: the table holds every notification exactly
/// once. A batch inserted but not yet acknowledged is inserted again after the restart;
/// `ON CONFLICT (id) DO NOTHING` drops it (G2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delivery_then_restart_leaves_every_id_once() {
    const TOTAL: i64 = 20_000;
    let pg = blocking(PgServer::start);
    let now = Utc::now();
    let sim = SimConfig::spread(53, TOTAL as u64, now - TimeDelta::minutes(50), now - TimeDelta::minutes(1));
    let env = env_with_ledger(sim, &poll_settings(TimeDelta::hours(1)), &pg).await;
    let expected = env.sim.expected_ids(now - TimeDelta::hours(2), Utc::now());
    assert_eq!(expected.len() as i64, TOTAL);
    let client = pg.client().await;

    for (k, mark) in [TOTAL / 10, TOTAL / 3, 2 * TOTAL / 3].into_iter().enumerate() {
        let mut daemon = env.spawn_daemon();
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let count = table_count(&client).await;
            if count > mark {
                break;
            }
            if let Some(status) = daemon.exited() {
                panic!("the daemon exited by itself ({status}):\n{}", env.log_tail(30));
            }
            assert!(std::time::Instant::now() < deadline, "the table stays at {count}:\n{}", env.log_tail(30));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        daemon.kill9().await;
        println!(
            "kill {}: table at {} of {TOTAL}, {} queued",
            k + 1,
            table_count(&client).await,
            queued_for(&env, "ledger")
        );
    }

    let daemon = env.spawn_daemon();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while table_count(&client).await < TOTAL {
        assert!(
            std::time::Instant::now() < deadline,
            "after the last restart only {} of {TOTAL}:\n{}",
            table_count(&client).await,
            env.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = daemon.stop("TERM", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    let ids = table_ids(&client, "cen_notifications").await;
    common::assert_exactly_once(&ids, &expected);
    assert_eq!(queued_for(&env, "ledger"), 0, "nothing left to deliver");
}

/// TLS: with `sslmode=verify-full` and `sslrootcert` (relative, resolved like the
/// configuration's other files) the connection is encrypted and delivers; a certificate
/// from another CA is refused (retryable, and the message says why); `sslmode=disable`
/// stays plain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_the_server_against_sslrootcert() {
    let ca = common::pki::Ca::new("cen-poller test PostgreSQL CA");
    let other = common::pki::Ca::new("some other CA");
    let leaf = ca.server();
    let mut pg = blocking(PgServer::init);
    pg.enable_tls(&leaf.cert_pem, &leaf.key_pem);
    blocking(|| pg.start_again());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
    std::fs::write(dir.path().join("other.pem"), &other.pem).unwrap();
    let resolve = |p: &Path| dir.path().join(p);
    let dsn = |extra: &str| format!("host=127.0.0.1 port={} user=postgres dbname=postgres {extra}", pg.port);
    let batch = vec![leased(1, "id-1", "2026-11-22T10:00:00.640Z", &record("id-1"))];
    let client = pg.client().await;
    let encrypted = |name: &'static str| {
        let client = &client;
        async move {
            let row = client
                .query_one(
                    "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                     WHERE a.application_name = 'cen-poller' AND a.usename = $1",
                    &[&name],
                )
                .await
                .unwrap();
            (row.get::<_, i64>(0), row.get::<_, i64>(1))
        }
    };

    let sink = PostgresSink::new("ledger", &dsn("sslmode=verify-full sslrootcert=ca.pem"), "t", resolve).unwrap();
    let outcomes = sink.deliver(&batch).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}\n{}", pg.log_tail(10));
    assert_eq!(encrypted("postgres").await, (1, 1), "the sink's connection uses TLS");

    let sink = PostgresSink::new("ledger", &dsn("sslrootcert=other.pem"), "t", resolve).unwrap();
    let outcomes = sink.deliver(&batch).await;
    let Err(SinkError::Retryable(e)) = &outcomes[0] else { panic!("{outcomes:?}") };
    assert!(e.contains("cannot connect") && e.to_lowercase().contains("certificate"), "{e}");

    drop(sink);
    let sink = PostgresSink::new("ledger", &dsn("sslmode=disable"), "t", resolve).unwrap();
    let outcomes = sink.deliver(&batch).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(table_ids(&client, "t").await.len(), 1);
}
