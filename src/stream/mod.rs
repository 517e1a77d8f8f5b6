//! The stream job (SPEC §8): the streams `streaming-<id>-{pin,geo,user}` → micro-batches →
//! the shared cleaning ([`crate::clean`]) → Delta tables `<lake>/delta/<id>_{pin,geo,user}_table`,
//! plus `<id>_rejects_table` for records that cannot be cleaned; exactly once across crashes.
//!
//! Fed by the [`EventLog`] streams namespace (the gateway's stream routes append there); feeds
//! Delta readers (Spark, delta-rs/Python, DuckDB). Owns the micro-batch loop: what to read, when to
//! cut a batch, the commit order. [`delta`] owns one table's commits, [`positions`] the `txn`
//! bookkeeping, [`rejects`] the rejects rows.
//!
//! # Micro-batches
//! Each round reads every partition of the three streams from where it stands and cuts the batch
//! when a stream has `max_batch_records` records, or when its oldest record has waited
//! `max_latency` since the log accepted it (a backlog is therefore committed at once), or — with
//! `drain` — when the streams are read to their end. Every record stays an event: no
//! one-row-per-`ind` step here.
//!
//! # Exactly once
//! A table's `txn` action for app id `pinpipe-<stream>-<partition>` (data tables) or
//! `pinpipe-rejects-<stream>-<partition>` (the rejects table) holds the last offset of that
//! partition the table accounts for, written in the same Delta commit as the rows (a Delta commit
//! is atomic: rows and positions land together or not at all). A round commits in this order:
//!
//! 1. the rejects table, one commit with the rejects of all three streams, setting the rejects
//!    app id of each partition that had rejects to the last offset *read* in the round;
//! 2. then each data table (the three in parallel), one commit each, setting the data app id of
//!    every partition read to the last offset read — even when all its records were rejects
//!    (a commit of no rows that only moves the position).
//!
//! On start each partition resumes after its data version `d` and, for every record, writes its
//! cleaned row only if its offset is past `d` and its reject only if past the rejects version `r`.
//! Cleaning is deterministic, so a record re-read after a crash is a row or a reject exactly as
//! before. Why nothing is lost or doubled, at every crash point:
//! - before step 1 commits: neither table holds anything of the round; it is read again.
//! - between 1 and 2 (or some data tables committed, others not): the rejects table holds the
//!   round's rejects and `r` ≥ the round's offsets, so re-reading from `d + 1` re-commits the rows
//!   the data table lacks and skips the rejects already stored.
//! - after 2: both versions cover the round; it is not read again.
//!
//! The invariant behind "resume after `d`" is that a reject at an offset ≤ `d` is always stored:
//! a data commit happens only after the rejects commit of the same round succeeded. When a commit
//! fails (another writer, a timeout whose write in fact landed), [`delta::DeltaSink::commit`]
//! re-reads the table and commits only the rows past the stored versions — deltalake itself does
//! not refuse a repeated `txn` version, it only reports a concurrent commit on the same app id as
//! a conflict.
//!
//! # Logs with native positions (Kinesis)
//! Kinesis offsets are the log backend's own per-shard record count (see
//! [`crate::eventlog::kinesis`]), which fits the `txn` version; the sequence number, which does
//! not, travels beside it: each data commit also stores, in its commit info
//! ([`positions::NATIVE_KEY`]), for every partition of its stream whose position is known, the
//! `txn` version and the native position ([`Record::native`]) of the record at that offset. It is
//! the same atomic commit as the rows and the versions, so the pair never disagrees with the
//! table. On start the job reads the newest commit info that holds them and, for each partition
//! whose stored version equals the `txn` version `d`, calls [`EventLog::resume_hint`]`(d + 1,
//! native)`: the log goes on right after the last record the table holds, without re-reading the
//! shard, and offset `d + 1` names the same record it named before the restart (even after old
//! records expired from the shard, which would shift a count from its start). The crash argument
//! above is unchanged: the resume point is still `d + 1`, only found faster. Without a matching
//! position (none stored yet, a commit by another tool on top) the log falls back to counting
//! from the shard's start, which is correct as long as nothing has expired from it.
//!
//! While the log is unavailable (a remote log down, throttling) reads are retried with backoff
//! up to 5 s apart ([`Backoff`]) until it answers or the job is shut down; a read
//! that failed consumed nothing, so the job goes on where it stood.
//! Likewise while the lake is unreachable (S3 down or not answering: requests time out after the
//! object store's `AWS_TIMEOUT`, 30 s by default, and its own retries) commits are retried with
//! backoff for as long as that lasts, until shutdown ([`delta::DeltaSink::commit`]); each retry
//! first re-reads the stored versions, so a commit that landed while its answer was lost is not
//! made twice.

