//! The command line (SPEC §10), owned by the binary: [`args`] is its shape (clap), [`commands`]
//! and [`demo`] run what it names through the library, [`terminal`] sets up the process.
//!
//! The only place with flags, environment variables, signals and terminal output; everything it
//! runs is a library function, so the tests and `demo` use the same code. Exit codes: 0 ok, 1 a
//! check failed ([`CheckFailed`]), 2 an error (one line on stderr, its causes after `: `).

mod args;
mod commands;
mod demo;
mod terminal;

use anyhow::Result;
use clap::Parser;
use pinpipe::bench;
use pinpipe::eventlog::Namespace;
use pinpipe::settings::{FileConfig, Settings};

use args::{BenchWhat, Cli, Command};

/// A run that did its work but whose check did not hold: exit 1, where an error is exit 2
/// (`demo` counts that differ, `emulate` with records the API did not accept).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct CheckFailed(String);

/// Parses the command line, runs it, and returns the process exit code (0 ok, 1 a check
/// failed, 2 an error).
pub(crate) async fn main() -> std::process::ExitCode {
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
    terminal::quiet_caught_upload_panics();
    terminal::raise_open_file_limit();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(if e.is::<CheckFailed>() { 1 } else { 2 })
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let file = FileConfig::load(cli.global.config.as_deref())?;
    let cfg = Settings::resolve(cli.global.globals(), file)?;
    terminal::init_logging(cfg.log_format);
    if cli.global.print_settings {
        commands::print_settings(&cfg, &cli.command);
        return Ok(());
    }
    // On `create`, a retention given on the command line is the new log's own.
    let own_retention = (cli.global.retention, cli.global.stream_retention.or(cli.global.retention));
    match cli.command {
        Command::Seed(args) => commands::seed(&cfg, args).await,
        Command::Emulate(args) => commands::emulate(&cfg, args).await,
        Command::Gateway(args) => commands::serve_gateway(&cfg, args).await,
        Command::Topics { action } => commands::admin(&cfg, Namespace::Topics, action, own_retention.0).await,
        Command::Streams { action } => commands::admin(&cfg, Namespace::Streams, action, own_retention.1).await,
        Command::Sink(args) => commands::run_sink(&cfg, args).await,
        Command::Batch(args) => commands::run_batch(&cfg, args).await,
        Command::Stream(args) => commands::run_stream(&cfg, args).await,
        Command::Delta { action } => commands::delta(&cfg, action).await,
        Command::Schedule(args) => commands::run_schedule(&cfg, args).await,
        Command::Report(args) => commands::rerender_report(&cfg, args),
        Command::Demo(args) => demo::run_demo(&cfg, args).await,
        Command::Bench { what: BenchWhat::Ingest(args) } => {
            println!("{}", bench::ingest::run(&args.into(), &cfg.clients).await?);
            Ok(())
        }
        Command::Bench { what: BenchWhat::Batch(args) } => {
            println!("{}", bench::batch::run(&args.into()).await?);
            Ok(())
        }
        Command::Bench { what: BenchWhat::Soak(args) } => {
            let report = bench::soak::run(&args.options(own_retention.0)).await?;
            println!("{report}");
            if report.ok() { Ok(()) } else { Err(CheckFailed("the soak's end-of-run checks failed".into()).into()) }
        }
        Command::Bench { what: BenchWhat::Stream(args) } => {
            println!("{}", bench::stream::run(&args.into(), &cfg.clients).await?);
            Ok(())
        }
    }
}
