//! `pinpipe bench stream`: end-to-end latency from the gateway's HTTP 200 to the row being
//! visible in the Delta table, at fixed rates and at the sustained maximum.
//!
//! Runs the real gateway and the stream job (default settings, compaction included, with
//! micro-batches cut at each of `--cuts`: the old default 1 s beside today's
//! [`stream::DEFAULT_MAX_LATENCY`]) in this process, with the streams in a temporary embedded log
//! or on the backend `--backend` names
//! (`kinesis://…`: fresh one-shard streams `streaming-bench-<uuid>-{pin,geo,user}`, created before
//! the load and deleted after; see [`super::backend`]) and the Delta tables in a temporary folder.
//! It sends posts with `PUT /streams/<stream>/record` and watches the `pin` table's committed
//! stream position (its Delta `txn` version, what any reader sees) every 10 ms.
//!
//! A record is visible once the committed offset reaches the record's own. The gateway answers
//! with the record's sequence number, which on the embedded log is the offset itself but on
//! Kinesis is the service's (a number that is not the offset the stream job counts). Both order
//! the records of a shard as the stream job reads them, and the run's stream holds only the
//! run's records, so once a round has been acknowledged its record with the `n`-th smallest
//! sequence number (counting the earlier rounds') is at offset `n`: each record's latency is
//! the time from its 200 to the first poll that saw its offset committed (zero if that poll came
//! before the 200 did).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::backend::{self, Backend, BenchLogs};
use crate::clean::Table;
use crate::eventlog::{ClientSettings, Namespace};
use crate::lake::Lake;
use crate::settings::{LakeUrl, display_duration};
use crate::{lake, stream};

/// Options of `pinpipe bench stream`.
#[derive(Debug, Clone)]
pub struct StreamBenchOptions {
    /// Fixed rates to measure, in records per second.
    pub rates: Vec<u32>,
    /// Seconds of load per round.
    pub seconds: Duration,
    /// Connections of the closed-loop round that finds the sustained maximum (0 skips it).
    pub max_connections: usize,
    /// The micro-batch cuts (the stream job's `max_latency`) to measure, each a run of every
    /// round on fresh streams and tables, in order.
    pub cuts: Vec<Duration>,
    /// Where the streams live: `embedded` (a temporary folder), or a URL such as
    /// kinesis://us-east-1?endpoint=http://127.0.0.1:4567 (fresh streams are created there for
    /// the run and deleted after). Kinesis allows five GetRecords calls a second per shard, so
    /// the stream job's reads of a shard are at least 200 ms apart there: expect that much more
    /// latency.
    pub backend: Backend,
}

/// Errors that stop the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("setting up the benchmark's streams and gateway")]
    Setup(#[from] backend::Error),
    #[error("opening the temporary lake")]
    Lake(#[from] lake::Error),
    #[error("the stream job")]
    Stream(#[from] stream::Error),
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("{failed} requests failed in the {round} round (last: {last})")]
    Failures { round: String, failed: u64, last: String },
    #[error("{missing} acknowledged records never became visible in the {round} round")]
    NeverVisible { round: String, missing: u64 },
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
    /// The backend the streams were on (URL with secrets hidden, or `embedded`).
    pub backend: Backend,
    /// The stream the posts went to (of the last cut's run).
    pub stream: String,
    /// Per cut measured, its rounds.
    pub cuts: Vec<CutRun>,
}

/// The rounds of one cut.
#[derive(Debug, Clone)]
pub struct CutRun {
    /// The stream job's `max_latency`.
    pub cut: Duration,
    pub rounds: Vec<Round>,
    /// Compactions of the pin table while the rounds ran (the latency holds while they run).
    pub compactions: usize,
}

impl fmt::Display for StreamBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "stream benchmark: HTTP 200 from the gateway → row visible in the Delta table (stream job defaults, micro-batches cut at each `cut`)"
        )?;
        let pacing = match self.backend.kind() {
            "kinesis" => "; GetRecords at most every 200 ms per shard",
            _ => "",
        };
        writeln!(f, "backend: {} streams (PUT /streams/{}/record, 1 shard{pacing})", self.backend, self.stream)?;
        writeln!(
            f,
            "{:<10} {:<28} {:>12} {:>9} {:>10} {:>10} {:>10}",
            "cut", "round", "records/s", "records", "p50", "p99", "max"
        )?;
        for run in &self.cuts {
            let (cut, rounds) = (&run.cut, &run.rounds);
            for r in rounds {
                let ms = |d: Duration| format!("{:.0}ms", d.as_secs_f64() * 1e3);
                writeln!(
                    f,
                    "{:<10} {:<28} {:>12.0} {:>9} {:>10} {:>10} {:>10}",
                    display_duration(*cut),
                    r.name,
                    r.achieved,
                    r.records,
                    ms(r.p50),
                    ms(r.p99),
                    ms(r.max)
                )?;
            }
        }
        let compactions: Vec<String> =
            self.cuts.iter().map(|c| format!("{} with the {} cut", c.compactions, display_duration(c.cut))).collect();
        write!(f, "\ncompactions of the pin table during the rounds: {}", compactions.join(", "))
    }
}

