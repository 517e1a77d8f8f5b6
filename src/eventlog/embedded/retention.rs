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
//! A byte limit on the file (`[log] retention_bytes`, `[streams] retention_bytes`; like Kafka's
//! `retention.bytes`, but for all the logs of the file together) removes, while the file's pages
//! in use hold more, the oldest records of the partition whose first record is the oldest, a
//! hundred at a time, never a partition's newest.
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
/// Records a byte limit removes at a time from the partition with the oldest record.
const SIZE_CHUNK: usize = 100;
/// Most chunks one sweep removes for a byte limit (the rest waits for the next turn).
const MAX_SIZE_TURNS: usize = 200;
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

/// What a file's logs keep: the retention of logs without their own, and at most how many bytes
/// of records the whole file holds (`None`: no limit).
#[derive(Debug, Clone, Copy)]
pub(super) struct Keep {
    pub default: Retention,
    pub max_bytes: Option<u64>,
}

/// Removes what expired by `now_ms` from every log of the file (a log's own retention, else the
/// default), then, while the file holds more than its byte limit, the oldest records of any of
/// its logs; then gives back the free pages beyond the reserve.
pub(super) fn sweep(conn: &Connection, keep: Keep, now_ms: i64) -> rusqlite::Result<Swept> {
    let mut swept = Swept::default();
    let plan = expired(conn, keep.default, now_ms)?;
    remove_planned(conn, &plan, &mut swept)?;
    if let Some(max_bytes) = keep.max_bytes {
        for _ in 0..MAX_SIZE_TURNS {
            if used_bytes(conn)? <= max_bytes {
                break;
            }
            let Some(oldest) = oldest_prefix(conn)? else { break };
            remove_planned(conn, &[oldest], &mut swept)?;
        }
        // Over the limit still (with something left to remove): another turn at once. What the
        // age-based part left for another turn stays so.
        swept.more |= used_bytes(conn)? > max_bytes && oldest_prefix(conn)?.is_some();
    }
    let (returned, more) = give_back(conn)?;
    swept.returned_pages = returned;
    swept.more |= more;
    Ok(swept)
}

/// Deletes `plan` in one transaction and counts it into `swept`.
fn remove_planned(conn: &Connection, plan: &[Expired], swept: &mut Swept) -> rusqlite::Result<()> {
    if plan.is_empty() {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match remove(conn, plan) {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    swept.removed += plan.iter().map(|e| e.count as u64).sum::<u64>();
    swept.more |= plan.iter().any(|e| e.count == MAX_SWEEP);
    Ok(())
}

/// Bytes of the file's pages in use (free pages not counted).
fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(u64::try_from((pages - free) * size).unwrap_or(0))
}

/// One partition of a log, as the sweep names it.
struct Partition {
    log: i64,
    uid: Option<String>,
    /// Its rowids, first and last.
    rowids: (i64, i64),
}

/// The oldest [`SIZE_CHUNK`] records (at most; never a partition's newest) of the partition,
/// in any log of the file, whose first record is the oldest: what a byte limit removes first.
fn oldest_prefix(conn: &Connection) -> rusqlite::Result<Option<Expired>> {
    let logs: Vec<(i64, u32, Option<String>)> = conn
        .prepare_cached("SELECT id, partitions, uid FROM logs")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut first_two =
        conn.prepare_cached("SELECT pos, ts_ms FROM records WHERE pos BETWEEN ?1 AND ?2 ORDER BY pos LIMIT 2")?;
    // The partition whose first record is the oldest: that record's stamp, and the partition.
    let mut oldest: Option<(i64, Partition)> = None;
    for (log, partitions, uid) in logs {
        for partition in 0..partitions {
            let rowids = partition_rowids(log, partition);
            let rows: Vec<(i64, i64)> = first_two
                .query_map([rowids.0, rowids.1], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            // A partition of one record keeps it.
            if let [(_, stamp), _] = rows[..]
                && oldest.as_ref().is_none_or(|o| stamp < o.0)
            {
                oldest = Some((stamp, Partition { log, uid: uid.clone(), rowids }));
            }
        }
    }
    let Some((_, Partition { log, uid, rowids: (lo, hi) })) = oldest else { return Ok(None) };
    let rows: Vec<i64> = conn
        .prepare_cached("SELECT pos FROM records WHERE pos BETWEEN ?1 AND ?2 ORDER BY pos LIMIT ?3")?
        .query_map(params![lo, hi, SIZE_CHUNK as i64 + 1], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let count = rows.len().saturating_sub(1).min(SIZE_CHUNK);
    Ok((count > 0).then(|| Expired { log, uid, first: lo, last: rows[count - 1], count }))
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
