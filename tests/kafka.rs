//! The pipeline on the Kafka event log (issue #5): the gateway appends what the Python emulator
//! sends and a Kafka client that is not ours (confluent-kafka) reads exactly those records back;
//! a broker that freezes makes produces answer 503 (never 200) and loses or doubles nothing that
//! was acknowledged; the sink lands Kafka topics in S3 exactly as it lands the embedded log, and
//! rides out a frozen broker.
//!
//! Needs `PINPIPE_TEST_KAFKA` (a broker shared by the tests), `PINPIPE_TEST_TANSU` (the tansu
//! binary, for brokers of a test's own that it can freeze; else `~/.cache/pinpipe-services/bin/
//! tansu`), `PINPIPE_TEST_PYTHON` (with confluent-kafka) and `PINPIPE_TEST_S3_ENDPOINT`. A test
//! whose variable is unset says so and returns; one whose service is set must reach it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinpipe::eventlog::{self, EventLog, Namespace, NewRecord};
use pinpipe::gateway::GatewayConfig;
use serde_json::Value;

const KAFKA_JSON: &str = "application/vnd.kafka.json.v2+json";

/// The shared broker, or `None` (skipped, with a message).
fn shared_broker() -> Option<String> {
    let addr = std::env::var("PINPIPE_TEST_KAFKA").ok();
    if addr.is_none() {
        eprintln!("PINPIPE_TEST_KAFKA is not set: skipping the Kafka test");
    }
    addr
}

/// The tansu binary, or `None` (skipped, with a message).
fn tansu_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PINPIPE_TEST_TANSU") {
        return Some(path.into());
    }
    let fallback = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/pinpipe-services/bin/tansu"));
    match fallback.filter(|p| p.exists()) {
        Some(p) => Some(p),
        None => {
            eprintln!("PINPIPE_TEST_TANSU is not set and no tansu in ~/.cache: skipping the broker-fault test");
            None
        }
    }
}

/// A Tansu broker of the test's own on a free port, in memory; killed when dropped.
struct Broker {
    child: std::process::Child,
    addr: String,
}

