//! One Delta table the stream job appends to, with the stream positions committed in the same
//! Delta commit as the rows (`txn` actions), and periodic checkpoints.
//!
//! Owns the open [`DeltaTable`] handle (opened or created once, its state advanced by each commit
//! rather than re-read), the idempotent commit ([`DeltaSink::commit`]: after any failure it
//! re-reads the stored positions and commits only what the table still lacks; it may carry the
//! log's native positions in its commit info), reading those back
//! ([`DeltaSink::stored_meta`]) and checkpointing.
//! Opened by [`super::resume`] (and by [`super::progress`] to read positions back); fed by
//! [`super::round`] with cleaned rows or rejects; feeds the lake under `<lake>/delta/<table>`,
//! which any Delta reader can open.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::{DeltaTable, DeltaTableError};

use futures::TryStreamExt as _;
use tokio_util::sync::CancellationToken;

use super::Error;
use super::positions::{self, NativePosition};
use crate::backoff::Backoff;
use crate::lake::{Lake, Trouble};
use crate::observe;

/// Failed attempts at one commit before the job gives up (each after re-reading the table),
/// not counting those that failed because the lake was unreachable (see [`DeltaSink::commit`]).
const COMMIT_ATTEMPTS: u32 = 6;
/// How many of the newest commits [`DeltaSink::stored_meta`] looks through.
const NATIVE_HISTORY: usize = 100;

/// What a commit records besides rows and `txn` versions, in its commit info, atomically with
/// them.
#[derive(Debug, Clone, Default)]
pub(crate) struct CommitMeta {
    /// The native positions of the stream's partitions ([`positions::NATIVE_KEY`]).
    pub native: Option<serde_json::Value>,
    /// The identity of each stream's log ([`positions::IDENTITY_KEY`]), stream → identity.
    pub identities: BTreeMap<String, String>,
}

/// What a table's newest commits say of the logs it holds positions of.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoredMeta {
    /// The native positions of the newest commit that stored any, by app id.
    pub native: BTreeMap<String, NativePosition>,
    /// Per app id, the log identity of the newest commit that named one.
    pub identities: BTreeMap<String, String>,
}

/// What a table's newest commits (the last [`NATIVE_HISTORY`]) stored beside the rows: the native
/// positions of the newest that stored any, and per app id the newest log identity; empty when
/// none did. Shared with `pinpipe delta describe` ([`crate::upkeep::describe`]).
pub(crate) async fn stored_meta_of(table: &DeltaTable) -> Result<StoredMeta, DeltaTableError> {
    let mut stored = StoredMeta::default();
    let mut native_found = false;
    let mut history = table.history(Some(NATIVE_HISTORY));
    while let Some(info) = history.try_next().await? {
        if !native_found && let Some(value) = info.info.get(positions::NATIVE_KEY) {
            stored.native = positions::parse_native(value);
            native_found = true;
        }
        if let Some(value) = info.info.get(positions::IDENTITY_KEY) {
            for (app_id, identity) in positions::parse_identity(value) {
                stored.identities.entry(app_id).or_insert(identity);
            }
        }
    }
    Ok(stored)
}

/// The rows one stream partition contributes to a commit, and the position they bring the table
/// to.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    /// The stream the rows were read from (whose log identity the commit records).
    pub stream: String,
    /// The `txn` app id of the partition in this table.
    pub app_id: String,
    /// The `txn` version this commit sets: the last offset the commit accounts for (it may be
    /// past the last row's offset: records of other kinds in between are accounted too).
    pub last: i64,
    /// The rows, in the table's schema.
    pub rows: RecordBatch,
    /// The log offset of each row of `rows`.
    pub offsets: Vec<i64>,
}

/// What a commit added.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Committed {
    /// Rows written (after dropping those the table already held).
    pub rows: usize,
    /// The table version created, `None` when the table already held everything.
    pub version: Option<i64>,
}

