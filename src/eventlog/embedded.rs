//! The embedded event log: topics or streams in one SQLite file in WAL mode, on local disk.
//!
//! Owns durability for the default, single-machine setup. One writer thread per process owns the
//! write connection and does group commit: every append waiting when it wakes goes into one
//! transaction and one fsync (`synchronous = FULL`), and each caller is answered only after that
//! commit returned. Readers use their own connections, so the sink, the stream job and the admin
//! commands read — from this process or others on the same `--data` — while a gateway appends;
//! SQLite's locking serialises writers of different processes. A SIGKILL at any moment leaves
//! every committed append whole and nothing of an uncommitted one (SQLite's WAL recovery).
//!
//! Layout: `DIR/topics.db` and `DIR/streams.db` (one file per [`Namespace`]). A partition's next
//! offset is one past its highest stored offset, read inside the writing transaction, so offsets
//! stay contiguous across crashes and across writer processes.
//!
//! Identity: each log gets a random id when it is created ([`LogInfo::incarnation`]). A log
//! deleted and created again under the same name is another log, with another id, and its
//! offsets go on after the highest offset the name ever had (kept in `retired`), so no position
//! of the old log names a record of the new one: the sink's file names and the stream job's
//! stored offsets stay unique per name, and "first received" still sorts by offset. The writer keeps what it read
//! cached between commits for as long as `PRAGMA data_version` shows no other process wrote.
//! Checkpoints (copying the WAL back into the database) run on their own thread and connection,
//! so a commit never waits for one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

use super::{
    Appended, Error, EventLog, LogInfo, Namespace, NewRecord, PartitionInfo, Position, Record, Result,
    partition_for_key, validate_name,
};

/// Most records one group commit takes; more waiting appends go into the next one.
const MAX_GROUP_RECORDS: usize = 50_000;
/// Most partitions a log may have.
const MAX_PARTITIONS: u32 = 1 << PARTITION_BITS;

// A record's rowid is its position: `log id << 48 | partition << 38 | offset`, so one b-tree
// insert per record (no separate index) and a partition's records lie together in offset order.
const OFFSET_BITS: u32 = 38;
const PARTITION_BITS: u32 = 10;
const LOG_SHIFT: u32 = OFFSET_BITS + PARTITION_BITS;
/// Largest log id that fits the rowid (15 bits; the sign bit stays clear).
const MAX_LOG_ID: i64 = (1 << (63 - LOG_SHIFT)) - 1;
/// Offsets per partition: 2^38, about 275 billion records.
const MAX_OFFSET: u64 = (1 << OFFSET_BITS) - 1;

/// The rowid of (log, partition, offset).
fn rowid(log_id: i64, partition: u32, offset: u64) -> i64 {
    (log_id << LOG_SHIFT) | (i64::from(partition) << OFFSET_BITS) | offset as i64
}

/// The rowids of one partition: `first..=last`.
fn partition_rowids(log_id: i64, partition: u32) -> (i64, i64) {
    (rowid(log_id, partition, 0), rowid(log_id, partition, MAX_OFFSET))
}

/// The rowids of one log: `first..=last`.
fn log_rowids(log_id: i64) -> (i64, i64) {
    (rowid(log_id, 0, 0), rowid(log_id, MAX_PARTITIONS - 1, MAX_OFFSET))
}

