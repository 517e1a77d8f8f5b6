//! Delta table upkeep (SPEC §8): the stream job's tables kept fast for months — small files
//! compacted ([`compact`]), files no retained version needs deleted ([`vacuum`]), and a look at
//! a table's files, versions and stored positions ([`describe`]).
//!
//! Fed by the Delta tables the stream job ([`crate::stream`]) appends one small file per table
//! per micro-batch to; feeds every Delta reader of them, which lists and opens fewer files. Runs
//! in the background of the stream job ([`spawn`], on its own thread and runtime so the
//! micro-batch loop keeps its latency) and by hand (`pinpipe delta optimize|vacuum|describe`).
//! It never writes rows of its own: compaction is a data-neutral rewrite (`dataChange = false`
//! on its adds and removes, as OPTIMIZE), committed only if every file it replaces is still in
//! the table, so a concurrent writer or a second compactor can cost it the work but never make a
//! row appear twice or vanish. The `txn` versions and the commit info the stream job resumes
//! from are left as they were.

mod compact;
mod describe;
mod vacuum;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deltalake::{DeltaTable, DeltaTableError};
use tokio_util::sync::CancellationToken;

use crate::lake::Lake;
use crate::observe::ErrorChain;

pub use compact::{Compacted, compact};
pub use describe::{Description, FileSizes, StoredPosition, describe};
pub use vacuum::{Vacuumed, vacuum};

/// How the stream job keeps its tables ([`UpkeepConfig::default`] has the defaults; `[stream]`
/// in `pinpipe.toml` and the `stream` flags change them).
#[derive(Debug, Clone, PartialEq)]
pub struct UpkeepConfig {
    /// Compact a table when it has more than this many small files (under half the target
    /// size); `None`: never (by hand only).
    pub compact_files: Option<usize>,
    /// The size compaction aims its files at, in bytes (a small table gets one smaller file).
    pub target_file_size: u64,
    /// How long a file no version needs any more is kept before vacuum deletes it; `None`: the
    /// table's `delta.deletedFileRetentionDuration` (7 days unless set).
    pub file_retention: Option<Duration>,
    /// How often the job vacuums its tables; `None`: never (by hand only).
    pub vacuum_every: Option<Duration>,
}

/// The default compaction threshold: more small files than this in a table.
pub const DEFAULT_COMPACT_FILES: usize = 100;
/// Delta's own default target for OPTIMIZE.
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 128 << 20;

impl Default for UpkeepConfig {
    /// Compaction past 100 small files into 128 MiB files; vacuum every hour with the table's
    /// own file retention.
    fn default() -> UpkeepConfig {
        UpkeepConfig {
            compact_files: Some(DEFAULT_COMPACT_FILES),
            target_file_size: DEFAULT_TARGET_FILE_SIZE,
            file_retention: None,
            vacuum_every: Some(Duration::from_secs(3600)),
        }
    }
}

/// Errors of table upkeep. None of them leaves a table changed: a compaction that failed
/// committed nothing, and a vacuum deletes only files no retained version needs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("there is no Delta table at {url}")]
    NotATable { url: String },
    #[error("cannot open the Delta table at {url}")]
    Open {
        url: String,
        #[source]
        source: Box<DeltaTableError>,
    },
    #[error("cannot read the state of Delta table {table}")]
    State {
        table: String,
        #[source]
        source: Box<DeltaTableError>,
    },
    #[error("pinpipe does not compact Delta table {table}: {reason}")]
    Unsupported { table: String, reason: String },
    #[error("cannot read data file {path} of Delta table {table}")]
    ReadFile {
        table: String,
        path: String,
        #[source]
        source: deltalake::parquet::errors::ParquetError,
    },
    #[error(
        "data file {path} of Delta table {table} holds {read} rows but the table's log says {listed}: not compacting it"
    )]
    RowCount { table: String, path: String, read: usize, listed: usize },
    #[error("cannot write the compacted file of Delta table {table}")]
    WriteFile {
        table: String,
        #[source]
        source: Box<DeltaTableError>,
    },
    #[error("cannot commit the compaction of Delta table {table} (at version {version})")]
    Commit {
        table: String,
        version: i64,
        #[source]
        source: Box<DeltaTableError>,
    },
    #[error("vacuuming Delta table {table} failed")]
    Vacuum {
        table: String,
        #[source]
        source: Box<DeltaTableError>,
    },
}

