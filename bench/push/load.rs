//! Push load generator: N concurrent mTLS keep-alive HTTP/1.1 connections, each posting
//! one batch at a time (a JSON array of `--batch` new notifications) for `--duration`.
//! Prints requests/s, notifications/s (of 200 answers), latency p50/p99/max and errors.
//!
//! Run by `bench/push.sh`; by hand:
//! `cargo run --release --example push_load -- --url https://127.0.0.1:8443/notifications \
//!   --ca ca.pem --cert client.pem --key client-key.pem --connections 50 --duration 20s`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The push endpoint, e.g. https://127.0.0.1:8443/notifications
    #[arg(long)]
    url: String,
    /// CA certificate (PEM) of the server certificate
    #[arg(long)]
    ca: String,
    /// Client certificate (PEM)
    #[arg(long)]
    cert: String,
    /// Its private key (PEM)
    #[arg(long)]
    key: String,
    /// Concurrent connections (each its own keep-alive client, one request at a time)
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// How long to send, in seconds (`20` or `20s`)
    #[arg(long, default_value = "20s")]
    duration: String,
    /// Notifications per request
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// `realistic`: the simulator's notifications (all seven subjects, ~1.8 KB each, as a
    /// backfill sees them); `small`: ~200-byte CLEARING objects (the figures in
    /// BENCHMARKS.md before 2026-11-22 12:00 UTC)
    #[arg(long, default_value = "realistic", value_parser = ["realistic", "small"])]
    size: String,
    /// Print one machine-readable line `RESULT key=value ...` at the end as well
    #[arg(long)]
    label: Option<String>,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    ok: u64,
    notifications_ok: u64,
    accepted: u64,
    status_errors: std::collections::BTreeMap<u16, u64>,
    transport_errors: u64,
    first_error: Option<String>,
}

fn body(run: &str, conn: usize, seq: u64, batch: usize, realistic: bool) -> Vec<u8> {
    if realistic {
        // Unique per run, connection, request and position: all new, like the small ones.
        let seed = run.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let now_ms = Utc::now().timestamp_millis();
        let mut out = String::with_capacity(batch * 2048 + 2);
        out.push('[');
        for i in 0..batch {
            if i > 0 {
                out.push(',');
            }
            let key = ((conn as u64) << 40) | (seq * batch as u64 + i as u64);
            let subject = (key % cen_poller::simulate::SUBJECTS.len() as u64) as usize;
            cen_poller::simulate::generate::write_notification(seed, key, subject, now_ms, Some("PENDING"), &mut out);
        }
        out.push(']');
        return out.into_bytes();
    }
    let now = chrono::SecondsFormat::Millis;
    let ts = Utc::now().to_rfc3339_opts(now, true);
    let items: Vec<serde_json::Value> = (0..batch)
        .map(|i| {
            serde_json::json!({
                "subject": "CLEARING",
                "subscriptionName": "bench",
                "pushStatus": "PENDING",
                "createdTimestamp": ts,
                "content": {"transactionId": format!("{run}-{conn}-{seq}-{i}"), "amount": i},
            })
        })
        .collect();
    serde_json::to_vec(&items).expect("json")
}

async fn connection(
    client: reqwest::Client,
    url: String,
    run: Arc<String>,
    conn: usize,
    batch: usize,
    realistic: bool,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut t = Tally::default();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let b = body(&run, conn, seq, batch, realistic);
        seq += 1;
        let start = Instant::now();
        let r = client.post(&url).header("content-type", "application/json").body(b).send().await;
        match r {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.bytes().await;
                let us = start.elapsed().as_micros() as u64;
                match (status, text) {
                    (200, Ok(text)) => {
                        t.latencies_us.push(us);
                        t.ok += 1;
                        t.notifications_ok += batch as u64;
                        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) {
                            t.accepted += v["accepted"].as_u64().unwrap_or(0);
                        }
                    }
                    (s, text) => {
                        *t.status_errors.entry(s).or_default() += 1;
                        if t.first_error.is_none() {
                            t.first_error =
                                Some(format!("{s}: {:?}", text.map(|b| String::from_utf8_lossy(&b).into_owned())));
                        }
                    }
                }
            }
            Err(e) => {
                t.transport_errors += 1;
                if t.first_error.is_none() {
                    t.first_error = Some(format!("{e:?}"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    t
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let secs: f64 = args.duration.trim_end_matches('s').parse().expect("--duration: seconds, e.g. 20s");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&args.ca).expect("--ca")).expect("--ca PEM");
    let mut pem = std::fs::read(&args.cert).expect("--cert");
    pem.extend(std::fs::read(&args.key).expect("--key"));
    let identity = reqwest::Identity::from_pem(&pem).expect("--cert/--key PEM");
    let run = Arc::new(format!("{}-{}", std::process::id(), Utc::now().timestamp_micros()));
    let stop = Arc::new(AtomicBool::new(false));

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
        tasks.push(tokio::spawn(connection(
            client,
            args.url.clone(),
            run.clone(),
            conn,
            args.batch,
            args.size == "realistic",
            stop.clone(),
        )));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Tally::default();
    for task in tasks {
        let t = task.await.expect("task");
        all.latencies_us.extend(t.latencies_us);
        all.ok += t.ok;
        all.notifications_ok += t.notifications_ok;
        all.accepted += t.accepted;
        all.transport_errors += t.transport_errors;
        for (s, n) in t.status_errors {
            *all.status_errors.entry(s).or_default() += n;
        }
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
    }
    // Requests in flight at the stop finish; the rate is over the whole time.
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let errors: u64 = all.status_errors.values().sum::<u64>() + all.transport_errors;
    let (p50, p99, max) = (
        percentile(&all.latencies_us, 50.0),
        percentile(&all.latencies_us, 99.0),
        all.latencies_us.last().map(|&m| m as f64 / 1000.0).unwrap_or(f64::NAN),
    );
    let rps = all.ok as f64 / elapsed;
    let nps = all.notifications_ok as f64 / elapsed;
    println!(
        "connections {}  batch {}  {:.1}s  200s {}  requests/s {:.0}  notifications/s {:.0}  accepted(new) {}",
        args.connections, args.batch, elapsed, all.ok, rps, nps, all.accepted
    );
    println!("latency ms: p50 {p50:.2}  p99 {p99:.2}  max {max:.2}");
    println!("errors: {errors} (status {:?}, transport {})", all.status_errors, all.transport_errors);
    if let Some(e) = &all.first_error {
        println!("first error: {e}");
    }
    if let Some(label) = &args.label {
        println!(
            "RESULT label={label} connections={} ok={} notifications={} accepted={} nps={nps:.0} rps={rps:.0} p50={p50:.2} p99={p99:.2} max={max:.2} errors={errors}",
            args.connections, all.ok, all.notifications_ok, all.accepted
        );
    }
}
