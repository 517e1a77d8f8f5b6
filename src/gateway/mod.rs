//! The ingest API (SPEC §3): the HTTP server that stands for API Gateway + the Confluent REST
//! proxy (batch path) and API Gateway's Kinesis integration (stream path).
//!
//! Fed by the posting emulator (or any client speaking those APIs); feeds the two event logs —
//! topics and streams, separate [`EventLog`]s — and answers a write only once the log made it
//! durable. Owns routing, the optional base path (an API Gateway stage such as `/dev`), API keys
//! and `/metrics`; the route families live in [`kafka_rest`] and [`kinesis`], what every API
//! route shares (API key, body limits, request metrics) in [`layers`], body parsing in [`body`],
//! the error → response mapping in [`error`], counters in [`metrics`], and the connections
//! (timeouts, the connection cap) in [`connections`].
//!
//! [`app`] builds the router without a socket (tests call it directly); [`serve`] runs it on a
//! listener until the shutdown token fires, then finishes the requests in flight.
//!
//! Every answer under `{base}/topics…` carries the proxy's error envelope and every answer under
//! `{base}/streams…` Kinesis's shape, unmatched paths (404) and wrong methods (405) included.
//!
//! Routes (`{base}` is the optional base path; `/healthz` and `/metrics` stay at the root and
//! never need a key):
//!
//! | route | does |
//! | --- | --- |
//! | `POST {base}/topics/{topic}` | Kafka REST produce |
//! | `GET {base}/topics`, `GET {base}/topics/{topic}` | list / describe topics |
//! | `GET {base}/streams` | list streams |
//! | `POST`/`GET`/`DELETE {base}/streams/{name}` | create / describe / delete a stream |
//! | `PUT {base}/streams/{name}/record`, `…/records` | Kinesis PutRecord / PutRecords |
//! | `GET /healthz`, `GET /metrics` | liveness, Prometheus counters |
//! | `GET /`, `GET /status.json`, `GET /report.html` | the live status page ([`status`]) and the last batch report |
//!
//! The status routes, like `/healthz` and `/metrics`, need no API key: they only read, and a
//! browser cannot send `x-api-key` (see [`status`]).

pub mod body;
mod connections;
mod error;
mod kafka_rest;
mod kinesis;
mod layers;
mod metrics;
pub mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{OriginalUri, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use error::Error;
use error::{ApiError, Family};
pub use metrics::Metrics;
use metrics::Route;

use crate::eventlog::{EventLog, Namespace};

/// What the gateway is told by the CLI or the config file (`[gateway]` in `pinpipe.toml`).
/// Its `Debug` shows how many API keys there are, never their values.
#[derive(Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// An API Gateway stage prefix such as `/dev`: the API routes then live only under it.
    /// `None`, `""` and `"/"` mean no prefix; a trailing `/` is ignored.
    pub base_path: Option<String>,
    /// Accepted `x-api-key` values. Empty: the API is open. Otherwise every topics/streams route
    /// requires one of them (403 without).
    pub api_keys: Vec<String>,
    /// Longest wait for a whole request head, from the accept or the end of the previous
    /// response: closes clients that send nothing, half a header, or a byte a second.
    pub header_read_timeout: Duration,
    /// Longest a keep-alive connection may wait, idle, for its next request (at most
    /// `header_read_timeout`).
    pub idle_timeout: Duration,
    /// Longest a request body may take to arrive once its head has (408 after).
    pub body_timeout: Duration,
    /// Most connections open at once; `None`: below the open-file limit
    /// ([`connections::default_max_connections`]).
    pub max_connections: Option<usize>,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("base_path", &self.base_path)
            .field("api_keys", &vec!["***"; self.api_keys.len()])
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            base_path: None,
            api_keys: Vec::new(),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: None,
        }
    }
}

/// The address `pinpipe gateway` listens on unless told otherwise (the Confluent REST proxy's
/// usual port), and the emulator's default target.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8082";
/// Default [`GatewayConfig::header_read_timeout`].
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`GatewayConfig::idle_timeout`].
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`GatewayConfig::body_timeout`].
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything a request needs; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: GatewayConfig,
    topics: Arc<dyn EventLog>,
    streams: Arc<dyn EventLog>,
    metrics: Metrics,
    status: Option<status::Sources>,
}

