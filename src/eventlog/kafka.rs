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
//! past the watermark fetch that last batch to find the true end ([`probe_end`]), which on Kafka
//! costs one fetch and changes nothing. No consumer-group offsets are committed: positions live
//! in the outputs.

mod iam;
mod settings;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

pub use settings::redact_url;
use settings::{PRODUCER_ONLY, Settings, is_secret, parse_url};

use super::{
    Appended, ClientSettings, Error, EventLog, LogInfo, Namespace, NewRecord, PartitionInfo, Position, Record, Result,
    validate_name,
};

/// The name errors use for this backend.
const BACKEND: &str = "Kafka";
/// Most partitions a topic may be created with (the trait's common limit).
const MAX_PARTITIONS: u32 = 1024;
/// How long a metadata, watermark or admin request may take before the cluster counts as down.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a `read` waits for records the watermark says are there.
const READ_DEADLINE: Duration = Duration::from_secs(2);
/// How long a topic's partition count is trusted before an append asks the cluster again.
const METADATA_TTL: Duration = Duration::from_secs(5);
/// How long a read past the known end waits for records the consumer may be fetching.
const PAST_END_WAIT: Duration = Duration::from_millis(20);
/// How long `create` waits for a new topic to show in the metadata.
const CREATE_PROPAGATION: Duration = Duration::from_secs(10);

/// What librdkafka calls back into: logs to tracing, MSK IAM tokens.
struct KafkaContext {
    iam: Option<iam::TokenSource>,
}

impl ClientContext for KafkaContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(facility = fac, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Debug => tracing::debug!(facility = fac, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, "librdkafka: {reason}");
    }

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> std::result::Result<OAuthToken, Box<dyn std::error::Error>> {
        match &self.iam {
            Some(source) => source.token(),
            None => Err("OAUTHBEARER tokens are generated only for sasl.mechanism=AWS_MSK_IAM".into()),
        }
    }
}

impl ConsumerContext for KafkaContext {}

/// Builds one librdkafka client of kind `T` from `settings` (producer settings only for a producer).
fn client<T>(settings: &Settings, iam: &Option<iam::TokenSource>, producer: bool, url: &str) -> Result<T>
where
    T: rdkafka::config::FromClientConfigAndContext<KafkaContext>,
{
    let mut config = ClientConfig::new();
    for (k, v) in &settings.pairs {
        if producer || !PRODUCER_ONLY.contains(&k.as_str()) {
            config.set(k, v);
        }
    }
    if !producer {
        // Readers assign partitions by hand: a group id is needed for that, no group is joined
        // and no offset is ever committed.
        config.set("group.id", "pinpipe-reader");
        config.set("enable.auto.commit", "false");
        config.set("enable.auto.offset.store", "false");
        config.set("auto.offset.reset", "earliest");
        config.set("fetch.wait.max.ms", "100");
        config.set("enable.partition.eof", "false");
    }
    config.set_log_level(RDKafkaLogLevel::Warning);
    config.create_with_context(KafkaContext { iam: iam.clone() }).map_err(|e| config_error(url, e))
}

/// A client-creation failure as an error naming the bad setting (its value hidden if secret).
fn config_error(url: &str, e: KafkaError) -> Error {
    let reason = match e {
        KafkaError::ClientConfig(_, description, key, value) => {
            let description =
                if is_secret(&key) && !value.is_empty() { description.replace(&value, "***") } else { description };
            format!("setting `{key}`: {description}")
        }
        KafkaError::ClientCreation(reason) => format!("cannot create a Kafka client: {reason}"),
        other => other.to_string(),
    };
    Error::InvalidUrl { url: redact_url(url), reason }
}

/// One partition's consumer and where its fetch stream stands.
struct Reader {
    consumer: BaseConsumer<KafkaContext>,
    /// The offset the consumer's next message has, when it is assigned.
    next: Option<u64>,
    /// The highest end this reader has seen (records read, [`probe_end`]).
    end_hint: u64,
}

