//! The state: the seen set, the poll watermark, the per-sink outbox, the dead letters and
//! (in a cluster) the poller's leadership. Everything the daemon must not forget.
//!
//! **The interface.** Sources (poll, backfill, audit, push, VGS), dispatchers and the
//! operator's commands use the store only through [`StoreHandle`]'s named operations:
//! - *accept*: [`StoreHandle::accept`] (CEN notifications by push, pull, backfill or audit)
//!   and [`StoreHandle::accept_from`] (another source's items, e.g. VGS events), one
//!   transaction each. When outbox rows were committed the store raises its commit signal,
//!   which a dispatcher waits on with [`StoreHandle::outbox_changed`];
//! - *poll state*: [`StoreHandle::watermark`], [`StoreHandle::set_watermark`] (fenced by the
//!   leadership epoch), [`StoreHandle::count_created`], [`StoreHandle::absent`];
//! - *leadership*: [`StoreHandle::lead`], [`StoreHandle::resign`], [`StoreHandle::instances`];
//! - *outbox*, per sink: [`StoreHandle::lease`], [`StoreHandle::ack_and_lease`],
//!   [`StoreHandle::retry_later`], [`StoreHandle::dead_letter`], [`StoreHandle::release`],
//!   [`StoreHandle::release_seqs`];
//! - *operations*: backlog, dead letters, replay, status counts, prune, audit outcome,
//!   writability and sync.
//!
//! Behind the handle is one [`Backend`] (`backend.rs` states what each must guarantee):
//! [`sqlite`] (the default, one file on one machine) or [`postgres`] (several instances
//! sharing one database, SPEC 13). Adding a backend is its folder plus one arm in
//! [`StoreHandle::connect`] (and its `Location` variant).
//!
//! The store never reads the clock for what it stores (times come from the caller) and
//! imports no source, sink, simulator or service module (`tests/layering.rs`).

mod backend;
mod error;
mod handle;
pub mod postgres;
mod record;
pub mod sqlite;
pub mod transfer;
mod types;

use std::time::Duration;

pub use backend::{Backend, Batch, Committed, Epoch, Instance, Items, Leadership};
pub use error::StoreError;
pub use handle::{Location, StoreHandle};
pub use sqlite::BUSY_TIMEOUT;
pub use types::{
    Accepted, CountRow, DeadLetter, Incoming, LastAudit, Leased, PendingDelivery, Route, StoredNotification, Via,
};

/// How long a dispatcher's claim on outbox rows lasts: rows not acknowledged by then are
/// due again (the dispatcher died, or hangs), for any process. Far longer than a batch
/// takes.
pub const LEASE: Duration = Duration::from_secs(300);

/// `source` of a Mastercard CEN notification.
pub const SOURCE_CEN: &str = "mastercard-cen";
/// `source` of a VGS webhook event.
pub const SOURCE_VGS: &str = "vgs";
/// Every source the schema accepts (it checks this list too).
pub const SOURCES: [&str; 2] = [SOURCE_CEN, SOURCE_VGS];
