//! The durable end of each partition: one past the last offset whose commit is known to be on
//! disk (Kafka's high watermark). Readers stop there, in this process and in others, so nothing
//! reads a record that a power loss could still take back and give its offset to another.
//!
//! Owns the ends: a table of slots in a small file beside the log (`topics.db-durable`), mapped
//! into the memory of every process that opens the log, so raising an end is one atomic
//! `fetch_max` and reading one an atomic load — no system call and no file-system metadata in the
//! append's path. The fsync thread raises the ends of the groups an fsync covered before it
//! answers them, so a caller that got its answer finds its records readable from any process.
//! Also owns the ends a newly opened log publishes for what its file already holds
//! ([`current_ends`]: a writer that died between a commit and its fsync leaves records no one
//! published), and the test hook that holds the fsync back ([`wait_at_gate`]).
//!
//! Only ends an fsync covered are ever written, and only upwards, so whatever of the table a power
//! loss leaves on disk is behind the log or equal to it, never ahead (the next open catches up).
//! Slots are found by hashing (log id, partition) with linear probing; a slot is claimed with a
//! compare-and-swap, so writers of several processes share the table without a lock. Where the
//! file cannot be mapped, or its table has no room left, the ends are kept in this process only
//! (other processes then see those records once they open the log).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use memmap2::MmapRaw;
use rusqlite::Connection;

use super::rowid::{offset_of, partition_rowids};

/// A partition's end: (log id, partition, one past the last durable offset).
pub(super) type End = (i64, u32, u64);

/// The variable naming the test hook's gate file: while that file exists, every fsync of the
/// embedded log in a process started with the variable waits (tests only).
const FSYNC_GATE_VAR: &str = "PINPIPE_TEST_FSYNC_GATE";

/// Slots in the table: each a key and an end, 16 bytes (a 1 MiB file per log file).
const SLOTS: usize = 1 << 16;

/// The durable ends of one log file.
pub(super) struct DurableEnds {
    /// The shared table, or `None` where the file could not be mapped.
    table: Option<MmapRaw>,
    /// The ends the table has no room for (all of them, without a table): this process's only.
    overflow: Mutex<HashMap<(i64, u32), u64>>,
    /// Whether the table's lack of room was already reported.
    reported_full: AtomicBool,
}

impl DurableEnds {
    /// The ends of the log file `db`, in the table beside it.
    pub(super) fn of(db: &Path) -> DurableEnds {
        let mut name = db.as_os_str().to_owned();
        name.push("-durable");
        let path = PathBuf::from(name);
        let table = map(&path)
            .inspect_err(|e| {
                tracing::warn!(path = %path.display(), error = %e, "cannot map the durable ends; other processes see new records once they reopen the log");
            })
            .ok();
        DurableEnds { table, overflow: Mutex::default(), reported_full: AtomicBool::new(false) }
    }

    /// Raises the ends of `ends` (never lowers one).
    pub(super) fn raise(&self, ends: &[End]) {
        for &(log, partition, end) in ends {
            if let Some(slot) = self.slot(log, partition, true) {
                slot.fetch_max(end, Ordering::Release);
                continue;
            }
            if self.table.is_some() && !self.reported_full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    log,
                    partition,
                    "the durable-ends table is full; other processes see new records of some partitions once they reopen the log"
                );
            }
            if let Ok(mut overflow) = self.overflow.lock() {
                let e = overflow.entry((log, partition)).or_default();
                *e = (*e).max(end);
            }
        }
    }

    /// Whether every end of `ends` is already durable: publishing them again would change nothing.
    pub(super) fn covers(&self, ends: &[End]) -> bool {
        ends.iter().all(|&(log, partition, end)| self.end_of(log, partition, 0) >= end)
    }

    /// The durable end of each of `log`'s partitions in `partitions`: at least the log's first
    /// offset.
    pub(super) fn ends_of(&self, log: i64, partitions: std::ops::Range<u32>, first_offset: u64) -> Vec<u64> {
        partitions.map(|partition| self.end_of(log, partition, first_offset)).collect()
    }

    /// The durable end of one partition: at least the log's first offset.
    pub(super) fn end_of(&self, log: i64, partition: u32, first_offset: u64) -> u64 {
        let end = match self.slot(log, partition, false) {
            Some(slot) => slot.load(Ordering::Acquire),
            None => self.overflow.lock().ok().and_then(|o| o.get(&(log, partition)).copied()).unwrap_or(0),
        };
        first_offset.max(end)
    }

    /// The end word of a partition's slot in the table; with `claim`, an empty slot is taken for
    /// it when it has none.
    fn slot(&self, log: i64, partition: u32, claim: bool) -> Option<&AtomicU64> {
        let slots = self.slots()?;
        find(slots, key(log, partition), claim).map(|slot| &slots[2 * slot + 1])
    }

    /// The table as `2 * SLOTS` words: a key, then its end.
    fn slots(&self) -> Option<&[AtomicU64]> {
        let table = self.table.as_ref()?;
        // SAFETY: the mapping is writable, page-aligned (so 8-byte aligned), at least
        // `2 * SLOTS * 8` bytes long (`map` made it so) and lives as long as `self`; every process
        // touches it only through atomics, which is what makes sharing it sound.
        Some(unsafe { std::slice::from_raw_parts(table.as_mut_ptr().cast::<AtomicU64>(), 2 * SLOTS) })
    }
}

