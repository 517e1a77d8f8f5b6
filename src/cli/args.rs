//! The command line's shape (SPEC §10): every subcommand, flag and environment variable, as clap
//! definitions whose doc comments are the `--help` text.
//!
//! Global and backend flags are `global = true` (accepted before or after the subcommand) and
//! every flag also reads `PINPIPE_<FLAG>`. Values are checked here, when parsed, against the
//! ranges of [`pinpipe::settings::values`] and the URL rules of [`pinpipe::settings::url`] (both
//! shared with `pinpipe.toml`); each stage's flags become its settings section (`section()`),
//! which [`super::commands`] lays over the file's and the stage's defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pinpipe::bench::backend::Backend;
use pinpipe::eventlog::{MinFree, OnGap, Retention};
use pinpipe::settings;
use pinpipe::settings::values as range;
use pinpipe::settings::values::{ByteLimit, OrOff};
use pinpipe::settings::{
    BatchSection, EmulatorSection, GatewaySection, Globals, LakeUrl, LogUrl, SinkSection, SourceUrl, StreamSection,
    Worker,
};
use pinpipe::{bench, emulator, source};

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
    pub source: Option<SourceUrl>,
    /// Event log for the batch topics: embedded://DIR or kafka://HOST:PORT[,HOST:PORT][?setting=value…]
    /// [default: embedded://<data>/log]
    #[arg(long, global = true, env = "PINPIPE_LOG", value_name = "URL")]
    pub log: Option<LogUrl>,
    /// Event log for the streams: embedded://DIR or kinesis://REGION[?endpoint=URL]
    /// [default: the --log URL when it is embedded, else embedded://<data>/log]
    #[arg(long, global = true, env = "PINPIPE_STREAMS", value_name = "URL")]
    pub streams: Option<LogUrl>,
    /// The lake: file://DIR or s3://bucket/prefix [default: file://<data>/lake]
    #[arg(long, global = true, env = "PINPIPE_LAKE", value_name = "URL")]
    pub lake: Option<LakeUrl>,
    /// How long the embedded log keeps the records of a topic without a retention of its own,
    /// as Kafka's retention.ms: a duration (7d, 12h, 30m) or `forever`; the oldest are removed in
    /// the background and their space reused or returned. Kafka: the retention.ms of topics
    /// pinpipe creates. [default: 7d; also `[log] retention`]
    #[arg(long, global = true, env = "PINPIPE_RETENTION", value_name = "DURATION",
          value_parser = range::parse_retention)]
    pub retention: Option<Retention>,
    /// The same for the streams, as a Kinesis retention period. Kinesis: the retention period
    /// of streams pinpipe creates (24h to 365d). [default: 24h; also `[streams] retention`]
    #[arg(long, global = true, env = "PINPIPE_STREAM_RETENTION", value_name = "DURATION",
          value_parser = range::parse_retention)]
    pub stream_retention: Option<Retention>,
    /// Most bytes of records the embedded log keeps for the topics, all together (like Kafka's
    /// retention.bytes, summed): past it the oldest go, whatever their age. A size of 1MiB or
    /// more (10GiB), or `none` [default: none; also `[log] retention_bytes`]
    #[arg(long, global = true, env = "PINPIPE_RETENTION_BYTES", value_name = "SIZE",
          value_parser = range::parse_retention_bytes)]
    pub retention_bytes: Option<ByteLimit>,
    /// The same for the streams [default: none; also `[streams] retention_bytes`]
    #[arg(long, global = true, env = "PINPIPE_STREAM_RETENTION_BYTES", value_name = "SIZE",
          value_parser = range::parse_retention_bytes)]
    pub stream_retention_bytes: Option<ByteLimit>,
    /// Free space the embedded log leaves on its disk: under it the gateway answers 503 with
    /// Retry-After until space is back. A size (2GiB, 500MB, 0 for none) or a share (5%).
    /// [default: 1GiB or 5%, whichever is smaller; also `[log] min_free`]
    #[arg(long, global = true, env = "PINPIPE_MIN_FREE", value_name = "SIZE", value_parser = range::parse_min_free)]
    pub min_free: Option<MinFree>,
    /// Most records waiting for the embedded log's writer (what bounds the memory they take);
    /// past it appends get 503 with Retry-After [default: 100000; 1 to 100,000,000; also
    /// `[log] max_pending`]
    #[arg(long, global = true, env = "PINPIPE_MAX_PENDING", value_name = "N",
          value_parser = range::MAX_PENDING.usize_parser())]
    pub max_pending: Option<usize>,
    /// Print the settings the command would run with — after flags, PINPIPE_* variables, the
    /// config file and the defaults — and exit without running it. Secrets show as ***.
    #[arg(long, global = true)]
    pub print_settings: bool,
    /// Log line format on stderr (filter with RUST_LOG, e.g. RUST_LOG=debug)
    /// [default: text; also `log_format`]
    #[arg(long, global = true, env = "PINPIPE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

