//! Settings: every value pinpipe runs with, from the command line, the `PINPIPE_*` environment
//! and `pinpipe.toml`, parsed and checked once, then resolved over the defaults.
//!
//! ```text
//!  flags + PINPIPE_* (the binary's clap) ─┐
//!                                          ├─ section.or(file) ─► section.apply(Stage::new(…)) ─► the stage's config
//!  pinpipe.toml ─► FileConfig (file) ─────┘
//! ```
//!
//! Precedence, highest first: command-line flag, `PINPIPE_<FLAG>` variable (clap reads both),
//! the TOML file (`--config FILE`, else `./pinpipe.toml` if present), then the stage's default,
//! which its config's constructor owns (`SinkConfig::new`, `StreamConfig::new`,
//! `GatewayConfig::default`, `EmulatorConfig::new`). [`values`] holds the ranges every number and
//! duration is checked against, wherever it comes from; [`url`] parses the backend URLs into the
//! enums the backends open; [`sections`] is a stage's settings, as a file table and as flags; the
//! global part resolves into [`Settings`], which every subcommand starts from.

mod file;
mod sections;
pub mod url;
pub mod values;

use std::path::PathBuf;

pub use file::FileConfig;
pub use sections::{BatchSection, EmulatorSection, GatewaySection, LogSection, SinkSection, StreamSection};
pub use url::{KafkaUrl, KinesisUrl, LakeUrl, LogUrl, SourceUrl, UrlError};
pub use values::{ByteLimit, Worker, display_duration, parse_duration};

use crate::eventlog::{ClientSettings, MinFree, Namespace, Policy, Retention};

/// Default pipeline id: names the topics, streams and Delta tables.
const DEFAULT_ID: &str = "pinterest";
/// Default data folder: holds the embedded source, log, lake and results.
const DEFAULT_DATA: &str = "./data";

/// Errors reading or checking the settings; each names the file, line and key, or the setting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `line` is 0 when the parser does not say where (then neither line nor key is shown).
    #[error("invalid config file {}{}: {message}", .path.display(), located(*.line, .key))]
    Parse { path: PathBuf, line: usize, key: String, message: String },
    #[error("invalid value for `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// How diagnostic log lines are written on stderr (`--log-format`, `log_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `, line N, `key``, or as much of it as is known.
fn located(line: usize, key: &str) -> String {
    match (line, key) {
        (0, _) => String::new(),
        (line, "") => format!(", line {line}"),
        (line, key) => format!(", line {line}, `{key}`"),
    }
}

/// The global values given on the command line or in the environment (each may be absent).
#[derive(Debug, Default, Clone)]
pub struct Globals {
    pub data: Option<PathBuf>,
    pub id: Option<String>,
    pub source: Option<SourceUrl>,
    pub log: Option<LogUrl>,
    pub streams: Option<LogUrl>,
    pub lake: Option<LakeUrl>,
    pub log_format: Option<LogFormat>,
    pub retention: Option<Retention>,
    pub stream_retention: Option<Retention>,
    pub retention_bytes: Option<ByteLimit>,
    pub stream_retention_bytes: Option<ByteLimit>,
    pub min_free: Option<MinFree>,
    pub max_pending: Option<usize>,
}

/// The global settings after flags, environment and file are merged, with the file's stage
/// sections beside them: what every subcommand starts from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data: PathBuf,
    pub id: String,
    pub source: SourceUrl,
    /// The log of the batch topics.
    pub log: LogUrl,
    /// The log of the streams.
    pub streams: LogUrl,
    pub lake: LakeUrl,
    pub log_format: LogFormat,
    /// How the topics' logs keep records (`--retention`, `[log] retention`).
    pub topics_policy: Policy,
    /// How the streams' logs keep records (`--stream-retention`, `[streams] retention`).
    pub streams_policy: Policy,
    /// Backend client settings from the file (the `[kafka]` table).
    pub clients: ClientSettings,
    /// The file, whose stage sections the subcommands' flags fall back to.
    pub file: FileConfig,
}

