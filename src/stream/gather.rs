//! Reading one micro-batch from the streams ([`gather`]): where each owned partition stands, how
//! much to take, when to cut the batch; and asking the log again while it is unavailable
//! ([`read_retrying`], [`describe_retrying`]).
//!
//! Owns the batch cut (`max_batch_records`, `max_latency`, `drain`, shutdown) and the read
//! retries; leaves cleaning and committing the records to [`super::round`] and where a partition
//! resumes at start to [`super::resume`]. Fed by the [`EventLog`] streams namespace and the
//! sources' cursors, which it moves past what it read; feeds [`super::run`] one [`Round`] at a
//! time.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::positions::Cursor;
use super::{Error, Round, Source, StreamConfig, now_ms};
use crate::backoff::Backoff;
use crate::eventlog::{EventLog, OnGap, Record};

/// How often an idle job looks for new records.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Reads one micro-batch: until a stream holds `max_batch_records`, the oldest record read has
/// waited `max_latency`, the streams are read to their end (`drain`), or shutdown.
pub(super) async fn gather(
    cfg: &StreamConfig,
    log: &dyn EventLog,
    sources: &mut [Source],
    shutdown: &CancellationToken,
) -> Result<Round, Error> {
    let mut round: Round = sources.iter().map(|_| Vec::new()).collect();
    let mut deadline: Option<Instant> = None;
    loop {
        let mut got = false;
        for (source, pending) in sources.iter_mut().zip(round.iter_mut()) {
            for cursor in &mut source.cursors {
                let room = cfg.max_batch_records.saturating_sub(pending.len());
                if room == 0 {
                    break;
                }
                let records = read_retrying(log, &source.stream, cursor, room, cfg.on_gap, shutdown).await?;
                let (Some(first), Some(last)) = (records.first(), records.last()) else { continue };
                got = true;
                cursor.next = last.position.offset + 1;
                if deadline.is_none() {
                    // Count the wait from when the log accepted the record, but never past
                    // `max_latency` from now (clocks of other machines may be ahead).
                    let waited = Duration::from_millis(u64::try_from(now_ms() - first.timestamp_ms).unwrap_or(0));
                    deadline = Some(Instant::now() + cfg.max_latency.saturating_sub(waited));
                }
                pending.extend(records);
            }
        }
        if round.iter().any(|r| r.len() >= cfg.max_batch_records) || shutdown.is_cancelled() {
            return Ok(round);
        }
        if cfg.drain {
            // Read on without waiting until the streams are at their end.
            if got {
                continue;
            }
            return Ok(round);
        }
        let now = Instant::now();
        let wait = match deadline {
            Some(d) if d <= now => return Ok(round),
            Some(d) => POLL_INTERVAL.min(d - now),
            None => POLL_INTERVAL,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

/// Reads up to `max` records at `cursor`; while the log is unavailable (a remote log down or
/// throttling), waits with backoff and tries again, until shutdown (then: nothing read). When
/// retention removed the records at the cursor, stops with the error or, as `on_gap` says, skips
/// to the partition's start.
async fn read_retrying(
    log: &dyn EventLog,
    stream: &str,
    cursor: &mut Cursor,
    max: usize,
    on_gap: OnGap,
    shutdown: &CancellationToken,
) -> Result<Vec<Record>, Error> {
    let mut backoff = Backoff::default();
    loop {
        match log.read(stream, cursor.partition, cursor.next, max).await {
            Ok(records) => return Ok(records),
            Err(crate::eventlog::Error::Expired { start, .. }) if on_gap == OnGap::Skip => {
                crate::observe::gap_skipped(stream, cursor.partition, cursor.next, start);
                cursor.next = start;
            }
            Err(e) if e.is_unavailable() && !shutdown.is_cancelled() => {
                tracing::warn!(stream, partition = cursor.partition, offset = cursor.next, error = %e, retry_in_ms = backoff.next_wait().as_millis() as u64, "reading the stream failed; retrying");
                if !backoff.pause(shutdown).await {
                    return Ok(Vec::new());
                }
            }
            Err(source) => {
                return Err(Error::Read {
                    stream: stream.to_string(),
                    partition: cursor.partition,
                    offset: cursor.next,
                    source,
                });
            }
        }
    }
}

/// Describes `stream`, waiting with backoff while the log is unavailable (until shutdown).
pub(super) async fn describe_retrying(
    log: &dyn EventLog,
    stream: &str,
    shutdown: &CancellationToken,
) -> Result<crate::eventlog::LogInfo, Error> {
    let mut backoff = Backoff::default();
    loop {
        match log.describe(stream).await {
            Ok(info) => return Ok(info),
            Err(e) if e.is_unavailable() && !shutdown.is_cancelled() => {
                tracing::warn!(stream, error = %e, retry_in_ms = backoff.next_wait().as_millis() as u64, "describing the stream failed; retrying");
                backoff.pause(shutdown).await;
            }
            Err(source) => return Err(Error::Describe { stream: stream.to_string(), source }),
        }
    }
}
