//! The stream job (SPEC §8): streams → cleaning → Delta tables, exactly once across crashes.
//!
//! Records go into the embedded streams log, `stream::run` (or the `pinpipe stream` binary)
//! commits them, and the Delta tables are read back independently — through deltalake +
//! DataFusion, and through the Python `deltalake` package when `PINPIPE_TEST_PYTHON` names a
//! Python that has it — and compared, as whole tables, with the shared cleaning code applied to
//! the same records.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use pinpipe::clean::{self, Table};
use pinpipe::eventlog::{self, EventLog, Namespace, NewRecord};
use pinpipe::lake::Lake;
use pinpipe::settings::Worker;
use pinpipe::stream::{self, StreamConfig, StreamReport};
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

const ID: &str = "pinterest";

use common::StreamPipeline as Pipeline;

async fn pipeline() -> Pipeline {
    common::stream_pipeline(ID).await
}

fn stream_name(table: Table) -> String {
    format!("streaming-{ID}-{}", table.name())
}

fn table_name(table: Table) -> String {
    format!("{ID}_{}_table", table.name())
}

async fn append_all(log: &dyn EventLog, records: &BTreeMap<Table, Vec<String>>) {
    common::append_streams(log, ID, records).await
}

fn drain_config() -> StreamConfig {
    StreamConfig {
        id: ID.into(),
        max_batch_records: 70,
        max_latency: Duration::from_secs(1),
        drain: true,
        checkpoint_every: 3,
        lake_timeout: None,
        on_gap: Default::default(),
        upkeep: Default::default(),
        worker: Worker::ALL,
    }
}

async fn drain(p: &Pipeline) -> StreamReport {
    stream::run(&drain_config(), p.streams.clone(), &p.lake, CancellationToken::new()).await.expect("stream run")
}

/// What the shared cleaning makes of `values`: the cleaned rows and the rejects.
fn expected(table: Table, values: &[String]) -> (Vec<String>, Vec<clean::Reject>) {
    let slices: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    let decoded = clean::decode(table, &slices).expect("decode");
    let cleaned = clean::clean(table, &decoded.batch).expect("clean");
    (common::table_rows(&[cleaned]), decoded.rejects)
}

/// Where the Delta tables are, and what opening them takes: a reader independent of the job.
#[derive(Clone)]
struct Tables {
    /// `<lake>/delta`.
    base: String,
    options: HashMap<String, String>,
}

impl From<&Lake> for Tables {
    fn from(lake: &Lake) -> Tables {
        Tables { base: lake.url_of("delta"), options: lake.storage_options().clone() }
    }
}

async fn open_delta(at: impl Into<Tables>, name: &str) -> deltalake::DeltaTable {
    let at = at.into();
    let url = url::Url::parse(&format!("{}/{name}", at.base)).expect("table url");
    deltalake::open_table_with_storage_options(url, at.options).await.expect("open Delta table")
}

/// The whole Delta table, read through deltalake's DataFusion provider.
async fn read_delta(at: impl Into<Tables>, name: &str) -> Vec<RecordBatch> {
    let table = open_delta(at, name).await;
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).expect("register store");
    let provider = table.table_provider().await.expect("table provider");
    ctx.read_table(provider).expect("read table").collect().await.expect("collect")
}

/// The Delta schema of the table (what every Delta reader sees).
async fn delta_schema(lake: &Lake, name: &str) -> StructType {
    let table = open_delta(lake, name).await;
    table.snapshot().expect("snapshot").schema().as_ref().clone()
}

async fn assert_tables_hold(lake: &Lake, records: &BTreeMap<Table, Vec<String>>) {
    assert_tables_at_hold(lake.into(), records).await
}

