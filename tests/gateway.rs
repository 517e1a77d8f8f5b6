//! The ingest API (SPEC §3) against the real embedded event log: what the course's Python
//! emulator sends gets the proxy's exact replies and lands compacted in the log; every kind of bad
//! request gets its documented status and body, writes nothing, and leaves the server serving.
//!
//! Most tests call `gateway::app` in-process (`tower::ServiceExt::oneshot`); the socket tests go
//! through `gateway::serve` with reqwest and a hand-written chunked upload.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use pinpipe::eventlog::{self, EventLog, Namespace};
use pinpipe::gateway::{self, GatewayConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use common::{GatewayEnv as Env, gateway_env as env_with};

const KAFKA_JSON: &str = "application/vnd.kafka.json.v2+json";
const PIN: &str = "pinterest.pin";
const STREAM_PIN: &str = "streaming-pinterest-pin";

/// One pin row exactly as Python's `json.dumps` renders it (`", "` and `": "` separators, non-ASCII
/// escaped), with the usual placeholders and a description ending in "…" + no-break space.
const PIN_VALUE: &str = r#"{"index": 7528, "unique_id": "fbe53c66-3442-4773-b19e-d3ec6f54dddf", "title": "No Title Data Available", "description": "Ideas \"for\" you\u2026\u00a0", "poster_name": "User Info Error", "follower_count": "3k", "tag_list": "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e", "is_image_or_video": "multi-video(story page format)", "image_src": "Image src error.", "downloaded": 0, "save_location": "Local save in /data/mens-fashion", "category": "mens-fashion"}"#;

/// A geo row as Python renders it: floats and a datetime string.
const GEO_VALUE: &str = r#"{"ind": 7528, "timestamp": "2020-08-28 03:52:47", "latitude": -89.9787, "longitude": -173.293, "country": "Albania"}"#;

async fn env() -> Env {
    env_with(GatewayConfig::default()).await
}

fn request(method: Method, uri: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    b.body(body.into()).unwrap()
}

fn produce(uri: &str, body: impl Into<Body>) -> Request<Body> {
    request(Method::POST, uri, Some(KAFKA_JSON), body)
}

fn put_json(uri: &str, body: impl Into<Body>) -> Request<Body> {
    request(Method::PUT, uri, Some("application/json"), body)
}

fn get(uri: &str) -> Request<Body> {
    request(Method::GET, uri, None, Body::empty())
}

/// Status, content type and body text of one in-process call.
async fn call(app: &Router, req: Request<Body>) -> (StatusCode, String, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let ct = resp.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ct, String::from_utf8(body.to_vec()).unwrap())
}

async fn ends(log: &Arc<dyn EventLog>, name: &str) -> Vec<u64> {
    log.describe(name).await.unwrap().partitions.iter().map(|p| p.end).collect()
}

/// Both logs' end offsets, to prove a rejected request wrote nothing.
async fn all_ends(e: &Env) -> Vec<Vec<u64>> {
    let mut out = Vec::new();
    for name in Namespace::Topics.default_names("pinterest") {
        out.push(ends(&e.topics, &name).await);
    }
    for name in Namespace::Streams.default_names("pinterest") {
        out.push(ends(&e.streams, &name).await);
    }
    out
}

