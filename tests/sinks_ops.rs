//! Operating the sinks: `replay` re-delivers exactly the stored notifications of a range to
//! the sinks asked for, and a configuration reload (SIGHUP) adds, changes and removes sinks
//! — or, for a broken file, changes nothing. Waits poll for an outcome with a deadline.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use cen_poller::cen::notification::format_timestamp;
use cen_poller::metrics::OutcomeLabels;
use cen_poller::simulate::SimConfig;
use chrono::{DateTime, TimeDelta, Utc};
use common::{Env, wait_for};
use serde_json::json;

fn poll_settings(now: DateTime<Utc>) -> String {
    let start = format_timestamp(now - TimeDelta::minutes(40));
    format!("interval = \"1s\"\nsettle = \"5s\"\nfirst_start = \"{start}\"")
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Ids in a JSON Lines file, with how often each occurs (a missing file is empty).
fn ids_in(path: &Path) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        *ids.entry(record["id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    ids
}

fn lines_in(path: &Path) -> usize {
    ids_in(path).values().sum()
}

fn outbox_rows(env: &Env, sink: &str) -> i64 {
    let db = rusqlite::Connection::open(env.dir.path().join("state.db")).unwrap();
    db.query_row("SELECT count(*) FROM outbox WHERE sink = ?1", [sink], |row| row.get(0)).unwrap()
}

const FILE_SINKS: &str = r#"
[[sinks]]
name = "copy"
type = "file"
path = "copy.jsonl"

[[sinks]]
name = "clearing"
type = "file"
path = "clearing.jsonl"
subjects = ["CLEARING"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_redelivers_exactly_the_range_to_the_sinks_asked_for() {
    let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let sim = SimConfig::spread(61, 300, now - TimeDelta::minutes(30), now - TimeDelta::minutes(1));
    let env = Env::start_with(sim, &poll_settings(now), FILE_SINKS).await;
    let dir = env.dir.path().to_owned();
    let (archive, copy, clearing) = (env.sink_path(), dir.join("copy.jsonl"), dir.join("clearing.jsonl"));
    let all = env.sim.expected_ids(now - TimeDelta::hours(1), now);
    let clearings = |from, to| -> Vec<String> {
        env.sim.items(from, to).into_iter().filter(|i| i.subject == "CLEARING").map(|i| i.id).collect()
    };
    let all_clearings = clearings(now - TimeDelta::hours(1), now);
    assert!(!all_clearings.is_empty());
    let daemon = env.spawn_daemon();
    let delivered = wait_for(Duration::from_secs(60), || {
        lines_in(&archive) == all.len() && lines_in(&copy) == all.len() && lines_in(&clearing) == all_clearings.len()
    })
    .await;
    assert!(delivered, "first delivery incomplete:\n{}", env.log_tail(30));

    // One sink, part of the stream.
    let (from, to) = (now - TimeDelta::minutes(20), now - TimeDelta::minutes(10));
    let range = env.sim.expected_ids(from, to);
    assert!(range.len() > 50 && range.len() < 250, "{}", range.len());
    let text = format!("{}..{}", format_timestamp(from), format_timestamp(to));
    let out = env.run(&["replay", &text, "--sink", "copy"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with(&format!("replay {text}:\n  copy  {} queued\n", range.len())), "{stdout}");
    assert_eq!(outbox_rows(&env, "archive") + outbox_rows(&env, "clearing"), 0, "only copy was asked for");
    let again = wait_for(Duration::from_secs(30), || lines_in(&copy) == all.len() + range.len()).await;
    assert!(again, "copy holds {} lines:\n{}", lines_in(&copy), env.log_tail(30));
    let copy_ids = ids_in(&copy);
    for id in &all {
        let want = if range.contains(id) { 2 } else { 1 };
        assert_eq!(copy_ids.get(id), Some(&want), "{id}");
    }
    assert_eq!(copy_ids.len(), all.len());
    assert!(ids_in(&archive).values().all(|&n| n == 1));

    // Every sink, each with its filter: another part.
    let (from2, to2) = (now - TimeDelta::minutes(30), now - TimeDelta::minutes(25));
    let range2 = env.sim.expected_ids(from2, to2);
    let range2_clearings = clearings(from2, to2);
    let text2 = format!("{}..{}", format_timestamp(from2), format_timestamp(to2));
    let out = env.run(&["replay", &text2]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    for (sink, n) in [("archive", range2.len()), ("copy", range2.len()), ("clearing", range2_clearings.len())] {
        assert!(stdout.contains(&format!("  {sink:<8}  {n} queued\n")), "{sink}: {stdout}");
    }
    let again = wait_for(Duration::from_secs(30), || {
        lines_in(&archive) == all.len() + range2.len()
            && lines_in(&copy) == all.len() + range.len() + range2.len()
            && lines_in(&clearing) == all_clearings.len() + range2_clearings.len()
    })
    .await;
    assert!(again, "the second replay was not delivered:\n{}", env.log_tail(30));
    let clearing_ids = ids_in(&clearing);
    for id in &all_clearings {
        let want = if range2_clearings.contains(id) { 2 } else { 1 };
        assert_eq!(clearing_ids.get(id), Some(&want), "{id}");
    }
    assert_eq!(clearing_ids.len(), all_clearings.len(), "only CLEARING reaches the clearing sink");

    // Before what state.keep holds: said, and nothing there to queue.
    let old =
        format!("{}..{}", format_timestamp(now - TimeDelta::days(30)), format_timestamp(now - TimeDelta::days(20)));
    let out = env.run(&["replay", &old, "--sink", "copy"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("copy  0 queued") && stdout.contains("state.keep"), "{stdout}");
    // Usage errors: exit 2, nothing queued.
    for args in [["replay", "1h", "--sink", "nope"].as_slice(), ["replay", "yesterday"].as_slice()] {
        let out = env.run(args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
    }
    let (status, _) = daemon.stop("TERM", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    assert_eq!(outbox_rows(&env, "copy"), 0);
}

/// A notification created now, with a marker making its id unique.
fn fresh(marker: &str, i: u64) -> serde_json::Value {
    json!({"subject": "CLEARING", "subscriptionName": "sim-clearing",
           "createdTimestamp": format_timestamp(Utc::now() - TimeDelta::seconds(10)),
           "content": {"transactionId": i, "marker": marker}})
}

/// Inserts `n` fresh notifications into the simulator; returns their ids.
fn insert(env: &Env, marker: &str, n: u64) -> Vec<String> {
    (0..n).map(|i| env.sim.insert(fresh(marker, i), Utc::now() - TimeDelta::hours(1)).unwrap().id).collect()
}

fn holds_all(path: &Path, ids: &[String]) -> bool {
    let held = ids_in(path);
    ids.iter().all(|id| held.contains_key(id))
}

fn holds_none(path: &Path, ids: &[String]) -> bool {
    let held = ids_in(path);
    !ids.iter().any(|id| held.contains_key(id))
}

const SECOND: &str = "\n[[sinks]]\nname = \"second\"\ntype = \"file\"\npath = \"second.jsonl\"\n";

/// `Running::reload` (what SIGHUP calls) with sinks added, changed, removed, and with files
/// that cannot be used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_changes_and_removes_sinks_and_a_broken_file_changes_nothing() {
    let now = Utc::now();
    let sim = SimConfig::spread(62, 20, now - TimeDelta::minutes(30), now - TimeDelta::minutes(1));
    let env = Env::start(sim, &poll_settings(now)).await;
    let dir = env.dir.path().to_owned();
    let base = std::fs::read_to_string(&env.config_path).unwrap();
    let (second, second_b) = (dir.join("second.jsonl"), dir.join("second-b.jsonl"));
    let initial = env.sim.expected_ids(now - TimeDelta::hours(1), now);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = cen_poller::service::start(&env.config(), shutdown.clone()).await.unwrap();
    let reloads =
        |outcome: &str| running.store.metrics().reloads.get_or_create(&OutcomeLabels { outcome: outcome.into() }).get();
    let names = || running.sinks().iter().map(|s| s.sink.name().to_owned()).collect::<Vec<_>>();
    assert!(wait_for(Duration::from_secs(30), || holds_all(&env.sink_path(), &initial)).await);

    // Added: it takes what is accepted from now on.
    std::fs::write(&env.config_path, format!("{base}{SECOND}")).unwrap();
    running.reload(&env.config_path);
    assert_eq!((reloads("ok"), reloads("error")), (1, 0));
    assert_eq!(names(), ["archive", "second"]);
    let a = insert(&env, "a", 10);
    let arrived = wait_for(Duration::from_secs(30), || holds_all(&env.sink_path(), &a) && holds_all(&second, &a)).await;
    assert!(arrived, "batch a did not reach both sinks");
    assert!(holds_none(&second, &initial), "a new sink gets what is accepted after the reload, no history");

    // Changed: the same sink, another file.
    std::fs::write(&env.config_path, format!("{base}{}", SECOND.replace("second.jsonl", "second-b.jsonl"))).unwrap();
    running.reload(&env.config_path);
    assert_eq!((reloads("ok"), reloads("error")), (2, 0));
    let b = insert(&env, "b", 10);
    let arrived =
        wait_for(Duration::from_secs(30), || holds_all(&env.sink_path(), &b) && holds_all(&second_b, &b)).await;
    assert!(arrived, "batch b did not reach the changed sink");
    assert!(holds_none(&second, &b), "the old settings are gone");

    // Broken: not TOML; then TOML with a command sink whose program does not exist.
    let good = std::fs::read_to_string(&env.config_path).unwrap();
    std::fs::write(&env.config_path, format!("{good}\n[[sinks]\nname = ")).unwrap();
    running.reload(&env.config_path);
    let missing = "\n[[sinks]]\nname = \"handler\"\ntype = \"command\"\ncommand = [\"./no-such-handler\"]\n";
    std::fs::write(&env.config_path, format!("{good}{missing}")).unwrap();
    running.reload(&env.config_path);
    assert_eq!((reloads("ok"), reloads("error")), (2, 2));
    assert_eq!(names(), ["archive", "second"], "still running on the old configuration");
    let c = insert(&env, "c", 10);
    let arrived =
        wait_for(Duration::from_secs(30), || holds_all(&env.sink_path(), &c) && holds_all(&second_b, &c)).await;
    assert!(arrived, "batch c did not reach the sinks of the old configuration");

    // Removed: nothing more is queued for it.
    std::fs::write(&env.config_path, &base).unwrap();
    running.reload(&env.config_path);
    assert_eq!((reloads("ok"), reloads("error")), (3, 2));
    assert_eq!(names(), ["archive"]);
    let d = insert(&env, "d", 10);
    assert!(wait_for(Duration::from_secs(30), || holds_all(&env.sink_path(), &d)).await);
    assert_eq!(outbox_rows(&env, "second"), 0);
    assert!(holds_none(&second_b, &d));

    shutdown.cancel();
    running.join(Duration::from_secs(10)).await;
    // Every sink got each notification once.
    assert!(ids_in(&env.sink_path()).values().all(|&n| n == 1));
    assert!(ids_in(&second).values().chain(ids_in(&second_b).values()).all(|&n| n == 1));
}

/// The same through the binary and a real SIGHUP: a sink added starts; a broken file is
/// logged and the daemon goes on with the sinks it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_a_sink_and_survives_a_broken_file() {
    let now = Utc::now();
    let sim = SimConfig::spread(63, 20, now - TimeDelta::minutes(30), now - TimeDelta::minutes(1));
    let env = Env::start(sim, &poll_settings(now)).await;
    let second = env.dir.path().join("second.jsonl");
    let base = std::fs::read_to_string(&env.config_path).unwrap();
    let initial = env.sim.expected_ids(now - TimeDelta::hours(1), now);
    let daemon = env.spawn_daemon();
    assert!(wait_for(Duration::from_secs(30), || holds_all(&env.sink_path(), &initial)).await, "{}", env.log_tail(20));

    std::fs::write(&env.config_path, format!("{base}{SECOND}")).unwrap();
    daemon.signal("HUP");
    assert!(
        wait_for(Duration::from_secs(10), || {
            let log = env.log_tail(50);
            log.contains("SIGHUP: configuration reloaded") && log.contains("added second, changed none, removed none")
        })
        .await,
        "{}",
        env.log_tail(20)
    );
    let a = insert(&env, "a", 10);
    let arrived = wait_for(Duration::from_secs(30), || holds_all(&env.sink_path(), &a) && holds_all(&second, &a)).await;
    assert!(arrived, "{}", env.log_tail(20));

    std::fs::write(&env.config_path, "this is not toml [").unwrap();
    daemon.signal("HUP");
    let logged = wait_for(Duration::from_secs(10), || env.log_tail(50).contains("still running on the old one")).await;
    assert!(logged, "{}", env.log_tail(20));
    let b = insert(&env, "b", 10);
    let arrived = wait_for(Duration::from_secs(30), || holds_all(&env.sink_path(), &b) && holds_all(&second, &b)).await;
    assert!(arrived, "{}", env.log_tail(20));
    let (status, _) = daemon.stop("TERM", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
}
