//! Where a partition's sink picks up: found from the lake itself, never from the log or a side
//! file, so the objects are the only state and a restart can neither skip nor repeat a record.
//!
//! Fed by the lake (a listing of one partition's folder, the last file's body, the partition's
//! incarnation marker) and the log's extent and identity; feeds [`super::partition`] the first
//! offset still to write, and the marker to write before it. The rule is Confluent's: take the
//! file with the highest start offset and resume at `start + lines`. That is exact because every
//! file is written whole in one `put` (a crash leaves either the whole object or none) and holds
//! one record per line, in offset order, with no gaps.
//!
//! # Which log the files came from
//! A topic deleted and created again is another log (SPEC §4). Each partition folder holds a
//! small JSON object, [`MARKER`] (`{"incarnation":…,"since":…}`), naming the log incarnation
//! ([`crate::eventlog::LogInfo::incarnation`]) whose records its files hold from offset `since`
//! on; it is written before the first file of that incarnation. On start:
//! - same incarnation: resume after the last file at or past `since`;
//! - another incarnation: the new log is read from its first offset, and the earlier files stay
//!   where they are — unless the new log's offsets would rewrite them (a log whose offsets start
//!   over at 0, as Kafka's do), which is refused with [`Error::OffsetsReused`];
//! - no marker yet (a lake written before markers existed): the files are taken to be the
//!   current log's, and the marker is written;
//! - a log with no identity (Kafka, whose topic ids its clients cannot see): the marker holds a
//!   fingerprint of the first record the files hold instead — its offset, the time the log
//!   accepted it and an MD5 of its value, [`Check`], written with the first file. On start that
//!   record is read back: a different one means the topic was deleted and created again, whose
//!   offsets start over and would rewrite the files ([`Error::NotTheSameLog`]); once retention
//!   has removed it, nothing is left to compare. Either way a lake that holds offsets past the
//!   log's end cannot be the log's ([`Error::AheadOfLog`]). Never a silent skip.
//!
//! The marker's name starts with `_` and has no `.json`: Spark, Hadoop and pinpipe's batch job
//! skip it when they read the sink's files.

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::layout::{self, FileName};

/// The name of the incarnation marker in a partition's folder.
pub const MARKER: &str = "_incarnation";

/// What a partition's marker says: its files from offset `since` on hold records of the log
/// incarnation `incarnation` (`None`: a log without identity, known by `check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Marker {
    pub incarnation: Option<String>,
    pub since: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
}

/// The fingerprint of one record of a log without identity: where it is, when the log accepted
/// it, and the MD5 of its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Check {
    pub offset: u64,
    pub timestamp_ms: i64,
    pub md5: String,
}

impl Check {
    /// The fingerprint of `record`.
    pub fn of(record: &crate::eventlog::Record) -> Check {
        use md5::{Digest, Md5};
        let digest: [u8; 16] = Md5::digest(&record.value).into();
        let md5 = digest.iter().map(|b| format!("{b:02x}")).collect();
        Check { offset: record.position.offset, timestamp_ms: record.timestamp_ms, md5 }
    }
}

/// What the log says about one partition when the sink starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogExtent {
    /// The partition's first readable offset.
    pub start: u64,
    /// The partition's end (next offset).
    pub end: u64,
    /// The log's identity, when the backend has one.
    pub incarnation: Option<String>,
}

/// The last sink file of a partition and the offset after its last record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResumePoint {
    /// The key of the last file of the current incarnation, if the partition has any.
    pub last_key: Option<Path>,
    /// The first offset no file holds yet.
    pub next: u64,
    /// The marker to write before the first file, when the folder does not hold it yet.
    pub write_marker: Option<Marker>,
    /// The incarnation the folder's files came from until now, when it is not the log's.
    pub replaced: Option<String>,
    /// A log without identity: the record the caller must find in the log before resuming.
    pub verify: Option<Check>,
    /// A log without identity whose marker has no fingerprint yet: the caller writes one (the
    /// marker with [`Marker::check`]) with the first file.
    pub fingerprint: bool,
}

