//! Why a scan of the API stopped: shared by the scanner and the retry loop around its
//! requests.

use chrono::{DateTime, Utc};

use crate::cen::client::ApiError;
use crate::store::StoreError;

/// How many full offset scans of a one-millisecond sub-window before giving up on getting
/// two identical ones in a row (the next cycle tries again).
pub const MAX_STABLE_SCANS: usize = 8;

/// Why a scan stopped before reading its whole window.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("state database: {0}")]
    Store(#[from] StoreError),
    #[error(
        "a one-millisecond window at {at} holding {total} notifications changed on every one of {MAX_STABLE_SCANS} scans"
    )]
    Unstable { at: DateTime<Utc>, total: u64 },
    #[error("shutting down")]
    Cancelled,
    #[error("another instance leads the poll")]
    NotLeader,
}
