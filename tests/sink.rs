//! The object-store sink (SPEC §5): records from the batch topics land in the lake as NDJSON in
//! the Confluent layout, cut by count and by time, exactly once across restarts and kills, on a
//! local folder and on a real S3-compatible server.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinpipe::eventlog::{self, EventLog, Namespace, NewRecord};
use pinpipe::lake::Lake;
use pinpipe::settings::Worker;
use pinpipe::sink::{self, SinkConfig, SinkReport, TopicCounts, layout};
use tokio_util::sync::CancellationToken;

const ID: &str = "pinterest";

/// The embedded topics log under `dir` with the three default topics of `id`.
async fn open_log(dir: &Path, id: &str) -> Arc<dyn EventLog> {
    let log = eventlog::open(&format!("embedded://{}", dir.join("log").display()).parse().unwrap(), Namespace::Topics)
        .await
        .expect("open log");
    eventlog::ensure_defaults(&*log, id).await.expect("default topics");
    log
}

fn open_lake(dir: &Path) -> Lake {
    Lake::open(&format!("file://{}", dir.display()).parse().unwrap()).expect("open lake")
}

/// A compact one-line JSON value, distinct per topic and index, padded to about `pad` bytes.
fn value(topic: &str, i: usize, pad: usize) -> String {
    format!(r#"{{"ind":{i},"topic":"{topic}","pad":"{}"}}"#, "x".repeat(pad))
}

/// Appends `values` to `topic` in batches of 1,000 (round robin over its partitions).
async fn append(log: &dyn EventLog, topic: &str, values: &[String]) {
    for chunk in values.chunks(1000) {
        let records = chunk.iter().map(|v| NewRecord::value(v.as_bytes().to_vec())).collect();
        log.append(topic, records).await.expect("append");
    }
}

fn values(topic: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| value(topic, i, 20)).collect()
}

fn config(flush_size: usize, flush_interval: Duration, drain: bool) -> SinkConfig {
    SinkConfig { flush_size, flush_interval, worker: Worker::ALL, ..SinkConfig::new(ID, drain) }
}

async fn drain(log: &Arc<dyn EventLog>, lake: &Lake, flush_size: usize) -> SinkReport {
    sink::run(&config(flush_size, Duration::from_secs(10), true), Arc::clone(log), lake, CancellationToken::new())
        .await
        .expect("sink drain")
}

/// True for a partition folder's incarnation marker (not a sink file).
fn is_marker(key: &str) -> bool {
    key.ends_with(&format!("/{}", sink::resume::MARKER))
}

/// The start offsets and line counts of `topic`'s files in partition `p`, in offset order.
fn files_of(objects: &BTreeMap<String, Vec<u8>>, topic: &str, p: u32) -> Vec<(u64, usize)> {
    let dir = format!("{}/", layout::partition_dir(topic, p));
    let mut files: Vec<(u64, usize)> = objects
        .iter()
        .filter(|(k, _)| k.starts_with(&dir) && !is_marker(k))
        .map(|(k, body)| {
            let name = layout::parse_file_name(k.rsplit('/').next().unwrap()).expect("a sink file name");
            assert_eq!(&layout::file_key(topic, p, name.start), k, "key follows the layout");
            assert!(body.ends_with(b"\n"), "{k} ends with a newline");
            (name.start, body.iter().filter(|&&b| b == b'\n').count())
        })
        .collect();
    files.sort();
    files
}

/// The lines of `topic` partition `p`, file after file in offset order.
fn lines_of(objects: &BTreeMap<String, Vec<u8>>, topic: &str, p: u32) -> Vec<String> {
    let mut lines = Vec::new();
    for (start, _) in files_of(objects, topic, p) {
        let body = &objects[&layout::file_key(topic, p, start)];
        lines.extend(String::from_utf8(body.clone()).expect("utf-8").lines().map(str::to_string));
    }
    lines
}

