//! Backpressure instead of failure: when the embedded log cannot take more — free space under
//! its floor (`min_free`), a full disk — the gateway answers 503 with `Retry-After` in the route
//! family's shape, stores nothing of the refused request, keeps answering `/healthz`, shows the
//! state on `/metrics` and the status page, and takes records again by itself once space is
//! back; every acknowledged record reads back. The emulator waits as `Retry-After` says and
//! loses nothing. The disks are small tmpfs mounts filled for real (CI runs as root).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::tmpfs::Tmpfs;
use pinpipe::eventlog::{self, EventLog, MinFree, Namespace, Policy};
use pinpipe::gateway::GatewayConfig;
use tokio_util::sync::CancellationToken;

/// The embedded topics and streams logs under `dir/log`, with the default logs, and `min_free`.
async fn logs(dir: &Path, min_free: MinFree) -> (Arc<dyn EventLog>, Arc<dyn EventLog>) {
    let url = format!("embedded://{}", dir.join("log").display()).parse().unwrap();
    let open = |namespace| {
        let url = &url;
        async move {
            let policy = Policy { min_free, ..Policy::default_for(namespace) };
            let log = eventlog::open_with(url, namespace, &Default::default(), policy).await.unwrap();
            eventlog::ensure_defaults(&*log, "pinterest").await.unwrap();
            log
        }
    };
    (open(Namespace::Topics).await, open(Namespace::Streams).await)
}

struct Gateway {
    url: String,
    http: reqwest::Client,
    topics: Arc<dyn EventLog>,
    streams: Arc<dyn EventLog>,
    _stop: tokio_util::sync::DropGuard,
}

async fn gateway(dir: &Path, min_free: MinFree) -> Gateway {
    let (topics, streams) = logs(dir, min_free).await;
    let (addr, stop): (SocketAddr, CancellationToken) =
        common::spawn_gateway(GatewayConfig::default(), topics.clone(), streams.clone()).await;
    Gateway { url: format!("http://{addr}"), http: reqwest::Client::new(), topics, streams, _stop: stop.drop_guard() }
}

/// A reply's status, `Retry-After` and body.
type Reply = (u16, Option<String>, String);

