//! The Kafka backend's settings: the `kafka://HOST:PORT[,HOST:PORT][?setting=value&…]` URL and the
//! `[kafka]` table merged over our producer defaults, MSK IAM switched on by its own mechanism
//! name, and secret values kept out of every message.
//!
//! Fed by [`super::open`]; feeds every rdkafka client the backend builds.

use std::collections::BTreeMap;

use super::iam;
use crate::eventlog::{Error, Result};

/// Settings we set unless the user does; every other librdkafka default stays.
pub(super) const DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("linger.ms", "5"),
    ("partitioner", "murmur2_random"),
    ("message.timeout.ms", "10000"),
    ("request.timeout.ms", "5000"),
    ("allow.auto.create.topics", "false"),
];

/// Settings that only a producer takes (librdkafka warns when a consumer gets them).
pub(super) const PRODUCER_ONLY: &[&str] = &[
    "acks",
    "enable.idempotence",
    "linger.ms",
    "partitioner",
    "message.timeout.ms",
    "request.timeout.ms",
    "delivery.timeout.ms",
    "queue.buffering.max.ms",
    "batch.num.messages",
    "batch.size",
    "compression.type",
    "compression.codec",
    "retries",
    "message.send.max.retries",
    "max.in.flight",
    "max.in.flight.requests.per.connection",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "transactional.id",
];

/// Setting keys whose values are secrets: never shown.
pub(super) fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "key.pem", "keystore", "token", "sasl.oauthbearer.config"].iter().any(|s| key.contains(s))
        || key == "ssl.key.password"
}

/// The parsed URL and settings: what every client of one log is configured from.
#[derive(Clone)]
pub(super) struct Settings {
    pub brokers: String,
    /// Everything passed to librdkafka, our defaults included (never printed: may hold secrets).
    pub pairs: BTreeMap<String, String>,
    /// The region when MSK IAM auth is on.
    pub iam_region: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&String> = self.pairs.keys().collect();
        f.debug_struct("Settings").field("brokers", &self.brokers).field("keys", &keys).finish()
    }
}

/// Parses `url` and merges its settings over `table` over [`DEFAULTS`].
pub(super) fn parse_url(url: &str, table: &BTreeMap<String, String>) -> Result<Settings> {
    let invalid = |reason: String| Error::InvalidUrl { url: redact_url(url), reason };
    let rest = url.strip_prefix("kafka://").ok_or_else(|| Error::UnsupportedUrl(redact_url(url)))?;
    let (hosts, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    let hosts = hosts.trim_end_matches('/');
    if hosts.is_empty() {
        return Err(invalid("no broker address (expected kafka://HOST:PORT[,HOST:PORT])".into()));
    }
    for host in hosts.split(',') {
        let ok = host.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(invalid(format!("broker address `{host}` is not HOST:PORT")));
        }
    }
    let mut pairs: BTreeMap<String, String> = DEFAULTS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    pairs.extend(table.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(query) = query {
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if k.is_empty() {
                return Err(invalid("a query pair has no setting name".into()));
            }
            pairs.insert(k.into_owned(), v.into_owned());
        }
    }
    if pairs.contains_key("bootstrap.servers") || pairs.contains_key("metadata.broker.list") {
        return Err(invalid("the brokers come from the URL's host list, not from `bootstrap.servers`".into()));
    }
    pairs.insert("bootstrap.servers".into(), hosts.to_string());
    let iam_region = if pairs.get("sasl.mechanism").is_some_and(|m| m.eq_ignore_ascii_case(iam::MECHANISM)) {
        pairs.insert("sasl.mechanism".into(), "OAUTHBEARER".into());
        pairs.entry("security.protocol".into()).or_insert_with(|| "SASL_SSL".into());
        let region = pairs.remove(iam::REGION_SETTING).or_else(|| std::env::var("AWS_REGION").ok());
        let region = region.or_else(|| iam::region_from_brokers(hosts));
        Some(region.ok_or_else(|| {
            invalid(format!(
                "sasl.mechanism={} needs a region: set `{}` or AWS_REGION",
                iam::MECHANISM,
                iam::REGION_SETTING
            ))
        })?)
    } else {
        None
    };
    Ok(Settings { brokers: hosts.to_string(), pairs, iam_region })
}

/// `url` with the values of secret query settings replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
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
    fn urls_give_brokers_and_settings() {
        let table = BTreeMap::from([("client.id".to_string(), "from-table".to_string())]);
        let s = parse_url("kafka://a:9092,b:9093?client.id=from-url&sasl.password=p%40ss", &table).unwrap();
        assert_eq!(s.brokers, "a:9092,b:9093");
        assert_eq!(s.pairs["bootstrap.servers"], "a:9092,b:9093");
        assert_eq!(s.pairs["client.id"], "from-url");
        assert_eq!(s.pairs["sasl.password"], "p@ss");
        assert_eq!(s.pairs["acks"], "all");
        assert!(!format!("{s:?}").contains("p@ss"));
    }

    #[test]
    fn bad_urls_name_what_is_wrong() {
        let none = BTreeMap::new();
        for (url, needle) in [
            ("kafka://", "no broker"),
            ("kafka://host", "`host` is not HOST:PORT"),
            ("kafka://h:1?bootstrap.servers=x", "bootstrap.servers"),
        ] {
            let err = parse_url(url, &none).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }
}
