//! Tests of the state database against real files (WAL needs one).

use std::path::PathBuf;

use rusqlite::Connection;
use serde_json::Value;
use serde_json::value::RawValue;

use super::*;
use crate::store::{Accepted, Incoming, Route, SOURCE_CEN, SOURCE_VGS, Via};

const T0: i64 = 1_795_600_800_000; // 2026-11-25T10:00:00Z

/// An owned notification to make [`Incoming`] views of.
struct Owned {
    id: String,
    subject: String,
    subscription_name: Option<String>,
    created_ms: i64,
    created_raw: String,
    json: String,
}

impl Owned {
    fn new(id: &str, subject: &str, sub: Option<&str>, created_ms: i64) -> Owned {
        let created_raw = chrono::DateTime::from_timestamp_millis(created_ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let json = serde_json::json!({
            "subject": subject,
            "subscriptionName": sub,
            "createdTimestamp": created_raw,
            "content": {"id": id, "note": "é \"quoted\" \u{1}"},
        })
        .to_string();
        Owned {
            id: id.into(),
            subject: subject.into(),
            subscription_name: sub.map(Into::into),
            created_ms,
            created_raw,
            json,
        }
    }

    fn incoming(&self) -> Incoming<'_> {
        Incoming {
            id: &self.id,
            source: SOURCE_CEN,
            subject: &self.subject,
            subscription_name: self.subscription_name.as_deref(),
            created_ms: self.created_ms,
            created_raw: &self.created_raw,
            json: &self.json,
        }
    }
}

fn views<'a>(items: &[&'a Owned]) -> Vec<Incoming<'a>> {
    items.iter().map(|o| o.incoming()).collect()
}

fn all(sink: &str) -> Route {
    Route { sink: sink.into(), subjects: vec![] }
}

fn only(sink: &str, subjects: &[&str]) -> Route {
    Route { sink: sink.into(), subjects: subjects.iter().map(|s| s.to_string()).collect() }
}

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("state.db");
    (dir, path)
}

fn open_temp() -> (tempfile::TempDir, Store) {
    let (dir, path) = temp();
    let store = Store::open(&path).unwrap();
    (dir, store)
}

fn row_count(store: &Store, table: &str) -> i64 {
    store.conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

fn query_plan(store: &Store, sql: &str) -> String {
    let mut st = store.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let rows = st.query_map([], |r| r.get::<_, String>(3)).unwrap();
    rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
}

#[test]
fn open_creates_the_directory_migrates_and_reopens() {
    let (_dir, path) = temp();
    let store = Store::open(&path).unwrap();
    assert!(path.exists());
    assert_eq!(store.schema_version().unwrap(), migrations::CURRENT);
    let mode: String = store.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = store.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
    assert_eq!(sync, 2, "FULL");
    let fk: i64 = store.conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
    assert_eq!(fk, 1);
    let page: i64 = store.conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    assert_eq!(page, 8192);
    drop(store);
    let again = Store::open(&path).unwrap();
    assert_eq!(again.schema_version().unwrap(), migrations::CURRENT);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the file holds card data: owner only");
    }
}

#[test]
fn a_newer_schema_is_refused_naming_both_versions() {
    let (_dir, path) = temp();
    drop(Store::open(&path).unwrap());
    Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found: 99, supported, .. } if supported == migrations::CURRENT),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("99") && msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("state.db"), "{err}");
}