impl Gateway {
    async fn produce(&self, values: &[String]) -> Reply {
        let records: Vec<String> = values.iter().map(|v| format!(r#"{{"value":{v}}}"#)).collect();
        let request = self
            .http
            .post(format!("{}/topics/pinterest.pin", self.url))
            .header("content-type", "application/vnd.kafka.json.v2+json")
            .body(format!(r#"{{"records":[{}]}}"#, records.join(",")));
        answer(request).await
    }

    async fn put_record(&self, data: &str) -> Reply {
        let request = self
            .http
            .put(format!("{}/streams/streaming-pinterest-geo/record", self.url))
            .header("content-type", "application/json")
            .body(format!(r#"{{"StreamName":"streaming-pinterest-geo","Data":{data},"PartitionKey":"k"}}"#));
        answer(request).await
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let reply = self.http.get(format!("{}{path}", self.url)).send().await.unwrap();
        (reply.status().as_u16(), reply.text().await.unwrap())
    }

    /// Every value stored in `pinterest.pin` and `streaming-pinterest-geo`.
    async fn stored(&self) -> (Vec<String>, Vec<String>) {
        let pins = common::values(&common::read_all(&*self.topics, "pinterest.pin").await);
        let geos = common::values(&common::read_all(&*self.streams, "streaming-pinterest-geo").await);
        (pins, geos)
    }
}

async fn answer(request: reqwest::RequestBuilder) -> Reply {
    let reply = request.send().await.unwrap();
    let retry_after = reply.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (reply.status().as_u16(), retry_after, reply.text().await.unwrap())
}

const KAFKA_REFUSED: &str = r#"{"error_code":50302,"message":"The event log takes no records now; nothing was stored. Retry after the Retry-After seconds."}"#;
const KINESIS_REFUSED: &str = r#"{"__type":"ProvisionedThroughputExceededException","message":"The event log takes no records now; nothing was stored. Retry after the Retry-After seconds."}"#;

fn pin(i: u32) -> String {
    format!(r#"{{"index":{i}}}"#)
}

/// Asks until `produce` is answered 200 (the gate measures the free space every 200 ms).
async fn until_accepted(g: &Gateway, values: &[String]) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = g.produce(values).await;
        if reply.0 == 200 || Instant::now() > deadline {
            return reply;
        }
        assert_eq!(reply.0, 503, "{reply:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_floor_above_the_free_space_refuses_appends_in_each_family_s_shape() {
    let dir = tempfile::tempdir().unwrap();
    let g = gateway(dir.path(), MinFree::Percent(100.0)).await;
    assert_eq!(g.produce(&[pin(1)]).await, (503, Some("1".into()), KAFKA_REFUSED.into()));
    assert_eq!(g.put_record(&pin(2)).await, (503, Some("1".into()), KINESIS_REFUSED.into()));
    assert_eq!(g.stored().await, (vec![], vec![]), "nothing is stored for a refused request");
    assert_eq!(g.get("/healthz").await, (200, "ok".into()));
    let (_, metrics) = g.get("/metrics").await;
    assert!(metrics.contains("pinpipe_gateway_log_accepting{log=\"topics\",reason=\"low_space\"} 0\n"), "{metrics}");
    assert!(metrics.contains("pinpipe_gateway_log_accepting{log=\"streams\",reason=\"low_space\"} 0\n"), "{metrics}");
    assert!(metrics.contains("pinpipe_gateway_requests_total{route=\"topics\",status=\"503\"} 1\n"), "{metrics}");
    let (_, status) = g.get("/status.json").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let why = status["intake"]["topics"].as_str().unwrap();
    assert!(why.contains("under the floor of") && why.contains("(min_free)"), "{why}");
    // Reads and admin calls still work.
    assert_eq!(g.get("/topics/pinterest.pin/partitions/0/offsets").await.0, 200);
}

#[tokio::test]
async fn a_disk_filled_under_the_floor_refuses_until_space_is_freed() {
    let disk = Tmpfs::mount(64);
    let g = gateway(disk.path(), MinFree::Bytes(16 << 20)).await;
    assert_eq!(g.produce(&[pin(0), pin(1)]).await.0, 200);
    assert_eq!(g.put_record(&pin(0)).await.0, 200);
    let (_, metrics) = g.get("/metrics").await;
    assert!(metrics.contains("pinpipe_gateway_log_accepting{log=\"topics\",reason=\"\"} 1\n"), "{metrics}");

    let filler = disk.fill(8 << 20);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(g.produce(&[pin(2)]).await, (503, Some("1".into()), KAFKA_REFUSED.into()));
    assert_eq!(g.put_record(&pin(1)).await, (503, Some("1".into()), KINESIS_REFUSED.into()));
    assert_eq!(g.get("/healthz").await, (200, "ok".into()));
    let (_, status) = g.get("/status.json").await;
    assert!(status.contains("under the floor of 16777216 (min_free)"), "{status}");

    std::fs::remove_file(filler).unwrap();
    let reply = until_accepted(&g, &[pin(3)]).await;
    assert_eq!(reply.0, 200, "{reply:?}");
    assert_eq!(g.put_record(&pin(4)).await.0, 200);
    // Exactly what was acknowledged, nothing of what was refused.
    assert_eq!(g.stored().await, (vec![pin(0), pin(1), pin(3)], vec![pin(0), pin(4)]));
    let (_, metrics) = g.get("/metrics").await;
    assert!(metrics.contains("pinpipe_gateway_log_accepting{log=\"topics\",reason=\"\"} 1\n"), "{metrics}");
}

#[tokio::test]
async fn a_full_disk_refuses_what_it_cannot_store_and_takes_it_once_freed() {
    let disk = Tmpfs::mount(32);
    let g = gateway(disk.path(), MinFree::Bytes(0)).await;
    assert_eq!(g.produce(&[pin(0)]).await.0, 200);
    // Eight records of 500 kB: more than the disk has left, so the commit cannot be written.
    let big: Vec<String> = (1..=8).map(|i| format!(r#"{{"index":{i},"pad":"{}"}}"#, "x".repeat(500_000))).collect();
    let filler = disk.fill(1 << 20);
    assert_eq!(g.produce(&big).await, (503, Some("1".into()), KAFKA_REFUSED.into()));
    assert_eq!(g.stored().await.0, [pin(0)], "nothing of a refused request is stored");
    assert_eq!(g.get("/healthz").await, (200, "ok".into()));
    let (_, metrics) = g.get("/metrics").await;
    assert!(metrics.contains("pinpipe_gateway_log_accepting{log=\"topics\",reason=\"disk_full\"} 0\n"), "{metrics}");

    std::fs::remove_file(filler).unwrap();
    let reply = until_accepted(&g, &big).await;
    assert_eq!(reply.0, 200, "{reply:?}");
    let expected: Vec<String> = std::iter::once(pin(0)).chain(big.iter().cloned()).collect();
    assert_eq!(g.stored().await.0, expected);
    let (_, metrics) = g.get("/metrics").await;
    assert!(metrics.contains("pinpipe_gateway_log_accepting{log=\"topics\",reason=\"\"} 1\n"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_waits_as_retry_after_says_and_loses_nothing() {
    let disk = Tmpfs::mount(64);
    let data = disk.path();
    let seeded = std::process::Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(["seed", "--rows", "50", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(seeded.status.success(), "{}", String::from_utf8_lossy(&seeded.stderr));
    let g = gateway(data, MinFree::Bytes(16 << 20)).await;
    let filler = disk.fill(8 << 20);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let emulator = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(["emulate", "--mode", "batch", "--count", "5", "--rate", "0", "--api", &g.url, "--data"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .output();
    let emulator = tokio::spawn(emulator);
    // Refused for a while: longer than the emulator's 8 attempts with backoff would last alone.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(g.stored().await.0.len(), 0, "nothing is taken while the disk is under its floor");
    std::fs::remove_file(filler).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), emulator).await.unwrap().unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("sent 15 records, failed 0,"), "{stdout}");
    let topics = ["pinterest.pin", "pinterest.geo", "pinterest.user"];
    for topic in topics {
        assert_eq!(common::read_all(&*g.topics, topic).await.len(), 5, "{topic}");
    }
}
