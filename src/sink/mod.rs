//! The object-store sink (SPEC §5). STUB: the signatures are the contract; bodies being written.

pub mod layout;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::eventlog::EventLog;
use crate::lake::Lake;

/// What `pinpipe sink` runs with.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Pipeline id: the sink consumes `<id>.pin`, `<id>.geo`, `<id>.user`.
    pub id: String,
    /// Records per file before it is written (Confluent `flush.size`).
    pub flush_size: usize,
    /// Longest a record waits in an unwritten file.
    pub flush_interval: Duration,
    /// Process what is in the log, write the last partial files, and return.
    pub drain: bool,
}

/// What a sink run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReport {
    pub files: u64,
    pub records: u64,
}

impl fmt::Display for SinkReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sink wrote {} records in {} files", self.records, self.files)
    }
}

/// Errors of the sink.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("event log")]
    Log(#[from] crate::eventlog::Error),
}

/// Runs the sink until `shutdown` (or, with `drain`, until the log is written out).
pub async fn run(
    _cfg: &SinkConfig,
    _log: Arc<dyn EventLog>,
    _lake: &Lake,
    _shutdown: CancellationToken,
) -> Result<SinkReport, Error> {
    todo!()
}
