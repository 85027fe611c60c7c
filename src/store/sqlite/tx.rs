//! Transaction helpers every part of the store writes through, and the walk over stored
//! time slices: a leaf of the store, so its parts (accept, outbox, maintenance) depend on it
//! and not on one another.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// The first stored `created_ms` of a source in a range.
const FIRST_CREATED: &str = "
    SELECT created_ms FROM notifications
    WHERE source = ?1 AND created_ms >= ?2 AND created_ms < ?3
    ORDER BY created_ms LIMIT 1";

/// Runs `f` in one IMMEDIATE transaction and commits it.
pub(super) fn write_tx<T>(
    conn: &mut Connection,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}

/// [`write_tx`] whose commit is not fsynced on its own (see [`super::unsynced`]).
///
/// For leases and acknowledgements, whose loss can only make a row deliverable again: a
/// power loss before the next synced commit or checkpoint (one is started after every store
/// call, so usually milliseconds later) can undo one, and the batch is then delivered
/// again, a duplicate with the same `id`, never a loss (G1, G4). It saves one fsync per
/// delivered batch with the store's lock held; in the backfill benchmark the
/// acknowledgements' lock time per million fell from 3.2–3.6 s to 1.3–1.4 s, and the
/// accepts', which wait less behind fsyncs, by 2–3.5 s (BENCHMARKS.md, third round).
pub(super) fn unsynced_tx<T>(
    conn: &mut Connection,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    super::unsynced(conn, |conn| write_tx(conn, f))
}

/// Calls `f(conn, lo, hi)` for consecutive slices `[lo, hi)` of at most `slice_ms` that
/// together cover every stored `created_ms` of `source` in `[start, end)`, jumping over
/// stretches with nothing stored (one index seek each), so a wide range costs no more than
/// the data in it. `f` may open its own transactions.
pub(super) fn for_each_slice(
    conn: &mut Connection,
    source: &str,
    start: i64,
    end: i64,
    slice_ms: i64,
    mut f: impl FnMut(&mut Connection, i64, i64) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let slice_ms = slice_ms.max(1);
    let mut from = start;
    while from < end {
        let first: Option<i64> =
            conn.prepare_cached(FIRST_CREATED)?.query_row(params![source, from, end], |row| row.get(0)).optional()?;
        let Some(lo) = first else { break };
        // lo < end, so hi > lo and the walk always advances.
        let hi = lo.saturating_add(slice_ms).min(end);
        f(conn, lo, hi)?;
        from = hi;
    }
    Ok(())
}
