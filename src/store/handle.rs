//! The async face of the store: one connection per process behind a mutex, each call run
//! on the blocking pool, plus the wake-up that tells dispatchers new rows are queued.
//!
//! One connection (not a pool) on purpose: SQLite has one writer at a time anyway, and one
//! connection lets a batch's insert and outbox rows be one transaction without coordination.
//! The routing table (which sinks take which subjects) lives here, so every source enqueues
//! with the same routes and a SIGHUP changes them in one place.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use chrono::Utc;
use tokio::sync::Notify;

use super::accept::LeaseTo;
use super::checkpoint::Checkpointer;
use super::handoff::Handoff;
use super::{Accepted, DeadLetter, Incoming, Leased, Route, Store, StoreError, Via};
use crate::cen::notification::Notification;
use crate::metrics::{Metrics, ReceivedLabels, SubjectLabels, ViaLabels};

/// A cloneable handle on the process's store connection.
#[derive(Clone)]
pub struct StoreHandle {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Mutex<Store>>,
    /// The database file and its WAL (`None` in memory), for [`StoreHandle::sync`].
    path: std::path::PathBuf,
    wal: Option<std::path::PathBuf>,
    /// Runs WAL checkpoints off the store's lock (file databases only).
    checkpointer: Option<Checkpointer>,
    routes: RwLock<Arc<Vec<Route>>>,
    /// The handoff queues of this process's dispatchers (`store::handoff`), one per sink.
    handoffs: Mutex<Vec<Arc<Handoff>>>,
    outbox: Notify,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle").finish_non_exhaustive()
    }
}

impl StoreHandle {
    /// Opens the database at `path` (see [`Store::open`]).
    pub fn open(path: &Path, routes: Vec<Route>) -> Result<StoreHandle, StoreError> {
        Ok(Self::new(Store::open(path)?, routes, Arc::new(Metrics::new())))
    }

    /// `metrics` counts every accepted batch: the one place push, pull, backfill and VGS
    /// all go through.
    pub fn new(store: Store, routes: Vec<Route>, metrics: Arc<Metrics>) -> StoreHandle {
        let (path, wal) = (store.path().to_path_buf(), store.wal_path());
        let store = Arc::new(Mutex::new(store));
        let checkpointer = Store::background_checkpoints(&store);
        StoreHandle {
            inner: Arc::new(Inner {
                store,
                path,
                wal,
                checkpointer,
                routes: RwLock::new(Arc::new(routes)),
                handoffs: Mutex::new(Vec::new()),
                outbox: Notify::new(),
                metrics,
            }),
        }
    }

    /// The process's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Replaces the routing table (SIGHUP with changed sinks). Rows already queued stay.
    pub fn set_routes(&self, routes: Vec<Route>) {
        *self.inner.routes.write().expect("routes lock") = Arc::new(routes);
    }

    pub fn routes(&self) -> Arc<Vec<Route>> {
        self.inner.routes.read().expect("routes lock").clone()
    }

