//! The audit (SPEC 12) against the simulator: what the sliding window missed is listed
//! exactly, repaired once as `audit` (by the command and by the daemon's schedule), a
//! second audit finds nothing, an audit of a week costs a few hundred requests, and faults
//! lose nothing.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use cen_poller::cen::notification::format_timestamp;
use cen_poller::poll::audit::audit;
use cen_poller::poll::range::Range;
use cen_poller::simulate::{RequestInfo, SimConfig, Simulator};
use chrono::{TimeDelta, Utc};
use common::{Env, assert_exactly_once, token, wait_for};

/// Lookback 2 minutes; `first_start` one hour back, so the first cycle reads the stream.
fn poll_settings() -> String {
    let start = format_timestamp(Utc::now() - TimeDelta::minutes(61));
    format!("interval = \"1s\"\nlookback = \"2m\"\nsettle = \"5s\"\npage_size = 200\nfirst_start = \"{start}\"")
}

/// 1200 notifications from 40 to 20 minutes ago, a tenth of them visible only an hour after
/// their creation: after the API's clock moves on by 65 minutes, each is far behind the
/// 2-minute lookback.
fn late_stream(seed: u64) -> SimConfig {
    let mut sim = SimConfig::bounded(seed, Utc::now() - TimeDelta::minutes(40), 1.0, 1200);
    sim.late_fraction = 0.1;
    sim.late_by = Duration::from_secs(3600);
    sim
}

/// Polls before and after the API's clock moves on by 65 minutes; returns the ids the
/// polling missed (visible now, not visible when it read their part).
async fn poll_past_the_late_ones(env: &Env) -> BTreeSet<String> {
    let store = env.store();
    let poller = env.poller(&store);
    let from = Utc::now() - TimeDelta::hours(2);
    poller.cycle(&token()).await.unwrap();
    let seen: BTreeSet<String> = env.sim.expected_ids(from, Utc::now()).into_iter().collect();
    assert!(seen.len() < 1200 && seen.len() > 900, "{} visible before", seen.len());
    env.sim.set_clock_skew(65 * 60 * 1000);
    poller.cycle(&token()).await.unwrap();
    poller.cycle(&token()).await.unwrap();
    env.deliver_all(&store).await;
    let all: BTreeSet<String> = env.sim.expected_ids(from, Utc::now()).into_iter().collect();
    assert_eq!(all.len(), 1200);
    let missed: BTreeSet<String> = all.difference(&seen).cloned().collect();
    let sink: BTreeSet<String> = env.sink_ids().into_keys().collect();
    assert_eq!(sink, seen, "polling delivered exactly what was visible in time");
    missed
}

