//! The batch job (SPEC §6, the Databricks part): every sink file of the three topics → cleaned
//! tables with one row per `ind` → Q1–Q8 → the results folder (SPEC §10 `batch`).
//!
//! Fed by the sink's JSON files in the lake; feeds `--out` (read by users, the report and
//! Spark) and the printed report. Phases, each timed:
//! - `read` (`read.rs`): list, fetch, decode + clean (the shared [`crate::clean`] code) in
//!   parallel over files, keep the first row received per `ind`, collect the rejects;
//! - `queries` (`queries.rs`): the SQL files of `sql/` in DataFusion;
//! - `write` (`output.rs`): Parquet and CSV into a new folder, with the run metadata and the
//!   HTML report ([`crate::report`]), swapped in for the old one.

mod output;
mod queries;
mod read;

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::clean::Table;
use crate::lake::Lake;
use crate::report;
pub use crate::report::TableCounts;

pub use output::rejects_schema;
pub use queries::{Answer, QUERIES};

/// What `pinpipe batch` runs with.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Pipeline id: the job reads the sink files of `<id>.pin`, `<id>.geo`, `<id>.user`.
    pub id: String,
    /// Results folder (SPEC §10 lists its files); replaced by each run.
    pub out: PathBuf,
}

/// What a batch run found and answered.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    /// The folder the results were written to.
    pub out: PathBuf,
    /// pin, geo, user.
    pub tables: Vec<TableCounts>,
    /// Q1–Q8 in SPEC order (`q1`, `q2`, `q3a`, `q3b`, `q4` … `q8`).
    pub answers: Vec<Answer>,
    /// Wall time per phase: `read` (list, fetch, decode, clean, dedupe), `queries`, `write`.
    pub phases: Vec<(&'static str, Duration)>,
}

impl BatchReport {
    /// The answer named `name` (`q1`, `q3a`, …).
    pub fn answer(&self, name: &str) -> Option<&Answer> {
        self.answers.iter().find(|a| a.name == name)
    }
}

impl fmt::Display for BatchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for answer in &self.answers {
            // `q3a` → `Q3a`: the question's name as SPEC §6 writes it.
            let (q, rest) = answer.name.split_at(1);
            writeln!(f, "{}{rest}:", q.to_uppercase())?;
            match pretty_format_batches(&answer.batches) {
                Ok(table) if !answer.batches.is_empty() => writeln!(f, "{table}")?,
                _ => writeln!(f, "(no rows)")?,
            }
        }
        writeln!(f, "{:<6} {:>7} {:>12} {:>10} {:>10}", "table", "files", "read", "rejected", "kept")?;
        for t in &self.tables {
            writeln!(
                f,
                "{:<6} {:>7} {:>12} {:>10} {:>10}",
                t.table.name(),
                t.files,
                t.records,
                t.rejected_total(),
                t.kept
            )?;
            for (reason, count) in &t.rejected {
                writeln!(f, "         rejected {count}: {reason}")?;
            }
            if t.unreadable_follower_counts > 0 {
                writeln!(f, "         follower_count not a number (NULL): {}", t.unreadable_follower_counts)?;
            }
        }
        let phases: Vec<String> =
            self.phases.iter().map(|(name, d)| format!("{name} {:.3} s", d.as_secs_f64())).collect();
        let total: Duration = self.phases.iter().map(|(_, d)| *d).sum();
        writeln!(f, "time: {} (total {:.3} s)", phases.join(", "), total.as_secs_f64())?;
        writeln!(f, "results: {}", self.out.display())?;
        write!(f, "report:  {}", self.out.join(report::REPORT_FILE).display())
    }
}

