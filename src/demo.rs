//! `pinpipe demo`: the whole pipeline, end to end, in one process on the embedded defaults.
//!
//! Owns only the orchestration: seed the source if it is empty, start the gateway on a free
//! loopback port, run the emulator in batch and then stream mode, drain the sink into the lake and
//! the stream job into the Delta tables, run the batch job, and count what reached each place.
//! Each stage is the same library function its subcommand calls.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::batch::{self, BatchConfig, BatchReport};
use crate::emulator::{self, EmulatorConfig, Mode, Pace, Summary};
use crate::eventlog::{self, EventLog, Namespace};
use crate::gateway;
use crate::lake::{self, Lake};
use crate::settings::Settings;
use crate::sink::{self, SinkConfig, SinkReport};
use crate::source::{self, Source};
use crate::stream::{self, StreamConfig, StreamReport};

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Emulator iterations per mode.
    pub count: u64,
    /// Rows to generate when the source is empty.
    pub rows: u64,
    /// Seed for the generator and the emulator.
    pub seed: u64,
    /// Emulator concurrency.
    pub concurrency: usize,
}

/// The phases, announced to the caller's progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Seed,
    Emulate(Mode),
    Sink,
    Stream,
    Batch,
}

/// What the demo did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Rows generated, when the source was empty.
    pub seeded: Option<u64>,
    pub batch: Summary,
    pub stream: Summary,
    /// Records each topic / stream gained during the run.
    pub landed: BTreeMap<String, u64>,
    /// The sink's drain into the lake.
    pub sink: SinkReport,
    /// The stream job's drain into the Delta tables.
    pub stream_job: StreamReport,
    /// The batch job's answers and summary.
    pub batch_job: BatchReport,
}

impl DemoReport {
    /// True when every record the emulator sent is in its log, in the lake files and in the
    /// Delta tables (as a row or a reject), once.
    pub fn consistent(&self, id: &str) -> bool {
        let per_log = |ns: Namespace, sent: u64| {
            ns.default_names(id).iter().all(|name| self.landed.get(name).copied() == Some(sent / 3))
        };
        let in_lake = Namespace::Topics
            .default_names(id)
            .iter()
            .all(|t| self.sink.topics.get(t).map(|c| c.records) == Some(self.batch.sent / 3));
        let in_delta = self.stream_job.tables.iter().all(|t| t.committed + t.rejected == self.stream.sent / 3);
        per_log(Namespace::Topics, self.batch.sent)
            && per_log(Namespace::Streams, self.stream.sent)
            && in_lake
            && in_delta
            && self.stream_job.tables.len() == 3
    }
}

/// Errors that stop the demo; each names the stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("source")]
    Source(#[from] source::Error),
    #[error("event log")]
    Log(#[from] eventlog::Error),
    #[error("gateway")]
    Gateway(#[from] gateway::Error),
    #[error("emulator")]
    Emulator(#[from] emulator::Error),
    #[error("binding a loopback port for the gateway")]
    Bind(#[source] std::io::Error),
    #[error("lake")]
    Lake(#[from] lake::Error),
    #[error("sink")]
    Sink(#[from] sink::Error),
    #[error("stream job")]
    Stream(#[from] stream::Error),
    #[error("batch job")]
    Batch(#[from] batch::Error),
}

/// Runs the demo; `phase(p, total)` is called when a phase starts, `step(done)` as it advances.
pub async fn run(
    cfg: &Settings,
    opts: &DemoOptions,
    shutdown: CancellationToken,
    phase: &(dyn Fn(Phase, u64) + Send + Sync),
    step: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<DemoReport, Error> {
    let source = Source::connect(&cfg.source).await?;
    source.create_tables().await?;
    let seeded = if source.row_count().await? == 0 {
        phase(Phase::Seed, opts.rows);
        let step = Arc::clone(&step);
        source.seed(opts.rows, opts.seed, &move |done| step(done)).await?;
        Some(opts.rows)
    } else {
        None
    };

    let topics =
        eventlog::open_with_defaults(&cfg.log, Namespace::Topics, &cfg.id, &cfg.clients, cfg.topics_policy).await?;
    let streams =
        eventlog::open_with_defaults(&cfg.streams, Namespace::Streams, &cfg.id, &cfg.clients, cfg.streams_policy)
            .await?;
    let before = ends(&cfg.id, &*topics, &*streams).await?;

    let state = gateway::AppState::new(gateway::GatewayConfig::default(), topics.clone(), streams.clone())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(Error::Bind)?;
    let api = format!("http://{}", listener.local_addr().map_err(Error::Bind)?);
    let stop_gateway = shutdown.child_token();
    let server = tokio::spawn(gateway::serve(listener, state, stop_gateway.clone()));

    let reader = source.reader().await?;
    let mut summaries = Vec::with_capacity(2);
    for mode in [Mode::Batch, Mode::Stream] {
        phase(Phase::Emulate(mode), opts.count);
        let ecfg = EmulatorConfig {
            api: api.clone(),
            count: Some(opts.count),
            pace: Pace::Rate(0.0),
            concurrency: opts.concurrency,
            seed: opts.seed,
            ..EmulatorConfig::new(&cfg.id, mode)
        };
        summaries.push(emulator::run(ecfg, reader.clone(), shutdown.child_token(), Arc::clone(&step)).await?);
    }
    stop_gateway.cancel();
    match server.await {
        Ok(result) => result?,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }

    let after = ends(&cfg.id, &*topics, &*streams).await?;
    let landed =
        after.into_iter().map(|(name, end)| (name.clone(), end - before.get(&name).copied().unwrap_or(0))).collect();

    let lake = Lake::open(&cfg.lake)?;
    phase(Phase::Sink, 0);
    let sink = sink::run(&SinkConfig::new(&cfg.id, true), topics, &lake, shutdown.child_token()).await?;
    phase(Phase::Stream, 0);
    let stream_job = stream::run(&StreamConfig::new(&cfg.id, true), streams, &lake, shutdown.child_token()).await?;
    phase(Phase::Batch, 0);
    let batch_job = batch::run(&BatchConfig::new(cfg.id.clone(), cfg.results(None)), &lake).await?;
    Ok(DemoReport { seeded, batch: summaries[0], stream: summaries[1], landed, sink, stream_job, batch_job })
}

/// Total records (end offsets summed over partitions) of the six default logs.
async fn ends(id: &str, topics: &dyn EventLog, streams: &dyn EventLog) -> Result<BTreeMap<String, u64>, Error> {
    let mut ends = BTreeMap::new();
    for log in [topics, streams] {
        for name in log.namespace().default_names(id) {
            let info = log.describe(&name).await?;
            ends.insert(name, info.partitions.iter().map(|p| p.end).sum());
        }
    }
    Ok(ends)
}
