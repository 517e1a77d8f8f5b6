//! Helpers shared by the integration tests: temporary pipelines, a gateway on a free port,
//! whole-log reads, whole-table and whole-bucket snapshots, S3 buckets and folder copies.
#![allow(dead_code)]

pub mod chromium;
pub mod tmpfs;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt};

use pinpipe::clean::Table;
use pinpipe::eventlog::{self, EventLog, Namespace, Record};
use pinpipe::gateway;
use pinpipe::source::generator;
use tokio_util::sync::CancellationToken;

/// The embedded topics and streams logs under `dir`, with the six default logs of `id`.
pub async fn open_logs(dir: &Path, id: &str) -> (Arc<dyn EventLog>, Arc<dyn EventLog>) {
    let url = format!("embedded://{}", dir.join("log").display());
    let topics = eventlog::open(&url.parse().unwrap(), Namespace::Topics).await.expect("open topics log");
    let streams = eventlog::open(&url.parse().unwrap(), Namespace::Streams).await.expect("open streams log");
    eventlog::ensure_defaults(&*topics, id).await.expect("default topics");
    eventlog::ensure_defaults(&*streams, id).await.expect("default streams");
    (topics, streams)
}

/// A gateway's router over fresh embedded logs holding the six default logs of `pinterest`, for
/// requests sent in-process (`tower::ServiceExt::oneshot`) or through a socket.
pub struct GatewayEnv {
    pub _dir: tempfile::TempDir,
    pub state: gateway::AppState,
    pub app: axum::Router,
    pub topics: Arc<dyn EventLog>,
    pub streams: Arc<dyn EventLog>,
}

/// A [`GatewayEnv`] with `config`.
pub async fn gateway_env(config: gateway::GatewayConfig) -> GatewayEnv {
    let dir = tempfile::tempdir().unwrap();
    let (topics, streams) = open_logs(dir.path(), "pinterest").await;
    let state = gateway::AppState::new(config, topics.clone(), streams.clone()).unwrap();
    GatewayEnv { _dir: dir, app: gateway::app(state.clone()), state, topics, streams }
}

/// A gateway over `topics`/`streams` on a free loopback port; cancel the token to stop it.
pub async fn spawn_gateway(
    config: gateway::GatewayConfig,
    topics: Arc<dyn EventLog>,
    streams: Arc<dyn EventLog>,
) -> (SocketAddr, CancellationToken) {
    let state = gateway::AppState::new(config, topics, streams).expect("gateway state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let stop = CancellationToken::new();
    tokio::spawn(gateway::serve(listener, state, stop.clone()));
    (addr, stop)
}

/// Every record of every partition of `name`, partition by partition in offset order.
pub async fn read_all(log: &dyn EventLog, name: &str) -> Vec<Record> {
    let info = log.describe(name).await.expect("describe");
    let mut all = Vec::new();
    for p in info.partitions {
        let mut from = p.start;
        loop {
            let batch = log.read(name, p.partition, from, 10_000).await.expect("read");
            let Some(last) = batch.last() else { break };
            from = last.position.offset + 1;
            all.extend(batch);
        }
    }
    all
}

/// The values of `records` as UTF-8 strings.
pub fn values(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| String::from_utf8(r.value.clone()).expect("utf-8 value")).collect()
}

/// Copies the folder `from` into `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The rows of `batches` as text, one string per row (`a | b | NULL`), sorted: a table compared
/// as a multiset.
pub fn table_rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<_> =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter")).collect();
        for row in 0..batch.num_rows() {
            out.push(formatters.iter().map(|f| f.value(row).to_string()).collect::<Vec<_>>().join(" | "));
        }
    }
    out.sort();
    out
}

/// An AWS setting from the environment, `test` credentials and `us-east-1` by default.
pub fn aws_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| if name == "AWS_REGION" { "us-east-1" } else { "test" }.into())
}

/// A new bucket named `<prefix>-<uuid>` on the S3 server at `endpoint`, and a client for it.
pub async fn new_bucket(endpoint: &str, prefix: &str) -> (String, Arc<dyn ObjectStore>) {
    let bucket = format!("{prefix}-{}", uuid::Uuid::new_v4());
    let created = reqwest::Client::new()
        .put(format!("{}/{bucket}", endpoint.trim_end_matches('/')))
        .send()
        .await
        .expect("the S3 endpoint is reachable");
    assert!(created.status().is_success(), "create bucket: {}", created.status());
    let store = AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_access_key_id(aws_var("AWS_ACCESS_KEY_ID"))
        .with_secret_access_key(aws_var("AWS_SECRET_ACCESS_KEY"))
        .with_region(aws_var("AWS_REGION"))
        .build()
        .expect("S3 client");
    (bucket, Arc::new(store))
}

/// Every object in `store` under `prefix`: key relative to the prefix → bytes.
pub async fn objects(store: &dyn ObjectStore, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let root = object_store::path::Path::from(prefix);
    let metas: Vec<_> = store.list(Some(&root)).try_collect().await.expect("list");
    let mut out = BTreeMap::new();
    for meta in metas {
        let body = store.get(&meta.location).await.expect("get").bytes().await.expect("body");
        let key = meta.location.as_ref().strip_prefix(prefix).unwrap_or(meta.location.as_ref());
        out.insert(key.trim_start_matches('/').to_string(), body.to_vec());
    }
    out
}

