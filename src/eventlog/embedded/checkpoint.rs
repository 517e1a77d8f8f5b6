//! The checkpoint thread: copies committed WAL pages back into the embedded log's database file on
//! its own connection, so that no commit ever waits for a checkpoint.
//!
//! Started by [`super::EmbeddedLog::open`] and stopped when the log is dropped (its stop channel's
//! sender goes with it). Leaves committing to [`super::writer`] and syncing the WAL to
//! [`super::sync`]; the writer's connection has automatic checkpoints off ([`super::schema`]), so
//! this thread is what keeps the WAL from growing.

use std::path::Path;
use std::sync::mpsc;

use super::schema::{Role, open_connection};

/// How often the checkpoint thread copies committed WAL pages back into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Runs passive checkpoints until `stop`'s sender is dropped. A passive checkpoint never blocks
/// the writer or readers; it copies what it can and the WAL restarts once it has caught up.
pub(super) fn checkpoint_until(path: &Path, stop: &mpsc::Receiver<()>) {
    let conn = match open_connection(path, Role::Checkpointer) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "no checkpoint thread; SQLite checkpoints on close");
            return;
        }
    };
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(path = %path.display(), error = %e, "checkpoint skipped");
        }
    }
}