impl Settings {
    /// Merges `over` (flags and variables) over `file` over the defaults, and checks the result.
    pub fn resolve(over: Globals, file: FileConfig) -> Result<Self, Error> {
        let data = over.data.or_else(|| file.data.clone()).unwrap_or_else(|| DEFAULT_DATA.into());
        let id = over.id.or_else(|| file.id.clone()).unwrap_or_else(|| DEFAULT_ID.into());
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(Error::Invalid {
                field: "id",
                reason: format!("`{id}` must be non-empty ASCII letters, digits, `_` or `-`"),
            });
        }
        let source =
            over.source.or_else(|| file.source.clone()).unwrap_or_else(|| SourceUrl::Sqlite(data.join("source.db")));
        let embedded = LogUrl::Embedded(data.join("log"));
        let log = over.log.or_else(|| file.log.url.clone()).unwrap_or_else(|| embedded.clone());
        // Streams live in the embedded log or Kinesis: a Kafka `log` does not take them along.
        let streams = over.streams.or_else(|| file.streams.url.clone()).unwrap_or_else(|| match &log {
            LogUrl::Embedded(_) => log.clone(),
            _ => embedded,
        });
        let lake = over.lake.or_else(|| file.lake.clone()).unwrap_or_else(|| LakeUrl::File(data.join("lake")));
        let log_format = over.log_format.or(file.log_format).unwrap_or_default();
        let clients = ClientSettings { kafka: file.kafka_settings()? };
        let topics_policy = Policy {
            retention: over
                .retention
                .or(file.log.retention)
                .unwrap_or_else(|| Retention::default_for(Namespace::Topics)),
            retention_bytes: over.retention_bytes.or(file.log.retention_bytes).and_then(|b| b.0),
            min_free: over.min_free.or(file.log.min_free).unwrap_or_default(),
            max_pending: over.max_pending.or(file.log.max_pending).unwrap_or(Policy::DEFAULT_MAX_PENDING),
        };
        let streams_policy = Policy {
            retention: over
                .stream_retention
                .or(file.streams.retention)
                .unwrap_or_else(|| Retention::default_for(Namespace::Streams)),
            retention_bytes: over.stream_retention_bytes.or(file.streams.retention_bytes).and_then(|b| b.0),
            min_free: over.min_free.or(file.streams.min_free).or(file.log.min_free).unwrap_or_default(),
            max_pending: over
                .max_pending
                .or(file.streams.max_pending)
                .or(file.log.max_pending)
                .unwrap_or(Policy::DEFAULT_MAX_PENDING),
        };
        Ok(Settings { data, id, source, log, streams, lake, log_format, topics_policy, streams_policy, clients, file })
    }

    /// The URL and the policy of `namespace`'s log.
    pub fn log_of(&self, namespace: Namespace) -> (&LogUrl, Policy) {
        match namespace {
            Namespace::Topics => (&self.log, self.topics_policy),
            Namespace::Streams => (&self.streams, self.streams_policy),
        }
    }

    /// Where batch results go: `flag` (`--out`), else `[batch] out`, else `<data>/results`.
    pub fn results(&self, flag: Option<PathBuf>) -> PathBuf {
        flag.or_else(|| self.file.batch.out.clone()).unwrap_or_else(|| self.data.join("results"))
    }
}

impl std::fmt::Display for Settings {
    /// The global settings as `key = value` lines, secrets shown as `***`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "data = {:?}", self.data)?;
        writeln!(f, "id = {:?}", self.id)?;
        writeln!(f, "source = \"{}\"", self.source)?;
        writeln!(f, "log = \"{}\"", self.log)?;
        writeln!(f, "streams = \"{}\"", self.streams)?;
        writeln!(f, "lake = \"{}\"", self.lake)?;
        writeln!(f, "log_format = {:?}", self.log_format)?;
        writeln!(f, "retention = \"{}\"", self.topics_policy.retention)?;
        writeln!(f, "stream_retention = \"{}\"", self.streams_policy.retention)?;
        let bytes = |b: Option<u64>| b.map_or("none".to_string(), |b| b.to_string());
        writeln!(f, "retention_bytes = {}", bytes(self.topics_policy.retention_bytes))?;
        writeln!(f, "stream_retention_bytes = {}", bytes(self.streams_policy.retention_bytes))?;
        writeln!(f, "min_free = \"{}\" (streams: \"{}\")", self.topics_policy.min_free, self.streams_policy.min_free)?;
        writeln!(f, "max_pending = {} (streams: {})", self.topics_policy.max_pending, self.streams_policy.max_pending)?;
        let kafka: Vec<String> = self
            .clients
            .kafka
            .iter()
            .map(|(k, v)| format!("{k:?} = {:?}", if url::is_secret(k) { "***" } else { v }))
            .collect();
        if kafka.is_empty() { write!(f, "kafka = {{}}") } else { write!(f, "kafka = {{ {} }}", kafka.join(", ")) }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    fn file(text: &str) -> Result<FileConfig, Error> {
        FileConfig::parse(text, Path::new("pinpipe.toml"))
    }

