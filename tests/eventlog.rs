//! The embedded event log across processes and crashes: a `pinpipe gateway` process appends
//! while clients hammer it, gets SIGKILLed mid-flight, and every acknowledged record must be
//! there afterwards — at its offset, whole, with offsets contiguous — and the log must go on.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pinpipe::eventlog::{self, Namespace};

/// Starts `pinpipe gateway` on a free port over `data`; returns the child and its base URL.
fn start_gateway(data: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(["gateway", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
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
