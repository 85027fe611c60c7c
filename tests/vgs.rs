//! The VGS webhook endpoint (SPEC 7, issue 7): signatures, what is answered, what reaches the
//! sinks, metrics, TLS, secret rotation on SIGHUP, and log-only mode.
//!
//! The fixtures in `tests/fixtures/vgs/` are made-up events shaped like VGS's examples, one
//! per known event name plus one variant name (`cmp_au_card.enrollment.failed`). They are
//! pretty-printed on purpose: the signature covers the bytes as sent, the record carries them
//! whitespace-compacted.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;
use cen_poller::cen::notification::compact_json;
use cen_poller::config::VGS_EVENTS;
use cen_poller::simulate::SimConfig;
use cen_poller::store::SOURCE_VGS;
use chrono::{TimeDelta, Utc};
use common::pki::Ca;
use common::{Env, assert_exactly_once, wait_for};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The secret files hold text; surrounding whitespace is not part of the key.
const SECRET: &str = "vgs-test-secret-current";
const OLD_SECRET: &str = "vgs-test-secret-previous";
const PATH: &str = "/webhooks/vgs/account-updater";

/// A fixture: its file's text (pretty-printed) and its `id` and `event`.
struct Fixture {
    text: String,
    id: String,
    event: String,
    timestamp: String,
}

fn fixtures() -> Vec<Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vgs");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let v: Value = serde_json::from_str(&text).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_owned();
            Fixture { id: s("id"), event: s("event"), timestamp: s("timestamp"), text }
        })
        .collect()
}

fn tag(secret: &str, body: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()), body).as_ref().to_vec()
}

fn hex_sig(secret: &str, body: &[u8]) -> String {
    hex::encode(tag(secret, body))
}

fn b64_sig(secret: &str, body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(tag(secret, body))
}

/// A daemon (in-process, `service::start`) with a `[vgs]` endpoint.
struct Daemon {
    env: Env,
    running: cen_poller::service::Running,
    shutdown: CancellationToken,
    url: String,
    client: reqwest::Client,
}

impl Daemon {
    /// `vgs` is the `[vgs]` section's lines after `listen`; `files` are written next to the
    /// configuration first; `more` is TOML after the section (more sinks).
    async fn start(vgs: &str, files: &[(&str, &str)], more: &str, ca: Option<&Ca>) -> Daemon {
        let sim = SimConfig::bounded(71, Utc::now() - TimeDelta::minutes(5), 1.0, 1);
        let extra = format!("[vgs]\nlisten = \"127.0.0.1:0\"\n{vgs}\n\n{more}");
        let env = Env::start_with(sim, "interval = \"1h\"", &extra).await;
        for (name, content) in files {
            std::fs::write(env.dir.path().join(name), content).unwrap();
        }
        let shutdown = CancellationToken::new();
        let running = cen_poller::service::start(&env.config(), shutdown.clone()).await.unwrap();
        let port = running.vgs.as_ref().expect("[vgs] starts the endpoint").addr.port();
        let (scheme, host) = if ca.is_some() { ("https", "localhost") } else { ("http", "127.0.0.1") };
        let mut client = reqwest::Client::builder().timeout(Duration::from_secs(20));
        if let Some(ca) = ca {
            client = client.tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()]);
        }
        Daemon {
            env,
            running,
            shutdown,
            url: format!("{scheme}://{host}:{port}{PATH}"),
            client: client.build().unwrap(),
        }
    }

    async fn post(&self, body: &[u8], signature: Option<(&str, &str)>) -> (u16, Value) {
        let mut r = self.client.post(&self.url).header("content-type", "application/json").body(body.to_vec());
        if let Some((name, value)) = signature {
            r = r.header(name, value);
        }
        let response = r.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn stored(&self) -> u64 {
        self.running.store.count_created(SOURCE_VGS, 0, i64::MAX, vec![]).await.unwrap()
    }

    /// The VGS records of the file sink `file`, by id, each with how often it appears.
    fn vgs_records(&self, file: &str) -> BTreeMap<String, Vec<String>> {
        let text = std::fs::read_to_string(self.env.dir.path().join(file)).unwrap_or_default();
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let id = v["id"].as_str().unwrap();
            if id.starts_with("vgs:") {
                out.entry(id.to_owned()).or_default().push(line.to_owned());
            }
        }
        out
    }

    async fn metrics(&self) -> prometheus_parse::Scrape {
        let text =
            reqwest::get(format!("http://{}/metrics", self.running.admin_addr)).await.unwrap().text().await.unwrap();
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.running.join(Duration::from_secs(10)).await;
    }
}

