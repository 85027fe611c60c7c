//! The SQLite backend: the state in one file on one machine (WAL, `synchronous=FULL`), the
//! default.
//!
//! The file holds every notification accepted (so a push copy and a pull copy count once),
//! the poll watermark, and one outbox row per (sink, notification) still to deliver. A
//! `--backfill` or CLI process may open the same file while the daemon runs; each [`Store`]
//! is one connection, used synchronously from one thread; [`Sqlite`] runs its calls on the
//! blocking pool, one at a time per process.
//!
//! Invariants (besides the interface's, `store::backend`):
//! - A notification row is written once, when its id is first seen, and never updated: its
//!   `json` is the object exactly as first received and `received_via` the first path.
//! - At most one outbox row exists per (sink, notification) (unique index); a row leaves the
//!   outbox only by ack (delivered) or dead letter (moved to `dead_letters`).
//! - Pruning never deletes a notification that still has an outbox row or a dead letter.
//! - Every write takes the write lock when its transaction begins (`BEGIN IMMEDIATE`), so a
//!   second process waits up to [`BUSY_TIMEOUT`] instead of failing mid-transaction.
//! - One machine has one poller: [`Sqlite`] always leads, under epoch 0.

mod accept;
mod audit;
mod backend;
mod checkpoint;
mod export;
mod maintenance;
mod migrations;
mod outbox;
#[cfg(test)]
mod tests;
mod tx;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use backend::Sqlite;

use super::error;
use super::{SOURCES, StoreError};

/// How long a write waits for another process's write lock before giving up. The daemon and
/// a `--backfill` share the file; their transactions are short, so this is only reached when
/// something is stuck.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements kept per connection; above the number of distinct statements the
/// store uses, so the hot path never re-prepares.
const STATEMENT_CACHE: usize = 64;

