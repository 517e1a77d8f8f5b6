//! One function per subcommand: resolve its settings (its flags and variables, read by clap into
//! the stage's section, over the file's section, over the stage's defaults: see
//! [`pinpipe::settings`]), call the library stage it names, and print what it did. Errors are `anyhow` with context; [`super::main`] turns them into the
//! exit code.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use pinpipe::emulator::{self, EmulatorConfig};
use pinpipe::eventlog::{self, EventLog, Namespace, Retention};
use pinpipe::lake::Lake;
use pinpipe::settings::Settings;
use pinpipe::{batch, gateway, lag, observe, report, schedule, sink, source, stream, upkeep};
use tokio_util::sync::CancellationToken;

use super::CheckFailed;
use super::args::{
    AdminAction, BatchArgs, Command, DeltaAction, EmulateArgs, GatewayArgs, ReportArgs, ScheduleArgs, SeedArgs,
    SinkArgs, StreamArgs,
};
use super::terminal::{progress_bar, shutdown_on_signal};

/// Starts `/metrics` for `worker` on `listen`, if given; stop it with the returned token.
pub(super) async fn start_metrics(
    listen: Option<&str>,
    worker: observe::Worker,
    cfg: &Settings,
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
pub(super) async fn stop_metrics(
    server: Option<(CancellationToken, tokio::task::JoinHandle<Result<(), observe::Error>>)>,
) -> Result<()> {
    if let Some((stop, handle)) = server {
        stop.cancel();
        handle.await.context("the metrics server panicked")??;
    }
    Ok(())
}

pub(super) async fn seed(cfg: &Settings, args: SeedArgs) -> Result<()> {
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

/// What `emulate` runs with: its flags over `[emulator]` over the emulator's defaults.
fn emulator_config(cfg: &Settings, args: &EmulateArgs) -> EmulatorConfig {
    let count = (!args.forever).then_some(args.count);
    let defaults = EmulatorConfig { count, ..EmulatorConfig::new(&cfg.id, args.mode.into()) };
    args.section().or(cfg.file.emulator.clone()).apply(defaults)
}

pub(super) async fn emulate(cfg: &Settings, args: EmulateArgs) -> Result<()> {
    let ecfg = emulator_config(cfg, &args);
    let (api, count) = (ecfg.api.clone(), ecfg.count);
    let reader = source::Source::connect(&cfg.source).await.context("opening the source")?.reader().await?;
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
        return Err(
            CheckFailed(format!("{} records were not accepted (see the warnings above)", summary.failed)).into()
        );
    }
    Ok(())
}

/// Opens the topics and streams logs and makes sure the six default logs exist.
pub async fn open_logs(cfg: &Settings) -> Result<(Arc<dyn EventLog>, Arc<dyn EventLog>)> {
    let topics = eventlog::open_with_defaults(&cfg.log, Namespace::Topics, &cfg.id, &cfg.clients, cfg.topics_policy)
        .await
        .context("opening the topics log")?;
    let streams =
        eventlog::open_with_defaults(&cfg.streams, Namespace::Streams, &cfg.id, &cfg.clients, cfg.streams_policy)
            .await
            .context("opening the streams log")?;
    Ok((topics, streams))
}

/// What `gateway` runs with: the address to listen on and the gateway's config, from its flags
/// over `[gateway]` over the gateway's defaults.
fn gateway_config(cfg: &Settings, args: &GatewayArgs) -> (String, gateway::GatewayConfig) {
    let section = args.section().or(cfg.file.gateway.clone());
    let listen = section.listen.clone().unwrap_or_else(|| gateway::DEFAULT_LISTEN.into());
    (listen, section.apply(gateway::GatewayConfig::default()))
}

pub(super) async fn serve_gateway(cfg: &Settings, args: GatewayArgs) -> Result<()> {
    let (listen, gcfg) = gateway_config(cfg, &args);
    let (topics, streams) = open_logs(cfg).await?;
    let lake = Lake::open(&cfg.lake).context("opening the lake for the status page")?;
    let results = cfg.results(args.out);
    let sources = gateway::status::Sources::new(cfg.id.clone(), Some(lake), Some(results));
    let state = gateway::AppState::with_status(gcfg, topics, streams, sources)?;
    let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, log = %cfg.log, streams = %cfg.streams, "gateway listening");
    // The first line ends with the base URL: scripts and tests read it from there. One write, so
    // a reader that stops after the first line cannot make the second fail.
    println!("gateway listening on http://{addr}\nstatus page: http://{addr}/");
    gateway::serve(listener, state, shutdown_on_signal()).await?;
    Ok(())
}

