//! A look at one Delta table (`pinpipe delta describe`): its version, its data files and their
//! sizes, how many are small enough for compaction, its retention settings, and the stream
//! positions the stream job stored in it (`txn` versions, with the log identity and native
//! position its newest commits recorded).
//!
//! Reads only; the positions come from [`crate::stream::stored_meta_of`], the same reading the
//! stream job resumes from.

use std::fmt;
use std::time::Duration;

use deltalake::DeltaTable;
use deltalake::table::config::TablePropertiesExt as _;

use super::{Error, version_of};
use crate::settings::values::display_duration;

/// Smallest, median and largest of a table's data files, in bytes (all 0 for no files).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileSizes {
    pub min: u64,
    pub median: u64,
    pub max: u64,
}

/// One stream partition's position stored in a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPosition {
    /// The `txn` app id (`pinpipe-<stream>-<partition>`, `pinpipe-rejects-<stream>-<partition>`).
    pub app_id: String,
    /// The `txn` version: the last log offset the table accounts for.
    pub version: Option<i64>,
    /// The identity of the log those offsets count in, when recorded.
    pub identity: Option<String>,
    /// The log's native position of that record (a Kinesis sequence number), when recorded.
    pub native: Option<String>,
}

/// What `pinpipe delta describe` shows of a table.
#[derive(Debug, Clone)]
pub struct Description {
    pub name: String,
    pub version: i64,
    /// Data files the current version reads.
    pub files: usize,
    /// Their bytes, all together.
    pub bytes: u64,
    /// Their rows, when every file's statistics say.
    pub rows: Option<u64>,
    pub sizes: FileSizes,
    /// Files under half the compaction target (what compaction counts).
    pub small_files: usize,
    /// `delta.deletedFileRetentionDuration`: how long vacuum keeps removed files.
    pub file_retention: Duration,
    /// `delta.logRetentionDuration`: how long checkpoints keep log entries.
    pub log_retention: Duration,
    /// The stream positions stored in the table, by app id.
    pub positions: Vec<StoredPosition>,
}

/// Describes `table` (named `name`), counting as small the files under half of `target` bytes.
pub async fn describe(table: &mut DeltaTable, name: &str, target: u64) -> Result<Description, Error> {
    let state_err = |source| Error::State { table: name.to_string(), source: Box::new(source) };
    table.update_state().await.map_err(state_err)?;
    let meta = crate::stream::stored_meta_of(table).await.map_err(state_err)?;
    let snapshot = table.snapshot().map_err(state_err)?;
    let mut sizes: Vec<u64> = Vec::new();
    let mut rows = Some(0u64);
    for file in snapshot.log_data().iter() {
        sizes.push(u64::try_from(file.size()).unwrap_or(0));
        rows = rows.zip(file.num_records()).map(|(sum, n)| sum + n as u64);
    }
    sizes.sort_unstable();
    let app_ids: std::collections::BTreeSet<&String> = meta.identities.keys().chain(meta.native.keys()).collect();
    let mut positions = Vec::with_capacity(app_ids.len());
    for app_id in app_ids {
        let version = snapshot.transaction_version(table.log_store().as_ref(), app_id).await.map_err(state_err)?;
        positions.push(StoredPosition {
            app_id: app_id.clone(),
            version,
            identity: meta.identities.get(app_id).cloned(),
            native: meta.native.get(app_id).map(|n| n.native.clone()),
        });
    }
    let config = snapshot.table_config();
    Ok(Description {
        name: name.to_string(),
        version: version_of(table),
        files: sizes.len(),
        bytes: sizes.iter().sum(),
        rows,
        sizes: FileSizes {
            min: sizes.first().copied().unwrap_or(0),
            median: sizes.get(sizes.len() / 2).copied().unwrap_or(0),
            max: sizes.last().copied().unwrap_or(0),
        },
        small_files: sizes.iter().filter(|&&s| super::compact::is_small(s, target)).count(),
        file_retention: config.deleted_file_retention_duration(),
        log_retention: config.log_retention_duration(),
        positions,
    })
}

impl fmt::Display for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} (version {})", self.name, self.version)?;
        let rows = self.rows.map_or_else(|| "unknown".to_string(), |r| r.to_string());
        writeln!(f, "  data files: {} ({} bytes, {rows} rows)", self.files, self.bytes)?;
        writeln!(
            f,
            "  file sizes: min {} / median {} / max {} bytes; {} small (compaction candidates)",
            self.sizes.min, self.sizes.median, self.sizes.max, self.small_files
        )?;
        writeln!(
            f,
            "  retention: removed files {}, log entries {}",
            display_duration(self.file_retention),
            display_duration(self.log_retention)
        )?;
        if self.positions.is_empty() {
            write!(f, "  stored positions: none")?;
        } else {
            write!(f, "  stored positions:")?;
            for p in &self.positions {
                let version = p.version.map_or_else(|| "none".to_string(), |v| v.to_string());
                write!(f, "\n    {} = {version}", p.app_id)?;
                if let Some(identity) = &p.identity {
                    write!(f, " (log {identity})")?;
                }
                if let Some(native) = &p.native {
                    write!(f, " native {native}")?;
                }
            }
        }
        Ok(())
    }
}
