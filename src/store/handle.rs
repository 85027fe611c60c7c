//! [`StoreHandle`]: the one way into the store. It holds the process's backend, the routing
//! table (which sinks take which subjects) and the commit signal that wakes dispatchers, and
//! counts every accepted batch (the one place push, pull, backfill, audit and VGS all go
//! through).
//!
//! The commit signal is raised after an accept's commit returned, never before: a dispatcher
//! woken by it finds the rows. It is registered before a dispatcher looks at its outbox, so a
//! commit between the look and the wait still wakes it. A shared backend raises it too when
//! another instance commits rows (PostgreSQL: LISTEN/NOTIFY).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;

use super::backend::{Backend, Batch, Committed, Epoch, Instance, Items, Leadership};
use super::{Accepted, CountRow, DeadLetter, Incoming, LastAudit, Leased, Route, StoreError, Via};
use crate::cen::notification::Notification;
use crate::metrics::{Metrics, ReceivedLabels, SubjectLabels, ViaLabels};

/// Where the state lives (`[state]`).
#[derive(Debug, Clone)]
pub enum Location {
    /// `backend = "sqlite"`: this file.
    Sqlite(PathBuf),
    /// `backend = "postgres"`: this server and schema.
    Postgres(super::postgres::Settings),
}

/// A cloneable handle on the process's store.
#[derive(Clone)]
pub struct StoreHandle {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    routes: RwLock<Arc<Vec<Route>>>,
    committed: Committed,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle").field("backend", &self.inner.backend.describe()).finish_non_exhaustive()
    }
}

impl StoreHandle {
    /// Opens the state at `location`: creates a SQLite file, or connects to PostgreSQL and
    /// starts listening for other instances' commits. Brings the schema up to date.
    pub async fn connect(location: &Location, routes: Vec<Route>, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        let committed: Committed = Arc::new(Notify::new());
        let backend: Arc<dyn Backend> = match location {
            Location::Sqlite(path) => Arc::new(super::sqlite::Sqlite::open(path)?),
            Location::Postgres(settings) => {
                Arc::new(super::postgres::Postgres::open(settings, committed.clone()).await?)
            }
        };
        Ok(Self::with_backend(backend, committed, routes, metrics))
    }

    /// Opens the SQLite file at `path` (no runtime needed).
    pub fn open(path: &std::path::Path, routes: Vec<Route>) -> Result<StoreHandle, StoreError> {
        let backend = Arc::new(super::sqlite::Sqlite::open(path)?);
        Ok(Self::with_backend(backend, Arc::new(Notify::new()), routes, Arc::new(Metrics::new())))
    }

    /// A handle on an opened backend; `committed` is the signal the backend raises for
    /// other instances' commits (unused by a single-machine backend).
    fn with_backend(
        backend: Arc<dyn Backend>,
        committed: Committed,
        routes: Vec<Route>,
        metrics: Arc<Metrics>,
    ) -> StoreHandle {
        StoreHandle { inner: Arc::new(Inner { backend, routes: RwLock::new(Arc::new(routes)), committed, metrics }) }
    }

    /// Where the state lives, for messages and `status`.
    pub fn describe(&self) -> String {
        self.inner.backend.describe()
    }

    /// The process's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Replaces the routing table (SIGHUP with changed sinks). Rows already queued stay.
    pub fn set_routes(&self, routes: Vec<Route>) {
        *self.inner.routes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(routes);
    }

    pub fn routes(&self) -> Arc<Vec<Route>> {
        self.inner.routes.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Accepts a batch of CEN notifications in one transaction and wakes the dispatchers.
    /// `push_configured`: a new notification that arrives by another path was missed by push.
    pub async fn accept(
        &self,
        batch: Vec<Notification>,
        via: Via,
        push_configured: bool,
    ) -> Result<Accepted, StoreError> {
        self.accept_batch(super::SOURCE_CEN, via, push_configured && via != Via::Push, Batch::new(batch)).await
    }

    /// Accepts items of another source (VGS webhook events: `source` `vgs`, by push) in one
    /// transaction and wakes the dispatchers; each item says what it stores through
    /// [`Incoming`]. The caller counts anything source-specific from the answer.
    pub async fn accept_from<T>(&self, source: &'static str, via: Via, batch: Vec<T>) -> Result<Accepted, StoreError>
    where
        T: Send + 'static,
        for<'a> Incoming<'a>: From<&'a T>,
        Vec<T>: Items,
    {
        self.accept_batch(source, via, false, Batch::new(batch)).await
    }

    async fn accept_batch(
        &self,
        source: &str,
        via: Via,
        recovered: bool,
        batch: Batch,
    ) -> Result<Accepted, StoreError> {
        let now_ms = Utc::now().timestamp_millis();
        let accepted = self.inner.backend.accept(batch, via, recovered, self.routes(), now_ms).await?;
        self.accepted(source, via, &accepted);
        Ok(accepted)
    }

    /// Counts an accepted batch and raises the commit signal.
    fn accepted(&self, source: &str, via: Via, accepted: &Accepted) {
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
            self.wake();
        }
    }

    /// Resolves when outbox rows were committed after this was created (and enabled).
    pub fn outbox_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.committed.notified()
    }

    /// Raises the commit signal (after a replay or a dead-letter retry, or a route change).
    pub fn wake(&self) {
        self.inner.committed.notify_waiters();
    }

    pub async fn watermark(&self) -> Result<Option<i64>, StoreError> {
        self.inner.backend.watermark().await
    }

