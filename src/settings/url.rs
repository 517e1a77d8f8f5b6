//! The backend URLs (SPEC §10), parsed once into the enums the backends open: [`SourceUrl`]
//! (`sqlite://FILE`, `mysql://…`), [`LogUrl`] (`embedded://DIR`, `kafka://HOST:PORT[,…][?k=v…]`,
//! `kinesis://[REGION][?endpoint=URL]`) and [`LakeUrl`] (`file://DIR`, `s3://bucket[/prefix]`).
//!
//! Fed by the settings layer (flags, variables and `pinpipe.toml` give text) and by the tests;
//! feeds [`crate::source::Source::connect`], [`crate::eventlog::open_with`] and
//! [`crate::lake::Lake::open`]. A URL that cannot work is refused here, with the reason, before any
//! backend is contacted. Every URL displays with its secrets (a MySQL password, a Kafka
//! `sasl.password`) replaced by `***`, so it can be logged as it is.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Why a URL was refused (shown after the URL it is about).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{url}` {reason}")]
pub struct UrlError {
    /// The URL as given, secrets hidden.
    pub url: String,
    pub reason: String,
}

/// Splits `scheme://rest`, or says what was expected.
fn split<'a>(text: &'a str, expected: &str) -> Result<(&'a str, &'a str), UrlError> {
    text.split_once("://")
        .ok_or_else(|| UrlError { url: redact_user_info(text), reason: format!("is not a URL (expected {expected})") })
}

fn refuse(shown: String, reason: impl Into<String>) -> UrlError {
    UrlError { url: shown, reason: reason.into() }
}

/// The source database.
#[derive(Clone, PartialEq, Eq)]
pub enum SourceUrl {
    /// `sqlite://PATH`: everything after the scheme is the file path, relative or absolute.
    Sqlite(PathBuf),
    /// `mysql://user:pass@host:port/db`, kept whole for the driver.
    Mysql(String),
}

impl SourceUrl {
    const EXPECTED: &'static str = "sqlite://FILE or mysql://user:pass@host:port/db";
}

impl FromStr for SourceUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        let text = text.trim();
        let shown = redact_user_info(text);
        match split(text, Self::EXPECTED)? {
            ("sqlite", "") => Err(refuse(shown, "names no SQLite file")),
            ("sqlite", path) => Ok(SourceUrl::Sqlite(PathBuf::from(path))),
            ("mysql", rest) => {
                let authority = rest.split(['/', '?']).next().unwrap_or_default();
                let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
                if host.is_empty() {
                    return Err(refuse(shown, "names no MySQL host (expected mysql://user:pass@host:port/db)"));
                }
                Ok(SourceUrl::Mysql(text.to_string()))
            }
            _ => Err(refuse(shown, format!("is not a supported source (expected {})", Self::EXPECTED))),
        }
    }
}

impl fmt::Display for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            SourceUrl::Mysql(url) => f.write_str(&redact_user_info(url)),
        }
    }
}

impl fmt::Debug for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceUrl({self})")
    }
}

/// An event log: where the topics or the streams live.
#[derive(Clone, PartialEq, Eq)]
pub enum LogUrl {
    /// `embedded://DIR`: the embedded durable log in a local folder.
    Embedded(PathBuf),
    /// `kafka://HOST:PORT[,HOST:PORT][?setting=value&…]`.
    Kafka(KafkaUrl),
    /// `kinesis://[REGION][?endpoint=URL]`.
    Kinesis(KinesisUrl),
}

/// A Kafka cluster: its bootstrap brokers and the librdkafka settings of the URL's query.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaUrl {
    /// `HOST:PORT` of each bootstrap broker, in the URL's order.
    pub brokers: Vec<String>,
    /// The query's `setting=value` pairs, decoded (may hold secrets: never printed whole).
    pub settings: BTreeMap<String, String>,
}

/// A Kinesis endpoint: the region (absent: from the AWS chain) and an endpoint override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisUrl {
    pub region: Option<String>,
    /// `?endpoint=http(s)://…`: a Kinesis-compatible server instead of AWS.
    pub endpoint: Option<String>,
}

impl LogUrl {
    const EXPECTED: &'static str = "embedded://DIR, kafka://HOST:PORT or kinesis://REGION";

