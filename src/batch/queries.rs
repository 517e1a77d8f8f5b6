//! Q1–Q8 (SPEC §6): the SQL files under `sql/` run by DataFusion over the cleaned tables.
//!
//! Fed by `read` (the cleaned, deduplicated `pin`, `geo` and `user` tables, registered from
//! the Parquet files the run has just written, so only the columns a query needs are read);
//! feeds the output and the report. The SQL is kept portable
//! to Spark SQL (window functions, `EXTRACT`, `median` over a DOUBLE), so the same files answer
//! the questions on a Spark cluster. DataFusion's `median` is exact: the middle value, or the
//! mean of the two middle values; the inputs are cast to DOUBLE so that mean is not truncated.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use super::Error;
use crate::clean::{self, Table};

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

/// One answered question.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `q1`, `q2`, `q3a`, …: also the stem of its output files.
    pub name: &'static str,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// Registers the Parquet file `path` as table `table.name()`, with the cleaned schema.
async fn register(ctx: &SessionContext, table: Table, path: &Path) -> Result<(), Error> {
    let schema = clean::cleaned_schema(table);
    let options = ParquetReadOptions { schema: Some(&schema), ..Default::default() };
    let path = path.to_str().ok_or_else(|| Error::Query {
        query: "register",
        source: DataFusionError::Plan(format!("results path {} is not UTF-8", path.display())),
    })?;
    ctx.register_parquet(table.name(), path, options).await.map_err(|source| Error::Query { query: "register", source })
}

/// Answers every question of [`QUERIES`] over the cleaned tables' Parquet files.
pub async fn answer(tables: &[(Table, PathBuf)]) -> Result<Vec<Answer>, Error> {
    let ctx = SessionContext::new();
    for (table, path) in tables {
        register(&ctx, *table, path).await?;
    }
    let mut answers = Vec::with_capacity(QUERIES.len());
    for (name, sql) in QUERIES {
        let failed = |source| Error::Query { query: name, source };
        let frame = ctx.sql(sql).await.map_err(failed)?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await.map_err(failed)?;
        answers.push(Answer { name, schema, batches });
    }
    Ok(answers)
}
