//! `pinpipe bench soak`: the pipeline as the long-running processes it is in production, for as
//! long as asked, watched for what grows.
//!
//! Starts, from this same binary and on the embedded defaults under a temporary `--data`: a
//! `gateway`, a `sink` and a `stream` job, each its own process, and two `emulate --forever`
//! processes (batch and stream mode) at `--rate` posts a second each, with `--retention` for the
//! topics and the streams. Every `--sample` it records each long-running process's RSS, the log's
//! bytes on disk, the lake's sink objects and Delta files, and the latencies of one probe post a
//! second: the HTTP 200 of `PUT /streams/…/record` and of `POST /topics/…`, and the time from
//! that 200 to the row being committed to the Delta table. At the end it stops the emulators,
//! lets the sink and the stream job catch up, and checks that every acknowledged record (the
//! emulators' and the probes') is in the lake's files and in the Delta tables exactly once. The
//! report has the series, the slopes after the warm-up (least squares, per minute) and each
//! process's RSS at the end against its RSS at the end of the warm-up.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::batch::{dir_bytes, status_kib};
use crate::clean::Table;
use crate::contract;
use crate::eventlog::{self, Namespace, Retention};
use crate::lake::Lake;
use crate::settings::{LakeUrl, LogUrl, display_duration};
use crate::sink::layout;
use crate::stream::Progress;

/// Options of `pinpipe bench soak`.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// How long the load runs.
    pub duration: Duration,
    /// Posts per second per emulator mode.
    pub rate: f64,
    /// The retention of the topics and the streams.
    pub retention: Retention,
    /// How often the processes are sampled.
    pub sample_every: Duration,
    /// The part of the run the slopes leave out.
    pub warmup: Duration,
    /// A Python with the `deltalake` package: when given, every sample times a whole read of
    /// the pin table with it (what a reader of the table waits).
    pub python: Option<PathBuf>,
}

/// Errors of the soak benchmark.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed: {detail}")]
    Child { command: String, detail: String },
    #[error(transparent)]
    Log(#[from] eventlog::Error),
    #[error(transparent)]
    Stream(#[from] Box<crate::stream::Error>),
    #[error("reading the Delta table {table}: {detail}")]
    Delta { table: String, detail: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// The long-running processes whose RSS is sampled, in report order.
const PROCESSES: [&str; 3] = ["gateway", "sink", "stream"];

/// One sample of the run.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Since the load started.
    pub at: Duration,
    /// RSS of the gateway, the sink and the stream job, in KiB.
    pub rss_kib: [u64; 3],
    /// The embedded log's folder: its files' bytes.
    pub log_bytes: u64,
    /// Sink objects in the lake.
    pub lake_objects: u64,
    /// Files of the Delta tables (data, logs, checkpoints).
    pub delta_files: u64,
    /// Data files of the pin table's current version (what its readers open).
    pub pin_files: Option<u64>,
    /// A whole read of the pin table by Python `deltalake`, in ms (with `--python`).
    pub pin_read_ms: Option<f64>,
    /// The slowest probe 200 of the interval (both routes), in ms.
    pub ingest_ms: Option<f64>,
    /// The slowest probe's time from its 200 to its Delta commit, in ms.
    pub delta_ms: Option<f64>,
}

/// One end-of-run check.
#[derive(Debug, Clone)]
pub struct Check {
    pub what: String,
    pub ok: bool,
}

/// What `pinpipe bench soak` measured.
#[derive(Debug, Clone)]
pub struct SoakReport {
    pub options: SoakOptions,
    pub samples: Vec<Sample>,
    /// Records the emulators and the probes had acknowledged: (topics, streams).
    pub acknowledged: (u64, u64),
    pub checks: Vec<Check>,
}

impl SoakReport {
    /// Whether every end-of-run check passed.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The samples after the warm-up.
    fn settled(&self) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.at >= self.options.warmup).collect()
    }

    /// Least-squares slope of `value` over the settled samples, per minute.
    fn slope(&self, value: impl Fn(&Sample) -> f64) -> Option<f64> {
        let points: Vec<(f64, f64)> = self.settled().iter().map(|s| (s.at.as_secs_f64() / 60.0, value(s))).collect();
        slope(&points)
    }
}

