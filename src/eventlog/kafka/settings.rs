//! The Kafka backend's settings: the `kafka://HOST:PORT[,HOST:PORT][?setting=value&…]` URL's
//! settings ([`KafkaUrl`], parsed by the settings layer) and the `[kafka]` table merged over our
//! producer defaults, MSK IAM switched on by its own mechanism name, and secret values kept out of
//! every message.
//!
//! Fed by [`super::open`]; feeds every rdkafka client the backend builds.

use std::collections::BTreeMap;

use super::iam;
use crate::eventlog::{Error, Result};
use crate::settings::KafkaUrl;

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

/// Merges the settings of `url` over `table` over [`DEFAULTS`].
pub(super) fn resolve(url: &KafkaUrl, table: &BTreeMap<String, String>) -> Result<Settings> {
    let invalid = |reason: String| Error::InvalidUrl { url: url.to_string(), reason };
    let hosts = url.brokers.join(",");
    let mut pairs: BTreeMap<String, String> = DEFAULTS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    pairs.extend(table.iter().map(|(k, v)| (k.clone(), v.clone())));
    pairs.extend(url.settings.iter().map(|(k, v)| (k.clone(), v.clone())));
    if pairs.contains_key("bootstrap.servers") || pairs.contains_key("metadata.broker.list") {
        return Err(invalid("the brokers come from the URL's host list, not from `bootstrap.servers`".into()));
    }
    pairs.insert("bootstrap.servers".into(), hosts.clone());
    let iam_region = if pairs.get("sasl.mechanism").is_some_and(|m| m.eq_ignore_ascii_case(iam::MECHANISM)) {
        pairs.insert("sasl.mechanism".into(), "OAUTHBEARER".into());
        pairs.entry("security.protocol".into()).or_insert_with(|| "SASL_SSL".into());
        let region = pairs.remove(iam::REGION_SETTING).or_else(|| std::env::var("AWS_REGION").ok());
        let region = region.or_else(|| iam::region_from_brokers(&hosts));
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
    Ok(Settings { brokers: hosts, pairs, iam_region })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> KafkaUrl {
        match text.parse() {
            Ok(crate::settings::LogUrl::Kafka(url)) => url,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn urls_give_brokers_and_settings() {
        let table = BTreeMap::from([("client.id".to_string(), "from-table".to_string())]);
        let s = resolve(&url("kafka://a:9092,b:9093?client.id=from-url&sasl.password=p%40ss"), &table).unwrap();
        assert_eq!(s.brokers, "a:9092,b:9093");
        assert_eq!(s.pairs["bootstrap.servers"], "a:9092,b:9093");
        assert_eq!(s.pairs["client.id"], "from-url");
        assert_eq!(s.pairs["sasl.password"], "p@ss");
        assert_eq!(s.pairs["acks"], "all");
        assert!(!format!("{s:?}").contains("p@ss"));
    }

    #[test]
    fn brokers_come_from_the_url_only() {
        let err = resolve(&url("kafka://h:1?bootstrap.servers=x"), &BTreeMap::new()).unwrap_err().to_string();
        assert!(err.contains("bootstrap.servers"), "{err}");
    }
}
