//! A prepared statement that binds text without copying it, for the accept's row insert.
//!
//! rusqlite binds every text with `SQLITE_TRANSIENT`: SQLite allocates a copy at once and
//! frees it at the next bind. For the notification insert that is a malloc, a copy and a
//! free of each ~1.8 KB notification on the store's lock, before SQLite copies the same
//! bytes again into the row it builds. Bound with `SQLITE_STATIC` instead, SQLite reads the
//! caller's bytes while it steps. Measured with `bench/store/accept.rs` under callgrind
//! (20,000 notifications, one file route): 39,000 instructions per notification in the
//! accept before, 37,700 after (−3.5 %), the statement's per-batch prepare included.
//!
//! Safety rests on one invariant, kept by the types: every text bound lives at least as long
//! as the statement (`'a`), so whatever SQLite reads while stepping, until the statement is
//! finalized on drop, is still there. The statement also borrows its connection, so it is
//! finalized before the connection can be closed.

use std::ffi::{CString, c_int};
use std::marker::PhantomData;
use std::ptr;

use rusqlite::{Connection, ffi};

/// One statement with borrowed text bindings; finalized on drop.
pub(super) struct BorrowingStatement<'conn, 'a> {
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    _conn: PhantomData<&'conn Connection>,
    /// The texts bound: they must outlive the statement (dropck sees this through `Drop`).
    _texts: PhantomData<&'a str>,
}

impl<'conn, 'a> BorrowingStatement<'conn, 'a> {
    /// Prepares `sql` (one statement that returns no rows) on `conn`.
    pub(super) fn prepare(conn: &'conn Connection, sql: &str) -> rusqlite::Result<Self> {
        // SAFETY: the handle is used only while `conn` is borrowed (`'conn`), on this thread.
        let db = unsafe { conn.handle() };
        let text = CString::new(sql).map_err(|_| rusqlite::Error::InvalidQuery)?;
        let mut stmt = ptr::null_mut();
        // SAFETY: `db` is open; `text` is NUL-terminated (length -1); `stmt` receives the
        // statement or stays null.
        let rc = unsafe { ffi::sqlite3_prepare_v2(db, text.as_ptr(), -1, &mut stmt, ptr::null_mut()) };
        if rc != ffi::SQLITE_OK || stmt.is_null() {
            return Err(error(db, if rc == ffi::SQLITE_OK { ffi::SQLITE_MISUSE } else { rc }));
        }
        Ok(BorrowingStatement { db, stmt, _conn: PhantomData, _texts: PhantomData })
    }

    /// Binds parameter `index` (1-based) to `text`, read in place while the statement runs.
    pub(super) fn bind_text(&mut self, index: usize, text: &'a str) -> rusqlite::Result<()> {
        // An empty &str's pointer is dangling: give SQLite a real one (as rusqlite does).
        let (ptr, len) =
            if text.is_empty() { (c"".as_ptr().cast::<u8>(), 0) } else { (text.as_ptr(), text.len() as u64) };
        // SAFETY: `stmt` is live; `text` outlives the statement (`'a`), so SQLite may read its
        // `len` bytes until the statement is finalized. SQLITE_STATIC: SQLite neither copies
        // nor frees it.
        let rc = unsafe {
            ffi::sqlite3_bind_text64(
                self.stmt,
                param(index)?,
                ptr.cast(),
                len,
                ffi::SQLITE_STATIC(),
                ffi::SQLITE_UTF8 as u8,
            )
        };
        self.check(rc)
    }

    /// Binds parameter `index` to `text`, or to NULL for `None`.
    pub(super) fn bind_opt_text(&mut self, index: usize, text: Option<&'a str>) -> rusqlite::Result<()> {
        match text {
            Some(text) => self.bind_text(index, text),
            // SAFETY: `stmt` is live.
            None => self.check(unsafe { ffi::sqlite3_bind_null(self.stmt, param(index)?) }),
        }
    }

    /// Binds parameter `index` to `value`.
    pub(super) fn bind_i64(&mut self, index: usize, value: i64) -> rusqlite::Result<()> {
        // SAFETY: `stmt` is live.
        self.check(unsafe { ffi::sqlite3_bind_int64(self.stmt, param(index)?, value) })
    }