/// An open Delta table of the stream job.
pub(crate) struct DeltaSink {
    /// The table's name under `<lake>/delta/`.
    pub name: String,
    table: DeltaTable,
    lake: Lake,
    checkpoint_every: u64,
    /// How long a commit waits out a full or unreachable lake before giving up; `None`: for as
    /// long as it lasts.
    lake_timeout: Option<std::time::Duration>,
    /// Bumped after each commit: tells the table's upkeep ([`crate::upkeep`]) when to look.
    commits: Option<Arc<AtomicU64>>,
}

impl DeltaSink {
    /// [`DeltaSink::open`], waiting out a lake that is full or unreachable (with backoff, until
    /// `shutdown`, or `lake_timeout` when given), and with commits that wait it out as long.
    pub async fn open_waiting(
        lake: &Lake,
        name: &str,
        schema: SchemaRef,
        checkpoint_every: u64,
        lake_timeout: Option<std::time::Duration>,
        shutdown: &CancellationToken,
    ) -> Result<DeltaSink, Error> {
        let mut backoff = Backoff::default();
        let mut since = None;
        loop {
            let trouble = if lake.is_nearly_full() {
                Trouble::Full
            } else {
                match DeltaSink::open(lake, name, schema.clone(), checkpoint_every).await {
                    Ok(mut sink) => {
                        sink.lake_timeout = lake_timeout;
                        return Ok(sink);
                    }
                    Err(e) => match Trouble::of(&e) {
                        Some(trouble) => trouble,
                        None => return Err(e),
                    },
                }
            };
            wait_out(lake, name, trouble, &mut since, lake_timeout, &mut backoff, shutdown, None).await?;
        }
    }

    /// Opens `<lake>/delta/<name>`, creating it with `schema` if it does not exist yet.
    pub async fn open(lake: &Lake, name: &str, schema: SchemaRef, checkpoint_every: u64) -> Result<DeltaSink, Error> {
        let url = lake.delta_url(name);
        let table = lake
            .open_or_create_table(name, &schema)
            .await
            .map_err(|source| Error::Open { url, source: Box::new(source) })?;
        Ok(DeltaSink {
            name: name.to_string(),
            table,
            lake: lake.clone(),
            checkpoint_every: checkpoint_every.max(1),
            lake_timeout: None,
            commits: None,
        })
    }

    /// Counts this handle's commits in `counter` from now on (`None`: stops counting).
    pub fn count_commits(&mut self, counter: Option<Arc<AtomicU64>>) {
        self.commits = counter;
    }

    /// Loads the commits other writers made since this handle last looked.
    pub async fn refresh(&mut self) -> Result<(), Error> {
        self.table.update_state().await.map_err(|source| self.positions_err(source))
    }

    /// The table version this handle is at.
    pub fn version(&self) -> i64 {
        self.table.version().map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
    }

    /// The `txn` version stored for `app_id` in the table state this handle holds.
    pub async fn stored_version(&self, app_id: &str) -> Result<Option<i64>, Error> {
        let snapshot = self.table.snapshot().map_err(|source| self.positions_err(source))?;
        snapshot
            .transaction_version(self.table.log_store().as_ref(), app_id)
            .await
            .map_err(|source| self.positions_err(source))
    }

    /// What the newest commits (the last [`NATIVE_HISTORY`]) stored beside the rows: the native
    /// positions of the newest that stored any, and per stream the newest log identity; empty
    /// when none did (logs without native positions, a new table, a table from before
    /// identities).
    pub async fn stored_meta(&self) -> Result<StoredMeta, Error> {
        stored_meta_of(&self.table).await.map_err(|source| self.positions_err(source))
    }

    fn positions_err(&self, source: DeltaTableError) -> Error {
        Error::Positions { table: self.name.clone(), version: self.version(), source: Box::new(source) }
    }

