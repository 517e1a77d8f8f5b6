//! What a reader of a data table can see of a stream ([`Progress`]): the last offset of each
//! partition committed to `<id>_<table>_table`, read back from the table's `txn` versions.
//!
//! Owns only that read-side view; it writes nothing and leaves the commits to [`super::round`]
//! and the table handle to [`super::delta`]. Fed by the Delta tables the stream job writes; feeds
//! the end-to-end latency benchmark (`pinpipe bench stream`), [`crate::lag`] and
//! [`crate::observe`].

use super::Error;
use super::delta::DeltaSink;
use super::positions;
use crate::clean;
use crate::contract::{self, Table};
use crate::lake::Lake;

/// What a reader of a data table can see of a stream: the last offset per partition committed to
/// `<id>_<table>_table`. Used to measure end-to-end latency (`pinpipe bench stream`).
pub struct Progress {
    sink: DeltaSink,
    stream: String,
}

impl Progress {
    /// Opens (creating if absent) the data table of `table` in `lake` for pipeline `id`.
    pub async fn open(lake: &Lake, id: &str, table: Table) -> Result<Progress, Error> {
        let name = contract::delta_table(id, table);
        let sink = DeltaSink::open(lake, &name, clean::cleaned_schema(table), u64::MAX).await?;
        Ok(Progress { sink, stream: contract::stream(id, table) })
    }

    /// The table version as of the last [`Progress::visible`] (its commit count minus one; -1 if none).
    pub fn version(&self) -> i64 {
        self.sink.version()
    }

    /// The last offset of `partition` visible in the table now (reloading its log first).
    pub async fn visible(&mut self, partition: u32) -> Result<Option<u64>, Error> {
        self.sink.refresh().await?;
        let version = self.sink.stored_version(&positions::data_app_id(&self.stream, partition)).await?;
        Ok(version.and_then(|v| u64::try_from(v).ok()))
    }
}
