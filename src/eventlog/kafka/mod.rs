//! The `kafka://HOST:PORT[,HOST:PORT][?setting=value&…]` backend: topics on a Kafka cluster
//! (Apache Kafka, MSK, Redpanda, Tansu) through rdkafka and its bundled librdkafka.
//!
//! Fed by [`super::open_with`] with the URL and the `[kafka]` settings of `pinpipe.toml`; used by
//! the gateway (appends), the sink (reads) and `pinpipe topics` (admin). Holds topics only: the
//! streams namespace lives in the embedded log or Kinesis (SPEC §10), so opening this backend for
//! [`Namespace::Streams`] is an [`Error::InvalidUrl`].
//!
//! Settings: the URL's query pairs and the `[kafka]` table are librdkafka client properties
//! passed through (`security.protocol`, `sasl.*`, `ssl.*`, `client.id`, `message.timeout.ms`, …;
//! the URL wins over the table, both over our defaults). librdkafka names a bad one and we report
//! it as [`Error::InvalidUrl`] naming the key; values of secret settings never appear in errors or
//! logs. `sasl.mechanism=AWS_MSK_IAM` is ours: SASL OAUTHBEARER with an MSK IAM token ([`iam`]).
//!
//! Appends: one idempotent producer (`acks=all`, `enable.idempotence=true`) shared by all callers;
//! keyed records are partitioned like the Java client (`murmur2_random`), an explicit partition is
//! checked against the topic's metadata first (never auto-creating a topic). `append` answers once
//! every record's delivery report is in. A record not delivered within `message.timeout.ms`
//! (default 10 s here) fails the append with [`Error::Unavailable`], so the gateway answers 503.
//!
//! A failed multi-record append: Kafka writes different partitions in separate requests and
//! cannot make them atomic without transactions. So an append that fails may have stored some of
//! its records (those whose delivery succeeded) — never a record twice (idempotence) and never
//! out of order within a partition. The caller was not acknowledged and retries the whole append:
//! the records that were stored then appear twice, which is at-least-once for failed requests
//! and exactly-once for acknowledged ones.
//!
//! Reads: one assigned consumer per (topic, partition), kept between calls, so a reader polling
//! from increasing offsets continues the consumer's prefetched stream instead of seeking; another
//! offset re-assigns. Each read first asks for the high watermark: records below it are waited
//! for (up to a short deadline); past it a read takes only what the consumer has already fetched,
//! so a follower at the end gets an empty answer within milliseconds. Some brokers (Tansu 0.6)
//! report the last batch's base offset + 1 as the high watermark; `describe` and a read that jumps
//! past the watermark fetch that last batch to find the true end ([`read::probe_end`]), which on
//! Kafka costs one fetch and changes nothing. No consumer-group offsets are committed: positions
//! live in the outputs.
//!
//! The files: [`settings`] merges the URL's settings with the table and our defaults, [`iam`] makes MSK IAM tokens,
//! [`client`](mod@client) builds the librdkafka clients from both; [`admin`] creates, lists,
//! describes and deletes topics and knows their partition counts; [`produce`] appends; [`read`]
//! reads. This file holds [`KafkaLog`], the caches its parts share, and the [`EventLog`] impl that
//! hands each call to its part.

mod admin;
mod client;
mod iam;
mod produce;
mod read;
mod settings;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::AdminClient;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;

use self::client::{KafkaContext, client};
use self::read::Reader;
use self::settings::Settings;
use super::{
    Appended, ClientSettings, Error, EventLog, LogInfo, Namespace, NewRecord, Policy, Record, Result, Retention,
};
use crate::settings::KafkaUrl;

/// The name errors use for this backend.
const BACKEND: &str = "Kafka";
/// How long a metadata, watermark or admin request may take before the cluster counts as down.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One reader per (topic, partition), each used by one read at a time.
type Readers = HashMap<(String, u32), Arc<Mutex<Reader>>>;

/// Topics on a Kafka cluster (see the module doc).
pub struct KafkaLog {
    url: String,
    settings: Settings,
    iam: Option<iam::TokenSource>,
    producer: RwLock<Arc<FutureProducer<KafkaContext>>>,
    admin: Arc<AdminClient<KafkaContext>>,
    /// For metadata and watermarks (never assigned).
    meta: Arc<BaseConsumer<KafkaContext>>,
    readers: Mutex<Readers>,
    /// Topic → (partition count, when it was read).
    partitions: Mutex<HashMap<String, (u32, Instant)>>,
    /// When the admin and metadata clients last got an MSK IAM token.
    token_set: Mutex<Option<Instant>>,
    /// The `retention.ms` of topics created without one of their own.
    retention: Retention,
}

