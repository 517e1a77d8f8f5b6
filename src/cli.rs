//! The command line (SPEC §10): clap definitions, config resolution, and one function per
//! subcommand that calls the library stage it names.
//!
//! The only place with flags, environment variables, signals and terminal output; everything it
//! runs is a library function, so the tests and `demo` use the same code. Global and backend
//! flags are `global = true` (accepted before or after the subcommand) and every flag also reads
//! `PINPIPE_<FLAG>`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, FileConfig, Overrides};
use crate::emulator::{self, EmulatorConfig, Mode, Pace};
use crate::eventlog::{self, EventLog, Namespace};
use crate::lake::Lake;
use crate::settings;
use crate::{batch, bench, demo, gateway, lag, observe, report, schedule, sink, source, stream};

/// pinpipe — the Pinterest-style event pipeline (source → emulator → ingest API → event log →
/// S3 sink → batch analytics, and → stream job → Delta tables) as one program.
///
/// Everything runs on embedded defaults under --data (SQLite source, embedded durable log,
/// local lake); --source, --log, --streams and --lake point it at MySQL, Kafka, Kinesis and S3.
///
/// Quick start:
///
///   pinpipe demo                       # the whole pipeline in one process, with the answers
///   pinpipe seed                       # 11,154 generated posts into data/source.db
///   pinpipe gateway &                  # the ingest API on 127.0.0.1:8082 (status page at /)
///   pinpipe emulate --mode batch --count 100 --rate 0
///   pinpipe sink --drain && pinpipe batch
///   pinpipe topics describe pinterest.pin
#[derive(Debug, Parser)]
#[command(name = "pinpipe", version, about, long_about, verbatim_doc_comment, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts, before or after its name.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML config file (default: ./pinpipe.toml when it exists). Flags and PINPIPE_* variables win over it.
    #[arg(long, global = true, env = "PINPIPE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Folder for the embedded source, log, lake and results [default: ./data]
    #[arg(long, global = true, env = "PINPIPE_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Pipeline id used in topic, stream and table names [default: pinterest]
    #[arg(long, global = true, env = "PINPIPE_ID")]
    pub id: Option<String>,
    /// Source database: sqlite://FILE or mysql://user:pass@host:port/db [default: sqlite://<data>/source.db]
    #[arg(long, global = true, env = "PINPIPE_SOURCE", value_name = "URL")]
    pub source: Option<String>,
    /// Event log for the batch topics: embedded://DIR or kafka://HOST:PORT[,HOST:PORT][?setting=value…]
    /// [default: embedded://<data>/log]
    #[arg(long, global = true, env = "PINPIPE_LOG", value_name = "URL")]
    pub log: Option<String>,
    /// Event log for the streams: embedded://DIR or kinesis://REGION[?endpoint=URL]
    /// [default: the --log URL when it is embedded, else embedded://<data>/log]
    #[arg(long, global = true, env = "PINPIPE_STREAMS", value_name = "URL")]
    pub streams: Option<String>,
    /// The lake: file://DIR or s3://bucket/prefix [default: file://<data>/lake]
    #[arg(long, global = true, env = "PINPIPE_LAKE", value_name = "URL")]
    pub lake: Option<String>,
    /// Log line format on stderr (filter with RUST_LOG, e.g. RUST_LOG=debug)
    #[arg(long, global = true, env = "PINPIPE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How diagnostic log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the three source tables if absent and fill them with generated posts.
    Seed(SeedArgs),
    /// Send random source rows to the ingest API, like the course's posting emulator.
    Emulate(EmulateArgs),
    /// Serve the ingest API: Kafka REST proxy routes and Kinesis-proxy routes over the event log.
    Gateway(GatewayArgs),
    /// Administer the batch topics (the Kafka side of the event log).
    Topics {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Administer the streams (the Kinesis side of the event log).
    Streams {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Land the batch topics in the lake as JSON files (the Confluent S3 sink layout).
    Sink(SinkArgs),
    /// Clean the sink's files, answer the eight questions, and write the results.
    Batch(BatchArgs),
    /// Clean the streams into Delta tables under <lake>/delta, exactly once.
    Stream(StreamArgs),
    /// Run the batch job on a cron schedule (UTC; default daily at 00:00) until Ctrl-C or SIGTERM.
    Schedule(ScheduleArgs),
    /// Re-render the HTML report of the last batch run (<out>/report.html) from its results folder.
    Report(ReportArgs),
    /// Run every stage end to end in one process on the embedded defaults and show the counts.
    Demo(DemoArgs),
    /// Measure a stage against a baseline run in the same process.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Posts to generate (rows per table).
    #[arg(long, env = "PINPIPE_ROWS", default_value_t = source::DEFAULT_ROWS, value_parser = settings::ROWS.u64_parser())]
    pub rows: u64,
    /// Random seed: the same seed writes the same rows.
    #[arg(long, env = "PINPIPE_SEED", default_value_t = source::DEFAULT_SEED)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct SinkArgs {
    /// Own only the partitions p with p % N == I, so N workers started as 0/N … N-1/N split the
    /// partitions between them (each keeps its positions in the outputs) [default: 0/1, all]
    #[arg(long, env = "PINPIPE_WORKER", value_name = "I/N", default_value = "0/1")]
    pub worker: config::Worker,
    /// Records per file (Confluent flush.size); 1 reproduces the course's one-record files
    /// [default: 1000; 1 to 10,000,000; also `[sink] flush_size`]
    #[arg(long, env = "PINPIPE_FLUSH_SIZE", value_name = "N", value_parser = settings::FLUSH_SIZE.usize_parser())]
    pub flush_size: Option<usize>,
    /// Longest a record waits before its file is written, e.g. 10s or 500ms
    /// [default: 10s; 10ms to 1d; also `[sink] flush_interval`]
    #[arg(long, env = "PINPIPE_FLUSH_INTERVAL", value_name = "DURATION", value_parser = settings::FLUSH_INTERVAL.parser())]
    pub flush_interval: Option<Duration>,
    /// Write out everything in the topics, then exit 0 (instead of following the log).
    #[arg(long, env = "PINPIPE_DRAIN")]
    pub drain: bool,
    /// Serve Prometheus metrics (positions, lag, files, logged errors) at http://ADDR/metrics [default: off]
    #[arg(long, env = "PINPIPE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Results folder [default: <data>/results]
    #[arg(long, env = "PINPIPE_OUT", value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// When to run, in UTC: standard 5-field cron (`0 0 * * *`), or 6–7 fields with seconds first
    /// (`*/30 * * * * *`). Weekday numbers are 1–7 from Sunday; names (MON-FRI) are clearer.
    #[arg(long, env = "PINPIPE_CRON", default_value = schedule::DEFAULT_CRON, value_name = "EXPR")]
    pub cron: String,
    /// Results folder [default: <data>/results]
    #[arg(long, env = "PINPIPE_OUT", value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results folder of the batch run [default: <data>/results]
    #[arg(long, env = "PINPIPE_OUT", value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StreamArgs {
    /// Own only the partitions p with p % N == I, so N workers started as 0/N … N-1/N split the
    /// partitions between them (each keeps its positions in the outputs) [default: 0/1, all]
    #[arg(long, env = "PINPIPE_WORKER", value_name = "I/N", default_value = "0/1")]
    pub worker: config::Worker,
    /// Commit everything in the streams, then exit 0 (instead of following them).
    #[arg(long, env = "PINPIPE_DRAIN")]
    pub drain: bool,
    /// Most records per micro-batch [default: 10000; 1 to 1,000,000; also `[stream] max_batch`]
    #[arg(long, env = "PINPIPE_MAX_BATCH", value_name = "N", value_parser = settings::MAX_BATCH.usize_parser())]
    pub max_batch: Option<usize>,
    /// Longest a record waits before its micro-batch is committed, e.g. 1s or 250ms
    /// [default: 1s; 10ms to 1h; also `[stream] max_latency`]
    #[arg(long, env = "PINPIPE_MAX_LATENCY", value_name = "DURATION", value_parser = settings::MAX_LATENCY.parser())]
    pub max_latency: Option<Duration>,
    /// Write a Delta checkpoint every N commits of a table
    /// [default: 100; 1 to 1,000,000; also `[stream] checkpoint_every`]
    #[arg(long, env = "PINPIPE_CHECKPOINT_EVERY", value_name = "N", value_parser = settings::CHECKPOINT_EVERY.u64_parser())]
    pub checkpoint_every: Option<u64>,
    /// Give up (exit 2) when the lake has been full or unreachable this long, e.g. 30m
    /// [default: as long as it takes; 10m with --drain; 1s to 30d; also `[stream] lake_timeout`]
    #[arg(long, env = "PINPIPE_LAKE_TIMEOUT", value_name = "DURATION", value_parser = settings::LAKE_TIMEOUT.parser())]
    pub lake_timeout: Option<Duration>,
    /// Serve Prometheus metrics (positions, lag, table versions, logged errors) at http://ADDR/metrics [default: off]
    #[arg(long, env = "PINPIPE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Emulator iterations per mode (batch, then stream).
    #[arg(long, env = "PINPIPE_COUNT", default_value_t = 1000)]
    pub count: u64,
    /// Posts to generate when the source is empty.
    #[arg(long, env = "PINPIPE_ROWS", default_value_t = source::DEFAULT_ROWS, value_parser = settings::ROWS.u64_parser())]
    pub rows: u64,
    /// Seed for the generator and the emulator.
    #[arg(long, env = "PINPIPE_SEED", default_value_t = source::DEFAULT_SEED)]
    pub seed: u64,
    /// Emulator requests in flight at once (1 to 10,000).
    #[arg(long, env = "PINPIPE_CONCURRENCY", default_value_t = 16, value_parser = settings::CONCURRENCY.usize_parser())]
    pub concurrency: usize,
}

#[derive(Debug, Args)]
pub struct EmulateArgs {
    /// batch: POST /topics/<id>.{pin,geo,user}; stream: PUT /streams/streaming-<id>-{pin,geo,user}/record
    #[arg(long, env = "PINPIPE_MODE", value_enum)]
    pub mode: Mode,
    /// Base URL of the gateway, stage path included (e.g. http://127.0.0.1:8082/dev) [default: http://127.0.0.1:8082]
    #[arg(long, env = "PINPIPE_API", value_name = "URL")]
    pub api: Option<String>,
    /// API key sent as x-api-key. Prefer PINPIPE_API_KEY or `[emulator] api_key`: a flag shows
    /// in `ps` to every user of the machine.
    #[arg(long, env = "PINPIPE_API_KEY")]
    pub api_key: Option<String>,
    /// Iterations to run (each sends one post: three records).
    #[arg(long, env = "PINPIPE_COUNT", conflicts_with = "forever", default_value_t = 100)]
    pub count: u64,
    /// Run until interrupted (Ctrl-C).
    #[arg(long, env = "PINPIPE_FOREVER")]
    pub forever: bool,
    /// Iterations per second over all workers (0.001 to 1,000,000); 0 = as fast as the API
    /// answers. Without it, each worker sleeps a random 0–2 s after every iteration, like the
    /// original [also `[emulator] rate`]
    #[arg(long, env = "PINPIPE_RATE", value_parser = settings::EMULATOR_RATE.parser())]
    pub rate: Option<f64>,
    /// Iterations in flight at once [default: 1; 1 to 10,000; also `[emulator] concurrency`]
    #[arg(long, env = "PINPIPE_CONCURRENCY", value_name = "N", value_parser = settings::CONCURRENCY.usize_parser())]
    pub concurrency: Option<usize>,
    /// Random seed for the row choice.
    #[arg(long, env = "PINPIPE_SEED", default_value_t = source::DEFAULT_SEED)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on [default: 127.0.0.1:8082]
    #[arg(long, env = "PINPIPE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// API Gateway stage prefix, e.g. /dev (routes become /dev/topics/…)
    #[arg(long, env = "PINPIPE_BASE_PATH", value_name = "PATH")]
    pub base_path: Option<String>,
    /// Require x-api-key to be one of these (repeat the flag, or comma-separate in the variable).
    /// Prefer PINPIPE_API_KEY or `[gateway] api_keys`: a flag shows in `ps` to every user.
    #[arg(long = "api-key", env = "PINPIPE_API_KEY", value_delimiter = ',', value_name = "KEY")]
    pub api_keys: Vec<String>,
    /// Close a connection whose request head has not arrived whole this long after the accept
    /// or the previous response [default: 10s; 100ms to 1h; also `[gateway] header_read_timeout`]
    #[arg(long, env = "PINPIPE_HEADER_READ_TIMEOUT", value_name = "DURATION", value_parser = settings::HEADER_READ_TIMEOUT.parser())]
    pub header_read_timeout: Option<Duration>,
    /// Close a keep-alive connection idle this long [default: 5s; 100ms to 1h, at most the
    /// header-read timeout; also `[gateway] idle_timeout`]
    #[arg(long, env = "PINPIPE_IDLE_TIMEOUT", value_name = "DURATION", value_parser = settings::IDLE_TIMEOUT.parser())]
    pub idle_timeout: Option<Duration>,
    /// Answer 408 when a request body takes longer than this to arrive
    /// [default: 30s; 100ms to 1h; also `[gateway] body_timeout`]
    #[arg(long, env = "PINPIPE_BODY_TIMEOUT", value_name = "DURATION", value_parser = settings::BODY_TIMEOUT.parser())]
    pub body_timeout: Option<Duration>,
    /// Most connections open at once; past it, the connection idle longest is closed to make
    /// room [default: the open-file limit less a reserve; also `[gateway] max_connections`]
    #[arg(long, env = "PINPIPE_MAX_CONNECTIONS", value_name = "N", value_parser = settings::MAX_CONNECTIONS.usize_parser())]
    pub max_connections: Option<usize>,
    /// Results folder whose last batch run the status page (/) shows [default: <data>/results]
    #[arg(long, env = "PINPIPE_OUT", value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// List all names.
    List,
    /// Create one.
    Create {
        name: String,
        /// Partitions (Kafka) or shards (Kinesis).
        #[arg(long, visible_alias = "shards", env = "PINPIPE_PARTITIONS", default_value_t = 1)]
        partitions: u32,
    },
    /// Show partitions (shards) with their first and next offsets.
    Describe { name: String },
    /// Delete one with all its records.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Requests per second through the gateway over loopback, beside a bare axum handler
    ///
    /// The gateway appends to a temporary embedded log, or to the log --backend names, in a
    /// fresh topic created for the run and deleted after (on Kinesis: a fresh stream, through the
    /// Kinesis-proxy routes). Examples:
    ///
    ///   pinpipe bench ingest --seconds 5
    ///   pinpipe bench ingest --backend kafka://127.0.0.1:9092
    ///   pinpipe bench ingest --backend 'kinesis://us-east-1?endpoint=http://127.0.0.1:4567'
    #[command(verbatim_doc_comment)]
    Ingest(bench::ingest::IngestOptions),
    /// Generate posts, land them through the sink, run the batch job (and PySpark with --spark).
    Batch(bench::batch::BatchBenchOptions),
    /// End-to-end latency from the gateway's 200 to the row visible in the Delta table
    ///
    /// The gateway, the streams and the stream job run in this process; the streams are a
    /// temporary embedded log, or fresh streams on the backend --backend names. Examples:
    ///
    ///   pinpipe bench stream --rates 1000,5000 --seconds 10
    ///   pinpipe bench stream --backend 'kinesis://us-east-1?endpoint=http://127.0.0.1:4567'
    #[command(verbatim_doc_comment)]
    Stream(bench::stream::StreamBenchOptions),
}

/// Parses the command line, runs it, and returns the process exit code (0 ok, 2 error).
pub async fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A value out of range or of the wrong form: one line naming the flag, exit 2.
        Err(e)
            if matches!(e.kind(), clap::error::ErrorKind::ValueValidation | clap::error::ErrorKind::InvalidValue) =>
        {
            let text = e.to_string();
            eprintln!("{}", text.lines().next().unwrap_or_default());
            return std::process::ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    init_logging(cli.global.log_format);
    quiet_caught_upload_panics();
    raise_open_file_limit();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,buoyant_kernel=warn,delta_kernel=warn,deltalake_core=warn,rdkafka=warn,aws_config=warn")
    });
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // Counts warnings and errors for the workers' /metrics.
    let registry = tracing_subscriber::registry().with(filter).with(observe::EventCounter);
    match format {
        LogFormat::Text => registry.with(lines.with_ansi(std::io::stderr().is_terminal())).init(),
        LogFormat::Json => registry.with(lines.json()).init(),
    }
}

