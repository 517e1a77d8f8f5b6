//! Kinesis streams and their shards: create (waiting until the stream is ACTIVE), list, describe,
//! delete, the shard list of each stream (partition `i` is the `i`-th shard by id) and a stream's
//! identity.
//!
//! Fed by `pinpipe streams`, [`crate::eventlog::ensure_defaults`] and the stream job (`describe`)
//! through [`super::KinesisLog`]; feeds [`super::put`] and [`super::read`] the shards a partition
//! names (cached until the stream is forgotten). Leaves the SDK client and the classification of
//! failures to [`super::client`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::StreamStatus;
use tokio_util::sync::CancellationToken;

use super::client::Failure;
use super::{KinesisLog, retry_backoff};
use crate::eventlog::{Error, EventLog, LogInfo, PartitionInfo, Result, Retention, validate_name};

/// How long `create` waits for a new stream to become ACTIVE.
const CREATE_DEADLINE: Duration = Duration::from_secs(120);
/// Kinesis's limit on stream names.
const MAX_NAME_CHARS: usize = 128;

/// One shard of a stream, as partition `index` of the log.
#[derive(Debug, Clone)]
pub(super) struct Shard {
    pub(super) id: String,
    pub(super) starting_hash_key: String,
}

impl KinesisLog {
    /// [`EventLog::create`]: creates stream `name` with `partitions` shards, waits until it is
    /// ACTIVE, and gives it `retention` as its retention period when that is not the 24 hours a
    /// new stream has.
    pub(super) async fn create_stream(&self, name: &str, partitions: u32, retention: Retention) -> Result<LogInfo> {
        validate_name(self.namespace, name)?;
        if name.len() > MAX_NAME_CHARS {
            return Err(Error::InvalidName {
                noun: self.noun(),
                name: name.to_string(),
                reason: "Kinesis stream names have at most 128 characters",
            });
        }
        if !(1..=1024).contains(&partitions) {
            return Err(Error::InvalidPartitionCount(partitions));
        }
        let shard_count = i32::try_from(partitions).map_err(|_| Error::InvalidPartitionCount(partitions))?;
        let created = self.client.create_stream().stream_name(name).shard_count(shard_count).send().await;
        if let Err(e) = created {
            let f = Failure::from(e);
            return Err(if f.is("ResourceInUseException") {
                Error::AlreadyExists { noun: self.noun(), name: name.to_string() }
            } else if f.is("LimitExceededException") {
                Error::Refused { backend: "Kinesis", detail: f.detail }
            } else {
                f.into_error(self.noun(), name)
            });
        }
        self.forget(name);
        self.wait_active(name).await?;
        if let Some(hours) = retention_hours(retention, name) {
            let raised = self
                .client
                .increase_stream_retention_period()
                .stream_name(name)
                .retention_period_hours(hours)
                .send()
                .await;
            raised.map_err(|e| Failure::from(e).into_error(self.noun(), name))?;
            self.wait_active(name).await?;
        }
        self.describe(name).await
    }

