//! One section per stage: the values a user may set for it, each optional, each checked against
//! its range ([`super::values`]) when it is read. The same struct is a `pinpipe.toml` table
//! (`[gateway]`, `[emulator]`, `[sink]`, `[stream]`, `[batch]`, `[log]` / `[streams]`) and what
//! the binary fills from its flags and `PINPIPE_*` variables; `flags.or(file)` merges the two and
//! `apply` lays the result over the stage's defaults, which each stage's config owns
//! (`SinkConfig::new`, `GatewayConfig::default`, …). The `///` of every field is the user
//! documentation of its key.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::url::LogUrl;
use super::values::{self, ByteLimit, CountRange, DurationRange, OrOff, RateRange, Worker};
use crate::emulator::{EmulatorConfig, Pace};
use crate::eventlog::{MinFree, OnGap, Retention};
use crate::gateway::GatewayConfig;
use crate::sink::SinkConfig;
use crate::stream::StreamConfig;

/// Builds `Self { field: self.field.or(lower.field), … }`: the set values of `self` over `lower`.
macro_rules! or_fields {
    ($upper:expr, $lower:expr; $($field:ident),* $(,)?) => {
        Self { $($field: $upper.$field.or($lower.$field)),* }
    };
}

/// `[gateway]`: the ingest API (`pinpipe gateway`).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// Address to listen on (default `127.0.0.1:8082`).
    pub listen: Option<String>,
    /// API Gateway stage prefix such as `/dev`: the routes become `/dev/topics/…` (default none).
    pub base_path: Option<String>,
    /// Accepted `x-api-key` values; when any are set, every API route requires one. Better here
    /// (or in `PINPIPE_API_KEY`) than in `--api-key`, which other users see in `ps`.
    pub api_keys: Option<Vec<String>>,
    /// Longest wait for a whole request head, from the accept or the previous response
    /// (default `10s`; 100ms to 1h).
    #[serde(deserialize_with = "header_read_timeout")]
    pub header_read_timeout: Option<Duration>,
    /// Longest an idle keep-alive connection is kept (default `5s`; 100ms to 1h, at most
    /// `header_read_timeout`).
    #[serde(deserialize_with = "idle_timeout")]
    pub idle_timeout: Option<Duration>,
    /// Longest a request body may take to arrive before the answer is 408 (default `30s`;
    /// 100ms to 1h).
    #[serde(deserialize_with = "body_timeout")]
    pub body_timeout: Option<Duration>,
    /// Most connections open at once; past it the connection idle longest is closed to make
    /// room (default: the open-file limit less a reserve; 1 to 1,000,000).
    #[serde(deserialize_with = "max_connections")]
    pub max_connections: Option<usize>,
}

impl GatewaySection {
    /// The values set here, else those of `lower`.
    pub fn or(self, lower: Self) -> Self {
        or_fields!(self, lower; listen, base_path, api_keys, header_read_timeout, idle_timeout, body_timeout, max_connections)
    }

    /// `cfg` with the values set here (the listen address is the caller's: it binds it).
    pub fn apply(&self, mut cfg: GatewayConfig) -> GatewayConfig {
        set(&mut cfg.base_path, self.base_path.clone().map(Some));
        set(&mut cfg.api_keys, self.api_keys.clone());
        set(&mut cfg.header_read_timeout, self.header_read_timeout);
        set(&mut cfg.idle_timeout, self.idle_timeout);
        set(&mut cfg.body_timeout, self.body_timeout);
        set(&mut cfg.max_connections, self.max_connections.map(Some));
        cfg
    }
}

/// `[emulator]`: the posting emulator (`pinpipe emulate`).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmulatorSection {
    /// Base URL of the gateway, stage path included (default `http://127.0.0.1:8082`).
    pub api: Option<String>,
    /// API key sent as `x-api-key` (default none).
    pub api_key: Option<String>,
    /// Iterations per second over all workers; `0`: as fast as the API answers (default: the
    /// original's random 0–2 s pause after each iteration; 0.001 to 1,000,000).
    #[serde(deserialize_with = "emulator_rate")]
    pub rate: Option<f64>,
    /// Iterations in flight at once (default 1; 1 to 10,000).
    #[serde(deserialize_with = "concurrency")]
    pub concurrency: Option<usize>,
    /// Random seed of the row choice: the same seed sends the same rows (default 42).
    pub seed: Option<u64>,
}

