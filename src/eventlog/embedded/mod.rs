//! The embedded event log: topics or streams in one SQLite file in WAL mode, on local disk.
//!
//! Owns durability for the default, single-machine setup. One writer thread per process owns the
//! write connection and does group commit: every append waiting when it wakes goes into one
//! transaction, committed with `synchronous = OFF`; a second thread ([`sync`]) then fsyncs the
//! WAL once for every group committed meanwhile, and each caller is answered only after that
//! fsync returned. Readers use their own connections, so the sink, the stream job and the admin
//! commands read — from this process or others on the same `--data` — while a gateway appends;
//! SQLite's locking serialises writers of different processes. A SIGKILL at any moment leaves
//! every committed append whole and nothing of an uncommitted one (SQLite's WAL recovery).
//!
//! Readers see only durable records: a partition is read, and described, up to its durable end
//! ([`durable`]), which the fsync thread raises after each fsync and before it answers, in a
//! small table beside the log that every process maps into its memory. A group committed but not
//! yet synced is invisible everywhere, so a power loss cannot take back a record someone already
//! copied and give its offset to another. A log opened anew syncs and publishes what its file
//! already holds, when any of that is not durable yet.
//!
//! Backpressure ([`pressure`]): an append is refused, storing nothing, while the log's file
//! system has less free space than its floor, while too many records wait for the writer, or
//! after a commit found the disk full; it is taken again by itself once the cause is gone.
//!
//! Retention ([`retention`]): the writer removes each partition's expired oldest records between
//! group commits, a bounded number per turn, and gives the freed space back beyond a reserve;
//! a read from an offset that was removed fails with [`Error::Expired`].
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
//!
//! The parts, in the order a record goes through them: [`EmbeddedLog`] (here) takes a call and
//! sends it to the writer thread ([`writer`]), which places records by their
//! [`rowid`](mod@rowid) and commits groups; the fsync thread ([`sync`]) syncs the WAL, raises the
//! durable ends ([`durable`]) and answers;
//! the checkpoint thread ([`checkpoint`]) copies the WAL back; the writer also sweeps expired
//! records ([`retention`]). [`schema`] holds the tables and
//! opens every connection. The read side (list, describe, read) is here, on pooled read-only
//! connections.

mod checkpoint;
mod durable;
mod pressure;
mod retention;
mod rowid;
mod schema;
mod sync;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use self::checkpoint::checkpoint_until;
use self::durable::DurableEnds;
use self::pressure::Gate;
use self::retention::Keep;
use self::rowid::{MAX_OFFSET, MAX_PARTITIONS, offset_of, partition_rowids, rowid};
use self::schema::{Role, SCHEMA, migrate, open_connection, storage, storage_any};
use self::sync::{sync_and_answer, wal_path};
use self::writer::{Command, Writer};
use super::{
    Appended, Error, EventLog, LogInfo, Namespace, NewRecord, PartitionInfo, Policy, Position, Record, Result,
    Retention, validate_name,
};

/// How long opening a log waits for the records already in its file to be synced and published.
const OPEN_SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// An event log stored in a local SQLite file (see the module doc).
pub struct EmbeddedLog {
    namespace: Namespace,
    path: PathBuf,
    writer: Mutex<mpsc::Sender<Command>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// How far each partition is durable; readers stop there ([`durable`]).
    durable: Arc<DurableEnds>,
    /// Whether an append is taken now ([`pressure`]).
    gate: Gate,
    /// Dropped with the log, which ends the checkpoint thread.
    _stop_checkpoints: mpsc::Sender<()>,
}

