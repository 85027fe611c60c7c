//! End-to-end latency: from a push request being sent to the `http` sink's receiver getting
//! the record (issue 17, "Performance must not regress"), at a fixed rate.
//!
//! Everything runs on 127.0.0.1 and stops by itself:
//! - the daemon is the release binary `cen-poller` (a child process, `--bin`, by default the
//!   one next to this example's directory, i.e. `target/release/cen-poller`), with a config
//!   written to a temp dir: `[push]` over mTLS (rcgen certificates made here: a server CA and
//!   a server certificate for `localhost`/`127.0.0.1`, a client CA and a client certificate
//!   `CN=bench-pusher`), one `http` sink, and a poller pointed at an in-process simulator
//!   holding no notifications, polled once an hour;
//! - the `http` sink's URL is a receiver run here (axum) that notes the arrival instant of
//!   each record, keyed by its `webhook-id` header (= the record's `id`);
//! - N kept-alive HTTP/1.1 mTLS connections (one reqwest client each, one request at a
//!   time) send one notification per request on a fixed schedule: request `n` is due at
//!   `start + n / rate`, connection `n % N` sends it. Each notification is the simulator's
//!   realistic kind (~1.8 KB) with a unique key, so ids differ; its id is computed here with
//!   the daemon's own function before the send instant is taken.
//!
//! Latency = arrival − send, per notification, both instants from this process's monotonic
//! clock. Notifications sent in the first `--warmup` are left out of the percentiles (TLS
//! handshakes, first statements, connection pools); every notification answered 200 counts
//! for `lost`, which must be 0 (exit 1 otherwise). `ack` is the push request's own latency
//! (send to the 200 answer, i.e. TLS + parse + durable commit), for comparison.
//!
//! `bench/latency.sh` builds and runs it; by hand:
//! `cargo build --release --bin cen-poller --example push_latency &&
//!  target/release/examples/push_latency --rate 1000 --duration 20s --connections 4`

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clap::Parser;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

#[derive(Parser)]
struct Args {
    /// Notifications per second (one per request), spread over the connections
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// How long to send, in seconds (`20` or `20s`)
    #[arg(long, default_value = "20s")]
    duration: String,
    /// Kept-alive mTLS connections to the push endpoint
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Notifications sent in this first part of the run are not in the percentiles (seconds)
    #[arg(long, default_value = "1s")]
    warmup: String,
    /// How long to wait after the last send for the records still on their way (seconds)
    #[arg(long, default_value = "10s")]
    drain: String,
    /// The daemon binary; default: `cen-poller` in the directory above this example's
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Keep the temp dir (config, certificates, state.db, daemon.log) and print its path
    #[arg(long)]
    keep: bool,
    /// Print one machine-readable line `RESULT label=... key=value ...` at the end as well
    #[arg(long)]
    label: Option<String>,
    /// PostgreSQL state at this connection string instead of a SQLite file (SPEC 13)
    #[arg(long, value_name = "DSN")]
    pg_dsn: Option<String>,
    /// Daemons sharing the PostgreSQL state; connection k pushes to daemon k mod N
    #[arg(long, default_value_t = 1, requires = "pg_dsn")]
    instances: usize,
}

fn seconds(flag: &str, text: &str) -> Duration {
    let secs: f64 = text.trim_end_matches('s').parse().unwrap_or_else(|_| panic!("--{flag}: seconds, e.g. 20s"));
    Duration::from_secs_f64(secs)
}