/// Topics on a Kafka cluster (see the module doc).
pub struct KafkaLog {
    url: String,
    settings: Settings,
    iam: Option<iam::TokenSource>,
    producer: RwLock<Arc<FutureProducer<KafkaContext>>>,
    admin: Arc<AdminClient<KafkaContext>>,
    /// For metadata and watermarks (never assigned).
    meta: Arc<BaseConsumer<KafkaContext>>,
    readers: Mutex<HashMap<(String, u32), Arc<Mutex<Reader>>>>,
    /// Topic → (partition count, when it was read).
    partitions: Mutex<HashMap<String, (u32, Instant)>>,
    /// When the admin and metadata clients last got an MSK IAM token.
    token_set: Mutex<Option<Instant>>,
}

/// How often the clients whose refresh events nobody polls get a new MSK IAM token.
const TOKEN_REFRESH: Duration = Duration::from_secs(600);

/// Opens the `kafka://` log `url` for `namespace` with the `[kafka]` settings of `settings`.
pub async fn open(url: &str, namespace: Namespace, settings: &ClientSettings) -> Result<Arc<dyn EventLog>> {
    if namespace != Namespace::Topics {
        return Err(Error::InvalidUrl {
            url: redact_url(url),
            reason: "the Kafka backend holds topics only; streams go to embedded:// or kinesis://".into(),
        });
    }
    Ok(Arc::new(KafkaLog::open(url, &settings.kafka).await?))
}

impl KafkaLog {
    /// `partition` of topic `name`, checked against fresh metadata (the cached count said it
    /// was out of range; the topic may have grown since).
    async fn check_partition(&self, name: &str, partition: u32) -> Result<()> {
        let count = self.fetch_partition_count(name).await?;
        if partition >= count {
            return Err(Error::NoSuchPartition {
                noun: Namespace::Topics.noun(),
                name: name.to_string(),
                partition,
                partitions: count,
            });
        }
        Ok(())
    }