mod delta;
mod positions;
mod rejects;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::record_batch::RecordBatch;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::clean;
use crate::config::Worker;
use crate::contract::{self, Table};
use crate::eventlog::{EventLog, Record};
use crate::lake::Lake;
use delta::{CommitMeta, DeltaSink, Part};
use positions::Cursor;
use rejects::RejectRow;

pub use rejects::schema as rejects_schema;

/// How often an idle job looks for new records.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Default [`StreamConfig::max_batch_records`].
pub const DEFAULT_MAX_BATCH: usize = 10_000;
/// Default [`StreamConfig::max_latency`].
pub const DEFAULT_MAX_LATENCY: Duration = Duration::from_secs(1);
/// Default [`StreamConfig::lake_timeout`] of a draining job (`--drain`, `demo`): a job that
/// follows the streams waits out the lake for as long as it takes.
pub const DEFAULT_DRAIN_LAKE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default [`StreamConfig::checkpoint_every`].
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 100;

/// What `pinpipe stream` runs with.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Pipeline id: reads `streaming-<id>-{pin,geo,user}`, writes `<id>_{pin,geo,user}_table`.
    pub id: String,
    /// Most records in one micro-batch (one Delta commit per table).
    pub max_batch_records: usize,
    /// Longest a record waits before its micro-batch is committed.
    pub max_latency: Duration,
    /// Commit everything in the streams, then return.
    pub drain: bool,
    /// Write a Delta checkpoint every this many commits of a table.
    pub checkpoint_every: u64,
    /// How long a commit waits out a lake that is full or unreachable before the job gives up
    /// ([`Error::LakeUnwritable`]); `None`: for as long as it lasts.
    pub lake_timeout: Option<Duration>,
    /// The share of the stream partitions this job owns (`--worker I/N`); [`Worker::ALL`] by
    /// default. Workers write the same tables: each partition's position is its own `txn` app id,
    /// and Delta appends from several writers commit one after another.
    pub worker: Worker,
}

/// What one stream contributed during a run.
#[derive(Debug, Clone, Default)]
pub struct TableReport {
    /// The stream read, `streaming-<id>-pin`.
    pub stream: String,
    /// The Delta table written, `<id>_pin_table`.
    pub table: String,
    /// Cleaned rows committed to the table during this run.
    pub committed: u64,
    /// Records of the stream committed to the rejects table during this run.
    pub rejected: u64,
    /// Delta commits made to the table during this run.
    pub commits: u64,
    /// The table's version when the run ended.
    pub version: i64,
}

/// What a stream run did.
#[derive(Debug, Clone, Default)]
pub struct StreamReport {
    /// Per stream, in the order pin, geo, user.
    pub tables: Vec<TableReport>,
    /// The rejects table, `<id>_rejects_table`.
    pub rejects_table: String,
    /// Delta commits made to the rejects table during this run.
    pub rejects_commits: u64,
    /// Micro-batches committed.
    pub batches: u64,
    /// Median milliseconds from the log accepting a record to the commit holding it returning,
    /// over every record read in this run (0 when none); a backlog found at start counts its wait.
    pub latency_ms_p50: u64,
    /// The same, 99th percentile: what the ≤ 2 s end-to-end target is about.
    pub latency_ms_p99: u64,
    /// The same, largest.
    pub latency_ms_max: u64,
}