/// Why a partition cannot resume. The lake being unreachable (`List`, `Get`, `Put`) is retried by
/// the caller; the others stop the sink with their message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot list {prefix} in the lake")]
    List {
        prefix: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot read {key} from the lake")]
    Get {
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot write {key} to the lake")]
    Put {
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error(
        "{key} is not an incarnation marker ({reason}); remove it only if the folder's files are the current log's"
    )]
    BadMarker { key: String, reason: String },
    #[error(
        "the lake holds {topic} partition {partition} up to offset {lake_next}, but the log ends at {log_end}: the topic was \
         deleted and created again (or lost records). Move {dir} aside to land the new log there"
    )]
    AheadOfLog { topic: String, partition: u32, lake_next: u64, log_end: u64, dir: String },
    #[error(
        "{topic} partition {partition} is a new log whose offsets start at {since}, but the lake holds files of the \
         earlier log up to offset {lake_next}: writing would replace them. Move {dir} aside to land the new log there"
    )]
    OffsetsReused { topic: String, partition: u32, since: u64, lake_next: u64, dir: String },
    #[error(
        "{topic} partition {partition} holds another record at offset {offset} than the one the lake's files began \
         with: the topic was deleted and created again, and its offsets would rewrite the files. Move {dir} aside to \
         land the new log there"
    )]
    NotTheSameLog { topic: String, partition: u32, offset: u64, dir: String },
}

impl Error {
    /// True when the lake did not answer: retrying later may succeed.
    pub(crate) fn is_lake_unavailable(&self) -> bool {
        matches!(self, Error::List { .. } | Error::Get { .. } | Error::Put { .. })
    }
}

/// Finds where `topic`/`partition` resumes, given what the log says of it (see the module doc).
///
/// Objects in the folder other than sink files (`<topic>+<partition>+<offset>.json`) and the
/// marker are ignored, so notes or a reader's side files never move the resume point.
pub(crate) async fn find(
    store: &dyn ObjectStore,
    dir: &Path,
    topic: &str,
    partition: u32,
    log: &LogExtent,
) -> Result<ResumePoint, Error> {
    let listing =
        store.list_with_delimiter(Some(dir)).await.map_err(|source| Error::List { prefix: dir.to_string(), source })?;
    let mut files: Vec<(FileName, Path)> = Vec::new();
    let mut marker_key = None;
    for meta in listing.objects {
        match meta.location.filename() {
            Some(MARKER) => marker_key = Some(meta.location.clone()),
            Some(name) => {
                if let Some(file) =
                    layout::parse_file_name(name).filter(|f| f.topic == topic && f.partition == partition)
                {
                    files.push((file, meta.location.clone()));
                }
            }
            None => {}
        }
    }
    let marker = match marker_key {
        Some(key) => Some(read_marker(store, &key).await?),
        None => None,
    };
    let ahead = |lake_next: u64| Error::AheadOfLog {
        topic: topic.to_string(),
        partition,
        lake_next,
        log_end: log.end,
        dir: dir.to_string(),
    };

    let Some(current) = &log.incarnation else {
        // No identity to compare: the files are the log's, unless they cannot be (the caller
        // checks the marker's fingerprint against the log).
        let since = marker.as_ref().map_or(0, |m| m.since);
        let mut point = after_last(store, &files, since, log.start.max(since)).await?;
        if point.next > log.end {
            return Err(ahead(point.next));
        }
        match marker {
            Some(Marker { check: Some(check), .. }) => point.verify = Some(check),
            Some(m) => {
                point.fingerprint = true;
                point.write_marker = Some(Marker { incarnation: None, check: None, ..m });
            }
            None => {
                point.fingerprint = true;
                let since = if point.last_key.is_some() { 0 } else { log.start };
                point.write_marker = Some(Marker { incarnation: None, since, check: None });
            }
        }
        return Ok(point);
    };
    match marker {
        Some(m) if m.incarnation.as_ref() == Some(current) => {
            let point = after_last(store, &files, m.since, log.start.max(m.since)).await?;
            if point.next > log.end {
                return Err(ahead(point.next));
            }
            Ok(point)
        }
        Some(m) if m.incarnation.is_some() => {
            // Another log: it starts at its first offset, after every file of the earlier one.
            let earlier = after_last(store, &files, 0, 0).await?;
            if earlier.last_key.is_some() && earlier.next > log.start {
                return Err(Error::OffsetsReused {
                    topic: topic.to_string(),
                    partition,
                    since: log.start,
                    lake_next: earlier.next,
                    dir: dir.to_string(),
                });
            }
            let marker = Marker { incarnation: Some(current.clone()), since: log.start, check: None };
            Ok(ResumePoint { write_marker: Some(marker), replaced: m.incarnation, ..ResumePoint::at(log.start) })
        }
        _ => {
            // A folder from before markers (or a new one): its files are the current log's.
            let mut point = after_last(store, &files, 0, log.start).await?;
            if point.next > log.end {
                return Err(ahead(point.next));
            }
            let since = if point.last_key.is_some() { 0 } else { log.start };
            point.write_marker = Some(Marker { incarnation: Some(current.clone()), since, check: None });
            Ok(point)
        }
    }
}

