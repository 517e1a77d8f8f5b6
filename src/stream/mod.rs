//! The stream job (SPEC §8). STUB: the signatures are the contract; bodies being written.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::eventlog::EventLog;
use crate::lake::Lake;

/// What `pinpipe stream` runs with.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Pipeline id: reads `streaming-<id>-{pin,geo,user}`, writes `<id>_{pin,geo,user}_table`.
    pub id: String,
    /// Most records in one micro-batch (one Delta commit per table).
    pub max_batch_records: usize,
    /// Longest a record waits before its micro-batch is committed.
    pub max_latency: Duration,
    /// Commit everything in the streams, then return.
    pub drain: bool,
    /// Write a Delta checkpoint every this many commits of a table.
    pub checkpoint_every: u64,
}

/// What a stream run did.
#[derive(Debug, Clone, Default)]
pub struct StreamReport {}

impl fmt::Display for StreamReport {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

/// Errors of the stream job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("event log")]
    Log(#[from] crate::eventlog::Error),
}

/// Runs the stream job until `shutdown` (or, with `drain`, until the streams are committed).
pub async fn run(
    _cfg: &StreamConfig,
    _streams: Arc<dyn EventLog>,
    _lake: &Lake,
    _shutdown: CancellationToken,
) -> Result<StreamReport, Error> {
    todo!()
}