    /// Runs the statement to completion and resets it (the bindings stay); returns the rows
    /// it changed.
    pub(super) fn execute(&mut self) -> rusqlite::Result<u64> {
        // SAFETY: `stmt` is live and every text bound to it outlives it.
        let rc = unsafe { ffi::sqlite3_step(self.stmt) };
        // SAFETY: as above; the reset's own result repeats the step's error, if any.
        unsafe { ffi::sqlite3_reset(self.stmt) };
        match rc {
            // SAFETY: `db` is open.
            ffi::SQLITE_DONE => Ok(u64::try_from(unsafe { ffi::sqlite3_changes64(self.db) }).unwrap_or(0)),
            ffi::SQLITE_ROW => Err(rusqlite::Error::ExecuteReturnedResults),
            rc => Err(error(self.db, rc)),
        }
    }

    fn check(&self, rc: c_int) -> rusqlite::Result<()> {
        if rc == ffi::SQLITE_OK { Ok(()) } else { Err(error(self.db, rc)) }
    }
}

impl Drop for BorrowingStatement<'_, '_> {
    fn drop(&mut self) {
        // SAFETY: `stmt` came from a successful prepare and is finalized only here.
        unsafe { ffi::sqlite3_finalize(self.stmt) };
    }
}

fn param(index: usize) -> rusqlite::Result<c_int> {
    c_int::try_from(index).map_err(|_| rusqlite::Error::InvalidParameterCount(index, 0))
}

/// The error SQLite reports for `rc`, with its message, as rusqlite would give it.
fn error(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    // SAFETY: `db` is open; the message is copied out before any further call on it.
    let message = unsafe {
        let text = ffi::sqlite3_errmsg(db);
        (!text.is_null()).then(|| std::ffi::CStr::from_ptr(text).to_string_lossy().into_owned())
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT, n INTEGER CHECK (n >= 0))").unwrap();
        conn
    }

    #[test]
    fn stores_texts_nulls_and_integers_as_bound() {
        let conn = table();
        let texts = ["a", "", "é\u{0}x", &"long ".repeat(1000)].map(String::from);
        {
            let mut insert = BorrowingStatement::prepare(&conn, "INSERT INTO t VALUES (?1, ?2, ?3)").unwrap();
            for (i, text) in texts.iter().enumerate() {
                insert.bind_text(1, text).unwrap();
                insert.bind_opt_text(2, (i % 2 == 0).then_some(text.as_str())).unwrap();
                insert.bind_i64(3, i as i64).unwrap();
                assert_eq!(insert.execute().unwrap(), 1);
            }
        }
        let rows: Vec<(String, Option<String>, i64)> = conn
            .prepare("SELECT k, v, n FROM t ORDER BY n")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<(String, Option<String>, i64)> =
            texts.iter().enumerate().map(|(i, t)| (t.clone(), (i % 2 == 0).then(|| t.clone()), i as i64)).collect();
        assert_eq!(rows, expected);
        // Stored as text, the empty one too (not NULL, not a blob).
        let kinds: Vec<String> = conn
            .prepare("SELECT typeof(k) FROM t")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(kinds.iter().all(|k| k == "text"), "{kinds:?}");
    }

    #[test]
    fn reports_ignored_rows_and_sqlites_errors() {
        let conn = table();
        let mut insert =
            BorrowingStatement::prepare(&conn, "INSERT INTO t VALUES (?1, NULL, ?2) ON CONFLICT DO NOTHING").unwrap();
        insert.bind_text(1, "k").unwrap();
        insert.bind_i64(2, 1).unwrap();
        assert_eq!(insert.execute().unwrap(), 1);
        // The same key again: ignored, no change; the statement is reusable after it.
        assert_eq!(insert.execute().unwrap(), 0);
        insert.bind_text(1, "other").unwrap();
        insert.bind_i64(2, -1).unwrap();
        match insert.execute() {
            Err(rusqlite::Error::SqliteFailure(e, Some(message))) => {
                assert_eq!(e.code, rusqlite::ErrorCode::ConstraintViolation);
                assert!(message.contains("CHECK constraint failed"), "{message}");
            }
            other => panic!("expected a CHECK failure, got {other:?}"),
        }
        let bad = BorrowingStatement::prepare(&conn, "INSERT INTO nowhere VALUES (1)");
        assert!(matches!(bad, Err(rusqlite::Error::SqliteFailure(_, Some(ref m))) if m.contains("no such table")));
    }
}