/// deltalake aborts a Parquet upload whose completion failed (a full disk under a local lake)
/// and catches the panic object_store's `BufWriter` raises, by design, when aborted after it
/// began shutting down (deltalake-core `datafile/writer.rs`). The job goes on and retries; only
/// the default hook's message would read like a crash. That one panic is logged at debug level;
/// every other goes to the default hook.
fn quiet_caught_upload_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_buffered =
            info.location().is_some_and(|l| l.file().contains("object_store") && l.file().ends_with("buffered.rs"));
        let message = info.payload().downcast_ref::<&str>().copied().unwrap_or_default();
        if in_buffered && message == "Already shut down" {
            tracing::debug!("object_store refused to abort an upload that had failed (deltalake catches this)");
            return;
        }
        default(info);
    }));
}

/// Raises this process's soft limit on open files to its hard limit (as Go's runtime does): the
/// gateway's connection cap and the workers' files scale with it. Left as it is if that fails.
fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit only read and write the struct they are given.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
                // An unlimited hard limit is not a soft limit Linux accepts: stop at 2^20.
                let raised = libc::rlimit { rlim_cur: limit.rlim_max.min(1 << 20), rlim_max: limit.rlim_max };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                    tracing::debug!("cannot raise the open-file limit");
                }
            }
        }
    }
}

