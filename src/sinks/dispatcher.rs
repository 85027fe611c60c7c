//! One dispatcher per sink: lease rows from that sink's outbox, deliver, acknowledge.
//!
//! Invariants:
//! - A row is acknowledged (deleted) only after the sink said `Ok`, so a crash between the
//!   two repeats the delivery (at least once, G1) and never loses it.
//! - Rows are leased under this process's owner id, so a `--backfill` and the daemon never
//!   deliver the same row at once; leases of a process that died are released at start
//!   ([`release_dead_owners`]) instead of waiting for them to expire.
//! - Each sink has its own task and its own outbox rows: a slow or failing sink never
//!   delays another.
//! - Per sink, rows are leased in acceptance order (the outbox's sequence); a failed row
//!   waits for its retry time while later rows go on, so order holds only among rows
//!   delivered on their first attempt.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::Record;
use super::{Sink, SinkError};
pub use crate::metrics::SinkCounters;
use crate::store::{Leased, StoreHandle};

pub use crate::store::LEASE;
/// How often an idle dispatcher looks at its outbox even without a wake-up: retry times
/// reached, expired claims, rows queued by a process that raises no signal here (a
/// `--backfill` on the same SQLite file).
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Retry settings, from `[delivery]`.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub max_attempts: u32,
    pub max_age: Duration,
}

impl DeliverySettings {
    /// Delay before attempt `attempts + 1`: exponential, capped, with jitter in
    /// [half, full] so a recovering receiver is not hit by every row at once.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let base = self.backoff_initial.saturating_mul(1u32 << attempts.min(20)).min(self.backoff_max);
        base.mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }
}

/// A running sink and its counters.
#[derive(Clone)]
pub struct ActiveSink {
    pub sink: Arc<dyn Sink>,
    pub counters: Arc<SinkCounters>,
}

/// This process's lease owner id: pid and process start time, so a later process can tell
/// whether the owner of a lease is still alive.
pub fn owner_id() -> String {
    format!("pid:{}:{}", std::process::id(), process_start_ticks(std::process::id()).unwrap_or(0))
}

/// Field 22 of `/proc/PID/stat`: the process's start time in clock ticks since boot.
fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that wrote `owner` is still running.
pub fn owner_alive(owner: &str) -> bool {
    let mut parts = owner.split(':');
    match (parts.next(), parts.next().and_then(|p| p.parse::<u32>().ok()), parts.next()) {
        (Some("pid"), Some(pid), Some(start)) => {
            process_start_ticks(pid).map(|t| t.to_string()).as_deref() == Some(start)
        }
        // Unknown format: assume alive and let the lease expire.
        _ => true,
    }
}

/// Releases the leases of processes that are no longer running (a `kill -9`).
pub async fn release_dead_owners(store: &StoreHandle) -> Result<usize, crate::store::StoreError> {
    let mut released = 0;
    for owner in store.lease_owners().await? {
        if !owner_alive(&owner) {
            released += store.release(&owner).await?;
        }
    }
    if released > 0 {
        tracing::info!(released, "released outbox leases of a process that is gone");
    }
    Ok(released)
}

/// Feeds one sink until `shutdown`.
pub struct Dispatcher {
    pub store: StoreHandle,
    pub sink: Arc<dyn Sink>,
    pub owner: String,
    pub settings: DeliverySettings,
    pub counters: Arc<SinkCounters>,
    /// Beaten while the loop runs (the systemd watchdog checks it).
    pub heartbeat: crate::systemd::Heartbeat,
}

impl Dispatcher {
    /// Delivers until `shutdown`; the batch in flight is finished and acknowledged first.
    /// Then releases every lease of this dispatcher's owner id: for a dispatcher that is the
    /// only one under its owner id (see [`Dispatcher::serve`] otherwise).
    pub async fn run(self, shutdown: CancellationToken) {
        self.serve(shutdown).await;
        if let Err(e) = self.store.release(&self.owner).await {
            tracing::warn!(sink = %self.sink.name(), error = %e, "cannot release outbox leases at shutdown; they expire by themselves");
        }
    }

