//! The lake: where the sink lands its JSON objects and the stream job its Delta tables — a local
//! folder (`file://DIR`) or S3 and S3-compatible stores (`s3://bucket/prefix`).
//!
//! Owns turning the `--lake` URL ([`LakeUrl`]) into an `object_store` handle plus the key prefix everything is
//! written under. S3 settings come from the usual AWS variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL` for S3-compatible servers,
//! `AWS_ALLOW_HTTP`); an `http://` endpoint is allowed automatically. The sink, the batch job
//! and the stream job all go through here, so they agree on the layout.
//!
//! Every request has a timeout, so a store that stops answering (down, frozen, partitioned) never
//! hangs a job: `AWS_TIMEOUT` (whole request, 30 s unless set, e.g. `AWS_TIMEOUT=5s`) and
//! `AWS_CONNECT_TIMEOUT` (5 s), read by `object_store` here and passed to `deltalake` with the
//! other `AWS_*` settings. A timed-out request is retried by the object store a few times, then
//! by the sink and the stream job themselves for as long as the outage lasts.
//!
//! A full disk under a local lake is treated the same way: [`Trouble`] tells the lake's state
//! (unreachable, full) from a write's own fault, and [`Lake::is_nearly_full`] lets a writer wait
//! for space before it starts a write that would fail half way.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;

use crate::settings::LakeUrl;

pub mod delta_log;

/// Errors opening the lake.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the lake folder {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the lake at {url}")]
    Store {
        url: String,
        #[source]
        source: object_store::Error,
    },
}

/// Free space under which a local lake counts as full — 16 MiB, or a twentieth of a smaller file
/// system: a writer waits rather than start a write (a Delta commit, a sink file) that the disk
/// cannot hold.
pub(crate) const MIN_FREE_BYTES: u64 = 16 * 1024 * 1024;

/// Why the lake cannot take a write now, when the cause is the lake's state (retrying later may
/// succeed) and not the write itself (a conflict, a missing table, a refused credential).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// The store does not answer, or answers with a server error (timeouts, refused
    /// connections, 5xx), after the object store's own retries.
    Unreachable,
    /// The disk under a local lake is full, or its quota used up.
    Full,
}

impl Trouble {
    /// The trouble somewhere in `error`'s causes, if any: a full disk (an I/O error `ENOSPC` or
    /// `EDQUOT`, also inside another error) wins over an object store request that failed in
    /// transport (what `object_store` reports as `Generic`).
    pub fn of(error: &(dyn std::error::Error + 'static)) -> Option<Trouble> {
        let mut found = None;
        let mut pending: Vec<&(dyn std::error::Error + 'static)> = vec![error];
        while let Some(e) = pending.pop() {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if is_full(io) {
                    return Some(Trouble::Full);
                }
                // An I/O error wrapping another (as `AsyncWrite` adapters do) does not list it
                // among its sources: look inside.
                if let Some(inner) = io.get_ref() {
                    pending.push(inner);
                }
            }
            if matches!(e.downcast_ref::<object_store::Error>(), Some(object_store::Error::Generic { .. })) {
                found = Some(Trouble::Unreachable);
            }
            if let Some(source) = e.source() {
                pending.push(source);
            }
        }
        found
    }

    /// The `reason` label of the workers' metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Trouble::Unreachable => "unreachable",
            Trouble::Full => "disk_full",
        }
    }
}

impl std::fmt::Display for Trouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trouble::Unreachable => "the lake is unreachable",
            Trouble::Full => "the lake's disk is full",
        })
    }
}

fn is_full(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
        || matches!(e.raw_os_error(), Some(code) if code == libc::ENOSPC || code == libc::EDQUOT)
}

/// An opened lake: the store and the prefix under which pinpipe writes.
#[derive(Debug, Clone)]
pub struct Lake {
    /// The object store (local folder or bucket).
    pub store: Arc<dyn ObjectStore>,
    /// Key prefix inside the store (empty for a local folder, `prefix` for `s3://bucket/prefix`).
    pub root: Path,
    url: String,
    /// What `deltalake` needs besides the URL to open tables in this lake.
    storage_options: HashMap<String, String>,
    /// The folder of a local lake.
    local: Option<PathBuf>,
}

impl Lake {
    /// Opens `file://DIR` (creating the folder) or `s3://bucket/prefix`.
    pub fn open(url: &LakeUrl) -> Result<Lake, Error> {
        Self::open_with(url, HashMap::new())
    }

