//! A deleted and re-created topic or stream is another log (SPEC §4): the sink and the stream job
//! land the new log's records from its start, exactly once, and keep the old log's files and rows
//! — on the embedded log (its identities and offsets that go on after the old log's), on Kinesis
//! (a stream's ARN and creation time) — and a Kafka topic, whose identity its clients cannot
//! see, stops the sink with the documented error instead of skipping records.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinpipe::clean::Table;
use pinpipe::eventlog::{self, EventLog, Namespace, NewRecord};
use pinpipe::lake::Lake;
use pinpipe::settings::Worker;
use pinpipe::sink::{self, layout};
use pinpipe::stream::{self, StreamConfig};
use tokio_util::sync::CancellationToken;

fn pinpipe(data: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pinpipe"));
    cmd.args(args).arg("--data").arg(data).env("RUST_LOG", "warn");
    for var in ["PINPIPE_CONFIG", "PINPIPE_DATA", "PINPIPE_LOG", "PINPIPE_STREAMS", "PINPIPE_LAKE", "PINPIPE_ID"] {
        cmd.env_remove(var);
    }
    cmd.output().expect("run pinpipe")
}

fn ok(out: Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
}

fn spawn_gateway(data: &Path, listen: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(["gateway", "--listen", listen, "--data"])
        .arg(data)
        .env_remove("PINPIPE_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the gateway")
}

/// The pin records of posts `range`, as compact JSON (what the log stores).
fn pins(range: std::ops::Range<u64>) -> Vec<String> {
    common::posts(range.start, range.end - range.start).remove(&Table::Pin).unwrap()
}