    /// Appends `parts` in one Delta commit that also sets each part's `txn` version, exactly
    /// once: if the commit fails for any reason (a concurrent writer, a timeout after the write
    /// actually landed, storage trouble), the table state is re-read, every part drops the rows
    /// at or below the version now stored for its app id (dropping the whole part when that
    /// version reaches its `last`), and the rest is committed again. A stored version counts only
    /// when the newest log identity stored for the part's app id is the one this commit records
    /// (else it is an earlier log's). `meta` goes into the commit info, atomically with the rows.
    ///
    /// While the lake is unreachable (timeouts, refused connections, 5xx answers) or its disk is
    /// full ([`Trouble`]; a local lake with less than [`crate::lake::MIN_FREE_BYTES`] free is not
    /// even tried) the commit is retried with [`Backoff`] (up to 5 s apart) for as long as that
    /// lasts — until `shutdown` ([`Error::Interrupted`]) or the lake timeout
    /// ([`Error::LakeUnwritable`]); any other failure gives up after [`COMMIT_ATTEMPTS`]. Giving
    /// up loses nothing: the round was not committed, so the next run reads it again.
    pub async fn commit(
        &mut self,
        mut parts: Vec<Part>,
        meta: &CommitMeta,
        shutdown: &CancellationToken,
    ) -> Result<Committed, Error> {
        let mut backoff = Backoff::default();
        let mut attempt = 1;
        let mut failures = 0;
        let mut troubled_since = None;
        'attempt: loop {
            if parts.is_empty() {
                return Ok(Committed::default());
            }
            if self.lake.is_nearly_full() {
                // Nothing is written: wait for space, then try the same commit.
                let (lake, timeout) = (self.lake.clone(), self.lake_timeout);
                wait_out(&lake, &self.name, Trouble::Full, &mut troubled_since, timeout, &mut backoff, shutdown, None)
                    .await?;
                continue;
            }
            let schema = parts[0].rows.schema();
            let batches: Vec<&RecordBatch> = parts.iter().map(|p| &p.rows).collect();
            let rows =
                concat_batches(&schema, batches).map_err(|source| Error::Arrow { table: self.name.clone(), source })?;
            let txns = parts.iter().map(|p| Transaction::new(&p.app_id, p.last)).collect();
            let mut props =
                CommitProperties::default().with_application_transactions(txns).with_create_checkpoint(false);
            let mut info = Vec::new();
            if let Some(native) = &meta.native {
                info.push((positions::NATIVE_KEY.to_string(), native.clone()));
            }
            let app_ids = parts.iter().map(|p| (p.app_id.as_str(), meta.identities.get(&p.stream).map(String::as_str)));
            if let Some(identities) = positions::identity_metadata(app_ids) {
                info.push((positions::IDENTITY_KEY.to_string(), identities));
            }
            if !info.is_empty() {
                props = props.with_metadata(info);
            }
            let n = rows.num_rows();
            let started = std::time::Instant::now();
            let before = self.version();
            match self.table.clone().write([rows]).with_commit_properties(props).await {
                Ok(table) => {
                    self.table = table;
                    let version = self.version();
                    if let Some(commits) = &self.commits {
                        commits.fetch_add(1, Ordering::Relaxed);
                    }
                    if troubled_since.is_some() {
                        tracing::info!(table = %self.name, version, "the lake takes commits again");
                    }
                    observe::lake_ok();
                    tracing::debug!(table = %self.name, version, rows = n, ms = started.elapsed().as_millis() as u64, "Delta commit");
                    if attempt > 1 {
                        tracing::info!(table = %self.name, version, attempt, "Delta commit succeeded after retrying");
                    }
                    self.checkpoint_if_due(before, version).await;
                    return Ok(Committed { rows: n, version: Some(version) });
                }
                Err(source) => match Trouble::of(&source) {
                    Some(trouble) => {
                        let (lake, timeout) = (self.lake.clone(), self.lake_timeout);
                        let name = self.name.clone();
                        wait_out(
                            &lake,
                            &name,
                            trouble,
                            &mut troubled_since,
                            timeout,
                            &mut backoff,
                            shutdown,
                            Some(&source),
                        )
                        .await?;
                    }
                    None => {
                        failures += 1;
                        if failures >= COMMIT_ATTEMPTS {
                            return Err(Error::Commit {
                                table: self.name.clone(),
                                version: self.version(),
                                attempts: attempt,
                                source: Box::new(source),
                            });
                        }
                        tracing::warn!(
                            table = %self.name, version = self.version(), attempt,
                            retry_in_ms = backoff.next_wait().as_millis() as u64, error = %source,
                            "Delta commit failed; re-reading the table before retrying"
                        );
                        backoff.pause(shutdown).await;
                    }
                },
            }
            attempt += 1;
            // Whether the failed commit in fact landed (its answer lost), or another writer
            // committed, shows in the stored versions: re-read them. If the lake does not answer,
            // the next attempt fails the same way and comes back here.
            if let Err(error) = self.table.update_state().await {
                tracing::warn!(table = %self.name, %error, "cannot re-read the Delta table");
                continue;
            }
            let stored_identities = match self.stored_meta().await {
                Ok(stored) => stored.identities,
                Err(error) => {
                    tracing::warn!(table = %self.name, %error, "cannot read the stored log identities");
                    continue 'attempt;
                }
            };
            let mut stored = Vec::with_capacity(parts.len());
            for part in &parts {
                let ours = positions::same_log(
                    stored_identities.get(&part.app_id).map(String::as_str),
                    meta.identities.get(&part.stream).map(String::as_str),
                );
                match self.stored_version(&part.app_id).await {
                    Ok(version) => stored.push(version.filter(|_| ours)),
                    Err(error) => {
                        tracing::warn!(table = %self.name, %error, "cannot read the stored stream positions");
                        continue 'attempt;
                    }
                }
            }
            let mut still = Vec::with_capacity(parts.len());
            for (mut part, stored) in parts.into_iter().zip(stored) {
                match stored {
                    Some(stored) if stored >= part.last => {}
                    Some(stored) => {
                        part.drop_through(stored, &self.name)?;
                        still.push(part);
                    }
                    None => still.push(part),
                }
            }
            parts = still;
        }
    }

    /// Writes a Delta checkpoint when the commit that took the table from version `before` (as
    /// this handle saw it) to `version` passed a multiple of `checkpoint_every` — other writers'
    /// commits in between (compaction's among them) may have taken the multiple itself — so
    /// readers replay at most about that many commit files; then deletes the log files older
    /// than the table's `delta.logRetentionDuration` (30 days unless set) that the checkpoint
    /// made unnecessary. A failed checkpoint or cleanup only costs readers time: it is logged,
    /// not fatal.
    async fn checkpoint_if_due(&self, before: i64, version: i64) {
        if !checkpoint_due(before, version, self.checkpoint_every) {
            return;
        }
        match deltalake::checkpoints::create_checkpoint(&self.table, None).await {
            Ok(()) => tracing::debug!(table = %self.name, version, "Delta checkpoint written"),
            Err(error) => {
                tracing::warn!(table = %self.name, version, %error, "Delta checkpoint failed");
                return;
            }
        }
        if let Err(error) = deltalake::checkpoints::cleanup_metadata(&self.table, None).await {
            tracing::warn!(table = %self.name, version, %error, "cleaning up expired Delta log files failed");
        }
    }
}

