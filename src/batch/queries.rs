//! Q1–Q8 (SPEC §6): the SQL files under `sql/` run by DataFusion over the cleaned tables.
//!
//! Fed by `read` (the cleaned, deduplicated `pin`, `geo` and `user` batches, registered as
//! in-memory tables of those names); feeds the output and the report. The SQL is kept portable
//! to Spark SQL (window functions, `EXTRACT`, `median` over a DOUBLE), so the same files answer
//! the questions on a Spark cluster. DataFusion's `median` is exact: the middle value, or the
//! mean of the two middle values; the inputs are cast to DOUBLE so that mean is not truncated.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

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

/// Registers `batches` as table `table.name()`, spread over `partitions` for parallel scans.
fn register(ctx: &SessionContext, table: Table, batches: &[RecordBatch], partitions: usize) -> Result<(), Error> {
    let partitions = partitions.max(1);
    let mut parts = vec![Vec::new(); partitions];
    for (i, batch) in batches.iter().enumerate() {
        parts[i % partitions].push(batch.clone());
    }
    let provider = MemTable::try_new(clean::cleaned_schema(table), parts)
        .map_err(|source| Error::Query { query: "register", source })?;
    ctx.register_table(table.name(), Arc::new(provider))
        .map_err(|source| Error::Query { query: "register", source })?;
    Ok(())
}

/// Answers every question of [`QUERIES`] over the cleaned tables.
pub async fn answer(pin: &[RecordBatch], geo: &[RecordBatch], user: &[RecordBatch]) -> Result<Vec<Answer>, Error> {
    let ctx = SessionContext::new();
    let partitions = ctx.copied_config().target_partitions();
    register(&ctx, Table::Pin, pin, partitions)?;
    register(&ctx, Table::Geo, geo, partitions)?;
    register(&ctx, Table::User, user, partitions)?;
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
