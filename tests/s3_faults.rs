//! S3 outages (issue #5): a private moto S3 server is frozen with SIGSTOP mid-run while records
//! keep arriving, then thawed with SIGCONT. The sink and the stream job, running as `pinpipe`
//! processes against that server, keep running through the freeze (their requests time out and
//! are retried), resume when it answers, and end with every record exactly once: the sink's
//! objects byte-identical to an uninterrupted run's, the Delta tables equal to the cleaned records.
//!
//! SIGSTOP keeps moto's in-memory buckets (a restart would lose them) and keeps its socket
//! listening: the kernel still accepts connections and buffers requests, so a request sent during
//! the freeze is processed after the thaw even though its client gave up — exactly a write that
//! landed whose answer was lost. Needs `PINPIPE_TEST_PYTHON` (a Python with `moto[server]`);
//! skipped with a message when it is unset, failing when it is set and moto cannot start.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use pinpipe::clean::Table;
use pinpipe::eventlog::{self, Namespace, NewRecord};
use pinpipe::lake::Lake;
use pinpipe::settings::Worker;
use pinpipe::sink::{self, SinkConfig};
use tokio_util::sync::CancellationToken;

const ID: &str = "pinterest";
/// The request timeout the jobs run with here: shorter than the freeze, so requests in flight
/// when the server stops do time out and the retry paths run.
const REQUEST_TIMEOUT: &str = "2s";
/// How long the server stays frozen.
const FREEZE: Duration = Duration::from_secs(8);
/// Longest the jobs get to catch up after the thaw.
const CATCH_UP: Duration = Duration::from_secs(120);

