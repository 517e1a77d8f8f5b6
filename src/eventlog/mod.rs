//! The event log: named, partitioned, append-only logs of records — Kafka topics for the batch
//! path and Kinesis-style streams for the streaming path (SPEC §4).
//!
//! The gateway appends to it (and answers only once [`EventLog::append`] has returned, i.e. once
//! the records are durable); the sink and the stream job read from it by position; `topics` /
//! `streams` administer it. Positions are not stored here: consumers keep them in their outputs
//! (sink file names, Delta commits), so correctness never depends on the log remembering readers.
//!
//! One trait, three backends chosen by URL in [`open`] (or [`open_with`], adding the client
//! settings of `pinpipe.toml`): `embedded://DIR` (the default, [`embedded`]),
//! `kafka://host:port[,host:port][?setting=value&…]` ([`kafka`]) and `kinesis://REGION` ([`kinesis`]).
//! The topics and the streams are two separate namespaces ([`Namespace`]), so `GET /topics` never
//! lists a stream.
//!
//! Offsets are contiguous per partition on the embedded and Kafka backends. Kinesis numbers its
//! records with sequence numbers that fit no integer: its backend counts the records of a shard
//! itself (the offsets this trait speaks) and reports each record's sequence number beside it
//! ([`Record::native`]); a reader that stores that next to its offset can resume without
//! re-reading the shard ([`EventLog::resume_hint`]).

mod embedded;
mod kafka;
pub(crate) mod kinesis;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::contract::{self, Table};
use crate::settings::LogUrl;

/// Which family of logs an [`EventLog`] holds; the embedded backend keeps each in its own file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// Kafka-style topics (`<id>.pin`, …), appended through the REST-proxy routes.
    Topics,
    /// Kinesis-style streams (`streaming-<id>-pin`, …), appended through the stream routes.
    Streams,
}

impl Namespace {
    /// The word users see in messages: "topic" or "stream".
    pub fn noun(self) -> &'static str {
        match self {
            Namespace::Topics => "topic",
            Namespace::Streams => "stream",
        }
    }

    /// The three log names of this namespace that every pipeline `id` uses (SPEC §4).
    pub fn default_names(self, id: &str) -> [String; 3] {
        Table::ALL.map(|table| self.name_of(id, table))
    }

    /// The name of `table`'s log in this namespace for pipeline `id` ([`crate::contract`]).
    pub(crate) fn name_of(self, id: &str, table: Table) -> String {
        match self {
            Namespace::Topics => contract::topic(id, table),
            Namespace::Streams => contract::stream(id, table),
        }
    }
}

/// How long a log keeps its records before they may be removed: Kafka's `retention.ms`, the
/// Kinesis retention period. Each namespace has a default (`[log] retention`, `[streams]
/// retention`: 7 days and 24 hours, as Kafka and Kinesis); a log can have its own
/// (`topics create --retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Records stay until their log is deleted (Kafka's `retention.ms = -1`).
    Forever,
    /// Records older than this may be removed.
    For(Duration),
}

impl Retention {
    /// The namespace's default: Kafka's 7 days for topics, Kinesis' 24 hours for streams.
    pub fn default_for(namespace: Namespace) -> Retention {
        match namespace {
            Namespace::Topics => Retention::For(Duration::from_secs(7 * 86_400)),
            Namespace::Streams => Retention::For(Duration::from_secs(86_400)),
        }
    }

    /// Kafka's `retention.ms` value for this retention (`-1`: forever).
    pub fn as_millis(self) -> i64 {
        match self {
            Retention::Forever => -1,
            Retention::For(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// The retention a `retention.ms` value means (negative: forever).
    pub fn from_millis(ms: i64) -> Retention {
        u64::try_from(ms).map_or(Retention::Forever, |ms| Retention::For(Duration::from_millis(ms)))
    }
}

impl std::fmt::Display for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retention::Forever => f.write_str("forever"),
            Retention::For(d) => f.write_str(&crate::settings::display_duration(*d)),
        }
    }
}

