//! The `http` sink end to end: the daemon binary polls the simulator and POSTs every
//! notification to a receiver in the test (axum on 127.0.0.1) that checks the Standard
//! Webhooks signature the way a receiver's library would, and answers as each case needs —
//! accepting, down, 503, 429 or a permanent 400 (a dead letter, then `dead-letters retry`).
//! Waits poll for an outcome with a deadline.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cen_poller::cen::notification::format_timestamp;
use cen_poller::simulate::SimConfig;
use chrono::{TimeDelta, Utc};
use common::{Env, wait_for};
use tokio_util::sync::CancellationToken;

/// The receiver's secret, as the operator would write it into `secret_file`.
const SECRET: &str = "whsec_c2VjcmV0LWtleS1mb3ItdGhlLWNlbi1wb2xsZXItdGVzdHM=";

/// How the receiver answers a request: given the id and how many times it was asked for
/// it before (0 on the first request), the status code.
type Answer = Arc<dyn Fn(&str, usize) -> u16 + Send + Sync>;

/// What the receiver saw.
struct Receiver {
    key: hmac::Key,
    answer: Mutex<Answer>,
    /// Requests per id (any answer).
    requests: Mutex<BTreeMap<String, usize>>,
    /// Ids answered 2xx, with how often.
    accepted: Mutex<BTreeMap<String, usize>>,
    /// Answers given, per status code.
    answers: Mutex<BTreeMap<u16, usize>>,
    /// Requests whose signature, headers or body did not check out (answered 401).
    bad: AtomicUsize,
    bad_reasons: Mutex<Vec<String>>,
}

impl Receiver {
    fn new() -> Arc<Receiver> {
        let key = BASE64.decode(SECRET.strip_prefix("whsec_").unwrap()).unwrap();
        Arc::new(Receiver {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            answer: Mutex::new(Arc::new(|_, _| 200)),
            requests: Mutex::default(),
            accepted: Mutex::default(),
            answers: Mutex::default(),
            bad: AtomicUsize::new(0),
            bad_reasons: Mutex::default(),
        })
    }

    fn answer_with(&self, f: impl Fn(&str, usize) -> u16 + Send + Sync + 'static) {
        *self.answer.lock().unwrap() = Arc::new(f);
    }

    fn accepted(&self) -> BTreeMap<String, usize> {
        self.accepted.lock().unwrap().clone()
    }

    fn answered(&self, code: u16) -> usize {
        self.answers.lock().unwrap().get(&code).copied().unwrap_or(0)
    }

    /// Checks a request as a Standard Webhooks library does: the signature over
    /// `{id}.{timestamp}.{body}`, a timestamp within 5 minutes, plus what SPEC 6 promises
    /// (JSON body whose `id` is the `webhook-id`).
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<String, String> {
        let header = |name: &str| {
            headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned).ok_or(format!("no {name} header"))
        };
        let id = header("webhook-id")?;
        let timestamp = header("webhook-timestamp")?;
        let signatures = header("webhook-signature")?;
        if header("content-type")? != "application/json" {
            return Err("content-type is not application/json".into());
        }
        let ts: i64 = timestamp.parse().map_err(|_| format!("timestamp {timestamp:?}"))?;
        if (Utc::now().timestamp() - ts).abs() > 300 {
            return Err(format!("timestamp {ts} is too far from now"));
        }
        let mut signed = format!("{id}.{timestamp}.").into_bytes();
        signed.extend_from_slice(body);
        let valid = signatures.split(' ').any(|entry| {
            entry
                .strip_prefix("v1,")
                .and_then(|sig| BASE64.decode(sig).ok())
                .is_some_and(|sig| hmac::verify(&self.key, &signed, &sig).is_ok())
        });
        if !valid {
            return Err(format!("no valid v1 signature in {signatures:?}"));
        }
        let record: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
        if record["id"] != id.as_str() {
            return Err("the body's id is not the webhook-id".into());
        }
        if record["source"] != "mastercard-cen" || !record["notification"].is_object() {
            return Err("the body is not a SPEC 6 record".into());
        }
        Ok(id)
    }
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let id = match r.verify(&headers, &body) {
        Ok(id) => id,
        Err(why) => {
            r.bad.fetch_add(1, Ordering::SeqCst);
            r.bad_reasons.lock().unwrap().push(why);
            return StatusCode::UNAUTHORIZED;
        }
    };
    let asked_before = {
        let mut requests = r.requests.lock().unwrap();
        let n = requests.entry(id.clone()).or_default();
        *n += 1;
        *n - 1
    };
    let answer = r.answer.lock().unwrap().clone();
    let code = answer(&id, asked_before);
    *r.answers.lock().unwrap().entry(code).or_default() += 1;
    if (200..300).contains(&code) {
        *r.accepted.lock().unwrap().entry(id).or_default() += 1;
    }
    StatusCode::from_u16(code).unwrap()
}