fn emulator_body(value: &str) -> String {
    format!(r#"{{"records": [{{"value": {value}}}]}}"#)
}

fn offsets(pairs: &[(u32, u64)]) -> String {
    let items: Vec<String> = pairs
        .iter()
        .map(|(p, o)| format!(r#"{{"partition":{p},"offset":{o},"error_code":null,"error":null}}"#))
        .collect();
    format!(r#"{{"offsets":[{}],"key_schema_id":null,"value_schema_id":null}}"#, items.join(","))
}

fn compact(v: &str) -> String {
    String::from_utf8(gateway::body::compact_json(v)).unwrap()
}

/// A request that must work after a rejection: the server keeps serving.
async fn assert_still_serving(e: &Env) {
    let (s, _, b) = call(&e.app, produce(&format!("/topics/{PIN}"), emulator_body("{\"ok\": true}"))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test]
async fn emulator_produce_gets_the_proxy_reply_and_stores_compacted_json() {
    let e = env().await;
    let (s, ct, b) = call(&e.app, produce(&format!("/topics/{PIN}"), emulator_body(PIN_VALUE))).await;
    assert_eq!(
        (s, ct.as_str(), b.as_str()),
        (StatusCode::OK, "application/vnd.kafka.v2+json", offsets(&[(0, 0)]).as_str())
    );
    let geo_ct = "application/vnd.kafka.json.v2+json; charset=utf-8";
    let req = request(Method::POST, "/topics/pinterest.geo", Some(geo_ct), emulator_body(GEO_VALUE));
    assert_eq!(call(&e.app, req).await.2, offsets(&[(0, 0)]));
    let (s, _, b) = call(&e.app, produce(&format!("/topics/{PIN}"), emulator_body(PIN_VALUE))).await;
    assert_eq!((s, b), (StatusCode::OK, offsets(&[(0, 1)])));

    let records = e.topics.read(PIN, 0, 0, 10).await.unwrap();
    assert_eq!(records.len(), 2);
    let stored = std::str::from_utf8(&records[0].value).unwrap();
    assert!(stored.starts_with(r#"{"index":7528,"unique_id":"fbe53c66-3442-4773-b19e-d3ec6f54dddf","title":"No Title Data Available","description":"Ideas \"for\" you\u2026\u00a0","#), "{stored}");
    assert!(!stored.contains('\n') && !stored.contains(", \""));
    assert_eq!(serde_json::from_str::<Value>(stored).unwrap(), serde_json::from_str::<Value>(PIN_VALUE).unwrap());
    let geo = e.topics.read("pinterest.geo", 0, 0, 10).await.unwrap();
    assert_eq!(
        std::str::from_utf8(&geo[0].value).unwrap(),
        r#"{"ind":7528,"timestamp":"2020-08-28 03:52:47","latitude":-89.9787,"longitude":-173.293,"country":"Albania"}"#
    );
}

#[tokio::test]
async fn produce_batches_keys_partitions_and_null_values() {
    let e = env().await;
    e.topics.create("multi", 3, None).await.unwrap();
    let body =
        r#"{"records": [{"value": {"a": 1}}, {"key": {"id": 1}, "value": null}, {"value": [1, 2], "partition": 2}]}"#;
    let (s, _, b) = call(&e.app, produce("/topics/multi", body)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let reply: Value = serde_json::from_str(&b).unwrap();
    let offs = reply["offsets"].as_array().unwrap();
    assert_eq!(offs.len(), 3);
    assert_eq!(offs[2]["partition"], 2);
    let p1 = offs[1]["partition"].as_u64().unwrap() as u32;
    let o1 = offs[1]["offset"].as_u64().unwrap();
    let keyed = &e.topics.read("multi", p1, o1, 1).await.unwrap()[0];
    assert_eq!((keyed.key.as_deref(), keyed.value.as_slice()), (Some(&br#"{"id":1}"#[..]), &b"null"[..]));
    let o2 = offs[2]["offset"].as_u64().unwrap();
    assert_eq!(e.topics.read("multi", 2, o2, 1).await.unwrap()[0].value, b"[1,2]");
    assert_eq!(e.state.metrics().records("multi"), 3);
}

#[tokio::test]
async fn topic_admin_routes_answer_in_the_proxy_shape() {
    let e = env().await;
    e.topics.create("two", 2, None).await.unwrap();
    let records = (0..3).map(|i| eventlog::NewRecord { key: None, value: b"{}".to_vec(), partition: Some(i % 2) });
    e.topics.append("two", records.collect()).await.unwrap();
    let (s, ct, b) = call(&e.app, get("/topics")).await;
    assert_eq!((s, ct.as_str()), (StatusCode::OK, "application/vnd.kafka.v2+json"));
    assert_eq!(b, r#"["pinterest.geo","pinterest.pin","pinterest.user","two"]"#);
    let (s, _, b) = call(&e.app, get("/topics/two")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b,
        r#"{"name":"two","configs":{},"partitions":[{"partition":0,"leader":1,"replicas":[{"broker":1,"leader":true,"in_sync":true}],"beginning_offset":0,"end_offset":2},{"partition":1,"leader":1,"replicas":[{"broker":1,"leader":true,"in_sync":true}],"beginning_offset":0,"end_offset":1}]}"#
    );
    let (s, _, b) = call(&e.app, get("/topics/two/partitions/0/offsets")).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, r#"{"beginning_offset":0,"end_offset":2}"#));
    let (s, _, b) = call(&e.app, get("/topics/two/partitions/2/offsets")).await;
    assert_eq!((s, b.as_str()), (StatusCode::NOT_FOUND, r#"{"error_code":40402,"message":"Partition not found."}"#));
    let (s, _, b) = call(&e.app, get("/topics/pinterest.nope")).await;
    assert_eq!(
        (s, b.as_str()),
        (StatusCode::NOT_FOUND, r#"{"error_code":40401,"message":"Topic pinterest.nope not found."}"#)
    );
}

#[tokio::test]
async fn emulator_put_record_and_put_records_get_kinesis_replies() {
    let e = env().await;
    let body = format!(r#"{{"StreamName": "{STREAM_PIN}", "Data": {PIN_VALUE}, "PartitionKey": "partition-1"}}"#);
    let (s, ct, b) = call(&e.app, put_json(&format!("/streams/{STREAM_PIN}/record"), body)).await;
    assert_eq!((s, ct.as_str()), (StatusCode::OK, "application/json"));
    assert_eq!(b, r#"{"ShardId":"shardId-000000000000","SequenceNumber":"00000000000000000000"}"#);
    let stored = &e.streams.read(STREAM_PIN, 0, 0, 10).await.unwrap()[0];
    assert_eq!(stored.key.as_deref(), Some(&b"partition-1"[..]));
    assert_eq!(std::str::from_utf8(&stored.value).unwrap(), compact(PIN_VALUE));

    let body = format!(
        r#"{{"StreamName": "{STREAM_PIN}", "records": [{{"data": {GEO_VALUE}, "partition-key": "a"}}, {{"data": {{"x": "y z"}}, "partition-key": "b"}}]}}"#
    );
    let req = request(Method::PUT, &format!("/streams/{STREAM_PIN}/records"), Some("application/x-amz-json-1.1"), body);
    let (s, _, b) = call(&e.app, req).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        r#"{"FailedRecordCount":0,"Records":[{"SequenceNumber":"00000000000000000001","ShardId":"shardId-000000000000"},{"SequenceNumber":"00000000000000000002","ShardId":"shardId-000000000000"}]}"#
    );
    let read = e.streams.read(STREAM_PIN, 0, 1, 10).await.unwrap();
    assert_eq!(read[1].value, br#"{"x":"y z"}"#);
    assert_eq!(e.state.metrics().records(STREAM_PIN), 3);
}

#[tokio::test]
async fn stream_admin_routes_create_describe_list_and_delete() {
    let e = env().await;
    let (s, _, b) =
        call(&e.app, request(Method::POST, "/streams/orders", Some("application/json"), r#"{"ShardCount": 2}"#)).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "{}"));
    let (s, _, b) = call(&e.app, request(Method::POST, "/streams/empty-body", None, Body::empty())).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "{}"));
    let (s, _, b) = call(&e.app, get("/streams")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b,
        r#"{"StreamNames":["empty-body","orders","streaming-pinterest-geo","streaming-pinterest-pin","streaming-pinterest-user"],"HasMoreStreams":false}"#
    );
    let (s, _, b) = call(&e.app, get("/streams/orders")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b,
        concat!(
            r#"{"StreamDescription":{"StreamName":"orders","StreamARN":"arn:aws:kinesis:local:000000000000:stream/orders","StreamStatus":"ACTIVE","Shards":["#,
            r#"{"ShardId":"shardId-000000000000","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"170141183460469231731687303715884105727"},"SequenceNumberRange":{"StartingSequenceNumber":"00000000000000000000"}},"#,
            r#"{"ShardId":"shardId-000000000001","HashKeyRange":{"StartingHashKey":"170141183460469231731687303715884105728","EndingHashKey":"340282366920938463463374607431768211455"},"SequenceNumberRange":{"StartingSequenceNumber":"00000000000000000000"}}],"#,
            r#""HasMoreShards":false,"RetentionPeriodHours":24,"EnhancedMonitoring":[{"ShardLevelMetrics":[]}],"EncryptionType":"NONE"}}"#
        )
    );
    let (s, _, b) = call(&e.app, request(Method::POST, "/streams/orders", Some("application/json"), "{}")).await;
    assert_eq!(
        (s, b.as_str()),
        (
            StatusCode::CONFLICT,
            r#"{"__type":"ResourceInUseException","message":"Stream orders under account 000000000000 already exists."}"#
        )
    );
    let (s, _, b) = call(&e.app, request(Method::DELETE, "/streams/orders", None, Body::empty())).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "{}"));
    let (s, _, b) = call(&e.app, get("/streams/orders")).await;
    assert_eq!(
        (s, b.as_str()),
        (
            StatusCode::NOT_FOUND,
            r#"{"__type":"ResourceNotFoundException","message":"Stream orders under account 000000000000 not found."}"#
        )
    );
    let (s, _, b) =
        call(&e.app, request(Method::POST, "/streams/bad", Some("application/json"), r#"{"ShardCount": 0}"#)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.starts_with(r#"{"__type":"ValidationException","message":"#), "{b}");
}

#[tokio::test]
async fn base_path_prefixes_the_api_only() {
    let e = env_with(GatewayConfig { base_path: Some("/dev".into()), ..Default::default() }).await;
    let (s, _, b) = call(&e.app, produce(&format!("/dev/topics/{PIN}"), emulator_body(PIN_VALUE))).await;
    assert_eq!((s, b), (StatusCode::OK, offsets(&[(0, 0)])));
    assert_eq!(call(&e.app, get("/dev/streams")).await.0, StatusCode::OK);
    assert_eq!(
        call(&e.app, produce(&format!("/topics/{PIN}"), emulator_body(PIN_VALUE))).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(call(&e.app, get("/streams")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(call(&e.app, get("/healthz")).await.2, "ok");
    assert_eq!(ends(&e.topics, PIN).await, [1]);
}

/// Sends `req`, expects `status` and an error body: exactly `body` when given, else one with
/// `shape`'s keys and `code` as the error code / type. Then checks nothing was written and the
/// server still serves.
async fn assert_rejected(e: &Env, req: Request<Body>, status: StatusCode, expected: Expected<'_>) {
    let before = all_ends(e).await;
    let (s, _, b) = call(&e.app, req).await;
    assert_eq!(s, status, "{b}");
    match expected {
        Expected::Exact(x) => assert_eq!(b, x),
        Expected::Kafka(code) => {
            let v: Value = serde_json::from_str(&b).unwrap();
            let obj = v.as_object().unwrap();
            assert_eq!(obj.keys().collect::<Vec<_>>(), ["error_code", "message"], "{b}");
            assert_eq!(obj["error_code"], code, "{b}");
            assert!(b.starts_with(&format!(r#"{{"error_code":{code},"message":""#)), "{b}");
            assert!(!obj["message"].as_str().unwrap().is_empty());
        }
        Expected::Kinesis(kind) => {
            let v: Value = serde_json::from_str(&b).unwrap();
            let obj = v.as_object().unwrap();
            assert_eq!(obj.keys().collect::<Vec<_>>(), ["__type", "message"], "{b}");
            assert!(b.starts_with(&format!(r#"{{"__type":"{kind}","message":""#)), "{b}");
        }
    }
    assert_eq!(all_ends(e).await, before, "a rejected request wrote records");
    assert_still_serving(e).await;
}

enum Expected<'a> {
    Exact(&'a str),
    Kafka(u32),
    Kinesis(&'a str),
}

#[tokio::test]
async fn kafka_rejects_bad_requests_without_writing() {
    let e = env().await;
    let t = format!("/topics/{PIN}");
    let bad = StatusCode::BAD_REQUEST;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    // Not JSON, and truncated JSON.
    assert_rejected(&e, produce(&t, "{\"records\": [{\"value\": "), bad, Expected::Kafka(400)).await;
    assert_rejected(&e, produce(&t, "records=1"), bad, Expected::Kafka(400)).await;
    assert_rejected(&e, produce(&t, r#"{"records": 5, nope"#), bad, Expected::Kafka(400)).await;
    // Well-formed JSON of the wrong shape.
    for body in [
        r#"{"value": {"a": 1}}"#,
        r#"{"records": {"value": 1}}"#,
        r#"{"records": [{"key": "k"}]}"#,
        r#"{"records": [{"value": 1, "partition": "0"}]}"#,
        r#"{"records": [{"value": 1, "partition": -1}]}"#,
        r#"{"records": []}"#,
        r#"[1, 2]"#,
    ] {
        assert_rejected(&e, produce(&t, body), unprocessable, Expected::Kafka(422)).await;
    }
    // Unknown topic; unknown partition.
    let nf = r#"{"error_code":40401,"message":"Topic pinterest.nope not found."}"#;
    assert_rejected(
        &e,
        produce("/topics/pinterest.nope", emulator_body("1")),
        StatusCode::NOT_FOUND,
        Expected::Exact(nf),
    )
    .await;
    let body = r#"{"records": [{"value": 1}, {"value": 2, "partition": 1}]}"#;
    let np = r#"{"error_code":40402,"message":"Partition not found."}"#;
    assert_rejected(&e, produce(&t, body), StatusCode::NOT_FOUND, Expected::Exact(np)).await;
    // Wrong or missing content type.
    let ums = r#"{"error_code":415,"message":"HTTP 415 Unsupported Media Type"}"#;
    for ct in [Some("application/json"), Some("application/vnd.kafka.binary.v2+json"), None] {
        let req = request(Method::POST, &t, ct, emulator_body("1"));
        assert_rejected(&e, req, StatusCode::UNSUPPORTED_MEDIA_TYPE, Expected::Exact(ums)).await;
    }
    // A value over 1 MB; what counts is the compacted size.
    let over = format!(r#"{{"records": [{{"value": 1}}, {{"value": "{}"}}]}}"#, "x".repeat(999_999));
    assert_rejected(&e, produce(&t, over.clone()), unprocessable, Expected::Kafka(42201)).await;
    let fits = format!(r#"{{"records": [{{"value": [   "{}"   ]}}]}}"#, "x".repeat(999_996));
    assert_eq!(call(&e.app, produce(&t, fits)).await.0, StatusCode::OK);
    // The unknown topic outranks the record size.
    let req = produce("/topics/pinterest.nope", over);
    assert_rejected(&e, req, StatusCode::NOT_FOUND, Expected::Exact(nf)).await;
}

#[tokio::test]
async fn oversize_bodies_get_413_with_or_without_content_length() {
    let e = env().await;
    let t = format!("/topics/{PIN}");
    let too_large = r#"{"error_code":413,"message":"Request entity too large: the limit is 10485760 bytes."}"#;
    // Declared too large: refused before reading a byte.
    let mut req = produce(&t, emulator_body("1"));
    req.headers_mut().insert(header::CONTENT_LENGTH, "10485761".parse().unwrap());
    assert_rejected(&e, req, StatusCode::PAYLOAD_TOO_LARGE, Expected::Exact(too_large)).await;
    // Streamed with no Content-Length: cut off while reading.
    let chunks = (0..11).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 1024 * 1024])));
    let req = produce(&t, Body::from_stream(futures::stream::iter(chunks)));
    assert_rejected(&e, req, StatusCode::PAYLOAD_TOO_LARGE, Expected::Exact(too_large)).await;
    let big = format!(
        "{{\"StreamName\": \"{STREAM_PIN}\", \"Data\": \"{}\", \"PartitionKey\": \"k\"}}",
        "x".repeat(10 * 1024 * 1024)
    );
    let req = put_json(&format!("/streams/{STREAM_PIN}/record"), big);
    assert_rejected(&e, req, StatusCode::PAYLOAD_TOO_LARGE, Expected::Kinesis("ValidationException")).await;
}

#[tokio::test]
async fn kinesis_rejects_bad_requests_without_writing() {
    let e = env().await;
    let one = format!("/streams/{STREAM_PIN}/record");
    let many = format!("/streams/{STREAM_PIN}/records");
    let bad = StatusCode::BAD_REQUEST;
    let validation = Expected::Kinesis("ValidationException");
    assert_rejected(&e, put_json(&one, "{\"Data\": "), bad, Expected::Kinesis("SerializationException")).await;
    assert_rejected(&e, put_json(&many, "not json"), bad, Expected::Kinesis("SerializationException")).await;
    for body in [
        r#"{"Data": {"a": 1}}"#.to_owned(),
        r#"{"PartitionKey": "k"}"#.to_owned(),
        r#"{"Data": 1, "PartitionKey": 5}"#.to_owned(),
        r#"{"Data": 1, "PartitionKey": ""}"#.to_owned(),
        format!(r#"{{"Data": 1, "PartitionKey": "{}"}}"#, "k".repeat(257)),
        r#"{"StreamName": "streaming-pinterest-geo", "Data": 1, "PartitionKey": "k"}"#.to_owned(),
        format!(r#"{{"Data": "{}", "PartitionKey": "kk"}}"#, "x".repeat(1024 * 1024 - 3)),
    ] {
        assert_rejected(&e, put_json(&one, body), bad, Expected::Kinesis("ValidationException")).await;
    }
    let record = r#"{"data": {"a": 1}, "partition-key": "k"}"#;
    let records = |n: usize| format!(r#"{{"records": [{}]}}"#, vec![record; n].join(", "));
    assert_rejected(&e, put_json(&many, records(0)), bad, Expected::Kinesis("ValidationException")).await;
    assert_rejected(&e, put_json(&many, records(501)), bad, Expected::Kinesis("ValidationException")).await;
    assert_eq!(call(&e.app, put_json(&many, records(500))).await.0, StatusCode::OK);
    assert_rejected(&e, put_json(&many, r#"{"records": [{"data": 1}]}"#), bad, validation).await;

    let nf = r#"{"__type":"ResourceNotFoundException","message":"Stream nope under account 000000000000 not found."}"#;
    let body = r#"{"Data": 1, "PartitionKey": "k"}"#;
    assert_rejected(&e, put_json("/streams/nope/record", body), StatusCode::NOT_FOUND, Expected::Exact(nf)).await;
    let huge = format!(r#"{{"Data": "{}", "PartitionKey": "kk"}}"#, "x".repeat(1024 * 1024));
    assert_rejected(&e, put_json("/streams/nope/record", huge), StatusCode::NOT_FOUND, Expected::Exact(nf)).await;
    let ums = r#"{"__type":"UnsupportedMediaTypeException","message":"Unsupported Media Type"}"#;
    for ct in [Some("text/plain"), Some(KAFKA_JSON), None] {
        let req = request(Method::PUT, &one, ct, body);
        assert_rejected(&e, req, StatusCode::UNSUPPORTED_MEDIA_TYPE, Expected::Exact(ums)).await;
    }
}

#[tokio::test]
async fn api_keys_guard_every_api_route_but_not_health_or_metrics() {
    let e = env_with(GatewayConfig { api_keys: vec!["k1".into(), "k2".into()], ..Default::default() }).await;
    let t = format!("/topics/{PIN}");
    let kafka_403 = r#"{"error_code":403,"message":"Forbidden"}"#;
    let kinesis_403 = r#"{"__type":"AccessDeniedException","message":"Forbidden"}"#;
    let with_key = |mut req: Request<Body>, key: &str| {
        req.headers_mut().insert("x-api-key", key.parse().unwrap());
        req
    };
    let forbidden = StatusCode::FORBIDDEN;
    for key in [None, Some("k3"), Some("K1")] {
        let keyed = |req| match key {
            Some(k) => with_key(req, k),
            None => req,
        };
        let before = all_ends(&e).await;
        assert_eq!(call(&e.app, keyed(produce(&t, emulator_body("1")))).await.2, kafka_403);
        assert_eq!(
            call(&e.app, keyed(get("/topics"))).await,
            (forbidden, "application/vnd.kafka.v2+json".into(), kafka_403.into())
        );
        let body = r#"{"Data": 1, "PartitionKey": "k"}"#;
        let (s, _, b) = call(&e.app, keyed(put_json(&format!("/streams/{STREAM_PIN}/record"), body))).await;
        assert_eq!((s, b.as_str()), (forbidden, kinesis_403));
        assert_eq!(call(&e.app, keyed(get("/streams"))).await.2, kinesis_403);
        assert_eq!(
            call(&e.app, keyed(request(Method::DELETE, &format!("/streams/{STREAM_PIN}"), None, Body::empty())))
                .await
                .0,
            forbidden
        );
        assert_eq!(all_ends(&e).await, before);
    }
    let (s, _, b) = call(&e.app, with_key(produce(&t, emulator_body("1")), "k2")).await;
    assert_eq!((s, b), (StatusCode::OK, offsets(&[(0, 0)])));
    assert_eq!(call(&e.app, get("/healthz")).await.0, StatusCode::OK);
    assert_eq!(call(&e.app, get("/metrics")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_requests_records_and_durations() {
    let e = env().await;
    let (s, ct, b) = call(&e.app, get("/healthz")).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "ok"));
    assert!(ct.starts_with("text/plain"));
    for _ in 0..2 {
        call(&e.app, produce(&format!("/topics/{PIN}"), r#"{"records": [{"value": 1}, {"value": 2}]}"#)).await;
    }
    call(&e.app, produce("/topics/nope", emulator_body("1"))).await;
    call(&e.app, get("/streams")).await;
    let (s, ct, text) = call(&e.app, get("/metrics")).await;
    assert_eq!((s, ct.as_str()), (StatusCode::OK, "text/plain; version=0.0.4"));
    for line in [
        "pinpipe_gateway_requests_total{route=\"topics\",status=\"200\"} 2\n",
        "pinpipe_gateway_requests_total{route=\"topics\",status=\"404\"} 1\n",
        "pinpipe_gateway_requests_total{route=\"admin\",status=\"200\"} 1\n",
        "pinpipe_gateway_records_total{log=\"pinterest.pin\"} 4\n",
        "pinpipe_gateway_request_duration_seconds_count{route=\"topics\"} 3\n",
        "# TYPE pinpipe_gateway_request_duration_seconds histogram\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("pinpipe_gateway_request_duration_seconds_bucket{route=\"topics\",le=\"+Inf\"} 3\n"));
}

async fn start(
    e: &Env,
) -> (std::net::SocketAddr, tokio_util::sync::CancellationToken, tokio::task::JoinHandle<Result<(), gateway::Error>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(gateway::serve(listener, e.state.clone(), shutdown.clone()));
    (addr, shutdown, server)
}

#[tokio::test]
async fn serves_real_clients_over_a_socket_and_shuts_down_gracefully() {
    let e = env().await;
    let (addr, shutdown, server) = start(&e).await;
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("http://{addr}/topics/{PIN}"))
        .header("Content-Type", KAFKA_JSON)
        .body(emulator_body(PIN_VALUE))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), offsets(&[(0, 0)]));
    let body = format!(r#"{{"StreamName": "{STREAM_PIN}", "Data": {GEO_VALUE}, "PartitionKey": "partition-2"}}"#);
    let resp = client
        .put(format!("http://{addr}/streams/{STREAM_PIN}/record"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client.get(format!("http://{addr}/metrics")).send().await.unwrap();
    assert!(resp.text().await.unwrap().contains("pinpipe_gateway_records_total{log=\"streaming-pinterest-pin\"} 1"));

    shutdown.cancel();
    server.await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still accepting after shutdown");
}

#[tokio::test]
async fn chunked_upload_over_the_limit_is_cut_off_over_a_socket() {
    let e = env().await;
    let (addr, shutdown, server) = start(&e).await;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /topics/{PIN} HTTP/1.1\r\nHost: x\r\nContent-Type: {KAFKA_JSON}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let chunk = [format!("{:x}\r\n", 1 << 20).into_bytes(), vec![b' '; 1 << 20], b"\r\n".to_vec()].concat();
    // The server may answer and stop reading before all 11 MiB are sent.
    let (mut rd, mut wr) = conn.into_split();
    let writer = tokio::spawn(async move {
        for _ in 0..11 {
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = wr.write_all(b"0\r\n\r\n").await;
    });
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&reply).contains("10485760 bytes.\"}") {
        let n = rd.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed: {}", String::from_utf8_lossy(&reply));
        reply.extend_from_slice(&buf[..n]);
    }
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    writer.abort();
    assert_eq!(ends(&e.topics, PIN).await, [0]);
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/topics/{PIN}"))
        .header("Content-Type", KAFKA_JSON)
        .body(emulator_body("{}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