impl GlobalArgs {
    /// The global settings given as flags or variables.
    pub fn globals(&self) -> Globals {
        Globals {
            data: self.data.clone(),
            id: self.id.clone(),
            source: self.source.clone(),
            log: self.log.clone(),
            streams: self.streams.clone(),
            lake: self.lake.clone(),
            retention: self.retention,
            stream_retention: self.stream_retention,
            retention_bytes: self.retention_bytes,
            stream_retention_bytes: self.stream_retention_bytes,
            min_free: self.min_free,
            max_pending: self.max_pending,
            log_format: self.log_format.map(|f| match f {
                LogFormat::Text => settings::LogFormat::Text,
                LogFormat::Json => settings::LogFormat::Json,
            }),
        }
    }
}

fn parse_on_gap(text: &str) -> Result<OnGap, String> {
    text.parse()
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
    /// Clean the sink files that are new since the last run into the batch Delta tables
    /// (<lake>/delta/<id>_batch_pin, …), answer the eight questions, and write the results.
    ///
    /// Each run is numbered and writes its plan (<lake>/batch/<id>/runs/) before it reads: a run
    /// that was killed is completed by the next one, and a second run started meanwhile stops
    /// with a message. `--full-refresh` rebuilds the tables from every file.
    Batch(BatchArgs),
    /// Clean the streams into Delta tables under <lake>/delta, exactly once.
    Stream(StreamArgs),
    /// Look after the stream job's Delta tables by hand: compact, vacuum, describe.
    ///
    /// The stream job does the same in the background while it runs; these are for a scheduler,
    /// a job run with --drain now and then, or a look at a table.
    Delta {
        #[command(subcommand)]
        action: DeltaAction,
    },
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
    #[arg(long, env = "PINPIPE_ROWS", default_value_t = source::DEFAULT_ROWS, value_parser = range::ROWS.u64_parser())]
    pub rows: u64,
    /// Random seed: the same seed writes the same rows.
    #[arg(long, env = "PINPIPE_SEED", default_value_t = source::DEFAULT_SEED)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct SinkArgs {
    /// Own only the partitions p with p % N == I, so N workers started as 0/N … N-1/N split the
    /// partitions between them (each keeps its positions in the outputs)
    /// [default: 0/1, all; also `[sink] worker`]
    #[arg(long, env = "PINPIPE_WORKER", value_name = "I/N")]
    pub worker: Option<Worker>,
    /// Records per file (Confluent flush.size); 1 reproduces the course's one-record files
    /// [default: 1000; 1 to 10,000,000; also `[sink] flush_size`]
    #[arg(long, env = "PINPIPE_FLUSH_SIZE", value_name = "N", value_parser = range::FLUSH_SIZE.usize_parser())]
    pub flush_size: Option<usize>,
    /// Longest a record waits before its file is written, e.g. 10s or 500ms
    /// [default: 10s; 10ms to 1d; also `[sink] flush_interval`]
    #[arg(long, env = "PINPIPE_FLUSH_INTERVAL", value_name = "DURATION", value_parser = range::FLUSH_INTERVAL.parser())]
    pub flush_interval: Option<Duration>,
    /// Write out everything in the topics, then exit 0 (instead of following the log).
    #[arg(long, env = "PINPIPE_DRAIN")]
    pub drain: bool,
    /// Serve Prometheus metrics (positions, lag, files, logged errors) at http://ADDR/metrics
    /// [default: off; also `[sink] metrics_listen`]
    #[arg(long, env = "PINPIPE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// When retention removed records before they reached the lake: `stop` with an error naming
    /// the topic, the partition and the records lost, or `skip` them (logged, and counted in
    /// /metrics as pinpipe_sink_skipped_records_total) [default: stop; also `[sink] on_gap`]
    #[arg(long, env = "PINPIPE_ON_GAP", value_name = "stop|skip", value_parser = parse_on_gap)]
    pub on_gap: Option<OnGap>,
}

