//! The values that cross the store's interface: what a source hands in ([`Incoming`],
//! [`Via`]), what an accept reports ([`Accepted`]), what a dispatcher claims ([`Leased`]),
//! the routing of subjects to sinks ([`Route`]) and the operator's reports. Shared by every
//! backend, so a backend's folder holds only how it stores them.

use super::record::{RecordFields, write_record};
use crate::cen::notification::Notification;

/// The path that delivered a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// Mastercard's push (or a VGS webhook).
    Push,
    /// The daemon's poll cycle.
    Pull,
    /// A one-shot `--backfill`.
    Backfill,
    /// An audit (SPEC 12) that found it after the sliding window missed it.
    Audit,
}

impl Via {
    /// The name stored in `received_via` and written in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Push => "push",
            Via::Pull => "pull",
            Via::Backfill => "backfill",
            Via::Audit => "audit",
        }
    }

    /// Whether each accept by this path is fsynced before it returns.
    ///
    /// A push is answered `200` only after its commit, and Mastercard does not send it
    /// again: that commit must survive a power loss at once (G1, G4). A page read by the
    /// poll or a backfill can be read from the API again for 7 days, and the scanner's
    /// callers make the pages durable before anything depends on them: the poll cycle's
    /// watermark commit is synced (and the WAL is a prefix log, so it syncs every page
    /// before it), and a backfill calls [`super::StoreHandle::sync`] before it reports
    /// success. A power loss in between loses only pages the poll or a rerun reads again.
    /// One fsync per window instead of one per page: in the backfill benchmark the accepts'
    /// commits held the store's lock 6.8 s of a 25 s run per million, 3.2–3.5 s without the
    /// fsync (BENCHMARKS.md, fourth round).
    pub fn synced_per_commit(self) -> bool {
        self == Via::Push
    }

    /// The inverse of [`Via::as_str`].
    pub fn parse(s: &str) -> Option<Via> {
        match s {
            "push" => Some(Via::Push),
            "pull" => Some(Via::Pull),
            "backfill" => Some(Via::Backfill),
            "audit" => Some(Via::Audit),
            _ => None,
        }
    }
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One notification to accept, borrowed from the caller's parsed form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming<'a> {
    /// The stable id (SPEC 3), or `vgs:<event id>`.
    pub id: &'a str,
    /// [`super::SOURCE_CEN`] or [`super::SOURCE_VGS`].
    pub source: &'a str,
    /// CEN `subject`, or the VGS event name.
    pub subject: &'a str,
    /// CEN `subscriptionName`, when present.
    pub subscription_name: Option<&'a str>,
    /// Creation time, UTC epoch milliseconds.
    pub created_ms: i64,
    /// Creation time exactly as sent (the record's `created_timestamp`).
    pub created_raw: &'a str,
    /// The object exactly as received; must be one JSON value (it is embedded verbatim in
    /// every record and not checked again).
    pub json: &'a str,
}

impl Incoming<'_> {
    /// The record (SPEC 6) of this notification first seen at `first_seen_ms` by `via`.
    pub fn record(&self, via: Via, first_seen_ms: i64) -> String {
        let mut record = String::new();
        write_record(
            &mut record,
            &RecordFields {
                id: self.id,
                source: self.source,
                received_via: via.as_str(),
                first_seen_ms,
                subject: self.subject,
                subscription_name: self.subscription_name,
                created_raw: self.created_raw,
                json: self.json,
            },
        );
        record
    }
}

impl<'a> From<&'a Notification> for Incoming<'a> {
    fn from(n: &'a Notification) -> Self {
        Incoming {
            id: &n.id,
            source: super::SOURCE_CEN,
            subject: &n.subject,
            subscription_name: n.subscription_name.as_deref(),
            created_ms: n.created.timestamp_millis(),
            created_raw: &n.created_raw,
            json: &n.json,
        }
    }
}

/// What [`Store::accept`] did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Notifications seen for the first time (now stored and queued).
    pub new: usize,
    /// Notifications already stored, or repeated earlier in the same batch.
    pub duplicates: usize,
    /// The new ids, in batch order.
    pub new_ids: Vec<String>,
    /// New notifications per subject, in order of first appearance in the batch.
    pub new_by_subject: Vec<(String, usize)>,
    /// New notifications that arrived by pull or backfill while push is configured: push
    /// missed them. A batch has one path, so when this is non-zero it equals `new`, and
    /// `new_by_subject` is also the per-subject breakdown of the recovered ones.
    pub recovered: usize,
    /// Outbox rows created (new notifications × matching sinks).
    pub enqueued: usize,
}