impl Broker {
    async fn start(binary: &Path) -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(binary)
            .args(["broker", "--listener-url", &format!("tcp://{addr}"), "--advertised-listener-url"])
            .arg(format!("tcp://{addr}"))
            .args(["--storage-engine", "memory://tansu/", "--silent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let started = Instant::now();
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "tansu did not listen on {addr}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Broker { child, addr }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill").args([sig, &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success(), "kill {sig}");
    }

    fn stop(&self) {
        self.signal("-STOP");
    }

    fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pipeline id no other test uses (names the topics).
fn fresh_id(what: &str) -> String {
    format!("kt{what}{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

async fn kafka_log(addr: &str) -> Arc<dyn EventLog> {
    let url = format!("kafka://{addr}");
    eventlog::open(&url.parse().unwrap(), Namespace::Topics).await.unwrap_or_else(|e| panic!("open {url}: {e}"))
}

/// A gateway whose topics are on Kafka (`streams` on an embedded log under `dir`).
async fn gateway_on(topics: Arc<dyn EventLog>, dir: &Path) -> std::net::SocketAddr {
    let url = format!("embedded://{}", dir.join("log").display());
    let streams = eventlog::open(&url.parse().unwrap(), Namespace::Streams).await.unwrap();
    let (addr, _stop) = common::spawn_gateway(GatewayConfig::default(), topics, streams).await;
    addr
}

/// POSTs `body` to `/topics/<topic>` and returns (status, body text).
async fn produce(client: &reqwest::Client, gateway: std::net::SocketAddr, topic: &str, body: String) -> (u16, String) {
    let reply = client
        .post(format!("http://{gateway}/topics/{topic}"))
        .header("content-type", KAFKA_JSON)
        .body(body)
        .send()
        .await
        .expect("gateway reachable");
    let status = reply.status().as_u16();
    (status, reply.text().await.unwrap())
}

/// A pin row as the Python emulator renders it (`json.dumps`: `", "` and `": "` separators).
fn python_row(i: usize) -> String {
    format!(
        r#"{{"index": {i}, "unique_id": "u-{i}", "title": "Caf\u00e9 n\u00b0{i}", "follower_count": "{i}k", "downloaded": 1}}"#
    )
}

/// The same row compacted, as the gateway stores it.
fn compact_row(i: usize) -> String {
    format!(
        r#"{{"index":{i},"unique_id":"u-{i}","title":"Caf\u00e9 n\u00b0{i}","follower_count":"{i}k","downloaded":1}}"#
    )
}

/// Runs the confluent-kafka reader script; `None` when `PINPIPE_TEST_PYTHON` is unset.
fn python_consume(bootstrap: &str, topic: &str, count: usize) -> Option<Vec<Value>> {
    let Some(python) = std::env::var_os("PINPIPE_TEST_PYTHON") else {
        eprintln!("PINPIPE_TEST_PYTHON is not set: skipping the confluent-kafka check");
        return None;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kafka_consume.py");
    let out = Command::new(python).arg(script).args([bootstrap, topic, &count.to_string()]).output().expect("python");
    assert!(out.status.success(), "kafka_consume.py failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(serde_json::from_slice(&out.stdout).expect("JSON list from kafka_consume.py"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_reads_exactly_what_the_gateway_produced() {
    let Some(broker) = shared_broker() else { return };
    if std::env::var_os("PINPIPE_TEST_PYTHON").is_none() {
        eprintln!("PINPIPE_TEST_PYTHON is not set: skipping the confluent-kafka test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let id = fresh_id("gw");
    let log = kafka_log(&broker).await;
    eventlog::ensure_defaults(&*log, &id).await.unwrap();
    let topic = format!("{id}.pin");
    let gateway = gateway_on(Arc::clone(&log), dir.path()).await;
    let client = reqwest::Client::new();

    // Ten requests of three records: the emulator's one-value shape, keyed records and an
    // explicit partition, like the REST proxy's clients send.
    let mut expected = Vec::new();
    for n in 0..10 {
        let rows: Vec<usize> = (n * 3..n * 3 + 3).collect();
        let records: Vec<String> = rows
            .iter()
            .map(|&i| match i % 3 {
                0 => format!(r#"{{"value": {}}}"#, python_row(i)),
                1 => format!(r#"{{"key": "user-{i}", "value": {}}}"#, python_row(i)),
                _ => format!(r#"{{"key": "user-{i}", "value": {}, "partition": 0}}"#, python_row(i)),
            })
            .collect();
        let body = format!(r#"{{"records": [{}]}}"#, records.join(", "));
        let (status, reply) = produce(&client, gateway, &topic, body).await;
        assert_eq!(status, 200, "{reply}");
        let reply: Value = serde_json::from_str(&reply).unwrap();
        for (k, &i) in rows.iter().enumerate() {
            let key = (i % 3 != 0).then(|| format!("\"user-{i}\""));
            let offset = &reply["offsets"][k];
            assert_eq!(offset["error_code"], Value::Null);
            expected.push(serde_json::json!({
                "partition": offset["partition"],
                "offset": offset["offset"],
                "key": key,
                "value": compact_row(i),
            }));
        }
    }
    let offsets: Vec<u64> = expected.iter().map(|r| r["offset"].as_u64().unwrap()).collect();
    assert_eq!(offsets, (0..30).collect::<Vec<_>>(), "one partition: the proxy's offsets count up from 0");

    let read = python_consume(&broker, &topic, expected.len()).unwrap();
    assert_eq!(read, expected, "confluent-kafka reads every produced record once, keys and values byte for byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_broker_gets_503_and_loses_nothing_acknowledged() {
    let Some(tansu) = tansu_binary() else { return };
    let broker = Broker::start(&tansu).await;
    let dir = tempfile::tempdir().unwrap();
    let id = fresh_id("fault");
    let log = kafka_log(&broker.addr).await;
    eventlog::ensure_defaults(&*log, &id).await.unwrap();
    let topic = format!("{id}.pin");
    let gateway = gateway_on(Arc::clone(&log), dir.path()).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let body =
        |i: usize| format!(r#"{{"records": [{{"value": {}}}, {{"value": {}}}]}}"#, python_row(i), python_row(i + 1));

    let mut acknowledged = Vec::new();
    let mut next = 0;
    for _ in 0..3 {
        let (status, reply) = produce(&client, gateway, &topic, body(next)).await;
        assert_eq!(status, 200, "{reply}");
        acknowledged.extend([next, next + 1]);
        next += 2;
    }

    broker.stop();
    let started = Instant::now();
    let (status, reply) = produce(&client, gateway, &topic, body(next)).await;
    let took = started.elapsed();
    next += 2;
    assert_eq!(
        (status, reply.as_str()),
        (503, r#"{"error_code":50301,"message":"Service unavailable"}"#),
        "a frozen broker is a 503 with the proxy's error body"
    );
    assert!(took < Duration::from_secs(16), "the 503 came after {took:?}");

    broker.resume();
    // Back: produces succeed again (the first ones may still meet a recovering client: 503, never
    // anything else).
    let mut ok_after = 0;
    let resumed = Instant::now();
    while ok_after < 3 {
        assert!(resumed.elapsed() < Duration::from_secs(60), "produces never recovered after CONT");
        let (status, reply) = produce(&client, gateway, &topic, body(next)).await;
        match status {
            200 => {
                acknowledged.extend([next, next + 1]);
                ok_after += 1;
            }
            503 => tokio::time::sleep(Duration::from_millis(500)).await,
            other => panic!("after CONT a produce answered {other}: {reply}"),
        }
        next += 2;
    }

    let stored = common::values(&common::read_all(&*log, &topic).await);
    for i in &acknowledged {
        let row = compact_row(*i);
        let copies = stored.iter().filter(|v| **v == row).count();
        assert_eq!(copies, 1, "acknowledged row {i} is stored exactly once");
    }
    for v in &stored {
        assert_eq!(stored.iter().filter(|w| *w == v).count(), 1, "no record stored twice: {v}");
    }
}

/// `pinpipe sink --drain` over `log` into `lake`, with S3 pointed at `endpoint`.
fn sink_command(log: &str, id: &str, lake: &str, endpoint: &str, data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pinpipe"));
    cmd.args(["sink", "--drain", "--flush-size", "100", "--id", id, "--log", log, "--lake", lake, "--data"])
        .arg(data)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", common::aws_var("AWS_ACCESS_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", common::aws_var("AWS_SECRET_ACCESS_KEY"))
        .env("AWS_REGION", common::aws_var("AWS_REGION"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in ["PINPIPE_CONFIG", "PINPIPE_DATA", "PINPIPE_LOG", "PINPIPE_STREAMS", "PINPIPE_LAKE", "PINPIPE_ID"] {
        cmd.env_remove(var);
    }
    cmd
}

fn run_ok(mut cmd: Command) {
    let out = cmd.output().expect("run pinpipe sink");
    assert!(out.status.success(), "pinpipe sink failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Appends `rows` to `<id>.<topic>` in chunks of 500.
async fn append_rows(log: &dyn EventLog, id: &str, topic: &str, rows: &[String]) {
    for chunk in rows.chunks(500) {
        let records = chunk.iter().map(|v| NewRecord::value(v.clone())).collect();
        log.append(&format!("{id}.{topic}"), records).await.expect("append");
    }
}

fn rows(topic: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!(r#"{{"topic":"{topic}","i":{i},"pad":"{}"}}"#, "x".repeat(i % 37))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_writes_the_same_files_from_kafka_as_from_the_embedded_log() {
    let Some(broker) = shared_broker() else { return };
    let Some(endpoint) = common::s3_endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let id = fresh_id("sink");
    let kafka = kafka_log(&broker).await;
    eventlog::ensure_defaults(&*kafka, &id).await.unwrap();
    let embedded_url = format!("embedded://{}", dir.path().join("log").display());
    let embedded = eventlog::open(&embedded_url.parse().unwrap(), Namespace::Topics).await.unwrap();
    eventlog::ensure_defaults(&*embedded, &id).await.unwrap();
    for (topic, n) in [("pin", 1234), ("geo", 250), ("user", 7)] {
        let rows = rows(topic, n);
        append_rows(&*kafka, &id, topic, &rows).await;
        append_rows(&*embedded, &id, topic, &rows).await;
    }

    let (bucket, store) = common::new_bucket(&endpoint, "pinpipe-kafka").await;
    run_ok(sink_command(&format!("kafka://{broker}"), &id, &format!("s3://{bucket}/kafka"), &endpoint, dir.path()));
    run_ok(sink_command(&embedded_url, &id, &format!("s3://{bucket}/embedded"), &endpoint, dir.path()));
    let mut from_kafka = common::objects(&*store, "kafka").await;
    let mut from_embedded = common::objects(&*store, "embedded").await;
    // Each partition's marker names the log its files came from: the embedded log by its id,
    // a Kafka topic (whose id the client cannot see) by a fingerprint of its first record.
    let markers = |objects: &mut BTreeMap<String, Vec<u8>>| -> Vec<Value> {
        let keys: Vec<String> = objects.keys().filter(|k| k.ends_with("/_incarnation")).cloned().collect();
        keys.iter().map(|k| serde_json::from_slice(&objects.remove(k).unwrap()).unwrap()).collect()
    };
    let (kafka_markers, embedded_markers) = (markers(&mut from_kafka), markers(&mut from_embedded));
    assert_eq!((kafka_markers.len(), embedded_markers.len()), (3, 3));
    for m in &kafka_markers {
        assert!(m["incarnation"].is_null() && m["check"]["offset"] == 0 && m["check"]["md5"].is_string(), "{m}");
    }
    for m in &embedded_markers {
        assert!(m["incarnation"].is_string() && m.get("check").is_none(), "{m}");
    }
    assert_eq!(from_kafka.len(), 13 + 3 + 1, "files: {:?}", from_kafka.keys().collect::<Vec<_>>());
    assert!(from_kafka.keys().eq(from_embedded.keys()), "the same keys");
    assert!(from_kafka == from_embedded, "the same objects, byte for byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_rides_out_a_frozen_broker_and_writes_every_record_once() {
    let Some(tansu) = tansu_binary() else { return };
    let Some(endpoint) = common::s3_endpoint() else { return };
    let broker = Broker::start(&tansu).await;
    let dir = tempfile::tempdir().unwrap();
    let id = fresh_id("sinkfault");
    let log = kafka_log(&broker.addr).await;
    eventlog::ensure_defaults(&*log, &id).await.unwrap();
    let pin = rows("pin", 30_000);
    append_rows(&*log, &id, "pin", &pin).await;
    append_rows(&*log, &id, "geo", &rows("geo", 300)).await;

    let (bucket, store) = common::new_bucket(&endpoint, "pinpipe-kafka").await;
    let mut sink =
        sink_command(&format!("kafka://{}", broker.addr), &id, &format!("s3://{bucket}/lake"), &endpoint, dir.path())
            .spawn()
            .expect("start the sink");
    // Freeze the broker once the sink has written something, before it is done.
    let started = Instant::now();
    loop {
        assert!(sink.try_wait().unwrap().is_none(), "the sink finished before the broker could be frozen");
        if !common::objects(&*store, "lake").await.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the sink wrote nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    broker.stop();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(sink.try_wait().unwrap().is_none(), "the sink gave up while the broker was frozen");
    broker.resume();
    let out = tokio::task::spawn_blocking(move || sink.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "the sink failed: {}", String::from_utf8_lossy(&out.stderr));

    let objects = common::objects(&*store, "lake").await;
    let lines = |topic: &str| -> Vec<String> {
        objects
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("topics/{id}.{topic}/")) && k.ends_with(".json"))
            .flat_map(|(_, body)| {
                String::from_utf8(body.clone()).unwrap().lines().map(str::to_string).collect::<Vec<_>>()
            })
            .collect()
    };
    let mut got = lines("pin");
    got.sort_by_key(|l| serde_json::from_str::<Value>(l).unwrap()["i"].as_u64().unwrap());
    assert_eq!(got.len(), pin.len(), "every pin record once");
    assert_eq!(got, pin);
    let mut geo = lines("geo");
    geo.sort_by_key(|l| serde_json::from_str::<Value>(l).unwrap()["i"].as_u64().unwrap());
    assert_eq!(geo, rows("geo", 300));
}

#[tokio::test]
async fn a_topic_pinpipe_creates_carries_its_retention_ms() {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let Some(addr) = shared_broker() else { return };
    let url = format!("kafka://{addr}").parse().unwrap();
    let policy = eventlog::Policy {
        retention: eventlog::Retention::For(Duration::from_secs(300)),
        ..eventlog::Policy::default_for(Namespace::Topics)
    };
    let log = eventlog::open_with(&url, Namespace::Topics, &Default::default(), policy).await.unwrap();
    let (default, own) = (fresh_id("retention"), fresh_id("retention"));
    log.create(&default, 1, None).await.expect("create with the namespace's retention");
    log.create(&own, 1, Some(eventlog::Retention::Forever)).await.expect("create with its own");
    let admin: AdminClient<DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", &addr).create().expect("admin client");
    for (topic, expected) in [(&default, "300000"), (&own, "-1")] {
        let described = admin
            .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
            .await
            .expect("describe configs");
        let resource = described.into_iter().next().unwrap().expect("the topic's configs");
        let value = resource.get("retention.ms").and_then(|e| e.value.clone());
        assert_eq!(value.as_deref(), Some(expected), "{topic}");
        log.delete(topic).await.expect("delete");
    }
}
