//! Compaction: a table's small files rewritten into files near a target size, in Delta commits
//! that change no data (`dataChange = false` on every add and remove, operation `OPTIMIZE`), so
//! every row, `txn` version and commit info stays as it was and streaming readers of the table
//! see no new data.
//!
//! Owns choosing the files ([`plan`]: files under half the target, oldest first, packed into bins
//! of at most the target), rewriting a bin (read with the parquet reader, written by deltalake's
//! writer, which uploads as it goes, so memory stays near one row group whatever the target) and
//! committing it safely beside other writers. Before each try the table is re-read and every file
//! the bin replaces must still be in it. The commit then rebases over whatever lands meanwhile
//! (delta-rs's conflict checker lets a layout-only commit pass over appends, so a busy writer
//! cannot starve compaction), but never over another compaction: delta-rs ignores removes marked
//! `dataChange = false` when it checks for files removed twice, so two compactions of the same
//! files could both commit and the table would hold their rows twice. Every compaction commit
//! therefore carries a `txn` action of one app id, [`COMPACTION_APP_ID`]; delta-rs fails a commit
//! whose app ids a concurrent commit also set, and the loser re-reads the table. A removal that
//! changes data (a delete, an overwrite) of a bin's file fails the commit too (delete-delete).
//! A bin whose files another writer took is abandoned (its new file deleted, unless a try whose
//! answer was lost might have committed it: then it is left to vacuum). A try whose answer was
//! lost but that did land is recognised by its new file being in the table.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use deltalake::DeltaTable;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, Remove, Transaction};
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter as _, RecordBatchWriter};
use object_store::ObjectStoreExt as _;
use tokio_util::sync::CancellationToken;

use super::{Error, version_of};

/// Most files one compacted file replaces (bounds a commit's size and a bin's time).
const MAX_BIN_FILES: usize = 10_000;
/// Files of one size tier that the background compaction lets gather before merging them.
const FAN_IN: usize = 10;
/// Rows per row group of a compacted file: what the writer holds in memory at once.
const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Tries at committing one bin (each after re-reading the table) before leaving it for later.
const COMMIT_ATTEMPTS: u32 = 8;
/// Rebases of one try over commits that landed meanwhile (appends, mostly).
const REBASES: usize = 15;
/// The `txn` app id every compaction commit sets, so that two compactions conflict.
pub const COMPACTION_APP_ID: &str = "pinpipe-compaction";

/// What a compaction did.
#[derive(Debug, Clone, Default)]
pub struct Compacted {
    /// Small files replaced.
    pub files_removed: usize,
    /// Files written in their place.
    pub files_added: usize,
    /// Bytes of the files replaced.
    pub bytes_removed: u64,
    /// Bytes of the files written.
    pub bytes_added: u64,
    /// Bins given up because another writer removed some of their files first, or because the
    /// compaction was stopped before their commit.
    pub abandoned: usize,
    /// The table version after the last compaction commit (the version it was at when none).
    pub version: i64,
    /// How long it took.
    pub took: Duration,
}

/// One data file the plan may replace.
#[derive(Debug, Clone)]
struct Small {
    remove: Remove,
    /// Where the file is in the table's store.
    location: object_store::path::Path,
    size: u64,
    modified: i64,
    rows: Option<usize>,
}