#[test]
fn a_directory_in_place_of_the_file_is_refused() {
    let (_dir, path) = temp();
    std::fs::create_dir_all(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(err.to_string().contains("state.db"), "{err}");
}

#[test]
fn in_memory_store_has_the_schema() {
    let mut store = Store::open_in_memory().unwrap();
    let a = Owned::new("a", "CLEARING", None, T0);
    let got = store.accept(&[a.incoming()], Via::Push, true, &[all("x")], T0).unwrap();
    assert_eq!(got.new, 1);
}

#[test]
fn accept_dedupes_within_a_batch_across_batches_and_across_paths() {
    let (_dir, mut store) = open_temp();
    let a = Owned::new("a", "CLEARING", Some("ops"), T0);
    let b = Owned::new("b", "PAYMENT_UPDATE", None, T0 + 1);
    let c = Owned::new("c", "CLEARING", None, T0 + 2);
    let routes = [all("archive")];

    let first = store.accept(&views(&[&a, &b, &a]), Via::Push, false, &routes, T0 + 10).unwrap();
    assert_eq!((first.new, first.duplicates), (2, 1));
    assert_eq!(first.new_ids, ["a", "b"]);
    assert_eq!(first.new_by_subject, [("CLEARING".to_string(), 1), ("PAYMENT_UPDATE".to_string(), 1)]);
    assert_eq!(first.enqueued, 2);
    assert_eq!(first.recovered, 0);

    // The pull copy of `a` differs in pushStatus but has the same id: one row, one duplicate.
    let mut a_pulled = Owned::new("a", "CLEARING", Some("ops"), T0);
    a_pulled.json = a_pulled.json.replacen('{', "{\"pushStatus\":\"DELIVERED\",", 1);
    let second = store.accept(&views(&[&a_pulled, &c]), Via::Pull, true, &routes, T0 + 20).unwrap();
    assert_eq!((second.new, second.duplicates), (1, 1));
    assert_eq!(second.new_ids, ["c"]);

    let third = store.accept(&views(&[&a, &b, &c]), Via::Backfill, true, &routes, T0 + 30).unwrap();
    assert_eq!((third.new, third.duplicates), (0, 3));
    assert!(third.new_ids.is_empty());

    assert_eq!(row_count(&store, "notifications"), 3);
    assert_eq!(row_count(&store, "outbox"), 3);
    // The first copy wins: path, first-seen time and text.
    let (via, seen, json): (String, i64, String) = store
        .conn
        .query_row("SELECT received_via, first_seen_ms, json FROM notifications WHERE id = 'a'", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((via.as_str(), seen), ("push", T0 + 10));
    assert_eq!(json, a.json);
    assert_eq!(store.accept(&[], Via::Pull, true, &routes, T0).unwrap(), Accepted::default());
}

#[test]
fn routes_filter_by_subject() {
    let (_dir, mut store) = open_temp();
    let a = Owned::new("a", "CLEARING", None, T0);
    let b = Owned::new("b", "PAYMENT_UPDATE", None, T0);
    let c = Owned::new("c", "BPC_CLEARING", None, T0);
    // A sink named twice still gets one row per notification.
    let routes = [
        all("archive"),
        only("erp", &["CLEARING", "BPC_CLEARING"]),
        only("erp", &["CLEARING"]),
        only("nobody", &["TOKEN_LIFECYCLE_EVENT"]),
    ];
    let got = store.accept(&views(&[&a, &b, &c]), Via::Push, true, &routes, T0).unwrap();
    assert_eq!(got.enqueued, 5);
    assert_eq!(store.backlog().unwrap(), [("archive".to_string(), 3), ("erp".to_string(), 2)]);
}

#[test]
fn recovered_marks_the_new_ones_of_a_batch_only() {
    // StoreHandle::accept passes `recovered` for pull and backfill while push is configured.
    let (_dir, mut store) = open_temp();
    let items: Vec<Owned> = (0..6).map(|i| Owned::new(&format!("n{i}"), "CLEARING", None, T0 + i)).collect();
    let r = [all("s")];
    let push = store.accept(&views(&[&items[0]]), Via::Push, false, &r, T0).unwrap();
    let pull = store.accept(&views(&[&items[1], &items[2]]), Via::Pull, true, &r, T0).unwrap();
    let backfill = store.accept(&views(&[&items[3]]), Via::Backfill, true, &r, T0).unwrap();
    let pull_only = store.accept(&views(&[&items[4]]), Via::Pull, false, &r, T0).unwrap();
    let dup = store.accept(&views(&[&items[1]]), Via::Pull, true, &r, T0).unwrap();
    assert_eq!(
        [push.recovered, pull.recovered, backfill.recovered, pull_only.recovered, dup.recovered],
        [0, 2, 1, 0, 0]
    );
    let counts = store.counts_since(T0).unwrap();
    let row = |via: &str| counts.iter().find(|c| c.received_via == via).unwrap().clone();
    assert_eq!((row("push").n, row("push").recovered), (1, 0));
    assert_eq!((row("pull").n, row("pull").recovered), (3, 2));
    assert_eq!((row("backfill").n, row("backfill").recovered), (1, 1));
    assert!(counts.iter().all(|c| c.source == SOURCE_CEN && c.subject == "CLEARING"));
    assert!(store.counts_since(T0 + 100).unwrap().is_empty());
}

#[test]
fn a_source_outside_the_schema_is_refused_before_writing() {
    let (_dir, mut store) = open_temp();
    let a = Owned::new("a", "CLEARING", None, T0);
    let mut bad = a.incoming();
    bad.source = "elsewhere";
    let err = store.accept(&[a.incoming(), bad], Via::Push, true, &[all("s")], T0).unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
    assert_eq!(row_count(&store, "notifications"), 0);
    // VGS is a source.
    let event = Owned::new("vgs:evt_1", "cmp_au_card.updated", None, T0);
    let mut vgs = event.incoming();
    vgs.source = SOURCE_VGS;
    assert_eq!(store.accept(&[vgs], Via::Push, false, &[], T0).unwrap().new, 1);
}

#[test]
fn the_seen_set_is_unique_by_id() {
    let (_dir, mut store) = open_temp();
    // A VGS event id is unique whatever its created time (a resent webhook may differ).
    let first = Owned::new("vgs:evt_1", "cmp_au_card.updated", None, T0);
    let resent = Owned::new("vgs:evt_1", "cmp_au_card.updated", None, T0 + 5_000);
    for (o, new) in [(&first, 1), (&resent, 0)] {
        let mut vgs = o.incoming();
        vgs.source = SOURCE_VGS;
        assert_eq!(store.accept(&[vgs], Via::Push, false, &[all("s")], T0).unwrap().new, new);
    }
    // A CEN id hashes createdTimestamp, so its copies share created_ms: (created_ms, id) is
    // the index they meet in, also across batches far apart in time.
    let a = Owned::new("a", "CLEARING", None, T0);
    let later: Vec<Owned> = (1..500).map(|i| Owned::new(&format!("x{i}"), "CLEARING", None, T0 + i * 1000)).collect();
    assert_eq!(store.accept(&[a.incoming()], Via::Push, false, &[all("s")], T0).unwrap().new, 1);
    let inc: Vec<Incoming<'_>> = later.iter().map(Owned::incoming).collect();
    assert_eq!(store.accept(&inc, Via::Pull, false, &[all("s")], T0).unwrap().new, 499);
    let again = store.accept(&[a.incoming()], Via::Pull, false, &[all("s")], T0).unwrap();
    assert_eq!((again.new, again.duplicates), (0, 1));
    assert_eq!(row_count(&store, "notifications"), 501);
    assert_eq!(row_count(&store, "outbox"), 501);
}

/// Version 3 rewrote the `received_via` CHECK so an INSERT needs no temporary b-tree; the
/// CHECK must still refuse what it refused, and the file must stay sound.
#[test]
fn the_received_via_check_still_holds_without_a_temporary_btree_per_insert() {
    let (_dir, store) = open_temp();
    let sql: String = store
        .conn
        .query_row("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'notifications'", [], |r| r.get(0))
        .unwrap();
    assert!(sql.contains("received_via = 'push' OR received_via = 'pull'"), "{sql}");
    let insert = "INSERT INTO notifications (id, source, subject, subscription_name, created_ms, created_raw,
                                             received_via, first_seen_ms, recovered, json)
                  VALUES (?1, 'mastercard-cen', 'CLEARING', NULL, 1, 'r', ?2, 1, 0, '{}')";
    let opcodes: Vec<String> = store
        .conn
        .prepare(&format!("EXPLAIN {insert}"))
        .unwrap()
        .query_map(["e", "pull"], |r| r.get(1))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!opcodes.iter().any(|op| op == "OpenEphemeral"), "{opcodes:?}");
    for via in ["push", "pull", "backfill"] {
        store.conn.execute(insert, [via, via]).unwrap();
    }
    let err = store.conn.execute(insert, ["x", "email"]).unwrap_err();
    assert!(err.to_string().contains("CHECK constraint failed"), "{err}");
    let check: String = store.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
}

