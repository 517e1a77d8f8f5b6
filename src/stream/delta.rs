//! One Delta table the stream job appends to, with the stream positions committed in the same
//! Delta commit as the rows (`txn` actions), and periodic checkpoints.
//!
//! Owns the open [`DeltaTable`] handle (opened or created once, its state advanced by each commit
//! rather than re-read), the idempotent commit ([`DeltaSink::commit`]: after any failure it
//! re-reads the stored positions and commits only what the table still lacks; it may carry the
//! log's native positions in its commit info), reading those back
//! ([`DeltaSink::native_positions`]) and checkpointing.
//! Fed by the micro-batch loop in [`super`] with cleaned rows or rejects; feeds the lake under
//! `<lake>/delta/<table>`, which any Delta reader can open.

use std::collections::BTreeMap;

use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructType, Transaction};
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};

use futures::TryStreamExt as _;
use tokio_util::sync::CancellationToken;

use super::Error;
use super::positions::{self, NativePosition};
use crate::backoff::Backoff;
use crate::lake::Lake;

/// Failed attempts at one commit before the job gives up (each after re-reading the table),
/// not counting those that failed because the lake was unreachable (see [`DeltaSink::commit`]).
const COMMIT_ATTEMPTS: u32 = 6;
/// How many of the newest commits [`DeltaSink::native_positions`] looks through.
const NATIVE_HISTORY: usize = 100;

/// The rows one stream partition contributes to a commit, and the position they bring the table
/// to.
#[derive(Debug, Clone)]
pub(crate) struct Part {
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
    checkpoint_every: u64,
}