impl SinkArgs {
    /// The `[sink]` settings these flags give.
    pub fn section(&self) -> SinkSection {
        SinkSection {
            flush_size: self.flush_size,
            flush_interval: self.flush_interval,
            worker: self.worker,
            metrics_listen: self.metrics_listen.clone(),
            on_gap: self.on_gap,
        }
    }
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Where the answers and the report go: a folder, or `s3://bucket/prefix` (credentials and
    /// endpoint as for the lake) [default: <data>/results; also `[batch] out`]
    #[arg(long, env = "PINPIPE_OUT", value_name = "DIR|s3://…")]
    pub out: Option<PathBuf>,
    /// Rebuild the batch tables from every sink file (in the order earlier runs took them) instead
    /// of adding only the files that are new since the last run
    #[arg(long, env = "PINPIPE_FULL_REFRESH")]
    pub full_refresh: bool,
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// When to run, in UTC: standard 5-field cron (`0 0 * * *`), or 6–7 fields with seconds first
    /// (`*/30 * * * * *`). Weekday numbers are 1–7 from Sunday; names (MON-FRI) are clearer
    /// [default: 0 0 0 * * *, daily at midnight; also `[batch] cron`]
    #[arg(long, env = "PINPIPE_CRON", value_name = "EXPR")]
    pub cron: Option<String>,
    /// Where the answers and the report go: a folder, or `s3://bucket/prefix` [default:
    /// <data>/results; also `[batch] out`]
    #[arg(long, env = "PINPIPE_OUT", value_name = "DIR|s3://…")]
    pub out: Option<PathBuf>,
}

impl ScheduleArgs {
    /// The `[batch]` settings these flags give.
    pub fn section(&self) -> BatchSection {
        BatchSection { out: self.out.clone(), cron: self.cron.clone() }
    }
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results folder of the batch run [default: <data>/results; also `[batch] out`]
    #[arg(long, env = "PINPIPE_OUT", value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StreamArgs {
    /// Own only the partitions p with p % N == I, so N workers started as 0/N … N-1/N split the
    /// partitions between them (each keeps its positions in the outputs)
    /// [default: 0/1, all; also `[stream] worker`]
    #[arg(long, env = "PINPIPE_WORKER", value_name = "I/N")]
    pub worker: Option<Worker>,
    /// Commit everything in the streams, then exit 0 (instead of following them).
    #[arg(long, env = "PINPIPE_DRAIN")]
    pub drain: bool,
    /// Most records per micro-batch [default: 10000; 1 to 1,000,000; also `[stream] max_batch`]
    #[arg(long, env = "PINPIPE_MAX_BATCH", value_name = "N", value_parser = range::MAX_BATCH.usize_parser())]
    pub max_batch: Option<usize>,
    /// Longest a record waits before its micro-batch is committed, e.g. 1s or 250ms
    /// (each micro-batch is a Delta commit per table: on S3, a longer cut means fewer requests)
    /// [default: 250ms; 10ms to 1h; also `[stream] max_latency`]
    #[arg(long, env = "PINPIPE_MAX_LATENCY", value_name = "DURATION", value_parser = range::MAX_LATENCY.parser())]
    pub max_latency: Option<Duration>,
    /// Write a Delta checkpoint every N commits of a table
    /// [default: 100; 1 to 1,000,000; also `[stream] checkpoint_every`]
    #[arg(long, env = "PINPIPE_CHECKPOINT_EVERY", value_name = "N", value_parser = range::CHECKPOINT_EVERY.u64_parser())]
    pub checkpoint_every: Option<u64>,
    /// Give up (exit 2) when the lake has been full or unreachable this long, e.g. 30m
    /// [default: as long as it takes; 10m with --drain; 1s to 30d; also `[stream] lake_timeout`]
    #[arg(long, env = "PINPIPE_LAKE_TIMEOUT", value_name = "DURATION", value_parser = range::LAKE_TIMEOUT.parser())]
    pub lake_timeout: Option<Duration>,
    /// Serve Prometheus metrics (positions, lag, table versions, logged errors) at
    /// http://ADDR/metrics [default: off; also `[stream] metrics_listen`]
    #[arg(long, env = "PINPIPE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// When retention removed records before they reached the tables: `stop` with an error
    /// naming the stream, the partition and the records lost, or `skip` them (logged, and
    /// counted in /metrics as pinpipe_stream_skipped_records_total) [default: stop; also
    /// `[stream] on_gap`]
    #[arg(long, env = "PINPIPE_ON_GAP", value_name = "stop|skip", value_parser = parse_on_gap)]
    pub on_gap: Option<OnGap>,
    /// Compact a Delta table (rewrite its small files into files near --target-file-size, a
    /// commit that changes no data) once it has more than N files under half that size, or
    /// `off` [default: 100; 1 to 1,000,000; also `[stream] compact_files`]
    #[arg(long, env = "PINPIPE_COMPACT_FILES", value_name = "N|off", value_parser = range::parse_compact_files)]
    pub compact_files: Option<OrOff<usize>>,
    /// The size compaction aims its files at, e.g. 128MiB (a small table gets one smaller file)
    /// [default: 128MiB; 1MiB to 16GiB; also `[stream] target_file_size`]
    #[arg(long, env = "PINPIPE_TARGET_FILE_SIZE", value_name = "SIZE", value_parser = range::parse_target_file_size)]
    pub target_file_size: Option<u64>,
    /// How long vacuum keeps data files that no version needs any more (time travel reaches
    /// back this far), e.g. 7d [default: the table's delta.deletedFileRetentionDuration, 7d
    /// unless set; also `[stream] file_retention`]
    #[arg(long, env = "PINPIPE_FILE_RETENTION", value_name = "DURATION", value_parser = range::FILE_RETENTION.parser())]
    pub file_retention: Option<Duration>,
    /// How often the job vacuums its tables (the first time within a minute of start), or `off`
    /// [default: 1h; 1s to 30d; also `[stream] vacuum_every`]
    #[arg(long, env = "PINPIPE_VACUUM_EVERY", value_name = "DURATION|off", value_parser = range::parse_vacuum_every)]
    pub vacuum_every: Option<OrOff<Duration>>,
}

impl StreamArgs {
    /// The `[stream]` settings these flags give.
    pub fn section(&self) -> StreamSection {
        StreamSection {
            max_batch: self.max_batch,
            max_latency: self.max_latency,
            checkpoint_every: self.checkpoint_every,
            lake_timeout: self.lake_timeout,
            worker: self.worker,
            metrics_listen: self.metrics_listen.clone(),
            on_gap: self.on_gap,
            compact_files: self.compact_files,
            target_file_size: self.target_file_size,
            file_retention: self.file_retention,
            vacuum_every: self.vacuum_every,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DeltaAction {
    /// Rewrite a table's small files into files near --target-file-size, in commits that change
    /// no data (OPTIMIZE): rows, stored stream positions and older versions stay as they were.
    Optimize(DeltaOptimizeArgs),
    /// Delete data files that no version within the file retention needs (VACUUM), including
    /// files of writes that never committed once they are that old.
    Vacuum(DeltaVacuumArgs),
    /// Show a table's version, data files and their sizes, retention settings and the stream
    /// positions stored in it.
    Describe(DeltaTableArg),
}

#[derive(Debug, Args)]
pub struct DeltaTableArg {
    /// A table under <lake>/delta (pinterest_pin_table), or pin, geo, user or rejects for this
    /// pipeline's own [default: all four of this pipeline's tables]
    pub table: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeltaOptimizeArgs {
    #[command(flatten)]
    pub table: DeltaTableArg,
    /// The size to aim the rewritten files at [default: 128MiB; 1MiB to 16GiB; also `[stream]
    /// target_file_size`]
    #[arg(long, env = "PINPIPE_TARGET_FILE_SIZE", value_name = "SIZE", value_parser = range::parse_target_file_size)]
    pub target_file_size: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DeltaVacuumArgs {
    #[command(flatten)]
    pub table: DeltaTableArg,
    /// Keep files removed less than this long ago (time travel reaches back this far)
    /// [default: the table's delta.deletedFileRetentionDuration, 7d unless set; also `[stream]
    /// file_retention`]
    #[arg(long, env = "PINPIPE_FILE_RETENTION", value_name = "DURATION", value_parser = range::FILE_RETENTION.parser())]
    pub file_retention: Option<Duration>,
    /// List the files vacuum would delete, and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Emulator iterations per mode (batch, then stream).
    #[arg(long, env = "PINPIPE_COUNT", default_value_t = 1000)]
    pub count: u64,
    /// Posts to generate when the source is empty.
    #[arg(long, env = "PINPIPE_ROWS", default_value_t = source::DEFAULT_ROWS, value_parser = range::ROWS.u64_parser())]
    pub rows: u64,
    /// Seed for the generator and the emulator.
    #[arg(long, env = "PINPIPE_SEED", default_value_t = source::DEFAULT_SEED)]
    pub seed: u64,
    /// Emulator requests in flight at once (1 to 10,000).
    #[arg(long, env = "PINPIPE_CONCURRENCY", default_value_t = 16, value_parser = range::CONCURRENCY.usize_parser())]
    pub concurrency: usize,
}

#[derive(Debug, Args)]
pub struct EmulateArgs {
    /// batch: POST /topics/<id>.{pin,geo,user}; stream: PUT /streams/streaming-<id>-{pin,geo,user}/record
    #[arg(long, env = "PINPIPE_MODE", value_enum)]
    pub mode: ModeArg,
    /// Base URL of the gateway, stage path included (e.g. http://127.0.0.1:8082/dev)
    /// [default: http://127.0.0.1:8082; also `[emulator] api`]
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
    #[arg(long, env = "PINPIPE_RATE", value_parser = range::EMULATOR_RATE.parser())]
    pub rate: Option<f64>,
    /// Iterations in flight at once [default: 1; 1 to 10,000; also `[emulator] concurrency`]
    #[arg(long, env = "PINPIPE_CONCURRENCY", value_name = "N", value_parser = range::CONCURRENCY.usize_parser())]
    pub concurrency: Option<usize>,
    /// Random seed for the row choice: the same seed sends the same rows
    /// [default: 42; also `[emulator] seed`]
    #[arg(long, env = "PINPIPE_SEED")]
    pub seed: Option<u64>,
}

impl EmulateArgs {
    /// The `[emulator]` settings these flags give.
    pub fn section(&self) -> EmulatorSection {
        EmulatorSection {
            api: self.api.clone(),
            api_key: self.api_key.clone(),
            rate: self.rate,
            concurrency: self.concurrency,
            seed: self.seed,
        }
    }
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on [default: 127.0.0.1:8082; also `[gateway] listen`]
    #[arg(long, env = "PINPIPE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// API Gateway stage prefix, e.g. /dev (routes become /dev/topics/…) [also `[gateway] base_path`]
    #[arg(long, env = "PINPIPE_BASE_PATH", value_name = "PATH")]
    pub base_path: Option<String>,
    /// Require x-api-key to be one of these (repeat the flag, or comma-separate in the variable).
    /// Prefer PINPIPE_API_KEY or `[gateway] api_keys`: a flag shows in `ps` to every user.
    #[arg(long = "api-key", env = "PINPIPE_API_KEY", value_delimiter = ',', value_name = "KEY")]
    pub api_keys: Vec<String>,
    /// Close a connection whose request head has not arrived whole this long after the accept
    /// or the previous response [default: 10s; 100ms to 1h; also `[gateway] header_read_timeout`]
    #[arg(long, env = "PINPIPE_HEADER_READ_TIMEOUT", value_name = "DURATION", value_parser = range::HEADER_READ_TIMEOUT.parser())]
    pub header_read_timeout: Option<Duration>,
    /// Close a keep-alive connection idle this long [default: 5s; 100ms to 1h, at most the
    /// header-read timeout; also `[gateway] idle_timeout`]
    #[arg(long, env = "PINPIPE_IDLE_TIMEOUT", value_name = "DURATION", value_parser = range::IDLE_TIMEOUT.parser())]
    pub idle_timeout: Option<Duration>,
    /// Answer 408 when a request body takes longer than this to arrive
    /// [default: 30s; 100ms to 1h; also `[gateway] body_timeout`]
    #[arg(long, env = "PINPIPE_BODY_TIMEOUT", value_name = "DURATION", value_parser = range::BODY_TIMEOUT.parser())]
    pub body_timeout: Option<Duration>,
    /// Most connections open at once; past it, the connection idle longest is closed to make
    /// room [default: the open-file limit less a reserve; also `[gateway] max_connections`]
    #[arg(long, env = "PINPIPE_MAX_CONNECTIONS", value_name = "N", value_parser = range::MAX_CONNECTIONS.usize_parser())]
    pub max_connections: Option<usize>,
    /// Results folder whose last batch run the status page (/) shows
    /// [default: <data>/results; also `[batch] out`]
    #[arg(long, env = "PINPIPE_OUT", value_name = "DIR")]
    pub out: Option<PathBuf>,
}

impl GatewayArgs {
    /// The `[gateway]` settings these flags give.
    pub fn section(&self) -> GatewaySection {
        GatewaySection {
            listen: self.listen.clone(),
            base_path: self.base_path.clone(),
            api_keys: (!self.api_keys.is_empty()).then(|| self.api_keys.clone()),
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            body_timeout: self.body_timeout,
            max_connections: self.max_connections,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// List all names.
    List,
    /// Create one. With --retention (streams: --stream-retention or --retention) it keeps its
    /// records that long whatever the namespace's default; without, it follows the default.
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
    Ingest(IngestArgs),
    /// Generate posts, land them through the sink, run the batch job (and PySpark with --spark).
    Batch(BatchBenchArgs),
    /// End-to-end latency from the gateway's 200 to the row visible in the Delta table
    ///
    /// The gateway, the streams and the stream job run in this process; the streams are a
    /// temporary embedded log, or fresh streams on the backend --backend names. Examples:
    ///
    ///   pinpipe bench stream --rates 1000,5000 --seconds 10
    ///   pinpipe bench stream --backend 'kinesis://us-east-1?endpoint=http://127.0.0.1:4567'
    #[command(verbatim_doc_comment)]
    Stream(StreamBenchArgs),
    /// The pipeline as separate long-running processes for --duration, watched for what grows
    ///
    /// Starts a gateway, a sink and a stream job, each its own process, on the embedded
    /// defaults in a temporary folder, and the emulator in both modes at --rate posts/s each.
    /// Samples each process's RSS, the log's bytes on disk, lake objects, Delta files and the
    /// latency of a probe post a second (its 200, and its Delta commit); prints the series and
    /// the slopes after --warmup; at the end checks that every acknowledged record is in the
    /// lake and in the Delta tables exactly once (exit 1 if not). --retention sets the topics'
    /// and the streams' retention (5m here by default). Example:
    ///
    ///   pinpipe bench soak --duration 30m --rate 1000 --retention 5m
    #[command(verbatim_doc_comment)]
    Soak(SoakArgs),
}

#[derive(Debug, Args)]
pub struct SoakArgs {
    /// How long the load runs.
    #[arg(long, default_value = "30m", value_name = "DURATION", value_parser = range::BENCH_DURATION.parser())]
    pub duration: Duration,
    /// Posts per second of each emulator (batch and stream mode).
    #[arg(long, default_value_t = 1000.0, value_parser = range::EMULATOR_RATE.parser())]
    pub rate: f64,
    /// How often the processes are sampled.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = range::BENCH_DURATION.parser())]
    pub sample: Duration,
    /// The start of the run the slopes and the RSS comparison leave out.
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = range::BENCH_DURATION.parser())]
    pub warmup: Duration,
    /// A Python that has the `deltalake` package: every sample then also times a whole read of
    /// the pin table with it.
    #[arg(long, env = "PINPIPE_PYTHON", value_name = "PATH")]
    pub python: Option<PathBuf>,
}

impl SoakArgs {
    /// The soak's options, with `retention` (the global `--retention`) for the topics and the
    /// streams, 5 minutes when not given.
    pub fn options(self, retention: Option<Retention>) -> bench::soak::SoakOptions {
        bench::soak::SoakOptions {
            duration: self.duration,
            rate: self.rate,
            retention: retention.unwrap_or(Retention::For(Duration::from_secs(300))),
            sample_every: self.sample,
            warmup: self.warmup,
            python: self.python,
        }
    }
}

/// Which family of API routes the emulator posts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Kafka REST proxy routes: `POST /topics/<id>.pin` …
    Batch,
    /// Kinesis routes: `PUT /streams/streaming-<id>-pin/record` …
    Stream,
}

impl From<ModeArg> for emulator::Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Batch => emulator::Mode::Batch,
            ModeArg::Stream => emulator::Mode::Stream,
        }
    }
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Seconds of load per case.
    #[arg(long, env = "PINPIPE_BENCH_SECONDS", value_name = "DURATION", default_value = "5s", value_parser = range::BENCH_DURATION.parser())]
    pub seconds: Duration,
    /// Requests in flight at once (keep-alive connections); each level is a separate round.
    #[arg(long, env = "PINPIPE_CONCURRENCY", value_delimiter = ',', default_values_t = [32, 64])]
    pub concurrency: Vec<usize>,
    /// The log the gateway appends to: `embedded` (a temporary folder), or a URL such as
    /// kafka://127.0.0.1:9092 or kinesis://us-east-1?endpoint=http://127.0.0.1:4567. A fresh
    /// topic (on Kinesis: a stream, fed through the Kinesis-proxy routes) is created there for
    /// the run and deleted after; the `[kafka]` settings of the config file apply.
    #[arg(long, env = "PINPIPE_BENCH_BACKEND", default_value = "embedded", value_name = "embedded|URL")]
    pub backend: Backend,
}

impl From<IngestArgs> for bench::ingest::IngestOptions {
    fn from(a: IngestArgs) -> Self {
        bench::ingest::IngestOptions { seconds: a.seconds, concurrency: a.concurrency, backend: a.backend }
    }
}

#[derive(Debug, Args)]
pub struct StreamBenchArgs {
    /// Fixed rates to measure, in records per second.
    #[arg(long, env = "PINPIPE_BENCH_RATES", value_delimiter = ',', default_values_t = [1000, 5000])]
    pub rates: Vec<u32>,
    /// Seconds of load per round.
    #[arg(long, env = "PINPIPE_BENCH_SECONDS", value_name = "DURATION", default_value = "10s", value_parser = range::BENCH_DURATION.parser())]
    pub seconds: Duration,
    /// Connections of the closed-loop round that finds the sustained maximum (0 skips it).
    #[arg(long, env = "PINPIPE_CONCURRENCY", default_value_t = 64)]
    pub max_connections: usize,
    /// Micro-batch cuts (the stream job's --max-latency) to measure, each a run of every round
    /// [default: 1s (the default before compaction) and today's default]
    #[arg(long, value_delimiter = ',', value_name = "DURATION,…", value_parser = range::MAX_LATENCY.parser())]
    pub cuts: Vec<Duration>,
    /// Where the streams live: `embedded` (a temporary folder), or a URL such as
    /// kinesis://us-east-1?endpoint=http://127.0.0.1:4567 (fresh streams are created there for
    /// the run and deleted after). Kinesis allows five GetRecords calls a second per shard, so
    /// the stream job's reads of a shard are at least 200 ms apart there: expect that much more
    /// latency.
    #[arg(long, env = "PINPIPE_BENCH_BACKEND", default_value = "embedded", value_name = "embedded|URL")]
    pub backend: Backend,
}

impl From<StreamBenchArgs> for bench::stream::StreamBenchOptions {
    fn from(a: StreamBenchArgs) -> Self {
        bench::stream::StreamBenchOptions {
            rates: a.rates,
            seconds: a.seconds,
            max_connections: a.max_connections,
            cuts: if a.cuts.is_empty() {
                let mut cuts = vec![Duration::from_secs(1), pinpipe::stream::DEFAULT_MAX_LATENCY];
                cuts.dedup();
                cuts
            } else {
                a.cuts
            },
            backend: a.backend,
        }
    }
}

#[derive(Debug, Args)]
pub struct BatchBenchArgs {
    /// Posts to generate (each is one record on each of the three topics); with `--new`, the
    /// history the first run processes.
    #[arg(long, visible_alias = "history", env = "PINPIPE_BENCH_ROWS", default_value_t = 1_000_000)]
    pub rows: u64,
    /// Then land this many more posts and time, in one run, the incremental batch run over them
    /// and a `--full-refresh` over everything (their answers compared); 0: one run only.
    #[arg(long, default_value_t = 0)]
    pub new: u64,
    /// Random seed of the generator.
    #[arg(long, default_value_t = source::DEFAULT_SEED)]
    pub seed: u64,
    /// Also send every K-th post a second time (the emulator samples with replacement); 0: never.
    #[arg(long, default_value_t = 0)]
    pub repeat_every: u64,
    /// Also run the PySpark job on the same files and compare the answers.
    #[arg(long)]
    pub spark: bool,
    /// The Python that has pyspark (and pyarrow, for the comparison).
    #[arg(long, env = "PINPIPE_PYTHON", default_value = "/root/.cache/pinpipe-venv/bin/python")]
    pub python: PathBuf,
    /// The folder of `batch_job.py` and `compare.py`.
    #[arg(long, env = "PINPIPE_SPARK_DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/spark"))]
    pub spark_dir: PathBuf,
    /// Work in this folder and keep the log, lake and results (default: a temporary folder).
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

impl From<BatchBenchArgs> for bench::batch::BatchBenchOptions {
    fn from(a: BatchBenchArgs) -> Self {
        bench::batch::BatchBenchOptions {
            rows: a.rows,
            new: a.new,
            seed: a.seed,
            repeat_every: a.repeat_every,
            spark: a.spark,
            python: a.python,
            spark_dir: a.spark_dir,
            keep: a.keep,
        }
    }
}