/// How often the clients whose refresh events nobody polls get a new MSK IAM token.
const TOKEN_REFRESH: Duration = Duration::from_secs(600);

/// Opens the `kafka://` log `url` for `namespace` with the `[kafka]` settings of `settings`.
pub async fn open(
    url: &KafkaUrl,
    namespace: Namespace,
    settings: &ClientSettings,
    policy: Policy,
) -> Result<Arc<dyn EventLog>> {
    if namespace != Namespace::Topics {
        return Err(Error::InvalidUrl {
            url: url.to_string(),
            reason: "the Kafka backend holds topics only; streams go to embedded:// or kinesis://".into(),
        });
    }
    let mut log = KafkaLog::open(url, &settings.kafka).await?;
    log.retention = policy.retention;
    Ok(Arc::new(log))
}

impl KafkaLog {
    /// Connects to the cluster `url` names, with `table` (the `[kafka]` settings) under the URL's.
    pub async fn open(url: &KafkaUrl, table: &BTreeMap<String, String>) -> Result<Self> {
        let settings = settings::resolve(url, table)?;
        let url = url.to_string();
        let iam = match &settings.iam_region {
            Some(region) => Some(
                iam::TokenSource::load(region)
                    .await
                    .map_err(|reason| Error::InvalidUrl { url: url.clone(), reason })?,
            ),
            None => None,
        };
        let producer: FutureProducer<KafkaContext> = client(&settings, &iam, true, &url)?;
        let admin: AdminClient<KafkaContext> = client(&settings, &iam, true, &url)?;
        let meta: BaseConsumer<KafkaContext> = client(&settings, &iam, false, &url)?;
        if let Some(source) = &iam {
            source.set_on(admin.inner()).await;
            source.set_on(meta.client()).await;
        }
        tracing::info!(brokers = %settings.brokers, iam = iam.is_some(), "Kafka event log opened");
        Ok(KafkaLog {
            url,
            settings,
            iam,
            producer: RwLock::new(Arc::new(producer)),
            admin: Arc::new(admin),
            meta: Arc::new(meta),
            readers: Mutex::default(),
            partitions: Mutex::default(),
            token_set: Mutex::new(Some(Instant::now())),
            retention: Retention::default_for(Namespace::Topics),
        })
    }

    /// With MSK IAM auth: gives the admin and metadata clients a fresh token when theirs is old.
    async fn refresh_tokens(&self) {
        let Some(source) = &self.iam else { return };
        let due = match self.token_set.lock() {
            Ok(mut at) if at.is_none_or(|t| t.elapsed() >= TOKEN_REFRESH) => {
                *at = Some(Instant::now());
                true
            }
            _ => false,
        };
        if due {
            source.set_on(self.admin.inner()).await;
            source.set_on(self.meta.client()).await;
        }
    }

    /// Drops what this process knows of topic `name` (its partition count, its readers).
    fn forget(&self, name: &str) {
        if let Ok(mut cache) = self.partitions.lock() {
            cache.remove(name);
        }
        if let Ok(mut readers) = self.readers.lock() {
            readers.retain(|(topic, _), _| topic != name);
        }
    }
}

#[async_trait]
impl EventLog for KafkaLog {
    fn namespace(&self) -> Namespace {
        Namespace::Topics
    }

    async fn create(&self, name: &str, partitions: u32, retention: Option<Retention>) -> Result<LogInfo> {
        self.create_topic(name, partitions, retention.unwrap_or(self.retention)).await
    }

    async fn list(&self) -> Result<Vec<String>> {
        self.list_topics().await
    }

    async fn describe(&self, name: &str) -> Result<LogInfo> {
        self.describe_topic(name).await
    }

    async fn delete(&self, name: &str) -> Result<()> {
        self.delete_topic(name).await
    }

    async fn append(&self, name: &str, records: Vec<NewRecord>) -> Result<Vec<Appended>> {
        self.produce(name, records).await
    }

    async fn read(&self, name: &str, partition: u32, from: u64, max: usize) -> Result<Vec<Record>> {
        self.read_records(name, partition, from, max).await
    }
}

/// Runs librdkafka's blocking calls off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|_| Error::Closed)?
}

fn not_found(name: &str) -> Error {
    Error::NotFound { noun: Namespace::Topics.noun(), name: name.to_string() }
}

fn unavailable(e: KafkaError) -> Error {
    Error::Unavailable { backend: BACKEND, detail: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unknown_setting_is_named() {
        let url = KafkaUrl {
            brokers: vec!["127.0.0.1:1".into()],
            settings: BTreeMap::from([("no.such.setting".into(), "1".into())]),
        };
        let err = KafkaLog::open(&url, &BTreeMap::new()).await.err().unwrap();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
        assert!(err.to_string().contains("no.such.setting"), "{err}");
    }
}