/// Writes a partition's marker (before the first file of its incarnation).
pub(crate) async fn write_marker(store: &dyn ObjectStore, dir: &Path, marker: &Marker) -> Result<(), Error> {
    let key = dir.clone().join(MARKER);
    let body = serde_json::to_vec(marker).unwrap_or_default();
    store.put(&key, PutPayload::from(body)).await.map_err(|source| Error::Put { key: key.to_string(), source })?;
    Ok(())
}

async fn read_marker(store: &dyn ObjectStore, key: &Path) -> Result<Marker, Error> {
    let body = get(store, key).await?;
    serde_json::from_slice(&body).map_err(|e| Error::BadMarker { key: key.to_string(), reason: e.to_string() })
}

async fn get(store: &dyn ObjectStore, key: &Path) -> Result<bytes::Bytes, Error> {
    store
        .get(key)
        .await
        .map_err(|source| Error::Get { key: key.to_string(), source })?
        .bytes()
        .await
        .map_err(|source| Error::Get { key: key.to_string(), source })
}

/// The point after the last of `files` that starts at or past `since`, or `empty` when none does.
async fn after_last(
    store: &dyn ObjectStore,
    files: &[(FileName, Path)],
    since: u64,
    empty: u64,
) -> Result<ResumePoint, Error> {
    let last = files.iter().filter(|(name, _)| name.start >= since).max_by_key(|(name, _)| name.start);
    let Some((name, key)) = last else {
        return Ok(ResumePoint::at(empty));
    };
    let lines = count_lines(&get(store, key).await?);
    Ok(ResumePoint { last_key: Some(key.clone()), ..ResumePoint::at(name.start + lines) })
}

impl ResumePoint {
    /// Resuming at `next`, with nothing else to do.
    fn at(next: u64) -> ResumePoint {
        ResumePoint { last_key: None, next, write_marker: None, replaced: None, verify: None, fingerprint: false }
    }
}

