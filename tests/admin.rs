//! The admin endpoint of a running daemon: every SPEC 7 metric name, and `/readyz` going
//! 503 with the gateway's ReasonCode when the API answers 401, then back to 200.

mod common;

use std::time::{Duration, Instant};

use cen_poller::simulate::SimConfig;
use chrono::{TimeDelta, Utc};
use common::Env;
use tokio_util::sync::CancellationToken;

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Polls `path` until its status is `want` (the outcome), failing after `deadline`.
async fn wait_for(addr: std::net::SocketAddr, path: &str, want: u16, deadline: Duration) -> String {
    let start = Instant::now();
    loop {
        let (status, body) = get(addr, path).await;
        if status == want {
            return body;
        }
        assert!(start.elapsed() < deadline, "{path} stayed {status}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_hold_every_name_and_readyz_follows_the_apis_answers() {
    let sim = SimConfig::bounded(21, Utc::now() - TimeDelta::minutes(20), 1.0, 900);
    let start = cen_poller::cen::notification::format_timestamp(Utc::now() - TimeDelta::minutes(30));
    let env = Env::start(sim, &format!("interval = \"1s\"\nsettle = \"2s\"\nfirst_start = \"{start}\"")).await;
    let shutdown = CancellationToken::new();
    let running = cen_poller::service::start(&env.config(), shutdown.clone()).await.unwrap();
    let addr = running.admin_addr;
    assert_eq!(get(addr, "/healthz").await.0, 200);
    wait_for(addr, "/readyz", 200, Duration::from_secs(30)).await;

    // Wait until the file sink has everything, then read the metrics.
    let t = Instant::now();
    while env.sink_ids().len() < 900 {
        assert!(t.elapsed() < Duration::from_secs(30), "delivered {}", env.sink_ids().len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the exposition parses");
    let names: std::collections::BTreeSet<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for name in [
        "cen_notifications_received_total",
        "cen_poll_cycles_total",
        "cen_poll_watermark_timestamp_seconds",
        "cen_poll_lag_seconds",
        "cen_sink_delivered_total",
        "cen_sink_backlog",
        "cen_sink_dead_letters",
        "cen_process_start_time_seconds",
        "cen_process_resident_memory_bytes",
    ] {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
    // Families that only get samples once something happens are still declared.
    for name in
        ["cen_notifications_duplicate", "cen_notifications_recovered_by_pull", "cen_sink_failures", "cen_push_requests"]
    {
        assert!(text.contains(&format!("# TYPE {name}")), "{name} not declared");
    }
    let received: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "cen_notifications_received_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(received, 900.0);

    // The API starts refusing our signature: not ready, with the gateway's ReasonCode.
    env.sim.set_auth_failure(Some((401, "INVALID_SIGNATURE")));
    let body = wait_for(addr, "/readyz", 503, Duration::from_secs(30)).await;
    assert!(body.contains("INVALID_SIGNATURE"), "{body}");
    env.sim.set_auth_failure(None);
    wait_for(addr, "/readyz", 200, Duration::from_secs(30)).await;
    let (_, text) = get(addr, "/metrics").await;
    assert!(text.contains("cen_poll_cycles_total{outcome=\"auth_error\"}"), "{text}");

    shutdown.cancel();
    running.join(Duration::from_secs(10)).await;
}
