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
//! Layout: `DIR/topics.db` and `DIR/streams.db` (one file per [`Namespace`]). Offsets per
//! partition are kept in the `partitions` table and advanced inside the same transaction as the
//! records, so they stay contiguous across crashes and across writer processes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

use super::{
    Error, EventLog, LogInfo, Namespace, NewRecord, PartitionInfo, Position, Record, Result,
    partition_for_key, validate_name,
};

/// Most records one group commit takes; more waiting appends go into the next one.
const MAX_GROUP_RECORDS: usize = 50_000;
/// Most partitions a log may have.
const MAX_PARTITIONS: u32 = 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    partitions INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS partitions (
    log_id INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (log_id, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    log_id INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    key BLOB,
    value BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS records_position ON records (log_id, partition, offset);
";

/// An event log stored in a local SQLite file (see the module doc).
pub struct EmbeddedLog {
    namespace: Namespace,
    path: PathBuf,
    writer: Mutex<mpsc::Sender<Command>>,
    readers: Arc<Mutex<Vec<Connection>>>,
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
            std::fs::create_dir_all(&dir)
                .map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
            let conn = open_connection(&opened_path, false)?;
            conn.execute_batch(SCHEMA).map_err(storage(&opened_path))?;
            Ok(conn)
        })
        .await
        .map_err(|_| Error::Closed)??;

        let (tx, rx) = mpsc::channel();
        let writer_path = path.clone();
        std::thread::Builder::new()
            .name(format!("eventlog-{}", namespace.noun()))
            .spawn(move || Writer { conn, path: writer_path, namespace, round_robin: HashMap::new() }.run(rx))
            .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        Ok(EmbeddedLog { namespace, path, writer: Mutex::new(tx), readers: Arc::default() })
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
                None => open_connection(&path, true)?,
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
            let (id, count) = find_log(conn, namespace, &name)?;
            let mut ends = conn
                .prepare_cached("SELECT partition, next_offset FROM partitions WHERE log_id = ?1 ORDER BY partition")
                .map_err(storage_any)?;
            let ends: HashMap<u32, u64> = ends
                .query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(storage_any)?
                .collect::<rusqlite::Result<_>>()
                .map_err(storage_any)?;
            let mut starts = conn
                .prepare_cached("SELECT MIN(offset) FROM records WHERE log_id = ?1 AND partition = ?2")
                .map_err(storage_any)?;
            let mut partitions = Vec::with_capacity(count as usize);
            for partition in 0..count {
                let end = ends.get(&partition).copied().unwrap_or(0);
                let start: Option<u64> =
                    starts.query_row(params![id, partition], |row| row.get(0)).map_err(storage_any)?;
                partitions.push(PartitionInfo { partition, start: start.unwrap_or(end), end });
            }
            Ok(LogInfo { name, partitions })
        })
        .await
    }

    async fn delete(&self, name: &str) -> Result<()> {
        self.send(|reply| Command::Delete { name: name.to_string(), reply }).await
    }

    async fn append(&self, name: &str, records: Vec<NewRecord>) -> Result<Vec<Position>> {
        if records.is_empty() {
            self.describe(name).await?;
            return Ok(Vec::new());
        }
        self.send(|reply| Command::Append { name: name.to_string(), records, reply }).await
    }

    async fn read(&self, name: &str, partition: u32, from: u64, max: usize) -> Result<Vec<Record>> {
        let name = name.to_string();
        self.with_reader(move |conn, namespace| {
            let (id, count) = find_log(conn, namespace, &name)?;
            if partition >= count {
                return Err(Error::NoSuchPartition { noun: namespace.noun(), name, partition, partitions: count });
            }
            let mut stmt = conn
                .prepare_cached(
                    "SELECT offset, ts_ms, key, value FROM records \
                     WHERE log_id = ?1 AND partition = ?2 AND offset >= ?3 ORDER BY offset LIMIT ?4",
                )
                .map_err(storage_any)?;
            let limit = i64::try_from(max).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map(params![id, partition, from, limit], |row| {
                    Ok(Record {
                        position: Position { partition, offset: row.get(0)? },
                        timestamp_ms: row.get(1)?,
                        key: row.get(2)?,
                        value: row.get(3)?,
                    })
                })
                .map_err(storage_any)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage_any)
        })
        .await
    }
}