impl EmulatorSection {
    /// The values set here, else those of `lower`.
    pub fn or(self, lower: Self) -> Self {
        or_fields!(self, lower; api, api_key, rate, concurrency, seed)
    }

    /// `cfg` with the values set here.
    pub fn apply(&self, mut cfg: EmulatorConfig) -> EmulatorConfig {
        set(&mut cfg.api, self.api.clone());
        set(&mut cfg.api_key, self.api_key.clone().map(Some));
        set(&mut cfg.pace, self.rate.map(Pace::Rate));
        set(&mut cfg.concurrency, self.concurrency);
        set(&mut cfg.seed, self.seed);
        cfg
    }
}

/// `[sink]`: the object-store sink (`pinpipe sink`).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkSection {
    /// Records per file (Confluent `flush.size`; default 1000; 1 to 10,000,000).
    #[serde(deserialize_with = "flush_size")]
    pub flush_size: Option<usize>,
    /// Longest a record waits in an unwritten file (default `10s`; 10ms to 1d).
    #[serde(deserialize_with = "flush_interval")]
    pub flush_interval: Option<Duration>,
    /// This worker's share of the partitions, `I/N` (default `0/1`: all of them).
    #[serde(deserialize_with = "worker")]
    pub worker: Option<Worker>,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (default: off).
    pub metrics_listen: Option<String>,
    /// When retention removed records before they reached the lake: `stop` with an error naming
    /// the topic, the partition and the records lost (default), or `skip` them, logged and
    /// counted in `/metrics`.
    #[serde(deserialize_with = "on_gap")]
    pub on_gap: Option<OnGap>,
}

impl SinkSection {
    /// The values set here, else those of `lower`.
    pub fn or(self, lower: Self) -> Self {
        or_fields!(self, lower; flush_size, flush_interval, worker, metrics_listen, on_gap)
    }

    /// `cfg` with the values set here.
    pub fn apply(&self, mut cfg: SinkConfig) -> SinkConfig {
        set(&mut cfg.flush_size, self.flush_size);
        set(&mut cfg.flush_interval, self.flush_interval);
        set(&mut cfg.worker, self.worker);
        set(&mut cfg.on_gap, self.on_gap);
        cfg
    }
}

/// `[stream]`: the stream job (`pinpipe stream`).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamSection {
    /// Most records per micro-batch (default 10000; 1 to 1,000,000).
    #[serde(deserialize_with = "max_batch")]
    pub max_batch: Option<usize>,
    /// Longest a record waits before its micro-batch is committed (default `250ms`; 10ms to 1h).
    #[serde(deserialize_with = "max_latency")]
    pub max_latency: Option<Duration>,
    /// A Delta checkpoint every this many commits of a table (default 100; 1 to 1,000,000).
    #[serde(deserialize_with = "checkpoint_every")]
    pub checkpoint_every: Option<u64>,
    /// How long a commit waits out a lake that is full or unreachable before the job gives up
    /// (default: as long as it takes, `10m` with `--drain`; 1s to 30d).
    #[serde(deserialize_with = "lake_timeout")]
    pub lake_timeout: Option<Duration>,
    /// This worker's share of the partitions, `I/N` (default `0/1`: all of them).
    #[serde(deserialize_with = "worker")]
    pub worker: Option<Worker>,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (default: off).
    pub metrics_listen: Option<String>,
    /// When retention removed records before they reached the tables: `stop` with an error
    /// naming the stream, the partition and the records lost (default), or `skip` them, logged
    /// and counted in `/metrics`.
    #[serde(deserialize_with = "on_gap")]
    pub on_gap: Option<OnGap>,
    /// Compact a Delta table when it has more small files than this (default 100; 1 to
    /// 1,000,000), or `off`.
    #[serde(deserialize_with = "compact_files")]
    pub compact_files: Option<OrOff<usize>>,
    /// The size compaction aims its files at (default `128MiB`; 1MiB to 16GiB).
    #[serde(deserialize_with = "target_file_size")]
    pub target_file_size: Option<u64>,
    /// How long vacuum keeps data files no version needs any more (default: the table's
    /// `delta.deletedFileRetentionDuration`, 7 days unless set; 1s to 100 years).
    #[serde(deserialize_with = "file_retention")]
    pub file_retention: Option<Duration>,
    /// How often the job vacuums its tables (default `1h`; 1s to 30d), or `off`.
    #[serde(deserialize_with = "vacuum_every")]
    pub vacuum_every: Option<OrOff<Duration>>,
}

