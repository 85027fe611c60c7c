//! `demo`'s push-and-pull summary adds up: with the simulator pushing to the daemon's mTLS
//! endpoint (dropping some, sending some twice) and the poller pulling, every stored
//! notification came by push or by pull, pull recovered exactly what push dropped, the
//! daemon dropped exactly the duplicates the simulator sent, and the sink got each once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cen_poller::simulate::SimConfig;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

const COUNT: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_summary_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    // 200 notifications created over the next 10 seconds, none late: each is pushed (or
    // dropped) the moment it is created, and pulled poll.settle later.
    let sim = SimConfig::bounded(11, Utc::now(), 20.0, COUNT);
    let demo = cen_poller::demo::start(dir.path(), sim, shutdown.clone()).await.unwrap();

    tokio::time::timeout(Duration::from_secs(60), demo.sim.wait_push_done()).await.expect("the pusher finished");
    let t = Instant::now();
    let summary = loop {
        let s = demo.push_pull().await.unwrap();
        let delivered = std::fs::read_to_string(&demo.sink_path).unwrap_or_default().lines().count() as u64;
        if s.stored == COUNT && delivered == COUNT {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "stored {} delivered {delivered}: {s:?}", s.stored);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert_eq!(summary.by_push + summary.by_pull + summary.by_audit, summary.stored, "{summary:?}");
    assert_eq!(summary.by_audit, 0, "nothing is made late here: {summary:?}");
    assert!(summary.dropped_by_simulator > 0, "{summary:?}");
    assert_eq!(summary.recovered_by_pull, summary.dropped_by_simulator, "{summary:?}");
    assert_eq!(summary.by_pull, summary.recovered_by_pull, "everything pulled first was missed by push: {summary:?}");
    assert_eq!(summary.by_push, COUNT - summary.dropped_by_simulator, "{summary:?}");
    assert!(summary.sent_twice_by_simulator > 0, "{summary:?}");
    assert_eq!(summary.duplicates_push, summary.sent_twice_by_simulator, "{summary:?}");
    let stats = demo.sim.stats();
    assert_eq!(stats.pushed, summary.by_push, "every push the simulator made was accepted: {stats:?}");
    assert_eq!(stats.push_failed, 0, "{stats:?}");

    // The sink has each notification once, with the path that delivered it first.
    let mut by_path: BTreeMap<String, u64> = BTreeMap::new();
    let mut ids = std::collections::BTreeSet::new();
    for line in std::fs::read_to_string(&demo.sink_path).unwrap().lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(ids.insert(record["id"].as_str().unwrap().to_owned()), "delivered twice: {line}");
        *by_path.entry(record["received_via"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(by_path.get("push").copied().unwrap_or(0), summary.by_push);
    assert_eq!(by_path.get("pull").copied().unwrap_or(0), summary.by_pull);

    // The poller's watermark moves from the first cycles on, and the daemon says it is ready.
    let status = cen_poller::status::collect(&demo.config).await.unwrap();
    assert!(status.watermark.is_some(), "no watermark after the whole run: {status:?}");
    let readyz = reqwest::get(format!("http://{}/readyz", demo.running.admin_addr)).await.unwrap();
    assert_eq!(readyz.status(), 200, "{}", readyz.text().await.unwrap());

    let text = summary.render();
    assert!(
        text.contains(&format!(
            "by push {}   by pull {}   by audit 0   = stored {COUNT}",
            summary.by_push, summary.by_pull
        )),
        "{text}"
    );

    shutdown.cancel();
    demo.sim.stop();
    demo.running.join(Duration::from_secs(10)).await;
}