/// The Delta tables the stream job of pipeline `id` writes: its three data tables, then its
/// rejects table.
pub fn pipeline_tables(id: &str) -> Vec<String> {
    crate::clean::Table::ALL
        .iter()
        .map(|&t| crate::contract::delta_table(id, t))
        .chain([crate::contract::rejects_table(id)])
        .collect()
}

/// The table `name` names for pipeline `id`: `pin`, `geo`, `user` and `rejects` are the
/// pipeline's own, anything else a table name under `<lake>/delta`.
pub fn table_named(id: &str, name: &str) -> String {
    match crate::clean::Table::ALL.iter().find(|t| t.name() == name) {
        Some(&t) => crate::contract::delta_table(id, t),
        None if name == "rejects" => crate::contract::rejects_table(id),
        None => name.to_string(),
    }
}

/// Opens the existing Delta table `<lake>/delta/<name>` (an error when there is none).
pub async fn open(lake: &Lake, name: &str) -> Result<DeltaTable, Error> {
    let url = lake.delta_url(name);
    let open_err = |source| Error::Open { url: url.clone(), source: Box::new(source) };
    let mut table = lake.delta_table(name).map_err(open_err)?;
    if !table.log_store().is_delta_table_location().await.map_err(open_err)? {
        return Err(Error::NotATable { url });
    }
    table.load().await.map_err(open_err)?;
    Ok(table)
}

/// The version a table handle is at (-1 before its first commit).
fn version_of(table: &DeltaTable) -> i64 {
    table.version().map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// The stream job's background upkeep of its tables, running on its own thread until stopped.
pub struct Upkeep {
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
    commits: Vec<(String, Arc<AtomicU64>)>,
}

/// How often the upkeep looks at its commit counters.
const TICK: Duration = Duration::from_millis(250);
/// How often a table is looked at even when this process committed nothing to it (other
/// workers' files).
const LOOK_ANYWAY: Duration = Duration::from_secs(60);
/// The first vacuum after start, at the latest (a job restarted more often than `vacuum_every`
/// still vacuums).
const FIRST_VACUUM: Duration = Duration::from_secs(60);

/// Starts the upkeep of `tables` (names under `<lake>/delta`) on a thread of its own, with a
/// runtime of its own and a lower CPU priority, so compaction's parquet decoding and encoding
/// never holds up the micro-batch loop. A table is looked at (its log read) once the job made a
/// quarter of `compact_files` commits to it ([`Upkeep::commit_counter`]) or a minute passed, and
/// compacted when it has more small files than `compact_files`; every `vacuum_every` (the first
/// time within a minute of start) the tables are vacuumed. Failures are logged and tried again
/// later; nothing here stops the job.
pub fn spawn(lake: Lake, tables: Vec<String>, cfg: UpkeepConfig) -> Upkeep {
    let stop = CancellationToken::new();
    let commits: Vec<(String, Arc<AtomicU64>)> = tables.into_iter().map(|t| (t, Arc::default())).collect();
    let (token, counters) = (stop.clone(), commits.clone());
    let thread = std::thread::Builder::new().name("pinpipe-upkeep".into()).spawn(move || {
        lower_priority();
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(run(&lake, counters, &cfg, &token)),
            Err(error) => tracing::warn!(%error, "cannot start the Delta upkeep runtime; tables are not compacted"),
        }
    });
    match thread {
        Ok(thread) => Upkeep { stop, thread: Some(thread), commits },
        Err(error) => {
            tracing::warn!(%error, "cannot start the Delta upkeep thread; tables are not compacted");
            Upkeep { stop, thread: None, commits }
        }
    }
}

impl Upkeep {
    /// The counter the stream job bumps after each commit to `table`, which tells the upkeep
    /// when to look at it (`None` for a table it does not keep).
    pub fn commit_counter(&self, table: &str) -> Option<Arc<AtomicU64>> {
        self.commits.iter().find(|(name, _)| name == table).map(|(_, counter)| counter.clone())
    }