/// A state file written by a build with schema version 1 (ids as the primary key).
#[test]
fn a_version_1_file_is_migrated_keeping_rows_queue_and_dead_letters() {
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(migrations::V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        for (id, ms) in [("a", T0), ("b", T0 + 1), ("c", T0 + 2), ("d", T0 + 3)] {
            let o = Owned::new(id, "CLEARING", Some("ops"), ms);
            conn.execute(
                "INSERT INTO notifications (id, source, subject, subscription_name, created_ms, created_raw,
                                            received_via, first_seen_ms, recovered, json)
                 VALUES (?1, 'mastercard-cen', 'CLEARING', 'ops', ?2, ?3, 'pull', ?2, 0, ?4)",
                rusqlite::params![id, ms, o.created_raw, o.json],
            )
            .unwrap();
        }
        // a: leased by a live owner; b: due; c: delivered (its seq must not come back);
        // d: a dead letter.
        conn.execute_batch(
            "INSERT INTO outbox (sink, notification_id, enqueued_ms, attempts, next_attempt_ms, lease_owner,
                                 lease_until_ms)
                 VALUES ('s', 'a', 1, 2, 1, 'X', 9223372036854775807);
             INSERT INTO outbox (sink, notification_id, enqueued_ms, next_attempt_ms) VALUES ('s', 'b', 1, 1);
             INSERT INTO outbox (sink, notification_id, enqueued_ms, next_attempt_ms) VALUES ('s', 'c', 1, 1);
             DELETE FROM outbox WHERE notification_id = 'c';
             INSERT INTO dead_letters (sink, notification_id, attempts, first_enqueued_ms, dead_ms, last_error)
                 VALUES ('s', 'd', 50, 1, 2, 'gone');",
        )
        .unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), migrations::CURRENT);
    let violations: i64 =
        store.conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).unwrap();
    assert_eq!(violations, 0);
    let check: String = store.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let nids: Vec<(i64, String)> = store
        .conn
        .prepare("SELECT nid, id FROM notifications ORDER BY nid")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(nids, [(1, "a".into()), (2, "b".into()), (3, "c".into()), (4, "d".into())]);

    // The queue: `a` stays leased to X, `b` is leased now, with its record.
    let leased = store.lease("s", "Y", 10, 60_000, T0).unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!((leased[0].seq, leased[0].id.as_str()), (2, "b"));
    assert!(leased[0].record.starts_with("{\"id\":\"b\""), "{}", leased[0].record);
    assert_eq!(store.release("X").unwrap(), 1);
    let listed = store.dead_letters(None, None).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].notification_id.as_str(), listed[0].subject.as_deref()), ("d", Some("CLEARING")));

    // The seen set still holds every id, and a new row gets a new sequence number.
    let a = Owned::new("a", "CLEARING", Some("ops"), T0);
    let e = Owned::new("e", "CLEARING", None, T0 + 4);
    let got = store.accept(&views(&[&a, &e]), Via::Pull, false, &[all("s")], T0).unwrap();
    assert_eq!((got.new, got.duplicates), (1, 1));
    let seq: i64 = store.conn.query_row("SELECT max(seq) FROM outbox", [], |r| r.get(0)).unwrap();
    assert_eq!(seq, 4, "seq 3 was used by c's delivered row");
    assert_eq!(store.retry_dead_letters(None, Some("d"), T0).unwrap(), 1);
    assert_eq!(store.backlog().unwrap(), [("s".to_string(), 4)]);
}

#[test]
fn incoming_from_a_notification() {
    let text = r#"{"subject":"CLEARING","subscriptionName":"ops","pushStatus":"FAILED","createdTimestamp":"2026-11-25T10:00:00.640Z","content":{"a":1}}"#;
    let n = crate::cen::notification::Notification::from_json(text).unwrap();
    let inc = Incoming::from(&n);
    assert_eq!(inc.id, n.id);
    assert_eq!(inc.source, SOURCE_CEN);
    assert_eq!(inc.subscription_name, Some("ops"));
    assert_eq!(inc.created_ms, T0 + 640);
    assert_eq!(inc.created_raw, "2026-11-25T10:00:00.640Z");
    assert_eq!(inc.json, text);
}

#[test]
fn the_watermark_persists_across_reopen() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.watermark().unwrap(), None);
    store.set_watermark(T0).unwrap();
    store.set_watermark(T0 + 60_000).unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.watermark().unwrap(), Some(T0 + 60_000));
}

#[test]
fn count_created_is_start_inclusive_end_exclusive_with_an_optional_filter() {
    let (_dir, mut store) = open_temp();
    let items = [
        Owned::new("a", "CLEARING", Some("ops"), T0 - 1),
        Owned::new("b", "CLEARING", Some("ops"), T0),
        Owned::new("c", "CLEARING", Some("fin"), T0 + 500),
        Owned::new("d", "CLEARING", None, T0 + 999),
        Owned::new("e", "CLEARING", Some("ops"), T0 + 1000),
    ];
    let refs: Vec<&Owned> = items.iter().collect();
    store.accept(&views(&refs), Via::Pull, false, &[], T0).unwrap();
    let count = |start, end, subs: &[&str]| {
        let subs: Vec<String> = subs.iter().map(|s| s.to_string()).collect();
        store.count_created(SOURCE_CEN, start, end, &subs).unwrap()
    };
    assert_eq!(count(T0, T0 + 1000, &[]), 3); // b c d
    assert_eq!(count(T0 - 1, T0 + 1001, &[]), 5);
    assert_eq!(count(T0, T0, &[]), 0);
    assert_eq!(count(T0, T0 + 1, &[]), 1);
    assert_eq!(count(T0, T0 + 1000, &["ops"]), 1);
    assert_eq!(count(T0, T0 + 1000, &["ops", "fin"]), 2);
    assert_eq!(count(T0 - 1, T0 + 1001, &["ops"]), 3);
    assert_eq!(count(T0 - 1, T0 + 1001, &["nobody", "with \"quotes\""]), 0);
    assert_eq!(store.count_created(SOURCE_VGS, 0, i64::MAX, &[]).unwrap(), 0);
}

#[test]
fn count_created_reads_only_the_index() {
    let (_dir, store) = open_temp();
    for sql in [accept::COUNT_CREATED, accept::COUNT_CREATED_FILTERED] {
        let sql =
            sql.replace("?1", "'mastercard-cen'").replace("?2", "0").replace("?3", "1").replace("?4", "'[\"ops\"]'");
        let plan = query_plan(&store, &sql);
        assert!(
            plan.contains("USING COVERING INDEX notifications_by_created (source=? AND created_ms>? AND created_ms<?)"),
            "{plan}"
        );
    }
}