impl fmt::Display for StreamReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tables {
            writeln!(
                f,
                "{} → {}: {} records committed, {} rejected, {} commits (table version {})",
                t.stream, t.table, t.committed, t.rejected, t.commits, t.version
            )?;
        }
        let rejected: u64 = self.tables.iter().map(|t| t.rejected).sum();
        writeln!(f, "rejects → {}: {} records, {} commits", self.rejects_table, rejected, self.rejects_commits)?;
        write!(
            f,
            "{} micro-batches; latency log → Delta p50 {} ms, p99 {} ms, max {} ms",
            self.batches, self.latency_ms_p50, self.latency_ms_p99, self.latency_ms_max
        )
    }
}

/// Errors of the stream job. Bad records are never errors: they go to the rejects table.
/// (deltalake's errors are boxed: they are large and this enum travels in every `Result`.)
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot describe stream `{stream}`")]
    Describe {
        stream: String,
        #[source]
        source: crate::eventlog::Error,
    },
    #[error("cannot read stream `{stream}` partition {partition} from offset {offset}")]
    Read {
        stream: String,
        partition: u32,
        offset: u64,
        #[source]
        source: crate::eventlog::Error,
    },
    #[error("invalid Delta table URL `{url}`")]
    Url {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("cannot open or create the Delta table at {url}")]
    Open {
        url: String,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error("cannot read the stream positions stored in Delta table {table} (version {version})")]
    Positions {
        table: String,
        version: i64,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error("commit to Delta table {table} failed {attempts} times (table at version {version})")]
    Commit {
        table: String,
        version: i64,
        attempts: u32,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error("cannot build the rows for Delta table {table}")]
    Arrow {
        table: String,
        #[source]
        source: datafusion::arrow::error::ArrowError,
    },
    #[error("cleaning records of stream `{stream}` failed")]
    Clean {
        stream: String,
        #[source]
        source: clean::Error,
    },
    #[error("the cleaning task of stream `{stream}` panicked")]
    CleanPanicked { stream: String },
    #[error(
        "Delta table {table} holds stream `{stream}` partition {partition} up to offset {stored}, but the stream ends at \
         {log_end}: it was deleted and created again (or lost records), and the table does not say which log it read"
    )]
    AheadOfLog { stream: String, partition: u32, table: String, stored: u64, log_end: u64 },
    #[error("gave up on Delta table {table}: {trouble} and stayed so for {}s", waited.as_secs())]
    LakeUnwritable { table: String, trouble: crate::lake::Trouble, waited: Duration },
    /// Stopped while waiting for the lake: nothing of the round was committed (it is read again
    /// next time).
    #[error("stopped while waiting for the lake to take a commit to {table}")]
    Interrupted { table: String },
}

/// One stream, its data table and where each of its partitions stands.
struct Source {
    table: Table,
    stream: String,
    /// The identity of the stream's log, recorded with every commit.
    identity: Option<String>,
    sink: DeltaSink,
    cursors: Vec<Cursor>,
    report: TableReport,
}

/// The records a round read, per source (same order as the sources).
type Round = Vec<Vec<Record>>;

/// What a reader of a data table can see of a stream: the last offset per partition committed to
/// `<id>_<table>_table`. Used to measure end-to-end latency (`pinpipe bench stream`).
pub struct Progress {
    sink: DeltaSink,
    stream: String,
}

impl Progress {
    /// Opens (creating if absent) the data table of `table` in `lake` for pipeline `id`.
    pub async fn open(lake: &Lake, id: &str, table: Table) -> Result<Progress, Error> {
        let name = contract::delta_table(id, table);
        let sink = DeltaSink::open(lake, &name, clean::cleaned_schema(table), u64::MAX).await?;
        Ok(Progress { sink, stream: contract::stream(id, table) })
    }

    /// The table version as of the last [`Progress::visible`] (its commit count minus one; -1 if none).
    pub fn version(&self) -> i64 {
        self.sink.version()
    }

    /// The last offset of `partition` visible in the table now (reloading its log first).
    pub async fn visible(&mut self, partition: u32) -> Result<Option<u64>, Error> {
        self.sink.refresh().await?;
        let version = self.sink.stored_version(&positions::data_app_id(&self.stream, partition)).await?;
        Ok(version.and_then(|v| u64::try_from(v).ok()))
    }
}