/// One outbox row handed to a delivery worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    /// The outbox row; pass it back to ack/retry/dead-letter.
    pub seq: i64,
    /// The notification id (also inside `record`).
    pub id: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the row was queued (epoch ms); for `max_age`.
    pub enqueued_ms: i64,
    /// The notification's subject (for NATS subjects and PostgreSQL columns).
    pub subject: String,
    /// `createdTimestamp` as sent.
    pub created_raw: String,
    /// `push`, `pull` or `backfill`.
    pub received_via: String,
    /// The SPEC 6 record, ready to send.
    pub record: String,
}

impl Leased {
    /// Row `seq` of the outbox, claimed, with its notification's stored fields: writes the
    /// record the sink is handed.
    pub(crate) fn new(seq: i64, attempts: u32, enqueued_ms: i64, fields: &RecordFields<'_>) -> Leased {
        let mut record = String::new();
        write_record(&mut record, fields);
        Leased {
            seq,
            id: fields.id.to_owned(),
            attempts,
            enqueued_ms,
            subject: fields.subject.to_owned(),
            created_raw: fields.created_raw.to_owned(),
            received_via: fields.received_via.to_owned(),
            record,
        }
    }
}

/// The most a stored delivery error keeps ([`DeadLetter::last_error`]): a sink's message
/// can quote a whole response body.
const MAX_ERROR_BYTES: usize = 4096;

/// `error` cut to [`MAX_ERROR_BYTES`] at a character boundary, as every backend stores it.
pub(crate) fn stored_error(error: &str) -> &str {
    if error.len() <= MAX_ERROR_BYTES {
        return error;
    }
    let mut end = MAX_ERROR_BYTES;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}

/// A sink and the subjects it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The sink's configured name.
    pub sink: String,
    /// The subjects it receives; empty means all.
    pub subjects: Vec<String>,
}

impl Route {
    /// Whether a notification with this subject goes to this sink.
    pub fn matches(&self, subject: &str) -> bool {
        self.subjects.is_empty() || self.subjects.iter().any(|s| s == subject)
    }
}

/// A delivery given up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The sink that gave up.
    pub sink: String,
    /// The notification's id.
    pub notification_id: String,
    /// Attempts made, the last (failed) one included.
    pub attempts: u32,
    /// When it was first queued for this sink (epoch ms).
    pub first_enqueued_ms: i64,
    /// When it was given up on (epoch ms).
    pub dead_ms: i64,
    /// The last failure, as the sink reported it (cut to 4 KiB).
    pub last_error: Option<String>,
    /// The notification's subject, for listing (absent only if the notification row is
    /// gone, which the schema prevents).
    pub subject: Option<String>,
    /// The notification's `createdTimestamp` as sent (absent likewise).
    pub created_raw: Option<String>,
}

/// The outcome of the last audit that ran to its end, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LastAudit {
    /// When it finished (RFC 3339 UTC).
    pub finished_at: String,
    /// The range it checked (`FROM..TO`).
    pub range: String,
    /// `ok` (nothing missing or all repaired), `missing` (found, not repaired) or `failed`
    /// (some window could not be read).
    pub outcome: String,
    /// Notifications the store lacked.
    pub missing: u64,
    /// Of those, stored and queued for the sinks.
    pub repaired: u64,
    /// API requests made.
    pub requests: u64,
    /// `cli` or `daemon`.
    pub by: String,
}

/// Notifications stored per source, subject and path (`status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountRow {
    /// `mastercard-cen` or `vgs`.
    pub source: String,
    /// CEN subject or VGS event name.
    pub subject: String,
    /// `push`, `pull` or `backfill`: the path that first delivered them.
    pub received_via: String,
    /// How many of `n` push missed (arrived by pull/backfill while push was configured).
    pub recovered: u64,
    /// Notifications in this group.
    pub n: u64,
}

/// A stored notification with everything the seen set keeps about it (for moving a state
/// from one backend to another).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNotification {
    pub id: String,
    pub source: String,
    pub subject: String,
    pub subscription_name: Option<String>,
    pub created_ms: i64,
    pub created_raw: String,
    pub received_via: String,
    pub first_seen_ms: i64,
    pub recovered: bool,
    pub json: String,
}

/// An outbox row still to deliver, without its claim (for moving a state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDelivery {
    pub sink: String,
    pub notification_id: String,
    pub enqueued_ms: i64,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
}
