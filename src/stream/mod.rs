//! The stream job (SPEC §8): the streams `streaming-<id>-{pin,geo,user}` → micro-batches →
//! the shared cleaning ([`crate::clean`]) → Delta tables `<lake>/delta/<id>_{pin,geo,user}_table`,
//! plus `<id>_rejects_table` for records that cannot be cleaned; exactly once across crashes.
//!
//! Fed by the [`EventLog`] streams namespace (the gateway's stream routes append there); feeds
//! Delta readers (Spark, delta-rs/Python, DuckDB). Owns the micro-batch loop ([`run`]), its
//! configuration, report and errors. Its steps live beside it, in the order a run takes them:
//! [`resume`] opens the tables and finds where each partition resumes, [`gather`] reads one
//! micro-batch (what to read, when to cut it), [`round`] cleans a round and commits it (the commit
//! order). [`delta`] owns one table's commits, [`positions`] the `txn` bookkeeping, [`rejects`]
//! the rejects rows; [`progress`] what a reader of a data table can see ([`Progress`]).
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
//! is atomic: rows and positions land together or not at all). A round commits in this order
//! ([`round::commit_round`]):
//!
//! 1. the rejects table, one commit with the rejects of all three streams, setting the rejects
//!    app id of each partition that had rejects to the last offset *read* in the round;
//! 2. then each data table (the three in parallel), one commit each, setting the data app id of
//!    every partition read to the last offset read — even when all its records were rejects
//!    (a commit of no rows that only moves the position).
//!
//! On start each partition resumes after its data version `d` ([`resume`]) and, for every record,
//! writes its cleaned row only if its offset is past `d` and its reject only if past the rejects
//! version `r`.
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
//! up to 5 s apart ([`crate::backoff::Backoff`], in [`gather`]) until it answers or the job is shut
//! down; a read that failed consumed nothing, so the job goes on where it stood.
//! Likewise while the lake is unreachable (S3 down or not answering: requests time out after the
//! object store's `AWS_TIMEOUT`, 30 s by default, and its own retries) commits are retried with
//! backoff for as long as that lasts, until shutdown ([`delta::DeltaSink::commit`]); each retry
//! first re-reads the stored versions, so a commit that landed while its answer was lost is not
//! made twice.

mod resume;
mod gather;
mod round;
mod delta;
mod positions;
mod rejects;
mod progress;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::clean;
use crate::contract::{self, Table};
use crate::eventlog::{EventLog, OnGap, Record};
use crate::lake::Lake;
use crate::settings::Worker;
use crate::upkeep::{self, UpkeepConfig};
use delta::DeltaSink;
use positions::Cursor;
use round::commit_round;

pub(crate) use delta::stored_meta_of;
pub use progress::Progress;
pub use rejects::schema as rejects_schema;

/// What `pinpipe stream` runs with ([`StreamConfig::new`] has the defaults; `[stream]` in
/// `pinpipe.toml` and the flags change them through [`crate::settings::StreamSection`]).
#[derive(Debug, Clone, PartialEq)]
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
    /// What to do when retention removed records before they reached the tables: stop (the
    /// default) or skip them, logged and counted.
    pub on_gap: OnGap,
    /// How the job keeps its tables compact and vacuumed while it runs (done by the first
    /// worker, `--worker 0/N`, only).
    pub upkeep: UpkeepConfig,
}

/// The default micro-batch cut (`--max-latency`): with compaction keeping the file count down,
/// short micro-batches cost readers nothing; at 10,000 records/s the p99 from the gateway's 200
/// to the row in Delta stays under 500 ms with it (`pinpipe bench stream`). It was 1 s.
pub const DEFAULT_MAX_LATENCY: Duration = Duration::from_millis(250);

impl StreamConfig {
    /// The defaults for pipeline `id`: micro-batches of at most 10,000 records or 250 ms, a
    /// checkpoint every 100 commits, every partition; a job that follows the streams waits out
    /// an unwritable lake for as long as it lasts, a draining one (`--drain`, `demo`) 10 minutes.
    pub fn new(id: &str, drain: bool) -> StreamConfig {
        StreamConfig {
            id: id.to_string(),
            max_batch_records: 10_000,
            max_latency: DEFAULT_MAX_LATENCY,
            drain,
            checkpoint_every: 100,
            lake_timeout: drain.then_some(Duration::from_secs(600)),
            worker: Worker::ALL,
            on_gap: OnGap::Stop,
            upkeep: UpkeepConfig::default(),
        }
    }
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

/// Runs the stream job until `shutdown` (or, with `drain`, until the streams are committed).
/// A cancelled job commits what it has read, then returns.
pub async fn run(
    cfg: &StreamConfig,
    streams: Arc<dyn EventLog>,
    lake: &Lake,
    shutdown: CancellationToken,
) -> Result<StreamReport, Error> {
    let mut report = StreamReport { rejects_table: contract::rejects_table(&cfg.id), ..Default::default() };
    let Some((mut rejects, mut sources)) = resume::open(cfg, &*streams, lake, &shutdown).await? else {
        return Ok(report);
    };

    // The first worker keeps the tables: in the background while following the streams, once
    // at the end of a drain.
    let keeps = cfg.worker.index == 0;
    let names: Vec<String> = sources.iter().map(|s| s.sink.name.clone()).chain([rejects.name.clone()]).collect();
    let background = (keeps && !cfg.drain).then(|| upkeep::spawn(lake.clone(), names.clone(), cfg.upkeep.clone()));
    if let Some(background) = &background {
        for sink in sources.iter_mut().map(|s| &mut s.sink).chain([&mut rejects]) {
            sink.count_commits(background.commit_counter(&sink.name));
        }
    }

    let mut latency = hdrhistogram::Histogram::<u64>::new(3).ok();
    loop {
        let round = gather::gather(cfg, &*streams, &mut sources, &shutdown).await?;
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
    if let Some(background) = background {
        background.stop().await;
    }
    if keeps && cfg.drain {
        upkeep::keep_once(lake, &names, &cfg.upkeep, &shutdown).await;
    }
    report.tables = sources.into_iter().map(|s| TableReport { version: s.sink.version(), ..s.report }).collect();
    if let Some(h) = latency.filter(|h| !h.is_empty()) {
        report.latency_ms_p50 = h.value_at_quantile(0.5);
        report.latency_ms_p99 = h.value_at_quantile(0.99);
        report.latency_ms_max = h.max();
    }
    Ok(report)
}

/// Milliseconds since the Unix epoch, as the log stamps records.
fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
