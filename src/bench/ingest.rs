//! `pinpipe bench ingest`: drives the real gateway over loopback with 1-record and 100-record
//! requests, and the same load against a bare axum handler that returns a fixed body.
//!
//! The gateway appends to a temporary embedded log (durable, group commit on) unless `--backend`
//! names another ([`super::backend`]); each run creates a fresh one-partition log before the load
//! and deletes it after. The requests are those of the route the backend serves ([`Route`]):
//! Kafka REST `POST /topics/bench-<uuid>.pin` on the embedded log and Kafka, `PUT
//! /streams/streaming-bench-<uuid>-pin/record` (1 record) and `…/records` (100) on Kinesis. It
//! owns nothing the pipeline uses; it only calls the gateway and the log.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{post, put};
use hdrhistogram::Histogram;
use reqwest::Method;
use tokio_util::sync::CancellationToken;

use super::backend::{self, Backend, BenchLogs};
use crate::eventlog::{ClientSettings, Namespace};

/// Options of `pinpipe bench ingest`.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Seconds of load per case.
    pub seconds: Duration,
    /// Requests in flight at once (keep-alive connections); each level is a separate round.
    pub concurrency: Vec<usize>,
    /// The log the gateway appends to: `embedded` (a temporary folder), or a URL such as
    /// kafka://127.0.0.1:9092 or kinesis://us-east-1?endpoint=http://127.0.0.1:4567. A fresh
    /// topic (on Kinesis: a stream, fed through the Kinesis-proxy routes) is created there for
    /// the run and deleted after; the `[kafka]` settings of the config file apply.
    pub backend: Backend,
}

/// Errors that stop a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("setting up the benchmark's log and gateway")]
    Setup(#[from] backend::Error),
    #[error("starting the bare handler")]
    Io(#[from] std::io::Error),
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("{case}: {failed} of {total} requests failed (last: {last})")]
    Failures { case: String, failed: u64, total: u64, last: String },
}

/// One measured case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// `bare axum handler` or `gateway + <kind> log` (the backend the row used).
    pub name: String,
    pub concurrency: usize,
    pub records_per_request: usize,
    pub requests: u64,
    pub seconds: f64,
    pub p50: Duration,
    pub p99: Duration,
}

impl CaseResult {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    pub fn records_per_second(&self) -> f64 {
        self.requests_per_second() * self.records_per_request as f64
    }
}

/// All cases of one `bench ingest` run.
#[derive(Debug, Clone)]
pub struct IngestReport {
    /// The backend the gateway rows used (URL with secrets hidden, or `embedded`).
    pub backend: Backend,
    /// The route driven, with the log it appended to (`POST /topics/<topic>`, …).
    pub route: String,
    pub cases: Vec<CaseResult>,
}

impl fmt::Display for IngestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let durable = match self.backend.kind() {
            "embedded" => "durable: fsync before each answer",
            "kafka" => "durable: acks=all before each answer",
            "kinesis" => "durable: PutRecords accepted before each answer",
            _ => "durable before each answer",
        };
        writeln!(f, "ingest benchmark: loopback HTTP/1.1 keep-alive, {}", self.route)?;
        writeln!(f, "backend: {} log ({durable})", self.backend)?;
        writeln!(
            f,
            "{:<24} {:>5} {:>8} {:>12} {:>12} {:>10} {:>10}",
            "case", "conns", "rec/req", "requests/s", "records/s", "p50", "p99"
        )?;
        for c in &self.cases {
            writeln!(
                f,
                "{:<24} {:>5} {:>8} {:>12.0} {:>12.0} {:>10} {:>10}",
                c.name,
                c.concurrency,
                c.records_per_request,
                c.requests_per_second(),
                c.records_per_second(),
                format!("{:.2}ms", c.p50.as_secs_f64() * 1e3),
                format!("{:.2}ms", c.p99.as_secs_f64() * 1e3),
            )?;
        }
        for pair in self.cases.chunks(2) {
            if let [bare, gw] = pair {
                writeln!(
                    f,
                    "gateway / bare handler, {} conns, {} record(s) per request: {:.0}% of the request rate",
                    gw.concurrency,
                    gw.records_per_request,
                    100.0 * gw.requests_per_second() / bare.requests_per_second()
                )?;
            }
        }
        Ok(())
    }
}