/// What a reader (the sink, the stream job) does when retention removed records it had not read
/// yet (`--on-gap`, `on_gap`): never a silent skip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnGap {
    /// Stop with [`Error::Expired`], naming the log, the partition and the records lost.
    #[default]
    Stop,
    /// Log the gap, count it in `/metrics`, and go on from the partition's new start.
    Skip,
}

impl std::str::FromStr for OnGap {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "stop" => Ok(OnGap::Stop),
            "skip" => Ok(OnGap::Skip),
            other => Err(format!("`{other}` is not `stop` or `skip`")),
        }
    }
}

impl std::fmt::Display for OnGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OnGap::Stop => "stop",
            OnGap::Skip => "skip",
        })
    }
}

/// The free space the embedded log leaves on its file system (`[log] min_free`): below it,
/// appends are refused with [`Error::Backpressure`] until space is back.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum MinFree {
    /// 1 GiB or 5% of the file system, whichever is smaller.
    #[default]
    Default,
    /// This many bytes (`0`: no floor; a full disk still refuses appends).
    Bytes(u64),
    /// This share of the file system, in percent.
    Percent(f64),
}

impl MinFree {
    /// The floor in bytes on a file system of `total` bytes.
    pub fn floor(self, total: u64) -> u64 {
        match self {
            MinFree::Default => (1 << 30).min(total / 20),
            MinFree::Bytes(bytes) => bytes,
            MinFree::Percent(p) => (total as f64 * p / 100.0) as u64,
        }
    }
}

impl std::fmt::Display for MinFree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MinFree::Default => f.write_str("1GiB or 5%, whichever is smaller"),
            MinFree::Bytes(b) => write!(f, "{b} bytes"),
            MinFree::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Why a log takes no appends now ([`Error::Backpressure`], [`EventLog::pressure`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pressure {
    /// Free space on the log's file system is under the floor (`[log] min_free`).
    LowSpace { free: u64, floor: u64 },
    /// The file system refused a write: it is full.
    DiskFull,
    /// More records wait for the writer than the bound (`[log] max_pending`).
    Queue { waiting: usize, bound: usize },
}

impl Pressure {
    /// A short label for metrics: `low_space`, `disk_full`, `queue`.
    pub fn label(&self) -> &'static str {
        match self {
            Pressure::LowSpace { .. } => "low_space",
            Pressure::DiskFull => "disk_full",
            Pressure::Queue { .. } => "queue",
        }
    }
}

impl std::fmt::Display for Pressure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pressure::LowSpace { free, floor } => {
                write!(f, "{free} bytes free on its disk, under the floor of {floor} (min_free)")
            }
            Pressure::DiskFull => f.write_str("its disk is full"),
            Pressure::Queue { waiting, bound } => {
                write!(f, "{waiting} records wait to be written, the bound is {bound} (max_pending)")
            }
        }
    }
}

/// What a namespace's logs are opened with beyond their URL: the `[log]` / `[streams]` settings
/// that say how they keep records and when they refuse more.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// The retention of every log without one of its own.
    pub retention: Retention,
    /// Embedded: most bytes of records the namespace's file keeps; past it the oldest go,
    /// whatever their age (`None`: no limit).
    pub retention_bytes: Option<u64>,
    /// Embedded: the free space to leave on the log's file system.
    pub min_free: MinFree,
    /// Embedded: most records waiting for the writer before appends are refused.
    pub max_pending: usize,
}

impl Policy {
    /// Records that may wait for the embedded log's writer by default.
    pub const DEFAULT_MAX_PENDING: usize = 100_000;

    /// The defaults of `namespace` (see [`Retention::default_for`]).
    pub fn default_for(namespace: Namespace) -> Policy {
        Policy {
            retention: Retention::default_for(namespace),
            retention_bytes: None,
            min_free: MinFree::Default,
            max_pending: Self::DEFAULT_MAX_PENDING,
        }
    }
}

/// A record to append. The value is the record's JSON text (compact, one line); the key, when
/// present, picks the partition by hash unless `partition` names one explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    /// Kafka key / Kinesis partition key bytes.
    pub key: Option<Vec<u8>>,
    /// The payload, stored and returned byte for byte.
    pub value: Vec<u8>,
    /// An explicit partition (Kafka REST `partition`), else chosen from the key or round robin.
    pub partition: Option<u32>,
}

