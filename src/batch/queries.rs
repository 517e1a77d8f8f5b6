//! Q1–Q8 (SPEC §6): the SQL files under `sql/` run by DataFusion over the cleaned tables.
//!
//! Fed by the batch tables (the cleaned, deduplicated `pin`, `geo` and `user` tables, registered
//! as the Parquet data files of their current Delta versions, so only the columns a query needs
//! are read);
//! feeds the output and the report. Eight of the nine answers read a join of pin with geo or
//! with user: those two joins ([`SHARED`]) are computed once, held in memory with only the
//! columns the questions read, and dropped after the last question that reads them. Each answer
//! is also a table named after it for the questions after it (Q3b reads `q3a`). The SQL is kept
//! portable to Spark SQL (window functions, `EXTRACT`, `median` over a DOUBLE), so the same files
//! answer the questions on a Spark cluster. DataFusion's `median` is exact: the middle value, or
//! the mean of the two middle values; the inputs are cast to DOUBLE so that mean is not truncated.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::Error;
use crate::clean::Table;
use crate::lake::Lake;

/// The questions in SPEC §6 order: (name of the output files, SQL).
pub const QUERIES: [(&str, &str); 9] = [
    ("q1", include_str!("../../sql/q1.sql")),
    ("q2", include_str!("../../sql/q2.sql")),
    ("q3a", include_str!("../../sql/q3a.sql")),
    ("q3b", include_str!("../../sql/q3b.sql")),
    ("q4", include_str!("../../sql/q4.sql")),
    ("q5", include_str!("../../sql/q5.sql")),
    ("q6", include_str!("../../sql/q6.sql")),
    ("q7", include_str!("../../sql/q7.sql")),
    ("q8", include_str!("../../sql/q8.sql")),
];

/// The joins several questions read, as (table name, SQL): materialised before the first
/// question that names them, dropped after the last.
const SHARED: [(&str, &str); 2] =
    [("pin_geo", include_str!("../../sql/pin_geo.sql")), ("pin_user", include_str!("../../sql/pin_user.sql"))];

/// One answered question.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `q1`, `q2`, `q3a`, …: also the stem of its output files.
    pub name: &'static str,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// A batch table as the queries read it: the data files of its current version.
pub(super) struct Registered {
    pub table: Table,
    pub schema: SchemaRef,
    /// URLs of its data files (`file:///…` or `s3://bucket/…`).
    pub files: Vec<String>,
}

/// A session that reads `lake`'s files by URL.
/// DataFusion's settings come from its `DATAFUSION_*` variables (e.g.
/// `DATAFUSION_EXECUTION_TARGET_PARTITIONS`), else its defaults.
pub(super) fn session(lake: &Lake) -> SessionContext {
    let config = SessionConfig::from_env().unwrap_or_else(|error| {
        tracing::warn!(%error, "ignoring the DATAFUSION_* settings");
        SessionConfig::new()
    });
    let ctx = SessionContext::new_with_config(config);
    if let Some(url) = lake.object_store_url() {
        ctx.register_object_store(&url, lake.store.clone());
    }
    ctx
}

/// The Parquet data files `files` (URLs) as one table of `schema`, read with the Parquet options
/// of `ctx` (as `register_parquet` would).
pub(super) fn provider(
    ctx: &SessionContext,
    schema: &SchemaRef,
    files: &[String],
) -> Result<Arc<dyn TableProvider>, DataFusionError> {
    if files.is_empty() {
        return Ok(Arc::new(MemTable::try_new(schema.clone(), vec![vec![]])?));
    }
    let urls = files.iter().map(ListingTableUrl::parse).collect::<Result<Vec<_>, _>>()?;
    let format = ParquetFormat::default().with_options(ctx.state().table_options().parquet.clone());
    let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    let config =
        ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema.clone());
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// The tables `sql` reads (not its CTEs), by name.
fn tables_read(ctx: &SessionContext, sql: &str) -> Result<Vec<String>, DataFusionError> {
    let state = ctx.state();
    let statement = state.sql_to_statement(sql, &state.config().options().sql_parser.dialect)?;
    Ok(state.resolve_table_references(&statement)?.iter().map(|t| t.table().to_string()).collect())
}

/// Runs `sql` and registers its result, kept in memory, as table `name`.
async fn materialise(ctx: &SessionContext, name: &str, sql: &str) -> Result<(), DataFusionError> {
    let frame = ctx.sql(sql).await?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let partitions = frame.collect_partitioned().await?;
    ctx.register_table(name, Arc::new(MemTable::try_new(schema, partitions)?))?;
    Ok(())
}

/// A shared join and the questions, by position in [`QUERIES`], that first and last read it.
struct Span {
    name: &'static str,
    sql: &'static str,
    first: usize,
    last: usize,
}

/// The span of every shared join some question reads.
fn spans(ctx: &SessionContext) -> Result<Vec<Span>, Error> {
    let mut read = Vec::with_capacity(QUERIES.len());
    for (name, sql) in QUERIES {
        read.push(tables_read(ctx, sql).map_err(|source| Error::Query { query: name, source })?);
    }
    let mut spans = Vec::new();
    for (name, sql) in SHARED {
        let mut readers = (0..read.len()).filter(|&i| read[i].iter().any(|t| t == name));
        if let Some(first) = readers.next() {
            spans.push(Span { name, sql, first, last: readers.next_back().unwrap_or(first) });
        }
    }
    Ok(spans)
}

/// Answers every question of [`QUERIES`] over the batch tables' data files in `lake`.
pub(super) async fn answer(lake: &Lake, tables: &[Registered]) -> Result<Vec<Answer>, Error> {
    let ctx = session(lake);
    for table in tables {
        let registered = provider(&ctx, &table.schema, &table.files)
            .and_then(|provider| ctx.register_table(table.table.name(), provider));
        registered.map_err(|source| Error::Query { query: "register", source })?;
    }
    let spans = spans(&ctx)?;
    let mut answers = Vec::with_capacity(QUERIES.len());
    for (i, (name, sql)) in QUERIES.into_iter().enumerate() {
        for span in spans.iter().filter(|span| span.first == i) {
            let started = std::time::Instant::now();
            materialise(&ctx, span.name, span.sql).await.map_err(|source| Error::Query { query: span.name, source })?;
            tracing::debug!(join = span.name, seconds = started.elapsed().as_secs_f64(), "materialised");
        }
        let failed = |source| Error::Query { query: name, source };
        let started = std::time::Instant::now();
        let frame = ctx.sql(sql).await.map_err(failed)?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await.map_err(failed)?;
        let table = MemTable::try_new(schema.clone(), vec![batches.clone()]).map_err(failed)?;
        ctx.register_table(name, Arc::new(table)).map_err(failed)?;
        for span in spans.iter().filter(|span| span.last == i) {
            ctx.deregister_table(span.name).map_err(failed)?;
        }
        tracing::debug!(query = name, seconds = started.elapsed().as_secs_f64(), "answered");
        answers.push(Answer { name, schema, batches });
    }
    Ok(answers)
}
