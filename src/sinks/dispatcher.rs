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

use super::{Sink, SinkError};
use crate::config::DeliveryConfig;
pub use crate::metrics::SinkCounters;
use crate::store::{Leased, StoreHandle};

/// How long a lease holds before another process may take the row over.
pub const LEASE: Duration = Duration::from_secs(300);
/// How often an idle dispatcher looks at its outbox even without a wake-up (rows added by
/// another process, retry times reached).
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Retry settings, from `[delivery]`.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub max_attempts: u32,
    pub max_age: Duration,
}

impl From<&DeliveryConfig> for DeliverySettings {
    fn from(d: &DeliveryConfig) -> Self {
        DeliverySettings {
            backoff_initial: d.backoff_initial.0,
            backoff_max: d.backoff_max.0,
            max_attempts: d.max_attempts,
            max_age: d.max_age.0,
        }
    }
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
    /// Releases nothing at the end: when several dispatchers share one owner id (every sink
    /// of a process), one stopping (a sink removed by SIGHUP) must not clear the leases the
    /// others hold — their acknowledgements would then match no row and the batch would be
    /// delivered again. The process releases its owner's leases once all have stopped.
    pub async fn serve(&self, stop: CancellationToken) {
        let name = self.sink.name().to_owned();
        // The batch leased together with the previous batch's acknowledgement.
        let mut next = Vec::new();
        loop {
            if stop.is_cancelled() {
                break;
            }
            let batch = std::mem::take(&mut next);
            match self.heartbeat.while_running(self.deliver_then_lease(batch)).await {
                Ok((0, _)) => {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = self.store.outbox_changed() => {}
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
    }

    /// Leases one batch, delivers it, records the outcomes. Returns how many rows it
    /// leased (0: nothing due).
    pub async fn deliver_once(&self) -> Result<usize, crate::store::StoreError> {
        let batch = self.lease().await?;
        self.deliver(batch, false).await.map(|(n, _)| n)
    }

    async fn lease(&self) -> Result<Vec<Leased>, crate::store::StoreError> {
        let now = Utc::now().timestamp_millis();
        self.store.lease(self.sink.name(), &self.owner, self.sink.max_batch(), LEASE.as_millis() as i64, now).await
    }

    /// Delivers `batch` (leasing one first when it is empty) and records the outcomes; the
    /// acknowledgement also leases the next batch, in the same transaction (one commit per
    /// batch instead of two). Returns how many rows were delivered or failed, and the next
    /// batch.
    async fn deliver_then_lease(&self, batch: Vec<Leased>) -> Result<(usize, Vec<Leased>), crate::store::StoreError> {
        let batch = if batch.is_empty() { self.lease().await? } else { batch };
        self.deliver(batch, true).await
    }

    /// Delivers a leased batch and records the outcomes; with `lease_next`, leases the next
    /// batch together with the acknowledgement.
    async fn deliver(
        &self,
        batch: Vec<Leased>,
        lease_next: bool,
    ) -> Result<(usize, Vec<Leased>), crate::store::StoreError> {
        let name = self.sink.name();
        let now = Utc::now().timestamp_millis();
        if batch.is_empty() {
            return Ok((0, Vec::new()));
        }
        let outcomes = self.sink.deliver(&batch).await;
        let mut delivered = Vec::with_capacity(batch.len());
        for (item, outcome) in
            batch.iter().zip(outcomes.into_iter().chain(std::iter::repeat(Err(SinkError::Retryable(
                "the sink returned no outcome for this record".into(),
            )))))
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
                        tracing::warn!(sink = %name, id = %item.id, attempts, error = %err, "delivery failed for good: dead letter (see `cen-poller dead-letters`)");
                        self.store.dead_letter(item.seq, &self.owner, &err.to_string()).await?;
                    } else {
                        let next = now + self.settings.backoff(attempts).as_millis() as i64;
                        tracing::debug!(sink = %name, id = %item.id, attempts, error = %err, "delivery failed; will retry");
                        self.store.retry_later(item.seq, &self.owner, &err.to_string(), next).await?;
                    }
                }
            }
        }
        let mut next = Vec::new();
        if !delivered.is_empty() {
            let count = delivered.len() as u64;
            if lease_next {
                let now = Utc::now().timestamp_millis();
                let max = self.sink.max_batch();
                (_, next) =
                    self.store.ack_and_lease(&self.owner, delivered, name, max, LEASE.as_millis() as i64, now).await?;
            } else {
                self.store.ack(&self.owner, delivered).await?;
            }
            self.counters.delivered.inc_by(count);
        }
        Ok((batch.len(), next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
