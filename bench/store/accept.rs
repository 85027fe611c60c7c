//! The SQLite backend's hot path alone: accepts pages of 1,000 simulated notifications on a
//! fresh file database as a backfill routed to one file sink, then leases and acks each
//! page's outbox rows, the way the backfill benchmark's pipeline does but without HTTP,
//! parsing or the sink. Prints the time and the thread's CPU per notification.
//!
//! ```text
//! cargo run --release --example store_accept [COUNT]       (default 200000)
//! NO_ROUTE=1 ...   no sink: the notifications alone, no outbox rows
//! GEN_ONLY=1 ...   only render COUNT items as the simulator does (its CPU per item)
//! ```
//!
//! The machine's timing noise is large (±20 % between runs); for comparing two builds, count
//! instructions instead, e.g.
//! `valgrind --tool=callgrind --toggle-collect='*Store*accept*' target/release/examples/store_accept 20000`.

use std::time::Instant;

use cen_poller::cen::notification::Notification;
use cen_poller::simulate::generate::Stream;
use cen_poller::store::sqlite::Store;
use cen_poller::store::{Incoming, Route, Via};

/// CPU time of the calling thread, in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn main() {
    let count: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let stream = Stream {
        seed: 42,
        start_ms: 1_790_000_000_000,
        rate: 2.0,
        count: Some(count),
        late_fraction: 0.0,
        late_by_ms: 0,
    };
    if std::env::var_os("GEN_ONLY").is_some() {
        let (t, c) = (Instant::now(), thread_cpu());
        let mut out = String::with_capacity(4096);
        let mut bytes = 0;
        for i in 0..count {
            out.clear();
            stream.write_item(i, Some("PENDING"), &mut out);
            bytes += out.len();
        }
        let (wall, cpu) = (t.elapsed().as_secs_f64(), thread_cpu() - c);
        println!(
            "rendered {count} items ({bytes} bytes) in {wall:.3} s, {cpu:.3} s CPU: {:.2} µs CPU per item",
            cpu * 1e6 / count as f64
        );
        return;
    }
    let pages: Vec<Vec<Notification>> = (0..count)
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(|c| c.iter().map(|&i| Notification::from_json(&stream.item_json(i, Some("PENDING"))).unwrap()).collect())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("state.db")).unwrap();
    let routes = match std::env::var_os("NO_ROUTE") {
        Some(_) => vec![],
        None => vec![Route { sink: "file".into(), subjects: vec![] }],
    };
    let (mut accept_wall, mut accept_cpu, mut ack_wall, mut ack_cpu) = (0.0, 0.0, 0.0, 0.0);
    for page in &pages {
        let batch: Vec<Incoming<'_>> = page.iter().map(Incoming::from).collect();
        let (t, c) = (Instant::now(), thread_cpu());
        let accepted = store.accept(&batch, Via::Backfill, false, &routes, 1).unwrap();
        accept_wall += t.elapsed().as_secs_f64();
        accept_cpu += thread_cpu() - c;
        assert_eq!(accepted.new, page.len());
        let (t, c) = (Instant::now(), thread_cpu());
        let leased = match routes.first() {
            Some(route) => store.lease(&route.sink, "bench", page.len(), i64::MAX / 2, 1).unwrap(),
            None => Vec::new(),
        };
        let seqs: Vec<i64> = leased.iter().map(|l| l.seq).collect();
        assert_eq!(seqs.len(), page.len() * routes.len());
        store.ack("bench", &seqs).unwrap();
        ack_wall += t.elapsed().as_secs_f64();
        ack_cpu += thread_cpu() - c;
    }
    let per = |s: f64| s * 1e6 / count as f64;
    println!(
        "{count} notifications: accept {:.2} µs ({:.2} µs CPU), lease and ack {:.2} µs ({:.2} µs CPU) per notification",
        per(accept_wall),
        per(accept_cpu),
        per(ack_wall),
        per(ack_cpu)
    );
}
