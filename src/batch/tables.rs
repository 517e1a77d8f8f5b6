//! The batch job's Delta tables in the lake: `<lake>/delta/<id>_batch_pin`, `_batch_geo`,
//! `_batch_user` (SPEC §6's cleaned tables, one row per `ind`) and `<id>_batch_rejects` (every
//! record no run could read, with its source and reason), readable by any Delta reader.
//!
//! Owns opening (creating) them, what they hold already (the last run committed, the `ind`s, the
//! rows and files), the writer a run's new rows stream through, and the commit that adds them:
//! each commit carries the run's number as the `txn` version of app id `pinpipe-batch`, in the
//! same Delta commit as the rows, so a table holds a run's rows exactly when it holds its number.
//! Two runs committing the same run to a table conflict on that app id (delta-rs compares the
//! `txn` app ids of concurrent commits): the loser finds the run there and drops its files.
//!
//! Fed by [`super::read`] (the kept rows and the rejects of a plan's files); read by
//! [`super::queries`] (the files of the current versions).

use std::sync::Arc;

use datafusion::arrow::array::{AsArray as _, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, Schema, SchemaRef};
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow as _;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::parquet::errors::ParquetError;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter as _, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt as _;
use object_store::ObjectStoreExt as _;
use roaring::RoaringTreemap;

use super::Error;
use crate::clean::Table;
use crate::contract::{self, BATCH_APP_ID};
use crate::lake::Lake;

/// Bytes of Parquet after which the writer starts a new data file.
const TARGET_FILE_BYTES: u64 = 256 << 20;
/// Tries at one commit (each after re-reading the table) before the run gives up.
const COMMIT_ATTEMPTS: u32 = 6;

/// Which batch table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchTable {
    /// The cleaned table of pin, geo or user.
    Clean(Table),
    /// The rejects of all three.
    Rejects,
}

impl BatchTable {
    /// The four, in the order a run commits them.
    pub const ALL: [BatchTable; 4] = [
        BatchTable::Clean(Table::Pin),
        BatchTable::Clean(Table::Geo),
        BatchTable::Clean(Table::User),
        BatchTable::Rejects,
    ];

    /// The table's name under `<lake>/delta/`.
    pub fn name(self, id: &str) -> String {
        match self {
            BatchTable::Clean(table) => contract::batch_table(id, table),
            BatchTable::Rejects => contract::batch_rejects_table(id),
        }
    }

    /// The table's columns: SPEC §6's for a cleaned table, [`super::rejects_schema`] for the
    /// rejects.
    pub fn schema(self) -> SchemaRef {
        match self {
            BatchTable::Clean(table) => crate::clean::cleaned_schema(table),
            BatchTable::Rejects => super::rejects_schema(),
        }
    }
}

/// One open batch table.
pub(super) struct Target {
    pub name: String,
    table: DeltaTable,
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Committed {
    /// The table now holds the run: this commit's version.
    Version(i64),
    /// Another process committed the run first; this one's files were deleted.
    AlreadyThere,
}

impl Target {
    /// Opens `which` of pipeline `id`, creating it if needed.
    pub async fn open(lake: &Lake, id: &str, which: BatchTable) -> Result<Target, Error> {
        let name = which.name(id);
        let table = lake
            .open_or_create_table(&name, &which.schema())
            .await
            .map_err(|source| Error::Table { table: name.clone(), source: Box::new(source) })?;
        Ok(Target { name, table })
    }

    fn err(&self, source: DeltaTableError) -> Error {
        Error::Table { table: self.name.clone(), source: Box::new(source) }
    }

    /// The table version this handle holds.
    pub fn version(&self) -> i64 {
        self.table.version().map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
    }

    /// The last run whose rows the table holds (`None`: no run yet).
    pub async fn committed_run(&self) -> Result<Option<u64>, Error> {
        let snapshot = self.table.snapshot().map_err(|e| self.err(e))?;
        let version = snapshot
            .transaction_version(self.table.log_store().as_ref(), BATCH_APP_ID)
            .await
            .map_err(|e| self.err(e))?;
        Ok(version.and_then(|v| u64::try_from(v).ok()))
    }

    /// Loads the commits other processes made since this handle last looked.
    pub async fn refresh(&mut self) -> Result<(), Error> {
        self.table.update_state().await.map_err(|e| self.err(e))
    }

