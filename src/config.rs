//! Configuration: the `pinpipe.toml` file, and the resolved settings every stage runs with.
//!
//! Precedence, highest first: command-line flag, `PINPIPE_<FLAG>` environment variable (both
//! handled by the CLI layer), the TOML file (`--config FILE`, else `./pinpipe.toml` if present),
//! then the defaults written here. Parse ([`FileConfig`]) then resolve ([`Config`]): the stages
//! only ever see the resolved form, with every backend chosen by URL (SPEC §10).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::time::Duration;

use serde::Deserialize;

use crate::eventlog::ClientSettings;
use crate::settings::{self, CountRange, DurationRange, RateRange};

/// Default pipeline id: names the topics, streams and Delta tables.
pub const DEFAULT_ID: &str = "pinterest";
/// Default data folder: holds the embedded source, log, lake and results.
pub const DEFAULT_DATA: &str = "./data";
/// Default gateway listen address (the Confluent REST proxy's usual port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8082";

/// Errors reading or checking the configuration; each names the file or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("invalid value for `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// The contents of `pinpipe.toml`. Every field is optional; unknown fields are an error so a typo
/// never silently falls back to a default.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Folder for the embedded source, log, lake and results (default `./data`).
    pub data: Option<PathBuf>,
    /// Pipeline id used in topic, stream and table names (default `pinterest`).
    pub id: Option<String>,
    /// Source database URL: `sqlite://FILE` or `mysql://user:pass@host:port/db`.
    pub source: Option<String>,
    /// Event log for the batch topics: `embedded://DIR` or `kafka://HOST:PORT[,HOST:PORT][?k=v&…]`.
    pub log: Option<String>,
    /// Event log for the streams: `embedded://DIR` or `kinesis://REGION` (default: the same as
    /// `log` when that is embedded, else the embedded log under `data`).
    pub streams: Option<String>,
    /// The lake: `file://DIR` or `s3://bucket/prefix`.
    pub lake: Option<String>,
    /// `[gateway]`: the ingest API.
    #[serde(default)]
    pub gateway: GatewayFile,
    /// `[emulator]`: the posting emulator.
    #[serde(default)]
    pub emulator: EmulatorFile,
    /// `[sink]`: the object-store sink.
    #[serde(default)]
    pub sink: SinkFile,
    /// `[stream]`: the stream job.
    #[serde(default)]
    pub stream: StreamFile,
    /// `[kafka]`: librdkafka client properties for a `kafka://` log, passed through as they are
    /// (`"security.protocol" = "SASL_SSL"`, `sasl.mechanism = "AWS_MSK_IAM"`, `"linger.ms" = 10`;
    /// dotted keys may be quoted or not). The URL's own `?key=value` settings win over these.
    /// Values may be strings, numbers or booleans; they are never logged.
    #[serde(default)]
    pub kafka: BTreeMap<String, toml::Value>,
}

/// The `[gateway]` table of `pinpipe.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    /// Address to listen on (default `127.0.0.1:8082`).
    pub listen: Option<String>,
    /// API Gateway stage prefix such as `/dev` (default none).
    pub base_path: Option<String>,
    /// Accepted `x-api-key` values; when any are set, every API route requires one. Better here
    /// (or in `PINPIPE_API_KEY`) than in `--api-key`, which other users see in `ps`.
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Longest wait for a whole request head, from the accept or the previous response
    /// (default `10s`; 100ms to 1h).
    pub header_read_timeout: Option<String>,
    /// Longest an idle keep-alive connection is kept (default `5s`; 100ms to 1h, at most
    /// `header_read_timeout`).
    pub idle_timeout: Option<String>,
    /// Longest a request body may take to arrive (default `30s`; 100ms to 1h).
    pub body_timeout: Option<String>,
    /// Most connections at once (default: the open-file limit less a reserve).
    pub max_connections: Option<u64>,
}

/// The `[emulator]` table of `pinpipe.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmulatorFile {
    /// Base URL of the gateway, stage path included (default `http://127.0.0.1:8082`).
    pub api: Option<String>,
    /// API key sent as `x-api-key`.
    pub api_key: Option<String>,
    /// Iterations per second over all workers; `0`: as fast as the API answers (default: the
    /// original's random 0–2 s pause).
    pub rate: Option<f64>,
    /// Iterations in flight at once (default 1).
    pub concurrency: Option<u64>,
}

/// The `[sink]` table of `pinpipe.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkFile {
    /// Records per file (Confluent `flush.size`; default 1000).
    pub flush_size: Option<u64>,
    /// Longest a record waits in an unwritten file (default `10s`).
    pub flush_interval: Option<String>,
}