impl NewRecord {
    /// A record with only a value: the partition is chosen round robin.
    pub fn value(value: impl Into<Vec<u8>>) -> Self {
        NewRecord { key: None, value: value.into(), partition: None }
    }
}

/// Where a record sits: its partition (Kinesis: shard) and its offset in that partition.
/// Offsets start at 0 and are contiguous per partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub partition: u32,
    pub offset: u64,
}

impl Position {
    /// The Kinesis-style shard id of this position's partition (`shardId-000000000000`).
    pub fn shard_id(&self) -> String {
        shard_id(self.partition)
    }

    /// The Kinesis-style sequence number of this position: the offset as a fixed-width decimal,
    /// so sequence numbers of one shard sort as strings the way they sort as numbers.
    pub fn sequence_number(&self) -> String {
        format!("{:020}", self.offset)
    }
}

/// Where an appended record landed, as the backend numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Backends with offsets (embedded, Kafka): the partition and the record's offset.
    Offset(Position),
    /// Kinesis: the shard and the sequence number the service assigned.
    Sequence { partition: u32, sequence_number: String },
}

impl Appended {
    /// The partition (shard) the record went to.
    pub fn partition(&self) -> u32 {
        match self {
            Appended::Offset(p) => p.partition,
            Appended::Sequence { partition, .. } => *partition,
        }
    }

    /// The record's offset, when the backend numbers records by offset.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Appended::Offset(p) => Some(p.offset),
            Appended::Sequence { .. } => None,
        }
    }

    /// The Kinesis-style shard id of the record's partition.
    pub fn shard_id(&self) -> String {
        shard_id(self.partition())
    }

    /// The Kinesis-style sequence number: the service's own, or the offset written as one.
    pub fn sequence_number(&self) -> String {
        match self {
            Appended::Offset(p) => p.sequence_number(),
            Appended::Sequence { sequence_number, .. } => sequence_number.clone(),
        }
    }
}

/// The Kinesis shard id naming partition `p`.
pub fn shard_id(p: u32) -> String {
    format!("shardId-{p:012}")
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub position: Position,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    /// When the log accepted it, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The backend's own position of the record when it is not the offset (Kinesis: the sequence
    /// number); `None` on the embedded and Kafka backends.
    pub native: Option<String>,
}

/// What `describe` reports about one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogInfo {
    pub name: String,
    pub partitions: Vec<PartitionInfo>,
    /// The log's identity beyond its name: a deleted and re-created log of the same name has
    /// another one (Kafka's topic ids). Readers store it with their positions and compare it on
    /// start, so they never resume a new log from an old log's positions. Embedded: an id made at
    /// creation; Kinesis: the stream ARN and its creation time; Kafka: `None` (the client cannot
    /// see topic ids), so readers fall back to checking their positions against the log's end.
    pub incarnation: Option<String>,
}

/// One partition's extent: offsets `start..end` are readable (`end` is the next offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: u32,
    pub start: u64,
    pub end: u64,
}