    /// Delivers until `stop`; the batch in flight is finished and acknowledged first.
    /// Releases only the leases of rows this dispatcher holds but did not deliver: when
    /// several dispatchers share one owner id (every sink of a process), one stopping (a
    /// sink removed by SIGHUP) must not clear the leases the others hold — their
    /// acknowledgements would then match no row and the batch would be delivered again.
    /// The process releases its owner's leases once all have stopped.
    ///
    /// Rows come from the store only: a batch is claimed, delivered, and acknowledged
    /// together with claiming the next. With nothing due, the dispatcher waits for the
    /// store's commit signal (rows committed by this process, or by any instance of a
    /// cluster), and looks again every `IDLE_POLL` for what no signal announces: retries
    /// coming due and expired claims of a process that died.
    pub async fn serve(&self, stop: CancellationToken) {
        let name = self.sink.name().to_owned();
        let max = self.sink.max_batch().max(1);
        // The batch claimed together with the previous batch's acknowledgement.
        let mut next = Vec::new();
        loop {
            if stop.is_cancelled() {
                break;
            }
            // Registered before looking, so a commit between the look and the wait counts.
            let changed = self.store.outbox_changed();
            tokio::pin!(changed);
            changed.as_mut().enable();

            let step = async {
                let mut batch = std::mem::take(&mut next);
                if batch.is_empty() {
                    batch = self.store.lease(&name, &self.owner, max, LEASE.as_millis() as i64).await?;
                }
                self.deliver(batch, true).await
            };
            match self.heartbeat.while_running(step).await {
                Ok((0, _)) => {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = &mut changed => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                    }
                }
                Ok((_, leased)) => next = leased,
                Err(e) => {
                    tracing::warn!(sink = %name, error = %e, "cannot read the outbox; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        let undelivered = next.iter().map(|row| row.seq).collect();
        if let Err(e) = self.store.release_seqs(&self.owner, undelivered).await {
            tracing::warn!(sink = %name, error = %e, "cannot release this sink's undelivered leases; they expire by themselves");
        }
    }

    /// Claims one batch, delivers it, records the outcomes. Returns how many rows it
    /// claimed (0: nothing due).
    pub async fn deliver_once(&self) -> Result<usize, crate::store::StoreError> {
        let batch =
            self.store.lease(self.sink.name(), &self.owner, self.sink.max_batch(), LEASE.as_millis() as i64).await?;
        self.deliver(batch, false).await.map(|(n, _)| n)
    }

    /// Delivers a claimed batch and records the outcomes; with `claim_next`, claims the next
    /// batch together with the acknowledgement.
    async fn deliver(
        &self,
        batch: Vec<Leased>,
        claim_next: bool,
    ) -> Result<(usize, Vec<Leased>), crate::store::StoreError> {
        let name = self.sink.name();
        let now = Utc::now().timestamp_millis();
        if batch.is_empty() {
            return Ok((0, Vec::new()));
        }
        let size = batch.len();
        // The sink sees the records only; the rows' bookkeeping stays here (moved, not copied).
        let (rows, records): (Vec<Row>, Vec<Record>) = batch.into_iter().map(split).unzip();
        let outcomes = self.sink.deliver(&records).await;
        let mut delivered = Vec::with_capacity(size);
        let no_outcome = || Err(SinkError::Retryable("the sink returned no outcome for this record".into()));
        for ((item, record), outcome) in
            rows.iter().zip(&records).zip(outcomes.into_iter().chain(std::iter::repeat_with(no_outcome)))
        {
            match outcome {
                Ok(()) => delivered.push(item.seq),
                Err(err) => {
                    self.counters.failures.inc();
                    let attempts = item.attempts.saturating_add(1);
                    let age = Duration::from_millis((now - item.enqueued_ms).max(0) as u64);
                    let give_up = match &err {
                        SinkError::Permanent(_) => true,
                        SinkError::Retryable(_) => {
                            attempts >= self.settings.max_attempts || age >= self.settings.max_age
                        }
                    };
                    if give_up {
                        tracing::warn!(sink = %name, id = %record.id, attempts, error = %err, "delivery failed for good: dead letter (see `cen-poller dead-letters`)");
                        self.store.dead_letter(item.seq, &self.owner, &err.to_string()).await?;
                    } else {
                        let next = now + self.settings.backoff(attempts).as_millis() as i64;
                        tracing::debug!(sink = %name, id = %record.id, attempts, error = %err, "delivery failed; will retry");
                        self.store.retry_later(item.seq, &self.owner, &err.to_string(), next).await?;
                    }
                }
            }
        }
        let mut next = Vec::new();
        if !delivered.is_empty() {
            let count = delivered.len() as u64;
            let max = if claim_next { self.sink.max_batch() } else { 0 };
            (_, next) = self.store.ack_and_lease(&self.owner, delivered, name, max, LEASE.as_millis() as i64).await?;
            self.counters.delivered.inc_by(count);
        }
        Ok((size, next))
    }
}

/// What the dispatcher keeps of an outbox row while its record is out for delivery.
struct Row {
    seq: i64,
    attempts: u32,
    enqueued_ms: i64,
}

fn split(row: Leased) -> (Row, Record) {
    let Leased { seq, id, attempts, enqueued_ms, subject, created_raw, received_via, record } = row;
    (Row { seq, attempts, enqueued_ms }, Record { id, subject, created_raw, received_via, record })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;

    use futures::FutureExt;
    use tokio::sync::Semaphore;

    use crate::cen::notification::Notification;
    use crate::store::{Route, Via};

    /// Records what it is given; waits for a permit per batch; fails the first attempt of
    /// the ids in `fail_once`.
    struct Recorder {
        max: usize,
        /// Batches handed to `deliver` so far (counted before the permit is awaited).
        started: std::sync::atomic::AtomicUsize,
        permits: Arc<Semaphore>,
        fail_once: Mutex<Vec<String>>,
        delivered: Mutex<Vec<String>>,
        changed: tokio::sync::Notify,
    }

    impl Sink for Recorder {
        fn name(&self) -> &str {
            "s"
        }
        fn max_batch(&self) -> usize {
            self.max
        }
        fn deliver<'a>(&'a self, batch: &'a [Record]) -> futures::future::BoxFuture<'a, super::super::Outcomes> {
            async move {
                self.started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                self.permits.acquire().await.expect("open semaphore").forget();
                let mut fail = self.fail_once.lock().unwrap();
                let outcomes = batch
                    .iter()
                    .map(|row| match fail.iter().position(|id| *id == row.id) {
                        Some(at) => {
                            fail.remove(at);
                            Err(SinkError::Retryable("first attempt fails".into()))
                        }
                        None => {
                            self.delivered.lock().unwrap().push(row.id.clone());
                            Ok(())
                        }
                    })
                    .collect();
                self.changed.notify_waiters();
                outcomes
            }
            .boxed()
        }
    }

    fn recorder(max: usize, permits: usize) -> Arc<Recorder> {
        Arc::new(Recorder {
            max,
            started: std::sync::atomic::AtomicUsize::new(0),
            permits: Arc::new(Semaphore::new(permits)),
            fail_once: Mutex::new(Vec::new()),
            delivered: Mutex::new(Vec::new()),
            changed: tokio::sync::Notify::new(),
        })
    }

    fn notifications(from: usize, n: usize) -> Vec<Notification> {
        (from..from + n)
            .map(|i| {
                let text = format!(
                    r#"{{"subject":"CLEARING","createdTimestamp":"2026-11-22T10:{:02}:{:02}.000Z","content":{{"n":{i}}}}}"#,
                    i / 60,
                    i % 60
                );
                Notification::from_json(&text).unwrap()
            })
            .collect()
    }

    fn start(store: &StoreHandle, sink: &Arc<Recorder>) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let dispatcher = Dispatcher {
            store: store.clone(),
            sink: sink.clone(),
            owner: "pid:1:1".into(),
            settings: DeliverySettings {
                backoff_initial: Duration::from_millis(1),
                backoff_max: Duration::from_millis(1),
                max_attempts: 5,
                max_age: Duration::from_secs(3600),
            },
            counters: Arc::new(store.metrics().sink("s")),
            heartbeat: crate::systemd::Heartbeat::default(),
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move { dispatcher.serve(stop).await }
        });
        (stop, task)
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Rows reach the sink in acceptance order and exactly once, whether they were committed
    /// while the dispatcher waited or while it was busy, or retried.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn committed_rows_are_delivered_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let routes = vec![Route { sink: "s".into(), subjects: vec![] }];
        let store = StoreHandle::open(&dir.path().join("state.db"), routes).unwrap();
        let sink = recorder(4, usize::MAX >> 4);
        let all = notifications(0, 40);
        sink.fail_once.lock().unwrap().push(all[7].id.clone());
        let (stop, task) = start(&store, &sink);

        let mut next = 0;
        for n in [3, 10, 2, 1, 5, 4, 15] {
            store.accept(all[next..next + n].to_vec(), Via::Pull, false).await.unwrap();
            next += n;
        }
        until("everything is delivered", || sink.delivered.lock().unwrap().len() == 40).await;
        stop.cancel();
        task.await.unwrap();

        let delivered = sink.delivered.lock().unwrap().clone();
        let retried = &all[7].id;
        let first_attempts: Vec<&String> = delivered.iter().filter(|id| *id != retried).collect();
        let accepted: Vec<&String> = all.iter().map(|n| &n.id).filter(|id| *id != retried).collect();
        assert_eq!(first_attempts, accepted, "acceptance order, each once");
        assert_eq!(delivered.iter().filter(|id| *id == retried).count(), 1, "the retried row, once");
        assert!(store.backlog().await.unwrap().is_empty(), "outbox empty");
    }

    /// A commit wakes a waiting dispatcher at once: with the idle look every `IDLE_POLL`
    /// the only other way in, 20 single commits, each waited for, would take 10 s; the
    /// signal delivers each as soon as it is committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_wakes_the_waiting_dispatcher() {
        let dir = tempfile::tempdir().unwrap();
        let routes = vec![Route { sink: "s".into(), subjects: vec![] }];
        let store = StoreHandle::open(&dir.path().join("state.db"), routes).unwrap();
        let sink = recorder(4, usize::MAX >> 4);
        let (stop, task) = start(&store, &sink);
        let all = notifications(0, 20);
        let started = std::time::Instant::now();
        for (i, n) in all.iter().enumerate() {
            // Wait until the dispatcher is idle again, then commit one.
            tokio::time::sleep(Duration::from_millis(1)).await;
            store.accept(vec![n.clone()], Via::Pull, false).await.unwrap();
            until("the row is delivered", || sink.delivered.lock().unwrap().len() == i + 1).await;
        }
        stop.cancel();
        task.await.unwrap();
        assert!(started.elapsed() < IDLE_POLL * 10, "woken by the commit, not by the idle look");
    }