/// The S3-compatible endpoint under test (`PINPIPE_TEST_S3_ENDPOINT`), or `None`: the test is
/// then skipped, saying so.
pub fn s3_endpoint() -> Option<String> {
    match std::env::var("PINPIPE_TEST_S3_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("PINPIPE_TEST_S3_ENDPOINT is not set: skipping the S3 test");
            None
        }
    }
}

/// JSON records of `n` generated posts from row `first` on (the generator's 500 rows of seed 7,
/// cycled), per table.
pub fn posts(first: u64, n: u64) -> BTreeMap<Table, Vec<String>> {
    let g = generator::Generator::new(500, 7);
    let mut out: BTreeMap<Table, Vec<String>> = Table::ALL.iter().map(|&t| (t, Vec::new())).collect();
    for i in first..first + n {
        let post = g.post(i % 500);
        out.get_mut(&Table::Pin).unwrap().push(serde_json::to_string(&post.pin).unwrap());
        out.get_mut(&Table::Geo).unwrap().push(serde_json::to_string(&post.geo).unwrap());
        out.get_mut(&Table::User).unwrap().push(serde_json::to_string(&post.user).unwrap());
    }
    out
}

/// What the stream job's tables of pipeline `id` should hold after it read `records` (one
/// partition per stream, so an offset is an index): table name → sorted rows of the cleaned
/// records, and of the rejects.
pub fn expected_stream_tables(id: &str, records: &BTreeMap<Table, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut rejects = Vec::new();
    for (&table, values) in records {
        let slices: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        let decoded = pinpipe::clean::decode(table, &slices).expect("decode");
        let cleaned = pinpipe::clean::clean(table, &decoded.batch).expect("clean");
        out.insert(format!("{id}_{}_table", table.name()), table_rows(&[cleaned]));
        for r in decoded.rejects {
            rejects.push(format!("streaming-{id}-{} | 0 | {} | {} | {}", table.name(), r.index, r.raw, r.reason));
        }
    }
    rejects.sort();
    out.insert(format!("{id}_rejects_table"), rejects);
    out
}

/// What the Delta tables `names` under `base` (a URL) hold now, as sorted rows; a table not
/// there yet reads as empty.
pub async fn delta_tables(
    base: &str,
    options: &std::collections::HashMap<String, String>,
    names: &[String],
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for name in names {
        let url = url::Url::parse(&format!("{base}/{name}")).expect("table url");
        let Ok(table) = deltalake::open_table_with_storage_options(url, options.clone()).await else {
            out.insert(name.clone(), Vec::new());
            continue;
        };
        let ctx = datafusion::prelude::SessionContext::new();
        table.update_datafusion_session(&ctx.state()).expect("register store");
        let provider = table.table_provider().await.expect("table provider");
        let batches = ctx.read_table(provider).expect("read table").collect().await.expect("collect");
        out.insert(name.clone(), table_rows(&batches));
    }
    out
}

/// A pipeline folder with the embedded streams log (the default streams of `id` created) and a
/// local lake, laid out as `pinpipe --data DIR` expects.
pub struct StreamPipeline {
    pub dir: tempfile::TempDir,
    pub streams: Arc<dyn EventLog>,
    pub lake: pinpipe::lake::Lake,
}

/// A fresh [`StreamPipeline`] for pipeline `id`.
pub async fn stream_pipeline(id: &str) -> StreamPipeline {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("embedded://{}", dir.path().join("log").display());
    let streams = eventlog::open(&url.parse().unwrap(), Namespace::Streams).await.expect("open streams");
    eventlog::ensure_defaults(&*streams, id).await.expect("default streams");
    let lake = pinpipe::lake::Lake::open(&format!("file://{}", dir.path().join("lake").display()).parse().unwrap())
        .expect("lake");
    StreamPipeline { dir, streams, lake }
}

/// Appends `records` to the streams of pipeline `id`, `streaming-<id>-<table>`.
pub async fn append_streams(log: &dyn EventLog, id: &str, records: &BTreeMap<Table, Vec<String>>) {
    for (&table, values) in records {
        let batch = values.iter().map(|v| eventlog::NewRecord::value(v.as_bytes())).collect();
        log.append(&format!("streaming-{id}-{}", table.name()), batch).await.expect("append");
    }
}

/// Runs `script` with the Python named by `PINPIPE_TEST_PYTHON` (which has the `deltalake`
/// package), or `None` when it is unset.
pub fn python(script: &str, args: &[String]) -> Option<String> {
    let Ok(python) = std::env::var("PINPIPE_TEST_PYTHON") else {
        eprintln!("PINPIPE_TEST_PYTHON is not set: skipping the Python deltalake reader check");
        return None;
    };
    let out = std::process::Command::new(&python).arg("-c").arg(script).args(args).output().expect("run python");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8(out.stdout).expect("utf-8"))
}

/// `pinpipe stream --data <dir> <extra>` as a child process (output discarded), on the embedded
/// defaults of `dir` whatever the environment says.
pub fn spawn_stream(dir: &Path, extra: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(["stream", "--data"])
        .arg(dir)
        .args(extra)
        .env_remove("PINPIPE_LAKE")
        .env_remove("PINPIPE_STREAMS")
        .env_remove("PINPIPE_LOG")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn pinpipe stream")
}