/// Runs the stream job until `shutdown` (or, with `drain`, until the streams are committed).
/// A cancelled job commits what it has read, then returns.
pub async fn run(
    cfg: &StreamConfig,
    streams: Arc<dyn EventLog>,
    lake: &Lake,
    shutdown: CancellationToken,
) -> Result<StreamReport, Error> {
    static S3: Once = Once::new();
    if lake.url().starts_with("s3://") {
        S3.call_once(|| deltalake::aws::register_handlers(None));
    }
    let checkpoint_every = cfg.checkpoint_every.max(1);
    let rejects_table = contract::rejects_table(&cfg.id);
    let open = |name: String, schema| {
        let shutdown = &shutdown;
        async move { DeltaSink::open_waiting(lake, &name, schema, checkpoint_every, cfg.lake_timeout, shutdown).await }
    };
    let mut rejects = match open(rejects_table.clone(), rejects::schema()).await {
        Err(Error::Interrupted { .. }) => return Ok(StreamReport { rejects_table, ..Default::default() }),
        other => other?,
    };
    let rejects_meta = rejects.stored_meta().await?;
    let mut sources = Vec::with_capacity(3);
    for table in Table::ALL {
        let stream = contract::stream(&cfg.id, table);
        let name = contract::delta_table(&cfg.id, table);
        let sink = match open(name.clone(), clean::cleaned_schema(table)).await {
            Err(Error::Interrupted { .. }) => return Ok(StreamReport { rejects_table, ..Default::default() }),
            other => other?,
        };
        let info = describe_retrying(&*streams, &stream, &shutdown).await?;
        let stored = sink.stored_meta().await?;
        let identity = info.incarnation.clone();
        let mut cursors = Vec::with_capacity(info.partitions.len());
        for p in info.partitions.iter().filter(|p| cfg.worker.owns(p.partition)) {
            let app_id = positions::data_app_id(&stream, p.partition);
            let rejects_app_id = positions::rejects_app_id(&stream, p.partition);
            // Positions stored for an earlier log of this name do not count (see `positions`).
            let earlier = stored.identities.get(&app_id);
            let data_ours = positions::same_log(earlier.map(String::as_str), identity.as_deref());
            let rejects_ours = positions::same_log(
                rejects_meta.identities.get(&rejects_app_id).map(String::as_str),
                identity.as_deref(),
            );
            if !data_ours {
                tracing::warn!(
                    %stream, partition = p.partition, table = %name, ?earlier, now = ?identity,
                    "the stream is a new log (deleted and created again): reading it from its start; the table's earlier rows stay"
                );
            }
            let data = sink.stored_version(&app_id).await?.filter(|_| data_ours);
            let rej = rejects.stored_version(&rejects_app_id).await?.filter(|_| rejects_ours);
            let mut cursor = Cursor::resume(p.partition, p.start, data, rej);
            let unverified = earlier.is_none() || identity.is_none();
            if unverified && p.end > 0 && cursor.next > p.end {
                // No identity to tell the logs apart, and positions past the end: not this log.
                return Err(Error::AheadOfLog {
                    stream,
                    partition: p.partition,
                    table: name,
                    stored: cursor.next - 1,
                    log_end: p.end,
                });
            }
            if data_ours && let Some(after) = cursor.adopt_native(stored.native.get(&app_id)).map(str::to_string) {
                // The log can go on right after the last record the table holds.
                streams.resume_hint(&stream, p.partition, cursor.next, &after);
            }
            cursors.push(cursor);
        }
        tracing::info!(%stream, table = %name, version = sink.version(), ?cursors, "stream resumes");
        let report = TableReport { stream: stream.clone(), table: name, version: sink.version(), ..Default::default() };
        sources.push(Source { table, stream, identity, sink, cursors, report });
    }

    let mut report = StreamReport { rejects_table, ..Default::default() };
    let mut latency = hdrhistogram::Histogram::<u64>::new(3).ok();
    loop {
        let round = gather(cfg, &*streams, &mut sources, &shutdown).await?;
        if round.iter().any(|r| !r.is_empty()) {
            match commit_round(&mut sources, &mut rejects, round, &mut report, latency.as_mut(), &shutdown).await {
                // Stopped while the lake would not take the round: it is read again next time.
                Err(Error::Interrupted { table }) => {
                    tracing::info!(%table, "stopping with the last micro-batch uncommitted (the lake did not take it)");
                    break;
                }
                other => other?,
            }
            report.batches += 1;
        } else if cfg.drain || shutdown.is_cancelled() {
            break;
        }
        if shutdown.is_cancelled() {
            break;
        }
    }
    report.tables = sources.into_iter().map(|s| TableReport { version: s.sink.version(), ..s.report }).collect();
    if let Some(h) = latency.filter(|h| !h.is_empty()) {
        report.latency_ms_p50 = h.value_at_quantile(0.5);
        report.latency_ms_p99 = h.value_at_quantile(0.99);
        report.latency_ms_max = h.max();
    }
    Ok(report)
}

