//! The embedded event log across processes and crashes: a `pinpipe gateway` process appends
//! while clients hammer it, gets SIGKILLed mid-flight, and every acknowledged record must be
//! there afterwards — at its offset, whole, with offsets contiguous — and the log must go on.
//! Readers in other processes see a record only once its fsync returned.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pinpipe::eventlog::{self, Namespace};

/// The test hook of the embedded log: while the file it names exists, every fsync of a process
/// started with it waits.
const FSYNC_GATE: &str = "PINPIPE_TEST_FSYNC_GATE";

/// Starts `pinpipe gateway` on a free port over `data`; returns the child and its base URL.
fn start_gateway(data: &std::path::Path) -> (Child, String) {
    start_gateway_with(data, &[])
}

/// [`start_gateway`] with more environment variables.
fn start_gateway_with(data: &std::path::Path, env: &[(&str, &std::path::Path)]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(["gateway", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pinpipe gateway");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("gateway banner");
    // Keep reading what the gateway prints, so its stdout never breaks.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let url = line.trim().rsplit(' ').next().expect("url in banner").to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "unexpected banner {line:?}");
    (child, url)
}

/// What the clients were told: value → (partition, offset), for acknowledged records only.
type Acked = Arc<Mutex<BTreeMap<String, (u32, u64)>>>;

async fn hammer(url: String, client: usize, acked: Acked) {
    let http = reqwest::Client::new();
    for batch in 0.. {
        let values: Vec<String> =
            (0..10).map(|i| format!(r#"{{"client":{client},"batch":{batch},"i":{i}}}"#)).collect();
        let records: Vec<String> = values.iter().map(|v| format!(r#"{{"value":{v}}}"#)).collect();
        let body = format!(r#"{{"records":[{}]}}"#, records.join(","));
        let reply = http
            .post(format!("{url}/topics/pinterest.pin"))
            .header("content-type", "application/vnd.kafka.json.v2+json")
            .body(body)
            .send()
            .await;
        let Ok(reply) = reply else { return };
        if !reply.status().is_success() {
            return;
        }
        let Ok(json) = reply.json::<serde_json::Value>().await else { return };
        let offsets = json["offsets"].as_array().expect("offsets array");
        let mut acked = acked.lock().unwrap();
        for (value, o) in values.into_iter().zip(offsets) {
            let position = (o["partition"].as_u64().unwrap() as u32, o["offset"].as_u64().unwrap());
            acked.insert(value, position);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_sigkill_whole_and_in_order() {
    for trial in 0..3u64 {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, url) = start_gateway(dir.path());
        let acked: Acked = Arc::default();
        let clients: Vec<_> = (0..8).map(|c| tokio::spawn(hammer(url.clone(), c, acked.clone()))).collect();
        tokio::time::sleep(Duration::from_millis(400 + 250 * trial)).await;
        child.kill().expect("SIGKILL the gateway");
        child.wait().unwrap();
        for c in clients {
            c.await.unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        assert!(acked.len() > 50, "trial {trial}: too few acknowledged records ({}) to mean anything", acked.len());

        let (topics, _) = common::open_logs(dir.path(), "pinterest").await;
        let stored = common::read_all(&*topics, "pinterest.pin").await;
        // Contiguous offsets from 0, and no torn record: every value is one whole JSON object we sent.
        let offsets: Vec<u64> = stored.iter().map(|r| r.position.offset).collect();
        assert_eq!(offsets, (0..stored.len() as u64).collect::<Vec<_>>(), "trial {trial}");
        let by_value: BTreeMap<String, (u32, u64)> = stored
            .iter()
            .map(|r| {
                let v = String::from_utf8(r.value.clone()).expect("utf-8");
                serde_json::from_str::<serde_json::Value>(&v).expect("a whole JSON record");
                (v, (r.position.partition, r.position.offset))
            })
            .collect();
        assert_eq!(by_value.len(), stored.len(), "trial {trial}: a value stored twice");
        for (value, position) in &acked {
            assert_eq!(by_value.get(value), Some(position), "trial {trial}: acknowledged {value} lost or moved");
        }

        // The log goes on after the crash: a new process appends after the last record.
        let (mut again, url) = start_gateway(dir.path());
        let reply: serde_json::Value = reqwest::Client::new()
            .post(format!("{url}/topics/pinterest.pin"))
            .header("content-type", "application/vnd.kafka.json.v2+json")
            .body(r#"{"records":[{"value":{"after":"crash"}}]}"#)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(reply["offsets"][0]["offset"], serde_json::json!(stored.len()));
        again.kill().unwrap();
        again.wait().unwrap();
    }
}

#[tokio::test]
async fn another_process_reads_and_administers_while_a_gateway_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = start_gateway(dir.path());
    let http = reqwest::Client::new();
    for i in 0..20 {
        let status = http
            .put(format!("{url}/streams/streaming-pinterest-geo/record"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"StreamName":"streaming-pinterest-geo","Data":{{"ind":{i}}},"PartitionKey":"k{i}"}}"#))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    // `pinpipe streams describe` in a third process sees the gateway's records.
    let out = Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(["streams", "describe", "streaming-pinterest-geo", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("stream streaming-pinterest-geo: 1 partition(s)"), "{text}");
    assert!(text.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "0", "20", "20"]), "{text}");
    // And this process reads them by position while the gateway still runs.
    let url = format!("embedded://{}", dir.path().join("log").display());
    let streams = eventlog::open(&url.parse().unwrap(), Namespace::Streams).await.unwrap();
    let read = streams.read("streaming-pinterest-geo", 0, 5, 100).await.unwrap();
    let expected: Vec<String> = (5..20).map(|i| format!(r#"{{"ind":{i}}}"#)).collect();
    assert_eq!(common::values(&read), expected);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `pinpipe topics describe pinterest.pin` in another process: partition 0's (first, next).
fn described(data: &std::path::Path, env: &[(&str, &std::path::Path)]) -> (u64, u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(["topics", "describe", "pinterest.pin", "--data"])
        .arg(data)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let row = text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).find(|w| w.first() == Some(&"0"));
    let row = row.unwrap_or_else(|| panic!("no partition 0 in {text}"));
    (row[1].parse().unwrap(), row[2].parse().unwrap())
}

/// Records stored in the log file, whether or not they are durable yet.
fn stored(data: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("log").join("topics.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0)).unwrap()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(20), "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn other_processes_read_a_record_only_once_its_fsync_returned() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let gate = data.join("hold-fsync");
    let held = [(FSYNC_GATE, gate.as_path())];
    let (mut gateway, url) = start_gateway_with(data, &held);
    let produce = |value: &'static str| {
        let url = format!("{url}/topics/pinterest.pin");
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/vnd.kafka.json.v2+json")
                .body(format!(r#"{{"records":[{{"value":{value}}}]}}"#))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };

    // The fsync held back: the record is committed, but neither answered nor readable elsewhere.
    std::fs::write(&gate, b"").unwrap();
    let first = produce(r#"{"a":1}"#);
    until("the record is committed", || stored(data) == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!first.is_finished(), "answered before its fsync");
    assert_eq!(described(data, &held), (0, 0), "another process sees a record not yet synced");

    // The fsync returns: the answer comes, and another process reads the record.
    std::fs::remove_file(&gate).unwrap();
    assert_eq!(first.await.unwrap().unwrap(), 200);
    assert_eq!(described(data, &held), (0, 1));
    let log = eventlog::open(&format!("embedded://{}", data.join("log").display()).parse().unwrap(), Namespace::Topics)
        .await
        .unwrap();
    assert_eq!(common::values(&log.read("pinterest.pin", 0, 0, 10).await.unwrap()), [r#"{"a":1}"#]);
    drop(log);

    // A writer that dies between its commit and its fsync: the next process to open the log
    // syncs what the file holds, and then the record is readable (it was never acknowledged).
    std::fs::write(&gate, b"").unwrap();
    let second = produce(r#"{"a":2}"#);
    until("the second record is committed", || stored(data) == 2).await;
    assert_eq!(described(data, &held), (0, 1));
    gateway.kill().unwrap();
    gateway.wait().unwrap();
    assert!(second.await.unwrap().is_err(), "the killed gateway cannot have answered");
    std::fs::remove_file(&gate).unwrap();
    assert_eq!(described(data, &[]), (0, 2));
}
