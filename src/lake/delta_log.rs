//! How pinpipe's Delta table handles read their transaction logs: with a bounded read-ahead.
//!
//! Owns [`bounded`], which wraps a table's log store so the Delta kernel engine that replays the
//! log (every load, update, commit rebase and checkpoint) decodes at most [`READ_AHEAD`] commit
//! files at once, in batches of [`BATCH_ROWS`] actions. deltalake's default engine opens up to
//! 1,000 commit files at once, and its JSON decoder reserves room for 1,000 actions of the whole
//! log schema in each (a quarter to half a megabyte a file, `tests/delta_log.rs`). In the stream
//! job several replays run at once (the writers of three tables, their checkpoints, the upkeep),
//! each over up to a hundred commits: a heap profile of `pinpipe stream` found 174 MB of such decoders alive at
//! its peak, 89% of the heap; bounded, they took 17 MB (README "Memory"). Outside a
//! multi-threaded runtime the reads run on one background thread for the process instead of a
//! thread started for each. Everything else is passed through to deltalake's own log store
//! unchanged.

use std::num::NonZero;
use std::sync::{Arc, OnceLock};

use buoyant_kernel::Engine;
use buoyant_kernel_engine::DefaultEngineBuilder;
use buoyant_kernel_engine::executor::tokio::{TokioBackgroundExecutor, TokioMultiThreadExecutor};
use bytes::Bytes;
use deltalake::DeltaResult;
use deltalake::datafusion::execution::object_store::ObjectStoreUrl;
use deltalake::kernel::Version;
use deltalake::kernel::transaction::TransactionError;
use deltalake::logstore::{CommitOrBytes, LogStore, LogStoreConfig, LogStoreRef};
use object_store::ObjectStore;
use object_store::path::Path;
use tokio::runtime::{Handle, RuntimeFlavor};
use url::Url;
use uuid::Uuid;

/// Commit files decoded at the same time while a log is replayed.
pub const READ_AHEAD: NonZero<usize> = NonZero::new(16).unwrap();
/// Log actions per decoded batch (what each open commit file's decoder reserves room for).
pub const BATCH_ROWS: NonZero<usize> = NonZero::new(256).unwrap();

/// `inner` with its log replays bounded as the module doc says.
pub fn bounded(inner: LogStoreRef) -> LogStoreRef {
    Arc::new(Bounded { inner })
}

/// The background runtime thread of the engines made outside a multi-threaded runtime (the
/// stream job's upkeep thread), started by the first of them.
fn background() -> Arc<TokioBackgroundExecutor> {
    static BACKGROUND: OnceLock<Arc<TokioBackgroundExecutor>> = OnceLock::new();
    BACKGROUND.get_or_init(|| Arc::new(TokioBackgroundExecutor::new())).clone()
}

/// A log store whose engine has a bounded read-ahead; everything else is `inner`'s.
#[derive(Debug)]
struct Bounded {
    inner: LogStoreRef,
}

#[async_trait::async_trait]
impl LogStore for Bounded {
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn refresh(&self) -> DeltaResult<()> {
        self.inner.refresh().await
    }

    async fn read_commit_entry(&self, version: Version) -> DeltaResult<Option<Bytes>> {
        self.inner.read_commit_entry(version).await
    }

    async fn write_commit_entry(
        &self,
        version: Version,
        commit_or_bytes: CommitOrBytes,
        operation_id: Uuid,
    ) -> Result<(), TransactionError> {
        self.inner.write_commit_entry(version, commit_or_bytes, operation_id).await
    }

    async fn abort_commit_entry(
        &self,
        version: Version,
        commit_or_bytes: CommitOrBytes,
        operation_id: Uuid,
    ) -> Result<(), TransactionError> {
        self.inner.abort_commit_entry(version, commit_or_bytes, operation_id).await
    }

    async fn get_latest_version(&self, start_version: Version) -> DeltaResult<Version> {
        self.inner.get_latest_version(start_version).await
    }

    fn object_store(&self, operation_id: Option<Uuid>) -> Arc<dyn ObjectStore> {
        self.inner.object_store(operation_id)
    }

    fn root_object_store(&self, operation_id: Option<Uuid>) -> Arc<dyn ObjectStore> {
        self.inner.root_object_store(operation_id)
    }

    fn engine(&self, operation_id: Option<Uuid>) -> Arc<dyn Engine> {
        let store = self.inner.root_object_store(operation_id);
        let builder = DefaultEngineBuilder::new(store).with_buffer_size(READ_AHEAD).with_batch_size(BATCH_ROWS);
        // The kernel blocks on its reads: they run on the caller's runtime when it has worker
        // threads, otherwise on one background runtime thread for the whole process (deltalake
        // starts and stops a thread for every read there, and each thread gone left the process
        // holding its allocator's memory).
        match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                Arc::new(builder.with_task_executor(Arc::new(TokioMultiThreadExecutor::new(handle))).build())
            }
            _ => Arc::new(builder.with_task_executor(background()).build()),
        }
    }

    fn to_uri(&self, location: &Path) -> String {
        self.inner.to_uri(location)
    }

    fn root_url(&self) -> &Url {
        self.inner.root_url()
    }

    fn log_path(&self) -> &Path {
        self.inner.log_path()
    }

    fn transaction_url(&self, operation_id: Option<Uuid>) -> DeltaResult<Url> {
        self.inner.transaction_url(operation_id)
    }

    async fn is_delta_table_location(&self) -> DeltaResult<bool> {
        self.inner.is_delta_table_location().await
    }

    fn config(&self) -> &LogStoreConfig {
        self.inner.config()
    }

    fn object_store_url(&self) -> ObjectStoreUrl {
        self.inner.object_store_url()
    }
}
