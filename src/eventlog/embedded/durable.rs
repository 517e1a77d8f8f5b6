//! The durable end of each partition: one past the last offset whose commit is known to be on
//! disk (Kafka's high watermark). Readers stop there, in this process and in others, so nothing
//! reads a record that a power loss could still take back and give its offset to another.
//!
//! Owns the ends: kept in a small file beside the log (`topics.db-durable`), which the fsync
//! thread rewrites after each fsync and before it answers the appends that fsync covered, so a
//! caller that got its answer finds its records readable from any process; the same ends in this
//! process's memory ([`DurableEnds::raise`]), in case the file cannot be written; the ends a
//! newly opened log publishes for what its file already holds ([`current_ends`]: a writer that
//! died between a commit and its fsync leaves records no one published); and the test hook that
//! holds the fsync back ([`wait_at_gate`]).
//!
//! Only ends an fsync covered are ever written, and only upwards, so after a power loss the file
//! can be behind the log (the next open catches up) but never ahead of it. Writers of several
//! processes merge their ends under a lock; the file is replaced whole (write, then rename), so a
//! reader never sees half of it, and one it cannot parse counts as empty.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;

use super::rowid::{offset_of, partition_rowids};

/// A partition's end: (log id, partition, one past the last durable offset).
pub(super) type End = (i64, u32, u64);

/// The variable naming the test hook's gate file: while that file exists, every fsync of the
/// embedded log in a process started with the variable waits (tests only).
const FSYNC_GATE_VAR: &str = "PINPIPE_TEST_FSYNC_GATE";

/// The first line of the ends file; its last line is [`TRAILER`].
const HEADER: &str = "pinpipe durable ends v1";
const TRAILER: &str = "end";

/// The durable ends of one log file: in the file beside it, and as this process knows them.
pub(super) struct DurableEnds {
    path: PathBuf,
    lock: PathBuf,
    known: Mutex<HashMap<(i64, u32), u64>>,
}

impl DurableEnds {
    /// The ends of the log file `db`.
    pub(super) fn of(db: &Path) -> DurableEnds {
        let beside = |suffix: &str| {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        DurableEnds { path: beside("-durable"), lock: beside("-durable.lock"), known: Mutex::default() }
    }

    /// Raises the ends of `ends` (never lowers one): in memory, then in the file.
    pub(super) fn raise(&self, ends: &[End]) -> std::io::Result<()> {
        if let Ok(mut known) = self.known.lock() {
            for &(log, partition, end) in ends {
                let e = known.entry((log, partition)).or_default();
                *e = (*e).max(end);
            }
        }
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&self.lock)?;
        lock.lock()?;
        let mut all = read_file(&self.path);
        for &(log, partition, end) in ends {
            let e = all.entry((log, partition)).or_default();
            *e = (*e).max(end);
        }
        let mut text = format!("{HEADER}\n");
        for ((log, partition), end) in &all {
            let _ = writeln!(text, "{log} {partition} {end}");
        }
        text.push_str(TRAILER);
        text.push('\n');
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".tmp");
        std::fs::write(&temporary, text)?;
        std::fs::rename(&temporary, &self.path)
        // The lock goes with `lock`.
    }

    /// The durable end of each of `log`'s first `partitions` partitions: the larger of the
    /// file's and this process's, and at least the log's first offset.
    pub(super) fn ends_of(&self, log: i64, partitions: std::ops::Range<u32>, first_offset: u64) -> Vec<u64> {
        let file = read_file(&self.path);
        let known = self.known.lock().map(|k| k.clone()).unwrap_or_default();
        let end =
            |key| first_offset.max(file.get(&key).copied().unwrap_or(0)).max(known.get(&key).copied().unwrap_or(0));
        partitions.map(|p| end((log, p))).collect()
    }

    /// The durable end of one partition ([`DurableEnds::ends_of`]).
    pub(super) fn end_of(&self, log: i64, partition: u32, first_offset: u64) -> u64 {
        self.ends_of(log, partition..partition + 1, first_offset)[0]
    }
}

/// The ends in the file; empty when it is missing or not whole.
fn read_file(path: &Path) -> HashMap<(i64, u32), u64> {
    let Ok(text) = std::fs::read_to_string(path) else { return HashMap::new() };
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) || text.lines().last() != Some(TRAILER) {
        return HashMap::new();
    }
    let mut ends = HashMap::new();
    for line in lines.take_while(|l| *l != TRAILER) {
        let mut parts = line.split(' ').map(str::parse::<i64>);
        match (parts.next(), parts.next(), parts.next()) {
            (Some(Ok(log)), Some(Ok(partition)), Some(Ok(end))) if partition >= 0 && end >= 0 => {
                ends.insert((log, partition as u32), end as u64);
            }
            _ => return HashMap::new(),
        }
    }
    ends
}

/// The end of every partition of every log in the file as it is now: what an fsync taken after
/// this makes durable.
pub(super) fn current_ends(conn: &Connection) -> rusqlite::Result<Vec<End>> {
    let logs: Vec<(i64, u32, i64)> = conn
        .prepare("SELECT id, partitions, first_offset FROM logs")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut last = conn.prepare_cached("SELECT MAX(pos) FROM records WHERE pos BETWEEN ?1 AND ?2")?;
    let mut ends = Vec::new();
    for (log, partitions, first_offset) in logs {
        for partition in 0..partitions {
            let (lo, hi) = partition_rowids(log, partition);
            let max: Option<i64> = last.query_row([lo, hi], |r| r.get(0))?;
            ends.push((log, partition, max.map_or(first_offset.max(0) as u64, |pos| offset_of(pos) + 1)));
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
    fn ends_only_rise_and_a_broken_file_counts_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("topics.db");
        let ends = DurableEnds::of(&db);
        assert_eq!(ends.end_of(1, 0, 5), 5, "nothing known: the first offset");
        ends.raise(&[(1, 0, 10), (1, 1, 3)]).unwrap();
        ends.raise(&[(1, 0, 7)]).unwrap();
        let other = DurableEnds::of(&db); // another process: only the file
        assert_eq!(other.ends_of(1, 0..3, 0), [10, 3, 0]);
        assert_eq!(other.ends_of(1, 0..2, 4), [10, 4]);
        std::fs::write(dir.path().join("topics.db-durable"), format!("{HEADER}\n1 0 99\n")).unwrap();
        assert_eq!(other.end_of(1, 0, 0), 0, "no trailer: not whole");
        assert_eq!(ends.end_of(1, 0, 0), 10, "this process still knows its own");
    }
}
