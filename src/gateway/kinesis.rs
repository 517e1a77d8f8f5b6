//! The Kinesis-proxy routes: what the API Gateway mapping templates of the original project expose
//! (`/streams`, `/streams/{name}`, `/streams/{name}/record`, `/streams/{name}/records`).
//!
//! Fed by the stream-mode emulator; feeds the streams [`EventLog`](crate::eventlog::EventLog). A
//! put is answered only once `append` returned. `Data` is any JSON value, stored compacted
//! ([`compact_json`]); the partition key becomes the record key, so the log picks the shard by
//! its hash as Kinesis does. Replies and errors use Kinesis's JSON shapes (see
//! [`super::error`] for the status table).

use std::borrow::Cow;
use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::body::{MAX_DEPTH, Object, compact_json_with_depth, parse_object, read_body};
use super::error::{ACCOUNT, Error, KinesisError};
use super::{AppState, path_name, reply, to_json};
use crate::eventlog::kinesis::{MAX_KEY_CHARS, is_valid_partition_key};
use crate::eventlog::{self, Appended, LogInfo, Namespace, NewRecord, Position};

/// Media types a Kinesis-style route accepts.
const CONTENT_TYPES: &[&str] = &["application/json", "application/x-amz-json-1.1"];

/// Kinesis's limit on one record: data plus partition key (1 MiB).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Kinesis's limit on records per `PutRecords` call.
pub const MAX_RECORDS: usize = 500;

#[derive(Deserialize)]
struct PutRecordRequest<'a> {
    #[serde(rename = "StreamName", default)]
    stream_name: Option<Cow<'a, str>>,
    #[serde(rename = "Data", borrow)]
    data: &'a RawValue,
    #[serde(rename = "PartitionKey", borrow)]
    partition_key: Cow<'a, str>,
}

#[derive(Deserialize)]
struct PutRecordsRequest<'a> {
    #[serde(rename = "StreamName", default)]
    stream_name: Option<Cow<'a, str>>,
    #[serde(alias = "Records", borrow)]
    records: Vec<Object<PutRecordsEntry<'a>>>,
}

#[derive(Deserialize)]
struct PutRecordsEntry<'a> {
    #[serde(alias = "Data", borrow)]
    data: &'a RawValue,
    #[serde(rename = "partition-key", alias = "PartitionKey", borrow)]
    partition_key: Cow<'a, str>,
}

/// A put request's stream name (from the path) and body (a JSON content type, read whole).
async fn put_body(name: Result<Path<String>, PathRejection>, req: Request) -> Result<(String, Bytes), Error> {
    let name = path_name(name)?;
    let (parts, body) = req.into_parts();
    Ok((name, read_body(&parts.headers, body, CONTENT_TYPES, false).await?))
}