    #[test]
    fn defaults_live_under_the_data_folder() {
        let cfg =
            Settings::resolve(Globals { data: Some("/tmp/x".into()), ..Default::default() }, FileConfig::default())
                .unwrap();
        assert_eq!(cfg.source.to_string(), "sqlite:///tmp/x/source.db");
        assert_eq!(cfg.log, LogUrl::Embedded("/tmp/x/log".into()));
        assert_eq!(cfg.streams, cfg.log);
        assert_eq!(cfg.lake, LakeUrl::File("/tmp/x/lake".into()));
        assert_eq!(cfg.id, "pinterest");
        assert_eq!(cfg.results(None), Path::new("/tmp/x/results"));
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_the_defaults() {
        let f = file("id = \"fromfile\"\nlog = \"embedded:///f\"\n[batch]\nout = \"/r\"\n").unwrap();
        let cfg = Settings::resolve(Globals { id: Some("flag".into()), ..Default::default() }, f).unwrap();
        assert_eq!(cfg.id, "flag");
        assert_eq!(cfg.log, LogUrl::Embedded("/f".into()));
        assert_eq!(cfg.results(None), Path::new("/r"));
        assert_eq!(cfg.results(Some("/o".into())), Path::new("/o"));
    }

    #[test]
    fn a_log_is_a_url_or_a_table() {
        let f = file("[log]\nurl = \"kafka://b:9092\"\n[streams]\nurl = \"kinesis://eu-west-1\"\n").unwrap();
        let cfg = Settings::resolve(Globals::default(), f).unwrap();
        assert_eq!(cfg.log.kind(), "kafka");
        assert_eq!(cfg.streams.kind(), "kinesis");
        let e = file("[log]\nurl = \"kafka://b\"\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid config file pinpipe.toml, line 2, `log.url`: `kafka://b` has a broker address `b` that is not HOST:PORT"
        );
        let e = file("[log]\nulr = \"embedded:///x\"\n").unwrap_err().to_string();
        assert!(e.starts_with("invalid config file pinpipe.toml, line 2, `log.ulr`: unknown field `ulr`"), "{e}");
    }

    #[test]
    fn mistakes_are_one_line_naming_the_key() {
        let e = file("lgo = \"x\"").unwrap_err().to_string();
        assert!(e.starts_with("invalid config file pinpipe.toml, line 1, `lgo`: unknown field `lgo`"), "{e}");
        let e = Settings::resolve(Globals { id: Some("a b".into()), ..Default::default() }, FileConfig::default());
        assert!(e.unwrap_err().to_string().contains("`id`"));
        for (text, expected) in [
            ("[stream]\ncheckpoint_every = 0\n", "line 2, `stream.checkpoint_every`: 0 is out of range"),
            ("[sink]\n\nflush_interval = \"99999999999999999999h\"\n", "line 3, `sink.flush_interval`: `99999"),
            ("[emulator]\nrate = 1e-20\n", "line 2, `emulator.rate`: 1e-20 is out of range"),
            ("[gateway]\nmax_connections = 0\n", "line 2, `gateway.max_connections`: 0 is out of range"),
            ("lake = \"gs://b\"\n", "line 1, `lake`: `gs://b` is not a supported lake"),
            ("[sink]\nflush_sise = 3\n", "line 2, `sink.flush_sise`: unknown field `flush_sise`"),
        ] {
            let e = file(text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("invalid config file pinpipe.toml, {expected}")), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn stage_tables_reach_their_sections() {
        let f = file(
            "[sink]\nflush_interval = \"500ms\"\nflush_size = 10\n[stream]\ncheckpoint_every = 5\nworker = \"1/2\"\n[gateway]\nidle_timeout = \"2s\"\n",
        )
        .unwrap();
        assert_eq!(f.sink.flush_interval, Some(Duration::from_millis(500)));
        assert_eq!((f.sink.flush_size, f.stream.checkpoint_every), (Some(10), Some(5)));
        assert_eq!(f.stream.worker, Some(Worker { index: 1, count: 2 }));
        assert_eq!(f.gateway.idle_timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn the_kafka_table_reaches_the_client_settings() {
        let f = file(
            "log = \"kafka://b:9092\"\n[kafka]\n\"security.protocol\" = \"SASL_SSL\"\nsasl.mechanism = \"AWS_MSK_IAM\"\n\"linger.ms\" = 10\n",
        )
        .unwrap();
        let cfg = Settings::resolve(Globals { data: Some("/d".into()), ..Default::default() }, f).unwrap();
        let expected: BTreeMap<String, String> =
            [("linger.ms", "10"), ("sasl.mechanism", "AWS_MSK_IAM"), ("security.protocol", "SASL_SSL")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(cfg.clients.kafka, expected);
        // A Kafka log keeps the streams in the embedded log.
        assert_eq!(cfg.streams, LogUrl::Embedded("/d/log".into()));
        let bad = file("[kafka]\n\"client.id\" = [1]\n").unwrap();
        let err = Settings::resolve(Globals::default(), bad).unwrap_err().to_string();
        assert!(err.contains("client.id"), "{err}");
    }
}
