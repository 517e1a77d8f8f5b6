//! One topic partition's sink: resume from the lake, read the log in pages, cut files by record
//! count and by age, and put each file whole, in offset order.
//!
//! Fed by [`super::run`] (one task per partition) with the log and the lake; feeds the lake
//! (objects named by [`super::layout`]) and returns its counts. A reader task prefetches pages
//! from the log while the writer builds and puts files, so reading and writing overlap.
//!
//! Why this is exactly once: files are put one at a time, in offset order, each in one `put`
//! (atomic on S3 and on the local store, which writes a staging file and renames it). So at any
//! moment the lake holds a gap-free prefix of the partition, and [`super::resume`] finds its end.
//! A file's name is its first offset, and with count-only cuts its end is fixed by the flush
//! size, so a rerun after a crash rewrites byte-identical objects.

use std::time::Duration;

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Error, layout, resume};
use crate::backoff::Backoff;
use crate::eventlog::{self, EventLog, OnGap, Record};
use crate::lake::{Lake, Trouble};
use crate::observe::{self, ErrorChain};

/// How long a follower sleeps when the log has nothing new.
const POLL: Duration = Duration::from_millis(75);
/// How often a partition logs its progress at info level.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// How long a drain keeps asking a log that answers nothing before the end it announced.
const DRAIN_PATIENCE: Duration = Duration::from_secs(60);
/// Pages the reader may prefetch ahead of the writer.
const PREFETCH_PAGES: usize = 2;

/// What one partition task is asked to do.
#[derive(Debug, Clone)]
pub(super) struct Job {
    pub topic: String,
    pub partition: u32,
    /// The partition's first readable offset: where a partition without files starts.
    pub log_start: u64,
    /// The partition's end when the sink started: where a drain stops.
    pub log_end: u64,
    /// The log's identity, when the backend has one (see [`resume`]).
    pub incarnation: Option<String>,
    pub flush_size: usize,
    /// `None`: files are cut by count only (drain mode, or an interval too long to matter).
    pub flush_interval: Option<Duration>,
    pub drain: bool,
    /// What to do when retention removed records not yet in the lake.
    pub on_gap: OnGap,
}

/// What one partition task did.
#[derive(Debug, Clone, Default)]
pub(super) struct Outcome {
    pub files: u64,
    pub records: u64,
}

/// The file being filled: records `start..next`, one per line in `body`.
struct OpenFile {
    start: u64,
    next: u64,
    lines: usize,
    body: Vec<u8>,
    opened: Instant,
    /// The fingerprint of its first record, when the marker still needs one ([`resume::Check`]).
    first: Option<resume::Check>,
}

/// Runs one partition until drained or cancelled; see the module doc.
pub(super) async fn run(
    job: Job,
    log: std::sync::Arc<dyn EventLog>,
    lake: Lake,
    shutdown: CancellationToken,
) -> Result<Outcome, Error> {
    let (topic, partition) = (job.topic.as_str(), job.partition);
    let dir = lake.path(&layout::partition_dir(topic, partition));
    let Some(point) = resume_point(&job, &*log, &lake, &dir, &shutdown).await? else {
        return Ok(Outcome::default());
    };
    if point.next < job.log_start && point.last_key.is_some() {
        // Records after the last file are gone from the log: never a silent skip.
        match job.on_gap {
            OnGap::Stop => {
                let source = eventlog::Error::Expired {
                    noun: "topic",
                    name: job.topic.clone(),
                    partition,
                    from: point.next,
                    start: job.log_start,
                };
                return Err(Error::Read { topic: job.topic.clone(), partition, offset: point.next, source });
            }
            OnGap::Skip => observe::gap_skipped(topic, partition, point.next, job.log_start),
        }
    }
    let from = point.next.max(job.log_start);
    if let Some(old) = &point.replaced {
        tracing::warn!(
            topic, partition, from, earlier = %old, now = ?job.incarnation,
            "the topic is a new log (deleted and created again): landing it from its first offset; the earlier log's files stay"
        );
    }
    tracing::info!(
        topic,
        partition,
        from,
        last_file = point.last_key.as_ref().map(|k| k.to_string()),
        log_end = job.log_end,
        "sink partition resuming"
    );

    // Large pages keep the log's per-call cost low; the cap bounds memory for huge flush sizes
    // (pages do not decide where files are cut, so their size never changes the output).
    let page = job.flush_size.clamp(5_000, 50_000);
    let end = job.drain.then_some(job.log_end);
    let (tx, mut rx) = mpsc::channel(PREFETCH_PAGES);
    let reader_stop = shutdown.child_token();
    let pages = Pages { topic: job.topic.clone(), partition, end, page, on_gap: job.on_gap };
    let reader = tokio::spawn(read_pages(log, pages, from, tx, reader_stop.clone()));
    // A log without identity: the marker gets the fingerprint of the first record written.
    let mut fingerprint = point.fingerprint.then(|| point.write_marker.clone()).flatten();
    let result = write_files(&job, &lake, &mut rx, from, &mut fingerprint, &shutdown).await;
    reader_stop.cancel();
    drop(rx);
    let read = reader.await;
    let outcome = result?;
    if let Err(source) = read {
        return Err(Error::Task { topic: job.topic.clone(), partition, source });
    }
    tracing::info!(topic, partition, files = outcome.files, records = outcome.records, "sink partition stopped");
    Ok(outcome)
}

