//! Talking to systemd: readiness, reload and stop notifications, human-readable `STATUS=`
//! lines, and the watchdog.
//!
//! The watchdog pings mean "the loops are alive", not "the API is up": while the API answers
//! errors or hangs, the poll loop is alive and retrying, and a restart would not help. Each
//! long-running loop owns a [`Heartbeat`] that it beats from its own task while it works or
//! waits; a loop whose task stops running (a blocked thread, a deadlock) stops beating, the
//! pings stop, and systemd restarts the service after `WatchdogSec=`.
//!
//! Without `NOTIFY_SOCKET` (not under systemd) every call here does nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// When a loop last showed it was running.
#[derive(Debug, Clone)]
pub struct Heartbeat(Arc<Mutex<Instant>>);

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat(Arc::new(Mutex::new(Instant::now())))
    }
}

impl Heartbeat {
    pub fn beat(&self) {
        *self.0.lock().expect("heartbeat lock") = Instant::now();
    }

    pub fn age(&self) -> Duration {
        self.0.lock().expect("heartbeat lock").elapsed()
    }

    /// Runs `work` to completion while beating every second from the same task: the beats
    /// stop only if this task stops being polled (its thread is blocked).
    pub async fn while_running<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        tokio::pin!(work);
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        loop {
            self.beat();
            tokio::select! {
                out = &mut work => {
                    self.beat();
                    return out;
                }
                _ = ticker.tick() => {}
            }
        }
    }
}

/// The heartbeats the watchdog checks, by loop name.
#[derive(Debug, Clone, Default)]
pub struct Liveness(Arc<Mutex<Vec<(String, Heartbeat)>>>);

impl Liveness {
    /// A new heartbeat for the loop `name`, replacing an earlier one of that name (a sink
    /// restarted by a reload).
    pub fn register(&self, name: &str) -> Heartbeat {
        let hb = Heartbeat::default();
        let mut beats = self.0.lock().expect("liveness lock");
        beats.retain(|(n, _)| n != name);
        beats.push((name.to_owned(), hb.clone()));
        hb
    }

    /// Stops checking `name` (a sink removed by a reload).
    pub fn unregister(&self, name: &str) {
        self.0.lock().expect("liveness lock").retain(|(n, _)| n != name);
    }

    /// The loops that have not beaten within `max_age`.
    pub fn stale(&self, max_age: Duration) -> Vec<String> {
        self.0
            .lock()
            .expect("liveness lock")
            .iter()
            .filter(|(_, hb)| hb.age() > max_age)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// A test-only way to wedge the poll loop, so a test can show the watchdog pings stop: while
/// the file named by `CEN_POLLER_TEST_FREEZE_POLL` exists, the poll loop blocks its thread.
/// Without the variable (always, outside tests) this does nothing.
pub fn test_freeze_point() {
    if let Some(path) = std::env::var_os("CEN_POLLER_TEST_FREEZE_POLL") {
        while std::path::Path::new(&path).exists() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn notify(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// `READY=1` with a first status line: configuration valid, database open, listeners bound.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `RELOADING=1` with the monotonic time, as `Type=notify-reload` expects.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// `STOPPING=1`.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping: finishing the current step")]);
}

/// `STATUS=…`.
pub fn status(text: &str) {
    notify(&[NotifyState::Status(text)]);
}

/// While `shutdown` has not fired: every `WATCHDOG_USEC / 4` (or 10 s without a watchdog),
/// send `WATCHDOG=1` if every loop in `liveness` beat within `WATCHDOG_USEC / 2`, and a
/// fresh `STATUS=` line from `status_line`.
pub async fn supervise<F, Fut>(liveness: Liveness, status_line: F, shutdown: CancellationToken)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let watchdog = sd_notify::watchdog_enabled();
    let period = watchdog.map_or(Duration::from_secs(10), |w| (w / 4).max(Duration::from_millis(50)));
    let mut ticker = tokio::time::interval(period);
    let mut reported: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Some(w) = watchdog {
            let stale = liveness.stale(w / 2);
            if stale.is_empty() {
                notify(&[NotifyState::Watchdog]);
            } else if stale != reported {
                tracing::error!(loops = ?stale, "not alive: withholding the watchdog ping so systemd restarts the service");
            }
            reported = stale;
        }
        status(&status_line().await);
    }
}
