//! Operability for the long-running workers: `/metrics` (Prometheus text format 0.0.4) on the
//! sink and the stream job (`--metrics-listen ADDR`), and a count of the warnings and errors
//! every command logs.
//!
//! The numbers come from where the work lands, like the status page's ([`crate::lag`]): for each
//! partition the log end, the worker's position (the next offset its output lacks) and the lag
//! between them; the records its output holds; the sink's files in the lake, the stream job's
//! Delta table versions (one per commit). Read at each scrape, so they are right across restarts
//! and for several processes alike. `pinpipe_log_events_total` counts this process's `WARN` and
//! `ERROR` log events (failed writes that are retried, failed partitions): the worker's errors.
//! `pinpipe_<worker>_lake_writable` and `pinpipe_<worker>_lake_failures_total` say whether the
//! worker is waiting out a lake that is full or unreachable ([`lake_trouble`], fed by the sink's
//! and the stream job's retry loops). The gateway has its own `/metrics` ([`crate::gateway::metrics`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Level;

use crate::clean::Table;
use crate::eventlog::EventLog;
use crate::lag::LagProbe;
use crate::lake::Trouble;
use crate::sink::layout;
use crate::stream::Progress;

static WARNINGS: AtomicU64 = AtomicU64::new(0);
static ERRORS: AtomicU64 = AtomicU64::new(0);
/// 0 while the lake takes writes; 1 + the [`Trouble`] index while this process waits it out.
static LAKE_STATE: AtomicU64 = AtomicU64::new(0);
/// Failed lake writes by [`Trouble`]: unreachable, full.
static LAKE_FAILURES: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
/// Records retention removed before this process read them and that it skipped
/// (`--on-gap skip`), by (log, partition).
static SKIPPED: Mutex<BTreeMap<(String, u32), u64>> = Mutex::new(BTreeMap::new());

/// Records (in the log and in `/metrics`) that this process skips records `from..start` of a
/// partition, which retention removed before they were read (`--on-gap skip`).
pub(crate) fn gap_skipped(log: &str, partition: u32, from: u64, start: u64) {
    let lost = start.saturating_sub(from);
    tracing::warn!(
        log,
        partition,
        from,
        start,
        lost,
        "records were removed by retention before they were read; skipping them (--on-gap skip)"
    );
    if let Ok(mut skipped) = SKIPPED.lock() {
        *skipped.entry((log.to_string(), partition)).or_default() += lost;
    }
}

fn trouble_index(t: Trouble) -> usize {
    match t {
        Trouble::Unreachable => 0,
        Trouble::Full => 1,
    }
}

/// An error and every cause behind it, `outer: inner: innermost`, for log lines and messages
/// (one line, where `{:#}` of `anyhow` is not at hand).
pub(crate) struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// Records a failed (or not attempted) lake write of this process and why; it is retried.
pub(crate) fn lake_trouble(trouble: Trouble) {
    LAKE_FAILURES[trouble_index(trouble)].fetch_add(1, Ordering::Relaxed);
    LAKE_STATE.store(1 + trouble_index(trouble) as u64, Ordering::Relaxed);
}

/// Records that a lake write of this process succeeded.
pub(crate) fn lake_ok() {
    LAKE_STATE.store(0, Ordering::Relaxed);
}

/// What keeps this process's lake writes waiting now, if anything.
pub(crate) fn lake_state() -> Option<Trouble> {
    match LAKE_STATE.load(Ordering::Relaxed) {
        1 => Some(Trouble::Unreachable),
        2 => Some(Trouble::Full),
        _ => None,
    }
}

/// A `tracing` layer that counts `WARN` and `ERROR` events (those the filter lets through).
pub struct EventCounter;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for EventCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        match *event.metadata().level() {
            Level::WARN => WARNINGS.fetch_add(1, Ordering::Relaxed),
            Level::ERROR => ERRORS.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }
}

/// The `WARN` and `ERROR` events counted so far in this process.
pub(crate) fn log_events() -> (u64, u64) {
    (WARNINGS.load(Ordering::Relaxed), ERRORS.load(Ordering::Relaxed))
}

/// Which worker a metrics endpoint describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Worker {
    /// `pinpipe sink`: the topics into the lake's files.
    Sink,
    /// `pinpipe stream`: the streams into Delta tables.
    Stream,
}

impl Worker {
    fn label(self) -> &'static str {
        match self {
            Worker::Sink => "sink",
            Worker::Stream => "stream",
        }
    }
}

/// What a worker's `/metrics` reads.
pub struct WorkerMetrics {
    worker: Worker,
    /// The log the worker reads: the topics log for the sink, the streams log for the stream job.
    log: Arc<dyn EventLog>,
    probe: LagProbe,
}

/// Errors serving the metrics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the metrics server failed")]
    Serve(#[source] std::io::Error),
}

impl WorkerMetrics {
    /// Metrics of `worker` reading `log` for pipeline `id` into the probe's lake.
    pub fn new(worker: Worker, log: Arc<dyn EventLog>, probe: LagProbe) -> Self {
        WorkerMetrics { worker, log, probe }
    }

