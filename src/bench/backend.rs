//! Where a benchmark's gateway writes: a temporary embedded log (the default) or the backend the
//! user names with `--backend` (`kafka://…`, `kinesis://…`, `embedded://DIR`).
//!
//! Owns the setup `bench ingest` and `bench stream` share: a fresh pipeline id per run (so the
//! topics and streams of one run never mix with another's, on a shared broker too), creating the
//! logs the run needs before any load, starting the real gateway on a loopback port over them, and
//! deleting those logs afterwards. The namespace a bench does not measure gets a temporary
//! embedded log, which the gateway needs but the bench never touches.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::eventlog::{self, ClientSettings, EventLog, Namespace, Policy};
use crate::gateway;
use crate::settings::{LogUrl, UrlError};

/// Errors setting up or starting a benchmark's logs and gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening the {namespace} log at {url}")]
    Open {
        namespace: &'static str,
        url: String,
        #[source]
        source: eventlog::Error,
    },
    #[error("creating the {noun} `{name}`")]
    Create {
        noun: &'static str,
        name: String,
        #[source]
        source: eventlog::Error,
    },
    #[error("preparing a temporary folder or the loopback gateway")]
    Io(#[from] std::io::Error),
    #[error("building the gateway")]
    Gateway(#[from] gateway::Error),
}

/// The log a benchmark measures, as given to `--backend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A temporary embedded log, removed after the run.
    Embedded,
    /// An event log URL: `kafka://HOST:PORT[?…]`, `kinesis://REGION[?endpoint=URL]` or
    /// `embedded://DIR`.
    Url(LogUrl),
}

impl Backend {
    /// The backend's kind as rows name it: `embedded`, `kafka` or `kinesis`.
    pub fn kind(&self) -> &str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Url(url) => url.kind(),
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(text: &str) -> Result<Backend, String> {
        match text.trim() {
            "embedded" => Ok(Backend::Embedded),
            url => url.parse().map(Backend::Url).map_err(|e: UrlError| e.to_string()),
        }
    }
}

impl std::fmt::Display for Backend {
    /// `embedded`, or the URL with its secret settings hidden.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Embedded => f.write_str("embedded"),
            Backend::Url(url) => write!(f, "{url}"),
        }
    }
}

/// The topics and streams logs of one benchmark run, under a fresh pipeline id.
pub struct BenchLogs {
    /// The run's pipeline id (`bench-<uuid>`): names its topics, streams and tables.
    pub id: String,
    /// The backend measured, as the report shows it.
    pub backend: Backend,
    pub topics: Arc<dyn EventLog>,
    pub streams: Arc<dyn EventLog>,
    /// The logs [`BenchLogs::create`] made, deleted by [`BenchLogs::remove`].
    created: Vec<(Namespace, String)>,
    /// Holds the temporary embedded log (and whatever else the bench puts here) until the end.
    pub dir: tempfile::TempDir,
}

impl BenchLogs {
    /// Opens `backend` for `measured` and a temporary embedded log for the other namespace.
    pub async fn open(backend: &Backend, measured: Namespace, settings: &ClientSettings) -> Result<BenchLogs, Error> {
        let dir = tempfile::Builder::new().prefix("pinpipe-bench-").tempdir()?;
        let temporary = LogUrl::Embedded(dir.path().join("log"));
        let url_of = |namespace: Namespace| match backend {
            Backend::Url(url) if namespace == measured => url.clone(),
            _ => temporary.clone(),
        };
        let open = |namespace: Namespace| {
            let url = url_of(namespace);
            async move {
                eventlog::open_with(&url, namespace, settings, Policy::default_for(namespace))
                    .await
                    .map_err(|source| Error::Open { namespace: namespace.noun(), url: url.to_string(), source })
            }
        };
        let topics = open(Namespace::Topics).await?;
        let streams = open(Namespace::Streams).await?;
        let id = format!("bench-{}", uuid::Uuid::new_v4().simple());
        Ok(BenchLogs { id, backend: backend.clone(), topics, streams, created: Vec::new(), dir })
    }

    /// Creates the log `name` (one partition) in `namespace` before any load, and remembers it
    /// for [`BenchLogs::remove`].
    pub async fn create(&mut self, namespace: Namespace, name: &str) -> Result<(), Error> {
        let log = match namespace {
            Namespace::Topics => &self.topics,
            Namespace::Streams => &self.streams,
        };
        log.create(name, 1, None).await.map_err(|source| Error::Create {
            noun: namespace.noun(),
            name: name.to_string(),
            source,
        })?;
        self.created.push((namespace, name.to_string()));
        Ok(())
    }

    /// Starts the real gateway over these logs on a free loopback port until `stop`; returns its
    /// address.
    pub async fn serve(&self, stop: CancellationToken) -> Result<SocketAddr, Error> {
        let state =
            gateway::AppState::new(gateway::GatewayConfig::default(), self.topics.clone(), self.streams.clone())?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(gateway::serve(listener, state, stop));
        Ok(addr)
    }

    /// Deletes the logs this run created (a remote backend keeps them otherwise) and the
    /// temporary folder; a failure only warns, the figures stand.
    pub async fn remove(self) {
        for (namespace, name) in &self.created {
            let log = match namespace {
                Namespace::Topics => &self.topics,
                Namespace::Streams => &self.streams,
            };
            if let Err(error) = log.delete(name).await {
                tracing::warn!(%name, error = %error, "could not delete the benchmark's {}", namespace.noun());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_parses_embedded_and_urls_and_names_its_kind() {
        assert_eq!("embedded".parse::<Backend>(), Ok(Backend::Embedded));
        let kafka: Backend = "kafka://127.0.0.1:9092".parse().unwrap();
        assert_eq!((kafka.kind(), kafka.to_string()), ("kafka", "kafka://127.0.0.1:9092".to_string()));
        let kinesis: Backend = "kinesis://us-east-1?endpoint=http://127.0.0.1:4567".parse().unwrap();
        assert_eq!(kinesis.kind(), "kinesis");
        let err = "mysql://db".parse::<Backend>().unwrap_err();
        assert!(err.starts_with("`mysql://db` is not a supported event log"), "{err}");
        assert!("kafka://".parse::<Backend>().is_err());
    }
}
