//! The batch job (SPEC §6, the Databricks part): the sink files of the three topics → cleaned
//! Delta tables with one row per `ind` → Q1–Q8 → the results (SPEC §10 `batch`).
//!
//! Incremental: each run cleans only the sink files that are new since the last, and adds to the
//! batch tables in the lake only the `ind`s they do not hold (the first record received wins,
//! and stays). Runs are numbered; a run writes its plan, the files it takes, before it reads
//! them ([`plan`]), and every table's commit records the run's number ([`tables`]). So a run that
//! was killed is completed by the next one (same files, same rows), two runs at once cannot both
//! take the same new files, and `--full-refresh` rebuilds the tables from every file in the order
//! the runs took them — the same tables and answers. Phases, each timed:
//! - `read` (`read.rs`): list, fetch, decode + clean (the shared [`crate::clean`] code) in
//!   parallel over files, keep the first row per `ind`, write the new rows' data files;
//! - `commit` (`tables.rs`): the four tables, each in one Delta commit with the run's number;
//! - `queries` (`queries.rs`): the SQL files of `sql/` in DataFusion over the tables' files;
//! - `write` (`output.rs`): CSV and Parquet answers, the run metadata and the HTML report
//!   ([`crate::report`]) into `--out`, a local folder or `s3://…`.

mod output;
mod plan;
mod queries;
mod read;
mod tables;

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use datafusion::arrow::util::pretty::pretty_format_batches;
use roaring::RoaringTreemap;

use crate::clean::Table;
use crate::lake::Lake;
use crate::report;
pub use crate::report::TableCounts;

pub use output::{Out, rejects_schema};
pub use plan::Plan;
pub use queries::{Answer, QUERIES};
pub use tables::{BatchTable, read_table};

/// What `pinpipe batch` runs with.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Pipeline id: the job reads the sink files of `<id>.pin`, `<id>.geo`, `<id>.user` and
    /// keeps the tables `<id>_batch_pin`, … .
    pub id: String,
    /// Where the answers and the report go (SPEC §10 lists the files); replaced by each run.
    pub out: Out,
    /// Rebuild the tables from every sink file instead of adding the new files' rows.
    pub full_refresh: bool,
}

impl BatchConfig {
    /// An incremental run of pipeline `id` answering into `out`.
    pub fn new(id: impl Into<String>, out: impl Into<Out>) -> BatchConfig {
        BatchConfig { id: id.into(), out: out.into(), full_refresh: false }
    }
}

/// What a batch run found and answered.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    /// Where the results were written (a folder or a URL).
    pub out: String,
    /// The run whose tables the answers read (0: no sink file yet).
    pub run: u64,
    /// Whether the tables were rebuilt from every file.
    pub full_refresh: bool,
    /// pin, geo, user: what this invocation read and added (summed over the runs it carried
    /// out: an unfinished one, then a new one), and the rows after it.
    pub tables: Vec<TableCounts>,
    /// Q1–Q8 in SPEC order (`q1`, `q2`, `q3a`, `q3b`, `q4` … `q8`).
    pub answers: Vec<Answer>,
    /// Wall time per phase: `read` (list, fetch, decode, clean, dedupe, write the new rows),
    /// `commit`, `queries`, `write`.
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
        let kind = if self.full_refresh { "full refresh" } else { "incremental" };
        writeln!(f, "run {} ({kind}): new sink files read, rows added, rows in the table", self.run)?;
        writeln!(f, "{:<6} {:>7} {:>12} {:>10} {:>10} {:>12}", "table", "files", "read", "rejected", "added", "rows")?;
        for t in &self.tables {
            writeln!(
                f,
                "{:<6} {:>7} {:>12} {:>10} {:>10} {:>12}",
                t.table.name(),
                t.files,
                t.records,
                t.rejected_total(),
                t.kept,
                t.rows
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
        writeln!(f, "results: {}", self.out)?;
        write!(f, "report:  {}", report_location(&self.out))
    }
}

