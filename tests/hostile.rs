//! The daemon's three listeners (push over mTLS, VGS over plain HTTP, admin) tried as an
//! attacker would (SPEC G5, section 7): connections that say nothing are closed within the
//! configured deadline on each; a legitimate push and a signed VGS event are served and
//! stored while idle clients fill every slot; and mutated bodies each get an answer the
//! spec allows, with nothing stored from a refused one.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use cen_poller::simulate::SimConfig;
use cen_poller::store::{SOURCE_CEN, SOURCE_VGS};
use chrono::{TimeDelta, Utc};
use common::Env;
use common::pki::{Ca, Leaf};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const VGS_SECRET: &str = "hostile-test-secret";
const VGS_PATH: &str = "/webhooks/vgs/account-updater";
/// Longer than any limit: a test that reaches it has failed.
const GUARD: Duration = Duration::from_secs(30);

struct Daemon {
    env: Env,
    running: cen_poller::service::Running,
    shutdown: CancellationToken,
    server_ca: Ca,
    client: Leaf,
}

impl Daemon {
    /// A daemon with push, VGS and admin listeners, each with `limits` (TOML lines of a
    /// `[*.limits]` table).
    async fn start(limits: &str) -> Daemon {
        let server_ca = Ca::new("hostile server CA");
        let client_ca = Ca::new("hostile client CA");
        let client = client_ca.client("mastercard", &[]);
        let sim = SimConfig::bounded(91, Utc::now() - TimeDelta::minutes(5), 1.0, 1);
        let extra = format!(
            "[push]\nlisten = \"127.0.0.1:0\"\ncert = \"server.pem\"\nkey = \"server-key.pem\"\nclient_ca = \"client-ca.pem\"\nmax_body = \"64KiB\"\n[push.limits]\n{limits}\n\n[vgs]\nlisten = \"127.0.0.1:0\"\nsigning_secret_file = \"vgs-secret\"\nmax_body = \"64KiB\"\n[vgs.limits]\n{limits}\n\n[admin.limits]\n{limits}\n"
        );
        let env = Env::start_with(sim, "interval = \"1h\"", &extra).await;
        let d = env.dir.path();
        let server = server_ca.server();
        std::fs::write(d.join("server.pem"), &server.cert_pem).unwrap();
        std::fs::write(d.join("server-key.pem"), &server.key_pem).unwrap();
        std::fs::write(d.join("client-ca.pem"), &client_ca.pem).unwrap();
        std::fs::write(d.join("vgs-secret"), VGS_SECRET).unwrap();
        let shutdown = CancellationToken::new();
        let running = cen_poller::service::start(&env.config(), shutdown.clone()).await.unwrap();
        let d = Daemon { env, running, shutdown, server_ca, client };
        // The first poll cycle stores the simulator's one notification; wait for it, so that
        // the counts the tests compare change only by what they send.
        let started = Instant::now();
        while d.stored(SOURCE_CEN).await < 1 {
            assert!(started.elapsed() < GUARD, "the first poll cycle did not complete: {}", d.env.log_tail(20));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        d
    }

    fn push_addr(&self) -> SocketAddr {
        self.running.push.as_ref().unwrap().addr
    }

    fn vgs_addr(&self) -> SocketAddr {
        self.running.vgs.as_ref().unwrap().addr
    }

    /// An HTTPS client with Mastercard's (test) client certificate, on new connections.
    fn push_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.server_ca.pem.as_bytes()).unwrap()])
            .identity(
                reqwest::Identity::from_pem(format!("{}{}", self.client.cert_pem, self.client.key_pem).as_bytes())
                    .unwrap(),
            )
            .timeout(GUARD)
            .build()
            .unwrap()
    }

    async fn stored(&self, source: &'static str) -> u64 {
        self.running.store.count_created(source, 0, i64::MAX, vec![]).await.unwrap()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.running.join(Duration::from_secs(10)).await;
    }
}

fn vgs_signature(body: &[u8]) -> String {
    hex::encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, VGS_SECRET.as_bytes()), body))
}

fn vgs_event(id: &str) -> Vec<u8> {
    json!({"id": id, "event": "cmp_au_card.updated", "timestamp": "2026-11-22T10:00:00Z",
           "details": {"card": {"last4": "4444", "exp_month": 12, "exp_year": 2030}}})
    .to_string()
    .into_bytes()
}

