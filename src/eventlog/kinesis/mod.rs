//! The `kinesis://REGION[?endpoint=URL]` backend: Kinesis data streams through aws-sdk-kinesis,
//! or any server that speaks its API (kinesalite in the tests).
//!
//! Used by the gateway's stream routes (appends) and the stream job (reads) when the streams log
//! URL names Kinesis; [`super::open`] picks it by URL. Credentials, and the region when the URL
//! gives none, come from the usual AWS chain (environment, profile, instance role);
//! `AWS_ENDPOINT_URL` is honoured as by every AWS SDK, `?endpoint=` wins over it.
//!
//! # Partitions and offsets
//! Partition `i` is the `i`-th shard of the stream, shards sorted by shard id. Resharding is out
//! of scope: a resharded stream lists its closed parents and its children side by side and
//! nothing here follows a parent into its children.
//!
//! Kinesis numbers records with sequence numbers (up to 128-bit decimals, with gaps), so this
//! backend counts a shard's records itself: offset `n` is the `n`-th record from `TRIM_HORIZON`
//! (the oldest record still retained) — or, after [`EventLog::resume_hint`], the count a reader
//! continues from its own stored position. Each record carries its sequence number in
//! [`Record::native`]. Per (stream, shard) the backend keeps a read cursor {next offset, shard
//! iterator, sequence number of the record before `next`}: a `read` from the cursor's offset
//! continues its iterator (one `GetRecords`); a read from further on skips forward; any other
//! read starts again at `TRIM_HORIZON` and skips `from` records — correct while nothing has
//! expired from the shard, and slow, so it logs a warning. A reader that stored the sequence
//! number of its last record calls `resume_hint` and reads on from `AFTER_SEQUENCE_NUMBER`,
//! which stays right after records expire. An expired iterator is re-made from the cursor.
//!
//! `describe` reports every partition as `start` 0, `end` 0: Kinesis cannot count a shard's
//! records without reading all of them, so `end` is unknown (readers read until a read comes back
//! empty).
//!
//! # Appends
//! `PutRecords` in chunks of at most 500 records and 5 MiB. A keyed record goes where Kinesis
//! hashes its partition key (the key bytes, which must be 1–256 characters of UTF-8:
//! [`is_valid_partition_key`], which the gateway checks too); a record naming a partition is sent
//! with `ExplicitHashKey` = that shard's starting hash key; a record with neither is spread round
//! robin the same way, with the partition key `-` (which it reads back as its key). Records that
//! `PutRecords` reports failed (throttling, internal failure) are sent again with backoff, chunks
//! in order, so the receipts come back in input order. An append gives up after [`APPEND_DEADLINE`]
//! with [`Error::Unavailable`]; as with any Kinesis producer, records of a failed append (or of an
//! attempt that timed out) may still land, so an append is at least once, not all or none, when it
//! fails. A record retried after throttling may land after later records of the same call.
//!
//! Reads never wait long, and keep within a shard's five `GetRecords` calls a second: calls on
//! one shard are at least [`MIN_CALL_GAP`] apart (a read waits out the rest of the gap), and after
//! a read finds a shard caught up, reads of it return nothing for [`IDLE_PAUSE`] without calling
//! Kinesis.
//!
//! # Files
//! [`client`] connects (the URL, the SDK's timeouts and retries) and classifies failures;
//! [`streams`] creates, lists, describes and deletes streams and knows their shards; [`put`]
//! appends; [`read`] reads through the per-shard cursors. This file holds [`KinesisLog`], the
//! limits callers see, the caches' shared upkeep, and the [`EventLog`] impl that hands each call to
//! its part.

mod client;
mod put;
mod read;
mod streams;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::Client;

use self::client::Failure;
use self::read::Cursor;
use self::streams::Shard;
use super::{Appended, Error, EventLog, LogInfo, Namespace, NewRecord, Policy, Record, Result, Retention};
use crate::backoff::Backoff;
use crate::settings::KinesisUrl;

/// How long one append may take, retries included, before it fails as unavailable (the gateway
/// then answers 503).
pub const APPEND_DEADLINE: Duration = Duration::from_secs(10);
/// How long reads of a caught-up shard answer "nothing new" without asking Kinesis.
pub const IDLE_PAUSE: Duration = Duration::from_millis(200);
/// The least time between two `GetRecords` calls on one shard (Kinesis allows five a second).
pub const MIN_CALL_GAP: Duration = Duration::from_millis(200);
/// Kinesis's limit on a partition key, in Unicode characters (see [`is_valid_partition_key`]).
pub const MAX_KEY_CHARS: usize = 256;