/// The `[stream]` table of `pinpipe.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamFile {
    /// Most records per micro-batch (default 10000).
    pub max_batch: Option<u64>,
    /// Longest a record waits before its micro-batch is committed (default `1s`).
    pub max_latency: Option<String>,
    /// A Delta checkpoint every this many commits of a table (default 100).
    pub checkpoint_every: Option<u64>,
    /// How long a commit waits out a lake that is full or unreachable before the job gives up
    /// (default: as long as it takes; `10m` with `--drain`).
    pub lake_timeout: Option<String>,
}

/// The per-stage values of the file, checked against their ranges ([`crate::settings`]): what
/// the command line falls back to when a flag and its variable are absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileSettings {
    pub gateway_header_read_timeout: Option<Duration>,
    pub gateway_idle_timeout: Option<Duration>,
    pub gateway_body_timeout: Option<Duration>,
    pub gateway_max_connections: Option<usize>,
    pub emulator_rate: Option<f64>,
    pub emulator_concurrency: Option<usize>,
    pub sink_flush_size: Option<usize>,
    pub sink_flush_interval: Option<Duration>,
    pub stream_max_batch: Option<usize>,
    pub stream_max_latency: Option<Duration>,
    pub stream_checkpoint_every: Option<u64>,
    pub stream_lake_timeout: Option<Duration>,
}

impl FileConfig {
    /// Checks every per-stage value against its range; the error names the key.
    pub fn settings(&self) -> Result<FileSettings, Error> {
        fn duration(field: &'static str, range: DurationRange, v: &Option<String>) -> Result<Option<Duration>, Error> {
            v.as_deref().map(|t| range.parse(t).map_err(|reason| Error::Invalid { field, reason })).transpose()
        }
        fn count(field: &'static str, range: CountRange, v: Option<u64>) -> Result<Option<u64>, Error> {
            v.map(|n| range.check(n).map_err(|reason| Error::Invalid { field, reason })).transpose()
        }
        fn size(field: &'static str, range: CountRange, v: Option<u64>) -> Result<Option<usize>, Error> {
            count(field, range, v)?
                .map(|n| usize::try_from(n).map_err(|_| Error::Invalid { field, reason: format!("{n} is too large") }))
                .transpose()
        }
        fn rate(field: &'static str, range: RateRange, v: Option<f64>) -> Result<Option<f64>, Error> {
            v.map(|r| range.check(r).map_err(|reason| Error::Invalid { field, reason })).transpose()
        }
        let (g, e, k, s) = (&self.gateway, &self.emulator, &self.sink, &self.stream);
        Ok(FileSettings {
            gateway_header_read_timeout: duration(
                "gateway.header_read_timeout",
                settings::HEADER_READ_TIMEOUT,
                &g.header_read_timeout,
            )?,
            gateway_idle_timeout: duration("gateway.idle_timeout", settings::IDLE_TIMEOUT, &g.idle_timeout)?,
            gateway_body_timeout: duration("gateway.body_timeout", settings::BODY_TIMEOUT, &g.body_timeout)?,
            gateway_max_connections: size("gateway.max_connections", settings::MAX_CONNECTIONS, g.max_connections)?,
            emulator_rate: rate("emulator.rate", settings::EMULATOR_RATE, e.rate)?,
            emulator_concurrency: size("emulator.concurrency", settings::CONCURRENCY, e.concurrency)?,
            sink_flush_size: size("sink.flush_size", settings::FLUSH_SIZE, k.flush_size)?,
            sink_flush_interval: duration("sink.flush_interval", settings::FLUSH_INTERVAL, &k.flush_interval)?,
            stream_max_batch: size("stream.max_batch", settings::MAX_BATCH, s.max_batch)?,
            stream_max_latency: duration("stream.max_latency", settings::MAX_LATENCY, &s.max_latency)?,
            stream_checkpoint_every: count("stream.checkpoint_every", settings::CHECKPOINT_EVERY, s.checkpoint_every)?,
            stream_lake_timeout: duration("stream.lake_timeout", settings::LAKE_TIMEOUT, &s.lake_timeout)?,
        })
    }
}

impl FileConfig {
    /// Reads `path`, or `./pinpipe.toml` when `path` is `None` and that file exists, or nothing.
    pub fn load(path: Option<&Path>) -> Result<Self, Error> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("pinpipe.toml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FileConfig::default());
            }
            Err(source) => return Err(Error::Read { path, source }),
        };
        toml::from_str(&text).map_err(|source| Error::Parse { path, source: Box::new(source) })
    }
}

