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
//! every [`MIN_INTERVAL`]. A passive checkpoint never blocks the writer or readers.
//! Durability does not depend on checkpoints at all (a commit is durable once the WAL is
//! fsynced, `synchronous=FULL`).
//!
//! The WAL file is only written from its beginning again when, as a write transaction
//! starts, every frame in it has been checkpointed. Under a steady stream of commits a
//! passive checkpoint never quite gets there (frames keep arriving while it copies), so the
//! file grew to the main connection's fallback threshold ([`FALLBACK_PAGES`]) and that
//! connection's own checkpoint then stalled one commit for 35-60 ms (measured in the push
//! benchmark: every slow commit was one of those). So once the WAL holds
//! [`RESTART_FRAMES`], the round ends with a second passive checkpoint taken while holding
//! the store's lock: no commit of this process can run meanwhile, so it copies the few
//! frames that arrived during the first one and the next commit starts the WAL afresh.
//! The commit that waits for it waits for those few frames and one fsync, not for 64 MiB.

use std::fs::File;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::{BUSY_TIMEOUT, Store};

/// Checkpoints are at least this far apart: fewer, larger ones.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// The main connection's own automatic checkpoint, as a fallback (64 MiB of 8 KiB pages).
pub(super) const FALLBACK_PAGES: i64 = 8192;

/// A WAL this long (16 MiB of 8 KiB pages) is brought to a restart (see the module notes).
const RESTART_FRAMES: i64 = 2048;

/// The handle on the checkpoint thread; the thread ends when this is dropped.
pub(super) struct Checkpointer {
    wake: SyncSender<()>,
}

impl Checkpointer {
    /// Starts the thread with its own connection to the WAL database at `path`. `None`
    /// when that cannot be done (the main connection's automatic checkpoint then does it).
    /// `store` is the main connection, locked to finish a round (see the module notes).
    pub(super) fn start(path: &Path, store: Weak<Mutex<Store>>) -> Option<Checkpointer> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).ok()?;
        conn.busy_timeout(BUSY_TIMEOUT).ok()?;
        // Only to drop the checkpointed pages from the page cache (see `run`).
        let file = std::fs::File::open(path).ok()?;
        let (wake, woken) = sync_channel(1);
        let thread = std::thread::Builder::new().name("cen-checkpoint".into());
        thread.spawn(move || run(&conn, &file, &woken, &store)).ok()?;
        Some(Checkpointer { wake })
    }

    /// Asks for a checkpoint soon (never blocks).
    pub(super) fn wake(&self) {
        let _ = self.wake.try_send(());
    }
}

fn run(conn: &Connection, file: &File, woken: &Receiver<()>, store: &Weak<Mutex<Store>>) {
    while woken.recv().is_ok() {
        let started = Instant::now();
        // Busy (another process's checkpoint running) or failing: the next one, or the
        // main connection's fallback, catches up.
        let wal_frames = passive(conn);
        // Not skipped when the pass reports every frame checkpointed: its counts are those
        // of the WAL as the pass began, so a commit may have come meanwhile (tried: the
        // WAL then grew to the fallback again, `the_wal_restarts_under_a_steady_stream_…`).
        if wal_frames.is_some_and(|frames| frames >= RESTART_FRAMES)
            && let Some(store) = store.upgrade()
        {
            let _writes_wait = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            passive(conn);
        }
        // The checkpoint fsynced what it copied into the database file. Those pages are
        // read again only on a miss in SQLite's own cache (which holds the hot ones:
        // index edges, the newest leaves), so the kernel need not keep a second copy.
        if wal_frames.is_some() {
            crate::pagecache::forget(file, 0, None);
        }
        // A wake-up that came meanwhile is still in the channel: the next round runs then.
        std::thread::sleep(MIN_INTERVAL.saturating_sub(started.elapsed()));
    }
}

/// One PASSIVE checkpoint; the number of frames in the WAL, or `None` when it failed.
fn passive(conn: &Connection) -> Option<i64> {
    // The row is (busy, frames in the WAL, frames checkpointed).
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(1)) {
        Ok(frames) => Some(frames),
        Err(e) => {
            tracing::debug!(error = %e, "background checkpoint failed");
            None
        }
    }
}
