//! Reading a Kinesis shard by offset: the per-shard read cursors (next offset, shard iterator,
//! sequence number of the record before), `GetRecords` with skipping to the offset asked for, and
//! the pacing that keeps within a shard's five calls a second.
//!
//! Fed by the stream job's reads and resume hints through [`super::KinesisLog`]; feeds back
//! records numbered by offset, each with its sequence number in [`Record::native`]. How offsets
//! map to records is in the module doc of [`super`]. Leaves the shard list to [`super::streams`]
//! and the classification of failures to [`super::client`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::ShardIteratorType;

use super::client::Failure;
use super::streams::Shard;
use super::{IDLE_PAUSE, KinesisLog, MIN_CALL_GAP};
use crate::eventlog::{Error, Position, Record, Result};

/// Kinesis's limit on records per `GetRecords` call.
const MAX_GET_RECORDS: usize = 10_000;
/// Calls in a row that may return nothing while the shard reports more behind them.
const EMPTY_CALLS: u32 = 5;
/// How long a read that must skip records (no usable cursor) may keep skipping before it
/// returns, leaving its cursor where it got to.
const SKIP_BUDGET: Duration = Duration::from_secs(5);

/// Where a reader of one shard stands (see the module doc).
#[derive(Debug, Clone, Default)]
pub(super) struct Cursor {
    /// The offset the next record read gets.
    next: u64,
    /// A shard iterator positioned at offset `next`, when one is at hand.
    iterator: Option<String>,
    /// The sequence number of the record at offset `next - 1` (`None` with `next` 0: the shard's
    /// start).
    after: Option<String>,
    /// Until when the shard counts as caught up at `next`.
    idle_until: Option<Instant>,
    /// When `GetRecords` was last called on the shard.
    last_call: Option<Instant>,
}

impl KinesisLog {
    /// [`EventLog::read`](crate::eventlog::EventLog::read) of one shard: from the cursor when it
    /// serves, else from `TRIM_HORIZON`, skipping.
    pub(super) async fn read_shard(&self, name: &str, partition: u32, from: u64, max: usize) -> Result<Vec<Record>> {
        let shard = self.shard(name, partition).await?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let key = (name.to_string(), partition);
        let taken = self.lock_cursors().remove(&key);
        let mut cursor = match taken {
            Some(c) if c.next == from && c.idle_until.is_some_and(|t| Instant::now() < t) => {
                self.lock_cursors().insert(key, c);
                return Ok(Vec::new());
            }
            Some(c) if c.next <= from && (c.iterator.is_some() || c.after.is_some() || c.next == 0) => c,
            other => {
                if from > 0 {
                    tracing::warn!(
                        stream = name,
                        partition,
                        from,
                        "no Kinesis position for this offset: reading the shard from TRIM_HORIZON and skipping {from} records"
                    );
                }
                Cursor { last_call: other.and_then(|c| c.last_call), ..Cursor::default() }
            }
        };
        cursor.idle_until = None;
        let result = self.read_from(name, partition, &shard, &mut cursor, from, max).await;
        if matches!(result, Err(Error::NotFound { .. })) {
            self.forget(name);
        } else {
            self.lock_cursors().insert(key, cursor);
        }
        result
    }

    /// [`EventLog::resume_hint`](crate::eventlog::EventLog::resume_hint): a cursor at `next`, to
    /// be read on from `AFTER_SEQUENCE_NUMBER` `after`.
    pub(super) fn hint_cursor(&self, name: &str, partition: u32, next: u64, after: &str) {
        let mut cursors = self.lock_cursors();
        let key = (name.to_string(), partition);
        if cursors.get(&key).is_some_and(|c| c.next == next && c.after.as_deref() == Some(after)) {
            return;
        }
        let last_call = cursors.get(&key).and_then(|c| c.last_call);
        cursors
            .insert(key, Cursor { next, iterator: None, after: Some(after.to_string()), idle_until: None, last_call });
    }