/// Serves `receiver` on `listener` until `stop`.
fn serve(receiver: Arc<Receiver>, listener: tokio::net::TcpListener, stop: CancellationToken) {
    let app = axum::Router::new().route("/hooks/cen", axum::routing::post(receive)).with_state(receiver);
    tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await.unwrap();
    });
}

async fn listen() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// An environment whose daemon polls `count` notifications created over the last half
/// hour and sends them to `http://{addr}/hooks/cen` (sink `erp`, signed with [`SECRET`]),
/// retrying quickly.
async fn env_for(seed: u64, count: u64, addr: SocketAddr) -> (Env, Vec<String>) {
    let now = Utc::now();
    let sim = SimConfig::spread(seed, count, now - TimeDelta::minutes(30), now - TimeDelta::minutes(1));
    let start = format_timestamp(now - TimeDelta::minutes(40));
    let poll = format!("interval = \"1s\"\nsettle = \"5s\"\nfirst_start = \"{start}\"");
    let extra = format!(
        r#"[delivery]
backoff_initial = "50ms"
backoff_max = "200ms"

[[sinks]]
name = "erp"
type = "http"
url = "http://{addr}/hooks/cen"
secret_file = "erp-webhook-secret"
timeout = "5s"
"#
    );
    let env = Env::start_with(sim, &poll, &extra).await;
    std::fs::write(env.dir.path().join("erp-webhook-secret"), format!("{SECRET}\n")).unwrap();
    let expected = env.sim.expected_ids(now - TimeDelta::hours(1), Utc::now());
    assert_eq!(expected.len() as u64, count);
    (env, expected)
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Rows waiting for `sink` and the most attempts any of them has had.
fn outbox(env: &Env, sink: &str) -> (i64, i64) {
    let db = rusqlite::Connection::open(env.dir.path().join("state.db")).unwrap();
    db.query_row("SELECT count(*), coalesce(max(attempts), 0) FROM outbox WHERE sink = ?1", [sink], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })
    .unwrap_or((0, 0))
}