async fn assert_tables_at_hold(lake: Tables, records: &BTreeMap<Table, Vec<String>>) {
    let lake = &lake;
    let mut all_rejects = Vec::new();
    for (&table, values) in records {
        let (want, rejects) = expected(table, values);
        let got = common::table_rows(&read_delta(lake.clone(), &table_name(table)).await);
        assert_eq!(got.len(), want.len(), "{} row count", table_name(table));
        assert_eq!(got, want, "{} holds the cleaned records, each once", table_name(table));
        for r in rejects {
            // Every test appends to a fresh single-partition stream, so the offset is the index.
            all_rejects.push(format!("{} | 0 | {} | {} | {}", stream_name(table), r.index, r.raw, r.reason));
        }
    }
    all_rejects.sort();
    let got = common::table_rows(&read_delta(lake.clone(), &format!("{ID}_rejects_table")).await);
    assert_eq!(got, all_rejects, "the rejects table holds every bad record once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_tables_equal_the_cleaned_records_as_whole_tables() {
    let p = pipeline().await;
    let records = common::posts(0, 300);
    append_all(&*p.streams, &records).await;
    let report = drain(&p).await;
    assert_tables_hold(&p.lake, &records).await;
    for t in &report.tables {
        assert_eq!(t.committed, 300, "{report}");
        assert_eq!(t.rejected, 0, "{report}");
        // 300 records in micro-batches of at most 70 records.
        assert_eq!(t.commits, 5, "{report}");
    }
    for table in Table::ALL {
        let want: StructType = clean::cleaned_schema(table).as_ref().try_into_kernel().expect("kernel schema");
        assert_eq!(delta_schema(&p.lake, &table_name(table)).await, want, "{} schema", table_name(table));
    }
    let want: StructType = stream::rejects_schema().as_ref().try_into_kernel().expect("kernel schema");
    assert_eq!(delta_schema(&p.lake, &format!("{ID}_rejects_table")).await, want);
    // checkpoint_every = 3: the log of each table has a checkpoint.
    let log = p.dir.path().join("lake/delta").join(table_name(Table::Pin)).join("_delta_log");
    assert!(log.join("_last_checkpoint").exists(), "no checkpoint in {}", log.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_land_in_the_rejects_table_and_the_job_keeps_going() {
    let p = pipeline().await;
    let mut records = common::posts(0, 40);
    let good_geo = records[&Table::Geo][0].clone();
    let bad_datetime = good_geo.replacen("\"timestamp\":", "\"timestamp\":\"not a date\",\"x\":", 1);
    records.get_mut(&Table::Pin).unwrap().insert(5, "this is not JSON".into());
    records.get_mut(&Table::Pin).unwrap().push(r#"{"unique_id":"no index here","title":"t"}"#.into());
    records.get_mut(&Table::Pin).unwrap().push(r#"{"index":3,"title":"a","index":4}"#.into());
    records.get_mut(&Table::Geo).unwrap().insert(17, bad_datetime);
    records
        .get_mut(&Table::User)
        .unwrap()
        .insert(0, r#"{"first_name":"No","last_name":"Ind","age":30,"date_joined":"2016-01-01 00:00:00"}"#.into());
    records
        .get_mut(&Table::User)
        .unwrap()
        .push(r#"{"ind":7,"first_name":"A","last_name":"B","age":30,"date_joined":"yesterday"}"#.into());
    append_all(&*p.streams, &records).await;
    let report = drain(&p).await;
    assert_tables_hold(&p.lake, &records).await;
    let rejected: Vec<u64> = report.tables.iter().map(|t| t.rejected).collect();
    assert_eq!(rejected, vec![3, 1, 2], "{report}");
    // The positions are right: the bad pin sits at offset 5 with a reason.
    let rejects = common::table_rows(&read_delta(&p.lake, &format!("{ID}_rejects_table")).await);
    assert!(
        rejects.iter().any(|r| r.starts_with(&format!("{} | 0 | 5 | this is not JSON | ", stream_name(Table::Pin)))),
        "{rejects:#?}"
    );
    // A known field given twice (SPEC §6).
    let twice = format!(
        "{} | 0 | 42 | {{\"index\":3,\"title\":\"a\",\"index\":4}} | duplicate field `index`",
        stream_name(Table::Pin)
    );
    assert!(rejects.contains(&twice), "{rejects:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_drain_adds_only_the_new_records() {
    let p = pipeline().await;
    let first = common::posts(0, 120);
    append_all(&*p.streams, &first).await;
    drain(&p).await;
    let again = drain(&p).await;
    assert!(again.tables.iter().all(|t| t.committed == 0 && t.commits == 0), "{again}");
    let second = common::posts(120, 90);
    append_all(&*p.streams, &second).await;
    let report = drain(&p).await;
    assert!(report.tables.iter().all(|t| t.committed == 90), "{report}");
    let mut all = first.clone();
    for (t, v) in second {
        all.get_mut(&t).unwrap().extend(v);
    }
    assert_tables_hold(&p.lake, &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_following_job_commits_within_its_latency_and_stops_on_cancel() {
    let p = pipeline().await;
    let cfg = StreamConfig { drain: false, max_latency: Duration::from_millis(200), ..drain_config() };
    let stop = CancellationToken::new();
    let job = tokio::spawn({
        let (streams, lake, stop) = (p.streams.clone(), p.lake.clone(), stop.clone());
        async move { stream::run(&cfg, streams, &lake, stop).await }
    });
    let records = common::posts(0, 10);
    append_all(&*p.streams, &records).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let url = url::Url::parse(&p.lake.url_of(&format!("delta/{}", table_name(Table::User)))).expect("url");
        // The job creates the table (version 0) then commits the records (version 1).
        if let Ok(table) = deltalake::open_table(url).await
            && table.version().unwrap_or(0) >= 1
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing committed within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let report = tokio::time::timeout(Duration::from_secs(20), job).await.expect("stops").expect("join").expect("run");
    assert!(report.latency_ms_max < 5_000, "{report}");
    assert_tables_hold(&p.lake, &records).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_job_at_random_moments_loses_and_doubles_nothing() {
    let p = pipeline().await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
    let mut appended: BTreeMap<Table, Vec<String>> = Table::ALL.iter().map(|&t| (t, Vec::new())).collect();
    let mut next = 0;
    for trial in 0..6 {
        let mut child = common::spawn_stream(p.dir.path(), &["--max-latency", "30ms", "--max-batch", "40"]);
        let until = tokio::time::Instant::now() + Duration::from_millis(rng.random_range(300..2_500));
        while tokio::time::Instant::now() < until {
            let n = rng.random_range(1..30);
            let mut batch = common::posts(next, n);
            next += n;
            if rng.random_bool(0.3) {
                // Some bad records too, so crashes also fall between the rejects and data commits.
                batch.get_mut(&Table::Pin).unwrap().push(format!("bad pin {trial} {next}"));
                batch.get_mut(&Table::Geo).unwrap().push(format!("{{\"ind\":{next},\"timestamp\":\"never\"}}"));
            }
            append_all(&*p.streams, &batch).await;
            for (t, v) in batch {
                appended.get_mut(&t).unwrap().extend(v);
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..40))).await;
        }
        child.kill().expect("SIGKILL the stream job");
        child.wait().expect("reap");
    }
    let status = common::spawn_stream(p.dir.path(), &["--drain"]).wait().expect("run drain");
    assert!(status.success(), "pinpipe stream --drain failed: {status}");
    assert_tables_hold(&p.lake, &appended).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_deltalake_reads_the_stream_tables() {
    if std::env::var("PINPIPE_TEST_PYTHON").is_err() {
        eprintln!("PINPIPE_TEST_PYTHON is not set: skipped");
        return;
    }
    let p = pipeline().await;
    let mut records = common::posts(0, 60);
    records.get_mut(&Table::Pin).unwrap().push("garbage".into());
    append_all(&*p.streams, &records).await;
    drain(&p).await;
    let script = r#"
import json, os, sys, deltalake
out = {}
for path in sys.argv[1:]:
    t = deltalake.DeltaTable(path).to_pyarrow_table()
    cols = {}
    for name in ("ind", "offset", "reason"):
        if name in t.column_names:
            cols[name] = sorted(v for v in t.column(name).to_pylist())
    out[path] = {"rows": t.num_rows, "schema": [[f.name, str(f.type)] for f in t.schema], "cols": cols}
print(json.dumps(out))
# Skip the interpreter's normal exit, which pyarrow's thread pools can abort (apache/arrow#34314).
sys.stdout.flush()
os._exit(0)
"#;
    let names: Vec<String> = Table::ALL.iter().map(|&t| table_name(t)).chain([format!("{ID}_rejects_table")]).collect();
    let paths: Vec<String> =
        names.iter().map(|n| p.dir.path().join("lake/delta").join(n).display().to_string()).collect();
    let Some(out) = common::python(script, &paths) else { return };
    let got: serde_json::Value = serde_json::from_str(out.trim()).expect("python output is JSON");
    for (table, path) in Table::ALL.iter().zip(&paths) {
        let t = &got[path];
        let slices: Vec<&[u8]> = records[table].iter().map(|v| v.as_bytes()).collect();
        let decoded = clean::decode(*table, &slices).expect("decode");
        let cleaned = clean::clean(*table, &decoded.batch).expect("clean");
        assert_eq!(t["rows"], cleaned.num_rows(), "{path}");
        let ind = cleaned.column_by_name("ind").expect("ind column");
        let ind = ind.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().expect("ind is bigint");
        let mut want: Vec<i64> = ind.iter().flatten().collect();
        want.sort();
        assert_eq!(t["cols"]["ind"], serde_json::json!(want), "{path} ind values");
        let schema: Vec<(String, String)> = t["schema"]
            .as_array()
            .expect("schema")
            .iter()
            .map(|f| (f[0].as_str().unwrap().to_string(), f[1].as_str().unwrap().to_string()))
            .collect();
        let want_names: Vec<String> = clean::cleaned_schema(*table).fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(schema.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), want_names, "{path} columns");
        for (name, ty) in &schema {
            let ok = match name.as_str() {
                "ind" | "follower_count" => ty == "int64",
                "age" => ty == "int32",
                "coordinates" => ty.contains("list") && ty.contains("double"),
                "timestamp" | "date_joined" => ty == "timestamp[us]",
                _ => ty.contains("string"),
            };
            assert!(ok, "{path}: column {name} has type {ty}");
        }
    }
    let rejects = &got[&paths[3]];
    assert_eq!(rejects["rows"], 1);
    assert_eq!(rejects["cols"]["offset"], serde_json::json!([60]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_rejects_and_the_data_commit_loses_and_doubles_nothing() {
    let p = pipeline().await;
    let mut records = common::posts(0, 30);
    records.get_mut(&Table::Pin).unwrap().insert(3, "not json at all".into());
    records.get_mut(&Table::Pin).unwrap().push("{\"broken".into());
    append_all(&*p.streams, &records).await;
    let cfg = StreamConfig { max_batch_records: 1_000, checkpoint_every: 1_000, ..drain_config() };
    let first = stream::run(&cfg, p.streams.clone(), &p.lake, CancellationToken::new()).await.expect("run");
    assert_eq!(first.rejects_commits, 1, "{first}");
    // Undo the pin table's data commit (version 1: version 0 created the table), as if the job
    // died after the rejects commit and before this one: the rejects table is now ahead.
    let commit =
        p.dir.path().join("lake/delta").join(table_name(Table::Pin)).join("_delta_log/00000000000000000001.json");
    std::fs::remove_file(&commit).expect("remove the data commit");
    let second = stream::run(&cfg, p.streams.clone(), &p.lake, CancellationToken::new()).await.expect("rerun");
    assert_eq!(second.rejects_commits, 0, "the rejects were already stored: {second}");
    assert_eq!(second.tables[0].committed, 30, "{second}");
    assert_eq!(second.tables[1].committed, 0, "{second}");
    assert_tables_hold(&p.lake, &records).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_commits_to_delta_tables_on_s3() {
    let Ok(endpoint) = std::env::var("PINPIPE_TEST_S3_ENDPOINT") else {
        eprintln!("PINPIPE_TEST_S3_ENDPOINT is not set: skipping the S3 lake test");
        return;
    };
    let bucket = format!("pinpipe-stream-{}", uuid::Uuid::new_v4().simple());
    let created =
        reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.expect("S3 endpoint reachable");
    assert!(created.status().is_success(), "create bucket: {}", created.status());
    let p = pipeline().await;
    let mut records = common::posts(0, 50);
    records.get_mut(&Table::User).unwrap().push("nope".into());
    append_all(&*p.streams, &records).await;
    let lake = format!("s3://{bucket}/some/prefix");
    let env = |key: &str, default: &str| std::env::var(key).unwrap_or_else(|_| default.to_string());
    let run = Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(["stream", "--drain", "--lake", &lake, "--data"])
        .arg(p.dir.path())
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", env("AWS_ACCESS_KEY_ID", "test"))
        .env("AWS_SECRET_ACCESS_KEY", env("AWS_SECRET_ACCESS_KEY", "test"))
        .env("AWS_REGION", env("AWS_REGION", "us-east-1"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run pinpipe stream");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "pinpipe stream --drain on S3 failed: {}\n{stderr}", run.status);
    let options = HashMap::from([
        ("AWS_ENDPOINT_URL".to_string(), endpoint.clone()),
        ("AWS_ALLOW_HTTP".to_string(), "true".to_string()),
        ("AWS_ACCESS_KEY_ID".to_string(), env("AWS_ACCESS_KEY_ID", "test")),
        ("AWS_SECRET_ACCESS_KEY".to_string(), env("AWS_SECRET_ACCESS_KEY", "test")),
        ("AWS_REGION".to_string(), env("AWS_REGION", "us-east-1")),
    ]);
    assert_tables_at_hold(Tables { base: format!("{lake}/delta"), options }, &records).await;
}

/// Not a pass/fail check (the benchmark owns that): prints the job's own latency figures while
/// 5,000 records per second per stream arrive for 10 s. `cargo test --test stream -- --ignored
/// --nocapture latency`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn latency_at_5k_records_per_second() {
    let p = pipeline().await;
    let cfg = StreamConfig { drain: false, max_batch_records: 10_000, checkpoint_every: 100, ..drain_config() };
    let stop = CancellationToken::new();
    let job = tokio::spawn({
        let (streams, lake, stop) = (p.streams.clone(), p.lake.clone(), stop.clone());
        async move { stream::run(&cfg, streams, &lake, stop).await }
    });
    let start = tokio::time::Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(10) {
        let batch = common::posts(sent, 250);
        sent += 250;
        append_all(&*p.streams, &batch).await;
        tokio::time::sleep_until(start + Duration::from_millis(sent / 5)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let report = job.await.expect("join").expect("run");
    println!("{sent} records per stream in 10 s\n{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_of_only_bad_records_still_moves_the_data_tables_position() {
    let p = pipeline().await;
    let mut records: BTreeMap<Table, Vec<String>> = Table::ALL.iter().map(|&t| (t, Vec::new())).collect();
    records.get_mut(&Table::Pin).unwrap().extend(["x".to_string(), "[1,2]".to_string(), "{}".to_string()]);
    append_all(&*p.streams, &records).await;
    let first = drain(&p).await;
    assert_eq!((first.tables[0].rejected, first.tables[0].commits, first.rejects_commits), (3, 1, 1), "{first}");
    assert_eq!(open_delta(&p.lake, &table_name(Table::Pin)).await.version(), Some(1), "a commit of no rows");
    let again = drain(&p).await;
    assert_eq!((again.tables[0].commits, again.rejects_commits), (0, 0), "nothing is read twice: {again}");
    assert_tables_hold(&p.lake, &records).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_job_and_the_stream_job_clean_the_same_records_into_the_same_rows() {
    // Distinct posts (the batch job keeps one row per `ind`; the stream tables keep every event,
    // so with no repeats the two must hold the same rows), sent down both paths.
    let p = pipeline().await;
    let records = common::posts(0, 400);
    append_all(&*p.streams, &records).await;
    let url = format!("embedded://{}", p.dir.path().join("log").display());
    let topics = eventlog::open(&url.parse().unwrap(), Namespace::Topics).await.expect("open topics");
    eventlog::ensure_defaults(&*topics, ID).await.expect("default topics");
    for (&table, values) in &records {
        let values = values.iter().map(|v| NewRecord::value(v.as_bytes())).collect();
        topics.append(&format!("{ID}.{}", table.name()), values).await.expect("append to topic");
    }
    let sink_cfg = pinpipe::sink::SinkConfig {
        id: ID.into(),
        flush_size: 150,
        flush_interval: Duration::from_secs(10),
        drain: true,
        worker: Worker::ALL,
        on_gap: Default::default(),
    };
    pinpipe::sink::run(&sink_cfg, topics, &p.lake, CancellationToken::new()).await.expect("sink");
    let out = p.dir.path().join("results");
    let batch_cfg = pinpipe::batch::BatchConfig::new(ID, out.clone());
    pinpipe::batch::run(&batch_cfg, &p.lake).await.expect("batch job");
    drain(&p).await;

    for table in Table::ALL {
        let which = pinpipe::batch::BatchTable::Clean(table);
        let (_, batch_rows) = pinpipe::batch::read_table(&p.lake, ID, which).await.expect("batch table");
        let batch_rows = common::table_rows(&batch_rows);
        let stream_rows = common::table_rows(&read_delta(&p.lake, &table_name(table)).await);
        assert_eq!(batch_rows.len(), 400, "{table}: every distinct post kept by the batch job");
        assert_eq!(stream_rows, batch_rows, "{table}: the stream table and the batch table differ");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_split_the_partitions_and_commit_every_record_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("embedded://{}", dir.path().join("log").display());
    let streams = eventlog::open(&url.parse().unwrap(), Namespace::Streams).await.expect("open streams");
    for table in Table::ALL {
        streams.create(&stream_name(table), 3, None).await.expect("a 3-shard stream");
    }
    let lake = Lake::open(&format!("file://{}", dir.path().join("lake").display()).parse().unwrap()).expect("lake");
    let records = common::posts(0, 400);
    append_all(&*streams, &records).await;
    let cfg = |worker: &str| StreamConfig { worker: worker.parse().expect("worker"), ..drain_config() };
    let (w0, w1) = (cfg("0/2"), cfg("1/2"));
    let (a, b) = tokio::join!(
        stream::run(&w0, Arc::clone(&streams), &lake, CancellationToken::new()),
        stream::run(&w1, Arc::clone(&streams), &lake, CancellationToken::new()),
    );
    let (a, b) = (a.expect("worker 0/2"), b.expect("worker 1/2"));
    for (x, y) in a.tables.iter().zip(&b.tables) {
        assert_eq!(x.committed + y.committed, 400, "{a}\n{b}");
        assert!(x.committed > 0 && y.committed > 0, "both workers had partitions: {a}\n{b}");
    }
    assert_tables_hold(&lake, &records).await;
}
