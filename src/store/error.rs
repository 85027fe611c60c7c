//! Errors of the state database, phrased for the operator.
//!
//! Every message names the database file and says what to do about it: a read-only file, a
//! full disk, a lock held by another process, a damaged file, or a file written by a newer
//! cen-poller. SQLite's result codes are sorted into those cases in [`classify`]; anything
//! else keeps the operation's name and SQLite's own message.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

/// Why the state database could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory that should hold the database could not be created.
    #[error(
        "cannot create the directory {} for the state database: {source}; create it, or set \
         [state] path to a writable location",
        .dir.display()
    )]
    CreateDir { dir: PathBuf, source: std::io::Error },

    /// SQLite could not open (or create) the file.
    #[error(
        "cannot open the state database {}: {detail}; check that the file and its directory \
         exist and are readable and writable by the service user",
        .path.display()
    )]
    CannotOpen { path: PathBuf, detail: String },

    /// The file, its directory or its `-wal`/`-shm` companions are not writable.
    #[error(
        "the state database {} is read-only ({op}: {detail}); make the file, its directory \
         and its -wal/-shm files writable by the service user (systemd: StateDirectory= or \
         ReadWritePaths=)",
        .path.display()
    )]
    ReadOnly { path: PathBuf, op: &'static str, detail: String },

    /// The filesystem is full; the transaction was rolled back.
    #[error(
        "the disk holding the state database {} is full ({op}); nothing of this operation \
         was stored: free space on that filesystem",
        .path.display()
    )]
    DiskFull { path: PathBuf, op: &'static str },

    /// Another connection kept the write lock longer than the busy timeout.
    #[error(
        "the state database {} stayed locked by another process for more than {} s ({op}); \
         look for a stuck cen-poller (e.g. a --backfill) or another program holding the \
         file open",
        .path.display(),
        super::BUSY_TIMEOUT.as_secs()
    )]
    Locked { path: PathBuf, op: &'static str },

    /// The file is damaged or is not a SQLite database at all.
    #[error(
        "the state database {} is damaged or not a SQLite database ({op}: {detail}); stop \
         cen-poller, keep a copy of the file, then try `sqlite3 FILE .recover`, or move the \
         file aside to start afresh (the poller then re-reads the API's retention window)",
        .path.display()
    )]
    Corrupt { path: PathBuf, op: &'static str, detail: String },

    /// The schema version is newer than this binary understands.
    #[error(
        "the state database {} has schema version {found}, but this cen-poller knows only \
         versions up to {supported}; run the (newer) cen-poller that wrote it, or point \
         [state] path at another file",
        .path.display()
    )]
    TooNew { path: PathBuf, found: i64, supported: i64 },

    /// WAL journaling could not be enabled (G4 depends on it).
    #[error(
        "the state database {} cannot use WAL journaling (journal_mode stays {mode:?}); put \
         it on a local filesystem (not NFS/SMB) that supports shared-memory files",
        .path.display()
    )]
    NoWal { path: PathBuf, mode: String },

    /// The operating system reported an I/O error.
    #[error(
        "I/O error on the state database {} ({op}: {detail}); check the disk and the kernel \
         log",
        .path.display()
    )]
    Io { path: PathBuf, op: &'static str, detail: String },

    /// The caller passed something the store refuses to write (a programming error, caught
    /// before anything is written).
    #[error("refused by the state database ({op}): {detail}")]
    InvalidInput { op: &'static str, detail: String },

    /// The PostgreSQL server cannot be reached or refused the connection.
    #[error(
        "cannot reach the state database {server}: {detail}; check that PostgreSQL runs there, \
         that [state] url/url_file names the right host, port, database, user and password, \
         and that the server's TLS certificate is trusted (sslrootcert)"
    )]
    Unreachable { server: String, detail: String },

    /// A PostgreSQL statement failed (the connection was lost, a constraint, permissions).
    #[error("state database {server}: {op} failed: {detail}")]
    Postgres { server: String, op: &'static str, detail: String },

    /// The PostgreSQL schema was migrated by a newer cen-poller.
    #[error(
        "the state database {server} has schema version {found}, but this cen-poller knows only \
         versions up to {supported}; upgrade this instance to the version the others run"
    )]
    SchemaTooNew { server: String, found: i64, supported: i64 },

    /// `migrate-state` found notifications in the target schema already.
    #[error(
        "the state database {server} already holds notifications; migrate-state copies into an \
         empty schema only (two machines' states are not merged): set [state] schema to a new \
         name, or drop this schema if it is a failed earlier attempt"
    )]
    NotEmpty { server: String },
    /// The watermark was not moved: this instance no longer holds the poller's leadership
    /// (its epoch is not the current one). Harmless: the new leader polls the window.
    #[error("not the poll leader any more (epoch {epoch} was superseded); the watermark was not moved")]
    Fenced { epoch: i64 },

    /// Any other SQLite failure.
    #[error("state database {}: {op} failed: {cause}", .path.display())]
    Sqlite { path: PathBuf, op: &'static str, cause: rusqlite::Error },
}

impl StoreError {
    /// Whether trying the same operation again later may succeed without anyone changing the
    /// configuration (a lock held by another process, a full disk being cleaned up, an I/O
    /// hiccup). Push requests answer `503` either way; this helps the log and the backoff.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Locked { .. }
                | StoreError::DiskFull { .. }
                | StoreError::Io { .. }
                | StoreError::Unreachable { .. }
                | StoreError::Postgres { .. }
        )
    }
}

/// Sorts a SQLite failure into the cases the operator can act on.
pub(crate) fn classify(path: &Path, op: &'static str, e: rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    let detail = e.to_string();
    match e.sqlite_error_code() {
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => StoreError::ReadOnly { path, op, detail },
        Some(ErrorCode::DiskFull) => StoreError::DiskFull { path, op },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked { path, op },
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt { path, op, detail },
        Some(ErrorCode::CannotOpen) => StoreError::CannotOpen { path, detail },
        Some(ErrorCode::SystemIoFailure) => StoreError::Io { path, op, detail },
        _ => StoreError::Sqlite { path, op, cause: e },
    }
}
