//! `pinpipe.toml`: the global keys (`data`, `id`, the backend URLs), a table per stage
//! ([`super::sections`]) and `[kafka]`, every value checked as it is read.
//!
//! Read once by [`FileConfig::load`]; a mistake (an unknown key, a value out of range, a URL that
//! cannot work) is one line naming the file, the line and the key, so a typo never silently falls
//! back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer};

use super::sections::{BatchSection, EmulatorSection, GatewaySection, LogSection, SinkSection, StreamSection};
use super::url::{LakeUrl, SourceUrl};
use super::{Error, LogFormat};

/// The contents of `pinpipe.toml`. Every key is optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Folder for the embedded source, log, lake and results (default `./data`).
    pub data: Option<PathBuf>,
    /// Pipeline id used in topic, stream and table names (default `pinterest`).
    pub id: Option<String>,
    /// Source database URL: `sqlite://FILE` or `mysql://user:pass@host:port/db` (default
    /// `sqlite://<data>/source.db`).
    #[serde(deserialize_with = "source_url")]
    pub source: Option<SourceUrl>,
    /// Event log for the batch topics: `log = "URL"`, or a `[log]` table with `url`.
    #[serde(deserialize_with = "LogSection::url_or_table")]
    pub log: LogSection,
    /// Event log for the streams: `streams = "URL"`, or a `[streams]` table with `url`.
    #[serde(deserialize_with = "LogSection::url_or_table")]
    pub streams: LogSection,
    /// The lake: `file://DIR` or `s3://bucket/prefix` (default `file://<data>/lake`).
    #[serde(deserialize_with = "lake_url")]
    pub lake: Option<LakeUrl>,
    /// Log line format on stderr: `text` (default) or `json`.
    pub log_format: Option<LogFormat>,
    /// `[gateway]`: the ingest API.
    pub gateway: GatewaySection,
    /// `[emulator]`: the posting emulator.
    pub emulator: EmulatorSection,
    /// `[sink]`: the object-store sink.
    pub sink: SinkSection,
    /// `[stream]`: the stream job.
    pub stream: StreamSection,
    /// `[batch]`: the batch job, its schedule and its results.
    pub batch: BatchSection,
    /// `[kafka]`: librdkafka client properties for a `kafka://` log, passed through as they are
    /// (`"security.protocol" = "SASL_SSL"`, `sasl.mechanism = "AWS_MSK_IAM"`, `"linger.ms" = 10`;
    /// dotted keys may be quoted or not). The URL's own `?key=value` settings win over these.
    /// Values may be strings, numbers or booleans; they are never logged.
    pub kafka: BTreeMap<String, toml::Value>,
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
        Self::parse(&text, &path)
    }

    /// Reads the text of the file at `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| {
            let (line, key) = e.span().map_or((0, String::new()), |span| locate(text, span.start));
            Error::Parse { path: path.to_path_buf(), line, key, message: e.message().trim().to_string() }
        })
    }

    /// The `[kafka]` table as `key → text`.
    pub(super) fn kafka_settings(&self) -> Result<BTreeMap<String, String>, Error> {
        let mut out = BTreeMap::new();
        flatten_settings("", &self.kafka, &mut out)?;
        Ok(out)
    }
}

/// The line number of byte `offset` in `text` and the key written on that line, with its table
/// (`sink.flush_size`), when there is one.
fn locate(text: &str, offset: usize) -> (usize, String) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let current = text.lines().nth(line - 1).unwrap_or_default();
    let key = current.split_once('=').map(|(k, _)| k.trim().trim_matches('"')).unwrap_or_default();
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(['[', ']']).trim());
    let key = match (table, key) {
        (_, "") => String::new(),
        (Some(table), key) if !current.trim_start().starts_with('[') => format!("{table}.{key}"),
        (_, key) => key.to_string(),
    };
    (line, key)
}

fn source_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SourceUrl>, D::Error> {
    String::deserialize(d)?.parse().map(Some).map_err(de::Error::custom)
}

fn lake_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LakeUrl>, D::Error> {
    String::deserialize(d)?.parse().map(Some).map_err(de::Error::custom)
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