/// The number of records in a sink file: its `\n` count (every line, the last included, ends in
/// one, and the writer turns any line break inside a value into a space).
pub(crate) fn count_lines(body: &[u8]) -> u64 {
    body.iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    async fn put(store: &InMemory, key: &str, body: &'static [u8]) {
        store.put(&Path::from(key), PutPayload::from_static(body)).await.unwrap();
    }

    fn extent(start: u64, end: u64, incarnation: Option<&str>) -> LogExtent {
        LogExtent { start, end, incarnation: incarnation.map(str::to_string) }
    }

    #[tokio::test]
    async fn resumes_after_the_file_with_the_highest_start_offset() {
        let store = InMemory::new();
        let dir = Path::from(layout::partition_dir("t", 2));
        put(&store, &layout::file_key("t", 2, 0), b"a\nb\n").await;
        put(&store, &layout::file_key("t", 2, 2), b"c\nd\ne\n").await;
        put(&store, &format!("{}/notes.txt", layout::partition_dir("t", 2)), b"x\n").await;
        put(&store, &format!("{}/t+2+0000000099.json.tmp", layout::partition_dir("t", 2)), b"x\n").await;
        put(&store, &format!("{}/u+2+0000000099.json", layout::partition_dir("t", 2)), b"x\n").await;
        let point = find(&store, &dir, "t", 2, &extent(0, 9, Some("A"))).await.unwrap();
        assert_eq!(point.last_key, Some(Path::from(layout::file_key("t", 2, 2))));
        // A folder from before markers: its files are the log's, and the marker is to be written.
        assert_eq!(point.next, 5);
        assert_eq!(point.write_marker, Some(Marker { incarnation: Some("A".into()), since: 0, check: None }));
    }

    #[tokio::test]
    async fn an_empty_folder_resumes_at_the_log_start_and_marks_the_log() {
        let store = InMemory::new();
        let dir = Path::from(layout::partition_dir("t", 0));
        let point = find(&store, &dir, "t", 0, &extent(7, 7, Some("A"))).await.unwrap();
        assert_eq!((point.last_key, point.next), (None, 7));
        assert_eq!(point.write_marker, Some(Marker { incarnation: Some("A".into()), since: 7, check: None }));
    }

    #[tokio::test]
    async fn a_new_incarnation_starts_at_its_first_offset_and_keeps_the_old_files() {
        let store = InMemory::new();
        let dir = Path::from(layout::partition_dir("t", 0));
        put(&store, &layout::file_key("t", 0, 0), b"a\nb\nc\n").await;
        write_marker(&store, &dir, &Marker { incarnation: Some("A".into()), since: 0, check: None }).await.unwrap();
        // The same log: after the last file.
        assert_eq!(find(&store, &dir, "t", 0, &extent(0, 5, Some("A"))).await.unwrap().next, 3);
        // A new log numbering on after the old one.
        let point = find(&store, &dir, "t", 0, &extent(3, 18, Some("B"))).await.unwrap();
        assert_eq!((point.next, point.replaced.as_deref()), (3, Some("A")));
        write_marker(&store, &dir, point.write_marker.as_ref().unwrap()).await.unwrap();
        // Its own files count from then on.
        put(&store, &layout::file_key("t", 0, 3), b"d\ne\n").await;
        let again = find(&store, &dir, "t", 0, &extent(3, 18, Some("B"))).await.unwrap();
        assert_eq!((again.next, again.write_marker), (5, None));
        // A new log whose offsets start over would overwrite the old files: refused.
        let e = find(&store, &dir, "t", 0, &extent(0, 15, Some("C"))).await.unwrap_err();
        assert!(matches!(e, Error::OffsetsReused { since: 0, lake_next: 5, .. }), "{e}");
    }

    #[tokio::test]
    async fn files_past_the_end_of_a_log_without_identity_are_an_error() {
        let store = InMemory::new();
        let dir = Path::from(layout::partition_dir("t", 0));
        put(&store, &layout::file_key("t", 0, 0), b"a\nb\nc\n").await;
        let e = find(&store, &dir, "t", 0, &extent(0, 2, None)).await.unwrap_err();
        assert!(matches!(e, Error::AheadOfLog { lake_next: 3, log_end: 2, .. }), "{e}");
        let point = find(&store, &dir, "t", 0, &extent(0, 3, None)).await.unwrap();
        assert_eq!((point.next, point.fingerprint, point.verify), (3, true, None));
        // With a fingerprint in the marker, the caller is asked to verify it.
        let check = Check { offset: 0, timestamp_ms: 5, md5: "ab".into() };
        let marker = Marker { incarnation: None, since: 0, check: Some(check.clone()) };
        write_marker(&store, &dir, &marker).await.unwrap();
        let point = find(&store, &dir, "t", 0, &extent(0, 3, None)).await.unwrap();
        assert_eq!((point.next, point.fingerprint, point.verify), (3, false, Some(check)));
    }

    #[test]
    fn lines_are_counted_by_their_terminators() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"{}\n"), 1);
        assert_eq!(count_lines(b"{\"a\":1}\n{\"a\":2}\n"), 2);
    }
}