/// Reads one micro-batch: until a stream holds `max_batch_records`, the oldest record read has
/// waited `max_latency`, the streams are read to their end (`drain`), or shutdown.
async fn gather(
    cfg: &StreamConfig,
    log: &dyn EventLog,
    sources: &mut [Source],
    shutdown: &CancellationToken,
) -> Result<Round, Error> {
    let mut round: Round = sources.iter().map(|_| Vec::new()).collect();
    let mut deadline: Option<Instant> = None;
    loop {
        let mut got = false;
        for (source, pending) in sources.iter_mut().zip(round.iter_mut()) {
            for cursor in &mut source.cursors {
                let room = cfg.max_batch_records.saturating_sub(pending.len());
                if room == 0 {
                    break;
                }
                let records = read_retrying(log, &source.stream, cursor, room, shutdown).await?;
                let (Some(first), Some(last)) = (records.first(), records.last()) else { continue };
                got = true;
                cursor.next = last.position.offset + 1;
                if deadline.is_none() {
                    // Count the wait from when the log accepted the record, but never past
                    // `max_latency` from now (clocks of other machines may be ahead).
                    let waited = Duration::from_millis(u64::try_from(now_ms() - first.timestamp_ms).unwrap_or(0));
                    deadline = Some(Instant::now() + cfg.max_latency.saturating_sub(waited));
                }
                pending.extend(records);
            }
        }
        if round.iter().any(|r| r.len() >= cfg.max_batch_records) || shutdown.is_cancelled() {
            return Ok(round);
        }
        if cfg.drain {
            // Read on without waiting until the streams are at their end.
            if got {
                continue;
            }
            return Ok(round);
        }
        let now = Instant::now();
        let wait = match deadline {
            Some(d) if d <= now => return Ok(round),
            Some(d) => POLL_INTERVAL.min(d - now),
            None => POLL_INTERVAL,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

/// Reads up to `max` records at `cursor`; while the log is unavailable (a remote log down or
/// throttling), waits with backoff and tries again, until shutdown (then: nothing read).
async fn read_retrying(
    log: &dyn EventLog,
    stream: &str,
    cursor: &Cursor,
    max: usize,
    shutdown: &CancellationToken,
) -> Result<Vec<Record>, Error> {
    let mut backoff = Backoff::default();
    loop {
        match log.read(stream, cursor.partition, cursor.next, max).await {
            Ok(records) => return Ok(records),
            Err(e) if e.is_unavailable() && !shutdown.is_cancelled() => {
                tracing::warn!(stream, partition = cursor.partition, offset = cursor.next, error = %e, retry_in_ms = backoff.next_wait().as_millis() as u64, "reading the stream failed; retrying");
                if !backoff.pause(shutdown).await {
                    return Ok(Vec::new());
                }
            }
            Err(source) => {
                return Err(Error::Read {
                    stream: stream.to_string(),
                    partition: cursor.partition,
                    offset: cursor.next,
                    source,
                });
            }
        }
    }
}

/// Describes `stream`, waiting with backoff while the log is unavailable (until shutdown).
async fn describe_retrying(
    log: &dyn EventLog,
    stream: &str,
    shutdown: &CancellationToken,
) -> Result<crate::eventlog::LogInfo, Error> {
    let mut backoff = Backoff::default();
    loop {
        match log.describe(stream).await {
            Ok(info) => return Ok(info),
            Err(e) if e.is_unavailable() && !shutdown.is_cancelled() => {
                tracing::warn!(stream, error = %e, retry_in_ms = backoff.next_wait().as_millis() as u64, "describing the stream failed; retrying");
                backoff.pause(shutdown).await;
            }
            Err(source) => return Err(Error::Describe { stream: stream.to_string(), source }),
        }
    }
}

/// A stream's records of one round, decoded and cleaned.
struct Cleaned {
    /// Cleaned rows, in read order.
    rows: RecordBatch,
    /// The (partition, offset) of each row.
    row_positions: Vec<(u32, u64)>,
    rejects: Vec<RejectRow>,
    /// Last offset read per partition, with that record's native position.
    last: BTreeMap<u32, (u64, Option<String>)>,
}

/// Decodes and cleans `records` of `stream` with the shared cleaning code.
fn clean_records(table: Table, stream: &str, records: &[Record]) -> Result<Cleaned, clean::Error> {
    let values: Vec<&[u8]> = records.iter().map(|r| r.value.as_slice()).collect();
    let decoded = clean::decode(table, &values)?;
    let rows = clean::clean(table, &decoded.batch)?;
    let position = |i: usize| records.get(i).map_or((0, 0), |r| (r.position.partition, r.position.offset));
    let row_positions = decoded.rows.iter().map(|&i| position(i)).collect();
    let rejects = decoded
        .rejects
        .into_iter()
        .map(|r| {
            let (partition, offset) = position(r.index);
            RejectRow { stream: stream.to_string(), partition, offset, raw: r.raw, reason: r.reason }
        })
        .collect();
    let mut last = BTreeMap::new();
    for r in records {
        last.insert(r.position.partition, (r.position.offset, r.native.clone()));
    }
    Ok(Cleaned { rows, row_positions, rejects, last })
}

/// Commits one round: rejects first, then the three data tables (see the module doc for why
/// this order).
async fn commit_round(
    sources: &mut [Source],
    rejects_sink: &mut DeltaSink,
    round: Round,
    report: &mut StreamReport,
    latency: Option<&mut hdrhistogram::Histogram<u64>>,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
    let timestamps: Vec<i64> = round.iter().flatten().map(|r| r.timestamp_ms).collect();
    let mut tasks = Vec::new();
    for (source, records) in sources.iter().zip(round) {
        let (table, stream) = (source.table, source.stream.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let cleaned = clean_records(table, &stream, &records);
            (stream, cleaned)
        }));
    }
    let mut cleaned = Vec::with_capacity(tasks.len());
    for (task, source) in tasks.into_iter().zip(sources.iter()) {
        let (stream, result) = task.await.map_err(|_| Error::CleanPanicked { stream: source.stream.clone() })?;
        cleaned.push(result.map_err(|source| Error::Clean { stream, source })?);
    }

    // 1. The rejects, one commit for the three streams when the round has any. It states every
    //    owned partition's rejects position (unchanged where it had none), so each one's log
    //    identity is on record with it.
    let wanted = |source: &Source, r: &RejectRow| {
        source.cursors.iter().any(|cursor| cursor.partition == r.partition && cursor.rejects_want(r.offset))
    };
    let any_rejects = sources.iter().zip(&cleaned).any(|(s, c)| c.rejects.iter().any(|r| wanted(s, r)));
    let mut reject_parts = Vec::new();
    for (source, c) in sources.iter().zip(&cleaned).filter(|_| any_rejects) {
        for cursor in &source.cursors {
            let rows: Vec<RejectRow> = c
                .rejects
                .iter()
                .filter(|r| r.partition == cursor.partition && cursor.rejects_want(r.offset))
                .cloned()
                .collect();
            let last = match c.last.get(&cursor.partition) {
                Some(&(last, _)) if !rows.is_empty() => positions::version_of(last),
                _ => cursor.rejects.map_or(-1, positions::version_of),
            };
            let batch =
                rejects::to_batch(&rows).map_err(|source| Error::Arrow { table: rejects_sink.name.clone(), source })?;
            reject_parts.push((
                source.stream.clone(),
                cursor.partition,
                rows.len(),
                Part {
                    stream: source.stream.clone(),
                    app_id: positions::rejects_app_id(&source.stream, cursor.partition),
                    last,
                    rows: batch,
                    offsets: rows.iter().map(|r| positions::version_of(r.offset)).collect(),
                },
            ));
        }
    }
    if !reject_parts.is_empty() {
        let parts = reject_parts.iter().map(|(_, _, _, p)| p.clone()).collect();
        let meta = CommitMeta { native: None, identities: identities(sources.iter()) };
        let done = rejects_sink.commit(parts, &meta, shutdown).await?;
        if done.version.is_some() {
            report.rejects_commits += 1;
        }
        for (stream, partition, n, part) in &reject_parts {
            for source in sources.iter_mut().filter(|s| &s.stream == stream) {
                source.report.rejected += *n as u64;
                for cursor in source.cursors.iter_mut().filter(|c| c.partition == *partition) {
                    cursor.rejects = u64::try_from(part.last).ok();
                }
            }
        }
    }

    // 2. The data tables, in parallel.
    let commits = sources.iter_mut().zip(cleaned).map(|(source, c)| async move {
        let parts = data_parts(source, &c)?;
        if parts.is_empty() {
            return Ok::<_, Error>(());
        }
        // Where every partition stands once this commit lands, native positions included.
        let mut after = source.cursors.clone();
        for cursor in &mut after {
            if let Some((last, native)) = c.last.get(&cursor.partition) {
                cursor.data = Some(*last);
                cursor.native = native.clone();
            }
        }
        let meta = CommitMeta {
            native: positions::native_metadata(&source.stream, &after),
            identities: identities(std::iter::once(&*source)),
        };
        let done = source.sink.commit(parts, &meta, shutdown).await?;
        source.report.committed += done.rows as u64;
        if done.version.is_some() {
            source.report.commits += 1;
        }
        for (cursor, now) in source.cursors.iter_mut().zip(after) {
            cursor.data = now.data;
            cursor.native = now.native;
        }
        Ok(())
    });
    futures::future::try_join_all(commits).await?;

    if let Some(h) = latency {
        let now = now_ms();
        for ts in timestamps {
            let _ = h.record(u64::try_from(now - ts).unwrap_or(0));
        }
    }
    Ok(())
}

/// One [`Part`] per partition read in the round: the rows the data table still lacks, and the
/// position it reaches.
fn data_parts(source: &Source, c: &Cleaned) -> Result<Vec<Part>, Error> {
    if c.last.is_empty() {
        return Ok(Vec::new());
    }
    let arrow_err = |e| Error::Arrow { table: source.sink.name.clone(), source: e };
    let mut parts = Vec::new();
    for cursor in &source.cursors {
        let app_id = positions::data_app_id(&source.stream, cursor.partition);
        let Some(&(last, _)) = c.last.get(&cursor.partition) else {
            // Not read this round: its position stated again, with no rows, so the commit names
            // the log of every owned partition.
            let last = cursor.data.map_or(-1, positions::version_of);
            let rows = RecordBatch::new_empty(c.rows.schema());
            parts.push(Part { stream: source.stream.clone(), app_id, last, rows, offsets: Vec::new() });
            continue;
        };
        let (indices, offsets): (Vec<u32>, Vec<i64>) = c
            .row_positions
            .iter()
            .enumerate()
            .filter(|(_, (p, o))| *p == cursor.partition && cursor.data_wants(*o))
            .map(|(i, (_, o))| (u32::try_from(i).unwrap_or(u32::MAX), positions::version_of(*o)))
            .unzip();
        let rows = if indices.len() == c.rows.num_rows() {
            c.rows.clone()
        } else {
            take_record_batch(&c.rows, &UInt32Array::from(indices)).map_err(arrow_err)?
        };
        parts.push(Part { stream: source.stream.clone(), app_id, last: positions::version_of(last), rows, offsets });
    }
    Ok(parts)
}

/// Each source's stream → its log identity (those known), for a commit's info.
fn identities<'a>(sources: impl Iterator<Item = &'a Source>) -> BTreeMap<String, String> {
    sources.filter_map(|s| Some((s.stream.clone(), s.identity.clone()?))).collect()
}

/// Milliseconds since the Unix epoch, as the log stamps records.
fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