/// Errors of the batch job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cleaning")]
    Clean(#[from] crate::clean::Error),
    #[error("cannot list the sink files of topic {topic}")]
    List {
        topic: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot read sink file {key}")]
    Read {
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("a decoding task failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("the cleaned table's writer stopped before the end of its input")]
    WriterStopped,
    #[error("arrow")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("query {query}")]
    Query {
        query: &'static str,
        #[source]
        source: datafusion::error::DataFusionError,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: datafusion::parquet::errors::ParquetError,
    },
    #[error("cannot write {path}")]
    Csv {
        path: PathBuf,
        #[source]
        source: datafusion::arrow::error::ArrowError,
    },
    #[error("writing the report")]
    Report(#[from] crate::report::Error),
    #[error("cannot put the new results in place of {out}")]
    Replace {
        out: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads every sink file of the three topics, cleans, answers Q1–Q8 and writes `cfg.out`.
pub async fn run(cfg: &BatchConfig, lake: &Lake) -> Result<BatchReport, Error> {
    let run_started = Instant::now();
    let started_at = now_rfc3339();
    let started = Instant::now();
    let staging = output::Staging::create(&cfg.out)?;
    // The three tables at once: their files share the workers, so a table of few files does
    // not leave cores idle. Each writes its cleaned rows into the new results folder as it goes.
    let (pin, geo, user) = tokio::try_join!(
        read::read_table(lake, &cfg.id, Table::Pin, staging.table_writer(Table::Pin)?),
        read::read_table(lake, &cfg.id, Table::Geo, staging.table_writer(Table::Geo)?),
        read::read_table(lake, &cfg.id, Table::User, staging.table_writer(Table::User)?),
    )?;
    let mut phases = vec![("read", started.elapsed())];

    let started = Instant::now();
    let files = Table::ALL.map(|t| (t, staging.table_path(t)));
    let answers = queries::answer(&files).await?;
    phases.push(("queries", started.elapsed()));

    let started = Instant::now();
    let data = [(Table::Pin, pin), (Table::Geo, geo), (Table::User, user)];
    let tables: Vec<TableCounts> = data
        .iter()
        .map(|(table, d)| TableCounts {
            table: *table,
            files: d.files as u64,
            records: d.read,
            rejected: d.rejected.clone(),
            unreadable_follower_counts: d.unreadable_follower_counts,
            kept: d.kept,
        })
        .collect();
    let rejects: Vec<_> = data.iter().map(|(t, d)| (*t, d.rejects.as_slice())).collect();
    let rejects = output::rejects_batch(&rejects)?;
    let results = output::Results { rejects, answers };
    let mut meta = report::RunMeta {
        id: cfg.id.clone(),
        lake: lake.url().to_string(),
        started_at,
        finished_at: String::new(),
        duration_seconds: 0.0,
        phases: phases
            .iter()
            .map(|(name, d)| report::PhaseTime { name: name.to_string(), seconds: d.as_secs_f64() })
            .collect(),
        tables: tables.clone(),
        answers: results.answers.iter().map(|a| a.name.to_string()).collect(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let write_started = started;
    // The report goes into the new folder after the result files, so its `write` time covers them.
    let finish = move |dir: &std::path::Path, results: &output::Results| {
        let answers = results
            .answers
            .iter()
            .map(|a| report::AnswerTable::from_batches(a.name, &a.schema, &a.batches))
            .collect::<Result<Vec<_>, _>>()?;
        meta.phases.push(report::PhaseTime { name: "write".into(), seconds: write_started.elapsed().as_secs_f64() });
        meta.finished_at = now_rfc3339();
        meta.duration_seconds = run_started.elapsed().as_secs_f64();
        report::write(dir, &meta, &answers)?;
        Ok(())
    };
    let results = tokio::task::spawn_blocking(move || staging.commit(&results, finish).map(|()| results)).await??;
    phases.push(("write", started.elapsed()));
    let answers = results.answers;
    Ok(BatchReport { out: cfg.out.clone(), tables, answers, phases })
}

/// The time now, RFC 3339 in UTC to the second (`2026-01-31T00:00:00Z`).
fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