/// A certificate authority that signs the leaves.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// (certificate PEM, key PEM)
    fn leaf(&self, cn: &str, dns: &[&str], purpose: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![purpose];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        let cert = params.signed_by(&key, &self.issuer).expect("leaf certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// Arrival instant of each record (the first one; repeats are counted).
#[derive(Default)]
struct Arrivals {
    first: HashMap<String, Instant>,
    repeats: u64,
}

type Shared = Arc<Mutex<Arrivals>>;

async fn receive(State(arrivals): State<Shared>, headers: HeaderMap, _body: axum::body::Bytes) -> StatusCode {
    // The body extractor has read the whole record: this is when the receiver has it.
    let now = Instant::now();
    let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut a = arrivals.lock().expect("arrivals lock");
    if a.first.contains_key(id) {
        a.repeats += 1;
    } else {
        a.first.insert(id.to_owned(), now);
    }
    StatusCode::OK
}

/// One notification sent: its id, when the request went out, and the 200's latency.
struct Sent {
    id: String,
    at: Instant,
    ack: Duration,
}

#[derive(Default)]
struct Tally {
    sent: Vec<Sent>,
    errors: u64,
    first_error: Option<String>,
}

struct Plan {
    /// One push endpoint per daemon; connection k uses `urls[k % len]`.
    urls: Vec<String>,
    seed: u64,
    start: tokio::time::Instant,
    rate: f64,
    total: u64,
    connections: usize,
}

async fn connection(client: reqwest::Client, plan: Arc<Plan>, conn: usize) -> Tally {
    let mut t = Tally::default();
    let subjects = cen_poller::simulate::SUBJECTS.len() as u64;
    let mut n = conn as u64;
    while n < plan.total {
        // The body and its id are made before the send instant is taken.
        let mut body = String::with_capacity(2100);
        body.push('[');
        let created = chrono::Utc::now().timestamp_millis();
        cen_poller::simulate::generate::write_notification(
            plan.seed,
            n,
            (n % subjects) as usize,
            created,
            Some("PENDING"),
            &mut body,
        );
        body.push(']');
        let value: serde_json::Value = serde_json::from_str(&body).expect("generated JSON");
        let id = cen_poller::cen::id::notification_id(&value[0]).expect("id");
        let due = plan.start + Duration::from_secs_f64(n as f64 / plan.rate);
        tokio::time::sleep_until(due).await;
        let at = Instant::now();
        let url = &plan.urls[conn % plan.urls.len()];
        let result = client.post(url).header("content-type", "application/json").body(body).send().await;
        match result {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.bytes().await;
                let ack = at.elapsed();
                if status == 200 && text.is_ok() {
                    t.sent.push(Sent { id, at, ack });
                } else {
                    t.errors += 1;
                    if t.first_error.is_none() {
                        t.first_error =
                            Some(format!("{status}: {:?}", text.map(|b| String::from_utf8_lossy(&b).into_owned())));
                    }
                }
            }
            Err(e) => {
                t.errors += 1;
                if t.first_error.is_none() {
                    t.first_error = Some(format!("{e:?}"));
                }
            }
        }
        n += plan.connections as u64;
    }
    t
}

/// The value at percentile `p` of `sorted`, in ms (nearest rank).
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free local port");
    l.local_addr().expect("address").port()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
}