fn json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_lists_exactly_what_polling_missed_and_repair_delivers_it_once() {
    let env = Env::start(late_stream(31), &poll_settings()).await;
    let missed = poll_past_the_late_ones(&env).await;
    assert!(missed.len() > 50, "{} missed", missed.len());

    let listed = env.run(&["audit", "--json"]).await;
    assert_eq!(listed.status.code(), Some(4), "{}", String::from_utf8_lossy(&listed.stderr));
    let report = json(&listed);
    let ids: BTreeSet<String> =
        report["missing"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, missed, "listed exactly the missed ones");
    let first = &report["missing"][0];
    assert!(first["subject"].is_string() && first["created_timestamp"].is_string(), "{first}");
    assert_eq!(env.sink_ids().len(), 1200 - missed.len(), "listing delivers nothing");

    // The text form names each missing notification.
    let text = env.run(&["audit"]).await;
    assert_eq!(text.status.code(), Some(4));
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert_eq!(text.lines().filter(|l| l.starts_with("MISSING ")).count(), missed.len(), "{text}");
    assert!(text.contains("requests"), "{text}");

    let store = env.store();
    let watermark = store.watermark().await.unwrap();
    let repaired = env.run(&["audit", "--repair", "--json"]).await;
    assert_eq!(repaired.status.code(), Some(0), "{}", String::from_utf8_lossy(&repaired.stderr));
    assert_eq!(store.watermark().await.unwrap(), watermark, "an audit never moves the watermark");
    assert_eq!(json(&repaired)["missing"].as_array().unwrap().len(), missed.len());
    let all = env.sim.expected_ids(Utc::now() - TimeDelta::hours(2), Utc::now());
    assert_exactly_once(&env.sink_ids(), &all);
    let records = std::fs::read_to_string(env.sink_path()).unwrap();
    let by_audit: BTreeSet<String> = records
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["received_via"] == "audit")
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(by_audit, missed, "the repaired ones, and only they, came by audit");

    let again = env.run(&["audit", "--json"]).await;
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(json(&again)["missing"].as_array().unwrap().len(), 0);
    // The watermark is the poll's alone; status shows the last audit.
    let status = json(&env.run(&["status", "--json"]).await);
    assert_eq!(status["last_audit"]["outcome"], "ok", "{status}");
    assert_eq!(status["last_audit"]["missing"], 0);
    assert_eq!(status["last_7d"]["by_path"]["audit"], missed.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_audit_repairs_what_polling_missed() {
    let env = Env::start_with(late_stream(32), &poll_settings(), "[audit]\nschedule = \"*/2 * * * * *\"\n").await;
    let from = Utc::now() - TimeDelta::hours(2);
    let daemon = env.spawn_daemon();
    let visible: BTreeSet<String> = env.sim.expected_ids(from, Utc::now()).into_iter().collect();
    assert!(
        wait_for(Duration::from_secs(60), || env.sink_ids().len() >= visible.len()).await,
        "polling delivered {} of {}; log:\n{}",
        env.sink_ids().len(),
        visible.len(),
        env.log_tail(30)
    );
    env.sim.set_clock_skew(65 * 60 * 1000);
    let all = env.sim.expected_ids(from, Utc::now());
    assert!(
        wait_for(Duration::from_secs(60), || env.sink_ids().len() >= all.len()).await,
        "{} of {} delivered; log:\n{}",
        env.sink_ids().len(),
        all.len(),
        env.log_tail(30)
    );
    let (status, _) = daemon.stop("TERM", Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    assert_exactly_once(&env.sink_ids(), &all);
    let log = std::fs::read_to_string(env.log_path()).unwrap();
    assert!(log.contains("audit found"), "a warning names what the audit found:\n{}", env.log_tail(30));
    let report = json(&env.run(&["status", "--json"]).await);
    assert_eq!(report["last_audit"]["by"], "daemon", "{report}");
    let via_audit = report["last_7d"]["by_path"]["audit"].as_u64().unwrap();
    assert_eq!(via_audit as usize, all.len() - visible.len(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_of_a_week_with_nothing_missing_costs_a_few_hundred_requests() {
    let now = Utc::now();
    // 20,000 notifications over the week, all stored by a poll that started a week back.
    let start = now - TimeDelta::days(7) + TimeDelta::minutes(10);
    let sim = SimConfig::bounded(33, start, 20_000.0 / (7.0 * 86_400.0 - 7200.0), 20_000);
    let poll = "interval = \"1s\"\nlookback = \"15m\"\nsettle = \"5s\"\npage_size = 200\nfirst_start = \"retention\"";
    let env = Env::start(sim, poll).await;
    let store = env.store();
    let poller = env.poller(&store);
    assert_eq!(poller.cycle(&token()).await.unwrap().stats.new, 20_000);
    env.sim.reset_stats();
    let output = env.run(&["audit", "--json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let report = json(&output);
    let requests = env.sim.stats().notification_requests;
    assert_eq!(report["missing"].as_array().unwrap().len(), 0);
    assert_eq!(report["requests"], requests, "the summary counts what the API saw");
    assert!((150..=300).contains(&requests), "an audit of 7 days made {requests} requests");
    assert!(env.sim.stats().notifications_served < 200, "{:?}", env.sim.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_5xx_during_an_audit_lose_nothing_and_exhausted_retries_exit_3() {
    let env = Env::start(late_stream(34), &poll_settings()).await;
    let missed = poll_past_the_late_ones(&env).await;
    let store = env.store();
    let poller = env.poller(&store);
    let now = env.sim.now();
    let range = Range { from: now - TimeDelta::days(7), to: now };
    // Bursts at the start and in the middle.
    env.sim.fail_next(3, 503);
    let fired = std::sync::atomic::AtomicBool::new(false);
    env.sim.set_request_hook(move |req: &RequestInfo, sim: &Simulator| {
        if req.number == 40 && !fired.swap(true, std::sync::atomic::Ordering::SeqCst) {
            sim.fail_next(4, 502);
        }
    });
    let report = audit(&poller.scanner, range, TimeDelta::hours(1), false, false, &token()).await;
    assert_eq!(report.exit_code(), 4, "{}", report.summary());
    let listed: BTreeSet<String> = report.missing.iter().map(|m| m.id.clone()).collect();
    assert_eq!(listed, missed);
    assert!(env.sim.stats().by_status.get(&502).copied().unwrap_or(0) >= 4, "{:?}", env.sim.stats());
    env.sim.fail_next(2, 500);
    let repaired = audit(&poller.scanner, range, TimeDelta::hours(1), true, false, &token()).await;
    assert_eq!(repaired.exit_code(), 0, "{}", repaired.summary());
    env.deliver_all(&store).await;
    assert_exactly_once(&env.sink_ids(), &env.sim.expected_ids(now - TimeDelta::hours(3), now));
    // A window whose retries run out is listed, and the audit exits 3.
    env.sim.fail_next(10_000, 503);
    let short = Range { from: now - TimeDelta::hours(3), to: now };
    let failed = audit(&poller.scanner, short, TimeDelta::hours(1), false, false, &token()).await;
    assert_eq!(failed.exit_code(), 3, "{}", failed.summary());
    assert!(failed.summary().contains("FAILED"), "{}", failed.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_runs_beside_the_daemon() {
    let env = Env::start_with(late_stream(35), &poll_settings(), "[audit]\nschedule = \"\"\n").await;
    let from = Utc::now() - TimeDelta::hours(2);
    let daemon = env.spawn_daemon();
    let visible = env.sim.expected_ids(from, Utc::now()).len();
    assert!(wait_for(Duration::from_secs(60), || env.sink_ids().len() >= visible).await, "{}", env.log_tail(30));
    env.sim.set_clock_skew(65 * 60 * 1000);
    // Let the daemon's poll catch up with the API's new clock before the audit.
    let store = env.store();
    let caught_up = (env.sim.now() - TimeDelta::seconds(10)).timestamp_millis();
    let mut watermark = 0;
    for _ in 0..600 {
        watermark = store.watermark().await.unwrap().unwrap_or(0);
        if watermark >= caught_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(watermark >= caught_up, "the daemon did not catch up: {}", env.log_tail(30));
    let output = env.run(&["audit", "--repair", "--json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let report = json(&output);
    let repaired = report["missing"].as_array().unwrap().len();
    let all = env.sim.expected_ids(from, Utc::now());
    assert_eq!(repaired, all.len() - visible);
    assert!(wait_for(Duration::from_secs(30), || env.sink_ids().len() >= all.len()).await, "{}", env.log_tail(30));
    let (status, _) = daemon.stop("TERM", Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    assert_exactly_once(&env.sink_ids(), &all);
}