/// `topics …` / `streams …`; `own_retention` is the retention a created log keeps as its own.
pub(super) async fn admin(
    cfg: &Settings,
    namespace: Namespace,
    action: AdminAction,
    own_retention: Option<Retention>,
) -> Result<()> {
    let (url, policy) = cfg.log_of(namespace);
    // Creating or deleting one log must not first create the defaults (a default topic just
    // deleted would be back before it could be created again).
    let log = match action {
        AdminAction::Create { .. } | AdminAction::Delete { .. } => {
            eventlog::open_with(url, namespace, &cfg.clients, policy).await?
        }
        AdminAction::List | AdminAction::Describe { .. } => {
            eventlog::open_with_defaults(url, namespace, &cfg.id, &cfg.clients, policy).await?
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
            let info = log.create(&name, partitions, own_retention).await?;
            let keeps = own_retention.unwrap_or(policy.retention);
            println!("created {noun} {} with {} partition(s), retention {keeps}", info.name, info.partitions.len());
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

/// What `sink` runs with, and where it serves its metrics: its flags over `[sink]` over the
/// sink's defaults.
fn sink_config(cfg: &Settings, args: &SinkArgs) -> (sink::SinkConfig, Option<String>) {
    let section = args.section().or(cfg.file.sink.clone());
    (section.apply(sink::SinkConfig::new(&cfg.id, args.drain)), section.metrics_listen)
}

pub(super) async fn run_sink(cfg: &Settings, args: SinkArgs) -> Result<()> {
    let (scfg, metrics_listen) = sink_config(cfg, &args);
    let log = eventlog::open_with_defaults(&cfg.log, Namespace::Topics, &cfg.id, &cfg.clients, cfg.topics_policy)
        .await
        .context("opening the topics log")?;
    let lake = Lake::open(&cfg.lake)?;
    tracing::info!(lake = %lake.url(), log = %cfg.log, "sink starting");
    let shutdown = shutdown_on_signal();
    let metrics =
        start_metrics(metrics_listen.as_deref(), observe::Worker::Sink, cfg, log.clone(), &lake, &shutdown).await?;
    let report = sink::run(&scfg, log, &lake, shutdown).await;
    stop_metrics(metrics).await?;
    let report = report?;
    println!("{report}");
    Ok(())
}

pub(super) async fn run_batch(cfg: &Settings, args: BatchArgs) -> Result<()> {
    let lake = Lake::open(&cfg.lake)?;
    let bcfg = batch::BatchConfig {
        id: cfg.id.clone(),
        out: batch::Out::parse(&cfg.results(args.out))?,
        full_refresh: args.full_refresh,
    };
    let report = batch::run(&bcfg, &lake).await?;
    println!("{report}");
    Ok(())
}

/// What `stream` runs with, and where it serves its metrics: its flags over `[stream]` over the
/// stream job's defaults.
fn stream_config(cfg: &Settings, args: &StreamArgs) -> (stream::StreamConfig, Option<String>) {
    let section = args.section().or(cfg.file.stream.clone());
    (section.apply(stream::StreamConfig::new(&cfg.id, args.drain)), section.metrics_listen)
}

pub(super) async fn run_stream(cfg: &Settings, args: StreamArgs) -> Result<()> {
    let (scfg, metrics_listen) = stream_config(cfg, &args);
    let streams =
        eventlog::open_with_defaults(&cfg.streams, Namespace::Streams, &cfg.id, &cfg.clients, cfg.streams_policy)
            .await
            .context("opening the streams log")?;
    let lake = Lake::open(&cfg.lake)?;
    tracing::info!(lake = %lake.url(), streams = %cfg.streams, "stream job starting");
    let shutdown = shutdown_on_signal();
    let metrics =
        start_metrics(metrics_listen.as_deref(), observe::Worker::Stream, cfg, streams.clone(), &lake, &shutdown)
            .await?;
    let report = stream::run(&scfg, streams, &lake, shutdown).await;
    stop_metrics(metrics).await?;
    let report = report?;
    println!("{report}");
    Ok(())
}

/// `pinpipe delta optimize|vacuum|describe [TABLE]`: upkeep of the stream job's Delta tables by
/// hand; without a TABLE, the pipeline's four tables (those not created yet are said so).
pub(super) async fn delta(cfg: &Settings, action: DeltaAction) -> Result<()> {
    let lake = Lake::open(&cfg.lake)?;
    // `[stream]` over the defaults, as the stream job keeps its tables; the flags win over both.
    let kept = cfg.file.stream.apply(stream::StreamConfig::new(&cfg.id, false)).upkeep;
    let table_arg = match &action {
        DeltaAction::Optimize(args) => &args.table,
        DeltaAction::Vacuum(args) => &args.table,
        DeltaAction::Describe(args) => args,
    };
    let names = match &table_arg.table {
        Some(name) => vec![upkeep::table_named(&cfg.id, name)],
        None => upkeep::pipeline_tables(&cfg.id),
    };
    let one = table_arg.table.is_some();
    let stop = shutdown_on_signal();
    for name in names {
        let mut table = match upkeep::open(&lake, &name).await {
            Ok(table) => table,
            Err(upkeep::Error::NotATable { url }) if !one => {
                println!("{name}: not created yet ({url})");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match &action {
            DeltaAction::Optimize(args) => {
                let target = args.target_file_size.unwrap_or(kept.target_file_size);
                let done = upkeep::compact(&mut table, &name, target, 0, &stop).await?;
                println!(
                    "{name}: {} small files ({} bytes) rewritten into {} ({} bytes) in {:.1}s; version {}{}",
                    done.files_removed,
                    done.bytes_removed,
                    done.files_added,
                    done.bytes_added,
                    done.took.as_secs_f64(),
                    done.version,
                    if done.abandoned > 0 {
                        format!("; {} groups left to a concurrent writer", done.abandoned)
                    } else {
                        String::new()
                    }
                );
            }
            DeltaAction::Vacuum(args) => {
                let retention = args.file_retention.or(kept.file_retention);
                let done = upkeep::vacuum(&mut table, &name, retention, args.dry_run).await?;
                let verb = if args.dry_run { "would delete" } else { "deleted" };
                println!("{name}: {verb} {} files", done.deleted.len());
                if args.dry_run {
                    for file in &done.deleted {
                        println!("  {file}");
                    }
                }
            }
            DeltaAction::Describe(_) => {
                println!("{}", upkeep::describe(&mut table, &name, kept.target_file_size).await?)
            }
        }
    }
    Ok(())
}

/// What `schedule` runs with: the cron expression and the batch job's config, from its flags
/// over `[batch]` over the defaults.
fn schedule_config(cfg: &Settings, args: &ScheduleArgs) -> Result<(String, batch::BatchConfig)> {
    let section = args.section().or(cfg.file.batch.clone());
    let cron = section.cron.unwrap_or_else(|| schedule::DEFAULT_CRON.to_string());
    Ok((cron, batch::BatchConfig::new(cfg.id.clone(), batch::Out::parse(&cfg.results(section.out))?)))
}

pub(super) async fn run_schedule(cfg: &Settings, args: ScheduleArgs) -> Result<()> {
    let (cron, bcfg) = schedule_config(cfg, &args)?;
    let cron = schedule::Cron::parse(&cron)?;
    let lake = Lake::open(&cfg.lake)?;
    let on_run = |run: &schedule::RunOutcome<'_>| match &run.result {
        Ok(report) => println!(
            "run {} (tick {}): ok in {:.1}s, {} records read; results in {}",
            run.number,
            run.tick.to_rfc3339(),
            run.took.as_secs_f64(),
            report.tables.iter().map(|t| t.records).sum::<u64>(),
            report.out
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

/// `pinpipe report`: re-renders the last batch run's report from its results folder.
pub(super) fn rerender_report(cfg: &Settings, args: ReportArgs) -> Result<()> {
    let out = cfg.results(args.out);
    let path = report::rerender(&out).with_context(|| format!("re-rendering the report in {}", out.display()))?;
    println!("report: {}", path.display());
    Ok(())
}

/// `--print-settings`: what `command` would run with (the global settings, then the stage's
/// resolved config), printed instead of running it.
pub(super) fn print_settings(cfg: &Settings, command: &Command) {
    println!("{cfg}");
    let stage = match command {
        Command::Emulate(args) => format!("{:#?}", emulator_config(cfg, args)),
        Command::Gateway(args) => {
            let (listen, gcfg) = gateway_config(cfg, args);
            format!("listen = {listen:?}\nresults = {:?}\n{gcfg:#?}", cfg.results(args.out.clone()))
        }
        Command::Sink(args) => {
            let (scfg, metrics) = sink_config(cfg, args);
            format!("metrics_listen = {metrics:?}\n{scfg:#?}")
        }
        Command::Stream(args) => {
            let (scfg, metrics) = stream_config(cfg, args);
            format!("metrics_listen = {metrics:?}\n{scfg:#?}")
        }
        Command::Batch(args) => format!("results = {:?}", cfg.results(args.out.clone())),
        Command::Report(args) => format!("results = {:?}", cfg.results(args.out.clone())),
        Command::Schedule(args) => match schedule_config(cfg, args) {
            Ok((cron, bcfg)) => format!("cron = {cron:?}\n{bcfg:#?}"),
            Err(error) => format!("{error:#}"),
        },
        _ => return,
    };
    println!("{stage}");
}
