//! The gateway's live status page (`/`, `/status.json`, `/report.html`): log ends, records
//! appended, sink lag (from the lake's files), stream lag (from the Delta tables), rejected
//! requests and the last batch run — as JSON, and filled into the page by its script in a real
//! browser without a console message.

mod common;

use std::sync::Arc;
use std::time::Duration;

use pinpipe::batch::{self, BatchConfig};
use pinpipe::gateway::{self, GatewayConfig, status};
use pinpipe::lake::Lake;
use pinpipe::sink::{self, SinkConfig};
use pinpipe::source::Source;
use pinpipe::stream::{self, StreamConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const KAFKA_JSON: &str = "application/vnd.kafka.json.v2+json";

struct Pipeline {
    _dir: tempfile::TempDir,
    base: String,
    results: std::path::PathBuf,
    stop: CancellationToken,
}

/// A gateway with a status page over a pipeline in this state: topics pin/geo/user hold 7/5/5
/// records of which the sink wrote 5 each; stream pin holds 7 of which the Delta table holds 4;
/// one request was refused; one batch run wrote its results.
async fn pipeline() -> Pipeline {
    let dir = tempfile::tempdir().unwrap();
    let source = Source::connect(&format!("sqlite://{}", dir.path().join("source.db").display()).parse().unwrap())
        .await
        .unwrap();
    source.create_tables().await.unwrap();
    source.seed(20, 42, &|_| {}).await.unwrap();
    let reader = source.reader().await.unwrap();
    let mut posts = Vec::new();
    for i in 0..7 {
        posts.push(reader.post_at(i).await.unwrap());
    }
    let (topics, streams) = common::open_logs(dir.path(), "pinterest").await;
    let lake = Lake::open(&format!("file://{}", dir.path().join("lake").display()).parse().unwrap()).unwrap();
    let results = dir.path().join("results");
    let sources = status::Sources::new("pinterest", Some(lake.clone()), Some(results.clone()));
    let state =
        gateway::AppState::with_status(GatewayConfig::default(), topics.clone(), streams.clone(), sources).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(gateway::serve(listener, state, stop.clone()));

    let http = reqwest::Client::new();
    let produce = |topic: &str, values: Vec<Value>| {
        let records: Vec<Value> = values.into_iter().map(|v| json!({ "value": v })).collect();
        http.post(format!("{base}/topics/{topic}"))
            .header("content-type", KAFKA_JSON)
            .body(json!({ "records": records }).to_string())
            .send()
    };
    let put = |stream: &str, values: Vec<Value>| {
        let records: Vec<Value> = values.into_iter().map(|v| json!({ "data": v, "partition-key": "k" })).collect();
        http.put(format!("{base}/streams/{stream}/records"))
            .json(&json!({ "StreamName": stream, "records": records }))
            .send()
    };
    let pins: Vec<Value> = posts.iter().map(|p| serde_json::to_value(&p.pin).unwrap()).collect();
    let geos: Vec<Value> = posts.iter().map(|p| serde_json::to_value(&p.geo).unwrap()).collect();
    let users: Vec<Value> = posts.iter().map(|p| serde_json::to_value(&p.user).unwrap()).collect();
    assert_eq!(produce("pinterest.pin", pins[..5].to_vec()).await.unwrap().status(), 200);
    assert_eq!(produce("pinterest.geo", geos[..5].to_vec()).await.unwrap().status(), 200);
    assert_eq!(produce("pinterest.user", users[..5].to_vec()).await.unwrap().status(), 200);
    assert_eq!(put("streaming-pinterest-pin", pins[..4].to_vec()).await.unwrap().status(), 200);
    assert_eq!(produce("no-such-topic", pins[..1].to_vec()).await.unwrap().status(), 404);

    let sink_cfg = SinkConfig {
        id: "pinterest".into(),
        flush_size: 2,
        flush_interval: Duration::from_secs(10),
        drain: true,
        worker: pinpipe::settings::Worker::ALL,
        on_gap: Default::default(),
    };
    sink::run(&sink_cfg, topics.clone(), &lake, CancellationToken::new()).await.unwrap();
    let stream_cfg = StreamConfig {
        id: "pinterest".into(),
        max_batch_records: 100,
        max_latency: Duration::from_millis(100),
        drain: true,
        checkpoint_every: 100,
        lake_timeout: None,
        on_gap: Default::default(),
        upkeep: Default::default(),
        worker: pinpipe::settings::Worker::ALL,
    };
    stream::run(&stream_cfg, Arc::clone(&streams), &lake, CancellationToken::new()).await.unwrap();
    batch::run(&BatchConfig::new("pinterest", results.clone()), &lake).await.unwrap();

    assert_eq!(produce("pinterest.pin", pins[5..].to_vec()).await.unwrap().status(), 200);
    assert_eq!(put("streaming-pinterest-pin", pins[4..].to_vec()).await.unwrap().status(), 200);
    Pipeline { _dir: dir, base, results, stop }
}

/// (kind, name, appended, end, reader, lag) of every log in a status.
fn log_rows(status: &Value) -> Vec<Value> {
    status["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| json!([l["kind"], l["name"], l["appended"], l["end"], l["reader"], l["lag"]]))
        .collect()
}

fn expected_rows() -> Vec<Value> {
    vec![
        json!(["topic", "pinterest.geo", 5, 5, "sink", 0]),
        json!(["topic", "pinterest.pin", 7, 7, "sink", 2]),
        json!(["topic", "pinterest.user", 5, 5, "sink", 0]),
        json!(["stream", "streaming-pinterest-geo", 0, 0, "stream job", 0]),
        json!(["stream", "streaming-pinterest-pin", 7, 7, "stream job", 3]),
        json!(["stream", "streaming-pinterest-user", 0, 0, "stream job", 0]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_gives_ends_lags_rejects_and_the_last_batch_run() {
    let p = pipeline().await;
    let status: Value = reqwest::get(format!("{}/status.json", p.base)).await.unwrap().json().await.unwrap();
    let mut rows = log_rows(&status);
    rows.sort_by_key(|r| (r[0].as_str().unwrap() == "stream", r[1].as_str().unwrap().to_string()));
    assert_eq!(rows, expected_rows(), "{status:#}");
    assert_eq!(status["rejected_requests"], json!({ "topics": 1, "streams": 0, "admin": 0 }));
    assert_eq!(status["problems"], json!([]));
    assert_eq!(status["id"], json!("pinterest"));
    let meta = pinpipe::report::read_meta(&p.results).unwrap();
    assert_eq!(status["batch"], serde_json::to_value(&meta).unwrap());
    assert_eq!(status["batch"]["tables"][0]["records"], json!(5));

    let page = reqwest::get(format!("{}/report.html", p.base)).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.text().await.unwrap(), std::fs::read_to_string(p.results.join("report.html")).unwrap());
    let index = reqwest::get(format!("{}/", p.base)).await.unwrap();
    assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
    p.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_fills_in_the_values_in_a_browser_without_console_messages() {
    let Some(chromium) = common::chromium::from_env() else { return };
    let p = pipeline().await;
    let url = format!("{}/", p.base);
    let page = tokio::task::spawn_blocking(move || common::chromium::load(&chromium, &url, 5000)).await.unwrap();
    assert!(page.console.is_empty(), "console messages:\n{}", page.console.join("\n"));
    assert!(page.dom.contains("<body data-state=\"live\">"), "{}", page.dom);
    for row in expected_rows() {
        let name = row[1].as_str().unwrap();
        let start =
            page.dom.find(&format!("<tr data-log=\"{name}\">")).unwrap_or_else(|| panic!("{name}: {}", page.dom));
        let tr = &page.dom[start..start + page.dom[start..].find("</tr>").unwrap()];
        for (field, value) in [("appended", &row[2]), ("end", &row[3]), ("lag", &row[5])] {
            let want = format!("<td class=\"num\" data-field=\"{field}\">{value}</td>");
            assert!(tr.contains(&want), "{name}: {want} in {tr}");
        }
        // The second poll turns the counters into a rate (nothing is appended meanwhile).
        assert!(tr.contains("<td class=\"num\" data-field=\"rate\">0.0</td>"), "{tr}");
    }
    assert!(page.dom.contains("<dd data-field=\"rejected-topics\">1</dd>"), "{}", page.dom);
    let meta = pinpipe::report::read_meta(&p.results).unwrap();
    assert!(page.dom.contains(&format!("<dd data-field=\"batch-finished\">{}</dd>", meta.finished_at)), "{}", page.dom);
    assert!(page.dom.contains("<dd data-field=\"batch-read\">15</dd>"), "{}", page.dom);
    p.stop.cancel();
}
