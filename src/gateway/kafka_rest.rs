//! The Confluent REST Proxy v2 subset: `POST /topics/{topic}`, `GET /topics`,
//! `GET /topics/{topic}`, `GET /topics/{topic}/partitions/{partition}/offsets`, answering byte
//! for byte as the proxy does (SPEC §3) — except that each partition of `GET /topics/{topic}`
//! also carries its `beginning_offset` and `end_offset`, so the start retention raises shows.
//!
//! Fed by the batch-mode emulator (or any Kafka REST client); feeds the topics
//! [`EventLog`](crate::eventlog::EventLog). A produce request is answered only after `append`
//! returned, i.e. once the records are durable. Record values are stored as compacted JSON text
//! ([`compact_json`]); topic creation is the CLI's job, through the log directly.

use std::fmt::Write as _;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::body::{MAX_DEPTH, Object, compact_json_with_depth, parse_object, read_body};
use super::error::{Error, KAFKA_CONTENT_TYPE, KafkaError};
use super::{AppState, path_name, reply, to_json};
use crate::eventlog::{self, Appended, NewRecord};

/// The media type of a JSON-embedded produce request.
const PRODUCE_CONTENT_TYPE: &str = "application/vnd.kafka.json.v2+json";

/// Kafka's default `max.message.bytes` (1 MB), applied to each compacted value.
pub const MAX_VALUE_BYTES: usize = 1_000_000;

/// `{"records":[…]}`; other top-level fields (schemas) are ignored.
#[derive(Deserialize)]
struct ProduceRequest<'a> {
    #[serde(borrow)]
    records: Vec<Object<ProduceRecord<'a>>>,
}

/// One record: any JSON `value` (required, may be `null`), optional `key` and `partition`.
#[derive(Deserialize)]
struct ProduceRecord<'a> {
    #[serde(borrow)]
    value: &'a RawValue,
    #[serde(borrow, default)]
    key: Option<&'a RawValue>,
    #[serde(default)]
    partition: Option<u32>,
}

/// `POST /topics/{topic}`: appends the records and answers with their offsets.
pub async fn produce(
    State(state): State<AppState>,
    topic: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, KafkaError> {
    let topic = path_name(topic)?;
    let (parts, body) = req.into_parts();
    let bytes = read_body(&parts.headers, body, &[PRODUCE_CONTENT_TYPE], false).await?;
    let request: ProduceRequest<'_> = parse_object(&bytes)?;
    if request.records.is_empty() {
        return Err(Error::NoRecords.into());
    }

    let mut records = Vec::with_capacity(request.records.len());
    let mut refused = None;
    for (index, Object(r)) in request.records.iter().enumerate() {
        let (value, depth) = compact_json_with_depth(r.value.get());
        let key = r.key.map(|k| compact_json_with_depth(k.get()));
        let depth = depth.max(key.as_ref().map_or(0, |k| k.1));
        if refused.is_none() {
            if value.len() > MAX_VALUE_BYTES {
                refused = Some(Error::RecordTooLarge { index, size: value.len(), limit: MAX_VALUE_BYTES });
            } else if depth > MAX_DEPTH {
                refused = Some(Error::TooDeep { index, depth, limit: MAX_DEPTH });
            }
        }
        records.push(NewRecord { key: key.map(|k| k.0), value, partition: r.partition });
    }
    let topics = state.topics();
    if let Some(e) = refused {
        // An unknown topic outranks a record that is refused.
        topics.describe(&topic).await?;
        return Err(e.into());
    }
    let count = records.len();
    let positions = topics.append(&topic, records).await?;
    state.metrics().add_records(&topic, count);
    Ok(kafka_json(StatusCode::OK, offsets_reply(&positions)?))
}

/// The produce reply, exactly as the proxy writes it.
fn offsets_reply(positions: &[Appended]) -> Result<Vec<u8>, Error> {
    let mut out = String::with_capacity(64 + positions.len() * 64);
    out.push_str("{\"offsets\":[");
    for (i, p) in positions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let offset = p.offset().ok_or_else(|| Error::Internal("the topics backend numbers no offsets".into()))?;
        // Writing to a String cannot fail.
        let _ =
            write!(out, "{{\"partition\":{},\"offset\":{offset},\"error_code\":null,\"error\":null}}", p.partition());
    }
    out.push_str("],\"key_schema_id\":null,\"value_schema_id\":null}");
    Ok(out.into_bytes())
}

/// `GET /topics`: the topic names, sorted.
pub async fn list(State(state): State<AppState>) -> Result<Response, KafkaError> {
    let names = state.topics().list().await?;
    Ok(kafka_json(StatusCode::OK, to_json(&names)?))
}