    /// A dispatcher that stops releases the batch it claimed but did not deliver, so
    /// another owner can deliver it at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopping_dispatcher_releases_what_it_did_not_deliver() {
        let dir = tempfile::tempdir().unwrap();
        let routes = vec![Route { sink: "s".into(), subjects: vec![] }];
        let store = StoreHandle::open(&dir.path().join("state.db"), routes).unwrap();
        let sink = recorder(3, 0);
        let (stop, task) = start(&store, &sink);
        let all = notifications(0, 6);
        store.accept(all.clone(), Via::Pull, false).await.unwrap();
        // The dispatcher claims 3 and waits for a permit.
        until("the first batch is taken", || sink.started.load(std::sync::atomic::Ordering::SeqCst) == 1).await;
        stop.cancel();
        sink.permits.add_permits(1);
        task.await.unwrap();

        let delivered = sink.delivered.lock().unwrap().clone();
        assert_eq!(delivered.len(), 3, "the batch in flight is finished");
        assert!(store.lease_owners().await.unwrap().is_empty(), "no lease left behind");
        let rest = store.lease("s", "another", 10, 60_000).await.unwrap();
        let ids: Vec<&String> = rest.iter().map(|l| &l.id).collect();
        assert_eq!(ids, all[3..].iter().map(|n| &n.id).collect::<Vec<_>>());
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let s = DeliverySettings {
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(600),
            max_attempts: 50,
            max_age: Duration::from_secs(7 * 86400),
        };
        for _ in 0..50 {
            let d = s.backoff(0);
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_secs(1));
            let d = s.backoff(3);
            assert!(d >= Duration::from_secs(4) && d <= Duration::from_secs(8));
            assert!(s.backoff(40) <= Duration::from_secs(600));
        }
    }

    #[test]
    fn owners_of_this_process_are_alive_and_made_up_ones_are_not() {
        assert!(owner_alive(&owner_id()));
        assert!(!owner_alive("pid:999999999:1"));
        assert!(!owner_alive(&format!("pid:{}:1", std::process::id())), "same pid, other start: pid reused");
    }
}
