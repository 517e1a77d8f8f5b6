//! Reading sink files out of the lake: list, fetch, decode and clean (in parallel over files),
//! then keep the first row of each `ind` (in order) that the table does not hold yet.
//!
//! Fed by the sink's objects (`topics/<id>.<table>/partition=<p>/<topic>+<p>+<start>.json`,
//! one JSON record per line, a blank line at most at the end) and the files a plan gives, in the
//! order it gives them ([`super::plan`]: generation, partition, start offset); lines are taken in
//! file order, and a record that is rejected does not claim its `ind`. The kept rows of each
//! group of files stream into the batch table's Delta writer ([`super::tables`]) on a task of
//! the table's own, so decoding never waits for encoding; only the set of `ind`s seen stays in
//! memory, so the input may be much larger than the memory.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::Int64Type;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use roaring::RoaringTreemap;

use deltalake::kernel::Add;
use deltalake::writer::{DeltaWriter as _, RecordBatchWriter};

use super::Error;
use crate::clean::{self, Table};
use crate::lake::Lake;
use crate::sink::layout::{parse_file_name, topic_dir};

/// Bytes of sink files decoded by one task (files are grouped up to this size).
const CHUNK_BYTES: u64 = 4 << 20;
/// Concurrent object reads within one group of files.
const FETCHES_PER_CHUNK: usize = 16;

/// A record that cannot be read, with where it came from.
#[derive(Debug, Clone)]
pub(super) struct RejectRow {
    /// `<sink file key relative to the lake root>:<line number, from 1>`.
    pub source: String,
    pub raw: String,
    pub reason: String,
}

/// One sink file, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkFile {
    pub topic: String,
    pub partition: u32,
    /// The offset of its first record (its name says it).
    pub start: u64,
    pub key: Path,
    pub size: u64,
}

/// One table as the batch job read it.
#[derive(Debug)]
pub(super) struct TableData {
    pub files: usize,
    /// Records (non-blank lines) read.
    pub read: u64,
    /// Rejected records by reason.
    pub rejected: BTreeMap<String, u64>,
    /// pin only: follower counts that were neither empty nor a placeholder nor a number.
    pub unreadable_follower_counts: u64,
    /// Cleaned rows written for the table: one per `ind` it did not hold, in the order received.
    pub kept: u64,
    pub rejects: Vec<RejectRow>,
    /// The data files the kept rows were written to (not committed yet).
    pub adds: Vec<Add>,
}

/// What one group of files gave.
struct FilePart {
    records: u64,
    cleaned: RecordBatch,
    rejects: Vec<RejectRow>,
    unreadable_follower_counts: u64,
}

/// The sink files of `topic`, in (partition, start offset) order.
pub(super) async fn list(lake: &Lake, topic: &str) -> Result<Vec<SinkFile>, Error> {
    let prefix = lake.path(&topic_dir(topic));
    let metas: Vec<_> = lake
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|source| Error::List { topic: topic.to_string(), source })?;
    let mut files: Vec<SinkFile> = metas
        .into_iter()
        .filter_map(|meta| {
            let name = parse_file_name(meta.location.filename()?)?;
            (name.topic == topic).then_some(SinkFile {
                topic: name.topic,
                partition: name.partition,
                start: name.start,
                key: meta.location,
                size: meta.size,
            })
        })
        .collect();
    files.sort_by_key(|f| (f.partition, f.start));
    Ok(files)
}

