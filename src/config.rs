//! Configuration: the `pinpipe.toml` file, and the resolved settings every stage runs with.
//!
//! Precedence, highest first: command-line flag, `PINPIPE_<FLAG>` environment variable (both
//! handled by the CLI layer), the TOML file (`--config FILE`, else `./pinpipe.toml` if present),
//! then the defaults written here. Parse ([`FileConfig`]) then resolve ([`Config`]): the stages
//! only ever see the resolved form, with every backend chosen by URL (SPEC §10).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::eventlog::ClientSettings;

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
    /// Accepted `x-api-key` values; when any are set, every API route requires one.
    #[serde(default)]
    pub api_keys: Vec<String>,
}

/// The `[emulator]` table of `pinpipe.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmulatorFile {
    /// Base URL of the gateway, stage path included (default `http://127.0.0.1:8082`).
    pub api: Option<String>,
    /// API key sent as `x-api-key`.
    pub api_key: Option<String>,
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
        Ok(Config { data, id, source, log, streams, lake, clients: ClientSettings { kafka } })
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

/// Parses a duration such as `10s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration such as 10s or 500ms"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use ms, s, m or h)")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("`{text}` is not a non-negative duration"));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
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
    fn durations_take_units() {
        assert_eq!(parse_duration("10s").unwrap().as_millis(), 10_000);
        assert_eq!(parse_duration("250ms").unwrap().as_millis(), 250);
        assert_eq!(parse_duration("2").unwrap().as_secs(), 2);
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