fn topic(t: &str) -> String {
    format!("{ID}.{t}")
}

#[tokio::test]
async fn every_record_lands_once_in_offset_order_with_exact_flush_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), ID).await;
    let (pin, geo, user) = (values("pin", 0..2500), values("geo", 0..1000), values("user", 0..3));
    append(&*log, &topic("pin"), &pin).await;
    append(&*log, &topic("geo"), &geo).await;
    append(&*log, &topic("user"), &user).await;
    let lake = open_lake(&dir.path().join("lake"));

    let report = drain(&log, &lake, 1000).await;

    let objects = common::objects(&*lake.store, "").await;
    assert_eq!(files_of(&objects, &topic("pin"), 0), [(0, 1000), (1000, 1000), (2000, 500)]);
    assert_eq!(files_of(&objects, &topic("geo"), 0), [(0, 1000)]);
    assert_eq!(files_of(&objects, &topic("user"), 0), [(0, 3)]);
    // Five files, and each partition's marker naming the log they came from.
    assert_eq!(objects.len(), 5 + 3, "{:?}", objects.keys().collect::<Vec<_>>());
    for name in ["pin", "geo", "user"] {
        let incarnation = log.describe(&topic(name)).await.unwrap().incarnation.unwrap();
        let key = format!("{}/{}", layout::partition_dir(&topic(name), 0), sink::resume::MARKER);
        let marker: serde_json::Value = serde_json::from_slice(&objects[&key]).unwrap();
        assert_eq!(marker, serde_json::json!({"incarnation": incarnation, "since": 0}));
    }
    assert_eq!(lines_of(&objects, &topic("pin"), 0), pin);
    assert_eq!(lines_of(&objects, &topic("geo"), 0), geo);
    assert_eq!(lines_of(&objects, &topic("user"), 0), user);
    let expected = SinkReport {
        files: 5,
        records: 3503,
        topics: BTreeMap::from([
            (topic("geo"), TopicCounts { files: 1, records: 1000 }),
            (topic("pin"), TopicCounts { files: 3, records: 2500 }),
            (topic("user"), TopicCounts { files: 1, records: 3 }),
        ]),
    };
    assert_eq!(report, expected);
    assert!(report.to_string().starts_with("sink wrote 3503 records in 5 files"), "{report}");

    // Nothing new: a second drain writes nothing and changes nothing.
    let again = drain(&log, &lake, 1000).await;
    assert_eq!((again.files, again.records), (0, 0));
    assert_eq!(objects_after(&lake).await, objects);
}

async fn objects_after(lake: &Lake) -> BTreeMap<String, Vec<u8>> {
    common::objects(&*lake.store, "").await
}

#[tokio::test]
async fn flush_size_one_writes_one_file_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), ID).await;
    let pin = values("pin", 0..25);
    append(&*log, &topic("pin"), &pin).await;
    let lake = open_lake(&dir.path().join("lake"));

    let report = drain(&log, &lake, 1).await;

    let objects = common::objects(&*lake.store, "").await;
    let expected: Vec<(u64, usize)> = (0..25).map(|i| (i, 1)).collect();
    assert_eq!(files_of(&objects, &topic("pin"), 0), expected);
    for (i, v) in pin.iter().enumerate() {
        assert_eq!(objects[&layout::file_key(&topic("pin"), 0, i as u64)], format!("{v}\n").into_bytes());
    }
    assert_eq!((report.files, report.records), (25, 25));
}

