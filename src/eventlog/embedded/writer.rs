//! The writer thread of the embedded log: the one write connection, and group commit.
//!
//! Owns [`Command`] (the work callers send), the order and atomicity of writes, the choice of
//! partition and offset for each record, log creation and deletion, and the caches of log rows and
//! next offsets kept between commits (valid while `PRAGMA data_version` shows no other process
//! wrote). Every command waiting when the thread wakes goes into one transaction.
//!
//! Fed by [`super::EmbeddedLog`] through an mpsc channel; feeds each committed group's answers and
//! the partition ends it reached to the fsync thread ([`super::sync`]), which publishes the ends
//! as durable and answers the callers once the WAL is on disk. A failed commit is answered here,
//! at once. On start it hands the fsync thread the ends of everything already in the file, so
//! records a writer committed and never synced (it died) become readable once an fsync covered
//! them. Leaves the file's schema and connection settings to
//! [`super::schema`] and the rowid layout to [`super::rowid`](mod@super::rowid).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::durable;
use super::retention::{self, Keep, SWEEP_EVERY};
use super::rowid::{MAX_LOG_ID, MAX_OFFSET, log_rowids, offset_of, partition_rowids, rowid};
use super::schema::{new_uid, storage};
use super::sync::{Answer, Committed, clone_error, clone_sqlite};
use crate::eventlog::{Error, Namespace, NewRecord, Position, Result, Retention, partition_for_key};

/// Most records one group commit takes; more waiting appends go into the next one.
const MAX_GROUP_RECORDS: usize = 50_000;

/// Work for the writer thread; each carries the channel its answer goes back on.
pub(super) enum Command {
    Append { name: String, records: Vec<NewRecord>, reply: oneshot::Sender<Result<Vec<Position>>> },
    Create { name: String, partitions: u32, retention: Option<Retention>, reply: oneshot::Sender<Result<()>> },
    Delete { name: String, reply: oneshot::Sender<Result<()>> },
}

impl Command {
    fn weight(&self) -> usize {
        match self {
            Command::Append { records, .. } => records.len(),
            _ => 1,
        }
    }
}

/// The writer thread's state: the one write connection, and what it knows of the logs between
/// commits (valid while no other connection writes the file).
pub(super) struct Writer {
    conn: Connection,
    path: PathBuf,
    namespace: Namespace,
    /// `PRAGMA data_version` when the caches were last known good; `None` forces a reload.
    data_version: Option<i64>,
    /// Log name → its row, or `None` when known not to exist.
    logs: HashMap<String, Option<LogRow>>,
    /// (log id, partition) → next offset.
    next: HashMap<(i64, u32), u64>,
    /// Round-robin cursor per log, for records with neither key nor partition.
    round_robin: HashMap<String, u32>,
    /// Committed groups go here to be answered after the WAL is synced.
    synced: mpsc::Sender<Committed>,
    /// The partition ends the group being applied reached.
    reached: HashMap<(i64, u32), u64>,
    /// What the logs keep, and when expired records are next looked for.
    keep: Keep,
    next_sweep: Instant,
}

impl Drop for Writer {
    /// Closing the last connection checkpoints the WAL into the database and deletes it; with the
    /// writer's `synchronous = OFF` that checkpoint would not be synced, so turn syncing on first.
    fn drop(&mut self) {
        let _ = self.conn.execute_batch("PRAGMA synchronous = FULL");
    }
}