#[test]
fn leasing_walks_one_sinks_rows_in_order_without_sorting() {
    let (_dir, store) = open_temp();
    let sql = outbox::LEASE_SELECT.replace("?1", "'s'").replace("?2", "0").replace("?3", "10");
    let plan = query_plan(&store, &sql);
    assert!(plan.contains("outbox_by_sink (sink=?)"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    // Marking and acknowledging a batch find each row by its key, one statement per batch.
    for sql in [outbox::LEASE_UPDATE.replace("?1", "'A'").replace("?2", "0"), outbox::ACK_MANY.replace("?1", "'A'")] {
        let plan = query_plan(&store, &sql.replace("?3", "'[1,2]'").replace("?2", "'[1,2]'"));
        assert!(plan.contains("SEARCH outbox USING INTEGER PRIMARY KEY (rowid=?)"), "{plan}");
    }
    let prune = maintenance::PRUNE_CHUNK_DELETE.replace("?1", "'mastercard-cen'").replace("?5", "10").replace('?', "");
    let plan = query_plan(&store, &prune);
    assert!(plan.contains("notifications_by_created"), "{plan}");
    assert!(!plan.contains("SCAN n\n") && !plan.contains("SCAN o"), "{plan}");
}

/// Accepts `n` CLEARING notifications created one ms apart, routed to sink "s".
fn fill(store: &mut Store, n: i64) -> Vec<String> {
    let items: Vec<Owned> = (0..n).map(|i| Owned::new(&format!("id{i:04}"), "CLEARING", None, T0 + i)).collect();
    let refs: Vec<&Owned> = items.iter().collect();
    store.accept(&views(&refs), Via::Push, true, &[all("s")], T0).unwrap().new_ids
}

#[test]
fn two_owners_never_lease_the_same_row() {
    let (_dir, mut store) = open_temp();
    let ids = fill(&mut store, 10);
    let a = store.lease("s", "A", 4, 30_000, T0).unwrap();
    let b = store.lease("s", "B", 100, 30_000, T0).unwrap();
    let c = store.lease("s", "C", 100, 30_000, T0).unwrap();
    let a_ids: Vec<&str> = a.iter().map(|l| l.id.as_str()).collect();
    let b_ids: Vec<&str> = b.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(a_ids, ids[..4]);
    assert_eq!(b_ids, ids[4..]);
    assert!(c.is_empty());
    assert!(a.windows(2).all(|w| w[0].seq < w[1].seq), "acceptance order");
    assert!(store.lease("other-sink", "A", 10, 30_000, T0).unwrap().is_empty());
    assert!(store.lease("s", "A", 0, 30_000, T0).unwrap().is_empty());
}

#[test]
fn an_expired_lease_is_taken_over_and_the_old_owner_can_no_longer_ack() {
    let (_dir, mut store) = open_temp();
    fill(&mut store, 3);
    let a = store.lease("s", "A", 10, 1_000, T0).unwrap();
    assert_eq!(a.len(), 3);
    // Still held at its expiry instant, free one ms later.
    assert!(store.lease("s", "B", 10, 1_000, T0 + 1_000).unwrap().is_empty());
    let b = store.lease("s", "B", 10, 1_000, T0 + 1_001).unwrap();
    assert_eq!(b.len(), 3);
    let seqs: Vec<i64> = a.iter().map(|l| l.seq).collect();
    assert_eq!(store.ack("A", &seqs).unwrap(), 0);
    assert!(!store.retry_later(seqs[0], "A", "late", T0).unwrap());
    assert!(!store.dead_letter(seqs[0], "A", "late", T0).unwrap());
    assert_eq!(store.ack("B", &seqs).unwrap(), 3);
    assert_eq!(row_count(&store, "outbox"), 0);
    assert_eq!(store.ack("B", &[]).unwrap(), 0);
}

#[test]
fn release_frees_an_owners_leases() {
    let (_dir, mut store) = open_temp();
    fill(&mut store, 3);
    assert_eq!(store.lease("s", "A", 2, 60_000, T0).unwrap().len(), 2);
    assert_eq!(store.release("A").unwrap(), 2);
    assert_eq!(store.lease("s", "B", 10, 60_000, T0).unwrap().len(), 3);
}

#[test]
fn retry_later_hides_the_row_until_its_next_attempt_without_blocking_the_rest() {
    let (_dir, mut store) = open_temp();
    fill(&mut store, 2);
    let first = store.lease("s", "A", 1, 60_000, T0).unwrap().remove(0);
    assert!(store.retry_later(first.seq, "A", "HTTP 503", T0 + 5_000).unwrap());
    // Not due: the next row is offered instead.
    let next = store.lease("s", "A", 10, 60_000, T0 + 1).unwrap();
    assert_eq!(next.len(), 1);
    assert_ne!(next[0].seq, first.seq);
    store.ack("A", &[next[0].seq]).unwrap();
    assert!(store.lease("s", "A", 10, 60_000, T0 + 4_999).unwrap().is_empty());
    let again = store.lease("s", "A", 10, 60_000, T0 + 5_000).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].seq, again[0].attempts), (first.seq, 1));
    let last_error: String = store.conn.query_row("SELECT last_error FROM outbox", [], |r| r.get(0)).unwrap();
    assert_eq!(last_error, "HTTP 503");
    // A huge error is kept in part, cut at a character boundary.
    let huge = "é".repeat(10_000);
    assert!(store.retry_later(first.seq, "A", &huge, T0).unwrap());
    let kept: String = store.conn.query_row("SELECT last_error FROM outbox", [], |r| r.get(0)).unwrap();
    assert!(kept.len() <= 4096 && kept.chars().all(|c| c == 'é'));
}

#[test]
fn ack_and_lease_acknowledges_then_leases_the_next_rows_in_one_go() {
    let (_dir, mut store) = open_temp();
    let ids = fill(&mut store, 5);
    let first = store.lease("s", "A", 2, 60_000, T0).unwrap();
    assert_eq!(first.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), [ids[0].as_str(), ids[1].as_str()]);
    // Another owner's seq is not acknowledged; the next rows are leased.
    let other = store.lease("s", "B", 1, 60_000, T0).unwrap();
    let seqs = vec![first[0].seq, first[1].seq, other[0].seq];
    let (acked, next) = store.ack_and_lease("A", &seqs, "s", 10, 60_000, T0).unwrap();
    assert_eq!(acked, 2);
    assert_eq!(next.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), [ids[3].as_str(), ids[4].as_str()]);
    assert_eq!(store.backlog().unwrap(), [("s".to_string(), 3)]);
    assert!(store.lease("s", "C", 10, 60_000, T0).unwrap().is_empty(), "all leased");
    let (acked, next) = store.ack_and_lease("A", &[next[0].seq, next[1].seq], "s", 10, 60_000, T0).unwrap();
    assert_eq!((acked, next.len()), (2, 0));
}