    /// Moves the watermark if `epoch` still leads ([`StoreError::Fenced`] otherwise).
    pub async fn set_watermark(&self, ms: i64, epoch: Epoch) -> Result<(), StoreError> {
        self.inner.backend.set_watermark(ms, epoch).await
    }

    pub async fn count_created(
        &self,
        source: &'static str,
        start_ms: i64,
        end_ms: i64,
        subscriptions: Vec<String>,
    ) -> Result<u64, StoreError> {
        self.inner.backend.count_created(source, start_ms, end_ms, subscriptions).await
    }

    /// Of `keys` (`created_ms`, id), the ids the store does not hold.
    pub async fn absent(&self, keys: Vec<(i64, String)>) -> Result<Vec<String>, StoreError> {
        self.inner.backend.absent(keys).await
    }

    /// Takes or renews the poller's leadership for `instance` (see [`Backend::lead`]).
    pub async fn lead(&self, instance: &str, lease: Duration) -> Result<Leadership, StoreError> {
        self.inner.backend.lead(instance, lease).await
    }

    pub async fn resign(&self, instance: &str) -> Result<(), StoreError> {
        self.inner.backend.resign(instance).await
    }

    pub async fn instances(&self, recent: Duration) -> Result<Vec<Instance>, StoreError> {
        self.inner.backend.instances(recent).await
    }

    /// Claims up to `max` of `sink`'s due rows for `owner`.
    pub async fn lease(&self, sink: &str, owner: &str, max: usize, lease_ms: i64) -> Result<Vec<Leased>, StoreError> {
        self.inner.backend.lease(sink, owner, max, lease_ms).await
    }

    /// Acknowledges `seqs`, then claims the next batch, in one transaction.
    pub async fn ack_and_lease(
        &self,
        owner: &str,
        seqs: Vec<i64>,
        sink: &str,
        max: usize,
        lease_ms: i64,
    ) -> Result<(usize, Vec<Leased>), StoreError> {
        self.inner.backend.ack_and_lease(owner, seqs, sink, max, lease_ms).await
    }

    /// Acknowledges `seqs` still claimed by `owner`.
    pub async fn ack(&self, owner: &str, seqs: Vec<i64>) -> Result<usize, StoreError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        self.inner.backend.ack_and_lease(owner, seqs, "", 0, 0).await.map(|(acked, _)| acked)
    }

    pub async fn retry_later(
        &self,
        seq: i64,
        owner: &str,
        error: &str,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError> {
        self.inner.backend.retry_later(seq, owner, error, next_attempt_ms).await
    }

    pub async fn dead_letter(&self, seq: i64, owner: &str, error: &str) -> Result<(), StoreError> {
        self.inner.backend.dead_letter(seq, owner, error, Utc::now().timestamp_millis()).await
    }

    pub async fn release(&self, owner: &str) -> Result<usize, StoreError> {
        self.inner.backend.release(owner).await
    }

    pub async fn release_seqs(&self, owner: &str, seqs: Vec<i64>) -> Result<usize, StoreError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        self.inner.backend.release_seqs(owner, seqs).await
    }

    pub async fn lease_owners(&self) -> Result<Vec<String>, StoreError> {
        self.inner.backend.lease_owners().await
    }

    pub async fn backlog(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.inner.backend.backlog().await
    }

    pub async fn oldest_pending_ms(&self, sink: &str) -> Result<Option<i64>, StoreError> {
        self.inner.backend.oldest_pending_ms(sink).await
    }

    pub async fn dead_letters(&self, sink: Option<String>, id: Option<String>) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.backend.dead_letters(sink, id).await
    }

    pub async fn dead_letter_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.inner.backend.dead_letter_counts().await
    }

    /// Moves matching dead letters back to the outbox and wakes the dispatchers.
    pub async fn retry_dead_letters(&self, sink: Option<String>, id: Option<String>) -> Result<usize, StoreError> {
        let n = self.inner.backend.retry_dead_letters(sink, id, Utc::now().timestamp_millis()).await?;
        self.wake();
        Ok(n)
    }

    /// Queues a replay for `route` and wakes the dispatchers.
    pub async fn enqueue_replay(&self, route: Route, start_ms: i64, end_ms: i64) -> Result<usize, StoreError> {
        let n = self.inner.backend.enqueue_replay(route, start_ms, end_ms, Utc::now().timestamp_millis()).await?;
        self.wake();
        Ok(n)
    }

    pub async fn counts_since(&self, since_ms: i64) -> Result<Vec<CountRow>, StoreError> {
        self.inner.backend.counts_since(since_ms).await
    }

    /// Forgets notifications created before `before_ms` with nothing left to deliver.
    pub async fn prune(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.inner.backend.prune(before_ms).await
    }

    /// Whether the database takes a write now (`/readyz`).
    pub async fn check_writable(&self, now_ms: i64) -> Result<(), StoreError> {
        self.inner.backend.check_writable(now_ms).await
    }

    pub async fn last_audit(&self) -> Result<Option<LastAudit>, StoreError> {
        self.inner.backend.last_audit().await
    }

    /// Records the last audit (SPEC 12) for `status`.
    pub async fn set_last_audit(&self, audit: LastAudit) -> Result<(), StoreError> {
        self.inner.backend.set_last_audit(audit).await
    }

    /// Makes every commit so far durable.
    pub async fn sync(&self) -> Result<(), StoreError> {
        self.inner.backend.sync().await
    }
}
