//! Retention on the embedded log: removing the records older than their log's retention, in the
//! background, and giving their space back.
//!
//! Owns which records are expired and the sweep that removes them. A partition loses a prefix:
//! its oldest records up to the first one still inside the retention (records are stamped when
//! the log accepts them, so a prefix is also the oldest), never its newest record, which keeps
//! its next offset where it was (as Kafka keeps its active segment). So a partition stays one
//! run of offsets `start..end`, and a reader asking for an offset below `start` learns that
//! records were lost ([`crate::eventlog::Error::Expired`]) instead of silently getting later ones.
//!
//! The writer thread ([`super::writer`]) calls [`sweep`] between its group commits, about every
//! [`SWEEP_EVERY`]: a look without locks first, then one short transaction that removes at most
//! [`MAX_SWEEP`] records per partition, so an append waits for a few milliseconds of deleting at
//! most, and a large backlog is worked off over several turns. The freed pages are reused by the
//! next appends; beyond a reserve ([`free_reserve`]) they go back to the file system through
//! SQLite's incremental vacuum (new log files are created with `auto_vacuum = INCREMENTAL`), so
//! under a steady load the file levels off at about retention × rate, and it shrinks when the
//! load stops. Every process that opens the log sweeps with its own default retention: give the
//! processes of one log the same settings.

use std::time::Duration;

use rusqlite::{Connection, params};

use super::rowid::partition_rowids;
use crate::eventlog::Retention;

/// How often the writer looks for expired records.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Most records one sweep removes from one partition (a few milliseconds of work).
const MAX_SWEEP: usize = 5_000;
/// Most free pages one sweep gives back (64 MiB of 4 KiB pages).
const MAX_VACUUM_PAGES: i64 = 16_384;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Swept {
    /// Records removed.
    pub removed: u64,
    /// Pages given back to the file system.
    pub returned_pages: i64,
    /// Whether work is left for another turn at once.
    pub more: bool,
}

/// One partition's expired prefix: its records with rowids `first..=last`.
struct Expired {
    log: i64,
    uid: Option<String>,
    first: i64,
    last: i64,
    count: usize,
}

/// Removes what expired by `now_ms` from every log of the file (a log's own retention, else
/// `default`), then gives back the free pages beyond the reserve.
pub(super) fn sweep(conn: &Connection, default: Retention, now_ms: i64) -> rusqlite::Result<Swept> {
    let mut swept = Swept::default();
    let plan = expired(conn, default, now_ms)?;
    if !plan.is_empty() {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        match remove(conn, &plan) {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        swept.removed = plan.iter().map(|e| e.count as u64).sum();
        swept.more = plan.iter().any(|e| e.count == MAX_SWEEP);
    }
    let (returned, more) = give_back(conn)?;
    swept.returned_pages = returned;
    swept.more |= more;
    Ok(swept)
}

/// Finds each partition's expired prefix, reading only (no lock).
fn expired(conn: &Connection, default: Retention, now_ms: i64) -> rusqlite::Result<Vec<Expired>> {
    let logs: Vec<(i64, u32, Option<i64>, Option<String>)> = conn
        .prepare_cached("SELECT id, partitions, retention_ms, uid FROM logs")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut oldest =
        conn.prepare_cached("SELECT pos, ts_ms FROM records WHERE pos BETWEEN ?1 AND ?2 ORDER BY pos LIMIT ?3")?;
    let mut plan = Vec::new();
    for (log, partitions, own, uid) in logs {
        let Retention::For(keep) = own.map_or(default, Retention::from_millis) else { continue };
        let cutoff = now_ms.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
        for partition in 0..partitions {
            let (lo, hi) = partition_rowids(log, partition);
            let rows: Vec<(i64, i64)> = oldest
                .query_map(params![lo, hi, MAX_SWEEP as i64 + 1], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            // The newest record stays: past MAX_SWEEP rows there is a newer one, else the last is it.
            let candidates = &rows[..rows.len().saturating_sub(1).min(MAX_SWEEP)];
            let count = candidates.iter().take_while(|(_, ts)| *ts < cutoff).count();
            if count > 0 {
                plan.push(Expired { log, uid: uid.clone(), first: lo, last: candidates[count - 1].0, count });
            }
        }
    }
    Ok(plan)
}

/// Deletes the planned prefixes inside the caller's transaction, skipping a log that was deleted
/// (and perhaps created again under its id) since the plan was made.
fn remove(conn: &Connection, plan: &[Expired]) -> rusqlite::Result<()> {
    let mut same = conn.prepare_cached("SELECT uid FROM logs WHERE id = ?1")?;
    let mut delete = conn.prepare_cached("DELETE FROM records WHERE pos BETWEEN ?1 AND ?2")?;
    for e in plan {
        let uid: Option<Option<String>> = same.query_row([e.log], |r| r.get(0)).map(Some).or_else(none_if_missing)?;
        if uid.as_ref() == Some(&e.uid) {
            delete.execute([e.first, e.last])?;
        }
    }
    Ok(())
}

fn none_if_missing<T>(e: rusqlite::Error) -> rusqlite::Result<Option<T>> {
    match e {
        rusqlite::Error::QueryReturnedNoRows => Ok(None),
        e => Err(e),
    }
}

/// How many free pages a file keeps for the next appends: an eighth of its pages, at least
/// 1,024 (4 MiB of 4 KiB pages), so a steady load reuses them instead of growing the file again.
fn free_reserve(page_count: i64) -> i64 {
    (page_count / 8).max(1_024)
}

/// Gives the free pages beyond the reserve back to the file system (incremental vacuum; nothing
/// on a file created before this version, whose free pages are only reused). Returns the pages
/// given back and whether more are left for another turn.
fn give_back(conn: &Connection) -> rusqlite::Result<(i64, bool)> {
    let incremental: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if incremental != 2 {
        return Ok((0, false));
    }
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let excess = free - free_reserve(pages);
    if excess <= 0 {
        return Ok((0, false));
    }
    let now = excess.min(MAX_VACUUM_PAGES);
    // Each step of the pragma frees one page: step it to the end.
    let mut vacuum = conn.prepare(&format!("PRAGMA incremental_vacuum({now})"))?;
    let mut steps = vacuum.query([])?;
    while steps.next()?.is_some() {}
    Ok((now, excess > now))
}