/// Leases and acknowledgements commit without an fsync of their own (`tx::unsynced_tx`);
/// everything else, accepts above all, must stay `synchronous=FULL` (G4).
#[test]
fn leases_and_acks_are_not_fsynced_but_leave_every_other_commit_synced() {
    let (_dir, mut store) = open_temp();
    let synchronous = |store: &Store| store.conn.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0)).unwrap();
    fill(&mut store, 3);
    let leased = store.lease("s", "A", 2, 60_000, T0).unwrap();
    assert_eq!(synchronous(&store), 2, "FULL after a lease");
    let (acked, more) = store.ack_and_lease("A", &[leased[0].seq], "s", 10, 60_000, T0).unwrap();
    assert_eq!((acked, more.len()), (1, 1));
    assert_eq!(synchronous(&store), 2, "FULL after an ack and lease");
    assert_eq!(store.ack("A", &[leased[1].seq, more[0].seq]).unwrap(), 2);
    assert_eq!(synchronous(&store), 2, "FULL after an ack");
    // One that matches nothing (another owner's row) too.
    assert_eq!(store.ack("B", &[leased[0].seq]).unwrap(), 0);
    assert_eq!(synchronous(&store), 2);
    assert!(store.backlog().unwrap().is_empty());
}

/// Pages read by the poll or a backfill commit without an fsync each and are made durable
/// once per window or run (`Via::synced_per_commit`, `Store::sync`); a push's commit stays
/// synced, and so does everything after any of them.
#[test]
fn pull_and_backfill_pages_are_not_fsynced_one_by_one_but_pushes_are() {
    assert!(Via::Push.synced_per_commit());
    assert!(!Via::Pull.synced_per_commit() && !Via::Backfill.synced_per_commit());
    let (_dir, mut store) = open_temp();
    let synchronous = |store: &Store| store.conn.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0)).unwrap();
    for (i, via) in [Via::Pull, Via::Backfill, Via::Push].into_iter().enumerate() {
        let item = Owned::new(&format!("id{i}"), "CLEARING", None, T0 + i as i64);
        let got = store.accept(&views(&[&item]), via, true, &[all("s")], T0).unwrap();
        assert_eq!(got.new, 1, "{via}");
        assert_eq!(synchronous(&store), 2, "FULL again after an accept by {via}");
    }
    // The unsynced commits are in the WAL; syncing it makes them durable.
    let wal = store.wal_path().expect("a file database has a WAL");
    assert!(wal.metadata().unwrap().len() > 0, "{}", wal.display());
    Store::sync(store.path(), Some(&wal)).unwrap();
    assert_eq!(row_count(&store, "notifications"), 3);
    // No WAL: in memory, or removed by the last connection after its checkpoint.
    assert!(Store::open_in_memory().unwrap().wal_path().is_none());
    Store::sync(store.path(), None).unwrap();
    Store::sync(store.path(), Some(&wal.with_extension("gone"))).unwrap();
}

#[test]
fn a_lease_holds_its_rows_until_acked_or_released() {
    let items: Vec<Owned> = (0..6)
        .map(|i| {
            Owned::new(&format!("id{i}"), if i % 2 == 0 { "CLEARING" } else { "BPC_CLEARING" }, Some("ops"), T0 + i)
        })
        .collect();
    let refs: Vec<&Owned> = items.iter().collect();
    let routes = [all("a"), only("b", &["CLEARING"])];
    let (_dir, mut store) = open_temp();
    let got = store.accept(&views(&refs), Via::Pull, true, &routes, T0).unwrap();
    assert_eq!((got.new, got.enqueued), (6, 9));
    let a = store.lease("a", "A", 100, 60_000, T0).unwrap();
    let b = store.lease("b", "A", 100, 60_000, T0).unwrap();
    assert_eq!((a.len(), b.len()), (6, 3));
    // Leased rows are A's: no one else gets them while the lease holds; A acks them.
    assert!(store.lease("a", "B", 100, 60_000, T0).unwrap().is_empty());
    assert!(store.lease("b", "B", 100, 60_000, T0).unwrap().is_empty());
    let seqs: Vec<i64> = a.iter().map(|l| l.seq).collect();
    assert_eq!(store.ack("B", &seqs).unwrap(), 0, "only the holder of the lease acks");
    assert_eq!(store.ack("A", &seqs).unwrap(), 6);
    // Released rows (a dispatcher stopping) go back to the queue for anyone.
    let seqs: Vec<i64> = b.iter().map(|l| l.seq).collect();
    assert_eq!(store.release_seqs("B", &seqs).unwrap(), 0, "only the owner's leases");
    assert_eq!(store.release_seqs("A", &seqs).unwrap(), 3);
    assert_eq!(store.lease("b", "B", 100, 60_000, T0).unwrap().len(), 3);
    // An expired lease is anyone's again.
    assert_eq!(store.lease("b", "C", 100, 60_000, T0 + 60_001).unwrap().len(), 3);
}

#[test]
fn a_batch_enqueues_in_acceptance_order_once_per_sink_name() {
    // The outbox rows of a batch go in with one statement per route: seqs must still follow
    // the batch order, a repeat within the batch is a duplicate, and a sink name routed twice
    // gets one row per notification.
    let items: Vec<Owned> =
        [0, 1, 2, 1, 3].iter().map(|&i| Owned::new(&format!("id{i}"), "CLEARING", None, T0 + i)).collect();
    let refs: Vec<&Owned> = items.iter().collect();
    let routes = [all("a"), all("a"), all("b")];
    let (_dir, mut store) = open_temp();
    let got = store.accept(&views(&refs), Via::Pull, false, &routes, T0).unwrap();
    assert_eq!((got.new, got.duplicates, got.enqueued), (4, 1, 8));
    assert_eq!(got.new_ids, ["id0", "id1", "id2", "id3"]);
    for sink in ["a", "b"] {
        let leased = store.lease(sink, "A", 100, 60_000, T0).unwrap();
        let ids: Vec<&str> = leased.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["id0", "id1", "id2", "id3"], "sink {sink}");
        assert!(leased.windows(2).all(|w| w[0].seq < w[1].seq), "seqs ascend in batch order");
    }
}

