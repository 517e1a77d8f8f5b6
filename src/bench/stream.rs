//! `pinpipe bench stream`: end-to-end latency from the gateway's HTTP 200 to the row being
//! visible in the Delta table, at fixed rates and at the sustained maximum.
//!
//! Runs the real gateway, the embedded log and the stream job (default settings: micro-batches cut
//! at 1 s) in this process over a temporary folder, sends posts with `PUT
//! /streams/streaming-bench-pin/record`, and watches the `pin` table's committed stream position
//! (its Delta `txn` version, what any reader sees) every 10 ms: a record is visible once the
//! committed offset reaches its own, which the gateway's `SequenceNumber` names.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::clean::Table;
use crate::eventlog::{self, Namespace};
use crate::lake::Lake;
use crate::{gateway, lake, stream};

/// Options of `pinpipe bench stream`.
#[derive(Debug, Clone, clap::Args)]
pub struct StreamBenchOptions {
    /// Fixed rates to measure, in records per second.
    #[arg(long, env = "PINPIPE_BENCH_RATES", value_delimiter = ',', default_values_t = [1000, 5000])]
    pub rates: Vec<u32>,
    /// Seconds of load per round.
    #[arg(long, env = "PINPIPE_BENCH_SECONDS", default_value_t = 10.0)]
    pub seconds: f64,
    /// Connections of the closed-loop round that finds the sustained maximum (0 skips it).
    #[arg(long, env = "PINPIPE_CONCURRENCY", default_value_t = 64)]
    pub max_connections: usize,
}