fn push_body(n: usize) -> Vec<u8> {
    let t = cen_poller::cen::notification::format_timestamp(Utc::now());
    let items: Vec<Value> = (0..n)
        .map(|i| {
            json!({"subject": "CLEARING", "subscriptionName": "ops", "createdTimestamp": t,
                        "content": {"amount": i, "currency": "EUR", "note": "hostile-test"}})
        })
        .collect();
    serde_json::to_vec(&items).unwrap()
}

/// Waits until the server closes `stream`; returns how long after `since`.
async fn closed_after(mut stream: impl tokio::io::AsyncRead + Unpin, since: Instant) -> Duration {
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(GUARD, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the connection was still open after {GUARD:?}");
    since.elapsed()
}

/// A TLS connection to the push endpoint with the client certificate, handshake complete.
async fn push_tls(d: &Daemon) -> tokio_rustls::client::TlsStream<TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from_pem_slice(d.server_ca.pem.as_bytes()).unwrap()).unwrap();
    let chain = vec![rustls_pki_types::CertificateDer::from_pem_slice(d.client.cert_pem.as_bytes()).unwrap()];
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(d.client.key_pem.as_bytes()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let tcp = TcpStream::connect(d.push_addr()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    // TLS 1.3 sends the client certificate after the client's Finished: a byte read (none
    // comes) makes sure the server has taken it.
    let mut b = [0u8; 1];
    let _ = tokio::time::timeout(Duration::from_millis(50), tls.read(&mut b)).await;
    tls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_closes_connections_that_say_nothing_within_its_deadline() {
    let d = Daemon::start("header_timeout = \"600ms\"\nidle_timeout = \"1500ms\"").await;
    let limit = Duration::from_millis(600);
    let slack = Duration::from_secs(3);
    let check = |what: &str, after: Duration| {
        assert!(after >= limit && after < limit + slack, "{what}: closed after {after:?}; the deadline is {limit:?}");
    };
    let since = Instant::now();
    let silent = [
        TcpStream::connect(d.push_addr()).await.unwrap(),
        TcpStream::connect(d.vgs_addr()).await.unwrap(),
        TcpStream::connect(d.running.admin_addr).await.unwrap(),
    ];
    let tls = push_tls(&d).await;
    let mut partial = TcpStream::connect(d.vgs_addr()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut partial, &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..23]).await.unwrap();
    let mut waits = Vec::new();
    for (what, stream) in ["push (no TLS)", "vgs", "admin"].into_iter().zip(silent) {
        waits.push(tokio::spawn(async move { (what, closed_after(stream, since).await) }));
    }
    waits.push(tokio::spawn(async move { ("push (TLS, then nothing)", closed_after(tls, since).await) }));
    waits.push(tokio::spawn(
        async move { ("vgs (23 bytes of the HTTP/2 preface)", closed_after(partial, since).await) },
    ));
    for wait in waits {
        let (what, after) = wait.await.unwrap();
        check(what, after);
    }
    // The listeners still serve.
    let answer = d.push_client().post(format!("https://localhost:{}/notifications", d.push_addr().port()));
    assert_eq!(answer.body(push_body(1)).send().await.unwrap().status(), 200);
    let health = reqwest::get(format!("http://{}/healthz", d.running.admin_addr)).await.unwrap();
    assert_eq!(health.status(), 200);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_and_a_vgs_event_are_served_while_idle_clients_fill_every_slot() {
    // Deadlines longer than the test: only giving way at the cap lets the requests in.
    let d = Daemon::start("max_connections = 8\nheader_timeout = \"60s\"\nidle_timeout = \"60s\"").await;
    let mut idle = Vec::new();
    for addr in [d.push_addr(), d.vgs_addr(), d.running.admin_addr] {
        for _ in 0..40 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
    }
    let started = Instant::now();
    let (cen_before, vgs_before) = (d.stored(SOURCE_CEN).await, d.stored(SOURCE_VGS).await);
    let push = d
        .push_client()
        .post(format!("https://localhost:{}/notifications", d.push_addr().port()))
        .body(push_body(3))
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 200);
    assert_eq!(push.json::<Value>().await.unwrap()["accepted"], 3);
    let body = vgs_event("evt-saturated");
    let vgs = reqwest::Client::new()
        .post(format!("http://{}{VGS_PATH}", d.vgs_addr()))
        .header("vgs-signature", vgs_signature(&body))
        .body(body)
        .timeout(GUARD)
        .send()
        .await
        .unwrap();
    assert_eq!(vgs.status(), 200);
    let metrics = reqwest::Client::new().get(format!("http://{}/metrics", d.running.admin_addr)).timeout(GUARD);
    assert_eq!(metrics.send().await.unwrap().status(), 200);
    assert!(started.elapsed() < Duration::from_secs(15), "served only after {:?}", started.elapsed());
    assert_eq!(d.stored(SOURCE_CEN).await, cen_before + 3);
    assert_eq!(d.stored(SOURCE_VGS).await, vgs_before + 1);
    drop(idle);
    d.stop().await;
}

/// Mutates `body`: flips, deletes, inserts or duplicates bytes, or truncates it.
fn mutate(body: &[u8], rng: &mut impl Rng) -> Vec<u8> {
    const NASTY: &[&[u8]] = &[
        b"\"", b"\\", b"{", b"}", b"[", b"]", b",", b":", b"null", b"\\u0000", b"\\uD800", b"1e999", b"\xff", b"\x00",
    ];
    let mut out = body.to_vec();
    for _ in 0..rng.random_range(1..4) {
        if out.is_empty() {
            break;
        }
        let at = rng.random_range(0..out.len());
        match rng.random_range(0..5) {
            0 => out[at] ^= 1 << rng.random_range(0..8),
            1 => {
                out.remove(at);
            }
            2 => {
                let nasty = NASTY[rng.random_range(0..NASTY.len())];
                out.splice(at..at, nasty.iter().copied());
            }
            3 => out.truncate(at),
            _ => {
                let end = (at + rng.random_range(1..16)).min(out.len());
                let piece = out[at..end].to_vec();
                out.splice(at..at, piece);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_bodies_get_an_allowed_answer_and_a_refused_one_stores_nothing() {
    let d = Daemon::start("").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_cafe);
    let push = d.push_client();
    let push_url = format!("https://localhost:{}/notifications", d.push_addr().port());
    let base = push_body(2);
    let mut answers = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..300 {
        let body = mutate(&base, &mut rng);
        let before = d.stored(SOURCE_CEN).await;
        let answer = push.post(&push_url).body(body.clone()).send().await.unwrap();
        let status = answer.status().as_u16();
        let json: Value = answer.json().await.unwrap_or_else(|e| panic!("mutation {i}: the answer is not JSON: {e}"));
        let after = d.stored(SOURCE_CEN).await;
        *answers.entry(status).or_default() += 1;
        match status {
            200 => assert_eq!(after - before, json["accepted"].as_u64().unwrap(), "mutation {i}: {json}"),
            400 => {
                assert_eq!(after, before, "mutation {i}: a refused body stored something");
                assert_eq!(json["status"], "error");
            }
            other => panic!("mutation {i}: answered {other} ({json}) to {:?}", String::from_utf8_lossy(&body)),
        }
    }
    assert!(answers.get(&400).copied().unwrap_or(0) > 150, "most mutations must be refused: {answers:?}");

    let vgs = reqwest::Client::builder().timeout(GUARD).build().unwrap();
    let vgs_url = format!("http://{}{VGS_PATH}", d.vgs_addr());
    let base = vgs_event("evt-mutated");
    let mut answers = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..300 {
        let body = mutate(&base, &mut rng);
        // Half signed after the mutation (the parser is tried), half with the original's
        // signature (the signature check is).
        let signature = if i % 2 == 0 { vgs_signature(&body) } else { vgs_signature(&base) };
        let before = d.stored(SOURCE_VGS).await;
        let answer = vgs.post(&vgs_url).header("vgs-signature", signature).body(body.clone()).send().await.unwrap();
        let status = answer.status().as_u16();
        let json: Value = answer.json().await.unwrap_or_else(|e| panic!("mutation {i}: the answer is not JSON: {e}"));
        let after = d.stored(SOURCE_VGS).await;
        *answers.entry(status).or_default() += 1;
        match status {
            200 => assert!(after - before <= 1, "mutation {i}"),
            400 | 401 => assert_eq!(after, before, "mutation {i}: a refused body stored something"),
            other => panic!("mutation {i}: answered {other} ({json}) to {:?}", String::from_utf8_lossy(&body)),
        }
        if i % 2 == 1 && body != base {
            assert_eq!(status, 401, "mutation {i}: a changed body passed the original's signature");
        }
    }
    assert!(answers.get(&401).copied().unwrap_or(0) >= 140, "{answers:?}");
    d.stop().await;
}