    /// Connects to the cluster `url` names, with `table` (the `[kafka]` settings) under the URL's.
    pub async fn open(url: &str, table: &BTreeMap<String, String>) -> Result<Self> {
        let settings = parse_url(url, table)?;
        let iam = match &settings.iam_region {
            Some(region) => Some(
                iam::TokenSource::load(region)
                    .await
                    .map_err(|reason| Error::InvalidUrl { url: redact_url(url), reason })?,
            ),
            None => None,
        };
        let producer: FutureProducer<KafkaContext> = client(&settings, &iam, true, url)?;
        let admin: AdminClient<KafkaContext> = client(&settings, &iam, true, url)?;
        let meta: BaseConsumer<KafkaContext> = client(&settings, &iam, false, url)?;
        if let Some(source) = &iam {
            source.set_on(admin.inner()).await;
            source.set_on(meta.client()).await;
        }
        tracing::info!(brokers = %settings.brokers, iam = iam.is_some(), "Kafka event log opened");
        Ok(KafkaLog {
            url: redact_url(url),
            settings,
            iam,
            producer: RwLock::new(Arc::new(producer)),
            admin: Arc::new(admin),
            meta: Arc::new(meta),
            readers: Mutex::default(),
            partitions: Mutex::default(),
            token_set: Mutex::new(Some(Instant::now())),
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

    /// The brokers this log talks to.
    pub fn brokers(&self) -> &str {
        &self.settings.brokers
    }

    fn producer(&self) -> Result<Arc<FutureProducer<KafkaContext>>> {
        self.producer.read().map(|p| Arc::clone(&p)).map_err(|_| Error::Closed)
    }

    /// Replaces the producer after a fatal error (an idempotent producer that lost its sequence).
    /// Also after a delivery failed with `lost_identity`: the broker no longer accepts this
    /// producer's id or epoch (after timed-out batches some brokers fence the epoch librdkafka
    /// bumps to), which no retry of this producer can fix.
    fn renew_producer(&self, failed: &Arc<FutureProducer<KafkaContext>>, lost_identity: bool) {
        match failed.client().fatal_error() {
            Some((code, reason)) => {
                tracing::warn!(?code, reason, "the Kafka producer hit a fatal error; starting a new one")
            }
            None if lost_identity => tracing::warn!("the broker fenced the Kafka producer; starting a new one"),
            None => return,
        }
        match client::<FutureProducer<KafkaContext>>(&self.settings, &self.iam, true, &self.url) {
            Ok(fresh) => {
                if let Ok(mut slot) = self.producer.write()
                    && Arc::ptr_eq(&slot, failed)
                {
                    *slot = Arc::new(fresh);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot create a new Kafka producer"),
        }
    }

    /// The topic's partition count from fresh metadata; `NotFound` when the cluster has no such
    /// topic.
    async fn fetch_partition_count(&self, name: &str) -> Result<u32> {
        self.refresh_tokens().await;
        let meta = Arc::clone(&self.meta);
        let topic = name.to_string();
        let count = blocking(move || {
            let md = meta.fetch_metadata(Some(&topic), REQUEST_TIMEOUT).map_err(unavailable)?;
            let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
                return Ok(None);
            };
            match t.error() {
                None if !t.partitions().is_empty() => Ok(Some(t.partitions().len() as u32)),
                None => Ok(None),
                Some(e) => match RDKafkaErrorCode::from(e) {
                    RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => Ok(None),
                    RDKafkaErrorCode::InvalidTopic => Ok(None),
                    code => {
                        Err(Error::Unavailable { backend: BACKEND, detail: format!("metadata of `{topic}`: {code}") })
                    }
                },
            }
        })
        .await?;
        let mut cache = self.partitions.lock().map_err(|_| Error::Closed)?;
        match count {
            Some(n) => {
                cache.insert(name.to_string(), (n, Instant::now()));
                Ok(n)
            }
            None => {
                cache.remove(name);
                Err(not_found(name))
            }
        }
    }

    /// The topic's partition count, from a recent answer when there is one.
    async fn partition_count(&self, name: &str) -> Result<u32> {
        let cached = self.partitions.lock().map_err(|_| Error::Closed)?.get(name).copied();
        match cached {
            Some((n, at)) if at.elapsed() < METADATA_TTL => Ok(n),
            _ => self.fetch_partition_count(name).await,
        }
    }

    fn forget(&self, name: &str) {
        if let Ok(mut cache) = self.partitions.lock() {
            cache.remove(name);
        }
        if let Ok(mut readers) = self.readers.lock() {
            readers.retain(|(topic, _), _| topic != name);
        }
    }

    /// The reader of one partition, created on first use.
    async fn reader(&self, name: &str, partition: u32) -> Result<Arc<Mutex<Reader>>> {
        let key = (name.to_string(), partition);
        if let Some(r) = self.readers.lock().map_err(|_| Error::Closed)?.get(&key) {
            return Ok(Arc::clone(r));
        }
        let consumer: BaseConsumer<KafkaContext> = client(&self.settings, &self.iam, false, &self.url)?;
        if let Some(source) = &self.iam {
            // Its first token; later ones come through its own polls.
            source.set_on(consumer.client()).await;
        }
        let fresh = Arc::new(Mutex::new(Reader { consumer, next: None, end_hint: 0 }));
        let mut readers = self.readers.lock().map_err(|_| Error::Closed)?;
        Ok(Arc::clone(readers.entry(key).or_insert(fresh)))
    }
}

#[async_trait]
impl EventLog for KafkaLog {
    fn namespace(&self) -> Namespace {
        Namespace::Topics
    }

    async fn create(&self, name: &str, partitions: u32) -> Result<LogInfo> {
        validate_name(Namespace::Topics, name)?;
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(Error::InvalidPartitionCount(partitions));
        }
        self.refresh_tokens().await;
        let topic = NewTopic::new(name, partitions as i32, TopicReplication::Fixed(-1));
        let options =
            AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT)).request_timeout(Some(REQUEST_TIMEOUT));
        let results = self.admin.create_topics([&topic], &options).await.map_err(unavailable)?;
        for result in results {
            if let Err((_, code)) = result {
                return Err(match code {
                    RDKafkaErrorCode::TopicAlreadyExists => {
                        Error::AlreadyExists { noun: Namespace::Topics.noun(), name: name.to_string() }
                    }
                    RDKafkaErrorCode::InvalidTopic => Error::InvalidName {
                        noun: Namespace::Topics.noun(),
                        name: name.to_string(),
                        reason: "the cluster refused it",
                    },
                    RDKafkaErrorCode::InvalidPartitions => Error::InvalidPartitionCount(partitions),
                    code if is_transient(code) => {
                        Error::Unavailable { backend: BACKEND, detail: format!("creating `{name}`: {code}") }
                    }
                    code => Error::Refused { backend: BACKEND, detail: format!("creating `{name}`: {code}") },
                });
            }
        }
        // The controller answered; wait until the metadata (what appends check) shows it.
        let started = Instant::now();
        loop {
            match self.fetch_partition_count(name).await {
                Ok(n) if n == partitions => break,
                Ok(_) | Err(Error::NotFound { .. }) if started.elapsed() < CREATE_PROPAGATION => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(_) | Err(Error::NotFound { .. }) => {
                    return Err(Error::Unavailable {
                        backend: BACKEND,
                        detail: format!("topic `{name}` was created but does not show in the metadata"),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        self.describe(name).await
    }

    async fn list(&self) -> Result<Vec<String>> {
        self.refresh_tokens().await;
        let meta = Arc::clone(&self.meta);
        blocking(move || {
            let md = meta.fetch_metadata(None, REQUEST_TIMEOUT).map_err(unavailable)?;
            let mut names: Vec<String> = md
                .topics()
                .iter()
                .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
                .map(|t| t.name().to_string())
                .collect();
            names.sort();
            Ok(names)
        })
        .await
    }

    async fn describe(&self, name: &str) -> Result<LogInfo> {
        let count = self.fetch_partition_count(name).await?;
        let mut partitions = Vec::with_capacity(count as usize);
        for partition in 0..count {
            let reader = self.reader(name, partition).await?;
            let topic = name.to_string();
            partitions.push(
                blocking(move || {
                    let mut reader = reader.lock().map_err(|_| Error::Closed)?;
                    let (low, high) = watermarks(&reader.consumer, &topic, partition)?;
                    let end = probe_end(&mut reader, &topic, partition, high)?;
                    Ok(PartitionInfo { partition, start: low, end })
                })
                .await?,
            );
        }
        // The client sees no topic ids: readers check their positions against the log's end.
        Ok(LogInfo { name: name.to_string(), partitions, incarnation: None })
    }

    async fn delete(&self, name: &str) -> Result<()> {
        self.refresh_tokens().await;
        validate_name(Namespace::Topics, name).map_err(|_| not_found(name))?;
        let options =
            AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT)).request_timeout(Some(REQUEST_TIMEOUT));
        let results = self.admin.delete_topics(&[name], &options).await.map_err(unavailable)?;
        self.forget(name);
        for result in results {
            if let Err((_, code)) = result {
                return Err(match code {
                    RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => not_found(name),
                    code if is_transient(code) => {
                        Error::Unavailable { backend: BACKEND, detail: format!("deleting `{name}`: {code}") }
                    }
                    code => Error::Refused { backend: BACKEND, detail: format!("deleting `{name}`: {code}") },
                });
            }
        }
        Ok(())
    }

    async fn append(&self, name: &str, records: Vec<NewRecord>) -> Result<Vec<Appended>> {
        validate_name(Namespace::Topics, name).map_err(|_| not_found(name))?;
        let count = self.partition_count(name).await?;
        if let Some(partition) = records.iter().filter_map(|r| r.partition).find(|&p| p >= count) {
            self.check_partition(name, partition).await?;
        }
        let producer = self.producer()?;
        let mut deliveries = Vec::with_capacity(records.len());
        let mut failure = None;
        for record in &records {
            let mut message = FutureRecord::<[u8], [u8]>::to(name).payload(&record.value);
            if let Some(key) = &record.key {
                message = message.key(key);
            }
            if let Some(p) = record.partition {
                message = message.partition(p as i32);
            }
            // Enqueue, waiting while the local queue is full: that wait is bounded by deliveries,
            // which are bounded by message.timeout.ms.
            let mut message = message;
            let delivery = loop {
                match producer.send_result(message) {
                    Ok(delivery) => break Ok(delivery),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), m)) => {
                        message = m;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => break Err(e),
                }
            };
            match delivery {
                Ok(d) => deliveries.push(d),
                Err(e) => {
                    failure = Some(produce_error(name, e));
                    break;
                }
            }
        }
        // Every enqueued record's report, even after a failure: `append` returns only then.
        let mut lost_identity = false;
        let mut appended = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(d)) => {
                    appended.push(Appended::Offset(Position { partition: d.partition as u32, offset: d.offset as u64 }))
                }
                Ok(Err((e, _))) => {
                    lost_identity |= matches!(&e, KafkaError::MessageProduction(code) if lost_producer_identity(*code));
                    failure.get_or_insert_with(|| produce_error(name, e));
                }
                Err(_canceled) => {
                    failure.get_or_insert(Error::Closed);
                }
            }
        }
        match failure {
            None => Ok(appended),
            Some(e) => {
                if matches!(e, Error::NotFound { .. } | Error::NoSuchPartition { .. }) {
                    self.forget(name);
                }
                self.renew_producer(&producer, lost_identity);
                Err(e)
            }
        }
    }

    async fn read(&self, name: &str, partition: u32, from: u64, max: usize) -> Result<Vec<Record>> {
        validate_name(Namespace::Topics, name).map_err(|_| not_found(name))?;
        if partition >= self.partition_count(name).await? {
            self.check_partition(name, partition).await?;
        }
        if max == 0 {
            return Ok(Vec::new());
        }
        let reader = self.reader(name, partition).await?;
        let topic = name.to_string();
        blocking(move || {
            let mut reader = reader.lock().map_err(|_| Error::Closed)?;
            read_partition(&mut reader, &topic, partition, from, max)
        })
        .await
    }
}

