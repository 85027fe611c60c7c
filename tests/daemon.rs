//! Black-box tests of the `cen-poller` binary as an operator runs it: the daemon killed
//! with SIGKILL at random moments (G4), a torn last line in the file sink, `--backfill`
//! alone and next to the daemon (SPEC 4), `status`, and stopping on SIGTERM/SIGINT, busy or
//! still starting. The simulator runs in the test's runtime; the binary talks to it over
//! `http://127.0.0.1:PORT`. Waits poll for an outcome with a deadline; the only sleeps are
//! the crash test's random kill points.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::time::{Duration, Instant};

use cen_poller::cen::notification::format_timestamp;
use cen_poller::simulate::{RequestInfo, SimConfig, Simulator};
use cen_poller::store::SOURCE_CEN;
use cen_poller::store::sqlite::Store;
use chrono::{DateTime, TimeDelta, Utc};
use common::{Env, assert_exactly_once, wait_for};
use rand::{Rng, SeedableRng};

/// The file sink's batch: the most one kill can make it write twice.
const FILE_SINK_BATCH: usize = 1000;

/// `[poll]` for a daemon that starts `first_start_ago` back and polls every second.
fn poll_settings(first_start_ago: TimeDelta) -> String {
    let start = format_timestamp(Utc::now() - first_start_ago);
    format!("interval = \"1s\"\nsettle = \"5s\"\nfirst_start = \"{start}\"")
}

