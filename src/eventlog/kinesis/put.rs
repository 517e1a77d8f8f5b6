//! Appending to Kinesis: `PutRecords` in chunks within Kinesis's limits, each record sent to the
//! shard its key hashes to, the shard its partition names, or round robin; the records Kinesis did
//! not take are sent again with backoff until [`APPEND_DEADLINE`].
//!
//! Fed by the gateway's stream routes through [`super::KinesisLog`]; feeds Kinesis, and the
//! receipts (shard, sequence number) back to the caller in input order. Checks partition keys
//! against the rule of [`super::is_valid_partition_key`]. Leaves the shard list to
//! [`super::streams`] and the classification of failures to [`super::client`].

use std::sync::atomic::Ordering;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use tokio_util::sync::CancellationToken;

use super::client::Failure;
use super::streams::Shard;
use super::{APPEND_DEADLINE, KinesisLog, MAX_KEY_CHARS, is_valid_partition_key, retry_backoff};
use crate::eventlog::{Appended, Error, NewRecord, Result};

/// Kinesis's limits on one `PutRecords` call.
const MAX_PUT_RECORDS: usize = 500;
const MAX_PUT_BYTES: usize = 5 * 1024 * 1024;
/// The partition key of a record appended without one.
const KEYLESS_PARTITION_KEY: &str = "-";

impl KinesisLog {
    /// [`EventLog::append`](crate::eventlog::EventLog::append) to stream `name`, within
    /// [`APPEND_DEADLINE`].
    pub(super) async fn put(&self, name: &str, records: Vec<NewRecord>) -> Result<Vec<Appended>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let work = async {
            let shards = self.shards(name).await?;
            let entries = self.entries(name, &shards, records)?;
            self.put_all(name, &shards, entries).await
        };
        tokio::time::timeout(APPEND_DEADLINE, work).await.unwrap_or_else(|_| {
            Err(Error::Unavailable {
                backend: "Kinesis",
                detail: format!("appending to stream `{name}` took longer than {} s", APPEND_DEADLINE.as_secs()),
            })
        })
    }

    /// The `PutRecords` entries for `records`, checking keys and explicit partitions.
    fn entries(&self, name: &str, shards: &[Shard], records: Vec<NewRecord>) -> Result<Vec<PutRecordsRequestEntry>> {
        let partitions = u32::try_from(shards.len()).unwrap_or(u32::MAX);
        let refused = |detail: String| Error::Refused { backend: "Kinesis", detail };
        records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let key = match &r.key {
                    Some(k) => {
                        let key = std::str::from_utf8(k)
                            .map_err(|_| refused(format!("record {i}: the partition key (the key) is not UTF-8")))?;
                        if !is_valid_partition_key(key) {
                            let chars = key.chars().count();
                            return Err(refused(format!(
                                "record {i}: the partition key (the key) has {chars} characters, \
                                 Kinesis takes 1 to {MAX_KEY_CHARS}"
                            )));
                        }
                        Some(key.to_string())
                    }
                    None => None,
                };
                let shard = match (r.partition, &key) {
                    (Some(p), _) => Some(shards.get(p as usize).ok_or_else(|| Error::NoSuchPartition {
                        noun: self.noun(),
                        name: name.to_string(),
                        partition: p,
                        partitions,
                    })?),
                    (None, Some(_)) => None,
                    (None, None) => {
                        let n = self.round_robin.fetch_add(1, Ordering::Relaxed);
                        shards.get((n % u64::from(partitions.max(1))) as usize)
                    }
                };
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(r.value))
                    .partition_key(key.unwrap_or_else(|| KEYLESS_PARTITION_KEY.to_string()))
                    .set_explicit_hash_key(shard.map(|s| s.starting_hash_key.clone()))
                    .build()
                    .map_err(|e| refused(format!("record {i}: {e}")))
            })
            .collect()
    }

    /// Puts `entries` chunk by chunk, retrying failed records, until every one is accepted.
    async fn put_all(
        &self,
        name: &str,
        shards: &[Shard],
        entries: Vec<PutRecordsRequestEntry>,
    ) -> Result<Vec<Appended>> {
        let mut receipts: Vec<Option<Appended>> = vec![None; entries.len()];
        let mut start = 0;
        while start < entries.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < entries.len() && end - start < MAX_PUT_RECORDS {
                let size = entries[end].data().as_ref().len() + entries[end].partition_key().map_or(0, str::len);
                if end > start && bytes + size > MAX_PUT_BYTES {
                    break;
                }
                bytes += size;
                end += 1;
            }
            self.put_chunk(name, shards, &entries, start..end, &mut receipts).await?;
            start = end;
        }
        receipts
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.ok_or_else(|| Error::Unavailable { backend: "Kinesis", detail: format!("record {i} was not put") })
            })
            .collect()
    }

    /// Puts the records of `range`, sending again those Kinesis did not take, and writes each
    /// record's receipt into `receipts`.
    async fn put_chunk(
        &self,
        name: &str,
        shards: &[Shard],
        entries: &[PutRecordsRequestEntry],
        range: std::ops::Range<usize>,
        receipts: &mut [Option<Appended>],
    ) -> Result<()> {
        let mut pending: Vec<usize> = range.collect();
        let mut backoff = retry_backoff();
        // Only APPEND_DEADLINE (which drops this future) ends the retries: no shutdown cuts the
        // pauses short.
        let no_shutdown = CancellationToken::new();
        loop {
            let call = self
                .client
                .put_records()
                .stream_name(name)
                .set_records(Some(pending.iter().map(|&i| entries[i].clone()).collect()));
            let failed = match call.send().await {
                Ok(out) => {
                    let mut failed = Vec::new();
                    for (&i, result) in pending.iter().zip(out.records()) {
                        match (result.error_code(), result.shard_id(), result.sequence_number()) {
                            (None, Some(shard), Some(seq)) => {
                                let partition = self.partition_of(name, shards, shard).await?;
                                receipts[i] = Some(Appended::Sequence { partition, sequence_number: seq.to_string() });
                            }
                            (code, _, _) => {
                                tracing::debug!(stream = name, record = i, ?code, message = ?result.error_message(), "Kinesis did not take a record; retrying it");
                                failed.push(i);
                            }
                        }
                    }
                    // A reply with fewer results than records: the rest are retried too.
                    failed.extend(pending.iter().skip(out.records().len()).copied());
                    failed
                }
                Err(e) => {
                    let f = Failure::from(e);
                    if f.is("ResourceNotFoundException") {
                        self.forget(name);
                    }
                    if !f.transient {
                        return Err(f.into_error(self.noun(), name));
                    }
                    tracing::warn!(stream = name, detail = %f.detail, "PutRecords failed; retrying");
                    pending.clone()
                }
            };
            if failed.is_empty() {
                return Ok(());
            }
            pending = failed;
            backoff.pause(&no_shutdown).await;
        }
    }
}