/// `PUT /streams/{name}/record`: one record → `{"ShardId":…,"SequenceNumber":…}`.
pub async fn put_record(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, KinesisError> {
    let (name, bytes) = put_body(name, req).await?;
    let r: PutRecordRequest<'_> = parse_object(&bytes)?;
    check_stream_name(&name, r.stream_name.as_deref())?;
    let record = new_record(0, r.data, &r.partition_key)?;
    let positions = append(&state, &name, vec![record]).await?;
    let p = positions.first().ok_or_else(|| Error::Internal("append returned no position".into()))?;
    let body = format!(r#"{{"ShardId":"{}","SequenceNumber":"{}"}}"#, p.shard_id(), p.sequence_number());
    Ok(reply(StatusCode::OK, "application/json", body.into_bytes()))
}

/// `PUT /streams/{name}/records`: up to 500 records → the `PutRecords` reply.
pub async fn put_records(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, KinesisError> {
    let (name, bytes) = put_body(name, req).await?;
    let r: PutRecordsRequest<'_> = parse_object(&bytes)?;
    check_stream_name(&name, r.stream_name.as_deref())?;
    match r.records.len() {
        0 => return Err(Error::NoRecords.into()),
        n if n > MAX_RECORDS => {
            return Err(Error::TooManyRecords { count: n, limit: MAX_RECORDS }.into());
        }
        _ => {}
    }
    let records = r
        .records
        .iter()
        .enumerate()
        .map(|(i, Object(e))| new_record(i, e.data, &e.partition_key))
        .collect::<Result<Vec<_>, _>>()?;
    let positions = append(&state, &name, records).await?;
    Ok(reply(StatusCode::OK, "application/json", put_records_reply(&positions)))
}

/// A body `StreamName`, when given, must be the stream the path names.
fn check_stream_name(path: &str, body: Option<&str>) -> Result<(), Error> {
    match body {
        Some(b) if b != path => Err(Error::StreamNameMismatch { path: path.into(), body: b.into() }),
        _ => Ok(()),
    }
}

/// Checks the partition key and the data's nesting (shape checks, before the stream is looked
/// up) and compacts the data. The record's size is checked later, in [`append`].
fn new_record(index: usize, data: &RawValue, key: &str) -> Result<NewRecord, Error> {
    if !is_valid_partition_key(key) {
        return Err(Error::InvalidRequest(format!(
            "1 validation error detected: Value at 'records.{}.member.partitionKey' failed to satisfy \
             constraint: Member must have length between 1 and {MAX_KEY_CHARS}",
            index + 1
        )));
    }
    let (value, depth) = compact_json_with_depth(data.get());
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep { index, depth, limit: MAX_DEPTH });
    }
    Ok(NewRecord { key: Some(key.as_bytes().to_vec()), value, partition: None })
}

/// The first record over Kinesis's 1 MiB limit (compacted data plus partition key), if any.
fn first_too_large(records: &[NewRecord]) -> Option<Error> {
    records.iter().enumerate().find_map(|(index, r)| {
        let size = r.value.len() + r.key.as_ref().map_or(0, Vec::len);
        (size > MAX_RECORD_BYTES).then_some(Error::RecordTooLarge { index, size, limit: MAX_RECORD_BYTES })
    })
}

/// Appends records that passed every shape check, and counts them. An unknown stream outranks a
/// record that is too large, and nothing is written when any record is.
async fn append(state: &AppState, name: &str, records: Vec<NewRecord>) -> Result<Vec<Appended>, Error> {
    let streams = state.streams();
    if let Some(e) = first_too_large(&records) {
        streams.describe(name).await?;
        return Err(e);
    }
    let count = records.len();
    let positions = streams.append(name, records).await?;
    state.metrics().add_records(name, count);
    Ok(positions)
}

/// The `PutRecords` reply: nothing failed (the log appends all or none).
fn put_records_reply(positions: &[Appended]) -> Vec<u8> {
    let mut out = String::with_capacity(48 + positions.len() * 80);
    out.push_str(r#"{"FailedRecordCount":0,"Records":["#);
    for (i, p) in positions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, r#"{{"SequenceNumber":"{}","ShardId":"{}"}}"#, p.sequence_number(), p.shard_id());
    }
    out.push_str("]}");
    out.into_bytes()
}

/// `GET /streams` → `{"StreamNames":[…],"HasMoreStreams":false}`.
pub async fn list(State(state): State<AppState>) -> Result<Response, KinesisError> {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Reply {
        stream_names: Vec<String>,
        has_more_streams: bool,
    }
    let stream_names = state.streams().list().await?;
    let body = to_json(&Reply { stream_names, has_more_streams: false })?;
    Ok(reply(StatusCode::OK, "application/json", body))
}

#[derive(Deserialize)]
struct CreateStreamRequest {
    #[serde(rename = "ShardCount", default)]
    shard_count: Option<u32>,
    #[serde(rename = "StreamName", default)]
    stream_name: Option<String>,
}

/// `POST /streams/{name}` with `{"ShardCount":n}` (default 1, the body may be empty) → `{}`.
pub async fn create(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, KinesisError> {
    let name = path_name(name)?;
    let (parts, body) = req.into_parts();
    let bytes = read_body(&parts.headers, body, CONTENT_TYPES, true).await?;
    let shards = if bytes.trim_ascii().is_empty() {
        1
    } else {
        let r: CreateStreamRequest = parse_object(&bytes)?;
        check_stream_name(&name, r.stream_name.as_deref())?;
        r.shard_count.unwrap_or(1)
    };
    eventlog::validate_name(Namespace::Streams, &name)?;
    state.streams().create(&name, shards, None).await?;
    Ok(reply(StatusCode::OK, "application/json", b"{}".to_vec()))
}

/// `DELETE /streams/{name}` → `{}`.
pub async fn delete(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, KinesisError> {
    let name = path_name(name)?;
    eventlog::validate_name(Namespace::Streams, &name)?;
    state.streams().delete(&name).await?;
    Ok(reply(StatusCode::OK, "application/json", b"{}".to_vec()))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StreamDescription {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_status: &'static str,
    shards: Vec<Shard>,
    has_more_shards: bool,
    retention_period_hours: u32,
    enhanced_monitoring: [ShardLevelMetrics; 1],
    encryption_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ShardLevelMetrics {
    shard_level_metrics: [&'static str; 0],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Shard {
    shard_id: String,
    hash_key_range: HashKeyRange,
    sequence_number_range: SequenceNumberRange,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HashKeyRange {
    starting_hash_key: String,
    ending_hash_key: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SequenceNumberRange {
    starting_sequence_number: String,
}

/// `GET /streams/{name}` → `{"StreamDescription":{…}}`.
pub async fn describe(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, KinesisError> {
    let name = path_name(name)?;
    eventlog::validate_name(Namespace::Streams, &name)?;
    let info = state.streams().describe(&name).await?;
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Reply {
        stream_description: StreamDescription,
    }
    let body = to_json(&Reply { stream_description: describe_stream(info) })?;
    Ok(reply(StatusCode::OK, "application/json", body))
}

fn describe_stream(info: LogInfo) -> StreamDescription {
    let n = info.partitions.len() as u32;
    let shards = info
        .partitions
        .iter()
        .map(|p| {
            let (start, end) = hash_key_range(p.partition, n);
            Shard {
                shard_id: eventlog::shard_id(p.partition),
                hash_key_range: HashKeyRange { starting_hash_key: start.to_string(), ending_hash_key: end.to_string() },
                sequence_number_range: SequenceNumberRange {
                    starting_sequence_number: Position { partition: p.partition, offset: p.start }.sequence_number(),
                },
            }
        })
        .collect();
    StreamDescription {
        stream_arn: format!("arn:aws:kinesis:local:{ACCOUNT}:stream/{}", info.name),
        stream_name: info.name,
        stream_status: "ACTIVE",
        shards,
        has_more_shards: false,
        retention_period_hours: 24,
        enhanced_monitoring: [ShardLevelMetrics { shard_level_metrics: [] }],
        encryption_type: "NONE",
    }
}

/// The MD5 hash-key range of shard `p` of `n`: exactly the keys [`eventlog::partition_for_key`]
/// sends to `p` (it scales the hash's top 64 bits to `[0, n)`), so the ranges are contiguous and
/// cover the 128-bit key space.
fn hash_key_range(p: u32, n: u32) -> (u128, u128) {
    let n = u128::from(n.max(1));
    // The smallest top-64-bit value that maps to shard `q`: ceil(q * 2^64 / n).
    let first_top = |q: u128| (q << 64).div_ceil(n);
    let p = u128::from(p);
    let start = first_top(p) << 64;
    let end = if p + 1 >= n { u128::MAX } else { (first_top(p + 1) << 64) - 1 };
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_key_ranges_cover_the_key_space_like_partition_for_key() {
        assert_eq!(hash_key_range(0, 1), (0, u128::MAX));
        for n in [1u32, 2, 3, 4, 7, 1024] {
            let ranges: Vec<_> = (0..n).map(|p| hash_key_range(p, n)).collect();
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges[n as usize - 1].1, u128::MAX);
            for w in ranges.windows(2) {
                assert_eq!(w[0].1 + 1, w[1].0);
            }
            for key in (0..200).map(|i| format!("key-{i}")) {
                use md5::{Digest, Md5};
                let hash = u128::from_be_bytes(Md5::digest(key.as_bytes()).into());
                let p = eventlog::partition_for_key(key.as_bytes(), n);
                let (s, e) = ranges[p as usize];
                assert!(s <= hash && hash <= e, "{key} n={n}");
                assert!(s <= e);
            }
        }
    }

    #[test]
    fn put_records_reply_has_the_kinesis_shape() {
        let p = [
            Appended::Offset(Position { partition: 0, offset: 3 }),
            Appended::Sequence {
                partition: 1,
                sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
            },
        ];
        assert_eq!(
            String::from_utf8(put_records_reply(&p)).unwrap(),
            concat!(
                r#"{"FailedRecordCount":0,"Records":[{"SequenceNumber":"00000000000000000003","ShardId":"shardId-000000000000"},"#,
                r#"{"SequenceNumber":"49590338271490256608559692538361571095921575989136588898","ShardId":"shardId-000000000001"}]}"#
            )
        );
    }

    #[test]
    fn partition_keys_and_record_sizes_are_limited() {
        let data = RawValue::from_string("{\"a\": 1}".into()).unwrap();
        let r = new_record(0, &data, "k").unwrap();
        assert_eq!((r.key.as_deref(), r.value.as_slice()), (Some(&b"k"[..]), &b"{\"a\":1}"[..]));
        assert!(new_record(0, &data, "").is_err());
        assert!(new_record(0, &data, &"\u{e9}".repeat(256)).is_ok());
        assert!(new_record(0, &data, &"x".repeat(257)).is_err());
        let big = RawValue::from_string(format!("\"{}\"", "x".repeat(MAX_RECORD_BYTES - 3))).unwrap();
        let fits = new_record(0, &big, "k").unwrap();
        assert!(first_too_large(&[fits]).is_none());
        let over = new_record(0, &big, "kk").unwrap();
        assert!(matches!(first_too_large(&[r, over]), Some(Error::RecordTooLarge { index: 1, .. })));
    }
}