    /// Waits until stream `name` is ACTIVE (after a creation or a change), up to
    /// [`CREATE_DEADLINE`].
    async fn wait_active(&self, name: &str) -> Result<()> {
        let deadline = Instant::now() + CREATE_DEADLINE;
        let mut backoff = retry_backoff();
        // Only the deadline ends this wait: no shutdown cuts its pauses short.
        let no_shutdown = CancellationToken::new();
        loop {
            let out = self.client.describe_stream_summary().stream_name(name).send().await;
            let status = match out {
                Ok(o) => o.stream_description_summary().map(|s| s.stream_status().clone()),
                Err(e) => {
                    let f = Failure::from(e);
                    if !(f.transient || f.is("ResourceNotFoundException")) {
                        return Err(f.into_error(self.noun(), name));
                    }
                    None
                }
            };
            if status == Some(StreamStatus::Active) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Unavailable {
                    backend: "Kinesis",
                    detail: format!(
                        "stream `{name}` is not ACTIVE {} s after it was created or changed",
                        CREATE_DEADLINE.as_secs()
                    ),
                });
            }
            backoff.pause(&no_shutdown).await;
        }
    }

    /// [`EventLog::list`]: every stream of the account and region, all pages.
    pub(super) async fn list_streams(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        loop {
            let out = self
                .client
                .list_streams()
                .set_exclusive_start_stream_name(names.last().cloned())
                .send()
                .await
                .map_err(|e| Failure::from(e).into_error(self.noun(), "*"))?;
            names.extend(out.stream_names().iter().cloned());
            if !out.has_more_streams() || out.stream_names().is_empty() {
                break;
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// [`EventLog::describe`]: the shards as partitions (extents unknown: see the module doc of
    /// [`super`]) and the stream's identity.
    pub(super) async fn describe_stream(&self, name: &str) -> Result<LogInfo> {
        let shards = self.list_shards(name).await?;
        let partitions = (0..shards.len()).map(|i| PartitionInfo { partition: i as u32, start: 0, end: 0 }).collect();
        Ok(LogInfo { name: name.to_string(), partitions, incarnation: self.incarnation(name).await? })
    }

    /// [`EventLog::delete`]: deletes stream `name` (its consumers too) and forgets it.
    pub(super) async fn delete_stream(&self, name: &str) -> Result<()> {
        let deleted = self.client.delete_stream().stream_name(name).enforce_consumer_deletion(true).send().await;
        self.forget(name);
        deleted.map(|_| ()).map_err(|e| self.fail(name)(e.into()))
    }

    /// The shards of `name` sorted by id, asking Kinesis (all pages) and remembering the answer.
    async fn list_shards(&self, name: &str) -> Result<Arc<Vec<Shard>>> {
        let mut shards = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let call = match &token {
                Some(t) => self.client.list_shards().next_token(t),
                None => self.client.list_shards().stream_name(name),
            };
            let out = call.send().await.map_err(|e| self.fail(name)(e.into()))?;
            for s in out.shards() {
                let starting_hash_key =
                    s.hash_key_range().map(|r| r.starting_hash_key().to_string()).unwrap_or_default();
                shards.push(Shard { id: s.shard_id().to_string(), starting_hash_key });
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        shards.sort_by(|a, b| a.id.cmp(&b.id));
        let shards = Arc::new(shards);
        self.lock_shards().insert(name.to_string(), Arc::clone(&shards));
        Ok(shards)
    }

    /// The stream's identity: its ARN and creation time (a stream deleted and created again under
    /// the same name has the same ARN, but not the same creation time).
    async fn incarnation(&self, name: &str) -> Result<Option<String>> {
        let out = self.client.describe_stream_summary().stream_name(name).send().await;
        let out = out.map_err(|e| self.fail(name)(e.into()))?;
        Ok(out.stream_description_summary().map(|s| {
            let created = s.stream_creation_timestamp();
            format!("{}@{}.{:09}", s.stream_arn(), created.secs(), created.subsec_nanos())
        }))
    }

    /// The shards of `name`, from memory when seen before.
    pub(super) async fn shards(&self, name: &str) -> Result<Arc<Vec<Shard>>> {
        let known = self.lock_shards().get(name).cloned();
        match known {
            Some(s) => Ok(s),
            None => self.list_shards(name).await,
        }
    }

    /// The shard lists seen, by stream (a poisoned lock is taken over: the map stays valid).
    pub(super) fn lock_shards(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Vec<Shard>>>> {
        self.shards.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The shard of `partition`, or the error naming the partition.
    pub(super) async fn shard(&self, name: &str, partition: u32) -> Result<Shard> {
        let shards = self.shards(name).await?;
        shards.get(partition as usize).cloned().ok_or_else(|| Error::NoSuchPartition {
            noun: self.noun(),
            name: name.to_string(),
            partition,
            partitions: u32::try_from(shards.len()).unwrap_or(u32::MAX),
        })
    }

    /// The partition of the shard `PutRecords` named.
    pub(super) async fn partition_of(&self, name: &str, shards: &[Shard], shard_id: &str) -> Result<u32> {
        if let Some(i) = shards.iter().position(|s| s.id == shard_id) {
            return Ok(i as u32);
        }
        let fresh = self.list_shards(name).await?;
        fresh.iter().position(|s| s.id == shard_id).map(|i| i as u32).ok_or_else(|| Error::Refused {
            backend: "Kinesis",
            detail: format!("stream `{name}` put a record in unknown shard {shard_id} (resharding is not supported)"),
        })
    }
}

/// The retention period to ask Kinesis for, in its whole hours from 24 to 8,760 (365 days), or
/// `None` when a new stream's 24 hours already are it. What Kinesis cannot keep is said once.
fn retention_hours(retention: Retention, name: &str) -> Option<i32> {
    const DEFAULT_HOURS: u64 = 24;
    const MAX_HOURS: u64 = 8_760;
    let wanted = match retention {
        Retention::Forever => u64::MAX,
        Retention::For(d) => d.as_secs().div_ceil(3600),
    };
    let hours = wanted.clamp(DEFAULT_HOURS, MAX_HOURS);
    if hours != wanted {
        tracing::warn!(stream = name, %retention, kept_hours = hours, "Kinesis keeps records 24 to 8,760 hours");
    }
    (hours != DEFAULT_HOURS).then_some(hours as i32)
}