fn report_location(out: &str) -> String {
    format!("{}/{}", out.trim_end_matches('/'), report::REPORT_FILE)
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
    #[error("cannot read the batch run plans ({key})")]
    Plans {
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "another batch run is working: run {run} was started by {by} at {since}; try again once it is done \
         (if that process is gone, just run again: the next run completes its work)"
    )]
    Busy { run: u64, by: String, since: String },
    #[error(
        "batch table {table} holds run {held:?} but the plans are at run {planned}: it was removed or \
         replaced; rebuild the tables with `pinpipe batch --full-refresh`"
    )]
    Behind { table: String, held: Option<u64>, planned: u64 },
    #[error("batch table {table}")]
    Table {
        table: String,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error("cannot read {path} of batch table {table}")]
    ReadTable {
        table: String,
        path: String,
        #[source]
        source: datafusion::parquet::errors::ParquetError,
    },
    #[error("cannot commit run {run} to batch table {table}")]
    Commit {
        table: String,
        run: u64,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error("--out {out}: {reason}")]
    Out { out: String, reason: String },
    #[error("cannot put result object {key}")]
    Upload {
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("a decoding task failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("the batch table's writer stopped before the end of its input")]
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

/// Carries out the run a killed run left unfinished, then a run over the sink files that are
/// new (or, with `full_refresh`, a rebuild from every file), answers Q1–Q8 from the batch tables
/// and writes the results to `cfg.out`.
pub async fn run(cfg: &BatchConfig, lake: &Lake) -> Result<BatchReport, Error> {
    let run_started = Instant::now();
    let started_at = now_rfc3339();
    let started = Instant::now();
    let mut targets = Vec::with_capacity(BatchTable::ALL.len());
    for which in BatchTable::ALL {
        targets.push(tables::Target::open(lake, &cfg.id, which).await?);
    }
    let mut plans = plan::read_last(lake, &cfg.id, 2).await?;
    let mut counts = Table::ALL.map(|table| TableCounts {
        table,
        files: 0,
        records: 0,
        rejected: Default::default(),
        unreadable_follower_counts: 0,
        kept: 0,
        rows: 0,
    });
    let mut commit_time = Duration::ZERO;
    let mut listed = Vec::new();
    for table in Table::ALL {
        listed.extend(read::list(lake, &crate::contract::topic(&cfg.id, table)).await?);
    }
    // A run that was stopped before all its tables held it: carry out the same plan first (a
    // full refresh rebuilds every table anyway).
    if let Some(last) = plans.last().cloned().filter(|_| !cfg.full_refresh) {
        let mut unfinished = false;
        for target in &targets {
            let held = target.committed_run().await?;
            match held {
                Some(run) if run >= last.run => {}
                Some(run) if run + 1 == last.run => unfinished = true,
                None if last.run == 1 => unfinished = true,
                _ => return Err(Error::Behind { table: target.name.clone(), held, planned: last.run }),
            }
        }
        if unfinished {
            tracing::info!(run = last.run, by = %last.by, "completing a batch run that did not finish");
            commit_time += carry_out(lake, &cfg.id, &plans, &last, &listed, &mut targets, &mut counts).await?;
        }
    }
    let mut full_refresh = false;
    if let Some(next) = Plan::next(plans.last(), &listed, cfg.full_refresh) {
        plan::create(lake, &cfg.id, &next).await?;
        plans = plan::read_last(lake, &cfg.id, 2).await?;
        full_refresh = next.full_refresh;
        commit_time += carry_out(lake, &cfg.id, &plans, &next, &listed, &mut targets, &mut counts).await?;
    }
    let run = plans.last().map_or(0, |p| p.run);
    for (count, target) in counts.iter_mut().zip(&targets) {
        count.rows = target.rows()?;
    }
    let mut phases = vec![("read", started.elapsed().saturating_sub(commit_time)), ("commit", commit_time)];

    let started = Instant::now();
    let mut files = Vec::with_capacity(Table::ALL.len());
    for (table, target) in Table::ALL.into_iter().zip(&targets) {
        let (schema, urls) = target.files()?;
        files.push(queries::Registered { table, schema, files: urls });
    }
    let answers = queries::answer(lake, &files).await?;
    phases.push(("queries", started.elapsed()));

    let started = Instant::now();
    let tables: Vec<TableCounts> = counts.to_vec();
    let staging = output::Staging::create(&cfg.out)?;
    let results = output::Results { answers };
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
        run,
        full_refresh,
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
    let (staging, results) =
        tokio::task::spawn_blocking(move || staging.write(&results, finish).map(|()| (staging, results))).await??;
    staging.publish().await?;
    phases.push(("write", started.elapsed()));
    Ok(BatchReport { out: cfg.out.show(""), run, full_refresh, tables, answers: results.answers, phases })
}

/// Carries out `plan` on every table that does not hold it yet: reads the plan's files (all of
/// them, in generation order, for a full refresh), writes the new rows and commits each table
/// with the run's number. `listed` is every sink file of the three topics. Adds what it read to
/// `counts`; returns the time spent committing.
async fn carry_out(
    lake: &Lake,
    id: &str,
    plans: &plan::Plans,
    plan: &Plan,
    listed: &[read::SinkFile],
    targets: &mut [tables::Target],
    counts: &mut [TableCounts; 3],
) -> Result<Duration, Error> {
    // The plan before covers what earlier runs took; a full refresh orders files by the run that
    // first took them, so it reads every plan.
    let all = if plan.full_refresh { Some(plan::read_all(lake, id).await?) } else { None };
    let earlier = plans.get(plan.run - 1);
    let rejects_due = targets[3].committed_run().await?.is_none_or(|held| held < plan.run);
    // The three tables at once: their files share the workers, so a table of few files does
    // not leave cores idle.
    let mut reading = Vec::new();
    for (i, table) in Table::ALL.into_iter().enumerate() {
        let target = &targets[i];
        let due = target.committed_run().await?.is_none_or(|held| held < plan.run);
        if !due && !rejects_due {
            continue;
        }
        let topic = crate::contract::topic(id, table);
        let mut files: Vec<read::SinkFile> = listed
            .iter()
            .filter(|f| f.topic == topic)
            .filter(|f| plan.covers(f) && (plan.full_refresh || !earlier.is_some_and(|p| p.covers(f))))
            .cloned()
            .collect();
        if let Some(all) = &all {
            // The order the runs took them: a file's generation first.
            files.sort_by_cached_key(|f| (all.generation(f).unwrap_or(plan.run), f.partition, f.start));
        }
        reading.push(async move {
            let started = Instant::now();
            let mut seen = if plan.full_refresh { RoaringTreemap::new() } else { target.held_inds(lake).await? };
            tracing::debug!(table = %target.name, ms = started.elapsed().as_millis() as u64, held = seen.len(), "ind's held");
            let writer = target.writer(output::table_properties(table))?;
            let data = read::read_table(lake, table, files, &mut seen, writer, target.name.clone()).await?;
            // `seen` now holds the table's `ind`s once the run is committed.
            Ok::<_, Error>((i, due, data, seen))
        });
    }
    let reads = futures::future::try_join_all(reading).await?;
    // The rows of every table are written; now the commits, one table after another.
    let started = Instant::now();
    let info = |kind: &str| {
        let mut info = serde_json::Map::new();
        info.insert("pinpipe.batchRun".into(), serde_json::json!({ "run": plan.run, "kind": kind }));
        info
    };
    let kind = if plan.full_refresh { "full-refresh" } else { "incremental" };
    let mut rejects = Vec::new();
    for (i, due, data, seen) in reads {
        let table = Table::ALL[i];
        if due {
            let committed = targets[i].commit(plan.run, data.adds, plan.full_refresh, info(kind)).await?;
            if matches!(committed, tables::Committed::Version(_)) {
                targets[i].save_inds(lake, plan.run, &seen).await;
            }
            tracing::debug!(table = %targets[i].name, run = plan.run, ?committed, rows = data.kept, "batch table committed");
            let count = &mut counts[i];
            count.files += data.files as u64;
            count.records += data.read;
            count.kept += data.kept;
            count.unreadable_follower_counts += data.unreadable_follower_counts;
            for (reason, n) in &data.rejected {
                *count.rejected.entry(reason.clone()).or_default() += n;
            }
        } else {
            targets[i].discard(&data.adds).await;
        }
        rejects.push((table, data.rejects));
    }
    if rejects_due {
        let rows: Vec<_> = rejects.iter().map(|(t, r)| (*t, r.as_slice())).collect();
        let batch = output::rejects_batch(&rows)?;
        let adds = targets[3].write_all(vec![batch]).await?;
        targets[3].commit(plan.run, adds, plan.full_refresh, info(kind)).await?;
    }
    Ok(started.elapsed())
}

/// The time now, RFC 3339 in UTC to the second (`2026-01-31T00:00:00Z`).
fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