/// The offset inside a rowid.
fn offset_of(rowid: i64) -> u64 {
    rowid as u64 & MAX_OFFSET
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    partitions INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    uid TEXT,
    first_offset INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS records (
    pos INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    key BLOB,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS retired (
    name TEXT PRIMARY KEY,
    next_offset INTEGER NOT NULL
);
";

/// Brings a log file of an earlier version to this schema: logs created before identities
/// existed get one now (readers that stored none take it as the one they read).
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let columns: Vec<String> =
        conn.prepare("PRAGMA table_info(logs)")?.query_map([], |r| r.get(1))?.collect::<rusqlite::Result<_>>()?;
    if !columns.iter().any(|c| c == "uid") {
        conn.execute_batch("ALTER TABLE logs ADD COLUMN uid TEXT")?;
    }
    if !columns.iter().any(|c| c == "first_offset") {
        conn.execute_batch("ALTER TABLE logs ADD COLUMN first_offset INTEGER NOT NULL DEFAULT 0")?;
    }
    let unnamed: Vec<i64> = conn
        .prepare("SELECT id FROM logs WHERE uid IS NULL")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in unnamed {
        conn.execute("UPDATE logs SET uid = ?1 WHERE id = ?2 AND uid IS NULL", params![new_uid(), id])?;
    }
    Ok(())
}

/// A fresh log identity.
fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An event log stored in a local SQLite file (see the module doc).
pub struct EmbeddedLog {
    namespace: Namespace,
    path: PathBuf,
    writer: Mutex<mpsc::Sender<Command>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Dropped with the log, which ends the checkpoint thread.
    _stop_checkpoints: mpsc::Sender<()>,
}

/// How often the checkpoint thread copies committed WAL pages back into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Runs passive checkpoints until `stop`'s sender is dropped. A passive checkpoint never blocks
/// the writer or readers; it copies what it can and the WAL restarts once it has caught up.
fn checkpoint_until(path: &Path, stop: &mpsc::Receiver<()>) {
    let conn = match open_connection(path, Role::Checkpointer) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "no checkpoint thread; SQLite checkpoints on close");
            return;
        }
    };
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(path = %path.display(), error = %e, "checkpoint skipped");
        }
    }
}

/// Work for the writer thread; each carries the channel its answer goes back on.
enum Command {
    Append { name: String, records: Vec<NewRecord>, reply: oneshot::Sender<Result<Vec<Position>>> },
    Create { name: String, partitions: u32, reply: oneshot::Sender<Result<()>> },
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

impl EmbeddedLog {
    /// Opens (creating if needed) the log of `namespace` in folder `dir`, and starts its writer.
    pub async fn open(dir: &Path, namespace: Namespace) -> Result<Self> {
        let file = match namespace {
            Namespace::Topics => "topics.db",
            Namespace::Streams => "streams.db",
        };
        let path = dir.join(file);
        let dir = dir.to_path_buf();
        let opened_path = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
            let conn = open_connection(&opened_path, Role::Writer)?;
            conn.execute_batch(SCHEMA).map_err(storage(&opened_path))?;
            migrate(&conn).map_err(storage(&opened_path))?;
            Ok(conn)
        })
        .await
        .map_err(|_| Error::Closed)??;

        let (tx, rx) = mpsc::channel();
        let (to_syncer, committed) = mpsc::channel();
        let writer = Writer::new(conn, path.clone(), namespace, to_syncer);
        let spawn_failed = |source| Error::Io { path: path.display().to_string(), source };
        std::thread::Builder::new()
            .name(format!("eventlog-{}", namespace.noun()))
            .spawn(move || writer.run(rx))
            .map_err(spawn_failed)?;
        let wal = wal_path(&path);
        std::thread::Builder::new()
            .name(format!("fsync-{}", namespace.noun()))
            .spawn(move || sync_and_answer(&wal, &committed))
            .map_err(spawn_failed)?;
        let (stop_checkpoints, stopped) = mpsc::channel();
        let checkpoint_path = path.clone();
        std::thread::Builder::new()
            .name(format!("checkpoint-{}", namespace.noun()))
            .spawn(move || checkpoint_until(&checkpoint_path, &stopped))
            .map_err(spawn_failed)?;
        Ok(EmbeddedLog {
            namespace,
            path,
            writer: Mutex::new(tx),
            readers: Arc::default(),
            _stop_checkpoints: stop_checkpoints,
        })
    }

    /// The SQLite file holding this log.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn send<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let sent = self.writer.lock().map_err(|_| Error::Closed)?.send(make(reply));
        sent.map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Runs `f` on a pooled read connection in the blocking pool.
    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, Namespace) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = Arc::clone(&self.readers);
        let path = self.path.clone();
        let namespace = self.namespace;
        tokio::task::spawn_blocking(move || {
            let pooled = pool.lock().map_err(|_| Error::Closed)?.pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&path, Role::Reader)?,
            };
            let result = f(&conn, namespace);
            if let Ok(mut pool) = pool.lock() {
                pool.push(conn);
            }
            result.map_err(|e| match e {
                Error::Storage { source, .. } => Error::Storage { path: path.display().to_string(), source },
                other => other,
            })
        })
        .await
        .map_err(|_| Error::Closed)?
    }
}