/// Starts `/metrics` for `worker` on `listen`, if given; stop it with the returned token.
async fn start_metrics(
    listen: Option<&str>,
    worker: observe::Worker,
    cfg: &Config,
    log: Arc<dyn EventLog>,
    lake: &Lake,
    shutdown: &CancellationToken,
) -> Result<Option<(CancellationToken, tokio::task::JoinHandle<Result<(), observe::Error>>)>> {
    let Some(listen) = listen else { return Ok(None) };
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding --metrics-listen {listen}"))?;
    let addr = listener.local_addr()?;
    let probe = lag::LagProbe::new(cfg.id.clone(), lake.clone());
    let metrics = observe::WorkerMetrics::new(worker, log, probe);
    let stop = shutdown.child_token();
    tracing::info!(%addr, "metrics at http://{addr}/metrics");
    let server = tokio::spawn(observe::serve(listener, metrics, stop.clone()));
    Ok(Some((stop, server)))
}

/// Stops a metrics server started by [`start_metrics`].
async fn stop_metrics(
    server: Option<(CancellationToken, tokio::task::JoinHandle<Result<(), observe::Error>>)>,
) -> Result<()> {
    if let Some((stop, handle)) = server {
        stop.cancel();
        handle.await.context("the metrics server panicked")??;
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<()> {
    let file = FileConfig::load(cli.global.config.as_deref())?;
    let g = cli.global;
    let overrides =
        Overrides { data: g.data, id: g.id, source: g.source, log: g.log, streams: g.streams, lake: g.lake };
    let cfg = Config::resolve(overrides, &file)?;
    match cli.command {
        Command::Seed(args) => seed(&cfg, args).await,
        Command::Emulate(args) => emulate(&cfg, &file, args).await,
        Command::Gateway(args) => serve_gateway(&cfg, &file, args).await,
        Command::Topics { action } => admin(&cfg, Namespace::Topics, action).await,
        Command::Streams { action } => admin(&cfg, Namespace::Streams, action).await,
        Command::Sink(args) => run_sink(&cfg, args).await,
        Command::Batch(args) => run_batch(&cfg, args).await,
        Command::Stream(args) => run_stream(&cfg, args).await,
        Command::Schedule(args) => run_schedule(&cfg, args).await,
        Command::Report(args) => {
            let out = args.out.unwrap_or_else(|| cfg.default_results());
            let path =
                report::rerender(&out).with_context(|| format!("re-rendering the report in {}", out.display()))?;
            println!("report: {}", path.display());
            Ok(())
        }
        Command::Demo(args) => run_demo(&cfg, args).await,
        Command::Bench { what: BenchWhat::Ingest(opts) } => {
            println!("{}", bench::ingest::run(&opts, &cfg.clients).await?);
            Ok(())
        }
        Command::Bench { what: BenchWhat::Batch(opts) } => {
            println!("{}", bench::batch::run(&opts).await?);
            Ok(())
        }
        Command::Bench { what: BenchWhat::Stream(opts) } => {
            println!("{}", bench::stream::run(&opts, &cfg.clients).await?);
            Ok(())
        }
    }
}

/// A token cancelled by Ctrl-C or SIGTERM: long-running commands stop cleanly on it.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C still stops");
                    let _ = ctrl_c.await;
                    cancel.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("stopping");
        cancel.cancel();
    });
    token
}

