//! Cleaning a round and committing it ([`commit_round`]): the records of the three streams go
//! through the shared cleaning ([`crate::clean`]), then the rejects table takes its commit, then
//! the three data tables theirs — the order the exactly-once argument in [`super`] rests on.
//!
//! Owns what each commit holds: which rows and rejects each table still lacks (per the cursors),
//! the position each partition reaches, and the native positions and log identities written
//! beside them; leaves the commit itself (retries, conflicts, checkpoints) to
//! [`super::delta::DeltaSink`], the rejects rows' shape to [`super::rejects`] and the position
//! rules to [`super::positions`]. Fed by [`super::run`] with the [`Round`] that
//! [`super::gather`] read; feeds the rejects and data tables, and moves the cursors and the run's
//! report past what landed.

use std::collections::BTreeMap;

use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::record_batch::RecordBatch;
use tokio_util::sync::CancellationToken;

use super::delta::{CommitMeta, DeltaSink, Part};
use super::rejects::{self, RejectRow};
use super::{Error, Round, Source, StreamReport, now_ms, positions};
use crate::clean;
use crate::contract::Table;
use crate::eventlog::Record;

/// A stream's records of one round, decoded and cleaned.
struct Cleaned {
    /// Cleaned rows, in read order.
    rows: RecordBatch,
    /// The (partition, offset) of each row.
    row_positions: Vec<(u32, u64)>,
    rejects: Vec<RejectRow>,
    /// Last offset read per partition, with that record's native position.
    last: BTreeMap<u32, (u64, Option<String>)>,
}

/// Decodes and cleans `records` of `stream` with the shared cleaning code.
fn clean_records(table: Table, stream: &str, records: &[Record]) -> Result<Cleaned, clean::Error> {
    let values: Vec<&[u8]> = records.iter().map(|r| r.value.as_slice()).collect();
    let decoded = clean::decode(table, &values)?;
    let rows = clean::clean(table, &decoded.batch)?;
    let position = |i: usize| records.get(i).map_or((0, 0), |r| (r.position.partition, r.position.offset));
    let row_positions = decoded.rows.iter().map(|&i| position(i)).collect();
    let rejects = decoded
        .rejects
        .into_iter()
        .map(|r| {
            let (partition, offset) = position(r.index);
            RejectRow { stream: stream.to_string(), partition, offset, raw: r.raw, reason: r.reason }
        })
        .collect();
    let mut last = BTreeMap::new();
    for r in records {
        last.insert(r.position.partition, (r.position.offset, r.native.clone()));
    }
    Ok(Cleaned { rows, row_positions, rejects, last })
}