/// Least-squares slope of `points` (x, y); `None` for fewer than two distinct x.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (cov, var) =
        points.iter().fold((0.0, 0.0), |(c, v), (x, y)| (c + (x - mx) * (y - my), v + (x - mx) * (x - mx)));
    (var > 0.0).then(|| cov / var)
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "soak: {} at {} posts/s per mode (batch and stream), retention {}, sampled every {}, warm-up {}",
            display_duration(o.duration),
            o.rate,
            o.retention,
            display_duration(o.sample_every),
            display_duration(o.warmup)
        )?;
        writeln!(
            f,
            "{:>7}  {:>11}  {:>8}  {:>10}  {:>8}  {:>12}  {:>11}  {:>9}  {:>11}  {:>10}  {:>13}",
            "t",
            "gateway MB",
            "sink MB",
            "stream MB",
            "log MB",
            "lake objects",
            "delta files",
            "pin files",
            "pin read ms",
            "ingest ms",
            "HTTP→Delta ms"
        )?;
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        for s in &self.samples {
            writeln!(
                f,
                "{:>7}  {:>11.1}  {:>8.1}  {:>10.1}  {:>8.1}  {:>12}  {:>11}  {:>9}  {:>11}  {:>10}  {:>13}",
                display_duration(Duration::from_secs(s.at.as_secs())),
                s.rss_kib[0] as f64 / 1024.0,
                s.rss_kib[1] as f64 / 1024.0,
                s.rss_kib[2] as f64 / 1024.0,
                s.log_bytes as f64 / 1e6,
                s.lake_objects,
                s.delta_files,
                s.pin_files.map_or("-".to_string(), |n| n.to_string()),
                ms(s.pin_read_ms),
                ms(s.ingest_ms),
                ms(s.delta_ms),
            )?;
        }
        let settled = self.settled();
        if let (Some(first), Some(last)) = (settled.first(), settled.last()) {
            writeln!(f, "after the warm-up ({} samples):", settled.len())?;
            for (i, name) in PROCESSES.iter().enumerate() {
                let slope = self.slope(|s| s.rss_kib[i] as f64 / 1024.0).unwrap_or(0.0);
                let change = last.rss_kib[i] as f64 / first.rss_kib[i].max(1) as f64 - 1.0;
                writeln!(
                    f,
                    "  {name} RSS {:.1} → {:.1} MB ({:+.1}%), slope {slope:+.2} MB/min",
                    first.rss_kib[i] as f64 / 1024.0,
                    last.rss_kib[i] as f64 / 1024.0,
                    change * 100.0
                )?;
            }
            let log = self.slope(|s| s.log_bytes as f64 / 1e6).unwrap_or(0.0);
            writeln!(
                f,
                "  log {:.1} → {:.1} MB, slope {log:+.2} MB/min",
                first.log_bytes as f64 / 1e6,
                last.log_bytes as f64 / 1e6
            )?;
        }
        writeln!(f, "acknowledged: {} topic records, {} stream records", self.acknowledged.0, self.acknowledged.1)?;
        for c in &self.checks {
            writeln!(f, "  [{}] {}", if c.ok { "ok" } else { "FAILED" }, c.what)?;
        }
        write!(f, "{}", if self.ok() { "nothing lost or doubled" } else { "CHECKS FAILED" })
    }
}