    /// Runs `f` with the store on the blocking pool. The call runs to completion even if
    /// the caller stops waiting: a commit under way is never cut off by a shutdown. Private
    /// to the store: callers use the named operations below.
    pub(super) async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = inner.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let result = f(&mut store);
            drop(store);
            if let Some(checkpointer) = &inner.checkpointer {
                checkpointer.wake();
            }
            result
        })
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::InvalidInput { op: "store call", detail: format!("the store task failed: {e}") })
        })
    }

    /// Records the last audit (SPEC 12) for `status`.
    pub async fn set_last_audit(&self, audit: super::LastAudit) -> Result<(), StoreError> {
        self.call(move |s| s.set_last_audit(&audit)).await
    }

    /// Of `keys` (`created_ms`, id), the ids the store does not hold.
    pub async fn absent(&self, keys: Vec<(i64, String)>) -> Result<Vec<String>, StoreError> {
        self.call(move |s| s.absent(&keys)).await
    }

    /// Forgets notifications created before `before_ms` (see [`Store::prune`]); how many.
    pub async fn prune(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.call(move |s| s.prune(before_ms)).await
    }

    /// Dead letters per sink.
    pub async fn dead_letter_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.call(|s| s.dead_letter_counts()).await
    }

    /// Whether the database takes a write now (`/readyz`).
    pub async fn check_writable(&self, now_ms: i64) -> Result<(), StoreError> {
        self.call(move |s| s.check_writable(now_ms)).await
    }

    /// Makes every commit so far durable (see [`Store::sync`]), without the store's lock.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || Store::sync(&inner.path, inner.wal.as_deref())).await.unwrap_or_else(|e| {
            Err(StoreError::InvalidInput { op: "sync", detail: format!("the sync task failed: {e}") })
        })
    }

    /// Accepts a batch of CEN notifications in one transaction and wakes the dispatchers.
    pub async fn accept(
        &self,
        batch: Vec<Notification>,
        via: Via,
        push_configured: bool,
    ) -> Result<Accepted, StoreError> {
        let now_ms = Utc::now().timestamp_millis();
        let records = self.records_to_hand_over(batch.iter().map(Incoming::from), via, now_ms);
        let accepted = self
            .accept_handing_over(batch.len(), now_ms, move |s, routes, lease_to| {
                let incoming: Vec<Incoming<'_>> = batch.iter().map(Incoming::from).collect();
                s.accept_leasing(&incoming, via, push_configured, routes, lease_to, now_ms, records)
            })
            .await?;
        self.accepted(super::SOURCE_CEN, via, &accepted);
        Ok(accepted)
    }

    /// Accepts items of another source (VGS webhook events: `source` `vgs`, by push) in one
    /// transaction and wakes the dispatchers; each item says what it stores through
    /// [`Incoming`]. The caller counts anything source-specific from the answer.
    pub async fn accept_from<T>(&self, source: &'static str, via: Via, batch: Vec<T>) -> Result<Accepted, StoreError>
    where
        T: Send + 'static,
        for<'a> Incoming<'a>: From<&'a T>,
    {
        let now_ms = Utc::now().timestamp_millis();
        let records = self.records_to_hand_over(batch.iter().map(Incoming::from), via, now_ms);
        let accepted = self
            .accept_handing_over(batch.len(), now_ms, move |s, routes, lease_to| {
                let incoming: Vec<Incoming<'_>> = batch.iter().map(Incoming::from).collect();
                s.accept_leasing(&incoming, via, false, routes, lease_to, now_ms, records)
            })
            .await?;
        self.accepted(source, via, &accepted);
        Ok(accepted)
    }

    /// The records of the notifications a waiting dispatcher will probably be handed
    /// (`records[i]` for the `i`th; empty for the others), written before the store's
    /// lock is taken so the accept holds it that much shorter (~1 µs per notification).
    /// Whether a handoff still takes them is only known under the lock; one that closed
    /// meanwhile wastes them, and a notification without its record gets it written there.
    fn records_to_hand_over<'a>(
        &self,
        batch: impl Iterator<Item = Incoming<'a>>,
        via: Via,
        now_ms: i64,
    ) -> Vec<String> {
        let open: Vec<String> = {
            let handoffs = self.inner.handoffs.lock().unwrap_or_else(|p| p.into_inner());
            handoffs.iter().filter(|h| h.is_open()).map(|h| h.sink().to_owned()).collect()
        };
        if open.is_empty() {
            return Vec::new();
        }
        let routes = self.routes();
        let handed = |subject: &str| routes.iter().any(|r| open.contains(&r.sink) && r.matches(subject));
        batch.map(|n| if handed(n.subject) { n.record(via, now_ms) } else { String::new() }).collect()
    }

    /// Runs an accept (`f` gets the routes and which of them to lease to a handoff), and
    /// queues the rows it leased on the handoffs, all under the store's lock (see
    /// `store::handoff` for why that keeps every sink's order). `rows` is the batch's
    /// size: the most rows it can queue for one sink. `now_ms` is the accept's time, read
    /// before the lock: a lease reads its own under the lock, later, so it still finds
    /// these rows due.
    async fn accept_handing_over<F>(&self, rows: usize, now_ms: i64, f: F) -> Result<Accepted, StoreError>
    where
        F: FnOnce(&mut Store, &[Route], &[Option<LeaseTo<'_>>]) -> Result<(Accepted, Vec<Vec<Leased>>), StoreError>
            + Send
            + 'static,
    {
        let routes = self.routes();
        let inner = self.inner.clone();
        self.call(move |s| {
            let until_ms = now_ms.saturating_add(super::LEASE.as_millis() as i64);
            let handoffs = inner.handoffs.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let targets: Vec<Option<&Arc<Handoff>>> =
                routes.iter().map(|r| handoffs.iter().find(|h| h.sink() == r.sink)).collect();
            let lease_to: Vec<Option<LeaseTo<'_>>> = targets
                .iter()
                .map(|h| h.filter(|h| h.reserve(rows)).map(|h| LeaseTo { owner: h.owner(), until_ms }))
                .collect();
            let (accepted, leased) = f(s, &routes, &lease_to)?;
            for (target, rows) in targets.iter().zip(leased) {
                if let Some(h) = target {
                    h.push(rows, until_ms);
                }
            }
            Ok(accepted)
        })
        .await
    }

    /// Counts an accepted batch and wakes the dispatchers.
    pub fn accepted(&self, source: &str, via: Via, accepted: &Accepted) {
        let m = &self.inner.metrics;
        for (subject, n) in &accepted.new_by_subject {
            let labels = ReceivedLabels { source: source.into(), via: via.as_str().into(), subject: subject.clone() };
            m.received.get_or_create(&labels).inc_by(*n as u64);
            // A batch has one path: when any is recovered, all of its new ones are.
            if accepted.recovered > 0 {
                m.recovered_by_pull.get_or_create(&SubjectLabels { subject: subject.clone() }).inc_by(*n as u64);
            }
        }
        if accepted.duplicates > 0 {
            let labels = ViaLabels { source: source.into(), via: via.as_str().into() };
            m.duplicates.get_or_create(&labels).inc_by(accepted.duplicates as u64);
        }
        if accepted.enqueued > 0 {
            self.inner.outbox.notify_waiters();
        }
    }

    /// Resolves when rows were queued by this process (other processes' rows are found by
    /// the dispatchers' idle polling).
    pub fn outbox_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.outbox.notified()
    }

    /// Wakes the dispatchers (after a replay or a dead-letter retry).
    pub fn wake(&self) {
        self.inner.outbox.notify_waiters();
    }

    pub async fn watermark(&self) -> Result<Option<i64>, StoreError> {
        self.call(|s| s.watermark()).await
    }

    pub async fn set_watermark(&self, ms: i64) -> Result<(), StoreError> {
        self.call(move |s| s.set_watermark(ms)).await
    }

    pub async fn count_created(
        &self,
        source: &'static str,
        start_ms: i64,
        end_ms: i64,
        subscriptions: Vec<String>,
    ) -> Result<u64, StoreError> {
        self.call(move |s| s.count_created(source, start_ms, end_ms, &subscriptions)).await
    }

    /// [`Store::lease`], with no handoff.
    pub async fn lease(
        &self,
        sink: &str,
        owner: &str,
        max: usize,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Leased>, StoreError> {
        let (sink, owner) = (sink.to_owned(), owner.to_owned());
        self.call(move |s| s.lease(&sink, &owner, max, lease_ms, now_ms)).await
    }

    /// Registers the handoff queue of `sink`'s dispatcher (closed until a lease drains the
    /// sink's due rows), replacing an earlier one of the same sink.
    pub fn handoff(&self, sink: &str, owner: &str, capacity: usize) -> Arc<Handoff> {
        let handoff = Arc::new(Handoff::new(sink, owner, capacity));
        let mut handoffs = self.inner.handoffs.lock().unwrap_or_else(|p| p.into_inner());
        handoffs.retain(|h| h.sink() != sink);
        handoffs.push(handoff.clone());
        handoff
    }

    /// Whether `sink`'s dispatcher is being handed its new rows (it has caught up).
    pub fn handing_over(&self, sink: &str) -> bool {
        self.inner.handoffs.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|h| h.sink() == sink && h.is_open())
    }

    /// Unregisters and closes `handoff`, and releases the leases of the rows still queued
    /// on it and of `undelivered` (rows its dispatcher leased but did not deliver), so
    /// another dispatcher can take them at once. Returns how many leases were released.
    pub async fn close_handoff(&self, handoff: &Arc<Handoff>, undelivered: Vec<i64>) -> Result<usize, StoreError> {
        let inner = self.inner.clone();
        let handoff = handoff.clone();
        self.call(move |s| {
            inner.handoffs.lock().unwrap_or_else(|p| p.into_inner()).retain(|h| !Arc::ptr_eq(h, &handoff));
            let mut seqs = handoff.close();
            seqs.extend(undelivered);
            s.release_seqs(handoff.owner(), &seqs)
        })
        .await
    }

    /// [`StoreHandle::ack_and_lease_for`] with nothing to acknowledge.
    pub async fn lease_for(
        &self,
        handoff: &Arc<Handoff>,
        max: usize,
        lease_ms: i64,
    ) -> Result<Vec<Leased>, StoreError> {
        self.ack_and_lease_for(handoff, Vec::new(), max, lease_ms).await.map(|(_, leased)| leased)
    }

    /// [`Store::ack_and_lease`] for the handoff's sink and owner: acknowledges `seqs`,
    /// then leases up to `max` of the sink's due rows; when fewer come back (the sink has
    /// caught up), opens the handoff in the same locked call.
    ///
    /// "Now" is read under the store's lock: a row accepted just before must count as due
    /// (its `next_attempt_ms` is its accept's now), or the handoff would open with it
    /// still unleased behind it.
    pub async fn ack_and_lease_for(
        &self,
        handoff: &Arc<Handoff>,
        seqs: Vec<i64>,
        max: usize,
        lease_ms: i64,
    ) -> Result<(usize, Vec<Leased>), StoreError> {
        let handoff = handoff.clone();
        self.call(move |s| {
            let now_ms = Utc::now().timestamp_millis();
            let (acked, leased) = s.ack_and_lease(handoff.owner(), &seqs, handoff.sink(), max, lease_ms, now_ms)?;
            if leased.len() < max {
                handoff.open();
            }
            Ok((acked, leased))
        })
        .await
    }

    pub async fn ack(&self, owner: &str, seqs: Vec<i64>) -> Result<usize, StoreError> {
        let owner = owner.to_owned();
        self.call(move |s| s.ack(&owner, &seqs)).await
    }

    pub async fn retry_later(
        &self,
        seq: i64,
        owner: &str,
        error: &str,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError> {
        let (owner, error) = (owner.to_owned(), error.to_owned());
        self.call(move |s| s.retry_later(seq, &owner, &error, next_attempt_ms).map(drop)).await
    }

    pub async fn dead_letter(&self, seq: i64, owner: &str, error: &str) -> Result<(), StoreError> {
        let (owner, error) = (owner.to_owned(), error.to_owned());
        self.call(move |s| s.dead_letter(seq, &owner, &error, Utc::now().timestamp_millis()).map(drop)).await
    }

    pub async fn release(&self, owner: &str) -> Result<usize, StoreError> {
        let owner = owner.to_owned();
        self.call(move |s| s.release(&owner)).await
    }

    pub async fn lease_owners(&self) -> Result<Vec<String>, StoreError> {
        self.call(|s| s.lease_owners()).await
    }

    pub async fn backlog(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.call(|s| s.backlog()).await
    }

    pub async fn dead_letters(&self, sink: Option<String>, id: Option<String>) -> Result<Vec<DeadLetter>, StoreError> {
        self.call(move |s| s.dead_letters(sink.as_deref(), id.as_deref())).await
    }
}