/// Commits one round: rejects first, then the three data tables (see the module doc for why
/// this order).
pub(super) async fn commit_round(
    sources: &mut [Source],
    rejects_sink: &mut DeltaSink,
    round: Round,
    report: &mut StreamReport,
    latency: Option<&mut hdrhistogram::Histogram<u64>>,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
    let timestamps: Vec<i64> = round.iter().flatten().map(|r| r.timestamp_ms).collect();
    let mut tasks = Vec::new();
    for (source, records) in sources.iter().zip(round) {
        let (table, stream) = (source.table, source.stream.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let cleaned = clean_records(table, &stream, &records);
            (stream, cleaned)
        }));
    }
    let mut cleaned = Vec::with_capacity(tasks.len());
    for (task, source) in tasks.into_iter().zip(sources.iter()) {
        let (stream, result) = task.await.map_err(|_| Error::CleanPanicked { stream: source.stream.clone() })?;
        cleaned.push(result.map_err(|source| Error::Clean { stream, source })?);
    }

    // 1. The rejects, one commit for the three streams when the round has any. It states every
    //    owned partition's rejects position (unchanged where it had none), so each one's log
    //    identity is on record with it.
    let wanted = |source: &Source, r: &RejectRow| {
        source.cursors.iter().any(|cursor| cursor.partition == r.partition && cursor.rejects_want(r.offset))
    };
    let any_rejects = sources.iter().zip(&cleaned).any(|(s, c)| c.rejects.iter().any(|r| wanted(s, r)));
    let mut reject_parts = Vec::new();
    for (source, c) in sources.iter().zip(&cleaned).filter(|_| any_rejects) {
        for cursor in &source.cursors {
            let rows: Vec<RejectRow> = c
                .rejects
                .iter()
                .filter(|r| r.partition == cursor.partition && cursor.rejects_want(r.offset))
                .cloned()
                .collect();
            let last = match c.last.get(&cursor.partition) {
                Some(&(last, _)) if !rows.is_empty() => positions::version_of(last),
                _ => cursor.rejects.map_or(-1, positions::version_of),
            };
            let batch =
                rejects::to_batch(&rows).map_err(|source| Error::Arrow { table: rejects_sink.name.clone(), source })?;
            reject_parts.push((
                source.stream.clone(),
                cursor.partition,
                rows.len(),
                Part {
                    stream: source.stream.clone(),
                    app_id: positions::rejects_app_id(&source.stream, cursor.partition),
                    last,
                    rows: batch,
                    offsets: rows.iter().map(|r| positions::version_of(r.offset)).collect(),
                },
            ));
        }
    }
    if !reject_parts.is_empty() {
        let parts = reject_parts.iter().map(|(_, _, _, p)| p.clone()).collect();
        let meta = CommitMeta { native: None, identities: identities(sources.iter()) };
        let done = rejects_sink.commit(parts, &meta, shutdown).await?;
        if done.version.is_some() {
            report.rejects_commits += 1;
        }
        for (stream, partition, n, part) in &reject_parts {
            for source in sources.iter_mut().filter(|s| &s.stream == stream) {
                source.report.rejected += *n as u64;
                for cursor in source.cursors.iter_mut().filter(|c| c.partition == *partition) {
                    cursor.rejects = u64::try_from(part.last).ok();
                }
            }
        }
    }

    // 2. The data tables, in parallel.
    let commits = sources.iter_mut().zip(cleaned).map(|(source, c)| async move {
        let parts = data_parts(source, &c)?;
        if parts.is_empty() {
            return Ok::<_, Error>(());
        }
        // Where every partition stands once this commit lands, native positions included.
        let mut after = source.cursors.clone();
        for cursor in &mut after {
            if let Some((last, native)) = c.last.get(&cursor.partition) {
                cursor.data = Some(*last);
                cursor.native = native.clone();
            }
        }
        let meta = CommitMeta {
            native: positions::native_metadata(&source.stream, &after),
            identities: identities(std::iter::once(&*source)),
        };
        let done = source.sink.commit(parts, &meta, shutdown).await?;
        source.report.committed += done.rows as u64;
        if done.version.is_some() {
            source.report.commits += 1;
        }
        for (cursor, now) in source.cursors.iter_mut().zip(after) {
            cursor.data = now.data;
            cursor.native = now.native;
        }
        Ok(())
    });
    futures::future::try_join_all(commits).await?;

    if let Some(h) = latency {
        let now = now_ms();
        for ts in timestamps {
            let _ = h.record(u64::try_from(now - ts).unwrap_or(0));
        }
    }
    Ok(())
}

/// One [`Part`] per partition read in the round: the rows the data table still lacks, and the
/// position it reaches.
fn data_parts(source: &Source, c: &Cleaned) -> Result<Vec<Part>, Error> {
    if c.last.is_empty() {
        return Ok(Vec::new());
    }
    let arrow_err = |e| Error::Arrow { table: source.sink.name.clone(), source: e };
    let mut parts = Vec::new();
    for cursor in &source.cursors {
        let app_id = positions::data_app_id(&source.stream, cursor.partition);
        let Some(&(last, _)) = c.last.get(&cursor.partition) else {
            // Not read this round: its position stated again, with no rows, so the commit names
            // the log of every owned partition.
            let last = cursor.data.map_or(-1, positions::version_of);
            let rows = RecordBatch::new_empty(c.rows.schema());
            parts.push(Part { stream: source.stream.clone(), app_id, last, rows, offsets: Vec::new() });
            continue;
        };
        let (indices, offsets): (Vec<u32>, Vec<i64>) = c
            .row_positions
            .iter()
            .enumerate()
            .filter(|(_, (p, o))| *p == cursor.partition && cursor.data_wants(*o))
            .map(|(i, (_, o))| (u32::try_from(i).unwrap_or(u32::MAX), positions::version_of(*o)))
            .unzip();
        let rows = if indices.len() == c.rows.num_rows() {
            c.rows.clone()
        } else {
            take_record_batch(&c.rows, &UInt32Array::from(indices)).map_err(arrow_err)?
        };
        parts.push(Part { stream: source.stream.clone(), app_id, last: positions::version_of(last), rows, offsets });
    }
    Ok(parts)
}

/// Each source's stream → its log identity (those known), for a commit's info.
fn identities<'a>(sources: impl Iterator<Item = &'a Source>) -> BTreeMap<String, String> {
    sources.filter_map(|s| Some((s.stream.clone(), s.identity.clone()?))).collect()
}