/// A progress bar on a terminal; hidden otherwise (callers print plain lines instead).
fn progress_bar(len: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template("{msg:>10} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner(),
    };
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

async fn seed(cfg: &Config, args: SeedArgs) -> Result<()> {
    let started = Instant::now();
    let src = source::Source::connect(&cfg.source).await.context("opening the source")?;
    src.create_tables().await.context("creating the source tables")?;
    let bar = progress_bar(Some(args.rows), "seed");
    let on_progress = {
        let bar = bar.clone();
        move |done: u64| bar.set_position(done)
    };
    src.seed(args.rows, args.seed, &on_progress).await.context("seeding the source")?;
    bar.finish_and_clear();
    let total = src.row_count().await?;
    println!(
        "seeded {} posts (seed {}) into {} in {:.1}s; the source now holds {total} rows per table",
        args.rows,
        args.seed,
        cfg.source,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn emulate(cfg: &Config, file: &FileConfig, args: EmulateArgs) -> Result<()> {
    let api =
        args.api.or_else(|| file.emulator.api.clone()).unwrap_or_else(|| format!("http://{}", config::DEFAULT_LISTEN));
    let count = (!args.forever).then_some(args.count);
    let pace = args.rate.or(cfg.file.emulator_rate).map_or(Pace::Original, Pace::Rate);
    let reader = source::Source::connect(&cfg.source).await.context("opening the source")?.reader().await?;
    let ecfg = EmulatorConfig {
        api: api.clone(),
        api_key: args.api_key.or_else(|| file.emulator.api_key.clone()),
        id: cfg.id.clone(),
        mode: args.mode,
        count,
        pace,
        concurrency: args.concurrency.or(cfg.file.emulator_concurrency).unwrap_or(1),
        seed: args.seed,
        retry: emulator::Retry::default(),
    };
    let bar = progress_bar(count, "emulate");
    let on_progress: Arc<dyn Fn(u64) + Send + Sync> = {
        let bar = bar.clone();
        Arc::new(move |done| bar.set_position(done))
    };
    let started = Instant::now();
    let summary = emulator::run(ecfg, reader, shutdown_on_signal(), on_progress).await?;
    bar.finish_and_clear();
    println!(
        "emulate {:?} → {api}: {} iterations in {:.1}s; sent {} records, failed {}, retries {}",
        args.mode,
        summary.iterations,
        started.elapsed().as_secs_f64(),
        summary.sent,
        summary.failed,
        summary.retries
    );
    if summary.failed > 0 {
        bail!("{} records were not accepted (see the warnings above)", summary.failed);
    }
    Ok(())
}

/// Opens the topics and streams logs and makes sure the six default logs exist.
pub async fn open_logs(cfg: &Config) -> Result<(Arc<dyn EventLog>, Arc<dyn EventLog>)> {
    let topics = eventlog::open_with_defaults(&cfg.log, Namespace::Topics, &cfg.id, &cfg.clients)
        .await
        .context("opening the topics log")?;
    let streams = eventlog::open_with_defaults(&cfg.streams, Namespace::Streams, &cfg.id, &cfg.clients)
        .await
        .context("opening the streams log")?;
    Ok((topics, streams))
}

async fn serve_gateway(cfg: &Config, file: &FileConfig, args: GatewayArgs) -> Result<()> {
    let listen = args.listen.or_else(|| file.gateway.listen.clone()).unwrap_or_else(|| config::DEFAULT_LISTEN.into());
    let base_path = args.base_path.or_else(|| file.gateway.base_path.clone());
    let api_keys = if args.api_keys.is_empty() { file.gateway.api_keys.clone() } else { args.api_keys };
    let (topics, streams) = open_logs(cfg).await?;
    let defaults = gateway::GatewayConfig::default();
    let f = &cfg.file;
    let gcfg = gateway::GatewayConfig {
        base_path,
        api_keys,
        header_read_timeout: args
            .header_read_timeout
            .or(f.gateway_header_read_timeout)
            .unwrap_or(defaults.header_read_timeout),
        idle_timeout: args.idle_timeout.or(f.gateway_idle_timeout).unwrap_or(defaults.idle_timeout),
        body_timeout: args.body_timeout.or(f.gateway_body_timeout).unwrap_or(defaults.body_timeout),
        max_connections: args.max_connections.or(f.gateway_max_connections),
    };
    let lake = Lake::open(&cfg.lake).context("opening the lake for the status page")?;
    let results = args.out.unwrap_or_else(|| cfg.default_results());
    let sources = gateway::status::Sources::new(cfg.id.clone(), Some(lake), Some(results));
    let state = gateway::AppState::with_status(gcfg, topics, streams, sources)?;
    let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, log = %eventlog::display_url(&cfg.log), streams = %eventlog::display_url(&cfg.streams), "gateway listening");
    // The first line ends with the base URL: scripts and tests read it from there. One write, so
    // a reader that stops after the first line cannot make the second fail.
    println!("gateway listening on http://{addr}\nstatus page: http://{addr}/");
    gateway::serve(listener, state, shutdown_on_signal()).await?;
    Ok(())
}

async fn admin(cfg: &Config, namespace: Namespace, action: AdminAction) -> Result<()> {
    let url = match namespace {
        Namespace::Topics => &cfg.log,
        Namespace::Streams => &cfg.streams,
    };
    // Creating or deleting one log must not first create the defaults (a default topic just
    // deleted would be back before it could be created again).
    let log = match action {
        AdminAction::Create { .. } | AdminAction::Delete { .. } => {
            eventlog::open_with(url, namespace, &cfg.clients).await?
        }
        AdminAction::List | AdminAction::Describe { .. } => {
            eventlog::open_with_defaults(url, namespace, &cfg.id, &cfg.clients).await?
        }
    };
    let noun = namespace.noun();
    match action {
        AdminAction::List => {
            for name in log.list().await? {
                println!("{name}");
            }
        }
        AdminAction::Create { name, partitions } => {
            let info = log.create(&name, partitions).await?;
            println!("created {noun} {} with {} partition(s)", info.name, info.partitions.len());
        }
        AdminAction::Describe { name } => {
            let info = log.describe(&name).await?;
            println!("{noun} {}: {} partition(s)", info.name, info.partitions.len());
            println!("{:>9}  {:>12}  {:>12}  {:>10}", "partition", "first", "next", "records");
            for p in info.partitions {
                println!("{:>9}  {:>12}  {:>12}  {:>10}", p.partition, p.start, p.end, p.end - p.start);
            }
        }
        AdminAction::Delete { name } => {
            log.delete(&name).await?;
            println!("deleted {noun} {name}");
        }
    }
    Ok(())
}

async fn run_demo(cfg: &Config, args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    let opts = demo::DemoOptions { count: args.count, rows: args.rows, seed: args.seed, concurrency: args.concurrency };
    let bar = progress_bar(None, "");
    let on_phase = {
        let bar = bar.clone();
        move |phase: demo::Phase, total: u64| {
            let what = match phase {
                demo::Phase::Seed => format!("seeding {total} posts into {}", cfg.source),
                demo::Phase::Emulate(mode) => format!("emulating {total} posts in {mode:?} mode"),
                demo::Phase::Sink => "landing the topics in the lake (sink)".to_string(),
                demo::Phase::Stream => "cleaning the streams into Delta tables (stream job)".to_string(),
                demo::Phase::Batch => "cleaning and answering Q1–Q8 (batch job)".to_string(),
            };
            if bar.is_hidden() {
                println!("{what}");
            } else {
                bar.set_length(total);
                bar.set_position(0);
                bar.set_style(
                    ProgressStyle::with_template("{msg:<44} [{bar:30}] {human_pos}/{human_len}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                bar.set_message(what);
            }
        }
    };
    let on_step: Arc<dyn Fn(u64) + Send + Sync> = {
        let bar = bar.clone();
        Arc::new(move |done| bar.set_position(done))
    };
    let report = demo::run(cfg, &opts, shutdown_on_signal(), &on_phase, on_step).await?;
    bar.finish_and_clear();
    println!("{}", report.batch_job);
    let logged = |name: &str| report.landed.get(name).copied().unwrap_or(0);
    let in_lake = |topic: &str| report.sink.topics.get(topic).map_or(0, |c| c.records);
    let in_delta = |stream: &str| {
        report.stream_job.tables.iter().find(|t| t.stream == stream).map_or(0, |t| t.committed + t.rejected)
    };
    let topics = Namespace::Topics.default_names(&cfg.id);
    let streams = Namespace::Streams.default_names(&cfg.id);
    let per_table = |f: &dyn Fn(usize) -> u64| {
        ["pin", "geo", "user"].iter().enumerate().map(|(i, t)| format!("{t} {}", f(i))).collect::<Vec<_>>().join(", ")
    };
    println!(
        "batch path:  sent {} = in the topics {} = in the lake files {} ({})",
        report.batch.sent,
        topics.iter().map(|t| logged(t)).sum::<u64>(),
        topics.iter().map(|t| in_lake(t)).sum::<u64>(),
        per_table(&|i| in_lake(&topics[i])),
    );
    println!(
        "stream path: sent {} = in the streams {} = in the Delta tables {} ({})",
        report.stream.sent,
        streams.iter().map(|s| logged(s)).sum::<u64>(),
        streams.iter().map(|s| in_delta(s)).sum::<u64>(),
        per_table(&|i| in_delta(&streams[i])),
    );
    let lake = Lake::open(&cfg.lake)?;
    let out = &report.batch_job.out;
    println!("where everything is:");
    println!("  source:  {}", cfg.source);
    println!("  topics:  {} ({})", eventlog::display_url(&cfg.log), topics.join(", "));
    println!("  streams: {} ({})", eventlog::display_url(&cfg.streams), streams.join(", "));
    println!("  lake:    {} (sink files)", lake.url_of("topics"));
    for table in report.stream_job.tables.iter().map(|t| &t.table).chain([&report.stream_job.rejects_table]) {
        println!("  delta:   {}", lake.url_of(&format!("delta/{table}")));
    }
    println!("  results: {} (cleaned tables, rejects and answers as Parquet and CSV)", out.display());
    println!("  report:  {}", out.join(report::REPORT_FILE).display());
    println!("demo finished in {:.1}s", started.elapsed().as_secs_f64());
    if !report.consistent(&cfg.id) {
        bail!("the counts differ: some records were not acknowledged or did not land");
    }
    Ok(())
}

async fn run_sink(cfg: &Config, args: SinkArgs) -> Result<()> {
    let log = eventlog::open_with_defaults(&cfg.log, Namespace::Topics, &cfg.id, &cfg.clients)
        .await
        .context("opening the topics log")?;
    let lake = Lake::open(&cfg.lake)?;
    let scfg = sink::SinkConfig {
        id: cfg.id.clone(),
        flush_size: args.flush_size.or(cfg.file.sink_flush_size).unwrap_or(sink::DEFAULT_FLUSH_SIZE),
        flush_interval: args.flush_interval.or(cfg.file.sink_flush_interval).unwrap_or(sink::DEFAULT_FLUSH_INTERVAL),
        drain: args.drain,
        worker: args.worker,
    };
    tracing::info!(lake = %lake.url(), log = %eventlog::display_url(&cfg.log), "sink starting");
    let shutdown = shutdown_on_signal();
    let metrics =
        start_metrics(args.metrics_listen.as_deref(), observe::Worker::Sink, cfg, log.clone(), &lake, &shutdown)
            .await?;
    let report = sink::run(&scfg, log, &lake, shutdown).await;
    stop_metrics(metrics).await?;
    let report = report?;
    println!("{report}");
    Ok(())
}

async fn run_batch(cfg: &Config, args: BatchArgs) -> Result<()> {
    let lake = Lake::open(&cfg.lake)?;
    let bcfg = batch::BatchConfig { id: cfg.id.clone(), out: args.out.unwrap_or_else(|| cfg.default_results()) };
    let report = batch::run(&bcfg, &lake).await?;
    println!("{report}");
    Ok(())
}

async fn run_stream(cfg: &Config, args: StreamArgs) -> Result<()> {
    let streams = eventlog::open_with_defaults(&cfg.streams, Namespace::Streams, &cfg.id, &cfg.clients)
        .await
        .context("opening the streams log")?;
    let lake = Lake::open(&cfg.lake)?;
    let scfg = stream::StreamConfig {
        id: cfg.id.clone(),
        max_batch_records: args.max_batch.or(cfg.file.stream_max_batch).unwrap_or(stream::DEFAULT_MAX_BATCH),
        max_latency: args.max_latency.or(cfg.file.stream_max_latency).unwrap_or(stream::DEFAULT_MAX_LATENCY),
        drain: args.drain,
        checkpoint_every: args
            .checkpoint_every
            .or(cfg.file.stream_checkpoint_every)
            .unwrap_or(stream::DEFAULT_CHECKPOINT_EVERY),
        lake_timeout: args
            .lake_timeout
            .or(cfg.file.stream_lake_timeout)
            .or(args.drain.then_some(stream::DEFAULT_DRAIN_LAKE_TIMEOUT)),
        worker: args.worker,
    };
    tracing::info!(lake = %lake.url(), streams = %eventlog::display_url(&cfg.streams), "stream job starting");
    let shutdown = shutdown_on_signal();
    let metrics =
        start_metrics(args.metrics_listen.as_deref(), observe::Worker::Stream, cfg, streams.clone(), &lake, &shutdown)
            .await?;
    let report = stream::run(&scfg, streams, &lake, shutdown).await;
    stop_metrics(metrics).await?;
    let report = report?;
    println!("{report}");
    Ok(())
}

async fn run_schedule(cfg: &Config, args: ScheduleArgs) -> Result<()> {
    let cron = schedule::Cron::parse(&args.cron)?;
    let lake = Lake::open(&cfg.lake)?;
    let bcfg = batch::BatchConfig { id: cfg.id.clone(), out: args.out.unwrap_or_else(|| cfg.default_results()) };
    let on_run = |run: &schedule::RunOutcome<'_>| match &run.result {
        Ok(report) => println!(
            "run {} (tick {}): ok in {:.1}s, {} records read; results in {}",
            run.number,
            run.tick.to_rfc3339(),
            run.took.as_secs_f64(),
            report.tables.iter().map(|t| t.read).sum::<u64>(),
            report.out.display()
        ),
        Err(e) => println!("run {} (tick {}): failed: {e}", run.number, run.tick.to_rfc3339()),
    };
    let summary = schedule::run(&cron, &bcfg, &lake, shutdown_on_signal(), &on_run).await?;
    println!(
        "schedule stopped: {} runs succeeded, {} failed, {} ticks skipped",
        summary.succeeded, summary.failed, summary.skipped
    );
    Ok(())
}