    /// Rows in the table (from the files' statistics).
    pub fn rows(&self) -> Result<u64, Error> {
        let snapshot = self.table.snapshot().map_err(|e| self.err(e))?;
        Ok(snapshot.log_data().iter().filter_map(|f| f.num_records()).map(|n| n as u64).sum())
    }

    /// The URL of every data file of the current version, and the table's Arrow schema.
    pub fn files(&self) -> Result<(SchemaRef, Vec<String>), Error> {
        let snapshot = self.table.snapshot().map_err(|e| self.err(e))?;
        let schema: Schema = snapshot.schema().as_ref().try_into_arrow().map_err(|e| self.err(e.into()))?;
        let root = self.table.table_url().as_str().trim_end_matches('/').to_string();
        let files = snapshot.log_data().iter().map(|f| format!("{root}/{}", f.object_store_path())).collect();
        Ok((Arc::new(schema), files))
    }

    /// Every `ind` the table holds (a cleaned table's first column), read from its data files
    /// (only that column: DataFusion reads the column chunks it needs).
    pub async fn inds(&self, lake: &Lake) -> Result<RoaringTreemap, Error> {
        let (schema, files) = self.files()?;
        let ctx = super::queries::session(lake);
        let failed = |source| Error::Query { query: "ind", source };
        let provider = super::queries::provider(&ctx, &schema, &files).map_err(failed)?;
        let frame = ctx.read_table(provider).map_err(failed)?;
        let key = schema.field(0).name().clone();
        let mut batches =
            frame.select_columns(&[key.as_str()]).map_err(failed)?.execute_stream().await.map_err(failed)?;
        let mut inds = RoaringTreemap::new();
        while let Some(batch) = batches.try_next().await.map_err(failed)? {
            let column = batch.column(0).as_primitive::<Int64Type>();
            // `as u64`: the same bijection `read` uses for the `ind`s it keeps.
            inds.extend(column.iter().flatten().map(|ind| ind as u64));
        }
        Ok(inds)
    }

    /// The `ind`s the table holds: from the cache the last run saved ([`Target::save_inds`]) when
    /// it is of the run the table holds, else read from the table ([`Target::inds`]).
    pub async fn held_inds(&self, lake: &Lake) -> Result<RoaringTreemap, Error> {
        if let Some(run) = self.committed_run().await? {
            let key = lake.path(&self.inds_key());
            if let Ok(got) = lake.store.get(&key).await
                && let Ok(bytes) = got.bytes().await
                && let Some((header, body)) = bytes.split_first_chunk::<8>()
                && u64::from_le_bytes(*header) == run
                && let Ok(inds) = RoaringTreemap::deserialize_from(body)
            {
                return Ok(inds);
            }
        }
        self.inds(lake).await
    }

    /// Saves `inds`, the `ind`s the table holds as of run `run`, for the next run's
    /// [`Target::held_inds`] (one object per table, replaced: about a bit per `ind`). Best effort:
    /// without it the next run reads the table's `ind` column.
    pub async fn save_inds(&self, lake: &Lake, run: u64, inds: &RoaringTreemap) {
        let mut body = run.to_le_bytes().to_vec();
        if inds.serialize_into(&mut body).is_err() {
            return;
        }
        if let Err(error) = lake.store.put(&lake.path(&self.inds_key()), body.into()).await {
            tracing::debug!(table = %self.name, %error, "cannot save the ind's held");
        }
    }

    /// `batch/inds/<table>.roaring` under the lake: the cache of the `ind`s a table holds.
    fn inds_key(&self) -> String {
        format!("batch/inds/{}.roaring", self.name)
    }

    /// A writer of new data files into the table (nothing is committed until [`Target::commit`]).
    pub fn writer(&self, properties: WriterProperties) -> Result<RecordBatchWriter, Error> {
        Ok(RecordBatchWriter::for_table(&self.table)
            .map_err(|e| self.err(e))?
            .with_writer_properties(properties)
            .with_target_file_size(TARGET_FILE_BYTES))
    }

    /// Writes `batches` into new data files (for the small tables: the rejects).
    pub async fn write_all(&self, batches: Vec<RecordBatch>) -> Result<Vec<Add>, Error> {
        let mut writer = self.writer(WriterProperties::default())?;
        for batch in batches.into_iter().filter(|b| b.num_rows() > 0) {
            writer.write(batch).await.map_err(|e| self.err(e))?;
        }
        writer.flush().await.map_err(|e| self.err(e))
    }