impl AppState {
    /// Checks the configuration and pairs it with the two logs: `topics` must be a
    /// [`Namespace::Topics`] log and `streams` a [`Namespace::Streams`] one.
    pub fn new(
        mut config: GatewayConfig,
        topics: Arc<dyn EventLog>,
        streams: Arc<dyn EventLog>,
    ) -> Result<Self, Error> {
        config.base_path = normalize_base_path(config.base_path.as_deref())?;
        if topics.namespace() != Namespace::Topics || streams.namespace() != Namespace::Streams {
            return Err(Error::Config("the topics log must hold topics and the streams log streams".into()));
        }
        if config.api_keys.iter().any(String::is_empty) {
            return Err(Error::Config("an API key may not be empty".into()));
        }
        if config.idle_timeout > config.header_read_timeout {
            return Err(Error::Config(format!(
                "the idle timeout ({}) may not exceed the header-read timeout ({}): an idle connection is also waiting for its next request's header",
                crate::settings::display_duration(config.idle_timeout),
                crate::settings::display_duration(config.header_read_timeout)
            )));
        }
        Ok(AppState { inner: Arc::new(Inner { config, topics, streams, metrics: Metrics::default(), status: None }) })
    }

    /// Like [`AppState::new`], with the lake and results folder the status page reads.
    pub fn with_status(
        config: GatewayConfig,
        topics: Arc<dyn EventLog>,
        streams: Arc<dyn EventLog>,
        sources: status::Sources,
    ) -> Result<Self, Error> {
        let state = AppState::new(config, topics, streams)?;
        let inner = Arc::into_inner(state.inner)
            .ok_or_else(|| Error::Internal("a new gateway state is shared already".into()))?;
        Ok(AppState { inner: Arc::new(Inner { status: Some(sources), ..inner }) })
    }

    /// What the status page reads besides the logs, if the gateway was given it.
    pub fn status(&self) -> Option<&status::Sources> {
        self.inner.status.as_ref()
    }

    /// The configuration, with the base path normalized (`Some("/dev")` or `None`).
    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// The Kafka-style topics log.
    pub fn topics(&self) -> &Arc<dyn EventLog> {
        &self.inner.topics
    }

    /// The Kinesis-style streams log.
    pub fn streams(&self) -> &Arc<dyn EventLog> {
        &self.inner.streams
    }

    /// The counters behind `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
}

/// `Some("/a/b")` for `"a/b/"`, `"/a/b"`…; `None` for no prefix. Segments use the characters of
/// API Gateway stage names, and the prefix may not hide `/healthz`, `/metrics` or the status routes.
fn normalize_base_path(base: Option<&str>) -> Result<Option<String>, Error> {
    let Some(base) = base else { return Ok(None) };
    let trimmed = base.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(None);
    }
    let ok_segment = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    let first = trimmed.split('/').next().unwrap_or_default();
    if !trimmed.split('/').all(ok_segment) || matches!(first, "healthz" | "metrics" | "status.json" | "report.html") {
        return Err(Error::Config(format!(
            "base path `{base}`: use segments of letters, digits, `-`, `_` and `.`, such as `/dev`"
        )));
    }
    Ok(Some(format!("/{trimmed}")))
}