/// Waits out `trouble` with the lake before the next try: counts it for `/metrics`, says why in
/// the log, and sleeps the next backoff. An error when `shutdown` came first
/// ([`Error::Interrupted`]) or the trouble has lasted `limit` ([`Error::LakeUnwritable`]).
#[allow(clippy::too_many_arguments)]
async fn wait_out(
    lake: &Lake,
    table: &str,
    trouble: Trouble,
    since: &mut Option<std::time::Instant>,
    limit: Option<std::time::Duration>,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
    error: Option<&DeltaTableError>,
) -> Result<(), Error> {
    observe::lake_trouble(trouble);
    let started = *since.get_or_insert_with(std::time::Instant::now);
    if limit.is_some_and(|limit| started.elapsed() >= limit) {
        return Err(Error::LakeUnwritable { table: table.to_string(), trouble, waited: started.elapsed() });
    }
    if shutdown.is_cancelled() {
        return Err(Error::Interrupted { table: table.to_string() });
    }
    tracing::warn!(
        table, %trouble, free_bytes = lake.free_bytes(), waiting_s = started.elapsed().as_secs(),
        retry_in_ms = backoff.next_wait().as_millis() as u64, error = error.map(|e| e.to_string()),
        "the lake cannot take writes; waiting for it"
    );
    if !backoff.pause(shutdown).await {
        return Err(Error::Interrupted { table: table.to_string() });
    }
    Ok(())
}