    /// The read cursors, by (stream, partition) (a poisoned lock is taken over: the map stays valid).
    pub(super) fn lock_cursors(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), Cursor>> {
        self.cursors.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A shard iterator of `shard` of `name`: after `after` when given, else at TRIM_HORIZON.
    async fn iterator(&self, name: &str, shard: &Shard, after: Option<&str>) -> Result<Option<String>> {
        let call = self.client.get_shard_iterator().stream_name(name).shard_id(&shard.id);
        let call = match after {
            Some(seq) => call.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).starting_sequence_number(seq),
            None => call.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let out = call.send().await.map_err(|e| self.fail(name)(e.into()))?;
        Ok(out.shard_iterator().map(str::to_string))
    }

    /// Reads from `cursor` (positioned at or before `from`): skips to `from`, then returns up to
    /// `max` records. `cursor` is left where the reading stopped, also on error.
    async fn read_from(
        &self,
        name: &str,
        partition: u32,
        shard: &Shard,
        cursor: &mut Cursor,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>> {
        let started = Instant::now();
        let mut out = Vec::new();
        let mut empty_calls = 0;
        let mut expired_once = false;
        loop {
            let iterator = match cursor.iterator.clone() {
                Some(it) => it,
                None => match self.iterator(name, shard, cursor.after.as_deref()).await? {
                    Some(it) => it,
                    None => return Ok(out), // a closed shard with nothing left
                },
            };
            let skip = from.saturating_sub(cursor.next);
            let want = usize::try_from(skip).unwrap_or(usize::MAX).saturating_add(max - out.len()).min(MAX_GET_RECORDS);
            if let Some(wait) = cursor.last_call.and_then(|t| MIN_CALL_GAP.checked_sub(t.elapsed())) {
                tokio::time::sleep(wait).await;
            }
            cursor.last_call = Some(Instant::now());
            let reply = self.client.get_records().shard_iterator(iterator).limit(want.max(1) as i32).send().await;
            let reply = match reply {
                Ok(r) => r,
                Err(e) => {
                    let f = Failure::from(e);
                    cursor.iterator = None;
                    if f.is("ExpiredIteratorException") && !expired_once {
                        expired_once = true;
                        continue;
                    }
                    return Err(f.into_error(self.noun(), name));
                }
            };
            cursor.iterator = reply.next_shard_iterator().map(str::to_string);
            let got = reply.records().len();
            for r in reply.records() {
                let offset = cursor.next;
                cursor.next += 1;
                cursor.after = Some(r.sequence_number().to_string());
                if offset < from {
                    continue;
                }
                let timestamp_ms = r.approximate_arrival_timestamp().and_then(|t| t.to_millis().ok()).unwrap_or(0);
                out.push(Record {
                    position: Position { partition, offset },
                    key: r.partition_key().map(|k| k.as_bytes().to_vec()),
                    value: r.data().as_ref().to_vec(),
                    timestamp_ms,
                    native: Some(r.sequence_number().to_string()),
                });
            }
            let behind = reply.millis_behind_latest().unwrap_or(0) > 0;
            if cursor.iterator.is_none() || out.len() >= max {
                return Ok(out);
            }
            if cursor.next < from {
                // Still skipping: go on while there is more, within the budget.
                if got == 0 && !behind {
                    cursor.idle_until = Some(Instant::now() + IDLE_PAUSE);
                    return Ok(out);
                }
                if started.elapsed() > SKIP_BUDGET {
                    return Ok(out);
                }
                continue;
            }
            if !out.is_empty() {
                return Ok(out);
            }
            if !behind {
                cursor.idle_until = Some(Instant::now() + IDLE_PAUSE);
                return Ok(out);
            }
            empty_calls += 1;
            if empty_calls >= EMPTY_CALLS {
                return Ok(out);
            }
        }
    }
}