fn assert_each_once(accepted: &BTreeMap<String, usize>, expected: &[String]) {
    let missing = expected.iter().filter(|id| !accepted.contains_key(*id)).count();
    assert_eq!(missing, 0, "{missing} of {} never accepted", expected.len());
    let twice: Vec<_> = accepted.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "accepted more than once: {twice:?}");
    assert_eq!(accepted.len(), expected.len(), "ids the simulator does not have");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_notification_is_posted_once_with_a_valid_signature() {
    let receiver = Receiver::new();
    let listener = listen().await;
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    serve(receiver.clone(), listener, stop.clone());
    let (env, expected) = env_for(41, 500, addr).await;
    let started = Instant::now();
    let daemon = env.spawn_daemon();
    let done = wait_for(Duration::from_secs(60), || receiver.accepted().len() >= expected.len()).await;
    assert!(done, "{} of {} accepted:\n{}", receiver.accepted().len(), expected.len(), env.log_tail(30));
    println!("{} notifications polled and POSTed in {:.2}s", expected.len(), started.elapsed().as_secs_f64());
    let (status, _) = daemon.stop("TERM", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    assert_eq!(receiver.bad.load(Ordering::SeqCst), 0, "{:?}", receiver.bad_reasons.lock().unwrap());
    assert_each_once(&receiver.accepted(), &expected);
    assert_eq!(outbox(&env, "erp").0, 0);
    // The secret never reaches the log.
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    assert!(!log.contains(SECRET.strip_prefix("whsec_").unwrap()));
    stop.cancel();
}

/// A receiver that is down (nothing listening), then up but answering 503, then well:
/// the backlog built meanwhile drains completely, each notification accepted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_built_while_the_receiver_is_down_drains_when_it_is_back() {
    // A port with nothing listening: bound, then let go.
    let addr = listen().await.local_addr().unwrap();
    let (env, expected) = env_for(42, 400, addr).await;
    let daemon = env.spawn_daemon();
    // Down: every notification is queued, and the first ones were tried more than once.
    let backlog = wait_for(Duration::from_secs(60), || {
        let (rows, attempts) = outbox(&env, "erp");
        rows == expected.len() as i64 && attempts >= 2
    })
    .await;
    assert!(backlog, "no backlog with retries: {:?}\n{}", outbox(&env, "erp"), env.log_tail(30));
    // Up, but unwell: 503 for a while.
    let receiver = Receiver::new();
    receiver.answer_with(|_, _| 503);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let stop = CancellationToken::new();
    serve(receiver.clone(), listener, stop.clone());
    let refused = wait_for(Duration::from_secs(30), || receiver.answered(503) >= 50).await;
    assert!(refused, "the daemon did not come back to the receiver:\n{}", env.log_tail(30));
    assert!(receiver.accepted().is_empty());
    assert_eq!(outbox(&env, "erp").0, expected.len() as i64, "a 503 loses nothing");
    // Well again: everything arrives.
    receiver.answer_with(|_, _| 200);
    let recovered = Instant::now();
    let done = wait_for(Duration::from_secs(60), || receiver.accepted().len() >= expected.len()).await;
    assert!(done, "{} of {} accepted:\n{}", receiver.accepted().len(), expected.len(), env.log_tail(30));
    println!(
        "backlog of {} drained in {:.2}s after {} answers 503",
        expected.len(),
        recovered.elapsed().as_secs_f64(),
        receiver.answered(503)
    );
    let (status, _) = daemon.stop("TERM", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    assert_eq!(receiver.bad.load(Ordering::SeqCst), 0, "{:?}", receiver.bad_reasons.lock().unwrap());
    assert_each_once(&receiver.accepted(), &expected);
    assert_eq!(outbox(&env, "erp").0, 0);
    stop.cancel();
}

/// 429 (and 408) are "later", not "never": retried until accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_is_retried() {
    let receiver = Receiver::new();
    // Each id: 429, then 408, then accepted.
    receiver.answer_with(|_, before| match before {
        0 => 429,
        1 => 408,
        _ => 200,
    });
    let listener = listen().await;
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    serve(receiver.clone(), listener, stop.clone());
    let (env, expected) = env_for(43, 100, addr).await;
    let daemon = env.spawn_daemon();
    let done = wait_for(Duration::from_secs(60), || receiver.accepted().len() >= expected.len()).await;
    assert!(done, "{} of {} accepted:\n{}", receiver.accepted().len(), expected.len(), env.log_tail(30));
    let (status, _) = daemon.stop("TERM", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    assert_each_once(&receiver.accepted(), &expected);
    assert_eq!(receiver.answered(429), expected.len());
    assert_eq!(receiver.answered(408), expected.len());
    let out = env.run(&["dead-letters", "list", "--json"]).await;
    assert_eq!(out.stdout, b"[]\n", "{}", describe(&out));
    stop.cancel();
}

/// A 400 is permanent: the notification becomes a dead letter at once (one request, no
/// retries), `dead-letters list` shows it, and once the receiver accepts it,
/// `dead-letters retry` delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_a_dead_letter_and_retry_delivers_it() {
    let receiver = Receiver::new();
    let listener = listen().await;
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    serve(receiver.clone(), listener, stop.clone());
    let (env, expected) = env_for(44, 60, addr).await;
    let victim = expected[17].clone();
    {
        let victim = victim.clone();
        receiver.answer_with(move |id, _| if id == victim { 400 } else { 204 });
    }
    let daemon = env.spawn_daemon();
    let others = wait_for(Duration::from_secs(60), || receiver.accepted().len() >= expected.len() - 1).await;
    assert!(others, "{} accepted:\n{}", receiver.accepted().len(), env.log_tail(30));

    // Listed, as JSON and as a table.
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let out = env.run(&["dead-letters", "list", "--json"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if listed.as_array().is_some_and(|a| !a.is_empty()) {
            break listed;
        }
        assert!(Instant::now() < deadline, "no dead letter:\n{}", env.log_tail(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{listed:#}");
    let row = &rows[0];
    assert_eq!(row["sink"], "erp");
    assert_eq!(row["id"], victim.as_str());
    assert_eq!(row["attempts"], 1, "a permanent failure is not retried");
    assert!(row["subject"].is_string() && row["dead_at"].is_string(), "{row:#}");
    let error = row["last_error"].as_str().unwrap();
    assert!(error.contains("HTTP 400") && error.contains("dead-letters retry --sink erp"), "{error}");
    assert_eq!(receiver.requests.lock().unwrap()[&victim], 1);
    let out = env.run(&["dead-letters", "list", "--sink", "erp"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    println!("{table}");
    assert!(table.starts_with("SINK  ID") && table.contains(&victim) && table.contains("1 dead letter"), "{table}");
    // The archive sink took it; only erp gave up.
    let out = env.run(&["dead-letters", "list", "--sink", "archive"]).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no dead letters\n");
    // A sink that is not configured is a usage error.
    for action in ["list", "retry"] {
        let out = env.run(&["dead-letters", action, "--sink", "nope"]).await;
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("configured: archive, erp"), "{}", describe(&out));
    }

    // The receiver is fixed; retry.
    receiver.answer_with(|_, _| 200);
    let out = env.run(&["dead-letters", "retry", "--sink", "erp"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("sink erp: 1 dead letter back in the queue\n"), "{stdout}");
    let delivered = wait_for(Duration::from_secs(20), || receiver.accepted().contains_key(&victim)).await;
    assert!(delivered, "the retried dead letter was not delivered:\n{}", env.log_tail(30));
    let (status, _) = daemon.stop("TERM", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    assert_each_once(&receiver.accepted(), &expected);
    let out = env.run(&["dead-letters", "list"]).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no dead letters\n", "{}", describe(&out));
    let out = env.run(&["dead-letters", "retry"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("no dead letters matched"), "{}", describe(&out));
    stop.cancel();
}

/// SIGKILL during delivery, then restart (issue 5): the HTTP sink and a command sink got
/// every id at least once. Duplicates are allowed (G2: a delivery in flight at the kill may
/// be repeated) and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delivery_then_restart_delivers_every_id_at_least_once_to_http_and_command() {
    use rand::{Rng, SeedableRng};
    let receiver = Receiver::new();
    let listener = listen().await;
    let addr = listener.local_addr().unwrap();
    serve(receiver.clone(), listener, CancellationToken::new());
    let (env, expected) = env_for(77, 5000, addr).await;
    // A command sink beside the HTTP one: each run appends the record to a file.
    let mut config = std::fs::read_to_string(&env.config_path).unwrap();
    config.push_str(
        "\n[[sinks]]\nname = \"handler\"\ntype = \"command\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >> handled.jsonl\"]\ntimeout = \"10s\"\n",
    );
    std::fs::write(&env.config_path, config).unwrap();
    let handled = env.dir.path().join("handled.jsonl");
    let handled_ids = || -> BTreeMap<String, usize> {
        let mut ids = BTreeMap::new();
        for line in std::fs::read_to_string(&handled).unwrap_or_default().lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                *ids.entry(v["id"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
            }
        }
        ids
    };
    let seed: u64 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    println!("kill points from seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for k in 1..=4 {
        let mut daemon = env.spawn_daemon();
        // The kill point, not a synchronisation: whatever the daemon is doing then.
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..=1500))).await;
        assert!(daemon.exited().is_none(), "the daemon exited by itself before kill {k}:\n{}", env.log_tail(30));
        daemon.kill9().await;
        println!("kill {k}: http {} ids, command {} ids", receiver.accepted().len(), handled_ids().len());
    }
    let last = env.spawn_daemon();
    let all_in = |got: &BTreeMap<String, usize>| expected.iter().all(|id| got.contains_key(id));
    let complete = wait_for(Duration::from_secs(120), || all_in(&receiver.accepted()) && all_in(&handled_ids())).await;
    assert!(
        complete,
        "http {} / command {} of {}:\n{}",
        receiver.accepted().len(),
        handled_ids().len(),
        expected.len(),
        env.log_tail(30)
    );
    let (status, _) = last.stop("TERM", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    let http = receiver.accepted();
    let command = handled_ids();
    for got in [&http, &command] {
        assert!(got.keys().all(|id| expected.contains(id)), "ids the simulator does not have");
    }
    let repeats = |m: &BTreeMap<String, usize>| m.values().map(|n| n - 1).sum::<usize>();
    println!("repeated after kills: http {}, command {}", repeats(&http), repeats(&command));
    assert_eq!(receiver.bad.load(Ordering::SeqCst), 0, "every request carried a valid signature");
}