#[async_trait]
impl EventLog for EmbeddedLog {
    fn namespace(&self) -> Namespace {
        self.namespace
    }

    async fn create(&self, name: &str, partitions: u32) -> Result<LogInfo> {
        validate_name(self.namespace, name)?;
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(Error::InvalidPartitionCount(partitions));
        }
        self.send(|reply| Command::Create { name: name.to_string(), partitions, reply }).await?;
        self.describe(name).await
    }

    async fn list(&self) -> Result<Vec<String>> {
        self.with_reader(|conn, _| {
            let mut stmt = conn.prepare_cached("SELECT name FROM logs ORDER BY name").map_err(storage_any)?;
            let names = stmt.query_map([], |row| row.get(0)).map_err(storage_any)?;
            names.collect::<rusqlite::Result<Vec<String>>>().map_err(storage_any)
        })
        .await
    }

    async fn describe(&self, name: &str) -> Result<LogInfo> {
        let name = name.to_string();
        self.with_reader(move |conn, namespace| {
            let log = find_log(conn, namespace, &name)?;
            let mut extent = conn
                .prepare_cached("SELECT MIN(pos), MAX(pos) FROM records WHERE pos BETWEEN ?1 AND ?2")
                .map_err(storage_any)?;
            let mut partitions = Vec::with_capacity(log.partitions as usize);
            for partition in 0..log.partitions {
                let (lo, hi) = partition_rowids(log.id, partition);
                let (first, last): (Option<i64>, Option<i64>) =
                    extent.query_row([lo, hi], |row| Ok((row.get(0)?, row.get(1)?))).map_err(storage_any)?;
                let end = last.map_or(log.first_offset, |last| offset_of(last) + 1);
                partitions.push(PartitionInfo { partition, start: first.map_or(end, offset_of), end });
            }
            Ok(LogInfo { name, partitions, incarnation: log.uid })
        })
        .await
    }

    async fn delete(&self, name: &str) -> Result<()> {
        self.send(|reply| Command::Delete { name: name.to_string(), reply }).await
    }

    async fn append(&self, name: &str, records: Vec<NewRecord>) -> Result<Vec<Appended>> {
        if records.is_empty() {
            self.describe(name).await?;
            return Ok(Vec::new());
        }
        let positions = self.send(|reply| Command::Append { name: name.to_string(), records, reply }).await?;
        Ok(positions.into_iter().map(Appended::Offset).collect())
    }

    async fn read(&self, name: &str, partition: u32, from: u64, max: usize) -> Result<Vec<Record>> {
        let name = name.to_string();
        self.with_reader(move |conn, namespace| {
            let FoundLog { id, partitions: count, .. } = find_log(conn, namespace, &name)?;
            if partition >= count {
                return Err(Error::NoSuchPartition { noun: namespace.noun(), name, partition, partitions: count });
            }
            let mut stmt = conn
                .prepare_cached(
                    "SELECT pos, ts_ms, key, value FROM records WHERE pos BETWEEN ?1 AND ?2 ORDER BY pos LIMIT ?3",
                )
                .map_err(storage_any)?;
            let limit = i64::try_from(max).unwrap_or(i64::MAX);
            let (_, last) = partition_rowids(id, partition);
            let first = rowid(id, partition, from.min(MAX_OFFSET));
            let rows = stmt
                .query_map(params![first, last, limit], |row| {
                    Ok(Record {
                        position: Position { partition, offset: offset_of(row.get(0)?) },
                        timestamp_ms: row.get(1)?,
                        key: row.get(2)?,
                        value: row.get(3)?,
                        native: None,
                    })
                })
                .map_err(storage_any)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage_any)
        })
        .await
    }
}