/// A child process of this binary, killed if dropped.
struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn start(data: &Path, name: &str, args: &[String]) -> Result<Process, Error> {
        let exe = std::env::current_exe().map_err(io("finding this program"))?;
        let log = data.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).map_err(io(format!("creating {}", log.display())))?;
        let child = Command::new(exe)
            .args(args)
            .arg("--data")
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("starting {name}")))?;
        Ok(Process { name: name.to_string(), child, log })
    }

    fn rss_kib(&self) -> u64 {
        self.child.id().and_then(|pid| status_kib(&format!("/proc/{pid}/status"), "VmRSS:")).unwrap_or(0)
    }

    /// Fails when the process has exited.
    fn alive(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            _ => Err(self.failed("it stopped")),
        }
    }

    fn failed(&self, what: &str) -> Error {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
        Error::Child { command: self.name.clone(), detail: format!("{what}; its last log lines: {}", tail.join(" | ")) }
    }

    /// Asks it to stop (SIGTERM) and waits; returns what it printed.
    async fn stop(self) -> Result<String, Error> {
        if let Some(pid) = self.child.id() {
            // SAFETY: sending a signal to our own child's pid has no memory effects.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        let out = tokio::time::timeout(Duration::from_secs(60), self.child.wait_with_output())
            .await
            .map_err(|_| Error::Child { command: self.name.clone(), detail: "did not stop within 60 s".into() })?
            .map_err(io(format!("waiting for {}", self.name)))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Runs the soak (see the module doc).
pub async fn run(opts: &SoakOptions) -> Result<SoakReport, Error> {
    let dir = tempfile::Builder::new().prefix("pinpipe-soak-").tempdir().map_err(io("creating a temporary folder"))?;
    let data = dir.path();
    let id = "pinterest";
    let retention = opts.retention.to_string();
    let keep = ["--retention".to_string(), retention.clone(), "--stream-retention".into(), retention];
    let args =
        |cmd: &[&str]| -> Vec<String> { cmd.iter().map(|s| s.to_string()).chain(keep.iter().cloned()).collect() };

    let seeded = Process::start(data, "seed", &args(&["seed", "--rows", "2000"]))?;
    seeded.stop_after_exit().await?;
    let mut gateway = Process::start(data, "gateway", &args(&["gateway", "--listen", "127.0.0.1:0"]))?;
    let api = gateway.banner_url().await?;
    let mut workers = vec![
        gateway,
        Process::start(data, "sink", &args(&["sink"]))?,
        Process::start(data, "stream", &args(&["stream"]))?,
    ];
    let rate = opts.rate.to_string();
    let emulators = [
        Process::start(
            data,
            "emulate-batch",
            &args(&["emulate", "--mode", "batch", "--forever", "--rate", &rate, "--api", &api]),
        )?,
        Process::start(
            data,
            "emulate-stream",
            &args(&["emulate", "--mode", "stream", "--forever", "--rate", &rate, "--api", &api]),
        )?,
    ];

    let lake = Lake::open(&LakeUrl::File(data.join("lake")))
        .map_err(|e| Error::Child { command: "lake".into(), detail: e.to_string() })?;
    let mut progress = Progress::open(&lake, id, Table::Pin).await.map_err(Box::new)?;
    let probe = Probe { http: reqwest::Client::new(), api: api.clone(), id: id.to_string() };
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut probes = (0u64, 0u64);
    let mut next_sample = started + opts.sample_every;
    let (mut ingest_max, mut delta_max): (Option<f64>, Option<f64>) = (None, None);
    let pin = contract::delta_table(id, Table::Pin);
    let mut pin_table = None;
    while started.elapsed() < opts.duration {
        let tick = Instant::now();
        if let Some((ingest, delta)) = probe.once(&mut progress).await {
            probes = (probes.0 + 1, probes.1 + 1);
            ingest_max = Some(ingest_max.map_or(ingest, |m| m.max(ingest)));
            delta_max = delta.map(|d| delta_max.map_or(d, |m| m.max(d))).or(delta_max);
        }
        if Instant::now() >= next_sample {
            for w in &mut workers {
                w.alive()?;
            }
            let mut rss = [0; 3];
            for (slot, w) in rss.iter_mut().zip(&workers) {
                *slot = w.rss_kib();
            }
            samples.push(Sample {
                at: started.elapsed(),
                rss_kib: rss,
                log_bytes: dir_bytes(&data.join("log")),
                lake_objects: count_files(&data.join("lake").join("topics")),
                delta_files: count_files(&data.join("lake").join(contract::DELTA_DIR)),
                pin_files: pin_files(&lake, &pin, &mut pin_table).await,
                pin_read_ms: match &opts.python {
                    Some(python) => {
                        python_read_ms(python, &data.join("lake").join(contract::DELTA_DIR).join(&pin)).await
                    }
                    None => None,
                },
                ingest_ms: ingest_max.take(),
                delta_ms: delta_max.take(),
            });
            next_sample += opts.sample_every;
        }
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed())).await;
    }

    let mut acknowledged = probes;
    for (emulator, slot) in emulators.into_iter().zip([0, 1]) {
        let printed = emulator.stop().await?;
        let sent = parse_sent(&printed)
            .ok_or_else(|| Error::Child { command: "emulate".into(), detail: format!("no summary in {printed:?}") })?;
        if slot == 0 { acknowledged.0 += sent } else { acknowledged.1 += sent }
    }
    let checks = settle_and_check(data, id, &lake, acknowledged, &mut workers).await?;
    for w in workers {
        w.stop().await?;
    }
    Ok(SoakReport { options: opts.clone(), samples, acknowledged, checks })
}

impl Process {
    /// Waits for a short command to finish, failing if it did not succeed.
    async fn stop_after_exit(mut self) -> Result<(), Error> {
        let status = self.child.wait().await.map_err(io(format!("waiting for {}", self.name)))?;
        if status.success() { Ok(()) } else { Err(self.failed(&format!("it exited with {status}"))) }
    }