/// The resume point, with its incarnation marker written, retried until the lake answers;
/// `None` when cancelled first. A lake that cannot hold this log's files (see [`resume`]) is an
/// error.
async fn resume_point(
    job: &Job,
    log: &dyn EventLog,
    lake: &Lake,
    dir: &Path,
    shutdown: &CancellationToken,
) -> Result<Option<resume::ResumePoint>, Error> {
    let extent = resume::LogExtent { start: job.log_start, end: job.log_end, incarnation: job.incarnation.clone() };
    let mut backoff = Backoff::default();
    let mut attempt = 1u32;
    loop {
        let found = match resume::find(&*lake.store, dir, &job.topic, job.partition, &extent).await {
            Ok(point) => match &point.write_marker {
                Some(marker) => resume::write_marker(&*lake.store, dir, marker).await.map(|()| point),
                None => Ok(point),
            },
            Err(e) => Err(e),
        };
        match found {
            Ok(point) => {
                if let Some(check) = &point.verify
                    && !verify(job, log, dir, check, shutdown).await?
                {
                    return Ok(None);
                }
                return Ok(Some(point));
            }
            Err(e) if e.is_lake_unavailable() => {
                tracing::warn!(
                    topic = %job.topic, partition = job.partition, attempt, error = %ErrorChain(&e),
                    "cannot find the resume point in the lake; retrying"
                );
            }
            Err(source) => return Err(Error::Resume { topic: job.topic.clone(), partition: job.partition, source }),
        }
        if !backoff.pause(shutdown).await {
            return Ok(None);
        }
        attempt += 1;
    }
}

/// Checks that the record a marker's fingerprint names is still that record (a log without
/// identity, see [`resume`]); a record retention removed leaves nothing to compare. While the log
/// is unavailable the read is retried with backoff; false when cancelled first.
async fn verify(
    job: &Job,
    log: &dyn EventLog,
    dir: &Path,
    check: &resume::Check,
    shutdown: &CancellationToken,
) -> Result<bool, Error> {
    if check.offset < job.log_start || check.offset >= job.log_end {
        return Ok(true);
    }
    let mut backoff = Backoff::default();
    let read = loop {
        match log.read(&job.topic, job.partition, check.offset, 1).await {
            Ok(read) => break read,
            Err(e) if e.is_unavailable() => {
                tracing::warn!(topic = %job.topic, partition = job.partition, error = %e, "cannot read the log; retrying");
                if !backoff.pause(shutdown).await {
                    return Ok(false);
                }
            }
            Err(source) => {
                return Err(Error::Read {
                    topic: job.topic.clone(),
                    partition: job.partition,
                    offset: check.offset,
                    source,
                });
            }
        }
    };
    match read.first() {
        Some(record) if record.position.offset == check.offset && resume::Check::of(record) != *check => {
            Err(Error::Resume {
                topic: job.topic.clone(),
                partition: job.partition,
                source: resume::Error::NotTheSameLog {
                    topic: job.topic.clone(),
                    partition: job.partition,
                    offset: check.offset,
                    dir: dir.to_string(),
                },
            })
        }
        _ => Ok(true),
    }
}

