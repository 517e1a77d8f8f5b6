//! `pinpipe bench batch`: times the batch path on generated posts — load the embedded log, land
//! it through the sink, run the batch job — and, with `--spark`, runs the independent PySpark job
//! (`bench/spark/batch_job.py`) on the same sink files as the Databricks-style baseline, then
//! checks with `bench/spark/compare.py` that both gave the same answers.
//!
//! Fed by the generator ([`crate::source::generator`]); calls [`crate::eventlog`],
//! [`crate::sink::run`] and [`crate::batch::run`] exactly as the CLI does. It owns nothing the
//! pipeline uses. The helpers ([`append_values`], [`run_spark_job`], [`compare_results`]) are
//! public so the differential test (`tests/differential.rs`) drives the same code.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::batch::{self, BatchConfig};
use crate::eventlog::{self, EventLog, Namespace, NewRecord};
use crate::lake::{self, Lake};
use crate::settings::{LakeUrl, LogUrl};
use crate::sink::{self, SinkConfig};
use crate::source::generator::Generator;

/// Records per `append` call while loading the log: big batches, so loading stays a small part.
const APPEND_CHUNK: usize = 5_000;
/// The incremental run over the new posts.
const INCREMENTAL_PHASE: &str = "incremental (new posts)";
/// The full refresh over every post.
const FULL_PHASE: &str = "full refresh (all posts)";
/// Records per sink file, as the benchmark lands them.
const FLUSH_SIZE: usize = 10_000;
/// The pipeline id of the benchmark's private log and lake.
const ID: &str = "pinterest";
/// The name of our batch job's phase, which the ratios divide by.
const BATCH_PHASE: &str = "batch (pinpipe)";
/// How often the Spark process tree's memory is sampled.
const RSS_SAMPLE: Duration = Duration::from_millis(100);

/// Options of `pinpipe bench batch`.
#[derive(Debug, Clone)]
pub struct BatchBenchOptions {
    /// Posts to generate (each is one record on each of the three topics).
    pub rows: u64,
    /// Posts landed after the first run, for the incremental run and the full refresh (0: none).
    pub new: u64,
    /// Random seed of the generator.
    pub seed: u64,
    /// Also send every K-th post a second time (the emulator samples with replacement); 0: never.
    pub repeat_every: u64,
    /// Also run the PySpark job on the same files and compare the answers.
    pub spark: bool,
    /// The Python that has pyspark (and pyarrow, for the comparison).
    pub python: PathBuf,
    /// The folder of `batch_job.py` and `compare.py`.
    pub spark_dir: PathBuf,
    /// Work in this folder and keep the log, lake and results (default: a temporary folder).
    pub keep: Option<PathBuf>,
}