/// A moto S3 server of the test's own on a free port; killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    /// Starts moto with `PINPIPE_TEST_PYTHON`, or `None` when that variable is unset.
    async fn start() -> Option<Moto> {
        let Ok(python) = std::env::var("PINPIPE_TEST_PYTHON") else {
            eprintln!("PINPIPE_TEST_PYTHON is not set: skipping the S3 outage test (it needs moto[server])");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto with {python}: {e}"));
        let mut moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Some(status) = moto.child.try_wait().unwrap() {
                panic!("moto exited at start ({status}): is moto[server] installed for {python}?");
            }
            if client.get(&moto.endpoint).send().await.is_ok() {
                return Some(moto);
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto did not answer on {} within 60 s",
                moto.endpoint
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to the server.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill {signal} moto: {status}");
    }

    /// A new bucket (its name, and a store on it for the test's own reads).
    async fn bucket(&self, name: &str) -> (String, AmazonS3) {
        let bucket = format!("{name}-{}", uuid::Uuid::new_v4().simple());
        let created = reqwest::Client::new().put(format!("{}/{bucket}", self.endpoint)).send().await.expect("moto");
        assert!(created.status().is_success(), "create bucket: {}", created.status());
        let store = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_region("us-east-1")
            .build()
            .unwrap();
        (bucket, store)
    }

    /// What deltalake needs to read tables on this server.
    fn storage_options(&self) -> HashMap<String, String> {
        HashMap::from([
            ("AWS_ENDPOINT_URL".to_string(), self.endpoint.clone()),
            ("AWS_ALLOW_HTTP".to_string(), "true".to_string()),
            ("AWS_ACCESS_KEY_ID".to_string(), "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), "test".to_string()),
            ("AWS_REGION".to_string(), "us-east-1".to_string()),
        ])
    }

    /// `pinpipe ARGS --data DATA --lake LAKE` against this server, stderr into `log`.
    fn pinpipe(&self, args: &[&str], data: &Path, lake: &str, log: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pinpipe"));
        cmd.args(args)
            .arg("--data")
            .arg(data)
            .args(["--lake", lake])
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_TIMEOUT", REQUEST_TIMEOUT)
            // object_store's retry notices show the requests the freeze timed out.
            .env("RUST_LOG", "warn,object_store::client::retry=info")
            .stdout(Stdio::null())
            .stderr(File::create(log).expect("log file"));
        for var in [
            "PINPIPE_CONFIG",
            "PINPIPE_DATA",
            "PINPIPE_LOG",
            "PINPIPE_STREAMS",
            "PINPIPE_LAKE",
            "PINPIPE_ID",
            "PINPIPE_FLUSH_INTERVAL",
            "PINPIPE_FLUSH_SIZE",
            "PINPIPE_DRAIN",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops a follower with SIGTERM (it stops cleanly) and returns its exit status.
async fn terminate(child: &mut Child) -> ExitStatus {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("run kill");
    assert!(status.success(), "kill -TERM: {status}");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the follower did not stop within 60 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts `child` is still running; shows its log otherwise.
fn assert_running(child: &mut Child, what: &str, log: &Path) {
    if let Some(status) = child.try_wait().unwrap() {
        panic!("{what} exited during the outage ({status}):\n{}", std::fs::read_to_string(log).unwrap_or_default());
    }
}

/// The moto server frozen (SIGSTOP) while a test goes on appending, thawed (SIGCONT) once
/// [`FREEZE`] has passed.
#[derive(Default)]
struct Outage(Option<Instant>);

impl Outage {
    fn start(&mut self, moto: &Moto) {
        moto.signal("-STOP");
        self.0 = Some(Instant::now());
    }

    /// Thaws the server if it has been frozen for [`FREEZE`]; whether it did.
    fn thaw_if_due(&mut self, moto: &Moto, tick: usize) -> bool {
        let Some(since) = self.0.filter(|since| since.elapsed() >= FREEZE) else { return false };
        moto.signal("-CONT");
        eprintln!("moto frozen for {:?}, thawed at tick {tick}", since.elapsed());
        self.0 = None;
        true
    }

    /// Waits out an outage still on, then thaws the server.
    async fn end(&mut self, moto: &Moto) {
        if let Some(since) = self.0.take() {
            tokio::time::sleep(FREEZE.saturating_sub(since.elapsed())).await;
            moto.signal("-CONT");
        }
    }
}

/// How many objects are under `prefix`.
async fn count(store: &dyn ObjectStore, prefix: &str) -> usize {
    let root = object_store::path::Path::from(prefix);
    store.list(Some(&root)).try_collect::<Vec<_>>().await.expect("list").len()
}

/// Polls `done` every 500 ms until it holds or `limit` passes; whether it held.
async fn wait_until<F: AsyncFnMut() -> bool>(limit: Duration, mut done: F) -> bool {
    let started = Instant::now();
    loop {
        if done().await {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---- the sink ----

/// Records per sink file, and records appended per topic per tick: the run appends a whole
/// number of files per topic, so the follower alone writes every record (no partial file).
const FLUSH_SIZE: usize = 1000;
const SINK_TICK_RECORDS: usize = 250;
const SINK_TICKS: usize = 120;
const TICK: Duration = Duration::from_millis(100);

fn sink_value(topic: &str, i: usize) -> String {
    format!(r#"{{"ind":{i},"topic":"{topic}","pad":"{}"}}"#, "x".repeat(i % 17))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_s3_server_stalls_the_sink_which_then_writes_the_objects_of_an_uninterrupted_run() {
    let Some(moto) = Moto::start().await else { return };
    let (bucket, store) = moto.bucket("pinpipe-sink-fault").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = eventlog::open(&format!("embedded://{}", data.join("log").display()).parse().unwrap(), Namespace::Topics)
        .await
        .expect("open log");
    eventlog::ensure_defaults(&*log, ID).await.expect("default topics");
    let topics: Vec<String> = ["pin", "geo", "user"].iter().map(|t| format!("{ID}.{t}")).collect();

    let lake = format!("s3://{bucket}/lake/root");
    let sink_log = dir.path().join("sink.log");
    let flush = FLUSH_SIZE.to_string();
    let mut follower = moto
        .pinpipe(&["sink", "--flush-size", &flush, "--flush-interval", "1h"], &data, &lake, &sink_log)
        .spawn()
        .expect("start pinpipe sink");

    let freeze_at = SINK_TICKS / 6;
    let mut outage = Outage::default();
    let mut before_freeze = 0;
    for tick in 0..SINK_TICKS {
        if tick == freeze_at {
            // Freeze mid-run: once the sink has written some files.
            assert!(
                wait_until(Duration::from_secs(60), async || count(&store, "lake/root").await > 0).await,
                "the sink wrote nothing before the freeze:\n{}",
                std::fs::read_to_string(&sink_log).unwrap_or_default()
            );
            before_freeze = count(&store, "lake/root").await;
            outage.start(&moto);
        }
        if outage.thaw_if_due(&moto, tick) {
            assert_running(&mut follower, "the sink", &sink_log);
        }
        for topic in &topics {
            let first = tick * SINK_TICK_RECORDS;
            let records = (first..first + SINK_TICK_RECORDS)
                .map(|i| NewRecord::value(sink_value(topic, i).into_bytes()))
                .collect();
            log.append(topic, records).await.expect("append");
        }
        tokio::time::sleep(TICK).await;
    }
    outage.end(&moto).await;

    let files = topics.len() * SINK_TICKS * SINK_TICK_RECORDS / FLUSH_SIZE;
    let caught_up = wait_until(CATCH_UP, async || count(&store, "lake/root").await >= files).await;
    assert_running(&mut follower, "the sink", &sink_log);
    let status = terminate(&mut follower).await;
    let stderr = std::fs::read_to_string(&sink_log).unwrap_or_default();
    eprintln!("sink log:\n{stderr}");
    assert!(caught_up, "the sink did not write all {files} files after the thaw");
    assert!(status.success(), "the sink stopped with {status}");
    assert!(before_freeze < files, "the freeze came after the sink had written everything");
    assert!(stderr.contains("kind Timeout"), "no request of the sink timed out during the freeze");

    // The uninterrupted run: the same log drained into a local folder.
    let reference = Lake::open(&format!("file://{}", dir.path().join("reference").display()).parse().unwrap()).unwrap();
    let cfg = SinkConfig {
        flush_size: FLUSH_SIZE,
        flush_interval: Duration::from_secs(3600),
        worker: Worker::ALL,
        ..SinkConfig::new(ID, true)
    };
    let report = sink::run(&cfg, Arc::clone(&log), &reference, CancellationToken::new()).await.expect("drain");
    assert_eq!(report.files as usize, files);
    let expected = common::objects(&*reference.store, "").await;
    let got = common::objects(&store, "lake/root").await;
    assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    assert!(got == expected, "every object is byte-identical to the uninterrupted run's");
}

// ---- the stream job ----

fn stream_name(table: Table) -> String {
    format!("streaming-{ID}-{}", table.name())
}

fn table_name(table: Table) -> String {
    format!("{ID}_{}_table", table.name())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_s3_server_stalls_the_stream_job_which_then_commits_every_record_once() {
    let Some(moto) = Moto::start().await else { return };
    deltalake::aws::register_handlers(None);
    let (bucket, store) = moto.bucket("pinpipe-stream-fault").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let streams =
        eventlog::open(&format!("embedded://{}", data.join("log").display()).parse().unwrap(), Namespace::Streams)
            .await
            .expect("open streams");
    eventlog::ensure_defaults(&*streams, ID).await.expect("default streams");

    let lake = format!("s3://{bucket}/lake");
    let job_log = dir.path().join("stream.log");
    let mut follower = moto
        .pinpipe(&["stream", "--max-latency", "200ms", "--max-batch", "300"], &data, &lake, &job_log)
        .spawn()
        .expect("start pinpipe stream");

    let ticks = 120;
    let freeze_at = ticks / 4;
    let mut outage = Outage::default();
    let mut appended: BTreeMap<Table, Vec<String>> = Table::ALL.iter().map(|&t| (t, Vec::new())).collect();
    let pin_log = format!("lake/delta/{}/_delta_log", table_name(Table::Pin));
    for tick in 0..ticks {
        if tick == freeze_at {
            // Freeze mid-run: once the pin table has a commit with rows (its creation is one).
            assert!(
                wait_until(Duration::from_secs(60), async || count(&store, &pin_log).await >= 2).await,
                "the stream job committed nothing before the freeze:\n{}",
                std::fs::read_to_string(&job_log).unwrap_or_default()
            );
            outage.start(&moto);
        }
        if outage.thaw_if_due(&moto, tick) {
            assert_running(&mut follower, "the stream job", &job_log);
        }
        let first = (tick * 40) as u64;
        let mut batch = common::posts(first, 40);
        if tick % 5 == 0 {
            // Some bad records, so the rejects table commits through the outage too.
            batch.get_mut(&Table::Pin).unwrap().push(format!("bad pin {tick}"));
            batch.get_mut(&Table::Geo).unwrap().push(format!("{{\"ind\":{tick},\"timestamp\":\"never\"}}"));
        }
        for (&table, values) in &batch {
            let records = values.iter().map(|v| NewRecord::value(v.as_bytes())).collect();
            streams.append(&stream_name(table), records).await.expect("append");
        }
        for (t, v) in batch {
            appended.get_mut(&t).unwrap().extend(v);
        }
        tokio::time::sleep(TICK).await;
    }
    outage.end(&moto).await;

    let want = common::expected_stream_tables(ID, &appended);
    let names: Vec<String> = want.keys().cloned().collect();
    let base = format!("{lake}/delta");
    let options = moto.storage_options();
    let caught_up = wait_until(CATCH_UP, async || common::delta_tables(&base, &options, &names).await == want).await;
    assert_running(&mut follower, "the stream job", &job_log);
    let status = terminate(&mut follower).await;
    let stderr = std::fs::read_to_string(&job_log).unwrap_or_default();
    eprintln!("stream job log:\n{stderr}");
    let got = common::delta_tables(&base, &options, &names).await;
    for name in &names {
        assert_eq!(got[name].len(), want[name].len(), "{name} row count");
        assert_eq!(got[name], want[name], "{name} holds every record once");
    }
    assert!(caught_up, "the tables matched only after the job stopped");
    assert!(status.success(), "the stream job stopped with {status}");
    assert!(
        stderr.contains("kind Timeout") || stderr.contains("retrying"),
        "no request of the job failed during the freeze"
    );
}