    /// The base URL the gateway prints on its first line.
    async fn banner_url(&mut self) -> Result<String, Error> {
        let stdout = self.child.stdout.take().ok_or_else(|| self.failed("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
        let url = match line {
            Ok(Ok(Some(line))) => line.rsplit(' ').next().map(str::to_string),
            _ => None,
        };
        // Keep reading, so the gateway's stdout never breaks.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        url.filter(|u| u.starts_with("http://")).ok_or_else(|| self.failed("it printed no address"))
    }
}

/// The probe posts: one to each family a second, the stream one followed into the Delta table.
struct Probe {
    http: reqwest::Client,
    api: String,
    id: String,
}

impl Probe {
    /// One probe: both posts; their slowest 200 in ms, and the ms from the stream post's 200
    /// to its Delta commit (`None` if not within 60 s). `None` when a post was not acknowledged.
    async fn once(&self, progress: &mut Progress) -> Option<(f64, Option<f64>)> {
        let value = r#"{"index":1,"unique_id":"soak-probe","title":"probe","description":"probe","poster_name":"probe","follower_count":"1","tag_list":"probe","is_image_or_video":"image","image_src":"probe","downloaded":1,"save_location":"Local save in /data/probe","category":"probe"}"#;
        let sent = Instant::now();
        let topic = self
            .http
            .post(format!("{}/topics/{}", self.api, contract::topic(&self.id, Table::Pin)))
            .header("content-type", "application/vnd.kafka.json.v2+json")
            .body(format!(r#"{{"records":[{{"value":{value}}}]}}"#))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())?;
        drop(topic);
        let topic_ms = sent.elapsed().as_secs_f64() * 1e3;
        let stream = contract::stream(&self.id, Table::Pin);
        let sent = Instant::now();
        let reply = self
            .http
            .put(format!("{}/streams/{stream}/record", self.api))
            .header("content-type", "application/json")
            .body(format!(r#"{{"StreamName":"{stream}","Data":{value},"PartitionKey":"probe"}}"#))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())?;
        let acked = Instant::now();
        let stream_ms = (acked - sent).as_secs_f64() * 1e3;
        let body: serde_json::Value = reply.json().await.ok()?;
        let offset: u64 = body["SequenceNumber"].as_str()?.parse().ok()?;
        let mut delta = None;
        while acked.elapsed() < Duration::from_secs(60) {
            if matches!(progress.visible(0).await, Ok(Some(v)) if v >= offset) {
                delta = Some(acked.elapsed().as_secs_f64() * 1e3);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some((topic_ms.max(stream_ms), delta))
    }
}

/// The data files of table `name`'s current version (`None` before the stream job created it).
async fn pin_files(lake: &Lake, name: &str, table: &mut Option<deltalake::DeltaTable>) -> Option<u64> {
    if table.is_none() {
        *table = crate::upkeep::open(lake, name).await.ok();
    }
    let table = table.as_mut()?;
    table.update_state().await.ok()?;
    Some(table.snapshot().ok()?.log_data().num_files() as u64)
}

/// How long `python` takes to read the whole Delta table at `path` with `deltalake` (the read
/// only, not the interpreter's start), in ms; `None` if it failed.
async fn python_read_ms(python: &Path, path: &Path) -> Option<f64> {
    let script = "import os, sys, time, deltalake\n\
                  t = time.perf_counter()\n\
                  deltalake.DeltaTable(sys.argv[1]).to_pyarrow_table()\n\
                  print((time.perf_counter() - t) * 1000)\n\
                  sys.stdout.flush()\n\
                  os._exit(0)\n";
    let out = Command::new(python).arg("-c").arg(script).arg(path).output().await.ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// `sent N records` from an emulator's summary line.
fn parse_sent(printed: &str) -> Option<u64> {
    let rest = printed.split("sent ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Files under `dir`, recursively.
fn count_files(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            _ => 1,
        })
        .sum()
}

/// Waits (up to 5 minutes) until the sink and the stream job have written every record of the
/// logs, then checks the lake and the tables against the logs and the acknowledged counts.
async fn settle_and_check(
    data: &Path,
    id: &str,
    lake: &Lake,
    acknowledged: (u64, u64),
    workers: &mut [Process],
) -> Result<Vec<Check>, Error> {
    let url = LogUrl::Embedded(data.join("log"));
    let topics = eventlog::open(&url, Namespace::Topics).await?;
    let streams = eventlog::open(&url, Namespace::Streams).await?;
    let probe = crate::lag::LagProbe::new(id, lake.clone());
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut problems = Vec::new();
        let mut lagging = 0;
        for log in [&topics, &streams] {
            for l in crate::lag::logs(&**log, Some(&probe), &mut problems).await {
                lagging += l.lag().unwrap_or(1);
            }
        }
        if lagging == 0 || Instant::now() > deadline {
            break;
        }
        for w in workers.iter_mut() {
            w.alive()?;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut checks = Vec::new();
    let (mut topic_total, mut stream_total) = (0, 0);
    for table in Table::ALL {
        let topic = contract::topic(id, table);
        let info = topics.describe(&topic).await?;
        let end: u64 = info.partitions.iter().map(|p| p.end).sum();
        topic_total += end;
        let (lines, contiguous) = lake_lines(&data.join("lake"), &topic);
        checks.push(Check {
            what: format!("{topic}: the lake's files hold offsets 0..{end} once each ({lines} lines)"),
            ok: lines == end && contiguous,
        });
        let stream = contract::stream(id, table);
        let info = streams.describe(&stream).await?;
        let end: u64 = info.partitions.iter().map(|p| p.end).sum();
        stream_total += end;
        let rows = delta_rows(&data.join("lake"), &contract::delta_table(id, table), None).await?;
        let rejects = delta_rows(&data.join("lake"), &contract::rejects_table(id), Some(&stream)).await?;
        checks.push(Check {
            what: format!("{stream}: {rows} rows + {rejects} rejects in Delta for {end} records"),
            ok: rows + rejects == end,
        });
    }
    checks.push(Check {
        what: format!("the topics hold every acknowledged record: {topic_total} of {}", acknowledged.0),
        ok: topic_total == acknowledged.0,
    });
    checks.push(Check {
        what: format!("the streams hold every acknowledged record: {stream_total} of {}", acknowledged.1),
        ok: stream_total == acknowledged.1,
    });
    Ok(checks)
}

/// Lines in the sink files of `topic` partition 0, and whether the files follow one another
/// from offset 0 without a gap or an overlap.
fn lake_lines(lake: &Path, topic: &str) -> (u64, bool) {
    let dir = lake.join(layout::partition_dir(topic, 0));
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = layout::parse_file_name(e.file_name().to_str()?)?;
            Some((name.start, e.path()))
        })
        .collect();
    files.sort();
    let mut next = 0;
    let mut contiguous = true;
    for (start, path) in files {
        contiguous &= start == next;
        let lines =
            std::fs::read(&path).map(|b| b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count()).unwrap_or(0);
        next = start + lines as u64;
    }
    (next, contiguous)
}

/// Rows of Delta table `table` in the lake folder `lake` (of `stream` only, given one: the
/// rejects table holds every stream's); 0 when the table does not exist.
async fn delta_rows(lake: &Path, table: &str, stream: Option<&str>) -> Result<u64, Error> {
    let fail = |detail: String| Error::Delta { table: table.to_string(), detail };
    let path = lake.join(contract::DELTA_DIR).join(table);
    let url = url::Url::from_directory_path(&path).map_err(|()| fail(format!("no URL for {}", path.display())))?;
    let Ok(delta) = deltalake::open_table(url).await else { return Ok(0) };
    let ctx = datafusion::prelude::SessionContext::new();
    let provider = delta.table_provider().await.map_err(|e| fail(e.to_string()))?;
    ctx.register_table("t", provider).map_err(|e| fail(e.to_string()))?;
    let sql = match stream {
        Some(stream) => format!("SELECT COUNT(*) FROM t WHERE stream = '{stream}'"),
        None => "SELECT COUNT(*) FROM t".to_string(),
    };
    let frame = ctx.sql(&sql).await.map_err(|e| fail(e.to_string()))?;
    let batches = frame.collect().await.map_err(|e| fail(e.to_string()))?;
    let column = batches.first().map(|b| b.column(0).clone()).ok_or_else(|| fail("no count".into()))?;
    let counts = column
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .ok_or_else(|| fail("the count is not a number".into()))?;
    Ok(u64::try_from(counts.value(0)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slopes_are_least_squares_and_summaries_parse() {
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), Some(2.0));
        assert_eq!(slope(&[(1.0, 1.0)]), None);
        let line = "emulate Batch → http://x: 10 iterations in 1.0s; sent 30 records, failed 0, retries 0";
        assert_eq!(parse_sent(line), Some(30));
    }
}
