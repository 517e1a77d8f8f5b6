//! Reading one table's sink files out of the lake: list, fetch, decode and clean (in parallel
//! over files), then keep the first row of each `ind` (in order).
//!
//! Fed by the sink's objects (`topics/<id>.<table>/partition=<p>/<topic>+<p>+<start>.json`,
//! one JSON record per line, a blank line at most at the end); feeds the results folder's
//! cleaned Parquet files (which the queries then read) and the rejects. "First received" means the order of
//! (partition, offset): files are taken in (partition, start offset) order and lines in file
//! order, and a record that is rejected does not claim its `ind`. The kept rows of each group
//! of files go straight to the table's Parquet file, on a writer thread of the table's own so
//! decoding never waits for encoding; only the set of `ind`s seen stays in memory, so the input
//! may be much larger than the memory.

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

use super::Error;
use super::output::TableWriter;
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
    /// `<object key>:<line number, from 1>`.
    pub source: String,
    pub raw: String,
    pub reason: String,
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
    /// Cleaned rows written to the table's file: one per `ind`, in the order received.
    pub kept: u64,
    pub rejects: Vec<RejectRow>,
}

/// What one group of files gave.
struct FilePart {
    records: u64,
    cleaned: RecordBatch,
    rejects: Vec<RejectRow>,
    unreadable_follower_counts: u64,
}

/// The sink files of `topic` with their sizes, in (partition, start offset) order.
async fn list(lake: &Lake, topic: &str) -> Result<Vec<(Path, u64)>, Error> {
    let prefix = lake.path(&topic_dir(topic));
    let metas: Vec<_> = lake
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|source| Error::List { topic: topic.to_string(), source })?;
    let mut files: Vec<_> = metas
        .into_iter()
        .filter_map(|meta| {
            let name = parse_file_name(meta.location.filename()?)?;
            (name.topic == topic).then_some((name.partition, name.start, meta.location, meta.size))
        })
        .collect();
    files.sort();
    Ok(files.into_iter().map(|(_, _, location, size)| (location, size)).collect())
}

/// Consecutive files of about [`CHUNK_BYTES`] together (a big file alone), so one-record files
/// (a sink run with `flush_size` 1) are decoded by the thousand, not one by one.
fn chunks(files: Vec<(Path, u64)>) -> Vec<Vec<Path>> {
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for (location, size) in files {
        chunk.push(location);
        bytes += size;
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

async fn fetch(store: Arc<dyn ObjectStore>, location: Path) -> Result<(String, Bytes), Error> {
    let key = location.to_string();
    let read = |source| Error::Read { key: key.clone(), source };
    let bytes = store.get(&location).await.map_err(read)?.bytes().await.map_err(read)?;
    Ok((key, bytes))
}

async fn read_chunk(store: Arc<dyn ObjectStore>, chunk: Vec<Path>, table: Table) -> Result<FilePart, Error> {
    let files: Vec<(String, Bytes)> = futures::stream::iter(chunk)
        .map(|location| fetch(store.clone(), location))
        .buffered(FETCHES_PER_CHUNK)
        .try_collect()
        .await?;
    tokio::task::spawn_blocking(move || read_files(table, &files)).await?
}

/// Parts in flight to the writer: enough to keep it busy while the next part is deduplicated.
const PARTS_TO_WRITER: usize = 2;

/// The table's Parquet writer on a blocking thread of its own, so that decoding goes on while it
/// encodes: it takes each part's cleaned rows with the mask of the rows to keep and writes the
/// kept rows (the Parquet writer cuts them into row groups itself).
struct KeptWriter {
    parts: tokio::sync::mpsc::Sender<(RecordBatch, BooleanArray)>,
    thread: tokio::task::JoinHandle<Result<u64, Error>>,
}

impl KeptWriter {
    fn start(mut writer: TableWriter) -> KeptWriter {
        let (parts, mut received) = tokio::sync::mpsc::channel::<(RecordBatch, BooleanArray)>(PARTS_TO_WRITER);
        let thread = tokio::task::spawn_blocking(move || {
            let mut kept = 0u64;
            while let Some((batch, keep)) = received.blocking_recv() {
                let batch =
                    if keep.true_count() == batch.num_rows() { batch } else { filter_record_batch(&batch, &keep)? };
                kept += batch.num_rows() as u64;
                writer.write(&batch)?;
            }
            writer.close()?;
            Ok(kept)
        });
        KeptWriter { parts, thread }
    }

    /// Hands over the rows of `batch` that `keep` marks (waits while the writer is behind).
    async fn push(&mut self, batch: RecordBatch, keep: BooleanArray) -> Result<(), Error> {
        if self.parts.send((batch, keep)).await.is_ok() {
            return Ok(());
        }
        // The writer stopped: only an error ends it while the input goes on.
        match (&mut self.thread).await? {
            Err(e) => Err(e),
            Ok(_) => Err(Error::WriterStopped),
        }
    }

    /// Writes what is left and closes the file; the rows written.
    async fn finish(self) -> Result<u64, Error> {
        drop(self.parts);
        self.thread.await?
    }
}

/// Reads, cleans and deduplicates every sink file of `<id>.<table>`, writing the kept rows with
/// `writer` (closed at the end: the file is complete when this returns `Ok`).
pub(super) async fn read_table(lake: &Lake, id: &str, table: Table, writer: TableWriter) -> Result<TableData, Error> {
    let topic = crate::contract::topic(id, table);
    let files = list(lake, &topic).await?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let file_count = files.len();
    let mut parts = futures::stream::iter(chunks(files))
        .map(|chunk| read_chunk(lake.store.clone(), chunk, table))
        .buffered(workers + 1);
    let mut data = TableData {
        files: file_count,
        read: 0,
        rejected: BTreeMap::new(),
        unreadable_follower_counts: 0,
        kept: 0,
        rejects: Vec::new(),
    };
    let mut writer = KeptWriter::start(writer);
    // The `ind`s kept so far, as a compressed bitmap: ids come in dense runs, which take a bit
    // each and stay in cache, where a hash set took ~16 bytes and a cache miss per id.
    let mut seen = RoaringTreemap::new();
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
    data.kept = writer.finish().await?;
    Ok(data)
}
