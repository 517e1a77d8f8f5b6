//! `pinpipe bench ingest` and `bench stream` on each backend, and a short `bench soak`: a run
//! answers with a report that names the backend it used, measured something on every row, and
//! leaves no log behind on a shared broker; the soak finds every acknowledged record once. The
//! figures themselves are the lead's to take in a release build.

use std::process::Command;

use pinpipe::eventlog::{self, Namespace};

/// Runs `pinpipe bench …` with the test AWS credentials (kinesalite wants some), returns stdout.
fn bench(args: &[&str]) -> String {
    let env_or = |key: &str| std::env::var(key).unwrap_or_else(|_| "test".into());
    let out = Command::new(env!("CARGO_BIN_EXE_pinpipe"))
        .arg("bench")
        .args(args)
        .env("AWS_ACCESS_KEY_ID", env_or("AWS_ACCESS_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", env_or("AWS_SECRET_ACCESS_KEY"))
        .env("AWS_REGION", std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()))
        .env_remove("PINPIPE_BENCH_BACKEND")
        .output()
        .expect("run pinpipe");
    assert!(out.status.success(), "pinpipe bench failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The report's table rows, each split into columns.
fn rows<'a>(report: &'a str, header: &str) -> Vec<Vec<&'a str>> {
    report
        .lines()
        .skip_while(|l| !l.starts_with(header))
        .skip(1)
        .take_while(|l| !l.is_empty() && !l.starts_with("gateway / bare"))
        .map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect())
        .collect()
}

fn ms(cell: &str) -> f64 {
    cell.strip_suffix("ms").unwrap_or_else(|| panic!("{cell} is not in ms")).parse().unwrap()
}

/// Checks an ingest report: its header names `backend` and the route, and each of the four rows
/// (bare handler then gateway, at 1 and 100 records per request) measured requests. Returns the
/// log the route named.
fn check_ingest(report: &str, backend_line: &str, route_prefix: &str, gateway_row: &str) -> String {
    let lines: Vec<&str> = report.lines().collect();
    let route = lines[0].strip_prefix("ingest benchmark: loopback HTTP/1.1 keep-alive, ").expect(report);
    let log = route.strip_prefix(route_prefix).expect(report).split(['/', ' ']).next().unwrap().to_string();
    assert!(log.starts_with("bench-") || log.starts_with("streaming-bench-"), "{report}");
    assert_eq!(lines[1], backend_line, "{report}");
    let rows = rows(report, "case");
    let shape: Vec<(&str, &str, &str)> = rows.iter().map(|r| (r[0], r[1], r[2])).collect();
    assert_eq!(
        shape,
        [
            ("bare axum handler", "2", "1"),
            (gateway_row, "2", "1"),
            ("bare axum handler", "2", "100"),
            (gateway_row, "2", "100")
        ],
        "{report}"
    );
    for r in &rows {
        let (requests, records): (f64, f64) = (r[3].parse().unwrap(), r[4].parse().unwrap());
        assert!(requests > 0.0 && records >= requests && ms(r[5]) > 0.0 && ms(r[6]) >= ms(r[5]), "{report}");
    }
    let ratios: Vec<&str> = lines.iter().filter(|l| l.starts_with("gateway / bare handler")).copied().collect();
    assert_eq!(ratios.len(), 2, "{report}");
    log
}

#[test]
fn ingest_bench_on_the_embedded_log_names_it_and_measures_every_case() {
    let report = bench(&["ingest", "--seconds", "0.3", "--concurrency", "2"]);
    check_ingest(
        &report,
        "backend: embedded log (durable: fsync before each answer)",
        "POST /topics/",
        "gateway + embedded log",
    );
}

#[tokio::test]
async fn ingest_bench_on_kafka_names_the_broker_and_deletes_its_fresh_topic() {
    let Ok(addr) = std::env::var("PINPIPE_TEST_KAFKA") else {
        eprintln!("PINPIPE_TEST_KAFKA is not set: skipping the Kafka ingest bench");
        return;
    };
    let url = format!("kafka://{addr}");
    let report = bench(&["ingest", "--seconds", "0.5", "--concurrency", "2", "--backend", &url]);
    let topic = check_ingest(
        &report,
        &format!("backend: {url} log (durable: acks=all before each answer)"),
        "POST /topics/",
        "gateway + kafka log",
    );
    let topics = eventlog::open(&url.parse().unwrap(), Namespace::Topics).await.unwrap();
    assert!(!topics.list().await.unwrap().contains(&topic), "{topic} was left on the broker");
}

#[tokio::test]
async fn ingest_bench_on_kinesis_drives_the_stream_routes_and_deletes_its_stream() {
    let Ok(endpoint) = std::env::var("PINPIPE_TEST_KINESIS_ENDPOINT") else {
        eprintln!("PINPIPE_TEST_KINESIS_ENDPOINT is not set: skipping the Kinesis ingest bench");
        return;
    };
    let url = format!("kinesis://us-east-1?endpoint={endpoint}");
    let report = bench(&["ingest", "--seconds", "0.5", "--concurrency", "2", "--backend", &url]);
    let stream = check_ingest(
        &report,
        &format!("backend: {url} log (durable: PutRecords accepted before each answer)"),
        "PUT /streams/",
        "gateway + kinesis log",
    );
    assert!(report.lines().next().unwrap().ends_with("/record (1 record), /records (100)"), "{report}");
    let streams = eventlog::open(&url.parse().unwrap(), Namespace::Streams).await.unwrap();
    assert!(!streams.list().await.unwrap().contains(&stream), "{stream} was left on the endpoint");
}