/// Errors of the event log, whatever the backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{noun} `{name}` does not exist")]
    NotFound { noun: &'static str, name: String },
    #[error("{noun} `{name}` already exists")]
    AlreadyExists { noun: &'static str, name: String },
    #[error("{noun} `{name}` has no partition {partition} (it has {partitions})")]
    NoSuchPartition { noun: &'static str, name: String, partition: u32, partitions: u32 },
    #[error("invalid {noun} name `{name}`: {reason}")]
    InvalidName { noun: &'static str, name: String, reason: &'static str },
    #[error("invalid partition count {0}: must be between 1 and 1024")]
    InvalidPartitionCount(u32),
    /// The embedded log's address space is used up (2^38 offsets per partition, 32,767 logs).
    #[error("{noun} `{name}` partition {partition} is full")]
    Full { noun: &'static str, name: String, partition: u32 },
    /// A URL the backend cannot work with (a bad setting, no region, streams on Kafka, …).
    #[error("invalid event log URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// A remote backend (Kafka broker, Kinesis endpoint) failed or could not be reached: nothing
    /// was acknowledged, retrying later may succeed; the gateway answers 503.
    #[error("{backend} unavailable: {detail}")]
    Unavailable { backend: &'static str, detail: String },
    /// A remote backend refused the request itself (a limit, a bad argument): retrying will not
    /// help.
    #[error("{backend} refused the request: {detail}")]
    Refused { backend: &'static str, detail: String },
    /// The backing store failed or is unreachable: the gateway answers 503, nothing was
    /// acknowledged.
    #[error("event log storage at {path} failed")]
    Storage {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("event log at {path} could not be opened")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the event log writer has stopped")]
    Closed,
    /// A reader asked for records that retention has already removed: `start - from` records of
    /// the partition are lost to it. The reader decides: stop (the default) or skip to `start`.
    #[error(
        "{noun} `{name}` partition {partition}: offsets {from} to {last} were removed by retention before they were read \
         ({lost} record(s) lost); the partition now starts at offset {start}",
        last = .start.saturating_sub(1), lost = .start.saturating_sub(*.from)
    )]
    Expired { noun: &'static str, name: String, partition: u32, from: u64, start: u64 },
    /// The log takes no appends now, and nothing of this one was stored: retry later (the gateway
    /// answers 503 with `Retry-After`). It takes appends again by itself once the cause is gone.
    #[error("the {noun} log at {path} takes no records now: {pressure}")]
    Backpressure { noun: &'static str, path: String, pressure: Pressure },
}

impl Error {
    /// True when the failure is the log's, not the caller's: retrying later may succeed.
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(self, Error::Storage { .. } | Error::Io { .. } | Error::Closed | Error::Unavailable { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An append-only, partitioned, durable log of records (see the module doc).
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Topics or streams.
    fn namespace(&self) -> Namespace;

    /// Creates a log with `partitions` partitions (shards) that keeps its records for
    /// `retention`, or for the namespace's default when `None` (embedded: follows the default as
    /// it changes; Kafka: `retention.ms` set at creation; Kinesis: the stream's retention period).
    async fn create(&self, name: &str, partitions: u32, retention: Option<Retention>) -> Result<LogInfo>;

    /// The names of all logs, sorted.
    async fn list(&self) -> Result<Vec<String>>;

    /// The partitions of one log with their readable extents.
    async fn describe(&self, name: &str) -> Result<LogInfo>;

    /// Deletes a log and all its records.
    async fn delete(&self, name: &str) -> Result<()>;

    /// Appends records, all or none, and returns where each landed, in order, once they are
    /// durable (embedded: synced to disk; Kafka: acknowledged by all in-sync replicas; Kinesis:
    /// accepted by the service).
    async fn append(&self, name: &str, records: Vec<NewRecord>) -> Result<Vec<Appended>>;

    /// Up to `max` records of one partition from offset `from` on, in offset order; empty when
    /// `from` is the end. Never waits long for new records: followers poll. [`Error::Expired`]
    /// when retention removed records from `from` on that were never read: never a silent skip.
    async fn read(&self, name: &str, partition: u32, from: u64, max: usize) -> Result<Vec<Record>>;

    /// Tells the log that offset `next` of `partition` follows the record whose
    /// [`Record::native`] position was `after`, so that a later `read(name, partition, next, …)`
    /// can start there directly. Only backends whose offsets are their own count (Kinesis) use
    /// it; for the others offsets are positions already and this does nothing.
    fn resume_hint(&self, name: &str, partition: u32, next: u64, after: &str) {
        let _ = (name, partition, next, after);
    }

    /// Why the log refuses appends now, if it does (as last seen; cheap). Only the embedded log
    /// refuses by itself; the remote ones say so per call ([`Error::Unavailable`]).
    fn pressure(&self) -> Option<Pressure> {
        None
    }
}

/// Client settings for the remote backends that do not fit in a URL: the `[kafka]` table of
/// `pinpipe.toml` (librdkafka properties, under those of the URL's query).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientSettings {
    /// librdkafka client properties (`security.protocol`, `sasl.*`, `ssl.*`, …).
    pub kafka: BTreeMap<String, String>,
}

impl std::fmt::Debug for ClientSettings {
    /// Names the settings but never shows their values (passwords live here).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSettings").field("kafka", &self.kafka.keys().collect::<Vec<_>>()).finish()
    }
}

/// Opens the log `url` names for `namespace` (each backend's module documents its URL), with no
/// settings beyond the URL's and the namespace's default [`Policy`].
pub async fn open(url: &LogUrl, namespace: Namespace) -> Result<Arc<dyn EventLog>> {
    open_with(url, namespace, &ClientSettings::default(), Policy::default_for(namespace)).await
}

/// [`open`] with the client settings and the namespace's policy from the settings.
pub async fn open_with(
    url: &LogUrl,
    namespace: Namespace,
    settings: &ClientSettings,
    policy: Policy,
) -> Result<Arc<dyn EventLog>> {
    match url {
        LogUrl::Embedded(dir) => Ok(Arc::new(embedded::EmbeddedLog::open(dir, namespace, policy).await?)),
        LogUrl::Kafka(kafka) => kafka::open(kafka, namespace, settings, policy).await,
        LogUrl::Kinesis(kinesis) => kinesis::open(kinesis, namespace, policy).await,
    }
}

/// Opens the log named by `url` and makes sure the three logs of pipeline `id` exist in it: what
/// every stage does on start, so the six default topics and streams exist after the first one.
pub async fn open_with_defaults(
    url: &LogUrl,
    namespace: Namespace,
    id: &str,
    settings: &ClientSettings,
    policy: Policy,
) -> Result<Arc<dyn EventLog>> {
    let log = open_with(url, namespace, settings, policy).await?;
    ensure_defaults(&*log, id).await?;
    Ok(log)
}

/// Creates the three logs of SPEC §4 for pipeline `id` in `log`'s namespace, one partition each,
/// unless they exist.
pub async fn ensure_defaults(log: &dyn EventLog, id: &str) -> Result<()> {
    let existing = log.list().await?;
    for name in log.namespace().default_names(id) {
        if !existing.contains(&name) {
            match log.create(&name, 1, None).await {
                Ok(_) | Err(Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Checks a topic or stream name: 1–249 characters of `[A-Za-z0-9._-]`, as Kafka requires
/// (Kinesis allows a subset of the same).
pub(crate) fn validate_name(namespace: Namespace, name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 249 {
        Some("it is longer than 249 characters")
    } else if name == "." || name == ".." {
        Some("it is `.` or `..`")
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        Some("only ASCII letters, digits, `.`, `_` and `-` are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName { noun: namespace.noun(), name: name.into(), reason }),
        None => Ok(()),
    }
}

/// The partition a keyed record goes to: the key's MD5 as a 128-bit number, split evenly over the
/// partitions — how Kinesis maps partition keys to shards' hash-key ranges.
pub(crate) fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    use md5::{Digest, Md5};
    let hash = u128::from_be_bytes(Md5::digest(key).into());
    // The top 64 bits scaled to [0, partitions): the same split as equal hash-key ranges.
    (((hash >> 64) * u128::from(partitions.max(1))) >> 64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_every_partition_and_stay_in_range() {
        let mut seen = [0u32; 4];
        for i in 0..1000 {
            let p = partition_for_key(format!("key-{i}").as_bytes(), 4);
            seen[p as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 150), "{seen:?}");
        assert_eq!(partition_for_key(b"anything", 1), 0);
    }

    #[test]
    fn names_follow_kafka_rules() {
        assert!(validate_name(Namespace::Topics, "pinterest.pin").is_ok());
        assert!(validate_name(Namespace::Streams, "streaming-pinterest-pin").is_ok());
        for bad in ["", ".", "a b", "a/b", &"x".repeat(250)] {
            assert!(validate_name(Namespace::Topics, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sequence_numbers_sort_like_offsets() {
        let a = Position { partition: 0, offset: 9 }.sequence_number();
        let b = Position { partition: 0, offset: 10 }.sequence_number();
        assert!(a < b);
        assert_eq!(Position { partition: 3, offset: 0 }.shard_id(), "shardId-000000000003");
    }
}