/// Fills and puts files from the pages in `rx` until the reader ends (drain) or `shutdown`.
/// `fingerprint`, when given, is the marker to write again with the first file's first record.
async fn write_files(
    job: &Job,
    lake: &Lake,
    rx: &mut mpsc::Receiver<Result<Vec<Record>, Error>>,
    from: u64,
    fingerprint: &mut Option<resume::Marker>,
    shutdown: &CancellationToken,
) -> Result<Outcome, Error> {
    let mut out = Outcome::default();
    let mut open: Option<OpenFile> = None;
    let mut expected = from;
    let mut last_progress = Instant::now();
    loop {
        let deadline = match (&open, job.flush_interval) {
            (Some(file), Some(interval)) => file.opened.checked_add(interval),
            _ => None,
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = sleep_until(deadline), if deadline.is_some() => {
                if let Some(file) = open.take() && !put_file(job, lake, file, fingerprint, &mut out, shutdown).await {
                    break;
                }
            }
            page = rx.recv() => match page {
                Some(Ok(records)) => {
                    for record in records {
                        let offset = record.position.offset;
                        if offset != expected {
                            tracing::warn!(
                                topic = %job.topic, partition = job.partition, expected, found = offset,
                                "gap in the log: starting a new file at the next record"
                            );
                            if let Some(file) = open.take() && !put_file(job, lake, file, fingerprint, &mut out, shutdown).await {
                                return Ok(out);
                            }
                        }
                        let file = open.get_or_insert_with(|| OpenFile {
                            start: offset,
                            next: offset,
                            lines: 0,
                            body: Vec::with_capacity(job.flush_size.min(10_000) * (record.value.len() + 1)),
                            opened: Instant::now(),
                            first: fingerprint.is_some().then(|| resume::Check::of(&record)),
                        });
                        push_line(&mut file.body, &record.value, job, offset);
                        file.lines += 1;
                        file.next = offset + 1;
                        expected = offset + 1;
                        if file.lines >= job.flush_size
                            && let Some(file) = open.take()
                            && !put_file(job, lake, file, fingerprint, &mut out, shutdown).await
                        {
                            return Ok(out);
                        }
                    }
                }
                Some(Err(e)) => return Err(e),
                None => {
                    // The reader stopped: the drain target is reached, or we are shutting down,
                    // or it failed (then `run` reports it). Only a finished drain writes the
                    // last partial file, so a failed run never cuts a file short.
                    if job.drain && !shutdown.is_cancelled() && expected >= job.log_end {
                        if let Some(file) = open.take() {
                            put_file(job, lake, file, fingerprint, &mut out, shutdown).await;
                        }
                    } else if job.drain && !shutdown.is_cancelled() {
                        tracing::warn!(
                            topic = %job.topic, partition = job.partition, next = expected, log_end = job.log_end,
                            "the log ended before the drain target; leaving the last partial file for next time"
                        );
                    }
                    break;
                }
            }
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            tracing::info!(
                topic = %job.topic, partition = job.partition, next = expected, files = out.files,
                records = out.records, "sink progress"
            );
        }
    }
    Ok(out)
}

/// Appends one record as one line. Values are compact one-line JSON; a line break inside one
/// (JSON whitespace, or a malformed value) becomes a space, so a line is always one record and
/// line counts stay exact for [`resume`].
fn push_line(body: &mut Vec<u8>, value: &[u8], job: &Job, offset: u64) {
    // `contains` on bytes is a memchr: this check costs little even on large values.
    if value.contains(&b'\n') || value.contains(&b'\r') {
        tracing::warn!(
            topic = %job.topic, partition = job.partition, offset,
            "record value spans several lines; writing its line breaks as spaces"
        );
        body.extend(value.iter().map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }));
    } else {
        body.extend_from_slice(value);
    }
    body.push(b'\n');
}

