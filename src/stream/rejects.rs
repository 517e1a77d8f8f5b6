//! The rejects table's rows: records of the streams that cannot be cleaned, with where they sat
//! in the log and why (`<id>_rejects_table`, one table for the three streams).
//!
//! Fed by [`crate::clean::decode`]'s [`crate::clean::Reject`]s of each micro-batch (through
//! [`super::round`]); feeds the rejects [`super::delta::DeltaSink`]. Nobody consumes it
//! automatically: it is there so a bad record is never lost and can be looked at or replayed.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;

/// The rejects table's schema: `stream` string, `partition` int, `offset` bigint, `raw` string,
/// `reason` string.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("stream", DataType::Utf8, false),
            Field::new("partition", DataType::Int32, false),
            Field::new("offset", DataType::Int64, false),
            Field::new("raw", DataType::Utf8, false),
            Field::new("reason", DataType::Utf8, false),
        ]))
    });
    SCHEMA.clone()
}

/// One rejected record and its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RejectRow {
    pub stream: String,
    pub partition: u32,
    pub offset: u64,
    pub raw: String,
    pub reason: String,
}

/// `rows` as a batch of [`schema`].
pub(crate) fn to_batch(rows: &[RejectRow]) -> Result<RecordBatch, ArrowError> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.stream.as_str()))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| i32::try_from(r.partition).unwrap_or(i32::MAX)))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| super::positions::version_of(r.offset)))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.raw.as_str()))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.reason.as_str()))),
    ];
    RecordBatch::try_new(schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_their_position_raw_text_and_reason() {
        let rows = vec![RejectRow {
            stream: "streaming-x-pin".into(),
            partition: 1,
            offset: 42,
            raw: "not json".into(),
            reason: "not JSON".into(),
        }];
        let batch = to_batch(&rows).unwrap();
        assert_eq!(batch.num_rows(), 1);
        let offset = batch.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(offset.value(0), 42);
        let raw = batch.column(3).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(raw.value(0), "not json");
    }
}