    /// [`Lake::open`] with S3 settings (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, …) given here
    /// rather than, or over, the environment's.
    pub fn open_with(url: &LakeUrl, options: HashMap<String, String>) -> Result<Lake, Error> {
        let (bucket, prefix) = match url {
            LakeUrl::File(dir) => return Self::open_local(dir),
            LakeUrl::S3 { bucket, prefix } => (bucket, prefix),
        };
        let url = url.to_string();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let mut storage_options: HashMap<String, String> =
            std::env::vars().filter(|(key, _)| key.starts_with("AWS_")).collect();
        for (key, value) in options {
            if let Ok(config) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(config, &value);
            }
            storage_options.insert(key, value);
        }
        if let Some(endpoint) = storage_options.get("AWS_ENDPOINT_URL").cloned() {
            builder = builder.with_endpoint(&endpoint);
            storage_options.insert("AWS_ENDPOINT".into(), endpoint.clone());
            if endpoint.starts_with("http://") {
                builder = builder.with_allow_http(true);
                storage_options.insert("AWS_ALLOW_HTTP".into(), "true".into());
            }
        }
        if !storage_options.contains_key("AWS_REGION") && !storage_options.contains_key("AWS_DEFAULT_REGION") {
            builder = builder.with_config(AmazonS3ConfigKey::Region, "us-east-1");
            storage_options.insert("AWS_REGION".into(), "us-east-1".into());
        }
        let store = builder.build().map_err(|source| Error::Store { url: url.clone(), source })?;
        // deltalake opens `s3://` tables only once its S3 handlers are registered.
        static DELTA_S3: std::sync::Once = std::sync::Once::new();
        DELTA_S3.call_once(|| deltalake::aws::register_handlers(None));
        Ok(Lake { store: Arc::new(store), root: Path::from(prefix.as_str()), url, storage_options, local: None })
    }

    /// Opens a local lake in `dir`, creating the folder.
    fn open_local(dir: &std::path::Path) -> Result<Lake, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir { path: dir.to_path_buf(), source })?;
        let dir = dir.canonicalize().map_err(|source| Error::CreateDir { path: dir.to_path_buf(), source })?;
        let url = format!("file://{}", dir.display());
        let store = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|source| Error::Store { url: url.clone(), source })?
            .with_automatic_cleanup(true);
        Ok(Lake {
            store: Arc::new(store),
            root: Path::default(),
            url,
            storage_options: HashMap::new(),
            local: Some(dir),
        })
    }

    /// Bytes free for this process under a local lake's folder; `None` for object stores (or
    /// when the file system does not say).
    pub(crate) fn free_bytes(&self) -> Option<u64> {
        Some(space(self.local.as_deref()?)?.free)
    }

    /// True when a local lake has less than [`MIN_FREE_BYTES`] free (a twentieth of a smaller
    /// file system): a writer should wait for space ([`Trouble::Full`]) instead of starting a
    /// write.
    pub(crate) fn is_nearly_full(&self) -> bool {
        let Some(space) = self.local.as_deref().and_then(space) else { return false };
        space.free < MIN_FREE_BYTES.min(space.total / 20)
    }

    /// The key of `relative` (slash-separated) under the lake's root.
    pub fn path(&self, relative: &str) -> Path {
        let mut path = self.root.clone();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            path = path.join(part);
        }
        path
    }

    /// The lake's URL (local folders made absolute): `file:///abs/dir` or `s3://bucket/prefix`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of the object store itself (`s3://bucket`) for engines that read the lake's files
    /// by URL, such as DataFusion; `None` for a local lake (read through `file://`).
    pub fn object_store_url(&self) -> Option<url::Url> {
        let rest = self.url.strip_prefix("s3://")?;
        let bucket = rest.split('/').next()?;
        url::Url::parse(&format!("s3://{bucket}")).ok()
    }

    /// The URL of `relative` under the lake, e.g. a Delta table's location.
    pub fn url_of(&self, relative: &str) -> String {
        format!("{}/{}", self.url, relative.trim_matches('/'))
    }

    /// The URL of the Delta table `name` of this lake, `<lake>/delta/<name>`.
    pub fn delta_url(&self, name: &str) -> String {
        self.url_of(&format!("{}/{name}", crate::contract::DELTA_DIR))
    }

    /// A handle on the Delta table `name` of this lake, not loaded yet (the table may not exist),
    /// whose log replays are bounded ([`delta_log`]).
    pub fn delta_table(&self, name: &str) -> Result<deltalake::DeltaTable, deltalake::DeltaTableError> {
        let url = self.delta_url(name);
        let parsed = url::Url::parse(&url)
            .map_err(|e| deltalake::DeltaTableError::InvalidTableLocation(format!("{url}: {e}")))?;
        let store = deltalake::DeltaTableBuilder::from_url(parsed)?
            .with_storage_options(self.storage_options.clone())
            .build_storage()?;
        Ok(deltalake::DeltaTable::new(delta_log::bounded(store)))
    }

    /// Loads the Delta table `name` of this lake, creating it with the columns of `schema` (and
    /// its folder, for a local lake) if it does not exist yet. Another process creating it at
    /// the same moment is fine: its table is loaded instead.
    pub async fn open_or_create_table(
        &self,
        name: &str,
        schema: &datafusion::arrow::datatypes::Schema,
    ) -> Result<deltalake::DeltaTable, deltalake::DeltaTableError> {
        use deltalake::DeltaTableError;
        use deltalake::kernel::StructType;
        use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
        let url = self.delta_url(name);
        if let Some(dir) = url.strip_prefix("file://") {
            // deltalake wants a local table's folder to exist before it opens it.
            std::fs::create_dir_all(dir).map_err(|source| DeltaTableError::Io { source })?;
        }
        let mut table = self.delta_table(name)?;
        // Asking first keeps the kernel from logging a failed snapshot of a table not there yet.
        if table.log_store().is_delta_table_location().await? {
            match table.load().await {
                Err(DeltaTableError::NotATable(_)) => {}
                loaded => return loaded.map(|()| table),
            }
        }
        let columns: StructType = schema.try_into_kernel()?;
        let created = table
            .clone()
            .create()
            .with_table_name(name)
            .with_columns(columns.fields().cloned())
            .with_save_mode(deltalake::protocol::SaveMode::Ignore)
            .await;
        match created {
            Ok(created) => Ok(created),
            Err(error) => {
                tracing::debug!(table = name, %error, "creating the Delta table failed; loading it");
                table.load().await.map_err(|_| error)?;
                Ok(table)
            }
        }
    }

    /// Storage options for `deltalake` (the AWS settings in effect; empty for local folders).
    pub fn storage_options(&self) -> &HashMap<String, String> {
        &self.storage_options
    }
}

