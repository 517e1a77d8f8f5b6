//! Where a partition's sink picks up: found from the lake itself, never from the log or a side
//! file, so the objects are the only state and a restart can neither skip nor repeat a record.
//!
//! Fed by the lake (a listing of one partition's folder and the last file's body); feeds
//! [`super::partition`] the first offset still to write. The rule is Confluent's: take the file
//! with the highest start offset and resume at `start + lines`. That is exact because every file
//! is written whole in one `put` (a crash leaves either the whole object or none) and holds one
//! record per line, in offset order, with no gaps.

use object_store::ObjectStore;
use object_store::path::Path;

use super::layout::{self, FileName};

/// The last sink file of a partition and the offset after its last record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    /// The key of the last file, if the partition has any.
    pub last_key: Option<Path>,
    /// The first offset no file holds yet.
    pub next: u64,
}

/// Failures reading the lake; the caller retries them (the lake may be briefly unavailable).
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
}

/// Finds where `topic`/`partition` resumes: after the last file in `dir` (the partition's folder),
/// or at `log_start` (the partition's first readable offset) when the folder has no sink file.
///
/// Other objects in the folder (not named `<topic>+<partition>+<offset>.json`) are ignored, so
/// notes or a reader's side files never move the resume point.
pub async fn find(
    store: &dyn ObjectStore,
    dir: &Path,
    topic: &str,
    partition: u32,
    log_start: u64,
) -> Result<ResumePoint, Error> {
    let listing = store
        .list_with_delimiter(Some(dir))
        .await
        .map_err(|source| Error::List { prefix: dir.to_string(), source })?;
    let last = listing
        .objects
        .into_iter()
        .filter_map(|meta| {
            let name = layout::parse_file_name(meta.location.filename()?)?;
            (name.topic == topic && name.partition == partition).then_some((name, meta.location))
        })
        .max_by_key(|(name, _): &(FileName, Path)| name.start);
    let Some((name, key)) = last else {
        return Ok(ResumePoint { last_key: None, next: log_start });
    };
    let body = object_store::ObjectStoreExt::get(store, &key)
        .await
        .map_err(|source| Error::Get { key: key.to_string(), source })?
        .bytes()
        .await
        .map_err(|source| Error::Get { key: key.to_string(), source })?;
    let lines = count_lines(&body);
    Ok(ResumePoint { last_key: Some(key), next: name.start + lines })
}

/// The number of records in a sink file: its `\n` count (every line, the last included, ends in
/// one, and the writer turns any line break inside a value into a space).
pub fn count_lines(body: &[u8]) -> u64 {
    body.iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};

    async fn put(store: &InMemory, key: &str, body: &'static [u8]) {
        store.put(&Path::from(key), PutPayload::from_static(body)).await.unwrap();
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
        let point = find(&store, &dir, "t", 2, 0).await.unwrap();
        assert_eq!(point, ResumePoint { last_key: Some(Path::from(layout::file_key("t", 2, 2))), next: 5 });
    }

    #[tokio::test]
    async fn an_empty_folder_resumes_at_the_log_start() {
        let store = InMemory::new();
        let point = find(&store, &Path::from(layout::partition_dir("t", 0)), "t", 0, 7).await.unwrap();
        assert_eq!(point, ResumePoint { last_key: None, next: 7 });
    }

    #[test]
    fn lines_are_counted_by_their_terminators() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"{}\n"), 1);
        assert_eq!(count_lines(b"{\"a\":1}\n{\"a\":2}\n"), 2);
    }
}