/// A post as the emulator sends it (about 1 KB of JSON), the unit of every request body.
const SAMPLE_PIN: &str = r#"{"index":7528,"unique_id":"fbe53c66-3442-4773-b19e-d3ec6f54dddf","title":"No Title Data Available","description":"No description available Story format","poster_name":"User Info Error","follower_count":"User Info Error","tag_list":"N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e","is_image_or_video":"multi-video(story page format)","image_src":"Image src error.","downloaded":0,"save_location":"Local save in /data/mens-fashion","category":"mens-fashion"}"#;

/// The gateway routes a run drives: those whose log is the backend measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /topics/{topic}` (Kafka REST proxy v2) into the topics log.
    KafkaRest,
    /// `PUT /streams/{name}/record` and `…/records` (the Kinesis proxy) into the streams log.
    Kinesis,
}

impl Route {
    /// The route a backend serves: Kinesis holds streams; the embedded log and Kafka, topics.
    pub fn of(backend: &Backend) -> Route {
        if backend.kind() == "kinesis" { Route::Kinesis } else { Route::KafkaRest }
    }

    fn namespace(self) -> Namespace {
        match self {
            Route::KafkaRest => Namespace::Topics,
            Route::Kinesis => Namespace::Streams,
        }
    }

    /// The one log of pipeline `id` the run appends to.
    fn log_name(self, id: &str) -> String {
        match self {
            Route::KafkaRest => crate::contract::topic(id, crate::contract::Table::Pin),
            Route::Kinesis => crate::contract::stream(id, crate::contract::Table::Pin),
        }
    }

    /// What the report's header says was driven.
    fn describe(self, log: &str) -> String {
        match self {
            Route::KafkaRest => format!("POST /topics/{log}"),
            Route::Kinesis => format!("PUT /streams/{log}/record (1 record), /records (100)"),
        }
    }