impl StreamSection {
    /// The values set here, else those of `lower`.
    pub fn or(self, lower: Self) -> Self {
        or_fields!(self, lower; max_batch, max_latency, checkpoint_every, lake_timeout, worker, metrics_listen, on_gap,
            compact_files, target_file_size, file_retention, vacuum_every)
    }

    /// `cfg` with the values set here.
    pub fn apply(&self, mut cfg: StreamConfig) -> StreamConfig {
        set(&mut cfg.max_batch_records, self.max_batch);
        set(&mut cfg.max_latency, self.max_latency);
        set(&mut cfg.checkpoint_every, self.checkpoint_every);
        set(&mut cfg.lake_timeout, self.lake_timeout.map(Some));
        set(&mut cfg.worker, self.worker);
        set(&mut cfg.on_gap, self.on_gap);
        set(&mut cfg.upkeep.compact_files, self.compact_files.map(|o| o.0));
        set(&mut cfg.upkeep.target_file_size, self.target_file_size);
        set(&mut cfg.upkeep.file_retention, self.file_retention.map(Some));
        set(&mut cfg.upkeep.vacuum_every, self.vacuum_every.map(|o| o.0));
        cfg
    }
}

/// `[batch]`: the batch job (`pinpipe batch`, `pinpipe schedule`, `pinpipe report`, and the
/// gateway's status page, which shows the last run).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSection {
    /// Results folder (default `<data>/results`).
    pub out: Option<PathBuf>,
    /// When `pinpipe schedule` runs the job, in UTC: 5-field cron, or 6–7 fields with seconds
    /// first (default `0 0 0 * * *`: daily at midnight).
    pub cron: Option<String>,
}

impl BatchSection {
    /// The values set here, else those of `lower`.
    pub fn or(self, lower: Self) -> Self {
        or_fields!(self, lower; out, cron)
    }
}

/// `[log]` (the batch topics) or `[streams]` (the streams): where an event log lives. Written
/// either as a table (`[log]` then `url = "kafka://…"`) or as a plain URL (`log = "kafka://…"`).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// The log's URL: `embedded://DIR`, `kafka://HOST:PORT[,HOST:PORT][?setting=value&…]`
    /// (topics only) or `kinesis://REGION[?endpoint=URL]` (streams only). Default: the embedded
    /// log under the data folder; `streams` defaults to the topics' log when that is embedded.
    #[serde(deserialize_with = "log_url")]
    pub url: Option<LogUrl>,
    /// How long the embedded log keeps records of a topic (stream) without a retention of its
    /// own: a duration or `forever` (default `7d` for `[log]`, `24h` for `[streams]`, as Kafka
    /// and Kinesis; 1s to 100 years). On Kafka it is the `retention.ms` of the topics pinpipe
    /// creates; on Kinesis the retention period of the streams it creates.
    #[serde(deserialize_with = "retention")]
    pub retention: Option<Retention>,
    /// Most bytes of records the embedded log's file of these logs keeps; past it the oldest
    /// records go, whatever their age, never a partition's newest: a size of 1MiB or more
    /// (`10GiB`), or `none` (default `none`). Like Kafka's `retention.bytes`, but for all the
    /// topics (streams) of the file together.
    #[serde(deserialize_with = "retention_bytes")]
    pub retention_bytes: Option<ByteLimit>,
    /// Free space the embedded log leaves on its disk; under it the gateway answers 503 with
    /// `Retry-After` until space is back: a size (`2GiB`, `500MB`, `0` for none) or a share
    /// (`5%`) (default: 1GiB or 5%, whichever is smaller). `[streams]` falls back to `[log]`.
    #[serde(deserialize_with = "min_free")]
    pub min_free: Option<MinFree>,
    /// Most records waiting for the embedded log's writer; past it appends get 503 with
    /// `Retry-After` (default 100000; 1 to 100,000,000). `[streams]` falls back to `[log]`.
    #[serde(deserialize_with = "max_pending")]
    pub max_pending: Option<usize>,
}