#[tokio::test]
async fn every_partition_of_a_multi_partition_topic_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log =
        eventlog::open(&format!("embedded://{}", dir.path().join("log").display()).parse().unwrap(), Namespace::Topics)
            .await
            .unwrap();
    log.create(&topic("pin"), 3, None).await.unwrap();
    eventlog::ensure_defaults(&*log, ID).await.unwrap();
    let pin = values("pin", 0..3100);
    append(&*log, &topic("pin"), &pin).await;
    let lake = open_lake(&dir.path().join("lake"));

    let report = drain(&log, &lake, 500).await;

    let objects = common::objects(&*lake.store, "").await;
    let mut all = Vec::new();
    for p in 0..3 {
        let in_log: Vec<String> = log
            .read(&topic("pin"), p, 0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| String::from_utf8(r.value).unwrap())
            .collect();
        assert!(!in_log.is_empty(), "partition {p} got records");
        assert_eq!(lines_of(&objects, &topic("pin"), p), in_log, "partition {p}");
        let n = in_log.len();
        let boundaries: Vec<(u64, usize)> = (0..n).step_by(500).map(|s| (s as u64, (n - s).min(500))).collect();
        assert_eq!(files_of(&objects, &topic("pin"), p), boundaries, "partition {p}");
        all.extend(in_log);
    }
    all.sort();
    let mut expected = pin.clone();
    expected.sort();
    assert_eq!(all, expected);
    assert_eq!(report.records, 3100);
}

#[tokio::test]
async fn follow_mode_flushes_by_time_and_stops_cleanly_on_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), ID).await;
    let lake = open_lake(&dir.path().join("lake"));
    let stop = CancellationToken::new();
    let cfg = config(1_000_000, Duration::from_millis(200), false);
    let task = tokio::spawn({
        let (log, lake, stop) = (Arc::clone(&log), lake.clone(), stop.clone());
        async move { sink::run(&cfg, log, &lake, stop).await }
    });

    let first = values("pin", 0..10);
    append(&*log, &topic("pin"), &first).await;
    let appended = Instant::now();
    let seen = wait_for_lines(&lake, &topic("pin"), 10, Duration::from_secs(3)).await;
    let latency = appended.elapsed();
    assert_eq!(seen, first);
    assert!(latency < Duration::from_millis(1000), "records took {latency:?} to land");

    let second = values("pin", 10..15);
    append(&*log, &topic("pin"), &second).await;
    let seen = wait_for_lines(&lake, &topic("pin"), 15, Duration::from_secs(3)).await;
    assert_eq!(seen, [first, second].concat());

    stop.cancel();
    let report = tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("the sink stops promptly")
        .unwrap()
        .expect("a clean stop");
    assert_eq!((report.files, report.records), (2, 15));
    let objects = common::objects(&*lake.store, "").await;
    assert_eq!(files_of(&objects, &topic("pin"), 0), [(0, 10), (10, 5)]);
}

#[tokio::test]
async fn a_stop_in_follow_mode_writes_no_partial_file_and_the_next_run_picks_up() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), ID).await;
    let lake = open_lake(&dir.path().join("lake"));
    let pin = values("pin", 0..250);
    append(&*log, &topic("pin"), &pin).await;
    let stop = CancellationToken::new();
    let cfg = config(100, Duration::from_secs(3600), false);
    let task = tokio::spawn({
        let (log, lake, stop) = (Arc::clone(&log), lake.clone(), stop.clone());
        async move { sink::run(&cfg, log, &lake, stop).await }
    });
    assert_eq!(wait_for_lines(&lake, &topic("pin"), 200, Duration::from_secs(5)).await, pin[..200]);
    // Give the follower time to read the last 50 records into its open file, then stop it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let report = tokio::time::timeout(Duration::from_secs(3), task).await.expect("prompt stop").unwrap().unwrap();
    assert_eq!((report.files, report.records), (2, 200));
    let stopped = common::objects(&*lake.store, "").await;
    assert_eq!(files_of(&stopped, &topic("pin"), 0), [(0, 100), (100, 100)], "no partial file on stop");

    let next = drain(&log, &lake, 100).await;
    assert_eq!((next.files, next.records), (1, 50));
    let objects = common::objects(&*lake.store, "").await;
    assert_eq!(files_of(&objects, &topic("pin"), 0), [(0, 100), (100, 100), (200, 50)]);
    assert_eq!(lines_of(&objects, &topic("pin"), 0), pin);
}