/// A sequence number the gateway acknowledged, ordered as the decimal number it spells (Kinesis's
/// run to 56 digits, more than any integer type holds).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Sequence {
    /// Digits without leading zeros: compared first, so a longer number is a larger one.
    digits: usize,
    text: String,
}

impl Sequence {
    fn parse(text: &str) -> Option<Sequence> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let text = text.trim_start_matches('0').to_string();
        Some(Sequence { digits: text.len(), text })
    }
}

/// The sequence number of each record acknowledged in a round, with when its 200 arrived.
type Acks = Arc<Mutex<Vec<(Sequence, Instant)>>>;

/// Runs the rounds (each fixed rate, then the closed-loop maximum) for each cut, on fresh
/// streams and tables per cut; `settings` are the client settings of the configuration file.
pub async fn run(opts: &StreamBenchOptions, settings: &ClientSettings) -> Result<StreamBenchReport, Error> {
    let mut report = StreamBenchReport { backend: opts.backend.clone(), stream: String::new(), cuts: Vec::new() };
    for &cut in &opts.cuts {
        let mut logs = BenchLogs::open(&opts.backend, Namespace::Streams, settings).await?;
        let stop = CancellationToken::new();
        let measured = measure(opts, cut, &mut logs, &stop).await;
        stop.cancel();
        logs.remove().await;
        let (backend, stream, rounds, compactions) = measured?;
        (report.backend, report.stream) = (backend, stream);
        report.cuts.push(CutRun { cut, rounds, compactions });
    }
    Ok(report)
}

/// Creates the streams, starts the gateway and the stream job cutting micro-batches at `cut`,
/// runs the rounds and stops the job; the backend, the stream, the rounds and how many times the
/// pin table was compacted meanwhile.
async fn measure(
    opts: &StreamBenchOptions,
    cut: Duration,
    logs: &mut BenchLogs,
    stop: &CancellationToken,
) -> Result<(Backend, String, Vec<Round>, usize), Error> {
    for name in Namespace::Streams.default_names(&logs.id) {
        logs.create(Namespace::Streams, &name).await?;
    }
    let stream_name = crate::contract::stream(&logs.id, Table::Pin);
    let lake = Lake::open(&LakeUrl::File(logs.dir.path().join("lake")))?;
    let gw = logs.serve(stop.child_token()).await?;
    let url = format!("http://{gw}/streams/{stream_name}/record");
    // The stream job's defaults but the cut: what the README's latency figures are for.
    let job_cfg = stream::StreamConfig { max_latency: cut, ..stream::StreamConfig::new(&logs.id, false) };
    let job_stop = stop.child_token();
    let job = {
        let (lake, streams, job_stop) = (lake.clone(), Arc::clone(&logs.streams), job_stop.clone());
        tokio::spawn(async move { stream::run(&job_cfg, streams, &lake, job_stop).await })
    };
    let rounds = rounds(opts, &lake, &logs.id, &url, &stream_name).await;
    job_stop.cancel();
    let job = match job.await {
        Ok(result) => result,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    };
    // A job that failed on its own is why its rows never showed; stopped, it ends cleanly.
    job?;
    let rounds = rounds?;
    let compactions = compactions(&lake, &crate::contract::delta_table(&logs.id, Table::Pin)).await;
    Ok((logs.backend.clone(), stream_name, rounds, compactions))
}