/// Compacts `table` (named `name` in messages) when it has more than `min_files` files under
/// half of `target` bytes. The small files are grouped in size tiers (a tier per power of ten
/// of bytes) and a tier is compacted only once it has more than [`FAN_IN`] files (or
/// `min_files`, if fewer): micro-batch files merge into files ten or a hundred times their
/// size, and those merge with their peers later, so a row is rewritten about once per tier
/// instead of every time new small files come (which merging everything small would do, until
/// the merged file reached half the target). In a tier, files are packed oldest first into bins
/// of at most `target` bytes (a bin of one file is left alone); each bin is rewritten into one
/// file and committed on its own. `min_files` 0 packs every small file, whatever its tier,
/// whenever two can be merged (`pinpipe delta optimize`). Stops between bins when `stop` is
/// cancelled. Leaves the handle at the newest version.
pub async fn compact(
    table: &mut DeltaTable,
    name: &str,
    target: u64,
    min_files: usize,
    stop: &CancellationToken,
) -> Result<Compacted, Error> {
    let started = Instant::now();
    table.update_state().await.map_err(|source| state_err(name, source))?;
    check_supported(table, name)?;
    let small = small_files(table, name, target)?;
    let mut done = Compacted { version: version_of(table), ..Default::default() };
    if small.len() <= min_files {
        done.took = started.elapsed();
        return Ok(done);
    }
    let bins = if min_files == 0 { plan(small, target) } else { plan_tiers(small, target, FAN_IN.min(min_files)) };
    for bin in bins {
        if stop.is_cancelled() {
            break;
        }
        match rewrite(table, name, &bin, target, stop).await? {
            Some(added) => {
                done.files_removed += bin.len();
                done.bytes_removed += bin.iter().map(|f| f.size).sum::<u64>();
                done.files_added += 1;
                done.bytes_added += added;
            }
            None => done.abandoned += 1,
        }
    }
    done.version = version_of(table);
    done.took = started.elapsed();
    Ok(done)
}

fn state_err(name: &str, source: deltalake::DeltaTableError) -> Error {
    Error::State { table: name.to_string(), source: Box::new(source) }
}

/// Refuses tables whose files cannot be rewritten by copying their rows: partitioned tables (the
/// partition values are not in the files) and column mapping (physical names differ).
fn check_supported(table: &DeltaTable, name: &str) -> Result<(), Error> {
    let snapshot = table.snapshot().map_err(|source| state_err(name, source))?;
    let unsupported = |reason: &str| Err(Error::Unsupported { table: name.to_string(), reason: reason.to_string() });
    if !snapshot.metadata().partition_columns().is_empty() {
        return unsupported("it is partitioned");
    }
    let mapping = snapshot.metadata().configuration().get("delta.columnMapping.mode");
    if mapping.is_some_and(|mode| mode != "none") {
        return unsupported("it uses column mapping");
    }
    Ok(())
}

/// The table's files under half of `target` bytes (files with deletion vectors excepted: their
/// parquet still holds the deleted rows), oldest first.
fn small_files(table: &DeltaTable, name: &str, target: u64) -> Result<Vec<Small>, Error> {
    let snapshot = table.snapshot().map_err(|source| state_err(name, source))?;
    let mut small: Vec<Small> = snapshot
        .log_data()
        .iter()
        .filter(|f| f.deletion_vector_descriptor().is_none())
        .filter_map(|f| {
            let size = u64::try_from(f.size()).ok()?;
            is_small(size, target).then(|| Small {
                remove: f.remove_action(false),
                location: f.object_store_path(),
                size,
                modified: f.modification_time(),
                rows: f.num_records(),
            })
        })
        .collect();
    small.sort_by(|a, b| (a.modified, &a.remove.path).cmp(&(b.modified, &b.remove.path)));
    Ok(small)
}

/// Whether a file of `size` bytes is small for compaction aiming at `target`: under half of it.
pub(super) fn is_small(size: u64, target: u64) -> bool {
    size < target / 2
}

/// Packs each size tier of `files` (a tier per power of ten of bytes) that has more than
/// `fan_in` files with [`plan`]; smaller tiers first.
fn plan_tiers(files: Vec<Small>, target: u64, fan_in: usize) -> Vec<Vec<Small>> {
    let mut tiers: std::collections::BTreeMap<u32, Vec<Small>> = std::collections::BTreeMap::new();
    for file in files {
        tiers.entry(file.size.max(1).ilog10()).or_default().push(file);
    }
    tiers.into_values().filter(|tier| tier.len() > fan_in).flat_map(|tier| plan(tier, target)).collect()
}