/// Polls the lake until `topic` partition 0 holds `n` lines (or `timeout`), and returns them.
async fn wait_for_lines(lake: &Lake, topic: &str, n: usize, timeout: Duration) -> Vec<String> {
    let started = Instant::now();
    loop {
        let lines = lines_of(&common::objects(&*lake.store, "").await, topic, 0);
        if lines.len() >= n || started.elapsed() > timeout {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_second_drain_resumes_after_the_last_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), ID).await;
    let lake = open_lake(&dir.path().join("lake"));
    let pin = values("pin", 0..2200);
    append(&*log, &topic("pin"), &pin[..1500]).await;
    let first = drain(&log, &lake, 1000).await;
    append(&*log, &topic("pin"), &pin[1500..]).await;
    let second = drain(&log, &lake, 1000).await;

    let objects = common::objects(&*lake.store, "").await;
    assert_eq!(files_of(&objects, &topic("pin"), 0), [(0, 1000), (1000, 500), (1500, 700)]);
    assert_eq!(lines_of(&objects, &topic("pin"), 0), pin);
    assert_eq!((first.files, first.records, second.files, second.records), (2, 1500, 1, 700));
}

#[tokio::test]
async fn a_put_that_fails_is_retried_until_the_lake_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), ID).await;
    let pin = values("pin", 0..30);
    append(&*log, &topic("pin"), &pin).await;
    let lake_dir = dir.path().join("lake");
    let lake = open_lake(&lake_dir);
    // A folder where the first file must go: every put of it fails until the folder is gone.
    let blocker = lake_dir.join(layout::file_key(&topic("pin"), 0, 0));
    std::fs::create_dir_all(&blocker).unwrap();
    let unblock = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        std::fs::remove_dir(&blocker).unwrap();
    });

    let started = Instant::now();
    let report = drain(&log, &lake, 20).await;
    unblock.await.unwrap();

    assert!(started.elapsed() >= Duration::from_millis(700), "the sink waited for the lake");
    let objects = common::objects(&*lake.store, "").await;
    assert_eq!(files_of(&objects, &topic("pin"), 0), [(0, 20), (20, 10)]);
    assert_eq!(lines_of(&objects, &topic("pin"), 0), pin);
    assert_eq!((report.files, report.records), (2, 30));
}

#[tokio::test]
async fn a_missing_topic_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let log =
        eventlog::open(&format!("embedded://{}", dir.path().join("log").display()).parse().unwrap(), Namespace::Topics)
            .await
            .unwrap();
    log.create("other.pin", 1, None).await.unwrap();
    let lake = open_lake(&dir.path().join("lake"));
    let cfg = SinkConfig {
        flush_size: 10,
        flush_interval: Duration::from_secs(1),
        worker: Worker::ALL,
        ..SinkConfig::new("other", true)
    };
    let err = sink::run(&cfg, log, &lake, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(&err, sink::Error::TopicNotFound { topic } if topic == "other.geo"), "{err:?}");
    assert!(err.to_string().contains("`other.geo` does not exist"), "{err}");
}

/// Fills `data`'s log the way the crash test needs: many small records, a few topics.
async fn fill_for_crash_test(data: &Path) -> Arc<dyn EventLog> {
    let log = open_log(data, ID).await;
    append(&*log, &topic("pin"), &(0..200_000).map(|i| value("pin", i, 8)).collect::<Vec<_>>()).await;
    append(&*log, &topic("geo"), &(0..20_500).map(|i| value("geo", i, 8)).collect::<Vec<_>>()).await;
    append(&*log, &topic("user"), &values("user", 0..777)).await;
    log
}