async fn send(client: &reqwest::Client, base: &str, values: &[String]) {
    for value in values {
        let body = format!(r#"{{"records":[{{"value":{value}}}]}}"#);
        let r = client
            .post(format!("{base}/topics/pinterest.pin"))
            .header("Content-Type", "application/vnd.kafka.json.v2+json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let body = format!(r#"{{"StreamName":"streaming-pinterest-pin","Data":{value},"PartitionKey":"k"}}"#);
        let r = client
            .put(format!("{base}/streams/streaming-pinterest-pin/record"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
}

/// Every line of the sink files of `topic` partition 0, sorted, and the partition's marker.
fn lake_lines(lake: &Path, topic: &str) -> (Vec<String>, serde_json::Value) {
    let dir = lake.join(layout::partition_dir(topic, 0));
    let mut lines = Vec::new();
    let mut marker = serde_json::Value::Null;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if path.file_name().unwrap() == sink::resume::MARKER {
            marker = serde_json::from_str(&text).unwrap();
        } else {
            lines.extend(text.lines().map(str::to_string));
        }
    }
    lines.sort();
    (lines, marker)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_topic_and_stream_land_their_new_records_once_and_keep_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let mut gateway = spawn_gateway(&data, &listen);
    let base = format!("http://{listen}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the gateway did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (old, new) = (pins(0..10), pins(10..25));
    send(&client, &base, &old).await;
    ok(pinpipe(&data, &["sink", "--drain", "--flush-size", "4"]), "sink");
    ok(pinpipe(&data, &["stream", "--drain"]), "stream");

    // Delete both logs and create them again, as a user would.
    let r = client.delete(format!("{base}/streams/streaming-pinterest-pin")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    ok(pinpipe(&data, &["topics", "delete", "pinterest.pin"]), "topics delete");
    let r = client
        .post(format!("{base}/streams/streaming-pinterest-pin"))
        .header("Content-Type", "application/json")
        .body(r#"{"ShardCount":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    ok(pinpipe(&data, &["topics", "create", "pinterest.pin"]), "topics create");
    send(&client, &base, &new).await;
    ok(pinpipe(&data, &["sink", "--drain", "--flush-size", "4"]), "sink after re-creation");
    ok(pinpipe(&data, &["stream", "--drain"]), "stream after re-creation");
    let _ = gateway.kill();
    let _ = gateway.wait();

    // The lake: the old log's ten records and the new log's fifteen, each once.
    let lake = data.join("lake");
    let (lines, marker) = lake_lines(&lake, "pinterest.pin");
    let all: Vec<String> = old.iter().chain(&new).cloned().collect();
    assert_eq!(lines, sorted(all.clone()), "every record of both logs once");
    let topics =
        eventlog::open(&format!("embedded://{}", data.join("log").display()).parse().unwrap(), Namespace::Topics)
            .await
            .unwrap();
    let info = topics.describe("pinterest.pin").await.unwrap();
    assert_eq!(marker, serde_json::json!({"incarnation": info.incarnation.unwrap(), "since": 10}));
    assert_eq!(info.partitions[0].start, 10, "the new topic numbers on after the old one");

    // The Delta table: every record of both streams once, as cleaned rows.
    let records = BTreeMap::from([(Table::Pin, all)]);
    let want = common::expected_stream_tables("pinterest", &records);
    let names = vec!["pinterest_pin_table".to_string()];
    let got = common::delta_tables(&format!("file://{}/delta", lake.display()), &HashMap::new(), &names).await;
    assert_eq!(got[&names[0]].len(), 25);
    assert!(got[&names[0]] == want[&names[0]], "the pin table holds every record of both streams once");
}

fn kinesis_endpoint() -> Option<String> {
    let endpoint = std::env::var("PINPIPE_TEST_KINESIS_ENDPOINT").ok();
    if endpoint.is_none() {
        eprintln!("PINPIPE_TEST_KINESIS_ENDPOINT is not set: skipping the Kinesis test");
    }
    endpoint
}

async fn append(log: &dyn EventLog, name: &str, values: &[String]) {
    let records =
        values.iter().map(|v| NewRecord { key: Some(b"k".to_vec()), value: v.clone().into(), partition: None });
    log.append(name, records.collect()).await.expect("append");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_kinesis_stream_is_read_from_its_start() {
    let Some(endpoint) = kinesis_endpoint() else { return };
    let id = format!("r{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let streams =
        eventlog::open(&format!("kinesis://us-east-1?endpoint={endpoint}").parse().unwrap(), Namespace::Streams)
            .await
            .expect("open kinesis");
    eventlog::ensure_defaults(&*streams, &id).await.expect("default streams");
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&format!("file://{}", dir.path().join("lake").display()).parse().unwrap()).unwrap();
    let cfg = StreamConfig {
        id: id.clone(),
        max_batch_records: 10_000,
        max_latency: Duration::from_millis(200),
        drain: true,
        checkpoint_every: 100,
        lake_timeout: None,
        on_gap: Default::default(),
        upkeep: Default::default(),
        worker: Worker::ALL,
    };
    let pin = format!("streaming-{id}-pin");
    let first = streams.describe(&pin).await.unwrap().incarnation.expect("a Kinesis stream has an identity");
    let (old, new) = (pins(0..10), pins(10..25));
    append(&*streams, &pin, &old).await;
    let report = stream::run(&cfg, Arc::clone(&streams), &lake, CancellationToken::new()).await.expect("drain");
    assert_eq!(report.tables[0].committed, 10);

    streams.delete(&pin).await.expect("delete");
    // A stream's identity is its ARN and creation time, which kinesalite keeps to the second
    // (AWS takes seconds to delete a stream): create the new one in another second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    loop {
        match streams.create(&pin, 1, None).await {
            Ok(_) => break,
            Err(eventlog::Error::AlreadyExists { .. }) if started.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("create again: {e}"),
        }
    }
    let second = streams.describe(&pin).await.unwrap().incarnation.unwrap();
    assert_ne!(first, second, "the new stream is another log");
    append(&*streams, &pin, &new).await;
    let report = stream::run(&cfg, Arc::clone(&streams), &lake, CancellationToken::new()).await.expect("drain");
    assert_eq!(report.tables[0].committed, 15, "the new stream's records, from its start");

    let all: Vec<String> = old.iter().chain(&new).cloned().collect();
    let want = common::expected_stream_tables(&id, &BTreeMap::from([(Table::Pin, all)]));
    let name = format!("{id}_pin_table");
    let got = common::delta_tables(&lake.url_of("delta"), &HashMap::new(), std::slice::from_ref(&name)).await;
    assert!(got[&name] == want[&name], "every record of both streams once");
    for table in Table::ALL {
        let _ = streams.delete(&format!("streaming-{id}-{}", table.name())).await;
    }
}

/// `pinpipe` on the Kafka log at `broker` for pipeline `id` (each step its own process, as a
/// user runs them: a client that saw the old topic is never the one that sees the new one).
fn pinpipe_kafka(broker: &str, id: &str, dir: &Path, args: &[&str]) -> Output {
    let log = format!("kafka://{broker}");
    let lake = format!("file://{}", dir.join("lake").display());
    let mut all = vec!["--log", &log, "--id", id, "--lake", &lake];
    all.extend_from_slice(args);
    pinpipe(&dir.join("data"), &all)
}

/// Appends `values` to `topic` from a client of its own, closed after.
async fn append_kafka(broker: &str, topic: &str, values: &[String]) {
    let topics =
        eventlog::open(&format!("kafka://{broker}").parse().unwrap(), Namespace::Topics).await.expect("open kafka");
    append(&*topics, topic, values).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_kafka_topic_stops_the_sink_with_the_documented_error() {
    let Ok(broker) = std::env::var("PINPIPE_TEST_KAFKA") else {
        eprintln!("PINPIPE_TEST_KAFKA is not set: skipping the Kafka test");
        return;
    };
    let id = format!("rk{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let topic = format!("{id}.pin");
    ok(pinpipe_kafka(&broker, &id, dir.path(), &["topics", "list"]), "create the default topics");
    let (old, new) = (pins(0..10), pins(10..25));
    append_kafka(&broker, &topic, &old).await;
    ok(pinpipe_kafka(&broker, &id, dir.path(), &["sink", "--drain", "--flush-size", "4"]), "first drain");
    let before = lake_lines(&lake_dir, &topic);
    assert_eq!(before.0, sorted(old.clone()));

    ok(pinpipe_kafka(&broker, &id, dir.path(), &["topics", "delete", &topic]), "topics delete");
    let started = Instant::now();
    loop {
        let out = pinpipe_kafka(&broker, &id, dir.path(), &["topics", "create", &topic]);
        if out.status.success() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{}", String::from_utf8_lossy(&out.stderr));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    append_kafka(&broker, &topic, &new).await;
    let out = pinpipe_kafka(&broker, &id, dir.path(), &["sink", "--drain", "--flush-size", "4"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{topic} partition 0 holds another record at offset 0"))
            && stderr.contains("deleted and created again")
            && stderr.contains("aside"),
        "{stderr}"
    );
    assert_eq!(lake_lines(&lake_dir, &topic), before, "the old log's files are untouched");

    // The documented remedy: move the partition's folder aside, and the new log lands.
    std::fs::rename(lake_dir.join(layout::partition_dir(&topic, 0)), dir.path().join("old-pin")).unwrap();
    ok(pinpipe_kafka(&broker, &id, dir.path(), &["sink", "--drain", "--flush-size", "4"]), "drain after moving aside");
    assert_eq!(lake_lines(&lake_dir, &topic).0, sorted(new));
    for table in Table::ALL {
        let _ = pinpipe_kafka(&broker, &id, dir.path(), &["topics", "delete", &format!("{id}.{}", table.name())]);
    }
}
