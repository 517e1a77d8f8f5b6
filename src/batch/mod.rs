//! The batch job (SPEC §6). STUB: the signatures are the contract; bodies being written.

use std::fmt;
use std::path::PathBuf;

use crate::lake::Lake;

/// What `pinpipe batch` runs with.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Pipeline id: the job reads the sink files of `<id>.pin`, `<id>.geo`, `<id>.user`.
    pub id: String,
    /// Results folder (SPEC §10 lists its files); replaced by each run.
    pub out: PathBuf,
}

/// What a batch run found and answered.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {}

impl fmt::Display for BatchReport {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

/// Errors of the batch job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cleaning")]
    Clean(#[from] crate::clean::Error),
}

/// Reads every sink file of the three topics, cleans, answers Q1–Q8 and writes `cfg.out`.
pub async fn run(_cfg: &BatchConfig, _lake: &Lake) -> Result<BatchReport, Error> {
    todo!()
}