/// Puts one whole file, retrying with backoff until it lands — after the marker with its
/// fingerprint, when `fingerprint` still waits for one. False when cancelled before it did: the
/// file is then simply not written, and the next run rereads its records.
async fn put_file(
    job: &Job,
    lake: &Lake,
    file: OpenFile,
    fingerprint: &mut Option<resume::Marker>,
    out: &mut Outcome,
    shutdown: &CancellationToken,
) -> bool {
    if let (Some(marker), Some(first)) = (fingerprint.as_ref(), file.first.clone()) {
        let marker = resume::Marker { check: Some(first), ..marker.clone() };
        let key = lake.path(&layout::partition_dir(&job.topic, job.partition)).join(resume::MARKER);
        if !put_retrying(lake, &key, PutPayload::from(serde_json::to_vec(&marker).unwrap_or_default()), shutdown).await
        {
            return false;
        }
        *fingerprint = None;
    }
    let key = lake.path(&layout::file_key(&job.topic, job.partition, file.start));
    if !put_retrying(lake, &key, PutPayload::from(file.body), shutdown).await {
        return false;
    }
    out.files += 1;
    out.records += file.lines as u64;
    tracing::debug!(key = %key, records = file.lines, next = file.next, "sink file written");
    true
}

/// Puts one object, retrying with backoff until it lands; false when cancelled before it did.
async fn put_retrying(lake: &Lake, key: &Path, payload: PutPayload, shutdown: &CancellationToken) -> bool {
    let mut backoff = Backoff::default();
    let mut attempt = 1u32;
    loop {
        match lake.store.put(key, payload.clone()).await {
            Ok(_) => {
                observe::lake_ok();
                return true;
            }
            Err(e) => {
                let trouble = Trouble::of(&e).unwrap_or(Trouble::Unreachable);
                observe::lake_trouble(trouble);
                tracing::warn!(key = %key, attempt, %trouble, error = %e, "cannot write to the lake; retrying");
            }
        }
        if !backoff.pause(shutdown).await {
            return false;
        }
        attempt += 1;
    }
}

/// What [`read_pages`] reads: one partition, up to `end` (drain) or forever, `page` records a
/// call.
struct Pages {
    topic: String,
    partition: u32,
    end: Option<u64>,
    page: usize,
    on_gap: OnGap,
}

/// Reads pages from `from` on and sends them to the writer: up to `end` (drain) or forever,
/// polling when the log has nothing new. Stops when cancelled or when the writer is gone.
/// Records retention removed before they were read stop it, unless `on_gap` says skip.
async fn read_pages(
    log: std::sync::Arc<dyn EventLog>,
    pages: Pages,
    mut from: u64,
    tx: mpsc::Sender<Result<Vec<Record>, Error>>,
    shutdown: CancellationToken,
) {
    let Pages { topic, partition, end, page, on_gap } = pages;
    let mut backoff = Backoff::default();
    let mut empty_since = None;
    loop {
        let max = match end {
            Some(end) if from >= end => return,
            Some(end) => page.min(usize::try_from(end - from).unwrap_or(usize::MAX)),
            None => page,
        };
        let records = match log.read(&topic, partition, from, max).await {
            Ok(records) => {
                backoff.reset();
                records
            }
            Err(e) if e.is_unavailable() => {
                tracing::warn!(topic, partition, offset = from, error = %e, "cannot read the log; retrying");
                if !backoff.pause(&shutdown).await {
                    return;
                }
                continue;
            }
            Err(eventlog::Error::Expired { start, .. }) if on_gap == OnGap::Skip => {
                observe::gap_skipped(&topic, partition, from, start);
                from = start;
                continue;
            }
            Err(source) => {
                let _ = tx.send(Err(Error::Read { topic, partition, offset: from, source })).await;
                return;
            }
        };
        let Some(last) = records.last() else {
            // Draining, the log said records up to `end` are there: nothing now is the log being
            // slow or unreachable (a Kafka poll that times out answers nothing), so ask again —
            // for a while, in case its end was not what it said.
            let empty = *empty_since.get_or_insert_with(Instant::now);
            if end.is_some() && empty.elapsed() >= DRAIN_PATIENCE {
                return;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(POLL) => continue,
            }
        };
        empty_since = None;
        from = last.position.offset + 1;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            sent = tx.send(Ok(records)) => if sent.is_err() { return },
        }
    }
}

/// Sleeps until `deadline`, or forever without one (the `select!` guard keeps that branch off).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