impl EmbeddedLog {
    /// Opens (creating if needed) the log of `namespace` in folder `dir`, and starts its writer,
    /// which applies `policy` (the retention of logs without their own).
    pub async fn open(dir: &Path, namespace: Namespace, policy: Policy) -> Result<Self> {
        let file = match namespace {
            Namespace::Topics => "topics.db",
            Namespace::Streams => "streams.db",
        };
        let path = dir.join(file);
        let gate = Gate::new(dir.to_path_buf(), namespace, &policy);
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
        let durable = Arc::new(DurableEnds::of(&path));
        let keep = Keep { default: policy.retention, max_bytes: policy.retention_bytes };
        let writer = Writer::new(conn, path.clone(), namespace, keep, to_syncer);
        let (opened, ends_published) = oneshot::channel();
        let spawn_failed = |source| Error::Io { path: path.display().to_string(), source };
        std::thread::Builder::new()
            .name(format!("eventlog-{}", namespace.noun()))
            .spawn(move || writer.run(rx, opened))
            .map_err(spawn_failed)?;
        let wal = wal_path(&path);
        let syncer_durable = Arc::clone(&durable);
        std::thread::Builder::new()
            .name(format!("fsync-{}", namespace.noun()))
            .spawn(move || sync_and_answer(&wal, &committed, &syncer_durable))
            .map_err(spawn_failed)?;
        let (stop_checkpoints, stopped) = mpsc::channel();
        let checkpoint_path = path.clone();
        std::thread::Builder::new()
            .name(format!("checkpoint-{}", namespace.noun()))
            .spawn(move || checkpoint_until(&checkpoint_path, &stopped))
            .map_err(spawn_failed)?;
        // What the file already holds becomes readable once an fsync covered it; wait a little
        // for that (a held-back fsync must not keep the log from opening).
        let _ = tokio::time::timeout(OPEN_SYNC_WAIT, ends_published).await;
        Ok(EmbeddedLog {
            namespace,
            path,
            writer: Mutex::new(tx),
            readers: Arc::default(),
            durable,
            gate,
            _stop_checkpoints: stop_checkpoints,
        })
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
        f: impl FnOnce(&Connection, Namespace, &DurableEnds) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = Arc::clone(&self.readers);
        let path = self.path.clone();
        let namespace = self.namespace;
        let durable = Arc::clone(&self.durable);
        tokio::task::spawn_blocking(move || {
            let pooled = pool.lock().map_err(|_| Error::Closed)?.pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&path, Role::Reader)?,
            };
            let result = f(&conn, namespace, &durable);
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

    async fn create(&self, name: &str, partitions: u32, retention: Option<Retention>) -> Result<LogInfo> {
        validate_name(self.namespace, name)?;
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(Error::InvalidPartitionCount(partitions));
        }
        self.send(|reply| Command::Create { name: name.to_string(), partitions, retention, reply }).await?;
        self.describe(name).await
    }

    async fn list(&self) -> Result<Vec<String>> {
        self.with_reader(|conn, _, _| {
            let mut stmt = conn.prepare_cached("SELECT name FROM logs ORDER BY name").map_err(storage_any)?;
            let names = stmt.query_map([], |row| row.get(0)).map_err(storage_any)?;
            names.collect::<rusqlite::Result<Vec<String>>>().map_err(storage_any)
        })
        .await
    }