#[tokio::test]
async fn stream_bench_on_kinesis_sees_every_record_in_the_delta_table_and_deletes_its_streams() {
    let Ok(endpoint) = std::env::var("PINPIPE_TEST_KINESIS_ENDPOINT") else {
        eprintln!("PINPIPE_TEST_KINESIS_ENDPOINT is not set: skipping the Kinesis stream bench");
        return;
    };
    let url = format!("kinesis://us-east-1?endpoint={endpoint}");
    let report = bench(&[
        "stream",
        "--seconds",
        "1",
        "--rates",
        "50",
        "--max-connections",
        "4",
        "--cuts",
        "250ms",
        "--backend",
        &url,
    ]);
    let lines: Vec<&str> = report.lines().collect();
    let rest = lines[1].strip_prefix(&format!("backend: {url} streams (PUT /streams/")).expect(&report);
    let (stream, tail) = rest.split_once("/record").expect(&report);
    assert_eq!(tail, ", 1 shard; GetRecords at most every 200 ms per shard)", "{report}");
    let rows = rows(&report, "cut");
    let names: Vec<(&str, &str)> = rows.iter().map(|r| (r[0], r[1])).collect();
    assert_eq!(names, [("250ms", "50 records/s"), ("250ms", "max (4 connections)")], "{report}");
    for r in &rows {
        // Every acknowledged record was seen in the table (else the bench fails), after at
        // least one Kinesis read.
        let records: u64 = r[3].parse().unwrap();
        assert!(records > 0 && ms(r[4]) > 0.0 && ms(r[6]) >= ms(r[5]) && ms(r[5]) >= ms(r[4]), "{report}");
    }
    let streams = eventlog::open(&url.parse().unwrap(), Namespace::Streams).await.unwrap();
    let left = streams.list().await.unwrap();
    let id = stream.strip_prefix("streaming-").and_then(|s| s.strip_suffix("-pin")).expect(&report);
    assert!(!left.iter().any(|s| s.contains(id)), "streams of {id} were left on the endpoint: {left:?}");
}

#[test]
fn stream_bench_measures_each_cut_beside_the_others_on_the_embedded_log() {
    let report = bench(&["stream", "--seconds", "1", "--rates", "100", "--max-connections", "0", "--cuts", "1s,100ms"]);
    assert!(report.lines().nth(1).unwrap().starts_with("backend: embedded streams (PUT /streams/"), "{report}");
    let rows = rows(&report, "cut");
    let names: Vec<(&str, &str)> = rows.iter().map(|r| (r[0], r[1])).collect();
    assert_eq!(names, [("1s", "100 records/s"), ("100ms", "100 records/s")], "{report}");
    assert!(report.trim_end().ends_with("with the 1s cut, 0 with the 100ms cut"), "too few files to compact: {report}");
    for r in &rows {
        let records: u64 = r[3].parse().unwrap();
        assert!(records > 0 && ms(r[6]) >= ms(r[5]) && ms(r[5]) >= ms(r[4]), "{report}");
    }
}

#[test]
fn soak_bench_samples_every_process_and_finds_every_acknowledged_record_once() {
    let mut args =
        vec!["soak", "--duration", "20s", "--rate", "10", "--retention", "10s", "--sample", "4s", "--warmup", "8s"];
    let python = std::env::var("PINPIPE_TEST_PYTHON").ok();
    if let Some(python) = &python {
        args.extend(["--python", python]);
    }
    let report = bench(&args);
    assert!(
        report.starts_with(
            "soak: 20s at 10 posts/s per mode (batch and stream), retention 10s, sampled every 4s, warm-up 8s"
        ),
        "{report}"
    );
    let samples: Vec<Vec<&str>> =
        rows(&report, "      t").into_iter().take_while(|r| r.len() == 11 && r[0].ends_with('s')).collect();
    assert!(samples.len() >= 4, "{report}");
    for row in &samples {
        // Every process was alive and measured; the log and the lake grew.
        for cell in &row[1..5] {
            assert!(cell.parse::<f64>().unwrap() > 0.0, "{row:?} in {report}");
        }
    }
    let last = samples.last().unwrap();
    assert!(last[5].parse::<u64>().unwrap() > 0 && last[6].parse::<u64>().unwrap() > 0, "{report}");
    // The pin table's data files, and with a Python, how long it took to read.
    assert!(last[7].parse::<u64>().unwrap() > 0, "{report}");
    if python.is_some() {
        assert!(last[8].parse::<f64>().is_ok(), "a Python deltalake read time: {report}");
    }
    for process in ["gateway RSS", "sink RSS", "stream RSS", "log "] {
        assert!(report.lines().any(|l| l.trim_start().starts_with(process) && l.contains("MB/min")), "{report}");
    }
    let checks: Vec<&str> = report.lines().filter(|l| l.trim_start().starts_with('[')).collect();
    assert_eq!(checks.len(), 8, "{report}");
    assert!(checks.iter().all(|l| l.trim_start().starts_with("[ok]")), "{report}");
    assert!(report.trim_end().ends_with("nothing lost or doubled"), "{report}");
}