/// The writer thread's state: the one write connection and the round-robin cursor per log.
struct Writer {
    conn: Connection,
    path: PathBuf,
    namespace: Namespace,
    round_robin: HashMap<String, u32>,
}

/// A log as the writer sees it inside one transaction.
#[derive(Clone, Copy)]
struct LogRow {
    id: i64,
    partitions: u32,
}

impl Writer {
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
            Ok(()) => answers.into_iter().for_each(Answer::send),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.round_robin.clear();
                tracing::error!(path = %self.path.display(), error = %e, "event log commit failed");
                for answer in answers {
                    answer.fail(&self.path, &e);
                }
            }
        }
    }

    fn apply(&mut self, group: Vec<Command>, answers: &mut Vec<Answer>) -> Result<()> {
        let path = self.path.clone();
        let fail_all = |answers: &mut Vec<Answer>, group: Vec<Command>, e: &Error| {
            answers.extend(group.into_iter().map(Answer::pending));
            Err(Error::Storage { path: path.display().to_string(), source: clone_sqlite(e) })
        };
        if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE").map_err(storage(&self.path)) {
            return fail_all(answers, group, &e);
        }
        let now = now_ms();
        let mut logs: HashMap<String, Option<LogRow>> = HashMap::new();
        let mut next: HashMap<(i64, u32), u64> = HashMap::new();
        let mut group = group.into_iter();
        while let Some(cmd) = group.next() {
            let result = match cmd {
                Command::Append { name, records, reply } => {
                    let r = self.append(&name, records, now, &mut logs, &mut next);
                    Answer::Append(reply, r)
                }
                Command::Create { name, partitions, reply } => {
                    let r = self.create(&name, partitions, now, &mut logs);
                    Answer::Unit(reply, r)
                }
                Command::Delete { name, reply } => {
                    let r = self.delete(&name, &mut logs, &mut next);
                    Answer::Unit(reply, r)
                }
            };
            let storage_failure = result.storage_error().map(clone_error);
            answers.push(result);
            if let Some(e) = storage_failure {
                return fail_all(answers, group.collect(), &e);
            }
        }
        let mut update = self
            .conn
            .prepare_cached("UPDATE partitions SET next_offset = ?3 WHERE log_id = ?1 AND partition = ?2")
            .map_err(storage(&self.path))?;
        for ((log_id, partition), offset) in next {
            update.execute(params![log_id, partition, offset]).map_err(storage(&self.path))?;
        }
        Ok(())
    }

    fn lookup(&self, name: &str, logs: &mut HashMap<String, Option<LogRow>>) -> Result<Option<LogRow>> {
        if let Some(row) = logs.get(name) {
            return Ok(*row);
        }
        let row = self
            .conn
            .prepare_cached("SELECT id, partitions FROM logs WHERE name = ?1")
            .and_then(|mut s| {
                s.query_row([name], |r| Ok(LogRow { id: r.get(0)?, partitions: r.get(1)? })).optional()
            })
            .map_err(storage(&self.path))?;
        logs.insert(name.to_string(), row);
        Ok(row)
    }

    fn append(
        &mut self,
        name: &str,
        records: Vec<NewRecord>,
        now: i64,
        logs: &mut HashMap<String, Option<LogRow>>,
        next: &mut HashMap<(i64, u32), u64>,
    ) -> Result<Vec<Position>> {
        let noun = self.namespace.noun();
        let log = self.lookup(name, logs)?.ok_or_else(|| Error::NotFound { noun, name: name.into() })?;
        // Choose and check every partition before writing anything: all or none.
        let mut chosen = Vec::with_capacity(records.len());
        for record in &records {
            let partition = match (record.partition, &record.key) {
                (Some(p), _) => p,
                (None, Some(key)) => partition_for_key(key, log.partitions),
                (None, None) => {
                    let cursor = self.round_robin.entry(name.to_string()).or_insert(0);
                    *cursor = cursor.wrapping_add(1);
                    *cursor % log.partitions
                }
            };
            if partition >= log.partitions {
                return Err(Error::NoSuchPartition { noun, name: name.into(), partition, partitions: log.partitions });
            }
            chosen.push(partition);
        }
        let path = self.path.clone();
        let mut read_next =
            self.conn.prepare_cached("SELECT next_offset FROM partitions WHERE log_id = ?1 AND partition = ?2").map_err(storage(&path))?;
        let mut insert = self
            .conn
            .prepare_cached(
                "INSERT INTO records (log_id, partition, offset, ts_ms, key, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(storage(&path))?;
        let mut positions = Vec::with_capacity(records.len());
        for (record, partition) in records.iter().zip(chosen) {
            let offset = match next.get_mut(&(log.id, partition)) {
                Some(offset) => offset,
                None => {
                    let stored: Option<u64> = read_next
                        .query_row(params![log.id, partition], |r| r.get(0))
                        .optional()
                        .map_err(storage(&path))?;
                    next.entry((log.id, partition)).or_insert(stored.unwrap_or(0))
                }
            };
            insert
                .execute(params![log.id, partition, *offset, now, record.key, record.value])
                .map_err(storage(&path))?;
            positions.push(Position { partition, offset: *offset });
            *offset += 1;
        }
        Ok(positions)
    }

    fn create(&mut self, name: &str, partitions: u32, now: i64, logs: &mut HashMap<String, Option<LogRow>>) -> Result<()> {
        let noun = self.namespace.noun();
        if self.lookup(name, logs)?.is_some() {
            return Err(Error::AlreadyExists { noun, name: name.into() });
        }
        let path = self.path.clone();
        self.conn
            .execute("INSERT INTO logs (name, partitions, created_ms) VALUES (?1, ?2, ?3)", params![name, partitions, now])
            .map_err(storage(&path))?;
        let id = self.conn.last_insert_rowid();
        let mut insert = self
            .conn
            .prepare_cached("INSERT INTO partitions (log_id, partition, next_offset) VALUES (?1, ?2, 0)")
            .map_err(storage(&path))?;
        for partition in 0..partitions {
            insert.execute(params![id, partition]).map_err(storage(&path))?;
        }
        logs.insert(name.to_string(), Some(LogRow { id, partitions }));
        Ok(())
    }

    fn delete(
        &mut self,
        name: &str,
        logs: &mut HashMap<String, Option<LogRow>>,
        next: &mut HashMap<(i64, u32), u64>,
    ) -> Result<()> {
        let noun = self.namespace.noun();
        let log = self.lookup(name, logs)?.ok_or_else(|| Error::NotFound { noun, name: name.into() })?;
        let path = self.path.clone();
        for sql in [
            "DELETE FROM records WHERE log_id = ?1",
            "DELETE FROM partitions WHERE log_id = ?1",
            "DELETE FROM logs WHERE id = ?1",
        ] {
            self.conn.execute(sql, [log.id]).map_err(storage(&path))?;
        }
        next.retain(|(id, _), _| *id != log.id);
        logs.insert(name.to_string(), None);
        self.round_robin.remove(name);
        Ok(())
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

fn open_connection(path: &Path, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(storage(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(storage(path))?;
    let pragmas = if read_only {
        "PRAGMA query_only = ON;"
    } else {
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -65536;"
    };
    conn.execute_batch(pragmas).map_err(storage(path))?;
    Ok(conn)
}

fn find_log(conn: &Connection, namespace: Namespace, name: &str) -> Result<(i64, u32)> {
    conn.prepare_cached("SELECT id, partitions FROM logs WHERE name = ?1")
        .and_then(|mut s| s.query_row([name], |r| Ok((r.get(0)?, r.get(1)?))).optional())
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
        let offsets: Vec<u64> = first.iter().chain(&second).map(|p| p.offset).collect();
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
        assert_eq!(log.describe("b").await.unwrap().partitions[0].end, 0);
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
        assert!(positions.iter().all(|p| p.partition == expected));
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
        assert_eq!(p[0].offset, 1);
        assert_eq!(one.read("t", 0, 0, 10).await.unwrap().len(), 2);
    }
}