    async fn describe(&self, name: &str) -> Result<LogInfo> {
        let name = name.to_string();
        self.with_reader(move |conn, namespace, durable| {
            let log = find_log(conn, namespace, &name)?;
            let durable_ends = durable.ends_of(log.id, 0..log.partitions, log.first_offset);
            let mut extent = conn
                .prepare_cached("SELECT MIN(pos), MAX(pos) FROM records WHERE pos BETWEEN ?1 AND ?2")
                .map_err(storage_any)?;
            let mut partitions = Vec::with_capacity(log.partitions as usize);
            for partition in 0..log.partitions {
                let (lo, hi) = partition_rowids(log.id, partition);
                let (first, last): (Option<i64>, Option<i64>) =
                    extent.query_row([lo, hi], |row| Ok((row.get(0)?, row.get(1)?))).map_err(storage_any)?;
                let stored = last.map_or(log.first_offset, |last| offset_of(last) + 1);
                let end = stored.min(durable_ends[partition as usize]);
                partitions.push(PartitionInfo { partition, start: first.map_or(end, offset_of).min(end), end });
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
        let _waiting = self.gate.admit(records.len())?;
        match self.send(|reply| Command::Append { name: name.to_string(), records, reply }).await {
            Ok(positions) => {
                self.gate.stored();
                Ok(positions.into_iter().map(Appended::Offset).collect())
            }
            Err(e) if is_disk_full(&e) => Err(self.gate.full()),
            Err(e) => Err(e),
        }
    }

    async fn read(&self, name: &str, partition: u32, from: u64, max: usize) -> Result<Vec<Record>> {
        let name = name.to_string();
        self.with_reader(move |conn, namespace, durable| {
            let FoundLog { id, partitions: count, first_offset, .. } = find_log(conn, namespace, &name)?;
            if partition >= count {
                return Err(Error::NoSuchPartition { noun: namespace.noun(), name, partition, partitions: count });
            }
            // Only what an fsync covered: never a record a power loss could still take back.
            let end = durable.end_of(id, partition, first_offset);
            if from >= end || max == 0 {
                return Ok(Vec::new());
            }
            let mut stmt = conn
                .prepare_cached(
                    "SELECT pos, ts_ms, key, value FROM records WHERE pos BETWEEN ?1 AND ?2 ORDER BY pos LIMIT ?3",
                )
                .map_err(storage_any)?;
            let limit = i64::try_from(max).unwrap_or(i64::MAX);
            let last = rowid(id, partition, (end - 1).min(MAX_OFFSET));
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
            let records = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage_any)?;
            // Offsets are contiguous from the partition's start: a first record past `from` (or
            // none before the end) means retention removed what `from` named.
            let wanted = from.max(first_offset);
            let start = records.first().map_or(end, |r| r.position.offset);
            if start > wanted {
                return Err(Error::Expired { noun: namespace.noun(), name, partition, from: wanted, start });
            }
            Ok(records)
        })
        .await
    }

    fn pressure(&self) -> Option<super::Pressure> {
        self.gate.pressure()
    }
}

/// True when SQLite could not write for want of space.
fn is_disk_full(e: &Error) -> bool {
    matches!(e, Error::Storage { source: rusqlite::Error::SqliteFailure(f, _), .. } if f.code == rusqlite::ErrorCode::DiskFull)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::partition_for_key;

    async fn log(dir: &Path) -> EmbeddedLog {
        EmbeddedLog::open(dir, Namespace::Topics, Policy::default_for(Namespace::Topics)).await.unwrap()
    }

    #[tokio::test]
    async fn appended_records_read_back_in_order_with_contiguous_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path()).await;
        log.create("t", 1, None).await.unwrap();
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
        log.create("t", 3, None).await.unwrap();
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
        log.create("t", 2, None).await.unwrap();
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
        log.create("b", 2, None).await.unwrap();
        log.create("a", 1, None).await.unwrap();
        assert!(matches!(log.create("a", 1, None).await, Err(Error::AlreadyExists { .. })));
        assert!(matches!(log.create("c", 0, None).await, Err(Error::InvalidPartitionCount(0))));
        assert_eq!(log.list().await.unwrap(), ["a", "b"]);
        log.append("b", vec![NewRecord::value("x")]).await.unwrap();
        log.delete("b").await.unwrap();
        assert_eq!(log.list().await.unwrap(), ["a"]);
        assert!(matches!(log.read("b", 0, 0, 1).await, Err(Error::NotFound { .. })));
        log.create("b", 1, None).await.unwrap();
        assert_eq!(log.describe("b").await.unwrap().partitions[0].end, 1);
    }