/// Errors that stop the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("event log")]
    Log(#[from] eventlog::Error),
    #[error("opening the lake")]
    Lake(#[from] lake::Error),
    #[error("sink")]
    Sink(#[source] Box<sink::Error>),
    #[error("batch job")]
    Batch(#[from] batch::Error),
    #[error("serializing post {index}")]
    Serialize {
        index: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("{program} exited with {status}; its output ends with:\n{tail}")]
    Child { program: String, status: String, tail: String },
}

impl From<sink::Error> for Error {
    fn from(e: sink::Error) -> Self {
        Error::Sink(Box::new(e))
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Wall time and peak resident memory of one phase.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: &'static str,
    pub wall: Duration,
    /// Peak resident set in KiB (this process's `VmHWM`, reset before the phase; for Spark the
    /// highest sampled sum over the Python process and its JVM). `None` where Linux's /proc is absent.
    pub peak_rss_kib: Option<u64>,
}

/// The PySpark run.
#[derive(Debug, Clone)]
pub struct SparkRun {
    /// Whole child process: Python and JVM start included.
    pub phase: Phase,
    /// The job alone, as the script measures it from a ready SparkSession (`summary.json`).
    pub job_seconds: Option<f64>,
}

/// Whether two results folders hold the same answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    Equal,
    /// compare.py's report of the first differences.
    Different(String),
}

/// What `bench batch` measured.
#[derive(Debug, Clone)]
pub struct BatchBenchReport {
    pub rows: u64,
    pub records: u64,
    /// Bytes of JSON the sink wrote (what both batch jobs read).
    pub lake_bytes: u64,
    /// Loading the log, the sink, our batch job.
    pub phases: Vec<Phase>,
    pub spark: Option<SparkRun>,
    pub comparison: Option<Comparison>,
    /// With `--new`: the posts added, and whether the incremental run and the full refresh gave
    /// the same answers.
    pub incremental: Option<(u64, Comparison)>,
    /// Where the data was kept (`--keep`), if anywhere.
    pub kept: Option<PathBuf>,
}

impl BatchBenchReport {
    fn phase(&self, name: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// Spark's wall time over ours (whole child process, JVM start included).
    pub fn ratio(&self) -> Option<f64> {
        let ours = self.phase(BATCH_PHASE)?.wall.as_secs_f64();
        Some(self.spark.as_ref()?.phase.wall.as_secs_f64() / ours)
    }

    /// Spark's job time (JVM start excluded) over ours.
    pub fn job_ratio(&self) -> Option<f64> {
        let ours = self.phase(BATCH_PHASE)?.wall.as_secs_f64();
        Some(self.spark.as_ref()?.job_seconds? / ours)
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".to_string(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}

impl fmt::Display for BatchBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "batch benchmark: {} posts, {} records, {:.1} MB of sink JSON",
            self.rows,
            self.records,
            self.lake_bytes as f64 / 1e6
        )?;
        writeln!(f, "{:<28} {:>10} {:>12}", "phase", "wall", "peak RSS")?;
        let spark = self.spark.iter().map(|s| &s.phase);
        for p in self.phases.iter().chain(spark) {
            writeln!(f, "{:<28} {:>9.2}s {:>12}", p.name, p.wall.as_secs_f64(), mib(p.peak_rss_kib))?;
        }
        if let Some(spark) = &self.spark {
            if let Some(job) = spark.job_seconds {
                writeln!(f, "{:<28} {:>9.2}s", "spark job (JVM start excl.)", job)?;
            }
            if let Some(r) = self.ratio() {
                write!(f, "spark / pinpipe batch: {r:.1}x wall")?;
                if let Some(j) = self.job_ratio() {
                    write!(f, ", {j:.1}x excluding JVM start")?;
                }
                writeln!(f)?;
            }
        }
        if let (Some((new, same)), Some(inc), Some(full)) =
            (&self.incremental, self.phase(INCREMENTAL_PHASE), self.phase(FULL_PHASE))
        {
            let ratio = inc.wall.as_secs_f64() / full.wall.as_secs_f64().max(1e-9);
            writeln!(
                f,
                "incremental over {new} new posts / full refresh over {} posts: {ratio:.2} ({:.2} s / {:.2} s)",
                self.rows + new,
                inc.wall.as_secs_f64(),
                full.wall.as_secs_f64()
            )?;
            match same {
                Comparison::Equal => writeln!(f, "answers: incremental and full refresh equal (Q1-Q8)")?,
                Comparison::Different(diff) => writeln!(f, "answers: incremental and full refresh DIFFERENT\n{diff}")?,
            }
        }
        match &self.comparison {
            Some(Comparison::Equal) => writeln!(f, "answers: equal (Q1-Q8 and cleaned tables)")?,
            Some(Comparison::Different(diff)) => writeln!(f, "answers: DIFFERENT\n{diff}")?,
            None => {}
        }
        if let Some(dir) = &self.kept {
            writeln!(f, "data kept in {}", dir.display())?;
        }
        Ok(())
    }
}

/// Generates the posts, lands them, runs our batch job and optionally the Spark job.
pub async fn run(opts: &BatchBenchOptions) -> Result<BatchBenchReport, Error> {
    let temp;
    let dir = match &opts.keep {
        Some(dir) => {
            fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().map_err(io("creating a temporary folder"))?;
            temp.path().to_path_buf()
        }
    };
    let mut phases = Vec::new();

    let log_dir = dir.join("log");
    // A kept folder from an earlier run would add its records to this run's.
    remove_if_present(&log_dir)?;
    remove_if_present(&dir.join("lake"))?;
    let log = eventlog::open(&LogUrl::Embedded(log_dir.clone()), Namespace::Topics).await?;
    eventlog::ensure_defaults(&*log, ID).await?;
    let (records, phase) = measured("load log (generate+append)", load(&*log, opts, 0..opts.rows)).await;
    let records = records?;
    phases.push(phase);

    let lake_dir = dir.join("lake");
    let lake = Lake::open(&LakeUrl::File(lake_dir.clone()))?;
    let (sunk, phase) = measured("sink (drain)", land(log.clone(), &lake)).await;
    sunk?;
    phases.push(phase);
    let lake_bytes = dir_bytes(&lake_dir.join("topics"));

    let ours = dir.join("results-pinpipe");
    let cfg = BatchConfig::new(ID, ours.clone());
    let (answered, phase) = measured(BATCH_PHASE, batch::run(&cfg, &lake)).await;
    answered?;
    phases.push(phase);
    if opts.spark {
        export_tables(&lake, ID, &ours).await?;
    }

    let incremental = if opts.new > 0 {
        let (loaded, phase) = measured("load new posts", load(&*log, opts, opts.rows..opts.rows + opts.new)).await;
        loaded?;
        phases.push(phase);
        let (sunk, phase) = measured("sink new (drain)", land(log.clone(), &lake)).await;
        sunk?;
        phases.push(phase);
        let cfg = BatchConfig::new(ID, dir.join("results-incremental"));
        let (inc, phase) = measured(INCREMENTAL_PHASE, batch::run(&cfg, &lake)).await;
        let inc = inc?;
        phases.push(phase);
        phases.extend(run_phases(&inc));
        let cfg = BatchConfig { full_refresh: true, ..BatchConfig::new(ID, dir.join("results-full")) };
        let (full, phase) = measured(FULL_PHASE, batch::run(&cfg, &lake)).await;
        let full = full?;
        phases.push(phase);
        phases.extend(run_phases(&full));
        Some((opts.new, same_answers(&inc, &full)))
    } else {
        None
    };

    let (spark, comparison) = if opts.spark {
        let theirs = dir.join("results-spark");
        let (python, spark_dir) = (opts.python.clone(), opts.spark_dir.clone());
        let (lake_dir, ours_dir) = (lake_dir.clone(), ours.clone());
        let joined = tokio::task::spawn_blocking(move || {
            let spark = run_spark_job(&python, &spark_dir, &lake_dir, ID, &theirs)?;
            let comparison = compare_results(&python, &spark_dir, &ours_dir, &theirs, true)?;
            Ok::<_, Error>((spark, comparison))
        })
        .await
        .map_err(|e| Error::Io { what: "the Spark task panicked".into(), source: std::io::Error::other(e) })??;
        (Some(joined.0), Some(joined.1))
    } else {
        (None, None)
    };
    Ok(BatchBenchReport {
        rows: opts.rows,
        records,
        lake_bytes,
        phases,
        spark,
        comparison,
        incremental,
        kept: opts.keep.clone(),
    })
}

/// A batch run's own phases (read, commit, queries, write), indented under it.
fn run_phases(report: &batch::BatchReport) -> Vec<Phase> {
    let name = |phase: &str| -> &'static str {
        match phase {
            "read" => "  read (new files, ind's held)",
            "commit" => "  commit (4 tables)",
            "queries" => "  queries (Q1-Q8)",
            _ => "  write (answers, report)",
        }
    };
    report.phases.iter().map(|(phase, wall)| Phase { name: name(phase), wall: *wall, peak_rss_kib: None }).collect()
}

/// Generates posts `indexes` (every `repeat_every`-th again) and appends them to the log's three
/// topics; the records appended.
async fn load(log: &dyn EventLog, opts: &BatchBenchOptions, indexes: std::ops::Range<u64>) -> Result<u64, Error> {
    let generator = Generator::new(opts.rows + opts.new, opts.seed);
    let mut all: Vec<u64> = indexes.clone().collect();
    if opts.repeat_every > 0 {
        all.extend(indexes.step_by(opts.repeat_every as usize));
    }
    let mut records = 0u64;
    for chunk in all.chunks(APPEND_CHUNK) {
        let mut pins = Vec::with_capacity(chunk.len());
        let mut geos = Vec::with_capacity(chunk.len());
        let mut users = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let post = generator.post(i);
            let ser = |e| Error::Serialize { index: i, source: e };
            pins.push(serde_json::to_vec(&post.pin).map_err(ser)?);
            geos.push(serde_json::to_vec(&post.geo).map_err(ser)?);
            users.push(serde_json::to_vec(&post.user).map_err(ser)?);
        }
        records += 3 * chunk.len() as u64;
        append_values(log, &format!("{ID}.pin"), pins).await?;
        append_values(log, &format!("{ID}.geo"), geos).await?;
        append_values(log, &format!("{ID}.user"), users).await?;
    }
    Ok(records)
}

/// Whether two runs gave the same nine answers (compared as CSV text).
fn same_answers(a: &batch::BatchReport, b: &batch::BatchReport) -> Comparison {
    let csv = |answer: &batch::Answer| {
        let mut out = Vec::new();
        {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            for part in &answer.batches {
                if writer.write(part).is_err() {
                    return None;
                }
            }
        }
        String::from_utf8(out).ok()
    };
    for (x, y) in a.answers.iter().zip(&b.answers) {
        if x.name != y.name || csv(x).is_none() || csv(x) != csv(y) {
            return Comparison::Different(format!("{} differs", x.name));
        }
    }
    if a.answers.len() == b.answers.len() { Comparison::Equal } else { Comparison::Different("answer count".into()) }
}

/// Writes the batch tables of pipeline `id` as `<dir>/pin.parquet`, `geo.parquet`,
/// `user.parquet` and `rejects.parquet`, where `compare.py --tables` and Spark's job put theirs.
pub async fn export_tables(lake: &Lake, id: &str, dir: &Path) -> Result<(), Error> {
    for which in batch::BatchTable::ALL {
        let (schema, batches) = batch::read_table(lake, id, which).await?;
        let stem = match which {
            batch::BatchTable::Clean(table) => table.name(),
            batch::BatchTable::Rejects => "rejects",
        };
        let path = dir.join(format!("{stem}.parquet"));
        let file = fs::File::create(&path).map_err(io(format!("creating {}", path.display())))?;
        let parquet = |e: datafusion::parquet::errors::ParquetError| Error::Io {
            what: format!("writing {}", path.display()),
            source: std::io::Error::other(e),
        };
        let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(file, schema, None).map_err(parquet)?;
        for batch in &batches {
            writer.write(batch).map_err(parquet)?;
        }
        writer.close().map_err(parquet)?;
    }
    Ok(())
}

/// Appends `values` to `topic` in chunks, each chunk one durable `append`.
pub async fn append_values(log: &dyn EventLog, topic: &str, values: Vec<Vec<u8>>) -> Result<(), Error> {
    let mut values = values.into_iter().peekable();
    while values.peek().is_some() {
        let chunk: Vec<NewRecord> = values.by_ref().take(APPEND_CHUNK).map(NewRecord::value).collect();
        log.append(topic, chunk).await?;
    }
    Ok(())
}

/// Lands everything in the log's batch topics of the benchmark's id as sink files in `lake`.
pub async fn land(log: Arc<dyn EventLog>, lake: &Lake) -> Result<sink::SinkReport, Error> {
    let cfg =
        SinkConfig { flush_size: FLUSH_SIZE, flush_interval: Duration::from_secs(3600), ..SinkConfig::new(ID, true) };
    Ok(sink::run(&cfg, log, lake, CancellationToken::new()).await?)
}

/// Runs `batch_job.py` (in `spark_dir`) on a local lake folder into `out`; blocking.
pub fn run_spark_job(
    python: &Path,
    spark_dir: &Path,
    lake_dir: &Path,
    id: &str,
    out: &Path,
) -> Result<SparkRun, Error> {
    let script = spark_dir.join("batch_job.py");
    let log_path = out.with_extension("log");
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    }
    let log_file = fs::File::create(&log_path).map_err(io(format!("creating {}", log_path.display())))?;
    let err_file = log_file.try_clone().map_err(io("duplicating the log file handle"))?;
    let start = Instant::now();
    let mut child = Command::new(python)
        .arg(&script)
        .arg("--lake")
        .arg(lake_dir)
        .arg("--id")
        .arg(id)
        .arg("--out")
        .arg(out)
        .arg("--tables")
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(err_file)
        .spawn()
        .map_err(io(format!("starting {} {}", python.display(), script.display())))?;
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (done, pid) = (done.clone(), child.id());
        std::thread::spawn(move || {
            let mut peak = None;
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = tree_rss_kib(pid) {
                    peak = Some(peak.map_or(kib, |p: u64| p.max(kib)));
                }
                std::thread::sleep(RSS_SAMPLE);
            }
            peak
        })
    };
    let status = child.wait().map_err(io("waiting for the Spark job"));
    let wall = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let peak_rss_kib = sampler.join().unwrap_or(None);
    let status = status?;
    if !status.success() {
        return Err(Error::Child {
            program: script.display().to_string(),
            status: status.to_string(),
            tail: tail(&log_path),
        });
    }
    let job_seconds = fs::read(out.join("summary.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|v| v.get("job_seconds").and_then(|s| s.as_f64()));
    Ok(SparkRun { phase: Phase { name: "spark (pyspark, local[2])", wall, peak_rss_kib }, job_seconds })
}

/// Runs `compare.py A B` (with `--tables`: also the cleaned tables); blocking.
pub fn compare_results(python: &Path, spark_dir: &Path, a: &Path, b: &Path, tables: bool) -> Result<Comparison, Error> {
    let script = spark_dir.join("compare.py");
    let mut command = Command::new(python);
    command.arg(&script).arg(a).arg(b);
    if tables {
        command.arg("--tables");
    }
    let output = command.output().map_err(io(format!("starting {}", script.display())))?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    match output.status.code() {
        Some(0) => Ok(Comparison::Equal),
        Some(1) => Ok(Comparison::Different(text)),
        _ => Err(Error::Child { program: script.display().to_string(), status: output.status.to_string(), tail: text }),
    }
}

/// Runs `phase`, measuring its wall time and this process's peak resident memory.
async fn measured<T>(name: &'static str, phase: impl Future<Output = T>) -> (T, Phase) {
    // Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0).
    let reset = fs::write("/proc/self/clear_refs", "5").is_ok();
    let start = Instant::now();
    let value = phase.await;
    let wall = start.elapsed();
    let peak_rss_kib = if reset { status_kib("/proc/self/status", "VmHWM:") } else { None };
    (value, Phase { name, wall, peak_rss_kib })
}

/// A `Vm…:` line of a /proc status file, in KiB.
pub(super) fn status_kib(path: &str, field: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Resident memory of `pid` and all its descendants (Python starts the JVM as a child), in KiB.
fn tree_rss_kib(pid: u32) -> Option<u64> {
    let mut parents = Vec::new();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so split after the last `)`.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((p, ppid));
        }
    }
    let mut tree = vec![pid];
    let mut grew = true;
    while grew {
        grew = false;
        for &(p, ppid) in &parents {
            if tree.contains(&ppid) && !tree.contains(&p) {
                tree.push(p);
                grew = true;
            }
        }
    }
    let sum: u64 = tree.iter().filter_map(|p| status_kib(&format!("/proc/{p}/status"), "VmRSS:")).sum();
    (sum > 0).then_some(sum)
}

fn remove_if_present(path: &Path) -> Result<(), Error> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(format!("removing {}", path.display()))(e)),
        _ => Ok(()),
    }
}

/// Total size of the files under `dir`.
pub(super) fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// The last lines of a child's log, for error messages.
fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_read_in_kib() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status");
        fs::write(&path, "Name:\tx\nVmHWM:\t  123456 kB\nVmRSS:\t 42 kB\n").unwrap();
        assert_eq!(status_kib(path.to_str().unwrap(), "VmHWM:"), Some(123_456));
        assert_eq!(status_kib(path.to_str().unwrap(), "VmRSS:"), Some(42));
        assert_eq!(status_kib(path.to_str().unwrap(), "VmSwap:"), None);
    }

    #[test]
    fn a_process_tree_includes_its_children() {
        let mut child = Command::new("sh").arg("-c").arg("sleep 5 & sleep 5; wait").spawn().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let own = status_kib(&format!("/proc/{}/status", child.id()), "VmRSS:").unwrap();
        let tree = tree_rss_kib(child.id()).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(tree > own, "tree {tree} KiB should exceed the shell's own {own} KiB");
    }
}
