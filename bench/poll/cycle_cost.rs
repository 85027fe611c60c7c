//! The API cost of a live stream: requests per steady-state poll cycle and notifications
//! read per new one, at 1, 5 and 50 notifications/s with lookback 15 m and 1 h (interval
//! 5 s, settle 2 s, page 200: the demo's settings), for two ways of walking a cycle's window:
//!
//! - `whole`: `[watermark - lookback, end)` as one part, split in halves until the part
//!   holding the new notifications fits a page (the poll cycle before the split walk);
//! - `split`: the daemon's cycle (`Poller::cycle`): `[watermark - lookback, watermark)`
//!   proven unchanged by one count and `[watermark, end)` read on its own.
//!
//! Both run the same scanner against the in-process simulator; time is the simulator's
//! clock, moved on 5 s per cycle, so a run takes seconds, not the 90 s per rate of
//! `cen-poller demo --duration 90s`. Counts are taken at the simulator.
//!
//! ```text
//! cargo run --release --example poll_cycle_cost [CYCLES]     (default 30 measured cycles)
//! ```

use cen_poller::cen::keys::SigningKey;
use cen_poller::cen::notification::format_timestamp;
use cen_poller::config::Config;
use cen_poller::poll::{PollSettings, Poller};
use cen_poller::service;
use cen_poller::simulate::{self, SimConfig};
use cen_poller::store::Via;
use chrono::{TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

const INTERVAL_MS: i64 = 5000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    Whole,
    Split,
}

struct Figures {
    requests_per_cycle: f64,
    read_per_new: f64,
    new_per_cycle: f64,
}

async fn measure(rate: f64, lookback_min: i64, walk: Walk, cycles: i64, late: bool) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    std::fs::write(dir.path().join("key.pem"), key.private_key_pem()).unwrap();
    let now = Utc::now();
    let span = TimeDelta::minutes(lookback_min + 5) + TimeDelta::milliseconds(INTERVAL_MS * (cycles + 10));
    let count = (rate * span.num_seconds() as f64) as u64;
    let mut sim = SimConfig::bounded(7, now - TimeDelta::minutes(lookback_min + 2), rate, count);
    sim.public_key = Some(key.public_key_pkcs1());
    sim.consumer_key = Some("bench".into());
    if late {
        // The demo's stream: 5 % become visible 2 minutes after their creation.
        sim.late_fraction = 0.05;
        sim.late_by = std::time::Duration::from_secs(120);
    }
    let (sim, addr, _) = simulate::start(sim).await;
    let config_path = dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        format!(
            "[api]\nbase_url = \"http://{addr}/commercial-event-notifications\"\nconsumer_key = \"bench\"\nsigning_key = \"key.pem\"\n\n\
             [poll]\ninterval = \"5s\"\nlookback = \"{lookback_min}m\"\nsettle = \"2s\"\npage_size = 200\nfirst_start = \"{}\"\n\n\
             [state]\npath = \"state.db\"\n",
            format_timestamp(now - TimeDelta::minutes(lookback_min + 1)),
        ),
    )
    .unwrap();
    let config = Config::load(&config_path).unwrap();
    let store = service::open_store(&config).await.unwrap();
    let settings = PollSettings::from_config(&config);
    let poller = Poller::new(config.api_client().unwrap(), store.clone(), settings.clone());
    let shutdown = CancellationToken::new();
    // The first cycle reads the history; two more settle the API clock's offset.
    poller.cycle(&shutdown).await.unwrap();
    let mut new = 0;
    for k in 1..3 + cycles {
        if k == 3 {
            sim.reset_stats();
            new = 0;
        }
        sim.set_clock_skew(k * INTERVAL_MS);
        new += match walk {
            Walk::Split => poller.cycle(&shutdown).await.unwrap().stats.new,
            Walk::Whole => {
                // The cycle as it was: the whole window as one part, then the watermark.
                let scanner = &poller.scanner;
                let end = scanner.clock.now() - settings.settle;
                let watermark = cen_poller::poll::from_ms(store.watermark().await.unwrap().unwrap());
                let mut stats = Default::default();
                scanner.scan(watermark - settings.lookback, end, Via::Pull, &shutdown, &mut stats).await.unwrap();
                store.set_watermark(end.timestamp_millis(), 0).await.unwrap();
                stats.new
            }
        };
    }
    let stats = sim.stats();
    sim.stop();
    Figures {
        requests_per_cycle: stats.notification_requests as f64 / cycles as f64,
        read_per_new: stats.notifications_served as f64 / new.max(1) as f64,
        new_per_cycle: new as f64 / cycles as f64,
    }
}

#[tokio::main]
async fn main() {
    let cycles: i64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    println!("{cycles} steady-state cycles each (interval 5 s, settle 2 s, page 200), counted at the simulator");
    for late in [false, true] {
        println!(
            "\n{}\n",
            if late {
                "5 % of the notifications visible 2 minutes late (the demo's stream):"
            } else {
                "Every notification visible at its creation:"
            }
        );
        table(cycles, late).await;
    }
}

async fn table(cycles: i64, late: bool) {
    println!(
        "| rate | lookback | new per cycle | requests per cycle, whole → split | read per new one, whole → split |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for lookback in [15, 60] {
        for rate in [1.0, 5.0, 50.0] {
            let before = measure(rate, lookback, Walk::Whole, cycles, late).await;
            let after = measure(rate, lookback, Walk::Split, cycles, late).await;
            println!(
                "| {rate}/s | {lookback} m | {:.1} | {:.1} → {:.1} | {:.2} → {:.2} |",
                after.new_per_cycle,
                before.requests_per_cycle,
                after.requests_per_cycle,
                before.read_per_new,
                after.read_per_new
            );
        }
    }
}