    /// Stops the upkeep and waits for it: a compaction in progress is abandoned (its new file,
    /// not committed, is deleted or left for vacuum), never half-committed.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for Upkeep {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Nice 10 for the calling thread (Linux sets priorities per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread's id; a failure only leaves the priority.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// One table the upkeep keeps: its handle once the table exists, and what it has seen.
struct Kept {
    name: String,
    table: Option<DeltaTable>,
    commits: Arc<AtomicU64>,
    seen: u64,
    looked: tokio::time::Instant,
}

/// The upkeep loop of [`spawn`].
async fn run(lake: &Lake, counters: Vec<(String, Arc<AtomicU64>)>, cfg: &UpkeepConfig, stop: &CancellationToken) {
    let started = tokio::time::Instant::now();
    let mut kept: Vec<Kept> = counters
        .into_iter()
        .map(|(name, commits)| Kept { name, table: None, commits, seen: 0, looked: started })
        .collect();
    let look_after = cfg.compact_files.map_or(u64::MAX, |n| (n as u64 / 4).max(1));
    let mut next_vacuum = cfg.vacuum_every.map(|every| started + every.min(FIRST_VACUUM));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(TICK) => {}
        }
        let vacuum_due = next_vacuum.is_some_and(|at| tokio::time::Instant::now() >= at);
        for t in &mut kept {
            if stop.is_cancelled() {
                return;
            }
            let commits = t.commits.load(Ordering::Relaxed);
            let compact_due = cfg.compact_files.is_some()
                && (commits.saturating_sub(t.seen) >= look_after || t.looked.elapsed() >= LOOK_ANYWAY);
            if !compact_due && !vacuum_due {
                continue;
            }
            t.seen = commits;
            t.looked = tokio::time::Instant::now();
            let Some(table) = opened(lake, &t.name, &mut t.table).await else { continue };
            if let Some(min_files) = cfg.compact_files.filter(|_| compact_due) {
                log_compacted(&t.name, compact(table, &t.name, cfg.target_file_size, min_files, stop).await);
            }
            if vacuum_due {
                log_vacuumed(&t.name, vacuum(table, &t.name, cfg.file_retention, false).await);
            }
        }
        if vacuum_due {
            next_vacuum = cfg.vacuum_every.map(|every| tokio::time::Instant::now() + every);
        }
    }
}

/// One round of upkeep of `tables`, in the caller's task: the end of a `stream --drain` run
/// (a job run now and then instead of followed) compacts the tables with more small files than
/// `compact_files` and, unless vacuum is off, vacuums them. Failures are logged, not returned:
/// the drained rows are committed either way.
pub async fn keep_once(lake: &Lake, tables: &[String], cfg: &UpkeepConfig, stop: &CancellationToken) {
    for name in tables {
        let mut table = None;
        let Some(table) = opened(lake, name, &mut table).await else { continue };
        if let Some(min_files) = cfg.compact_files {
            log_compacted(name, compact(table, name, cfg.target_file_size, min_files, stop).await);
        }
        if cfg.vacuum_every.is_some() && !stop.is_cancelled() {
            log_vacuumed(name, vacuum(table, name, cfg.file_retention, false).await);
        }
    }
}

fn log_compacted(name: &str, result: Result<Compacted, Error>) {
    match result {
        Ok(done) if done.files_removed > 0 => tracing::info!(
            table = name,
            version = done.version,
            files_removed = done.files_removed,
            files_added = done.files_added,
            bytes_removed = done.bytes_removed,
            bytes_added = done.bytes_added,
            ms = done.took.as_millis() as u64,
            "compacted small files"
        ),
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(table = name, error = %ErrorChain(&error), "compaction failed; trying again later")
        }
    }
}

fn log_vacuumed(name: &str, result: Result<Vacuumed, Error>) {
    match result {
        Ok(done) if !done.deleted.is_empty() => {
            tracing::info!(table = name, files_deleted = done.deleted.len(), "vacuumed")
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(table = name, error = %ErrorChain(&error), "vacuum failed; trying again later"),
    }
}

/// The handle of table `name`, opened on first use; `None` while the table does not exist yet
/// (the stream job creates it) or cannot be opened (logged; tried again next time).
async fn opened<'a>(lake: &Lake, name: &str, table: &'a mut Option<DeltaTable>) -> Option<&'a mut DeltaTable> {
    if table.is_none() {
        match open(lake, name).await {
            Ok(opened) => *table = Some(opened),
            Err(Error::NotATable { .. }) => return None,
            Err(error) => {
                tracing::warn!(table = name, error = %ErrorChain(&error), "cannot open the table for upkeep");
                return None;
            }
        }
    }
    table.as_mut()
}
