//! Micro-benchmark of the store's hot path: accept pages of 1000 generated notifications
//! (as a backfill, leased to one file route), then ack them, on a fresh file database.
use std::time::Instant;

fn cpu() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

use cen_poller::cen::notification::Notification;
use cen_poller::simulate::generate::Stream;
use cen_poller::store::{Incoming, LeaseTo, Route, Store, Via};

fn main() {
    let count: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let stream = Stream {
        seed: 42,
        start_ms: 1_790_000_000_000,
        rate: 2.0,
        count: Some(count),
        late_fraction: 0.0,
        late_by_ms: 0,
    };
    if std::env::var_os("GEN_ONLY").is_some() {
        // The simulator's share: rendering the items alone.
        let t = Instant::now();
        let mut out = String::with_capacity(4096);
        let mut bytes = 0;
        for i in 0..count {
            out.clear();
            stream.write_item(i, Some("PENDING"), &mut out);
            bytes += out.len();
        }
        println!("rendered {count} items, {bytes} bytes, in {:.3} s", t.elapsed().as_secs_f64());
        return;
    }
    let pages: Vec<Vec<Notification>> = (0..count)
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(|c| c.iter().map(|&i| Notification::from_json(&stream.item_json(i, Some("PENDING"))).unwrap()).collect())
        .collect();
    let mut store = Store::open(&dir.path().join("state.db")).unwrap();
    let routes = if std::env::var_os("NO_ROUTE").is_some() {
        vec![]
    } else {
        vec![Route { sink: "file".into(), subjects: vec![] }]
    };
    let (mut accept_s, mut ack_s, mut accept_cpu) = (0.0, 0.0, 0.0);
    for page in &pages {
        let batch: Vec<Incoming<'_>> = page.iter().map(Incoming::from).collect();
        let t = Instant::now();
        let c = cpu();
        let lease = [Some(LeaseTo { owner: "bench", until_ms: i64::MAX })];
        let lease = &lease[..routes.len()];
        let (accepted, leased) =
            store.accept_leasing(&batch, Via::Backfill, false, &routes, &lease, 1, Vec::new()).unwrap();
        accept_s += t.elapsed().as_secs_f64();
        accept_cpu += cpu() - c;
        assert_eq!(accepted.new, page.len());
        let seqs: Vec<i64> = leased.first().into_iter().flatten().map(|l| l.seq).collect();
        let t = Instant::now();
        store.ack("bench", &seqs).unwrap();
        ack_s += t.elapsed().as_secs_f64();
    }
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    let db = std::fs::metadata(dir.path().join("state.db")).unwrap().len();
    eprintln!("{io}db {db}");
    println!(
        "accept cpu {:.3} s, accept {:.3} s  ack {:.3} s  ({:.1} µs + {:.1} µs per notification)",
        accept_cpu,
        accept_s,
        ack_s,
        accept_s * 1e6 / count as f64,
        ack_s * 1e6 / count as f64
    );
}