#[test]
fn dead_letters_are_listed_counted_and_retried() {
    let (_dir, mut store) = open_temp();
    let ids = fill(&mut store, 3);
    store.accept(&[], Via::Push, true, &[], T0).unwrap();
    let leased = store.lease("s", "A", 2, 60_000, T0).unwrap();
    assert!(store.retry_later(leased[0].seq, "A", "first", T0).unwrap());
    let l0 = store.lease("s", "A", 1, 60_000, T0).unwrap().remove(0);
    assert_eq!(l0.seq, leased[0].seq);
    assert!(store.dead_letter(l0.seq, "A", "gave up", T0 + 7).unwrap());
    assert!(store.dead_letter(leased[1].seq, "A", "bad request", T0 + 8).unwrap());
    assert_eq!(store.backlog().unwrap(), [("s".to_string(), 1)]);
    assert_eq!(store.dead_letter_counts().unwrap(), [("s".to_string(), 2)]);

    let listed = store.dead_letters(None, None).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].notification_id, ids[0]);
    assert_eq!(listed[0].attempts, 2);
    assert_eq!(listed[0].dead_ms, T0 + 7);
    assert_eq!(listed[0].first_enqueued_ms, T0);
    assert_eq!(listed[0].last_error.as_deref(), Some("gave up"));
    assert_eq!(listed[0].subject.as_deref(), Some("CLEARING"));
    assert_eq!(store.dead_letters(Some("s"), Some(&ids[1])).unwrap().len(), 1);
    assert!(store.dead_letters(Some("other"), None).unwrap().is_empty());

    // Retry one by id, then the rest by sink.
    assert_eq!(store.retry_dead_letters(None, Some(&ids[1]), T0 + 100).unwrap(), 1);
    assert_eq!(store.retry_dead_letters(Some("other"), None, T0 + 100).unwrap(), 0);
    assert_eq!(store.retry_dead_letters(Some("s"), None, T0 + 100).unwrap(), 1);
    assert!(store.dead_letters(None, None).unwrap().is_empty());
    let back = store.lease("s", "A", 10, 60_000, T0 + 100).unwrap();
    assert_eq!(back.len(), 3);
    assert!(back.iter().all(|l| l.attempts == 0));
    let mut back_ids: Vec<&str> = back.iter().map(|l| l.id.as_str()).collect();
    back_ids.sort();
    assert_eq!(back_ids, ids);
}

#[test]
fn the_record_is_json_with_every_field_and_the_notification_verbatim() {
    let (_dir, mut store) = open_temp();
    let mut a = Owned::new("a\"b", "CLEARING", Some("ops \\ \"x\""), T0 + 640);
    // Spacing and number forms survive because the text is embedded, not re-serialised.
    a.json = r#"{"subject":"CLEARING","createdTimestamp":"2026-11-25T10:00:00.640Z","content":{"amount":1.50,"big":12345678901234567890,"s":"é\u00e9\n"}}"#.into();
    let b = Owned::new("b", "PAYMENT_UPDATE", None, T0);
    store.accept(&views(&[&a]), Via::Pull, true, &[all("s")], T0 + 1_123).unwrap();
    store.accept(&views(&[&b]), Via::Push, true, &[all("s")], T0 + 2_000).unwrap();
    let leased = store.lease("s", "A", 10, 60_000, T0 + 5_000).unwrap();
    assert_eq!(leased.len(), 2);

    #[derive(serde::Deserialize)]
    struct Raw<'a> {
        #[serde(borrow)]
        notification: &'a RawValue,
    }
    let rec: Value = serde_json::from_str(&leased[0].record).unwrap();
    let keys: Vec<&str> = rec.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want = vec![
        "id",
        "source",
        "received_via",
        "first_seen_at",
        "subject",
        "subscription_name",
        "created_timestamp",
        "notification",
    ];
    assert_eq!(keys.len(), want.len());
    assert!(
        leased[0].record.starts_with(r#"{"id":"a\"b","source":"mastercard-cen","received_via":"pull","first_seen_at":"2026-11-25T10:00:01.123Z","subject":"CLEARING","subscription_name":"ops \\ \"x\"","created_timestamp":""#),
        "{}",
        leased[0].record
    );
    want.sort();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, want);
    assert_eq!(rec["id"], "a\"b");
    assert_eq!(rec["subscription_name"], "ops \\ \"x\"");
    assert_eq!(rec["created_timestamp"], a.created_raw.as_str());
    let raw: Raw<'_> = serde_json::from_str(&leased[0].record).unwrap();
    assert_eq!(raw.notification.get(), a.json, "byte-identical");
    assert_eq!(leased[0].subject, "CLEARING");
    assert_eq!(leased[0].received_via, "pull");
    assert_eq!(leased[0].created_raw, a.created_raw);
    assert_eq!(leased[0].enqueued_ms, T0 + 1_123);

    let rec: Value = serde_json::from_str(&leased[1].record).unwrap();
    assert_eq!(rec["subscription_name"], Value::Null);
    assert_eq!(rec["received_via"], "push");
    assert_eq!(rec["first_seen_at"], "2026-11-25T10:00:02.000Z");
    assert!(leased[1].record.ends_with(&format!(",\"notification\":{}}}", b.json)));
}

#[test]
fn replay_queues_the_range_for_one_sink_skipping_rows_already_queued() {
    let (_dir, mut store) = open_temp();
    let items = [
        Owned::new("a", "CLEARING", None, T0 - 1),
        Owned::new("b", "CLEARING", None, T0),
        Owned::new("c", "PAYMENT_UPDATE", None, T0 + 10),
        Owned::new("d", "CLEARING", None, T0 + 7_200_000), // another replay slice
        Owned::new("e", "CLEARING", None, T0 + 7_200_001), // end is exclusive
    ];
    let refs: Vec<&Owned> = items.iter().collect();
    store.accept(&views(&refs), Via::Pull, false, &[all("s")], T0).unwrap();
    // Deliver everything for "s".
    let seqs: Vec<i64> = store.lease("s", "A", 100, 1_000, T0).unwrap().iter().map(|l| l.seq).collect();
    assert_eq!(store.ack("A", &seqs).unwrap(), 5);
    assert_eq!(row_count(&store, "outbox"), 0);
    // "c" alone first; the whole range then skips it as already queued.
    let range = (T0, T0 + 7_200_001);
    assert_eq!(store.enqueue_replay(&all("s"), T0 + 10, T0 + 11, T0 + 40).unwrap(), 1);
    assert_eq!(store.enqueue_replay(&all("s"), range.0, range.1, T0 + 50).unwrap(), 2);
    assert_eq!(store.enqueue_replay(&all("s"), range.0, range.1, T0 + 60).unwrap(), 0);
    let mut ids: Vec<String> = store.lease("s", "A", 100, 1_000, T0 + 60).unwrap().into_iter().map(|l| l.id).collect();
    ids.sort();
    assert_eq!(ids, ["b", "c", "d"]);
    // Another sink with a subject filter gets only what it takes.
    let erp = only("erp", &["CLEARING"]);
    assert_eq!(store.enqueue_replay(&erp, range.0, range.1, T0 + 60).unwrap(), 2);
    assert_eq!(store.enqueue_replay(&all("x"), 0, i64::MAX, T0 + 60).unwrap(), 5);
    assert_eq!(store.enqueue_replay(&all("y"), T0, T0, T0 + 60).unwrap(), 0);
    assert_eq!(store.oldest_pending_ms("erp").unwrap(), Some(T0 + 60));
    assert_eq!(store.oldest_pending_ms("nobody").unwrap(), None);
}

