//! Where the stream job starts ([`open`]): the rejects table and the three data tables opened
//! (created when absent, waiting out the lake), and for each partition this worker owns, the
//! cursor it resumes from — after the data table's `txn` version, only if that version belongs to
//! the stream's current log (its identity), with the log's native position handed back to it when
//! the table holds one.
//!
//! Owns the decisions made once at start: whose positions count, a table ahead of its log
//! ([`Error::AheadOfLog`]), the resume hint; leaves the position rules themselves to
//! [`super::positions`] and reading on from the cursors to [`super::gather`]. Fed by the Delta
//! tables' stored versions and commit info ([`super::delta::DeltaSink::stored_meta`]) and the
//! [`EventLog`]'s description of each stream; feeds [`super::run`] the [`Source`]s its loop
//! works on.

use tokio_util::sync::CancellationToken;

use super::delta::DeltaSink;
use super::gather::describe_retrying;
use super::positions::{self, Cursor};
use super::{Error, Source, StreamConfig, TableReport, rejects};
use crate::clean;
use crate::contract::{self, Table};
use crate::eventlog::{self, EventLog, OnGap};
use crate::lake::Lake;
use crate::observe;

/// Opens the rejects table and the data tables of pipeline `cfg.id`, and resumes every partition
/// of the three streams that `cfg.worker` owns. `None`: shut down while the lake would not open
/// a table (nothing has been read).
pub(super) async fn open(
    cfg: &StreamConfig,
    streams: &dyn EventLog,
    lake: &Lake,
    shutdown: &CancellationToken,
) -> Result<Option<(DeltaSink, Vec<Source>)>, Error> {
    let checkpoint_every = cfg.checkpoint_every.max(1);
    let open = |name: String, schema| async move {
        DeltaSink::open_waiting(lake, &name, schema, checkpoint_every, cfg.lake_timeout, shutdown).await
    };
    let rejects = match open(contract::rejects_table(&cfg.id), rejects::schema()).await {
        Err(Error::Interrupted { .. }) => return Ok(None),
        other => other?,
    };
    let rejects_meta = rejects.stored_meta().await?;
    let mut sources = Vec::with_capacity(3);
    for table in Table::ALL {
        let stream = contract::stream(&cfg.id, table);
        let name = contract::delta_table(&cfg.id, table);
        let sink = match open(name.clone(), clean::cleaned_schema(table)).await {
            Err(Error::Interrupted { .. }) => return Ok(None),
            other => other?,
        };
        let info = describe_retrying(streams, &stream, shutdown).await?;
        let stored = sink.stored_meta().await?;
        let identity = info.incarnation.clone();
        let mut cursors = Vec::with_capacity(info.partitions.len());
        for p in info.partitions.iter().filter(|p| cfg.worker.owns(p.partition)) {
            let app_id = positions::data_app_id(&stream, p.partition);
            let rejects_app_id = positions::rejects_app_id(&stream, p.partition);
            // Positions stored for an earlier log of this name do not count (see `positions`).
            let earlier = stored.identities.get(&app_id);
            let data_ours = positions::same_log(earlier.map(String::as_str), identity.as_deref());
            let rejects_ours = positions::same_log(
                rejects_meta.identities.get(&rejects_app_id).map(String::as_str),
                identity.as_deref(),
            );
            if !data_ours {
                tracing::warn!(
                    %stream, partition = p.partition, table = %name, ?earlier, now = ?identity,
                    "the stream is a new log (deleted and created again): reading it from its start; the table's earlier rows stay"
                );
            }
            let data = sink.stored_version(&app_id).await?.filter(|_| data_ours);
            let rej = rejects.stored_version(&rejects_app_id).await?.filter(|_| rejects_ours);
            let mut cursor = Cursor::resume(p.partition, p.start, data, rej);
            // What the table lacks is gone from the log: never a silent skip.
            if let Some(next) = cursor.lost_to(p.start) {
                match cfg.on_gap {
                    OnGap::Stop => {
                        let source = eventlog::Error::Expired {
                            noun: streams.namespace().noun(),
                            name: stream.clone(),
                            partition: p.partition,
                            from: next,
                            start: p.start,
                        };
                        return Err(Error::Read { stream, partition: p.partition, offset: next, source });
                    }
                    OnGap::Skip => observe::gap_skipped(&stream, p.partition, next, p.start),
                }
            }
            let unverified = earlier.is_none() || identity.is_none();
            if unverified && p.end > 0 && cursor.next > p.end {
                // No identity to tell the logs apart, and positions past the end: not this log.
                return Err(Error::AheadOfLog {
                    stream,
                    partition: p.partition,
                    table: name,
                    stored: cursor.next - 1,
                    log_end: p.end,
                });
            }
            if data_ours && let Some(after) = cursor.adopt_native(stored.native.get(&app_id)).map(str::to_string) {
                // The log can go on right after the last record the table holds.
                streams.resume_hint(&stream, p.partition, cursor.next, &after);
            }
            cursors.push(cursor);
        }
        tracing::info!(%stream, table = %name, version = sink.version(), ?cursors, "stream resumes");
        let report = TableReport { stream: stream.clone(), table: name, version: sink.version(), ..Default::default() };
        sources.push(Source { table, stream, identity, sink, cursors, report });
    }
    Ok(Some((rejects, sources)))
}
