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
//! hashes its partition key (the key bytes, which must be 1–256 characters of UTF-8); a record
//! naming a partition is sent with `ExplicitHashKey` = that shard's starting hash key; a record
//! with neither is spread round robin the same way, with the partition key `-` (which it reads
//! back as its key). Records that `PutRecords` reports failed (throttling, internal failure) are
//! sent again with backoff, chunks in order, so the receipts come back in input order. An append
//! gives up after [`APPEND_DEADLINE`] with [`Error::Unavailable`]; as with any Kinesis producer,
//! records of a failed append (or of an attempt that timed out) may still land, so an append is
//! at least once, not all or none, when it fails. A record retried after throttling may land
//! after later records of the same call.
//!
//! Reads never wait long, and keep within a shard's five `GetRecords` calls a second: calls on
//! one shard are at least [`MIN_CALL_GAP`] apart (a read waits out the rest of the gap), and after
//! a read finds a shard caught up, reads of it return nothing for [`IDLE_PAUSE`] without calling
//! Kinesis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};

use super::{Appended, Error, EventLog, LogInfo, Namespace, NewRecord, PartitionInfo, Position, Record, Result};

/// How long one append may take, retries included, before it fails as unavailable (the gateway
/// then answers 503).
pub const APPEND_DEADLINE: Duration = Duration::from_secs(10);
/// How long reads of a caught-up shard answer "nothing new" without asking Kinesis.
pub const IDLE_PAUSE: Duration = Duration::from_millis(200);
/// The least time between two `GetRecords` calls on one shard (Kinesis allows five a second).
pub const MIN_CALL_GAP: Duration = Duration::from_millis(200);
/// Kinesis's limits on one `PutRecords` call.
const MAX_PUT_RECORDS: usize = 500;
const MAX_PUT_BYTES: usize = 5 * 1024 * 1024;
/// Kinesis's limit on records per `GetRecords` call.
const MAX_GET_RECORDS: usize = 10_000;
/// Calls in a row that may return nothing while the shard reports more behind them.
const EMPTY_CALLS: u32 = 5;
/// How long a read that must skip records (no usable cursor) may keep skipping before it
/// returns, leaving its cursor where it got to.
const SKIP_BUDGET: Duration = Duration::from_secs(5);
/// How long `create` waits for a new stream to become ACTIVE.
const CREATE_DEADLINE: Duration = Duration::from_secs(120);
/// Kinesis's limit on stream names.
const MAX_NAME_CHARS: usize = 128;
/// Kinesis's limit on a partition key, in characters.
const MAX_KEY_CHARS: usize = 256;
/// The partition key of a record appended without one.
const KEYLESS_PARTITION_KEY: &str = "-";

/// Opens the log `url` names for `namespace`.
pub async fn open(url: &str, namespace: Namespace) -> Result<Arc<dyn EventLog>> {
    Ok(Arc::new(KinesisLog::open(url, namespace).await?))
}

/// One shard of a stream, as partition `index` of the log.
#[derive(Debug, Clone)]
struct Shard {
    id: String,
    starting_hash_key: String,
}

/// Where a reader of one shard stands (see the module doc).
#[derive(Debug, Clone, Default)]
struct Cursor {
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
}

/// A failed Kinesis call, classified.
struct Failure {
    /// The service's error code (`ResourceNotFoundException`, …), when it answered.
    code: Option<String>,
    /// True when retrying later may succeed (throttling, 5xx, timeouts, no connection).
    transient: bool,
    detail: String,
}

impl<E: ProvideErrorMetadata + std::error::Error + 'static> From<SdkError<E, HttpResponse>> for Failure {
    fn from(e: SdkError<E, HttpResponse>) -> Failure {
        let code = e.code().map(str::to_string);
        let status = e.raw_response().map(|r| r.status().as_u16());
        let transient = match &e {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
            _ => {
                status.is_some_and(|s| s >= 500)
                    || matches!(
                        code.as_deref(),
                        Some(
                            "ProvisionedThroughputExceededException"
                                | "LimitExceededException"
                                | "ThrottlingException"
                                | "KMSThrottlingException"
                                | "InternalFailure"
                                | "ServiceUnavailable"
                                | "ServiceUnavailableException"
                                // A stream being created or deleted: `create` reads it as
                                // "already exists" before this applies.
                                | "ResourceInUseException"
                        )
                    )
            }
        };
        Failure { code, transient, detail: DisplayErrorContext(&e).to_string() }
    }
}

impl Failure {
    fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// The log error for a failure on stream `name`.
    fn into_error(self, noun: &'static str, name: &str) -> Error {
        if self.is("ResourceNotFoundException") {
            Error::NotFound { noun, name: name.to_string() }
        } else if self.transient {
            Error::Unavailable { backend: "Kinesis", detail: self.detail }
        } else {
            Error::Refused { backend: "Kinesis", detail: self.detail }
        }
    }
}