#[derive(Serialize)]
struct TopicReply<'a> {
    name: &'a str,
    configs: Configs,
    partitions: Vec<PartitionReply>,
}

#[derive(Serialize)]
struct Configs {}

#[derive(Serialize)]
struct PartitionReply {
    partition: u32,
    leader: u32,
    replicas: [Replica; 1],
    /// pinpipe's addition to the proxy's shape: the partition's first readable offset (it rises
    /// as retention removes records) and its next offset.
    beginning_offset: u64,
    end_offset: u64,
}

/// `GET /topics/{topic}/partitions/{partition}/offsets`, as the proxy answers it.
#[derive(Serialize)]
struct OffsetsReply {
    beginning_offset: u64,
    end_offset: u64,
}

#[derive(Serialize)]
struct Replica {
    broker: u32,
    leader: bool,
    in_sync: bool,
}

/// `GET /topics/{topic}`: the proxy's topic shape, one broker (id 1) leading every partition.
pub async fn describe(
    State(state): State<AppState>,
    topic: Result<Path<String>, PathRejection>,
) -> Result<Response, KafkaError> {
    let topic = path_name(topic)?;
    eventlog::validate_name(eventlog::Namespace::Topics, &topic)?;
    let info = state.topics().describe(&topic).await?;
    let reply = TopicReply {
        name: &info.name,
        configs: Configs {},
        partitions: info
            .partitions
            .iter()
            .map(|p| PartitionReply {
                partition: p.partition,
                leader: 1,
                replicas: [Replica { broker: 1, leader: true, in_sync: true }],
                beginning_offset: p.start,
                end_offset: p.end,
            })
            .collect(),
    };
    Ok(kafka_json(StatusCode::OK, to_json(&reply)?))
}

/// `GET /topics/{topic}/partitions/{partition}/offsets`: the partition's first readable offset
/// (retention raises it) and its next offset, in the proxy's shape.
pub async fn partition_offsets(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, KafkaError> {
    let (topic, partition) = path.map(|Path(p)| p).map_err(|rejection| Error::BadPath(rejection.body_text()))?;
    eventlog::validate_name(eventlog::Namespace::Topics, &topic)?;
    let info = state.topics().describe(&topic).await?;
    let partitions = info.partitions.len() as u32;
    let number = partition.parse::<u32>().unwrap_or(u32::MAX);
    let Some(p) = info.partitions.iter().find(|p| p.partition == number) else {
        let noun = eventlog::Namespace::Topics.noun();
        return Err(eventlog::Error::NoSuchPartition { noun, name: topic, partition: number, partitions }.into());
    };
    let reply = OffsetsReply { beginning_offset: p.start, end_offset: p.end };
    Ok(kafka_json(StatusCode::OK, to_json(&reply)?))
}

fn kafka_json(status: StatusCode, body: Vec<u8>) -> Response {
    reply(status, KAFKA_CONTENT_TYPE, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::Position;

    #[test]
    fn offsets_reply_matches_the_proxy_bytes() {
        let p = [
            Appended::Offset(Position { partition: 0, offset: 41 }),
            Appended::Offset(Position { partition: 2, offset: 7 }),
        ];
        assert_eq!(
            String::from_utf8(offsets_reply(&p).unwrap()).unwrap(),
            r#"{"offsets":[{"partition":0,"offset":41,"error_code":null,"error":null},{"partition":2,"offset":7,"error_code":null,"error":null}],"key_schema_id":null,"value_schema_id":null}"#
        );
    }

    #[test]
    fn parses_the_emulator_body_without_copying_values() {
        let body =
            br#"{"records": [{"value": {"index": 1, "t": "a b"}}, {"key": "k", "value": null, "partition": 0}]}"#;
        let r: ProduceRequest<'_> = parse_object(body).unwrap();
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.records[0].0.value.get(), r#"{"index": 1, "t": "a b"}"#);
        assert_eq!(r.records[1].0.value.get(), "null");
        assert_eq!(r.records[1].0.key.map(RawValue::get), Some(r#""k""#));
        assert_eq!(r.records[1].0.partition, Some(0));
        for bad in [
            &br#"{"records": [{"key": 1}]}"#[..],
            br#"{"records": {}}"#,
            br#"{"value": 1}"#,
            br#"{"records": [{"value": 1, "partition": -1}]}"#,
            br#"[[[{"a": 1}]]]"#,
            br#"{"records": [[{"a": 1}]]}"#,
        ] {
            let e = parse_object::<ProduceRequest<'_>>(bad).err().unwrap();
            assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
        }
    }
}