/// The value of the sample `name` whose labels include all of `labels` (0 when absent).
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// The `notification` member of a record line exactly as written: the record's members come
/// in a fixed order and `notification` is the last, after `created_timestamp` (whose value
/// is a plain timestamp string). This is how the README extracts a body to check by hand.
fn notification_text(line: &str) -> &str {
    let after = line.find("\"created_timestamp\":").unwrap();
    let start = after + line[after..].find(",\"notification\":").unwrap() + ",\"notification\":".len();
    &line[start..line.len() - 1]
}

fn signed_section() -> String {
    "signing_secret_file = \"vgs-secret\"\nextra_signing_secret_files = [\"vgs-secret-old\"]\nmax_body = \"8KiB\""
        .into()
}

fn secret_files() -> Vec<(&'static str, &'static str)> {
    // Written with the whitespace an editor or `echo` leaves; it is trimmed.
    vec![("vgs-secret", "  vgs-test-secret-current\n"), ("vgs-secret-old", "vgs-test-secret-previous\n\n")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_events_of_every_kind_reach_the_sinks_once_exactly_as_sent() {
    let updates_sink = "[[sinks]]\nname = \"updates\"\ntype = \"file\"\npath = \"updates.jsonl\"\nsubjects = [\"cmp_au_card.updated\", \"au_card.updated\"]\n";
    let d = Daemon::start(&signed_section(), &secret_files(), updates_sink, None).await;
    let all = fixtures();
    assert_eq!(all.len(), VGS_EVENTS.len() + 1, "one fixture per known event, plus a variant name");
    for name in VGS_EVENTS {
        assert!(all.iter().any(|f| f.event == name), "no fixture for {name}");
    }

    // Every signature form, header names in any case, and the previous secret (rotation).
    for (i, f) in all.iter().enumerate() {
        let body = f.text.as_bytes();
        let secret = if i % 5 == 4 { OLD_SECRET } else { SECRET };
        let value = match i % 4 {
            0 => hex_sig(secret, body),
            1 => b64_sig(secret, body),
            2 => format!("sha256={}", hex_sig(secret, body)),
            _ => format!("sha256={}", b64_sig(secret, body)),
        };
        let header = ["vgs-signature", "VGS-Signature", "Vgs-Signature"][i % 3];
        let (status, answer) = d.post(body, Some((header, &value))).await;
        assert_eq!((status, &answer), (200, &json!({"status": "ok"})), "{}", f.event);
    }
    // Re-sent (VGS retries when an answer is lost): answered 200, not delivered again.
    for f in &all {
        let (status, answer) =
            d.post(f.text.as_bytes(), Some(("vgs-signature", &hex_sig(SECRET, f.text.as_bytes())))).await;
        assert_eq!((status, answer), (200, json!({"status": "ok"})), "{}", f.event);
    }
    assert_eq!(d.stored().await, all.len() as u64);

    let expected: Vec<String> = all.iter().map(|f| format!("vgs:{}", f.id)).collect();
    let delivered = wait_for(Duration::from_secs(20), || d.vgs_records("notifications.jsonl").len() == all.len()).await;
    assert!(delivered, "delivered {} of {}", d.vgs_records("notifications.jsonl").len(), all.len());
    // A moment more: nothing else may arrive (the duplicates are not queued).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records = d.vgs_records("notifications.jsonl");
    let counts: BTreeMap<String, usize> = records.iter().map(|(id, lines)| (id.clone(), lines.len())).collect();
    assert_exactly_once(&counts, &expected);
    for f in &all {
        let line = &records[&format!("vgs:{}", f.id)][0];
        let record: Value = serde_json::from_str(line).unwrap();
        assert_eq!(record["source"], "vgs");
        assert_eq!(record["received_via"], "push");
        assert_eq!(record["subject"], f.event.as_str());
        assert_eq!(record["subscription_name"], Value::Null);
        assert_eq!(record["created_timestamp"], f.timestamp.as_str());
        // The body exactly as sent, insignificant whitespace removed.
        assert_eq!(notification_text(line), compact_json(&f.text), "{}", f.event);
    }
    // Routing by `subjects`: the second sink takes the two update events only.
    let updates = wait_for(Duration::from_secs(10), || d.vgs_records("updates.jsonl").len() == 2).await;
    let routed: Vec<String> = d.vgs_records("updates.jsonl").into_values().map(|l| l[0].clone()).collect();
    assert!(updates, "{routed:?}");
    for line in routed {
        let subject = serde_json::from_str::<Value>(&line).unwrap()["subject"].as_str().unwrap().to_owned();
        assert!(subject == "cmp_au_card.updated" || subject == "au_card.updated", "{subject}");
    }

    let m = d.metrics().await;
    let received = "cen_notifications_received_total";
    for f in &all {
        let labels = [("source", "vgs"), ("via", "push"), ("subject", f.event.as_str())];
        assert_eq!(sample(&m, received, &labels), 1.0, "{}", f.event);
        let unknown = sample(&m, "cen_notifications_unknown_event_total", &labels);
        assert_eq!(unknown, if VGS_EVENTS.contains(&f.event.as_str()) { 0.0 } else { 1.0 }, "{}", f.event);
    }
    assert_eq!(sample(&m, received, &[("source", "vgs")]), all.len() as f64);
    let dups = sample(&m, "cen_notifications_duplicate_total", &[("source", "vgs"), ("via", "push")]);
    assert_eq!(dups, all.len() as f64);
    assert_eq!(sample(&m, "cen_vgs_requests_total", &[("code", "200")]), 2.0 * all.len() as f64);
    assert_eq!(sample(&m, "cen_vgs_requests_total", &[("code", "401")]), 0.0);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_malformed_and_oversize_bodies_are_refused_and_store_nothing() {
    let d = Daemon::start(&signed_section(), &secret_files(), "", None).await;
    let f = &fixtures()[0];
    let body = f.text.as_bytes();
    let other = fixtures()[1].text.clone();
    let good = hex_sig(SECRET, body);

    let refused: Vec<(&str, Option<String>)> = vec![
        ("unsigned", None),
        ("empty header", Some(String::new())),
        ("another secret", Some(hex_sig("not-the-secret", body))),
        ("the untrimmed secret file as key", Some(hex_sig("  vgs-test-secret-current\n", body))),
        ("another body's signature", Some(hex_sig(SECRET, other.as_bytes()))),
        ("signed compacted, sent pretty", Some(hex_sig(SECRET, compact_json(&f.text).as_bytes()))),
        ("a truncated signature", Some(good[..40].to_owned())),
        ("one flipped digit", Some(format!("{}{}", if good.starts_with('0') { "1" } else { "0" }, &good[1..]))),
        ("the secret itself", Some(SECRET.to_owned())),
        ("another scheme's prefix", Some(format!("sha1={good}"))),
    ];
    for (what, signature) in &refused {
        let (status, answer) = d.post(body, signature.as_deref().map(|s| ("vgs-signature", s))).await;
        assert_eq!(status, 401, "{what}");
        assert_eq!(answer["status"], "error", "{what}");
    }
    // A good signature over a changed body (one byte added).
    let mut changed = body.to_vec();
    changed.push(b' ');
    assert_eq!(d.post(&changed, Some(("vgs-signature", &good))).await.0, 401);

    // Signed but malformed: 400, naming what is wrong.
    let sign = |b: &[u8]| hex_sig(SECRET, b);
    let malformed: Vec<(&str, Vec<u8>)> = {
        let mut v: Vec<(&str, Vec<u8>)> = vec![
            ("truncated JSON", body[..body.len() / 2].to_vec()),
            ("an array", format!("[{}]", f.text).into_bytes()),
            ("not UTF-8", b"{\"id\":\"\xff\"}".to_vec()),
            ("empty", Vec::new()),
        ];
        for member in ["id", "event", "timestamp", "details"] {
            let mut event: Value = serde_json::from_str(&f.text).unwrap();
            event.as_object_mut().unwrap().remove(member);
            v.push((member, serde_json::to_vec(&event).unwrap()));
        }
        v
    };
    for (what, bad) in &malformed {
        let (status, answer) = d.post(bad, Some(("vgs-signature", &sign(bad)))).await;
        assert_eq!(status, 400, "{what}: {answer}");
        if ["id", "event", "timestamp", "details"].contains(what) {
            assert!(answer["error"].as_str().unwrap().contains(&format!("`{what}`")), "{answer}");
        }
    }
    // Over max_body (8 KiB), signed or not: 413.
    let mut big: Value = serde_json::from_str(&f.text).unwrap();
    big["details"]["padding"] = json!("x".repeat(9000));
    let big = serde_json::to_vec(&big).unwrap();
    assert_eq!(d.post(&big, Some(("vgs-signature", &sign(&big)))).await.0, 413);
    assert_eq!(d.post(&big, None).await.0, 413);
    // Other paths and methods.
    let other_path = d.url.replace(PATH, "/webhooks/vgs/other");
    assert_eq!(d.client.post(&other_path).body(body.to_vec()).send().await.unwrap().status(), 404);
    assert_eq!(d.client.get(&d.url).send().await.unwrap().status(), 405);
    assert_eq!(d.client.put(&d.url).body(body.to_vec()).send().await.unwrap().status(), 405);
    assert_eq!(d.stored().await, 0, "nothing stored from any of them");

    // A store that cannot commit (another process holds the write lock past the busy
    // timeout): 503, so VGS retries; then the retry is stored.
    let blocker = rusqlite::Connection::open(d.env.dir.path().join("state.db")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let slow = d
        .client
        .post(&d.url)
        .timeout(Duration::from_secs(60))
        .header("vgs-signature", &good)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 503);
    blocker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(d.post(body, Some(("vgs-signature", &good))).await.0, 200);
    assert_eq!(d.stored().await, 1);

    let m = d.metrics().await;
    let code = |c: &str| sample(&m, "cen_vgs_requests_total", &[("code", c)]);
    assert_eq!(code("401"), (refused.len() + 1) as f64);
    assert_eq!(code("400"), malformed.len() as f64);
    assert_eq!(code("413"), 2.0);
    assert_eq!(code("404"), 1.0);
    assert_eq!(code("405"), 2.0);
    assert_eq!(code("503"), 1.0);
    assert_eq!(code("200"), 1.0);
    assert_eq!(sample(&m, "cen_push_requests_total", &[]), 0.0, "counted as VGS requests, not push");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_generated_certificate_and_secret_rotation_on_reload() {
    let ca = Ca::new("Test VGS server CA");
    let server = ca.server();
    let mut files: Vec<(&str, &str)> = secret_files();
    files.push(("vgs.pem", &server.cert_pem));
    files.push(("vgs-key.pem", &server.key_pem));
    let section = "signing_secret_file = \"vgs-secret\"\ncert = \"vgs.pem\"\nkey = \"vgs-key.pem\"";
    let d = Daemon::start(section, &files, "", Some(&ca)).await;
    let all = fixtures();
    let (a, b) = (&all[2], &all[3]);

    assert_eq!(d.post(a.text.as_bytes(), Some(("vgs-signature", &b64_sig(SECRET, a.text.as_bytes())))).await.0, 200);
    assert_eq!(d.post(a.text.as_bytes(), None).await.0, 401, "TLS does not replace the signature");
    // Plain HTTP on the TLS port gets no answer.
    let plain = d.url.replace("https://localhost", "http://127.0.0.1");
    assert!(reqwest::Client::new().post(&plain).body("{}").timeout(Duration::from_secs(5)).send().await.is_err());

    // VGS rotates to a new secret: until the new one is configured, its signatures fail…
    let new_secret = "vgs-test-secret-next";
    let b_new = hex_sig(new_secret, b.text.as_bytes());
    assert_eq!(d.post(b.text.as_bytes(), Some(("vgs-signature", &b_new))).await.0, 401);
    // …then a SIGHUP reload with the new secret added accepts both.
    std::fs::write(d.env.dir.path().join("vgs-secret-next"), new_secret).unwrap();
    let config = std::fs::read_to_string(&d.env.config_path).unwrap().replace(
        "signing_secret_file = \"vgs-secret\"",
        "signing_secret_file = \"vgs-secret-next\"\nextra_signing_secret_files = [\"vgs-secret\"]",
    );
    std::fs::write(&d.env.config_path, config).unwrap();
    d.running.reload(&d.env.config_path);
    assert_eq!(d.post(b.text.as_bytes(), Some(("vgs-signature", &b_new))).await.0, 200);
    let c = &all[4];
    assert_eq!(d.post(c.text.as_bytes(), Some(("vgs-signature", &hex_sig(SECRET, c.text.as_bytes())))).await.0, 200);
    // A reload that breaks the secret changes nothing.
    std::fs::write(d.env.dir.path().join("vgs-secret-next"), "\n").unwrap();
    d.running.reload(&d.env.config_path);
    let m = d.metrics().await;
    assert_eq!(sample(&m, "cen_config_reloads_total", &[("outcome", "error")]), 1.0);
    assert_eq!(d.post(b.text.as_bytes(), Some(("vgs-signature", &b_new))).await.0, 200, "still the old secrets");

    assert!(wait_for(Duration::from_secs(20), || d.vgs_records("notifications.jsonl").len() == 3).await);
    d.stop().await;
}

/// Log-only mode, run as the real binary so its log can be read: unsigned and badly signed
/// events are accepted and delivered, the log says what arrived (and not the body), and a
/// malformed body is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_only_mode_accepts_and_logs_unverified_events_without_their_content() {
    let sim = SimConfig::bounded(72, Utc::now() - TimeDelta::minutes(5), 1.0, 1);
    let extra = "[vgs]\nlisten = \"127.0.0.1:0\"\nsigning_secret_file = \"vgs-secret\"\nverify = \"log-only\"\n\n[log]\nformat = \"json\"\n";
    let env = Env::start_with(sim, "interval = \"1h\"", extra).await;
    std::fs::write(env.dir.path().join("vgs-secret"), SECRET).unwrap();
    let daemon = env.spawn_daemon();
    let log = || std::fs::read_to_string(env.log_path()).unwrap_or_default();
    let listening = |text: &str| -> Option<String> {
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["message"] == "vgs endpoint listening")
            .and_then(|v| v["addr"].as_str().map(str::to_owned))
    };
    assert!(wait_for(Duration::from_secs(30), || listening(&log()).is_some()).await, "{}", env.log_tail(20));
    let url = format!("http://{}{PATH}", listening(&log()).unwrap());
    let client = reqwest::Client::new();
    let post = |body: &str, signature: Option<String>| {
        let mut r = client.post(&url).body(body.to_owned());
        if let Some(s) = signature {
            r = r.header("vgs-signature", s);
        }
        r.send()
    };

    let all = fixtures();
    let (unsigned, bad, good) = (&all[5], &all[6], &all[7]);
    assert_eq!(post(&unsigned.text, None).await.unwrap().status(), 200);
    let wrong = hex_sig("not-the-secret", bad.text.as_bytes());
    assert_eq!(post(&bad.text, Some(wrong.clone())).await.unwrap().status(), 200);
    assert_eq!(post(&good.text, Some(hex_sig(SECRET, good.text.as_bytes()))).await.unwrap().status(), 200);
    let malformed = "{\"id\":";
    let signed = Some(hex_sig(SECRET, malformed.as_bytes()));
    assert_eq!(post(malformed, signed).await.unwrap().status(), 400, "malformed is still refused");
    assert_eq!(post(&bad.text, Some(SECRET.to_owned())).await.unwrap().status(), 200, "duplicate");

    let expected: Vec<String> = [unsigned, bad, good].iter().map(|f| format!("vgs:{}", f.id)).collect();
    let delivered = wait_for(Duration::from_secs(20), || {
        let ids = env.sink_ids();
        expected.iter().all(|id| ids.contains_key(id))
    })
    .await;
    assert!(delivered, "{}", env.log_tail(20));
    let (status, _) = daemon.stop("TERM", Duration::from_secs(20)).await;
    assert!(status.success());

    let text = log();
    let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let unverified: Vec<&Value> =
        lines.iter().filter(|l| l["message"].as_str().is_some_and(|m| m.contains("signature not verified"))).collect();
    assert_eq!(unverified.len(), 3, "{text}");
    assert!(unverified.iter().all(|l| l["level"] == "WARN"));
    assert_eq!(unverified[0]["reason"], "missing");
    assert_eq!(unverified[1]["reason"], "mismatch");
    assert_eq!(unverified[1]["signature"], wrong.as_str(), "the header as received");
    assert_eq!(unverified[1]["body_len"], bad.text.len());
    assert_eq!(
        unverified[1]["body_sha256"],
        hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bad.text.as_bytes())).as_str()
    );
    assert_eq!(unverified[1]["body_compact"], false, "the fixtures are pretty-printed");
    assert_eq!(unverified[2]["reason"], "secret_itself");
    assert!(lines.iter().any(|l| l["message"].as_str().is_some_and(|m| m.contains("signature verified"))), "{text}");
    // G6: neither the secret nor anything of the bodies (card ids, masked numbers, BINs).
    assert!(!text.contains(SECRET), "the secret was logged");
    for f in [unsigned, bad, good] {
        let v: Value = serde_json::from_str(&f.text).unwrap();
        for (key, value) in v["details"].as_object().unwrap() {
            // Long values with a letter or a mask in them: short or all-digit ones (last4,
            // expiry dates) could turn up by chance in a port, a time or a hash.
            let telling = |s: &&str| s.len() >= 8 && !s.chars().all(|c| c.is_ascii_digit());
            if let Some(s) = value.as_str().filter(telling) {
                assert!(!text.contains(s), "details.{key} of {} is in the log", f.event);
            }
        }
    }
}