/// Packs `files` in order into bins of at most `target` bytes and [`MAX_BIN_FILES`] files; bins
/// of a single file are dropped (rewriting it would gain nothing).
fn plan(files: Vec<Small>, target: u64) -> Vec<Vec<Small>> {
    let mut bins: Vec<Vec<Small>> = Vec::new();
    let mut current: Vec<Small> = Vec::new();
    let mut bytes = 0;
    for file in files {
        if !current.is_empty() && (bytes + file.size > target || current.len() >= MAX_BIN_FILES) {
            bins.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += file.size;
        current.push(file);
    }
    bins.push(current);
    bins.retain(|bin| bin.len() > 1);
    bins
}

/// Rewrites `bin` into one file and commits it in place of the bin's files; the new file's size,
/// or `None` when the bin was abandoned (some of its files were no longer in the table, or
/// `stop` came).
async fn rewrite(
    table: &mut DeltaTable,
    name: &str,
    bin: &[Small],
    target: u64,
    stop: &CancellationToken,
) -> Result<Option<u64>, Error> {
    let write_err = |source| Error::WriteFile { table: name.to_string(), source: Box::new(source) };
    let store = table.log_store().object_store(None);
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        // The row group in progress is held in memory until it is complete: keep it small.
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut writer = RecordBatchWriter::for_table(table)
        .map_err(write_err)?
        .with_writer_properties(properties)
        // One file per bin: the bin is already at most the target.
        .with_target_file_size(target.saturating_mul(4));
    for file in bin {
        if stop.is_cancelled() {
            writer.reset();
            return Ok(None);
        }
        let read_err = |source| Error::ReadFile { table: name.to_string(), path: file.remove.path.clone(), source };
        // A small file (under half the target) is read whole, then decoded batch by batch.
        let bytes = store
            .get(&file.location)
            .await
            .map_err(|e| read_err(deltalake::parquet::errors::ParquetError::External(Box::new(e))))?
            .bytes()
            .await
            .map_err(|e| read_err(deltalake::parquet::errors::ParquetError::External(Box::new(e))))?;
        let batches = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(read_err)?.build().map_err(read_err)?;
        let mut rows = 0;
        for batch in batches {
            let batch = batch.map_err(|e| read_err(e.into()))?;
            rows += batch.num_rows();
            writer.write(batch).await.map_err(write_err)?;
        }
        if let Some(listed) = file.rows.filter(|&listed| listed != rows) {
            writer.reset();
            return Err(Error::RowCount {
                table: name.to_string(),
                path: file.remove.path.clone(),
                read: rows,
                listed,
            });
        }
    }
    let mut adds = writer.flush().await.map_err(write_err)?;
    for add in &mut adds {
        add.data_change = false;
    }
    let written: u64 = adds.iter().map(|a| u64::try_from(a.size).unwrap_or(0)).sum();
    let mut actions: Vec<Action> = adds.iter().cloned().map(Action::Add).collect();
    actions.extend(bin.iter().map(|f| Action::Remove(f.remove.clone())));
    let operation =
        DeltaOperation::Optimize { predicate: None, target_size: i64::try_from(target).unwrap_or(i64::MAX) };
    let wanted: HashSet<&str> = bin.iter().map(|f| f.remove.path.as_str()).collect();
    let written_paths: HashSet<&str> = adds.iter().map(|a| a.path.as_str()).collect();
    // Whether a failed try may have landed after all (its answer lost): then the new file is
    // never deleted here, only by vacuum once no version needs it.
    let mut ambiguous = false;
    let mut attempt = 0;
    loop {
        attempt += 1;
        table.update_state().await.map_err(|source| state_err(name, source))?;
        let snapshot = table.snapshot().map_err(|source| state_err(name, source))?;
        if snapshot.log_data().iter().any(|f| written_paths.contains(f.path().as_ref())) {
            // A try whose answer was lost did land.
            return Ok(Some(written));
        }
        // Commit only against a state where every file of the bin is still there.
        let present = snapshot.log_data().iter().filter(|f| wanted.contains(f.path().as_ref())).count();
        if present < wanted.len() || stop.is_cancelled() {
            tracing::info!(
                table = name,
                missing = wanted.len() - present,
                "files of a compaction bin left the table first; abandoning the bin"
            );
            if !ambiguous {
                discard(&store, &adds).await;
            }
            return Ok(None);
        }
        // The txn version only has to be new; the time in milliseconds is.
        let stamp = chrono::Utc::now().timestamp_millis();
        let mut try_actions = actions.clone();
        try_actions.push(Action::Txn(Transaction::new(COMPACTION_APP_ID, stamp)));
        let committed = CommitBuilder::from(CommitProperties::default())
            .with_actions(try_actions)
            .with_max_retries(REBASES)
            .build(Some(snapshot), table.log_store(), operation.clone())
            .await;
        match committed {
            Ok(_) => {
                table.update_state().await.map_err(|source| state_err(name, source))?;
                return Ok(Some(written));
            }
            Err(source) => {
                ambiguous |= !lost_the_race(&source);
                if attempt >= COMMIT_ATTEMPTS {
                    if !ambiguous {
                        discard(&store, &adds).await;
                    }
                    return Err(Error::Commit {
                        table: name.to_string(),
                        version: version_of(table),
                        source: Box::new(source),
                    });
                }
                tracing::debug!(table = name, attempt, error = %source, "compaction commit failed; re-reading the table");
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
            }
        }
    }
}

/// Whether a failed commit certainly wrote nothing: another commit had taken the version, or
/// conflicted with it (another compaction, a delete of a bin's file).
fn lost_the_race(error: &deltalake::DeltaTableError) -> bool {
    use deltalake::DeltaTableError as E;
    use deltalake::kernel::transaction::TransactionError as T;
    matches!(
        error,
        E::VersionAlreadyExists(_) | E::Transaction { source: T::MaxCommitAttempts(_) | T::CommitConflict(_) }
    )
}

/// Deletes files written for a bin that was not committed (best effort: vacuum deletes what is
/// left, once it is older than the file retention).
async fn discard(store: &deltalake::logstore::ObjectStoreRef, adds: &[Add]) {
    for add in adds {
        if let Err(error) = store.delete(&add.path.as_str().into()).await {
            tracing::debug!(path = %add.path, %error, "cannot delete an uncommitted compacted file; vacuum will");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> Small {
        Small {
            remove: Remove { path: path.into(), data_change: false, ..Default::default() },
            location: path.into(),
            size,
            modified: 0,
            rows: None,
        }
    }

    fn paths(bins: &[Vec<Small>]) -> Vec<Vec<&str>> {
        bins.iter().map(|b| b.iter().map(|f| f.remove.path.as_str()).collect()).collect()
    }

    #[test]
    fn files_are_packed_in_order_up_to_the_target_and_single_files_are_left_alone() {
        let files = vec![file("a", 40), file("b", 40), file("c", 40), file("d", 90), file("e", 5)];
        assert_eq!(paths(&plan(files, 100)), vec![vec!["a", "b"], vec!["d", "e"]]);
        assert!(plan(vec![file("a", 10)], 100).is_empty());
        assert!(plan(Vec::new(), 100).is_empty());
    }

    #[test]
    fn only_tiers_with_more_files_than_the_fan_in_are_merged_so_a_big_file_is_not_rewritten_each_time() {
        // One merged file of 40 kB beside micro-batch files of 2–3 kB: the micro-batch files are
        // merged among themselves; the big one waits for peers of its size.
        let mut files = vec![file("merged", 40_000)];
        files.extend((0..4).map(|i| file(&format!("m{i}"), 2_000 + i)));
        assert_eq!(paths(&plan_tiers(files.clone(), 1 << 20, 3)), vec![vec!["m0", "m1", "m2", "m3"]]);
        assert!(plan_tiers(files.clone(), 1 << 20, 4).is_empty(), "no tier has more than 4 files");
        files.extend((0..3).map(|i| file(&format!("big{i}"), 50_000)));
        assert_eq!(
            paths(&plan_tiers(files, 1 << 20, 3)),
            vec![vec!["m0", "m1", "m2", "m3"], vec!["merged", "big0", "big1", "big2"]]
        );
    }
}