/// Waits until `port` accepts a TCP connection; panics after 30 s.
async fn wait_port(port: u16, daemon: &mut tokio::process::Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if let Some(status) = daemon.try_wait().expect("child status") {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("the daemon exited ({status}) before listening:\n{text}");
        }
        assert!(Instant::now() < deadline, "the push endpoint never opened on port {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let duration = seconds("duration", &args.duration);
    let warmup = seconds("warmup", &args.warmup);
    let drain = seconds("drain", &args.drain);
    assert!(args.rate > 0.0 && args.connections > 0, "--rate and --connections must be more than 0");
    let bin = args.bin.clone().unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("current exe");
        exe.parent().and_then(Path::parent).expect("target/release/examples").join("cen-poller")
    });
    assert!(bin.exists(), "no daemon binary at {}; build it (cargo build --release) or pass --bin", bin.display());

    let tmp = tempfile::Builder::new().prefix("cen-latency-bench.").tempdir().expect("temp dir");
    let dir = tmp.path();

    // Certificates, and the poller's signing key (the simulator checks no signature here).
    let server_ca = Ca::new("bench server CA");
    let client_ca = Ca::new("bench client CA");
    let (server_pem, server_key) =
        server_ca.leaf("localhost", &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let (client_pem, client_key) = client_ca.leaf("bench-pusher", &[], ExtendedKeyUsagePurpose::ClientAuth);
    write(dir, "server-ca.pem", &server_ca.pem);
    write(dir, "client-ca.pem", &client_ca.pem);
    write(dir, "server.pem", &server_pem);
    write(dir, "server-key.pem", &server_key);
    let signing = cen_poller::cen::keys::SigningKey::generate().expect("signing key");
    write(dir, "signing-key.pem", &signing.private_key_pem());

    // A simulator with no notifications at all, polled once an hour.
    let sim_config = cen_poller::simulate::SimConfig { count: Some(0), ..Default::default() };
    let (sim, sim_addr, _sim_task) = cen_poller::simulate::start(sim_config).await;

    // The receiver the http sink posts to.
    let arrivals: Shared = Arc::default();
    let app = axum::Router::new().route("/records", axum::routing::post(receive)).with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("receiver port");
    let receiver_addr = listener.local_addr().expect("receiver address");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut push_ports = Vec::new();
    let mut daemons = Vec::new();
    for k in 0..args.instances.max(1) {
        let push_port = free_port();
        push_ports.push(push_port);
        let state = match &args.pg_dsn {
            Some(dsn) => format!("backend = \"postgres\"\nurl = \"{dsn}\"\ninstance = \"bench-{k}\""),
            None => "path = \"state.db\"".to_owned(),
        };
        let config = format!("config-{k}.toml");
        write(
            dir,
            &config,
            &format!(
                r#"[api]
base_url = "http://{sim_addr}/commercial-event-notifications"
consumer_key = "bench"
signing_key = "signing-key.pem"
timeout = "10s"

[poll]
interval = "1h"

[state]
{state}

[admin]
listen = "127.0.0.1:0"

[log]
format = "text"
level = "info"

[push]
listen = "127.0.0.1:{push_port}"
path = "/notifications"
cert = "server.pem"
key = "server-key.pem"
client_ca = "client-ca.pem"
allowed_client_names = ["bench-pusher"]

[[sinks]]
name = "receiver"
type = "http"
url = "http://{receiver_addr}/records"
"#
            ),
        );
        let log_path = dir.join(format!("daemon-{k}.log"));
        let log = std::fs::File::create(&log_path).expect("daemon.log");
        let mut daemon = tokio::process::Command::new(&bin)
            .arg("--config")
            .arg(dir.join(&config))
            .env_remove("CEN_POLLER_CONFIG")
            .env_remove("RUST_LOG")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        wait_port(push_port, &mut daemon, &log_path).await;
        daemons.push(daemon);
    }

    let ca = reqwest::Certificate::from_pem(server_ca.pem.as_bytes()).expect("CA PEM");
    let identity = reqwest::Identity::from_pem(format!("{client_pem}{client_key}").as_bytes()).expect("identity");
    let seed = u64::from(std::process::id()) << 32 ^ chrono::Utc::now().timestamp_micros() as u64;
    let total = (args.rate * duration.as_secs_f64()).round() as u64;
    // A short lead so every connection is ready before the first due time.
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let plan = Arc::new(Plan {
        urls: push_ports.iter().map(|p| format!("https://localhost:{p}/notifications")).collect(),
        seed,
        start,
        rate: args.rate,
        total,
        connections: args.connections,
    });
    let mut tasks = Vec::new();
    for conn in 0..args.connections {
        // One client per connection: its pool holds the one keep-alive connection.
        let client = reqwest::Client::builder()
            .tls_certs_only([ca.clone()])
            .identity(identity.clone())
            .http1_only()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        tasks.push(tokio::spawn(connection(client, plan.clone(), conn)));
    }
    let mut all = Tally::default();
    for task in tasks {
        let t = task.await.expect("sender task");
        all.sent.extend(t.sent);
        all.errors += t.errors;
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
    }
    let send_span = start.elapsed().as_secs_f64();

    // Wait for the records still on their way.
    let deadline = Instant::now() + drain;
    loop {
        let arrived = {
            let a = arrivals.lock().expect("arrivals lock");
            all.sent.iter().filter(|s| a.first.contains_key(&s.id)).count()
        };
        if arrived == all.sent.len() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SIGTERM, then at most 10 s for a clean exit (kill_on_drop otherwise).
    for daemon in &mut daemons {
        if let Some(pid) = daemon.id() {
            // SAFETY: kill(2) on the pid of a child this process started and has not reaped.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
    }
    for daemon in &mut daemons {
        let _ = tokio::time::timeout(Duration::from_secs(10), daemon.wait()).await;
    }
    sim.stop();

    let a = arrivals.lock().expect("arrivals lock");
    let measured_from = start.into_std() + warmup;
    let mut latencies = Vec::new();
    let mut acks = Vec::new();
    // Arrival minus the 200's arrival at the sender, in µs: negative when the receiver had
    // the record before the sender had its answer.
    let mut after_ack = Vec::new();
    let mut lost = 0u64;
    for s in &all.sent {
        match a.first.get(&s.id) {
            None => lost += 1,
            Some(&arrived) if s.at >= measured_from => {
                latencies.push(arrived.saturating_duration_since(s.at));
                acks.push(s.ack);
                let acked = s.at + s.ack;
                after_ack.push(if arrived >= acked {
                    arrived.duration_since(acked).as_micros() as i64
                } else {
                    -(acked.duration_since(arrived).as_micros() as i64)
                });
            }
            Some(_) => {}
        }
    }
    let unexpected = a.first.len() as u64 - (all.sent.len() as u64 - lost);
    latencies.sort_unstable();
    acks.sort_unstable();
    after_ack.sort_unstable();
    let signed = |p: f64| -> f64 {
        if after_ack.is_empty() {
            return f64::NAN;
        }
        let i = ((p / 100.0) * after_ack.len() as f64).ceil() as usize;
        after_ack[i.clamp(1, after_ack.len()) - 1] as f64 / 1000.0
    };
    let (rel50, rel99) = (signed(50.0), signed(99.0));
    let before_ack = after_ack.iter().filter(|&&d| d < 0).count();
    let achieved = all.sent.len() as f64 / send_span;
    let (p50, p90, p99, max) = (
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 100.0),
    );
    let (ack50, ack99) = (percentile(&acks, 50.0), percentile(&acks, 99.0));
    println!(
        "rate {} /s over {} connections for {:.1}s: sent (200) {}, achieved {achieved:.0} /s, errors {}",
        args.rate,
        args.connections,
        duration.as_secs_f64(),
        all.sent.len(),
        all.errors
    );
    println!(
        "measured {} (after a {:.1}s warm-up)  lost {lost}  repeated {}  unexpected {unexpected}",
        latencies.len(),
        warmup.as_secs_f64(),
        a.repeats
    );
    println!("end-to-end ms: p50 {p50:.2}  p90 {p90:.2}  p99 {p99:.2}  max {max:.2}");
    println!("push ack ms:   p50 {ack50:.2}  p99 {ack99:.2}");
    println!(
        "record - ack ms: p50 {rel50:.2}  p99 {rel99:.2}  ({before_ack} of {} records reached the receiver before the sender had its 200)",
        after_ack.len()
    );
    if let Some(e) = &all.first_error {
        println!("first error: {e}");
    }
    if let Some(label) = &args.label {
        println!(
            "RESULT label={label} rate={} achieved={achieved:.0} connections={} count={} lost={lost} errors={} p50={p50:.2} p90={p90:.2} p99={p99:.2} max={max:.2} ack_p50={ack50:.2} ack_p99={ack99:.2} rel_p50={rel50:.2} rel_p99={rel99:.2}",
            args.rate,
            args.connections,
            latencies.len(),
            all.errors
        );
    }
    if args.keep {
        let kept = tmp.keep();
        println!("kept {}", kept.display());
    }
    if lost > 0 || all.errors > 0 {
        eprintln!("FAILED: {lost} lost, {} errors (daemon log in the temp dir with --keep)", all.errors);
        std::process::exit(1);
    }
}
