//! Cleaning (SPEC §6): raw JSON records of the three tables → typed, cleaned Arrow batches, with
//! a reject path. STUB: the signatures below are the contract; the bodies are being written.
//!
//! Written once and used by both jobs: the batch job decodes and cleans whole sink files, the
//! stream job each micro-batch read from the streams.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

/// The three tables of the source, as records on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Pin,
    Geo,
    User,
}

impl Table {
    pub const ALL: [Table; 3] = [Table::Pin, Table::Geo, Table::User];

    /// `pin`, `geo`, `user`: the suffix of topic, stream and output names.
    pub fn name(self) -> &'static str {
        match self {
            Table::Pin => "pin",
            Table::Geo => "geo",
            Table::User => "user",
        }
    }
}

/// A record that cannot be cleaned, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Position of the record in the slice given to [`decode`].
    pub index: usize,
    /// The record as received (lossy UTF-8).
    pub raw: String,
    /// A short, stable reason such as `not JSON` or ``missing `ind` ``; counted by reason.
    pub reason: String,
}

/// The result of decoding a slice of records.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The readable records as a typed batch (schema [`raw_schema`]), in input order.
    pub batch: RecordBatch,
    /// For each row of `batch`, its position in the input slice.
    pub rows: Vec<usize>,
    /// The unreadable records.
    pub rejects: Vec<Reject>,
}

/// Errors of the cleaning code itself (never of the data: bad records become [`Reject`]s).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("arrow")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("datafusion")]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

/// The typed schema of decoded (not yet cleaned) records of `table`.
pub fn raw_schema(_table: Table) -> SchemaRef {
    todo!()
}

/// The cleaned schema of `table`, exactly SPEC §6 (column names, order and types).
pub fn cleaned_schema(_table: Table) -> SchemaRef {
    todo!()
}

/// Decodes JSON records (one record per slice element) into a typed batch plus rejects.
pub fn decode(_table: Table, _records: &[&[u8]]) -> Result<Decoded, Error> {
    todo!()
}

/// Applies SPEC §6's cleaning to a decoded batch; total: every row comes out, cleaned.
pub fn clean(_table: Table, _decoded: &RecordBatch) -> Result<RecordBatch, Error> {
    let _ = Arc::new(());
    todo!()
}