/// Reads up to `max` records of one partition from `from` (see the module doc).
fn read_partition(reader: &mut Reader, topic: &str, partition: u32, from: u64, max: usize) -> Result<Vec<Record>> {
    let (low, high) = watermarks(&reader.consumer, topic, partition)?;
    let from = from.max(low);
    let mut end = high.max(reader.end_hint);
    if reader.next != Some(from) {
        if from >= end {
            end = probe_end(reader, topic, partition, high)?;
            if from >= end {
                return Ok(Vec::new());
            }
        }
        if reader.next != Some(from) {
            assign(reader, topic, partition, from)?;
        }
    }
    // Records below `end` are known to exist: wait for them (up to a deadline). Past it, take
    // only what the consumer has already fetched.
    let deadline = Instant::now() + READ_DEADLINE;
    let mut records = Vec::with_capacity(max.min(10_000));
    let mut next = from;
    while records.len() < max {
        let wait = if next < end { deadline.saturating_duration_since(Instant::now()) } else { PAST_END_WAIT };
        if wait.is_zero() && next < end {
            break;
        }
        match reader.consumer.poll(wait.min(Duration::from_millis(100))) {
            None if next < end => continue,
            None => break,
            Some(Ok(m)) => {
                let offset = m.offset() as u64;
                if m.topic() != topic || m.partition() != partition as i32 || offset < next {
                    // Prefetched before a re-assignment: not ours.
                    continue;
                }
                records.push(Record {
                    position: Position { partition, offset },
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
                    native: None,
                });
                next = offset + 1;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => {
                // The stream is in an unknown state: re-assign next time.
                reader.next = None;
                return Err(unavailable(e));
            }
        }
    }
    reader.next = Some(next);
    reader.end_hint = reader.end_hint.max(next);
    Ok(records)
}

/// Points the reader's consumer at `from`.
fn assign(reader: &mut Reader, topic: &str, partition: u32, from: u64) -> Result<()> {
    let mut assignment = TopicPartitionList::new();
    let offset = Offset::Offset(i64::try_from(from).unwrap_or(i64::MAX));
    assignment.add_partition_offset(topic, partition as i32, offset).map_err(unavailable)?;
    reader.consumer.assign(&assignment).map_err(unavailable)?;
    reader.next = Some(from);
    Ok(())
}

/// The partition's true end, given the high watermark `high` the broker reported: one past the
/// last record of the batch that starts at `high - 1`. On Kafka that batch is the one record
/// `high - 1`, so the answer is `high`; some brokers (Tansu 0.6) report the last batch's base
/// offset + 1 as the high watermark, and this finds the real end. Leaves the consumer there.
fn probe_end(reader: &mut Reader, topic: &str, partition: u32, high: u64) -> Result<u64> {
    if high == 0 {
        return Ok(0);
    }
    assign(reader, topic, partition, high - 1)?;
    let deadline = Instant::now() + READ_DEADLINE;
    let mut end = None;
    loop {
        let wait = match end {
            None => deadline.saturating_duration_since(Instant::now()),
            Some(_) => PAST_END_WAIT,
        };
        if wait.is_zero() {
            break;
        }
        match reader.consumer.poll(wait.min(Duration::from_millis(100))) {
            None if end.is_none() => continue,
            None => break,
            Some(Ok(m)) if m.topic() == topic && m.partition() == partition as i32 && m.offset() >= 0 => {
                end = Some(m.offset() as u64 + 1);
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                reader.next = None;
                return Err(unavailable(e));
            }
        }
    }
    let Some(end) = end else {
        // The record below the watermark did not come: trust the watermark, re-assign next time.
        reader.next = None;
        return Ok(high);
    };
    let end = end.max(high);
    reader.next = Some(end);
    reader.end_hint = reader.end_hint.max(end);
    Ok(end)
}

/// The low and high watermarks of one partition.
fn watermarks(consumer: &BaseConsumer<KafkaContext>, topic: &str, partition: u32) -> Result<(u64, u64)> {
    let (low, high) = consumer.fetch_watermarks(topic, partition as i32, REQUEST_TIMEOUT).map_err(|e| match e {
        KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition)
        | KafkaError::OffsetFetch(RDKafkaErrorCode::UnknownTopicOrPartition) => not_found(topic),
        e => unavailable(e),
    })?;
    Ok((low.max(0) as u64, high.max(0) as u64))
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

/// Error codes that mean "the cluster cannot do it now", as opposed to "it never will".
fn is_transient(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::MessageTimedOut
            | C::AllBrokersDown
            | C::BrokerTransportFailure
            | C::Resolve
            | C::RequestTimedOut
            | C::OperationTimedOut
            | C::TimedOutQueue
            | C::QueueFull
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::BrokerNotAvailable
            | C::NetworkException
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::NotController
            | C::CoordinatorNotAvailable
            | C::KafkaStorageError
            | C::OutOfOrderSequenceNumber
            | C::UnknownProducerId
            | C::InvalidProducerEpoch
            | C::Fatal
            | C::WaitCache
            | C::Retry
            | C::Fenced
    )
}

