//! Drain rate per sink: how fast a backlog of N notifications already in the state database
//! leaves through one sink (file, postgres, nats), measured in-process through the same
//! dispatcher the daemon runs (lease a batch from SQLite, deliver, acknowledge), on the
//! daemon's two-worker Tokio runtime. PostgreSQL and NATS are real servers on 127.0.0.1
//! started in temp dirs (`tests/common/servers.rs`), with their default durability.
//!
//! `cargo bench --bench drain -- [--count N] [--sinks file,postgres,nats]` (N defaults to
//! 100,000); `bench/drain.sh` runs it. Under `cargo test --all-targets` (no `--bench`
//! argument) it runs a 500-notification smoke version, so the benchmark keeps working.
//!
//! The backlog is made of the simulator's notifications, accepted into the store as if
//! polled; filling is timed separately and not part of the rate. Each sink's destination is
//! checked afterwards to hold exactly N records.

#[path = "../tests/common/servers.rs"]
mod servers;

use std::path::Path;
use std::time::{Duration, Instant};

use cen_poller::cen::notification::Notification;
use cen_poller::config::Config;
use cen_poller::service;
use cen_poller::simulate::generate::Stream;
use cen_poller::sinks::dispatcher::{DeliverySettings, Dispatcher, owner_id};
use cen_poller::store::{StoreHandle, Via};

struct Args {
    count: u64,
    sinks: Vec<String>,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    let bench = argv.iter().any(|a| a == "--bench");
    let value = |name: &str| argv.iter().position(|a| a == name).and_then(|i| argv.get(i + 1)).cloned();
    let count = match value("--count") {
        Some(n) => n.parse().unwrap_or_else(|_| panic!("--count {n}: not a number")),
        None if bench => 100_000,
        None => 500,
    };
    let sinks = value("--sinks").unwrap_or_else(|| "file,postgres,nats".into());
    Args { count, sinks: sinks.split(',').map(str::to_owned).collect() }
}

/// A configuration with one sink, `[[sinks]]` TOML in `sink`.
fn write_config(dir: &Path, sink: &str) -> Config {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[api]\nbase_url = \"http://127.0.0.1:9/commercial-event-notifications\"\nconsumer_key = \"bench\"\n\
             signing_key = \"key.pem\"\n\n[state]\npath = \"state.db\"\n\n{sink}"
        ),
    )
    .unwrap();
    Config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Accepts `count` simulator notifications into the store (queued for its one sink).
async fn fill(store: &StoreHandle, count: u64) -> (Duration, usize) {
    let started = Instant::now();
    let stream = Stream {
        seed: 7,
        start_ms: chrono::Utc::now().timestamp_millis() - 7_200_000,
        rate: count as f64 / 3600.0,
        count: Some(count),
        late_fraction: 0.0,
        late_by_ms: 0,
    };
    let mut bytes = 0;
    let mut i = 0;
    while i < count {
        let end = (i + 1000).min(count);
        let batch: Vec<Notification> = (i..end)
            .map(|k| {
                let json = stream.item_json(k, Some("DELIVERED"));
                bytes += json.len();
                Notification::from_json(&json).unwrap()
            })
            .collect();
        let accepted = store.accept(batch, Via::Pull, false).await.unwrap();
        assert_eq!(accepted.new as u64, end - i);
        i = end;
    }
    (started.elapsed(), bytes / count.max(1) as usize)
}

/// Drains the sink's outbox; returns the time it took and the failures counted.
async fn drain(config: &Config, store: &StoreHandle) -> (Duration, u64) {
    let sink = cen_poller::sinks::build(&config.sinks, config).unwrap().remove(0);
    let dispatcher = Dispatcher {
        store: store.clone(),
        sink,
        owner: owner_id(),
        settings: DeliverySettings::from(&config.delivery),
        counters: Default::default(),
        heartbeat: Default::default(),
    };
    let started = Instant::now();
    while dispatcher.deliver_once().await.unwrap() > 0 {}
    (started.elapsed(), dispatcher.counters.failures.get())
}

async fn run(name: &str, count: u64) {
    let dir = tempfile::tempdir().unwrap();
    // Servers live until the end of this function.
    let mut pg = None;
    let mut nats = None;
    let mut http_count = None;
    let sink = match name {
        "http" => {
            // A local receiver that answers 200 and counts distinct ids.
            let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::<String>::new()));
            let counter = seen.clone();
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(move |headers: axum::http::HeaderMap| {
                    let counter = counter.clone();
                    async move {
                        if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                            counter.lock().unwrap().insert(id.to_owned());
                        }
                        "ok"
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            http_count = Some(seen);
            format!("[[sinks]]\nname = \"erp\"\ntype = \"http\"\nurl = \"http://{addr}/hook\"\n")
        }
        "command" => format!(
            "[[sinks]]\nname = \"handler\"\ntype = \"command\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >> {}\"]\n",
            dir.path().join("handled.jsonl").display()
        ),
        "file" => "[[sinks]]\nname = \"archive\"\ntype = \"file\"\npath = \"notifications.jsonl\"\n".to_owned(),
        "postgres" => {
            let server = tokio::task::block_in_place(servers::PgServer::start);
            let toml = format!(
                "[[sinks]]\nname = \"ledger\"\ntype = \"postgres\"\nurl = \"{}\"\ntable = \"cen_notifications\"\n",
                server.dsn()
            );
            pg = Some(server);
            toml
        }
        "nats" => {
            let server = tokio::task::block_in_place(servers::NatsServer::start);
            let toml = format!(
                "[[sinks]]\nname = \"bus\"\ntype = \"nats\"\nurl = \"{}\"\nstream = \"CEN\"\nsubject = \"cen.{{subject}}\"\n",
                server.url()
            );
            nats = Some(server);
            toml
        }
        other => panic!("unknown sink {other:?}; expected file, postgres, nats, http or command"),
    };
    let config = write_config(dir.path(), &sink);
    let store = service::open_store(&config).await.unwrap();
    let (filled, record_bytes) = fill(&store, count).await;
    let (took, failures) = drain(&config, &store).await;
    assert_eq!(failures, 0, "{name}: deliveries failed");

    let delivered = if let Some(seen) = &http_count {
        seen.lock().unwrap().len() as u64
    } else if name == "command" {
        std::fs::read_to_string(dir.path().join("handled.jsonl")).unwrap().lines().count() as u64
    } else if let Some(pg) = &pg {
        let client = pg.client().await;
        client.query_one("SELECT count(*) FROM cen_notifications", &[]).await.unwrap().get::<_, i64>(0) as u64
    } else if let Some(nats) = &nats {
        let js = nats.jetstream().await;
        js.get_stream("CEN").await.unwrap().info().await.unwrap().state.messages
    } else {
        std::fs::read_to_string(dir.path().join("notifications.jsonl")).unwrap().lines().count() as u64
    };
    assert_eq!(delivered, count, "{name}: the destination holds {delivered} of {count}");
    println!(
        "| {name:<8} | {count:>7} | {:>8.2} | {:>9.0} | {:>6} | {:>6.1} |",
        took.as_secs_f64(),
        count as f64 / took.as_secs_f64(),
        record_bytes,
        filled.as_secs_f64()
    );
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!("| sink     | backlog | drain s  | per s     | JSON B | fill s |");
    println!("|----------|--------:|---------:|----------:|-------:|-------:|");
    for sink in &args.sinks {
        runtime.block_on(run(sink, args.count));
    }
}
