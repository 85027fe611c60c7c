//! The daemon under a stand-in for systemd: `NOTIFY_SOCKET` points at a datagram socket
//! this test holds, `WATCHDOG_USEC` is set. READY=1, STATUS= and WATCHDOG=1 arrive; the
//! pings go on while the API fails (the loop is alive and retrying) and stop when the poll
//! loop is wedged.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use cen_poller::simulate::SimConfig;
use chrono::{TimeDelta, Utc};
use common::Env;
use tokio::net::UnixDatagram;

/// Messages received on the socket within `within`.
async fn collect(socket: &UnixDatagram, within: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let deadline = Instant::now() + within;
    let mut buf = vec![0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            _ => break,
        }
    }
    out
}

fn count(messages: &[String], what: &str) -> usize {
    messages.iter().filter(|m| m.lines().any(|l| l == what)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_status_and_watchdog_pings_that_stop_only_when_the_loop_is_wedged() {
    let start = cen_poller::cen::notification::format_timestamp(Utc::now() - TimeDelta::minutes(20));
    let sim = SimConfig::bounded(41, Utc::now() - TimeDelta::minutes(10), 1.0, 300);
    let env = Env::start(sim, &format!("interval = \"1s\"\nsettle = \"2s\"\nfirst_start = \"{start}\"")).await;
    let socket_path = env.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let freeze = env.dir.path().join("freeze");
    let mut child = env
        .command()
        .env("NOTIFY_SOCKET", &socket_path)
        // 4 s: pings every second, a loop is stale after 2 s without a beat.
        .env("WATCHDOG_USEC", "4000000")
        .env("CEN_POLLER_TEST_FREEZE_POLL", &freeze)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // READY=1 first, with a status line.
    let messages = {
        let mut all = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while count(&all, "READY=1") == 0 && Instant::now() < deadline {
            all.extend(collect(&socket, Duration::from_millis(500)).await);
        }
        all
    };
    assert_eq!(count(&messages, "READY=1"), 1, "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("STATUS=watermark")), "{messages:?}");

    // Pings keep coming while all is well…
    let healthy = collect(&socket, Duration::from_secs(4)).await;
    assert!(count(&healthy, "WATCHDOG=1") >= 2, "{healthy:?}");
    // …and while the API fails: the loop is alive and retrying.
    env.sim.set_auth_failure(Some((401, "INVALID_SIGNATURE")));
    let failing = collect(&socket, Duration::from_secs(4)).await;
    assert!(count(&failing, "WATCHDOG=1") >= 2, "{failing:?}");
    assert!(failing.iter().any(|m| m.contains("INVALID_SIGNATURE")), "the status line says why: {failing:?}");
    env.sim.set_auth_failure(None);

    // Wedge the poll loop: the pings stop.
    std::fs::write(&freeze, b"").unwrap();
    // Give the loop time to reach its freeze point and the heartbeat time to go stale.
    let _settling = collect(&socket, Duration::from_secs(4)).await;
    let wedged = collect(&socket, Duration::from_secs(4)).await;
    assert_eq!(count(&wedged, "WATCHDOG=1"), 0, "{wedged:?}");
    // Unwedged, they come back.
    std::fs::remove_file(&freeze).unwrap();
    let back = collect(&socket, Duration::from_secs(4)).await;
    assert!(count(&back, "WATCHDOG=1") >= 1, "{back:?}");

    // SIGTERM: STOPPING=1, then a clean exit.
    let pid = child.id().unwrap();
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let stopping = collect(&socket, Duration::from_secs(3)).await;
    assert!(count(&stopping, "STOPPING=1") >= 1, "{stopping:?}");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.unwrap().unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_sends_reloading_then_ready() {
    let sim = SimConfig::bounded(42, Utc::now() - TimeDelta::minutes(10), 1.0, 10);
    let env = Env::start(sim, "interval = \"1h\"").await;
    let socket_path = env.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut child =
        env.command().env("NOTIFY_SOCKET", &socket_path).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&all, "READY=1") == 0 && Instant::now() < deadline {
        all.extend(collect(&socket, Duration::from_millis(200)).await);
    }
    assert_eq!(count(&all, "READY=1"), 1);
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    let reload = collect(&socket, Duration::from_secs(3)).await;
    let reloading = reload.iter().position(|m| m.lines().any(|l| l == "RELOADING=1"));
    let ready = reload.iter().position(|m| m.lines().any(|l| l == "READY=1"));
    assert!(reloading.is_some() && ready.is_some() && reloading < ready, "{reload:?}");
    assert!(reload.iter().any(|m| m.contains("MONOTONIC_USEC=")), "{reload:?}");
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(20), child.wait()).await.unwrap().unwrap().success());
}
