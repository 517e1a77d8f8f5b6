//! Appending to Kafka: the one idempotent producer all callers share, how an append waits for
//! every delivery report, and how a failed delivery becomes the trait's error.
//!
//! Fed by the gateway's appends through [`super::KafkaLog`]; feeds the cluster. Checks explicit
//! partitions against the partition count of [`super::admin`] first (never auto-creating a topic).
//! Replaces the producer after a fatal error or a fenced producer id; leaves its configuration to
//! [`super::client`](mod@super::client). What a failed multi-record append may have stored is in
//! the module doc of [`super`].

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::client::{KafkaContext, client};
use super::{BACKEND, KafkaLog, not_found};
use crate::eventlog::{Appended, Error, Namespace, NewRecord, Position, Result, validate_name};

impl KafkaLog {
    /// The current producer (replaced by [`KafkaLog::renew_producer`] after a fatal error).
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

    /// [`EventLog::append`](crate::eventlog::EventLog::append) to topic `name`: enqueues every
    /// record, then waits for every delivery report (see the module doc of [`super`]).
    pub(super) async fn produce(&self, name: &str, records: Vec<NewRecord>) -> Result<Vec<Appended>> {
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