/// The global settings after flags, environment and file are merged: what every stage gets.
#[derive(Debug, Clone)]
pub struct Config {
    pub data: PathBuf,
    pub id: String,
    pub source: String,
    pub log: String,
    pub streams: String,
    pub lake: String,
    /// Backend client settings from the file (the `[kafka]` table).
    pub clients: ClientSettings,
    /// The file's per-stage values, checked.
    pub file: FileSettings,
}

/// Global values given on the command line or in the environment (each may be absent).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data: Option<PathBuf>,
    pub id: Option<String>,
    pub source: Option<String>,
    pub log: Option<String>,
    pub streams: Option<String>,
    pub lake: Option<String>,
}

impl Config {
    /// Merges command-line overrides over the file over the defaults, and checks the result.
    pub fn resolve(over: Overrides, file: &FileConfig) -> Result<Self, Error> {
        let data = over.data.or_else(|| file.data.clone()).unwrap_or_else(|| DEFAULT_DATA.into());
        let id = over.id.or_else(|| file.id.clone()).unwrap_or_else(|| DEFAULT_ID.into());
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(Error::Invalid {
                field: "id",
                reason: format!("`{id}` must be non-empty ASCII letters, digits, `_` or `-`"),
            });
        }
        let under = |name: &str| data.join(name).display().to_string();
        let source =
            over.source.or_else(|| file.source.clone()).unwrap_or_else(|| format!("sqlite://{}", under("source.db")));
        let log = over.log.or_else(|| file.log.clone()).unwrap_or_else(|| format!("embedded://{}", under("log")));
        // Streams live in the embedded log or Kinesis: a Kafka `log` does not take them along.
        let streams = over.streams.or_else(|| file.streams.clone()).unwrap_or_else(|| {
            if log.starts_with("embedded://") { log.clone() } else { format!("embedded://{}", under("log")) }
        });
        let lake = over.lake.or_else(|| file.lake.clone()).unwrap_or_else(|| format!("file://{}", under("lake")));
        for (field, url) in [("source", &source), ("log", &log), ("streams", &streams), ("lake", &lake)] {
            if !url.contains("://") {
                return Err(Error::Invalid { field, reason: format!("`{url}` is not a URL (expected scheme://…)") });
            }
        }
        let mut kafka = BTreeMap::new();
        flatten_settings("", &file.kafka, &mut kafka)?;
        let file = file.settings()?;
        Ok(Config { data, id, source, log, streams, lake, clients: ClientSettings { kafka }, file })
    }

    /// Where batch results go unless `--out` says otherwise.
    pub fn default_results(&self) -> PathBuf {
        self.data.join("results")
    }
}

/// Flattens the `[kafka]` table into `key → text`: nested tables (from unquoted dotted keys such
/// as `sasl.mechanism = …`) join their keys with dots; scalars become their text.
fn flatten_settings(
    prefix: &str,
    table: &BTreeMap<String, toml::Value>,
    out: &mut BTreeMap<String, String>,
) -> Result<(), Error> {
    for (key, value) in table {
        let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Table(t) => {
                let nested: BTreeMap<String, toml::Value> = t.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                flatten_settings(&key, &nested, out)?;
                continue;
            }
            toml::Value::Array(_) | toml::Value::Datetime(_) => {
                return Err(Error::Invalid {
                    field: "kafka",
                    reason: format!("setting `{key}` must be a string, a number or a boolean"),
                });
            }
        };
        out.insert(key, text);
    }
    Ok(())
}

/// Which share of the partitions one sink or stream worker owns. `--worker I/N` takes the
/// partitions `p` with `p % N == I`, so N workers started as `0/N` … `N-1/N` split every topic or
/// stream between them without overlap; each keeps its positions in the outputs, as one worker
/// does, so workers can stop and start independently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worker {
    pub index: u32,
    pub count: u32,
}

impl Worker {
    /// The only worker: every partition.
    pub const ALL: Worker = Worker { index: 0, count: 1 };

    /// True when this worker owns `partition`.
    pub fn owns(&self, partition: u32) -> bool {
        partition % self.count == self.index
    }
}

impl Default for Worker {
    fn default() -> Self {
        Worker::ALL
    }
}

impl std::fmt::Display for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Worker {
    type Err = String;