/// Delivery errors after which the producer's id or epoch is no good any more.
fn lost_producer_identity(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::ProducerFenced
            | C::InvalidProducerEpoch
            | C::UnknownProducerId
            | C::OutOfOrderSequenceNumber
            | C::InvalidProducerIdMapping
            | C::Fatal
            | C::Fenced
    )
}

/// A failed delivery as the trait's error.
fn produce_error(topic: &str, e: KafkaError) -> Error {
    use RDKafkaErrorCode as C;
    let code = match &e {
        KafkaError::MessageProduction(code) => Some(*code),
        _ => None,
    };
    match code {
        Some(C::UnknownTopicOrPartition | C::UnknownTopic) => not_found(topic),
        Some(C::MessageSizeTooLarge | C::InvalidMessageSize | C::MessageBatchTooLarge | C::InvalidRecord) => {
            Error::Refused { backend: BACKEND, detail: format!("appending to `{topic}`: {e}") }
        }
        Some(C::TopicAuthorizationFailed | C::ClusterAuthorizationFailed | C::SaslAuthenticationFailed) => {
            Error::Refused { backend: BACKEND, detail: format!("appending to `{topic}`: {e}") }
        }
        _ => Error::Unavailable { backend: BACKEND, detail: format!("appending to `{topic}`: {e}") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_messages() {
        assert_eq!(
            redact_url("kafka://h:1?sasl.username=u&sasl.password=hunter2"),
            "kafka://h:1?sasl.username=u&sasl.password=***"
        );
        let e = config_error(
            "kafka://h:1?ssl.key.password=hunter2",
            KafkaError::ClientConfig(
                rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
                "Invalid value \"hunter2\"".into(),
                "ssl.key.password".into(),
                "hunter2".into(),
            ),
        );
        let text = e.to_string();
        assert!(!text.contains("hunter2") && text.contains("ssl.key.password"), "{text}");
    }

    #[tokio::test]
    async fn an_unknown_setting_is_named() {
        let err = KafkaLog::open("kafka://127.0.0.1:1?no.such.setting=1", &BTreeMap::new()).await.err().unwrap();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
        assert!(err.to_string().contains("no.such.setting"), "{err}");
    }
}
