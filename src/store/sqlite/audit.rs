//! What the audit (SPEC 12) asks of the store besides the poll's counts: which of a
//! response's notifications it lacks, and the outcome of the last audit, kept in `meta` so
//! `status` shows it whichever process ran it.
//!
//! Invariant: nothing here writes notifications; an audit stores what it repairs through
//! [`Store::accept`] like every other path.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};
use crate::store::LastAudit;

/// The meta key of the last audit's outcome (a JSON object, see [`LastAudit`]).
const LAST_AUDIT_KEY: &str = "last_audit";

impl Store {
    /// The ids among `keys` (`(created_ms, id)` of CEN notifications) that are not stored.
    /// Looks each up in the seen set's unique index.
    pub fn absent(&self, keys: &[(i64, String)]) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut check = || -> rusqlite::Result<()> {
            let mut st = self.conn.prepare_cached(
                "SELECT 1 FROM notifications WHERE created_ms = ?1 AND id = ?2 AND source = 'mastercard-cen'",
            )?;
            for (created_ms, id) in keys {
                if st.query_row(params![created_ms, id], |_| Ok(())).optional()?.is_none() {
                    out.push(id.clone());
                }
            }
            Ok(())
        };
        check().map_err(|e| self.fail("look up notifications", e))?;
        Ok(out)
    }

    /// The last audit's outcome, if one was recorded.
    pub fn last_audit(&self) -> Result<Option<LastAudit>, StoreError> {
        let text: Option<String> = self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut st| st.query_row([LAST_AUDIT_KEY], |row| row.get(0)).optional())
            .map_err(|e| self.fail("read the last audit", e))?;
        // A value this version cannot read is shown as absent rather than failing `status`.
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Records the outcome of an audit.
    pub fn set_last_audit(&mut self, audit: &LastAudit) -> Result<(), StoreError> {
        let text = serde_json::to_string(audit)
            .map_err(|e| StoreError::InvalidInput { op: "record the audit", detail: e.to_string() })?;
        self.conn
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut st| st.execute(params![LAST_AUDIT_KEY, text]))
            .map(drop)
            .map_err(|e| self.fail("record the audit", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Incoming, SOURCE_CEN, Via};

    #[test]
    fn absent_ids_and_the_last_audit_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let n = Incoming {
            id: "a",
            source: SOURCE_CEN,
            subject: "CLEARING",
            subscription_name: None,
            created_ms: 5,
            created_raw: "x",
            json: "{}",
        };
        store.accept(&[n], Via::Audit, false, &[], 1).unwrap();
        let keys = vec![(5, "a".to_owned()), (5, "b".to_owned()), (6, "a".to_owned())];
        assert_eq!(store.absent(&keys).unwrap(), vec!["b".to_owned(), "a".to_owned()]);
        assert_eq!(store.last_audit().unwrap(), None);
        let last = LastAudit {
            finished_at: "2026-11-22T03:17:05.000Z".into(),
            range: "r".into(),
            outcome: "ok".into(),
            missing: 2,
            repaired: 2,
            requests: 170,
            by: "daemon".into(),
        };
        store.set_last_audit(&last).unwrap();
        assert_eq!(store.last_audit().unwrap(), Some(last));
    }

    /// A file at version 3 — with version 3's CHECK, or with the `IN` form a file keeps when
    /// that edit did not apply — takes `received_via = 'audit'` after version 4; its rows stay.
    #[test]
    fn version_4_lets_a_version_3_file_store_audit_findings() {
        use crate::store::sqlite::migrations::{MIGRATIONS, Step};
        for apply_v3 in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.db");
            {
                let mut conn = rusqlite::Connection::open(&path).unwrap();
                for step in &MIGRATIONS[..3] {
                    let tx = conn.transaction().unwrap();
                    match step {
                        Step::Sql(sql) => tx.execute_batch(sql).unwrap(),
                        Step::Code(code) if apply_v3 => code(&tx).unwrap(),
                        Step::Code(_) => {}
                    }
                    tx.commit().unwrap();
                }
                conn.pragma_update(None, "user_version", 3).unwrap();
                conn.execute(
                    "INSERT INTO notifications (id, source, subject, created_ms, created_raw, received_via,
                                                first_seen_ms, json)
                     VALUES ('old', 'mastercard-cen', 'CLEARING', 1, 'x', 'pull', 1, '{}')",
                    [],
                )
                .unwrap();
                let refused = conn.execute(
                    "INSERT INTO notifications (id, source, subject, created_ms, created_raw, received_via,
                                                first_seen_ms, json)
                     VALUES ('new', 'mastercard-cen', 'CLEARING', 2, 'x', 'audit', 1, '{}')",
                    [],
                );
                assert!(refused.is_err(), "version 3 refuses 'audit'");
            }
            let mut store = Store::open(&path).unwrap();
            assert_eq!(store.schema_version().unwrap(), crate::store::sqlite::migrations::CURRENT);
            let n = Incoming {
                id: "new",
                source: SOURCE_CEN,
                subject: "CLEARING",
                subscription_name: None,
                created_ms: 2,
                created_raw: "x",
                json: "{}",
            };
            assert_eq!(store.accept(&[n], Via::Audit, false, &[], 1).unwrap().new, 1, "apply_v3 {apply_v3}");
            assert_eq!(store.count_created(SOURCE_CEN, 0, 10, &[]).unwrap(), 2);
            let check: String = store.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
            assert_eq!(check, "ok");
        }
    }
}
