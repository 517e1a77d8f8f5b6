//! Reading a Kafka topic: one assigned consumer per (topic, partition), kept between calls, the
//! watermarks that say how far to wait, and [`probe_end`] for brokers whose high watermark is the
//! last batch's base offset + 1.
//!
//! Fed by the sink's reads through [`super::KafkaLog`], and by `describe` ([`super::admin`]),
//! which asks the same consumers for each partition's extent. Leaves the consumers' configuration
//! to [`super::client`](mod@super::client) and the topic's partition count to [`super::admin`].
//! No consumer-group offsets are committed: positions live in the outputs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::client::{KafkaContext, client};
use super::{KafkaLog, REQUEST_TIMEOUT, blocking, not_found, unavailable};
use crate::eventlog::{Error, Namespace, Position, Record, Result, validate_name};

/// Longest a `read` waits for records the watermark says are there.
const READ_DEADLINE: Duration = Duration::from_secs(2);
/// How long a read past the known end waits for records the consumer may be fetching.
const PAST_END_WAIT: Duration = Duration::from_millis(20);

/// One partition's consumer and where its fetch stream stands.
pub(super) struct Reader {
    pub(super) consumer: BaseConsumer<KafkaContext>,
    /// The offset the consumer's next message has, when it is assigned.
    next: Option<u64>,
    /// The highest end this reader has seen (records read, [`probe_end`]).
    end_hint: u64,
}

impl KafkaLog {
    /// The reader of one partition, created on first use.
    pub(super) async fn reader(&self, name: &str, partition: u32) -> Result<Arc<Mutex<Reader>>> {
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

    /// [`EventLog::read`](crate::eventlog::EventLog::read) of one partition of topic `name`.
    pub(super) async fn read_records(&self, name: &str, partition: u32, from: u64, max: usize) -> Result<Vec<Record>> {
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
    if from < low {
        // The broker's retention removed what `from` names: the reader decides, never a skip here.
        return Err(Error::Expired { noun: "topic", name: topic.to_string(), partition, from, start: low });
    }
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
pub(super) fn probe_end(reader: &mut Reader, topic: &str, partition: u32, high: u64) -> Result<u64> {
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
pub(super) fn watermarks(consumer: &BaseConsumer<KafkaContext>, topic: &str, partition: u32) -> Result<(u64, u64)> {
    let (low, high) = consumer.fetch_watermarks(topic, partition as i32, REQUEST_TIMEOUT).map_err(|e| match e {
        KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition)
        | KafkaError::OffsetFetch(RDKafkaErrorCode::UnknownTopicOrPartition) => not_found(topic),
        e => unavailable(e),
    })?;
    Ok((low.max(0) as u64, high.max(0) as u64))
}
