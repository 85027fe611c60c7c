//! The store's interface: what a state backend (SQLite on one machine, PostgreSQL for a
//! cluster) must do. [`super::StoreHandle`] is the only caller; everything else in the
//! daemon reaches a backend through it.
//!
//! Invariants every backend keeps (tested for each in its own folder):
//! - [`Backend::accept`] stores a batch's new notifications and their outbox rows in one
//!   transaction, all or nothing; an id already stored (by any instance) is a duplicate and
//!   gets no outbox row (G2). When it returns `Ok`, the rows are committed (durably when
//!   [`Via::synced_per_commit`]) and [`Backend::accept`]'s caller raises the commit signal.
//! - Outbox rows are claimed (leased) per sink in `seq` order by one owner at a time; every
//!   later step on a row (ack, retry, dead letter, release) only touches rows the caller's
//!   claim still holds, so a late answer after an expired lease changes nothing.
//! - The watermark moves only under the poller's leadership: [`Backend::set_watermark`]
//!   with a stale [`Epoch`] fails with [`StoreError::Fenced`] and changes nothing.
//! - A backend never reads the caller's modules: times are epoch milliseconds passed in
//!   (leadership expiry excepted: it is the database's own clock, so instances whose clocks
//!   disagree still agree on who leads).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{Accepted, CountRow, DeadLetter, Incoming, LastAudit, Leased, Route, StoreError, Via};

/// A batch of items to accept, of any type the store can read as [`Incoming`] (CEN
/// notifications, VGS events): held as given, so nothing is copied on the way in.
pub struct Batch(Box<dyn Items>);

/// Anything that lends a batch's items as [`Incoming`].
pub trait Items: Send + 'static {
    /// The items, in order.
    fn incoming(&self) -> Vec<Incoming<'_>>;
}

impl<T> Items for Vec<T>
where
    T: Send + 'static,
    for<'a> Incoming<'a>: From<&'a T>,
{
    fn incoming(&self) -> Vec<Incoming<'_>> {
        self.iter().map(Incoming::from).collect()
    }
}

impl Batch {
    pub fn new(items: impl Items) -> Batch {
        Batch(Box::new(items))
    }

    /// The items, in order.
    pub fn incoming(&self) -> Vec<Incoming<'_>> {
        self.0.incoming()
    }
}

/// The poller's leadership term: grows with each new leader, so a write carrying an older
/// epoch comes from a leader that has lost its lease (fencing).
pub type Epoch = i64;

/// What one attempt to lead ([`Backend::lead`]) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    /// The caller leads (it took or renewed the lease) under this epoch; `None`: another
    /// instance does.
    pub epoch: Option<Epoch>,
    /// The instance holding the lease now (the caller when `epoch` is set).
    pub leader: Option<String>,
    /// How long the lease lasts from now, by the database's clock.
    pub remaining: Duration,
}

/// An instance of a cluster, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Instance {
    /// `state.instance`.
    pub name: String,
    /// When it last renewed or tried to take the leadership (epoch ms, database clock).
    pub last_seen_ms: i64,
    /// Whether it holds the leadership now.
    pub leader: bool,
}

/// Raised by the store whenever outbox rows were committed, by this process or (for a
/// shared database) any instance; the dispatchers wait on it.
pub type Committed = Arc<Notify>;