    fn from_str(text: &str) -> Result<Worker, String> {
        let bad = || format!("`{text}` is not a worker share I/N with 0 <= I < N, such as 0/2");
        let (index, count) = text.trim().split_once('/').ok_or_else(bad)?;
        let index: u32 = index.trim().parse().map_err(|_| bad())?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Worker { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_shares_split_partitions_without_overlap() {
        let workers: Vec<Worker> = ["0/3", "1/3", "2/3"].iter().map(|w| w.parse().unwrap()).collect();
        for p in 0..12 {
            assert_eq!(workers.iter().filter(|w| w.owns(p)).count(), 1, "partition {p}");
        }
        assert!(Worker::ALL.owns(7));
        for bad in ["", "1", "2/2", "0/0", "a/b", "-1/2"] {
            assert!(bad.parse::<Worker>().is_err(), "{bad:?}");
        }
        assert_eq!("1/4".parse::<Worker>().unwrap().to_string(), "1/4");
    }

    #[test]
    fn defaults_live_under_the_data_folder() {
        let cfg =
            Config::resolve(Overrides { data: Some("/tmp/x".into()), ..Default::default() }, &FileConfig::default())
                .unwrap();
        assert_eq!(cfg.source, "sqlite:///tmp/x/source.db");
        assert_eq!(cfg.log, "embedded:///tmp/x/log");
        assert_eq!(cfg.streams, cfg.log);
        assert_eq!(cfg.lake, "file:///tmp/x/lake");
        assert_eq!(cfg.id, "pinterest");
    }

    #[test]
    fn flags_win_over_the_file() {
        let file: FileConfig = toml::from_str("id = \"fromfile\"\nlog = \"embedded:///f\"").unwrap();
        let cfg = Config::resolve(Overrides { id: Some("flag".into()), ..Default::default() }, &file).unwrap();
        assert_eq!(cfg.id, "flag");
        assert_eq!(cfg.log, "embedded:///f");
    }

    #[test]
    fn unknown_fields_and_bad_ids_are_rejected() {
        assert!(toml::from_str::<FileConfig>("lgo = \"x\"").is_err());
        let err = Config::resolve(Overrides { id: Some("a b".into()), ..Default::default() }, &FileConfig::default());
        assert!(err.unwrap_err().to_string().contains("`id`"));
    }

    #[test]
    fn the_kafka_table_reaches_the_client_settings() {
        let file: FileConfig = toml::from_str(
            "log = \"kafka://b:9092\"\n[kafka]\n\"security.protocol\" = \"SASL_SSL\"\nsasl.mechanism = \"AWS_MSK_IAM\"\n\"linger.ms\" = 10\n",
        )
        .unwrap();
        let cfg = Config::resolve(Overrides { data: Some("/d".into()), ..Default::default() }, &file).unwrap();
        let expected: BTreeMap<String, String> =
            [("linger.ms", "10"), ("sasl.mechanism", "AWS_MSK_IAM"), ("security.protocol", "SASL_SSL")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(cfg.clients.kafka, expected);
        // A Kafka log keeps the streams in the embedded log.
        assert_eq!(cfg.streams, "embedded:///d/log");
        let bad: FileConfig = toml::from_str("[kafka]\n\"client.id\" = [1]\n").unwrap();
        let err = Config::resolve(Overrides::default(), &bad).unwrap_err().to_string();
        assert!(err.contains("client.id"), "{err}");
    }

    #[test]
    fn stage_values_in_the_file_are_checked_and_named() {
        let file: FileConfig = toml::from_str(
            "[sink]\nflush_interval = \"500ms\"\nflush_size = 10\n[stream]\ncheckpoint_every = 5\n[gateway]\nidle_timeout = \"2s\"\n",
        )
        .unwrap();
        let s = file.settings().unwrap();
        assert_eq!(s.sink_flush_interval, Some(Duration::from_millis(500)));
        assert_eq!((s.sink_flush_size, s.stream_checkpoint_every), (Some(10), Some(5)));
        assert_eq!(s.gateway_idle_timeout, Some(Duration::from_secs(2)));
        for (text, field) in [
            ("[stream]\ncheckpoint_every = 0\n", "stream.checkpoint_every"),
            ("[sink]\nflush_interval = \"99999999999999999999h\"\n", "sink.flush_interval"),
            ("[emulator]\nrate = 1e-20\n", "emulator.rate"),
            ("[gateway]\nmax_connections = 0\n", "gateway.max_connections"),
        ] {
            let file: FileConfig = toml::from_str(text).unwrap();
            let e = file.settings().unwrap_err().to_string();
            assert!(e.starts_with(&format!("invalid value for `{field}`: ")) && !e.contains('\n'), "{e}");
        }
        assert!(toml::from_str::<FileConfig>("[sink]\nflush_sise = 3\n").is_err());
    }
}
