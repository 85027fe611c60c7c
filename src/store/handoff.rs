//! Handing new outbox rows straight to a waiting dispatcher of this process.
//!
//! Normally a dispatcher finds its work in the database: it leases rows (an UPDATE), reads
//! them back with their notifications (a join) and builds the records. When it has caught
//! up with its queue, that is wasted work: the rows it will lease next are the ones this
//! process is about to insert. So a dispatcher that found fewer due rows than it asked for
//! *opens* its handoff, and from then on the accepting transaction inserts that sink's new
//! rows already leased to it and, once committed, queues them here with their records.
//!
//! Invariants (the store's lock orders every step below against every accept):
//! - The handoff opens only in the same locked store call as a lease that drained the
//!   sink's due rows, so no row of this process is left unleased behind it: everything
//!   accepted afterwards is queued here, in seq order, after what that lease returned.
//! - An accept that would overfill the queue closes it and inserts unleased rows, which
//!   come after everything queued: the dispatcher empties the queue before it leases from
//!   the database again, so per-sink order is kept and memory stays bounded.
//! - Queued rows are durable outbox rows leased to this process; a crash leaves them to
//!   the lease-expiry and dead-owner rules like any other leased row, and a dispatcher
//!   that stops releases the ones it did not deliver ([`super::StoreHandle::close_handoff`]).

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::Leased;

/// One sink's handoff queue.
#[derive(Debug)]
pub struct Handoff {
    sink: String,
    owner: String,
    capacity: usize,
    state: Mutex<State>,
    queued: Notify,
}

#[derive(Debug, Default)]
struct State {
    open: bool,
    /// Rows with their lease's expiry (epoch ms).
    queue: VecDeque<(i64, Leased)>,
}

impl Handoff {
    pub(super) fn new(sink: &str, owner: &str, capacity: usize) -> Handoff {
        Handoff {
            sink: sink.to_owned(),
            owner: owner.to_owned(),
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
            queued: Notify::new(),
        }
    }

    /// The sink this queue feeds.
    pub fn sink(&self) -> &str {
        &self.sink
    }

    /// The lease owner of the queued rows.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Whether new rows are being handed over.
    pub fn is_open(&self) -> bool {
        self.state().open
    }

    /// Takes up to `max` queued rows, oldest first; rows whose lease ends before
    /// `usable_until_ms` are dropped instead (the database hands them out again once the
    /// lease has expired, possibly to another process).
    pub fn take(&self, max: usize, usable_until_ms: i64) -> Vec<Leased> {
        let mut state = self.state();
        let mut out = Vec::with_capacity(max.min(state.queue.len()));
        while out.len() < max {
            let Some((until_ms, row)) = state.queue.pop_front() else { break };
            if until_ms >= usable_until_ms {
                out.push(row);
            }
        }
        out
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.state().queue.is_empty()
    }

    /// Resolves when rows are queued after this call (or after `enable` on it).
    pub fn queued(&self) -> tokio::sync::futures::Notified<'_> {
        self.queued.notified()
    }

    /// Call with the store locked, after a lease that returned fewer rows than asked.
    pub(super) fn open(&self) {
        self.state().open = true;
    }

    /// Call with the store locked, before an accept of at most `rows` new rows for this
    /// sink: whether they may be leased to this queue. If they would not fit, the handoff
    /// closes (until the dispatcher has caught up again).
    pub(super) fn reserve(&self, rows: usize) -> bool {
        let mut state = self.state();
        if state.open && state.queue.len() + rows <= self.capacity {
            return true;
        }
        state.open = false;
        false
    }

    /// Call with the store locked, after the accept committed; `until_ms` is the rows'
    /// lease expiry.
    pub(super) fn push(&self, rows: Vec<Leased>, until_ms: i64) {
        if rows.is_empty() {
            return;
        }
        self.state().queue.extend(rows.into_iter().map(|row| (until_ms, row)));
        self.queued.notify_waiters();
    }

    /// Call with the store locked: closes the handoff and returns the seqs still queued.
    pub(super) fn close(&self) -> Vec<i64> {
        let mut state = self.state();
        state.open = false;
        state.queue.drain(..).map(|(_, row)| row.seq).collect()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