/// Whether a commit that took a table from version `before` to `version` passed a multiple of
/// `every` (version 0, the table's creation, needs no checkpoint).
fn checkpoint_due(before: i64, version: i64, every: u64) -> bool {
    let every = i64::try_from(every.max(1)).unwrap_or(i64::MAX);
    version > 0 && version.div_euclid(every) > before.max(0).div_euclid(every)
}

impl Part {
    /// Drops the rows at or below `stored`, the version the table holds for this part's app id.
    fn drop_through(&mut self, stored: i64, table: &str) -> Result<(), Error> {
        let keep = BooleanArray::from_iter(self.offsets.iter().map(|&o| Some(o > stored)));
        self.rows = filter_record_batch(&self.rows, &keep)
            .map_err(|source| Error::Arrow { table: table.to_string(), source })?;
        self.offsets.retain(|&o| o > stored);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::kernel::transaction::TransactionError;

    fn generic() -> object_store::Error {
        object_store::Error::Generic { store: "S3", source: "error sending request: operation timed out".into() }
    }

    #[test]
    fn a_checkpoint_is_due_when_a_commit_passes_a_multiple_even_if_another_writer_took_it() {
        assert!(checkpoint_due(99, 100, 100));
        assert!(checkpoint_due(99, 101, 100), "a compaction took version 100");
        assert!(!checkpoint_due(100, 101, 100));
        assert!(!checkpoint_due(-1, 0, 100), "the table's creation");
        assert!(checkpoint_due(2, 3, 1));
        assert!(!checkpoint_due(0, 99, 100));
    }

    #[test]
    fn transport_failures_are_lake_trouble_and_conflicts_are_not() {
        let trouble = |e: &DeltaTableError| Trouble::of(e);
        assert_eq!(trouble(&DeltaTableError::ObjectStore { source: generic() }), Some(Trouble::Unreachable));
        let in_commit = DeltaTableError::from(TransactionError::ObjectStore { source: generic() });
        assert_eq!(trouble(&in_commit), Some(Trouble::Unreachable), "{in_commit:?}");
        let missing = object_store::Error::NotFound { path: "t/_delta_log/1.json".into(), source: "404".into() };
        assert_eq!(trouble(&DeltaTableError::ObjectStore { source: missing }), None);
        assert_eq!(trouble(&DeltaTableError::from(TransactionError::VersionAlreadyExists(3))), None);
        assert_eq!(trouble(&DeltaTableError::NotATable("s3://b/t".into())), None);
        // A full disk as the parquet writer reports it: through an `io::Error` that wraps the
        // object store's error.
        let full = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from_raw_os_error(libc::ENOSPC)),
        };
        let parquet = deltalake::parquet::errors::ParquetError::External(Box::new(std::io::Error::other(full)));
        assert_eq!(trouble(&DeltaTableError::Parquet { source: parquet }), Some(Trouble::Full));
    }
}
