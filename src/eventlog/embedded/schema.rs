//! The embedded log's file: its tables, the migration of files written by earlier versions, and
//! how each kind of connection to it is opened and tuned.
//!
//! Owns the SQL schema and the pragmas of the three connection roles (the writer, the readers, the
//! checkpointer), and the mapping of SQLite's errors to [`Error::Storage`]. Leaves what is written
//! to [`super::writer`], when the WAL is synced to [`super::sync`] and when it is copied back to
//! [`super::checkpoint`]. [`super::EmbeddedLog::open`] creates and migrates the file; every thread
//! of the log opens its connection here.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};

use crate::eventlog::{Error, Result};

/// The tables. `retention_ms` is a log's own retention (`NULL`: the namespace's default;
/// negative: forever).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    partitions INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    uid TEXT,
    first_offset INTEGER NOT NULL DEFAULT 0,
    retention_ms INTEGER
);
CREATE TABLE IF NOT EXISTS records (
    pos INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    key BLOB,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS retired (
    name TEXT PRIMARY KEY,
    next_offset INTEGER NOT NULL
);
";

/// Brings a log file of an earlier version to this schema: logs created before identities
/// existed get one now (readers that stored none take it as the one they read); logs created
/// before retention follow the namespace's default.
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let columns: Vec<String> =
        conn.prepare("PRAGMA table_info(logs)")?.query_map([], |r| r.get(1))?.collect::<rusqlite::Result<_>>()?;
    if !columns.iter().any(|c| c == "uid") {
        conn.execute_batch("ALTER TABLE logs ADD COLUMN uid TEXT")?;
    }
    if !columns.iter().any(|c| c == "first_offset") {
        conn.execute_batch("ALTER TABLE logs ADD COLUMN first_offset INTEGER NOT NULL DEFAULT 0")?;
    }
    if !columns.iter().any(|c| c == "retention_ms") {
        conn.execute_batch("ALTER TABLE logs ADD COLUMN retention_ms INTEGER")?;
    }
    let unnamed: Vec<i64> = conn
        .prepare("SELECT id FROM logs WHERE uid IS NULL")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in unnamed {
        conn.execute("UPDATE logs SET uid = ?1 WHERE id = ?2 AND uid IS NULL", params![new_uid(), id])?;
    }
    Ok(())
}

/// A fresh log identity.
pub(super) fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// What a connection is for; each gets its own settings.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// The one writer: WAL mode, no sync on commit (the fsync thread syncs), no automatic
    /// checkpoints (the checkpoint thread does them).
    Writer,
    /// Reads only.
    Reader,
    /// Copies the WAL into the database, syncing the WAL before and the database after.
    Checkpointer,
}

pub(super) fn open_connection(path: &Path, role: Role) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if role == Role::Writer {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(storage(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(storage(path))?;
    let pragmas = match role {
        // `auto_vacuum` first: it takes effect only in a file not yet written (not even switched
        // to WAL), so files created by earlier versions keep reusing their free pages without
        // giving them back ([`super::retention`]).
        Role::Writer => {
            "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -65536; \
             PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;"
        }
        Role::Reader => "PRAGMA query_only = ON;",
        Role::Checkpointer => "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;",
    };
    conn.execute_batch(pragmas).map_err(storage(path))?;
    Ok(conn)
}

/// A SQLite failure on the file at `path` as the log's error.
pub(super) fn storage(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |source| Error::Storage { path: path.display().to_string(), source }
}

/// For reader closures: the path is filled in by [`super::EmbeddedLog::with_reader`].
pub(super) fn storage_any(source: rusqlite::Error) -> Error {
    Error::Storage { path: String::new(), source }
}
