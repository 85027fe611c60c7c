//! The push endpoint over mutual TLS (SPEC 7): who may push, what is answered, what is
//! stored, group commit, and reconciliation with the poller.

mod common;

use std::time::{Duration, Instant};

use cen_poller::simulate::{self, PushTarget, SimConfig};
use cen_poller::store::SOURCE_CEN;
use chrono::{TimeDelta, Utc};
use common::pki::{Ca, Leaf};
use common::{Env, assert_exactly_once};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const ALLOWED: &str = "mastercard-push.example";

struct Pki {
    server_ca: Ca,
    client_ca: Ca,
    other_ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            server_ca: Ca::new("Test server CA"),
            client_ca: Ca::new("Test client CA"),
            other_ca: Ca::new("Other CA"),
        }
    }

    /// Writes the server's certificate, key and client CA into `dir`; returns the `[push]`
    /// section.
    fn push_section(&self, dir: &std::path::Path, extra: &str) -> String {
        let server = self.server_ca.server();
        std::fs::write(dir.join("server.pem"), &server.cert_pem).unwrap();
        std::fs::write(dir.join("server-key.pem"), &server.key_pem).unwrap();
        std::fs::write(dir.join("client-ca.pem"), &self.client_ca.pem).unwrap();
        format!(
            "[push]\nlisten = \"127.0.0.1:0\"\ncert = \"server.pem\"\nkey = \"server-key.pem\"\nclient_ca = \"client-ca.pem\"\nallowed_client_names = [\"{ALLOWED}\", \"*.push.example\"]\nmax_body = \"64KiB\"\n{extra}"
        )
    }

    fn client(&self, identity: Option<&Leaf>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.server_ca.pem.as_bytes()).unwrap()])
            .timeout(Duration::from_secs(20));
        if let Some(leaf) = identity {
            let pem = format!("{}{}", leaf.cert_pem, leaf.key_pem);
            b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        b.build().unwrap()
    }
}

/// A daemon with a push endpoint (and a poller on an almost empty simulator).
struct Daemon {
    env: Env,
    running: cen_poller::service::Running,
    shutdown: CancellationToken,
    url: String,
}

async fn daemon(pki: &Pki) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let push = pki.push_section(dir.path(), "");
    let sim = SimConfig::bounded(31, Utc::now() - TimeDelta::minutes(5), 1.0, 1);
    let env = Env::start_with(sim, "interval = \"1h\"", &push).await;
    for f in ["server.pem", "server-key.pem", "client-ca.pem"] {
        std::fs::copy(dir.path().join(f), env.dir.path().join(f)).unwrap();
    }
    let shutdown = CancellationToken::new();
    let running = cen_poller::service::start(&env.config(), shutdown.clone()).await.unwrap();
    let addr = running.push.as_ref().unwrap().addr;
    // The poller's first cycle stores the simulator's one notification; wait for it so the
    // tests' counts start from a settled store.
    let t = Instant::now();
    while running.poller.health.lock().unwrap().cycles_ok == 0 {
        assert!(t.elapsed() < Duration::from_secs(20), "the first poll cycle did not complete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Daemon { env, running, shutdown, url: format!("https://localhost:{}/notifications", addr.port()) }
}

/// Notification `i`: the same `i` gives the same notification (and id).
fn notification(i: u64) -> Value {
    static BASE: std::sync::OnceLock<chrono::DateTime<Utc>> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Utc::now);
    json!({"subject": "CLEARING", "subscriptionName": "ops", "pushStatus": "PENDING",
           "createdTimestamp": cen_poller::cen::notification::format_timestamp(base - TimeDelta::seconds(i as i64)),
           "content": {"transactionId": format!("t-{i}"), "amount": i}})
}