    /// A request of `records` posts to `log` on the server at `addr`.
    fn request(self, addr: SocketAddr, log: &str, records: usize) -> Request {
        match self {
            Route::KafkaRest => {
                let one = format!(r#"{{"value":{SAMPLE_PIN}}}"#);
                Request {
                    method: Method::POST,
                    url: format!("http://{addr}/topics/{log}"),
                    content_type: "application/vnd.kafka.json.v2+json",
                    body: format!(r#"{{"records":[{}]}}"#, vec![one; records].join(",")).into(),
                }
            }
            Route::Kinesis if records == 1 => Request {
                method: Method::PUT,
                url: format!("http://{addr}/streams/{log}/record"),
                content_type: "application/json",
                body: format!(r#"{{"StreamName":"{log}","Data":{SAMPLE_PIN},"PartitionKey":"0"}}"#).into(),
            },
            Route::Kinesis => {
                let entries: Vec<String> =
                    (0..records).map(|i| format!(r#"{{"Data":{SAMPLE_PIN},"PartitionKey":"{i}"}}"#)).collect();
                Request {
                    method: Method::PUT,
                    url: format!("http://{addr}/streams/{log}/records"),
                    content_type: "application/json",
                    body: format!(r#"{{"StreamName":"{log}","Records":[{}]}}"#, entries.join(",")).into(),
                }
            }
        }
    }
}

/// One request, sent again and again by a case's loops.
#[derive(Debug, Clone)]
struct Request {
    method: Method,
    url: String,
    content_type: &'static str,
    body: bytes::Bytes,
}

/// Runs the ingest benchmark: bare handler and gateway, at 1 and 100 records per request, with
/// the `[kafka]` client `settings` of the configuration file for a `kafka://` backend.
pub async fn run(opts: &IngestOptions, settings: &ClientSettings) -> Result<IngestReport, Error> {
    let route = Route::of(&opts.backend);
    let mut logs = BenchLogs::open(&opts.backend, route.namespace(), settings).await?;
    let stop = CancellationToken::new();
    let measured = measure(opts, route, &mut logs, &stop).await;
    stop.cancel();
    logs.remove().await;
    measured
}

async fn measure(
    opts: &IngestOptions,
    route: Route,
    logs: &mut BenchLogs,
    stop: &CancellationToken,
) -> Result<IngestReport, Error> {
    let log = route.log_name(&logs.id);
    logs.create(route.namespace(), &log).await?;
    let bare = spawn_server(bare_app(), stop).await?;
    let gw = logs.serve(stop.child_token()).await?;
    let gateway_row = format!("gateway + {} log", logs.backend.kind());

    let duration = opts.seconds;
    let mut cases = Vec::new();
    for &concurrency in &opts.concurrency {
        let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().map_err(Error::Client)?;
        for size in [1, 100] {
            // Baseline first, then the gateway, under the same load: each pair is one ratio.
            for (name, addr) in [("bare axum handler", bare), (gateway_row.as_str(), gw)] {
                let request = route.request(addr, &log, size);
                cases.push(drive(&client, name, &request, size, concurrency, duration).await?);
            }
        }
    }
    Ok(IngestReport { backend: logs.backend.clone(), route: route.describe(&log), cases })
}

/// The baseline: accepts the body and answers the gateway's reply shape (one record's) without
/// touching it, on each route.
fn bare_app() -> Router {
    use axum::http::header::CONTENT_TYPE;
    const KAFKA: &str = r#"{"offsets":[{"partition":0,"offset":0,"error_code":null,"error":null}],"key_schema_id":null,"value_schema_id":null}"#;
    const RECORD: &str = r#"{"ShardId":"shardId-000000000000","SequenceNumber":"00000000000000000000"}"#;
    const RECORDS: &str = r#"{"FailedRecordCount":0,"Records":[{"SequenceNumber":"00000000000000000000","ShardId":"shardId-000000000000"}]}"#;
    Router::new()
        .route(
            "/topics/{topic}",
            post(|_body: axum::body::Bytes| async { ([(CONTENT_TYPE, "application/vnd.kafka.v2+json")], KAFKA) }),
        )
        .route(
            "/streams/{name}/record",
            put(|_body: axum::body::Bytes| async { ([(CONTENT_TYPE, "application/json")], RECORD) }),
        )
        .route(
            "/streams/{name}/records",
            put(|_body: axum::body::Bytes| async { ([(CONTENT_TYPE, "application/json")], RECORDS) }),
        )
}

async fn spawn_server(app: Router, stop: &CancellationToken) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = stop.child_token();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
    });
    Ok(addr)
}

/// `concurrency` loops sending `request` for `duration`; latency per request.
async fn drive(
    client: &reqwest::Client,
    name: &str,
    request: &Request,
    records: usize,
    concurrency: usize,
    duration: Duration,
) -> Result<CaseResult, Error> {
    // Warm the connection pool and the log so the first fsyncs do not count.
    for _ in 0..concurrency.min(8) {
        let _ = send_once(client, request).await;
    }
    let started = Instant::now();
    let deadline = started + duration;
    let loops: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (client, request) = (client.clone(), request.clone());
            tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds");
                let (mut failed, mut last) = (0u64, String::new());
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match send_once(&client, &request).await {
                        Ok(()) => {
                            let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                        }
                        Err(e) => {
                            failed += 1;
                            last = e;
                        }
                    }
                }
                (hist, failed, last)
            })
        })
        .collect();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds");
    let (mut failed, mut last) = (0, String::new());
    for handle in loops {
        let (h, f, l) = handle.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let _ = hist.add(&h);
        failed += f;
        if !l.is_empty() {
            last = l;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if failed > 0 {
        return Err(Error::Failures { case: name.into(), failed, total: hist.len() + failed, last });
    }
    Ok(CaseResult {
        name: name.to_string(),
        concurrency,
        records_per_request: records,
        requests: hist.len(),
        seconds,
        p50: Duration::from_micros(hist.value_at_quantile(0.50)),
        p99: Duration::from_micros(hist.value_at_quantile(0.99)),
    })
}

async fn send_once(client: &reqwest::Client, request: &Request) -> Result<(), String> {
    let response = client
        .request(request.method.clone(), &request.url)
        .header("content-type", request.content_type)
        .body(request.body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let _ = response.bytes().await.map_err(|e| e.to_string())?;
    if status.is_success() { Ok(()) } else { Err(format!("HTTP {status}")) }
}