/// The whole HTTP API as a router, without a socket.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/topics", get(kafka_rest::list))
        .route("/topics/{topic}", get(kafka_rest::describe).post(kafka_rest::produce))
        .route("/topics/{topic}/partitions/{partition}/offsets", get(kafka_rest::partition_offsets))
        .route("/streams", get(kinesis::list))
        .route("/streams/{name}", post(kinesis::create).get(kinesis::describe).delete(kinesis::delete))
        .route("/streams/{name}/record", put(kinesis::put_record))
        .route("/streams/{name}/records", put(kinesis::put_records))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), layers::api))
        .method_not_allowed_fallback(method_not_allowed);
    let api = match state.config().base_path.as_deref() {
        Some(base) => Router::new().nest(base, api),
        None => api,
    };
    Router::new()
        .route("/", get(status::page))
        .route("/status.json", get(status::status_json))
        .route("/report.html", get(status::report_page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` is cancelled, then stops accepting and lets the
/// requests in flight finish. Connections are held to the configuration's timeouts and cap
/// ([`connections`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let config = state.config();
    let limits = connections::Limits {
        header_read_timeout: config.header_read_timeout,
        idle_timeout: config.idle_timeout,
        max_connections: config.max_connections.unwrap_or_else(connections::default_max_connections),
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::debug!(%addr, base_path = ?config.base_path, ?limits, "gateway serving");
    }
    connections::serve(listener, app(state.clone()), state, limits, shutdown).await.map_err(Error::Serve)
}

/// The name in a route's path (a topic or stream), or a 400 when it is not valid
/// percent-encoded UTF-8.
pub(crate) fn path_name(path: Result<Path<String>, PathRejection>) -> Result<String, Error> {
    path.map(|Path(name)| name).map_err(|rejection| Error::BadPath(rejection.body_text()))
}

/// The path the client asked for, base path included (a router nested under the base path sees
/// the rest only).
pub(crate) fn full_path(request: &Request) -> &str {
    match request.extensions().get::<OriginalUri>() {
        Some(OriginalUri(uri)) => uri.path(),
        None => request.uri().path(),
    }
}

/// The answer for a path no route has: in the family's shape under `{base}/topics` and
/// `{base}/streams`, plain text elsewhere.
async fn not_found(State(state): State<AppState>, request: Request) -> Response {
    let path = full_path(&request).to_owned();
    fallback(&state, &path, Error::NoRoute { path: path.clone() })
}

/// The answer for a route that does not take the request's method.
async fn method_not_allowed(State(state): State<AppState>, request: Request) -> Response {
    let path = full_path(&request).to_owned();
    let error = Error::MethodNotAllowed { method: request.method().to_string(), path: path.clone() };
    fallback(&state, &path, error)
}

fn fallback(state: &AppState, path: &str, error: Error) -> Response {
    let started = Instant::now();
    let response = match Family::of_path(state.config().base_path.as_deref(), path) {
        Some(family) => ApiError { family, error }.into_response(),
        None => {
            let status = match error {
                Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
                _ => StatusCode::NOT_FOUND,
            };
            reply(status, "text/plain; charset=utf-8", format!("{error}\n").into_bytes())
        }
    };
    state.metrics().observe(Route::Admin, response.status(), started);
    response
}

/// A reply with a body and a fixed content type.
pub(crate) fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Serializes a reply body; a failure here is the server's bug, answered with a generic 500.
pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error::Internal(format!("cannot serialize a reply: {e}")))
}

/// `GET /healthz`: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

/// `GET /metrics`: Prometheus text format 0.0.4.
async fn metrics_text(State(state): State<AppState>) -> Response {
    let mut text = state.metrics().render();
    let intake = [("topics", state.topics().pressure()), ("streams", state.streams().pressure())];
    metrics::render_intake(&mut text, &intake);
    reply(StatusCode::OK, "text/plain; version=0.0.4", text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_are_normalized_or_refused() {
        assert_eq!(normalize_base_path(None).unwrap(), None);
        assert_eq!(normalize_base_path(Some("/")).unwrap(), None);
        assert_eq!(normalize_base_path(Some("")).unwrap(), None);
        assert_eq!(normalize_base_path(Some("dev")).unwrap().as_deref(), Some("/dev"));
        assert_eq!(normalize_base_path(Some("/dev/")).unwrap().as_deref(), Some("/dev"));
        assert_eq!(normalize_base_path(Some("/a/v1")).unwrap().as_deref(), Some("/a/v1"));
        for bad in ["/a b", "/a//b", "/metrics", "/{x}", "/a/../b", "/*"] {
            assert!(normalize_base_path(Some(bad)).is_err(), "{bad}");
        }
    }
}