impl LogSection {
    /// Reads the plain-URL form or the table form.
    pub(super) fn url_or_table<'de, D: Deserializer<'de>>(d: D) -> Result<LogSection, D::Error> {
        struct UrlOrTable;
        impl<'de> Visitor<'de> for UrlOrTable {
            type Value = LogSection;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an event log URL, or a table with `url`")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<LogSection, E> {
                Ok(LogSection { url: Some(text.parse().map_err(E::custom)?), ..LogSection::default() })
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<LogSection, M::Error> {
                LogSection::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_any(UrlOrTable)
    }
}

/// Replaces `slot` when `value` is set.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// A value as TOML gives it, before it is read as the setting's type.
#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Int(i64),
    Float(f64),
    Text(String),
}

impl Raw {
    fn text(&self) -> String {
        match self {
            Raw::Int(n) => n.to_string(),
            Raw::Float(x) => x.to_string(),
            Raw::Text(t) => t.clone(),
        }
    }
}

/// A duration: text with a unit (`"10s"`), or a number of seconds.
fn duration<'de, D: Deserializer<'de>>(d: D, range: DurationRange) -> Result<Option<Duration>, D::Error> {
    let raw = Raw::deserialize(d)?;
    range.parse(&raw.text()).map(Some).map_err(de::Error::custom)
}

/// A whole number.
fn count<'de, D: Deserializer<'de>>(d: D, range: CountRange) -> Result<Option<u64>, D::Error> {
    let raw = Raw::deserialize(d)?;
    range.parse(&raw.text()).map(Some).map_err(de::Error::custom)
}

/// A whole number that counts things in memory.
fn size<'de, D: Deserializer<'de>>(d: D, range: CountRange) -> Result<Option<usize>, D::Error> {
    let raw = Raw::deserialize(d)?;
    range.usize_parser()(&raw.text()).map(Some).map_err(de::Error::custom)
}

/// A rate: a number per second.
fn rate<'de, D: Deserializer<'de>>(d: D, range: RateRange) -> Result<Option<f64>, D::Error> {
    let rate = match Raw::deserialize(d)? {
        Raw::Int(n) => n as f64,
        Raw::Float(x) => x,
        Raw::Text(t) => return range.parse(&t).map(Some).map_err(de::Error::custom),
    };
    range.check(rate).map(Some).map_err(de::Error::custom)
}

/// Any value read from its text ([`std::str::FromStr`]).
fn parsed<'de, D: Deserializer<'de>, T>(d: D) -> Result<Option<T>, D::Error>
where
    T: std::str::FromStr<Err: std::fmt::Display>,
{
    let text = String::deserialize(d)?;
    text.parse().map(Some).map_err(de::Error::custom)
}

/// One reader per checked key, naming its range once.
macro_rules! checked {
    ($($key:ident: $ty:ty = $read:ident($range:expr);)*) => {
        $(fn $key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$ty>, D::Error> { $read(d, $range) })*
    };
}

checked! {
    header_read_timeout: Duration = duration(values::HEADER_READ_TIMEOUT);
    idle_timeout: Duration = duration(values::IDLE_TIMEOUT);
    body_timeout: Duration = duration(values::BODY_TIMEOUT);
    max_connections: usize = size(values::MAX_CONNECTIONS);
    emulator_rate: f64 = rate(values::EMULATOR_RATE);
    concurrency: usize = size(values::CONCURRENCY);
    flush_size: usize = size(values::FLUSH_SIZE);
    flush_interval: Duration = duration(values::FLUSH_INTERVAL);
    max_batch: usize = size(values::MAX_BATCH);
    max_latency: Duration = duration(values::MAX_LATENCY);
    checkpoint_every: u64 = count(values::CHECKPOINT_EVERY);
    lake_timeout: Duration = duration(values::LAKE_TIMEOUT);
    max_pending: usize = size(values::MAX_PENDING);
    file_retention: Duration = duration(values::FILE_RETENTION);
}

fn compact_files<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OrOff<usize>>, D::Error> {
    let raw = Raw::deserialize(d)?;
    values::parse_compact_files(&raw.text()).map(Some).map_err(de::Error::custom)
}

fn vacuum_every<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OrOff<Duration>>, D::Error> {
    let raw = Raw::deserialize(d)?;
    values::parse_vacuum_every(&raw.text()).map(Some).map_err(de::Error::custom)
}

fn target_file_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let raw = Raw::deserialize(d)?;
    values::parse_target_file_size(&raw.text()).map(Some).map_err(de::Error::custom)
}

