//! WAL checkpoints on a thread of their own.
//!
//! In WAL mode a commit appends to the `-wal` file; a checkpoint copies those pages into
//! the database file and fsyncs it. SQLite's automatic checkpoint runs inside the commit
//! that crosses its threshold, on the connection that made it: with one connection per
//! process, every ~1000 pages a page commit (or a push request) waited for a whole
//! checkpoint, and the store's lock was held meanwhile (measured: commits of 2.5 ms
//! turning into 15-50 ms, a third of the store's busy time in the backfill benchmark).
//!
//! Here a second connection runs PASSIVE checkpoints when the handle has been used, at most
//! every [`MIN_INTERVAL`]. A passive checkpoint never blocks the writer or readers; the
//! writer restarts the WAL from its beginning once a checkpoint has caught up. Durability
//! does not depend on checkpoints at all (a commit is durable once the WAL is fsynced,
//! `synchronous=FULL`). The main connection keeps an automatic checkpoint at a higher
//! threshold ([`FALLBACK_PAGES`]) in case this thread cannot keep up or cannot run.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::BUSY_TIMEOUT;

/// Checkpoints are at least this far apart: fewer, larger ones.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// The main connection's own automatic checkpoint, as a fallback (64 MiB of 8 KiB pages).
pub(super) const FALLBACK_PAGES: i64 = 8192;

/// The handle on the checkpoint thread; the thread ends when this is dropped.
pub(super) struct Checkpointer {
    wake: SyncSender<()>,
}

impl Checkpointer {
    /// Starts the thread with its own connection to the WAL database at `path`. `None`
    /// when that cannot be done (the main connection's automatic checkpoint then does it).
    pub(super) fn start(path: &Path) -> Option<Checkpointer> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).ok()?;
        conn.busy_timeout(BUSY_TIMEOUT).ok()?;
        let (wake, woken) = sync_channel(1);
        std::thread::Builder::new().name("cen-checkpoint".into()).spawn(move || run(&conn, &woken)).ok()?;
        Some(Checkpointer { wake })
    }

    /// Asks for a checkpoint soon (never blocks).
    pub(super) fn wake(&self) {
        let _ = self.wake.try_send(());
    }
}

fn run(conn: &Connection, woken: &Receiver<()>) {
    while woken.recv().is_ok() {
        let started = Instant::now();
        // Busy (another process's checkpoint running) or failing: the next one, or the
        // main connection's fallback, catches up.
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(0)) {
            tracing::debug!(error = %e, "background checkpoint failed");
        }
        // A wake-up that came meanwhile is still in the channel: the next round runs then.
        std::thread::sleep(MIN_INTERVAL.saturating_sub(started.elapsed()));
    }
}