/// The writer thread's state: the one write connection, and what it knows of the logs between
/// commits (valid while no other connection writes the file).
struct Writer {
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
    synced: mpsc::Sender<Vec<Answer>>,
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
    fn new(conn: Connection, path: PathBuf, namespace: Namespace, synced: mpsc::Sender<Vec<Answer>>) -> Self {
        Writer {
            conn,
            path,
            namespace,
            data_version: None,
            logs: HashMap::new(),
            next: HashMap::new(),
            round_robin: HashMap::new(),
            synced,
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Command>) {
        while let Ok(first) = rx.recv() {
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
        }
    }

    /// Applies a group of commands in one transaction; answers each after the commit.
    fn commit_group(&mut self, group: Vec<Command>) {
        let mut answers: Vec<Answer> = Vec::with_capacity(group.len());
        let outcome = self.apply(group, &mut answers);
        let committed = outcome.and_then(|()| self.conn.execute_batch("COMMIT").map_err(storage(&self.path)));
        match committed {
            Ok(()) => {
                // Durable only once the WAL is synced: the fsync thread answers.
                if let Err(mpsc::SendError(answers)) = self.synced.send(answers) {
                    for answer in answers {
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
                Command::Create { name, partitions, reply } => Answer::Unit(reply, self.create(&name, partitions, now)),
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

    fn create(&mut self, name: &str, partitions: u32, now: i64) -> Result<()> {
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
                "INSERT INTO logs (name, partitions, created_ms, uid, first_offset) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, partitions, now, new_uid(), first_offset],
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

/// The write-ahead log SQLite keeps beside `db`.
fn wal_path(db: &Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// The fsync thread: takes committed groups, syncs the WAL once for all that are waiting, then
/// answers them. The writer meanwhile commits the next group, so one fsync covers several commits
/// and the writer never waits for the disk. Ends when the writer does.
fn sync_and_answer(wal: &Path, committed: &mpsc::Receiver<Vec<Answer>>) {
    let mut file: Option<std::fs::File> = None;
    while let Ok(first) = committed.recv() {
        let mut groups = vec![first];
        groups.extend(committed.try_iter());
        // The WAL exists once the first commit wrote it; it keeps its inode while the writer's
        // connection is open (SQLite rewinds it, never replaces it).
        let synced = match &file {
            Some(f) => f.sync_data(),
            None => std::fs::File::open(wal).and_then(|f| {
                let result = f.sync_data();
                file = Some(f);
                result
            }),
        };
        match synced {
            Ok(()) => groups.into_iter().flatten().for_each(Answer::send),
            Err(e) => {
                tracing::error!(path = %wal.display(), error = %e, "syncing the event log failed");
                file = None;
                let failure = Error::Io { path: wal.display().to_string(), source: e };
                for answer in groups.into_iter().flatten() {
                    answer.fail(wal, &failure);
                }
            }
        }
    }
}

/// A command's result, held until the group's commit decides whether it stands.
enum Answer {
    Append(oneshot::Sender<Result<Vec<Position>>>, Result<Vec<Position>>),
    Unit(oneshot::Sender<Result<()>>, Result<()>),
}

impl Answer {
    /// A command the failed group never reached: it will be answered with the commit's error.
    fn pending(cmd: Command) -> Answer {
        match cmd {
            Command::Append { reply, .. } => Answer::Append(reply, Ok(Vec::new())),
            Command::Create { reply, .. } | Command::Delete { reply, .. } => Answer::Unit(reply, Ok(())),
        }
    }

    fn storage_error(&self) -> Option<&Error> {
        let err = match self {
            Answer::Append(_, Err(e)) => e,
            Answer::Unit(_, Err(e)) => e,
            _ => return None,
        };
        matches!(err, Error::Storage { .. }).then_some(err)
    }

    fn send(self) {
        // A caller that stopped waiting (its request was cancelled) needs no answer.
        match self {
            Answer::Append(reply, r) => drop(reply.send(r)),
            Answer::Unit(reply, r) => drop(reply.send(r)),
        }
    }

    /// The commit failed: whatever this command did is rolled back, so a success becomes the
    /// commit's error; a caller's own mistake (unknown topic, …) is still reported as such.
    fn fail(self, path: &Path, e: &Error) {
        let storage = || Error::Storage { path: path.display().to_string(), source: clone_sqlite(e) };
        match self {
            Answer::Append(reply, r) => drop(reply.send(r.and_then(|_| Err(storage())))),
            Answer::Unit(reply, r) => drop(reply.send(r.and_then(|_| Err(storage())))),
        }
    }
}

/// What a connection is for; each gets its own settings.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The one writer: WAL mode, no sync on commit (the fsync thread syncs), no automatic
    /// checkpoints (the checkpoint thread does them).
    Writer,
    /// Reads only.
    Reader,
    /// Copies the WAL into the database, syncing the WAL before and the database after.
    Checkpointer,
}

fn open_connection(path: &Path, role: Role) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if role == Role::Writer {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(storage(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(storage(path))?;
    let pragmas = match role {
        Role::Writer => {
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -65536; \
             PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;"
        }
        Role::Reader => "PRAGMA query_only = ON;",
        Role::Checkpointer => "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;",
    };
    conn.execute_batch(pragmas).map_err(storage(path))?;
    Ok(conn)
}

/// A log as a reader finds it.
struct FoundLog {
    id: i64,
    partitions: u32,
    first_offset: u64,
    uid: Option<String>,
}

fn find_log(conn: &Connection, namespace: Namespace, name: &str) -> Result<FoundLog> {
    conn.prepare_cached("SELECT id, partitions, first_offset, uid FROM logs WHERE name = ?1")
        .and_then(|mut s| {
            s.query_row([name], |r| {
                Ok(FoundLog {
                    id: r.get(0)?,
                    partitions: r.get(1)?,
                    first_offset: r.get::<_, i64>(2)?.max(0) as u64,
                    uid: r.get(3)?,
                })
            })
            .optional()
        })
        .map_err(storage_any)?
        .ok_or_else(|| Error::NotFound { noun: namespace.noun(), name: name.into() })
}

fn storage(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |source| Error::Storage { path: path.display().to_string(), source }
}

/// For reader closures: the path is filled in by [`EmbeddedLog::with_reader`].
fn storage_any(source: rusqlite::Error) -> Error {
    Error::Storage { path: String::new(), source }
}

/// rusqlite errors are not `Clone`; a failed commit must be reported to every caller in the group.
fn clone_sqlite(e: &Error) -> rusqlite::Error {
    match e {
        Error::Storage { source: rusqlite::Error::SqliteFailure(code, msg), .. } => {
            rusqlite::Error::SqliteFailure(*code, msg.clone())
        }
        other => rusqlite::Error::ToSqlConversionFailure(other.to_string().into()),
    }
}

fn clone_error(e: &Error) -> Error {
    Error::Storage { path: String::new(), source: clone_sqlite(e) }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn log(dir: &Path) -> EmbeddedLog {
        EmbeddedLog::open(dir, Namespace::Topics).await.unwrap()
    }

    #[tokio::test]
    async fn appended_records_read_back_in_order_with_contiguous_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path()).await;
        log.create("t", 1).await.unwrap();
        let first = log.append("t", vec![NewRecord::value("a"), NewRecord::value("b")]).await.unwrap();
        let second = log.append("t", vec![NewRecord::value("c")]).await.unwrap();
        let offsets: Vec<u64> = first.iter().chain(&second).map(|p| p.offset().unwrap()).collect();
        assert_eq!(offsets, [0, 1, 2]);
        let read = log.read("t", 0, 1, 10).await.unwrap();
        let values: Vec<&[u8]> = read.iter().map(|r| r.value.as_slice()).collect();
        assert_eq!(values, [b"b".as_slice(), b"c"]);
        assert_eq!(log.describe("t").await.unwrap().partitions, [PartitionInfo { partition: 0, start: 0, end: 3 }]);
    }

    #[tokio::test]
    async fn concurrent_appends_share_commits_and_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(log(dir.path()).await);
        log.create("t", 3).await.unwrap();
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let log = Arc::clone(&log);
                tokio::spawn(async move { log.append("t", vec![NewRecord::value(format!("{i}"))]).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let info = log.describe("t").await.unwrap();
        assert_eq!(info.partitions.iter().map(|p| p.end).sum::<u64>(), 50);
        let mut all = Vec::new();
        for p in 0..3 {
            let records = log.read("t", p, 0, 100).await.unwrap();
            let offsets: Vec<u64> = records.iter().map(|r| r.position.offset).collect();
            assert_eq!(offsets, (0..records.len() as u64).collect::<Vec<_>>());
            all.extend(records.into_iter().map(|r| String::from_utf8(r.value).unwrap()));
        }
        all.sort_by_key(|v| v.parse::<u32>().unwrap());
        assert_eq!(all, (0..50).map(|i| i.to_string()).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_bad_append_fails_alone_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path()).await;
        log.create("t", 2).await.unwrap();
        let bad = vec![NewRecord::value("ok"), NewRecord { key: None, value: b"x".to_vec(), partition: Some(2) }];
        assert!(matches!(log.append("t", bad).await, Err(Error::NoSuchPartition { partition: 2, .. })));
        assert!(matches!(log.append("nope", vec![NewRecord::value("x")]).await, Err(Error::NotFound { .. })));
        let info = log.describe("t").await.unwrap();
        assert!(info.partitions.iter().all(|p| p.end == 0));
    }

    #[tokio::test]
    async fn admin_creates_lists_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path()).await;
        log.create("b", 2).await.unwrap();
        log.create("a", 1).await.unwrap();
        assert!(matches!(log.create("a", 1).await, Err(Error::AlreadyExists { .. })));
        assert!(matches!(log.create("c", 0).await, Err(Error::InvalidPartitionCount(0))));
        assert_eq!(log.list().await.unwrap(), ["a", "b"]);
        log.append("b", vec![NewRecord::value("x")]).await.unwrap();
        log.delete("b").await.unwrap();
        assert_eq!(log.list().await.unwrap(), ["a"]);
        assert!(matches!(log.read("b", 0, 0, 1).await, Err(Error::NotFound { .. })));
        log.create("b", 1).await.unwrap();
        assert_eq!(log.describe("b").await.unwrap().partitions[0].end, 1);
    }

    #[tokio::test]
    async fn a_recreated_log_is_another_log_that_numbers_on_after_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path()).await;
        log.create("t", 2).await.unwrap();
        let first = log.describe("t").await.unwrap().incarnation.unwrap();
        let old = (0..5).map(|i| NewRecord { key: None, value: format!("{i}").into(), partition: Some(i % 2) });
        log.append("t", old.collect()).await.unwrap();
        log.delete("t").await.unwrap();
        log.create("t", 1).await.unwrap();
        let info = log.describe("t").await.unwrap();
        assert_ne!(info.incarnation.as_deref(), Some(first.as_str()));
        assert_eq!(info.partitions, [PartitionInfo { partition: 0, start: 3, end: 3 }]);
        let p = log.append("t", vec![NewRecord::value("new")]).await.unwrap();
        assert_eq!(p[0].offset(), Some(3));
        let read = log.read("t", 0, 0, 10).await.unwrap();
        assert_eq!((read.len(), read[0].position.offset, read[0].value.as_slice()), (1, 3, &b"new"[..]));
        // A second handle (another process) sees the same identity.
        let other = EmbeddedLog::open(dir.path(), Namespace::Topics).await.unwrap();
        assert_eq!(other.describe("t").await.unwrap().incarnation, info.incarnation);
    }

    #[tokio::test]
    async fn keyed_records_stay_in_their_partition_and_topics_are_apart_from_streams() {
        let dir = tempfile::tempdir().unwrap();
        let topics = log(dir.path()).await;
        let streams = EmbeddedLog::open(dir.path(), Namespace::Streams).await.unwrap();
        topics.create("t", 4).await.unwrap();
        let key = || Some(b"partition-1".to_vec());
        let records = (0..5).map(|_| NewRecord { key: key(), value: b"v".to_vec(), partition: None }).collect();
        let positions = topics.append("t", records).await.unwrap();
        let expected = partition_for_key(b"partition-1", 4);
        assert!(positions.iter().all(|p| p.partition() == expected));
        assert!(streams.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_second_handle_on_the_same_folder_sees_and_continues_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let one = log(dir.path()).await;
        let two = log(dir.path()).await;
        one.create("t", 1).await.unwrap();
        one.append("t", vec![NewRecord::value("1")]).await.unwrap();
        let p = two.append("t", vec![NewRecord::value("2")]).await.unwrap();
        assert_eq!(p[0].offset(), Some(1));
        assert_eq!(one.read("t", 0, 0, 10).await.unwrap().len(), 2);
    }
}