    #[tokio::test]
    async fn a_recreated_log_is_another_log_that_numbers_on_after_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path()).await;
        log.create("t", 2, None).await.unwrap();
        let first = log.describe("t").await.unwrap().incarnation.unwrap();
        let old = (0..5).map(|i| NewRecord { key: None, value: format!("{i}").into(), partition: Some(i % 2) });
        log.append("t", old.collect()).await.unwrap();
        log.delete("t").await.unwrap();
        log.create("t", 1, None).await.unwrap();
        let info = log.describe("t").await.unwrap();
        assert_ne!(info.incarnation.as_deref(), Some(first.as_str()));
        assert_eq!(info.partitions, [PartitionInfo { partition: 0, start: 3, end: 3 }]);
        let p = log.append("t", vec![NewRecord::value("new")]).await.unwrap();
        assert_eq!(p[0].offset(), Some(3));
        let read = log.read("t", 0, 0, 10).await.unwrap();
        assert_eq!((read.len(), read[0].position.offset, read[0].value.as_slice()), (1, 3, &b"new"[..]));
        // A second handle (another process) sees the same identity.
        let other = self::log(dir.path()).await;
        assert_eq!(other.describe("t").await.unwrap().incarnation, info.incarnation);
    }

    #[tokio::test]
    async fn keyed_records_stay_in_their_partition_and_topics_are_apart_from_streams() {
        let dir = tempfile::tempdir().unwrap();
        let topics = log(dir.path()).await;
        let streams =
            EmbeddedLog::open(dir.path(), Namespace::Streams, Policy::default_for(Namespace::Streams)).await.unwrap();
        topics.create("t", 4, None).await.unwrap();
        let key = || Some(b"partition-1".to_vec());
        let records = (0..5).map(|_| NewRecord { key: key(), value: b"v".to_vec(), partition: None }).collect();
        let positions = topics.append("t", records).await.unwrap();
        let expected = partition_for_key(b"partition-1", 4);
        assert!(positions.iter().all(|p| p.partition() == expected));
        assert!(streams.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn retention_removes_the_oldest_records_and_a_read_behind_it_fails() {
        let dir = tempfile::tempdir().unwrap();
        let short = Policy {
            retention: Retention::For(std::time::Duration::from_millis(300)),
            ..Policy::default_for(Namespace::Topics)
        };
        let log = EmbeddedLog::open(dir.path(), Namespace::Topics, short).await.unwrap();
        log.create("default", 1, None).await.unwrap();
        log.create("own", 2, Some(Retention::For(std::time::Duration::from_millis(300)))).await.unwrap();
        log.create("kept", 1, Some(Retention::Forever)).await.unwrap();
        for name in ["default", "kept"] {
            log.append(name, (0..5).map(|i| NewRecord::value(format!("{i}"))).collect()).await.unwrap();
        }
        let own = (0..6).map(|i| NewRecord { key: None, value: format!("{i}").into(), partition: Some(i % 2) });
        log.append("own", own.collect()).await.unwrap();
        // The writer sweeps about every second: wait for two turns past the retention.
        tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
        // Each partition keeps its newest record, so its next offset stays where it was.
        assert_eq!(
            log.describe("default").await.unwrap().partitions,
            [PartitionInfo { partition: 0, start: 4, end: 5 }]
        );
        assert_eq!(
            log.describe("own").await.unwrap().partitions,
            [PartitionInfo { partition: 0, start: 2, end: 3 }, PartitionInfo { partition: 1, start: 2, end: 3 }]
        );
        assert_eq!(log.describe("kept").await.unwrap().partitions, [PartitionInfo { partition: 0, start: 0, end: 5 }]);
        let err = log.read("default", 0, 1, 10).await.unwrap_err();
        assert!(matches!(err, Error::Expired { from: 1, start: 4, partition: 0, .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "topic `default` partition 0: offsets 1 to 3 were removed by retention before they were read \
             (3 record(s) lost); the partition now starts at offset 4"
        );
        let read = log.read("default", 0, 4, 10).await.unwrap();
        assert_eq!((read.len(), read[0].value.as_slice()), (1, &b"4"[..]));
        assert_eq!(log.read("kept", 0, 0, 10).await.unwrap().len(), 5);
        // Appends go on after the kept record, contiguous.
        let p = log.append("default", vec![NewRecord::value("5")]).await.unwrap();
        assert_eq!(p[0].offset(), Some(5));
    }

    #[tokio::test]
    async fn a_byte_limit_removes_the_oldest_records_first_whatever_their_age() {
        let dir = tempfile::tempdir().unwrap();
        let limit = Policy {
            retention: Retention::Forever,
            retention_bytes: Some(1 << 20),
            ..Policy::default_for(Namespace::Topics)
        };
        let log = EmbeddedLog::open(dir.path(), Namespace::Topics, limit).await.unwrap();
        // 2,000 records of 1 kB to "old", then as many to "new": four times the limit.
        for name in ["old", "new"] {
            log.create(name, 1, None).await.unwrap();
            for _ in 0..4 {
                log.append(name, (0..500).map(|_| NewRecord::value(vec![b'x'; 1000])).collect()).await.unwrap();
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
        // "old" loses everything but its newest record before "new" loses any, then "new" its
        // oldest, until what is left fits the limit.
        assert_eq!(
            log.describe("old").await.unwrap().partitions,
            [PartitionInfo { partition: 0, start: 1999, end: 2000 }]
        );
        let new = log.describe("new").await.unwrap().partitions[0];
        let kept = new.end - new.start;
        assert!((500..=1_048).contains(&kept), "{new:?}");
        let read = log.read("new", 0, new.start, 10_000).await.unwrap();
        assert_eq!(read.len() as u64, kept);
    }

    #[tokio::test]
    async fn a_second_handle_on_the_same_folder_sees_and_continues_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let one = log(dir.path()).await;
        let two = log(dir.path()).await;
        one.create("t", 1, None).await.unwrap();
        one.append("t", vec![NewRecord::value("1")]).await.unwrap();
        let p = two.append("t", vec![NewRecord::value("2")]).await.unwrap();
        assert_eq!(p[0].offset(), Some(1));
        assert_eq!(one.read("t", 0, 0, 10).await.unwrap().len(), 2);
    }
}