/// The size of a file system and the bytes free on it for unprivileged users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub free: u64,
    pub total: u64,
}

/// The space of the file system holding `dir`.
#[cfg(unix)]
pub fn space(dir: &std::path::Path) -> Option<Space> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs only writes the struct it is given; `path` is a valid C string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    #[allow(clippy::useless_conversion, reason = "the statvfs field types differ between platforms")]
    let unit = u64::try_from(stat.f_frsize).unwrap_or(0);
    #[allow(clippy::useless_conversion, reason = "the statvfs field types differ between platforms")]
    let blocks = |n| u64::try_from(n).unwrap_or(0).saturating_mul(unit);
    Some(Space { free: blocks(stat.f_bavail), total: blocks(stat.f_blocks) })
}

#[cfg(not(unix))]
pub fn space(_dir: &std::path::Path) -> Option<Space> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{ObjectStoreExt, PutPayload};

    #[test]
    fn a_full_disk_is_found_inside_the_errors_that_wrap_it() {
        let enospc = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(Trouble::of(&enospc), Some(Trouble::Full));
        // As deltalake's parquet writer reports it: an I/O error around an object store error
        // around the I/O error of the write.
        #[derive(Debug, thiserror::Error)]
        #[error("copy failed")]
        struct Copy(#[source] std::io::Error);
        let store = object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(Copy(enospc)) };
        let wrapped = std::io::Error::other(store);
        assert_eq!(Trouble::of(&wrapped), Some(Trouble::Full));
        let timeout = object_store::Error::Generic { store: "S3", source: "operation timed out".into() };
        assert_eq!(Trouble::of(&std::io::Error::other(timeout)), Some(Trouble::Unreachable));
        let missing = object_store::Error::NotFound { path: "x".into(), source: "404".into() };
        assert_eq!(Trouble::of(&missing), None);
    }

    #[test]
    fn a_local_lake_knows_its_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&LakeUrl::File(dir.path().to_path_buf())).unwrap();
        assert!(lake.free_bytes().is_some_and(|b| b > 0));
        assert_eq!(Lake::open(&"s3://b/p".parse().unwrap()).unwrap().free_bytes(), None);
    }

    #[tokio::test]
    async fn a_local_lake_writes_under_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&LakeUrl::File(dir.path().join("lake"))).unwrap();
        lake.store.put(&lake.path("topics/a/x.json"), PutPayload::from_static(b"{}\n")).await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("lake/topics/a/x.json")).unwrap(), b"{}\n");
        assert!(lake.url().starts_with("file:///"));
        assert!(lake.url_of("delta/t").ends_with("/lake/delta/t"));
    }

    #[test]
    fn s3_urls_keep_their_prefix() {
        let lake = Lake::open(&"s3://bucket/some/prefix".parse().unwrap()).unwrap();
        assert_eq!(lake.path("topics/t").as_ref(), "some/prefix/topics/t");
        assert_eq!(lake.url(), "s3://bucket/some/prefix");
    }
}