/// A state backend. Every method is one transaction (or none) and may be called from any
/// task; a backend serialises or pools connections as it needs.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Where the state lives, for messages and `status` (a file, or a server and schema).
    fn describe(&self) -> String;

    // --- accept -------------------------------------------------------------------------

    /// Stores the new items of `batch` and queues each for every route whose subjects match,
    /// in one transaction; counts the rest as duplicates. `recovered` marks the new ones as
    /// missed by push. `now_ms` becomes their `first_seen_ms` and `enqueued_ms`.
    async fn accept(
        &self,
        batch: Batch,
        via: Via,
        recovered: bool,
        routes: Arc<Vec<Route>>,
        now_ms: i64,
    ) -> Result<Accepted, StoreError>;

    // --- poll state ---------------------------------------------------------------------

    /// The poll watermark (epoch ms), `None` before the first window.
    async fn watermark(&self) -> Result<Option<i64>, StoreError>;
    /// Sets the watermark if `epoch` is still the current leadership term
    /// ([`StoreError::Fenced`] otherwise). Call only after the window before it is committed.
    async fn set_watermark(&self, ms: i64, epoch: Epoch) -> Result<(), StoreError>;
    /// Stored notifications of `source` created in `[start_ms, end_ms)`, under the API's
    /// `subscription_name` filter when `subscriptions` is not empty.
    async fn count_created(
        &self,
        source: &'static str,
        start_ms: i64,
        end_ms: i64,
        subscriptions: Vec<String>,
    ) -> Result<u64, StoreError>;
    /// Of `keys` (`created_ms`, id) of CEN notifications, the ids not stored.
    async fn absent(&self, keys: Vec<(i64, String)>) -> Result<Vec<String>, StoreError>;

    // --- leadership ---------------------------------------------------------------------

    /// Takes the leadership for `instance` if nobody holds it (or its lease expired), or
    /// renews it if `instance` holds it, for `lease` by the database's clock. Also records
    /// that `instance` was seen. A single-machine backend always leads.
    async fn lead(&self, instance: &str, lease: Duration) -> Result<Leadership, StoreError>;
    /// Gives the leadership up now if `instance` holds it (a clean shutdown).
    async fn resign(&self, instance: &str) -> Result<(), StoreError>;
    /// The instances seen within `recent`, the leader first.
    async fn instances(&self, recent: Duration) -> Result<Vec<Instance>, StoreError>;

    // --- outbox -------------------------------------------------------------------------

    /// Claims up to `max` of `sink`'s oldest due rows (by `seq`) for `owner` for `lease_ms`,
    /// with their records. Due: `next_attempt_ms <= now` and unclaimed or claim expired.
    async fn lease(&self, sink: &str, owner: &str, max: usize, lease_ms: i64) -> Result<Vec<Leased>, StoreError>;
    /// Acknowledges (removes) `seqs` still claimed by `owner`, then claims the next batch
    /// as [`Backend::lease`] does, in one transaction. Returns how many were acknowledged.
    async fn ack_and_lease(
        &self,
        owner: &str,
        seqs: Vec<i64>,
        sink: &str,
        max: usize,
        lease_ms: i64,
    ) -> Result<(usize, Vec<Leased>), StoreError>;
    /// Schedules row `seq` (still claimed by `owner`) again at `next_attempt_ms`.
    async fn retry_later(&self, seq: i64, owner: &str, error: &str, next_attempt_ms: i64) -> Result<(), StoreError>;
    /// Moves row `seq` (still claimed by `owner`) to the dead letters.
    async fn dead_letter(&self, seq: i64, owner: &str, error: &str, now_ms: i64) -> Result<(), StoreError>;
    /// Releases every claim of `owner`; how many.
    async fn release(&self, owner: &str) -> Result<usize, StoreError>;
    /// Releases `owner`'s claims on `seqs`; how many.
    async fn release_seqs(&self, owner: &str, seqs: Vec<i64>) -> Result<usize, StoreError>;
    /// The owners holding claims now.
    async fn lease_owners(&self) -> Result<Vec<String>, StoreError>;

    // --- operations ---------------------------------------------------------------------

    /// Rows waiting per sink, by sink name.
    async fn backlog(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// When the oldest row waiting for `sink` was queued.
    async fn oldest_pending_ms(&self, sink: &str) -> Result<Option<i64>, StoreError>;
    /// Dead letters, optionally of one sink and/or one notification id.
    async fn dead_letters(&self, sink: Option<String>, id: Option<String>) -> Result<Vec<DeadLetter>, StoreError>;
    /// Dead letters per sink.
    async fn dead_letter_counts(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// Moves matching dead letters back to the outbox, due at `now_ms`; how many.
    async fn retry_dead_letters(
        &self,
        sink: Option<String>,
        id: Option<String>,
        now_ms: i64,
    ) -> Result<usize, StoreError>;
    /// Queues every stored notification created in `[start_ms, end_ms)` that `route` takes
    /// and that is not queued for it already; how many.
    async fn enqueue_replay(&self, route: Route, start_ms: i64, end_ms: i64, now_ms: i64) -> Result<usize, StoreError>;
    /// Notifications stored since `since_ms` per source, subject and path (`status`).
    async fn counts_since(&self, since_ms: i64) -> Result<Vec<CountRow>, StoreError>;
    /// Forgets notifications created and first seen before `before_ms` with nothing left to
    /// deliver; how many.
    async fn prune(&self, before_ms: i64) -> Result<usize, StoreError>;
    /// One tiny committed write, proving the database takes writes now (`/readyz`).
    async fn check_writable(&self, now_ms: i64) -> Result<(), StoreError>;
    /// The outcome of the last audit.
    async fn last_audit(&self) -> Result<Option<LastAudit>, StoreError>;
    /// Records the outcome of an audit.
    async fn set_last_audit(&self, audit: LastAudit) -> Result<(), StoreError>;
    /// Makes every commit so far durable (those of paths not [`Via::synced_per_commit`]).
    async fn sync(&self) -> Result<(), StoreError>;
}