/// Now, to the whole second (ranges on the command line read better that way).
fn now_s() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(out: &Output) -> String {
    format!("exit {:?}\n--- stdout\n{}--- stderr\n{}", out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// The `N` of "N new," in a backfill summary.
fn new_in_summary(out: &Output) -> u64 {
    let stdout = text(&out.stdout);
    let words: Vec<&str> = stdout.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[1] == "new,")
        .and_then(|w| w[0].parse().ok())
        .unwrap_or_else(|| panic!("no \"N new,\" in the summary:\n{}", describe(out)))
}

fn store_of(env: &Env) -> Store {
    Store::open(&env.dir.path().join("state.db")).unwrap()
}

/// Waits until the running daemon has ended a poll cycle: its watermark is committed only
/// then, which can come after the sink is already complete.
async fn until_a_poll_cycle_has_ended(env: &Env) {
    let cycled = wait_for(Duration::from_secs(60), || store_of(env).watermark().unwrap().is_some()).await;
    assert!(cycled, "the daemon never completed a poll cycle:\n{}", env.log_tail(30));
}

/// Every id in the store's seen set, with how often each occurs.
fn stored_ids(env: &Env) -> BTreeMap<String, usize> {
    let db = rusqlite::Connection::open(env.dir.path().join("state.db")).unwrap();
    let mut st = db.prepare("SELECT id FROM notifications").unwrap();
    let mut ids = BTreeMap::new();
    for id in st.query_map([], |row| row.get::<_, String>(0)).unwrap() {
        *ids.entry(id.unwrap()).or_default() += 1;
    }
    ids
}

fn outbox_rows(env: &Env) -> i64 {
    let db = rusqlite::Connection::open(env.dir.path().join("state.db")).unwrap();
    db.query_row("SELECT count(*) FROM outbox", [], |row| row.get(0)).unwrap()
}

/// G4: `kill -9` at random moments of a large catch-up, each time restarted, loses nothing;
/// the store holds each notification once; the file sink repeats at most one batch per
/// kill; and the last run stops cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing() {
    const TOTAL: u64 = 30_000;
    const KILLS: usize = 6;
    let seed: u64 = std::env::var("CEN_TEST_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("kill points from seed {seed} (CEN_TEST_KILL_SEED={seed} repeats them)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let now = Utc::now();
    let sim = SimConfig::spread(31, TOTAL, now - TimeDelta::minutes(50), now - TimeDelta::minutes(1));
    let env = Env::start(sim, &poll_settings(TimeDelta::hours(1))).await;
    let expected = env.sim.expected_ids(now - TimeDelta::hours(2), Utc::now());
    assert_eq!(expected.len() as u64, TOTAL);
    let started = Instant::now();
    let mut tail = env.sink_tail();

    for k in 1..=KILLS {
        let mut daemon = env.spawn_daemon();
        let after = rng.random_range(100..=1500);
        // The kill point, not a synchronisation: whatever the daemon is doing then.
        tokio::time::sleep(Duration::from_millis(after)).await;
        if let Some(status) = daemon.exited() {
            panic!("the daemon exited by itself ({status}) before kill {k}:\n{}", env.log_tail(30));
        }
        daemon.kill9().await;
        tail.poll();
        println!(
            "kill {k}: {after} ms after start; {} of {TOTAL} in the sink, {} lines, {} duplicates, {} torn",
            tail.count_of(&expected),
            tail.lines,
            tail.duplicates(),
            tail.bad_lines
        );
    }

    let last = env.spawn_daemon();
    let last_started = Instant::now();
    let complete = wait_for(Duration::from_secs(90), || {
        tail.poll();
        tail.count_of(&expected) == expected.len()
    })
    .await;
    assert!(
        complete,
        "after the last restart only {} of {TOTAL} reached the sink:\n{}",
        tail.count_of(&expected),
        env.log_tail(30)
    );
    println!(
        "the last run completed the sink in {:.1}s ({:.1}s since the first start)",
        last_started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    // The runs before this one may have stored and delivered everything.
    until_a_poll_cycle_has_ended(&env).await;
    let (status, took) = last.stop("TERM", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "SIGTERM: {status}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    println!("SIGTERM: exit 0 after {} ms", took.as_millis());

    // Nothing lost, nothing the simulator does not have.
    tail.poll();
    let expected_set: BTreeSet<&String> = expected.iter().collect();
    let strangers: Vec<_> = tail.ids.keys().filter(|id| !expected_set.contains(id)).collect();
    assert!(strangers.is_empty(), "unknown ids in the sink: {strangers:?}");
    // The store holds each exactly once, and has nothing left to deliver.
    let stored = stored_ids(&env);
    assert_eq!(stored.len(), expected.len());
    assert!(stored.values().all(|&n| n == 1));
    assert!(expected.iter().all(|id| stored.contains_key(id)));
    let store = store_of(&env);
    assert_eq!(store.count_created(SOURCE_CEN, 0, i64::MAX, &[]).unwrap(), TOTAL);
    assert!(store.watermark().unwrap().is_some());
    assert_eq!(outbox_rows(&env), 0, "the outbox is empty after SIGTERM");
    // A repeat needs a batch written and not acknowledged when the kill came.
    let duplicates = tail.duplicates();
    println!(
        "{KILLS} kills: {duplicates} duplicated lines ({:.0} per kill; bound {FILE_SINK_BATCH} per kill), {} torn lines",
        duplicates as f64 / KILLS as f64,
        tail.bad_lines
    );
    assert!(duplicates <= KILLS * FILE_SINK_BATCH, "{duplicates} duplicates after {KILLS} kills");
    assert!(tail.bad_lines <= KILLS, "at most one torn line per kill: {}", tail.bad_lines);
}

/// `--backfill FROM..TO`, `FROM..` and `24h` deliver exactly what was created in the range,
/// print the counts, never deliver twice, leave the watermark alone; `status` then shows
/// the counts per subject and path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_delivers_exactly_the_range_once_and_status_reports_it() {
    let t = now_s();
    let sim = SimConfig::spread(32, 3000, t - TimeDelta::minutes(180), t - TimeDelta::minutes(10));
    let env = Env::start(sim, &poll_settings(TimeDelta::minutes(15))).await;
    let all = env.sim.expected_ids(t - TimeDelta::hours(4), t);
    assert_eq!(all.len(), 3000);

    // FROM..TO over part of the stream.
    let (from, to) = (t - TimeDelta::minutes(150), t - TimeDelta::minutes(90));
    let range = format!("{}..{}", format_timestamp(from), format_timestamp(to));
    let first = env.sim.expected_ids(from, to);
    assert!(first.len() > 500 && first.len() < 2500, "{}", first.len());
    let out = env.run(&["--backfill", &range]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(new_in_summary(&out), first.len() as u64, "{}", describe(&out));
    assert!(text(&out.stdout).starts_with(&format!("backfill {range}: ")), "{}", describe(&out));
    assert_exactly_once(&env.sink_ids(), &first);
    assert_eq!(store_of(&env).watermark().unwrap(), None);

    // The same again: nothing new, nothing delivered.
    let size = std::fs::metadata(env.sink_path()).unwrap().len();
    let out = env.run(&["--backfill", &range]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(new_in_summary(&out), 0, "{}", describe(&out));
    assert_eq!(std::fs::metadata(env.sink_path()).unwrap().len(), size);

    // FROM.. : from there up to now minus settle.
    let from2 = t - TimeDelta::minutes(90);
    let second = env.sim.expected_ids(from2, Utc::now());
    let out = env.run(&["--backfill", &format!("{}..", format_timestamp(from2))]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(new_in_summary(&out), second.len() as u64, "{}", describe(&out));
    let so_far: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_exactly_once(&env.sink_ids(), &so_far);

    // 24h: the rest of the stream (everything before `from`).
    let out = env.run(&["--backfill", "24h"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(new_in_summary(&out), (all.len() - so_far.len()) as u64, "{}", describe(&out));
    assert_exactly_once(&env.sink_ids(), &all);
    assert_eq!(store_of(&env).watermark().unwrap(), None, "a backfill never moves the daemon's watermark");

    // status --json: counts per subject and per path, nothing waiting.
    let out = env.run(&["status", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{}", describe(&out)));
    let mut by_subject: BTreeMap<String, u64> = BTreeMap::new();
    for item in env.sim.items(t - TimeDelta::hours(4), t) {
        *by_subject.entry(item.subject).or_default() += 1;
    }
    assert_eq!(by_subject.len(), 7, "the stream has every subject");
    for period in ["last_24h", "last_7d"] {
        let c = &status[period];
        assert_eq!(c["total"], 3000, "{period}: {status:#}");
        assert_eq!(c["by_path"], serde_json::json!({"backfill": 3000}), "{status:#}");
        assert_eq!(
            serde_json::from_value::<BTreeMap<String, u64>>(c["by_subject"].clone()).unwrap(),
            by_subject,
            "{period}"
        );
        assert_eq!(c["by_source"], serde_json::json!({"mastercard-cen": 3000}));
    }
    let backlog: BTreeMap<String, u64> = serde_json::from_value(status["backlog"].clone()).unwrap();
    assert_eq!(backlog.values().sum::<u64>(), 0, "{status:#}");
    assert_eq!(status["dead_letters"], serde_json::json!({}));
    assert_eq!(status["watermark"], serde_json::Value::Null);

    // The terminal form says the same.
    let out = env.run(&["status"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("backfill 3000"), "{stdout}");
    assert!(stdout.contains("sink backlog  none"), "{stdout}");
}

/// Ranges the API cannot serve and ranges that do not parse are refused with exit 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_refuses_ranges_beyond_retention_and_malformed_ones() {
    let sim = SimConfig::bounded(33, Utc::now() - TimeDelta::minutes(30), 1.0, 10);
    let env = Env::start(sim, &poll_settings(TimeDelta::minutes(15))).await;
    let eight_days = format!(
        "{}..{}",
        format_timestamp(Utc::now() - TimeDelta::days(8)),
        format_timestamp(Utc::now() - TimeDelta::days(6))
    );
    let open_eight_days = format!("{}..", format_timestamp(Utc::now() - TimeDelta::days(8)));
    for range in ["8d", eight_days.as_str(), open_eight_days.as_str()] {
        let out = env.run(&["--backfill", range]).await;
        assert_eq!(out.status.code(), Some(2), "{range}: {}", describe(&out));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("7-day retention"), "{range}: {stderr}");
    }
    for range in [
        "yesterday",
        "2026-13-40T00:00:00Z..",
        "x..y",
        "..2026-11-20T00:00:00Z",
        "2026-11-21T00:00:00Z..2026-11-20T00:00:00Z",
        "",
    ] {
        let out = env.run(&["--backfill", range]).await;
        assert_eq!(out.status.code(), Some(2), "{range:?}: {}", describe(&out));
        assert!(!out.stderr.is_empty(), "{range:?}: says why");
    }
    assert_eq!(env.sim.stats().notification_requests, 0, "nothing was fetched");
    assert!(env.sink_ids().is_empty());
}

/// A window the API refuses is listed in the summary and the run exits 3; the other windows
/// are still read and delivered, and running it again finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_with_a_failing_window_exits_3_and_names_it() {
    let t = now_s();
    let (from, to) = (t - TimeDelta::minutes(100), t - TimeDelta::minutes(10));
    let sim = SimConfig::spread(34, 1800, from, to);
    let env = Env::start(sim, &poll_settings(TimeDelta::minutes(15))).await;
    let all = env.sim.expected_ids(from, to);
    // max_window is 1h: the range is read as [from, from+1h) and [from+1h, to). Once the
    // second window's first page has been served, the gateway refuses everything (a 403 is
    // not retried, which keeps the test quick; a 5xx would take the retries first).
    let second_window = from + TimeDelta::hours(1);
    env.sim.set_request_hook(move |req: &RequestInfo, sim: &Simulator| {
        if req.start >= second_window {
            sim.set_auth_failure(Some((403, "PERMISSION_DENIED")));
        }
    });
    let range = format!("{}..{}", format_timestamp(from), format_timestamp(to));
    let out = env.run(&["--backfill", &range]).await;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stdout = text(&out.stdout);
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAILED")).collect();
    assert_eq!(failed.len(), 1, "one failed window is listed:\n{}", describe(&out));
    let w2 = format!("{}..{}", format_timestamp(second_window), format_timestamp(to));
    assert!(failed[0].starts_with(&format!("FAILED {w2}: ")), "{}", failed[0]);
    assert!(failed[0].contains("PERMISSION_DENIED"), "{}", failed[0]);
    // The first window is complete; nothing outside the range arrived.
    let sink = env.sink_ids();
    let first_window = env.sim.expected_ids(from, second_window);
    assert!(first_window.iter().all(|id| sink.contains_key(id)));
    assert!(sink.len() < all.len(), "the second window is incomplete");
    assert!(sink.keys().all(|id| all.contains(id)));
    assert!(sink.values().all(|&n| n == 1));

    // The API is back: the same command finishes the range, delivering only what was missing.
    env.sim.clear_request_hook();
    env.sim.set_auth_failure(None);
    let before = sink.len() as u64;
    let out = env.run(&["--backfill", &range]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(new_in_summary(&out), all.len() as u64 - before);
    assert!(!text(&out.stdout).contains("FAILED"));
    assert_exactly_once(&env.sink_ids(), &all);
}

/// SIGTERM and SIGINT stop a busy daemon with exit 0 within seconds, and a clean stop
/// repeats nothing: the batch in flight is acknowledged before the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_stop_the_daemon_cleanly() {
    let now = Utc::now();
    let sim = SimConfig::spread(35, 8000, now - TimeDelta::minutes(50), now - TimeDelta::minutes(1));
    let env = Env::start(sim, &poll_settings(TimeDelta::hours(1))).await;
    let expected = env.sim.expected_ids(now - TimeDelta::hours(2), Utc::now());
    let mut tail = env.sink_tail();
    for signal in ["TERM", "INT"] {
        let daemon = env.spawn_daemon();
        // Stop it while it works: once the first records (or all) are in the sink.
        let before = tail.lines;
        let working = wait_for(Duration::from_secs(30), || {
            tail.poll();
            tail.lines > before || tail.count_of(&expected) == expected.len()
        })
        .await;
        assert!(working, "nothing delivered:\n{}", env.log_tail(30));
        let (status, took) = daemon.stop(signal, Duration::from_secs(10)).await;
        tail.poll();
        println!(
            "SIG{signal}: exit {:?} after {} ms, {} of {} delivered",
            status.code(),
            took.as_millis(),
            tail.count_of(&expected),
            expected.len()
        );
        assert_eq!(status.code(), Some(0), "SIG{signal}: {status}");
        assert!(took < Duration::from_secs(5), "SIG{signal} took {took:?}");
    }
    // A last run finishes; the clean stops left nothing to repeat.
    let daemon = env.spawn_daemon();
    let complete = wait_for(Duration::from_secs(60), || {
        tail.poll();
        tail.count_of(&expected) == expected.len()
    })
    .await;
    assert!(complete, "{}", env.log_tail(30));
    let (status, _) = daemon.stop("TERM", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    tail.poll();
    assert_eq!(tail.duplicates(), 0, "a clean stop repeats nothing");
    assert_eq!(tail.bad_lines, 0);
    assert_exactly_once(&tail.ids, &expected);
}

/// A daemon still starting (here: waiting for its configuration file, a FIFO the test
/// has not written yet) already catches SIGTERM and SIGINT, and stops with exit 0 once up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_during_start_up_is_an_orderly_stop() {
    let sim = SimConfig::bounded(36, Utc::now() - TimeDelta::minutes(30), 1.0, 100);
    let env = Env::start(sim, &poll_settings(TimeDelta::minutes(15))).await;
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    for (signal, number) in [("TERM", 15), ("INT", 2)] {
        let fifo = env.dir.path().join(format!("config-{signal}.toml"));
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let mut daemon = env.spawn_daemon_with(&fifo);
        let catching = wait_for(Duration::from_secs(10), || daemon.catches(number)).await;
        assert!(catching, "SIG{signal} is not caught while the daemon reads its configuration");
        assert!(daemon.exited().is_none());
        daemon.signal(signal);
        // Now let the start-up go on: the configuration arrives (opening a FIFO for writing
        // waits for its reader).
        let writer = {
            let (fifo, config) = (fifo.clone(), config.clone());
            tokio::task::spawn_blocking(move || std::fs::write(fifo, config))
        };
        let exit = tokio::time::timeout(Duration::from_secs(15), daemon.child.wait()).await;
        // Should the daemon have died before opening the FIFO, open it for reading too, so
        // that the writer is not left waiting forever.
        let unblock = std::fs::OpenOptions::new().read(true).write(true).open(&fifo);
        writer.await.unwrap().unwrap();
        drop(unblock);
        let status = exit.unwrap_or_else(|_| panic!("SIG{signal} during start-up: still running")).unwrap();
        assert_eq!(status.code(), Some(0), "SIG{signal} during start-up: {status}\n{}", env.log_tail(20));
        assert!(env.log_tail(20).contains(&format!("SIG{signal}: finishing the current step")), "{}", env.log_tail(20));
    }
}

/// A file sink whose last line was torn by a kill in the middle of a write: the next
/// delivery starts on a line of its own, so no record is glued to the fragment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_line_in_the_file_sink_swallows_no_record() {
    let now = Utc::now();
    let sim = SimConfig::bounded(37, now - TimeDelta::minutes(30), 1.0, 50);
    let env = Env::start(sim, &poll_settings(TimeDelta::minutes(15))).await;
    let expected = env.sim.expected_ids(now - TimeDelta::hours(1), Utc::now());
    std::fs::write(env.sink_path(), "{\"id\":\"0123\",\"source\":\"mastercard-c").unwrap();
    let out = env.run(&["--backfill", "1h"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let mut tail = env.sink_tail();
    tail.poll();
    assert_eq!(tail.bad_lines, 1, "the fragment stays one broken line");
    assert_exactly_once(&tail.ids, &expected);
}

/// SPEC 4: a backfill may run while the daemon runs on the same database and file; each
/// notification reaches the sink once, by whichever path saw it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_while_the_daemon_runs_delivers_each_notification_once() {
    let now = Utc::now();
    let sim = SimConfig::spread(38, 6000, now - TimeDelta::minutes(50), now - TimeDelta::minutes(1));
    let env = Env::start(sim, &poll_settings(TimeDelta::hours(1))).await;
    let expected = env.sim.expected_ids(now - TimeDelta::hours(2), Utc::now());
    let mut tail = env.sink_tail();
    let daemon = env.spawn_daemon();
    let working = wait_for(Duration::from_secs(30), || {
        tail.poll();
        tail.lines > 0
    })
    .await;
    assert!(working, "{}", env.log_tail(30));
    let from = format_timestamp(now - TimeDelta::minutes(55));
    let out = env.run(&["--backfill", &format!("{from}..")]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let backfilled = new_in_summary(&out);
    let complete = wait_for(Duration::from_secs(60), || {
        tail.poll();
        tail.count_of(&expected) == expected.len()
    })
    .await;
    assert!(complete, "{}", env.log_tail(30));
    // The backfill may have delivered the last of it.
    until_a_poll_cycle_has_ended(&env).await;
    let (status, _) = daemon.stop("TERM", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    tail.poll();
    println!("daemon and backfill together: {backfilled} of {} first seen by the backfill", expected.len());
    assert_eq!(tail.bad_lines, 0);
    assert_exactly_once(&tail.ids, &expected);
    let out = env.run(&["status", "--json"]).await;
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_path = &status["last_24h"]["by_path"];
    let count = |path: &str| by_path[path].as_u64().unwrap_or(0);
    assert_eq!(count("backfill"), backfilled, "{status:#}");
    assert_eq!(count("pull") + backfilled, expected.len() as u64, "{status:#}");
    assert!(store_of(&env).watermark().unwrap().is_some());
}
