//! Retention on the embedded log, across processes: under a steady load a log with a retention of
//! a few seconds keeps its size on disk bounded while its earliest offsets advance, every record
//! not yet expired reads back byte for byte, and a sink following it in another process loses
//! nothing. A sink or a stream job that fell behind retention stops with an error naming the log,
//! the partition and the records lost, or, told `--on-gap skip`, goes on and says so in its log
//! and `/metrics`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pinpipe::clean::Table;
use pinpipe::eventlog::{self, EventLog, Namespace, NewRecord};
use pinpipe::lake::Lake;
use pinpipe::settings::LakeUrl;
use pinpipe::stream::Progress;

fn pinpipe(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(args)
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run pinpipe")
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "pinpipe failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn open(data: &Path, namespace: Namespace) -> std::sync::Arc<dyn EventLog> {
    let url = format!("embedded://{}", data.join("log").display());
    eventlog::open(&url.parse().unwrap(), namespace).await.expect("open the log")
}

/// Record `i`'s value: JSON of about 1 KiB.
fn value(i: u64) -> Vec<u8> {
    format!(r#"{{"index":{i},"pad":"{}"}}"#, "x".repeat(1000)).into_bytes()
}

/// The bytes the log's file and its WAL take on disk.
fn log_bytes(data: &Path) -> u64 {
    ["topics.db", "topics.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.join("log").join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// Every line of every sink file of `topic` partition 0, by offset (file start + line number).
fn lake_lines(data: &Path, topic: &str) -> BTreeMap<u64, Vec<u8>> {
    let dir = data.join("lake").join(format!("topics/{topic}/partition=0"));
    let mut lines = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(&dir) else { return lines };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(start) =
            name.strip_suffix(".json").and_then(|s| s.rsplit('+').next()).and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let body = std::fs::read(&path).unwrap();
        for (n, line) in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            assert!(lines.insert(start + n as u64, line.to_vec()).is_none(), "offset {} twice", start + n as u64);
        }
    }
    lines
}

const TOPIC: &str = "pinterest.pin";
const RETENTION: Duration = Duration::from_secs(5);
const LOAD: Duration = Duration::from_secs(60);
/// Records per 10 ms tick: 1,000 records (about 1 MB) a second.
const PER_TICK: u64 = 10;
/// What the log may take on disk: the records of the retention (about 5 MB), the free pages
/// kept for the next appends, the WAL.
const BOUND: u64 = 20 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_under_steady_load_levels_off_and_a_following_reader_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let created = ok(pinpipe(data, &["topics", "create", TOPIC, "--retention", "5s"]));
    assert_eq!(created.trim(), format!("created topic {TOPIC} with 1 partition(s), retention 5s"));
    // The reader in another process: a sink following the topic.
    let stderr = std::fs::File::create(data.join("sink.log")).unwrap();
    let mut sink = Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(["sink", "--flush-interval", "200ms", "--flush-size", "500", "--data"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn the sink");

    let log = open(data, Namespace::Topics).await;
    let started = Instant::now();
    let mut next = 0u64;
    // (seconds since the start, bytes on disk, earliest offset)
    let mut samples: Vec<(f64, u64, u64)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while started.elapsed() < LOAD {
        tick.tick().await;
        let records = (next..next + PER_TICK).map(|i| NewRecord::value(value(i))).collect();
        let appended = log.append(TOPIC, records).await.expect("append");
        assert_eq!(appended[0].offset(), Some(next));
        next += PER_TICK;
        if next.is_multiple_of(2_000) {
            let start = log.describe(TOPIC).await.unwrap().partitions[0].start;
            samples.push((started.elapsed().as_secs_f64(), log_bytes(data), start));
        }
    }
    let written = next * value(0).len() as u64;
    let settled: Vec<_> = samples.iter().filter(|(t, ..)| *t > 10.0).collect();
    assert!(settled.len() >= 15, "{samples:?}");
    // The size levels off: never over the bound, though far more went through the log.
    assert!(written > 2 * BOUND, "wrote only {written} bytes");
    for (t, bytes, _) in &settled {
        assert!(*bytes <= BOUND, "{bytes} bytes on disk at {t:.1}s, over {BOUND}: {samples:?}");
    }
    // The earliest offset advances with the load.
    for pair in settled.windows(2) {
        assert!(pair[1].2 > pair[0].2, "the start did not advance: {samples:?}");
    }
    // What retention keeps reads back byte for byte: everything appended within the last
    // retention less a second is there, the oldest is gone.
    let info = log.describe(TOPIC).await.unwrap().partitions[0];
    assert_eq!(info.end, next);
    let kept_at_least = (RETENTION.as_secs() - 1) * 100 * PER_TICK;
    assert!(info.start <= next - kept_at_least, "{info:?}");
    assert!(info.start > 0, "nothing expired: {info:?}");
    let records = common::read_all(&*log, TOPIC).await;
    let offsets: Vec<u64> = records.iter().map(|r| r.position.offset).collect();
    assert_eq!(offsets, (info.start..next).collect::<Vec<_>>());
    for r in &records {
        assert_eq!(r.value, value(r.position.offset), "offset {}", r.position.offset);
    }
    // The sink in the other process kept up: every record is in the lake once, byte for byte.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = lake_lines(data, TOPIC);
    while (lines.len() as u64) < next && Instant::now() < deadline {
        assert!(sink.try_wait().unwrap().is_none(), "the sink stopped: {}", sink_log(data));
        tokio::time::sleep(Duration::from_millis(200)).await;
        lines = lake_lines(data, TOPIC);
    }
    let _ = sink.kill();
    let _ = sink.wait();
    assert_eq!(lines.len() as u64, next, "the lake lacks records; sink log: {}", sink_log(data));
    for (offset, line) in &lines {
        assert_eq!(line, &value(*offset), "lake offset {offset}");
    }
    // With the load gone, everything but the newest record expires and the file gives the
    // space back to the file system.
    let peak = std::fs::metadata(data.join("log/topics.db")).unwrap().len();
    until_start(&*log, TOPIC, next - 1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let db = || std::fs::metadata(data.join("log/topics.db")).unwrap().len();
    while db() > 6 << 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(db() <= 6 << 20, "the log file kept {} bytes of {peak} after its records expired", db());
}

fn sink_log(data: &Path) -> String {
    std::fs::read_to_string(data.join("sink.log")).unwrap_or_default()
}

/// Appends `n` JSON records to `name`, returning the offset after them.
async fn append(log: &dyn EventLog, name: &str, n: u64) -> u64 {
    let records = (0..n).map(|i| NewRecord::value(format!(r#"{{"index":{i}}}"#))).collect();
    let appended = log.append(name, records).await.unwrap();
    appended.last().unwrap().offset().unwrap() + 1
}

/// Waits until retention has moved `name`'s start to `start` (this process's writer sweeps it).
async fn until_start(log: &dyn EventLog, name: &str, start: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while log.describe(name).await.unwrap().partitions[0].start < start {
        assert!(Instant::now() < deadline, "retention did not remove the records of {name}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Lets `reader` (`sink` or `stream`) land 10 records of `name`, then appends 100 of which
/// retention removes all but the newest before it runs again: it stops with exit 2 and the
/// documented error, naming the log, the partition and the records lost.
async fn fall_behind(data: &Path, log: &dyn EventLog, noun: &str, name: &str, reader: &str) {
    append(log, name, 10).await;
    ok(pinpipe(data, &[reader, "--drain"]));
    let end = append(log, name, 100).await;
    until_start(log, name, end - 1).await;
    let stopped = pinpipe(data, &[reader, "--drain"]);
    assert_eq!(stopped.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    let expected = format!(
        "{noun} `{name}` partition 0: offsets 10 to 108 were removed by retention before they were read \
         (99 record(s) lost); the partition now starts at offset 109"
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[tokio::test]
async fn a_sink_behind_retention_stops_unless_told_to_skip() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(pinpipe(data, &["topics", "create", TOPIC, "--retention", "1s"]));
    let log = open(data, Namespace::Topics).await;
    fall_behind(data, &*log, "topic", TOPIC, "sink").await;
    assert_eq!(lake_lines(data, TOPIC).len(), 10, "a stopped sink writes nothing");
    // Told to skip, it goes on after the gap, says so, and counts it in /metrics.
    let (follower, listen) = follow_skipping(data, &["sink", "--flush-interval", "100ms"]);
    let metrics =
        scrape_until(&listen, "pinpipe_sink_skipped_records_total{log=\"pinterest.pin\",partition=\"0\"} 99").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while lake_lines(data, TOPIC).len() < 11 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_and_check_log(follower);
    assert!(metrics.contains("# TYPE pinpipe_sink_skipped_records_total counter"), "{metrics}");
    let lines = lake_lines(data, TOPIC);
    assert_eq!(lines.keys().copied().collect::<Vec<_>>(), (0..10).chain([109]).collect::<Vec<_>>());
    assert_eq!(lines[&109], br#"{"index":99}"#.to_vec());
}

#[tokio::test]
async fn a_stream_job_behind_retention_stops_unless_told_to_skip() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let stream = "streaming-pinterest-geo";
    ok(pinpipe(data, &["streams", "create", stream, "--retention", "1s"]));
    let log = open(data, Namespace::Streams).await;
    fall_behind(data, &*log, "stream", stream, "stream").await;
    // Told to skip, it goes on after the gap, says so, and counts it in /metrics.
    let (follower, listen) = follow_skipping(data, &["stream"]);
    let metrics = scrape_until(
        &listen,
        "pinpipe_stream_skipped_records_total{log=\"streaming-pinterest-geo\",partition=\"0\"} 99",
    )
    .await;
    assert!(metrics.contains("# TYPE pinpipe_stream_skipped_records_total counter"), "{metrics}");
    let lake = Lake::open(&LakeUrl::File(data.join("lake"))).unwrap();
    let mut progress = Progress::open(&lake, "pinterest", Table::Geo).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while progress.visible(0).await.unwrap() != Some(109) {
        assert!(Instant::now() < deadline, "the stream job did not commit past the gap");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_and_check_log(follower);
    // Nothing is left to read: a run after it has nothing to skip.
    let again = pinpipe(data, &["stream", "--drain"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
}

/// Starts `args` (the sink or the stream job, following) with `--on-gap skip` and metrics on a
/// free port; returns the child and the metrics address.
fn follow_skipping(data: &Path, args: &[&str]) -> (std::process::Child, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(args)
        .args(["--on-gap", "skip", "--metrics-listen", &listen, "--data"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the follower");
    (child, listen)
}

/// Stops a [`follow_skipping`] child; its log says what it skipped and why.
fn stop_and_check_log(mut child: std::process::Child) {
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("removed by retention before they were read; skipping them"), "{stderr}");
    assert!(stderr.contains("lost=99"), "{stderr}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Scrapes `http://listen/metrics` until it holds `line`; returns that scrape.
async fn scrape_until(listen: &str, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(reply) = reqwest::get(format!("http://{listen}/metrics")).await
            && let Ok(text) = reply.text().await
            && text.lines().any(|l| l == line)
        {
            return text;
        }
        assert!(Instant::now() < deadline, "no `{line}` in /metrics");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
