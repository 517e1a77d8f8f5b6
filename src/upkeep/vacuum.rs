//! Vacuum: deletes a table's data files that no version within the file retention needs — files
//! removed (by compaction) longer ago than the retention, and files never committed (a writer
//! or a compaction that died before its commit) once they are older than the retention.
//!
//! Owns only the choice of retention and mode; the listing and the deleting are deltalake's
//! VACUUM in its full mode, which keeps every file the current version references, every file
//! removed within the retention (so time travel that far back still reads) and every file
//! younger than the retention (so a write in progress is never deleted under its writer). Old
//! log entries are not its business: the stream job's checkpoints expire them
//! (`delta.logRetentionDuration`).

use std::time::Duration;

use deltalake::DeltaTable;
use deltalake::operations::vacuum::VacuumMode;

use super::Error;

/// What a vacuum deleted (or, on a dry run, would delete).
#[derive(Debug, Clone, Default)]
pub struct Vacuumed {
    /// The files, relative to the table's folder.
    pub deleted: Vec<String>,
    /// Whether nothing was deleted, only listed.
    pub dry_run: bool,
}

/// Vacuums `table` (named `name` in messages) with `retention` (`None`: the table's
/// `delta.deletedFileRetentionDuration`, 7 days unless set; a retention given here may be
/// shorter than the table's: it is the operator's choice). Leaves the handle at the newest
/// version.
pub async fn vacuum(
    table: &mut DeltaTable,
    name: &str,
    retention: Option<Duration>,
    dry_run: bool,
) -> Result<Vacuumed, Error> {
    let vacuum_err = |source| Error::Vacuum { table: name.to_string(), source: Box::new(source) };
    table.update_state().await.map_err(vacuum_err)?;
    let mut builder = table.clone().vacuum().with_mode(VacuumMode::Full).with_dry_run(dry_run);
    if let Some(retention) = retention {
        let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        builder = builder.with_retention_period(retention).with_enforce_retention_duration(false);
    }
    let (vacuumed, metrics) = builder.await.map_err(vacuum_err)?;
    *table = vacuumed;
    Ok(Vacuumed { deleted: metrics.files_deleted, dry_run })
}