impl DeltaSink {
    /// Opens `<lake>/delta/<name>`, creating it with `schema` if it does not exist yet.
    pub async fn open(lake: &Lake, name: &str, schema: SchemaRef, checkpoint_every: u64) -> Result<DeltaSink, Error> {
        let url = lake.url_of(&format!("delta/{name}"));
        let open_err = |source| Error::Open { url: url.clone(), source: Box::new(source) };
        if let Some(dir) = url.strip_prefix("file://") {
            // deltalake wants a local table's folder to exist before it opens it.
            std::fs::create_dir_all(dir).map_err(|e| open_err(DeltaTableError::Io { source: e }))?;
        }
        let parsed = url::Url::parse(&url).map_err(|source| Error::Url { url: url.clone(), source })?;
        let mut table = DeltaTableBuilder::from_url(parsed)
            .map_err(open_err)?
            .with_storage_options(lake.storage_options().clone())
            .build()
            .map_err(open_err)?;
        // Asking first keeps the kernel from logging a failed snapshot of a table not there yet.
        let exists = table.log_store().is_delta_table_location().await.map_err(open_err)?;
        let loaded = if exists { table.load().await } else { Err(DeltaTableError::NotATable(url.clone())) };
        match loaded {
            Ok(()) => {}
            Err(DeltaTableError::NotATable(_)) => {
                let columns: StructType = schema
                    .as_ref()
                    .try_into_kernel()
                    .map_err(|source| Error::Arrow { table: name.to_string(), source })?;
                let created = table
                    .create()
                    .with_table_name(name)
                    .with_columns(columns.fields().cloned())
                    .with_save_mode(SaveMode::Ignore)
                    .await;
                match created {
                    Ok(t) => table = t,
                    // Another process may have created it at the same moment: use theirs.
                    Err(error) => {
                        tracing::debug!(table = name, %error, "creating the Delta table failed; loading it");
                        table.load().await.map_err(open_err)?
                    }
                }
            }
            Err(e) => return Err(open_err(e)),
        }
        Ok(DeltaSink { name: name.to_string(), table, checkpoint_every: checkpoint_every.max(1) })
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

    /// The native positions stored by the newest commit (of the last [`NATIVE_HISTORY`]) that
    /// stored any, by app id; empty when none did (logs without native positions, a new table).
    pub async fn native_positions(&self) -> Result<BTreeMap<String, NativePosition>, Error> {
        let mut history = self.table.history(Some(NATIVE_HISTORY));
        while let Some(info) = history.try_next().await.map_err(|source| self.positions_err(source))? {
            if let Some(value) = info.info.get(positions::NATIVE_KEY) {
                return Ok(positions::parse_native(value));
            }
        }
        Ok(BTreeMap::new())
    }

    fn positions_err(&self, source: DeltaTableError) -> Error {
        Error::Positions { table: self.name.clone(), version: self.version(), source: Box::new(source) }
    }

    /// Appends `parts` in one Delta commit that also sets each part's `txn` version, exactly
    /// once: if the commit fails for any reason (a concurrent writer, a timeout after the write
    /// actually landed, storage trouble), the table state is re-read, every part drops the rows
    /// at or below the version now stored for its app id (dropping the whole part when that
    /// version reaches its `last`), and the rest is committed again. `native`, when given, goes
    /// into the commit info under [`positions::NATIVE_KEY`], atomically with the rows.
    ///
    /// While the lake is unreachable (timeouts, refused connections, 5xx answers: see
    /// [`lake_unavailable`]) the commit is retried with [`Backoff`] (up to 5 s apart) for
    /// as long as the outage lasts, until `shutdown`; any other failure gives up after
    /// [`COMMIT_ATTEMPTS`]. Giving up loses nothing: the round was not committed, so the next run
    /// reads it again.
    pub async fn commit(
        &mut self,
        mut parts: Vec<Part>,
        native: Option<serde_json::Value>,
        shutdown: &CancellationToken,
    ) -> Result<Committed, Error> {
        let mut backoff = Backoff::default();
        let mut attempt = 1;
        let mut failures = 0;
        'attempt: loop {
            if parts.is_empty() {
                return Ok(Committed::default());
            }
            let schema = parts[0].rows.schema();
            let batches: Vec<&RecordBatch> = parts.iter().map(|p| &p.rows).collect();
            let rows =
                concat_batches(&schema, batches).map_err(|source| Error::Arrow { table: self.name.clone(), source })?;
            let txns = parts.iter().map(|p| Transaction::new(&p.app_id, p.last)).collect();
            let mut props =
                CommitProperties::default().with_application_transactions(txns).with_create_checkpoint(false);
            if let Some(native) = &native {
                props = props.with_metadata([(positions::NATIVE_KEY.to_string(), native.clone())]);
            }
            let n = rows.num_rows();
            let started = std::time::Instant::now();
            match self.table.clone().write([rows]).with_commit_properties(props).await {
                Ok(table) => {
                    self.table = table;
                    let version = self.version();
                    tracing::debug!(table = %self.name, version, rows = n, ms = started.elapsed().as_millis() as u64, "Delta commit");
                    if attempt > 1 {
                        tracing::info!(table = %self.name, version, attempt, "Delta commit succeeded after retrying");
                    }
                    self.checkpoint_if_due(version).await;
                    return Ok(Committed { rows: n, version: Some(version) });
                }
                Err(source) => {
                    let unavailable = lake_unavailable(&source);
                    if !unavailable {
                        failures += 1;
                    }
                    if failures >= COMMIT_ATTEMPTS || (unavailable && shutdown.is_cancelled()) {
                        return Err(Error::Commit {
                            table: self.name.clone(),
                            version: self.version(),
                            attempts: attempt,
                            source: Box::new(source),
                        });
                    }
                    tracing::warn!(
                        table = %self.name, version = self.version(), attempt, lake_unavailable = unavailable,
                        retry_in_ms = backoff.next_wait().as_millis() as u64, error = %source,
                        "Delta commit failed; re-reading the table before retrying"
                    );
                }
            }
            backoff.pause(shutdown).await;
            attempt += 1;
            // Whether the failed commit in fact landed (its answer lost), or another writer
            // committed, shows in the stored versions: re-read them. If the lake does not answer,
            // the next attempt fails the same way and comes back here.
            if let Err(error) = self.table.update_state().await {
                tracing::warn!(table = %self.name, %error, "cannot re-read the Delta table");
                continue;
            }
            let mut stored = Vec::with_capacity(parts.len());
            for part in &parts {
                match self.stored_version(&part.app_id).await {
                    Ok(version) => stored.push(version),
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

    /// Writes a Delta checkpoint when `version` is a multiple of `checkpoint_every`, so readers
    /// replay at most that many commit files, then deletes the log files older than the table's
    /// `delta.logRetentionDuration` (30 days unless set) that the checkpoint made unnecessary.
    /// A failed checkpoint or cleanup only costs readers time: it is logged, not fatal.
    async fn checkpoint_if_due(&self, version: i64) {
        if version <= 0 || !version.unsigned_abs().is_multiple_of(self.checkpoint_every) {
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

/// Whether `error` is the lake being unreachable rather than the commit being wrong: somewhere in
/// its causes is an object store request that failed in transport (timeout, refused or reset
/// connection) or with a server error, after the object store's own retries — the errors
/// `object_store` reports as `Generic`. A commit conflict, a missing table or a refused
/// credential is not.
fn lake_unavailable(error: &DeltaTableError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(e) = e.downcast_ref::<object_store::Error>() {
            return matches!(e, object_store::Error::Generic { .. });
        }
        cause = e.source();
    }
    false
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
    fn transport_failures_are_the_lake_being_unavailable_and_conflicts_are_not() {
        assert!(lake_unavailable(&DeltaTableError::ObjectStore { source: generic() }));
        let in_commit = DeltaTableError::from(TransactionError::ObjectStore { source: generic() });
        assert!(lake_unavailable(&in_commit), "{in_commit:?}");
        let missing = object_store::Error::NotFound { path: "t/_delta_log/1.json".into(), source: "404".into() };
        assert!(!lake_unavailable(&DeltaTableError::ObjectStore { source: missing }));
        assert!(!lake_unavailable(&DeltaTableError::from(TransactionError::VersionAlreadyExists(3))));
        assert!(!lake_unavailable(&DeltaTableError::NotATable("s3://b/t".into())));
    }
}