/// Opens and maps the table file, creating it full of zeros (every slot empty) under a lock, so
/// two processes opening it at once never zero each other's ends. Its blocks are written, not
/// just reserved, so storing into the mapping never needs new space: a full disk cannot stop it.
fn map(path: &Path) -> std::io::Result<MmapRaw> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    let size = 2 * SLOTS * std::mem::size_of::<u64>();
    file.lock()?;
    if file.metadata()?.len() < size as u64 {
        file.set_len(0)?;
        file.write_all(&vec![0; size])?;
        file.sync_all()?;
    }
    file.unlock()?;
    let table = MmapRaw::map_raw(&file)?;
    if table.len() < size {
        return Err(std::io::Error::other("the durable-ends file is shorter than its table"));
    }
    Ok(table)
}

/// A slot's key: never 0 (log ids start at 1), which marks an empty slot.
fn key(log: i64, partition: u32) -> u64 {
    ((log.max(0) as u64) << 32) | u64::from(partition)
}

/// The slot holding `key`; with `claim`, an empty slot is taken for it when it has none.
fn find(slots: &[AtomicU64], key: u64, claim: bool) -> Option<usize> {
    let start = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 44) as usize % SLOTS;
    for probe in 0..SLOTS {
        let slot = (start + probe) % SLOTS;
        let word = &slots[2 * slot];
        match word.load(Ordering::Acquire) {
            k if k == key => return Some(slot),
            0 if !claim => return None,
            0 => match word.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(slot),
                Err(k) if k == key => return Some(slot),
                Err(_) => continue,
            },
            _ => continue,
        }
    }
    None
}

/// The end of every non-empty partition of every log in the file as it is now: what an fsync
/// taken after this makes durable.
pub(super) fn current_ends(conn: &Connection) -> rusqlite::Result<Vec<End>> {
    let logs: Vec<(i64, u32)> = conn
        .prepare("SELECT id, partitions FROM logs")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut last = conn.prepare_cached("SELECT MAX(pos) FROM records WHERE pos BETWEEN ?1 AND ?2")?;
    let mut ends = Vec::new();
    for (log, partitions) in logs {
        for partition in 0..partitions {
            let (lo, hi) = partition_rowids(log, partition);
            // An empty partition has nothing to publish: readers start at the first offset.
            if let Some(pos) = last.query_row([lo, hi], |r| r.get::<_, Option<i64>>(0))? {
                ends.push((log, partition, offset_of(pos) + 1));
            }
        }
    }
    Ok(ends)
}

/// The test hook's gate file, if this process was started with [`FSYNC_GATE_VAR`].
pub(super) fn gate() -> Option<PathBuf> {
    std::env::var_os(FSYNC_GATE_VAR).map(PathBuf::from)
}

/// Waits while the gate file exists (never, without the test hook).
pub(super) fn wait_at_gate(gate: Option<&PathBuf>) {
    if let Some(gate) = gate {
        while gate.exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_only_rise_and_every_handle_of_the_file_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("topics.db");
        let ends = DurableEnds::of(&db);
        assert_eq!(ends.end_of(1, 0, 5), 5, "nothing known: the first offset");
        ends.raise(&[(1, 0, 10), (1, 1, 3), (2, 0, 8)]);
        ends.raise(&[(1, 0, 7)]);
        let other = DurableEnds::of(&db); // as another process maps it
        assert_eq!(other.ends_of(1, 0..3, 0), [10, 3, 0]);
        assert_eq!(other.ends_of(1, 0..2, 4), [10, 4]);
        assert_eq!(other.end_of(2, 0, 0), 8);
        other.raise(&[(1, 1, 30)]);
        assert_eq!(ends.end_of(1, 1, 0), 30);
        assert!(ends.covers(&[(1, 0, 10), (1, 1, 30)]) && ends.covers(&[]));
        assert!(!ends.covers(&[(1, 0, 11)]));
    }

    #[test]
    fn without_a_table_the_ends_stay_in_this_process() {
        let ends = DurableEnds { table: None, overflow: Mutex::default(), reported_full: AtomicBool::new(false) };
        ends.raise(&[(3, 1, 9)]);
        ends.raise(&[(3, 1, 4)]);
        assert_eq!(ends.ends_of(3, 0..2, 2), [2, 9]);
        assert!(ends.covers(&[(3, 1, 9)]) && !ends.covers(&[(3, 0, 1)]));
    }

    #[test]
    fn colliding_keys_probe_to_their_own_slots() {
        let slots: Vec<AtomicU64> = (0..2 * SLOTS).map(|_| AtomicU64::new(0)).collect();
        let keys: Vec<u64> = (1..2000).map(|log| key(log, 7)).collect();
        let found: Vec<usize> = keys.iter().map(|&k| find(&slots, k, true).unwrap()).collect();
        let distinct: std::collections::BTreeSet<_> = found.iter().collect();
        assert_eq!(distinct.len(), keys.len());
        for (k, slot) in keys.iter().zip(&found) {
            assert_eq!(find(&slots, *k, false), Some(*slot));
        }
        assert_eq!(find(&slots, key(9999, 1), false), None);
    }
}
