//! A full disk under the lake (SPEC §8): the stream job waits it out like an unreachable lake —
//! retrying with backoff, saying why in its log and `/metrics`, never panicking — and goes on
//! when space returns, every record once; `--drain` gives up after its lake timeout with a clear
//! error. The lake is a small tmpfs the test mounts and fills for real (CI runs as root: a test
//! that cannot mount fails).

mod common;

use common::tmpfs::Tmpfs;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pinpipe::clean::Table;
use pinpipe::eventlog::{EventLog, NewRecord};
use rand::{Rng, SeedableRng};

const ID: &str = "pinterest";

fn spawn_stream(data: &Path, lake: &Path, log: &Path, extra: &[&str]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pinpipe"));
    cmd.arg("stream")
        .args(extra)
        .arg("--data")
        .arg(data)
        .arg("--lake")
        .arg(format!("file://{}", lake.display()))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    for var in ["PINPIPE_CONFIG", "PINPIPE_DATA", "PINPIPE_LAKE", "PINPIPE_STREAMS", "PINPIPE_ID"] {
        cmd.env_remove(var);
    }
    cmd.spawn().expect("start pinpipe stream")
}

fn metrics(addr: &str) -> String {
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else { return String::new() };
    let _ = write!(conn, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut text = String::new();
    let _ = conn.read_to_string(&mut text);
    text
}

/// The value of the sample `name` in a metrics text, 0 when absent.
fn sample(text: &str, name: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0)
}

async fn wait_until<F: AsyncFnMut() -> bool>(limit: Duration, mut done: F) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    false
}

async fn append(log: &dyn EventLog, records: &BTreeMap<Table, Vec<String>>) {
    for (table, values) in records {
        let batch = values.iter().map(|v| NewRecord::value(v.as_bytes())).collect();
        log.append(&format!("streaming-{ID}-{}", table.name()), batch).await.expect("append");
    }
}

fn alive(child: &mut Child, log: &Path) {
    if let Some(status) = child.try_wait().unwrap() {
        panic!("the stream job exited ({status}):\n{}", std::fs::read_to_string(log).unwrap_or_default());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_job_waits_out_a_full_lake_and_then_commits_every_record_once() {
    let disk = Tmpfs::mount(64);
    let lake = disk.path().join("lake");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_, streams) = common::open_logs(&data, ID).await;
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let job_log = dir.path().join("stream.log");

    // Full before the job starts: it cannot even create its tables.
    let filler = disk.fill(0);
    let mut job = spawn_stream(&data, &lake, &job_log, &["--max-latency", "200ms", "--metrics-listen", &addr]);
    let mut appended: BTreeMap<Table, Vec<String>> = common::posts(0, 40);
    appended.get_mut(&Table::Pin).unwrap().push("not json".to_string());
    append(&*streams, &appended).await;
    let full = "pinpipe_stream_lake_failures_total{reason=\"disk_full\"}";
    let waited = wait_until(Duration::from_secs(60), async || {
        let m = metrics(&addr);
        sample(&m, full) >= 3 && sample(&m, "pinpipe_stream_lake_writable") == 0 && m.contains("lake_writable 0")
    })
    .await;
    assert!(waited, "no full-disk wait in /metrics:\n{}", metrics(&addr));
    alive(&mut job, &job_log);

    // Space returns: the job creates its tables and commits what is there.
    std::fs::remove_file(&filler).unwrap();
    let want = common::expected_stream_tables(ID, &appended);
    let names: Vec<String> = want.keys().cloned().collect();
    let base = format!("file://{}/delta", lake.display());
    let options = HashMap::new();
    let caught_up =
        wait_until(Duration::from_secs(90), async || common::delta_tables(&base, &options, &names).await == want).await;
    assert!(caught_up, "the tables did not catch up:\n{}", std::fs::read_to_string(&job_log).unwrap_or_default());
    assert!(metrics(&addr).contains("pinpipe_stream_lake_writable 1"));

    // Full in the middle of a commit: a micro-batch of incompressible text larger than the space
    // left above the free-space floor.
    let before = sample(&metrics(&addr), full);
    let filler = disk.fill(4 * 1024 * 1024);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut bulk = common::posts(40, 3000);
    for pin in bulk.get_mut(&Table::Pin).unwrap() {
        let mut value: serde_json::Value = serde_json::from_str(pin).unwrap();
        let noise: String = (0..2000).map(|_| char::from(rng.random_range(b'!'..=b'~'))).collect();
        value["description"] = serde_json::json!(noise);
        *pin = value.to_string();
    }
    append(&*streams, &bulk).await;
    for (t, v) in bulk {
        appended.get_mut(&t).unwrap().extend(v);
    }
    let waited = wait_until(Duration::from_secs(60), async || sample(&metrics(&addr), full) > before).await;
    assert!(
        waited,
        "the commit did not run into the full disk:\n{}",
        std::fs::read_to_string(&job_log).unwrap_or_default()
    );
    alive(&mut job, &job_log);
    std::fs::remove_file(&filler).unwrap();
    let want = common::expected_stream_tables(ID, &appended);
    let caught_up =
        wait_until(Duration::from_secs(120), async || common::delta_tables(&base, &options, &names).await == want)
            .await;

    let _ = Command::new("kill").args(["-TERM", &job.id().to_string()]).status();
    let status = job.wait().unwrap();
    let stderr = std::fs::read_to_string(&job_log).unwrap_or_default();
    let got = common::delta_tables(&base, &options, &names).await;
    for name in &names {
        assert_eq!(got[name].len(), want[name].len(), "{name} row count");
        assert!(got[name] == want[name], "{name} holds every record once");
    }
    assert!(caught_up, "the tables matched only after the job stopped");
    assert!(status.success(), "the stream job stopped with {status}:\n{stderr}");
    assert!(!stderr.contains("panicked"), "a panic:\n{stderr}");
    assert!(stderr.contains("the lake's disk is full"), "the log does not say why:\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_stream_job_gives_up_on_a_full_lake_after_its_lake_timeout() {
    let disk = Tmpfs::mount(16);
    let lake = disk.path().join("lake");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_, streams) = common::open_logs(&data, ID).await;
    append(&*streams, &common::posts(0, 10)).await;
    let _filler = disk.fill(0);
    let job_log = dir.path().join("stream.log");
    let started = Instant::now();
    let mut job = spawn_stream(&data, &lake, &job_log, &["--drain", "--lake-timeout", "2s"]);
    let status = loop {
        if let Some(status) = job.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the drain did not give up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stderr = std::fs::read_to_string(&job_log).unwrap_or_default();
    assert_eq!(status.code(), Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            "error: gave up on Delta table pinterest_rejects_table: the lake's disk is full and stayed so for"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
