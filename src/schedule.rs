//! The built-in schedule (SPEC §7, the MWAA part for users without Airflow): runs the batch job
//! on a cron expression until stopped.
//!
//! Fed by the command line (`pinpipe schedule --cron EXPR`); runs [`crate::batch::run`], which
//! writes the results folder and the report. The Airflow DAG in `deploy/airflow/` is the other
//! way to run the same job daily.
//!
//! Rules: times are UTC; the default is daily at 00:00. No catch-up: ticks that pass while a run
//! is going (or while the process was not running) are skipped and logged, never run late in a
//! burst. A failed run is logged and the next tick tries again; it does not stop the schedule. On
//! shutdown the wait ends at once; a run in progress finishes first (the batch job swaps its
//! results folder in whole, so a process killed mid-run leaves the previous results intact).

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::batch::{self, BatchConfig, BatchReport};
use crate::lake::Lake;
use crate::observe::ErrorChain;

/// Daily at 00:00 UTC, in the 6-field form (seconds first) the `cron` crate reads.
pub const DEFAULT_CRON: &str = "0 0 0 * * *";

/// A parsed cron expression, with the text it came from.
#[derive(Debug, Clone)]
pub struct Cron {
    /// The expression as given.
    pub text: String,
    schedule: cron::Schedule,
}

impl Cron {
    /// Parses a standard 5-field expression (`min hour day month weekday`, read with a `0`
    /// seconds field in front) or a 6–7 field one with seconds first (and an optional year).
    /// Weekdays follow the `cron` crate: `1`–`7` is Sunday–Saturday; names (`MON`) are safest.
    pub fn parse(text: &str) -> Result<Cron, Error> {
        let fields = text.split_whitespace().count();
        let full = match fields {
            5 => format!("0 {}", text.trim()),
            6 | 7 => text.trim().to_string(),
            _ => return Err(Error::Fields { expr: text.to_string(), fields }),
        };
        let schedule =
            cron::Schedule::from_str(&full).map_err(|source| Error::Parse { expr: text.to_string(), source })?;
        Ok(Cron { text: text.to_string(), schedule })
    }

    /// The first tick strictly after `after`.
    pub(crate) fn next_after(&self, after: &DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(after).next()
    }
}

/// What one scheduled run did, handed to the caller as it ends.
#[derive(Debug)]
pub struct RunOutcome<'a> {
    /// 1 for the first run of this process.
    pub number: u64,
    /// The tick it ran for.
    pub tick: DateTime<Utc>,
    /// How long it took.
    pub took: Duration,
    /// The batch report, or the error chain as text.
    pub result: Result<&'a BatchReport, String>,
}

/// What a schedule did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Runs that wrote their results.
    pub succeeded: u64,
    /// Runs that failed (each was retried at the next tick).
    pub failed: u64,
    /// Ticks skipped because a run was still going (no catch-up).
    pub skipped: u64,
}

/// Errors of the schedule itself (a failed batch run is not one: it is retried at the next tick).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--cron `{expr}` has {fields} fields: use 5 (min hour day month weekday) or 6–7 with seconds first")]
    Fields { expr: String, fields: usize },
    #[error("--cron `{expr}` is not a valid cron expression")]
    Parse {
        expr: String,
        #[source]
        source: cron::error::Error,
    },
    #[error("--cron `{expr}` has no time left to fire")]
    NoMoreTicks { expr: String },
}

/// Runs the batch job at every tick of `cron` until `shutdown`; `on_run` hears about each run.
pub async fn run(
    cron: &Cron,
    batch: &BatchConfig,
    lake: &Lake,
    shutdown: CancellationToken,
    on_run: &(dyn Fn(&RunOutcome<'_>) + Send + Sync),
) -> Result<Summary, Error> {
    let mut summary = Summary::default();
    let mut number = 0;
    tracing::info!(cron = %cron.text, out = %batch.out.show(""), "schedule starting (times in UTC)");
    loop {
        let now = Utc::now();
        let Some(tick) = cron.next_after(&now) else {
            return Err(Error::NoMoreTicks { expr: cron.text.clone() });
        };
        tracing::info!(next = %tick.to_rfc3339(), "waiting for the next batch run");
        let wait = (tick - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        // The sleep may wake a hair early: never run before the tick.
        let early = (tick - Utc::now()).to_std().unwrap_or_default();
        if !early.is_zero() {
            tokio::time::sleep(early).await;
        }
        number += 1;
        tracing::info!(run = number, tick = %tick.to_rfc3339(), "batch run starting");
        let started = Instant::now();
        // Not raced against `shutdown`: a run in progress finishes, then the loop stops.
        let result = batch::run(batch, lake).await;
        let took = started.elapsed();
        match &result {
            Ok(report) => {
                summary.succeeded += 1;
                let read: u64 = report.tables.iter().map(|t| t.records).sum();
                tracing::info!(
                    run = number, seconds = took.as_secs_f64(), records = read, out = %report.out,
                    "batch run finished"
                );
            }
            Err(e) => {
                summary.failed += 1;
                tracing::warn!(run = number, error = %ErrorChain(e), "batch run failed; the next tick tries again");
            }
        }
        let outcome = RunOutcome { number, tick, took, result: result.as_ref().map_err(|e| ErrorChain(e).to_string()) };
        on_run(&outcome);
        let skipped = ticks_between(cron, tick, Utc::now());
        if skipped > 0 {
            summary.skipped += skipped;
            tracing::warn!(run = number, skipped, "the run outlasted later ticks; they are skipped (no catch-up)");
        }
        if shutdown.is_cancelled() {
            break;
        }
    }
    tracing::info!(succeeded = summary.succeeded, failed = summary.failed, "schedule stopped");
    Ok(summary)
}

/// Ticks strictly after `from` and not after `to` (capped, so a tiny interval cannot spin).
fn ticks_between(cron: &Cron, from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    cron.schedule.after(&from).take_while(|t| *t <= to).take(1_000_000).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, h, m, s).unwrap()
    }

    #[test]
    fn five_fields_are_standard_cron_and_six_have_seconds_first() {
        let five = Cron::parse("30 2 * * *").unwrap();
        assert_eq!(five.next_after(&at(0, 0, 0)), Some(at(2, 30, 0)));
        let six = Cron::parse("*/10 * * * * *").unwrap();
        assert_eq!(six.next_after(&at(0, 0, 1)), Some(at(0, 0, 10)));
        let daily = Cron::parse(DEFAULT_CRON).unwrap();
        assert_eq!(daily.next_after(&at(0, 0, 0)), Some(Utc.with_ymd_and_hms(2026, 3, 11, 0, 0, 0).unwrap()));
    }

    #[test]
    fn bad_expressions_are_refused_naming_the_flag() {
        let e = Cron::parse("* * *").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--cron `* * *` has 3 fields: use 5 (min hour day month weekday) or 6–7 with seconds first"
        );
        let e = Cron::parse("61 * * * *").unwrap_err();
        assert!(matches!(e, Error::Parse { .. }), "{e:?}");
        assert!(e.to_string().starts_with("--cron `61 * * * *`"));
    }

    #[test]
    fn ticks_passed_during_a_run_are_counted_not_run() {
        let every_second = Cron::parse("* * * * * *").unwrap();
        assert_eq!(ticks_between(&every_second, at(0, 0, 0), at(0, 0, 3)), 3);
        assert_eq!(ticks_between(&every_second, at(0, 0, 0), at(0, 0, 0)), 0);
    }
}