    /// The backend's name as messages and benchmark rows show it.
    pub fn kind(&self) -> &'static str {
        match self {
            LogUrl::Embedded(_) => "embedded",
            LogUrl::Kafka(_) => "kafka",
            LogUrl::Kinesis(_) => "kinesis",
        }
    }
}

impl FromStr for LogUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        let text = text.trim();
        let shown = redact_query(text);
        match split(text, Self::EXPECTED)? {
            ("embedded", "") => Err(refuse(shown, "names no folder (expected embedded://DIR)")),
            ("embedded", dir) => Ok(LogUrl::Embedded(PathBuf::from(dir))),
            ("kafka", rest) => parse_kafka(rest).map(LogUrl::Kafka).map_err(|reason| refuse(shown, reason)),
            ("kinesis", rest) => parse_kinesis(rest).map(LogUrl::Kinesis).map_err(|reason| refuse(shown, reason)),
            _ => Err(refuse(shown, format!("is not a supported event log (expected {})", Self::EXPECTED))),
        }
    }
}

fn parse_kafka(rest: &str) -> Result<KafkaUrl, String> {
    let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
    let hosts = hosts.trim_end_matches('/');
    if hosts.is_empty() {
        return Err("names no broker (expected kafka://HOST:PORT[,HOST:PORT])".into());
    }
    let mut brokers = Vec::new();
    for host in hosts.split(',') {
        let ok = host.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(format!("has a broker address `{host}` that is not HOST:PORT"));
        }
        brokers.push(host.to_string());
    }
    let mut settings = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k.is_empty() {
            return Err("has a query pair with no setting name".into());
        }
        settings.insert(k.into_owned(), v.into_owned());
    }
    Ok(KafkaUrl { brokers, settings })
}

fn parse_kinesis(rest: &str) -> Result<KinesisUrl, String> {
    let (region, query) = rest.split_once('?').unwrap_or((rest, ""));
    let region = region.trim_end_matches('/');
    if !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err("has a region with characters other than letters, digits and `-`".into());
    }
    let mut endpoint = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "endpoint" if v.starts_with("http://") || v.starts_with("https://") => endpoint = Some(v.into_owned()),
            "endpoint" => return Err("has an `endpoint` that is not an http:// or https:// URL".into()),
            other => return Err(format!("has an unknown setting `{other}` (expected `endpoint`)")),
        }
    }
    Ok(KinesisUrl { region: (!region.is_empty()).then(|| region.to_string()), endpoint })
}

impl fmt::Display for LogUrl {
    /// The URL with the values of secret settings replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogUrl::Embedded(dir) => write!(f, "embedded://{}", dir.display()),
            LogUrl::Kafka(kafka) => write!(f, "{kafka}"),
            LogUrl::Kinesis(KinesisUrl { region, endpoint }) => {
                write!(f, "kinesis://{}", region.as_deref().unwrap_or_default())?;
                match endpoint {
                    Some(endpoint) => write!(f, "?endpoint={endpoint}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl fmt::Debug for LogUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogUrl({self})")
    }
}

impl fmt::Display for KafkaUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kafka://{}", self.brokers.join(","))?;
        for (i, (key, value)) in self.settings.iter().enumerate() {
            let value = if is_secret(key) { "***" } else { value };
            write!(f, "{}{key}={value}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

impl fmt::Debug for KafkaUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KafkaUrl({self})")
    }
}

/// The lake: a local folder or an S3 location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeUrl {
    /// `file://DIR`.
    File(PathBuf),
    /// `s3://bucket[/prefix]`; the prefix has no leading or trailing `/`.
    S3 { bucket: String, prefix: String },
}

impl FromStr for LakeUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        let text = text.trim().trim_end_matches('/');
        let expected = "file://DIR or s3://bucket/prefix";
        match split(text, expected)? {
            ("file", "") => Err(refuse(text.into(), "names no folder (expected file://DIR)")),
            ("file", dir) => Ok(LakeUrl::File(PathBuf::from(dir))),
            ("s3", rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(refuse(text.into(), "names no bucket (expected s3://bucket/prefix)"));
                }
                Ok(LakeUrl::S3 { bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string() })
            }
            _ => Err(refuse(text.into(), format!("is not a supported lake (expected {expected})"))),
        }
    }
}

