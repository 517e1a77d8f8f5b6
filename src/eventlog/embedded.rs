//! The embedded event log backend: stub, being written.

use std::path::Path;

use async_trait::async_trait;

use super::{EventLog, LogInfo, Namespace, NewRecord, Position, Record, Result};

/// Stub.
pub struct EmbeddedLog {
    namespace: Namespace,
}

impl EmbeddedLog {
    /// Stub.
    pub async fn open(_dir: &Path, namespace: Namespace) -> Result<Self> {
        Ok(EmbeddedLog { namespace })
    }
}

#[async_trait]
impl EventLog for EmbeddedLog {
    fn namespace(&self) -> Namespace {
        self.namespace
    }
    async fn create(&self, _name: &str, _partitions: u32) -> Result<LogInfo> {
        todo!()
    }
    async fn list(&self) -> Result<Vec<String>> {
        todo!()
    }
    async fn describe(&self, _name: &str) -> Result<LogInfo> {
        todo!()
    }
    async fn delete(&self, _name: &str) -> Result<()> {
        todo!()
    }
    async fn append(&self, _name: &str, _records: Vec<NewRecord>) -> Result<Vec<Position>> {
        todo!()
    }
    async fn read(&self, _name: &str, _partition: u32, _from: u64, _max: usize) -> Result<Vec<Record>> {
        todo!()
    }
}
