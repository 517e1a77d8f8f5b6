//! Operability of the long-running commands: `/metrics` on the sink and the stream job
//! (`--metrics-listen`), a clean stop with exit 0 on SIGTERM for gateway, sink, stream and
//! `emulate --forever`, and JSON log lines with `--log-format json`.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn pinpipe(args: &[&str], data: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_pinpipe")).args(args).arg("--data").arg(data).output().unwrap();
    assert!(out.status.success(), "pinpipe {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn spawn(args: &[&str], data: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .args(args)
        .arg("--data")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A loopback address no one listens on right now.
fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// GETs `url` until it answers 200 with a body containing every one of `want` (30 s at most).
fn scrape_until(url: &str, want: &[String]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(body) = get(url) {
            if want.iter().all(|w| body.contains(w.as_str())) {
                return body;
            }
            last = body;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{url} never showed {want:?}; last answer:\n{last}");
}

/// A blocking HTTP/1.0 GET over a plain socket (no client runtime needed in a sync test).
fn get(url: &str) -> std::io::Result<String> {
    use std::io::Write;
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host)?;
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") => Ok(body.into()),
        _ => Err(std::io::Error::other(text)),
    }
}

/// Sends SIGTERM and waits (30 s at most); returns the exit code and stderr.
fn terminate(mut child: Child) -> (Option<i32>, String) {
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            return (status.code(), stderr);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("no exit within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sink_and_stream_serve_metrics_and_stop_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // 20 posts through both paths: the lake holds 20 records per topic, the Delta tables 20 per stream.
    pinpipe(&["demo", "--count", "20", "--rows", "50"], dir.path());

    let addr = free_addr();
    let sink = spawn(&["sink", "--metrics-listen", &addr, "--log-format", "json"], dir.path());
    let mut want: Vec<String> = Vec::new();
    for t in ["pin", "geo", "user"] {
        let log = format!("pinterest.{t}");
        want.push(format!("pinpipe_sink_log_end_offset{{log=\"{log}\",partition=\"0\"}} 20\n"));
        want.push(format!("pinpipe_sink_position_offset{{log=\"{log}\",partition=\"0\"}} 20\n"));
        want.push(format!("pinpipe_sink_lag_records{{log=\"{log}\",partition=\"0\"}} 0\n"));
        want.push(format!("pinpipe_sink_records_processed{{log=\"{log}\"}} 20\n"));
        want.push(format!("pinpipe_sink_files{{topic=\"{log}\"}} 1\n"));
    }
    want.push("pinpipe_log_events_total{level=\"error\"} 0\n".into());
    want.push("pinpipe_sink_scrape_problems 0\n".into());
    scrape_until(&format!("http://{addr}/metrics"), &want);
    let (code, stderr) = terminate(sink);
    assert_eq!(code, Some(0), "{stderr}");
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }

    let addr = free_addr();
    let stream = spawn(&["stream", "--metrics-listen", &addr], dir.path());
    let mut want: Vec<String> = Vec::new();
    for t in ["pin", "geo", "user"] {
        let log = format!("streaming-pinterest-{t}");
        want.push(format!("pinpipe_stream_log_end_offset{{log=\"{log}\",partition=\"0\"}} 20\n"));
        want.push(format!("pinpipe_stream_lag_records{{log=\"{log}\",partition=\"0\"}} 0\n"));
        want.push(format!("pinpipe_stream_records_processed{{log=\"{log}\"}} 20\n"));
        want.push(format!("pinpipe_stream_table_version{{table=\"pinterest_{t}_table\"}} "));
    }
    want.push("pinpipe_stream_scrape_problems 0\n".into());
    scrape_until(&format!("http://{addr}/metrics"), &want);
    let (code, stderr) = terminate(stream);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn gateway_and_emulate_forever_stop_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    pinpipe(&["seed", "--rows", "30"], dir.path());
    let addr = free_addr();
    let gateway = spawn(&["gateway", "--listen", &addr], dir.path());
    scrape_until(&format!("http://{addr}/healthz"), &["ok".to_string()]);
    let api = format!("http://{addr}");
    let emulate = spawn(&["emulate", "--mode", "batch", "--forever", "--rate", "50", "--api", &api], dir.path());
    // Records flow: the status page sees the pin topic grow.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: serde_json::Value =
            serde_json::from_str(&get(&format!("http://{addr}/status.json")).unwrap()).unwrap();
        let pin = status["logs"].as_array().unwrap().iter().find(|l| l["name"] == "pinterest.pin").cloned().unwrap();
        if pin["end"].as_u64().unwrap() >= 10 {
            break;
        }
        assert!(Instant::now() < deadline, "no records arrived: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut emulate_stdout = String::new();
    let mut emulate = emulate;
    let mut out = emulate.stdout.take().unwrap();
    let (code, stderr) = terminate(emulate);
    out.read_to_string(&mut emulate_stdout).unwrap();
    assert_eq!(code, Some(0), "emulate --forever: {stderr}");
    assert!(emulate_stdout.contains("failed 0"), "{emulate_stdout}");
    let (code, stderr) = terminate(gateway);
    assert_eq!(code, Some(0), "gateway: {stderr}");
}