/// Whether Kinesis takes `key` as a partition key: 1 to [`MAX_KEY_CHARS`] Unicode characters.
/// The one statement of the rule: the gateway's stream routes refuse other keys with Kinesis's
/// own message, and an append here refuses them before calling Kinesis.
pub fn is_valid_partition_key(key: &str) -> bool {
    // A key of at most MAX_KEY_CHARS bytes has at most as many characters: count longer ones only.
    !key.is_empty() && (key.len() <= MAX_KEY_CHARS || key.chars().count() <= MAX_KEY_CHARS)
}

/// The waits between the attempts of this backend's retry loops (records `PutRecords` did not
/// take, a new stream not yet ACTIVE): 50 ms, doubling up to 1 s.
fn retry_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_secs(1))
}

/// Opens the log `url` names for `namespace`.
pub async fn open(url: &KinesisUrl, namespace: Namespace, policy: Policy) -> Result<Arc<dyn EventLog>> {
    let mut log = KinesisLog::open(url, namespace).await?;
    log.retention = policy.retention;
    Ok(Arc::new(log))
}

/// Kinesis data streams as an [`EventLog`].
pub struct KinesisLog {
    client: Client,
    namespace: Namespace,
    /// The shards of each stream seen, sorted by shard id.
    shards: Mutex<HashMap<String, Arc<Vec<Shard>>>>,
    /// Read cursors by (stream, partition); a read takes its cursor out and puts it back.
    cursors: Mutex<HashMap<(String, u32), Cursor>>,
    /// Round-robin counter for records with neither key nor partition.
    round_robin: AtomicU64,
    /// The retention period of streams created without one of their own.
    retention: Retention,
}

impl KinesisLog {
    /// "stream" or "topic", for errors.
    fn noun(&self) -> &'static str {
        self.namespace.noun()
    }

    /// Maps a failed call on log `name` to the trait's error.
    fn fail(&self, name: &str) -> impl Fn(Failure) -> Error + '_ {
        let name = name.to_string();
        move |f| f.into_error(self.noun(), &name)
    }

    /// Forgets what this process knows of `name` (it was deleted, or is gone).
    fn forget(&self, name: &str) {
        self.lock_shards().remove(name);
        self.lock_cursors().retain(|(stream, _), _| stream != name);
    }
}

#[async_trait]
impl EventLog for KinesisLog {
    fn namespace(&self) -> Namespace {
        self.namespace
    }

    async fn create(&self, name: &str, partitions: u32, retention: Option<Retention>) -> Result<LogInfo> {
        self.create_stream(name, partitions, retention.unwrap_or(self.retention)).await
    }

    async fn list(&self) -> Result<Vec<String>> {
        self.list_streams().await
    }

    async fn describe(&self, name: &str) -> Result<LogInfo> {
        self.describe_stream(name).await
    }

    async fn delete(&self, name: &str) -> Result<()> {
        self.delete_stream(name).await
    }

    async fn append(&self, name: &str, records: Vec<NewRecord>) -> Result<Vec<Appended>> {
        self.put(name, records).await
    }

    async fn read(&self, name: &str, partition: u32, from: u64, max: usize) -> Result<Vec<Record>> {
        self.read_shard(name, partition, from, max).await
    }

    fn resume_hint(&self, name: &str, partition: u32, next: u64, after: &str) {
        self.hint_cursor(name, partition, next, after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_have_1_to_256_characters_not_bytes() {
        assert!(!is_valid_partition_key(""));
        assert!(is_valid_partition_key("k"));
        assert!(is_valid_partition_key(&"k".repeat(MAX_KEY_CHARS)));
        assert!(!is_valid_partition_key(&"k".repeat(MAX_KEY_CHARS + 1)));
        // 256 characters of two bytes each: 512 bytes, still a valid key.
        assert!(is_valid_partition_key(&"é".repeat(MAX_KEY_CHARS)));
        assert!(!is_valid_partition_key(&"é".repeat(MAX_KEY_CHARS + 1)));
    }
}
