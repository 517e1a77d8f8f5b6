//! `pinpipe bench ingest`: drives the real gateway over loopback with 1-record and 100-record Kafka
//! REST requests, and the same load against a bare axum handler that returns a fixed body.
//!
//! The gateway appends to a temporary embedded log (durable, group commit on) unless `--backend`
//! names another ([`super::backend`]): on Kafka or Kinesis each run creates a fresh one-partition
//! topic `bench-<uuid>.pin` before the load and deletes it after. It owns nothing the pipeline
//! uses; it only calls the gateway and the log.

use std::fmt;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use super::backend::{self, Backend, BenchLogs};
use crate::eventlog::{ClientSettings, Namespace};

/// Options of `pinpipe bench ingest`.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestOptions {
    /// Seconds of load per case.
    #[arg(long, env = "PINPIPE_BENCH_SECONDS", default_value_t = 5.0)]
    pub seconds: f64,
    /// Requests in flight at once (keep-alive connections); each level is a separate round.
    #[arg(long, env = "PINPIPE_CONCURRENCY", value_delimiter = ',', default_values_t = [32, 64])]
    pub concurrency: Vec<usize>,
    /// The log the gateway appends to: `embedded` (a temporary folder), or a URL such as
    /// kafka://127.0.0.1:9092 or kinesis://us-east-1?endpoint=http://127.0.0.1:4567 (a fresh
    /// topic is created there for the run and deleted after; `[kafka]` settings of the config
    /// file apply).
    #[arg(long, env = "PINPIPE_BENCH_BACKEND", default_value = "embedded", value_name = "embedded|URL")]
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
    #[error("--seconds must be a finite number of seconds, not {0}")]
    Seconds(f64),
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
    /// The topic the gateway appended to.
    pub topic: String,
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
        writeln!(f, "ingest benchmark: loopback HTTP/1.1 keep-alive, POST /topics/{}", self.topic)?;
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

fn kafka_body(records: usize) -> String {
    let one = format!(r#"{{"value":{SAMPLE_PIN}}}"#);
    format!(r#"{{"records":[{}]}}"#, vec![one; records].join(","))
}

/// Runs the ingest benchmark: bare handler and gateway, at 1 and 100 records per request, with
/// the `[kafka]` client `settings` of the configuration file for a `kafka://` backend.
pub async fn run(opts: &IngestOptions, settings: &ClientSettings) -> Result<IngestReport, Error> {
    if !opts.seconds.is_finite() {
        return Err(Error::Seconds(opts.seconds));
    }
    let mut logs = BenchLogs::open(&opts.backend, Namespace::Topics, settings).await?;
    let stop = CancellationToken::new();
    let measured = measure(opts, &mut logs, &stop).await;
    stop.cancel();
    logs.remove().await;
    measured
}

async fn measure(opts: &IngestOptions, logs: &mut BenchLogs, stop: &CancellationToken) -> Result<IngestReport, Error> {
    let topic = format!("{}.pin", logs.id);
    logs.create(Namespace::Topics, &topic).await?;
    let bare = spawn_server(bare_app(), stop).await?;
    let gw = logs.serve(stop.child_token()).await?;
    let gateway_row = format!("gateway + {} log", logs.backend.kind());

    let duration = Duration::from_secs_f64(opts.seconds.max(0.1));
    let mut cases = Vec::new();
    for &concurrency in &opts.concurrency {
        let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().map_err(Error::Client)?;
        for size in [1, 100] {
            let body = kafka_body(size);
            // Baseline first, then the gateway, under the same load: each pair is one ratio.
            for (name, url) in [
                ("bare axum handler", format!("http://{bare}/topics/{topic}")),
                (gateway_row.as_str(), format!("http://{gw}/topics/{topic}")),
            ] {
                cases.push(drive(&client, name, &url, &body, size, concurrency, duration).await?);
            }
        }
    }
    Ok(IngestReport { backend: logs.backend.clone(), topic, cases })
}

/// The baseline: accepts the body and answers the gateway's reply shape without touching it.
fn bare_app() -> Router {
    const REPLY: &str = r#"{"offsets":[{"partition":0,"offset":0,"error_code":null,"error":null}],"key_schema_id":null,"value_schema_id":null}"#;
    Router::new().route(
        "/topics/{topic}",
        post(|_body: axum::body::Bytes| async {
            ([(axum::http::header::CONTENT_TYPE, "application/vnd.kafka.v2+json")], REPLY)
        }),
    )
}

async fn spawn_server(app: Router, stop: &CancellationToken) -> Result<std::net::SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = stop.child_token();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
    });
    Ok(addr)
}

/// `concurrency` loops sending `body` to `url` for `duration`; latency per request.
async fn drive(
    client: &reqwest::Client,
    name: &str,
    url: &str,
    body: &str,
    records: usize,
    concurrency: usize,
    duration: Duration,
) -> Result<CaseResult, Error> {
    let body = bytes::Bytes::from(body.to_string());
    // Warm the connection pool and the log so the first fsyncs do not count.
    for _ in 0..concurrency.min(8) {
        let _ = post_once(client, url, body.clone()).await;
    }
    let started = Instant::now();
    let deadline = started + duration;
    let loops: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (client, url, body) = (client.clone(), url.to_string(), body.clone());
            tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds");
                let (mut failed, mut last) = (0u64, String::new());
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match post_once(&client, &url, body.clone()).await {
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

async fn post_once(client: &reqwest::Client, url: &str, body: bytes::Bytes) -> Result<(), String> {
    let response = client
        .post(url)
        .header("content-type", "application/vnd.kafka.json.v2+json")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let _ = response.bytes().await.map_err(|e| e.to_string())?;
    if status.is_success() { Ok(()) } else { Err(format!("HTTP {status}")) }
}