/// Consecutive files of about [`CHUNK_BYTES`] together (a big file alone), so one-record files
/// (a sink run with `flush_size` 1) are decoded by the thousand, not one by one.
fn chunks(files: Vec<SinkFile>) -> Vec<Vec<Path>> {
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for file in files {
        chunk.push(file.key);
        bytes += file.size;
        if bytes >= CHUNK_BYTES {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// Splits sink files into their records (blank lines are not records) and cleans them.
fn read_files(table: Table, files: &[(String, Bytes)]) -> Result<FilePart, Error> {
    let mut lines = Vec::new();
    let mut sources = Vec::new();
    for (file, (_, bytes)) in files.iter().enumerate() {
        let mut start = 0;
        let ends = memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len()));
        for (i, end) in ends.enumerate() {
            let line = &bytes[start..end];
            start = end + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            lines.push(line);
            sources.push((file, i + 1));
        }
    }
    let decoded = clean::decode(table, &lines)?;
    let cleaned = clean::clean(table, &decoded.batch)?;
    let unreadable_follower_counts = match table {
        Table::Pin => clean::unreadable_follower_counts(&decoded.batch)? as u64,
        _ => 0,
    };
    let rejects = decoded
        .rejects
        .into_iter()
        .map(|r| {
            let (file, line) = sources[r.index];
            RejectRow { source: format!("{}:{line}", files[file].0), raw: r.raw, reason: r.reason }
        })
        .collect();
    Ok(FilePart { records: lines.len() as u64, cleaned, rejects, unreadable_follower_counts })
}

/// A sink file's body, with its key relative to the lake root (what the rejects name: the same
/// whichever bucket or prefix holds the lake).
async fn fetch(store: Arc<dyn ObjectStore>, root: Path, location: Path) -> Result<(String, Bytes), Error> {
    let key = location.to_string();
    let read = |source| Error::Read { key: key.clone(), source };
    let bytes = store.get(&location).await.map_err(read)?.bytes().await.map_err(read)?;
    let relative = match location.prefix_match(&root) {
        Some(parts) => parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/"),
        None => key,
    };
    Ok((relative, bytes))
}

async fn read_chunk(
    store: Arc<dyn ObjectStore>,
    root: Path,
    chunk: Vec<Path>,
    table: Table,
) -> Result<FilePart, Error> {
    let files: Vec<(String, Bytes)> = futures::stream::iter(chunk)
        .map(|location| fetch(store.clone(), root.clone(), location))
        .buffered(FETCHES_PER_CHUNK)
        .try_collect()
        .await?;
    tokio::task::spawn_blocking(move || read_files(table, &files)).await?
}

/// Parts in flight to the writer: enough to keep it busy while the next part is deduplicated.
const PARTS_TO_WRITER: usize = 2;

/// The table's Delta writer on a task of its own, so that decoding goes on while it encodes: it
/// takes each part's cleaned rows with the mask of the rows to keep and writes the kept rows
/// (the writer cuts them into row groups and files itself).
struct KeptWriter {
    parts: tokio::sync::mpsc::Sender<(RecordBatch, BooleanArray)>,
    task: tokio::task::JoinHandle<Result<(u64, Vec<Add>), Error>>,
}

impl KeptWriter {
    fn start(mut writer: RecordBatchWriter, table: String) -> KeptWriter {
        let (parts, mut received) = tokio::sync::mpsc::channel::<(RecordBatch, BooleanArray)>(PARTS_TO_WRITER);
        let task = tokio::spawn(async move {
            let failed = |source| Error::Table { table: table.clone(), source: Box::new(source) };
            let mut kept = 0u64;
            while let Some((batch, keep)) = received.recv().await {
                let batch =
                    if keep.true_count() == batch.num_rows() { batch } else { filter_record_batch(&batch, &keep)? };
                kept += batch.num_rows() as u64;
                if let Err(error) = writer.write(batch).await {
                    writer.reset();
                    return Err(failed(error));
                }
            }
            let adds = writer.flush().await.map_err(failed)?;
            Ok((kept, adds))
        });
        KeptWriter { parts, task }
    }

    /// Hands over the rows of `batch` that `keep` marks (waits while the writer is behind).
    async fn push(&mut self, batch: RecordBatch, keep: BooleanArray) -> Result<(), Error> {
        if self.parts.send((batch, keep)).await.is_ok() {
            return Ok(());
        }
        // The writer stopped: only an error ends it while the input goes on.
        match (&mut self.task).await? {
            Err(e) => Err(e),
            Ok(_) => Err(Error::WriterStopped),
        }
    }

    /// Writes what is left and closes the files; the rows written and their files.
    async fn finish(self) -> Result<(u64, Vec<Add>), Error> {
        drop(self.parts);
        self.task.await?
    }
}

/// Reads, cleans and deduplicates `files` (sink files of `table`'s topic, in the order their
/// records count as received), writing with `writer` the rows whose `ind` is not in `seen` yet
/// (the `ind`s the table holds) and adding those to it. The files written are in the result's
/// `adds`, complete but not committed.
pub(super) async fn read_table(
    lake: &Lake,
    table: Table,
    files: Vec<SinkFile>,
    seen: &mut RoaringTreemap,
    writer: RecordBatchWriter,
    table_name: String,
) -> Result<TableData, Error> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let file_count = files.len();
    let mut parts = futures::stream::iter(chunks(files))
        .map(|chunk| read_chunk(lake.store.clone(), lake.root.clone(), chunk, table))
        .buffered(workers + 1);
    let mut data = TableData {
        files: file_count,
        read: 0,
        rejected: BTreeMap::new(),
        unreadable_follower_counts: 0,
        kept: 0,
        rejects: Vec::new(),
        adds: Vec::new(),
    };
    let mut writer = KeptWriter::start(writer, table_name);
    // `seen` is a compressed bitmap: ids come in dense runs, which take a bit each and stay in
    // cache, where a hash set took ~16 bytes and a cache miss per id.
    while let Some(part) = parts.next().await {
        let part = part?;
        data.read += part.records;
        data.unreadable_follower_counts += part.unreadable_follower_counts;
        for reject in &part.rejects {
            *data.rejected.entry(reject.reason.clone()).or_default() += 1;
        }
        data.rejects.extend(part.rejects);
        let inds = part.cleaned.column(0).as_primitive::<Int64Type>();
        // `as u64` is a bijection from i64: negative ids are kept apart from positive ones.
        let first: BooleanArray = inds.iter().map(|ind| Some(ind.is_some_and(|ind| seen.insert(ind as u64)))).collect();
        if first.true_count() > 0 {
            writer.push(part.cleaned, first).await?;
        }
    }
    (data.kept, data.adds) = writer.finish().await?;
    Ok(data)
}