/// The OPTIMIZE commits in the history of table `name` (0 if it cannot be read).
async fn compactions(lake: &Lake, name: &str) -> usize {
    use futures::StreamExt as _;
    let Ok(table) = crate::upkeep::open(lake, name).await else { return 0 };
    table
        .history(None)
        .filter(|info| std::future::ready(matches!(info, Ok(info) if info.operation.as_deref() == Some("OPTIMIZE"))))
        .count()
        .await
}

/// The rounds, against the gateway's `url` and the stream job of pipeline `id` writing to `lake`.
async fn rounds(
    opts: &StreamBenchOptions,
    lake: &Lake,
    id: &str,
    url: &str,
    stream_name: &str,
) -> Result<Vec<Round>, Error> {
    let mut progress = stream::Progress::open(lake, id, Table::Pin).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().map_err(Error::Client)?;
    let duration = opts.seconds;

    let mut rounds = Vec::new();
    let mut next_index = 0u64;
    // Records acknowledged by the earlier rounds: the offset this round's first record gets.
    let mut before = 0u64;
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
                let driven = drive(&client, url, stream_name, load, duration, &mut next_index, &acks).await;
                done.store(true, Ordering::Release);
                (driven, started.elapsed().as_secs_f64())
            },
            watch(&mut progress, &acks, before, &done, Duration::from_secs(15)),
        );
        let ((sent, failed, last), elapsed) = driven;
        if failed > 0 {
            return Err(Error::Failures { round: name, failed, last });
        }
        let seen = watched?.map_err(|missing| Error::NeverVisible { round: name.clone(), missing })?;
        let acks = std::mem::take(&mut *acks.lock().unwrap_or_else(|p| p.into_inner()));
        let latencies = latencies(acks, before, &seen);
        before += sent;
        rounds.push(Round {
            name,
            achieved: sent as f64 / elapsed,
            records: sent,
            p50: Duration::from_micros(latencies.value_at_quantile(0.50)),
            p99: Duration::from_micros(latencies.value_at_quantile(0.99)),
            max: Duration::from_micros(latencies.max()),
        });
    }
    Ok(rounds)
}

/// How a round sends.
#[derive(Debug, Clone, Copy)]
enum Load {
    /// Open loop at a fixed rate (records per second), however long answers take.
    Rate(f64),
    /// Closed loop: this many senders, each sending as soon as its last answer came.
    Closed(usize),
}