fn sink_command(data: &Path, lake: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pinpipe"));
    cmd.args(["sink", "--drain", "--flush-size", "1000", "--data"])
        .arg(data)
        .args(["--lake", lake])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in ["PINPIPE_CONFIG", "PINPIPE_DATA", "PINPIPE_LOG", "PINPIPE_LAKE", "PINPIPE_ID", "PINPIPE_FLUSH_INTERVAL"]
    {
        cmd.env_remove(var);
    }
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sink_restarts_into_exactly_the_objects_of_an_uninterrupted_run() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _log = fill_for_crash_test(&data).await;
    // The uninterrupted run, timed, so the kills below land inside a run on any machine.
    let reference_dir = dir.path().join("reference");
    let started = Instant::now();
    let out = sink_command(&data, &format!("file://{}", reference_dir.display())).output().expect("run pinpipe sink");
    let full_run = started.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = common::objects(&*open_lake(&reference_dir).store, "").await;
    assert_eq!(expected.len(), 200 + 21 + 1 + 3, "files and one marker per partition");

    let crashed_dir = dir.path().join("crashed");
    let crashed_url = format!("file://{}", crashed_dir.display());
    let crashed = open_lake(&crashed_dir);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("uninterrupted run took {full_run:?}; kill delays from seed {seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut landed_mid_run = 0;
    for trial in 0..4 {
        let mut child = sink_command(&data, &crashed_url).spawn().expect("start pinpipe sink");
        // Spread over the run (startup is a fixed part of it, larger on a loaded machine).
        let delay = full_run.mul_f64(0.15 + 0.2 * f64::from(trial) + rng.random_range(0.0..0.1));
        tokio::time::sleep(delay).await;
        child.kill().expect("SIGKILL the sink");
        let status = child.wait().unwrap();
        let now = common::objects(&*crashed.store, "").await;
        eprintln!("trial {trial}: killed after {delay:?} ({status}), {} objects so far", now.len());
        if !now.is_empty() && now.len() < expected.len() {
            landed_mid_run += 1;
        }
        for (key, body) in &now {
            assert_eq!(Some(body), expected.get(key), "{key} is whole and as in the uninterrupted run");
        }
    }
    let out = sink_command(&data, &crashed_url).output().expect("run pinpipe sink");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let got = common::objects(&*crashed.store, "").await;
    assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    assert!(got == expected, "every object is byte-identical to the uninterrupted run's");
    assert!(landed_mid_run > 0, "at least one kill landed mid-run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_the_sink_writes_the_same_objects_and_resumes_from_the_bucket() {
    let Some(endpoint) = common::s3_endpoint() else { return };
    let (bucket, store) = common::new_bucket(&endpoint, "pinpipe-sink").await;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = open_log(&data, ID).await;
    let pin = values("pin", 0..2200);
    append(&*log, &topic("pin"), &pin[..1500]).await;
    append(&*log, &topic("geo"), &values("geo", 0..40)).await;
    let s3_sink = || {
        let mut cmd = sink_command(&data, &format!("s3://{bucket}/lake/root"));
        cmd.env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ACCESS_KEY_ID", common::aws_var("AWS_ACCESS_KEY_ID"))
            .env("AWS_SECRET_ACCESS_KEY", common::aws_var("AWS_SECRET_ACCESS_KEY"))
            .env("AWS_REGION", std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()));
        let out = cmd.output().expect("run pinpipe sink");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    s3_sink();
    append(&*log, &topic("pin"), &pin[1500..]).await;
    s3_sink();

    let in_s3 = common::objects(&*store, "lake/root").await;
    assert_eq!(files_of(&in_s3, &topic("pin"), 0), [(0, 1000), (1000, 500), (1500, 700)]);
    assert_eq!(lines_of(&in_s3, &topic("pin"), 0), pin);
    assert!(in_s3.keys().all(|k| k.contains('+') || is_marker(k)), "{:?}", in_s3.keys().collect::<Vec<_>>());

    // The same runs into a local folder give byte-identical objects under the same keys.
    let local = open_lake(&dir.path().join("local"));
    let replay_dir = tempfile::tempdir().unwrap();
    let replay = open_log(replay_dir.path(), ID).await;
    append(&*replay, &topic("pin"), &pin[..1500]).await;
    append(&*replay, &topic("geo"), &values("geo", 0..40)).await;
    drain(&replay, &local, 1000).await;
    append(&*replay, &topic("pin"), &pin[1500..]).await;
    drain(&replay, &local, 1000).await;
    // The markers name each run's own log; every sink file is the same.
    let files = |objects: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        objects.into_iter().filter(|(k, _)| !is_marker(k)).collect()
    };
    assert!(files(common::objects(&*local.store, "").await) == files(in_s3), "the same sink files, byte for byte");
}

/// Dev-profile throughput of the sink from the embedded log to local files (run with
/// `cargo test --test sink -- --ignored --nocapture sink_throughput`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn sink_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), ID).await;
    let n = 300_000;
    let pin: Vec<String> = (0..n).map(|i| value("pin", i, 1000)).collect();
    let appended = Instant::now();
    append(&*log, &topic("pin"), &pin).await;
    eprintln!("appended {n} records of ~1 KB in {:?}", appended.elapsed());
    let read = Instant::now();
    let mut from = 0;
    loop {
        let page = log.read(&topic("pin"), 0, from, 5000).await.unwrap();
        let Some(last) = page.last() else { break };
        from = last.position.offset + 1;
    }
    let read = read.elapsed();
    eprintln!(
        "baseline: reading them back in pages of 5,000 took {read:?} = {:.0} records/s",
        n as f64 / read.as_secs_f64()
    );
    let lake = open_lake(&dir.path().join("lake"));
    let started = Instant::now();
    let report = drain(&log, &lake, 1000).await;
    let took = started.elapsed();
    assert_eq!(report.records, n as u64);
    eprintln!("sink: {report} in {took:?} = {:.0} records/s", n as f64 / took.as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_split_the_partitions_and_write_what_one_sink_writes() {
    let dir = tempfile::tempdir().unwrap();
    let id = "split";
    let log =
        eventlog::open(&format!("embedded://{}", dir.path().join("log").display()).parse().unwrap(), Namespace::Topics)
            .await
            .expect("open log");
    for t in ["pin", "geo", "user"] {
        let name = format!("{id}.{t}");
        log.create(&name, 4, None).await.expect("create a 4-partition topic");
        append(&*log, &name, &values(t, 0..1234)).await;
    }
    let cfg = |worker: Worker| SinkConfig {
        flush_size: 100,
        flush_interval: Duration::from_secs(10),
        worker,
        ..SinkConfig::new(id, true)
    };
    let (one, split) = (open_lake(&dir.path().join("one")), open_lake(&dir.path().join("split")));
    sink::run(&cfg(Worker::ALL), Arc::clone(&log), &one, CancellationToken::new()).await.expect("one sink");
    let (w0, w1) = (cfg("0/2".parse().unwrap()), cfg("1/2".parse().unwrap()));
    let (a, b) = tokio::join!(
        sink::run(&w0, Arc::clone(&log), &split, CancellationToken::new()),
        sink::run(&w1, Arc::clone(&log), &split, CancellationToken::new()),
    );
    let (a, b) = (a.expect("worker 0/2"), b.expect("worker 1/2"));
    assert_eq!(a.records + b.records, 3 * 1234, "the workers together write every record once");
    let expected = common::objects(&*one.store, "").await;
    let got = common::objects(&*split.store, "").await;
    assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    assert_eq!(got, expected, "two workers write byte for byte what one sink writes");
    // Worker 0/2 wrote partitions 0 and 2 only.
    let mine = a.files;
    let even =
        expected.keys().filter(|k| (k.contains("partition=0/") || k.contains("partition=2/")) && !is_marker(k)).count()
            as u64;
    assert_eq!(mine, even);
}