    /// Everything, in the Prometheus text exposition format 0.0.4.
    pub async fn render(&self) -> String {
        let mut problems = Vec::new();
        // The worker reads the pipeline's three logs only.
        let names = self.log.namespace().default_names(&self.probe.id);
        let mut logs = Vec::new();
        for name in &names {
            if let Some(lag) = self.probe.log(self.log.as_ref(), name, &mut problems).await {
                logs.push(lag);
            }
        }
        let w = self.worker.label();
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail; the results are ignored on purpose.
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP pinpipe_{w}_{name} {help}\n# TYPE pinpipe_{w}_{name} {kind}");
        };
        family(&mut out, "log_end_offset", "gauge", "The next offset the log will give, per partition.");
        for l in &logs {
            for p in &l.partitions {
                let _ = writeln!(
                    out,
                    "pinpipe_{w}_log_end_offset{{log=\"{}\",partition=\"{}\"}} {}",
                    l.name, p.partition, p.end
                );
            }
        }
        family(
            &mut out,
            "position_offset",
            "gauge",
            "The first offset the worker's output does not hold yet, per partition.",
        );
        for l in &logs {
            for p in &l.partitions {
                if let Some(next) = p.next {
                    let _ = writeln!(
                        out,
                        "pinpipe_{w}_position_offset{{log=\"{}\",partition=\"{}\"}} {next}",
                        l.name, p.partition
                    );
                }
            }
        }
        family(
            &mut out,
            "lag_records",
            "gauge",
            "Records in the log that the worker's output does not hold yet, per partition.",
        );
        for l in &logs {
            for p in &l.partitions {
                if let Some(next) = p.next {
                    let lag = p.end.saturating_sub(next);
                    let _ = writeln!(
                        out,
                        "pinpipe_{w}_lag_records{{log=\"{}\",partition=\"{}\"}} {lag}",
                        l.name, p.partition
                    );
                }
            }
        }
        family(
            &mut out,
            "records_processed",
            "gauge",
            "Records of the log the worker's output holds (position minus log start), per log.",
        );
        for l in &logs {
            let done: u64 = l.partitions.iter().filter_map(|p| p.next.map(|n| n.saturating_sub(p.start))).sum();
            let _ = writeln!(out, "pinpipe_{w}_records_processed{{log=\"{}\"}} {done}", l.name);
        }
        match self.worker {
            Worker::Sink => {
                family(&mut out, "files", "gauge", "Sink files in the lake, per topic.");
                for name in &names {
                    let prefix = self.probe.lake.path(&layout::topic_dir(name));
                    let mut listing = self.probe.lake.store.list(Some(&prefix));
                    let mut files = 0u64;
                    while let Some(item) = listing.next().await {
                        match item {
                            Ok(meta) if meta.location.filename().and_then(layout::parse_file_name).is_some() => {
                                files += 1
                            }
                            Ok(_) => {}
                            Err(e) => {
                                problems.push(format!("listing {prefix}: {e}"));
                                break;
                            }
                        }
                    }
                    let _ = writeln!(out, "pinpipe_sink_files{{topic=\"{name}\"}} {files}");
                }
            }
            Worker::Stream => {
                family(&mut out, "table_version", "gauge", "Delta table version (commits minus one), per table.");
                for table in Table::ALL {
                    let name = crate::contract::delta_table(&self.probe.id, table);
                    if !self.table_exists(&name).await {
                        continue;
                    }
                    match Progress::open(&self.probe.lake, &self.probe.id, table).await {
                        Ok(p) => {
                            let _ = writeln!(out, "pinpipe_stream_table_version{{table=\"{name}\"}} {}", p.version());
                        }
                        Err(e) => problems.push(format!("Delta table {name}: {}", ErrorChain(&e))),
                    }
                }
            }
        }
        family(
            &mut out,
            "lake_writable",
            "gauge",
            "1 while the worker's lake writes succeed, 0 while it waits out a lake that is full or unreachable.",
        );
        let _ = writeln!(out, "pinpipe_{w}_lake_writable {}", u8::from(lake_state().is_none()));
        family(
            &mut out,
            "lake_failures_total",
            "counter",
            "Lake writes that failed (or waited for space) and are retried, by reason.",
        );
        for t in [Trouble::Unreachable, Trouble::Full] {
            let n = LAKE_FAILURES[trouble_index(t)].load(Ordering::Relaxed);
            let _ = writeln!(out, "pinpipe_{w}_lake_failures_total{{reason=\"{}\"}} {n}", t.label());
        }
        family(
            &mut out,
            "skipped_records_total",
            "counter",
            "Records retention removed before this worker read them, skipped with --on-gap skip.",
        );
        if let Ok(skipped) = SKIPPED.lock() {
            for ((log, partition), n) in skipped.iter() {
                let _ =
                    writeln!(out, "pinpipe_{w}_skipped_records_total{{log=\"{log}\",partition=\"{partition}\"}} {n}");
            }
        }
        let (warnings, errors) = log_events();
        out.push_str(
            "# HELP pinpipe_log_events_total Warnings and errors this process logged (retried failures included).\n",
        );
        out.push_str("# TYPE pinpipe_log_events_total counter\n");
        let _ = writeln!(out, "pinpipe_log_events_total{{level=\"warn\"}} {warnings}");
        let _ = writeln!(out, "pinpipe_log_events_total{{level=\"error\"}} {errors}");
        family(&mut out, "scrape_problems", "gauge", "Positions this scrape could not read (see the log).");
        for p in &problems {
            tracing::debug!(problem = %p, "metrics scrape");
        }
        let _ = writeln!(out, "pinpipe_{w}_scrape_problems {}", problems.len());
        out
    }

    async fn table_exists(&self, name: &str) -> bool {
        let dir = self.probe.lake.path(&format!("{}/{name}/_delta_log", crate::contract::DELTA_DIR));
        matches!(self.probe.lake.store.list_with_delimiter(Some(&dir)).await, Ok(l) if !l.objects.is_empty())
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: WorkerMetrics,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let app = Router::new().route("/metrics", get(metrics_text)).with_state(Arc::new(metrics));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(Error::Serve)
}

async fn metrics_text(State(metrics): State<Arc<WorkerMetrics>>) -> Response {
    let mut r = (StatusCode::OK, metrics.render().await).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    r
}