fn worker<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Worker>, D::Error> {
    parsed(d)
}

fn log_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LogUrl>, D::Error> {
    parsed(d)
}

fn on_gap<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OnGap>, D::Error> {
    parsed(d)
}

fn min_free<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MinFree>, D::Error> {
    let raw = Raw::deserialize(d)?;
    values::parse_min_free(&raw.text()).map(Some).map_err(de::Error::custom)
}

fn retention_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ByteLimit>, D::Error> {
    let raw = Raw::deserialize(d)?;
    values::parse_retention_bytes(&raw.text()).map(Some).map_err(de::Error::custom)
}

fn retention<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Retention>, D::Error> {
    let raw = Raw::deserialize(d)?;
    values::parse_retention(&raw.text()).map(Some).map_err(de::Error::custom)
}

/// Reads a section from an inline TOML table (for tests of the checks).
#[cfg(test)]
fn from_toml<T: serde::de::DeserializeOwned>(inline: &str) -> Result<T, String> {
    #[derive(Deserialize)]
    struct Wrap<T> {
        s: T,
    }
    toml::from_str::<Wrap<T>>(&format!("s = {inline}")).map(|w| w.s).map_err(|e| e.message().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_as_they_are_read() {
        let sink: SinkSection = from_toml("{ flush_interval = \"500ms\", flush_size = 10, worker = \"1/2\" }").unwrap();
        assert_eq!(
            sink,
            SinkSection {
                flush_size: Some(10),
                flush_interval: Some(Duration::from_millis(500)),
                worker: Some(Worker { index: 1, count: 2 }),
                metrics_listen: None,
                on_gap: None,
            }
        );
        let stream: StreamSection = from_toml("{ max_latency = 2, checkpoint_every = 5 }").unwrap();
        assert_eq!((stream.max_latency, stream.checkpoint_every), (Some(Duration::from_secs(2)), Some(5)));
        let emulator: EmulatorSection = from_toml("{ rate = 0 }").unwrap();
        assert_eq!(emulator.rate, Some(0.0));
        for (text, message) in [
            ("{ checkpoint_every = 0 }", "0 is out of range: use a whole number from 1 to 1000000"),
            ("{ max_latency = \"2h\" }", "2h is out of range: use 10ms to 1h"),
            ("{ worker = \"2/2\" }", "`2/2` is not a worker share I/N with 0 <= I < N, such as 0/2"),
        ] {
            assert_eq!(from_toml::<StreamSection>(text).unwrap_err(), message, "{text}");
        }
        assert!(from_toml::<EmulatorSection>("{ rate = 1e-20 }").unwrap_err().contains("out of range"));
        assert!(from_toml::<SinkSection>("{ flush_sise = 3 }").unwrap_err().contains("unknown field `flush_sise`"));
    }

    #[test]
    fn the_upper_layer_wins_value_by_value() {
        let flags = SinkSection { flush_size: Some(5), ..Default::default() };
        let file =
            SinkSection { flush_size: Some(50), flush_interval: Some(Duration::from_secs(3)), ..Default::default() };
        let merged = flags.or(file);
        assert_eq!((merged.flush_size, merged.flush_interval), (Some(5), Some(Duration::from_secs(3))));
        let cfg = merged.apply(SinkConfig::new("p", false));
        assert_eq!((cfg.flush_size, cfg.flush_interval, cfg.worker), (5, Duration::from_secs(3), Worker::ALL));
        let stream = StreamSection::default().apply(StreamConfig::new("p", true));
        assert_eq!(stream, StreamConfig::new("p", true), "an empty section changes nothing");
    }
}
