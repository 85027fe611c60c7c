//! The `command` sink end to end: the daemon binary polls the simulator and runs a shell
//! script per notification (written to the test's temp dir). Each run files what it read on
//! standard input under a name of its own, so a record handed over twice shows up twice.
//! Cases: every record arrives once; a failing run is retried and then succeeds; a hung run
//! is killed (with its children) at the timeout and retried. Waits poll for an outcome.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use cen_poller::cen::notification::format_timestamp;
use cen_poller::simulate::SimConfig;
use chrono::{TimeDelta, Utc};
use common::{Env, wait_for};

/// An environment whose daemon polls `count` notifications and hands each to
/// `handler.sh` (written from `script`, after a line that sets `D` to the temp dir), with
/// `timeout` and quick retries.
async fn env_for(seed: u64, count: u64, script: &str, timeout: &str) -> (Env, Vec<String>) {
    let now = Utc::now();
    let sim = SimConfig::spread(seed, count, now - TimeDelta::minutes(30), now - TimeDelta::minutes(1));
    let start = format_timestamp(now - TimeDelta::minutes(40));
    let poll = format!("interval = \"1s\"\nsettle = \"5s\"\nfirst_start = \"{start}\"");
    let extra = format!(
        r#"[delivery]
backoff_initial = "50ms"
backoff_max = "200ms"

[[sinks]]
name = "handler"
type = "command"
command = ["./handler.sh", "--stdin"]
timeout = "{timeout}"
"#
    );
    let env = Env::start_with(sim, &poll, &extra).await;
    let dir = env.dir.path();
    for sub in ["records", "attempts", "children"] {
        std::fs::create_dir(dir.join(sub)).unwrap();
    }
    let handler = dir.join("handler.sh");
    std::fs::write(&handler, format!("#!/bin/sh\nD='{}'\n{script}", dir.display())).unwrap();
    std::fs::set_permissions(&handler, std::fs::Permissions::from_mode(0o755)).unwrap();
    let expected = env.sim.expected_ids(now - TimeDelta::hours(1), Utc::now());
    assert_eq!(expected.len() as u64, count);
    (env, expected)
}

/// Standard input of a run, filed under `records/ID.PID` once it is complete.
const FILE_RECORD: &str = r#"[ "$1" = --stdin ] || exit 9
cat > "$D/records/.$CEN_NOTIFICATION_ID.$$"
mv "$D/records/.$CEN_NOTIFICATION_ID.$$" "$D/records/$CEN_NOTIFICATION_ID.$$"
"#;

/// Every complete record filed, per id: checks that each file is the SPEC 6 record of
/// the id in its name (one line) and counts them.
fn filed(dir: &Path) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("records")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with('.') {
            continue;
        }
        let id = name.split('.').next().unwrap().to_owned();
        let text = std::fs::read_to_string(dir.join("records").join(&name)).unwrap();
        assert!(text.ends_with('\n') && text.lines().count() == 1, "{name}: {text:?}");
        let record: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(record["id"], id.as_str(), "{name}");
        assert!(record["notification"].is_object());
        *ids.entry(id).or_default() += 1;
    }
    ids
}

/// Runs per id, from the files the script leaves in `attempts/`.
fn attempts(dir: &Path) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("attempts")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        *ids.entry(name.split('.').next().unwrap().to_owned()).or_default() += 1;
    }
    ids
}

fn assert_each_once(filed: &BTreeMap<String, usize>, expected: &[String]) {
    let missing = expected.iter().filter(|id| !filed.contains_key(*id)).count();
    assert_eq!(missing, 0, "{missing} of {} never handed over", expected.len());
    let twice: Vec<_> = filed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handed over more than once: {twice:?}");
    assert_eq!(filed.len(), expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_arrives_on_standard_input_once() {
    let (env, expected) = env_for(51, 200, FILE_RECORD, "10s").await;
    let dir = env.dir.path();
    let started = Instant::now();
    let daemon = env.spawn_daemon();
    let done = wait_for(Duration::from_secs(60), || filed(dir).len() >= expected.len()).await;
    assert!(done, "{} of {} handed over:\n{}", filed(dir).len(), expected.len(), env.log_tail(30));
    println!("{} runs of the command in {:.2}s", expected.len(), started.elapsed().as_secs_f64());
    let (status, _) = daemon.stop("TERM", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    assert_each_once(&filed(dir), &expected);
}

/// A run that exits 1 is retried; the next run succeeds; its standard error is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_is_retried_and_then_succeeds() {
    let script = format!(
        r#"if [ ! -e "$D/attempts/$CEN_NOTIFICATION_ID.1" ]; then
  : > "$D/attempts/$CEN_NOTIFICATION_ID.1"
  echo "ledger is locked, try again" >&2
  exit 1
fi
: > "$D/attempts/$CEN_NOTIFICATION_ID.2"
{FILE_RECORD}"#
    );
    let (env, expected) = env_for(52, 40, &script, "10s").await;
    let dir = env.dir.path();
    let daemon = env.spawn_daemon();
    let done = wait_for(Duration::from_secs(60), || filed(dir).len() >= expected.len()).await;
    assert!(done, "{} of {} handed over:\n{}", filed(dir).len(), expected.len(), env.log_tail(30));
    let (status, _) = daemon.stop("TERM", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    assert_each_once(&filed(dir), &expected);
    let runs = attempts(dir);
    assert!(runs.values().all(|&n| n == 2), "two runs each: {runs:?}");
    let log = std::fs::read_to_string(env.log_path()).unwrap();
    assert!(log.contains("ledger is locked, try again"), "standard error is logged:\n{}", env.log_tail(20));
}

/// A run that hangs is killed at the timeout — with the child it started — and retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_run_is_killed_at_its_timeout_and_retried() {
    let script = format!(
        r#"if [ ! -e "$D/attempts/$CEN_NOTIFICATION_ID.1" ]; then
  : > "$D/attempts/$CEN_NOTIFICATION_ID.1"
  sleep 60 &
  echo $! > "$D/children/$CEN_NOTIFICATION_ID"
  wait
fi
: > "$D/attempts/$CEN_NOTIFICATION_ID.2"
{FILE_RECORD}"#
    );
    let (env, expected) = env_for(53, 12, &script, "400ms").await;
    let dir = env.dir.path();
    let started = Instant::now();
    let daemon = env.spawn_daemon();
    let done = wait_for(Duration::from_secs(60), || filed(dir).len() >= expected.len()).await;
    assert!(done, "{} of {} handed over:\n{}", filed(dir).len(), expected.len(), env.log_tail(30));
    let took = started.elapsed();
    println!("{} hung runs killed and retried; all handed over in {:.2}s", expected.len(), took.as_secs_f64());
    let (status, _) = daemon.stop("TERM", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    assert_each_once(&filed(dir), &expected);
    assert!(attempts(dir).values().all(|&n| n == 2));
    // The `sleep 60` of every hung run was killed with it (gone, or a zombie for init).
    for entry in std::fs::read_dir(dir.join("children")).unwrap() {
        let pid = std::fs::read_to_string(entry.unwrap().path()).unwrap().trim().to_owned();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").split_whitespace().next().unwrap_or("");
        assert!(stat.is_empty() || state == "Z", "the hung run's child {pid} is still running: {stat}");
    }
    let log = std::fs::read_to_string(env.log_path()).unwrap();
    assert!(!log.contains("panicked"), "{log}");
}
