//! Administering Kafka topics: create (waiting until the metadata shows the new topic), list,
//! describe, delete, and the partition counts that appends and reads check against.
//!
//! Fed by `pinpipe topics`, [`crate::eventlog::ensure_defaults`] and the sink (`describe`) through
//! [`super::KafkaLog`]; feeds [`super::produce`] and [`super::read`] the partition count of a
//! topic (cached for [`METADATA_TTL`]). Leaves the admin and metadata clients' configuration to
//! [`super::client`](mod@super::client), and a partition's extent to the consumers of
//! [`super::read`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;

use super::read::{probe_end, watermarks};
use super::{BACKEND, KafkaLog, REQUEST_TIMEOUT, blocking, not_found, unavailable};
use crate::eventlog::{Error, EventLog, LogInfo, Namespace, PartitionInfo, Result, Retention, validate_name};

/// Most partitions a topic may be created with (the trait's common limit).
const MAX_PARTITIONS: u32 = 1024;
/// How long a topic's partition count is trusted before an append asks the cluster again.
const METADATA_TTL: Duration = Duration::from_secs(5);
/// How long `create` waits for a new topic to show in the metadata.
const CREATE_PROPAGATION: Duration = Duration::from_secs(10);

impl KafkaLog {
    /// [`EventLog::create`]: creates topic `name` with `retention.ms` set from `retention`, and
    /// waits until the metadata shows it.
    pub(super) async fn create_topic(&self, name: &str, partitions: u32, retention: Retention) -> Result<LogInfo> {
        validate_name(Namespace::Topics, name)?;
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(Error::InvalidPartitionCount(partitions));
        }
        self.refresh_tokens().await;
        let retention_ms = retention.as_millis().to_string();
        let topic =
            NewTopic::new(name, partitions as i32, TopicReplication::Fixed(-1)).set("retention.ms", &retention_ms);
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

    /// [`EventLog::list`]: the cluster's topics but its internal ones (`__…`).
    pub(super) async fn list_topics(&self) -> Result<Vec<String>> {
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

    /// [`EventLog::describe`]: each partition's extent, its end probed ([`probe_end`]).
    pub(super) async fn describe_topic(&self, name: &str) -> Result<LogInfo> {
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

    /// [`EventLog::delete`]: deletes topic `name` and forgets what this process knew of it.
    pub(super) async fn delete_topic(&self, name: &str) -> Result<()> {
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

    /// `partition` of topic `name`, checked against fresh metadata (the cached count said it
    /// was out of range; the topic may have grown since).
    pub(super) async fn check_partition(&self, name: &str, partition: u32) -> Result<()> {
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
    pub(super) async fn partition_count(&self, name: &str) -> Result<u32> {
        let cached = self.partitions.lock().map_err(|_| Error::Closed)?.get(name).copied();
        match cached {
            Some((n, at)) if at.elapsed() < METADATA_TTL => Ok(n),
            _ => self.fetch_partition_count(name).await,
        }
    }
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