/// The state database: one connection to one file.
pub struct Store {
    conn: Connection,
    /// For error messages.
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if missing, with its parent directory) the database at `path`,
    /// configures the connection and brings the schema up to date.
    ///
    /// Fails when the file is newer than this binary ([`StoreError::TooNew`]), is not a
    /// database, is not writable, or cannot use WAL journaling.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir { dir: dir.to_path_buf(), source })?;
        }
        create_private(path);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| error::classify(path, "open", e))?;
        // SQLite quietly falls back to read-only when the file is write-protected; say so
        // now rather than on the first push.
        if conn.is_readonly(rusqlite::MAIN_DB).map_err(|e| error::classify(path, "open", e))? {
            return Err(StoreError::ReadOnly {
                path: path.to_path_buf(),
                op: "open",
                detail: "the file is not writable".into(),
            });
        }
        let mut store = Store { conn, path: path.to_path_buf() };
        store.configure(true)?;
        Ok(store)
    }

    /// An in-memory database with the same schema, for unit tests of callers. It is private
    /// to this connection and gone when dropped.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| error::classify(&path, "open", e))?;
        let mut store = Store { conn, path };
        store.configure(false)?;
        Ok(store)
    }

    /// The file this store was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves WAL checkpoints to a thread of their own (see [`checkpoint`]); this
    /// connection's automatic checkpoint stays as a fallback at a higher threshold. `None`
    /// for a database not in WAL mode (in memory) or when the thread cannot start.
    fn background_checkpoints(shared: &Arc<Mutex<Store>>) -> Option<checkpoint::Checkpointer> {
        let store = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mode: String = store.conn.query_row("PRAGMA journal_mode", [], |row| row.get(0)).ok()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return None;
        }
        let checkpointer = checkpoint::Checkpointer::start(&store.path, Arc::downgrade(shared))?;
        // If this fails the default threshold stays, which is only more checkpoints.
        let _ = store.conn.pragma_update(None, "wal_autocheckpoint", checkpoint::FALLBACK_PAGES);
        Some(checkpointer)
    }

    fn configure(&mut self, wal: bool) -> Result<(), StoreError> {
        self.conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // First, so that the pragmas and migrations below wait for another process's lock.
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| self.fail("configure", e))?;
        // Only takes effect while the file is still empty (a new database): rows are ~1.5 KB
        // of JSON, and 8 KiB pages cut the page writes per batch (measured ~15% faster accept).
        self.conn.pragma_update(None, "page_size", 8192).map_err(|e| self.fail("configure", e))?;
        if wal {
            // Readers never block the writer and vice versa, and a commit is one append
            // to the WAL (G4 with synchronous=FULL below).
            let mode: String = self
                .conn
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                .map_err(|e| self.fail("enable WAL", e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::NoWal { path: self.path.clone(), mode });
            }
        }
        let pragmas = [
            // G4: a commit is on disk before it returns (the WAL is fsynced per commit).
            ("synchronous", "FULL"),
            ("foreign_keys", "ON"),
            // 16 MiB instead of 2: fewer re-reads of index pages.
            ("cache_size", "-16384"),
            // Truncate the WAL back to 64 MiB after a checkpoint, in case a long read let
            // it grow.
            ("journal_size_limit", "67108864"),
        ];
        for (name, value) in pragmas {
            self.conn.pragma_update(None, name, value).map_err(|e| self.fail("configure", e))?;
        }
        match migrations::migrate(&mut self.conn).map_err(|e| self.fail("migrate", e))? {
            migrations::Outcome::UpToDate => Ok(()),
            migrations::Outcome::TooNew(found) => {
                Err(StoreError::TooNew { path: self.path.clone(), found, supported: migrations::CURRENT })
            }
        }
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| self.fail("read schema version", e))
    }

    /// Proves the database takes writes now (for `/readyz`): one tiny committed write, so
    /// a full disk, a read-only remount or a lock held by a stuck process shows up.
    pub fn check_writable(&mut self, now_ms: i64) -> Result<(), StoreError> {
        tx::write_tx(&mut self.conn, |tx| {
            tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_write_check_ms', ?1)")?
                .execute([now_ms])
        })
        .map(drop)
        .map_err(|e| self.fail("check that the database is writable", e))
    }

    /// The `-wal` file of a database file (`None` in memory).
    pub fn wal_path(&self) -> Option<PathBuf> {
        let path = self.conn.path().filter(|p| !p.is_empty())?;
        Some(PathBuf::from(format!("{path}-wal")))
    }

    /// Makes every commit so far durable, those made `unsynced` included: fsyncs the WAL
    /// file (what `synchronous=FULL` does at each commit). Needs no lock: it only flushes what
    /// is already written, and SQLite writes over a frame (restarting the WAL) only after a
    /// checkpoint has copied it into the database file and fsynced that.
    pub fn sync(path: &Path, wal: Option<&Path>) -> Result<(), StoreError> {
        let Some(wal) = wal else {
            return Ok(());
        };
        let io =
            |e: std::io::Error| StoreError::Io { path: path.to_path_buf(), op: "sync the WAL", detail: e.to_string() };
        match std::fs::File::open(wal) {
            Ok(file) => file.sync_data().map_err(io),
            // Only the last connection to close removes the WAL, after checkpointing it
            // into the (then synced) database file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    /// Turns a SQLite failure into an operator-facing error naming this file.
    fn fail(&self, op: &'static str, e: rusqlite::Error) -> StoreError {
        error::classify(&self.path, op, e)
    }
}

/// Runs `f` with `synchronous=NORMAL`: its commits are not fsynced on their own.
///
/// Such a commit is in the WAL at once, so other processes see it and a killed process
/// (`kill -9`) loses nothing of it. It reaches the disk with the next synced commit, WAL
/// checkpoint or [`Store::sync`]: the WAL is one log replayed as a prefix, so syncing any
/// later point of it makes every earlier commit durable too. Only a power loss before that
/// can undo it, so only commits whose loss the caller can make good use this.
pub(super) fn unsynced<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let result = f(conn);
    // Whatever happened: every other commit must be synced (G4).
    let restored = conn.pragma_update(None, "synchronous", "FULL");
    let value = result?;
    restored?;
    Ok(value)
}

/// Creates a missing database file readable by its owner only: it holds card data, and
/// SQLite gives the `-wal`/`-shm` files the same permissions. Failure is left for SQLite's
/// open to report with its own message.
fn create_private(path: &Path) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = options.open(path);
}
