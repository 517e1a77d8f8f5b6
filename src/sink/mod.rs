//! The object-store sink (SPEC §5): the MSK Connect / Confluent S3 sink part. It consumes the
//! batch topics `<id>.pin`, `<id>.geo`, `<id>.user` from the event log and lands them in the lake
//! as newline-delimited JSON, one record value per line, in the Confluent layout of [`layout`].
//!
//! Fed by the event log (which the gateway appends to); feeds the lake, which the batch job reads.
//! The work is one task per topic partition ([`partition`]); where a partition resumes is read
//! from the lake itself ([`resume`]), so the objects are the sink's only state.
//!
//! Guarantees: a file is written whole or not at all; files of a partition are contiguous, in
//! offset order, with no record twice and none missing, across crashes and restarts. With
//! count-only cuts (drain mode, or a long `flush_interval`) a rerun after a crash writes exactly
//! the objects an uninterrupted run writes. A time-based cut followed by a restart cuts later
//! files at other boundaries — still contiguous, still each record once.
//!
//! Not supported: two sink processes on the same lake and topics at once (each would resume from
//! what it saw and they would overwrite each other's files with differently cut ones).

pub mod layout;
mod partition;
pub mod resume;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::eventlog::{self, EventLog, Namespace, OnGap};
use crate::lake::Lake;
use crate::settings::Worker;

/// What `pinpipe sink` runs with ([`SinkConfig::new`] has the defaults; `[sink]` in
/// `pinpipe.toml` and the flags change them through [`crate::settings::SinkSection`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    /// Pipeline id: the sink consumes `<id>.pin`, `<id>.geo`, `<id>.user`.
    pub id: String,
    /// Records per file before it is written (Confluent `flush.size`).
    pub flush_size: usize,
    /// Longest a record waits in an unwritten file (follow mode only: a drain cuts by count, as
    /// every record is already there).
    pub flush_interval: Duration,
    /// Process what is in the log, write the last partial files, and return.
    pub drain: bool,
    /// The share of the partitions this sink owns (`--worker I/N`); [`Worker::ALL`] by default.
    pub worker: Worker,
    /// What to do when retention removed records before they reached the lake: stop (the
    /// default) or skip them, logged and counted.
    pub on_gap: OnGap,
}

impl SinkConfig {
    /// The defaults for pipeline `id`: files of 1000 records or 10 s, every partition.
    pub fn new(id: &str, drain: bool) -> SinkConfig {
        SinkConfig {
            id: id.to_string(),
            flush_size: 1000,
            flush_interval: Duration::from_secs(10),
            drain,
            worker: Worker::ALL,
            on_gap: OnGap::Stop,
        }
    }
}

/// What a sink run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// Objects written (rewrites of a file a crashed run already wrote count again).
    pub files: u64,
    /// Records written in those objects.
    pub records: u64,
    /// The same counts per topic (every consumed topic is listed, even with nothing written).
    pub topics: BTreeMap<String, TopicCounts>,
}

/// Files and records one topic contributed to a [`SinkReport`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicCounts {
    pub files: u64,
    pub records: u64,
}

impl fmt::Display for SinkReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sink wrote {} records in {} files", self.records, self.files)?;
        let parts: Vec<String> =
            self.topics.iter().map(|(t, c)| format!("{t}: {} records in {} files", c.records, c.files)).collect();
        if !parts.is_empty() {
            write!(f, " ({})", parts.join("; "))?;
        }
        Ok(())
    }
}

/// Errors of the sink. The lake being unreachable is not one: writes and listings are retried
/// with backoff until they succeed or the sink is stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("flush size must be at least 1")]
    InvalidFlushSize,
    #[error("topic `{topic}` does not exist in the event log (create it with `pinpipe topics create {topic}`)")]
    TopicNotFound { topic: String },
    #[error("cannot describe topic `{topic}`")]
    Describe {
        topic: String,
        #[source]
        source: eventlog::Error,
    },
    #[error("cannot read topic `{topic}` partition {partition} at offset {offset}")]
    Read {
        topic: String,
        partition: u32,
        offset: u64,
        #[source]
        source: eventlog::Error,
    },
    #[error("cannot resume topic `{topic}` partition {partition}")]
    Resume {
        topic: String,
        partition: u32,
        #[source]
        source: resume::Error,
    },
    #[error("the sink task for topic `{topic}` partition {partition} failed")]
    Task {
        topic: String,
        partition: u32,
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Runs the sink until `shutdown` (or, with `drain`, until the log is written out).
///
/// Every partition of the three batch topics gets its own task, resuming after the last file
/// the lake holds for it. In drain mode each partition stops at the end it had when the sink
/// started and writes its last partial file. On cancellation the partial files are left
/// unwritten (their records are read again next time), so a stop never loses or duplicates a
/// record. If one partition fails, the others are stopped and the first error is returned.
///
/// Run one sink per lake and pipeline id: two at once on the same topics are not supported.
pub async fn run(
    cfg: &SinkConfig,
    log: Arc<dyn EventLog>,
    lake: &Lake,
    shutdown: CancellationToken,
) -> Result<SinkReport, Error> {
    if cfg.flush_size == 0 {
        return Err(Error::InvalidFlushSize);
    }
    let flush_interval = (!cfg.drain).then_some(cfg.flush_interval);
    let mut report = SinkReport::default();
    let mut jobs = Vec::new();
    for topic in Namespace::Topics.default_names(&cfg.id) {
        let info = log.describe(&topic).await.map_err(|source| match source {
            eventlog::Error::NotFound { .. } => Error::TopicNotFound { topic: topic.clone() },
            source => Error::Describe { topic: topic.clone(), source },
        })?;
        report.topics.insert(topic.clone(), TopicCounts::default());
        for p in info.partitions.into_iter().filter(|p| cfg.worker.owns(p.partition)) {
            jobs.push(partition::Job {
                topic: topic.clone(),
                partition: p.partition,
                log_start: p.start,
                log_end: p.end,
                incarnation: info.incarnation.clone(),
                flush_size: cfg.flush_size,
                flush_interval,
                drain: cfg.drain,
                on_gap: cfg.on_gap,
            });
        }
    }
    tracing::info!(
        id = %cfg.id, worker = %cfg.worker, partitions = jobs.len(), flush_size = cfg.flush_size, flush_interval = ?flush_interval,
        drain = cfg.drain, lake = %lake.url(), "sink starting"
    );

    let stop = shutdown.child_token();
    let mut tasks = JoinSet::new();
    let mut names = std::collections::HashMap::new();
    for job in jobs {
        let (topic, partition) = (job.topic.clone(), job.partition);
        let handle = tasks.spawn(partition::run(job, Arc::clone(&log), lake.clone(), stop.clone()));
        names.insert(handle.id(), (topic, partition));
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next_with_id().await {
        let failure = match joined {
            Ok((id, Ok(outcome))) => {
                let (topic, _) = &names[&id];
                let counts = report.topics.entry(topic.clone()).or_default();
                counts.files += outcome.files;
                counts.records += outcome.records;
                report.files += outcome.files;
                report.records += outcome.records;
                continue;
            }
            Ok((_, Err(e))) => e,
            Err(source) => {
                let (topic, partition) = names[&source.id()].clone();
                Error::Task { topic, partition, source }
            }
        };
        tracing::error!(error = %failure, "sink partition failed; stopping the others");
        stop.cancel();
        first_error.get_or_insert(failure);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    tracing::info!(files = report.files, records = report.records, "sink stopped");
    Ok(report)
}
