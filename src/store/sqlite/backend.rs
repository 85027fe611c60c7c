//! [`Sqlite`]: the file store behind the store's interface. One connection per process
//! behind a mutex, each call run on the blocking pool.
//!
//! One connection (not a pool) on purpose: SQLite has one writer at a time anyway, and one
//! connection lets a batch's insert and outbox rows be one transaction without coordination.
//! A call runs to completion even if its caller stops waiting: a commit under way is never
//! cut off by a shutdown.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;

use super::Store;
use super::checkpoint::Checkpointer;
use crate::store::backend::{Backend, Batch, Epoch, Instance, Leadership};
use crate::store::{Accepted, CountRow, DeadLetter, LastAudit, Leased, Route, StoreError, Via};

/// The SQLite backend.
pub struct Sqlite {
    store: Arc<Mutex<Store>>,
    /// The database file and its WAL (`None` in memory), for [`Backend::sync`].
    path: PathBuf,
    wal: Option<PathBuf>,
    /// Runs WAL checkpoints off the store's lock (file databases only).
    checkpointer: Option<Checkpointer>,
}

impl Sqlite {
    /// Opens (creating if missing) the database at `path` (see [`Store::open`]).
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        Ok(Self::new(Store::open(path)?))
    }

    pub fn new(store: Store) -> Sqlite {
        let (path, wal) = (store.path().to_path_buf(), store.wal_path());
        let store = Arc::new(Mutex::new(store));
        let checkpointer = Store::background_checkpoints(&store);
        Sqlite { store, path, wal, checkpointer }
    }

    /// Runs `f` with the store on the blocking pool.
    pub(super) async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut store = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut store)
        })
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::InvalidInput { op: "store call", detail: format!("the store task failed: {e}") })
        });
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.wake();
        }
        result
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

#[async_trait]
impl Backend for Sqlite {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    async fn accept(
        &self,
        batch: Batch,
        via: Via,
        recovered: bool,
        routes: Arc<Vec<Route>>,
        now_ms: i64,
    ) -> Result<Accepted, StoreError> {
        self.call(move |s| s.accept(&batch.incoming(), via, recovered, &routes, now_ms)).await
    }

    async fn watermark(&self) -> Result<Option<i64>, StoreError> {
        self.call(|s| s.watermark()).await
    }

    async fn set_watermark(&self, ms: i64, _epoch: Epoch) -> Result<(), StoreError> {
        self.call(move |s| s.set_watermark(ms)).await
    }

    async fn count_created(
        &self,
        source: &'static str,
        start_ms: i64,
        end_ms: i64,
        subscriptions: Vec<String>,
    ) -> Result<u64, StoreError> {
        self.call(move |s| s.count_created(source, start_ms, end_ms, &subscriptions)).await
    }

    async fn absent(&self, keys: Vec<(i64, String)>) -> Result<Vec<String>, StoreError> {
        self.call(move |s| s.absent(&keys)).await
    }

    async fn lead(&self, instance: &str, lease: Duration) -> Result<Leadership, StoreError> {
        Ok(Leadership { epoch: Some(0), leader: Some(instance.to_owned()), remaining: lease })
    }

    async fn resign(&self, _instance: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn instances(&self, _recent: Duration) -> Result<Vec<Instance>, StoreError> {
        Ok(Vec::new())
    }

    async fn lease(&self, sink: &str, owner: &str, max: usize, lease_ms: i64) -> Result<Vec<Leased>, StoreError> {
        let (sink, owner) = (sink.to_owned(), owner.to_owned());
        // "Now" is read under the store's lock: a row accepted just before counts as due.
        self.call(move |s| s.lease(&sink, &owner, max, lease_ms, now_ms())).await
    }

    async fn ack_and_lease(
        &self,
        owner: &str,
        seqs: Vec<i64>,
        sink: &str,
        max: usize,
        lease_ms: i64,
    ) -> Result<(usize, Vec<Leased>), StoreError> {
        let (sink, owner) = (sink.to_owned(), owner.to_owned());
        self.call(move |s| s.ack_and_lease(&owner, &seqs, &sink, max, lease_ms, now_ms())).await
    }

    async fn retry_later(&self, seq: i64, owner: &str, error: &str, next_attempt_ms: i64) -> Result<(), StoreError> {
        let (owner, error) = (owner.to_owned(), error.to_owned());
        self.call(move |s| s.retry_later(seq, &owner, &error, next_attempt_ms).map(drop)).await
    }

    async fn dead_letter(&self, seq: i64, owner: &str, error: &str, now_ms: i64) -> Result<(), StoreError> {
        let (owner, error) = (owner.to_owned(), error.to_owned());
        self.call(move |s| s.dead_letter(seq, &owner, &error, now_ms).map(drop)).await
    }

    async fn release(&self, owner: &str) -> Result<usize, StoreError> {
        let owner = owner.to_owned();
        self.call(move |s| s.release(&owner)).await
    }

    async fn release_seqs(&self, owner: &str, seqs: Vec<i64>) -> Result<usize, StoreError> {
        let owner = owner.to_owned();
        self.call(move |s| s.release_seqs(&owner, &seqs)).await
    }

    async fn lease_owners(&self) -> Result<Vec<String>, StoreError> {
        self.call(|s| s.lease_owners()).await
    }

    async fn backlog(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.call(|s| s.backlog()).await
    }

    async fn oldest_pending_ms(&self, sink: &str) -> Result<Option<i64>, StoreError> {
        let sink = sink.to_owned();
        self.call(move |s| s.oldest_pending_ms(&sink)).await
    }

    async fn dead_letters(&self, sink: Option<String>, id: Option<String>) -> Result<Vec<DeadLetter>, StoreError> {
        self.call(move |s| s.dead_letters(sink.as_deref(), id.as_deref())).await
    }

    async fn dead_letter_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.call(|s| s.dead_letter_counts()).await
    }

    async fn retry_dead_letters(
        &self,
        sink: Option<String>,
        id: Option<String>,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        self.call(move |s| s.retry_dead_letters(sink.as_deref(), id.as_deref(), now_ms)).await
    }

    async fn enqueue_replay(&self, route: Route, start_ms: i64, end_ms: i64, now_ms: i64) -> Result<usize, StoreError> {
        self.call(move |s| s.enqueue_replay(&route, start_ms, end_ms, now_ms)).await
    }

    async fn counts_since(&self, since_ms: i64) -> Result<Vec<CountRow>, StoreError> {
        self.call(move |s| s.counts_since(since_ms)).await
    }

    async fn prune(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.call(move |s| s.prune(before_ms)).await
    }

    async fn check_writable(&self, now_ms: i64) -> Result<(), StoreError> {
        self.call(move |s| s.check_writable(now_ms)).await
    }

    async fn last_audit(&self) -> Result<Option<LastAudit>, StoreError> {
        self.call(|s| s.last_audit()).await
    }

    async fn set_last_audit(&self, audit: LastAudit) -> Result<(), StoreError> {
        self.call(move |s| s.set_last_audit(&audit)).await
    }

    /// Fsyncs the WAL without the store's lock (see [`Store::sync`]).
    async fn sync(&self) -> Result<(), StoreError> {
        let (path, wal) = (self.path.clone(), self.wal.clone());
        tokio::task::spawn_blocking(move || Store::sync(&path, wal.as_deref())).await.unwrap_or_else(|e| {
            Err(StoreError::InvalidInput { op: "sync", detail: format!("the sync task failed: {e}") })
        })
    }
}
