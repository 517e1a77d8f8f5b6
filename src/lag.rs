//! How far the sink and the stream job are behind the logs, read from their outputs.
//!
//! The sink's position is the lake's files ([`crate::sink::resume`]: after the last file of a
//! partition), the stream job's the `txn` versions of its Delta tables ([`crate::stream::Progress`]),
//! so anyone with the lake can measure both without asking the workers. Used by the gateway's
//! status page and by the workers' `/metrics` ([`crate::observe`]). Never creates anything: a
//! Delta table that does not exist yet has no position.

use std::collections::HashMap;

use tokio::sync::Mutex;

use crate::contract::{self, Table};
use crate::eventlog::{EventLog, Namespace};
use crate::lake::Lake;
use crate::observe::ErrorChain;
use crate::sink::{layout, resume};
use crate::stream::Progress;

/// Reads the workers' positions from a lake; keeps the Delta tables it opened between calls.
pub struct LagProbe {
    /// Pipeline id: maps `streaming-<id>-pin` to the Delta table `<id>_pin_table`.
    pub id: String,
    /// The lake the sink and the stream job write to.
    pub lake: Lake,
    progress: Mutex<HashMap<String, Progress>>,
}

/// One partition of a log and where its reader stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionLag {
    pub partition: u32,
    pub start: u64,
    pub end: u64,
    /// The next offset the reader will write, if known.
    pub next: Option<u64>,
}

/// One log (topic or stream) and where its reader stands in each partition.
#[derive(Debug, Clone)]
pub struct LogLag {
    pub name: String,
    pub partitions: Vec<PartitionLag>,
}

impl LogLag {
    /// The log end summed over partitions.
    pub fn end(&self) -> u64 {
        self.partitions.iter().map(|p| p.end).sum()
    }

    /// Records the reader has not written yet, summed over partitions; `None` if any is unknown.
    pub fn lag(&self) -> Option<u64> {
        self.partitions.iter().map(|p| p.next.map(|next| p.end.saturating_sub(next))).sum()
    }
}

/// Every log of `log` with its extents and, given a `probe`, its reader's positions (without one
/// every `next` is unknown). What cannot be read is described in `problems` and left out.
pub async fn logs(log: &dyn EventLog, probe: Option<&LagProbe>, problems: &mut Vec<String>) -> Vec<LogLag> {
    let names = match log.list().await {
        Ok(names) => names,
        Err(e) => {
            problems.push(format!("listing the {}s: {}", log.namespace().noun(), ErrorChain(&e)));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if let Some(lag) = describe(log, &name, probe, problems).await {
            out.push(lag);
        }
    }
    out
}

/// One log's extents and, given a `probe`, its reader's positions; `None` (and a problem) when it
/// cannot be described.
async fn describe(
    log: &dyn EventLog,
    name: &str,
    probe: Option<&LagProbe>,
    problems: &mut Vec<String>,
) -> Option<LogLag> {
    let info = match log.describe(name).await {
        Ok(info) => info,
        Err(e) => {
            problems.push(format!("{} {name}: {}", log.namespace().noun(), ErrorChain(&e)));
            return None;
        }
    };
    let mut partitions = Vec::with_capacity(info.partitions.len());
    for p in &info.partitions {
        let next = match probe {
            Some(probe) => probe.next(log, name, p.partition, p.start, problems).await,
            None => None,
        };
        partitions.push(PartitionLag { partition: p.partition, start: p.start, end: p.end, next });
    }
    Some(LogLag { name: name.to_string(), partitions })
}

impl LagProbe {
    /// A probe of `lake` for pipeline `id`.
    pub fn new(id: impl Into<String>, lake: Lake) -> Self {
        LagProbe { id: id.into(), lake, progress: Mutex::new(HashMap::new()) }
    }

    /// One log with its reader's positions, or `None` (and a problem) when it cannot be described.
    pub async fn log(&self, log: &dyn EventLog, name: &str, problems: &mut Vec<String>) -> Option<LogLag> {
        describe(log, name, Some(self), problems).await
    }

    /// Where the reader of `name`'s `partition` stands: the sink for topics, the stream job for
    /// streams.
    async fn next(
        &self,
        log: &dyn EventLog,
        name: &str,
        p: u32,
        start: u64,
        problems: &mut Vec<String>,
    ) -> Option<u64> {
        match log.namespace() {
            Namespace::Topics => self.sink_next(name, p, start, problems).await,
            Namespace::Streams => self.stream_next(name, p, start, problems).await,
        }
    }

    /// The first offset of `topic`/`partition` that no sink file holds.
    async fn sink_next(&self, topic: &str, partition: u32, start: u64, problems: &mut Vec<String>) -> Option<u64> {
        let dir = self.lake.path(&layout::partition_dir(topic, partition));
        // Where the sink would resume, whatever the log's identity: the lag of the files there.
        let extent = resume::LogExtent { start, end: u64::MAX, incarnation: None };
        match resume::find(self.lake.store.as_ref(), &dir, topic, partition, &extent).await {
            Ok(point) => Some(point.next),
            Err(e) => {
                problems.push(format!("sink position of {topic} partition {partition}: {}", ErrorChain(&e)));
                None
            }
        }
    }

    /// The first offset of `stream`/`partition` its Delta table does not hold; `None` when the
    /// stream is not one of the pipeline's or its table does not exist yet.
    async fn stream_next(&self, stream: &str, partition: u32, start: u64, problems: &mut Vec<String>) -> Option<u64> {
        let table = Table::ALL.into_iter().find(|&t| stream == contract::stream(&self.id, t))?;
        let name = contract::delta_table(&self.id, table);
        let log_dir = self.lake.path(&format!("{}/{name}/_delta_log", contract::DELTA_DIR));
        match self.lake.store.list_with_delimiter(Some(&log_dir)).await {
            Ok(listing) if !listing.objects.is_empty() => {}
            Ok(_) => return None,
            Err(e) => {
                problems.push(format!("Delta table {name}: {}", ErrorChain(&e)));
                return None;
            }
        }
        let mut open = self.progress.lock().await;
        if !open.contains_key(&name) {
            match Progress::open(&self.lake, &self.id, table).await {
                Ok(p) => {
                    open.insert(name.clone(), p);
                }
                Err(e) => {
                    problems.push(format!("Delta table {name}: {}", ErrorChain(&e)));
                    return None;
                }
            }
        }
        let progress = open.get_mut(&name)?;
        match progress.visible(partition).await {
            Ok(last) => Some(last.map_or(start, |last| (last + 1).max(start))),
            Err(e) => {
                problems.push(format!("Delta table {name}: {}", ErrorChain(&e)));
                None
            }
        }
    }
}