    /// Commits `adds` as run `run` (replacing every file of the table when `overwrite`), with
    /// `info` in the commit info. If the table already holds the run (another process committed
    /// it, or a try whose answer was lost did land), `adds` are deleted and nothing is committed.
    /// A commit that loses a race is tried again against the new version, a few times.
    pub async fn commit(
        &mut self,
        run: u64,
        adds: Vec<Add>,
        overwrite: bool,
        info: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Committed, Error> {
        let run_version = i64::try_from(run).unwrap_or(i64::MAX);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let snapshot = self.table.snapshot().map_err(|e| self.err(e))?;
            if self.committed_run().await?.is_some_and(|done| done >= run) {
                let ours: std::collections::HashSet<&str> = adds.iter().map(|a| a.path.as_str()).collect();
                if snapshot.log_data().iter().any(|f| ours.contains(f.path().as_ref())) {
                    // A try whose answer was lost did land.
                    return Ok(Committed::Version(self.version()));
                }
                self.discard(&adds).await;
                return Ok(Committed::AlreadyThere);
            }
            let mut actions: Vec<Action> = adds.iter().cloned().map(Action::Add).collect();
            if overwrite {
                actions.extend(snapshot.log_data().iter().map(|f| Action::Remove(f.remove_action(true))));
            }
            actions.push(Action::Txn(Transaction::new(BATCH_APP_ID, run_version)));
            let operation = DeltaOperation::Write {
                mode: if overwrite { SaveMode::Overwrite } else { SaveMode::Append },
                partition_by: None,
                predicate: None,
            };
            let properties = CommitProperties::default().with_metadata(info.clone()).with_create_checkpoint(false);
            let committed = CommitBuilder::from(properties)
                .with_actions(actions)
                // No rebase: the next try re-reads the table and decides again.
                .with_max_retries(0)
                .build(Some(snapshot), self.table.log_store(), operation)
                .await;
            let error = match committed {
                Ok(finalized) => {
                    let version = i64::try_from(finalized.version()).unwrap_or(i64::MAX);
                    self.refresh().await?;
                    self.checkpoint_if_due(version).await;
                    return Ok(Committed::Version(version));
                }
                Err(error) => error,
            };
            if attempt >= COMMIT_ATTEMPTS {
                // The files stay: a try whose answer was lost may have committed them.
                return Err(Error::Commit { table: self.name.clone(), run, source: Box::new(error) });
            }
            tracing::debug!(table = %self.name, run, attempt, %error, "batch commit failed; re-reading the table");
            tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
            self.refresh().await?;
        }
    }

    /// A checkpoint every ten versions, so readers replay few commit files.
    async fn checkpoint_if_due(&self, version: i64) {
        if version == 0 || version % 10 != 0 {
            return;
        }
        if let Err(error) = deltalake::checkpoints::create_checkpoint(&self.table, None).await {
            tracing::warn!(table = %self.name, version, %error, "Delta checkpoint failed");
        }
    }

    /// Deletes data files that were written but will not be committed (best effort: vacuum
    /// removes what is left).
    pub async fn discard(&self, adds: &[Add]) {
        let store = self.table.log_store().object_store(None);
        for add in adds {
            if let Err(error) = store.delete(&add.path.as_str().into()).await {
                tracing::debug!(table = %self.name, path = %add.path, %error, "cannot delete an uncommitted file");
            }
        }
    }
}

/// Every row of batch table `which` of pipeline `id` as it is now, with the table's Arrow schema:
/// data files in the order they were added (commit time, then name), rows in file order — for
/// a table one run wrote, the order its rows were received in. For readers and tests.
pub async fn read_table(lake: &Lake, id: &str, which: BatchTable) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    let target = Target::open(lake, id, which).await?;
    let snapshot = target.table.snapshot().map_err(|e| target.err(e))?;
    let schema: Schema = snapshot.schema().as_ref().try_into_arrow().map_err(|e| target.err(e.into()))?;
    let mut files: Vec<_> =
        snapshot.log_data().iter().map(|f| (f.modification_time(), f.object_store_path(), ())).collect();
    files.sort();
    let store = target.table.log_store().object_store(None);
    let mut batches = Vec::new();
    for (_, path, _) in files {
        let read = |source| Error::ReadTable { table: target.name.clone(), path: path.to_string(), source };
        let external = |e: object_store::Error| read(ParquetError::External(Box::new(e)));
        let bytes = store.get(&path).await.map_err(external)?.bytes().await.map_err(external)?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(read)?.build().map_err(read)? {
            batches.push(batch.map_err(|e| read(e.into()))?);
        }
    }
    Ok((Arc::new(schema), batches))
}