async fn stored(d: &Daemon) -> u64 {
    d.running.store.count_created(SOURCE_CEN, 0, i64::MAX, vec![]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_client_certificates_may_push() {
    let pki = Pki::new();
    let d = daemon(&pki).await;
    let body = json!([notification(1)]);
    let baseline = stored(&d).await;

    // No client certificate: the handshake (or the first read after it) fails.
    let e = pki.client(None).post(&d.url).json(&body).send().await;
    assert!(e.is_err(), "{e:?}");
    // A certificate from another CA: refused the same way.
    let stranger = pki.other_ca.client(ALLOWED, &[ALLOWED]);
    assert!(pki.client(Some(&stranger)).post(&d.url).json(&body).send().await.is_err());
    // The right CA, a name not allowed: 403.
    let wrong_name = pki.client_ca.client("someone-else", &["someone.example"]);
    let r = pki.client(Some(&wrong_name)).post(&d.url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(stored(&d).await, baseline, "nothing stored from refused requests");

    // Allowed by CN, and by a DNS SAN matching a wildcard.
    let by_cn = pki.client_ca.client(ALLOWED, &[]);
    let r = pki.client(Some(&by_cn)).post(&d.url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer, json!({"status": "ok", "accepted": 1, "duplicates": 0}));
    let by_san = pki.client_ca.client("x", &["eu.push.example"]);
    let r = pki.client(Some(&by_san)).post(&d.url).json(&body).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok", "accepted": 0, "duplicates": 1}));
    assert_eq!(stored(&d).await, baseline + 1);

    // The notification reaches the file sink, as received by push.
    d.env.deliver_all(&d.running.store).await;
    let text = std::fs::read_to_string(d.env.sink_path()).unwrap();
    let record: Value = serde_json::from_str(text.lines().find(|l| l.contains("t-1")).unwrap()).unwrap();
    assert_eq!(record["received_via"], "push");
    assert_eq!(record["notification"]["pushStatus"], "PENDING", "kept exactly as first received");

    d.shutdown.cancel();
    d.running.join(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_their_status_and_store_nothing() {
    let pki = Pki::new();
    let d = daemon(&pki).await;
    let client = pki.client(Some(&pki.client_ca.client(ALLOWED, &[])));
    let baseline = stored(&d).await;
    let post = |body: Vec<u8>| client.post(&d.url).header("content-type", "application/json").body(body).send();

    let r = post(b"[{\"subject\":".to_vec()).await.unwrap();
    assert_eq!(r.status(), 400);
    // One bad item refuses the whole batch, naming it.
    let mut missing = notification(2);
    missing.as_object_mut().unwrap().remove("content");
    let r = post(serde_json::to_vec(&json!([notification(3), missing])).unwrap()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("notification 1: member `content`"));
    for member in ["subject", "createdTimestamp"] {
        let mut bad = notification(4);
        bad.as_object_mut().unwrap().remove(member);
        assert_eq!(post(serde_json::to_vec(&bad).unwrap()).await.unwrap().status(), 400, "{member}");
    }
    // Over max_body (64 KiB).
    let big: Vec<Value> = (0..2000).map(notification).collect();
    assert_eq!(post(serde_json::to_vec(&big).unwrap()).await.unwrap().status(), 413);
    // Other paths and methods.
    let other = d.url.replace("/notifications", "/other");
    assert_eq!(client.post(&other).json(&json!([])).send().await.unwrap().status(), 404);
    assert_eq!(client.get(&d.url).send().await.unwrap().status(), 405);
    assert_eq!(stored(&d).await, baseline, "nothing stored from any of them");

    // A single object and an unknown subject are accepted and stored.
    let mut unknown = notification(5);
    unknown["subject"] = json!("SOMETHING_NEW");
    let r = post(serde_json::to_vec(&unknown).unwrap()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(stored(&d).await, baseline + 1);

    // A store that cannot commit (another process holds the write lock past the busy
    // timeout) gets 503, and the sender may retry.
    let db = d.env.dir.path().join("state.db");
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // The store waits out its busy timeout (10 s; a dispatcher's lease may queue ahead of
    // it) before giving up, hence the long client timeout.
    let r = client.post(&d.url).timeout(Duration::from_secs(60)).json(&notification(6)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    blocker.execute_batch("ROLLBACK").unwrap();
    let r = post(serde_json::to_vec(&notification(6)).unwrap()).await.unwrap();
    assert_eq!(r.status(), 200);

    let (_, metrics) = (0, reqwest::get(format!("http://{}/metrics", d.running.admin_addr)).await.unwrap());
    let metrics = metrics.text().await.unwrap();
    for code in ["400", "413", "503", "200", "404", "405"] {
        assert!(metrics.contains(&format!("cen_push_requests_total{{code=\"{code}\"}}")), "{code}");
    }
    d.shutdown.cancel();
    d.running.join(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_commits_and_count_their_own_duplicates() {
    let pki = Pki::new();
    let d = daemon(&pki).await;
    let client = pki.client(Some(&pki.client_ca.client(ALLOWED, &[])));
    let baseline = stored(&d).await;
    // 40 requests of 10 at once; every second request repeats the previous one's batch.
    let mut tasks = Vec::new();
    for r in 0..40u64 {
        let batch: Vec<Value> = (0..10).map(|i| notification(1000 + (r / 2) * 10 + i)).collect();
        let (client, url) = (client.clone(), d.url.clone());
        tasks.push(tokio::spawn(async move {
            client.post(&url).json(&batch).send().await.unwrap().json::<Value>().await.unwrap()
        }));
    }
    let (mut accepted, mut duplicates) = (0, 0);
    for t in tasks {
        let answer = t.await.unwrap();
        assert_eq!(answer["status"], "ok");
        accepted += answer["accepted"].as_u64().unwrap();
        duplicates += answer["duplicates"].as_u64().unwrap();
    }
    assert_eq!((accepted, duplicates), (200, 200));
    assert_eq!(stored(&d).await, baseline + 200);
    d.shutdown.cancel();
    d.running.join(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_reconcile_and_pull_recovers_what_push_dropped() {
    let pki = Pki::new();
    // The simulator's listener first, so the daemon's config can name it; the simulator
    // itself is made once the push endpoint's port is known.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = cen_poller::cen::keys::SigningKey::generate().unwrap();
    std::fs::write(dir.path().join("key.pem"), key.private_key_pem()).unwrap();
    let push = pki.push_section(dir.path(), "");
    let start = cen_poller::cen::notification::format_timestamp(Utc::now() - TimeDelta::minutes(40));
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[api]\nbase_url = \"http://{sim_addr}\"\nconsumer_key = \"ck\"\nsigning_key = \"key.pem\"\n\n[poll]\ninterval = \"1h\"\nsettle = \"2s\"\nfirst_start = \"{start}\"\n\n[state]\npath = \"state.db\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n[[sinks]]\nname = \"archive\"\ntype = \"file\"\npath = \"notifications.jsonl\"\n\n{push}"
        ),
    )
    .unwrap();
    let config = cen_poller::config::Config::load(&dir.path().join("config.toml")).unwrap();
    let shutdown = CancellationToken::new();
    let running = cen_poller::service::start(&config, shutdown.clone()).await.unwrap();
    let push_addr = running.push.as_ref().unwrap().addr;
    let first_cycle_done = || {
        let h = running.poller.health.lock().unwrap();
        h.cycles_failed + h.cycles_ok > 0
    };

    let client = pki.client_ca.client(ALLOWED, &[]);
    let mut target = PushTarget::new(format!("https://localhost:{}/notifications", push_addr.port()));
    target.client_cert_pem = Some(client.cert_pem.clone());
    target.client_key_pem = Some(client.key_pem.clone());
    target.ca_pem = Some(pki.server_ca.pem.clone());
    target.drop_fraction = 0.3;
    target.duplicate_fraction = 0.05;
    let mut sim = SimConfig::bounded(32, Utc::now() - TimeDelta::minutes(30), 1.0, 1200);
    sim.public_key = Some(key.public_key_pkcs1());
    sim.push = Some(target);
    let sim = simulate::Simulator::new(sim);
    // The daemon's first poll cycle (at start) must not read before push has had its
    // chance: the API refuses it, as the real one would refuse a bad key.
    sim.set_auth_failure(Some((401, "INVALID_SIGNATURE")));
    let serving = sim.clone();
    tokio::spawn(async move { serving.serve(listener, CancellationToken::new()).await });
    tokio::time::timeout(Duration::from_secs(60), sim.wait_push_done()).await.expect("the simulator pushed everything");
    let pushed = sim.stats();
    assert!(pushed.push_dropped > 200 && pushed.push_duplicated > 0, "{pushed:?}");
    let t = Instant::now();
    while !first_cycle_done() {
        assert!(t.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sim.set_auth_failure(None);

    // Now a poll cycle fetches all of them: what push delivered counts as a duplicate,
    // what it dropped is recovered.
    running.poller.cycle(&shutdown).await.unwrap();
    let t = Instant::now();
    let env_ids = || {
        let text = std::fs::read_to_string(dir.path().join("notifications.jsonl")).unwrap_or_default();
        let mut ids = std::collections::BTreeMap::<String, usize>::new();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            *ids.entry(v["id"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        ids
    };
    while env_ids().len() < 1200 {
        assert!(t.elapsed() < Duration::from_secs(30), "delivered {}", env_ids().len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected = sim.expected_ids(Utc::now() - TimeDelta::hours(1), Utc::now());
    assert_eq!(expected.len(), 1200);
    assert_exactly_once(&env_ids(), &expected);

    let metrics = reqwest::get(format!("http://{}/metrics", running.admin_addr)).await.unwrap().text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let sum = |name: &str| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(sum("cen_notifications_recovered_by_pull_total"), (pushed.push_dropped + pushed.push_failed) as f64);
    let status = cen_poller::status::collect(&config).await.unwrap();
    assert_eq!(status.last_24h.recovered_by_pull, pushed.push_dropped + pushed.push_failed);
    let by_path = |p: &str| status.last_24h.by_path.get(p).copied().unwrap_or(0);
    assert_eq!(by_path("pull"), pushed.push_dropped + pushed.push_failed);
    assert_eq!(by_path("push") + by_path("pull"), 1200);
    shutdown.cancel();
    running.join(Duration::from_secs(10)).await;
}