/// Errors that stop the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("preparing the temporary event log")]
    Log(#[from] eventlog::Error),
    #[error("opening the temporary lake")]
    Lake(#[from] lake::Error),
    #[error("the stream job")]
    Stream(#[from] stream::Error),
    #[error("starting the gateway")]
    Io(#[from] std::io::Error),
    #[error("building the gateway")]
    Gateway(#[from] gateway::Error),
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("{failed} requests failed in the {round} round (last: {last})")]
    Failures { round: String, failed: u64, last: String },
    #[error("{missing} acknowledged records never became visible in the {round} round")]
    NeverVisible { round: String, missing: usize },
}

/// One round's figures.
#[derive(Debug, Clone)]
pub struct Round {
    pub name: String,
    /// Records acknowledged per second over the round.
    pub achieved: f64,
    pub records: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// All rounds of one run.
#[derive(Debug, Clone)]
pub struct StreamBenchReport {
    pub rounds: Vec<Round>,
}

impl fmt::Display for StreamBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "stream benchmark: HTTP 200 from the gateway → row visible in the Delta table (stream job defaults)"
        )?;
        writeln!(f, "{:<28} {:>12} {:>9} {:>10} {:>10} {:>10}", "round", "records/s", "records", "p50", "p99", "max")?;
        for r in &self.rounds {
            let ms = |d: Duration| format!("{:.0}ms", d.as_secs_f64() * 1e3);
            writeln!(
                f,
                "{:<28} {:>12.0} {:>9} {:>10} {:>10} {:>10}",
                r.name,
                r.achieved,
                r.records,
                ms(r.p50),
                ms(r.p99),
                ms(r.max)
            )?;
        }
        Ok(())
    }
}

const STREAM: &str = "streaming-bench-pin";

/// When each acknowledged offset was acknowledged.
type Acks = Arc<Mutex<HashMap<u64, Instant>>>;

/// Runs the rounds: each fixed rate, then the closed-loop maximum.
pub async fn run(opts: &StreamBenchOptions) -> Result<StreamBenchReport, Error> {
    let dir = tempfile::Builder::new().prefix("pinpipe-bench-stream-").tempdir()?;
    let log_url = format!("embedded://{}", dir.path().join("log").display());
    let topics = eventlog::open(&log_url, Namespace::Topics).await?;
    let streams = eventlog::open(&log_url, Namespace::Streams).await?;
    eventlog::ensure_defaults(&*streams, "bench").await?;
    let lake = Lake::open(&format!("file://{}", dir.path().join("lake").display()))?;

    let stop = CancellationToken::new();
    let state = gateway::AppState::new(gateway::GatewayConfig::default(), topics, Arc::clone(&streams))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/streams/{STREAM}/record", listener.local_addr()?);
    tokio::spawn(gateway::serve(listener, state, stop.child_token()));
    let job_cfg = stream::StreamConfig {
        id: "bench".into(),
        max_batch_records: 10_000,
        max_latency: Duration::from_secs(1),
        drain: false,
        checkpoint_every: 100,
        worker: crate::config::Worker::ALL,
    };
    let job = {
        let (lake, stop) = (lake.clone(), stop.child_token());
        tokio::spawn(async move { stream::run(&job_cfg, streams, &lake, stop).await })
    };
    let mut progress = stream::Progress::open(&lake, "bench", Table::Pin).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().map_err(Error::Client)?;
    let duration = Duration::from_secs_f64(opts.seconds.max(0.5));

    let mut rounds = Vec::new();
    let mut next_index = 0u64;
    let mut plan: Vec<(String, Load)> =
        opts.rates.iter().map(|&r| (format!("{r} records/s"), Load::Rate(f64::from(r.max(1))))).collect();
    if opts.max_connections > 0 {
        plan.push((format!("max ({} connections)", opts.max_connections), Load::Closed(opts.max_connections)));
    }
    for (name, load) in plan {
        let acks: Acks = Arc::default();
        let done = AtomicBool::new(false);
        let started = Instant::now();
        // Watch while sending: a record's latency ends at the first poll that sees it.
        let (driven, watched) = tokio::join!(
            async {
                let driven = drive(&client, &url, load, duration, &mut next_index, &acks).await;
                done.store(true, Ordering::Release);
                (driven, started.elapsed().as_secs_f64())
            },
            watch(&mut progress, &acks, &done, Duration::from_secs(15)),
        );
        let ((sent, failed, last), elapsed) = driven;
        if failed > 0 {
            stop.cancel();
            return Err(Error::Failures { round: name, failed, last });
        }
        let latencies = match watched? {
            Ok(latencies) => latencies,
            Err(missing) => {
                stop.cancel();
                return Err(Error::NeverVisible { round: name, missing });
            }
        };
        rounds.push(Round {
            name,
            achieved: sent as f64 / elapsed,
            records: sent,
            p50: Duration::from_micros(latencies.value_at_quantile(0.50)),
            p99: Duration::from_micros(latencies.value_at_quantile(0.99)),
            max: Duration::from_micros(latencies.max()),
        });
    }
    stop.cancel();
    match job.await {
        Ok(result) => {
            result?;
        }
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
    Ok(StreamBenchReport { rounds })
}

/// How a round sends.
#[derive(Debug, Clone, Copy)]
enum Load {
    /// Open loop at a fixed rate (records per second), however long answers take.
    Rate(f64),
    /// Closed loop: this many senders, each sending as soon as its last answer came.
    Closed(usize),
}

/// Sends for `duration`; returns (acknowledged, failed, last failure).
async fn drive(
    client: &reqwest::Client,
    url: &str,
    load: Load,
    duration: Duration,
    next_index: &mut u64,
    acks: &Acks,
) -> (u64, u64, String) {
    let started = Instant::now();
    let (permits, rate) = match load {
        Load::Rate(rate) => (Arc::new(Semaphore::new(1024)), Some(rate)),
        Load::Closed(n) => (Arc::new(Semaphore::new(n.max(1))), None),
    };
    let outcomes: Arc<Mutex<(u64, u64, String)>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut issued = 0u64;
    while started.elapsed() < duration {
        if let Some(rate) = rate {
            let due = (started.elapsed().as_secs_f64() * rate) as u64;
            if issued >= due {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        }
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
        let index = *next_index;
        *next_index += 1;
        issued += 1;
        let (client, url, acks, outcomes) = (client.clone(), url.to_string(), Arc::clone(acks), Arc::clone(&outcomes));
        tasks.spawn(async move {
            let result = put(&client, &url, index).await;
            let mut outcomes = outcomes.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(offset) => {
                    acks.lock().unwrap_or_else(|p| p.into_inner()).insert(offset, Instant::now());
                    outcomes.0 += 1;
                }
                Err(e) => {
                    outcomes.1 += 1;
                    outcomes.2 = e;
                }
            }
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    let outcomes = outcomes.lock().unwrap_or_else(|p| p.into_inner());
    outcomes.clone()
}

/// One post, like the emulator's stream mode; returns the offset the gateway acknowledged.
async fn put(client: &reqwest::Client, url: &str, index: u64) -> Result<u64, String> {
    let body = format!(
        r#"{{"StreamName":"{STREAM}","Data":{{"index":{index},"unique_id":"u{index}","title":"t","description":"d","poster_name":"p","follower_count":"12k","tag_list":"a,b","is_image_or_video":"image","image_src":"https://i.pinimg.com/x.jpg","downloaded":1,"save_location":"Local save in /data/art","category":"art"}},"PartitionKey":"{index}"}}"#
    );
    let reply = client
        .put(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = reply.status();
    let json: serde_json::Value = reply.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {json}"));
    }
    json["SequenceNumber"].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| format!("no SequenceNumber in {json}"))
}

/// Polls the table until sending is `done` and every acknowledged offset is visible; the latency
/// of each is the time between its acknowledgement and the poll that first saw it.
/// `Err(missing)` when some are still not visible `timeout` after sending ended.
async fn watch(
    progress: &mut stream::Progress,
    acks: &Acks,
    done: &AtomicBool,
    timeout: Duration,
) -> Result<Result<Histogram<u64>, usize>, Error> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds");
    let mut deadline = None;
    loop {
        let finished = done.load(Ordering::Acquire);
        let visible = progress.visible(0).await?;
        let now = Instant::now();
        {
            let mut acks = acks.lock().unwrap_or_else(|p| p.into_inner());
            acks.retain(|&offset, &mut acked| {
                let seen = visible.is_some_and(|v| offset <= v);
                if seen {
                    let _ = hist.record(now.saturating_duration_since(acked).as_micros().max(1) as u64);
                }
                !seen
            });
            if finished && acks.is_empty() {
                return Ok(Ok(hist));
            }
            if finished && now > *deadline.get_or_insert(now + timeout) {
                return Ok(Err(acks.len()));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