/// Sends to the stream `stream` at `url` for `duration`; returns (acknowledged, failed, last
/// failure).
async fn drive(
    client: &reqwest::Client,
    url: &str,
    stream: &str,
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
        let (client, url, stream) = (client.clone(), url.to_string(), stream.to_string());
        let (acks, outcomes) = (Arc::clone(acks), Arc::clone(&outcomes));
        tasks.spawn(async move {
            let result = put(&client, &url, &stream, index).await;
            let mut outcomes = outcomes.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(sequence) => {
                    acks.lock().unwrap_or_else(|p| p.into_inner()).push((sequence, Instant::now()));
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

/// One post, like the emulator's stream mode; returns the sequence number the gateway
/// acknowledged.
async fn put(client: &reqwest::Client, url: &str, stream: &str, index: u64) -> Result<Sequence, String> {
    let body = format!(
        r#"{{"StreamName":"{stream}","Data":{{"index":{index},"unique_id":"u{index}","title":"t","description":"d","poster_name":"p","follower_count":"12k","tag_list":"a,b","is_image_or_video":"image","image_src":"https://i.pinimg.com/x.jpg","downloaded":1,"save_location":"Local save in /data/art","category":"art"}},"PartitionKey":"{index}"}}"#
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
    json["SequenceNumber"].as_str().and_then(Sequence::parse).ok_or_else(|| format!("no SequenceNumber in {json}"))
}

/// Polls the table's committed offset of partition 0 until sending is `done` and the offsets of
/// all `before` earlier records and of every record in `acks` are committed; returns each new
/// committed offset with the poll that first saw it. `Err(missing)` when some are still not
/// visible `timeout` after sending ended.
async fn watch(
    progress: &mut stream::Progress,
    acks: &Acks,
    before: u64,
    done: &AtomicBool,
    timeout: Duration,
) -> Result<Result<Vec<(Instant, u64)>, u64>, Error> {
    let mut seen: Vec<(Instant, u64)> = Vec::new();
    let mut deadline = None;
    loop {
        let finished = done.load(Ordering::Acquire);
        let visible = progress.visible(0).await?;
        let now = Instant::now();
        if let Some(v) = visible.filter(|&v| seen.last().is_none_or(|&(_, last)| v > last)) {
            seen.push((now, v));
        }
        if finished {
            let expected = before + acks.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
            let committed = visible.map_or(0, |v| v + 1);
            if committed >= expected {
                return Ok(Ok(seen));
            }
            if now > *deadline.get_or_insert(now + timeout) {
                return Ok(Err(expected - committed));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The latency of each acknowledged record: ranked by sequence number after the `before`
/// records of earlier rounds it sits at that offset, visible from the first poll in `seen` whose
/// committed offset reaches it.
fn latencies(mut acks: Vec<(Sequence, Instant)>, before: u64, seen: &[(Instant, u64)]) -> Histogram<u64> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds");
    acks.sort();
    for (offset, (_, acked)) in (before..).zip(&acks) {
        let first = seen.partition_point(|&(_, committed)| committed < offset);
        if let Some(&(visible, _)) = seen.get(first) {
            let _ = hist.record(visible.saturating_duration_since(*acked).as_micros().max(1) as u64);
        }
    }
    hist
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_order_as_numbers_whatever_their_width() {
        let parse = |s: &str| Sequence::parse(s).unwrap();
        assert!(parse("00000000000000000009") < parse("00000000000000000010"));
        assert!(parse("9") < parse("49590338271490256608559692538361571095921575989136588898"));
        assert!(
            parse("49590338271490256608559692538361571095921575989136588898")
                < parse("49590338271490256608559692538362780021741190618311294978")
        );
        assert_eq!(parse("0000"), parse("0"));
        assert!(Sequence::parse("").is_none() && Sequence::parse("12a").is_none());
    }

    #[test]
    fn latency_runs_from_the_ack_to_the_first_poll_committing_the_records_rank() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Two earlier records; this round's three acknowledged out of sequence order.
        let acks = vec![
            (Sequence::parse("30").unwrap(), at(20)),
            (Sequence::parse("10").unwrap(), at(30)),
            (Sequence::parse("20").unwrap(), at(10)),
        ];
        // Offsets 2 and 3 (sequences 10 and 20) committed at 500 ms, offset 4 (30) at 1200 ms.
        let seen = [(at(100), 1), (at(500), 3), (at(1200), 4)];
        let hist = latencies(acks, 2, &seen);
        assert_eq!(hist.len(), 3);
        let mut got: Vec<u64> = hist.iter_recorded().map(|v| v.value_iterated_to() / 1000).collect();
        got.sort();
        // 500-30, 500-10, 1200-20 ms (the histogram keeps 3 significant digits).
        assert_eq!(got, vec![470, 490, 1180]);
    }
}
