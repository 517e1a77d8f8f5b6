//! The fsync thread and the answers it gives: an append is acknowledged only once the WAL holding
//! its commit is synced to disk.
//!
//! Owns [`Answer`] (a command's result held until its group's fate is known) and the syncing of the
//! WAL file. Fed by [`super::writer`], which sends each committed group's answers and partition
//! ends here and commits the next group while this thread waits for the disk; feeds the durable
//! ends ([`super::durable`]), raised before anyone is answered, and the callers of
//! [`super::EmbeddedLog`], whose oneshot channels get the answers. Leaves the commit itself to the
//! writer and checkpoints to [`super::checkpoint`].

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::durable::{self, DurableEnds, End};
use super::writer::Command;
use crate::eventlog::{Error, Position, Result};

/// The write-ahead log SQLite keeps beside `db`.
pub(super) fn wal_path(db: &Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// A committed group, as the writer hands it to the fsync thread.
pub(super) struct Committed {
    /// The answers its commands wait for.
    pub answers: Vec<Answer>,
    /// The partition ends it reached.
    pub ends: Vec<End>,
    /// Told once its ends are durable and published (the ends a newly opened log found).
    pub published: Option<oneshot::Sender<()>>,
}

/// The fsync thread: takes committed groups, syncs the WAL once for all that are waiting,
/// publishes the ends they reached as durable ([`DurableEnds`]), then answers them. The writer
/// meanwhile commits the next group, so one fsync covers several commits and the writer never
/// waits for the disk. Ends when the writer does.
pub(super) fn sync_and_answer(wal: &Path, committed: &mpsc::Receiver<Committed>, durable: &DurableEnds) {
    let gate = durable::gate();
    let mut file: Option<std::fs::File> = None;
    while let Ok(first) = committed.recv() {
        let mut groups = vec![first];
        groups.extend(committed.try_iter());
        // A newly opened log's ends that are all published already need no fsync.
        let needs_sync = groups.iter().any(|g| !g.answers.is_empty() || !durable.covers(&g.ends));
        if needs_sync {
            durable::wait_at_gate(gate.as_ref());
        }
        match if needs_sync { sync(wal, &mut file) } else { Ok(()) } {
            Ok(()) => {
                let ends: Vec<End> = groups.iter().flat_map(|g| g.ends.iter().copied()).collect();
                // Before anyone is answered: a caller reads its records at once, from any process.
                durable.raise(&ends);
                for group in groups {
                    group.answers.into_iter().for_each(Answer::send);
                    if let Some(published) = group.published {
                        let _ = published.send(());
                    }
                }
            }
            Err(e) => {
                tracing::error!(path = %wal.display(), error = %e, "syncing the event log failed");
                file = None;
                let failure = Error::Io { path: wal.display().to_string(), source: e };
                for answer in groups.into_iter().flat_map(|g| g.answers) {
                    answer.fail(wal, &failure);
                }
            }
        }
    }
}

/// Syncs the WAL, opening it on first use. The WAL exists once the first commit wrote it; it
/// keeps its inode while the writer's connection is open (SQLite rewinds it, never replaces it).
fn sync(wal: &Path, file: &mut Option<std::fs::File>) -> std::io::Result<()> {
    match file {
        Some(f) => f.sync_data(),
        None => {
            let f = std::fs::File::open(wal)?;
            let result = f.sync_data();
            *file = Some(f);
            result
        }
    }
}

/// A command's result, held until the group's commit decides whether it stands.
pub(super) enum Answer {
    Append(oneshot::Sender<Result<Vec<Position>>>, Result<Vec<Position>>),
    Unit(oneshot::Sender<Result<()>>, Result<()>),
}

impl Answer {
    /// A command the failed group never reached: it will be answered with the commit's error.
    pub(super) fn pending(cmd: Command) -> Answer {
        match cmd {
            Command::Append { reply, .. } => Answer::Append(reply, Ok(Vec::new())),
            Command::Create { reply, .. } | Command::Delete { reply, .. } => Answer::Unit(reply, Ok(())),
        }
    }

    /// The storage failure this command hit, if any: it fails the rest of the group too.
    pub(super) fn storage_error(&self) -> Option<&Error> {
        let err = match self {
            Answer::Append(_, Err(e)) => e,
            Answer::Unit(_, Err(e)) => e,
            _ => return None,
        };
        matches!(err, Error::Storage { .. }).then_some(err)
    }

    fn send(self) {
        // A caller that stopped waiting (its request was cancelled) needs no answer.
        match self {
            Answer::Append(reply, r) => drop(reply.send(r)),
            Answer::Unit(reply, r) => drop(reply.send(r)),
        }
    }

    /// The commit failed: whatever this command did is rolled back, so a success becomes the
    /// commit's error; a caller's own mistake (unknown topic, …) is still reported as such.
    pub(super) fn fail(self, path: &Path, e: &Error) {
        let storage = || Error::Storage { path: path.display().to_string(), source: clone_sqlite(e) };
        match self {
            Answer::Append(reply, r) => drop(reply.send(r.and_then(|_| Err(storage())))),
            Answer::Unit(reply, r) => drop(reply.send(r.and_then(|_| Err(storage())))),
        }
    }
}

/// rusqlite errors are not `Clone`; a failed commit must be reported to every caller in the group.
pub(super) fn clone_sqlite(e: &Error) -> rusqlite::Error {
    match e {
        Error::Storage { source: rusqlite::Error::SqliteFailure(code, msg), .. } => {
            rusqlite::Error::SqliteFailure(*code, msg.clone())
        }
        other => rusqlite::Error::ToSqlConversionFailure(other.to_string().into()),
    }
}

/// A copy of a storage error, to fail the rest of a group with.
pub(super) fn clone_error(e: &Error) -> Error {
    Error::Storage { path: String::new(), source: clone_sqlite(e) }
}