/// A log as the writer sees it.
#[derive(Clone, Copy)]
struct LogRow {
    id: i64,
    partitions: u32,
    /// Where its partitions' offsets start (past every offset an earlier log of the name had).
    first_offset: u64,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        path: PathBuf,
        namespace: Namespace,
        keep: Keep,
        synced: mpsc::Sender<Committed>,
    ) -> Self {
        Writer {
            conn,
            path,
            namespace,
            data_version: None,
            logs: HashMap::new(),
            next: HashMap::new(),
            round_robin: HashMap::new(),
            synced,
            reached: HashMap::new(),
            keep,
            next_sweep: Instant::now() + SWEEP_EVERY,
        }
    }

    /// The thread's body: hands the fsync thread the ends already in the file (`opened` is told
    /// once they are published), then takes what waits (up to [`MAX_GROUP_RECORDS`] records) as
    /// one group, commits it, and goes on until every sender is gone; between groups, about every
    /// [`SWEEP_EVERY`], it removes expired records ([`retention`]).
    pub(super) fn run(mut self, rx: mpsc::Receiver<Command>, opened: oneshot::Sender<()>) {
        match durable::current_ends(&self.conn) {
            Ok(ends) => {
                let _ = self.synced.send(Committed { answers: Vec::new(), ends, published: Some(opened) });
            }
            Err(e) => tracing::warn!(path = %self.path.display(), error = %e, "cannot read the log's ends"),
        }
        loop {
            let first = match rx.recv_timeout(self.next_sweep.saturating_duration_since(Instant::now())) {
                Ok(first) => first,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.sweep();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut weight = first.weight();
            let mut group = vec![first];
            while weight < MAX_GROUP_RECORDS {
                match rx.try_recv() {
                    Ok(cmd) => {
                        weight += cmd.weight();
                        group.push(cmd);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group);
            if Instant::now() >= self.next_sweep {
                self.sweep();
            }
        }
    }

    /// Removes expired records ([`retention::sweep`]); looks again at once when work is left.
    fn sweep(&mut self) {
        let pause = match retention::sweep(&self.conn, self.keep, now_ms()) {
            Ok(swept) => {
                if swept.removed > 0 || swept.returned_pages > 0 {
                    tracing::debug!(path = %self.path.display(), removed = swept.removed,
                        returned_pages = swept.returned_pages, "retention sweep");
                }
                if swept.more { Duration::ZERO } else { SWEEP_EVERY }
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "retention sweep failed; trying again");
                SWEEP_EVERY
            }
        };
        self.next_sweep = Instant::now() + pause;
    }

    /// Applies a group of commands in one transaction; answers each after the commit.
    fn commit_group(&mut self, group: Vec<Command>) {
        let mut answers: Vec<Answer> = Vec::with_capacity(group.len());
        self.reached.clear();
        let outcome = self.apply(group, &mut answers);
        let committed = outcome.and_then(|()| self.conn.execute_batch("COMMIT").map_err(storage(&self.path)));
        match committed {
            Ok(()) => {
                let ends = self.reached.drain().map(|((log, partition), end)| (log, partition, end)).collect();
                // Durable only once the WAL is synced: the fsync thread answers.
                if let Err(mpsc::SendError(group)) = self.synced.send(Committed { answers, ends, published: None }) {
                    for answer in group.answers {
                        answer.fail(&self.path, &Error::Closed);
                    }
                }
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.forget();
                tracing::error!(path = %self.path.display(), error = %e, "event log commit failed");
                for answer in answers {
                    answer.fail(&self.path, &e);
                }
            }
        }
    }

    /// Drops every cached fact: the next transaction reads them afresh.
    fn forget(&mut self) {
        self.data_version = None;
        self.logs.clear();
        self.next.clear();
    }

    /// Opens the group's transaction; if another connection wrote since our last commit, the
    /// caches are dropped.
    fn begin(&mut self) -> Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(storage(&self.path))?;
        let version: i64 = self.conn.query_row("PRAGMA data_version", [], |r| r.get(0)).map_err(storage(&self.path))?;
        if self.data_version != Some(version) {
            self.forget();
            self.data_version = Some(version);
        }
        Ok(())
    }

    fn apply(&mut self, group: Vec<Command>, answers: &mut Vec<Answer>) -> Result<()> {
        let path = self.path.clone();
        let fail_all = |answers: &mut Vec<Answer>, group: Vec<Command>, e: &Error| {
            answers.extend(group.into_iter().map(Answer::pending));
            Err(Error::Storage { path: path.display().to_string(), source: clone_sqlite(e) })
        };
        if let Err(e) = self.begin() {
            return fail_all(answers, group, &e);
        }
        let now = now_ms();
        let mut group = group.into_iter();
        while let Some(cmd) = group.next() {
            let result = match cmd {
                Command::Append { name, records, reply } => Answer::Append(reply, self.append(&name, records, now)),
                Command::Create { name, partitions, retention, reply } => {
                    Answer::Unit(reply, self.create(&name, partitions, retention, now))
                }
                Command::Delete { name, reply } => Answer::Unit(reply, self.delete(&name)),
            };
            let storage_failure = result.storage_error().map(clone_error);
            answers.push(result);
            if let Some(e) = storage_failure {
                return fail_all(answers, group.collect(), &e);
            }
        }
        Ok(())
    }

    fn lookup(&mut self, name: &str) -> Result<Option<LogRow>> {
        if let Some(row) = self.logs.get(name) {
            return Ok(*row);
        }
        let row = self
            .conn
            .prepare_cached("SELECT id, partitions, first_offset FROM logs WHERE name = ?1")
            .and_then(|mut s| {
                s.query_row([name], |r| {
                    Ok(LogRow { id: r.get(0)?, partitions: r.get(1)?, first_offset: r.get::<_, i64>(2)?.max(0) as u64 })
                })
                .optional()
            })
            .map_err(storage(&self.path))?;
        self.logs.insert(name.to_string(), row);
        Ok(row)
    }

    /// The next offset of a partition: cached, or one past the highest stored, or the log's
    /// first offset.
    fn next_offset(&mut self, log: LogRow, partition: u32) -> Result<&mut u64> {
        if !self.next.contains_key(&(log.id, partition)) {
            let (lo, hi) = partition_rowids(log.id, partition);
            let last: Option<i64> = self
                .conn
                .prepare_cached("SELECT MAX(pos) FROM records WHERE pos BETWEEN ?1 AND ?2")
                .and_then(|mut s| s.query_row([lo, hi], |r| r.get(0)))
                .map_err(storage(&self.path))?;
            self.next.insert((log.id, partition), last.map_or(log.first_offset, |last| offset_of(last) + 1));
        }
        Ok(self.next.entry((log.id, partition)).or_default())
    }

    fn append(&mut self, name: &str, records: Vec<NewRecord>, now: i64) -> Result<Vec<Position>> {
        let noun = self.namespace.noun();
        let log = self.lookup(name)?.ok_or_else(|| Error::NotFound { noun, name: name.into() })?;
        // Choose and check every partition before writing anything: all or none.
        let mut chosen = Vec::with_capacity(records.len());
        for record in &records {
            let partition = match (record.partition, &record.key) {
                (Some(p), _) => p,
                (None, Some(key)) => partition_for_key(key, log.partitions),
                (None, None) => self.round_robin_next(name, log.partitions),
            };
            if partition >= log.partitions {
                return Err(Error::NoSuchPartition { noun, name: name.into(), partition, partitions: log.partitions });
            }
            chosen.push(partition);
        }
        let mut positions = Vec::with_capacity(records.len());
        for (record, partition) in records.iter().zip(chosen) {
            let offset = *self.next_offset(log, partition)?;
            if offset > MAX_OFFSET {
                return Err(Error::Full { noun, name: name.into(), partition });
            }
            self.conn
                .prepare_cached("INSERT INTO records (pos, ts_ms, key, value) VALUES (?1, ?2, ?3, ?4)")
                .and_then(|mut s| s.execute(params![rowid(log.id, partition, offset), now, record.key, record.value]))
                .map_err(storage(&self.path))?;
            *self.next_offset(log, partition)? += 1;
            self.reached.insert((log.id, partition), offset + 1);
            positions.push(Position { partition, offset });
        }
        Ok(positions)
    }

    fn round_robin_next(&mut self, name: &str, partitions: u32) -> u32 {
        if partitions == 1 {
            return 0;
        }
        let cursor = match self.round_robin.get_mut(name) {
            Some(cursor) => cursor,
            None => self.round_robin.entry(name.to_string()).or_insert(0),
        };
        *cursor = cursor.wrapping_add(1);
        *cursor % partitions
    }

    fn create(&mut self, name: &str, partitions: u32, retention: Option<Retention>, now: i64) -> Result<()> {
        let noun = self.namespace.noun();
        if self.lookup(name)?.is_some() {
            return Err(Error::AlreadyExists { noun, name: name.into() });
        }
        // A log of this name that existed before: go on after its highest offset.
        let first_offset: i64 = self
            .conn
            .prepare_cached("SELECT next_offset FROM retired WHERE name = ?1")
            .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
            .map_err(storage(&self.path))?
            .unwrap_or(0);
        self.conn
            .execute(
                "INSERT INTO logs (name, partitions, created_ms, uid, first_offset, retention_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![name, partitions, now, new_uid(), first_offset, retention.map(Retention::as_millis)],
            )
            .map_err(storage(&self.path))?;
        let id = self.conn.last_insert_rowid();
        if id > MAX_LOG_ID {
            return Err(Error::Full { noun, name: name.into(), partition: 0 });
        }
        // A reused id must not inherit a deleted log's cached offsets.
        self.next.retain(|(log_id, _), _| *log_id != id);
        let first_offset = first_offset.max(0) as u64;
        self.logs.insert(name.to_string(), Some(LogRow { id, partitions, first_offset }));
        Ok(())
    }

    fn delete(&mut self, name: &str) -> Result<()> {
        let noun = self.namespace.noun();
        let log = self.lookup(name)?.ok_or_else(|| Error::NotFound { noun, name: name.into() })?;
        // Remember the highest offset the name reached: a log created again under it starts there.
        let mut next = log.first_offset;
        for partition in 0..log.partitions {
            next = next.max(*self.next_offset(log, partition)?);
        }
        self.conn
            .execute(
                "INSERT INTO retired (name, next_offset) VALUES (?1, ?2) \
                 ON CONFLICT(name) DO UPDATE SET next_offset = MAX(next_offset, excluded.next_offset)",
                params![name, i64::try_from(next).unwrap_or(i64::MAX)],
            )
            .map_err(storage(&self.path))?;
        let (lo, hi) = log_rowids(log.id);
        self.conn.execute("DELETE FROM records WHERE pos BETWEEN ?1 AND ?2", [lo, hi]).map_err(storage(&self.path))?;
        self.conn.execute("DELETE FROM logs WHERE id = ?1", [log.id]).map_err(storage(&self.path))?;
        self.next.retain(|(id, _), _| *id != log.id);
        self.logs.insert(name.to_string(), None);
        self.round_robin.remove(name);
        Ok(())
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
