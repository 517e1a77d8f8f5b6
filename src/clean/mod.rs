//! Cleaning (SPEC §6): raw JSON records of the three tables → typed, cleaned Arrow batches, with
//! a reject path.
//!
//! Written once and used by both jobs: the batch job decodes and cleans whole sink files, the
//! stream job each micro-batch read from the streams. Two steps, both pure functions over Arrow:
//! - [`decode`] (`decode.rs`): JSON bytes → a typed batch of [`raw_schema`], plus a [`Reject`]
//!   (with a short, stable reason) for every record that cannot be read. Nothing is dropped
//!   silently.
//! - [`clean`] (`rules.rs`): a decoded batch → a batch of [`cleaned_schema`], row for row:
//!   empty strings and placeholders become NULL, `follower_count` becomes a number, `save_location`
//!   loses its prefix, columns are renamed, combined and ordered as SPEC §6 says.
//!
//! Keeping one row per `ind` is the batch job's business (the stream tables keep every event).

mod decode;
mod rules;

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

pub use decode::parse_datetime;
pub use rules::{parse_follower_count, unreadable_follower_counts};

pub use crate::contract::Table;
use crate::contract::WireType;

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
    /// A batch given to [`clean`] lacks a column of [`raw_schema`] or holds it with another type.
    #[error("the {table} batch has no column `{column}` of type {expected}")]
    Column { table: &'static str, column: &'static str, expected: DataType },
}

/// Timestamps are microseconds without a time zone: Spark's `timestamp_ntz` precision, and the
/// values are UTC wall-clock times as the source wrote them.
pub(crate) const TIMESTAMP: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

/// The type of geo's `coordinates`: a list of doubles whose element field is named `element`, as
/// in Parquet's and Delta's list layout (Spark's `array<double>`).
pub(crate) fn coordinates_type() -> DataType {
    DataType::List(Arc::new(Field::new("element", DataType::Float64, true)))
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

/// The decoded columns are the contract's fields, each typed by what it holds on the wire
/// (a key or a datetime is required, so never NULL).
static RAW: LazyLock<[SchemaRef; 3]> = LazyLock::new(|| {
    Table::ALL.map(|table| {
        let fields = table.fields().iter().map(|f| match f.wire {
            WireType::Key => Field::new(f.name, DataType::Int64, false),
            WireType::Text => text(f.name),
            WireType::Int64 => Field::new(f.name, DataType::Int64, true),
            WireType::Int32 => Field::new(f.name, DataType::Int32, true),
            WireType::Float64 => Field::new(f.name, DataType::Float64, true),
            WireType::DateTime => Field::new(f.name, TIMESTAMP, false),
        });
        Arc::new(Schema::new(fields.collect::<Vec<_>>()))
    })
});

/// Every cleaned column is nullable, as Spark and Delta readers see them; `ind` never holds a
/// NULL in practice (a record without one is rejected).
static CLEANED: LazyLock<[SchemaRef; 3]> = LazyLock::new(|| {
    let pin = Schema::new(vec![
        Field::new("ind", DataType::Int64, true),
        text("unique_id"),
        text("title"),
        text("description"),
        Field::new("follower_count", DataType::Int64, true),
        text("poster_name"),
        text("tag_list"),
        text("is_image_or_video"),
        text("image_src"),
        text("save_location"),
        text("category"),
    ]);
    let geo = Schema::new(vec![
        Field::new("ind", DataType::Int64, true),
        text("country"),
        Field::new("coordinates", coordinates_type(), true),
        Field::new("timestamp", TIMESTAMP, true),
    ]);
    let user = Schema::new(vec![
        Field::new("ind", DataType::Int64, true),
        text("user_name"),
        Field::new("age", DataType::Int32, true),
        Field::new("date_joined", TIMESTAMP, true),
    ]);
    [Arc::new(pin), Arc::new(geo), Arc::new(user)]
});

fn slot(table: Table) -> usize {
    match table {
        Table::Pin => 0,
        Table::Geo => 1,
        Table::User => 2,
    }
}

/// The typed schema of decoded (not yet cleaned) records of `table`: the source's columns in
/// source order, datetimes already parsed, `follower_count` still text.
pub fn raw_schema(table: Table) -> SchemaRef {
    RAW[slot(table)].clone()
}

/// The cleaned schema of `table`, exactly SPEC §6 (column names, order and types).
pub fn cleaned_schema(table: Table) -> SchemaRef {
    CLEANED[slot(table)].clone()
}

/// Decodes JSON records (one record per slice element) into a typed batch plus rejects.
///
/// A record is rejected (see `decode.rs` for the exact reasons) when it is not JSON or not a
/// JSON object, when its key (`index`/`ind`) is missing, NULL or not an integer, when a field
/// holds the wrong JSON type, or when its datetime is missing, NULL, empty or unparseable. Other
/// missing or NULL fields become NULL; unknown fields are ignored. `follower_count` is text in
/// the source (SPEC §1), so a JSON number there is the wrong type.
pub fn decode(table: Table, records: &[&[u8]]) -> Result<Decoded, Error> {
    decode::decode(table, records)
}

/// Applies SPEC §6's cleaning to a decoded batch; total: every row comes out, cleaned.
pub fn clean(table: Table, decoded: &RecordBatch) -> Result<RecordBatch, Error> {
    rules::clean(table, decoded)
}
