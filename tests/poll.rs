//! The poll cycle against the simulator: completeness, late arrivals, changes during a
//! scan, faults, and the cost of a steady-state cycle (SPEC 8).

mod common;

use std::time::Duration;

use cen_poller::cen::notification::format_timestamp;
use cen_poller::simulate::{RequestInfo, SimConfig, Simulator};
use cen_poller::store::SOURCE_CEN;
use chrono::{TimeDelta, Utc};
use common::{Env, assert_exactly_once, token};
use serde_json::json;

/// `first_start` one hour back, so the first cycle reads the whole test stream.
fn poll_settings(page_size: u32) -> String {
    let start = format_timestamp(Utc::now() - TimeDelta::minutes(61));
    format!(
        "interval = \"1s\"\nlookback = \"15m\"\nsettle = \"5s\"\npage_size = {page_size}\nfirst_start = \"{start}\""
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_delivers_every_notification_exactly_once() {
    let now = Utc::now();
    let sim = SimConfig::bounded(11, now - TimeDelta::minutes(55), 1.0, 3000);
    let env = Env::start(sim, &poll_settings(200)).await;
    let store = env.store();
    let poller = env.poller(&store);
    let before = Utc::now().timestamp_millis();
    let outcome = poller.cycle(&token()).await.unwrap();
    let after = Utc::now().timestamp_millis();
    assert_eq!(outcome.stats.new, 3000);
    assert_eq!(env.deliver_all(&store).await, 3000);
    let expected = env.sim.expected_ids(now - TimeDelta::hours(2), Utc::now());
    assert_eq!(expected.len(), 3000);
    assert_exactly_once(&env.sink_ids(), &expected);
    // The watermark is the window's end: the API's now (a `Date` header: whole seconds)
    // minus settle (5s), taken during the cycle.
    let wm = store.watermark().await.unwrap().unwrap();
    assert!(wm >= before - 5000 - 1000 && wm <= after - 5000 + 1000, "watermark {wm} not in [{before}, {after}] - 5s");
    // A second cycle finds nothing new and delivers nothing again.
    let again = poller.cycle(&token()).await.unwrap();
    assert_eq!(again.stats.new, 0);
    assert_eq!(env.deliver_all(&store).await, 0);
    // Records carry the SPEC 6 envelope.
    let line = std::fs::read_to_string(env.sink_path()).unwrap().lines().next().unwrap().to_owned();
    let record: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["source"], "mastercard-cen");
    assert_eq!(record["received_via"], "pull");
    assert!(record["notification"]["content"].is_object());
    assert_eq!(record["created_timestamp"], record["notification"]["createdTimestamp"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_arrivals_within_the_lookback_are_delivered() {
    let now = Utc::now();
    let mut sim = SimConfig::bounded(12, now - TimeDelta::minutes(20), 2.0, 2400);
    sim.late_fraction = 0.25;
    sim.late_by = Duration::from_secs(8 * 60);
    let env = Env::start(sim, &poll_settings(200)).await;
    let store = env.store();
    let poller = env.poller(&store);
    poller.cycle(&token()).await.unwrap();
    let visible_now = env.sim.expected_ids(now - TimeDelta::hours(1), Utc::now());
    assert!(visible_now.len() < 2400, "some are not visible yet");
    // Ten minutes pass on the API's clock: every late one is visible now, each within the
    // 15-minute lookback of the watermark.
    env.sim.set_clock_skew(10 * 60 * 1000);
    poller.cycle(&token()).await.unwrap();
    poller.cycle(&token()).await.unwrap();
    env.deliver_all(&store).await;
    let all = env.sim.expected_ids(now - TimeDelta::hours(1), env.sim.now());
    assert_eq!(all.len(), 2400);
    assert_exactly_once(&env.sink_ids(), &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_inserted_or_expiring_while_a_millisecond_is_paged_are_not_lost() {
    let now = Utc::now();
    // No generated stream to speak of; 250 notifications in one millisecond force offset
    // paging with page_size 100.
    let sim = SimConfig::bounded(13, now - TimeDelta::minutes(30), 1.0, 1);
    let env = Env::start(sim, &poll_settings(100)).await;
    let same_ms = format_timestamp(now - TimeDelta::minutes(20));
    let notification = move |i: u64| {
        json!({"subject": "CLEARING", "subscriptionName": "sim-clearing", "createdTimestamp": same_ms,
               "content": {"transactionId": i, "amount": i * 3}})
    };
    for i in 0..250 {
        env.sim.insert(notification(i), now - TimeDelta::hours(1)).unwrap();
    }
    // On the first page request with an offset, one notification expires and a new one
    // appears in the same millisecond: `total` does not change.
    let once = std::sync::atomic::AtomicBool::new(false);
    let expired = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let expired_in_hook = expired.clone();
    let target_ms = (now - TimeDelta::minutes(20)).timestamp_millis();
    env.sim.set_request_hook(move |req: &RequestInfo, sim: &Simulator| {
        if req.offset > 0
            && req.start.timestamp_millis() == target_ms
            && !once.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            let victim = sim.items(req.start, req.end).last().unwrap().clone();
            sim.expire(victim.key);
            *expired_in_hook.lock().unwrap() = Some(victim.id);
            sim.insert(notification(9999), sim.now() - TimeDelta::hours(1)).unwrap();
        }
    });
    let store = env.store();
    env.poller(&store).cycle(&token()).await.unwrap();
    env.deliver_all(&store).await;
    let expected = env.sim.expected_ids(now - TimeDelta::hours(1), Utc::now());
    assert_eq!(expected.len(), 251, "250 + 1 generated + 1 inserted - 1 expired");
    let sink = env.sink_ids();
    let victim = expired.lock().unwrap().clone().expect("the hook fired");
    let mut expected_plus_victim = expected.clone();
    // The expired one may or may not have been read before it expired; either is right.
    if sink.contains_key(&victim) {
        expected_plus_victim.push(victim);
    }
    assert_exactly_once(&sink, &expected_plus_victim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_appearing_in_an_already_read_part_are_caught_next_cycle() {
    let now = Utc::now();
    let sim = SimConfig::bounded(14, now - TimeDelta::minutes(30), 2.0, 3000);
    let env = Env::start(sim, &poll_settings(200)).await;
    // During the scan, once it has moved past minute -10, insert notifications created at
    // minute -10: to the poller they are late arrivals in a part it has already read.
    let early = now - TimeDelta::minutes(10);
    let inserted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = inserted.clone();
    env.sim.set_request_hook(move |req: &RequestInfo, sim: &Simulator| {
        if req.start > early && count.load(std::sync::atomic::Ordering::SeqCst) < 5 {
            let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            sim.insert(
                json!({"subject": "PAYMENT_UPDATE", "subscriptionName": "sim-payment-update",
                       "createdTimestamp": format_timestamp(early + TimeDelta::milliseconds(n as i64)),
                       "content": {"paymentId": format!("late-{n}")}}),
                sim.now() - TimeDelta::seconds(1),
            )
            .unwrap();
        }
    });
    let store = env.store();
    let poller = env.poller(&store);
    poller.cycle(&token()).await.unwrap();
    env.sim.clear_request_hook();
    assert_eq!(inserted.load(std::sync::atomic::Ordering::SeqCst), 5);
    let first_pass = store.count_created(SOURCE_CEN, 0, i64::MAX, vec![]).await.unwrap();
    assert!(first_pass < 3005, "the scan had passed them: {first_pass}");
    // The next cycle's lookback covers minute -10 again.
    poller.cycle(&token()).await.unwrap();
    env.deliver_all(&store).await;
    let expected = env.sim.expected_ids(now - TimeDelta::hours(1), env.sim.now());
    assert_eq!(expected.len(), 3005);
    assert_exactly_once(&env.sink_ids(), &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_5xx_429_and_truncated_bodies_lose_nothing() {
    let now = Utc::now();
    let sim = SimConfig::bounded(15, now - TimeDelta::minutes(40), 1.0, 2000);
    let env = Env::start(sim, &poll_settings(200)).await;
    env.sim.fail_next(3, 503);
    env.sim.truncate_next(2);
    let store = env.store();
    let poller = env.poller(&store);
    // Fail again in the middle of the cycle.
    let fired = std::sync::atomic::AtomicBool::new(false);
    env.sim.set_request_hook(move |req: &RequestInfo, sim: &Simulator| {
        if req.number == 10 && !fired.swap(true, std::sync::atomic::Ordering::SeqCst) {
            sim.rate_limit_next(2, Duration::from_secs(1));
            sim.fail_next(2, 502);
        }
    });
    poller.cycle(&token()).await.unwrap();
    let stats = env.sim.stats();
    assert!(stats.by_status.get(&503).copied().unwrap_or(0) >= 3, "{stats:?}");
    assert!(stats.by_status.get(&429).copied().unwrap_or(0) >= 2, "{stats:?}");
    assert!(stats.faults_injected >= 9, "{stats:?}");
    env.deliver_all(&store).await;
    let expected = env.sim.expected_ids(now - TimeDelta::hours(1), Utc::now());
    assert_exactly_once(&env.sink_ids(), &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_cycle_keeps_the_watermark_and_a_401_is_reported_with_its_reason() {
    let now = Utc::now();
    let sim = SimConfig::bounded(16, now - TimeDelta::minutes(30), 1.0, 600);
    let env = Env::start(sim, &poll_settings(200)).await;
    let store = env.store();
    let poller = env.poller(&store);
    env.sim.set_auth_failure(Some((401, "INVALID_SIGNATURE")));
    let err = poller.cycle(&token()).await.unwrap_err();
    assert!(err.to_string().contains("INVALID_SIGNATURE"), "{err}");
    assert_eq!(store.watermark().await.unwrap(), None, "nothing read, nothing moved");
    let health = poller.health.lock().unwrap().clone();
    assert!(health.problem.unwrap().contains("401 INVALID_SIGNATURE"));
    assert!(health.last_success.is_none());
    // One request, not a retry loop.
    assert_eq!(env.sim.stats().by_status.get(&401), Some(&1));
    env.sim.set_auth_failure(None);
    poller.cycle(&token()).await.unwrap();
    let health = poller.health.lock().unwrap().clone();
    assert!(health.problem.is_none() && health.last_success.is_some());
    assert_eq!(store.count_created(SOURCE_CEN, 0, i64::MAX, vec![]).await.unwrap(), 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_state_cycle_over_20000_notifications_makes_a_handful_of_requests() {
    let now = Utc::now();
    // 20,000 notifications in the 15 minutes before now: all inside the lookback.
    let sim = SimConfig::bounded(17, now - TimeDelta::minutes(15), 20_000.0 / 840.0, 20_000);
    let env = Env::start(sim, &poll_settings(200)).await;
    let store = env.store();
    let poller = env.poller(&store);
    let first = poller.cycle(&token()).await.unwrap();
    assert_eq!(first.stats.new, 20_000);
    env.sim.reset_stats();
    let steady = poller.cycle(&token()).await.unwrap();
    let requests = env.sim.stats().notification_requests;
    assert_eq!(steady.stats.new, 0);
    assert!(requests <= 3, "a steady-state cycle made {requests} requests");
    // One new notification in the lookback costs a few count requests, not a re-read.
    env.sim
        .insert(
            json!({"subject": "CLEARING", "subscriptionName": "sim-clearing",
                   "createdTimestamp": format_timestamp(now - TimeDelta::minutes(7)), "content": {"x": 1}}),
            now - TimeDelta::minutes(1),
        )
        .unwrap();
    env.sim.reset_stats();
    let one = poller.cycle(&token()).await.unwrap();
    let stats = env.sim.stats();
    assert_eq!(one.stats.new, 1);
    assert!(stats.notification_requests <= 40, "{stats:?}");
    assert!(stats.notifications_served <= 400, "re-read {} notifications", stats.notifications_served);
}

/// A live stream at 5/s polled every 5 s (the API's clock moved on 5 s per cycle), lookback
/// 15 m, page 200: each steady-state cycle costs about two requests (one count proving the
/// part earlier cycles read unchanged, one read of the new part) and reads each new
/// notification about once (bench/poll_cycle_cost.sh measures 1, 5 and 50/s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_stream_at_5_per_second_costs_two_requests_per_cycle() {
    let now = Utc::now();
    let sim = SimConfig::bounded(18, now - TimeDelta::minutes(20), 5.0, 5 * 60 * 30);
    let start = format_timestamp(now - TimeDelta::minutes(16));
    let settings =
        format!("interval = \"5s\"\nlookback = \"15m\"\nsettle = \"5s\"\npage_size = 200\nfirst_start = \"{start}\"");
    let env = Env::start(sim, &settings).await;
    let store = env.store();
    let poller = env.poller(&store);
    poller.cycle(&token()).await.unwrap();
    // The first cycles after catching up settle the API clock's offset.
    for k in 1..=2 {
        env.sim.set_clock_skew(k * 5000);
        poller.cycle(&token()).await.unwrap();
    }
    env.sim.reset_stats();
    let cycles = 20;
    let mut new = 0;
    for k in 3..3 + cycles {
        env.sim.set_clock_skew(k * 5000);
        let outcome = poller.cycle(&token()).await.unwrap();
        new += outcome.stats.new;
    }
    let stats = env.sim.stats();
    let per_cycle = stats.notification_requests as f64 / cycles as f64;
    let read_per_new = stats.notifications_served as f64 / new as f64;
    assert!(new >= 20 * 20, "{new} new in {cycles} cycles of 5 s at 5/s");
    assert!(per_cycle <= 2.2, "{per_cycle} requests per cycle ({stats:?})");
    assert!(read_per_new <= 1.2, "{read_per_new} notifications read per new one ({stats:?})");
    // Nothing was lost on the way: everything from the first start to the watermark.
    env.deliver_all(&store).await;
    let watermark = chrono::DateTime::from_timestamp_millis(store.watermark().await.unwrap().unwrap()).unwrap();
    assert_exactly_once(&env.sink_ids(), &env.sim.expected_ids(now - TimeDelta::minutes(16), watermark));
}