#[test]
fn prune_deletes_old_delivered_notifications_and_keeps_undelivered_ones() {
    let (_dir, mut store) = open_temp();
    let day = 86_400_000;
    let old: Vec<Owned> =
        (0..5).map(|i| Owned::new(&format!("old{i}"), "CLEARING", None, T0 + i * 3_600_000)).collect();
    let refs: Vec<&Owned> = old.iter().collect();
    store.accept(&views(&refs), Via::Pull, false, &[all("s")], T0).unwrap();
    // Created long ago but first seen recently (a backfill): kept.
    let late = Owned::new("late", "CLEARING", None, T0);
    store.accept(&views(&[&late]), Via::Backfill, false, &[], T0 + 20 * day).unwrap();
    let recent = Owned::new("recent", "CLEARING", None, T0 + 20 * day);
    store.accept(&views(&[&recent]), Via::Push, false, &[], T0 + 20 * day).unwrap();
    // Deliver old0..old2, leave old3 pending, dead-letter old4.
    let leased = store.lease("s", "A", 10, 60_000, T0).unwrap();
    assert_eq!(leased.len(), 5);
    store.ack("A", &[leased[0].seq, leased[1].seq, leased[2].seq]).unwrap();
    store.retry_later(leased[3].seq, "A", "down", T0 + day).unwrap();
    store.dead_letter(leased[4].seq, "A", "bad", T0).unwrap();

    assert_eq!(store.prune(T0 + 14 * day).unwrap(), 3);
    let mut left: Vec<String> = store
        .conn
        .prepare("SELECT id FROM notifications")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    left.sort();
    assert_eq!(left, ["late", "old3", "old4", "recent"]);
    assert_eq!(store.prune(T0 + 14 * day).unwrap(), 0);
    // The pending and dead rows are still deliverable.
    assert_eq!(store.retry_dead_letters(None, None, T0 + 15 * day).unwrap(), 1);
    assert_eq!(store.lease("s", "A", 10, 1, T0 + 15 * day).unwrap().len(), 2);
}

#[test]
fn retrying_a_dead_letter_already_queued_again_does_not_queue_it_twice() {
    let (_dir, mut store) = open_temp();
    let ids = fill(&mut store, 1);
    let l = store.lease("s", "A", 1, 60_000, T0).unwrap().remove(0);
    assert!(store.dead_letter(l.seq, "A", "gone", T0).unwrap());
    assert_eq!(store.enqueue_replay(&all("s"), T0, T0 + 1, T0 + 1).unwrap(), 1);
    assert_eq!(store.retry_dead_letters(None, None, T0 + 2).unwrap(), 1);
    assert!(store.dead_letters(None, None).unwrap().is_empty());
    let again = store.lease("s", "A", 10, 60_000, T0 + 2).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, ids[0]);
}

#[test]
fn sqlite_failures_become_operator_errors_naming_the_file() {
    use rusqlite::ffi;
    let path = std::path::Path::new("/var/lib/cen-poller/state.db");
    type Is = fn(&StoreError) -> bool;
    let fail = |code| rusqlite::Error::SqliteFailure(ffi::Error::new(code), None);
    let cases: [(i32, Is, &str); 6] = [
        (ffi::SQLITE_READONLY, |e| matches!(e, StoreError::ReadOnly { .. }), "writable"),
        (ffi::SQLITE_FULL, |e| matches!(e, StoreError::DiskFull { .. }), "free space"),
        (ffi::SQLITE_BUSY, |e| matches!(e, StoreError::Locked { .. }), "10 s"),
        (ffi::SQLITE_NOTADB, |e| matches!(e, StoreError::Corrupt { .. }), "recover"),
        (ffi::SQLITE_IOERR, |e| matches!(e, StoreError::Io { .. }), "disk"),
        (ffi::SQLITE_CONSTRAINT, |e| matches!(e, StoreError::Sqlite { .. }), "accept"),
    ];
    for (code, is, hint) in cases {
        let err = error::classify(path, "accept", fail(code));
        let msg = err.to_string();
        assert!(is(&err), "{code}: {err:?}");
        assert!(msg.contains("/var/lib/cen-poller/state.db"), "{msg}");
        assert!(msg.contains(hint), "{msg}");
    }
    assert!(error::classify(path, "x", fail(ffi::SQLITE_BUSY)).is_transient());
    assert!(!error::classify(path, "x", fail(ffi::SQLITE_READONLY)).is_transient());
}

#[test]
fn prune_works_in_chunks() {
    let (_dir, mut store) = open_temp();
    let n = maintenance::PRUNE_CHUNK * 2 + 7;
    let items: Vec<Owned> = (0..n).map(|i| Owned::new(&format!("n{i}"), "CLEARING", None, T0 + (i % 3))).collect();
    let refs: Vec<&Owned> = items.iter().collect();
    for chunk in refs.chunks(500) {
        store.accept(&views(chunk), Via::Pull, false, &[], T0).unwrap();
    }
    assert_eq!(store.prune(T0 + 10).unwrap(), usize::try_from(n).unwrap());
    assert_eq!(row_count(&store, "notifications"), 0);
}