impl fmt::Display for LakeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LakeUrl::File(dir) => write!(f, "file://{}", dir.display()),
            LakeUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            LakeUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Kafka setting keys whose values are secrets: never shown.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "key.pem", "keystore", "token", "sasl.oauthbearer.config"].iter().any(|s| key.contains(s))
}

/// `url` with the password of its user-info part replaced by `***`.
fn redact_user_info(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return url.to_owned() };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// `url` with the values of secret query settings replaced by `***` (for text not yet parsed).
fn redact_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else { return url.to_string() };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret(k) => format!("{k}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_hide_the_password() {
        assert_eq!("sqlite://data/source.db".parse::<SourceUrl>().unwrap(), SourceUrl::Sqlite("data/source.db".into()));
        let mysql: SourceUrl = "mysql://root:s3cr3t@db:3306/pins".parse().unwrap();
        assert_eq!(mysql.to_string(), "mysql://root:***@db:3306/pins");
        assert_eq!(format!("{mysql:?}"), "SourceUrl(mysql://root:***@db:3306/pins)");
        assert_eq!("sqlite:///tmp/a@b/s.db".parse::<SourceUrl>().unwrap().to_string(), "sqlite:///tmp/a@b/s.db");
        for (bad, reason) in [
            ("sqlite://", "names no SQLite file"),
            ("mysql://u:pw@/db", "names no MySQL host"),
            ("postgres://h/db", "is not a supported source"),
            ("source.db", "is not a URL"),
        ] {
            let e = bad.parse::<SourceUrl>().unwrap_err();
            assert!(e.reason.starts_with(reason), "{bad}: {e}");
            assert!(!e.to_string().contains("pw"), "{e}");
        }
    }

    #[test]
    fn logs_parse_into_their_backend() {
        assert_eq!("embedded://data/log".parse::<LogUrl>().unwrap(), LogUrl::Embedded("data/log".into()));
        let kafka: LogUrl = "kafka://a:9092,b:9093?client.id=x&sasl.password=p%40ss".parse().unwrap();
        let LogUrl::Kafka(k) = &kafka else { panic!("{kafka:?}") };
        assert_eq!(k.brokers, ["a:9092", "b:9093"]);
        assert_eq!(k.settings["sasl.password"], "p@ss");
        assert_eq!(kafka.to_string(), "kafka://a:9092,b:9093?client.id=x&sasl.password=***");
        let kinesis: LogUrl = "kinesis://us-east-1?endpoint=http://127.0.0.1:4567".parse().unwrap();
        assert_eq!(
            kinesis,
            LogUrl::Kinesis(KinesisUrl {
                region: Some("us-east-1".into()),
                endpoint: Some("http://127.0.0.1:4567".into())
            })
        );
        assert_eq!(kinesis.to_string(), "kinesis://us-east-1?endpoint=http://127.0.0.1:4567");
        assert_eq!("kinesis://".parse::<LogUrl>().unwrap().kind(), "kinesis");
        for (bad, reason) in [
            ("embedded://", "names no folder"),
            ("kafka://", "names no broker"),
            ("kafka://host", "has a broker address `host` that is not HOST:PORT"),
            ("kafka://h:1?=x", "has a query pair with no setting name"),
            ("kinesis://us east", "has a region"),
            ("kinesis://r?endpoint=ftp://x", "has an `endpoint`"),
            ("kinesis://r?speed=3", "has an unknown setting `speed`"),
            ("redis://h:1", "is not a supported event log"),
        ] {
            let e = bad.parse::<LogUrl>().unwrap_err();
            assert!(e.reason.starts_with(reason), "{bad}: {e}");
        }
        let e = "kafka://h?sasl.password=hunter2".parse::<LogUrl>().unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn lakes_parse_with_their_prefix() {
        assert_eq!("file:///tmp/lake/".parse::<LakeUrl>().unwrap(), LakeUrl::File("/tmp/lake".into()));
        let s3: LakeUrl = "s3://bucket/a/b/".parse().unwrap();
        assert_eq!(s3, LakeUrl::S3 { bucket: "bucket".into(), prefix: "a/b".into() });
        assert_eq!(s3.to_string(), "s3://bucket/a/b");
        assert_eq!("s3://bucket".parse::<LakeUrl>().unwrap().to_string(), "s3://bucket");
        for bad in ["s3://", "gs://b", "file://", "lake"] {
            assert!(bad.parse::<LakeUrl>().is_err(), "{bad}");
        }
    }
}
