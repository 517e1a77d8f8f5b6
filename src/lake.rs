//! The lake: where the sink lands its JSON objects and the stream job its Delta tables — a local
//! folder (`file://DIR`) or S3 and S3-compatible stores (`s3://bucket/prefix`).
//!
//! Owns turning the `--lake` URL into an `object_store` handle plus the key prefix everything is
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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;

/// Errors opening the lake.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported lake URL `{0}` (expected file://DIR or s3://bucket/prefix)")]
    UnsupportedUrl(String),
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
}

impl Lake {
    /// Opens `file://DIR` (creating the folder) or `s3://bucket/prefix`.
    pub fn open(url: &str) -> Result<Lake, Error> {
        let url = url.trim_end_matches('/').to_string();
        if let Some(dir) = url.strip_prefix("file://") {
            if dir.is_empty() {
                return Err(Error::UnsupportedUrl(url));
            }
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).map_err(|source| Error::CreateDir { path: dir.clone(), source })?;
            let dir = dir.canonicalize().map_err(|source| Error::CreateDir { path: dir.clone(), source })?;
            let store = LocalFileSystem::new_with_prefix(&dir)
                .map_err(|source| Error::Store { url: url.clone(), source })?
                .with_automatic_cleanup(true);
            let url = format!("file://{}", dir.display());
            return Ok(Lake { store: Arc::new(store), root: Path::default(), url, storage_options: HashMap::new() });
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(Error::UnsupportedUrl(url));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::UnsupportedUrl(url));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let mut storage_options = HashMap::new();
        for (key, value) in std::env::vars() {
            if key.starts_with("AWS_") {
                storage_options.insert(key, value);
            }
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
        Ok(Lake { store: Arc::new(store), root: Path::from(prefix), url, storage_options })
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

    /// The URL of `relative` under the lake, e.g. a Delta table's location.
    pub fn url_of(&self, relative: &str) -> String {
        format!("{}/{}", self.url, relative.trim_matches('/'))
    }

    /// Storage options for `deltalake` (the AWS settings in effect; empty for local folders).
    pub fn storage_options(&self) -> &HashMap<String, String> {
        &self.storage_options
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{ObjectStoreExt, PutPayload};

    #[tokio::test]
    async fn a_local_lake_writes_under_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&format!("file://{}/lake", dir.path().display())).unwrap();
        lake.store.put(&lake.path("topics/a/x.json"), PutPayload::from_static(b"{}\n")).await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("lake/topics/a/x.json")).unwrap(), b"{}\n");
        assert!(lake.url().starts_with("file:///"));
        assert!(lake.url_of("delta/t").ends_with("/lake/delta/t"));
    }

    #[test]
    fn s3_urls_keep_their_prefix_and_other_schemes_are_refused() {
        let lake = Lake::open("s3://bucket/some/prefix").unwrap();
        assert_eq!(lake.path("topics/t").as_ref(), "some/prefix/topics/t");
        assert!(matches!(Lake::open("gs://b"), Err(Error::UnsupportedUrl(_))));
        assert!(matches!(Lake::open("s3://"), Err(Error::UnsupportedUrl(_))));
    }
}