/// Leases and acks rows of sink "s" as `owner` until `done` is set and nothing is left;
/// returns the ids it delivered.
fn deliver_until_done(
    path: &std::path::Path,
    owner: &str,
    max: usize,
    done: &std::sync::atomic::AtomicBool,
) -> Vec<String> {
    let mut store = Store::open(path).unwrap();
    let mut delivered = Vec::new();
    loop {
        // Read `done` before leasing: empty after done means empty for good.
        let finished = done.load(std::sync::atomic::Ordering::SeqCst);
        let leased = store.lease("s", owner, max, 60_000, T0).unwrap();
        if leased.is_empty() {
            if finished {
                return delivered;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            continue;
        }
        let seqs: Vec<i64> = leased.iter().map(|l| l.seq).collect();
        assert_eq!(store.ack(owner, &seqs).unwrap(), seqs.len());
        delivered.extend(leased.into_iter().map(|l| l.id));
        store.count_created(SOURCE_CEN, T0, T0 + 10_000, &[]).unwrap();
    }
}

#[test]
fn two_connections_accept_and_lease_concurrently() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    const BATCHES: i64 = 40;
    const PER_BATCH: i64 = 50;
    let (_dir, path) = temp();
    drop(Store::open(&path).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    // Two delivery workers under different owners, as the daemon and a backfill would be.
    let workers: Vec<_> = [("daemon", 64), ("backfill", 16)]
        .into_iter()
        .map(|(owner, max)| {
            let (path, done) = (path.clone(), Arc::clone(&done));
            std::thread::spawn(move || deliver_until_done(&path, owner, max, &done))
        })
        .collect();
    let mut writer = Store::open(&path).unwrap();
    for b in 0..BATCHES {
        let items: Vec<Owned> =
            (0..PER_BATCH).map(|i| Owned::new(&format!("w{b}-{i}"), "CLEARING", None, T0 + b * 100 + i)).collect();
        let inc: Vec<Incoming<'_>> = items.iter().map(Owned::incoming).collect();
        let got = writer.accept(&inc, Via::Pull, true, &[all("s")], T0).unwrap();
        assert_eq!(got.new, PER_BATCH as usize);
        writer.set_watermark(T0 + b).unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let mut all_ids: Vec<String> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let delivered = all_ids.len();
    all_ids.sort();
    all_ids.dedup();
    assert_eq!(all_ids.len(), delivered, "no row delivered twice");
    assert_eq!(delivered, (BATCHES * PER_BATCH) as usize, "every row delivered");
    assert_eq!(row_count(&writer, "outbox"), 0);
    assert_eq!(writer.watermark().unwrap(), Some(T0 + BATCHES - 1));
}

/// Throughput of the hot path (batches of 200, ~1.5 KB each, two sinks, fsync per commit).
/// Meaningful only optimised:
/// `cargo test --release --lib store::tests::accept_throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn accept_throughput() {
    let (_dir, mut store) = open_temp();
    let filler = "x".repeat(1_300);
    let total = 50_000;
    let items: Vec<Owned> = (0..total)
        .map(|i| {
            let mut o = Owned::new(&format!("{:064x}", i * 7919 + 13), "CLEARING", Some("ops"), T0 + i);
            o.json = o.json.replacen("\"note\"", &format!("\"pad\":\"{filler}\",\"note\""), 1);
            o
        })
        .collect();
    let routes = [all("archive"), only("erp", &["CLEARING"])];
    let start = std::time::Instant::now();
    for chunk in items.chunks(200) {
        let inc: Vec<Incoming<'_>> = chunk.iter().map(Owned::incoming).collect();
        store.accept(&inc, Via::Pull, true, &routes, T0).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "accepted {total} notifications ({} bytes each) in {secs:.2}s: {:.0}/s",
        items[0].json.len(),
        total as f64 / secs
    );
}

/// Accepts `items` (by pull, routed to sink "s") in one call through the async handle.
/// Accepts as a push: a synced commit each, the pace the checkpoint tests are about (pages
/// of the poll commit unsynced, faster than a checkpointer copies 8 KiB notifications; the
/// main connection's fallback checkpoint then bounds the WAL).
async fn accept_through(handle: &backend::Sqlite, items: Vec<Owned>) -> Accepted {
    handle
        .call(move |s| {
            let inc: Vec<Incoming<'_>> = items.iter().map(Owned::incoming).collect();
            s.accept(&inc, Via::Push, false, &[all("s")], T0)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn checkpoints_run_in_the_background() {
    let (_dir, path) = temp();
    let handle = backend::Sqlite::open(&path).unwrap();
    let db_size = || std::fs::metadata(&path).unwrap().len();
    let before = db_size();
    // Far below the main connection's own checkpoint threshold.
    let items: Vec<Owned> = (0..200).map(|i| Owned::new(&format!("id{i}"), "CLEARING", None, T0 + i)).collect();
    assert_eq!(accept_through(&handle, items).await.new, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while db_size() == before {
        assert!(std::time::Instant::now() < deadline, "nothing was checkpointed into the database file");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let autocheckpoint: i64 = handle
        .call(|s| Ok(s.conn.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0)).unwrap()))
        .await
        .unwrap();
    assert_eq!(autocheckpoint, checkpoint::FALLBACK_PAGES);
}

/// Under back-to-back commits a passive checkpoint never catches up by itself, and the WAL
/// used to grow to the fallback threshold (64 MiB), where one commit then paid for a whole
/// checkpoint. The checkpointer finishes its round under the store's lock instead, so the
/// WAL starts again from its beginning long before that: its file (which keeps its
/// largest size) stays far below the fallback threshold although more than that was
/// written through it.
#[tokio::test]
async fn the_wal_restarts_under_a_steady_stream_of_commits() {
    let (_dir, path) = temp();
    let handle = backend::Sqlite::open(&path).unwrap();
    // 64 MiB of notifications, one 8 KiB page each, in commits of 64.
    let filler = "x".repeat(7_000);
    let (per_commit, commits) = (64, 128);
    for c in 0..commits {
        let items: Vec<Owned> = (0..per_commit)
            .map(|i| {
                let n = c * per_commit + i;
                let mut o = Owned::new(&format!("{n:064x}"), "CLEARING", None, T0 + n);
                o.json = o.json.replacen("\"note\"", &format!("\"pad\":\"{filler}\",\"note\""), 1);
                o
            })
            .collect();
        assert_eq!(accept_through(&handle, items).await.new, per_commit as usize);
    }
    let wal = std::fs::metadata(path.with_extension("db-wal")).unwrap().len();
    let fallback = checkpoint::FALLBACK_PAGES as u64 * 8192;
    assert!(
        wal < fallback * 5 / 8,
        "the WAL grew to {wal} bytes (fallback checkpoint at {fallback}): it did not start again in time"
    );
    let stored: i64 = handle.call(|s| Ok(row_count(s, "notifications"))).await.unwrap();
    assert_eq!(stored, per_commit * commits);
}
