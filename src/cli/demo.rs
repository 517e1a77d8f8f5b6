//! `pinpipe demo`: every stage in one process on the embedded defaults ([`pinpipe::demo`]), shown
//! on the terminal — a progress line per phase, the answers, where every output is, and the
//! counts that must agree (exit 1 when they do not).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use indicatif::ProgressStyle;
use pinpipe::eventlog::Namespace;
use pinpipe::lake::Lake;
use pinpipe::settings::Settings;
use pinpipe::{demo, report};

use super::CheckFailed;
use super::args::DemoArgs;
use super::terminal::{progress_bar, shutdown_on_signal};

pub(super) async fn run_demo(cfg: &Settings, args: DemoArgs) -> Result<()> {
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
    println!("  topics:  {} ({})", cfg.log, topics.join(", "));
    println!("  streams: {} ({})", cfg.streams, streams.join(", "));
    println!("  lake:    {} (sink files)", lake.url_of("topics"));
    for table in report.stream_job.tables.iter().map(|t| &t.table).chain([&report.stream_job.rejects_table]) {
        println!("  delta:   {}", lake.url_of(&format!("{}/{table}", pinpipe::contract::DELTA_DIR)));
    }
    for table in pinpipe::batch::BatchTable::ALL {
        println!("  batch:   {}", lake.delta_url(&table.name(&cfg.id)));
    }
    println!("  results: {} (answers as CSV and Parquet)", out);
    println!("  report:  {}/{}", out, report::REPORT_FILE);
    println!("demo finished in {:.1}s", started.elapsed().as_secs_f64());
    if !report.consistent(&cfg.id) {
        return Err(CheckFailed("the counts differ: some records were not acknowledged or did not land".into()).into());
    }
    Ok(())
}