/// The Kinesis URL's parts: the region (empty: from the AWS chain) and the endpoint override.
fn parse_url(url: &str) -> Result<(Option<String>, Option<String>)> {
    let invalid = |reason: &str| Error::InvalidUrl { url: url.to_string(), reason: reason.to_string() };
    let rest = url.strip_prefix("kinesis://").ok_or_else(|| Error::UnsupportedUrl(url.to_string()))?;
    let (region, query) = rest.split_once('?').unwrap_or((rest, ""));
    let region = region.trim_end_matches('/');
    if !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(invalid("the region may hold only letters, digits and `-`"));
    }
    let mut endpoint = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "endpoint" if v.starts_with("http://") || v.starts_with("https://") => endpoint = Some(v.into_owned()),
            "endpoint" => return Err(invalid("`endpoint` must be an http:// or https:// URL")),
            other => return Err(invalid(&format!("unknown setting `{other}` (expected `endpoint`)"))),
        }
    }
    Ok(((!region.is_empty()).then(|| region.to_string()), endpoint))
}

impl KinesisLog {
    /// Connects to Kinesis as `url` says (no call is made until the first operation).
    pub async fn open(url: &str, namespace: Namespace) -> Result<KinesisLog> {
        let (region, endpoint) = parse_url(url)?;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(2))
            .operation_attempt_timeout(Duration::from_secs(4))
            .operation_timeout(Duration::from_secs(9))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(3));
        if let Some(region) = region {
            loader = loader.region(Region::new(region));
        }
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(Error::InvalidUrl {
                url: url.to_string(),
                reason: "no region: write kinesis://REGION or set AWS_REGION".to_string(),
            });
        }
        Ok(KinesisLog {
            client: Client::new(&config),
            namespace,
            shards: Mutex::new(HashMap::new()),
            cursors: Mutex::new(HashMap::new()),
            round_robin: AtomicU64::new(0),
        })
    }

    fn noun(&self) -> &'static str {
        self.namespace.noun()
    }

    fn fail(&self, name: &str) -> impl Fn(Failure) -> Error + '_ {
        let name = name.to_string();
        move |f| f.into_error(self.noun(), &name)
    }

    /// The shards of `name` sorted by id, asking Kinesis (all pages) and remembering the answer.
    async fn list_shards(&self, name: &str) -> Result<Arc<Vec<Shard>>> {
        let mut shards = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let call = match &token {
                Some(t) => self.client.list_shards().next_token(t),
                None => self.client.list_shards().stream_name(name),
            };
            let out = call.send().await.map_err(|e| self.fail(name)(e.into()))?;
            for s in out.shards() {
                let starting_hash_key =
                    s.hash_key_range().map(|r| r.starting_hash_key().to_string()).unwrap_or_default();
                shards.push(Shard { id: s.shard_id().to_string(), starting_hash_key });
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        shards.sort_by(|a, b| a.id.cmp(&b.id));
        let shards = Arc::new(shards);
        self.lock_shards().insert(name.to_string(), Arc::clone(&shards));
        Ok(shards)
    }

    /// The stream's identity: its ARN and creation time (a stream deleted and created again under
    /// the same name has the same ARN, but not the same creation time).
    async fn incarnation(&self, name: &str) -> Result<Option<String>> {
        let out = self.client.describe_stream_summary().stream_name(name).send().await;
        let out = out.map_err(|e| self.fail(name)(e.into()))?;
        Ok(out.stream_description_summary().map(|s| {
            let created = s.stream_creation_timestamp();
            format!("{}@{}.{:09}", s.stream_arn(), created.secs(), created.subsec_nanos())
        }))
    }

    /// The shards of `name`, from memory when seen before.
    async fn shards(&self, name: &str) -> Result<Arc<Vec<Shard>>> {
        let known = self.lock_shards().get(name).cloned();
        match known {
            Some(s) => Ok(s),
            None => self.list_shards(name).await,
        }
    }

    fn lock_shards(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Vec<Shard>>>> {
        self.shards.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_cursors(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), Cursor>> {
        self.cursors.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets what this process knows of `name` (it was deleted, or is gone).
    fn forget(&self, name: &str) {
        self.lock_shards().remove(name);
        self.lock_cursors().retain(|(stream, _), _| stream != name);
    }

    /// The shard of `partition`, or the error naming the partition.
    async fn shard(&self, name: &str, partition: u32) -> Result<Shard> {
        let shards = self.shards(name).await?;
        shards.get(partition as usize).cloned().ok_or_else(|| Error::NoSuchPartition {
            noun: self.noun(),
            name: name.to_string(),
            partition,
            partitions: u32::try_from(shards.len()).unwrap_or(u32::MAX),
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
                        let chars = key.chars().count();
                        if chars == 0 || chars > MAX_KEY_CHARS {
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

    async fn put_chunk(
        &self,
        name: &str,
        shards: &[Shard],
        entries: &[PutRecordsRequestEntry],
        range: std::ops::Range<usize>,
        receipts: &mut [Option<Appended>],
    ) -> Result<()> {
        let mut pending: Vec<usize> = range.collect();
        let mut backoff = Duration::from_millis(50);
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
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// The partition of the shard `PutRecords` named.
    async fn partition_of(&self, name: &str, shards: &[Shard], shard_id: &str) -> Result<u32> {
        if let Some(i) = shards.iter().position(|s| s.id == shard_id) {
            return Ok(i as u32);
        }
        let fresh = self.list_shards(name).await?;
        fresh.iter().position(|s| s.id == shard_id).map(|i| i as u32).ok_or_else(|| Error::Refused {
            backend: "Kinesis",
            detail: format!("stream `{name}` put a record in unknown shard {shard_id} (resharding is not supported)"),
        })
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

#[async_trait]
impl EventLog for KinesisLog {
    fn namespace(&self) -> Namespace {
        self.namespace
    }

    async fn create(&self, name: &str, partitions: u32) -> Result<LogInfo> {
        super::validate_name(self.namespace, name)?;
        if name.len() > MAX_NAME_CHARS {
            return Err(Error::InvalidName {
                noun: self.noun(),
                name: name.to_string(),
                reason: "Kinesis stream names have at most 128 characters",
            });
        }
        if !(1..=1024).contains(&partitions) {
            return Err(Error::InvalidPartitionCount(partitions));
        }
        let shard_count = i32::try_from(partitions).map_err(|_| Error::InvalidPartitionCount(partitions))?;
        let created = self.client.create_stream().stream_name(name).shard_count(shard_count).send().await;
        if let Err(e) = created {
            let f = Failure::from(e);
            return Err(if f.is("ResourceInUseException") {
                Error::AlreadyExists { noun: self.noun(), name: name.to_string() }
            } else if f.is("LimitExceededException") {
                Error::Refused { backend: "Kinesis", detail: f.detail }
            } else {
                f.into_error(self.noun(), name)
            });
        }
        self.forget(name);
        let deadline = Instant::now() + CREATE_DEADLINE;
        let mut wait = Duration::from_millis(50);
        loop {
            let out = self.client.describe_stream_summary().stream_name(name).send().await;
            let status = match out {
                Ok(o) => o.stream_description_summary().map(|s| s.stream_status().clone()),
                Err(e) => {
                    let f = Failure::from(e);
                    if !(f.transient || f.is("ResourceNotFoundException")) {
                        return Err(f.into_error(self.noun(), name));
                    }
                    None
                }
            };
            if status == Some(StreamStatus::Active) {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::Unavailable {
                    backend: "Kinesis",
                    detail: format!(
                        "stream `{name}` is not ACTIVE {} s after it was created",
                        CREATE_DEADLINE.as_secs()
                    ),
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(1));
        }
        self.describe(name).await
    }

    async fn list(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        loop {
            let out = self
                .client
                .list_streams()
                .set_exclusive_start_stream_name(names.last().cloned())
                .send()
                .await
                .map_err(|e| Failure::from(e).into_error(self.noun(), "*"))?;
            names.extend(out.stream_names().iter().cloned());
            if !out.has_more_streams() || out.stream_names().is_empty() {
                break;
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn describe(&self, name: &str) -> Result<LogInfo> {
        let shards = self.list_shards(name).await?;
        let partitions = (0..shards.len()).map(|i| PartitionInfo { partition: i as u32, start: 0, end: 0 }).collect();
        Ok(LogInfo { name: name.to_string(), partitions, incarnation: self.incarnation(name).await? })
    }

    async fn delete(&self, name: &str) -> Result<()> {
        let deleted = self.client.delete_stream().stream_name(name).enforce_consumer_deletion(true).send().await;
        self.forget(name);
        deleted.map(|_| ()).map_err(|e| self.fail(name)(e.into()))
    }

    async fn append(&self, name: &str, records: Vec<NewRecord>) -> Result<Vec<Appended>> {
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

    async fn read(&self, name: &str, partition: u32, from: u64, max: usize) -> Result<Vec<Record>> {
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

    fn resume_hint(&self, name: &str, partition: u32, next: u64, after: &str) {
        let mut cursors = self.lock_cursors();
        let key = (name.to_string(), partition);
        if cursors.get(&key).is_some_and(|c| c.next == next && c.after.as_deref() == Some(after)) {
            return;
        }
        let last_call = cursors.get(&key).and_then(|c| c.last_call);
        cursors
            .insert(key, Cursor { next, iterator: None, after: Some(after.to_string()), idle_until: None, last_call });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_region_and_an_endpoint() {
        assert_eq!(parse_url("kinesis://us-east-1").unwrap(), (Some("us-east-1".into()), None));
        assert_eq!(
            parse_url("kinesis://eu-west-1?endpoint=http://127.0.0.1:4567").unwrap(),
            (Some("eu-west-1".into()), Some("http://127.0.0.1:4567".into()))
        );
        assert_eq!(parse_url("kinesis://").unwrap(), (None, None));
        assert!(matches!(parse_url("kinesis://us-east-1?shards=2"), Err(Error::InvalidUrl { .. })));
        assert!(matches!(parse_url("kinesis://us-east-1?endpoint=localhost"), Err(Error::InvalidUrl { .. })));
        assert!(matches!(parse_url("kinesis://us east"), Err(Error::InvalidUrl { .. })));
    }
}
